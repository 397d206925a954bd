//! Configuration: command-line flags over `VSS_*` environment variables over a
//! TOML file over defaults.
//!
//! Every setting is one field of one `clap::Args` struct (see
//! [`crate::settings`] for how a field declares its flag, variable, file key,
//! parser and default): the server's own here, authentication in [`auth`],
//! each backend's in its module of [`crate::backend`]. [`Cli`] gathers them;
//! [`Config::from_sources`] reads them and runs the checks that span several
//! settings. `CONFIG.md` documents every setting (a test keeps it complete).

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches};
use vss_http::{HttpConfig, ServeOptions};

pub mod auth;
pub mod quota;
pub mod rate;

pub use crate::settings::{ConfigError, Origin, Origins, Setting};
pub use auth::{AuthConfig, AuthMethods, AuthSettings, JwtSettings, LnurlSettings, SigsSettings};
pub use quota::QuotaSettings;
pub use rate::RateLimitSettings;

use crate::backend::{self, BackendConfig, BackendSettings};
use crate::settings::{self, parse, Sources, CONFIG_ARG, CONFIG_PATH_ARG};

/// The environment variable naming the config file (also `--config`).
pub const CONFIG_FILE_ENV: &str = "VSS_CONFIG_FILE";

/// The default listen address: loopback only.
pub const DEFAULT_BIND_ADDRESS: &str = "127.0.0.1:8080";
/// The default log filter.
pub const DEFAULT_LOG_LEVEL: &str = "info";
/// The default wait of a request for its share of the body budget.
pub const DEFAULT_BODY_BUDGET_WAIT: Duration = Duration::from_secs(10);
/// The default wait for in-flight requests at shutdown.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The VSS server: serves the VSS protocol over HTTP on the storage backend
/// the configuration picks.
///
/// Every setting can come from a flag, a `VSS_*` environment variable or the
/// TOML file given with --config; flags win over the environment, which wins
/// over the file. With no configuration at all it serves
/// http://127.0.0.1:8080/vss without authentication on the default backend.
/// See CONFIG.md for every setting.
#[derive(clap::Parser, Debug, Clone)]
#[command(name = "vss-server", version)]
pub struct Cli {
    /// TOML configuration file
    #[arg(id = CONFIG_ARG, long, short = 'c', value_name = "FILE", env = CONFIG_FILE_ENV)]
    pub config: Option<PathBuf>,

    /// TOML configuration file, as the reference server takes it (the same as --config)
    #[arg(id = CONFIG_PATH_ARG, value_name = "CONFIG", conflicts_with = CONFIG_ARG)]
    pub config_path: Option<PathBuf>,

    /// The server's own settings.
    #[command(flatten)]
    pub server: ServerSettings,

    /// Authentication.
    #[command(flatten)]
    pub auth: AuthSettings,

    /// Per-user quotas.
    #[command(flatten)]
    pub quota: QuotaSettings,

    /// Rate limits.
    #[command(flatten)]
    pub rate_limit: RateLimitSettings,

    /// Logging.
    #[command(flatten)]
    pub log: LogSettings,

    /// The backends' settings (only the chosen backend's are read).
    #[command(flatten)]
    pub backends: BackendSettings,
}

