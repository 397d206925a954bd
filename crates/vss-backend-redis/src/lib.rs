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
//! | `c`        | `1` once the store's data is counted in its user's usage      |
//!
//! The sorted set has every key as a member, scored by its creation sequence.
//! Sequences come from `HINCRBY … s 1`, so they strictly increase per store
//! and are never reused; a score is an `f64`, exact up to 2^53 keys created.
//!
//! On a standalone server (not Redis Cluster) each user also has a usage hash,
//! and each namespace a marker (see [Quotas](#quotas)):
//!
//! ```text
//! <namespace>:{<hex(user_token)>}:u     hash: bytes, keys
//! <namespace>:usage-counted             string: every store is counted
//! ```
//!
//! The usage hash's tag is the user's hex alone; a store's tag always holds a
//! `.`, so the two never meet.
//!
//! ## Scripts
//!
//! Scripts are loaded at startup and called by SHA (`EVALSHA`); when a server
//! answers `NOSCRIPT` (after a restart or `SCRIPT FLUSH`) the script is loaded
//! again and the call repeated, which is safe because `NOSCRIPT` means it did
//! not run.
//!
//! - **put** (`#!lua`): checks the global version, every written item's version
//!   condition and every deleted item's existence and version, then the
//!   quota (see [Quotas](#quotas)), and only then applies every write (a new
//!   key takes the next creation sequence and enters the sorted set; an update
//!   keeps its place), every delete, the new global version and the user's new
//!   usage. The shebang makes Redis refuse the whole script up front when it
//!   is out of memory, so a put is never half applied.
//! - **delete** (`#!lua`): the idempotent `deleteObject`; what it deletes is
//!   taken off the user's usage.
//! - **count** (`#!lua`): counts stores written before usage was kept (the
//!   startup pass, see [Quotas](#quotas)).
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
//! ## Quotas
//!
//! On a standalone Redis (or the primary a Sentinel setup points at) the
//! store enforces quotas ([`vss_core::StoreLimits::enforces_quotas`]): every
//! put and delete script also gets the user's usage hash as a key, and in the
//! same atomic run as the write it reads the usage, works out the usage after
//! the put (each key counts its length plus its value's; the global version
//! nothing), lets the quota judge (after the version checks, so a CONFLICT
//! wins), and writes the new usage with the data, or nothing at all. Usage is
//! kept this way by every write, with or without a quota, and by
//! `deleteObject`, so it stays exact without ever scanning a user's data on a
//! request. It is the usage hash's fields `bytes` and `keys`;
//! [`RedisStore::usage`] reads it. (Lua compares numbers as `f64`, exact below
//! 2^53, so a limit at or above 2^53 is sent as no limit; no usage gets near.)
//!
//! **Not on Redis Cluster.** A user's stores are spread over the cluster by
//! their `(user, store)` hash tags, so no key can share a slot with all of
//! them, and Redis Cluster refuses a script whose keys are in different slots.
//! Checking a quota there would take the usage of several slots in one atomic
//! step, which Redis Cluster cannot do (and a tag per user instead would change
//! where every existing store lives). So on `redis-cluster://` (and on a
//! cluster node reached with a plain URL, which `INFO cluster` tells) the
//! scripts get no usage key and behave exactly as before quotas, the store
//! declares `enforces_quotas = false`, a put that carries a quota fails with
//! an internal error, and [`vss_core::Quotas::new`] refuses the store, so a
//! server configured with quotas does not start. Use a standalone Redis for
//! quotas.
//!
//! **Data written before usage was kept** (by an earlier version of this
//! backend) has no usage hash, and its stores no `c` flag. It is counted once,
//! exactly, and never twice:
//!
//! - Every write script meets its store first: when the store is not flagged,
//!   the script adds the store's data (its keys, and the `HSTRLEN` of their
//!   values) to the usage it judges, and, when the write goes through, to the
//!   stored usage, and flags the store, in the same atomic run. A refused put
//!   writes nothing, not even that count.
//! - A quota must also see the user's stores that no write touches, so the
//!   first [`RedisStore::connect`] to a namespace walks every store hash with
//!   `SCAN` and runs the count script on each (it counts and flags a store
//!   unless it is flagged, atomically: whether the pass or a write gets to a
//!   store first, the other sees the flag). Then it sets the namespace's marker
//!   `<namespace>:usage-counted`, and later starts skip the walk. It is logged
//!   at info; in a test, 2000 small stores took about 0.1 s (a store costs in
//!   proportion to its keys, and a script call counts 32 stores).
//!
//! `connect` returns only after the pass, so a server serves no request, and
//! judges no quota, before every store that existed when the pass began is
//! counted; stores created since are flagged when created. Instances that
//! start together each run the pass; that is safe, since counting a store is
//! idempotent. Two cases are outside this: an **older version of this
//! backend** writing to the same Redis (during a rolling upgrade) does not keep
//! usage, so its writes after the pass leave usage off, and stores it creates
//! are counted only when this version first writes to them; upgrade every
//! instance before giving users quotas. And **restores**: a whole backup
//! restored into an empty Redis needs nothing (one taken by this version
//! carries its usage, flags and marker; an older one has none of them and is
//! counted at the next start), but old stores copied into a namespace that
//! has its marker are only counted when first written to; delete the marker,
//! with the servers stopped, to have the next start count them.
//!
//! ## Largest value
//!
//! A value travels as one argument of `EVALSHA`, which Redis takes up to
//! `proto-max-bulk-len` bytes (512 MiB by default). At connect the store reads
//! it (`CONFIG GET`, on every primary of a cluster, the smallest) and declares
//! it, capped at 512 MiB (Redis's largest string), as
//! [`vss_core::StoreLimits::max_value_size`], so a bigger value is refused
//! with TOO_LARGE before anything is sent; a smaller `max_value_size` in
//! [`RedisConfig::limits`] wins. Where `CONFIG` is denied it declares
//! [`MAX_VALUE_SIZE_WITHOUT_CONFIG`] and says so at info.
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

mod admin;
mod config;
mod durability;
mod error;
mod keys;
mod store;
mod usage;

pub use config::{redact_url, RedisConfig};
pub use error::RedisError;
pub use store::{describe_metrics, RedisStore, MAX_VALUE_SIZE_WITHOUT_CONFIG, RECONNECTS_TOTAL};
