//! The conformance suite must be able to fail: each mutant below breaks one
//! rule of the contract on top of `MemoryStore`, and the suite must name it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on failure.
#![cfg(feature = "conformance")]

use std::sync::Arc;

use async_trait::async_trait;
use vss_core::conformance::{self, ModelConfig, Subject, SuiteOptions, TestError};
use vss_core::proto::*;
use vss_core::{KvStore, MemoryStore, UserToken, VssError};

#[derive(Clone, Copy, Debug)]
enum Bug {
    /// The last page has no token instead of "".
    LastTokenAbsent,
    /// Pages are oldest first.
    OldestFirst,
    /// deleteObject ignores the version it is given.
    DeleteIgnoresVersion,
    /// Everyone shares one user's data.
    SharedUsers,
    /// Prefixes are ignored.
    PrefixIgnored,
    /// Items of a put are applied one by one, not atomically.
    NotAtomic,
}

struct Mutant {
    inner: MemoryStore,
    bug: Bug,
}

#[async_trait]
impl KvStore for Mutant {
    async fn get(
        &self,
        user: &UserToken,
        req: GetObjectRequest,
    ) -> Result<GetObjectResponse, VssError> {
        self.inner.get(&self.user(user), req).await
    }

    async fn put(
        &self,
        user: &UserToken,
        req: PutObjectRequest,
    ) -> Result<PutObjectResponse, VssError> {
        let user = self.user(user);
        if matches!(self.bug, Bug::NotAtomic) && req.transaction_items.len() > 1 {
            for item in req.transaction_items {
                let one = PutObjectRequest {
                    store_id: req.store_id.clone(),
                    global_version: None,
                    transaction_items: vec![item],
                    delete_items: vec![],
                };
                self.inner.put(&user, one).await?;
            }
            return Ok(PutObjectResponse {});
        }
        self.inner.put(&user, req).await
    }

    async fn delete(
        &self,
        user: &UserToken,
        mut req: DeleteObjectRequest,
    ) -> Result<DeleteObjectResponse, VssError> {
        if let (Bug::DeleteIgnoresVersion, Some(kv)) = (self.bug, req.key_value.as_mut()) {
            if kv.version >= 0 {
                kv.version = -1;
            }
        }
        self.inner.delete(&self.user(user), req).await
    }

    async fn list_key_versions(
        &self,
        user: &UserToken,
        mut req: ListKeyVersionsRequest,
    ) -> Result<ListKeyVersionsResponse, VssError> {
        if matches!(self.bug, Bug::PrefixIgnored) {
            req.key_prefix = None;
        }
        let mut resp = self.inner.list_key_versions(&self.user(user), req).await?;
        match self.bug {
            Bug::LastTokenAbsent if resp.next_page_token.as_deref() == Some("") => {
                resp.next_page_token = None;
            }
            Bug::OldestFirst => resp.key_versions.reverse(),
            _ => {}
        }
        Ok(resp)
    }
}

impl Mutant {
    fn user(&self, user: &UserToken) -> UserToken {
        match self.bug {
            Bug::SharedUsers => UserToken::new("everyone").unwrap(),
            _ => user.clone(),
        }
    }
}

async fn failures_of(bug: Bug) -> Vec<&'static str> {
    let report = conformance::run_all(|| async move {
        Subject::new(Arc::new(Mutant {
            inner: MemoryStore::new(),
            bug,
        }))
    })
    .await;
    report
        .results
        .iter()
        .filter(|(_, r)| matches!(r, Err(conformance::TestError::Failed(_))))
        .map(|(name, _)| *name)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_mutant_is_caught_by_the_rule_it_breaks() {
    let cases: &[(Bug, &str)] = &[
        (Bug::LastTokenAbsent, "last_page_token_is_empty"),
        (Bug::OldestFirst, "listing_is_newest_first"),
        (
            Bug::DeleteIgnoresVersion,
            "delete_object_with_wrong_version_changes_nothing",
        ),
        (Bug::SharedUsers, "users_are_isolated"),
        (Bug::PrefixIgnored, "prefix_sql_wildcards_match_literally"),
        (Bug::NotAtomic, "failed_condition_writes_nothing"),
    ];
    for (bug, rule) in cases {
        let failed = failures_of(*bug).await;
        assert!(
            failed.contains(rule),
            "{bug:?} was not caught by {rule}; failures: {failed:?}"
        );
    }
}

fn non_atomic() -> Subject {
    Subject::new(Arc::new(Mutant {
        inner: MemoryStore::new(),
        bug: Bug::NotAtomic,
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_test_catches_a_non_atomic_store() {
    let result = conformance::run_model(
        || async { non_atomic() },
        ModelConfig {
            cases: 256,
            parallel: 1,
        },
    )
    .await;
    assert!(
        matches!(&result, Err(TestError::Failed(why)) if why.contains("disagrees")),
        "the model test accepted a store whose puts are not atomic: {result:?}"
    );
}

#[test]
fn a_generated_rule_test_fails_on_the_mutant_it_catches() {
    // What `conformance_tests!` expands to, for one rule: the #[test] panics.
    let options = SuiteOptions::default();
    let caught = std::panic::catch_unwind(|| {
        conformance::run_test(
            &options,
            "failed_condition_writes_nothing",
            conformance::run_rule("failed_condition_writes_nothing", || async { non_atomic() }),
        )
    });
    assert!(caught.is_err(), "a broken rule passed its generated test");
    // The same rule on the reference store passes, and an unknown rule fails.
    conformance::run_test(
        &options,
        "failed_condition_writes_nothing",
        conformance::run_rule("failed_condition_writes_nothing", || async {
            Subject::new(Arc::new(MemoryStore::new()))
        }),
    );
    let unknown = std::panic::catch_unwind(|| {
        conformance::run_test(
            &options,
            "no_such_rule",
            conformance::run_rule("no_such_rule", || async {
                Subject::new(Arc::new(MemoryStore::new()))
            }),
        )
    });
    assert!(unknown.is_err(), "an unknown rule name passed");
}
