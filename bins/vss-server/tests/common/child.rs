//! The real binaries as child processes: vss-server and vss-admin.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};

/// The server binary.
pub const SERVER: &str = env!("CARGO_BIN_EXE_vss-server");
/// The admin binary.
pub const ADMIN: &str = env!("CARGO_BIN_EXE_vss-admin");
/// Only a guard against hanging forever: every wait below normally ends at once.
pub const GUARD: Duration = Duration::from_secs(60);

/// `bin args` in `dir` with exactly the `VSS_*` variables `env`.
pub fn command(bin: &str, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // A clean environment for the settings under test.
    for (key, _) in std::env::vars() {
        if key.starts_with("VSS_") || key == "RUST_LOG" {
            cmd.env_remove(key);
        }
    }
    for (key, value) in env {
        cmd.env(key, value);
    }
    cmd
}

/// Runs `bin` to its end in a fresh directory: (exit code, stdout, stderr).
pub async fn run_to_end(
    bin: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> (Option<i32>, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let child = command(bin, dir.path(), args, env).spawn().unwrap();
    let output = tokio::time::timeout(GUARD, child.wait_with_output())
        .await
        .expect("the child did not exit")
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A vss-server child that announced its URL.
pub struct Started {
    child: Child,
    /// The base URL it serves.
    pub url: String,
    stderr: tokio::task::JoinHandle<String>,
}

/// Starts vss-server and waits for the line announcing its URL.
pub async fn start(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Started {
    let mut child = command(SERVER, dir, args, env).spawn().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let stderr = tokio::spawn(async move {
        let mut text = String::new();
        stderr.read_to_string(&mut text).await.unwrap();
        text
    });
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(GUARD, stdout.next_line())
        .await
        .expect("no URL line")
        .unwrap();
    let Some(line) = line else {
        let _ = child.wait().await;
        panic!(
            "vss-server exited before listening: {}",
            stderr.await.unwrap()
        );
    };
    let url = line
        .strip_prefix("vss-server listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line}"))
        .to_string();
    Started { child, url, stderr }
}

impl Started {
    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id().unwrap()
    }

    /// The address it listens on.
    pub fn addr(&self) -> std::net::SocketAddr {
        let rest = self.url.split_once("://").unwrap().1;
        rest.split('/').next().unwrap().parse().unwrap()
    }

    /// Sends `signal` and waits for the exit: (exit code, stderr).
    pub async fn signal(mut self, signal: &str) -> (Option<i32>, String) {
        let pid = self.child.id().unwrap().to_string();
        let status = std::process::Command::new("kill")
            .args([format!("-{signal}"), pid])
            .status()
            .unwrap();
        assert!(status.success());
        let status = tokio::time::timeout(GUARD, self.child.wait())
            .await
            .expect("no exit after the signal")
            .unwrap();
        (status.code(), self.stderr.await.unwrap())
    }
}
