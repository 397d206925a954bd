//! The storage backends this build can serve from, picked by configuration.
//!
//! Each backend has a module of its own: its settings (one `clap::Args`
//! struct, see [`crate::settings`]), the checks they need together, and
//! `open`, which maps them to the backend crate's config when its cargo
//! feature is compiled in. The settings types do not depend on the backend
//! crates, so a configuration can be read (and checked) whatever this build holds.
//!
//! Adding a backend `name`:
//! 1. `Cargo.toml`: `name = ["dep:vss-backend-name"]` under `[features]`, and
//!    the optional dependency;
//! 2. `backend/name.rs`: its settings struct and `open`;
//! 3. here: its entry in `BACKENDS`, a field in [`BackendSettings`], a
//!    variant in [`BackendConfig`] (and its arms in `name`, `from_settings`, `open`);
//! 4. a row per setting in CONFIG.md and `vss-server.example.toml`.

use std::sync::Arc;

use vss_core::{KvStore, MemoryStore};

use crate::settings::{ConfigError, Origin, Origins, Setting, Sources};

pub mod dynamodb;
pub mod postgres;
pub mod redis;
pub mod sqlite;

pub use dynamodb::{AwsCredentials, DynamoDbSettings, DEFAULT_DYNAMODB_TABLE};
pub use postgres::{PostgresSettings, PostgresTls};
pub use redis::{RedisSettings, DEFAULT_REDIS_URL};
pub use sqlite::{SqliteSettings, DEFAULT_SQLITE_PATH};

/// One backend: its name, whether this build has it, and the file section of
/// its settings (`None`: it has none).
struct Backend(&'static str, bool, Option<&'static str>);

/// Every backend the configuration may name, compiled in or not.
const BACKENDS: &[Backend] = &[
    Backend("memory", true, None),
    Backend("sqlite", cfg!(feature = "sqlite"), Some(sqlite::SECTION)),
    Backend(
        "postgres",
        cfg!(feature = "postgres"),
        Some(postgres::SECTION),
    ),
    Backend("redis", cfg!(feature = "redis"), Some(redis::SECTION)),
    Backend(
        "dynamodb",
        cfg!(feature = "dynamodb"),
        Some(dynamodb::SECTION),
    ),
];

/// Every backend name the configuration may give, compiled in or not.
pub const KNOWN_BACKENDS: &[&str] = &{
    let mut names = [""; BACKENDS.len()];
    let mut i = 0;
    while i < names.len() {
        names[i] = BACKENDS[i].0;
        i += 1;
    }
    names
};

/// The backend used when none is configured: SQLite when compiled in.
pub const DEFAULT_BACKEND: &str = if cfg!(feature = "sqlite") {
    "sqlite"
} else {
    "memory"
};

/// The backends compiled into this build.
pub fn compiled_backends() -> Vec<&'static str> {
    BACKENDS.iter().filter(|b| b.1).map(|b| b.0).collect()
}

/// Parses `server_config.backend`: a backend this build has, in any case.
pub fn compiled_backend(s: &str) -> Result<&'static str, String> {
    let name = s.trim().to_ascii_lowercase();
    let compiled = compiled_backends().join(", ");
    match BACKENDS.iter().find(|b| b.0 == name) {
        Some(Backend(name, true, _)) => Ok(name),
        Some(Backend(name, false, _)) => Err(format!(
            "the `{name}` backend is not compiled into this build (it has: {compiled}); \
             rebuild with `--features {name}`"
        )),
        None => Err(format!("unknown backend (this build has: {compiled})")),
    }
}

/// The backend a configuration picks, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// The backend inferred from its settings; `None` when `server_config.backend`
    /// names one (its parser checks the name) or none is given (the default).
    pub inferred: Option<&'static str>,
    /// The name to read settings for.
    pub name: String,
    /// Why, for the startup log.
    pub why: String,
    /// Whether settings of any backend are given (the configuration is not empty).
    pub settings_given: bool,
}

/// Picks the backend: the one `backend` (the setting `server_config.backend`)
/// names; else the one whose settings are given, refusing settings of two
/// backends or of one this build lacks; else [`DEFAULT_BACKEND`]. So a
/// reference server's `[postgresql_config]` or `VSS_PSQL_*` alone means
/// PostgreSQL, never an empty SQLite file.
pub fn choose(sources: &Sources, backend: &Setting) -> Result<Choice, ConfigError> {
    choose_among(BACKENDS, sources, backend)
}

