//! The deployment files, checked by the tools their formats have (no container
//! engine or systemd runs here): the Dockerfile with hadolint and read for what
//! its final image holds, packaging/compose.yaml with `docker-compose config`,
//! packaging/vss-server.service with `systemd-analyze verify` and `security`;
//! `vss-admin probe`, the image's health check, against a real server; and
//! that the library crates package cleanly. scripts/test installs the tools
//! (scripts/services/packaging.sh); under CI=true a missing tool fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on failure.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs the tool named by `var` (default `default`), or skips the test with a
/// message when it cannot run, except under CI=true.
fn tool(var: &str, default: &str, args: &[&str], env: &[(&str, &str)]) -> Option<Output> {
    let program = std::env::var(var).unwrap_or_else(|_| default.to_string());
    match Command::new(&program)
        .args(args)
        .envs(env.iter().copied())
        .current_dir(repo())
        .output()
    {
        Ok(output) => Some(output),
        Err(err) => {
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "{program} is needed under CI=true (scripts/test installs it; {var}): {err}"
            );
            eprintln!("SKIPPED: {program} cannot run ({var}): {err}");
            None
        }
    }
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn the_dockerfile_passes_hadolint() {
    let Some(output) = tool("VSS_TEST_HADOLINT", "hadolint", &["Dockerfile"], &[]) else {
        return;
    };
    assert!(output.status.success(), "hadolint: {}", text(&output));
}

/// The instructions of the Dockerfile's last stage, each as (keyword, rest),
/// continuation lines joined.
fn final_stage() -> Vec<(String, String)> {
    let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    let mut instructions = Vec::new();
    let mut current = String::new();
    for line in dockerfile.lines() {
        let line = line.trim();
        if line.starts_with('#') || (line.is_empty() && current.is_empty()) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(start) => current.push_str(start),
            None => {
                current.push_str(line);
                let (keyword, rest) = current.split_once(' ').unwrap_or((&current, ""));
                instructions.push((keyword.to_uppercase(), rest.trim().to_string()));
                current.clear();
            }
        }
    }
    let last_from = instructions.iter().rposition(|(k, _)| k == "FROM").unwrap();
    instructions.split_off(last_from)
}

