//! # vss-backend-postgres: VSS in PostgreSQL
//!
//! A [`vss_core::KvStore`] on [`tokio-postgres`](tokio_postgres), with a
//! [`deadpool-postgres`](deadpool_postgres) connection pool, TLS by rustls,
//! versioned migrations, and one database round trip per request (a put or
//! `deleteObject` is `BEGIN`, its statements and `COMMIT`, pipelined).
//!
//! ```no_run
//! use vss_backend_postgres::{PostgresConfig, PostgresStore};
//! use vss_core::KvStore;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = PostgresConfig::from_url("postgres://vss:secret@localhost:5432/vss")?;
//! let store = PostgresStore::connect(config).await?;
//! // ... serve requests with `store` ...
//! store.close().await?;
//! # Ok(()) }
//! ```
//!
//! ## Configuration
//!
//! [`PostgresConfig`] has the reference server's settings as fields: `username`,
//! `password`, `address` (`host:port`), `default_database` (connected to when the
//! VSS database must be created), `database` (the VSS database) and
//! `create_database`. [`PostgresConfig::from_url`] reads a libpq-style URL instead.
//! Pool and network settings (`max_connections`, `connect_timeout`, `wait_timeout`,
//! `statement_timeout`, `keepalive_idle`) have defaults that suit a server.
//!
//! ## TLS
//!
//! [`PostgresConfig::tls`] is [`TlsMode::Disable`], [`TlsMode::Prefer`] or
//! [`TlsMode::Require`] (`sslmode=disable|prefer|require|verify-ca|verify-full`
//! in a URL). TLS uses rustls with the `ring` provider and always verifies the
//! server's certificate and name: against the PEM file [`PostgresConfig::ca_file`]
//! (`sslrootcert=` in a URL) when set, else against the Mozilla roots. Unlike
//! libpq's `prefer`, a server whose certificate does not verify is refused rather
//! than used without verification.
//!
//! ## Schema
//!
//! All identifiers and keys are `bytea`: compared byte by byte (no collation
//! surprises), able to hold any UTF-8 string, and a key prefix is a byte range.
//!
//! - `vss_objects (user_token, store_id, key, version, sequence, value)`, primary
//!   key `(user_token, store_id, key)`: gets, conditional writes and deletes are
//!   single-row index operations.
//! - Index `vss_objects_by_sequence (user_token, store_id, sequence DESC) INCLUDE (key, version)
//!   WHERE sequence > 0`: a listing page is a bounded, index-only range scan, newest
//!   first. It is partial (every row qualifies) so that only listings, which say
//!   `sequence > 0`, can use it: lookups by key always take the primary key, even on a
//!   new table without statistics, where the planner could otherwise pick this index and
//!   walk a whole store per get.
//! - `sequence`: the creation order, strictly increasing per store. A put that
//!   creates keys takes one value `n` of the global sequence `vss_creation_seq` and
//!   gives its items `n * 1024 + index in the request`, so keys created together are
//!   ordered as the request lists them. Updates and overwrites keep a key's sequence;
//!   a delete and re-create gives it a new one.
//! - `vss_stores (user_token, store_id, global_version)`: the global version, a row
//!   created by the first put that sets it (no row means 0). Puts with a global
//!   version serialise on that row.
//! - A prefix is matched literally as the byte range `[prefix, successor(prefix))`:
//!   `%`, `_` and `\` are ordinary bytes.
//! - `vss_usage (user_token, shard) -> bytes, keys`: what each user stores, for
//!   quotas ([`vss_core::quota`]): keys, and bytes of keys plus values, as the
//!   sum of the user's shards (0 to 15). Migration 4 counts the data already
//!   stored, once, under a `SHARE` lock on `vss_objects` (writers of a server of
//!   the previous version wait for it); an import counts it again. From then on
//!   every write keeps it exact in its own statement or transaction: each item's
//!   statement computes its change from the row version it writes (an upsert or
//!   update records the length it replaces in `vss_objects.prev_len` and returns
//!   it), and the usage is written last, once per write: by the item's statement
//!   when the put has one item, else by a last statement that counts the total
//!   the items added up (in two settings local to the transaction). A write
//!   counts in its connection's shard (1 to 15), so one user's writes on
//!   different connections do not queue on one row. A write under a quota counts
//!   in shard 0; when that changed the shard, its statement calls
//!   `vss_judge_quota` (migration 6), which for a change that raised usage sums
//!   all shards and, through `vss_require_quota`, raises SQLSTATE `VS507` with
//!   the usage before and after when a measure went above its limit (the server
//!   words the refusal from them; a write that changes no usage runs no more
//!   than one without a quota):
//!   writes under a quota that raise usage queue on shard 0, one per user at a
//!   time, as the cost of an exact quota; different users never wait for each
//!   other.
//! - Values: up to 1 GiB - 1 bytes (a `bytea`'s limit) less 64 KiB of room for
//!   the rest of the message ([`StoreLimits::max_value_size`](vss_core::StoreLimits));
//!   bigger values are refused with TOO_LARGE (HTTP 413) before anything is sent.
//!
//! ## Concurrency
//!
//! Requests run in READ COMMITTED. Every condition is checked by the statement that
//! writes: `INSERT ... ON CONFLICT DO NOTHING` for a create (a concurrent create of
//! the same key waits, then finds the key: exactly one winner, the other gets
//! CONFLICT, never a unique violation), `UPDATE ... WHERE version = $v` for an update
//! (re-checked on the newest row after waiting for a concurrent writer),
//! `DELETE ... WHERE version = $v` for deletes, and
//! `INSERT ... ON CONFLICT DO UPDATE ... WHERE global_version = $v` for the global
//! version. A failed condition raises SQLSTATE `VS409` inside the statement, which
//! aborts the transaction: nothing of the put is committed. Row locks are held to
//! commit and taken in one order (global version, then keys in byte order, then
//! the user's usage), so puts cannot deadlock one another.
//!
//! ## Migrations
//!
//! [`PostgresStore::connect`] applies pending migrations in one transaction that
//! first takes `pg_advisory_xact_lock`: servers starting together apply each
//! migration once (the others wait, then find nothing to do). Applied versions are
//! rows of [`MIGRATIONS_TABLE`]. A database whose schema is newer than
//! [`SCHEMA_VERSION`] is refused with [`PostgresError::SchemaTooNew`].
//!
//! ## The reference server's data
//!
//! A database that holds the reference server's table `vss_db` is opened only
//! once [`import_reference`] has copied it (exactly: versions, global versions,
//! listing order) and while `vss_db` is unchanged since; otherwise
//! [`PostgresStore::connect`] fails with [`PostgresError::ReferenceData`], naming
//! the command to run. [`export_reference`] is the way back. Cut-over and
//! details: the `reference` module's documentation and the README.
//!
//! ## Round trips per operation
//!
//! Statements are prepared once per pooled connection (deadpool's statement cache);
//! a checkout costs nothing (the pool only drops connections that report closed).
//! Writes have a pooled connection to themselves. Reads (`getObject`, listing
//! pages) share a quarter of the pool's connections (none when it has fewer than
//! four; [`PostgresStore::shared_read_connections`]), taken in turn, many reads in
//! flight on each: tokio-postgres sends the queries that arrive together in one
//! write and PostgreSQL answers them back to back, which costs both sides fewer
//! system calls and wake-ups per read (with PostgreSQL on a CPU of its own, gets
//! went from 0.71 to 1.16 of pgbench's ceiling, medians). A read waits behind
//! the reads sent before it on its connection: a very large value delays every
//! read sent after it there, a quarter of the reads with four shared
//! connections, for as long as it takes to arrive. A shared connection leaves
//! its place when PostgreSQL closes it (the reads in flight on it get INTERNAL),
//! when a read on it fails or is abandoned in flight (its request's future
//! dropped), or after a large value; the place is filled again in the background
//! while the others serve. With prepared statements:
//!
//! | operation | round trips | what is sent |
//! | --- | --- | --- |
//! | `getObject` (a key or the global version) | 1 | one `SELECT` by primary key |
//! | `putObjects` with one item, or only a global version | 1 | one statement in autocommit; `version = -1` (ldk-node's only write) is one `INSERT ... ON CONFLICT DO UPDATE` |
//! | `putObjects` with more | 1 | `BEGIN`, every statement and `COMMIT`, pipelined |
//! | `putObjects` with no item and no global version | 0 | nothing |
//! | `putObjects` with a value of 1 MiB or more ([`LARGE_VALUE_BYTES`]) | 4 + one per started MiB of each such value | `BEGIN` and a temporary table; the chunk statement's preparation; each MiB of the value (`INSERT`); the preparation of the statements that read it back; those statements and `COMMIT`. The driver holds one MiB of it at a time instead of two copies of it all. The connection is closed afterwards, so the preparations recur |
//! | `deleteObject` | 1 | one `DELETE` |
//! | `listKeyVersions`, any page | 1 | one `SELECT` (the first page reads the global version in it) |
//!
//! A connection's first use of a statement adds one round trip (the missing
//! statements are prepared together). A connection that carried 1 MiB of
//! values or more is closed after its request instead of pooled (its buffers
//! would keep that size); a shared one is replaced at once and closed when the
//! reads in flight on it are answered. The `round_trips` test counts these numbers
//! on the wire through a proxy.
//!
//! ## Failures
//!
//! Every database or pool failure is [`vss_core::VssError::Internal`] (clients
//! retry it); only `VS409` becomes CONFLICT, and only a missing row of a get
//! becomes NO_SUCH_KEY. When PostgreSQL restarts, connections it closed are
//! dropped by the pool and new ones are opened on demand; connections to a host
//! that vanished are found dead by TCP keepalives and `TCP_USER_TIMEOUT`.

#![warn(missing_docs)]

mod admin;
mod config;
mod error;
pub mod measure;
mod migrations;
pub mod reference;
mod shared;
mod sql;
mod store;

pub use config::{PostgresConfig, TlsMode};
pub use error::PostgresError;
pub use migrations::{MIGRATIONS_TABLE, SCHEMA_VERSION};
pub use reference::{
    export_reference, import_reference, ReferenceReport, REFERENCE_TABLE,
    REFERENCE_UNAUTHENTICATED_USER,
};
pub use store::{PostgresStore, LARGE_VALUE_BYTES, STAGE_CHUNK_BYTES};
