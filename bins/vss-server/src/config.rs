//! Configuration: command-line flags over `VSS_*` environment variables over a
//! TOML file over defaults. Every setting has one row in [`SETTINGS`], which
//! `CONFIG.md` documents; a bad value stops startup naming the setting.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use vss_http::HttpConfig;

mod auth;

pub use auth::{
    AuthCli, AuthMethods, JwtSettings, LnurlSettings, SigsSettings, AUTH, JWT_AUDIENCE, JWT_ISSUER,
    JWT_RSA_PEM, JWT_RSA_PEM_FILE, LNURL_CHALLENGE_TTL_SECS, LNURL_MAX_CHALLENGES, LNURL_PATH,
    LNURL_PRIVATE_KEY_FILE, LNURL_PRIVATE_KEY_PEM, LNURL_PUBLIC_URL, LNURL_TOKEN_TTL_SECS,
    SIGS_MAX_CLOCK_SKEW_SECS,
};

use crate::backend::{
    self, BackendConfig, DynamoDbSettings, PostgresSettings, PostgresTls, RedisSettings,
    SqliteSettings,
};

/// One setting and its names in the three sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    /// `section.key` in the TOML file (sections as in the reference server).
    pub file_key: &'static str,
    /// The environment variable.
    pub env: &'static str,
    /// The command-line flag, when there is one.
    pub flag: Option<&'static str>,
    /// Whether the value is a secret, never echoed in errors or logs.
    pub secret: bool,
}

const fn setting(file_key: &'static str, env: &'static str, flag: &'static str) -> Setting {
    Setting {
        file_key,
        env,
        flag: Some(flag),
        secret: false,
    }
}

/// A secret setting: no flag (command lines are visible to other users), never echoed.
const fn secret(file_key: &'static str, env: &'static str) -> Setting {
    Setting {
        file_key,
        env,
        flag: None,
        secret: true,
    }
}

