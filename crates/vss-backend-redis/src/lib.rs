//! # vss-backend-redis: VSS on Redis
//!
//! A [`vss_core::KvStore`] on Redis 7.0 or newer (Valkey works too), for teams
//! that already run Redis. Redis has no multi-key conditional write, so every
//! write is one Lua script that Redis runs atomically.
//!
//! ```no_run
//! # async fn demo() -> Result<(), vss_backend_redis::RedisError> {
//! use vss_backend_redis::{RedisConfig, RedisStore};
//!
//! let store = RedisStore::connect(RedisConfig::new("redis://127.0.0.1:6379")).await?;
//! # let _ = store;
//! # Ok(())
//! # }
//! ```
//!
//! Connections: `redis://` or `rediss://` (TLS, with the system's roots or
//! [`RedisConfig::tls_ca_file`]), user name and password in the URL,
//! `redis-cluster://` for Redis Cluster; a pool of [`RedisConfig::pool_size`]
//! multiplexed connections that reconnect by themselves with backoff.
//!
//! ## Key layout
//!
//! Every `(user_token, store_id)` is two Redis keys that share one cluster hash
//! tag, so each script touches a single slot and runs unchanged on Redis Cluster:
//!
//! ```text
//! <namespace>:{<hex(user_token)>.<hex(store_id)>}:h   hash
//! <namespace>:{<hex(user_token)>.<hex(store_id)>}:z   sorted set
//! ```
//!
//! The namespace is [`RedisConfig::namespace`] (default `vss`, no `{` or `}`).
//! The hash tag is the lowercase hex of the user token's bytes, a `.`, and the
//! lowercase hex of the store id's bytes (nothing for the empty store id). Hex
//! has no `.`, `{` or `}`, so no two `(user, store)` pairs share a tag whatever
//! bytes they contain, and the tag cannot end early (Redis ends a tag at the
//! first `}`). For example user `ab`, store `""` is `vss:{6162.}:h`.
//!
//! The hash holds, with a one-byte kind in front of each field so that client
//! keys never meet the store's own fields:
//!
//! | field      | value                                                         |
//! |------------|---------------------------------------------------------------|
//! | `g`        | the global version (absent means 0)                           |
//! | `s`        | the last creation sequence handed out in this store           |
//! | `v` + key  | the key's version, a decimal string                           |
//! | `d` + key  | the key's value, raw bytes                                    |
//!
//! The sorted set has every key as a member, scored by its creation sequence.
//! Sequences come from `HINCRBY … s 1`, so they strictly increase per store
//! and are never reused; a score is an `f64`, exact up to 2^53 keys created.
//!
//! ## Scripts
//!
//! Scripts are loaded at startup and called by SHA (`EVALSHA`); when a server
//! answers `NOSCRIPT` (after a restart or `SCRIPT FLUSH`) the script is loaded
//! again and the call repeated, which is safe because `NOSCRIPT` means it did
//! not run.
//!
//! - **put** (`#!lua`): checks the global version, every written item's version
//!   condition and every deleted item's existence and version, and only then
//!   applies every write (a new key takes the next creation sequence and
//!   enters the sorted set; an update keeps its place), every delete, and the
//!   new global version. The shebang makes Redis refuse the whole script up
//!   front when it is out of memory, so a put is never half applied.
//! - **delete** (`#!lua`): the idempotent `deleteObject`.
//! - **list** (`#!lua flags=no-writes`): reads the global version, then walks
//!   the sorted set newest first below the page token's sequence, keeping keys
//!   that start with the literal prefix, and reads their versions, all in one
//!   atomic step. It scans at most [`RedisConfig::list_scan_limit`] entries per
//!   call; when that budget runs out first, the page is short and its token
//!   resumes just below the last scanned entry, so every key is still listed
//!   exactly once.
//! - **get** needs no script: one `HMGET` of `v`+key and `d`+key reads version
//!   and value atomically; the reserved key `global_version` is one `HGET` of `g`.
//!
//! Versions are compared as the decimal strings this backend wrote, so no
//! precision is lost to Lua's floating-point numbers.
//!
//! ## Failures
//!
//! Every Redis error is [`vss_core::VssError::Internal`] (which wallets retry),
//! never a conflict or a missing key. A command whose connection breaks is
//! never resent by the client library (a put that did run would otherwise
//! answer CONFLICT the second time); connections come back by themselves
//! with backoff after Redis restarts.
//!
//! ## Durability
//!
//! Wallet state on a Redis without persistence vanishes with a restart. At
//! startup [`RedisStore::connect`] reads each primary's `CONFIG GET appendonly`,
//! `appendfsync`, `save`, `maxmemory` and `maxmemory-policy` and:
//!
//! - refuses a server that persists nothing (AOF off and no RDB `save`), or
//!   one that may evict keys (`maxmemory` set with an `allkeys-*` policy),
//!   with [`RedisError::NotDurable`], unless [`RedisConfig::allow_volatile`];
//! - warns (log and [`RedisStore::durability_warnings`]) about
//!   `appendfsync everysec` (up to about 1 s of acknowledged writes lost if the
//!   Redis host crashes or loses power), `appendfsync no`, and RDB-only
//!   persistence.
//!
//! Where `CONFIG` is disabled (many managed services), it falls back to
//! `INFO persistence`: AOF on starts with a warning that `appendfsync` could
//! not be checked; AOF off is refused (RDB settings are not visible there)
//! unless `allow_volatile`. The recommended configuration is in the crate's
//! README: `appendonly yes` with `appendfsync always`, and
//! `maxmemory-policy noeviction`.

#![warn(missing_docs)]

mod config;
mod durability;
mod error;
mod keys;
mod store;

pub use config::{redact_url, RedisConfig};
pub use error::RedisError;
pub use store::{describe_metrics, RedisStore, RECONNECTS_TOTAL};
