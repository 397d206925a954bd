//! The accept loop: connections in, limits on them, graceful shutdown out.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::limit::ClientAddr;
use crate::measure;
use crate::{TlsConfig, VssService};

/// How connections are served, what limits them, and how a shutdown ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeOptions {
    /// After shutdown is asked for, the longest wait for in-flight requests to
    /// finish; connections still open then are dropped.
    pub shutdown_grace: Duration,
    /// The longest time a client may take to send a request's headers
    /// (HTTP/1.1, also between requests on a kept-alive connection); bodies
    /// are bounded by the request timeout.
    pub header_read_timeout: Duration,
    /// After shutdown is asked for, how long to go on accepting and serving
    /// with readiness answering 503, so that load balancers take the instance
    /// out before it stops accepting. Zero: stop accepting at once.
    pub drain_delay: Duration,
    /// Most connections open at once; a connection over it is closed as soon
    /// as it is accepted (never left waiting). See [`default_max_connections`].
    pub max_connections: usize,
    /// Most connections open at once from one IP address; 0: no limit. The
    /// default is [`default_max_connections_per_ip`] of the cap, so one host
    /// cannot take every place; behind a load balancer every connection comes from
    /// the balancer, which then needs a place for each of its connections.
    pub max_connections_per_ip: usize,
    /// The time a new connection has to send its first bytes; a connection
    /// that sends nothing is closed then (before this, nothing is known of it,
    /// not even its HTTP version).
    pub first_bytes_timeout: Duration,
    /// A connection (HTTP/1.1 or HTTP/2) with no request in flight for this
    /// long is closed.
    pub idle_timeout: Duration,
    /// HTTP/2: the most requests in flight on one connection.
    pub http2_max_concurrent_streams: u32,
    /// HTTP/2: how often an idle peer is pinged; one that does not answer
    /// within the same time is dropped.
    pub http2_keep_alive_interval: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        let max_connections = default_max_connections();
        ServeOptions {
            shutdown_grace: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(30),
            drain_delay: Duration::ZERO,
            max_connections,
            max_connections_per_ip: default_max_connections_per_ip(max_connections),
            first_bytes_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(120),
            http2_max_concurrent_streams: 64,
            http2_keep_alive_interval: Duration::from_secs(30),
        }
    }
}

/// The default of [`ServeOptions::max_connections`]: the process's limit of
/// open files (its soft `RLIMIT_NOFILE`, read from `/proc/self/limits`; 1024
/// where that cannot be read) less a tenth, at least 64, for the database's
/// connections, files and the accept that refuses. So a flood of
/// connections cannot take the descriptors the rest of the server needs.
pub fn default_max_connections() -> usize {
    let limit = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| {
            let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
            let soft = line
                .trim_start_matches("Max open files")
                .split_whitespace()
                .next()?;
            match soft {
                "unlimited" => Some(1 << 20),
                number => number.parse::<usize>().ok(),
            }
        })
        .unwrap_or(1024);
    limit.saturating_sub((limit / 10).max(64)).max(16)
}

/// The default of [`ServeOptions::max_connections_per_ip`] for a cap of
/// `max_connections`: a quarter of it, so one host cannot take every place.
pub fn default_max_connections_per_ip(max_connections: usize) -> usize {
    max_connections / 4
}

/// How a [`serve`] run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeOutcome {
    /// Connections accepted over the whole run (refused ones included).
    pub connections: u64,
    /// Connections still busy when the shutdown grace ran out, and dropped.
    pub aborted: usize,
}

/// Counts connections, in all and per IP address, against the limits.
struct Admission {
    total: Arc<Semaphore>,
    per_ip: Arc<Mutex<HashMap<IpAddr, usize>>>,
    max_per_ip: usize,
}

/// One admitted connection: its place is given back when dropped.
struct Admitted {
    _permit: OwnedSemaphorePermit,
    ip: IpAddr,
    per_ip: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Admission {
    fn new(options: &ServeOptions) -> Self {
        Admission {
            total: Arc::new(Semaphore::new(options.max_connections.max(1))),
            per_ip: Arc::default(),
            max_per_ip: options.max_connections_per_ip,
        }
    }

    /// A place for a connection from `ip`, or why there is none.
    fn admit(&self, ip: IpAddr) -> Result<Admitted, &'static str> {
        let permit = Arc::clone(&self.total)
            .try_acquire_owned()
            .map_err(|_| "max_connections")?;
        let mut per_ip = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        let count = per_ip.entry(ip).or_insert(0);
        if self.max_per_ip > 0 && *count >= self.max_per_ip {
            return Err("max_connections_per_ip");
        }
        *count += 1;
        Ok(Admitted {
            _permit: permit,
            ip,
            per_ip: Arc::clone(&self.per_ip),
        })
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut per_ip = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = per_ip.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                per_ip.remove(&self.ip);
            }
        }
    }
}