/// `server_config.bind_address`.
pub const BIND_ADDRESS: Setting = setting(
    "server_config.bind_address",
    "VSS_BIND_ADDRESS",
    "--bind-address",
);
/// `server_config.base_path`.
pub const BASE_PATH: Setting = setting("server_config.base_path", "VSS_BASE_PATH", "--base-path");
/// `server_config.max_request_body_size`.
pub const MAX_REQUEST_BODY_SIZE: Setting = setting(
    "server_config.max_request_body_size",
    "VSS_MAX_REQUEST_BODY_SIZE",
    "--max-request-body-size",
);
/// `server_config.request_timeout_secs`.
pub const REQUEST_TIMEOUT_SECS: Setting = setting(
    "server_config.request_timeout_secs",
    "VSS_REQUEST_TIMEOUT_SECS",
    "--request-timeout-secs",
);
/// `server_config.shutdown_grace_secs`.
pub const SHUTDOWN_GRACE_SECS: Setting = setting(
    "server_config.shutdown_grace_secs",
    "VSS_SHUTDOWN_GRACE_SECS",
    "--shutdown-grace-secs",
);
/// `server_config.backend`.
pub const BACKEND: Setting = setting("server_config.backend", "VSS_BACKEND", "--backend");
/// `server_config.allow_unauthenticated`.
pub const ALLOW_UNAUTHENTICATED: Setting = setting(
    "server_config.allow_unauthenticated",
    "VSS_ALLOW_UNAUTHENTICATED",
    "--allow-unauthenticated",
);
/// `log_config.level`.
pub const LOG_LEVEL: Setting = setting("log_config.level", "VSS_LOG_LEVEL", "--log-level");
/// `sqlite_config.path`.
pub const SQLITE_PATH: Setting = setting("sqlite_config.path", "VSS_SQLITE_PATH", "--sqlite-path");
/// `sqlite_config.synchronous`.
pub const SQLITE_SYNCHRONOUS: Setting = setting(
    "sqlite_config.synchronous",
    "VSS_SQLITE_SYNCHRONOUS",
    "--sqlite-synchronous",
);
/// `postgresql_config.username`.
pub const PSQL_USERNAME: Setting = setting(
    "postgresql_config.username",
    "VSS_PSQL_USERNAME",
    "--psql-username",
);
/// `postgresql_config.password` (no flag: command lines are visible to other users).
pub const PSQL_PASSWORD: Setting = Setting {
    file_key: "postgresql_config.password",
    env: "VSS_PSQL_PASSWORD",
    flag: None,
    secret: true,
};
/// `postgresql_config.address`.
pub const PSQL_ADDRESS: Setting = setting(
    "postgresql_config.address",
    "VSS_PSQL_ADDRESS",
    "--psql-address",
);
/// `postgresql_config.default_database`.
pub const PSQL_DEFAULT_DB: Setting = setting(
    "postgresql_config.default_database",
    "VSS_PSQL_DEFAULT_DB",
    "--psql-default-db",
);
/// `postgresql_config.vss_database`.
pub const PSQL_VSS_DB: Setting = setting(
    "postgresql_config.vss_database",
    "VSS_PSQL_VSS_DB",
    "--psql-vss-db",
);
/// `postgresql_config.url` (secret: it may hold the password).
pub const PSQL_URL: Setting = secret("postgresql_config.url", "VSS_PSQL_URL");
/// `postgresql_config.tls`.
pub const PSQL_TLS: Setting = setting("postgresql_config.tls", "VSS_PSQL_TLS", "--psql-tls");
/// `postgresql_config.ca_file`.
pub const PSQL_CA_FILE: Setting = setting(
    "postgresql_config.ca_file",
    "VSS_PSQL_CA_FILE",
    "--psql-ca-file",
);
/// `redis_config.url` (secret: it may hold the password).
pub const REDIS_URL: Setting = secret("redis_config.url", "VSS_REDIS_URL");
/// `redis_config.allow_volatile`.
pub const REDIS_ALLOW_VOLATILE: Setting = setting(
    "redis_config.allow_volatile",
    "VSS_REDIS_ALLOW_VOLATILE",
    "--redis-allow-volatile",
);
/// `redis_config.tls_ca_file`.
pub const REDIS_TLS_CA_FILE: Setting = setting(
    "redis_config.tls_ca_file",
    "VSS_REDIS_TLS_CA_FILE",
    "--redis-tls-ca-file",
);
/// `dynamodb_config.table`.
pub const DYNAMODB_TABLE: Setting = setting(
    "dynamodb_config.table",
    "VSS_DYNAMODB_TABLE",
    "--dynamodb-table",
);
/// `dynamodb_config.region`.
pub const DYNAMODB_REGION: Setting = setting(
    "dynamodb_config.region",
    "VSS_DYNAMODB_REGION",
    "--dynamodb-region",
);
/// `dynamodb_config.endpoint_url`.
pub const DYNAMODB_ENDPOINT_URL: Setting = setting(
    "dynamodb_config.endpoint_url",
    "VSS_DYNAMODB_ENDPOINT_URL",
    "--dynamodb-endpoint-url",
);
/// `dynamodb_config.create_table`.
pub const DYNAMODB_CREATE_TABLE: Setting = setting(
    "dynamodb_config.create_table",
    "VSS_DYNAMODB_CREATE_TABLE",
    "--dynamodb-create-table",
);

/// Every setting the server reads (the config file path itself aside).
pub const SETTINGS: &[Setting] = &[
    BIND_ADDRESS,
    BASE_PATH,
    MAX_REQUEST_BODY_SIZE,
    REQUEST_TIMEOUT_SECS,
    SHUTDOWN_GRACE_SECS,
    BACKEND,
    ALLOW_UNAUTHENTICATED,
    auth::AUTH_SETTINGS[0],
    auth::AUTH_SETTINGS[1],
    auth::AUTH_SETTINGS[2],
    auth::AUTH_SETTINGS[3],
    auth::AUTH_SETTINGS[4],
    auth::AUTH_SETTINGS[5],
    auth::AUTH_SETTINGS[6],
    auth::AUTH_SETTINGS[7],
    auth::AUTH_SETTINGS[8],
    auth::AUTH_SETTINGS[9],
    auth::AUTH_SETTINGS[10],
    auth::AUTH_SETTINGS[11],
    auth::AUTH_SETTINGS[12],
    LOG_LEVEL,
    SQLITE_PATH,
    SQLITE_SYNCHRONOUS,
    PSQL_USERNAME,
    PSQL_PASSWORD,
    PSQL_ADDRESS,
    PSQL_DEFAULT_DB,
    PSQL_VSS_DB,
    PSQL_URL,
    PSQL_TLS,
    PSQL_CA_FILE,
    REDIS_URL,
    REDIS_ALLOW_VOLATILE,
    REDIS_TLS_CA_FILE,
    DYNAMODB_TABLE,
    DYNAMODB_REGION,
    DYNAMODB_ENDPOINT_URL,
    DYNAMODB_CREATE_TABLE,
];

