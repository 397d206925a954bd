//! # vss-server: the VSS server as a library
//!
//! The `vss-server` binary is a thin shell around this crate, so tests (and
//! anyone embedding the server) can start it in-process:
//!
//! ```no_run
//! use vss_server::{Config, Server};
//!
//! # async fn example() -> Result<(), vss_server::ServerError> {
//! let mut config = Config::default();
//! config.bind_address = "127.0.0.1:0".parse().unwrap(); // any free port
//! let server = Server::start(config).await?;
//! println!("serving {}", server.url());
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! # drop(stop);
//! server.serve(async { let _ = stopped.await; }).await?;
//! # Ok(())
//! # }
//! ```
//!
//! [`Config`] comes from flags, `VSS_*` variables and a TOML file
//! ([`Config::load`]); [`settings`] is how every setting is declared and read,
//! [`backend`] holds the storage backends compiled in.

#![warn(missing_docs)]

pub mod admin;
pub mod archive;
pub mod backend;
pub mod config;
pub mod observe;
pub mod settings;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use vss_auth::{
    JwtAuthorizer, LnurlAuthConfig, LnurlAuthIssuer, MultiAuthorizer, SigsAuthorizer,
    SpentChallenges,
};
use vss_core::metered::Metered;
use vss_core::KvStore;
use vss_core::Quotas;
use vss_http::{Authorizer, NoopAuthorizer, ServeOptions, ServeOutcome, TlsConfig, VssService};

pub use backend::BackendConfig;
pub use config::{AuthConfig, AuthMethods, Cli, Config, ConfigError};

