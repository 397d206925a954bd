//! Every bad credential gets 401 with AUTH and changes nothing; every bad
//! LNURL-auth login gets 400 with a reason and no token.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on failure.

mod common;

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use common::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use vss_auth::JwtAuthorizer;
use vss_auth::{
    Clock, LnurlAuthConfig, LnurlAuthIssuer, ManualClock, MultiAuthorizer, SigsAuthorizer,
    SpentChallenges,
};
use vss_core::proto::{
    ErrorCode, GetObjectRequest, KeyValue, ListKeyVersionsRequest, PutObjectRequest,
};
use vss_core::MemoryStore;

fn overwrite() -> PutObjectRequest {
    PutObjectRequest {
        store_id: "s".into(),
        global_version: None,
        transaction_items: vec![KeyValue {
            key: "k".into(),
            version: -1,
            value: Bytes::from_static(b"evil"),
        }],
        delete_items: vec![],
    }
}

/// A server with JWT and sigs (±600 s), where alice (JWT) and a signing key each stored `k`.
/// The sigs clock stands still at the returned time, so the window's edges are exact: a
/// second ticking between signing and checking cannot move a header across them.
async fn seeded() -> (TestServer, String, String, u64) {
    let clock = Arc::new(ManualClock::at_system_time());
    let t = clock.now_unix();
    let auth = MultiAuthorizer::new()
        .with_jwt(JwtAuthorizer::from_public_pems(RS256_PUBLIC).unwrap())
        .with_sigs(SigsAuthorizer::new(std::time::Duration::from_secs(600)).with_clock(clock));
    let server = TestServer::start(Arc::new(auth), None).await;
    let alice = format!(
        "Bearer {}",
        mint(
            RS256_PRIVATE,
            json!({ "sub": "alice", "exp": now() + 3600 })
        )
    );
    let signer = sigs_header(&secret(3), t);
    for auth in [&alice, &signer] {
        let mut put = overwrite();
        put.transaction_items[0].value = Bytes::from_static(b"good");
        assert_eq!(
            call(&server, "putObjects", Some(auth), &put).await.status,
            200
        );
    }
    (server, alice, signer, t)
}

async fn assert_untouched(server: &TestServer, auth: &str) {
    let get = GetObjectRequest {
        store_id: "s".into(),
        key: "k".into(),
    };
    let answer = call(server, "getObject", Some(auth), &get).await;
    assert_eq!(answer.status, 200);
    let value = <vss_core::proto::GetObjectResponse as prost::Message>::decode(answer.body)
        .unwrap()
        .value
        .unwrap();
    assert_eq!((value.version, &value.value[..]), (1, &b"good"[..]));
}

async fn assert_refused(server: &TestServer, auth: Option<&str>, what: &str) {
    for op in ["putObjects", "getObject", "listKeyVersions", "deleteObject"] {
        let answer = match op {
            "putObjects" => call(server, op, auth, &overwrite()).await,
            "getObject" => {
                call(
                    server,
                    op,
                    auth,
                    &GetObjectRequest {
                        store_id: "s".into(),
                        key: "k".into(),
                    },
                )
                .await
            }
            "listKeyVersions" => {
                call(
                    server,
                    op,
                    auth,
                    &ListKeyVersionsRequest {
                        store_id: "s".into(),
                        ..Default::default()
                    },
                )
                .await
            }
            _ => {
                call(
                    server,
                    op,
                    auth,
                    &vss_core::proto::DeleteObjectRequest {
                        store_id: "s".into(),
                        key_value: Some(KeyValue {
                            key: "k".into(),
                            version: -1,
                            value: Bytes::new(),
                        }),
                    },
                )
                .await
            }
        };
        assert_eq!(answer.status, 401, "{what}: {op}");
        assert_eq!(
            answer.error_code(),
            ErrorCode::AuthException,
            "{what}: {op}"
        );
    }
}