/// The environment variable naming the config file (also `--config`).
pub const CONFIG_FILE_ENV: &str = "VSS_CONFIG_FILE";

/// The default listen address: loopback only.
pub const DEFAULT_BIND_ADDRESS: &str = "127.0.0.1:8080";
/// The default SQLite database file.
pub const DEFAULT_SQLITE_PATH: &str = "./vss-data/vss.sqlite3";
/// The default log filter.
pub const DEFAULT_LOG_LEVEL: &str = "info";
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
#[derive(Parser, Debug, Default, Clone)]
#[command(name = "vss-server", version)]
pub struct Cli {
    /// TOML configuration file [env: VSS_CONFIG_FILE]
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Address to listen on [env: VSS_BIND_ADDRESS] [default: 127.0.0.1:8080]
    #[arg(long, value_name = "IP:PORT")]
    pub bind_address: Option<String>,

    /// Path the four calls are served under [env: VSS_BASE_PATH] [default: /vss]
    #[arg(long, value_name = "PATH")]
    pub base_path: Option<String>,

    /// Largest request body in bytes; larger ones get 413 [env: VSS_MAX_REQUEST_BODY_SIZE] [default: 1073741824]
    #[arg(long, value_name = "BYTES")]
    pub max_request_body_size: Option<String>,

    /// Seconds one request may take before it is answered 500 [env: VSS_REQUEST_TIMEOUT_SECS] [default: 30]
    #[arg(long, value_name = "SECS")]
    pub request_timeout_secs: Option<String>,

    /// Seconds in-flight requests get to finish at shutdown [env: VSS_SHUTDOWN_GRACE_SECS] [default: 10]
    #[arg(long, value_name = "SECS")]
    pub shutdown_grace_secs: Option<String>,

    /// Storage backend: memory (not persistent) or one compiled in [env: VSS_BACKEND] [default: sqlite when compiled in, else memory]
    #[arg(long, value_name = "NAME")]
    pub backend: Option<String>,

    /// Serve without authentication on a non-loopback address [env: VSS_ALLOW_UNAUTHENTICATED]
    #[arg(long)]
    pub allow_unauthenticated: bool,

    /// Authentication settings.
    #[command(flatten)]
    pub auth: AuthCli,

    /// Log filter: a level (error, warn, info, debug, trace) or tracing directives [env: VSS_LOG_LEVEL, then RUST_LOG] [default: info]
    #[arg(long, value_name = "FILTER")]
    pub log_level: Option<String>,

    /// SQLite database file; its directory is created [env: VSS_SQLITE_PATH] [default: ./vss-data/vss.sqlite3]
    #[arg(long, value_name = "FILE")]
    pub sqlite_path: Option<String>,

    /// SQLite durability: `full` (an acknowledged write survives power loss) or `normal` (only a crash of the server) [env: VSS_SQLITE_SYNCHRONOUS] [default: full]
    #[arg(long, value_name = "LEVEL")]
    pub sqlite_synchronous: Option<String>,

    /// PostgreSQL user (password only from VSS_PSQL_PASSWORD or the file) [env: VSS_PSQL_USERNAME]
    #[arg(long, value_name = "USER")]
    pub psql_username: Option<String>,

    /// PostgreSQL host:port [env: VSS_PSQL_ADDRESS]
    #[arg(long, value_name = "HOST:PORT")]
    pub psql_address: Option<String>,

    /// PostgreSQL database to connect to when creating the VSS database [env: VSS_PSQL_DEFAULT_DB]
    #[arg(long, value_name = "DB")]
    pub psql_default_db: Option<String>,

