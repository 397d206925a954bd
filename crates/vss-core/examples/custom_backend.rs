//! How to write a VSS backend of your own, end to end.
//!
//! `OrderedMapBackend` stores everything in one ordered key-value map, the
//! shape of many embedded and distributed databases (RocksDB, FoundationDB,
//! TiKV...). It shows the three things every backend does:
//!
//! 1. validate each request with `vss_core::validate`, which returns a plan;
//! 2. apply the plan atomically (here: under one lock; in a database: in one
//!    transaction) and keep a per-store creation sequence for listing order;
//! 3. prove it with the conformance suite.
//!
//! Run it: `cargo run -p vss-core --example custom_backend --features conformance`.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::Mutex;
use vss_core::conformance::{self, ConcurrencyConfig, ModelConfig, Subject};
use vss_core::proto::*;
use vss_core::validate::{self, GetTarget, ListedKey};
use vss_core::{KvStore, UserToken, VssError};

/// Rows of the map, under keys built by [`row_key`].
#[derive(Clone)]
enum Row {
    /// Per store: the global version and the last creation sequence used.
    Meta {
        global_version: i64,
        last_sequence: i64,
    },
    /// A record: its version, value and creation sequence.
    Record {
        version: i64,
        value: Bytes,
        sequence: i64,
    },
    /// The listing index: creation sequence -> key.
    BySequence { key: String },
}

/// One map, as a database would hold it.
#[derive(Default)]
pub struct OrderedMapBackend {
    map: Mutex<BTreeMap<Vec<u8>, Row>>,
}

/// Builds a map key. User and store are length-prefixed, so no choice of
/// bytes can make one user's rows collide with another's.
fn row_key(user: &UserToken, store_id: &str, kind: u8, tail: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for part in [user.as_str().as_bytes(), store_id.as_bytes()] {
        out.extend_from_slice(&(part.len() as u32).to_be_bytes());
        out.extend_from_slice(part);
    }
    out.push(kind);
    out.extend_from_slice(tail);
    out
}

const META: u8 = 0;
const RECORD: u8 = 1;
const BY_SEQUENCE: u8 = 2;

fn record_key(user: &UserToken, store_id: &str, key: &str) -> Vec<u8> {
    row_key(user, store_id, RECORD, key.as_bytes())
}

fn sequence_key(user: &UserToken, store_id: &str, sequence: i64) -> Vec<u8> {
    row_key(user, store_id, BY_SEQUENCE, &sequence.to_be_bytes())
}

type Map = BTreeMap<Vec<u8>, Row>;

fn meta(map: &Map, user: &UserToken, store_id: &str) -> (i64, i64) {
    match map.get(&row_key(user, store_id, META, b"")) {
        Some(Row::Meta {
            global_version,
            last_sequence,
        }) => (*global_version, *last_sequence),
        _ => (0, 0),
    }
}

fn record(map: &Map, user: &UserToken, store_id: &str, key: &str) -> Option<(i64, Bytes, i64)> {
    match map.get(&record_key(user, store_id, key)) {
        Some(Row::Record {
            version,
            value,
            sequence,
        }) => Some((*version, value.clone(), *sequence)),
        _ => None,
    }
}

#[async_trait]
impl KvStore for OrderedMapBackend {
    async fn get(
        &self,
        user: &UserToken,
        req: GetObjectRequest,
    ) -> Result<GetObjectResponse, VssError> {
        let map = self.map.lock().await;
        let value = match validate::get(&req)? {
            GetTarget::GlobalVersion => {
                validate::global_version_key_value(meta(&map, user, &req.store_id).0)
            }
            GetTarget::Key(key) => {
                let (version, value, _) = record(&map, user, &req.store_id, &key)
                    .ok_or_else(|| VssError::no_such_key(&key))?;
                KeyValue {
                    key,
                    version,
                    value,
                }
            }
        };
        Ok(GetObjectResponse { value: Some(value) })
    }

