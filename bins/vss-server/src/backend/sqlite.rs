//! `[sqlite_config]`: the embedded SQLite backend (cargo feature `sqlite`).

use std::path::PathBuf;

/// The file section of these settings.
pub const SECTION: &str = "sqlite_config";

/// The default SQLite database file.
pub const DEFAULT_SQLITE_PATH: &str = "./vss-data/vss.sqlite3";

/// Settings of the SQLite backend.
#[derive(clap::Args, Debug, Clone, PartialEq, Eq)]
pub struct SqliteSettings {
    /// SQLite database file; its directory is created
    #[arg(id = "sqlite_config.path", long = "sqlite-path", env = "VSS_SQLITE_PATH",
          value_name = "FILE", default_value = DEFAULT_SQLITE_PATH)]
    pub path: PathBuf,

    /// SQLite durability: `full` (an acknowledged write survives power loss) or `normal` (only a crash of the server)
    #[arg(id = "sqlite_config.synchronous", long = "sqlite-synchronous",
          env = "VSS_SQLITE_SYNCHRONOUS", value_name = "LEVEL", default_value = "full",
          action = clap::ArgAction::Set, value_parser = synchronous_full)]
    pub synchronous_full: bool,
}

impl Default for SqliteSettings {
    /// `./vss-data/vss.sqlite3`, synchronous `full`: wallet backups must
    /// survive power loss, and the backend batches concurrent commits into
    /// one sync, which keeps the cost low.
    fn default() -> Self {
        super::defaults()
    }
}

/// `full` (sync every commit) or `normal`, any case.
fn synchronous_full(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "full" => Ok(true),
        "normal" => Ok(false),
        _ => Err("expected `normal` or `full`".into()),
    }
}

#[cfg(feature = "sqlite")]
impl SqliteSettings {
    /// Opens (and migrates) the database file.
    pub(crate) async fn open(
        &self,
    ) -> Result<std::sync::Arc<dyn vss_core::KvStore>, super::BackendError> {
        Ok(self.open_admin().await?)
    }

    /// Opens (and migrates) the database file, with its admin interface.
    pub(crate) async fn open_admin(
        &self,
    ) -> Result<std::sync::Arc<dyn vss_core::AdminStore>, super::BackendError> {
        use vss_backend_sqlite::{SqliteConfig, SqliteStore, Synchronous};
        let synchronous = if self.synchronous_full {
            Synchronous::Full
        } else {
            Synchronous::Normal
        };
        let config = SqliteConfig::new(&self.path).synchronous(synchronous);
        let store = SqliteStore::open(config)
            .await
            .map_err(|e| super::BackendError::open("sqlite", e))?;
        tracing::info!(path = %self.path.display(), ?synchronous, "opened SQLite database");
        Ok(std::sync::Arc::new(store))
    }
}
