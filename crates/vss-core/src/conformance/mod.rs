//! The conformance suite: every rule of the VSS contract as a test that any
//! [`KvStore`] can be run against, plus a model-based property test against
//! [`crate::MemoryStore`] and compare-and-set races.
//!
//! A backend crate gets one named `#[test]` per rule, and the model test and
//! the races by name, with one macro call in a test file, given a factory that
//! makes the [`Subject`] of one test:
//!
//! ```ignore
//! use std::sync::Arc;
//! use vss_core::conformance::Subject;
//! use vss_core::MemoryStore;
//!
//! vss_core::conformance_tests!(|| async { Subject::new(Arc::new(MemoryStore::new())) });
//! ```
//!
//! Then `cargo nextest run -p my-backend pagination` runs the pagination
//! rules only, and one failing rule hides no other. The factory may answer
//! `Option<Subject>`: `None` skips the test (for a service that is not
//! configured, see [`service_url`]). See [`conformance_tests!`](crate::conformance_tests)
//! for options (runtime threads, model cases, race sizes).
//!
//! The same tests as functions, each taking a factory and answering a
//! [`TestResult`]: [`run_rule`] (one rule by name), [`run_model`],
//! [`run_races`]; and [`run_all`], every rule in order with a line each (the
//! lines `vss-conformance` prints; it runs the rules over HTTP with its own
//! `run_suite`, which adds the protocol header's rule and durations).
//!
//! Tests work in stores and users with fresh random names, so a subject may be
//! shared with other tests and with data that is already there.

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::{AdminStore, KvStore, UserToken};

mod admin;
mod concurrency;
mod model;
mod quotas;
mod rules;
mod support;

pub use concurrency::{run_races, ConcurrencyConfig};
pub use model::{run_model, ModelConfig};
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
    /// The store's admin interface, when it has one: the admin rules run
    /// only then.
    pub admin: Option<Arc<dyn AdminStore>>,
    guard: Option<Arc<dyn Any + Send + Sync>>,
}

impl Subject {
    /// A store that keeps users apart by the token it is given.
    pub fn new(store: Arc<dyn KvStore>) -> Self {
        Subject {
            store,
            distinct_users: true,
            admin: None,
            guard: None,
        }
    }

    /// A store with an admin interface: every rule runs, the admin rules too.
    pub fn admin(store: Arc<dyn AdminStore>) -> Self {
        Subject {
            admin: Some(store.clone()),
            ..Subject::new(store)
        }
    }

    /// A store that serves one user whatever token it is given.
    pub fn single_user(store: Arc<dyn KvStore>) -> Self {
        Subject {
            distinct_users: false,
            ..Subject::new(store)
        }
    }

    /// Keeps `guard` alive as long as this subject or a clone of it: what the
    /// store needs beside it, such as the server an HTTP client talks to or
    /// the temporary directory of a database file.
    pub fn holding(mut self, guard: impl Any + Send + Sync) -> Self {
        self.guard = Some(Arc::new(guard));
        self
    }
}

/// What a subject factory may answer: a [`Subject`], or `Option<Subject>`
/// where `None` skips the test (a service that is not configured).
pub trait IntoSubject {
    /// The subject, or `None` to skip.
    fn into_subject(self) -> Option<Subject>;
}

impl IntoSubject for Subject {
    fn into_subject(self) -> Option<Subject> {
        Some(self)
    }
}

impl IntoSubject for Option<Subject> {
    fn into_subject(self) -> Option<Subject> {
        self
    }
}