/// [`choose`] among `backends` (tests pretend some are not compiled in).
fn choose_among(
    backends: &'static [Backend],
    sources: &Sources,
    backend: &Setting,
) -> Result<Choice, ConfigError> {
    let mut given: Vec<(&Backend, Setting, Origin)> = Vec::new();
    for b in backends {
        let in_section = |s: &&Setting| Some(s.section()) == b.2;
        for setting in sources.settings().iter().filter(in_section) {
            if let Some((_, origin)) = sources.raw(setting)? {
                given.push((b, *setting, origin));
                break;
            }
        }
    }
    let settings_given = !given.is_empty();
    if let Some((name, origin)) = sources.raw(backend)? {
        return Ok(Choice {
            inferred: None,
            name: name.trim().to_ascii_lowercase(),
            why: format!("{} ({origin})", backend.names()),
            settings_given,
        });
    }
    let compiled: Vec<&str> = backends.iter().filter(|b| b.1).map(|b| b.0).collect();
    let compiled = compiled.join(", ");
    match given.as_slice() {
        [] => Ok(Choice {
            inferred: None,
            name: DEFAULT_BACKEND.to_string(),
            why: "the default: no backend is configured".into(),
            settings_given,
        }),
        [(Backend(name, true, _), setting, origin)] => Ok(Choice {
            inferred: Some(name),
            name: name.to_string(),
            why: format!("{} is set ({origin})", setting.names()),
            settings_given,
        }),
        [(Backend(name, false, _), setting, origin)] => Err(ConfigError::Conflict(format!(
            "{} is set ({origin}), a setting of the `{name}` backend, which is not compiled \
             into this build (it has: {compiled}): rebuild with `--features {name}`, or choose \
             a backend with {}",
            setting.names(),
            backend.names()
        ))),
        several => {
            let named: Vec<String> = several
                .iter()
                .map(|(b, setting, origin)| format!("`{}` ({} {origin})", b.0, setting.names()))
                .collect();
            Err(ConfigError::Conflict(format!(
                "settings of several backends are given and none is chosen: {}; set {} to \
                 the one to use",
                named.join(" and "),
                backend.names()
            )))
        }
    }
}

/// Whether the settings of file section `section` are read when the backend
/// `chosen` is: every section but those of the other backends.
pub fn reads_section(chosen: &str, section: &str) -> bool {
    BACKENDS
        .iter()
        .find(|b| b.2 == Some(section))
        .is_none_or(|b| b.0 == chosen)
}

/// Every backend's settings, as given.
#[derive(clap::Args, Debug, Clone, PartialEq, Eq)]
pub struct BackendSettings {
    /// `[sqlite_config]`.
    #[command(flatten)]
    pub sqlite: SqliteSettings,
    /// `[postgresql_config]`.
    #[command(flatten)]
    pub postgres: PostgresSettings,
    /// `[redis_config]`.
    #[command(flatten)]
    pub redis: RedisSettings,
    /// `[dynamodb_config]`.
    #[command(flatten)]
    pub dynamodb: DynamoDbSettings,
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

    /// The backend `name` (a compiled one, see [`compiled_backend`]) with its
    /// settings, checked together.
    pub fn from_settings(
        name: &str,
        settings: BackendSettings,
        origins: &Origins,
    ) -> Result<Self, ConfigError> {
        Ok(match name {
            "sqlite" => BackendConfig::Sqlite(settings.sqlite),
            "postgres" => BackendConfig::Postgres(settings.postgres.checked(origins)?),
            "redis" => BackendConfig::Redis(settings.redis.checked(origins)?),
            "dynamodb" => BackendConfig::DynamoDb(settings.dynamodb),
            _ => BackendConfig::Memory,
        })
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

#[cfg_attr(
    not(any(
        feature = "sqlite",
        feature = "postgres",
        feature = "redis",
        feature = "dynamodb"
    )),
    allow(dead_code)
)]
impl BackendError {
    /// The backend `backend` failed to open because of `err`, told with its
    /// chain of causes (the database's own message included).
    pub(crate) fn open(backend: &'static str, err: impl std::error::Error) -> Self {
        BackendError::Open {
            backend,
            reason: vss_core::error_chain(&err),
        }
    }

    /// Adds which setting to look at: `[create_table is VSS_DYNAMODB_CREATE_TABLE / ...]`
    /// for `naming::<DynamoDbSettings>("create_table", "dynamodb_config.create_table")`.
    #[cfg_attr(not(any(feature = "redis", feature = "dynamodb")), allow(dead_code))]
    pub(crate) fn naming<T: clap::Args>(self, label: &str, file_key: &str) -> Self {
        match self {
            BackendError::Open { backend, reason } => BackendError::Open {
                backend,
                reason: format!(
                    "{reason} [{label} is {}]",
                    crate::settings::names_of::<T>(file_key)
                ),
            },
            other => other,
        }
    }
}

