//! Authentication in the server: the `auth` setting and its methods, and
//! real clients (`vss-client-ng` 0.6) with signature auth and LNURL-auth
//! against the server's own issuer.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on failure.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bitcoin::bip32::Xpriv;
use bitcoin::Network;
use common::*;
use vss_client_ng::client::VssClient;
use vss_client_ng::error::VssError as ClientError;
use vss_client_ng::headers::sigs_auth::SigsAuthProvider;
use vss_client_ng::headers::{FixedHeaders, LnurlAuthToJwtProvider, VssHeaderProvider};
use vss_client_ng::types::{GetObjectRequest, KeyValue, ListKeyVersionsRequest, PutObjectRequest};
use vss_client_ng::util::retry::{
    ExponentialBackoffRetryPolicy, MaxAttemptsRetryPolicy, RetryPolicy,
};
use vss_server::{AuthConfig, AuthMethods, BackendConfig, Config, ConfigError};

const ISSUER_KEY: &str =
    include_str!("../../../crates/vss-auth/tests/fixtures/issuer-es256-private.pem");
const RSA_PUBLIC: &str = include_str!("../../../crates/vss-auth/tests/fixtures/rs256-public.pem");

fn load(args: &[&str], env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let mut argv = vec!["vss-server"];
    argv.extend_from_slice(args);
    let env: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::from_sources(argv, &|name| env.get(name).cloned())
}

fn methods(config: &Config) -> &AuthMethods {
    match &config.auth {
        AuthConfig::Methods(methods) => methods,
        other => panic!("expected methods, got {other:?}"),
    }
}

#[test]
fn the_auth_setting_picks_the_methods() {
    // Unset: none without a key, JWT (the reference shape) with one.
    assert_eq!(load(&[], &[]).unwrap().auth, AuthConfig::Unauthenticated);
    assert!(matches!(
        load(&[], &[("VSS_JWT_RSA_PEM", RSA_PUBLIC)]).unwrap().auth,
        AuthConfig::Methods(AuthMethods {
            jwt: Some(_),
            sigs: None,
            lnurl: None
        })
    ));
    assert_eq!(
        load(&["--auth", "none"], &[]).unwrap().auth,
        AuthConfig::Unauthenticated
    );

    let config = load(
        &[
            "--auth",
            "sigs,lnurl",
            "--sigs-max-clock-skew-secs",
            "600",
            "--lnurl-auth-path",
            "/login",
        ],
        &[("VSS_LNURL_AUTH_PRIVATE_KEY_PEM", ISSUER_KEY)],
    )
    .unwrap();
    let m = methods(&config);
    assert_eq!(
        m.sigs.as_ref().unwrap().max_clock_skew,
        Duration::from_secs(600)
    );
    let lnurl = m.lnurl.as_ref().unwrap();
    assert_eq!(lnurl.path, "/login");
    assert_eq!(lnurl.token_ttl, Duration::from_secs(86_400));
    assert_eq!(lnurl.challenge_ttl, Duration::from_secs(300));
    assert_eq!(m.jwt.as_ref().unwrap().public_keys_pem, None);

    let config = load(
        &["--auth", "jwt,sigs", "--jwt-issuer", "me"],
        &[("VSS_JWT_RSA_PEM", RSA_PUBLIC)],
    )
    .unwrap();
    let m = methods(&config);
    assert_eq!(m.jwt.as_ref().unwrap().issuer.as_deref(), Some("me"));
    assert_eq!(
        m.sigs.as_ref().unwrap().max_clock_skew,
        Duration::from_secs(86_400)
    );
    assert!(m.lnurl.is_none());
}

