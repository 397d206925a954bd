//! Every workload runs against a real vss-server (in-memory backend) and
//! reports the requests it made, without errors, in its JSON output.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on failure.

use std::process::Command;

use vss_server::{BackendConfig, Config, Server};

/// A server on a free loopback port, on the in-memory store.
fn memory_config() -> Config {
    Config {
        bind_address: "127.0.0.1:0".parse().unwrap(),
        backend: BackendConfig::Memory,
        ..Config::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_workload_runs_without_errors() {
    let server = Server::start(memory_config()).await.unwrap();
    let url = server.url();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.serve(async {
        let _ = stopped.await;
    }));

    for workload in WORKLOADS {
        let url = url.clone();
        let output = tokio::task::spawn_blocking(move || run_workload(&url, workload))
            .await
            .unwrap();
        check_runs(workload, &output);
    }

    stop.send(()).unwrap();
    serving.await.unwrap().unwrap();
}

const WORKLOADS: [&str; 9] = [
    "get",
    "put",
    "create",
    "cas",
    "global",
    "list",
    "list-first",
    "delete",
    "mixed",
];

/// 300 requests of `workload` at 1 and then 4 connections.
fn run_workload(url: &str, workload: &str) -> std::process::Output {
    // `delete` deletes each key once: give it more than it sends.
    let keys = if workload == "delete" { "400" } else { "150" };
    Command::new(env!("CARGO_BIN_EXE_vss-bench"))
        .args(["run", "--url", url, "--workload", workload])
        .args([
            "--connections",
            "1,4",
            "--requests",
            "300",
            "--warmup",
            "0s",
        ])
        .args(["--keys", keys, "--value-size", "64", "--json"])
        .output()
        .unwrap()
}

fn check_runs(workload: &str, output: &std::process::Output) {
    assert!(
        output.status.success(),
        "{workload}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let runs = json["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{workload}: one run per connection count");
    for run in runs {
        assert_eq!(run["workload"], workload.rsplit(' ').next().unwrap());
        assert!(
            run["requests"].as_u64().unwrap() >= 300,
            "{workload}: {run}"
        );
        assert_eq!(run["errors"], serde_json::json!({}), "{workload}: {run}");
        assert!(run["p50_us"].as_u64().unwrap() <= run["max_us"].as_u64().unwrap());
    }
}

/// The in-process ceilings: the same workloads calling the store without HTTP.
#[test]
fn every_workload_runs_in_process() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!(
        "sqlite:{}?synchronous=full",
        dir.path().join("bench.sqlite3").display()
    );
    for url in ["memory:", sqlite.as_str()] {
        for workload in WORKLOADS {
            check_runs(&format!("{url} {workload}"), &run_workload(url, workload));
        }
    }
}

/// `delete` sends one deleteObject per key it wrote, then stops, long before
/// its duration; the keys are gone (vss-bench lists the store afterwards and
/// counts what is left as `KEYS_LEFT` errors).
#[test]
fn delete_stops_when_its_keys_are_gone() {
    let output = Command::new(env!("CARGO_BIN_EXE_vss-bench"))
        .args(["run", "--url", "memory:", "--workload", "delete"])
        .args(["--connections", "3", "--warmup", "0s", "--duration", "60s"])
        .args(["--keys", "250", "--json"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let run = &json["runs"][0];
    assert_eq!(run["requests"], 250, "{run}");
    assert_eq!(run["errors"], serde_json::json!({}), "{run}");
    assert!(run["seconds"].as_f64().unwrap() < 60.0, "{run}");
}

#[test]
fn compare_and_chart() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut servers = Vec::new();
    let mut urls = Vec::new();
    for _ in 0..2 {
        let server = runtime.block_on(Server::start(memory_config())).unwrap();
        urls.push(server.url());
        servers.push(runtime.spawn(server.serve(std::future::pending::<()>())));
    }
    let output = Command::new(env!("CARGO_BIN_EXE_vss-bench"))
        .args([
            "run",
            "--url",
            &urls[0],
            "--compare",
            &urls[1],
            "--rounds",
            "2",
        ])
        .args([
            "--workload",
            "put",
            "--connections",
            "2",
            "--requests",
            "200",
            "--warmup",
            "0s",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        json["runs"].as_array().unwrap().len(),
        4,
        "two rounds on each server"
    );
    let comparison = &json["comparisons"][0];
    assert_eq!(comparison["ratios"].as_array().unwrap().len(), 2);
    assert!(comparison["min"].as_f64().unwrap() <= comparison["max"].as_f64().unwrap());

    let dir = std::env::temp_dir().join(format!("vss-bench-chart-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("runs.json"), &output.stdout).unwrap();
    let chart = dir.join("chart.svg");
    let status = Command::new(env!("CARGO_BIN_EXE_vss-bench"))
        .args(["chart", "--input"])
        .arg(dir.join("runs.json"))
        .arg("--output")
        .arg(&chart)
        .status()
        .unwrap();
    assert!(status.success());
    let svg = std::fs::read_to_string(&chart).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("polyline"),
        "not a line chart: {svg:.200}"
    );
    let table = Command::new(env!("CARGO_BIN_EXE_vss-bench"))
        .args(["table", "--input"])
        .arg(dir.join("runs.json"))
        .output()
        .unwrap();
    assert!(table.status.success());
    let table = String::from_utf8(table.stdout).unwrap();
    assert!(
        table.starts_with("| server | workload | 2 |"),
        "not a table by connections: {table}"
    );
    // One row per server, each with a measured rate.
    for url in &urls {
        let row = format!("| {url} | put | ");
        assert!(table.contains(&row), "no row for {url}: {table}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
    for server in servers {
        server.abort();
    }
}