    /// PostgreSQL database holding VSS data [env: VSS_PSQL_VSS_DB]
    #[arg(long, value_name = "DB")]
    pub psql_vss_db: Option<String>,

    /// PostgreSQL TLS: disable, prefer or require; certificates are always verified [env: VSS_PSQL_TLS] [default: disable]
    #[arg(long, value_name = "MODE")]
    pub psql_tls: Option<String>,

    /// CA certificates (PEM) that sign PostgreSQL's certificate [env: VSS_PSQL_CA_FILE] [default: the Mozilla roots]
    #[arg(long, value_name = "FILE")]
    pub psql_ca_file: Option<String>,

    /// Start even if Redis could lose acknowledged writes (no AOF with appendfsync always) [env: VSS_REDIS_ALLOW_VOLATILE]
    #[arg(long)]
    pub redis_allow_volatile: bool,

    /// CA certificates (PEM) trusted for a rediss:// server [env: VSS_REDIS_TLS_CA_FILE] [default: the system's roots]
    #[arg(long, value_name = "FILE")]
    pub redis_tls_ca_file: Option<String>,

    /// DynamoDB table [env: VSS_DYNAMODB_TABLE] [default: vss]
    #[arg(long, value_name = "TABLE")]
    pub dynamodb_table: Option<String>,

    /// AWS region of the table [env: VSS_DYNAMODB_REGION] [default: from the AWS chain, e.g. AWS_REGION]
    #[arg(long, value_name = "REGION")]
    pub dynamodb_region: Option<String>,

    /// DynamoDB endpoint instead of the region's (a local DynamoDB-API server, a VPC endpoint) [env: VSS_DYNAMODB_ENDPOINT_URL]
    #[arg(long, value_name = "URL")]
    pub dynamodb_endpoint_url: Option<String>,

    /// Create the DynamoDB table when it does not exist [env: VSS_DYNAMODB_CREATE_TABLE]
    #[arg(long)]
    pub dynamodb_create_table: bool,
}

impl Cli {
    fn flag_value(&self, setting: &Setting) -> Option<String> {
        let value = match setting.env {
            "VSS_BIND_ADDRESS" => &self.bind_address,
            "VSS_BASE_PATH" => &self.base_path,
            "VSS_MAX_REQUEST_BODY_SIZE" => &self.max_request_body_size,
            "VSS_REQUEST_TIMEOUT_SECS" => &self.request_timeout_secs,
            "VSS_SHUTDOWN_GRACE_SECS" => &self.shutdown_grace_secs,
            "VSS_BACKEND" => &self.backend,
            "VSS_ALLOW_UNAUTHENTICATED" => {
                return self.allow_unauthenticated.then(|| "true".to_string())
            }
            "VSS_LOG_LEVEL" => &self.log_level,
            "VSS_SQLITE_PATH" => &self.sqlite_path,
            "VSS_SQLITE_SYNCHRONOUS" => &self.sqlite_synchronous,
            "VSS_PSQL_USERNAME" => &self.psql_username,
            "VSS_PSQL_ADDRESS" => &self.psql_address,
            "VSS_PSQL_DEFAULT_DB" => &self.psql_default_db,
            "VSS_PSQL_VSS_DB" => &self.psql_vss_db,
            "VSS_PSQL_TLS" => &self.psql_tls,
            "VSS_PSQL_CA_FILE" => &self.psql_ca_file,
            "VSS_REDIS_ALLOW_VOLATILE" => {
                return self.redis_allow_volatile.then(|| "true".to_string())
            }
            "VSS_REDIS_TLS_CA_FILE" => &self.redis_tls_ca_file,
            "VSS_DYNAMODB_TABLE" => &self.dynamodb_table,
            "VSS_DYNAMODB_REGION" => &self.dynamodb_region,
            "VSS_DYNAMODB_ENDPOINT_URL" => &self.dynamodb_endpoint_url,
            "VSS_DYNAMODB_CREATE_TABLE" => {
                return self.dynamodb_create_table.then(|| "true".to_string())
            }
            _ => return self.auth.flag_value(setting),
        };
        value.clone()
    }
}

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A command-line flag.
    Flag,
    /// An environment variable.
    Env,
    /// The config file.
    File(PathBuf),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Flag => f.write_str("from the command line"),
            Origin::Env => f.write_str("from the environment"),
            Origin::File(path) => write!(f, "from {}", path.display()),
        }
    }
}

