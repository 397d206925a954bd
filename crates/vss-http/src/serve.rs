//! The accept loop: connections in, graceful shutdown out.

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::VssService;

/// How connections are served and how a shutdown ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeOptions {
    /// After shutdown is asked for, the longest wait for in-flight requests to
    /// finish; connections still open then are dropped.
    pub shutdown_grace: Duration,
    /// The longest time a client may take to send a request's headers
    /// (HTTP/1.1); bodies are bounded by the request timeout.
    pub header_read_timeout: Duration,
    /// After shutdown is asked for, how long to go on accepting and serving
    /// with readiness answering 503, so that load balancers take the instance
    /// out before it stops accepting. Zero: stop accepting at once.
    pub drain_delay: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            shutdown_grace: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(30),
            drain_delay: Duration::ZERO,
        }
    }
}

/// How a [`serve`] run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeOutcome {
    /// Connections accepted over the whole run.
    pub connections: u64,
    /// Connections still busy when the shutdown grace ran out, and dropped.
    pub aborted: usize,
}

/// Serves `service` on every connection `listener` accepts (HTTP/1.1 with
/// keep-alive and pipelining, or HTTP/2 with prior knowledge) until
/// `shutdown` completes. Then readiness answers 503
/// ([`VssService::begin_draining`]) while it serves on for
/// [`ServeOptions::drain_delay`]; then it stops accepting (the listener is
/// closed, so new connections are refused), lets in-flight requests finish
/// for up to [`ServeOptions::shutdown_grace`], and returns. Idle connections are
/// closed at once. The store is not closed here: that is the caller's last step.
pub async fn serve<S>(
    listener: TcpListener,
    service: VssService,
    shutdown: S,
    options: ServeOptions,
) -> ServeOutcome
where
    S: Future,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout)
        .keep_alive(true)
        // Pipelined requests are answered in order; flush their answers together.
        .pipeline_flush(true);
    builder.http2().timer(TokioTimer::new());

    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    let mut accepted: u64 = 0;
    let draining = service.clone();
    let shutdown = async move {
        shutdown.await;
        draining.begin_draining();
        if !options.drain_delay.is_zero() {
            tracing::info!(delay = ?options.drain_delay, "serving on while balancers drain");
            tokio::time::sleep(options.drain_delay).await;
        }
    };
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            result = listener.accept() => match result {
                Ok((stream, _peer)) => {
                    accepted += 1;
                    // Small requests and answers: do not wait for Nagle.
                    if let Err(err) = stream.set_nodelay(true) {
                        tracing::debug!(error = %err, "could not set TCP_NODELAY");
                    }
                    let service = service.clone();
                    let hyper_service = service_fn(move |req| {
                        let service = service.clone();
                        async move { Ok::<_, Infallible>(service.handle(req).await) }
                    });
                    let connection = builder
                        .serve_connection(TokioIo::new(stream), hyper_service)
                        .into_owned();
                    let connection = graceful.watch(connection);
                    connections.spawn(async move {
                        if let Err(err) = connection.await {
                            // Clients that go away or send malformed HTTP end up here.
                            tracing::debug!(error = %err, "connection ended with an error");
                        }
                    });
                }
                Err(err) => {
                    // Typically out of file descriptors: back off instead of spinning.
                    tracing::warn!(error = %err, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    tracing::info!(
        open_connections = connections.len(),
        "stopped accepting connections; finishing in-flight requests"
    );
    let drained = tokio::time::timeout(options.shutdown_grace, async {
        graceful.shutdown().await;
        while connections.join_next().await.is_some() {}
    })
    .await
    .is_ok();
    let aborted = if drained {
        0
    } else {
        let left = connections.len();
        tracing::warn!(
            connections = left,
            grace = ?options.shutdown_grace,
            "shutdown grace ran out; dropping connections with requests in flight"
        );
        connections.shutdown().await;
        left
    };
    ServeOutcome {
        connections: accepted,
        aborted,
    }
}
