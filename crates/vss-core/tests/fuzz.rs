//! Property tests ("fuzzing") of the page token decoder and of listing
//! requests: arbitrary tokens and edited valid ones are refused with
//! INVALID_REQUEST (or, when an edit changed nothing, read as before); no
//! input panics. `VSS_FUZZ_CASES` sets the number of cases (default 400).

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on failure.

use proptest::prelude::*;
use vss_core::conformance::fuzz_runner;
use vss_core::page::PageToken;
use vss_core::proto::ListKeyVersionsRequest;
use vss_core::{validate, StoreLimits, UserToken, VssError};

#[test]
fn arbitrary_page_tokens_are_invalid_requests() {
    let user = UserToken::new("u").unwrap();
    let strategy = prop_oneof![".{0,64}", "[A-Za-z0-9_-]{20,26}"];
    fuzz_runner()
        .run(&strategy, |token| {
            match PageToken::decode(&token, &user, "s", "p") {
                Err(VssError::InvalidRequest(_)) => {}
                other => prop_assert!(false, "{other:?} for {token:?}"),
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn an_edited_page_token_is_refused_or_unchanged() {
    let user = UserToken::new("u").unwrap();
    let strategy = (
        any::<i64>(),
        proptest::collection::vec((0u8..4, any::<usize>(), any::<char>()), 1..4),
    );
    fuzz_runner()
        .run(&strategy, |(sequence, edits)| {
            let original = PageToken {
                before_sequence: sequence,
            };
            let mut token: Vec<char> = original.encode(&user, "s", "p").chars().collect();
            for (kind, at, c) in edits {
                let len = token.len();
                match kind {
                    0 if len > 0 => token[at % len] = c,
                    1 if len > 0 => {
                        token.remove(at % len);
                    }
                    2 => token.insert(at % (len + 1), c),
                    _ => token.truncate(at % (len + 1)),
                }
            }
            let token: String = token.into_iter().collect();
            match PageToken::decode(&token, &user, "s", "p") {
                Err(VssError::InvalidRequest(_)) => {}
                Ok(decoded) => prop_assert_eq!(decoded, original),
                Err(other) => prop_assert!(false, "{other:?}"),
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn arbitrary_listing_requests_are_planned_or_refused_as_invalid() {
    let user = UserToken::new("u").unwrap();
    let strategy = (
        ".{0,40}",
        proptest::option::of(".{0,40}"),
        proptest::option::of(any::<i32>()),
        proptest::option::of(".{0,40}"),
    );
    fuzz_runner()
        .run(
            &strategy,
            |(store_id, key_prefix, page_size, page_token)| {
                let request = ListKeyVersionsRequest {
                    store_id,
                    key_prefix,
                    page_size,
                    page_token,
                };
                match validate::list(&user, request, &StoreLimits::default()) {
                    Ok(_) | Err(VssError::InvalidRequest(_)) => {}
                    Err(other) => prop_assert!(false, "{other:?}"),
                }
                Ok(())
            },
        )
        .unwrap();
}