/// A configuration that cannot be used; the message names the setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A value that does not parse or is out of range.
    #[error("invalid value for {names} ({origin}): {reason}")]
    Invalid {
        /// The setting's names: `ENV / file.key / --flag`.
        names: String,
        /// Where the value came from.
        origin: Origin,
        /// What is wrong, with the value unless it is secret.
        reason: String,
    },
    /// The config file cannot be read or is not valid TOML.
    #[error("cannot use config file {path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The config file has a key no setting has (likely a typo).
    #[error("unknown setting `{key}` in config file {path} (known settings: see CONFIG.md)")]
    UnknownKey {
        /// The file.
        path: PathBuf,
        /// The `section.key` found.
        key: String,
    },
    /// Two settings that cannot be used together.
    #[error("{0}")]
    Conflict(String),
}

impl Setting {
    /// `ENV / file.key / --flag`, how errors name the setting.
    pub fn names(&self) -> String {
        match self.flag {
            Some(flag) => format!("{} / {} / {flag}", self.env, self.file_key),
            None => format!("{} / {}", self.env, self.file_key),
        }
    }
}

/// How authentication works.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthConfig {
    /// None: every request is one fixed user. Loopback only unless allowed.
    Unauthenticated,
    /// `Authorization: Bearer <jwt>`, RS256.
    Jwt {
        /// The RSA public key in PEM form.
        rsa_pem: String,
        /// The accepted `aud`, if any.
        audience: Option<String>,
    },
    /// Any of JWT (several keys, RS256/ES256/EdDSA), signature auth and the
    /// LNURL-auth token issuer, picked per request by the header's form.
    Methods(AuthMethods),
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
    /// The storage backend and its settings.
    pub backend: BackendConfig,
    /// How callers are authenticated.
    pub auth: AuthConfig,
    /// Serve unauthenticated on a non-loopback address.
    pub allow_unauthenticated: bool,
    /// The tracing filter (a level or directives).
    pub log_filter: String,
}

impl Default for Config {
    /// The zero-configuration server: 127.0.0.1:8080, `/vss`, the default
    /// backend, no authentication.
    fn default() -> Self {
        Config {
            bind_address: SocketAddr::from(([127, 0, 0, 1], 8080)),
            http: HttpConfig::default(),
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            backend: BackendConfig::default_for_build(),
            auth: AuthConfig::Unauthenticated,
            allow_unauthenticated: false,
            log_filter: DEFAULT_LOG_LEVEL.to_string(),
        }
    }
}

/// The three sources of values, read in precedence order.
struct Sources<'a> {
    cli: &'a Cli,
    env: &'a dyn Fn(&str) -> Option<String>,
    file: Option<(PathBuf, toml::Table)>,
}

impl Sources<'_> {
    fn raw(&self, setting: &Setting) -> Result<Option<(String, Origin)>, ConfigError> {
        if let Some(value) = self.cli.flag_value(setting) {
            return Ok(Some((value, Origin::Flag)));
        }
        // An empty variable counts as unset, as `VSS_X= vss-server` usually means.
        if let Some(value) = (self.env)(setting.env).filter(|v| !v.is_empty()) {
            return Ok(Some((value, Origin::Env)));
        }
        let Some((path, table)) = &self.file else {
            return Ok(None);
        };
        let (section, key) = setting
            .file_key
            .split_once('.')
            .unwrap_or(("", setting.file_key));
        let Some(value) = table
            .get(section)
            .and_then(|s| s.as_table())
            .and_then(|s| s.get(key))
        else {
            return Ok(None);
        };
        let text = match value {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Float(x) => x.to_string(),
            _ => {
                return Err(ConfigError::Invalid {
                    names: setting.names(),
                    origin: Origin::File(path.clone()),
                    reason: "expected a string, a number or a boolean".into(),
                })
            }
        };
        Ok(Some((text, Origin::File(path.clone()))))
    }

    /// The setting's value parsed by `parse`, or `None` when no source sets it.
    fn get<T>(
        &self,
        setting: &Setting,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ConfigError> {
        let Some((text, origin)) = self.raw(setting)? else {
            return Ok(None);
        };
        parse(text.trim())
            .map(Some)
            .map_err(|reason| ConfigError::Invalid {
                names: setting.names(),
                origin,
                // Parsers of secret settings never put the value in their reason.
                reason: if setting.secret {
                    reason
                } else {
                    format!("`{}`: {reason}", text.trim())
                },
            })
    }

    fn string(&self, setting: &Setting) -> Result<Option<String>, ConfigError> {
        self.get(setting, |s| Ok(s.to_string()))
    }
}