/// `[server_config]`: where and how the server listens, and its backend.
#[derive(clap::Args, Debug, Clone, PartialEq, Eq)]
pub struct ServerSettings {
    /// Address to listen on
    #[arg(id = "server_config.bind_address", long = "bind-address", env = "VSS_BIND_ADDRESS",
          value_name = "IP:PORT", default_value = DEFAULT_BIND_ADDRESS, value_parser = socket_address)]
    pub bind_address: SocketAddr,

    /// Path the four calls are served under
    #[arg(id = "server_config.base_path", long = "base-path", env = "VSS_BASE_PATH",
          value_name = "PATH", default_value = vss_http::DEFAULT_BASE_PATH, value_parser = base_path)]
    pub base_path: String,

    /// Largest request body in bytes; larger ones get 413
    #[arg(id = "server_config.max_request_body_size", long = "max-request-body-size",
          env = "VSS_MAX_REQUEST_BODY_SIZE", value_name = "BYTES", default_value = "1073741824",
          value_parser = body_size)]
    pub max_request_body_size: usize,

    /// Bytes of request bodies in flight at once (a memory budget); a request waits for its share, 0 turns the budget off [default: a quarter of the memory]
    #[arg(id = "server_config.max_body_bytes_in_flight", long = "max-body-bytes-in-flight",
          env = "VSS_MAX_BODY_BYTES_IN_FLIGHT", value_name = "BYTES", value_parser = parse::whole_number)]
    pub max_body_bytes_in_flight: Option<u64>,

    /// Seconds a request waits for its share of the body budget before it is answered 503 [default: 10, or half the request timeout when that is shorter]
    #[arg(id = "server_config.body_budget_wait_secs", long = "body-budget-wait-secs",
          env = "VSS_BODY_BUDGET_WAIT_SECS", value_name = "SECS",
          value_parser = parse::positive_secs)]
    pub body_budget_wait: Option<Duration>,

    /// Seconds one request may take before it is answered 500
    #[arg(id = "server_config.request_timeout_secs", long = "request-timeout-secs",
          env = "VSS_REQUEST_TIMEOUT_SECS", value_name = "SECS", default_value = "30",
          value_parser = parse::positive_secs)]
    pub request_timeout: Duration,

    /// Seconds in-flight requests get to finish at shutdown
    #[arg(id = "server_config.shutdown_grace_secs", long = "shutdown-grace-secs",
          env = "VSS_SHUTDOWN_GRACE_SECS", value_name = "SECS", default_value = "10",
          value_parser = parse::secs)]
    pub shutdown_grace: Duration,

    /// Seconds to go on serving at shutdown with readiness answering 503, so balancers drain the instance first
    #[arg(id = "server_config.shutdown_drain_secs", long = "shutdown-drain-secs",
          env = "VSS_SHUTDOWN_DRAIN_SECS", value_name = "SECS", default_value = "0",
          value_parser = parse::secs)]
    pub shutdown_drain: Duration,

    /// Most connections open at once; more are closed as soon as accepted [default: the open-files limit less a tenth]
    #[arg(id = "server_config.max_connections", long = "max-connections",
          env = "VSS_MAX_CONNECTIONS", value_name = "COUNT", value_parser = parse::positive_count)]
    pub max_connections: Option<usize>,

    /// Most connections open at once from one IP address; 0: no limit (behind a balancer, all come from it) [default: a quarter of max_connections]
    #[arg(id = "server_config.max_connections_per_ip", long = "max-connections-per-ip",
          env = "VSS_MAX_CONNECTIONS_PER_IP", value_name = "COUNT", value_parser = parse::count)]
    pub max_connections_per_ip: Option<usize>,

    /// Seconds a new connection has to send its first bytes before it is closed
    #[arg(id = "server_config.first_bytes_timeout_secs", long = "first-bytes-timeout-secs",
          env = "VSS_FIRST_BYTES_TIMEOUT_SECS", value_name = "SECS", default_value = "10",
          value_parser = parse::positive_secs)]
    pub first_bytes_timeout: Duration,

    /// Seconds a connection may have no request in flight before it is closed (HTTP/1.1 and HTTP/2)
    #[arg(id = "server_config.idle_timeout_secs", long = "idle-timeout-secs",
          env = "VSS_IDLE_TIMEOUT_SECS", value_name = "SECS", default_value = "120",
          value_parser = parse::positive_secs)]
    pub idle_timeout: Duration,

    /// HTTP/2: most requests in flight on one connection
    #[arg(id = "server_config.http2_max_concurrent_streams", long = "http2-max-concurrent-streams",
          env = "VSS_HTTP2_MAX_CONCURRENT_STREAMS", value_name = "COUNT", default_value = "64",
          value_parser = parse::positive_u32)]
    pub http2_max_concurrent_streams: u32,

    /// Serve Prometheus metrics on /metrics
    #[arg(id = "server_config.metrics", long = "metrics", env = "VSS_METRICS",
          value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value = "true",
          action = clap::ArgAction::Set, value_parser = parse::boolean)]
    pub metrics: bool,

    /// Serve /metrics (and the probes) on this address only, not on the main one [default: the main address]
    #[arg(id = "server_config.metrics_bind_address", long = "metrics-bind-address",
          env = "VSS_METRICS_BIND_ADDRESS", value_name = "IP:PORT", value_parser = socket_address)]
    pub metrics_bind_address: Option<SocketAddr>,

    /// Storage backend: memory (not persistent) or one compiled in
    #[arg(id = "server_config.backend", long = "backend", env = "VSS_BACKEND", value_name = "NAME",
          default_value = backend::DEFAULT_BACKEND, value_parser = backend::compiled_backend)]
    pub backend: &'static str,

    /// Serve without authentication on a non-loopback address
    #[arg(id = "server_config.allow_unauthenticated", long = "allow-unauthenticated",
          env = "VSS_ALLOW_UNAUTHENTICATED", value_name = "BOOL", num_args = 0..=1,
          require_equals = true, default_missing_value = "true", default_value = "false",
          action = clap::ArgAction::Set, value_parser = parse::boolean)]
    pub allow_unauthenticated: bool,

    /// PEM file with the TLS certificate chain (leaf first) to serve HTTPS with; reloaded on SIGHUP
    #[arg(id = "server_config.tls_cert_file", long = "tls-cert-file", env = "VSS_TLS_CERT_FILE",
          value_name = "FILE", value_parser = parse::existing_file)]
    pub tls_cert_file: Option<PathBuf>,

    /// PEM file with the TLS private key; reloaded on SIGHUP
    #[arg(id = "server_config.tls_key_file", long = "tls-key-file", env = "VSS_TLS_KEY_FILE",
          value_name = "FILE", value_parser = parse::existing_file)]
    pub tls_key_file: Option<PathBuf>,
}

