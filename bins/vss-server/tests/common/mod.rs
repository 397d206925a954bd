//! Starting vss-server in-process on a free loopback port.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use vss_core::KvStore;
use vss_http::ServeOutcome;
use vss_server::{BackendConfig, Config, Server, ServerError};

pub mod child;

pub struct Running {
    pub url: String,
    pub addr: std::net::SocketAddr,
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
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server.serve(async move {
        let _ = stopped.await;
    }));
    Running {
        url,
        addr,
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
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(PRIVATE_PEM.as_bytes()).unwrap();
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &serde_json::json!({ "sub": sub, "exp": exp }),
        &key,
    )
    .unwrap()
}

/// The retry policy of vss-client-ng the tests use.
pub type ClientPolicy = vss_client_ng::util::retry::FilteredRetryPolicy<
    vss_client_ng::util::retry::MaxAttemptsRetryPolicy<
        vss_client_ng::util::retry::ExponentialBackoffRetryPolicy<vss_client_ng::error::VssError>,
    >,
    Box<dyn Fn(&vss_client_ng::error::VssError) -> bool + Send + Sync>,
>;

/// ldk-node's policy, shortened: retry transport and server errors, never the
/// answers a wallet believes.
pub fn client_policy() -> ClientPolicy {
    use vss_client_ng::error::VssError as ClientError;
    use vss_client_ng::util::retry::{ExponentialBackoffRetryPolicy, RetryPolicy};
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
