//! What the SQLite backend measures, through the `metrics` facade (free
//! until the program installs a recorder).
//!
//! | metric | kind | meaning |
//! | --- | --- | --- |
//! | `vss_sqlite_write_batch_size` | histogram | write requests committed together in one transaction (one sync) |
//! | `vss_sqlite_write_queue_depth` | gauge | write requests still queued when the writer took its last batch |

/// Write requests per committed batch.
pub const WRITE_BATCH_SIZE: &str = "vss_sqlite_write_batch_size";
/// Write requests left queued when the writer took a batch.
pub const WRITE_QUEUE_DEPTH: &str = "vss_sqlite_write_queue_depth";

/// Registers the help texts of these metrics with the recorder installed now.
pub fn describe_metrics() {
    metrics::describe_histogram!(
        WRITE_BATCH_SIZE,
        "Write requests committed together in one SQLite transaction (one sync)."
    );
    metrics::describe_gauge!(
        WRITE_QUEUE_DEPTH,
        "Write requests still queued when the SQLite writer took its last batch."
    );
}

/// The writer took a batch of `size` requests, leaving `queued` waiting.
pub(crate) fn batch_taken(size: usize, queued: usize) {
    metrics::histogram!(WRITE_BATCH_SIZE).record(size as f64);
    metrics::gauge!(WRITE_QUEUE_DEPTH).set(queued as f64);
}