#[tokio::test]
async fn bad_jwts_are_refused_and_change_nothing() {
    let (server, alice, signer, _) = seeded().await;
    let claims = json!({ "sub": "alice", "exp": now() + 3600 });
    let good = mint(RS256_PRIVATE, claims.clone());
    let parts: Vec<&str> = good.split('.').collect();

    let expired = mint(
        RS256_PRIVATE,
        json!({ "sub": "alice", "exp": now() - 3600 }),
    );
    let other_key = mint(OTHER_RS256_PRIVATE, claims.clone());
    let none_header = URL_SAFE_NO_PAD.encode(json!({ "alg": "none", "typ": "JWT" }).to_string());
    let alg_none = format!("{none_header}.{}.", parts[1]);
    let hs256 = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(RS256_PUBLIC.as_bytes()),
    )
    .unwrap();
    let tampered_claims =
        URL_SAFE_NO_PAD.encode(json!({ "sub": "bob", "exp": now() + 3600 }).to_string());
    let tampered = format!("{}.{tampered_claims}.{}", parts[0], parts[2]);

    for (what, token) in [
        ("expired", expired),
        ("another key", other_key),
        ("alg none", alg_none),
        ("HS256 keyed with the RSA public key", hs256),
        ("tampered payload", tampered),
    ] {
        assert_refused(&server, Some(&format!("Bearer {token}")), what).await;
    }
    assert_untouched(&server, &alice).await;
    assert_untouched(&server, &signer).await;
}

#[tokio::test]
async fn missing_malformed_and_bad_signature_headers_are_refused() {
    let (server, alice, signer, t) = seeded().await;
    let key = secret(3);
    let in_window = sigs_header(&key, t);
    let mut bad_sig = in_window.clone();
    // Flip one hex digit of the signature.
    let flip = if &bad_sig[100..101] == "0" { "1" } else { "0" };
    bad_sig.replace_range(100..101, flip);
    // Another key's signature under this key.
    let foreign = sigs_header(&secret(4), t);
    let stolen = format!("{}{}", &in_window[..66], &foreign[66..]);

    assert_refused(&server, None, "no header").await;
    for (what, header) in [
        ("not a known form", "Basic dXNlcjpwYXNz".to_string()),
        ("bearer without token", "Bearer".to_string()),
        ("garbage bearer", "Bearer not.a.jwt".to_string()),
        ("short signature header", in_window[..150].to_string()),
        (
            "signature header without time",
            in_window[..194].to_string(),
        ),
        ("non-digit time", format!("{}12x4", &in_window[..194])),
        ("too early", sigs_header(&key, t - 601)),
        ("too late", sigs_header(&key, t + 601)),
        ("bad signature", bad_sig),
        ("signature by another key", stolen),
        (
            "time changed after signing",
            format!("{}{}", &in_window[..194], t + 1),
        ),
    ] {
        assert_refused(&server, Some(&header), what).await;
    }
    assert_untouched(&server, &alice).await;
    assert_untouched(&server, &signer).await;
    // The window's edges are inside it: the same key signing 600 s either way reads its data.
    for edge in [t - 600, t + 600] {
        assert_untouched(&server, &sigs_header(&key, edge)).await;
    }
}

#[tokio::test]
async fn a_method_not_enabled_is_refused() {
    let sigs_only = TestServer::start(
        Arc::new(MultiAuthorizer::new().with_sigs(SigsAuthorizer::default())),
        None,
    )
    .await;
    let token = mint(
        RS256_PRIVATE,
        json!({ "sub": "alice", "exp": now() + 3600 }),
    );
    assert_refused(
        &sigs_only,
        Some(&format!("Bearer {token}")),
        "jwt on a sigs-only server",
    )
    .await;
    let jwt_only = TestServer::start(
        Arc::new(
            MultiAuthorizer::new().with_jwt(JwtAuthorizer::from_public_pems(RS256_PUBLIC).unwrap()),
        ),
        None,
    )
    .await;
    assert_refused(
        &jwt_only,
        Some(&sigs_header(&secret(1), now())),
        "sigs on a jwt-only server",
    )
    .await;
}

struct Lnurl {
    server: TestServer,
    issuer: Arc<LnurlAuthIssuer>,
    clock: Arc<ManualClock>,
}

