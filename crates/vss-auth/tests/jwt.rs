//! The JWT authorizer: the reference server's rules, one test each.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on failure.

mod jwt_support;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::HeaderMap;
use jwt_support::*;
use serde_json::json;
use std::sync::Arc;
use vss_core::VssError;

use vss_auth::{Clock, JwtAuthorizer, JwtConfigError, ManualClock};
use vss_http::Authorizer;

fn authorizer() -> JwtAuthorizer {
    JwtAuthorizer::from_rsa_pem(PUBLIC_PEM).unwrap()
}

async fn authorize(auth: &JwtAuthorizer, header: Option<&str>) -> Result<String, VssError> {
    let mut headers = HeaderMap::new();
    if let Some(value) = header {
        headers.insert("authorization", value.parse().unwrap());
    }
    auth.authorize(&headers)
        .await
        .map(|u| u.as_str().to_string())
}

fn assert_auth_error(result: Result<String, VssError>, what: &str) {
    assert!(
        matches!(result, Err(VssError::Auth(_))),
        "{what}: {result:?}"
    );
}

#[tokio::test]
async fn a_valid_token_is_its_subject() {
    let auth = authorizer();
    let token = valid_token("user-1");
    assert_eq!(
        authorize(&auth, Some(&format!("Bearer {token}")))
            .await
            .unwrap(),
        "user-1"
    );
    // The scheme is case-insensitive (RFC 7235).
    assert_eq!(
        authorize(&auth, Some(&format!("bearer {token}")))
            .await
            .unwrap(),
        "user-1"
    );
    // A PKCS#1 public key works the same.
    let pkcs1 = JwtAuthorizer::from_rsa_pem(PUBLIC_PKCS1_PEM).unwrap();
    assert_eq!(
        authorize(&pkcs1, Some(&format!("Bearer {token}")))
            .await
            .unwrap(),
        "user-1"
    );
}

#[tokio::test]
async fn expiry_is_required_and_checked_with_60_seconds_of_leeway() {
    let auth = authorizer();
    let expired = sign(PRIVATE_PEM, &json!({ "sub": "u", "exp": now() - 120 }));
    assert_auth_error(
        authorize(&auth, Some(&format!("Bearer {expired}"))).await,
        "expired 120 s ago",
    );
    let within_leeway = sign(PRIVATE_PEM, &json!({ "sub": "u", "exp": now() - 20 }));
    assert_eq!(
        authorize(&auth, Some(&format!("Bearer {within_leeway}")))
            .await
            .unwrap(),
        "u"
    );
    let no_exp = sign(PRIVATE_PEM, &json!({ "sub": "u" }));
    assert_auth_error(
        authorize(&auth, Some(&format!("Bearer {no_exp}"))).await,
        "no exp",
    );
}

#[tokio::test]
async fn expiry_is_judged_by_the_injected_clock() {
    // A token that expired long ago by the system's clock, judged at its own time.
    let exp = 1_000_000;
    let token = format!(
        "Bearer {}",
        sign(PRIVATE_PEM, &json!({ "sub": "u", "exp": exp }))
    );
    let clock = Arc::new(ManualClock::new(exp - 10));
    let auth = authorizer().with_clock(clock.clone());
    assert_eq!(authorize(&auth, Some(&token)).await.unwrap(), "u");
    clock.set(exp + 59);
    assert_eq!(
        authorize(&auth, Some(&token)).await.unwrap(),
        "u",
        "within the leeway"
    );
    clock.set(exp + 61);
    assert_auth_error(authorize(&auth, Some(&token)).await, "expired by the clock");
    // And a token valid by the system's clock is expired when the clock says so.
    let fresh = format!("Bearer {}", valid_token("u"));
    let later = authorizer().with_clock(Arc::new(ManualClock::new(now() as u64 + 7200)));
    assert_auth_error(
        authorize(&later, Some(&fresh)).await,
        "an hour past its exp",
    );
}

#[tokio::test]
async fn a_token_before_its_nbf_is_refused() {
    let clock = Arc::new(ManualClock::at_system_time());
    let auth = authorizer().with_clock(clock.clone());
    let t = clock.now_unix() as i64;
    let early = |nbf: i64| {
        format!(
            "Bearer {}",
            sign(
                PRIVATE_PEM,
                &json!({ "sub": "u", "exp": t + 7200, "nbf": nbf })
            )
        )
    };
    let future = early(t + 600);
    assert_auth_error(
        authorize(&auth, Some(&future)).await,
        "nbf 10 minutes ahead",
    );
    // The same 60 s of leeway as for exp.
    assert_eq!(authorize(&auth, Some(&early(t + 30))).await.unwrap(), "u");
    assert_eq!(authorize(&auth, Some(&early(t - 600))).await.unwrap(), "u");
    // Once the clock reaches it, the token is good.
    clock.advance(600);
    assert_eq!(authorize(&auth, Some(&future)).await.unwrap(), "u");
    // An nbf that is not a time is refused.
    let garbage = format!(
        "Bearer {}",
        sign(
            PRIVATE_PEM,
            &json!({ "sub": "u", "exp": t + 7200, "nbf": "soon" })
        )
    );
    assert_auth_error(authorize(&auth, Some(&garbage)).await, "nbf not a number");
}

