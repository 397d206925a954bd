//! The `vss-conformance` binary in every mode against vss-server itself
//! (vss-testkit, on SQLite): one credential, two credentials, minted JWT and
//! signature users; the three report formats and the rule filters; a server
//! behind a proxy that strips (or changes) the protocol header, with the
//! header required and not; and the deviations documented in the crate's
//! README, whose table this test reads. Every run's verdicts are compared
//! rule by rule with the exact expected sets.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on failure.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;

mod common;

use bytes::Bytes;
use common::{run, Run};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use vss_conformance::{rule_names, PROTOCOL_HEADER_RULE};
use vss_core::{MemoryStore, StoreLimits};
use vss_testkit::{Auth, Storage, TestServer};

/// Every rule's verdict (`pass`, `fail`, `skip`) from a JSON report, checking
/// the report's shape and counts on the way.
struct Verdicts {
    json: Value,
    by_rule: BTreeMap<String, (String, Option<String>)>,
}

impl Verdicts {
    fn of(run: &Run) -> Verdicts {
        let json: Value = serde_json::from_str(&run.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", run.stdout, run.stderr));
        let mut by_rule = BTreeMap::new();
        for rule in json["rules"].as_array().unwrap() {
            let verdict = rule["verdict"].as_str().unwrap().to_string();
            let reason = rule["reason"].as_str().map(str::to_string);
            assert_eq!(reason.is_none(), verdict == "pass", "{rule}");
            assert!(rule["duration_ms"].as_f64().unwrap() >= 0.0, "{rule}");
            by_rule.insert(
                rule["name"].as_str().unwrap().to_string(),
                (verdict, reason),
            );
        }
        let verdicts = Verdicts { json, by_rule };
        for (field, verdict) in [("passed", "pass"), ("failed", "fail"), ("skipped", "skip")] {
            assert_eq!(
                verdicts.json[field].as_u64().unwrap() as usize,
                verdicts.with("pass").len() * usize::from(verdict == "pass")
                    + verdicts.with("fail").len() * usize::from(verdict == "fail")
                    + verdicts.with("skip").len() * usize::from(verdict == "skip"),
                "{field}"
            );
        }
        verdicts
    }

    fn with(&self, verdict: &str) -> BTreeSet<String> {
        self.by_rule
            .iter()
            .filter(|(_, (v, _))| v == verdict)
            .map(|(name, _)| name.clone())
            .collect()
    }

    fn reason(&self, rule: &str) -> &str {
        self.by_rule[rule].1.as_deref().unwrap_or_default()
    }
}

fn all_rules() -> BTreeSet<String> {
    rule_names().into_iter().map(str::to_string).collect()
}

/// The rules no HTTP client can run: quotas and the store's value limit are
/// the server's settings, not the client's, and the admin interface is not
/// on the wire.
fn not_over_http() -> BTreeSet<String> {
    rule_names()
        .into_iter()
        .filter(|n| {
            n.starts_with("quota_")
                || n.starts_with("admin_")
                || *n == "value_over_the_store_limit_is_too_large"
        })
        .map(str::to_string)
        .collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| n.to_string()).collect()
}

/// Asserts the exact verdict of every rule: `failed` and `skipped` as given,
/// every other rule passed.
fn assert_verdicts(run: &Run, failed: &BTreeSet<String>, skipped: &BTreeSet<String>) -> Verdicts {
    let verdicts = Verdicts::of(run);
    let passed: BTreeSet<String> = all_rules()
        .difference(&failed.union(skipped).cloned().collect())
        .cloned()
        .collect();
    assert_eq!(&verdicts.with("fail"), failed, "failed\n{}", run.stderr);
    assert_eq!(&verdicts.with("skip"), skipped, "skipped\n{}", run.stderr);
    assert_eq!(verdicts.with("pass"), passed, "passed\n{}", run.stderr);
    let expected_code = if failed.is_empty() && !passed.is_empty() {
        0
    } else {
        1
    };
    assert_eq!(run.code, Some(expected_code), "{}", run.stderr);
    verdicts
}

