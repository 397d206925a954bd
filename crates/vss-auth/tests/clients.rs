//! The real client, `vss-client-ng` 0.6, over HTTP with each of its auth
//! providers: fixed JWT headers, signatures, and LNURL-auth against the
//! built-in issuer.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on failure.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bitcoin::bip32::Xpriv;
use bitcoin::Network;
use common::*;
use serde_json::json;
use vss_auth::JwtAuthorizer;
use vss_auth::{
    LnurlAuthConfig, LnurlAuthIssuer, MultiAuthorizer, SigsAuthorizer, SpentChallenges,
    DEFAULT_SIGS_MAX_CLOCK_SKEW,
};
use vss_client_ng::client::VssClient;
use vss_client_ng::headers::sigs_auth::SigsAuthProvider;
use vss_client_ng::headers::{FixedHeaders, LnurlAuthToJwtProvider, VssHeaderProvider};
use vss_client_ng::types::{GetObjectRequest, KeyValue, ListKeyVersionsRequest, PutObjectRequest};
use vss_client_ng::util::retry::{
    ExponentialBackoffRetryPolicy, MaxAttemptsRetryPolicy, RetryPolicy,
};

type Policy = MaxAttemptsRetryPolicy<ExponentialBackoffRetryPolicy<vss_client_ng::error::VssError>>;

fn client(url: String, headers: Arc<dyn VssHeaderProvider>) -> VssClient<Policy> {
    let policy = ExponentialBackoffRetryPolicy::new(Duration::from_millis(10)).with_max_attempts(1);
    VssClient::new_with_headers(url, policy, headers)
}

/// Put, get and list through `client`; answers the user the server filed it under
/// is not observable here, so isolation has its own tests.
async fn round_trip(client: &VssClient<Policy>) {
    client
        .put_object(&PutObjectRequest {
            store_id: "wallet".into(),
            global_version: None,
            transaction_items: vec![
                KeyValue {
                    key: "k1".into(),
                    version: 0,
                    value: b"one".to_vec(),
                },
                KeyValue {
                    key: "k2".into(),
                    version: -1,
                    value: b"two".to_vec(),
                },
            ],
            delete_items: vec![],
        })
        .await
        .unwrap();
    let got = client
        .get_object(&GetObjectRequest {
            store_id: "wallet".into(),
            key: "k1".into(),
        })
        .await
        .unwrap();
    let value = got.value.unwrap();
    assert_eq!((value.version, value.value.as_slice()), (1, &b"one"[..]));
    let listed = client
        .list_key_versions(&ListKeyVersionsRequest {
            store_id: "wallet".into(),
            key_prefix: None,
            page_size: None,
            page_token: None,
        })
        .await
        .unwrap();
    let mut keys: Vec<_> = listed
        .key_versions
        .iter()
        .map(|kv| (kv.key.as_str(), kv.version))
        .collect();
    keys.sort();
    assert_eq!(keys, [("k1", 1), ("k2", 1)]);
}

fn jwt() -> JwtAuthorizer {
    JwtAuthorizer::from_public_pems(RS256_PUBLIC).unwrap()
}

#[tokio::test]
async fn fixed_headers_with_a_minted_jwt() {
    let auth = MultiAuthorizer::new()
        .with_jwt(jwt())
        .with_sigs(SigsAuthorizer::default());
    let server = TestServer::start(Arc::new(auth), None).await;
    let token = mint(
        RS256_PRIVATE,
        json!({ "sub": "alice", "exp": now() + 3600 }),
    );
    let headers = HashMap::from([("Authorization".to_string(), format!("Bearer {token}"))]);
    round_trip(&client(
        server.vss_url(),
        Arc::new(FixedHeaders::new(headers)),
    ))
    .await;

    // The data is alice's: a raw request as alice sees it, one as bob does not.
    let bob = mint(RS256_PRIVATE, json!({ "sub": "bob", "exp": now() + 3600 }));
    let get = vss_core::proto::GetObjectRequest {
        store_id: "wallet".into(),
        key: "k1".into(),
    };
    let as_alice = call(&server, "getObject", Some(&format!("Bearer {token}")), &get).await;
    assert_eq!(as_alice.status, 200);
    let as_bob = call(&server, "getObject", Some(&format!("Bearer {bob}")), &get).await;
    assert_eq!(as_bob.status, 404);
}

