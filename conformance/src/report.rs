//! A run's outcome as text (a line per rule, then the summary), JSON, or
//! JUnit XML for CI systems. Each names every rule with its verdict, reason
//! and duration.

use std::time::Duration;

use quick_junit::{NonSuccessKind, TestCase, TestCaseStatus, TestSuite};
use serde::Serialize;
use vss_core::conformance::{result_line, Report, TestError};

use crate::Outcome;

/// What a report says about the run besides the rules' verdicts.
#[derive(Debug, Clone)]
pub struct RunInfo {
    /// The server's base URL.
    pub base_url: String,
    /// How users were told apart ([`crate::HttpStore::users_mode`]).
    pub users: &'static str,
    /// Whether answers without the protocol header failed every rule.
    pub require_protocol_header: bool,
    /// How long the whole run took.
    pub duration: Duration,
}

/// `PASS name`, `FAIL name: reason` or `SKIP name: reason`.
pub fn line(outcome: &Outcome) -> String {
    result_line(outcome.name, &outcome.result)
}

/// The counts of a run: passed, failed, skipped.
pub fn counts(outcomes: &[Outcome]) -> (usize, usize, usize) {
    let report = as_report(outcomes);
    (report.passed(), report.failed(), report.skipped())
}

/// The plain summary line, `N passed, M failed` (`, K skipped` when any were).
pub fn summary(outcomes: &[Outcome]) -> String {
    as_report(outcomes).summary()
}

fn as_report(outcomes: &[Outcome]) -> Report {
    Report {
        results: outcomes
            .iter()
            .map(|o| (o.name, o.result.clone()))
            .collect(),
    }
}

fn verdict(outcome: &Outcome) -> (&'static str, Option<&str>) {
    match &outcome.result {
        Ok(()) => ("pass", None),
        Err(TestError::Failed(why)) => ("fail", Some(why)),
        Err(TestError::Skipped(why)) => ("skip", Some(why)),
    }
}

/// Milliseconds with microsecond precision.
fn millis(duration: Duration) -> f64 {
    (duration.as_micros() as f64) / 1000.0
}

#[derive(Serialize)]
struct JsonReport<'a> {
    tool: &'static str,
    version: &'static str,
    base_url: &'a str,
    users: &'static str,
    require_protocol_header: bool,
    passed: usize,
    failed: usize,
    skipped: usize,
    duration_ms: f64,
    rules: Vec<JsonRule<'a>>,
}

#[derive(Serialize)]
struct JsonRule<'a> {
    name: &'static str,
    verdict: &'static str,
    reason: Option<&'a str>,
    duration_ms: f64,
}

/// The JSON report: the run's settings and counts, and every rule with
/// `name`, `verdict` (`pass`, `fail` or `skip`), `reason` (null when it
/// passed) and `duration_ms`.
pub fn json(info: &RunInfo, outcomes: &[Outcome]) -> String {
    let (passed, failed, skipped) = counts(outcomes);
    let report = JsonReport {
        tool: env!("CARGO_PKG_NAME"),
        version: env!("CARGO_PKG_VERSION"),
        base_url: &info.base_url,
        users: info.users,
        require_protocol_header: info.require_protocol_header,
        passed,
        failed,
        skipped,
        duration_ms: millis(info.duration),
        rules: outcomes
            .iter()
            .map(|o| {
                let (verdict, reason) = verdict(o);
                JsonRule {
                    name: o.name,
                    verdict,
                    reason,
                    duration_ms: millis(o.duration),
                }
            })
            .collect(),
    };
    // Plain strings, numbers and booleans always serialize.
    serde_json::to_string_pretty(&report).unwrap_or_default() + "\n"
}

/// The JUnit XML report: one test suite, `vss-conformance`, with the run's
/// settings as properties and a test case per rule (a failure or a skip
/// carries the reason as its message).
pub fn junit(info: &RunInfo, outcomes: &[Outcome]) -> Result<String, String> {
    let mut suite = TestSuite::new(env!("CARGO_PKG_NAME"));
    suite.set_time(info.duration);
    suite.add_properties([
        ("base_url", info.base_url.as_str()),
        ("users", info.users),
        (
            "require_protocol_header",
            if info.require_protocol_header {
                "true"
            } else {
                "false"
            },
        ),
        ("version", env!("CARGO_PKG_VERSION")),
    ]);
    for outcome in outcomes {
        let status = match verdict(outcome) {
            ("pass", _) => TestCaseStatus::success(),
            ("skip", reason) => {
                let mut status = TestCaseStatus::skipped();
                status.set_message(reason.unwrap_or_default());
                status
            }
            (_, reason) => {
                let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
                status.set_message(reason.unwrap_or_default());
                status.set_type("rule violated");
                status
            }
        };
        let mut case = TestCase::new(outcome.name, status);
        case.set_classname(env!("CARGO_PKG_NAME"));
        case.set_time(outcome.duration);
        suite.add_test_case(case);
    }
    let mut report = quick_junit::Report::new(env!("CARGO_PKG_NAME"));
    report.set_time(info.duration);
    report.add_test_suite(suite);
    report.to_string().map_err(|e| e.to_string())
}
