//! JWT keys beyond the reference: ES256, EdDSA, several keys (rotation, `kid`), issuer.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on failure.

mod jwt_support;

use http::HeaderMap;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use jwt_support::*;
use serde_json::json;
use vss_auth::{JwtAuthorizer, JwtConfigError, JwtKey};
use vss_core::VssError;
use vss_http::Authorizer;

const ES256_PRIVATE: &str = include_str!("fixtures/jwt/es256-private.pem");
const ES256_PUBLIC: &str = include_str!("fixtures/jwt/es256-public.pem");
const ED25519_PRIVATE: &str = include_str!("fixtures/jwt/ed25519-private.pem");
const ED25519_PUBLIC: &str = include_str!("fixtures/jwt/ed25519-public.pem");
const P384_PUBLIC: &str = include_str!("fixtures/jwt/p384-public.pem");

fn mint(alg: Algorithm, kid: Option<&str>, private_pem: &str, claims: serde_json::Value) -> String {
    let key = match alg {
        Algorithm::RS256
        | Algorithm::RS384
        | Algorithm::RS512
        | Algorithm::PS256
        | Algorithm::PS384
        | Algorithm::PS512 => EncodingKey::from_rsa_pem(private_pem.as_bytes()),
        Algorithm::ES256 => EncodingKey::from_ec_pem(private_pem.as_bytes()),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(private_pem.as_bytes()),
        other => panic!("{other:?}"),
    }
    .unwrap();
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_string);
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

fn claims(sub: &str) -> serde_json::Value {
    json!({ "sub": sub, "exp": now() + 3600 })
}

async fn check(auth: &JwtAuthorizer, token: &str) -> Result<String, VssError> {
    let mut headers = HeaderMap::new();
    headers.insert("authorization", format!("Bearer {token}").parse().unwrap());
    auth.authorize(&headers)
        .await
        .map(|u| u.as_str().to_string())
}

#[tokio::test]
async fn es256_and_eddsa_keys_verify_their_own_algorithm_only() {
    let es = JwtAuthorizer::from_public_pems(ES256_PUBLIC).unwrap();
    assert_eq!(es.keys()[0].algorithm(), Algorithm::ES256);
    let ed = JwtAuthorizer::from_public_pems(ED25519_PUBLIC).unwrap();
    assert_eq!(ed.keys()[0].algorithm(), Algorithm::EdDSA);

    let es_token = mint(Algorithm::ES256, None, ES256_PRIVATE, claims("e"));
    let ed_token = mint(Algorithm::EdDSA, None, ED25519_PRIVATE, claims("d"));
    assert_eq!(check(&es, &es_token).await.unwrap(), "e");
    assert_eq!(check(&ed, &ed_token).await.unwrap(), "d");
    assert!(matches!(
        check(&es, &ed_token).await,
        Err(VssError::Auth(_))
    ));
    assert!(matches!(
        check(&ed, &es_token).await,
        Err(VssError::Auth(_))
    ));
    // An RSA-configured server refuses both.
    let rsa = JwtAuthorizer::from_rsa_pem(PUBLIC_PEM).unwrap();
    for token in [&es_token, &ed_token] {
        assert!(matches!(check(&rsa, token).await, Err(VssError::Auth(_))));
    }
    // HS256 keyed with the EC public key's text is refused too.
    let confused = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims("e"),
        &EncodingKey::from_secret(ES256_PUBLIC.as_bytes()),
    )
    .unwrap();
    assert!(matches!(
        check(&es, &confused).await,
        Err(VssError::Auth(_))
    ));
}

