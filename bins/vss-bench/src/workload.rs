//! The workloads: what each connection sends, in a loop.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use vss_core::proto::*;
use vss_core::protocol::Operation;

use crate::client::{CallError, Connection, Target};
use crate::report::RunResult;

/// What the connections do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    /// `getObject` of random existing keys.
    Get,
    /// ldk-node's write: one item, version -1, on existing keys (or fresh keys with `--fresh`).
    Put,
    /// Creates: one item, version 0, on keys never written before.
    Create,
    /// Conditional updates, each connection chaining the versions of its own key.
    Cas,
    /// Puts chaining the global version, each connection in its own store.
    Global,
    /// `listKeyVersions` pages of 100, walking a store of `--keys` keys.
    List,
    /// The first `listKeyVersions` page (100 keys) of a store of `--keys` keys, again and again.
    ListFirst,
    /// `deleteObject` (version -1) of each of `--keys` keys written before the run, once;
    /// the run ends early when none is left.
    Delete,
    /// A wallet sync: 60% gets, 30% unconditional puts, 10% list pages.
    Mixed,
}

/// How a run is shaped.
#[derive(Debug, Clone)]
pub struct Params {
    /// The workload.
    pub workload: Workload,
    /// Concurrent connections, each sending one request at a time.
    pub connections: usize,
    /// How long to measure (ignored when `requests` is set).
    pub duration: Duration,
    /// Stop after this many measured requests instead of after `duration`.
    pub requests: Option<u64>,
    /// Unmeasured time before measuring starts.
    pub warmup: Duration,
    /// Bytes per written value.
    pub value_size: usize,
    /// Keys in the store the workload reads and overwrites.
    pub keys: usize,
    /// `put` writes keys never written before.
    pub fresh: bool,
}

impl Params {
    /// The keys written before the measurement: `delete` writes its own before each run.
    fn prepared_keys(&self) -> usize {
        match self.workload {
            Workload::Cas | Workload::Global | Workload::Create | Workload::Delete => 0,
            _ => self.keys,
        }
    }
}

/// The data a run works on, made by [`prepare`].
#[derive(Debug, Clone)]
pub struct Prepared {
    store_id: String,
    keys: Arc<Vec<String>>,
}

const LIST_PAGE: i32 = 100;
const FILL_BATCH: usize = 50;

fn key_name(i: usize) -> String {
    format!("bench-key-{i:08}")
}

fn value(size: usize) -> Bytes {
    Bytes::from((0..size).map(|_| fastrand::u8(..)).collect::<Vec<u8>>())
}

/// Creates the keys a workload needs, under a store id of its own.
pub async fn prepare(target: &Target, params: &Params) -> Result<Prepared, String> {
    let store_id = format!(
        "bench-{}-{:016x}",
        workload_name(params.workload),
        fastrand::u64(..)
    );
    let keys: Arc<Vec<String>> = Arc::new((0..params.prepared_keys()).map(key_name).collect());
    // Each user gets the same keys, one user after the other.
    for user in 0..target.user_count() {
        fill(&target.as_user(user), &store_id, &keys, params.value_size).await?;
    }
    Ok(Prepared { store_id, keys })
}

/// Writes `keys` into `store_id` with a few connections in parallel.
async fn fill(
    target: &Target,
    store_id: &str,
    keys: &Arc<Vec<String>>,
    value_size: usize,
) -> Result<(), String> {
    let fillers = 4.min(keys.len().div_ceil(FILL_BATCH)).max(1);
    let mut tasks = Vec::new();
    for filler in 0..fillers {
        let (target, keys, store_id) = (target.clone(), keys.clone(), store_id.to_string());
        let value = value(value_size);
        tasks.push(tokio::spawn(async move {
            let mut conn = Connection::open(&target).await?;
            for chunk in keys.chunks(FILL_BATCH).skip(filler).step_by(fillers) {
                let req = PutObjectRequest {
                    store_id: store_id.clone(),
                    global_version: None,
                    transaction_items: chunk
                        .iter()
                        .map(|k| KeyValue {
                            key: k.clone(),
                            version: -1,
                            value: value.clone(),
                        })
                        .collect(),
                    delete_items: vec![],
                };
                conn.call::<_, PutObjectResponse>(Operation::PutObjects, &req)
                    .await?;
            }
            Ok::<(), CallError>(())
        }));
    }
    for task in tasks {
        task.await
            .map_err(|e| format!("filling the store: {e}"))?
            .map_err(|e| format!("filling the store: {e:?}"))?;
    }
    Ok(())
}