#[test]
fn the_image_holds_the_binaries_and_ca_certificates_and_runs_unprivileged() {
    let stage = final_stage();
    let get = |keyword: &str| -> Vec<&str> {
        stage
            .iter()
            .filter(|(k, _)| k == keyword)
            .map(|(_, rest)| rest.as_str())
            .collect()
    };
    assert_eq!(get("FROM"), ["scratch"], "nothing but what is copied in");
    assert_eq!(
        get("COPY"),
        [
            "--from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt",
            "--from=build /out/vss-server /out/vss-admin /",
            "--from=build --chown=65532:65532 /out/data /data",
        ],
        "the final image holds the CA bundle, the two binaries and the server user's data directory"
    );
    let user = get("USER");
    assert_eq!(user.len(), 1, "{stage:?}");
    let uid: u32 = user[0].split(':').next().unwrap().parse().unwrap();
    assert_ne!(uid, 0, "the image runs as root");
    assert_eq!(uid, 65532, "the data directory belongs to another user");
    assert_eq!(get("ENTRYPOINT"), [r#"["/vss-server"]"#]);
    // The health check asks the readiness probe on the operations listener, which
    // stays plain HTTP whatever the VSS port serves.
    let health = get("HEALTHCHECK");
    assert_eq!(health.len(), 1, "{stage:?}");
    let ready = format!("\"http://127.0.0.1:9090{}\"", vss_http::READINESS_PATHS[0]);
    assert!(
        health[0].contains(r#"CMD ["/vss-admin", "probe", "#) && health[0].contains(&ready),
        "{}",
        health[0]
    );
    let env = get("ENV").join(" ");
    assert!(env.contains("VSS_BIND_ADDRESS=0.0.0.0:8080"), "{env}");
    assert!(
        env.contains("VSS_METRICS_BIND_ADDRESS=0.0.0.0:9090"),
        "{env}"
    );
    // A backend setting in the image would decide the backend for every deployment
    // (and clash with the one the operator gives).
    for backend in [
        "VSS_SQLITE",
        "VSS_PSQL",
        "VSS_REDIS",
        "VSS_DYNAMODB",
        "VSS_BACKEND",
    ] {
        assert!(!env.contains(backend), "{env}");
    }
    assert_eq!(get("WORKDIR"), ["/data"]);
    // What /out holds, as the build stage makes it.
    let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    let installed: Vec<&str> = dockerfile
        .lines()
        .filter_map(|l| {
            l.trim()
                .trim_end_matches('\\')
                .trim_end()
                .strip_prefix("&& install ")
        })
        .collect();
    assert_eq!(installed.len(), 3, "{installed:?}");
    assert!(installed[0].ends_with("target/release/vss-server /out/vss-server"));
    assert!(installed[1].ends_with("target/release/vss-admin /out/vss-admin"));
    assert!(installed[2].ends_with("-o 65532 -g 65532 /out/data"));
}

#[test]
fn the_compose_file_is_valid_and_needs_a_database_password() {
    let args = ["-f", "packaging/compose.yaml", "config"];
    let Some(output) = tool(
        "VSS_TEST_DOCKER_COMPOSE",
        "docker-compose",
        &args,
        &[("VSS_PG_PASSWORD", "secret")],
    ) else {
        return;
    };
    assert!(output.status.success(), "{}", text(&output));
    let config = String::from_utf8_lossy(&output.stdout);
    for expected in [
        "condition: service_healthy",
        "VSS_BACKEND: postgres",
        "VSS_PSQL_PASSWORD: secret",
        "VSS_QUOTA_MAX_BYTES_PER_USER",
        "stop_grace_period: 30s",
    ] {
        assert!(config.contains(expected), "no {expected:?} in:\n{config}");
    }
    // Published on loopback only (Compose v1 prints ports short, v2 long).
    assert!(
        config.contains("127.0.0.1:8080:8080") || config.contains("host_ip: 127.0.0.1"),
        "{config}"
    );
    assert!(!config.contains("0.0.0.0:8080:8080"), "{config}");
    let without = tool(
        "VSS_TEST_DOCKER_COMPOSE",
        "docker-compose",
        &args,
        &[("VSS_PG_PASSWORD", "")],
    )
    .unwrap();
    assert!(!without.status.success(), "{}", text(&without));
    assert!(text(&without).contains("set VSS_PG_PASSWORD"));
}

/// The unit with its ExecStart pointing at the binary this build made (verify
/// checks that the program exists), in a directory of its own.
fn unit_copy(dir: &Path) -> PathBuf {
    let unit = std::fs::read_to_string(repo().join("packaging/vss-server.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/local/bin/vss-server --config "));
    let unit = unit.replace(
        "ExecStart=/usr/local/bin/vss-server",
        &format!("ExecStart={}", env!("CARGO_BIN_EXE_vss-server")),
    );
    let path = dir.join("vss-server.service");
    std::fs::write(&path, unit).unwrap();
    path
}

#[test]
fn the_systemd_unit_verifies_and_is_hardened() {
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_copy(dir.path());
    let unit = unit.to_str().unwrap();
    let Some(verify) = tool(
        "VSS_TEST_SYSTEMD_ANALYZE",
        "systemd-analyze",
        &["verify", "--man=no", unit],
        &[],
    ) else {
        return;
    };
    assert!(
        verify.status.success() && text(&verify).trim().is_empty(),
        "systemd-analyze verify: {}",
        text(&verify)
    );
    // systemd's own exposure score, printed from 0.0 (locked down) to 10.0; the
    // threshold is in tenths: fails above 2.0 (the unit scores 1.2, "OK").
    let security = tool(
        "VSS_TEST_SYSTEMD_ANALYZE",
        "systemd-analyze",
        &["security", "--offline=true", "--threshold=20", unit],
        &[],
    )
    .unwrap();
    assert!(
        security.status.success(),
        "systemd-analyze security: {}",
        text(&security)
    );
    let settings = std::fs::read_to_string(unit).unwrap();
    for line in [
        "DynamicUser=yes",
        "StateDirectory=vss-server",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "Restart=on-failure",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "WorkingDirectory=/var/lib/vss-server",
        "LoadCredential=vss-server.toml:/etc/vss-server/vss-server.toml",
    ] {
        assert!(settings.lines().any(|l| l == line), "no {line}");
    }
}

fn probe(url: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vss-admin"))
        .args(["probe", url, "--timeout-secs", "5"])
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vss_admin_probe_succeeds_on_a_ready_server_only() {
    let server = common::start(common::config(vss_server::BackendConfig::Memory)).await;
    let ready = format!("http://{}{}", server.addr, vss_http::READINESS_PATHS[0]);
    let output = tokio::task::spawn_blocking({
        let ready = ready.clone();
        move || probe(&ready)
    })
    .await
    .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("ready"));

    // A path that is not a probe answers 404: not ready.
    let wrong = format!("http://{}/nowhere", server.addr);
    let output = tokio::task::spawn_blocking(move || probe(&wrong))
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(text(&output).contains("HTTP 404"), "{}", text(&output));

    server.stop().await;
    // Nobody listens any more.
    let output = tokio::task::spawn_blocking(move || probe(&ready))
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(
        text(&output).contains("cannot connect"),
        "{}",
        text(&output)
    );
}

/// The library crates are publishable: `cargo package --list` names their files
/// without a warning (missing metadata, a placeholder, an unlisted file).
#[test]
fn the_library_crates_package_without_warnings() {
    for name in [
        "vss-core",
        "vss-http",
        "vss-auth",
        "vss-backend-sqlite",
        "vss-backend-postgres",
        "vss-backend-redis",
        "vss-backend-dynamodb",
        "vss-testkit",
    ] {
        let output = Command::new(env!("CARGO"))
            .args([
                "package",
                "--no-verify",
                "--list",
                "--allow-dirty",
                "-p",
                name,
            ])
            .current_dir(repo())
            .output()
            .unwrap();
        assert!(output.status.success(), "{name}: {}", text(&output));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("warning"), "{name}: {stderr}");
        let files = String::from_utf8_lossy(&output.stdout);
        for required in ["Cargo.toml", "README.md", "src/lib.rs"] {
            assert!(
                files.lines().any(|f| f == required),
                "{name} would publish without {required}"
            );
        }
    }
}
