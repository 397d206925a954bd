//! What the PostgreSQL backend measures, through the `metrics` facade (free
//! until the program installs a recorder). Updated at every checkout.
//!
//! | metric | kind | meaning |
//! | --- | --- | --- |
//! | `vss_postgres_pool_connections` | gauge | `state="open"`: connections the pool holds; `state="idle"`: those free (the connections reads share are never idle); `state="max"`: its limit |
//! | `vss_postgres_pool_waiting` | gauge | requests waiting for a connection |

/// Connections of the pool by state.
pub const POOL_CONNECTIONS: &str = "vss_postgres_pool_connections";
/// Requests waiting for a pooled connection.
pub const POOL_WAITING: &str = "vss_postgres_pool_waiting";

/// Registers the help texts of these metrics with the recorder installed now.
pub fn describe_metrics() {
    metrics::describe_gauge!(
        POOL_CONNECTIONS,
        "PostgreSQL pool connections: open, idle (free), and max (the limit)."
    );
    metrics::describe_gauge!(
        POOL_WAITING,
        "Requests waiting for a PostgreSQL connection from the pool."
    );
}

/// The pool's gauges, registered at first use and kept (a checkout then
/// costs four atomic stores, not four registry lookups).
#[derive(Default)]
pub(crate) struct PoolGauges(std::sync::OnceLock<[metrics::Gauge; 4]>);

impl PoolGauges {
    /// Records the pool's state.
    pub(crate) fn record(&self, status: &deadpool_postgres::Status) {
        let [open, idle, max, waiting] = self.0.get_or_init(|| {
            [
                metrics::gauge!(POOL_CONNECTIONS, "state" => "open"),
                metrics::gauge!(POOL_CONNECTIONS, "state" => "idle"),
                metrics::gauge!(POOL_CONNECTIONS, "state" => "max"),
                metrics::gauge!(POOL_WAITING),
            ]
        });
        open.set(status.size as f64);
        idle.set(status.available as f64);
        max.set(status.max_size as f64);
        waiting.set(status.waiting as f64);
    }
}