#[tokio::test]
async fn a_token_signed_by_another_key_is_refused() {
    let auth = authorizer();
    let forged = sign(
        OTHER_PRIVATE_PEM,
        &json!({ "sub": "u", "exp": now() + 3600 }),
    );
    assert_auth_error(
        authorize(&auth, Some(&format!("Bearer {forged}"))).await,
        "wrong key",
    );
    // A valid token with its claims swapped for another user's keeps the old signature.
    let token = valid_token("alice");
    let parts: Vec<&str> = token.split('.').collect();
    let claims = URL_SAFE_NO_PAD.encode(json!({ "sub": "bob", "exp": now() + 3600 }).to_string());
    let tampered = format!("{}.{claims}.{}", parts[0], parts[2]);
    assert_auth_error(
        authorize(&auth, Some(&format!("Bearer {tampered}"))).await,
        "tampered claims",
    );
}

#[tokio::test]
async fn alg_none_and_other_algorithms_are_refused() {
    let auth = authorizer();
    let claims = URL_SAFE_NO_PAD.encode(json!({ "sub": "u", "exp": now() + 3600 }).to_string());
    for alg in ["none", "None", "HS256", "RS512", "ES256"] {
        let header = URL_SAFE_NO_PAD.encode(json!({ "alg": alg, "typ": "JWT" }).to_string());
        for signature in ["", "c2lnbmF0dXJl"] {
            let token = format!("{header}.{claims}.{signature}");
            assert_auth_error(
                authorize(&auth, Some(&format!("Bearer {token}"))).await,
                alg,
            );
        }
    }
    // HS256 keyed with the public key's bytes (the classic algorithm confusion).
    let key = jsonwebtoken::EncodingKey::from_secret(PUBLIC_PEM.as_bytes());
    let confused = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({ "sub": "u", "exp": now() + 3600 }),
        &key,
    )
    .unwrap();
    assert_auth_error(
        authorize(&auth, Some(&format!("Bearer {confused}"))).await,
        "HS256 with the public key",
    );
}

#[tokio::test]
async fn an_audience_is_refused_unless_configured() {
    let with_aud = sign(
        PRIVATE_PEM,
        &json!({ "sub": "u", "exp": now() + 3600, "aud": "vss" }),
    );
    let with_aud_list = sign(
        PRIVATE_PEM,
        &json!({ "sub": "u", "exp": now() + 3600, "aud": ["vss"] }),
    );
    let without_aud = valid_token("u");
    let plain = authorizer();
    assert_auth_error(
        authorize(&plain, Some(&format!("Bearer {with_aud}"))).await,
        "aud without configuration",
    );
    assert_auth_error(
        authorize(&plain, Some(&format!("Bearer {with_aud_list}"))).await,
        "aud list without configuration",
    );

    let configured = authorizer().with_audience("vss").unwrap();
    assert_eq!(
        authorize(&configured, Some(&format!("Bearer {with_aud}")))
            .await
            .unwrap(),
        "u"
    );
    assert_eq!(
        authorize(&configured, Some(&format!("Bearer {with_aud_list}")))
            .await
            .unwrap(),
        "u"
    );
    assert_eq!(
        authorize(&configured, Some(&format!("Bearer {without_aud}")))
            .await
            .unwrap(),
        "u"
    );
    let other = authorizer().with_audience("elsewhere").unwrap();
    assert_auth_error(
        authorize(&other, Some(&format!("Bearer {with_aud}"))).await,
        "another audience",
    );
    assert_eq!(
        authorizer().with_audience("").unwrap_err(),
        JwtConfigError::EmptyAudience
    );
}

#[tokio::test]
async fn malformed_headers_and_subjects_are_refused() {
    let auth = authorizer();
    assert_auth_error(authorize(&auth, None).await, "no header");
    let token = valid_token("u");
    for header in [
        token.clone(),
        format!("Basic {token}"),
        "Bearer".into(),
        "Bearer ".into(),
        "Bearer not.a.jwt".into(),
        "Bearer ....".into(),
    ] {
        assert_auth_error(authorize(&auth, Some(&header)).await, &header);
    }
    let long_sub = sign(
        PRIVATE_PEM,
        &json!({ "sub": "u".repeat(121), "exp": now() + 3600 }),
    );
    assert_auth_error(
        authorize(&auth, Some(&format!("Bearer {long_sub}"))).await,
        "121-byte sub",
    );
    let empty_sub = sign(PRIVATE_PEM, &json!({ "sub": "", "exp": now() + 3600 }));
    assert_auth_error(
        authorize(&auth, Some(&format!("Bearer {empty_sub}"))).await,
        "empty sub",
    );
    let no_sub = sign(PRIVATE_PEM, &json!({ "exp": now() + 3600 }));
    assert_auth_error(
        authorize(&auth, Some(&format!("Bearer {no_sub}"))).await,
        "no sub",
    );
}

#[test]
fn keys_are_checked_when_configured() {
    assert_eq!(
        JwtAuthorizer::from_rsa_pem(RSA1024_PUBLIC_PEM).unwrap_err(),
        JwtConfigError::KeyTooSmall { bits: 1024 }
    );
    for bad in [
        "",
        "not a key",
        PRIVATE_PEM,
        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
    ] {
        assert!(
            matches!(
                JwtAuthorizer::from_rsa_pem(bad),
                Err(JwtConfigError::InvalidKey(_))
            ),
            "{bad:.30}"
        );
    }
    assert!(JwtAuthorizer::from_rsa_pem(PUBLIC_PEM).is_ok());
}