async fn lnurl(config: LnurlAuthConfig) -> Lnurl {
    let clock = Arc::new(ManualClock::at_system_time());
    instance(ISSUER_PRIVATE, config, Arc::new(MemoryStore::new()), clock).await
}

/// One instance of a deployment: an issuer with `key` whose spent challenges
/// are in `store`, served with its own JWT authorizer, on its own port.
async fn instance(
    key: &str,
    config: LnurlAuthConfig,
    store: Arc<MemoryStore>,
    clock: Arc<ManualClock>,
) -> Lnurl {
    let issuer = Arc::new(
        LnurlAuthIssuer::new(key, config, SpentChallenges::new(store).unwrap())
            .unwrap()
            .with_clock(clock.clone()),
    );
    let auth = MultiAuthorizer::new()
        .with_jwt(JwtAuthorizer::new(vec![issuer.verification_key()]).unwrap());
    let server = TestServer::start(Arc::new(auth), Some(Arc::clone(&issuer))).await;
    Lnurl {
        server,
        issuer,
        clock,
    }
}

/// Fetches a challenge: the callback URL as plain text.
async fn challenge(l: &Lnurl) -> String {
    let answer = get(&l.server.url("/lnurl-auth")).await;
    assert_eq!(answer.status, 200);
    let url = answer.text();
    assert!(
        url.starts_with(&format!(
            "http://127.0.0.1:{}/lnurl-auth?tag=login&k1=",
            l.server.port
        )),
        "{url}"
    );
    assert_eq!(k1_of(&url).len(), 64);
    url
}

async fn answer(l: &Lnurl, url: &str, sig: &str, key: &str) -> Answer {
    let path_and_query = url.split_once("/lnurl-auth").unwrap().1;
    get(&l
        .server
        .url(&format!("/lnurl-auth{path_and_query}&sig={sig}&key={key}")))
    .await
}