/// Runs the tasks hyper spawns (one per HTTP/2 stream: the request's whole
/// handling) where the shutdown sees them: it waits for them as for the
/// connections, and ends them when the grace runs out, so no request still
/// runs when the caller closes the store.
#[derive(Clone, Default)]
struct StreamTasks {
    tracker: TaskTracker,
    abort: CancellationToken,
}

impl<F> hyper::rt::Executor<F> for StreamTasks
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, future: F) {
        let abort = self.abort.clone();
        self.tracker.spawn(async move {
            tokio::select! {
                _ = future => {}
                _ = abort.cancelled() => {}
            }
        });
    }
}

/// Requests in flight on one connection, and since when it has had none.
#[derive(Default)]
struct Activity(Mutex<(usize, Option<Instant>)>);

impl Activity {
    fn start(&self) {
        let mut state = self.0.lock().unwrap_or_else(|e| e.into_inner());
        state.0 += 1;
    }

    fn end(&self) {
        let mut state = self.0.lock().unwrap_or_else(|e| e.into_inner());
        state.0 = state.0.saturating_sub(1);
        state.1 = Some(Instant::now());
    }

    /// How long the connection has had nothing in flight (since `opened` if never used).
    fn idle_for(&self, opened: Instant) -> Duration {
        let state = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match *state {
            (0, last) => last.unwrap_or(opened).elapsed(),
            _ => Duration::ZERO,
        }
    }
}

/// Serves `service` on every connection `listener` accepts (HTTP/1.1 with
/// keep-alive and pipelining, or HTTP/2 with prior knowledge) until
/// `shutdown` completes, within the limits of `options`: connections over
/// [`ServeOptions::max_connections`] (or over the per-IP limit) are closed at
/// once; a connection that sends nothing within
/// [`ServeOptions::first_bytes_timeout`], or has nothing in flight for
/// [`ServeOptions::idle_timeout`], is closed.
///
/// When `shutdown` completes, readiness answers 503
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
    serve_inner(listener, service, shutdown, options, None).await
}

/// As [`serve`], over TLS: every connection's first bytes start a TLS
/// handshake (bounded by [`ServeOptions::first_bytes_timeout`]); ALPN picks
/// HTTP/2 or HTTP/1.1. A failed handshake closes that connection only.
/// [`TlsConfig::reload`] changes the certificate for later handshakes
/// without touching open connections.
pub async fn serve_tls<S>(
    listener: TcpListener,
    service: VssService,
    shutdown: S,
    options: ServeOptions,
    tls: TlsConfig,
) -> ServeOutcome
where
    S: Future,
{
    serve_inner(listener, service, shutdown, options, Some(tls)).await
}

