//! Helpers shared by this crate's tests.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on failure.

use std::path::Path;

use vss_backend_sqlite::{SqliteConfig, SqliteStore};

/// Opens a store on `dir/name.sqlite3`, panicking on failure.
pub async fn open(
    dir: &Path,
    name: &str,
    configure: impl FnOnce(SqliteConfig) -> SqliteConfig,
) -> SqliteStore {
    let config = configure(SqliteConfig::new(dir.join(format!("{name}.sqlite3"))));
    SqliteStore::open(config)
        .await
        .expect("open the SQLite store")
}
