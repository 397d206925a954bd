//! `[postgresql_config]`: the PostgreSQL backend (cargo feature `postgres`),
//! named as in the reference server.

use std::path::PathBuf;

use crate::settings::{parse, ConfigError, Origins, Setting};

/// The file section of these settings.
pub const SECTION: &str = "postgresql_config";

/// Settings of the PostgreSQL backend, named as in the reference server.
/// Unset values take the backend's defaults (`postgres@localhost:5432`,
/// database `vss` created from `postgres` when missing).
///
/// Either [`PostgresSettings::url`] or the separate connection settings
/// (user name, password, address, databases, TLS, CA file) are given, not
/// both: the configuration refuses both, and `url`, when set, is used alone.
#[derive(clap::Args, Clone, PartialEq, Eq)]
pub struct PostgresSettings {
    /// A libpq-style URL, `postgres://user:password@host:port/db?sslmode=...`, instead of the separate settings
    #[arg(id = "postgresql_config.url", long = "psql-url", env = "VSS_PSQL_URL", hide = true,
          hide_env_values = true, value_parser = postgres_url)]
    pub url: Option<String>,

    /// PostgreSQL user (password only from VSS_PSQL_PASSWORD or the file) [default: postgres]
    #[arg(
        id = "postgresql_config.username",
        long = "psql-username",
        env = "VSS_PSQL_USERNAME",
        value_name = "USER"
    )]
    pub username: Option<String>,

    /// PostgreSQL password
    #[arg(
        id = "postgresql_config.password",
        long = "psql-password",
        env = "VSS_PSQL_PASSWORD",
        hide = true,
        hide_env_values = true
    )]
    pub password: Option<String>,

    /// PostgreSQL host:port [default: localhost:5432]
    #[arg(
        id = "postgresql_config.address",
        long = "psql-address",
        env = "VSS_PSQL_ADDRESS",
        value_name = "HOST:PORT"
    )]
    pub address: Option<String>,

    /// PostgreSQL database to connect to when creating the VSS database [default: postgres]
    #[arg(
        id = "postgresql_config.default_database",
        long = "psql-default-db",
        env = "VSS_PSQL_DEFAULT_DB",
        value_name = "DB"
    )]
    pub default_database: Option<String>,

    /// PostgreSQL database holding VSS data [default: vss]
    #[arg(
        id = "postgresql_config.vss_database",
        long = "psql-vss-db",
        env = "VSS_PSQL_VSS_DB",
        value_name = "DB"
    )]
    pub vss_database: Option<String>,

    /// PostgreSQL TLS: disable, prefer or require (true is require); certificates are always verified [default: disable, require with a CA]
    #[arg(id = "postgresql_config.tls", long = "psql-tls", env = "VSS_PSQL_TLS",
          value_name = "MODE", value_parser = tls_mode)]
    pub tls: Option<PostgresTls>,

    /// CA certificate(s) (PEM text) trusted for PostgreSQL, as the reference server's `crt_pem`
    #[arg(id = "postgresql_config.tls.crt_pem", long = "psql-crt-pem", env = "VSS_PSQL_CRT_PEM",
          hide = true, value_parser = ca_pem)]
    pub crt_pem: Option<String>,

    /// CA certificates (PEM) that sign PostgreSQL's certificate [default: the Mozilla roots]
    #[arg(id = "postgresql_config.ca_file", long = "psql-ca-file", env = "VSS_PSQL_CA_FILE",
          value_name = "FILE", value_parser = parse::existing_file)]
    pub ca_file: Option<PathBuf>,
}

impl Default for PostgresSettings {
    /// Nothing set: the reference server's defaults, TLS off.
    fn default() -> Self {
        super::defaults()
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
            .field("crt_pem", &self.crt_pem.as_ref().map(|_| "<PEM>"))
            .field("ca_file", &self.ca_file)
            .finish()
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

/// `disable`, `prefer` or `require`; also yes/no, as the reference server's
/// `VSS_PSQL_TLS` (set to turn TLS on) and its `[postgresql_config.tls]` table are read.
fn tls_mode(s: &str) -> Result<PostgresTls, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "disable" => Ok(PostgresTls::Disable),
        "prefer" => Ok(PostgresTls::Prefer),
        "require" => Ok(PostgresTls::Require),
        other => match parse::boolean(other) {
            Ok(true) => Ok(PostgresTls::Require),
            Ok(false) => Ok(PostgresTls::Disable),
            Err(_) => Err("expected `disable`, `prefer` or `require` (or true/false)".into()),
        },
    }
}

