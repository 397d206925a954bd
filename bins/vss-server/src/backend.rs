//! The storage backends this build can serve from, picked by configuration.
//!
//! The settings types here do not depend on the backend crates, so a
//! configuration can be read (and checked) whatever this build holds; [`open`]
//! maps them to the backend's own config when its feature is compiled in.
//!
//! Adding a backend:
//! 1. `Cargo.toml`: `name = ["dep:vss-backend-name"]` under `[features]`, and the
//!    optional dependency;
//! 2. here: a `#[cfg(feature = "name")]` push in [`compiled_backends`], a
//!    settings variant in [`BackendConfig`], and one
//!    `#[cfg(feature = "name")]` arm in [`open`] mapping the settings to the
//!    backend's own config and opening it;
//! 3. `config.rs`: its [`crate::config::Setting`]s, listed in `SETTINGS`, read in
//!    `Config::backend`; then a row per setting in CONFIG.md.

use std::path::PathBuf;
use std::sync::Arc;

use vss_core::{KvStore, MemoryStore};

/// Every backend name the configuration may give, compiled in or not.
pub const KNOWN_BACKENDS: &[&str] = &["memory", "sqlite", "postgres", "redis", "dynamodb"];

/// The backends compiled into this build.
pub fn compiled_backends() -> Vec<&'static str> {
    #[allow(unused_mut)]
    let mut names = vec!["memory"];
    #[cfg(feature = "sqlite")]
    names.push("sqlite");
    #[cfg(feature = "postgres")]
    names.push("postgres");
    #[cfg(feature = "redis")]
    names.push("redis");
    #[cfg(feature = "dynamodb")]
    names.push("dynamodb");
    names
}

/// The backend used when none is configured: SQLite when compiled in.
pub fn default_backend() -> &'static str {
    if cfg!(feature = "sqlite") {
        "sqlite"
    } else {
        "memory"
    }
}

/// The chosen backend and its settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendConfig {
    /// vss-core's `MemoryStore`: fast, and everything is lost at exit.
    /// For tests and benchmarks only.
    Memory,
    /// An embedded SQLite database file.
    Sqlite(SqliteSettings),
    /// A PostgreSQL server.
    Postgres(PostgresSettings),
    /// A Redis (or Valkey) server or cluster.
    Redis(RedisSettings),
    /// An Amazon DynamoDB table (or a DynamoDB-API server).
    DynamoDb(DynamoDbSettings),
}

impl BackendConfig {
    /// The zero-configuration backend of this build.
    pub fn default_for_build() -> Self {
        if cfg!(feature = "sqlite") {
            BackendConfig::Sqlite(SqliteSettings::default())
        } else {
            BackendConfig::Memory
        }
    }

    /// The backend's name, as configured.
    pub fn name(&self) -> &'static str {
        match self {
            BackendConfig::Memory => "memory",
            BackendConfig::Sqlite(_) => "sqlite",
            BackendConfig::Postgres(_) => "postgres",
            BackendConfig::Redis(_) => "redis",
            BackendConfig::DynamoDb(_) => "dynamodb",
        }
    }

    /// Whether data outlives the process.
    pub fn is_persistent(&self) -> bool {
        !matches!(self, BackendConfig::Memory)
    }
}

/// Settings of the SQLite backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteSettings {
    /// The database file; its directory is created when missing.
    pub path: PathBuf,
    /// Sync every commit to disk (`true`, the default: survives power loss)
    /// or only at checkpoints (`false`, survives a process crash).
    pub synchronous_full: bool,
}

impl Default for SqliteSettings {
    /// `./vss-data/vss.sqlite3`, synchronous `full`: wallet backups must
    /// survive power loss, and the backend batches concurrent commits into
    /// one sync, which keeps the cost low.
    fn default() -> Self {
        SqliteSettings {
            path: PathBuf::from(crate::config::DEFAULT_SQLITE_PATH),
            synchronous_full: true,
        }
    }
}

