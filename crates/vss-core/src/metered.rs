//! [`Metered`]: any [`KvStore`], measured.
//!
//! A decorator in the manner of object_store's wrappers: the same trait in,
//! the same trait out, so every backend, a custom one included, is measured
//! without code of its own. It records through the [`metrics`] facade, which
//! costs next to nothing until the program installs a recorder (vss-server
//! installs a Prometheus one):
//!
//! | metric | kind | labels |
//! | --- | --- | --- |
//! | `vss_store_operations_total` | counter | `operation` (`getObject`, `putObjects`, `deleteObject`, `listKeyVersions`, `ready`), `outcome` (`ok` or [`VssError::kind`]) |
//! | `vss_store_operation_duration_seconds` | histogram | `operation` |
//!
//! No label ever holds a user token, store id, key or value: the label values
//! are the fixed names above.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use async_trait::async_trait;
use metrics::{Counter, Histogram};

use crate::proto::{
    DeleteObjectRequest, DeleteObjectResponse, GetObjectRequest, GetObjectResponse,
    ListKeyVersionsRequest, ListKeyVersionsResponse, PutObjectRequest, PutObjectResponse,
};
use crate::protocol::Operation;
use crate::{KvStore, Quota, StoreLimits, UserToken, VssError};

/// Operations by operation and outcome.
pub const OPERATIONS_TOTAL: &str = "vss_store_operations_total";
/// Latency of operations by operation.
pub const OPERATION_DURATION: &str = "vss_store_operation_duration_seconds";

/// Registers the descriptions (help texts and units) of the metrics
/// [`Metered`] records, with the recorder installed now.
pub fn describe_metrics() {
    metrics::describe_counter!(
        OPERATIONS_TOTAL,
        "Store operations by operation and outcome (ok or the error kind)."
    );
    metrics::describe_histogram!(
        OPERATION_DURATION,
        metrics::Unit::Seconds,
        "Latency of store operations, by operation."
    );
}

/// `store`, with each call counted and timed (see the module documentation).
///
/// Each series is registered with the recorder at its first use and its
/// handle kept, so a call costs two atomic updates, not two registry lookups:
/// install the recorder before the first call.
#[derive(Clone, Default)]
pub struct Metered<S> {
    inner: S,
    series: Arc<[OperationSeries; 5]>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for Metered<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metered")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

/// The operations measured, in the order of [`Metered`]'s series.
const OPERATIONS: [&str; 5] = [
    Operation::GetObject.name(),
    Operation::PutObjects.name(),
    Operation::DeleteObject.name(),
    Operation::ListKeyVersions.name(),
    "ready",
];
/// One operation's series, registered at first use.
#[derive(Default)]
struct OperationSeries {
    duration: OnceLock<Histogram>,
    /// `ok`, then each of [`VssError::KINDS`].
    outcomes: [OnceLock<Counter>; 1 + VssError::KINDS.len()],
}

impl<S> Metered<S> {
    /// Measures `inner`.
    pub fn new(inner: S) -> Self {
        Metered {
            inner,
            series: Arc::default(),
        }
    }

    /// The measured store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Records one call of operation number `op` (in [`OPERATIONS`]) that
    /// started at `started`.
    fn record<T>(&self, op: usize, started: Instant, result: &Result<T, VssError>) {
        let (index, outcome) = match result {
            Ok(_) => (0, "ok"),
            Err(err) => (1 + err.kind_index(), err.kind()),
        };
        let series = &self.series[op];
        series.outcomes[index]
            .get_or_init(|| {
                metrics::counter!(
                    OPERATIONS_TOTAL,
                    "operation" => OPERATIONS[op],
                    "outcome" => outcome
                )
            })
            .increment(1);
        series
            .duration
            .get_or_init(|| metrics::histogram!(OPERATION_DURATION, "operation" => OPERATIONS[op]))
            .record(started.elapsed().as_secs_f64());
    }
}

#[async_trait]
impl<S: KvStore> KvStore for Metered<S> {
    async fn get(
        &self,
        user: &UserToken,
        req: GetObjectRequest,
    ) -> Result<GetObjectResponse, VssError> {
        let started = Instant::now();
        let result = self.inner.get(user, req).await;
        self.record(0, started, &result);
        result
    }

    async fn put(
        &self,
        user: &UserToken,
        req: PutObjectRequest,
    ) -> Result<PutObjectResponse, VssError> {
        let started = Instant::now();
        let result = self.inner.put(user, req).await;
        self.record(1, started, &result);
        result
    }

    async fn put_with_quota(
        &self,
        user: &UserToken,
        req: PutObjectRequest,
        quota: Quota,
    ) -> Result<PutObjectResponse, VssError> {
        let started = Instant::now();
        let result = self.inner.put_with_quota(user, req, quota).await;
        self.record(1, started, &result);
        result
    }

    async fn delete(
        &self,
        user: &UserToken,
        req: DeleteObjectRequest,
    ) -> Result<DeleteObjectResponse, VssError> {
        let started = Instant::now();
        let result = self.inner.delete(user, req).await;
        self.record(2, started, &result);
        result
    }

    async fn list_key_versions(
        &self,
        user: &UserToken,
        req: ListKeyVersionsRequest,
    ) -> Result<ListKeyVersionsResponse, VssError> {
        let started = Instant::now();
        let result = self.inner.list_key_versions(user, req).await;
        self.record(3, started, &result);
        result
    }

    fn limits(&self) -> StoreLimits {
        self.inner.limits()
    }

    async fn ready(&self) -> Result<(), VssError> {
        let started = Instant::now();
        let result = self.inner.ready().await;
        self.record(4, started, &result);
        result
    }

    async fn close(&self) -> Result<(), VssError> {
        self.inner.close().await
    }
}