fn assert_login_refused(answer: &Answer, what: &str) {
    assert_eq!(answer.status, 400, "{what}");
    let json = answer.json();
    assert_eq!(json["status"], "ERROR", "{what}");
    assert!(
        json["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "{what}"
    );
    assert!(json.get("token").is_none(), "{what}");
}

#[tokio::test]
async fn a_k1_logs_in_once() {
    let l = lnurl(LnurlAuthConfig::default()).await;
    let key = secret(9);
    let url = challenge(&l).await;
    let sig = sign_k1(&key, &k1_of(&url));
    let first = answer(&l, &url, &sig, &pubkey_hex(&key)).await;
    assert_eq!(first.status, 200);
    let json = first.json();
    assert_eq!(json["status"], "OK");
    let token = json["token"].as_str().unwrap();
    // The token works at the VSS endpoints and is the key's user.
    let list = ListKeyVersionsRequest {
        store_id: "s".into(),
        ..Default::default()
    };
    assert_eq!(
        call(
            &l.server,
            "listKeyVersions",
            Some(&format!("Bearer {token}")),
            &list
        )
        .await
        .status,
        200
    );

    let reused = answer(&l, &url, &sig, &pubkey_hex(&key)).await;
    assert_login_refused(&reused, "reused k1");
    let never_issued = format!("http://x/lnurl-auth?tag=login&k1={}", "ab".repeat(32));
    let sig = sign_k1(&key, &"ab".repeat(32));
    assert_login_refused(
        &answer(&l, &never_issued, &sig, &pubkey_hex(&key)).await,
        "unknown k1",
    );
}

#[tokio::test]
async fn an_expired_k1_is_refused() {
    let l = lnurl(LnurlAuthConfig::default()).await;
    let key = secret(9);
    let url = challenge(&l).await;
    let sig = sign_k1(&key, &k1_of(&url));
    l.clock
        .advance(vss_auth::DEFAULT_CHALLENGE_TTL.as_secs() + 1);
    let expired = answer(&l, &url, &sig, &pubkey_hex(&key)).await;
    assert_login_refused(&expired, "expired k1");
    assert!(expired.json()["reason"]
        .as_str()
        .unwrap()
        .contains("expired"));
    // Just inside the lifetime still works.
    let url = challenge(&l).await;
    let sig = sign_k1(&key, &k1_of(&url));
    l.clock.advance(vss_auth::DEFAULT_CHALLENGE_TTL.as_secs());
    assert_eq!(answer(&l, &url, &sig, &pubkey_hex(&key)).await.status, 200);
}

#[tokio::test]
async fn a_k1_signed_by_another_key_or_malformed_is_refused() {
    let l = lnurl(LnurlAuthConfig::default()).await;
    let url = challenge(&l).await;
    let sig = sign_k1(&secret(1), &k1_of(&url));
    assert_login_refused(
        &answer(&l, &url, &sig, &pubkey_hex(&secret(2))).await,
        "another key",
    );
    // Only a correctly signed answer spends a k1: the right key still logs in once.
    assert_eq!(
        answer(&l, &url, &sig, &pubkey_hex(&secret(1))).await.status,
        200
    );
    assert_login_refused(
        &answer(&l, &url, &sig, &pubkey_hex(&secret(1))).await,
        "spent by the login",
    );

    let url = challenge(&l).await;
    let good_sig = sign_k1(&secret(1), &k1_of(&url));
    let key = pubkey_hex(&secret(1));
    for (what, sig, key) in [
        ("sig not hex", "zz".to_string(), key.clone()),
        ("sig not DER", "00".repeat(70), key.clone()),
        (
            "key not a point",
            good_sig.clone(),
            format!("02{}", "00".repeat(32)),
        ),
        ("key uncompressed length", good_sig.clone(), "04".repeat(65)),
    ] {
        assert_login_refused(&answer(&l, &url, &sig, &key).await, what);
    }
    // Malformed parameters do not spend the k1.
    assert_eq!(answer(&l, &url, &good_sig, &key).await.status, 200);
    assert_login_refused(
        &get(&l.server.url("/lnurl-auth?k1=00")).await,
        "k1 without sig and key",
    );
}

#[tokio::test]
async fn pending_challenges_cost_nothing_and_cannot_be_evicted() {
    let l = lnurl(LnurlAuthConfig::default()).await;
    let first = l.issuer.new_challenge().unwrap();
    // Far more challenges than any bounded table would keep.
    let mut seen = std::collections::HashSet::new();
    for _ in 0..100_000 {
        assert!(seen.insert(l.issuer.new_challenge().unwrap()));
    }
    let key = secret(5);
    let url = l.issuer.callback_url(Some("127.0.0.1"), &first).unwrap();
    let sig = sign_k1(&key, &k1_of(&url));
    assert_eq!(answer(&l, &url, &sig, &pubkey_hex(&key)).await.status, 200);
}

/// Three instances sharing the issuer key and the store of spent challenges.
async fn deployment(store: Arc<MemoryStore>, clock: Arc<ManualClock>) -> [Lnurl; 3] {
    let config = LnurlAuthConfig::default;
    [
        instance(ISSUER_PRIVATE, config(), store.clone(), clock.clone()).await,
        instance(ISSUER_PRIVATE, config(), store.clone(), clock.clone()).await,
        instance(ISSUER_PRIVATE, config(), store, clock).await,
    ]
}

#[tokio::test]
async fn a_challenge_from_one_instance_logs_in_at_another_once() {
    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock::at_system_time());
    let [a, b, c] = deployment(store.clone(), clock.clone()).await;
    let key = secret(7);
    let url = challenge(&a).await;
    let sig = sign_k1(&key, &k1_of(&url));
    let login = answer(&b, &url, &sig, &pubkey_hex(&key)).await;
    assert_eq!(login.status, 200, "{}", login.text());
    // The token B issued is good at C (same key), and the k1 is spent at C and at A.
    let token = login.json()["token"].as_str().unwrap().to_string();
    let list = ListKeyVersionsRequest {
        store_id: "s".into(),
        ..Default::default()
    };
    let listed = call(
        &c.server,
        "listKeyVersions",
        Some(&format!("Bearer {token}")),
        &list,
    )
    .await;
    assert_eq!(listed.status, 200);
    assert_login_refused(
        &answer(&c, &url, &sig, &pubkey_hex(&key)).await,
        "replay at C",
    );
    assert_login_refused(
        &answer(&a, &url, &sig, &pubkey_hex(&key)).await,
        "replay at A",
    );

    // An instance with another key knows none of these challenges.
    let other = instance(
        OTHER_RS256_PRIVATE,
        LnurlAuthConfig::default(),
        store,
        clock,
    )
    .await;
    let url = challenge(&a).await;
    let sig = sign_k1(&key, &k1_of(&url));
    assert_login_refused(
        &answer(&other, &url, &sig, &pubkey_hex(&key)).await,
        "another issuer key",
    );
    // A k1 with one bit changed is unknown, even correctly signed.
    let k1 = k1_of(&url);
    let mut bytes = hex::decode(&k1).unwrap();
    bytes[3] ^= 1;
    let forged = url.replace(&k1, &hex::encode(&bytes));
    let sig = sign_k1(&key, &hex::encode(&bytes));
    assert_login_refused(
        &answer(&b, &forged, &sig, &pubkey_hex(&key)).await,
        "forged expiry",
    );
}