/// Settings of the PostgreSQL backend, named as in the reference server.
/// Unset values take the backend's defaults (`postgres@localhost:5432`,
/// database `vss` created from `postgres` when missing).
///
/// Either [`PostgresSettings::url`] or the separate connection settings
/// (user name, password, address, databases, TLS, CA file) may be given, not both.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct PostgresSettings {
    /// `VSS_PSQL_URL`: a libpq-style URL, `postgres://user:password@host:port/db?sslmode=...`,
    /// used instead of the separate settings. Its database must exist.
    pub url: Option<String>,
    /// `VSS_PSQL_USERNAME`.
    pub username: Option<String>,
    /// `VSS_PSQL_PASSWORD`.
    pub password: Option<String>,
    /// `VSS_PSQL_ADDRESS`: `host:port`.
    pub address: Option<String>,
    /// `VSS_PSQL_DEFAULT_DB`: the database used to create the VSS database.
    pub default_database: Option<String>,
    /// `VSS_PSQL_VSS_DB`: the database holding VSS data.
    pub vss_database: Option<String>,
    /// `VSS_PSQL_TLS`: TLS to the database.
    pub tls: PostgresTls,
    /// `VSS_PSQL_CA_FILE`: the CA certificates (PEM) that sign the database's
    /// certificate; when unset, the Mozilla roots are trusted.
    pub ca_file: Option<PathBuf>,
}

impl PostgresSettings {
    /// The setting names of the separate connection settings that are set
    /// (which must all be unset when [`PostgresSettings::url`] is set).
    pub fn separate_settings_set(&self) -> Vec<&'static str> {
        let mut set = Vec::new();
        let options = [
            ("username", self.username.is_some()),
            ("password", self.password.is_some()),
            ("address", self.address.is_some()),
            ("default_database", self.default_database.is_some()),
            ("vss_database", self.vss_database.is_some()),
            ("tls", self.tls != PostgresTls::default()),
            ("ca_file", self.ca_file.is_some()),
        ];
        for (name, is_set) in options {
            if is_set {
                set.push(name);
            }
        }
        set
    }
}

/// Whether connections to PostgreSQL use TLS. TLS always verifies the
/// server's certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PostgresTls {
    /// Plain TCP (the reference server's behaviour). For a database on the
    /// same host or a private network.
    #[default]
    Disable,
    /// TLS when the server offers it, else plain text.
    Prefer,
    /// TLS only.
    Require,
}

impl PostgresTls {
    /// The configuration spelling: `disable`, `prefer` or `require`.
    pub fn as_str(self) -> &'static str {
        match self {
            PostgresTls::Disable => "disable",
            PostgresTls::Prefer => "prefer",
            PostgresTls::Require => "require",
        }
    }
}

impl std::str::FromStr for PostgresTls {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "disable" => Ok(PostgresTls::Disable),
            "prefer" => Ok(PostgresTls::Prefer),
            "require" => Ok(PostgresTls::Require),
            _ => Err("expected `disable`, `prefer` or `require`".into()),
        }
    }
}

impl std::fmt::Debug for PostgresSettings {
    // Written out to keep the password out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresSettings")
            .field("url", &self.url.as_ref().map(|_| "<redacted>"))
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("address", &self.address)
            .field("default_database", &self.default_database)
            .field("vss_database", &self.vss_database)
            .field("tls", &self.tls)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

/// The Redis URL used when none is configured.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// Settings of the Redis backend.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisSettings {
    /// `VSS_REDIS_URL`: `redis://[[user]:password@]host[:port][/db]`,
    /// `rediss://` for TLS, `redis-cluster://` / `rediss-cluster://` for a cluster.
    pub url: String,
    /// `VSS_REDIS_ALLOW_VOLATILE`: start even when Redis could lose
    /// acknowledged writes (no AOF with `appendfsync always`, eviction...).
    pub allow_volatile: bool,
    /// `VSS_REDIS_TLS_CA_FILE`: the CA certificates (PEM) trusted for a
    /// `rediss://` server instead of the system's roots.
    pub tls_ca_file: Option<PathBuf>,
}

impl Default for RedisSettings {
    /// A local Redis, durability guard on, system roots.
    fn default() -> Self {
        RedisSettings {
            url: DEFAULT_REDIS_URL.to_string(),
            allow_volatile: false,
            tls_ca_file: None,
        }
    }
}