/// The lowercase name of a workload.
pub fn workload_name(w: Workload) -> &'static str {
    match w {
        Workload::Get => "get",
        Workload::Put => "put",
        Workload::Create => "create",
        Workload::Cas => "cas",
        Workload::Global => "global",
        Workload::List => "list",
        Workload::ListFirst => "list-first",
        Workload::Delete => "delete",
        Workload::Mixed => "mixed",
    }
}

/// Per-connection state that chains requests.
struct Worker {
    id: usize,
    conn: Connection,
    store_id: String,
    keys: Arc<Vec<String>>,
    value: Bytes,
    workload: Workload,
    fresh: bool,
    /// Tells this run's fresh keys from earlier runs' on the same store.
    run: u32,
    /// The next of `keys` to delete, shared by the run's connections (`delete`).
    deleted: Arc<AtomicUsize>,
    sent: u64,
    /// Version of this worker's key (`cas`) or store (`global`).
    version: i64,
    page_token: Option<String>,
}

impl Worker {
    fn random_key(&self) -> String {
        match self.keys.len() {
            0 => key_name(0),
            n => self.keys[fastrand::usize(..n)].clone(),
        }
    }

    /// A value that differs from every earlier one, as encrypted client values
    /// do: databases may skip rewriting a row whose content did not change.
    fn next_value(&self) -> Bytes {
        let mut value = self.value.to_vec();
        let stamp = self.sent.to_le_bytes();
        let n = stamp.len().min(value.len());
        value[..n].copy_from_slice(&stamp[..n]);
        Bytes::from(value)
    }

    fn fresh_key(&self) -> String {
        format!("bench-fresh-{:08x}-{}-{}", self.run, self.id, self.sent)
    }

    fn own_key(&self) -> String {
        format!("bench-own-{}", self.id)
    }

    fn own_store(&self) -> String {
        format!("{}-conn{}", self.store_id, self.id)
    }

    async fn get(&mut self, key: String) -> Result<(), CallError> {
        let req = GetObjectRequest {
            store_id: self.store_id.clone(),
            key,
        };
        self.conn
            .call::<_, GetObjectResponse>(Operation::GetObject, &req)
            .await
            .map(|_| ())
    }

    async fn put(
        &mut self,
        store_id: String,
        key: String,
        version: i64,
        global_version: Option<i64>,
    ) -> Result<(), CallError> {
        let req = PutObjectRequest {
            store_id,
            global_version,
            transaction_items: vec![KeyValue {
                key,
                version,
                value: self.next_value(),
            }],
            delete_items: vec![],
        };
        self.conn
            .call::<_, PutObjectResponse>(Operation::PutObjects, &req)
            .await
            .map(|_| ())
    }

    async fn delete(&mut self, key: String) -> Result<(), CallError> {
        let req = DeleteObjectRequest {
            store_id: self.store_id.clone(),
            key_value: Some(KeyValue {
                key,
                version: -1,
                value: Bytes::new(),
            }),
        };
        self.conn
            .call::<_, DeleteObjectResponse>(Operation::DeleteObject, &req)
            .await
            .map(|_| ())
    }

