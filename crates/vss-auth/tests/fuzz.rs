//! Property tests ("fuzzing") of every credential parser: arbitrary
//! `Authorization` headers, and valid signature headers and JWTs with random
//! edits, go to the authorizers; arbitrary query strings go to the LNURL-auth
//! issuer. Nothing panics, a refusal is always AUTH (never INTERNAL), an edited
//! credential is either refused or still its own user (an edit never makes
//! another identity), and the issuer answers 200 or 400, never 5xx.
//!
//! `VSS_FUZZ_CASES` sets the number of cases per property (default 400).

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on failure.

mod common;

use std::sync::Arc;

use common::*;
use http::{HeaderMap, HeaderValue, Request};
use proptest::prelude::*;
use serde_json::json;
use vss_auth::{
    JwtAuthorizer, LnurlAuthConfig, LnurlAuthIssuer, MultiAuthorizer, SigsAuthorizer,
    SpentChallenges,
};
use vss_core::conformance::fuzz_runner;
use vss_core::{MemoryStore, VssError};
use vss_http::{Authorizer, Endpoint};

fn authorizer() -> MultiAuthorizer {
    MultiAuthorizer::new()
        .with_jwt(JwtAuthorizer::from_public_pems(RS256_PUBLIC).unwrap())
        .with_sigs(SigsAuthorizer::default())
}

/// One edit of a header: replace, delete or insert a character, or cut.
fn edit(text: &str, (kind, at, byte): (u8, usize, u8)) -> Vec<u8> {
    let mut bytes = text.as_bytes().to_vec();
    let len = bytes.len();
    match kind % 4 {
        0 if len > 0 => bytes[at % len] = byte,
        1 if len > 0 => {
            bytes.remove(at % len);
        }
        2 => bytes.insert(at % (len + 1), byte),
        _ => bytes.truncate(at % (len + 1)),
    }
    bytes
}

/// The authorizer's answer to `value` as the `Authorization` header, or
/// `None` when it is no valid header value.
fn authorize(
    runtime: &tokio::runtime::Runtime,
    auth: &MultiAuthorizer,
    value: &[u8],
) -> Option<Result<String, VssError>> {
    let value = HeaderValue::from_bytes(value).ok()?;
    let mut headers = HeaderMap::new();
    headers.insert(http::header::AUTHORIZATION, value);
    Some(
        runtime
            .block_on(auth.authorize(&headers))
            .map(|user| user.as_str().to_string()),
    )
}

#[test]
fn arbitrary_authorization_headers_are_refused_with_auth() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let auth = authorizer();
    let strategy = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..400),
        "Bearer [ -~]{0,300}".prop_map(String::into_bytes),
        "[0-9a-fA-F]{190,220}".prop_map(String::into_bytes),
        "Bearer [A-Za-z0-9_-]{0,60}\\.[A-Za-z0-9_-]{0,60}\\.[A-Za-z0-9_-]{0,60}"
            .prop_map(String::into_bytes),
    ];
    fuzz_runner()
        .run(&strategy, |value| {
            if let Some(result) = authorize(&runtime, &auth, &value) {
                prop_assert!(
                    matches!(result, Err(VssError::Auth(_))),
                    "{result:?} for {value:?}"
                );
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn an_edited_credential_is_refused_or_still_its_own_user() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let auth = authorizer();
    let key = secret(3);
    let signer = pubkey_hex(&key);
    let sigs = sigs_header(&key, now());
    let jwt = format!(
        "Bearer {}",
        mint(
            RS256_PRIVATE,
            json!({ "sub": "alice", "exp": now() + 3600 })
        )
    );
    // The unedited credentials pass, so edits are judged against working ones.
    assert_eq!(
        authorize(&runtime, &auth, sigs.as_bytes())
            .unwrap()
            .unwrap(),
        signer
    );
    assert_eq!(
        authorize(&runtime, &auth, jwt.as_bytes()).unwrap().unwrap(),
        "alice"
    );
    let strategy = (
        any::<bool>(),
        proptest::collection::vec((any::<u8>(), any::<usize>(), any::<u8>()), 1..4),
    );
    fuzz_runner()
        .run(&strategy, |(use_jwt, edits)| {
            let (original, user) = if use_jwt {
                (jwt.clone(), "alice".to_string())
            } else {
                (sigs.clone(), signer.clone())
            };
            let mut text = original.into_bytes();
            for one in edits {
                text = edit(&String::from_utf8_lossy(&text), one);
            }
            match authorize(&runtime, &auth, &text) {
                None | Some(Err(VssError::Auth(_))) => {}
                Some(Ok(got)) => prop_assert_eq!(got, user),
                Some(Err(other)) => prop_assert!(false, "{other:?}"),
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn arbitrary_lnurl_auth_queries_are_answered_200_or_400() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let issuer = LnurlAuthIssuer::new(
        ISSUER_PRIVATE,
        LnurlAuthConfig::default(),
        SpentChallenges::new(Arc::new(MemoryStore::new())).unwrap(),
    )
    .unwrap();
    let k1 = {
        let request = Request::get("/lnurl-auth")
            .header("host", "localhost")
            .body(())
            .unwrap();
        let (parts, ()) = request.into_parts();
        let response = runtime.block_on(issuer.respond(&parts));
        let body = runtime
            .block_on(http_body_util::BodyExt::collect(response.into_body()))
            .unwrap()
            .to_bytes();
        k1_of(std::str::from_utf8(&body).unwrap())
    };
    let key = secret(4);
    let valid = format!(
        "tag=login&k1={k1}&sig={}&key={}",
        sign_k1(&key, &k1),
        pubkey_hex(&key)
    );
    let strategy = prop_oneof![
        "[ -~]{0,200}",
        "tag=login&k1=[0-9a-f]{0,70}&sig=[0-9a-f]{0,150}&key=[0-9a-f]{0,70}",
        proptest::collection::vec((any::<u8>(), any::<usize>(), any::<u8>()), 1..4).prop_map(
            move |edits| {
                let mut text = valid.clone().into_bytes();
                for one in edits {
                    text = edit(&String::from_utf8_lossy(&text), one);
                }
                String::from_utf8_lossy(&text).into_owned()
            }
        ),
    ];
    fuzz_runner()
        .run(&strategy, |query| {
            let Ok(request) = Request::get(format!("/lnurl-auth?{query}"))
                .header("host", "localhost")
                .body(())
            else {
                return Ok(());
            };
            let (parts, ()) = request.into_parts();
            let status = runtime.block_on(issuer.respond(&parts)).status();
            prop_assert!(status == 200 || status == 400, "{status} for {query:?}");
            Ok(())
        })
        .unwrap();
}
