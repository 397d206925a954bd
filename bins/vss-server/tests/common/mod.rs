//! Starting vss-server in-process on a free loopback port.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::{Arc, Mutex};

use tokio::sync::{oneshot, Notify};
use tokio::task::JoinHandle;
use vss_core::proto::{
    DeleteObjectRequest, DeleteObjectResponse, GetObjectRequest, GetObjectResponse,
    ListKeyVersionsRequest, ListKeyVersionsResponse, PutObjectRequest, PutObjectResponse,
};
use vss_core::{KvStore, MemoryStore, UserToken, VssError};
use vss_http::ServeOutcome;
use vss_server::{BackendConfig, Config, Server, ServerError};

pub mod balancer;
pub mod child;

/// The credentials and region of the local DynamoDB-API server, for child processes.
pub const AWS_ENV: &[(&str, &str)] = &[
    ("AWS_ACCESS_KEY_ID", "test"),
    ("AWS_SECRET_ACCESS_KEY", "test"),
    ("AWS_REGION", "us-east-1"),
];

/// The configuration vss-server reads from the config file `file` alone, with
/// the local DynamoDB-API server's credentials (as [`AWS_ENV`] gives children).
pub fn config_from_file(file: &Path) -> Config {
    let mut config =
        Config::from_sources(["vss-server", "--config", file.to_str().unwrap()], &|_| {
            None
        })
        .unwrap();
    if let BackendConfig::DynamoDb(settings) = &mut config.backend {
        settings.credentials = Some(vss_server::backend::AwsCredentials {
            access_key_id: "test".into(),
            secret_access_key: "test".into(),
        });
    }
    config
}

pub struct Running {
    pub url: String,
    pub addr: std::net::SocketAddr,
    /// The operations listener (`/metrics`, probes), when it has its own address.
    pub operations_addr: Option<std::net::SocketAddr>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<ServeOutcome, ServerError>>>,
}

impl Running {
    pub async fn stop(mut self) -> ServeOutcome {
        self.trigger_stop();
        self.task.take().unwrap().await.unwrap().unwrap()
    }

    pub fn trigger_stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    pub async fn finished(mut self) -> Result<ServeOutcome, ServerError> {
        self.task.take().unwrap().await.unwrap()
    }
}

/// A loopback config on port 0 with the given backend.
pub fn config(backend: BackendConfig) -> Config {
    Config {
        bind_address: "127.0.0.1:0".parse().unwrap(),
        backend,
        ..Config::default()
    }
}

/// The SQLite backend on a file under `dir` (the memory backend in builds without SQLite).
pub fn sqlite(dir: &Path) -> BackendConfig {
    if cfg!(feature = "sqlite") {
        BackendConfig::Sqlite(vss_server::backend::SqliteSettings {
            path: dir.join("vss.sqlite3"),
            synchronous_full: false,
        })
    } else {
        BackendConfig::Memory
    }
}

async fn serve(server: Server) -> Running {
    let url = server.url();
    let addr = server.local_addr();
    let operations_addr = server.operations_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server.serve(async move {
        let _ = stopped.await;
    }));
    Running {
        url,
        addr,
        operations_addr,
        stop: Some(stop),
        task: Some(task),
    }
}

pub async fn start(config: Config) -> Running {
    serve(Server::start(config).await.unwrap()).await
}

pub async fn start_with_store(config: Config, store: Arc<dyn KvStore>) -> Running {
    serve(Server::start_with_store(config, store).await.unwrap()).await
}

pub const PRIVATE_PEM: &str =
    include_str!("../../../../crates/vss-auth/tests/fixtures/jwt/rs256-private.pem");
pub const PUBLIC_PEM: &str =
    include_str!("../../../../crates/vss-auth/tests/fixtures/jwt/rs256-public.pem");
pub const RSA1024_PUBLIC_PEM: &str =
    include_str!("../../../../crates/vss-auth/tests/fixtures/jwt/rsa1024-public.pem");

pub fn token(sub: &str) -> String {
    vss_auth::JwtSigner::from_private_pem(PRIVATE_PEM)
        .unwrap()
        .token(sub, std::time::Duration::from_secs(3600))
        .unwrap()
}

/// The type of [`ldk_policy!`]'s policy for the vss-client-ng crate `$client`
/// (0.6 as `vss_client_ng`, 0.4 as `vss_client_ng_04`).
macro_rules! ldk_policy_type {
    ($client:ident) => {
        $client::util::retry::FilteredRetryPolicy<
            $client::util::retry::MaxAttemptsRetryPolicy<
                $client::util::retry::ExponentialBackoffRetryPolicy<$client::error::VssError>,
            >,
            Box<dyn Fn(&$client::error::VssError) -> bool + Send + Sync>,
        >
    };
}