#[tokio::test]
async fn concurrent_answers_with_one_challenge_at_three_instances_log_in_once() {
    let [a, b, c] = deployment(
        Arc::new(MemoryStore::new()),
        Arc::new(ManualClock::at_system_time()),
    )
    .await;
    let key = secret(8);
    for _ in 0..20 {
        let url = challenge(&a).await;
        let sig = sign_k1(&key, &k1_of(&url));
        let key = pubkey_hex(&key);
        let (x, y, z) = tokio::join!(
            answer(&a, &url, &sig, &key),
            answer(&b, &url, &sig, &key),
            answer(&c, &url, &sig, &key)
        );
        let statuses = [x.status, y.status, z.status];
        assert_eq!(
            statuses.iter().filter(|s| **s == 200).count(),
            1,
            "{statuses:?}"
        );
        assert_eq!(
            statuses.iter().filter(|s| **s == 400).count(),
            2,
            "{statuses:?}"
        );
    }
}

#[tokio::test]
async fn spent_challenges_are_swept_only_when_no_instance_can_accept_them() {
    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock::at_system_time());
    let [a, b, _c] = deployment(store.clone(), clock.clone()).await;
    let key = secret(9);
    let url = challenge(&a).await;
    let sig = sign_k1(&key, &k1_of(&url));
    assert_eq!(answer(&a, &url, &sig, &pubkey_hex(&key)).await.status, 200);
    let ttl = vss_auth::DEFAULT_CHALLENGE_TTL.as_secs();
    let allowance = vss_auth::CLOCK_SKEW_ALLOWANCE.as_secs();
    // Expired, but within the allowance for clocks that disagree: kept.
    clock.advance(ttl + allowance);
    assert_eq!(b.issuer.sweep().await.unwrap(), 0);
    // An instance whose clock lags by the allowance still refuses the replay.
    clock.set(clock.now_unix() - allowance);
    assert_login_refused(
        &answer(&b, &url, &sig, &pubkey_hex(&key)).await,
        "replay at a lagging clock",
    );
    clock.set(clock.now_unix() + allowance + 1);
    assert_eq!(b.issuer.sweep().await.unwrap(), 1);
    assert_eq!(b.issuer.sweep().await.unwrap(), 0);
    // After the sweep the replay is refused as expired.
    let replay = answer(&a, &url, &sig, &pubkey_hex(&key)).await;
    assert_login_refused(&replay, "replay after the sweep");
    assert!(replay.json()["reason"]
        .as_str()
        .unwrap()
        .contains("expired"));
}

#[tokio::test]
async fn answers_are_writes_and_challenge_requests_are_reads() {
    use vss_http::Endpoint;
    let l = lnurl(LnurlAuthConfig::default()).await;
    let parts = |uri: &str| http::Request::get(uri).body(()).unwrap().into_parts().0;
    assert!(!l.issuer.writes(&parts("/lnurl-auth")));
    assert!(!l.issuer.writes(&parts("/lnurl-auth?tag=login")));
    assert!(l
        .issuer
        .writes(&parts("/lnurl-auth?tag=login&k1=00&sig=00&key=00")));
}
