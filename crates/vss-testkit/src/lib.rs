//! # vss-testkit: a VSS server for a wallet's own tests
//!
//! [`TestServer`] runs vss-server, the same code a deployment runs, on a random
//! loopback port: in memory (the default) or on a temporary SQLite file, without
//! authentication or with JWT or signature auth, and stops it when dropped. Point
//! your wallet (ldk-node's `VssStore`, `vss-client-ng`'s `VssClient`) at
//! [`TestServer::base_url`]; [`TestServer::headers_for`] gives the headers that
//! authenticate any user you name.
//!
//! From `#[tokio::test]` (the server runs as a task of the test's runtime):
//!
//! ```no_run
//! # async fn example() -> Result<(), vss_testkit::Error> {
//! use vss_testkit::{Auth, TestServer};
//!
//! let server = TestServer::builder().auth(Auth::Jwt).start().await?;
//! let headers = server.headers_for("alice"); // Authorization: Bearer <jwt for alice>
//! // VssClient::new_with_headers(server.base_url().to_string(), retry_policy,
//! //     Arc::new(FixedHeaders::new(headers)))
//! server.stop().await;
//! # Ok(())
//! # }
//! ```
//!
//! From a plain `#[test]`, or code that blocks, [`Builder::start_blocking`] runs
//! the server on a thread and runtime of its own.
//!
//! A test server is for tests: it listens on 127.0.0.1 only, keeps no data after
//! it stops, and trusts a JWT key it made for itself.
#![warn(missing_docs)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;
use vss_core::KvStore;
use vss_server::backend::SqliteSettings;
use vss_server::config::{AuthMethods, SigsSettings};
use vss_server::{AuthConfig, BackendConfig, Config, Server};

/// Where the server keeps its data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Storage {
    /// vss-core's in-memory store: fastest, gone when the server stops.
    #[default]
    Memory,
    /// SQLite (durable settings) on a file in a temporary directory, removed
    /// when the server is dropped (after its thread ends, with
    /// [`Builder::start_blocking`]; await [`TestServer::stop`] to have a server
    /// in your runtime close the file first): the default of a self-hosted server.
    Sqlite,
}

/// How clients authenticate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Auth {
    /// No authentication: every request is one shared user.
    #[default]
    None,
    /// `Authorization: Bearer <JWT>` signed by a key the server made for itself;
    /// [`TestServer::jwt_for`] mints them. The user is the token's `sub`.
    Jwt,
    /// The signature header of `vss-client-ng`'s `SigsAuthProvider` (ldk-node's
    /// `build_with_vss_store_and_header_provider`): any key works, and its user is
    /// the public key in hex.
    Sigs,
}

/// Why a test server did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The temporary directory, the thread or the runtime.
    #[error("vss-testkit: {0}")]
    Io(#[from] std::io::Error),
    /// The server refused to start (its message names the cause).
    #[error("vss-testkit: the server did not start: {0}")]
    Server(String),
    /// Making or loading the JWT key.
    #[error("vss-testkit: the JWT key: {0}")]
    Key(String),
}

/// How long a stopping server lets requests in flight finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);
/// How long a minted JWT is valid.
const TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

/// Chooses the storage and authentication of a [`TestServer`], then starts it.
#[derive(Default)]
pub struct Builder {
    storage: Storage,
    auth: Auth,
    store: Option<Arc<dyn KvStore>>,
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("storage", &self.storage)
            .field("auth", &self.auth)
            .field("custom_store", &self.store.is_some())
            .finish()
    }
}

impl Builder {
    /// Where the data lives (default: [`Storage::Memory`]).
    pub fn storage(mut self, storage: Storage) -> Self {
        self.storage = storage;
        self
    }

    /// How clients authenticate (default: [`Auth::None`]).
    pub fn auth(mut self, auth: Auth) -> Self {
        self.auth = auth;
        self
    }

