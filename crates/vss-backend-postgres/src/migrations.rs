//! Versioned schema migrations, applied at startup.
//!
//! All pending migrations run in one transaction that first takes a
//! transaction-scoped advisory lock, so servers starting at the same time
//! apply each migration exactly once: the others wait on the lock, then find
//! nothing left to do. A database migrated by a newer binary is refused.

use tokio_postgres::Client;

use crate::PostgresError;

/// One step of the schema's history. Never edit a released migration: add a new one.
pub(crate) struct Migration {
    pub version: i32,
    pub description: &'static str,
    pub sql: &'static str,
}

/// Every migration, in order; versions are 1, 2, 3, ...
pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "objects, per-store global versions, creation sequence",
        sql: include_str!("../migrations/0001_initial.sql"),
    },
    Migration {
        version: 2,
        description: "listing index usable by listings only",
        sql: include_str!("../migrations/0002_listing_index_only_for_listings.sql"),
    },
    Migration {
        version: 3,
        description: "state of imports from and exports to the reference server's vss_db",
        sql: include_str!("../migrations/0003_reference_import.sql"),
    },
    Migration {
        version: 4,
        description: "per-user usage for quotas, counted once for the data already stored",
        sql: include_str!("../migrations/0004_usage.sql"),
    },
    Migration {
        version: 5,
        description:
            "usage in shards, counted last by each write, without queueing one user's writes",
        sql: include_str!("../migrations/0005_usage_without_queueing.sql"),
    },
    Migration {
        version: 6,
        description: "the quota judged by a function called only by writes that change usage",
        sql: include_str!("../migrations/0006_quota_judged_in_a_function.sql"),
    },
];

/// The schema version this binary writes and reads.
pub const SCHEMA_VERSION: i32 = 6;

const _: () = assert!(MIGRATIONS[MIGRATIONS.len() - 1].version == SCHEMA_VERSION);

/// Key of the advisory lock that serialises migrations, the reference guard,
/// imports and exports ("VSSMIGRT" in ASCII).
pub(crate) const MIGRATION_LOCK: i64 = 0x5653_534d_4947_5254;

/// Name of the table recording applied migrations.
pub const MIGRATIONS_TABLE: &str = "vss_schema_migrations";

/// Brings the schema up to [`SCHEMA_VERSION`]; returns the versions it applied.
pub(crate) async fn migrate(client: &mut Client) -> Result<Vec<i32>, PostgresError> {
    let tx = client.transaction().await?;
    // Held until commit or rollback: concurrent starters queue here.
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute(&format!(
        "CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (
            version integer PRIMARY KEY,
            description text NOT NULL,
            applied_at timestamptz NOT NULL DEFAULT now()
        )"
    ))
    .await?;
    let current: i32 = tx
        .query_one(
            &format!("SELECT COALESCE(max(version), 0) FROM {MIGRATIONS_TABLE}"),
            &[],
        )
        .await?
        .try_get(0)?;
    if current > SCHEMA_VERSION {
        return Err(PostgresError::SchemaTooNew {
            found: current,
            supported: SCHEMA_VERSION,
        });
    }
    let mut applied = Vec::new();
    for migration in MIGRATIONS.iter().filter(|m| m.version > current) {
        tracing::info!(
            version = migration.version,
            description = migration.description,
            "applying PostgreSQL schema migration"
        );
        tx.batch_execute(migration.sql).await?;
        tx.execute(
            &format!("INSERT INTO {MIGRATIONS_TABLE} (version, description) VALUES ($1, $2)"),
            &[&migration.version, &migration.description],
        )
        .await?;
        applied.push(migration.version);
    }
    tx.commit().await?;
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_consecutive_from_one() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as i32 + 1, "migration {}", m.description);
        }
    }
}
