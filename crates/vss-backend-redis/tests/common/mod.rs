//! Helpers the Redis backend's tests share: the shared test server's URL, and
//! redis-server children that a test owns (to restart them or misconfigure them).

#![allow(dead_code)]
// each test binary uses part of this
// Test-only helpers: a failed setup step should stop the test right there.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use fred::interfaces::ClientLike;
use fred::types::config::Config;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::Instant;
use vss_backend_redis::{RedisConfig, RedisStore};
use vss_core::conformance::unique_user;
use vss_core::proto::{GetObjectRequest, KeyValue, PutObjectRequest};
use vss_core::KvStore;

/// The shared test Redis (AOF on), or `None` to skip (never under CI=true).
pub fn redis_url() -> Option<String> {
    vss_core::conformance::service_url("VSS_TEST_REDIS_URL")
}

/// The redis-server binary for tests that run their own servers, when the
/// shared test service is configured (scripts/test exports both).
pub fn redis_server() -> Option<PathBuf> {
    redis_url()?;
    let bin = std::env::var_os("VSS_TEST_REDIS_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("redis-server"));
    Some(bin)
}

/// A store on the shared test Redis.
pub async fn connect(url: &str) -> RedisStore {
    RedisStore::connect(RedisConfig::new(url))
        .await
        .expect("the test Redis has AOF on, so the store must open")
}

/// Polls `check` until it returns true, failing the test after `limit`.
pub async fn poll_until<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if check().await {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A TCP port on 127.0.0.1 that nothing listens on right now.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Persistence as the durability guard wants it: AOF, synced on every write.
pub const AOF_ALWAYS: [&str; 6] = [
    "--appendonly",
    "yes",
    "--appendfsync",
    "always",
    "--save",
    "",
];

/// A redis-server child with [`AOF_ALWAYS`] and `extra` options, in a temp dir
/// that lives as long as the returned guard.
pub async fn durable_child(bin: &Path, extra: &[&str]) -> (ChildRedis, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut args = AOF_ALWAYS.to_vec();
    args.extend_from_slice(extra);
    (ChildRedis::start(bin, dir.path(), &args).await, dir)
}

/// A redis-server child process this test owns, on 127.0.0.1 only.
pub struct ChildRedis {
    bin: PathBuf,
    dir: PathBuf,
    args: Vec<String>,
    /// Its port.
    pub port: u16,
    child: Option<Child>,
}

impl ChildRedis {
    /// Starts redis-server with `args` (persistence options and the like) in
    /// `dir`, and waits until it answers PING.
    ///
    /// A port found free may be taken again before the child binds it (the
    /// port, or a cluster node's bus port 10000 above it): the child then
    /// exits, and it is started again on another port.
    pub async fn start(bin: &Path, dir: &Path, args: &[&str]) -> ChildRedis {
        let mut redis = ChildRedis {
            bin: bin.to_path_buf(),
            dir: dir.to_path_buf(),
            args: args.iter().map(|a| a.to_string()).collect(),
            port: 0,
            child: None,
        };
        for _ in 0..5 {
            redis.port = free_port();
            if redis.spawn().await {
                return redis;
            }
        }
        panic!(
            "redis-server exited at start five times: see {}",
            redis.dir.join("redis.log").display()
        );
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Runs the child on `self.port` and waits until it answers PING: false
    /// when it exits first.
    async fn spawn(&mut self) -> bool {
        let log = self.dir.join("redis.log");
        let child = Command::new(&self.bin)
            .arg("--bind")
            .arg("127.0.0.1")
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(&log)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.bin.display()));
        let child = self.child.insert(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if child.try_wait().unwrap().is_some() {
                self.child = None;
                return false;
            }
            // Answered while the child still runs: the child answered.
            if ping(self.port).await && child.try_wait().unwrap().is_none() {
                return true;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer PING within 30 s: see {}",
                log.display()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Kills the server at once (SIGKILL: no shutdown work, like a crash) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port, directory and options.
    pub async fn restart(&mut self) {
        self.kill();
        assert!(
            self.spawn().await,
            "redis-server exited at restart on port {}: see {}",
            self.port,
            self.dir.join("redis.log").display()
        );
    }

    /// A plain client to this server, for administrative commands.
    pub async fn admin(&self) -> fred::clients::Client {
        admin(&self.url()).await
    }
}

impl Drop for ChildRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A plain client to the server at `url`, for administrative commands.
pub async fn admin(url: &str) -> fred::clients::Client {
    let client = fred::types::Builder::from_config(Config::from_url(url).unwrap())
        .build()
        .unwrap();
    client.init().await.unwrap();
    client
}

/// Whether the Redis on `port` is ready: PING answers PONG, or NOAUTH when the
/// default user is off (but not LOADING or another error).
pub async fn ping(port: u16) -> bool {
    let attempt = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        stream.write_all(b"PING\r\n").await.ok()?;
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line).await.ok()?;
        Some(line == "+PONG\r\n" || line.starts_with("-NOAUTH"))
    };
    tokio::time::timeout(Duration::from_secs(1), attempt)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

/// A put (with the global version) and a get, to show an opened store works.
pub async fn round_trip(store: &RedisStore) {
    let user = unique_user();
    let item = KeyValue {
        key: "k".into(),
        version: 0,
        value: Bytes::from_static(b"v"),
    };
    store
        .put(
            &user,
            PutObjectRequest {
                store_id: "s".into(),
                global_version: Some(0),
                transaction_items: vec![item],
                delete_items: vec![],
            },
        )
        .await
        .unwrap();
    let got = store
        .get(
            &user,
            GetObjectRequest {
                store_id: "s".into(),
                key: "k".into(),
            },
        )
        .await
        .unwrap()
        .value
        .unwrap();
    assert_eq!((got.version, &got.value[..]), (1, &b"v"[..]));
}