/// Opens the configured backend.
pub async fn open(config: &BackendConfig) -> Result<Arc<dyn KvStore>, BackendError> {
    match config {
        BackendConfig::Memory => Ok(Arc::new(MemoryStore::new())),
        #[cfg(feature = "sqlite")]
        BackendConfig::Sqlite(settings) => settings.open().await,
        #[cfg(feature = "postgres")]
        BackendConfig::Postgres(settings) => settings.open().await,
        #[cfg(feature = "redis")]
        BackendConfig::Redis(settings) => settings.open().await,
        #[cfg(feature = "dynamodb")]
        BackendConfig::DynamoDb(settings) => settings.open().await,
        #[allow(unreachable_patterns)]
        other => Err(BackendError::NotCompiled(other.name())),
    }
}

/// Opens the configured backend with its admin interface, for `vss-admin`.
pub async fn open_admin(
    config: &BackendConfig,
) -> Result<Arc<dyn vss_core::AdminStore>, BackendError> {
    match config {
        BackendConfig::Memory => Ok(Arc::new(MemoryStore::new())),
        #[cfg(feature = "sqlite")]
        BackendConfig::Sqlite(settings) => settings.open_admin().await,
        #[cfg(feature = "postgres")]
        BackendConfig::Postgres(settings) => settings.open_admin().await,
        #[cfg(feature = "redis")]
        BackendConfig::Redis(settings) => settings.open_admin().await,
        #[cfg(feature = "dynamodb")]
        BackendConfig::DynamoDb(settings) => settings.open_admin().await,
        #[allow(unreachable_patterns)]
        other => Err(BackendError::NotCompiled(other.name())),
    }
}

/// The section's settings with nothing configured: every default of its declaration.
fn defaults<T: clap::Args + clap::FromArgMatches>() -> T {
    let command = T::augment_args(clap::Command::new("defaults"))
        .mut_args(|arg| arg.env(None::<&'static str>));
    let parsed = command
        .try_get_matches_from(["defaults"])
        .map_err(|e| e.to_string())
        .and_then(|matches| T::from_arg_matches(&matches).map_err(|e| e.to_string()));
    match parsed {
        Ok(settings) => settings,
        Err(e) => unreachable!("the declared defaults parse: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every setting of a backend's struct lives in its file section (which
    /// decides when the setting is read).
    #[test]
    fn each_backend_declares_its_settings_in_its_section() {
        fn sections_of<T: clap::Args>() -> Vec<String> {
            T::augment_args(clap::Command::new("t"))
                .get_arguments()
                .filter_map(|a| {
                    a.get_id()
                        .as_str()
                        .split_once('.')
                        .map(|(s, _)| s.to_string())
                })
                .collect()
        }
        for (sections, section) in [
            (sections_of::<SqliteSettings>(), sqlite::SECTION),
            (sections_of::<PostgresSettings>(), postgres::SECTION),
            (sections_of::<RedisSettings>(), redis::SECTION),
            (sections_of::<DynamoDbSettings>(), dynamodb::SECTION),
        ] {
            assert!(!sections.is_empty(), "{section}");
            assert!(
                sections.iter().all(|s| s == section),
                "{section}: {sections:?}"
            );
        }
        assert!(reads_section("redis", redis::SECTION));
        assert!(!reads_section("sqlite", redis::SECTION));
        assert!(reads_section("sqlite", "server_config"));
        assert_eq!(KNOWN_BACKENDS.len(), BACKENDS.len());
    }

    /// Settings of a backend this build lacks stop startup naming its feature
    /// (the workspace's tests build every backend, so one is pretended away).
    #[test]
    fn settings_of_a_backend_not_compiled_in_stop_startup() {
        const WITHOUT_POSTGRES: &[Backend] = &[
            Backend("memory", true, None),
            Backend("sqlite", true, Some(sqlite::SECTION)),
            Backend("postgres", false, Some(postgres::SECTION)),
        ];
        let backend = *crate::config::setting("server_config.backend").unwrap();
        let choose = |env: &[(&str, &str)]| {
            let env: Vec<(String, String)> = env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let lookup =
                move |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
            let sources = Sources::new(
                crate::config::command(),
                crate::config::settings_list(),
                ["vss-server"],
                &lookup,
                crate::config::CONFIG_FILE_ENV,
            )
            .unwrap();
            choose_among(WITHOUT_POSTGRES, &sources, &backend)
        };
        let err = choose(&[("VSS_PSQL_ADDRESS", "db:5432")]).unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, ConfigError::Conflict(_)), "{message}");
        for needle in [
            "VSS_PSQL_ADDRESS",
            "`postgres`",
            "--features postgres",
            "memory, sqlite",
        ] {
            assert!(message.contains(needle), "{needle}: {message}");
        }
        let chosen = choose(&[("VSS_SQLITE_PATH", "/tmp/x.sqlite3")]).unwrap();
        assert_eq!(chosen.inferred, Some("sqlite"));
    }
}
