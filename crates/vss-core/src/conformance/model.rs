//! The model-based property test: random operation sequences run on a store
//! and on [`MemoryStore`] side by side must give identical answers.

use std::future::Future;
use std::sync::Arc;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use super::support::{kind, kv, Ctx, Kind};
use super::{subject_of, unique_name, unique_user, IntoSubject, TestError, TestResult};
use crate::{KvStore, MemoryStore};

/// How many random cases the property test runs, and how many at once.
#[derive(Debug, Clone, Copy)]
pub struct ModelConfig {
    /// Number of random operation sequences (in all, over every runner).
    pub cases: u32,
    /// Runners at once (at least 1): each runs its share of the cases, on
    /// its own stores, interleaved with the others' operations. Through a
    /// balancer in front of several instances, concurrent sequences cross
    /// instances at every step.
    pub parallel: u32,
}

impl ModelConfig {
    /// `cases` sequences, `parallel` at a time.
    pub fn concurrent(cases: u32, parallel: u32) -> Self {
        ModelConfig { cases, parallel }
    }
}

impl Default for ModelConfig {
    /// 256 cases, or `VSS_PROPTEST_CASES` when set.
    fn default() -> Self {
        let cases = std::env::var("VSS_PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(256);
        ModelConfig { cases, parallel: 1 }
    }
}

/// Keys chosen to collide often and to stress prefix matching.
const KEYS: &[&str] = &[
    "a",
    "ab",
    "abc",
    "b",
    "a%",
    "a_",
    "a\\",
    "k/1",
    "k#1",
    "k+1",
    "ключ",
    "п1",
    "global_version",
];
/// Prefixes over those keys, including ones that match nothing.
const PREFIXES: &[&str] = &["", "a", "ab", "a%", "a_", "a\\", "k", "k/", "клю", "п", "z"];

#[derive(Debug, Clone)]
enum Op {
    Put {
        global_version: Option<i64>,
        items: Vec<(usize, i64, u8)>,
        deletes: Vec<(usize, i64)>,
    },
    Delete {
        key: usize,
        version: i64,
    },
    Get {
        key: usize,
    },
    List {
        prefix: usize,
        page_size: Option<i32>,
    },
}

fn version() -> impl Strategy<Value = i64> {
    prop_oneof![
        3 => Just(-1i64),
        3 => Just(0i64),
        4 => 1..4i64,
        1 => Just(-2i64),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0..KEYS.len();
    prop_oneof![
        5 => (
            proptest::option::weighted(0.3, 0..4i64),
            proptest::collection::vec((key.clone(), version(), any::<u8>()), 0..4),
            proptest::collection::vec((key.clone(), version()), 0..2),
        )
            .prop_map(|(global_version, items, deletes)| Op::Put { global_version, items, deletes }),
        2 => (key.clone(), version()).prop_map(|(key, version)| Op::Delete { key, version }),
        2 => key.prop_map(|key| Op::Get { key }),
        2 => (0..PREFIXES.len(), proptest::option::of(prop_oneof![Just(-1), 0..4i32, Just(1000)]))
            .prop_map(|(prefix, page_size)| Op::List { prefix, page_size }),
    ]
}

/// What an operation answered, stripped of what may differ between correct
/// stores (error messages, page token bytes, where short pages break).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    Done,
    Value(i64, Vec<u8>),
    Listing {
        global_version: Option<i64>,
        keys: Vec<(String, i64)>,
    },
    Error(Kind),
}

async fn apply(t: &Ctx, op: &Op) -> Answer {
    let answer = match op {
        Op::Put {
            global_version,
            items,
            deletes,
        } => {
            let items = items
                .iter()
                .map(|(k, v, value)| kv(KEYS[*k], *v, &[*value]))
                .collect();
            let deletes = deletes.iter().map(|(k, v)| kv(KEYS[*k], *v, b"")).collect();
            t.put_full(*global_version, items, deletes)
                .await
                .map(|()| Answer::Done)
        }
        Op::Delete { key, version } => t.delete(KEYS[*key], *version).await.map(|()| Answer::Done),
        Op::Get { key } => t
            .get(KEYS[*key])
            .await
            .map(|(version, value)| Answer::Value(version, value.to_vec())),
        Op::List { prefix, page_size } => list(t, PREFIXES[*prefix], *page_size).await,
    };
    answer.unwrap_or_else(|e| Answer::Error(kind(&e)))
}

/// Follows a listing to its end (a page size of 0 reads only the first page).
async fn list(t: &Ctx, prefix: &str, page_size: Option<i32>) -> Result<Answer, crate::VssError> {
    let mut keys = Vec::new();
    let mut token = None;
    let mut global_version = None;
    for _ in 0..10_000 {
        let page = t.list_page(Some(prefix), page_size, token.take()).await?;
        if global_version.is_none() {
            global_version = page.global_version;
        }
        keys.extend(page.key_versions.into_iter().map(|kv| (kv.key, kv.version)));
        match page.next_page_token {
            Some(next) if !next.is_empty() && page_size != Some(0) => token = Some(next),
            _ => break,
        }
    }
    Ok(Answer::Listing {
        global_version,
        keys,
    })
}

async fn run_case(store: Arc<dyn KvStore>, ops: &[Op]) -> Result<(), String> {
    let user = unique_user();
    let store_id = unique_name("model");
    let subject = Ctx {
        store,
        user: user.clone(),
        store_id: store_id.clone(),
    };
    let model = Ctx {
        store: Arc::new(MemoryStore::with_limits(subject.store.limits())),
        user,
        store_id,
    };
    // Every operation, then a final read of everything.
    let finals = KEYS
        .iter()
        .enumerate()
        .map(|(key, _)| Op::Get { key })
        .chain([Op::List {
            prefix: 0,
            page_size: None,
        }]);
    for (step, op) in ops.iter().cloned().chain(finals).enumerate() {
        let got = apply(&subject, &op).await;
        let want = apply(&model, &op).await;
        if got != want {
            return Err(format!(
                "step {step}: {op:?}\n  store answered {got:?}\n  model answered {want:?}"
            ));
        }
    }
    Ok(())
}

/// Runs the property test against a subject from `factory` (made once):
/// random operation sequences on it and on a [`MemoryStore`] side by side
/// must answer alike. Fails with the smallest disagreeing sequence found.
/// proptest's runner is synchronous: it runs on a blocking thread of the
/// caller's runtime, and each case on the runtime itself.
pub async fn run_model<F, Fut>(mut factory: F, config: ModelConfig) -> TestResult
where
    F: FnMut() -> Fut,
    Fut: Future,
    Fut::Output: IntoSubject,
{
    // The whole subject lives until the end: its guard may hold what the store needs.
    let subject = subject_of(&mut factory).await?;
    let runners = config.parallel.max(1);
    let runtime = tokio::runtime::Handle::current();
    let mut handles = Vec::new();
    for runner in 0..runners {
        // The cases divided as evenly as they go, every one run once.
        let cases = config.cases / runners + u32::from(runner < config.cases % runners);
        let store = subject.store.clone();
        let runtime = runtime.clone();
        handles.push(tokio::task::spawn_blocking(move || {
            let mut runner = TestRunner::new(Config {
                cases,
                failure_persistence: None,
                ..Config::default()
            });
            runner
                .run(&proptest::collection::vec(op(), 1..40), |ops| {
                    runtime
                        .block_on(run_case(store.clone(), &ops))
                        .map_err(TestCaseError::fail)
                })
                .map_err(|failure| failure.to_string())
        }));
    }
    let mut outcome = Ok(Ok(()));
    for handle in handles {
        let result = handle.await;
        if matches!(outcome, Ok(Ok(()))) {
            outcome = result;
        }
    }
    drop(subject);
    match outcome {
        Ok(Ok(())) => Ok(()),
        Ok(Err(failure)) => Err(TestError::Failed(format!(
            "the store disagrees with the MemoryStore model: {failure}"
        ))),
        Err(join) => Err(TestError::Failed(format!(
            "the model test panicked: {join}"
        ))),
    }
}
