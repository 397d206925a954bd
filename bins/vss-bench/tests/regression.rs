//! A guard against gross performance regressions, cheap enough for every
//! test run (a few seconds): vss-bench measures `get` on SQLite against the
//! same server's `get` on the in-memory store, alternating three short
//! rounds, and fails only when the median ratio falls below a floor far
//! under what the build gives (a full table scan per get, a lock held across
//! requests or a sleep would cross it; noise does not). The real targets are
//! measured by `scripts/bench-server` and `scripts/bench-postgres` (release
//! builds, docs/benchmarks.md). `.config/nextest.toml` runs this test alone.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on failure.

use std::process::Command;

use vss_server::backend::SqliteSettings;
use vss_server::{BackendConfig, Config, Server};

/// SQLite get over memory get may not fall below this (median of three rounds).
const FLOOR: f64 = 0.3;

fn config(backend: BackendConfig) -> Config {
    Config {
        bind_address: "127.0.0.1:0".parse().unwrap(),
        backend,
        ..Config::default()
    }
}

#[test]
fn sqlite_get_stays_within_reach_of_memory_get() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sqlite = BackendConfig::Sqlite(SqliteSettings {
        path: dir.path().join("guard.sqlite3"),
        ..SqliteSettings::default()
    });
    let mut urls = Vec::new();
    for backend in [BackendConfig::Memory, sqlite] {
        let server = runtime.block_on(Server::start(config(backend))).unwrap();
        urls.push(server.url());
        runtime.spawn(server.serve(std::future::pending::<()>()));
    }
    let output = Command::new(env!("CARGO_BIN_EXE_vss-bench"))
        .args(["run", "--url", &urls[0], "--compare", &urls[1]])
        .args(["--workload", "get", "--connections", "8", "--rounds", "3"])
        .args(["--duration", "700ms", "--warmup", "200ms"])
        .args(["--keys", "500", "--value-size", "1024", "--json"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let mut ratios: Vec<f64> = json["comparisons"][0]["ratios"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_f64().unwrap())
        .collect();
    ratios.sort_by(f64::total_cmp);
    let median = ratios[ratios.len() / 2];
    println!("sqlite get / memory get, per round: {ratios:?}");
    assert!(
        median >= FLOOR,
        "SQLite get fell to {median:.2} of memory get (rounds {ratios:?}; floor {FLOOR}): \
         a gross regression, measure with scripts/bench-server"
    );
    for run in json["runs"].as_array().unwrap() {
        assert_eq!(run["errors"], serde_json::json!({}), "{run}");
    }
}