async fn serve_inner<S>(
    listener: TcpListener,
    service: VssService,
    shutdown: S,
    options: ServeOptions,
    tls: Option<TlsConfig>,
) -> ServeOutcome
where
    S: Future,
{
    let streams = StreamTasks::default();
    let mut builder = auto::Builder::new(streams.clone());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout)
        .keep_alive(true)
        // Bodies are written as they are (vectored writes), never copied into
        // one buffer with the head: a large answer costs no second copy.
        // (hyper's `pipeline_flush` would copy every body into that buffer;
        // pipelined requests are still answered in order without it.)
        .writev(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(options.http2_max_concurrent_streams)
        .keep_alive_interval(options.http2_keep_alive_interval)
        .keep_alive_timeout(options.http2_keep_alive_interval);

    let admission = Admission::new(&options);
    let (stop_connections, connections_stop) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut accepted: u64 = 0;
    let draining = service.clone();
    let drain_delay = options.drain_delay;
    let shutdown = async move {
        shutdown.await;
        draining.begin_draining();
        if !drain_delay.is_zero() {
            tracing::info!(delay = ?drain_delay, "serving on while balancers drain");
            tokio::time::sleep(drain_delay).await;
        }
    };
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            result = listener.accept() => match result {
                Ok((stream, peer)) => {
                    accepted += 1;
                    let admitted = match admission.admit(peer.ip()) {
                        Ok(admitted) => admitted,
                        Err(limit) => {
                            // Closed at once: the client learns now, not after a timeout.
                            measure::connection_refused(limit);
                            tracing::debug!(limit, "connection refused");
                            drop(stream);
                            continue;
                        }
                    };
                    connections.spawn(serve_connection(
                        stream,
                        admitted,
                        service.clone(),
                        builder.clone(),
                        options.clone(),
                        connections_stop.clone(),
                        tls.clone(),
                    ));
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
    let _ = stop_connections.send(true);
    streams.tracker.close();
    let drained = tokio::time::timeout(options.shutdown_grace, async {
        while connections.join_next().await.is_some() {}
        streams.tracker.wait().await;
    })
    .await
    .is_ok();
    let aborted = if drained {
        0
    } else {
        let left = connections.len();
        tracing::warn!(
            connections = connections.len(),
            http2_streams = streams.tracker.len(),
            grace = ?options.shutdown_grace,
            "shutdown grace ran out; dropping connections with requests in flight"
        );
        connections.shutdown().await;
        // HTTP/2 streams run in tasks of their own: end them too, and wait
        // until they are gone, so none of them touches the store after this.
        streams.abort.cancel();
        streams.tracker.wait().await;
        left
    };
    ServeOutcome {
        connections: accepted,
        aborted,
    }
}

/// How long an idle connection asked to close may take before it is dropped.
const IDLE_CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Serves one admitted connection until it ends, is idle too long, or the
/// server shuts down.
async fn serve_connection(
    stream: TcpStream,
    admitted: Admitted,
    service: VssService,
    builder: auto::Builder<StreamTasks>,
    options: ServeOptions,
    mut stop: watch::Receiver<bool>,
    tls: Option<TlsConfig>,
) {
    let _open = measure::ConnectionOpen::start();
    let _admitted = admitted;
    // Nothing is known of a connection before its first bytes (not even its
    // HTTP version, so hyper's own timeouts have not started): bound that wait.
    let mut first = [0u8; 1];
    tokio::select! {
        peeked = tokio::time::timeout(options.first_bytes_timeout, stream.peek(&mut first)) => {
            match peeked {
                Ok(Ok(n)) if n > 0 => {}
                // Closed by the client, or broken.
                Ok(_) => return,
                Err(_) => {
                    measure::connection_closed("first_bytes_timeout");
                    tracing::debug!("connection closed: no bytes within the first-bytes timeout");
                    return;
                }
            }
        }
        _ = stop.wait_for(|stop| *stop) => return,
    }
    // Small requests and answers: do not wait for Nagle.
    if let Err(err) = stream.set_nodelay(true) {
        tracing::debug!(error = %err, "could not set TCP_NODELAY");
    }
    let peer = stream.peer_addr().ok();
    match tls {
        None => drive(stream, peer, service, builder, options, stop).await,
        Some(tls) => {
            let handshake = tls.acceptor().accept(stream);
            let done = tokio::select! {
                done = tokio::time::timeout(options.first_bytes_timeout, handshake) => done,
                _ = stop.wait_for(|stop| *stop) => return,
            };
            match done {
                Ok(Ok(stream)) => drive(stream, peer, service, builder, options, stop).await,
                Ok(Err(err)) => {
                    measure::connection_closed("tls_handshake");
                    tracing::debug!(error = %err, "connection closed: TLS handshake failed");
                }
                Err(_) => {
                    measure::connection_closed("tls_handshake");
                    tracing::debug!(
                        "connection closed: TLS handshake not done within the first-bytes timeout"
                    );
                }
            }
        }
    }
}

/// Serves HTTP on one connection (plain or TLS) until it ends, is idle too
/// long, or the server shuts down.
async fn drive<I>(
    io: I,
    peer: Option<std::net::SocketAddr>,
    service: VssService,
    builder: auto::Builder<StreamTasks>,
    options: ServeOptions,
    mut stop: watch::Receiver<bool>,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let opened = Instant::now();
    let activity = Arc::new(Activity::default());
    let hyper_service = {
        let activity = Arc::clone(&activity);
        service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            let service = service.clone();
            let activity = Arc::clone(&activity);
            if let Some(peer) = peer {
                req.extensions_mut().insert(ClientAddr(peer));
            }
            async move {
                activity.start();
                let response = service.handle(req).await;
                activity.end();
                Ok::<_, Infallible>(response)
            }
        })
    };
    let connection = builder
        .serve_connection(TokioIo::new(io), hyper_service)
        .into_owned();
    tokio::pin!(connection);
    let mut idle_check =
        tokio::time::interval((options.idle_timeout / 4).max(Duration::from_millis(100)));
    let mut closing = false;
    // An idle connection asked to close gets this long to do so; an HTTP/2
    // peer that never answers the GOAWAY's ping is then dropped.
    let mut idle_close_deadline = None;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(err) = result {
                    // Clients that go away or send malformed HTTP end up here.
                    tracing::debug!(error = %err, "connection ended with an error");
                }
                return;
            }
            _ = stop.wait_for(|stop| *stop), if !closing => {
                // Finishes what is in flight, then closes (HTTP/2: GOAWAY).
                connection.as_mut().graceful_shutdown();
                closing = true;
            }
            _ = idle_check.tick(), if idle_close_deadline.is_none() => {
                if activity.idle_for(opened) >= options.idle_timeout {
                    measure::connection_closed("idle_timeout");
                    tracing::debug!("connection closed: idle");
                    if !closing {
                        connection.as_mut().graceful_shutdown();
                        closing = true;
                    }
                    idle_close_deadline = Some(tokio::time::Instant::now() + IDLE_CLOSE_GRACE);
                }
            }
            _ = sleep_until(idle_close_deadline), if idle_close_deadline.is_some() => return,
        }
    }
}