/// The listener's own TLS: a certificate chain and its key, in PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// The private key.
    pub key_file: PathBuf,
}

/// `[log_config]`.
#[derive(clap::Args, Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    /// Log filter: a level (error, warn, info, debug, trace) or tracing directives; RUST_LOG when unset [default: info]
    #[arg(id = "log_config.level", long = "log-level", env = "VSS_LOG_LEVEL",
          value_name = "FILTER", value_parser = log_filter)]
    pub level: Option<String>,

    /// File the log is appended to instead of standard error
    #[arg(
        id = "log_config.file",
        long = "log-file",
        env = "VSS_LOG_FILE",
        value_name = "FILE"
    )]
    pub file: Option<PathBuf>,

    /// Log line format: text, or json (one object per line, for log pipelines)
    #[arg(id = "log_config.format", long = "log-format", env = "VSS_LOG_FORMAT",
          value_name = "FORMAT", default_value = "text", value_parser = log_format)]
    pub format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, with the request's fields (request id,
    /// operation, ...) in it.
    Json,
}

fn log_format(s: &str) -> Result<LogFormat, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err("expected `text` or `json`".into()),
    }
}

fn socket_address(s: &str) -> Result<SocketAddr, String> {
    s.trim()
        .parse()
        .map_err(|e| format!("not an IP:PORT address: {e}"))
}

fn base_path(s: &str) -> Result<String, String> {
    HttpConfig::default()
        .with_base_path(s.trim())
        .map(|http| http.base_path().to_string())
}

fn body_size(s: &str) -> Result<usize, String> {
    let bytes = parse::whole_number(s)?;
    if bytes == 0 {
        return Err("must be at least 1 byte".into());
    }
    usize::try_from(bytes).map_err(|_| "too large for this machine".to_string())
}

/// The body budget the settings give: `None` for 0; the wait must end
/// before the request timeout, or waiting requests would time out instead.
fn body_budget(server: &ServerSettings) -> Result<Option<vss_http::BodyBudget>, ConfigError> {
    let wait = server
        .body_budget_wait
        .unwrap_or_else(|| DEFAULT_BODY_BUDGET_WAIT.min(server.request_timeout / 2));
    if wait >= server.request_timeout {
        return Err(ConfigError::Conflict(format!(
            "server_config.body_budget_wait_secs ({} s) must be shorter than \
             server_config.request_timeout_secs ({} s): a request waiting for the body \
             budget would time out instead of being told to retry",
            wait.as_secs(),
            server.request_timeout.as_secs()
        )));
    }
    let bytes = match server.max_body_bytes_in_flight {
        Some(0) => return Ok(None),
        Some(bytes) => usize::try_from(bytes).unwrap_or(usize::MAX),
        None => vss_http::default_body_budget(),
    };
    Ok(Some(vss_http::BodyBudget { bytes, wait }))
}

