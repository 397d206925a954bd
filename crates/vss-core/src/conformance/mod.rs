//! The conformance suite: every rule of the VSS contract as a test that any
//! [`KvStore`] can be run against.
//!
//! Backend crates call [`run_all`] from one of their tests, with a factory that
//! makes a fresh [`Subject`] per test, then the model-based property test
//! [`run_model_test`] and the races of [`run_concurrency_tests`]:
//!
//! ```no_run
//! use std::sync::Arc;
//! use vss_core::conformance::{self, Subject};
//! use vss_core::MemoryStore;
//!
//! #[tokio::test]
//! async fn conformance() {
//!     conformance::run_all(|| async { Subject::new(Arc::new(MemoryStore::new())) })
//!         .await
//!         .assert_all_passed();
//! }
//! ```
//!
//! Tests work in stores and users with fresh random names, so a subject may be
//! shared with other tests and with data that is already there.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::{KvStore, UserToken};

mod concurrency;
mod model;
mod rules;
mod support;

pub use concurrency::{run_concurrency_tests, ConcurrencyConfig};
pub use model::{run_model_test, ModelConfig};
pub use support::Ctx;

/// What the suite runs against.
#[derive(Clone)]
pub struct Subject {
    /// The store under test.
    pub store: Arc<dyn KvStore>,
    /// Whether different [`UserToken`]s reach different users' data. `false`
    /// for a client whose credentials fix one user whatever token it is given
    /// (such as an HTTP client); tests that need two users are then skipped.
    pub distinct_users: bool,
}

impl Subject {
    /// A store that keeps users apart by the token it is given.
    pub fn new(store: Arc<dyn KvStore>) -> Self {
        Subject {
            store,
            distinct_users: true,
        }
    }

    /// A store that serves one user whatever token it is given.
    pub fn single_user(store: Arc<dyn KvStore>) -> Self {
        Subject {
            store,
            distinct_users: false,
        }
    }
}

/// Why a test did not pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TestError {
    /// A rule was broken; the message says which and how.
    Failed(String),
    /// The test cannot run against this subject (for example, it needs two users).
    Skipped(String),
}

/// What one conformance test returns.
pub type TestResult = Result<(), TestError>;

type TestFuture = Pin<Box<dyn Future<Output = TestResult> + Send>>;

/// One named test of the suite.
#[derive(Clone, Copy)]
pub struct ConformanceTest {
    /// The test's name, which says the rule it checks.
    pub name: &'static str,
    run: fn(Subject) -> TestFuture,
}

impl ConformanceTest {
    /// Runs the test against `subject`; a panic counts as a failure.
    pub async fn run(&self, subject: Subject) -> TestResult {
        match tokio::spawn((self.run)(subject)).await {
            Ok(result) => result,
            Err(join) => Err(TestError::Failed(format!("test panicked: {join}"))),
        }
    }
}

impl std::fmt::Debug for ConformanceTest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

/// Every test of the suite, in a stable order.
pub fn all_tests() -> Vec<ConformanceTest> {
    rules::ALL.to_vec()
}

/// The outcome of a suite run.
#[derive(Debug, Default)]
pub struct Report {
    /// Each test's name and result, in the order they ran.
    pub results: Vec<(&'static str, TestResult)>,
}

impl Report {
    /// How many tests passed.
    pub fn passed(&self) -> usize {
        self.results.iter().filter(|(_, r)| r.is_ok()).count()
    }

    /// How many tests failed.
    pub fn failed(&self) -> usize {
        self.results
            .iter()
            .filter(|(_, r)| matches!(r, Err(TestError::Failed(_))))
            .count()
    }

    /// How many tests were skipped.
    pub fn skipped(&self) -> usize {
        self.results
            .iter()
            .filter(|(_, r)| matches!(r, Err(TestError::Skipped(_))))
            .count()
    }

    /// The plain summary line `N passed, M failed` (with `, K skipped` when any were).
    pub fn summary(&self) -> String {
        let mut line = format!("{} passed, {} failed", self.passed(), self.failed());
        if self.skipped() > 0 {
            line.push_str(&format!(", {} skipped", self.skipped()));
        }
        line
    }

    /// Panics, naming every failed test, unless all passed or were skipped.
    pub fn assert_all_passed(&self) {
        let failures: Vec<String> = self
            .results
            .iter()
            .filter_map(|(name, r)| match r {
                Err(TestError::Failed(why)) => Some(format!("{name}: {why}")),
                _ => None,
            })
            .collect();
        assert!(
            failures.is_empty(),
            "{} conformance test(s) failed:\n{}",
            failures.len(),
            failures.join("\n")
        );
        assert!(self.passed() > 0, "no conformance test passed");
    }
}

/// Prints one result line, as `vss-conformance` and backend tests show them.
pub fn result_line(name: &str, result: &TestResult) -> String {
    match result {
        Ok(()) => format!("PASS {name}"),
        Err(TestError::Failed(why)) => format!("FAIL {name}: {why}"),
        Err(TestError::Skipped(why)) => format!("SKIP {name}: {why}"),
    }
}

/// Runs every test of the suite, each against a fresh subject from `factory`,
/// printing a line per test.
pub async fn run_all<F, Fut>(mut factory: F) -> Report
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Subject>,
{
    let mut report = Report::default();
    for test in all_tests() {
        let result = test.run(factory().await).await;
        println!("{}", result_line(test.name, &result));
        report.results.push((test.name, result));
    }
    println!("{}", report.summary());
    report
}

/// A name no other test run will use: tests share stores safely by working
/// under fresh store ids and users.
pub fn unique_name(label: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{label}-{:x}-{nanos:x}-{n}", std::process::id())
}

/// A fresh user token for a test.
pub fn unique_user() -> UserToken {
    match UserToken::new(unique_name("user")) {
        Ok(user) => user,
        Err(_) => unreachable!("generated user names are short and non-empty"),
    }
}

/// The URL of a real service a backend's tests need, from the environment
/// variable `var` (for example `VSS_TEST_POSTGRES_URL`, set by `scripts/test`).
///
/// When it is unset, tests skip with a loud message, except under `CI=true`,
/// where a missing service is a failure: this function panics.
pub fn service_url(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("{var} is not set and CI=true: the service must be running (use scripts/test)")
        }
        _ => {
            eprintln!(
                "SKIPPED: {var} is not set, so this backend's tests did not run. \
                 Run them with scripts/test, which starts the service."
            );
            None
        }
    }
}
