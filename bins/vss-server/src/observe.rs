//! Metrics: the Prometheus recorder every crate's metrics go to, the
//! `/metrics` endpoint that renders them with the process's own, and the
//! build information. docs/operating.md lists every metric.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::request::Parts;
use http::{Method, Response, StatusCode};
use http_body_util::Full;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use vss_http::Endpoint;

/// The path metrics are served on.
pub const METRICS_PATH: &str = "/metrics";

/// Build information: always 1, with the version, backend and authentication methods as labels.
pub const BUILD_INFO: &str = "vss_build_info";

/// Buckets of latency histograms: 100 µs to 30 s.
const SECONDS_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0,
];
/// Buckets of body size histograms: 64 B to 1 GiB.
const BYTES_BUCKETS: &[f64] = &[
    64.0,
    256.0,
    1024.0,
    4096.0,
    16384.0,
    65536.0,
    262_144.0,
    1_048_576.0,
    4_194_304.0,
    16_777_216.0,
    67_108_864.0,
    268_435_456.0,
    1_073_741_824.0,
];
/// Buckets of the SQLite write batch size.
#[cfg(feature = "sqlite")]
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

/// How often histograms are folded into their buckets when nobody scrapes
/// (so that they never grow without bound).
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// The process's Prometheus recorder: installed by the first server that
/// wants metrics, shared by later ones (a process has one global recorder).
/// `None` when another recorder was installed first (by an embedder).
fn recorder() -> Option<&'static Recorder> {
    static RECORDER: OnceLock<Option<Recorder>> = OnceLock::new();
    RECORDER.get_or_init(Recorder::install).as_ref()
}

struct Recorder {
    handle: PrometheusHandle,
    process: metrics_process::Collector,
}

impl Recorder {
    fn install() -> Option<Recorder> {
        #[allow(unused_mut)]
        let mut buckets = vec![
            (Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS),
            (Matcher::Suffix("_bytes".into()), BYTES_BUCKETS),
        ];
        #[cfg(feature = "sqlite")]
        buckets.push((
            Matcher::Full(vss_backend_sqlite::measure::WRITE_BATCH_SIZE.into()),
            BATCH_BUCKETS,
        ));
        let builder = buckets
            .into_iter()
            .try_fold(PrometheusBuilder::new(), |builder, (matcher, buckets)| {
                builder.set_buckets_for_metric(matcher, buckets)
            });
        let handle = match builder.and_then(PrometheusBuilder::install_recorder) {
            Ok(handle) => handle,
            Err(err) => {
                tracing::warn!(error = %err, "metrics are off: a metrics recorder is already installed");
                return None;
            }
        };
        let process = metrics_process::Collector::default();
        process.describe();
        describe_metrics();
        Some(Recorder { handle, process })
    }
}

/// Every crate's help texts, once the recorder is installed.
fn describe_metrics() {
    vss_core::metered::describe_metrics();
    vss_http::measure::describe_metrics();
    vss_auth::describe_metrics();
    metrics::describe_gauge!(
        BUILD_INFO,
        "Build information: version, storage backend and authentication methods (always 1)."
    );
    #[cfg(feature = "sqlite")]
    vss_backend_sqlite::measure::describe_metrics();
    #[cfg(feature = "postgres")]
    vss_backend_postgres::measure::describe_metrics();
    #[cfg(feature = "redis")]
    vss_backend_redis::describe_metrics();
    #[cfg(feature = "dynamodb")]
    vss_backend_dynamodb::describe_metrics();
}

/// Turns metrics on for this process (the recorder, the build information
/// and a task that keeps histograms bounded) and returns the `/metrics`
/// endpoint; `None` when another recorder is installed.
pub fn start(backend: &'static str, auth_methods: &str) -> Option<Arc<MetricsEndpoint>> {
    let recorder = recorder()?;
    metrics::gauge!(
        BUILD_INFO,
        "version" => env!("CARGO_PKG_VERSION"),
        "backend" => backend,
        "auth" => auth_methods.to_string()
    )
    .set(1.0);
    static UPKEEP: OnceLock<()> = OnceLock::new();
    UPKEEP.get_or_init(|| {
        let handle = recorder.handle.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(UPKEEP_INTERVAL);
            loop {
                every.tick().await;
                handle.run_upkeep();
            }
        });
    });
    Some(Arc::new(MetricsEndpoint { recorder }))
}

/// `GET /metrics`: every metric in the Prometheus text format.
pub struct MetricsEndpoint {
    recorder: &'static Recorder,
}

impl MetricsEndpoint {
    /// The current metrics, as `/metrics` serves them.
    pub fn render(&self) -> String {
        self.recorder.process.collect();
        self.recorder.handle.render()
    }
}

#[async_trait]
impl Endpoint for MetricsEndpoint {
    async fn respond(&self, request: &Parts) -> Response<Full<Bytes>> {
        let (status, body, content_type) = if request.method == Method::GET {
            (
                StatusCode::OK,
                self.render(),
                "text/plain; version=0.0.4; charset=utf-8",
            )
        } else {
            (
                StatusCode::METHOD_NOT_ALLOWED,
                "GET only\n".to_string(),
                "text/plain; charset=utf-8",
            )
        };
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        response
    }
}
