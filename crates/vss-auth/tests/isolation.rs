//! Two users with the same store_id: each sees, lists and changes only their own keys.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on failure.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::*;
use prost::Message;
use serde_json::json;
use vss_auth::{JwtAuthorizer, JwtKey};
use vss_auth::{MultiAuthorizer, SigsAuthorizer};
use vss_core::proto::{
    DeleteObjectRequest, ErrorCode, GetObjectRequest, GetObjectResponse, KeyValue,
    ListKeyVersionsRequest, ListKeyVersionsResponse, PutObjectRequest,
};

fn put(items: &[(&str, i64, &'static [u8])]) -> PutObjectRequest {
    PutObjectRequest {
        store_id: "shared".into(),
        global_version: None,
        transaction_items: items
            .iter()
            .map(|(k, v, value)| KeyValue {
                key: (*k).into(),
                version: *v,
                value: Bytes::from_static(value),
            })
            .collect(),
        delete_items: vec![],
    }
}

async fn get_value(server: &TestServer, auth: &str, key: &str) -> Option<(i64, Bytes)> {
    let answer = call(
        server,
        "getObject",
        Some(auth),
        &GetObjectRequest {
            store_id: "shared".into(),
            key: key.into(),
        },
    )
    .await;
    if answer.status == 404 {
        assert_eq!(answer.error_code(), ErrorCode::NoSuchKeyException);
        return None;
    }
    assert_eq!(answer.status, 200);
    let value = GetObjectResponse::decode(answer.body)
        .unwrap()
        .value
        .unwrap();
    Some((value.version, value.value))
}

async fn list(server: &TestServer, auth: &str) -> Vec<(String, i64)> {
    let answer = call(
        server,
        "listKeyVersions",
        Some(auth),
        &ListKeyVersionsRequest {
            store_id: "shared".into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(answer.status, 200);
    let mut keys: Vec<_> = ListKeyVersionsResponse::decode(answer.body)
        .unwrap()
        .key_versions
        .into_iter()
        .map(|kv| (kv.key, kv.version))
        .collect();
    keys.sort();
    keys
}

/// Runs the isolation checks for two users' credentials.
async fn check_isolation(server: &TestServer, a: &str, b: &str) {
    assert_eq!(
        call(
            server,
            "putObjects",
            Some(a),
            &put(&[("both", 0, b"a"), ("only-a", 0, b"a")])
        )
        .await
        .status,
        200
    );
    assert_eq!(
        call(
            server,
            "putObjects",
            Some(b),
            &put(&[("both", 0, b"b"), ("only-b", 0, b"b")])
        )
        .await
        .status,
        200
    );

    // get and list: own keys only.
    assert_eq!(
        get_value(server, a, "both").await,
        Some((1, Bytes::from_static(b"a")))
    );
    assert_eq!(
        get_value(server, b, "both").await,
        Some((1, Bytes::from_static(b"b")))
    );
    assert_eq!(get_value(server, a, "only-b").await, None);
    assert_eq!(get_value(server, b, "only-a").await, None);
    assert_eq!(
        list(server, a).await,
        [("both".to_string(), 1), ("only-a".to_string(), 1)]
    );
    assert_eq!(
        list(server, b).await,
        [("both".to_string(), 1), ("only-b".to_string(), 1)]
    );

    // b cannot delete a's key: for b it does not exist.
    let delete = DeleteObjectRequest {
        store_id: "shared".into(),
        key_value: Some(KeyValue {
            key: "only-a".into(),
            version: 1,
            value: Bytes::new(),
        }),
    };
    assert_eq!(
        call(server, "deleteObject", Some(b), &delete).await.status,
        200
    );
    let conditional = PutObjectRequest {
        delete_items: vec![KeyValue {
            key: "only-a".into(),
            version: -1,
            value: Bytes::new(),
        }],
        ..put(&[])
    };
    assert_eq!(
        call(server, "putObjects", Some(b), &conditional)
            .await
            .error_code(),
        ErrorCode::ConflictException
    );
    // b's update of "both" at a's version and b's upsert of "only-a" land in b's space.
    assert_eq!(
        call(server, "putObjects", Some(b), &put(&[("both", 1, b"b2")]))
            .await
            .status,
        200
    );
    assert_eq!(
        call(server, "putObjects", Some(b), &put(&[("only-a", -1, b"b")]))
            .await
            .status,
        200
    );

    assert_eq!(
        get_value(server, a, "both").await,
        Some((1, Bytes::from_static(b"a")))
    );
    assert_eq!(
        get_value(server, a, "only-a").await,
        Some((1, Bytes::from_static(b"a")))
    );
    assert_eq!(
        list(server, a).await,
        [("both".to_string(), 1), ("only-a".to_string(), 1)]
    );
    assert_eq!(
        get_value(server, b, "both").await,
        Some((2, Bytes::from_static(b"b2")))
    );
    assert_eq!(
        list(server, b).await,
        [
            ("both".to_string(), 2),
            ("only-a".to_string(), 1),
            ("only-b".to_string(), 1)
        ]
    );
}

fn server_auth() -> Arc<MultiAuthorizer> {
    Arc::new(
        MultiAuthorizer::new()
            .with_jwt(JwtAuthorizer::from_public_pems(RS256_PUBLIC).unwrap())
            .with_sigs(SigsAuthorizer::default()),
    )
}

#[tokio::test]
async fn two_jwt_users_are_isolated() {
    let server = TestServer::start(server_auth(), None).await;
    let token = |sub: &str| {
        format!(
            "Bearer {}",
            mint(RS256_PRIVATE, json!({ "sub": sub, "exp": now() + 3600 }))
        )
    };
    check_isolation(&server, &token("alice"), &token("bob")).await;
}

#[tokio::test]
async fn two_signing_keys_are_isolated() {
    let server = TestServer::start(server_auth(), None).await;
    check_isolation(
        &server,
        &sigs_header(&secret(1), now()),
        &sigs_header(&secret(2), now()),
    )
    .await;
}

#[tokio::test]
async fn a_jwt_subject_cannot_name_a_signer_unless_its_issuer_verifies_key_holders() {
    // A public key is no secret: every signature header carries one. A JWT
    // from an issuer that lets anyone pick a `sub` must not reach its data.
    let server = TestServer::start(server_auth(), None).await;
    let key = secret(6);
    let signer = sigs_header(&key, now());
    assert_eq!(
        call(
            &server,
            "putObjects",
            Some(&signer),
            &put(&[("k", 0, b"v")])
        )
        .await
        .status,
        200
    );
    let jwt_naming = |sub: String| {
        format!(
            "Bearer {}",
            mint(RS256_PRIVATE, json!({ "sub": sub, "exp": now() + 3600 }))
        )
    };
    for sub in [pubkey_hex(&key), pubkey_hex(&key).to_uppercase()] {
        let answer = call(
            &server,
            "getObject",
            Some(&jwt_naming(sub)),
            &GetObjectRequest {
                store_id: "shared".into(),
                key: "k".into(),
            },
        )
        .await;
        assert_eq!(answer.status, 401);
        assert_eq!(answer.error_code(), ErrorCode::AuthException);
    }
    // Other subjects are unaffected.
    assert_eq!(
        get_value(&server, &jwt_naming("alice".into()), "k").await,
        None
    );

    // An issuer that verifies key holders (an LNURL-auth server) may name them.
    let vouching = Arc::new(
        MultiAuthorizer::new()
            .with_jwt(
                JwtAuthorizer::new(vec![JwtKey::from_public_pem(RS256_PUBLIC)
                    .unwrap()
                    .with_key_holder_subjects()])
                .unwrap(),
            )
            .with_sigs(SigsAuthorizer::default()),
    );
    let server = TestServer::start(vouching, None).await;
    call(
        &server,
        "putObjects",
        Some(&signer),
        &put(&[("k", 0, b"v")]),
    )
    .await;
    assert_eq!(
        get_value(&server, &jwt_naming(pubkey_hex(&key)), "k").await,
        Some((1, Bytes::from_static(b"v")))
    );
}

#[tokio::test]
async fn jwt_alone_keeps_the_reference_identities() {
    // One method: any `sub` is a user, as on the reference server, so data
    // imported from it stays reachable.
    let server = TestServer::start(
        Arc::new(
            MultiAuthorizer::new().with_jwt(JwtAuthorizer::from_public_pems(RS256_PUBLIC).unwrap()),
        ),
        None,
    )
    .await;
    let sub = pubkey_hex(&secret(7));
    let jwt = format!(
        "Bearer {}",
        mint(RS256_PRIVATE, json!({ "sub": sub, "exp": now() + 3600 }))
    );
    assert_eq!(
        call(&server, "putObjects", Some(&jwt), &put(&[("k", 0, b"v")]))
            .await
            .status,
        200
    );
    assert_eq!(
        get_value(&server, &jwt, "k").await,
        Some((1, Bytes::from_static(b"v")))
    );
}

#[tokio::test]
async fn an_lnurl_login_and_a_signature_of_one_key_are_one_user() {
    // The issuer only names a linking key whose holder signed the challenge,
    // and signature auth only one whose holder signed the header: the same
    // holder, so one user, while an external JWT naming that key is refused.
    let issuer = Arc::new(
        vss_auth::LnurlAuthIssuer::new(
            ISSUER_PRIVATE,
            vss_auth::LnurlAuthConfig::default(),
            vss_auth::SpentChallenges::new(Arc::new(vss_core::MemoryStore::new())).unwrap(),
        )
        .unwrap(),
    );
    let auth = MultiAuthorizer::new()
        .with_jwt(
            JwtAuthorizer::from_public_pems(RS256_PUBLIC)
                .unwrap()
                .with_key(issuer.verification_key()),
        )
        .with_sigs(SigsAuthorizer::default());
    let server = TestServer::start(Arc::new(auth), Some(issuer)).await;
    let key = secret(9);
    let url = get(&server.url("/lnurl-auth")).await.text();
    let path_and_query = url.split_once("/lnurl-auth").unwrap().1;
    let login = get(&server.url(&format!(
        "/lnurl-auth{path_and_query}&sig={}&key={}",
        sign_k1(&key, &k1_of(&url)),
        pubkey_hex(&key)
    )))
    .await;
    assert_eq!(login.status, 200, "{}", login.text());
    let token = format!("Bearer {}", login.json()["token"].as_str().unwrap());

    let signer = sigs_header(&key, now());
    assert_eq!(
        call(
            &server,
            "putObjects",
            Some(&signer),
            &put(&[("k", 0, b"v")])
        )
        .await
        .status,
        200
    );
    assert_eq!(
        get_value(&server, &token, "k").await,
        Some((1, Bytes::from_static(b"v")))
    );
    let external = format!(
        "Bearer {}",
        mint(
            RS256_PRIVATE,
            json!({ "sub": pubkey_hex(&key), "exp": now() + 3600 })
        )
    );
    let refused = call(
        &server,
        "getObject",
        Some(&external),
        &GetObjectRequest {
            store_id: "shared".into(),
            key: "k".into(),
        },
    )
    .await;
    assert_eq!(refused.status, 401);
}