fn parse_u64(s: &str) -> Result<u64, String> {
    s.replace('_', "")
        .parse::<u64>()
        .map_err(|e| format!("not a whole number: {e}"))
}

fn parse_bool(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err("expected true or false".into()),
    }
}

fn parse_secs(s: &str) -> Result<Duration, String> {
    match parse_u64(s)? {
        0 => Err("must be at least 1 second".into()),
        secs => Ok(Duration::from_secs(secs)),
    }
}

/// A path to a file that exists now (a CA file read when the backend connects).
fn parse_existing_file(s: &str) -> Result<PathBuf, String> {
    match std::fs::metadata(s) {
        Ok(meta) if meta.is_file() => Ok(PathBuf::from(s)),
        Ok(_) => Err("not a file".into()),
        Err(e) => Err(format!("cannot read the file: {e}")),
    }
}

/// A PostgreSQL URL (secret: the reason never repeats it).
fn parse_psql_url(s: &str) -> Result<String, String> {
    #[cfg(feature = "postgres")]
    if vss_backend_postgres::PostgresConfig::from_url(s).is_err() {
        return Err("not a PostgreSQL URL such as \
                    postgres://user:password@host:5432/database?sslmode=require"
            .into());
    }
    Ok(s.to_string())
}

/// A Redis URL (secret: the reason never repeats it).
fn parse_redis_url(s: &str) -> Result<String, String> {
    const SCHEMES: [&str; 4] = ["redis", "rediss", "redis-cluster", "rediss-cluster"];
    match s.split_once("://") {
        Some((scheme, rest)) if SCHEMES.contains(&scheme) && !rest.is_empty() => Ok(s.to_string()),
        _ => {
            Err("expected a redis://, rediss://, redis-cluster:// or rediss-cluster:// URL".into())
        }
    }
}

/// A DynamoDB table name: 3 to 255 of `[A-Za-z0-9_.-]`.
fn parse_table_name(s: &str) -> Result<String, String> {
    let valid_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    if (3..=255).contains(&s.len()) && s.chars().all(valid_char) {
        Ok(s.to_string())
    } else {
        Err("a DynamoDB table name is 3 to 255 letters, digits, `_`, `-` or `.`".into())
    }
}

/// An AWS region name such as `us-east-1`.
fn parse_region(s: &str) -> Result<String, String> {
    let valid_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
    if !s.is_empty() && s.chars().all(valid_char) {
        Ok(s.to_string())
    } else {
        Err("not an AWS region name such as us-east-1".into())
    }
}

/// An `http://` or `https://` URL with a host.
fn parse_http_url(s: &str) -> Result<String, String> {
    match s.split_once("://") {
        Some(("http" | "https", rest)) if !rest.is_empty() && !rest.starts_with('/') => {
            Ok(s.to_string())
        }
        _ => Err("expected an http:// or https:// URL such as http://127.0.0.1:8000".into()),
    }
}

fn parse_log_filter(s: &str) -> Result<String, String> {
    tracing_subscriber::EnvFilter::try_new(s)
        .map(|_| s.to_string())
        .map_err(|e| format!("not a log level or filter: {e}"))
}

fn read_file(path: &Path) -> Result<toml::Table, ConfigError> {
    let file_error = |reason: String| ConfigError::File {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| file_error(e.to_string()))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| file_error(e.to_string()))?;
    let known: BTreeSet<&str> = SETTINGS.iter().map(|s| s.file_key).collect();
    for (section, value) in &table {
        let Some(keys) = value.as_table() else {
            return Err(ConfigError::UnknownKey {
                path: path.to_path_buf(),
                key: section.clone(),
            });
        };
        for key in keys.keys() {
            let full = format!("{section}.{key}");
            if !known.contains(full.as_str()) {
                return Err(ConfigError::UnknownKey {
                    path: path.to_path_buf(),
                    key: full,
                });
            }
        }
    }
    Ok(table)
}