fn log_filter(s: &str) -> Result<String, String> {
    tracing_subscriber::EnvFilter::try_new(s)
        .map(|_| s.to_string())
        .map_err(|e| format!("not a log level or filter: {e}"))
}

/// The command-line interface, as the configuration reads it (see
/// [`settings::prepare`]).
pub fn command() -> clap::Command {
    settings::prepare(Cli::command(), settings_list())
}

/// Every setting the server reads (the config file path itself aside).
pub fn settings_list() -> &'static [Setting] {
    static SETTINGS: OnceLock<Vec<Setting>> = OnceLock::new();
    SETTINGS.get_or_init(|| settings::describe(&Cli::command()))
}

/// The setting whose file key is `file_key` (`section.key`), if there is one.
pub fn setting(file_key: &str) -> Option<&'static Setting> {
    settings_list().iter().find(|s| s.file_key == file_key)
}

/// The complete, checked configuration of a server.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen.
    pub bind_address: SocketAddr,
    /// Base path, body limit and request timeout.
    pub http: HttpConfig,
    /// Longest wait for in-flight requests at shutdown.
    pub shutdown_grace: Duration,
    /// How long to serve on at shutdown with readiness answering 503.
    pub shutdown_drain: Duration,
    /// Limits on connections: how many, per IP, their first-bytes deadline,
    /// idle timeout and HTTP/2 streams (the grace and drain fields of the
    /// options are taken from `shutdown_grace` and `shutdown_drain`).
    pub connections: ServeOptions,
    /// Whether `/metrics` is served.
    pub metrics: bool,
    /// Where `/metrics` and the probes are served when not on the main address.
    pub metrics_bind_address: Option<SocketAddr>,
    /// The storage backend and its settings.
    pub backend: BackendConfig,
    /// How callers are authenticated.
    pub auth: AuthConfig,
    /// Who may store how much (no limit by default).
    pub quotas: vss_core::QuotaPolicy,
    /// Serve unauthenticated on a non-loopback address.
    pub allow_unauthenticated: bool,
    /// The tracing filter (a level or directives).
    pub log_filter: String,
    /// The file the log is appended to; `None`: standard error.
    pub log_file: Option<PathBuf>,
    /// Text or JSON log lines.
    pub log_format: LogFormat,
    /// What the configuration decided and why (the backend, the authentication
    /// methods), logged at startup.
    pub decisions: Vec<String>,
    /// HTTPS on the main listener, when set.
    pub tls: Option<TlsFiles>,
}

impl Default for Config {
    /// The zero-configuration server: 127.0.0.1:8080, `/vss`, the default
    /// backend, no authentication.
    fn default() -> Self {
        Config {
            bind_address: SocketAddr::from(([127, 0, 0, 1], 8080)),
            http: HttpConfig::default(),
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            shutdown_drain: Duration::ZERO,
            connections: ServeOptions::default(),
            metrics: true,
            metrics_bind_address: None,
            backend: BackendConfig::default_for_build(),
            auth: AuthConfig::Unauthenticated,
            quotas: vss_core::QuotaPolicy::default(),
            allow_unauthenticated: false,
            log_filter: DEFAULT_LOG_LEVEL.to_string(),
            log_file: None,
            log_format: LogFormat::Text,
            decisions: Vec::new(),
            tls: None,
        }
    }
}

impl Config {
    /// Reads the configuration from the process's command line and
    /// environment, and the config file that either names.
    pub fn load() -> Result<Config, ConfigError> {
        Self::from_sources(std::env::args_os(), &|name| std::env::var(name).ok())
    }