    async fn put(
        &self,
        user: &UserToken,
        req: PutObjectRequest,
    ) -> Result<PutObjectResponse, VssError> {
        let plan = validate::put(req, &self.limits())?;
        let store = plan.store_id.as_str();
        // The lock is this toy's transaction: check everything, then write everything.
        let mut map = self.map.lock().await;
        let (global_version, mut last_sequence) = meta(&map, user, store);
        plan.check(
            || Ok::<_, VssError>(global_version),
            |key| Ok(record(&map, user, store, key).map(|r| r.0)),
        )?;
        for w in &plan.writes {
            // An existing key keeps its creation sequence, so its place in listings.
            let sequence = match record(&map, user, store, &w.key) {
                Some((_, _, sequence)) => sequence,
                None => {
                    last_sequence += 1;
                    let row = Row::BySequence { key: w.key.clone() };
                    map.insert(sequence_key(user, store, last_sequence), row);
                    last_sequence
                }
            };
            let row = Row::Record {
                version: w.condition.new_version(),
                value: w.value.clone(),
                sequence,
            };
            map.insert(record_key(user, store, &w.key), row);
        }
        for d in &plan.deletes {
            if let Some((_, _, sequence)) = record(&map, user, store, &d.key) {
                map.remove(&sequence_key(user, store, sequence));
                map.remove(&record_key(user, store, &d.key));
            }
        }
        let global_version = plan.global_version.map_or(global_version, |g| g + 1);
        map.insert(
            row_key(user, store, META, b""),
            Row::Meta {
                global_version,
                last_sequence,
            },
        );
        Ok(PutObjectResponse {})
    }

    async fn delete(
        &self,
        user: &UserToken,
        req: DeleteObjectRequest,
    ) -> Result<DeleteObjectResponse, VssError> {
        let plan = validate::delete(req)?;
        let mut map = self.map.lock().await;
        if let Some((version, _, sequence)) = record(&map, user, &plan.store_id, &plan.key) {
            if plan.matches(Some(version)) {
                map.remove(&sequence_key(user, &plan.store_id, sequence));
                map.remove(&record_key(user, &plan.store_id, &plan.key));
            }
        }
        Ok(DeleteObjectResponse {})
    }

    async fn list_key_versions(
        &self,
        user: &UserToken,
        req: ListKeyVersionsRequest,
    ) -> Result<ListKeyVersionsResponse, VssError> {
        let plan = validate::list(user, req, &self.limits())?;
        let map = self.map.lock().await;
        // The global version is read first, as the contract requires.
        let (global_version, _) = meta(&map, user, &plan.store_id);
        // Walk the sequence index backwards from the page token: newest first,
        // until the plan has its rows (none at all for page size 0).
        let mut rows = Vec::new();
        let from = sequence_key(user, &plan.store_id, 0);
        let to = sequence_key(
            user,
            &plan.store_id,
            plan.before_sequence.unwrap_or(i64::MAX),
        );
        for (_, row) in map.range(from..to).rev() {
            if rows.len() == plan.fetch_limit() {
                break;
            }
            let Row::BySequence { key } = row else {
                continue;
            };
            if !plan.matches(key) {
                continue;
            }
            if let Some((version, _, sequence)) = record(&map, user, &plan.store_id, key) {
                rows.push(ListedKey {
                    key: key.clone(),
                    version,
                    sequence,
                });
            }
        }
        Ok(plan.respond(rows, global_version))
    }
}

/// A fresh backend, as the conformance suite's subject. In a backend crate's
/// tests, `vss_core::conformance_tests!(|| async { subject() });` makes one
/// named `#[test]` per rule, plus the model test and the races
/// (`tests/custom_backend_example.rs` does that for this example).
pub fn subject() -> Subject {
    Subject::new(Arc::new(OrderedMapBackend::default()))
}

/// Runs every rule, the model test and the races, with a line each.
#[allow(dead_code)] // Used when run as an example, not when included by the test.
fn main() {
    let runtime = tokio::runtime::Runtime::new().unwrap_or_else(|e| panic!("runtime: {e}"));
    let passed = runtime.block_on(async {
        let rules = conformance::run_all(|| async { subject() }).await;
        let model = conformance::run_model(|| async { subject() }, ModelConfig::default()).await;
        println!("{}", conformance::result_line("model", &model));
        let races =
            conformance::run_races(|| async { subject() }, ConcurrencyConfig::default()).await;
        println!("{}", conformance::result_line("races", &races));
        rules.failed() == 0 && model.is_ok() && races.is_ok()
    });
    std::process::exit(if passed { 0 } else { 1 });
}