#[tokio::test]
async fn several_keys_rotate_and_kid_selects_one() {
    let rsa_pub = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/jwt/rs256-public.pem"
    ))
    .unwrap();
    let text =
        format!("# old key\nkid: old\n{rsa_pub}\nkid: new\n{ES256_PUBLIC}\n{ED25519_PUBLIC}");
    let auth = JwtAuthorizer::from_public_pems(&text).unwrap();
    let kids: Vec<_> = auth.keys().iter().map(|k| k.kid()).collect();
    assert_eq!(kids, [Some("old"), Some("new"), None]);

    // Without kid, every key is tried.
    for token in [
        mint(Algorithm::RS256, None, PRIVATE_PEM, claims("a")),
        mint(Algorithm::ES256, None, ES256_PRIVATE, claims("a")),
        mint(Algorithm::EdDSA, None, ED25519_PRIVATE, claims("a")),
    ] {
        assert_eq!(check(&auth, &token).await.unwrap(), "a");
    }
    // A kid naming a key: that key alone.
    let right = mint(Algorithm::ES256, Some("new"), ES256_PRIVATE, claims("b"));
    assert_eq!(check(&auth, &right).await.unwrap(), "b");
    let wrong = mint(Algorithm::RS256, Some("new"), PRIVATE_PEM, claims("b"));
    assert!(matches!(check(&auth, &wrong).await, Err(VssError::Auth(_))));
    // An unknown kid falls back to trying every key.
    let unknown = mint(
        Algorithm::RS256,
        Some("elsewhere"),
        PRIVATE_PEM,
        claims("c"),
    );
    assert_eq!(check(&auth, &unknown).await.unwrap(), "c");
    // A key outside the set never verifies.
    let other = mint(Algorithm::RS256, None, OTHER_PRIVATE_PEM, claims("c"));
    assert!(matches!(check(&auth, &other).await, Err(VssError::Auth(_))));
}

#[tokio::test]
async fn an_issuer_when_configured_is_required_and_matched() {
    let auth = JwtAuthorizer::from_rsa_pem(PUBLIC_PEM)
        .unwrap()
        .with_issuer("https://issuer.example")
        .unwrap();
    let good = mint(
        Algorithm::RS256,
        None,
        PRIVATE_PEM,
        json!({ "sub": "u", "exp": now() + 60, "iss": "https://issuer.example" }),
    );
    assert_eq!(check(&auth, &good).await.unwrap(), "u");
    let other = mint(
        Algorithm::RS256,
        None,
        PRIVATE_PEM,
        json!({ "sub": "u", "exp": now() + 60, "iss": "https://evil.example" }),
    );
    let missing = mint(Algorithm::RS256, None, PRIVATE_PEM, claims("u"));
    for token in [other, missing] {
        assert!(matches!(check(&auth, &token).await, Err(VssError::Auth(_))));
    }
    assert_eq!(
        JwtAuthorizer::from_rsa_pem(PUBLIC_PEM)
            .unwrap()
            .with_issuer("")
            .unwrap_err(),
        JwtConfigError::EmptyIssuer
    );
}

#[test]
fn unsupported_keys_are_refused_when_configured() {
    // P-384 is not ES256.
    assert!(matches!(
        JwtKey::from_public_pem(P384_PUBLIC),
        Err(JwtConfigError::InvalidKey(_))
    ));
    // from_rsa_pem keeps its meaning: RSA only.
    assert!(JwtAuthorizer::from_rsa_pem(ES256_PUBLIC).is_err());
    assert!(matches!(
        JwtKey::parse_public_pems(&format!("{ES256_PUBLIC}\nstray text\n")),
        Err(JwtConfigError::InvalidKey(_))
    ));
    assert!(JwtKey::parse_public_pems("").is_err());
    assert_eq!(
        JwtAuthorizer::new(vec![]).unwrap_err(),
        JwtConfigError::NoKeys
    );
    assert!(matches!(
        JwtKey::parse_public_pems(RSA1024_PUBLIC_PEM),
        Err(JwtConfigError::KeyTooSmall { bits: 1024 })
    ));
}

#[test]
fn a_private_key_gives_its_public_half() {
    for (pem, alg, sub) in [
        (PRIVATE_PEM, Algorithm::RS256, "r"),
        (ES256_PRIVATE, Algorithm::ES256, "e"),
        (ED25519_PRIVATE, Algorithm::EdDSA, "d"),
    ] {
        let (public, signing) = JwtKey::from_private_pem(pem).unwrap();
        assert_eq!(public.algorithm(), alg);
        let token = jsonwebtoken::encode(&Header::new(alg), &claims(sub), &signing).unwrap();
        let auth = JwtAuthorizer::new(vec![public]).unwrap();
        assert_eq!(auth.verify(&token).unwrap().as_str(), sub);
        let auth_other =
            JwtAuthorizer::new(vec![JwtKey::from_private_pem(OTHER_PRIVATE_PEM).unwrap().0])
                .unwrap();
        assert!(auth_other.verify(&token).is_err());
    }
    assert!(JwtKey::from_private_pem(PUBLIC_PEM).is_err());
}