    /// Serves this store instead of [`Builder::storage`]'s: a custom backend
    /// under the real HTTP layer.
    pub fn store(mut self, store: Arc<dyn KvStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Starts the server as a task of the current tokio runtime (call it from
    /// `#[tokio::test]` or any async code). A single-threaded runtime serves
    /// while the test awaits, so do not block it while the server must answer.
    pub async fn start(self) -> Result<TestServer, Error> {
        let (config, parts) = self.prepare()?;
        let store = self.store;
        let server = start_server(config, store).await?;
        let at = (server.local_addr(), server.url());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = server
                .serve(async move {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(parts.into_server(at, Running::Task(task), stop))
    }

    /// Starts the server on a thread with a runtime of its own, for plain
    /// `#[test]` functions and code that blocks. Dropping the server stops it
    /// and waits for the thread.
    pub fn start_blocking(self) -> Result<TestServer, Error> {
        let (config, parts) = self.prepare()?;
        let store = self.store;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("vss-testkit".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let server = match start_server(config, store).await {
                        Ok(server) => server,
                        Err(err) => {
                            let _ = started_tx.send(Err(err));
                            return;
                        }
                    };
                    let _ = started_tx.send(Ok((server.local_addr(), server.url())));
                    let _ = server
                        .serve(async move {
                            let _ = stopped.await;
                        })
                        .await;
                });
            })?;
        match started_rx.recv() {
            Ok(Ok(at)) => Ok(parts.into_server(at, Running::Thread(Some(thread)), stop)),
            Ok(Err(err)) => Err(err),
            Err(_) => Err(Error::Server("the server's thread stopped".into())),
        }
    }

    /// The server's configuration and what the [`TestServer`] keeps.
    fn prepare(&self) -> Result<(Config, Parts), Error> {
        let dir = match (self.storage, &self.store) {
            (Storage::Sqlite, None) => {
                Some(tempfile::Builder::new().prefix("vss-testkit").tempdir()?)
            }
            _ => None,
        };
        let sqlite_path = dir.as_ref().map(|d| d.path().join("vss.sqlite3"));
        let backend = match &sqlite_path {
            Some(path) => BackendConfig::Sqlite(SqliteSettings {
                path: path.clone(),
                synchronous_full: true,
            }),
            None => BackendConfig::Memory,
        };
        let (auth, credentials) = match self.auth {
            Auth::None => (AuthConfig::Unauthenticated, Credentials::None),
            Auth::Jwt => {
                let key = JwtSigner::generate()?;
                (
                    AuthConfig::jwt(key.public_pem.clone()),
                    Credentials::Jwt(Box::new(key)),
                )
            }
            Auth::Sigs => (
                AuthConfig::Methods(AuthMethods {
                    jwt: None,
                    sigs: Some(SigsSettings {
                        max_clock_skew: vss_auth::DEFAULT_SIGS_MAX_CLOCK_SKEW,
                    }),
                    lnurl: None,
                }),
                Credentials::Sigs,
            ),
        };
        let config = Config {
            bind_address: SocketAddr::from(([127, 0, 0, 1], 0)),
            backend,
            auth,
            shutdown_grace: SHUTDOWN_GRACE,
            metrics: false,
            ..Config::default()
        };
        Ok((
            config,
            Parts {
                credentials,
                dir,
                sqlite_path,
            },
        ))
    }
}

async fn start_server(config: Config, store: Option<Arc<dyn KvStore>>) -> Result<Server, Error> {
    let started = match store {
        Some(store) => Server::start_with_store(config, store).await,
        None => Server::start(config).await,
    };
    started.map_err(|e| Error::Server(e.to_string()))
}

/// What a [`TestServer`] keeps besides the running server.
struct Parts {
    credentials: Credentials,
    dir: Option<tempfile::TempDir>,
    sqlite_path: Option<PathBuf>,
}

impl Parts {
    fn into_server(
        self,
        (address, base_url): (SocketAddr, String),
        running: Running,
        stop: oneshot::Sender<()>,
    ) -> TestServer {
        TestServer {
            address,
            base_url,
            credentials: self.credentials,
            sqlite_path: self.sqlite_path,
            running,
            stop: Some(stop),
            _dir: self.dir,
        }
    }
}

enum Running {
    Task(tokio::task::JoinHandle<()>),
    Thread(Option<std::thread::JoinHandle<()>>),
}

enum Credentials {
    None,
    Jwt(Box<JwtSigner>),
    Sigs,
}

/// An Ed25519 key the server trusts and the test signs with.
struct JwtSigner {
    public_pem: String,
    private_pem: String,
    signer: vss_auth::JwtSigner,
}

impl JwtSigner {
    fn generate() -> Result<Self, Error> {
        let mut seed = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed)
            .map_err(|_| Error::Key("the system's random source failed".into()))?;
        let pair = ring::signature::Ed25519KeyPair::from_seed_unchecked(&seed)
            .map_err(|e| Error::Key(e.to_string()))?;
        let public = ring::signature::KeyPair::public_key(&pair)
            .as_ref()
            .to_vec();
        // RFC 8410: PKCS#8 (v1) of the seed, and SubjectPublicKeyInfo of the public key.
        const PKCS8_PREFIX: [u8; 16] = [
            0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
            0x04, 0x20,
        ];
        const SPKI_PREFIX: [u8; 12] = [
            0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
        ];
        let private_pem = pem("PRIVATE KEY", &[&PKCS8_PREFIX[..], &seed].concat());
        let public_pem = pem("PUBLIC KEY", &[&SPKI_PREFIX[..], &public].concat());
        let signer = vss_auth::JwtSigner::from_private_pem(&private_pem)
            .map_err(|e| Error::Key(e.to_string()))?;
        Ok(JwtSigner {
            public_pem,
            private_pem,
            signer,
        })
    }