#[tokio::test]
async fn sigs_auth_provider() {
    let auth = MultiAuthorizer::new()
        .with_jwt(jwt())
        .with_sigs(SigsAuthorizer::new(DEFAULT_SIGS_MAX_CLOCK_SKEW));
    let server = TestServer::start(Arc::new(auth), None).await;
    let key = secret(7);
    let provider = SigsAuthProvider::new(key, HashMap::new());
    // vss_auth::sign makes the client's header exactly (ECDSA here is deterministic).
    let sent = provider.get_headers(&[]).await.unwrap()["Authorization"].clone();
    let time: u64 = sent[66 + 128..].parse().unwrap(); // after the key and the signature
    assert_eq!(vss_auth::sign(&key, time), sent);
    round_trip(&client(server.vss_url(), Arc::new(provider))).await;

    // The user is the public key in lowercase hex.
    let get = vss_core::proto::GetObjectRequest {
        store_id: "wallet".into(),
        key: "k2".into(),
    };
    let mine = call(&server, "getObject", Some(&sigs_header(&key, now())), &get).await;
    assert_eq!(mine.status, 200);
    let other = call(
        &server,
        "getObject",
        Some(&sigs_header(&secret(8), now())),
        &get,
    )
    .await;
    assert_eq!(other.status, 404);
}

#[tokio::test]
async fn lnurl_auth_to_jwt_provider_against_the_built_in_issuer() {
    let spent_store = Arc::new(vss_core::MemoryStore::new());
    let issuer = Arc::new(
        LnurlAuthIssuer::new(
            ISSUER_PRIVATE,
            LnurlAuthConfig::default(),
            SpentChallenges::new(spent_store.clone()).unwrap(),
        )
        .unwrap(),
    );
    // The issuer's key joins a JWT key set that also holds an operator key.
    let auth = MultiAuthorizer::new().with_jwt(jwt().with_key(issuer.verification_key()));
    let server = TestServer::start(Arc::new(auth), Some(Arc::clone(&issuer))).await;
    let parent = Xpriv::new_master(Network::Testnet, &[42u8; 32]).unwrap();
    let provider = Arc::new(LnurlAuthToJwtProvider::new(
        parent,
        server.lnurl_url(),
        HashMap::new(),
    ));
    round_trip(&client(server.vss_url(), provider.clone())).await;

    // The token names the LUD-05 linking key as its subject, and the same
    // wallet on a second provider is the same user.
    let headers = provider.get_headers(&[]).await.unwrap();
    let bearer = headers.get("Authorization").unwrap();
    let token = bearer.strip_prefix("Bearer ").unwrap();
    let claims: serde_json::Value = {
        use base64::Engine as _;
        let payload = token.split('.').nth(1).unwrap();
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap(),
        )
        .unwrap()
    };
    let sub = claims["sub"].as_str().unwrap();
    assert_eq!(sub.len(), 66);
    assert!(sub.starts_with("02") || sub.starts_with("03"));
    let exp = claims["exp"].as_u64().unwrap();
    assert!(
        exp > now() + 23 * 3600 && exp <= now() + 24 * 3600 + 5,
        "{exp}"
    );
    let again = LnurlAuthToJwtProvider::new(parent, server.lnurl_url(), HashMap::new());
    let get = vss_core::proto::GetObjectRequest {
        store_id: "wallet".into(),
        key: "k1".into(),
    };
    let second = again.get_headers(&[]).await.unwrap();
    let answer = call(
        &server,
        "getObject",
        Some(second.get("Authorization").unwrap()),
        &get,
    )
    .await;
    assert_eq!(answer.status, 200);
    // Both logins spent their challenge, in the reserved user's store.
    let spent = vss_core::KvStore::list_key_versions(
        &*spent_store,
        &vss_core::UserToken::reserved(vss_auth::SPENT_CHALLENGES_USER).unwrap(),
        vss_core::proto::ListKeyVersionsRequest {
            store_id: vss_auth::SPENT_CHALLENGES_STORE.into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(spent.key_versions.len(), 2);
}
