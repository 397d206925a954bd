//! # vss-backend-dynamodb: VSS on Amazon DynamoDB
//!
//! A [`vss_core::KvStore`] on one DynamoDB table, for operators on AWS who
//! want VSS without running a database. Puts are one `TransactWriteItems`
//! (all or nothing), listings are one `Query` per page over a local secondary
//! index in creation order, and values of any size (up to the server's body
//! limit and [`MAX_VALUE_SIZE`]) are stored, splitting large ones into
//! immutable chunks. Each user's usage (keys, bytes) is kept exact in the
//! same transactions, so per-user quotas are enforced
//! ([`vss_core::KvStore::put_with_quota`]).
//!
//! ```no_run
//! use vss_backend_dynamodb::{DynamoDbConfig, DynamoDbStore};
//!
//! # async fn run() -> Result<(), vss_backend_dynamodb::DynamoDbError> {
//! let store = DynamoDbStore::connect(DynamoDbConfig {
//!     table: "vss".into(),
//!     region: Some("eu-west-1".into()),
//!     create_table: true,
//!     ..DynamoDbConfig::default()
//! })
//! .await?;
//! # Ok(()) }
//! ```
//!
//! Credentials come from the standard AWS chain (environment, shared profile
//! files, web identity, ECS task role, EC2 instance role); the region from the
//! configuration, else the standard chain. `endpoint_url` points the client at
//! a local DynamoDB-API server or a VPC endpoint.
//!
//! ## Table schema
//!
//! One table; `deploy/cloudformation.yaml` in this crate creates it, and
//! [`DynamoDbConfig::create_table`] does the same from the server.
//!
//! | attribute | type | role |
//! | --- | --- | --- |
//! | `pk`  | S | partition key: one partition per `(user_token, store_id)` |
//! | `sk`  | S | sort key: what the item is (see below) |
//! | `seq` | N | creation sequence of a record; sort key of the index `by_seq` |
//!
//! - Key schema: `pk` HASH, `sk` RANGE.
//! - Local secondary index `by_seq`: `pk` HASH, `seq` RANGE, projection
//!   `INCLUDE` of `ver` (records only: other items have no `seq`, so the index
//!   is sparse). A local index allows strongly consistent queries.
//! - Billing: on-demand (`PAY_PER_REQUEST`) when this crate creates the table.
//!
//! A store's `pk` is `<byte length of user_token>:<user_token><store_id>`:
//! the length prefix makes the pair unambiguous whatever bytes either holds.
//! `sk` has a namespace, so user keys, metadata and chunks never collide:
//!
//! | item | `sk` | other attributes |
//! | --- | --- | --- |
//! | record (one VSS key) | `k#<key>` | `seq` (N), `ver` (N), `vl` (N, value length); and either `val` (B, absent when empty), or `cid` (S), `cn` (N) for a chunked value |
//! | store metadata | `m` | `gv` (N, global version), `ctr` (N, last creation sequence handed out), `uc` (N, `1`: the store is counted in its user's usage) |
//! | value chunk | `c#<cid>#<index, 6 digits>` | `data` (B), `at` (N, Unix seconds when written) |
//!
//! Two more kinds of item live in partitions that do not start with a digit,
//! so they never meet a store's:
//!
//! | item | `pk` | `sk` | other attributes |
//! | --- | --- | --- | --- |
//! | a user's usage | `u:<user_token>` | `u` | `ub` (N, bytes of keys plus values), `uk` (N, keys), over all the user's stores |
//! | usage counted (one per table) | `t:` | `usage-counted` | `at` (N, Unix seconds): every store written before usage was kept has been counted |
//!
//! Tables written by earlier versions of this crate lack `uc`, the usage
//! items and the marker, and their inline records lack `vl` ("legacy"
//! records; chunked ones always had it). See *Usage and quotas* for how such
//! a table is counted once. Every write of this version sets `vl`, so a
//! record without it has not been written since.
//!
//! ## How the contract maps onto DynamoDB
//!
//! - **Puts.** A put first reads (strongly consistent `BatchGetItem`) the
//!   store's metadata and the current records of its keys (and, for legacy
//!   records, their values, since only the value tells their length), and
//!   answers CONFLICT if a condition already fails. Keys that do not exist get the
//!   creation sequences `ctr + 1, ctr + 2, ...` in request order. Then one
//!   `TransactWriteItems` applies everything, each action conditioned on the
//!   client's version rule and on the state just read; the metadata action
//!   checks and raises the global version and moves `ctr` on, conditioned on
//!   the values read. If the transaction is cancelled, the cancellation
//!   reasons (`ReturnValuesOnConditionCheckFailure = ALL_OLD`) tell a real
//!   CONFLICT (a client's condition or the global version fails on the item as
//!   it is) from a race with another writer (only the state read changed, for
//!   example the counter), which is retried from the reads. Transaction
//!   conflicts and throttling are retried with bounded, jittered exponential
//!   backoff, then answered as INTERNAL. The same transaction moves the
//!   user's usage (see *Usage and quotas*).
//! - **Limits.** A transaction holds at most 100 actions, two of them for the
//!   metadata and the user's usage: a put may hold at most
//!   [`MAX_ITEMS_PER_PUT`] (98) items, and [`DynamoDbStore`] declares it in
//!   its [`vss_core::StoreLimits`]; larger puts are INVALID_REQUEST. The 4 MB
//!   transaction limit never refuses a put: values are stored inline up to
//!   [`INLINE_VALUE_LIMIT`] while the inline values of one put stay within
//!   [`INLINE_BUDGET_PER_PUT`]; others are chunked. The largest value is
//!   [`MAX_VALUE_SIZE`] (about 9.9 GB), declared as
//!   [`vss_core::StoreLimits::max_value_size`]: a store is one item
//!   collection, which a local secondary index limits to 10 GB, so a bigger
//!   value's chunks can never fit (TOO_LARGE before anything is written). The
//!   chunk layout itself sets no nearer limit (a 32-bit chunk count).
//! - **Large values.** A chunked value is written as chunks of at most
//!   [`CHUNK_SIZE`] bytes under a fresh random chunk id *before* the
//!   transaction that points the record at them, and the chunks it replaced
//!   are deleted after the commit. Chunks never change, so a reader (record,
//!   then the chunks of the id it names) never sees a mix of two values; if a
//!   chunk vanished under it (overwritten and cleaned up meanwhile) it reads
//!   the record again.
//! - **Listing.** One `Query` of `by_seq` per page, newest first
//!   (`ScanIndexForward = false`), below the page token's sequence, with
//!   `begins_with(sk, "k#<prefix>")` as a filter: a literal prefix match. A
//!   filter applies after the query's limit, so a page may be short; the next
//!   token then resumes after the last item the query looked at.
//! - **Deletes** (`deleteObject`) read the record, then delete it in one
//!   `TransactWriteItems` with the usage it frees, conditioned on the version
//!   and value read (a changed record is read again), then remove its chunks.
//!   A missing key, or one at another version, succeeds and changes nothing.
//!
//! ## Usage and quotas
//!
//! A user's usage is, over all their stores, the number of keys and the bytes
//! of keys plus values ([`vss_core::Usage`]); it lives in one usage item per
//! user, which every write moves **in its own transaction**:
//!
//! - Each action on an existing record is conditioned on the value read: its
//!   chunk id, or its `vl` (an inline value of the same length), or for a
//!   legacy record on `vl` still being absent. So the transaction commits only
//!   if the lengths it replaces are the ones read, and the change of usage it
//!   computes is exact. It is applied with `ADD ub :bytes, uk :keys`; a put
//!   that changes neither measure has no usage action.
//! - A quota ([`vss_core::Quota`]) becomes the usage action's condition: for
//!   each limited measure the put raises, `ub <= max - rise` (or no usage yet
//!   when the rise fits at all), which is [`vss_core::Quota::admit`] evaluated
//!   atomically with the write. If only that condition fails, the put is
//!   refused (QUOTA_EXCEEDED; nothing written), its message built by `admit`
//!   from the usage the cancellation returns. A failed version condition wins
//!   (CONFLICT); a race on the records read is retried before the quota is
//!   judged. Puts of one user do not race on the usage they read: only
//!   DynamoDB's transaction conflicts on the usage item, retried like others.
//! - `deleteObject` subtracts the bytes and key it deletes; puts without a
//!   quota ([`vss_core::KvStore::put`]) move usage the same way, unconditioned.
//!
//! **Existing data** is counted once. A store counts in usage once its
//! metadata carries `uc`: a store created by this version gets it with its
//! first write. A store written by an earlier version (metadata without `uc`)
//! is counted by reading all its records (a `Query`) and then, in one
//! transaction, setting `uc` (conditioned on `uc` still absent and on the
//! creation counter read) and adding what was found to the usage item. No
//! write of this version changes an uncounted store: a put or delete that
//! reads one counts it first, then proceeds. So nothing can change between
//! the count's read and its transaction, and the condition on `uc` makes
//! concurrent counts of one store (two servers, or a writer and the scan)
//! add it exactly once. The table-wide pass,
//! [`DynamoDbStore::count_existing_usage`], is a consistent `Scan` for
//! metadata items without `uc` that counts each, then writes the marker
//! item; [`DynamoDbStore::connect`] runs it when the marker is missing (on a
//! new table that is an empty scan), before the store serves, so quota
//! judgements always see every store of a user. It is safe to repeat or to
//! interrupt (a new run counts what is left). [`DynamoDbStore::usage`]
//! reads a user's usage.
//!
//! **Upgrading** a table written by an earlier version: stop the servers of
//! the earlier version before the first server of this version starts. They
//! write without counting, so their writes during or after the count make
//! usage inexact (the condition on the creation counter only catches keys
//! they create). The count reads every record of every store once (its cost
//! is a scan of the table) and writes two small items per store.
//!
//! ## Orphaned chunks
//!
//! A crash (or a lost connection) between writing chunks and committing the
//! put, or between committing and deleting replaced chunks, leaves chunks no
//! record points to. They are never read, only stored. Remove them with
//! [`DynamoDbStore::cleanup_orphan_chunks`] (one store) or
//! [`DynamoDbStore::cleanup_all_orphan_chunks`] (the whole table, by a scan),
//! e.g. daily. Only chunks older than the given age are touched: it must exceed
//! the longest put, which gives up after [`PUT_DEADLINE`]; one hour is safe.
//!
//! ## Operating notes
//!
//! - A local secondary index limits one partition (one user's store) to 10 GB.
//! - Reads are strongly consistent (read-after-write), so they cost full read units.
//! - Every put that changes what a user stores also writes the user's usage
//!   item, and `deleteObject` is a read plus a two-item transaction: all
//!   writes of one user meet on one item, which suits wallets (few writers
//!   per user); DynamoDB's transaction conflicts between them are retried.
//! - The table may be shared with nothing else: every item in it belongs to this layout.

#![warn(missing_docs)]

mod admin;
mod chunks;
mod config;
mod error;
mod expr;
pub mod layout;
mod put;
mod retry;
mod schema;
mod store;
mod usage;

pub use admin::ITEMS_PER_TRANSACTION;
pub use config::{DynamoDbConfig, StaticCredentials};
pub use error::DynamoDbError;
pub use retry::{describe_metrics, RETRIES_TOTAL};
pub use store::{
    CleanupReport, DynamoDbStore, CHUNK_SIZE, INLINE_BUDGET_PER_PUT, INLINE_VALUE_LIMIT,
    MAX_ITEMS_PER_PUT, MAX_VALUE_SIZE, PUT_DEADLINE,
};
pub use usage::UsageCountReport;