#[tokio::test]
async fn an_rsa_key_verifies_the_algorithms_its_configuration_names() {
    let rsa_family = [
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
    ];
    // By default RS256 only, as the reference server.
    let default = JwtAuthorizer::from_public_pems(PUBLIC_PEM).unwrap();
    for alg in rsa_family {
        let token = mint(alg, None, PRIVATE_PEM, claims("u"));
        let result = check(&default, &token).await;
        assert_eq!(
            result.is_ok(),
            alg == Algorithm::RS256,
            "{alg:?}: {result:?}"
        );
    }
    // `alg:` lists what the key verifies; nothing else passes.
    let pss = JwtAuthorizer::from_public_pems(&format!("alg: PS256, RS512\n{PUBLIC_PEM}")).unwrap();
    assert_eq!(
        pss.keys()[0].algorithms(),
        [Algorithm::PS256, Algorithm::RS512]
    );
    for alg in rsa_family {
        let token = mint(alg, None, PRIVATE_PEM, claims("u"));
        let result = check(&pss, &token).await;
        let accepted = matches!(alg, Algorithm::PS256 | Algorithm::RS512);
        assert_eq!(result.is_ok(), accepted, "{alg:?}: {result:?}");
        if accepted {
            assert_eq!(result.unwrap(), "u");
        }
    }
    // Every RSA algorithm can be asked for.
    let all = JwtAuthorizer::from_public_pems(&format!(
        "alg: RS256 RS384 RS512 PS256 PS384 PS512\n{PUBLIC_PEM}"
    ))
    .unwrap();
    for alg in rsa_family {
        let token = mint(alg, None, PRIVATE_PEM, claims("u"));
        assert_eq!(check(&all, &token).await.unwrap(), "u", "{alg:?}");
    }
}

#[test]
fn a_key_cannot_be_given_another_key_types_algorithm() {
    for (text, needle) in [
        (format!("alg: ES256\n{PUBLIC_PEM}"), "cannot verify ES256"),
        (format!("alg: HS256\n{PUBLIC_PEM}"), "cannot verify HS256"),
        (format!("alg: PS256\n{ES256_PUBLIC}"), "cannot verify PS256"),
        (
            format!("alg: RS256\n{ED25519_PUBLIC}"),
            "cannot verify RS256",
        ),
        (
            format!("alg: XS999\n{PUBLIC_PEM}"),
            "unknown JWT algorithm `XS999`",
        ),
        (format!("alg:\n{PUBLIC_PEM}"), "at least one"),
    ] {
        let err = JwtKey::parse_public_pems(&text).unwrap_err();
        assert!(err.to_string().contains(needle), "{text}: {err}");
    }
}

#[tokio::test]
async fn a_token_cannot_pick_an_algorithm_of_another_key_type() {
    // An RSA key allowed PS256 and an EC key side by side: an ES256 token
    // signed by neither is refused, a PS256 token by the RSA key accepted.
    let keys = format!("alg: PS256\n{PUBLIC_PEM}\n{ES256_PUBLIC}");
    let auth = JwtAuthorizer::from_public_pems(&keys).unwrap();
    let pss = mint(Algorithm::PS256, None, PRIVATE_PEM, claims("rsa"));
    assert_eq!(check(&auth, &pss).await.unwrap(), "rsa");
    let es = mint(Algorithm::ES256, None, ES256_PRIVATE, claims("ec"));
    assert_eq!(check(&auth, &es).await.unwrap(), "ec");
    // An RS256 token is refused now: the RSA key was configured for PS256 only.
    let rs = mint(Algorithm::RS256, None, PRIVATE_PEM, claims("rsa"));
    assert!(check(&auth, &rs).await.is_err());
}

#[tokio::test]
async fn a_key_vouching_for_key_holders_reserves_public_key_subjects_for_itself() {
    // A 33-byte compressed public key in hex: how LNURL-auth and signature auth name users.
    let linking_key = format!("02{}", "ab".repeat(32));
    let external = mint(Algorithm::RS256, None, PRIVATE_PEM, claims(&linking_key));
    let vouched = mint(Algorithm::ES256, None, ES256_PRIVATE, claims(&linking_key));

    // An external issuer alone keeps the reference's identities: any `sub` is a user.
    let alone = JwtAuthorizer::from_public_pems(PUBLIC_PEM).unwrap();
    assert_eq!(check(&alone, &external).await.unwrap(), linking_key);

    // Beside a key that vouches for key holders (an LNURL-auth issuer's),
    // public-key users exist here: only that key's tokens may name them.
    let beside = JwtAuthorizer::from_public_pems(PUBLIC_PEM)
        .unwrap()
        .with_key(
            JwtKey::from_public_pem(ES256_PUBLIC)
                .unwrap()
                .with_key_holder_subjects(),
        );
    assert!(matches!(
        check(&beside, &external).await,
        Err(VssError::Auth(_))
    ));
    assert_eq!(check(&beside, &vouched).await.unwrap(), linking_key);
    // Other subjects of the external issuer are unaffected.
    let alice = mint(Algorithm::RS256, None, PRIVATE_PEM, claims("alice"));
    assert_eq!(check(&beside, &alice).await.unwrap(), "alice");
}