/// Why the server could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Authentication is off and the address is reachable from other machines.
    #[error(
        "refusing to listen on {0} without authentication: choose methods with \
         VSS_AUTH / server_config.auth / --auth (jwt, sigs, lnurl) or configure a JWT key \
         (VSS_JWT_RSA_PEM / jwt_auth_config.rsa_pem, or VSS_JWT_RSA_PEM_FILE / --jwt-rsa-pem-file), \
         listen on a loopback address such as 127.0.0.1, or pass --allow-unauthenticated \
         (VSS_ALLOW_UNAUTHENTICATED=true) if every client of this address may read and write \
         the data of every other"
    )]
    UnauthenticatedPublicBind(SocketAddr),
    /// LNURL-auth on a non-loopback address without a public URL: its
    /// callback would be `http://` + Host, so behind a TLS proxy the signed
    /// answer and the issued token would travel in cleartext.
    #[error(
        "LNURL-auth is on and the server listens on {0}, which is not a loopback address, but \
         lnurl_auth_config.public_url (VSS_LNURL_AUTH_PUBLIC_URL, --lnurl-auth-public-url) is \
         not set: without it the callback given to wallets is http:// + the Host header, which \
         behind a TLS proxy sends the signed login and the issued token in cleartext. Set it to \
         the issuer's https:// URL as wallets reach it"
    )]
    LnurlWithoutPublicUrl(SocketAddr),
    /// The TLS certificate or key could not be used.
    #[error(
        "TLS (server_config.tls_cert_file / VSS_TLS_CERT_FILE, server_config.tls_key_file / \
         VSS_TLS_KEY_FILE): {0}"
    )]
    Tls(#[from] vss_http::TlsError),
    /// A signal handler could not be installed.
    #[error("cannot listen for SIGHUP (TLS reloads): {0}")]
    Signal(std::io::Error),
    /// The JWT key was refused.
    #[error("invalid JWT configuration: {0}")]
    Jwt(#[from] vss_auth::JwtConfigError),
    /// The LNURL-auth issuer could not be set up.
    #[error("invalid LNURL-auth configuration: {0}")]
    LnurlAuth(String),
    /// An endpoint could not be added (its path is taken).
    #[error("cannot serve an endpoint: {0}")]
    Endpoint(String),
    /// The backend could not be opened.
    #[error(transparent)]
    Backend(#[from] backend::BackendError),
    /// Quotas are configured over a store that does not enforce them.
    #[error(
        "quotas are configured (quota_config), but the {0} backend here does not enforce them: \
         remove the quota settings or use a backend that enforces quotas"
    )]
    Quotas(&'static str),
    /// An address could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The configured address.
        address: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The store failed to close at shutdown.
    #[error("closing the store failed: {0}")]
    Close(vss_core::VssError),
}

/// A server that is listening but not yet serving.
pub struct Server {
    listener: TcpListener,
    local_addr: SocketAddr,
    service: VssService,
    /// The operations listener (metrics and probes), when it has its own address.
    operations: Option<(TcpListener, VssService)>,
    store: Arc<dyn KvStore>,
    options: ServeOptions,
    /// The LNURL-auth issuer, whose spent challenges are swept while serving.
    lnurl: Option<Arc<LnurlAuthIssuer>>,
    /// HTTPS on the main listener.
    tls: Option<TlsConfig>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Checks the configuration, opens the configured backend and binds the address.
    pub async fn start(config: Config) -> Result<Server, ServerError> {
        let auth = authorizer(&config)?;
        let tls = tls_config(&config)?;
        for decision in &config.decisions {
            tracing::info!("{decision}");
        }
        let store = backend::open(&config.backend).await?;
        if !config.backend.is_persistent() {
            tracing::warn!(
                backend = config.backend.name(),
                "this backend is not persistent: all data is lost when the server stops"
            );
        }
        Self::listen(config, store, auth, tls).await
    }

    /// Like [`Server::start`], on a store the caller opened (the configured
    /// backend is ignored). The store is closed when serving ends. It is
    /// measured like the configured backends would be ([`Metered`]).
    pub async fn start_with_store(
        config: Config,
        store: Arc<dyn KvStore>,
    ) -> Result<Server, ServerError> {
        let auth = authorizer(&config)?;
        let tls = tls_config(&config)?;
        Self::listen(config, store, auth, tls).await
    }

    async fn listen(
        config: Config,
        store: Arc<dyn KvStore>,
        (authorizer, issuer): Auth,
        tls: Option<TlsConfig>,
    ) -> Result<Server, ServerError> {
        let limited = match Quotas::new(Arc::clone(&store), config.quotas.clone()) {
            Ok(limited) => limited,
            Err(_) => {
                close_store(&store).await.ok();
                return Err(ServerError::Quotas(config.backend.name()));
            }
        };
        if !config.quotas.is_unlimited() {
            tracing::info!(
                max_bytes_per_user = ?config.quotas.default.max_bytes,
                max_keys_per_user = ?config.quotas.default.max_keys,
                overrides = config.quotas.users.len(),
                "per-user quotas"
            );
        }
        let measured: Arc<dyn KvStore> = Arc::new(Metered::new(limited));
        let mut service = VssService::new(measured, authorizer, config.http.clone());
        let mut lnurl = None;
        if let Some(pending) = issuer {
            // Spent challenges go to the backend itself (no quota, not counted as
            // requests), shared by every instance on it.
            let issuer = SpentChallenges::new(Arc::clone(&store))
                .map_err(|err| ServerError::LnurlAuth(err.to_string()))
                .and_then(|spent| {
                    LnurlAuthIssuer::new(&pending.private_key_pem, pending.config, spent)
                        .map_err(ServerError::from)
                });
            let issuer = match issuer {
                Ok(issuer) => Arc::new(issuer),
                Err(err) => {
                    close_store(&store).await.ok();
                    return Err(err);
                }
            };
            let endpoint: Arc<dyn vss_http::Endpoint> = issuer.clone();
            service = match service.with_endpoint(&pending.path, endpoint) {
                Ok(service) => service,
                Err(reason) => {
                    close_store(&store).await.ok();
                    return Err(ServerError::LnurlAuth(reason));
                }
            };
            lnurl = Some(issuer);
        }
        let metrics = match config.metrics {
            true => observe::start(config.backend.name(), &auth_methods(&config.auth)),
            false => None,
        };
        let mut operations = None;
        match (metrics, config.metrics_bind_address) {
            (Some(endpoint), Some(address)) => {
                let ops = service
                    .operations_only()
                    .with_endpoint(observe::METRICS_PATH, endpoint)
                    .map_err(ServerError::Endpoint)?;
                operations = Some((bind(address, &store).await?, ops));
            }
            (Some(endpoint), None) => {
                service = service
                    .with_endpoint(observe::METRICS_PATH, endpoint)
                    .map_err(ServerError::Endpoint)?;
            }
            (None, _) => {}
        }
        let listener = bind(config.bind_address, &store).await?;
        let local_addr = listener.local_addr().map_err(|source| ServerError::Bind {
            address: config.bind_address,
            source,
        })?;
        if config.shutdown_grace < config.http.request_timeout() {
            tracing::warn!(
                shutdown_grace = ?config.shutdown_grace,
                request_timeout = ?config.http.request_timeout(),
                "shutdown_grace_secs is shorter than request_timeout_secs: a request still \
                 running when the grace runs out at shutdown is dropped unanswered, and its \
                 write may or may not have happened (as after a timeout); make the grace at \
                 least the request timeout to let every request end on its own"
            );
        }
        let options = ServeOptions {
            shutdown_grace: config.shutdown_grace,
            drain_delay: config.shutdown_drain,
            ..config.connections.clone()
        };
        Ok(Server {
            listener,
            local_addr,
            service,
            operations,
            store,
            options,
            lnurl,
            tls,
        })
    }

    /// The address the server listens on (with the real port when 0 was configured).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address of the operations listener (`/metrics` and the probes),
    /// when `metrics_bind_address` gives it one.
    pub fn operations_addr(&self) -> Option<SocketAddr> {
        self.operations
            .as_ref()
            .and_then(|(listener, _)| listener.local_addr().ok())
    }

    /// The base URL clients use, e.g. `http://127.0.0.1:8080/vss`
    /// (`https://` with TLS on).
    pub fn url(&self) -> String {
        format!(
            "{}://{}{}",
            if self.tls.is_some() { "https" } else { "http" },
            self.local_addr,
            self.service.config().base_path()
        )
    }

    /// The listener's TLS, when on: [`TlsConfig::reload`] reads the
    /// certificate files again (the server does so itself on SIGHUP).
    pub fn tls(&self) -> Option<&TlsConfig> {
        self.tls.as_ref()
    }

    /// Serves until `shutdown` completes, then stops accepting, lets in-flight
    /// requests finish (bounded by the configured grace), and closes the store.
    pub async fn serve<S: Future>(self, shutdown: S) -> Result<ServeOutcome, ServerError> {
        tracing::info!(url = %self.url(), "serving");
        let reloader = match self.tls.as_ref().map(|tls| reload_on_sighup(tls.clone())) {
            Some(Ok(reload)) => Some(tokio::spawn(reload)),
            Some(Err(err)) => {
                close_store(&self.store).await.ok();
                return Err(err);
            }
            None => None,
        };
        let sweeper = self
            .lnurl
            .map(|issuer| tokio::spawn(sweep_spent_challenges(issuer)));
        let tls = self.tls;
        let outcome = match self.operations {
            None => serve_main(self.listener, self.service, shutdown, self.options, tls).await,
            Some((ops_listener, ops_service)) => {
                if let Ok(address) = ops_listener.local_addr() {
                    tracing::info!(%address, "serving /metrics and the probes");
                }
                // One shutdown for both listeners.
                let (stop, receiver) = tokio::sync::watch::channel(false);
                let stopped = |mut receiver: tokio::sync::watch::Receiver<bool>| async move {
                    let _ = receiver.wait_for(|stop| *stop).await;
                };
                let main = serve_main(
                    self.listener,
                    self.service,
                    stopped(receiver.clone()),
                    self.options.clone(),
                    tls,
                );
                let ops =
                    vss_http::serve(ops_listener, ops_service, stopped(receiver), self.options);
                let signal = async move {
                    shutdown.await;
                    let _ = stop.send(true);
                };
                let ((), outcome, _) = tokio::join!(signal, main, ops);
                outcome
            }
        };
        if let Some(sweeper) = sweeper {
            sweeper.abort();
            let _ = sweeper.await;
        }
        if let Some(reloader) = reloader {
            reloader.abort();
            let _ = reloader.await;
        }
        close_store(&self.store).await?;
        tracing::info!(
            connections = outcome.connections,
            aborted = outcome.aborted,
            "shut down"
        );
        Ok(outcome)
    }
}

/// The listen backlog asked for: connections the kernel holds until they
/// are accepted (it caps this at `net.core.somaxconn`). Larger than tokio's
/// 1024, so that a burst of connections does not make others' handshakes
/// wait for a retransmission.
const LISTEN_BACKLOG: u32 = 4096;

/// Binds `address`; on failure closes the store it would have served.
async fn bind(address: SocketAddr, store: &Arc<dyn KvStore>) -> Result<TcpListener, ServerError> {
    let listen = || -> std::io::Result<TcpListener> {
        let socket = match address {
            SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
            SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
        };
        // As std's bind does: a restarted server may bind while old connections linger.
        socket.set_reuseaddr(true)?;
        socket.bind(address)?;
        socket.listen(LISTEN_BACKLOG)
    };
    match listen() {
        Ok(listener) => Ok(listener),
        Err(source) => {
            close_store(store).await.ok();
            Err(ServerError::Bind { address, source })
        }
    }
}

/// The authentication methods, as the build information names them.
fn auth_methods(auth: &AuthConfig) -> String {
    match auth {
        AuthConfig::Unauthenticated => "none".to_string(),
        AuthConfig::Methods(methods) => [
            (methods.jwt.is_some(), "jwt"),
            (methods.sigs.is_some(), "sigs"),
            (methods.lnurl.is_some(), "lnurl"),
        ]
        .iter()
        .filter(|m| m.0)
        .map(|m| m.1)
        .collect::<Vec<_>>()
        .join(","),
    }
}

async fn close_store(store: &Arc<dyn KvStore>) -> Result<(), ServerError> {
    store.close().await.map_err(|err| {
        tracing::error!(error = %err, "closing the store failed");
        ServerError::Close(err)
    })?;
    tracing::info!("store closed");
    Ok(())
}

/// Every challenge lifetime, deletes the records of spent LNURL-auth
/// challenges that no instance can accept any more. A failure is logged and
/// tried again next time: the records only take room meanwhile.
async fn sweep_spent_challenges(issuer: Arc<LnurlAuthIssuer>) {
    let every = issuer
        .config()
        .challenge_ttl
        .max(std::time::Duration::from_secs(1));
    loop {
        tokio::time::sleep(every).await;
        match issuer.sweep().await {
            Ok(0) => {}
            Ok(swept) => tracing::debug!(swept, "spent LNURL-auth challenges swept"),
            Err(err) => {
                tracing::warn!(error = %err, "sweeping spent LNURL-auth challenges failed")
            }
        }
    }
}

/// Serves the main listener, over TLS when it is on.
async fn serve_main<S: Future>(
    listener: TcpListener,
    service: VssService,
    shutdown: S,
    options: ServeOptions,
    tls: Option<TlsConfig>,
) -> ServeOutcome {
    match tls {
        Some(tls) => vss_http::serve_tls(listener, service, shutdown, options, tls).await,
        None => vss_http::serve(listener, service, shutdown, options).await,
    }
}

/// The listener's TLS, read now so that a bad file stops startup before
/// the store is opened.
fn tls_config(config: &Config) -> Result<Option<TlsConfig>, ServerError> {
    let Some(files) = &config.tls else {
        return Ok(None);
    };
    let tls = TlsConfig::from_files(&files.cert_file, &files.key_file)?;
    tracing::info!(
        cert_file = %files.cert_file.display(),
        key_file = %files.key_file.display(),
        "TLS on: HTTPS with HTTP/2 and HTTP/1.1 (ALPN); SIGHUP reloads the files"
    );
    Ok(Some(tls))
}

/// Reloads the certificate and key on every SIGHUP. A reload that fails
/// keeps the pair being served, and says why.
fn reload_on_sighup(
    tls: TlsConfig,
) -> Result<impl Future<Output = ()> + Send + 'static, ServerError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hangups = signal(SignalKind::hangup()).map_err(ServerError::Signal)?;
    Ok(async move {
        while hangups.recv().await.is_some() {
            match tls.reload() {
                Ok(()) => tracing::info!(
                    cert_file = %tls.cert_file().display(),
                    "TLS certificate reloaded"
                ),
                Err(err) => tracing::error!(
                    error = %err,
                    "TLS certificate reload failed; still serving the previous certificate"
                ),
            }
        }
    })
}