#[test]
fn contradicting_auth_settings_stop_startup() {
    let err = |args: &[&str], env: &[(&str, &str)]| load(args, env).unwrap_err().to_string();
    let e = err(&["--auth", "jwt,magic"], &[]);
    assert!(e.contains("VSS_AUTH") && e.contains("magic"), "{e}");
    let e = err(&["--auth", "none,sigs"], &[]);
    assert!(e.contains("VSS_AUTH"), "{e}");
    let e = err(&["--auth", "none"], &[("VSS_JWT_RSA_PEM", RSA_PUBLIC)]);
    assert!(e.contains("VSS_JWT_RSA_PEM"), "{e}");
    let e = err(&["--auth", "jwt"], &[]);
    assert!(e.contains("no JWT key"), "{e}");
    let e = err(&["--auth", "lnurl"], &[]);
    assert!(e.contains("VSS_LNURL_AUTH_PRIVATE_KEY_PEM"), "{e}");
    let e = err(
        &["--auth", "sigs"],
        &[("VSS_LNURL_AUTH_PRIVATE_KEY_PEM", ISSUER_KEY)],
    );
    assert!(e.contains("does not include lnurl"), "{e}");
    // A bad key is named, and never echoed.
    let e = err(
        &["--auth", "lnurl"],
        &[("VSS_LNURL_AUTH_PRIVATE_KEY_PEM", "secret-garbage")],
    );
    assert!(
        e.contains("VSS_LNURL_AUTH_PRIVATE_KEY_PEM") && !e.contains("secret-garbage"),
        "{e}"
    );
    let e = err(
        &["--auth", "lnurl,sigs", "--lnurl-auth-public-url", "ftp://x"],
        &[("VSS_LNURL_AUTH_PRIVATE_KEY_PEM", ISSUER_KEY)],
    );
    assert!(e.contains("VSS_LNURL_AUTH_PUBLIC_URL"), "{e}");
}

type Policy = MaxAttemptsRetryPolicy<ExponentialBackoffRetryPolicy<ClientError>>;

fn client(url: &str, headers: Arc<dyn VssHeaderProvider>) -> VssClient<Policy> {
    let policy = ExponentialBackoffRetryPolicy::new(Duration::from_millis(10)).with_max_attempts(2);
    VssClient::new_with_headers(url.to_string(), policy, headers)
}

async fn round_trip(client: &VssClient<Policy>, value: &[u8]) {
    client
        .put_object(&PutObjectRequest {
            store_id: "s".into(),
            global_version: None,
            transaction_items: vec![KeyValue {
                key: "k".into(),
                version: -1,
                value: value.to_vec(),
            }],
            delete_items: vec![],
        })
        .await
        .unwrap();
    let got = client
        .get_object(&GetObjectRequest {
            store_id: "s".into(),
            key: "k".into(),
        })
        .await
        .unwrap();
    assert_eq!(got.value.unwrap().value, value);
    let listed = client
        .list_key_versions(&ListKeyVersionsRequest {
            store_id: "s".into(),
            key_prefix: None,
            page_size: None,
            page_token: None,
        })
        .await
        .unwrap();
    assert_eq!(listed.key_versions.len(), 1);
}

#[tokio::test]
async fn one_server_serves_sigs_and_lnurl_clients_apart() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("issuer.pem");
    std::fs::write(&key_file, ISSUER_KEY).unwrap();
    let mut cfg = load(
        &[
            "--auth",
            "sigs,lnurl",
            "--lnurl-auth-private-key-file",
            key_file.to_str().unwrap(),
        ],
        &[],
    )
    .unwrap();
    cfg.bind_address = "127.0.0.1:0".parse().unwrap();
    cfg.backend = BackendConfig::Memory;
    let server = start(cfg).await;
    let port = server.addr.port();
    let vss_url = format!("http://localhost:{port}/vss");
    let lnurl_url = format!("http://localhost:{port}/lnurl-auth");

    let signer = client(
        &vss_url,
        Arc::new(SigsAuthProvider::new(
            bitcoin::secp256k1::SecretKey::from_slice(&[5; 32]).unwrap(),
            HashMap::new(),
        )),
    );
    let parent = Xpriv::new_master(Network::Testnet, &[6; 32]).unwrap();
    let lnurl = client(
        &vss_url,
        Arc::new(LnurlAuthToJwtProvider::new(
            parent,
            lnurl_url,
            HashMap::new(),
        )),
    );
    round_trip(&signer, b"signer").await;
    round_trip(&lnurl, b"lnurl").await;
    // Same store_id and key, two users: each still reads its own value.
    for (client, value) in [(&signer, &b"signer"[..]), (&lnurl, &b"lnurl"[..])] {
        let got = client
            .get_object(&GetObjectRequest {
                store_id: "s".into(),
                key: "k".into(),
            })
            .await
            .unwrap();
        assert_eq!(got.value.unwrap().value, value);
    }
    // No credential: AUTH.
    let anonymous = client(&vss_url, Arc::new(FixedHeaders::new(HashMap::new())));
    let err = anonymous
        .get_object(&GetObjectRequest {
            store_id: "s".into(),
            key: "k".into(),
        })
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::AuthError(_)), "{err:?}");
    server.stop().await;
}