    fn token(&self, user: &str) -> String {
        // Signing plain claims with a key that loaded cannot fail.
        self.signer.token(user, TOKEN_LIFETIME).unwrap_or_default()
    }
}

fn pem(label: &str, der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    format!("-----BEGIN {label}-----\n{body}\n-----END {label}-----\n")
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The secp256k1 key [`TestServer::headers_for`] signs with for `user` under
/// [`Auth::Sigs`]: derived from the name, so the same name is the same user.
pub fn sigs_secret_key(user: &str) -> vss_auth::secp256k1::SecretKey {
    let mut digest: [u8; 32] = Sha256::digest(format!("vss-testkit user {user}")).into();
    loop {
        // All but a negligible share of 32-byte strings are keys; hash again otherwise.
        if let Ok(key) = vss_auth::secp256k1::SecretKey::from_slice(&digest) {
            return key;
        }
        digest = Sha256::digest(digest).into();
    }
}

/// A running VSS server for tests; stops when dropped.
pub struct TestServer {
    address: SocketAddr,
    base_url: String,
    credentials: Credentials,
    sqlite_path: Option<PathBuf>,
    running: Running,
    stop: Option<oneshot::Sender<()>>,
    _dir: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for TestServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestServer")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl TestServer {
    /// Chooses storage and authentication before starting.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// An in-memory server without authentication, as a task of the current
    /// runtime ([`Builder::start`]).
    pub async fn start() -> Result<TestServer, Error> {
        Builder::default().start().await
    }

    /// An in-memory server without authentication, on its own thread
    /// ([`Builder::start_blocking`]).
    pub fn start_blocking() -> Result<TestServer, Error> {
        Builder::default().start_blocking()
    }

    /// The base URL clients take, such as `http://127.0.0.1:40123/vss`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The address the server listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The SQLite database file, under [`Storage::Sqlite`].
    pub fn sqlite_path(&self) -> Option<&Path> {
        self.sqlite_path.as_deref()
    }

    /// A JWT for `user` (valid for a day), under [`Auth::Jwt`].
    pub fn jwt_for(&self, user: &str) -> Option<String> {
        match &self.credentials {
            Credentials::Jwt(signer) => Some(signer.token(user)),
            _ => None,
        }
    }

    /// The private key (PKCS#8 PEM, Ed25519) that signs this server's JWTs,
    /// under [`Auth::Jwt`]: for tools that mint their own users, such as
    /// `vss-conformance --jwt-private-key` or `vss-bench --jwt-private-key`.
    pub fn jwt_private_key_pem(&self) -> Option<&str> {
        match &self.credentials {
            Credentials::Jwt(signer) => Some(&signer.private_pem),
            _ => None,
        }
    }

    /// The headers that authenticate as `user`: a JWT whose `sub` is `user`
    /// under [`Auth::Jwt`]; a signature header by [`sigs_secret_key`]`(user)`
    /// under [`Auth::Sigs`] (valid for a day; the server sees the user as that
    /// key's public key); none without authentication. For `FixedHeaders` of
    /// `vss-client-ng`, or any HTTP client.
    pub fn headers_for(&self, user: &str) -> HashMap<String, String> {
        let value = match &self.credentials {
            Credentials::None => return HashMap::new(),
            Credentials::Jwt(signer) => format!("Bearer {}", signer.token(user)),
            Credentials::Sigs => vss_auth::sign(&sigs_secret_key(user), unix_now()),
        };
        HashMap::from([("Authorization".to_string(), value)])
    }

    /// Stops the server and waits until it no longer listens (dropping it
    /// stops it too, without waiting when it runs in the test's runtime).
    pub async fn stop(mut self) {
        self.signal_stop();
        match &mut self.running {
            Running::Task(task) => {
                let _ = task.await;
            }
            Running::Thread(thread) => {
                if let Some(thread) = thread.take() {
                    let _ = tokio::task::spawn_blocking(move || thread.join()).await;
                }
            }
        }
    }

    fn signal_stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.signal_stop();
        if let Running::Thread(thread) = &mut self.running {
            if let Some(thread) = thread.take() {
                let _ = thread.join();
            }
        }
    }
}