/// The LNURL-auth issuer to build once the store is open.
struct PendingIssuer {
    path: String,
    private_key_pem: String,
    config: LnurlAuthConfig,
}

/// The authorizer, and the LNURL-auth issuer to build when on.
type Auth = (Arc<dyn Authorizer>, Option<PendingIssuer>);

/// The authorizer the configuration asks for; refuses unauthenticated serving
/// on a non-loopback address unless explicitly allowed.
fn authorizer(config: &Config) -> Result<Auth, ServerError> {
    match &config.auth {
        AuthConfig::Methods(methods) => {
            if let Some(lnurl) = &methods.lnurl {
                lnurl_reachable_safely(config, lnurl)?;
            }
            methods_authorizer(methods)
        }
        AuthConfig::Unauthenticated => {
            let ip = config.bind_address.ip();
            if !ip.is_loopback() && !config.allow_unauthenticated {
                return Err(ServerError::UnauthenticatedPublicBind(config.bind_address));
            }
            tracing::warn!(
                user = NoopAuthorizer::DEFAULT_USER,
                "authentication is OFF: every request reads and writes the data of one shared \
                 user. Choose authentication (VSS_AUTH: jwt, sigs, lnurl) before serving real wallets"
            );
            Ok((Arc::new(NoopAuthorizer::default()), None))
        }
    }
}