/// ldk-node's retry policy, shortened, in the vss-client-ng crate `$client`:
/// retry transport and server errors, never the answers a wallet believes.
macro_rules! ldk_policy {
    ($client:ident) => {{
        use $client::error::VssError as ClientError;
        use $client::util::retry::{ExponentialBackoffRetryPolicy, RetryPolicy};
        ExponentialBackoffRetryPolicy::new(std::time::Duration::from_millis(10))
            .with_max_attempts(3)
            .skip_retry_on_error(Box::new(|e: &ClientError| {
                matches!(
                    e,
                    ClientError::NoSuchKeyError(..)
                        | ClientError::InvalidRequestError(..)
                        | ClientError::ConflictError(..)
                )
            }) as _)
    }};
}

/// The retry policy of vss-client-ng (0.6) the tests use.
pub type ClientPolicy = ldk_policy_type!(vss_client_ng);

/// ldk-node's policy (see [`ldk_policy!`]).
pub fn client_policy() -> ClientPolicy {
    ldk_policy!(vss_client_ng)
}

/// A key as ldk-node makes them: 600 characters of `[A-Za-z0-9+/#]`, distinct for each `n`.
pub fn ldk_key(n: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/#";
    let mut key: String = format!("{n:04}#");
    let mut x = n as u64 + 1;
    while key.len() < 600 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        key.push(ALPHABET[(x >> 33) as usize % ALPHABET.len()] as char);
    }
    key
}

/// A plain HTTP/1.1 answer: status, headers (names lower-case) and body.
#[derive(Debug)]
pub struct PlainAnswer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl PlainAnswer {
    /// The first header named `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// `METHOD path` with `headers` and `body` on a fresh connection to `addr`
/// (`Connection: close`), read to the end: probes, `/metrics`, odd requests.
/// Status 0 means the connection was closed without an answer.
pub async fn plain_request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> PlainAnswer {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let mut raw = Vec::new();
    if stream.write_all(head.as_bytes()).await.is_ok() && stream.write_all(body).await.is_ok() {
        // A connection reset after a refusal reads as nothing.
        let _ = stream.read_to_end(&mut raw).await;
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    // 0: closed without an answer (refused by a connection limit, say).
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    PlainAnswer {
        status,
        headers,
        body: body.to_string(),
    }
}

/// `GET path` on `addr`.
pub async fn get(addr: std::net::SocketAddr, path: &str) -> PlainAnswer {
    plain_request(addr, "GET", path, &[], b"").await
}

/// Waits until `check` holds, asking again every few milliseconds, and fails
/// after `limit`: for states another process reaches in its own time (a
/// database going down or coming back, a shutdown starting).
pub async fn poll_until<F, Fut>(what: &str, limit: std::time::Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if check().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} did not happen within {limit:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// A MemoryStore whose puts wait until released, recording what happened in order.
pub struct HeldStore {
    pub inner: MemoryStore,
    entered: Mutex<Option<oneshot::Sender<()>>>,
    pub release: Notify,
    events: Mutex<Vec<&'static str>>,
}

impl HeldStore {
    pub fn new() -> (Arc<Self>, oneshot::Receiver<()>) {
        let (entered, entered_rx) = oneshot::channel();
        let store = Arc::new(HeldStore {
            inner: MemoryStore::new(),
            entered: Mutex::new(Some(entered)),
            release: Notify::new(),
            events: Mutex::new(Vec::new()),
        });
        (store, entered_rx)
    }

    pub fn event(&self, what: &'static str) {
        self.events.lock().unwrap().push(what);
    }

    pub fn events(&self) -> Vec<&'static str> {
        self.events.lock().unwrap().clone()
    }
}

#[async_trait::async_trait]
impl KvStore for HeldStore {
    async fn get(
        &self,
        user: &UserToken,
        req: GetObjectRequest,
    ) -> Result<GetObjectResponse, VssError> {
        self.inner.get(user, req).await
    }
    async fn put(
        &self,
        user: &UserToken,
        req: PutObjectRequest,
    ) -> Result<PutObjectResponse, VssError> {
        self.event("put started");
        let released = self.release.notified();
        if let Some(entered) = self.entered.lock().unwrap().take() {
            let _ = entered.send(());
        }
        released.await;
        let result = self.inner.put(user, req).await;
        self.event("put finished");
        result
    }
    async fn delete(
        &self,
        user: &UserToken,
        req: DeleteObjectRequest,
    ) -> Result<DeleteObjectResponse, VssError> {
        self.inner.delete(user, req).await
    }
    async fn list_key_versions(
        &self,
        user: &UserToken,
        req: ListKeyVersionsRequest,
    ) -> Result<ListKeyVersionsResponse, VssError> {
        self.inner.list_key_versions(user, req).await
    }
    async fn close(&self) -> Result<(), VssError> {
        self.event("closed");
        Ok(())
    }
}