/// A bearer token for `sub` signed by the RSA test key.
fn rsa_token(sub: &str) -> String {
    const RSA_PRIVATE: &str =
        include_str!("../../../crates/vss-auth/tests/fixtures/rs256-private.pem");
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap();
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &serde_json::json!({ "sub": sub, "exp": exp }),
        &key,
    )
    .unwrap()
}

#[tokio::test]
async fn a_jwt_cannot_name_a_signer_unless_the_issuer_verifies_key_holders() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("jwt.pem");
    std::fs::write(&key_file, RSA_PUBLIC).unwrap();
    let signer_key = bitcoin::secp256k1::SecretKey::from_slice(&[8; 32]).unwrap();
    let public = hex::encode(
        signer_key
            .public_key(&bitcoin::secp256k1::Secp256k1::new())
            .serialize(),
    );
    for (vouching, extra) in [
        (false, vec![]),
        (true, vec!["--jwt-key-holder-subjects", "true"]),
    ] {
        let mut args = vec![
            "--auth",
            "jwt,sigs",
            "--jwt-rsa-pem-file",
            key_file.to_str().unwrap(),
        ];
        args.extend(extra);
        let mut cfg = load(&args, &[]).unwrap();
        cfg.bind_address = "127.0.0.1:0".parse().unwrap();
        cfg.backend = BackendConfig::Memory;
        let server = start(cfg).await;
        let vss_url = format!("http://127.0.0.1:{}/vss", server.addr.port());
        let signer = client(
            &vss_url,
            Arc::new(SigsAuthProvider::new(signer_key, HashMap::new())),
        );
        round_trip(&signer, b"signer").await;
        let naming = client(
            &vss_url,
            Arc::new(FixedHeaders::new(HashMap::from([(
                "Authorization".to_string(),
                format!("Bearer {}", rsa_token(&public)),
            )]))),
        );
        let got = naming
            .get_object(&GetObjectRequest {
                store_id: "s".into(),
                key: "k".into(),
            })
            .await;
        if vouching {
            assert_eq!(got.unwrap().value.unwrap().value, b"signer");
        } else {
            assert!(matches!(got, Err(ClientError::AuthError(_))), "{got:?}");
            // Any other subject is served as before.
            let alice = client(
                &vss_url,
                Arc::new(FixedHeaders::new(HashMap::from([(
                    "Authorization".to_string(),
                    format!("Bearer {}", rsa_token("alice")),
                )]))),
            );
            round_trip(&alice, b"alice").await;
        }
        server.stop().await;
    }
}

#[tokio::test]
async fn lnurl_auth_off_loopback_needs_its_public_url() {
    let load_lnurl = |extra: &[&str]| {
        let mut args = vec!["--auth", "lnurl"];
        args.extend_from_slice(extra);
        let mut cfg = load(&args, &[("VSS_LNURL_AUTH_PRIVATE_KEY_PEM", ISSUER_KEY)]).unwrap();
        cfg.backend = BackendConfig::Memory;
        cfg
    };
    // Refused before anything is bound: the callback would be http:// + Host.
    let mut cfg = load_lnurl(&[]);
    cfg.bind_address = "0.0.0.0:0".parse().unwrap();
    let err = vss_server::Server::start(cfg).await.err().unwrap();
    assert!(
        matches!(err, vss_server::ServerError::LnurlWithoutPublicUrl(_)),
        "{err}"
    );
    let message = err.to_string();
    assert!(
        message.contains("lnurl_auth_config.public_url")
            && message.contains("VSS_LNURL_AUTH_PUBLIC_URL")
            && message.contains("cleartext"),
        "{message}"
    );
    // On loopback the Host-derived URL stays: a local wallet and server.
    let mut cfg = load_lnurl(&[]);
    cfg.bind_address = "127.0.0.1:0".parse().unwrap();
    let server = start(cfg).await;
    server.stop().await;
}