    async fn list_page(&mut self) -> Result<(), CallError> {
        let req = ListKeyVersionsRequest {
            store_id: self.store_id.clone(),
            key_prefix: None,
            page_size: Some(LIST_PAGE),
            page_token: self.page_token.take(),
        };
        let resp: ListKeyVersionsResponse =
            self.conn.call(Operation::ListKeyVersions, &req).await?;
        self.page_token = resp.next_page_token.filter(|t| !t.is_empty());
        Ok(())
    }

    /// Reads the current version this worker chains (its key's or its store's).
    async fn sync_version(&mut self) -> Result<(), CallError> {
        let (store_id, key) = match self.workload {
            Workload::Cas => (self.store_id.clone(), self.own_key()),
            _ => (self.own_store(), "global_version".to_string()),
        };
        let req = GetObjectRequest { store_id, key };
        match self
            .conn
            .call::<_, GetObjectResponse>(Operation::GetObject, &req)
            .await
        {
            Ok(resp) => self.version = resp.value.map(|v| v.version).unwrap_or(0),
            Err(CallError::Protocol(code)) if code == "NO_SUCH_KEY_EXCEPTION" => self.version = 0,
            Err(e) => return Err(e),
        }
        Ok(())
    }

    /// Sends the next request; `None` when the workload has nothing left to do.
    async fn step(&mut self) -> Option<Result<(), CallError>> {
        self.sent += 1;
        Some(match self.workload {
            Workload::Get => self.get(self.random_key()).await,
            Workload::Put => {
                let key = if self.fresh {
                    self.fresh_key()
                } else {
                    self.random_key()
                };
                self.put(self.store_id.clone(), key, -1, None).await
            }
            Workload::Create => {
                let key = self.fresh_key();
                self.put(self.store_id.clone(), key, 0, None).await
            }
            Workload::Delete => {
                let key = self
                    .keys
                    .get(self.deleted.fetch_add(1, Ordering::Relaxed))?
                    .clone();
                self.delete(key).await
            }
            Workload::ListFirst => {
                self.page_token = None;
                self.list_page().await
            }
            Workload::Cas => {
                let result = self
                    .put(self.store_id.clone(), self.own_key(), self.version, None)
                    .await;
                self.after_chained(result).await
            }
            Workload::Global => {
                let store = self.own_store();
                let result = self.put(store, "k".into(), -1, Some(self.version)).await;
                self.after_chained(result).await
            }
            Workload::List => self.list_page().await,
            Workload::Mixed => match fastrand::u8(..10) {
                0..=5 => self.get(self.random_key()).await,
                6..=8 => {
                    self.put(self.store_id.clone(), self.random_key(), -1, None)
                        .await
                }
                _ => self.list_page().await,
            },
        })
    }

    /// Advances the chained version after a success; re-reads it after a conflict.
    async fn after_chained(&mut self, result: Result<(), CallError>) -> Result<(), CallError> {
        match result {
            Ok(()) => {
                self.version += 1;
                Ok(())
            }
            Err(e) => {
                self.sync_version().await?;
                Err(e)
            }
        }
    }
}