async fn server(auth: Auth) -> TestServer {
    TestServer::builder()
        .storage(Storage::Sqlite)
        .auth(auth)
        .start()
        .await
        .unwrap()
}

fn bearer(server: &TestServer, user: &str) -> String {
    format!("Authorization: Bearer {}", server.jwt_for(user).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_credential_skips_only_what_needs_two_users() {
    let server = server(Auth::Jwt).await;
    let alice = bearer(&server, "alice");
    let run = run(&[
        "--base-url",
        server.base_url(),
        "--header",
        &alice,
        "--format",
        "json",
    ])
    .await;
    let mut skipped = not_over_http();
    skipped.insert("users_are_isolated".into());
    let verdicts = assert_verdicts(&run, &BTreeSet::new(), &skipped);
    assert_eq!(verdicts.json["users"], "one");
    assert!(verdicts
        .reason("users_are_isolated")
        .contains("two credentials"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_credential_runs_the_isolation_rules() {
    let server = server(Auth::Jwt).await;
    let (alice, bob) = (bearer(&server, "alice"), bearer(&server, "bob"));
    let url = server.base_url();
    let run_two = run(&[
        "--base-url",
        url,
        "--header",
        &alice,
        "--header-b",
        &bob,
        "--format",
        "json",
    ])
    .await;
    let verdicts = assert_verdicts(&run_two, &BTreeSet::new(), &not_over_http());
    assert_eq!(verdicts.json["users"], "two");

    // The same user twice is no isolation: the rules that look across users fail.
    let alice_again = bearer(&server, "alice");
    let same = run(&[
        "--base-url",
        url,
        "--header",
        &alice,
        "--header-b",
        &alice_again,
        "--format",
        "json",
    ])
    .await;
    let failed = set(&["users_are_isolated", "foreign_page_token_is_invalid"]);
    assert_verdicts(&same, &failed, &not_over_http());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minted_jwt_users() {
    let server = server(Auth::Jwt).await;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("jwt.pem");
    std::fs::write(&key, server.jwt_private_key_pem().unwrap()).unwrap();
    let key = key.to_str().unwrap();
    let run_jwt = run(&[
        "--base-url",
        server.base_url(),
        "--jwt-private-key",
        key,
        "--format",
        "json",
    ])
    .await;
    let verdicts = assert_verdicts(&run_jwt, &BTreeSet::new(), &not_over_http());
    assert_eq!(verdicts.json["users"], "jwt");

    // Tokens of a key the server does not trust: every rule that calls fails, none passes.
    // (The header's rule fails too: it sees only 401 answers, not every kind.)
    let stranger = self::server(Auth::Jwt).await;
    std::fs::write(
        dir.path().join("other.pem"),
        stranger.jwt_private_key_pem().unwrap(),
    )
    .unwrap();
    let refused = run(&[
        "--base-url",
        server.base_url(),
        "--jwt-private-key",
        dir.path().join("other.pem").to_str().unwrap(),
        "--format",
        "json",
    ])
    .await;
    let verdicts = Verdicts::of(&refused);
    assert_eq!(refused.code, Some(1));
    assert!(
        verdicts.with("pass").is_empty(),
        "{:?}",
        verdicts.with("pass")
    );
    let reason = verdicts.reason("create_sets_version_one");
    assert!(reason.contains("authentication failed"), "{reason}");

    // A file that is no key stops the run before it starts, naming the flag.
    std::fs::write(dir.path().join("junk.pem"), "not a key").unwrap();
    let junk = run(&[
        "--base-url",
        server.base_url(),
        "--jwt-private-key",
        dir.path().join("junk.pem").to_str().unwrap(),
    ])
    .await;
    assert_eq!(junk.code, Some(2), "{}", junk.stderr);
    assert!(junk.stderr.contains("--jwt-private-key"), "{}", junk.stderr);
    assert!(junk.stdout.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minted_signature_users() {
    let server = server(Auth::Sigs).await;
    let run_sigs = run(&[
        "--base-url",
        server.base_url(),
        "--sigs",
        "--format",
        "json",
    ])
    .await;
    let verdicts = assert_verdicts(&run_sigs, &BTreeSet::new(), &not_over_http());
    assert_eq!(verdicts.json["users"], "sigs");
    // Two ways of naming users at once are refused.
    let both = run(&[
        "--base-url",
        server.base_url(),
        "--sigs",
        "--header-b",
        "Authorization: x",
    ])
    .await;
    assert_eq!(both.code, Some(2), "{}", both.stderr);
    assert!(both.stderr.contains("--sigs"), "{}", both.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_three_formats_and_the_filters() {
    let server = server(Auth::Sigs).await;
    let url = server.base_url();
    let selected: BTreeSet<String> = rule_names()
        .into_iter()
        .filter(|n| {
            (n.contains("pagination_") || n.contains("isolated")) && !n.contains("page_size_7")
        })
        .map(str::to_string)
        .collect();
    assert!(selected.len() >= 5, "{selected:?}");
    let filters = [
        "--sigs",
        "--only",
        "pagination_",
        "--only",
        "isolated",
        "--skip",
        "page_size_7",
    ];
    let args = |format: &'static str| {
        let mut args = vec!["--base-url", url, "--format", format];
        args.extend(filters);
        args
    };

    let json = run(&args("json")).await;
    let verdicts = Verdicts::of(&json);
    assert_eq!(json.code, Some(0), "{}", json.stderr);
    assert_eq!(verdicts.with("pass"), selected);
    // Progress goes to stderr, one line per rule.
    assert_eq!(
        json.stderr.lines().count(),
        selected.len(),
        "{}",
        json.stderr
    );

    let text = run(&args("text")).await;
    assert_eq!(text.code, Some(0), "{}", text.stderr);
    let lines: Vec<&str> = text.stdout.lines().collect();
    assert_eq!(lines.len(), selected.len() + 1, "{}", text.stdout);
    let passed: BTreeSet<String> = lines[..selected.len()]
        .iter()
        .map(|l| l.strip_prefix("PASS ").unwrap().to_string())
        .collect();
    assert_eq!(passed, selected);
    assert_eq!(
        lines[selected.len()],
        format!("{} passed, 0 failed", selected.len())
    );

    let junit = run(&args("junit")).await;
    assert_eq!(junit.code, Some(0), "{}", junit.stderr);
    let report = quick_junit::Report::deserialize_from_str(&junit.stdout).unwrap();
    assert_eq!(report.tests, selected.len());
    assert_eq!((report.failures, report.errors), (0, 0));
    let suite = &report.test_suites[0];
    let cases: BTreeSet<String> = suite
        .test_cases
        .iter()
        .map(|c| c.name.as_str().to_string())
        .collect();
    assert_eq!(cases, selected);
    assert!(suite
        .properties
        .iter()
        .any(|p| p.name.as_str() == "base_url" && p.value.as_str() == url));

    // Failures and skips carry their reason in JUnit too: one credential, one rule
    // skipped; a header the server refuses, every rule failed.
    let mixed = run(&[
        "--base-url",
        url,
        "--format",
        "junit",
        "--only",
        "users_are_isolated",
        "--only",
        "create_sets_version_one",
    ])
    .await;
    assert_eq!(mixed.code, Some(1));
    let report = quick_junit::Report::deserialize_from_str(&mixed.stdout).unwrap();
    assert_eq!(
        (report.tests, report.failures, report.test_suites[0].skipped),
        (2, 1, 1)
    );
    for case in &report.test_suites[0].test_cases {
        let message = match &case.status {
            quick_junit::TestCaseStatus::NonSuccess { message, .. }
            | quick_junit::TestCaseStatus::Skipped { message, .. } => message.clone(),
            other => panic!("{}: {other:?}", case.name.as_str()),
        };
        assert!(
            !message.unwrap().as_str().is_empty(),
            "{}",
            case.name.as_str()
        );
    }

    // A filter that matches no rule is a mistake, not an empty run.
    for flag in ["--only", "--skip"] {
        let typo = run(&["--base-url", url, flag, "pagnation"]).await;
        assert_eq!(typo.code, Some(2), "{}", typo.stderr);
        assert!(
            typo.stderr.contains(&format!("{flag} `pagnation`")),
            "{}",
            typo.stderr
        );
    }
    let listed = run(&["--list"]).await;
    assert_eq!(listed.code, Some(0));
    assert_eq!(listed.stdout.lines().collect::<Vec<_>>(), rule_names());
}

/// What the proxy does to the `vss-protocol-version` header of every answer.
#[derive(Clone, Copy)]
enum HeaderChange {
    Strip,
    Replace(&'static str),
}

/// A plain HTTP/1.1 proxy on a loopback port in front of `upstream`, changing
/// the protocol header of every answer as a server of another implementation
/// would send it (deployed reference servers before 2026-06 sent none).
async fn header_proxy(upstream: SocketAddr, change: HeaderChange) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let client = client.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request: hyper::Request<Incoming>| {
                    let client = client.clone();
                    async move {
                        let (mut parts, body) = request.into_parts();
                        let body = body.collect().await?.to_bytes();
                        let path = parts.uri.path_and_query().unwrap().clone();
                        parts.uri = format!("http://{upstream}{path}").parse().unwrap();
                        let answer = client
                            .request(hyper::Request::from_parts(parts, Full::new(body)))
                            .await
                            .unwrap();
                        let (mut parts, body) = answer.into_parts();
                        let body = body.collect().await?.to_bytes();
                        match change {
                            HeaderChange::Strip => {
                                parts.headers.remove("vss-protocol-version");
                            }
                            HeaderChange::Replace(v) => {
                                parts
                                    .headers
                                    .insert("vss-protocol-version", v.parse().unwrap());
                            }
                        }
                        Ok::<_, hyper::Error>(hyper::Response::from_parts(parts, Full::new(body)))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    address
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_the_protocol_header() {
    let server = server(Auth::Sigs).await;
    let proxy = header_proxy(server.address(), HeaderChange::Strip).await;
    let url = format!("http://{proxy}/vss");
    let semantic: BTreeSet<String> = all_rules()
        .difference(&not_over_http())
        .filter(|n| n.as_str() != PROTOCOL_HEADER_RULE)
        .cloned()
        .collect();

    // Required (the default, vss-client-ng 0.6's view): every rule that calls fails.
    let strict = run(&["--base-url", &url, "--sigs", "--format", "json"]).await;
    let mut failed = semantic.clone();
    failed.insert(PROTOCOL_HEADER_RULE.into());
    let verdicts = assert_verdicts(&strict, &failed, &not_over_http());
    assert!(verdicts
        .reason("create_sets_version_one")
        .contains("vss-protocol-version"));
    assert_eq!(verdicts.json["require_protocol_header"], true);

    // Not required (vss-client-ng 0.4's view): the header's rule alone fails, once,
    // naming each answer without it.
    let lenient = run(&[
        "--base-url",
        &url,
        "--sigs",
        "--require-protocol-header=false",
        "--format",
        "json",
    ])
    .await;
    let verdicts = assert_verdicts(&lenient, &set(&[PROTOCOL_HEADER_RULE]), &not_over_http());
    let reason = verdicts.reason(PROTOCOL_HEADER_RULE);
    assert!(reason.starts_with("7 of 7 answers lack"), "{reason}");
    for answer in [
        "getObject of a missing key (404",
        "putObjects (200",
        "(409",
        "(400",
    ] {
        assert!(reason.contains(answer), "{answer}: {reason}");
    }

    // The same settings straight to the server: the header's rule passes too.
    let direct = run(&[
        "--base-url",
        server.base_url(),
        "--sigs",
        "--require-protocol-header=false",
        "--format",
        "json",
    ])
    .await;
    assert_verdicts(&direct, &BTreeSet::new(), &not_over_http());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_protocol_version_fails_every_rule_either_way() {
    let server = server(Auth::Sigs).await;
    let proxy = header_proxy(server.address(), HeaderChange::Replace("1")).await;
    let url = format!("http://{proxy}/vss");
    let failed: BTreeSet<String> = all_rules().difference(&not_over_http()).cloned().collect();
    for required in ["true", "false"] {
        let run = run(&[
            "--base-url",
            &url,
            "--sigs",
            "--require-protocol-header",
            required,
            "--format",
            "json",
        ])
        .await;
        let verdicts = assert_verdicts(&run, &failed, &not_over_http());
        assert!(verdicts
            .reason(PROTOCOL_HEADER_RULE)
            .contains("carries `1`"));
    }
}

/// The rule names in the row of the deviations table in this crate's README
/// whose first cell starts with `label`.
fn documented(label: &str) -> BTreeSet<String> {
    let readme = include_str!("../README.md");
    let row = readme
        .lines()
        .find(|l| l.starts_with(&format!("| {label}")))
        .unwrap_or_else(|| panic!("README has no deviation row `{label}`"));
    let cell = row.split('|').nth(2).unwrap();
    let names: BTreeSet<String> = cell
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    assert!(names.iter().all(|n| all_rules().contains(n)), "{row}");
    names
}

/// A run against vss-server on a memory store with `limits` (a server that
/// caps items per put or page size), declared to the runner by `declare`.
async fn run_capped(limits: StoreLimits, declare: &[&str]) -> Run {
    let server = TestServer::builder()
        .store(Arc::new(MemoryStore::with_limits(limits)))
        .auth(Auth::Sigs)
        .start()
        .await
        .unwrap();
    let mut args = vec![
        "--base-url",
        server.base_url(),
        "--sigs",
        "--format",
        "json",
    ];
    args.extend(declare);
    run(&args).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_deviations_are_what_the_runner_shows() {
    let items = StoreLimits {
        max_items_per_put: 99,
        ..StoreLimits::default()
    };
    let undeclared = run_capped(items, &[]).await;
    assert_verdicts(
        &undeclared,
        &documented("caps the items of one put"),
        &not_over_http(),
    );
    let declared = run_capped(items, &["--max-items-per-put", "99"]).await;
    assert_verdicts(&declared, &BTreeSet::new(), &not_over_http());

    // Each page deviation undeclared, then declared.
    let pages = |max_page_size, default_page_size| StoreLimits {
        max_page_size,
        default_page_size,
        ..StoreLimits::default()
    };
    for (row, limits, declare) in [
        (
            "serves pages smaller",
            pages(50, 50),
            vec!["--max-page-size", "50"],
        ),
        (
            "accepts pages larger",
            pages(1000, 100),
            vec!["--max-page-size", "1000"],
        ),
        (
            "answers 1000 keys",
            pages(1000, 1000),
            vec!["--max-page-size", "1000", "--default-page-size", "1000"],
        ),
    ] {
        let undeclared = run_capped(limits, &[]).await;
        assert_verdicts(&undeclared, &documented(row), &not_over_http());
        let declared = run_capped(limits, &declare).await;
        assert_verdicts(&declared, &BTreeSet::new(), &not_over_http());
    }

    // The rows of the header and of a single credential are checked above
    // (a_server_without_the_protocol_header, one_credential_skips_only_what_needs_two_users).
    assert_eq!(
        documented("sends no `vss-protocol-version`"),
        set(&[PROTOCOL_HEADER_RULE])
    );
    assert_eq!(
        documented("is tested with one credential"),
        set(&["users_are_isolated"])
    );
}