impl Config {
    /// Reads the configuration from the command line, the process environment
    /// and the config file.
    pub fn load(cli: &Cli) -> Result<Config, ConfigError> {
        Self::from_sources(cli, &|name| std::env::var(name).ok())
    }

    /// Reads the configuration from `cli`, the variables `env` answers, and
    /// the config file that either names.
    pub fn from_sources(
        cli: &Cli,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let file_path = cli.config.clone().or_else(|| {
            env(CONFIG_FILE_ENV)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        });
        let file = match file_path {
            Some(path) => {
                let table = read_file(&path)?;
                Some((path, table))
            }
            None => None,
        };
        let sources = Sources { cli, env, file };
        let defaults = Config::default();

        let bind_address = sources
            .get(&BIND_ADDRESS, |s| {
                s.parse::<SocketAddr>()
                    .map_err(|e| format!("not an IP:PORT address: {e}"))
            })?
            .unwrap_or(defaults.bind_address);

        let mut http = HttpConfig::default();
        if let Some(with_path) = sources.get(&BASE_PATH, |p| http.clone().with_base_path(p))? {
            http = with_path;
        }
        if let Some(bytes) = sources.get(&MAX_REQUEST_BODY_SIZE, |s| {
            let bytes = parse_u64(s)?;
            if bytes == 0 {
                return Err("must be at least 1 byte".into());
            }
            usize::try_from(bytes).map_err(|_| "too large for this machine".to_string())
        })? {
            http = http.with_max_body_size(bytes);
        }
        if let Some(timeout) = sources.get(&REQUEST_TIMEOUT_SECS, parse_secs)? {
            http = http.with_request_timeout(timeout);
        }
        let shutdown_grace = sources
            .get(&SHUTDOWN_GRACE_SECS, |s| {
                parse_u64(s).map(Duration::from_secs)
            })?
            .unwrap_or(defaults.shutdown_grace);
        let allow_unauthenticated = sources
            .get(&ALLOW_UNAUTHENTICATED, parse_bool)?
            .unwrap_or(false);

        let auth = auth::load(&sources)?;
        let backend = Self::backend(&sources)?;

        // RUST_LOG is the conventional fallback when no VSS log setting is given
        // on the command line or in the VSS_LOG_LEVEL variable.
        let log_filter = match (
            cli.log_level.is_some(),
            env(LOG_LEVEL.env).filter(|v| !v.is_empty()),
            env("RUST_LOG").filter(|v| !v.is_empty()),
        ) {
            (false, None, Some(rust_log)) => {
                parse_log_filter(&rust_log).map_err(|reason| ConfigError::Invalid {
                    names: "RUST_LOG".into(),
                    origin: Origin::Env,
                    reason: format!("`{rust_log}`: {reason}"),
                })?
            }
            _ => sources
                .get(&LOG_LEVEL, parse_log_filter)?
                .unwrap_or(defaults.log_filter),
        };

        Ok(Config {
            bind_address,
            http,
            shutdown_grace,
            backend,
            auth,
            allow_unauthenticated,
            log_filter,
        })
    }