    /// Reads the configuration from the command line `args` (the program
    /// name first), the variables `env` answers, and the config file that
    /// either names.
    pub fn from_sources(
        args: impl IntoIterator<Item = impl Into<OsString>>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let sources = Sources::new(command(), settings_list(), args, env, CONFIG_FILE_ENV)?;
        let backend_setting = setting("server_config.backend").copied();
        let choice = match &backend_setting {
            Some(backend) => backend::choose(&sources, backend)?,
            None => unreachable!("server_config.backend is declared"),
        };
        // A config file or any backend setting means a deployment, not the
        // zero-setup local run: authentication then defaults as in the reference.
        let configured = sources.has_file() || choice.settings_given;
        // Only the chosen backend's settings are read from the environment and
        // the file (a stale variable of another backend does not matter).
        let (matches, origins) =
            sources.resolve(|setting| backend::reads_section(&choice.name, setting.section()))?;
        let cli = Cli::from_arg_matches(&matches).map_err(|err| ConfigError::Usage {
            informational: false,
            message: err.to_string(),
        })?;

        let server = cli.server;
        let http = HttpConfig::default()
            .with_base_path(&server.base_path)
            .map_err(ConfigError::Conflict)?
            .with_max_body_size(server.max_request_body_size)
            .with_request_timeout(server.request_timeout)
            .with_rate_limits(rate::load(&cli.rate_limit))
            .with_body_budget(body_budget(&server)?);
        let backend_name = choice.inferred.unwrap_or(server.backend);
        let max_connections = server
            .max_connections
            .unwrap_or_else(vss_http::default_max_connections);
        let (auth, auth_why) = auth::load(cli.auth, &origins, configured)?;
        let tls = match (server.tls_cert_file, server.tls_key_file) {
            (Some(cert_file), Some(key_file)) => Some(TlsFiles {
                cert_file,
                key_file,
            }),
            (None, None) => None,
            _ => {
                let (cert, key) = (
                    origins.setting("server_config.tls_cert_file"),
                    origins.setting("server_config.tls_key_file"),
                );
                return Err(ConfigError::Conflict(format!(
                    "TLS needs both {} and {}: only one is set",
                    cert.names(),
                    key.names()
                )));
            }
        };
        Ok(Config {
            bind_address: server.bind_address,
            http,
            shutdown_grace: server.shutdown_grace,
            shutdown_drain: server.shutdown_drain,
            connections: ServeOptions {
                max_connections,
                max_connections_per_ip: server
                    .max_connections_per_ip
                    .unwrap_or_else(|| vss_http::default_max_connections_per_ip(max_connections)),
                first_bytes_timeout: server.first_bytes_timeout,
                idle_timeout: server.idle_timeout,
                http2_max_concurrent_streams: server.http2_max_concurrent_streams,
                ..ServeOptions::default()
            },
            metrics: server.metrics,
            metrics_bind_address: server.metrics_bind_address,
            backend: BackendConfig::from_settings(backend_name, cli.backends, &origins)?,
            auth,
            quotas: quota::load(cli.quota, &origins)?,
            allow_unauthenticated: server.allow_unauthenticated,
            log_filter: Self::log_filter(&cli.log, &origins, env)?,
            log_file: cli.log.file,
            log_format: cli.log.format,
            decisions: vec![
                format!("backend {backend_name}: {}", choice.why),
                format!("authentication: {auth_why}"),
            ],
            tls,
        })
    }

    /// The log filter: the flag, else `VSS_LOG_LEVEL`, else `RUST_LOG` (the
    /// convention), else the file, else `info`.
    fn log_filter(
        log: &LogSettings,
        origins: &Origins,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<String, ConfigError> {
        let flag_or_env = setting("log_config.level")
            .and_then(|s| origins.of(s))
            .is_some_and(|origin| matches!(origin, Origin::Flag | Origin::Env));
        match env("RUST_LOG").filter(|v| !v.is_empty()) {
            Some(rust_log) if !flag_or_env => {
                log_filter(&rust_log).map_err(|reason| ConfigError::Invalid {
                    names: "RUST_LOG".into(),
                    origin: Origin::Env,
                    reason: format!("`{rust_log}`: {reason}"),
                })
            }
            _ => Ok(log
                .level
                .clone()
                .unwrap_or_else(|| DEFAULT_LOG_LEVEL.to_string())),
        }
    }
}