#[tokio::test]
async fn a_signer_mints_tokens_its_public_key_verifies() {
    let cases = [
        (
            include_str!("fixtures/jwt/rs256-private.pem"),
            include_str!("fixtures/jwt/rs256-public.pem"),
            Algorithm::RS256,
        ),
        (ES256_PRIVATE, ES256_PUBLIC, Algorithm::ES256),
        (ED25519_PRIVATE, ED25519_PUBLIC, Algorithm::EdDSA),
    ];
    for (i, (private, public, algorithm)) in cases.iter().copied().enumerate() {
        let signer = vss_auth::JwtSigner::from_private_pem(private).unwrap();
        assert_eq!(signer.verification_key().algorithm(), algorithm);
        let token = signer
            .token("minted-user", std::time::Duration::from_secs(600))
            .unwrap();
        // The server's configuration (the public PEM) and the signer's own key both verify it.
        for auth in [
            JwtAuthorizer::from_public_pems(public).unwrap(),
            JwtAuthorizer::new(vec![signer.verification_key().clone()]).unwrap(),
        ] {
            assert_eq!(check(&auth, &token).await.unwrap(), "minted-user");
        }
        // A token with no lifetime left is refused once the leeway has passed too.
        let expired = signer
            .token("minted-user", std::time::Duration::ZERO)
            .unwrap();
        let auth =
            JwtAuthorizer::from_public_pems(public)
                .unwrap()
                .with_clock(std::sync::Arc::new(vss_auth::ManualClock::new(
                    now() as u64 + vss_auth::JWT_LEEWAY_SECS + 1,
                )));
        assert!(matches!(
            check(&auth, &expired).await,
            Err(VssError::Auth(_))
        ));
        // Another key's authorizer refuses it.
        let other = JwtAuthorizer::from_public_pems(cases[(i + 1) % cases.len()].1).unwrap();
        assert!(matches!(
            check(&other, &token).await,
            Err(VssError::Auth(_))
        ));
    }
    assert!(matches!(
        vss_auth::JwtSigner::from_private_pem("not a key"),
        Err(JwtConfigError::InvalidKey(_))
    ));
    // Audience, issuer and kid, for an authorizer that requires them.
    let strict = || {
        JwtAuthorizer::new(vec![JwtKey::from_public_pem(ES256_PUBLIC)
            .unwrap()
            .with_kid("k1")])
        .unwrap()
        .with_audience("vss")
        .unwrap()
        .with_issuer("https://issuer.example")
        .unwrap()
    };
    let signer = |kid: &str| {
        vss_auth::JwtSigner::from_private_pem(ES256_PRIVATE)
            .unwrap()
            .with_audience("vss")
            .unwrap()
            .with_issuer("https://issuer.example")
            .unwrap()
            .with_kid(kid)
    };
    let hour = std::time::Duration::from_secs(3600);
    let plain = vss_auth::JwtSigner::from_private_pem(ES256_PRIVATE).unwrap();
    assert!(check(&strict(), &plain.token("u", hour).unwrap())
        .await
        .is_err());
    let token = signer("k1").token("u", hour).unwrap();
    assert_eq!(check(&strict(), &token).await.unwrap(), "u");
    assert_eq!(
        jsonwebtoken::decode_header(&token).unwrap().kid.as_deref(),
        Some("k1")
    );
    assert_eq!(
        plain.with_audience("").unwrap_err(),
        JwtConfigError::EmptyAudience
    );
    // The private key is never printed.
    let signer = vss_auth::JwtSigner::from_private_pem(ED25519_PRIVATE).unwrap();
    assert!(!format!("{signer:?}").contains("PRIVATE"));
}