    fn backend(sources: &Sources<'_>) -> Result<BackendConfig, ConfigError> {
        let name = sources
            .get(&BACKEND, |s| {
                let name = s.to_ascii_lowercase();
                if backend::compiled_backends().contains(&name.as_str()) {
                    Ok(name)
                } else if backend::KNOWN_BACKENDS.contains(&name.as_str()) {
                    Err(format!(
                        "the `{name}` backend is not compiled into this build (it has: {}); \
                         rebuild with `--features {name}`",
                        backend::compiled_backends().join(", ")
                    ))
                } else {
                    Err(format!(
                        "unknown backend (this build has: {})",
                        backend::compiled_backends().join(", ")
                    ))
                }
            })?
            .unwrap_or_else(|| backend::default_backend().to_string());
        Ok(match name.as_str() {
            "sqlite" => BackendConfig::Sqlite(SqliteSettings {
                path: sources
                    .string(&SQLITE_PATH)?
                    .unwrap_or_else(|| DEFAULT_SQLITE_PATH.to_string())
                    .into(),
                synchronous_full: sources
                    .get(&SQLITE_SYNCHRONOUS, |s| {
                        match s.to_ascii_lowercase().as_str() {
                            "normal" => Ok(false),
                            "full" => Ok(true),
                            _ => Err("expected `normal` or `full`".to_string()),
                        }
                    })?
                    .unwrap_or(true),
            }),
            "postgres" => BackendConfig::Postgres(Self::postgres(sources)?),
            "redis" => BackendConfig::Redis(Self::redis(sources)?),
            "dynamodb" => BackendConfig::DynamoDb(DynamoDbSettings {
                table: sources
                    .get(&DYNAMODB_TABLE, parse_table_name)?
                    .unwrap_or_else(|| backend::DEFAULT_DYNAMODB_TABLE.to_string()),
                region: sources.get(&DYNAMODB_REGION, parse_region)?,
                endpoint_url: sources.get(&DYNAMODB_ENDPOINT_URL, parse_http_url)?,
                create_table: sources
                    .get(&DYNAMODB_CREATE_TABLE, parse_bool)?
                    .unwrap_or(false),
                credentials: None,
            }),
            "memory" => BackendConfig::Memory,
            other => {
                return Err(ConfigError::Conflict(format!(
                    "the `{other}` backend has no settings in vss-server"
                )))
            }
        })
    }

    fn postgres(sources: &Sources<'_>) -> Result<PostgresSettings, ConfigError> {
        let settings = PostgresSettings {
            url: sources.get(&PSQL_URL, parse_psql_url)?,
            username: sources.string(&PSQL_USERNAME)?,
            password: sources.string(&PSQL_PASSWORD)?,
            address: sources.string(&PSQL_ADDRESS)?,
            default_database: sources.string(&PSQL_DEFAULT_DB)?,
            vss_database: sources.string(&PSQL_VSS_DB)?,
            tls: sources
                .get(&PSQL_TLS, |s| s.parse::<PostgresTls>())?
                .unwrap_or_default(),
            ca_file: sources.get(&PSQL_CA_FILE, parse_existing_file)?,
        };
        if settings.url.is_some() {
            // The URL carries everything (sslmode and sslrootcert included):
            // mixing it with separate settings would leave one silently unused.
            let separate = [
                PSQL_USERNAME,
                PSQL_PASSWORD,
                PSQL_ADDRESS,
                PSQL_DEFAULT_DB,
                PSQL_VSS_DB,
                PSQL_TLS,
                PSQL_CA_FILE,
            ];
            let mut also_set = Vec::new();
            for setting in &separate {
                if sources.raw(setting)?.is_some() {
                    also_set.push(setting.names());
                }
            }
            if !also_set.is_empty() {
                return Err(ConfigError::Conflict(format!(
                    "{} is set, so these PostgreSQL settings must not be: {} \
                     (give either the URL, with sslmode and sslrootcert in it, or the separate settings)",
                    PSQL_URL.names(),
                    also_set.join(", ")
                )));
            }
        }
        Ok(settings)
    }

    fn redis(sources: &Sources<'_>) -> Result<RedisSettings, ConfigError> {
        let settings = RedisSettings {
            url: sources
                .get(&REDIS_URL, parse_redis_url)?
                .unwrap_or_else(|| backend::DEFAULT_REDIS_URL.to_string()),
            allow_volatile: sources
                .get(&REDIS_ALLOW_VOLATILE, parse_bool)?
                .unwrap_or(false),
            tls_ca_file: sources.get(&REDIS_TLS_CA_FILE, parse_existing_file)?,
        };
        let tls =
            settings.url.starts_with("rediss://") || settings.url.starts_with("rediss-cluster://");
        if settings.tls_ca_file.is_some() && !tls {
            return Err(ConfigError::Conflict(format!(
                "{} is set but the Redis URL ({}) does not use TLS: use rediss:// or rediss-cluster://",
                REDIS_TLS_CA_FILE.names(),
                REDIS_URL.names()
            )));
        }
        Ok(settings)
    }
}