/// CA certificates in PEM form, checked now so a bad one stops startup.
fn ca_pem(s: &str) -> Result<String, String> {
    if !s.contains("-----BEGIN CERTIFICATE-----") {
        return Err("no `-----BEGIN CERTIFICATE-----` block".into());
    }
    #[cfg(feature = "postgres")]
    vss_backend_postgres::PostgresConfig {
        ca_pem: Some(s.to_string()),
        ..Default::default()
    }
    .check_tls()
    .map_err(|e| e.to_string())?;
    Ok(s.to_string())
}

/// A PostgreSQL URL (secret: the reason never repeats it).
fn postgres_url(s: &str) -> Result<String, String> {
    #[cfg(feature = "postgres")]
    if vss_backend_postgres::PostgresConfig::from_url(s).is_err() {
        return Err("not a PostgreSQL URL such as \
                    postgres://user:password@host:5432/database?sslmode=require"
            .into());
    }
    Ok(s.to_string())
}

impl PostgresSettings {
    /// Refuses the URL together with any separate setting, even at its
    /// default: the URL carries everything (sslmode and sslrootcert
    /// included), so a separate setting would be silently unused. Refuses a
    /// CA certificate with TLS off.
    pub(super) fn checked(self, origins: &Origins) -> Result<Self, ConfigError> {
        let (url, separate): (Vec<Setting>, Vec<Setting>) = origins
            .section(SECTION)
            .into_iter()
            .partition(|s| s.file_key == "postgresql_config.url");
        for url in &url {
            origins.exclusive(
                url,
                &separate,
                "give either the URL, with sslmode and sslrootcert in it, or the separate settings",
            )?;
        }
        let has_ca = self.crt_pem.is_some() || self.ca_file.is_some();
        if has_ca && self.tls == Some(PostgresTls::Disable) {
            let tls = origins.setting("postgresql_config.tls");
            let ca = [
                origins.setting("postgresql_config.tls.crt_pem"),
                origins.setting("postgresql_config.ca_file"),
            ];
            let given: Vec<String> = origins.set_among(&ca).iter().map(|s| s.names()).collect();
            return Err(ConfigError::Conflict(format!(
                "{} is set but {} turns TLS off: remove one",
                given.join(", "),
                tls.names()
            )));
        }
        Ok(self)
    }

    /// The TLS mode: as set, else `require` when a CA certificate is given
    /// (the reference server turns TLS on with `crt_pem`), else `disable`.
    pub fn tls_mode(&self) -> PostgresTls {
        match self.tls {
            Some(mode) => mode,
            None if self.crt_pem.is_some() || self.ca_file.is_some() => PostgresTls::Require,
            None => PostgresTls::Disable,
        }
    }
}

#[cfg(feature = "postgres")]
impl PostgresSettings {
    /// The backend's config: from the URL, or from the separate settings (the
    /// database is then created when missing, as the reference server does).
    pub fn backend_config(
        &self,
    ) -> Result<vss_backend_postgres::PostgresConfig, super::BackendError> {
        use vss_backend_postgres::{PostgresConfig, TlsMode};
        if let Some(url) = &self.url {
            return PostgresConfig::from_url(url)
                .map_err(|e| super::BackendError::open("postgres", e));
        }
        let defaults = PostgresConfig::default();
        Ok(PostgresConfig {
            address: self.address.clone().unwrap_or(defaults.address),
            username: self.username.clone().unwrap_or(defaults.username),
            password: self.password.clone(),
            database: self.vss_database.clone().unwrap_or(defaults.database),
            default_database: self
                .default_database
                .clone()
                .unwrap_or(defaults.default_database),
            create_database: true,
            tls: match self.tls_mode() {
                PostgresTls::Disable => TlsMode::Disable,
                PostgresTls::Prefer => TlsMode::Prefer,
                PostgresTls::Require => TlsMode::Require,
            },
            ca_file: self.ca_file.clone(),
            ca_pem: self.crt_pem.clone(),
            ..defaults
        })
    }

    /// Connects (and migrates). The backend logs the address and database.
    pub(crate) async fn open(
        &self,
    ) -> Result<std::sync::Arc<dyn vss_core::KvStore>, super::BackendError> {
        Ok(self.open_admin().await?)
    }

    /// Connects (and migrates), with the admin interface.
    pub(crate) async fn open_admin(
        &self,
    ) -> Result<std::sync::Arc<dyn vss_core::AdminStore>, super::BackendError> {
        let store = vss_backend_postgres::PostgresStore::connect(self.backend_config()?)
            .await
            .map_err(|e| super::BackendError::open("postgres", e))?;
        Ok(std::sync::Arc::new(store))
    }
}