/// The subject a factory makes, or the skip of a test that has none.
async fn subject_of<F, Fut>(factory: &mut F) -> Result<Subject, TestError>
where
    F: FnMut() -> Fut,
    Fut: Future,
    Fut::Output: IntoSubject,
{
    factory().await.into_subject().ok_or_else(|| {
        TestError::Skipped("the factory made no subject (is the service configured?)".into())
    })
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

/// Every rule test of the suite, in a stable order.
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

/// Runs every rule test of the suite, each against a fresh subject from
/// `factory`, printing a line per test and the summary.
pub async fn run_all<F, Fut>(mut factory: F) -> Report
where
    F: FnMut() -> Fut,
    Fut: Future,
    Fut::Output: IntoSubject,
{
    let mut report = Report::default();
    for test in all_tests() {
        let result = match subject_of(&mut factory).await {
            Ok(subject) => test.run(subject).await,
            Err(skipped) => Err(skipped),
        };
        println!("{}", result_line(test.name, &result));
        report.results.push((test.name, result));
    }
    println!("{}", report.summary());
    report
}

/// Runs the rule test called `name` against a subject from `factory`.
/// An unknown name fails.
pub async fn run_rule<F, Fut>(name: &str, mut factory: F) -> TestResult
where
    F: FnMut() -> Fut,
    Fut: Future,
    Fut::Output: IntoSubject,
{
    let Some(test) = rules::ALL.iter().find(|t| t.name == name) else {
        return Err(TestError::Failed(format!(
            "the conformance suite has no rule `{name}`"
        )));
    };
    test.run(subject_of(&mut factory).await?).await
}

/// How [`conformance_tests!`](crate::conformance_tests) runs its tests.
#[derive(Debug, Clone, Copy)]
pub struct SuiteOptions {
    /// Worker threads of each test's runtime.
    pub worker_threads: usize,
    /// The model test's size.
    pub model: ModelConfig,
    /// The races' size.
    pub races: ConcurrencyConfig,
}

impl Default for SuiteOptions {
    /// Two worker threads, the default model test and races.
    fn default() -> Self {
        SuiteOptions {
            worker_threads: 2,
            model: ModelConfig::default(),
            races: ConcurrencyConfig::default(),
        }
    }
}

/// Runs one test of the suite as the body of a plain `#[test]`: on a runtime
/// of its own, printing its result line; panics (fails the `#[test]`) when
/// the test failed. A skipped test passes, saying why.
/// [`conformance_tests!`](crate::conformance_tests) calls this.
pub fn run_test(options: &SuiteOptions, name: &str, test: impl Future<Output = TestResult>) {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(options.worker_threads.max(1))
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => panic!("cannot start a runtime for {name}: {e}"),
    };
    let result = runtime.block_on(test);
    println!("{}", result_line(name, &result));
    if let Err(TestError::Failed(why)) = result {
        panic!("{name} failed: {why}");
    }
}

/// One named `#[test]` per rule of the suite, plus `model_matches_memory_store`
/// and `races_on_one_key_and_one_global_version`, all against subjects from
/// one factory. Invoke it once per configuration, at module level of a test
/// file (wrap it in a `mod` to run several configurations in one file):
///
/// ```ignore
/// mod batched {
///     vss_core::conformance_tests!(
///         || async { open_my_store().await.map(|s| Subject::new(Arc::new(s))) },
///         vss_core::conformance::SuiteOptions { worker_threads: 4, ..Default::default() }
///     );
/// }
/// ```
///
/// The factory is an expression of a closure `FnMut() -> impl Future`
/// answering a [`Subject`] or `Option<Subject>` (see [`IntoSubject`]); each
/// test calls it for its own subject (the model test and the races once).
/// The options are a [`SuiteOptions`] expression.
#[macro_export]
macro_rules! conformance_tests {
    ($factory:expr $(,)?) => {
        $crate::conformance_tests!($factory, $crate::conformance::SuiteOptions::default());
    };
    ($factory:expr, $options:expr $(,)?) => {
        $crate::__conformance_rules!(tests($factory)($options));

        #[test]
        fn model_matches_memory_store() {
            let options: $crate::conformance::SuiteOptions = $options;
            $crate::conformance::run_test(
                &options,
                "model_matches_memory_store",
                $crate::conformance::run_model($factory, options.model),
            );
        }

        #[test]
        fn races_on_one_key_and_one_global_version() {
            let options: $crate::conformance::SuiteOptions = $options;
            $crate::conformance::run_test(
                &options,
                "races_on_one_key_and_one_global_version",
                $crate::conformance::run_races($factory, options.races),
            );
        }
    };
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

/// The default of [`fuzz_runner`]'s case count.
pub const DEFAULT_FUZZ_CASES: u32 = 400;

/// A proptest runner for the fuzz properties of the workspace (arbitrary
/// input into every parser and the service): `VSS_FUZZ_CASES` cases (default
/// [`DEFAULT_FUZZ_CASES`]), failures not persisted to files.
pub fn fuzz_runner() -> proptest::test_runner::TestRunner {
    let cases = std::env::var("VSS_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_FUZZ_CASES);
    proptest::test_runner::TestRunner::new(proptest::test_runner::Config {
        cases,
        failure_persistence: None,
        ..proptest::test_runner::Config::default()
    })
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