impl std::fmt::Debug for RedisSettings {
    // Written out to keep the password in the URL out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSettings")
            .field("url", &url_without_password(&self.url))
            .field("allow_volatile", &self.allow_volatile)
            .field("tls_ca_file", &self.tls_ca_file)
            .finish()
    }
}

/// `url` with the user info's password replaced by `***`, fit for logs.
pub fn url_without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        // Not a URL: it could be anything, a password included.
        return "<redacted>".to_string();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => {
            let user = rest[..at].split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***{}", &rest[at..])
        }
        None => url.to_string(),
    }
}

/// The DynamoDB table used when none is configured.
pub const DEFAULT_DYNAMODB_TABLE: &str = "vss";

/// Settings of the DynamoDB backend. Credentials come from the standard AWS
/// chain (`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, `AWS_PROFILE`, web
/// identity, instance or task roles) unless [`DynamoDbSettings::credentials`] is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DynamoDbSettings {
    /// `VSS_DYNAMODB_TABLE`.
    pub table: String,
    /// `VSS_DYNAMODB_REGION`; `None` takes it from the AWS chain (`AWS_REGION`, profile).
    pub region: Option<String>,
    /// `VSS_DYNAMODB_ENDPOINT_URL`: another endpoint than the region's (a
    /// DynamoDB-API server for testing, a VPC endpoint).
    pub endpoint_url: Option<String>,
    /// `VSS_DYNAMODB_CREATE_TABLE`: create the table when it is missing.
    pub create_table: bool,
    /// Fixed credentials instead of the AWS chain, for embedding and tests
    /// against a local server. Not a configuration setting: keys belong in the
    /// AWS chain's places.
    pub credentials: Option<AwsCredentials>,
}

impl Default for DynamoDbSettings {
    /// Table `vss`, region and credentials from the AWS chain, no table creation.
    fn default() -> Self {
        DynamoDbSettings {
            table: DEFAULT_DYNAMODB_TABLE.to_string(),
            region: None,
            endpoint_url: None,
            create_table: false,
            credentials: None,
        }
    }
}

/// An AWS access key pair.
#[derive(Clone, PartialEq, Eq)]
pub struct AwsCredentials {
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: String,
}

impl std::fmt::Debug for AwsCredentials {
    // Never print the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
}

/// Why a backend could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The configuration names a backend this build lacks.
    #[error("the `{0}` backend is not compiled into this build")]
    NotCompiled(&'static str),
    /// The backend failed to open (database unreachable, bad file, ...).
    #[error("opening the {backend} backend failed: {reason}")]
    Open {
        /// The backend's name.
        backend: &'static str,
        /// Why.
        reason: String,
    },
}