/// Runs a workload against prepared data and measures it.
pub async fn run(
    target: &Target,
    params: &Params,
    prepared: &Prepared,
) -> Result<RunResult, String> {
    // `delete` deletes keys written for this run alone, in a store of their own.
    let (store_id, keys) = match params.workload {
        Workload::Delete => {
            let store_id = format!("{}-{:08x}", prepared.store_id, fastrand::u32(..));
            let keys: Arc<Vec<String>> = Arc::new((0..params.keys).map(key_name).collect());
            for user in 0..target.user_count() {
                fill(&target.as_user(user), &store_id, &keys, params.value_size).await?;
            }
            (store_id, keys)
        }
        _ => (prepared.store_id.clone(), prepared.keys.clone()),
    };
    let run = fastrand::u32(..);
    let deleted = Arc::new(AtomicUsize::new(0));
    // Every connection is open before the clock starts: opening 256 of them
    // is not part of what a run measures.
    let mut conns = Vec::with_capacity(params.connections);
    for id in 0..params.connections {
        let conn = Connection::open(&target.as_user(id))
            .await
            .map_err(|e| format!("opening connection {id}: {e:?}"))?;
        conns.push(conn);
    }
    let warm_end = Instant::now() + params.warmup;
    let end = warm_end + params.duration;
    let budget = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for (id, conn) in conns.into_iter().enumerate() {
        let target = target.as_user(id);
        let mut worker = Worker {
            id,
            conn,
            store_id: store_id.clone(),
            keys: keys.clone(),
            value: value(params.value_size),
            workload: params.workload,
            fresh: params.fresh,
            run,
            deleted: deleted.clone(),
            sent: 0,
            version: 0,
            page_token: None,
        };
        let (budget, requests) = (budget.clone(), params.requests);
        tasks.push(tokio::spawn(async move {
            let mut histogram = new_histogram()?;
            let mut result = RunResult::default();
            if matches!(worker.workload, Workload::Cas) {
                let key = worker.own_key();
                worker
                    .put(worker.store_id.clone(), key, -1, None)
                    .await
                    .map_err(|e| format!("creating the cas key: {e:?}"))?;
                worker.version = 1;
            }
            loop {
                let started = Instant::now();
                let measured = started >= warm_end;
                if measured {
                    let stop = match requests {
                        Some(n) => budget.fetch_add(1, Ordering::Relaxed) >= n,
                        None => started >= end,
                    };
                    if stop {
                        break;
                    }
                }
                let Some(outcome) = worker.step().await else {
                    break;
                };
                let elapsed = started.elapsed();
                if let Err(CallError::Transport(_)) = &outcome {
                    // Start over on a fresh connection, as a client would.
                    if let Ok(conn) = Connection::open(&target).await {
                        worker.conn = conn;
                    }
                }
                if measured {
                    let micros = u64::try_from(elapsed.as_micros())
                        .unwrap_or(u64::MAX)
                        .max(1);
                    let _ = histogram.record(micros);
                    result.requests += 1;
                    if let Err(e) = outcome {
                        *result.errors.entry(e.label()).or_insert(0) += 1;
                    }
                }
            }
            Ok::<(RunResult, Histogram<u64>), String>((result, histogram))
        }));
    }
    let mut total = RunResult::default();
    let mut histogram = new_histogram()?;
    for task in tasks {
        let (part, hist) = task.await.map_err(|e| format!("worker: {e}"))??;
        total.merge(part);
        let _ = histogram.add(&hist);
    }
    let measured_for = Instant::now().saturating_duration_since(warm_end);
    if params.workload == Workload::Delete
        && target.user_count() == 1
        && deleted.load(Ordering::Relaxed) >= keys.len()
    {
        // deleteObject of a missing key succeeds too: check the keys are gone.
        let left = keys_left(target, &store_id)
            .await
            .map_err(|e| format!("listing what delete left: {e:?}"))?;
        if left > 0 {
            total.errors.insert("KEYS_LEFT".to_string(), left);
        }
    }
    total.finish(params, measured_for, &histogram);
    Ok(total)
}

/// How many keys `store_id` still holds (up to a page of them).
async fn keys_left(target: &Target, store_id: &str) -> Result<u64, CallError> {
    let mut conn = Connection::open(target).await?;
    let req = ListKeyVersionsRequest {
        store_id: store_id.to_string(),
        key_prefix: None,
        page_size: Some(LIST_PAGE),
        page_token: None,
    };
    let page: ListKeyVersionsResponse = conn.call(Operation::ListKeyVersions, &req).await?;
    Ok(page.key_versions.len() as u64)
}

fn new_histogram() -> Result<Histogram<u64>, String> {
    // Microseconds from 1 us to 10 min, 3 significant digits.
    Histogram::new_with_bounds(1, 600_000_000, 3).map_err(|e| format!("histogram: {e}"))
}