/// The LNURL-auth callback must not lead wallets to cleartext off this
/// machine: off loopback, the public URL is required; an `http://` one to
/// another host is served but warned about.
fn lnurl_reachable_safely(
    config: &Config,
    lnurl: &config::LnurlSettings,
) -> Result<(), ServerError> {
    match &lnurl.public_url {
        None if !config.bind_address.ip().is_loopback() => {
            Err(ServerError::LnurlWithoutPublicUrl(config.bind_address))
        }
        Some(url) if url.starts_with("http://") && !is_local_url(url) => {
            tracing::warn!(
                public_url = %url,
                "lnurl_auth_config.public_url is http://: wallets send the signed login and \
                 receive their token in cleartext; use https://"
            );
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Whether an `http(s)://` URL names this machine (`localhost` or a loopback address).
fn is_local_url(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.split(':').next().unwrap_or_default(),
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn methods_authorizer(methods: &AuthMethods) -> Result<Auth, ServerError> {
    let mut multi = MultiAuthorizer::new();
    let issuer = match &methods.lnurl {
        Some(lnurl) => {
            let audience = methods.jwt.as_ref().and_then(|j| j.audience.clone());
            let issuer = methods.jwt.as_ref().and_then(|j| j.issuer.clone());
            let config = LnurlAuthConfig {
                public_url: lnurl.public_url.clone(),
                path: lnurl.path.clone(),
                token_ttl: lnurl.token_ttl,
                challenge_ttl: lnurl.challenge_ttl,
                issuer,
                audience,
            };
            tracing::info!(
                path = %lnurl.path,
                public_url = lnurl.public_url.as_deref().unwrap_or("(from the Host header)"),
                "LNURL-auth token issuer on"
            );
            Some(PendingIssuer {
                path: lnurl.path.clone(),
                private_key_pem: lnurl.private_key_pem.clone(),
                config,
            })
        }
        None => None,
    };
    if let Some(settings) = &methods.jwt {
        let mut keys = match &settings.public_keys_pem {
            Some(pem) => vss_auth::JwtKey::parse_public_pems(pem)?,
            None => Vec::new(),
        };
        if settings.key_holder_subjects {
            keys = keys
                .into_iter()
                .map(vss_auth::JwtKey::with_key_holder_subjects)
                .collect();
        }
        if let Some(issuer) = &issuer {
            keys.push(LnurlAuthIssuer::verification_key_of(
                &issuer.private_key_pem,
            )?);
        }
        let mut jwt = JwtAuthorizer::new(keys)?;
        if let Some(audience) = &settings.audience {
            jwt = jwt.with_audience(audience)?;
        }
        if let Some(iss) = &settings.issuer {
            jwt = jwt.with_issuer(iss)?;
        }
        multi = multi.with_jwt(jwt);
    }
    if let Some(sigs) = &methods.sigs {
        multi = multi.with_sigs(SigsAuthorizer::new(sigs.max_clock_skew));
    }
    tracing::info!(methods = ?multi.methods(), "authentication on");
    Ok((Arc::new(multi), issuer))
}

/// Starts the configured server and serves until `shutdown` completes.
pub async fn run<S: Future>(config: Config, shutdown: S) -> Result<ServeOutcome, ServerError> {
    Server::start(config).await?.serve(shutdown).await
}

#[cfg(test)]
mod url_tests {
    use super::is_local_url;

    #[test]
    fn local_urls_are_those_naming_this_machine() {
        for url in [
            "http://localhost/lnurl-auth",
            "http://LOCALHOST:8080/x",
            "http://127.0.0.1:3000/lnurl-auth",
            "http://[::1]:80/",
            "http://user@127.0.0.2/",
        ] {
            assert!(is_local_url(url), "{url}");
        }
        for url in [
            "http://vss.example.com/lnurl-auth",
            "http://10.0.0.1/",
            "http://[2001:db8::1]:80/",
            "http://localhost.example.com/",
            "http://127.0.0.1.example.com/",
        ] {
            assert!(!is_local_url(url), "{url}");
        }
    }
}