/// Opens the configured backend.
pub async fn open(config: &BackendConfig) -> Result<Arc<dyn KvStore>, BackendError> {
    match config {
        BackendConfig::Memory => Ok(Arc::new(MemoryStore::new())),
        #[cfg(feature = "sqlite")]
        BackendConfig::Sqlite(settings) => {
            use vss_backend_sqlite::{SqliteConfig, SqliteStore, Synchronous};
            let synchronous = if settings.synchronous_full {
                Synchronous::Full
            } else {
                Synchronous::Normal
            };
            let config = SqliteConfig::new(&settings.path).synchronous(synchronous);
            let store = SqliteStore::open(config)
                .await
                .map_err(|e| open_failed("sqlite", e))?;
            tracing::info!(path = %settings.path.display(), ?synchronous, "opened SQLite database");
            Ok(Arc::new(store))
        }
        #[cfg(feature = "postgres")]
        BackendConfig::Postgres(settings) => {
            let config = postgres_config(settings)?;
            // The backend logs the address and database it connected to.
            let store = vss_backend_postgres::PostgresStore::connect(config)
                .await
                .map_err(|e| open_failed("postgres", e))?;
            Ok(Arc::new(store))
        }
        #[cfg(feature = "redis")]
        BackendConfig::Redis(settings) => {
            use vss_backend_redis::{RedisConfig, RedisStore};
            let mut config = RedisConfig::new(settings.url.clone());
            config.allow_volatile = settings.allow_volatile;
            config.tls_ca_file = settings.tls_ca_file.clone();
            let store = RedisStore::connect(config).await.map_err(|e| match e {
                vss_backend_redis::RedisError::NotDurable(_) => open_failed(
                    "redis",
                    format!(
                        "{e} [allow_volatile is {}]",
                        crate::config::REDIS_ALLOW_VOLATILE.names()
                    ),
                ),
                e => open_failed("redis", e),
            })?;
            let url = url_without_password(&settings.url);
            // The store has already logged each durability warning once.
            tracing::info!(%url, "connected to Redis");
            Ok(Arc::new(store))
        }
        #[cfg(feature = "dynamodb")]
        BackendConfig::DynamoDb(settings) => {
            use vss_backend_dynamodb::{DynamoDbConfig, DynamoDbStore, StaticCredentials};
            let config = DynamoDbConfig {
                table: settings.table.clone(),
                region: settings.region.clone(),
                endpoint_url: settings.endpoint_url.clone(),
                create_table: settings.create_table,
                credentials: settings.credentials.as_ref().map(|c| StaticCredentials {
                    access_key_id: c.access_key_id.clone(),
                    secret_access_key: c.secret_access_key.clone(),
                }),
                ..DynamoDbConfig::default()
            };
            let store = DynamoDbStore::connect(config).await.map_err(|e| match e {
                vss_backend_dynamodb::DynamoDbError::NoTable(_) => open_failed(
                    "dynamodb",
                    format!(
                        "{e} [create_table is {}]",
                        crate::config::DYNAMODB_CREATE_TABLE.names()
                    ),
                ),
                e => open_failed("dynamodb", e),
            })?;
            tracing::info!(
                table = %settings.table,
                region = settings.region.as_deref().unwrap_or("(from the AWS chain)"),
                endpoint = settings.endpoint_url.as_deref().unwrap_or("(the region's)"),
                "connected to DynamoDB"
            );
            Ok(Arc::new(store))
        }
        #[allow(unreachable_patterns)]
        other => Err(BackendError::NotCompiled(other.name())),
    }
}

#[cfg_attr(
    not(any(
        feature = "sqlite",
        feature = "postgres",
        feature = "redis",
        feature = "dynamodb"
    )),
    allow(dead_code)
)]
fn open_failed(backend: &'static str, err: impl std::fmt::Display) -> BackendError {
    BackendError::Open {
        backend,
        reason: err.to_string(),
    }
}

/// The PostgreSQL backend's config: from the URL, or from the separate
/// settings (the database is then created when missing, as the reference server does).
#[cfg(feature = "postgres")]
fn postgres_config(
    settings: &PostgresSettings,
) -> Result<vss_backend_postgres::PostgresConfig, BackendError> {
    use vss_backend_postgres::{PostgresConfig, TlsMode};
    if let Some(url) = &settings.url {
        let others = settings.separate_settings_set();
        if !others.is_empty() {
            return Err(open_failed(
                "postgres",
                format!(
                    "the URL is set together with {}: give either the URL or the separate settings",
                    others.join(", ")
                ),
            ));
        }
        return PostgresConfig::from_url(url).map_err(|e| open_failed("postgres", e));
    }
    let defaults = PostgresConfig::default();
    Ok(PostgresConfig {
        address: settings.address.clone().unwrap_or(defaults.address),
        username: settings.username.clone().unwrap_or(defaults.username),
        password: settings.password.clone(),
        database: settings.vss_database.clone().unwrap_or(defaults.database),
        default_database: settings
            .default_database
            .clone()
            .unwrap_or(defaults.default_database),
        create_database: true,
        tls: match settings.tls {
            PostgresTls::Disable => TlsMode::Disable,
            PostgresTls::Prefer => TlsMode::Prefer,
            PostgresTls::Require => TlsMode::Require,
        },
        ca_file: settings.ca_file.clone(),
        ..defaults
    })
}
