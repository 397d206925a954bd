//! # vss-backend-dynamodb: VSS on Amazon DynamoDB
//!
//! A [`vss_core::KvStore`] on one DynamoDB table, for operators on AWS who
//! want VSS without running a database. Puts are one `TransactWriteItems`
//! (all or nothing), listings are one `Query` per page over a local secondary
//! index in creation order, and values of any size (up to the server's body
//! limit) are stored, splitting large ones into immutable chunks.
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
//! `pk` is `<byte length of user_token>:<user_token><store_id>`: the length
//! prefix makes the pair unambiguous whatever bytes either holds. `sk` has a
//! namespace, so user keys, metadata and chunks never collide:
//!
//! | item | `sk` | other attributes |
//! | --- | --- | --- |
//! | record (one VSS key) | `k#<key>` | `seq` (N), `ver` (N); and either `val` (B, absent when empty), or `cid` (S), `cn` (N), `vl` (N) for a chunked value |
//! | store metadata | `m` | `gv` (N, global version), `ctr` (N, last creation sequence handed out) |
//! | value chunk | `c#<cid>#<index, 6 digits>` | `data` (B), `at` (N, Unix seconds when written) |
//!
//! ## How the contract maps onto DynamoDB
//!
//! - **Puts.** A put first reads (strongly consistent `BatchGetItem`) the
//!   store's metadata and the current records of its keys, and answers
//!   CONFLICT if a condition already fails. Keys that do not exist get the
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
//!   backoff, then answered as INTERNAL.
//! - **Limits.** A transaction holds at most 100 actions, one of them for the
//!   metadata: a put may hold at most [`MAX_ITEMS_PER_PUT`] (99) items, and
//!   [`DynamoDbStore`] declares it in its [`vss_core::StoreLimits`]; larger
//!   puts are INVALID_REQUEST. The 4 MB transaction limit never refuses a put:
//!   values are stored inline up to [`INLINE_VALUE_LIMIT`] while the inline
//!   values of one put stay within [`INLINE_BUDGET_PER_PUT`]; others are chunked.
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
//! - **Deletes** are one conditional `DeleteItem` that returns the deleted
//!   record, whose chunks are then removed.
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
//! - The table may be shared with nothing else: every item in it belongs to this layout.

#![warn(missing_docs)]

mod chunks;
mod config;
mod error;
mod expr;
pub mod layout;
mod put;
mod retry;
mod schema;
mod store;

pub use config::{DynamoDbConfig, StaticCredentials};
pub use error::DynamoDbError;
pub use retry::{describe_metrics, RETRIES_TOTAL};
pub use store::{
    CleanupReport, DynamoDbStore, CHUNK_SIZE, INLINE_BUDGET_PER_PUT, INLINE_VALUE_LIMIT,
    MAX_ITEMS_PER_PUT, PUT_DEADLINE,
};
