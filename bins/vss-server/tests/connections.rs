//! Limits on connections, against clients that hold sockets and send nothing:
//! the first-bytes deadline, the idle timeout (HTTP/1.1 and HTTP/2), the cap
//! on open connections and the cap per IP address.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on failure.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use vss_http::ServeOptions;
use vss_server::Config;

/// Only a guard against hanging: closes are expected well within it.
const GUARD: Duration = Duration::from_secs(20);

fn limited(dir: &std::path::Path, connections: ServeOptions) -> Config {
    Config {
        connections,
        ..config(sqlite(dir))
    }
}

/// Reads until the server closes the connection; returns what was read and
/// the time since `started`. Tests of the server's timers take `started`
/// before connecting, so that a pause of this task cannot make a timer look short.
async fn until_closed(stream: &mut TcpStream, started: Instant) -> (Vec<u8>, Duration) {
    let mut read = Vec::new();
    tokio::time::timeout(GUARD, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => read.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .expect("the server did not close the connection");
    (read, started.elapsed())
}

/// A connection from the loopback address `from` (127.0.0.x) to `addr`.
async fn connect_from(from: [u8; 4], addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((from, 0))).unwrap();
    socket.connect(addr).await.unwrap()
}

/// Whether a request on a new connection from `from` is answered.
async fn answered_from(from: [u8; 4], addr: SocketAddr) -> bool {
    let mut stream = connect_from(from, addr).await;
    let request = b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    if stream.write_all(request).await.is_err() {
        return false;
    }
    let (read, _) = until_closed(&mut stream, Instant::now()).await;
    String::from_utf8_lossy(&read).starts_with("HTTP/1.1 200")
}

/// `/metrics`, once a place is free for the scrape (closed connections give
/// theirs back as the server notices they closed).
async fn metrics(addr: SocketAddr) -> String {
    let deadline = Instant::now() + GUARD;
    loop {
        let answer = get(addr, "/metrics").await;
        if answer.status == 200 {
            return answer.body;
        }
        assert!(
            Instant::now() < deadline,
            "no place for the scrape within {GUARD:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Asserts that the server closed `stream` at once, without a word (over a cap).
async fn assert_closed_at_once(stream: &mut TcpStream) {
    let (read, after) = until_closed(stream, Instant::now()).await;
    assert!(read.is_empty());
    assert!(after < Duration::from_secs(5), "refused after {after:?}");
}

fn counter(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_sends_nothing_is_closed_at_the_first_bytes_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let deadline = Duration::from_millis(800);
    let server = start(limited(
        dir.path(),
        ServeOptions {
            first_bytes_timeout: deadline,
            ..ServeOptions::default()
        },
    ))
    .await;
    let started = Instant::now();
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    let (read, after) = until_closed(&mut silent, started).await;
    assert!(read.is_empty(), "nothing is sent to a silent client");
    assert!(
        after >= deadline - Duration::from_millis(100),
        "closed after {after:?}"
    );
    // Meanwhile, and after, other clients are served.
    assert!(answered_from([127, 0, 0, 1], server.addr).await);
    let metrics = metrics(server.addr).await;
    assert_eq!(
        counter(
            &metrics,
            "vss_http_connections_closed_total{reason=\"first_bytes_timeout\"}"
        ),
        1.0,
        "{metrics}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_http1_and_http2() {
    let dir = tempfile::tempdir().unwrap();
    let idle = Duration::from_millis(800);
    let server = start(limited(
        dir.path(),
        ServeOptions {
            idle_timeout: idle,
            ..ServeOptions::default()
        },
    ))
    .await;
    // HTTP/1.1: one request, then nothing on the kept-alive connection.
    let started = Instant::now();
    let mut kept = TcpStream::connect(server.addr).await.unwrap();
    kept.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (read, after) = until_closed(&mut kept, started).await;
    assert!(String::from_utf8_lossy(&read).starts_with("HTTP/1.1 200"));
    assert!(
        after >= idle - Duration::from_millis(100),
        "closed after {after:?}"
    );
    // HTTP/2: only the connection preface, then nothing. The server answers
    // with its SETTINGS, and later a GOAWAY as it closes.
    let started = Instant::now();
    let mut h2 = TcpStream::connect(server.addr).await.unwrap();
    h2.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .unwrap();
    let (read, after) = until_closed(&mut h2, started).await;
    assert!(!read.is_empty(), "the server speaks HTTP/2 first");
    assert!(
        after >= idle - Duration::from_millis(100),
        "closed after {after:?}"
    );
    let metrics = metrics(server.addr).await;
    assert!(
        counter(
            &metrics,
            "vss_http_connections_closed_total{reason=\"idle_timeout\"}"
        ) >= 2.0,
        "{metrics}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_are_closed_at_once_and_places_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(limited(
        dir.path(),
        ServeOptions {
            max_connections: 3,
            max_connections_per_ip: 0,
            first_bytes_timeout: Duration::from_secs(60),
            ..ServeOptions::default()
        },
    ))
    .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(TcpStream::connect(server.addr).await.unwrap());
    }
    // The fourth is closed at once, not left waiting for a place.
    assert_closed_at_once(&mut TcpStream::connect(server.addr).await.unwrap()).await;
    // A place comes back when a connection closes.
    held.pop();
    poll_until("a place after a close", GUARD, || async {
        answered_from([127, 0, 0, 1], server.addr).await
    })
    .await;
    drop(held);
    let metrics = metrics(server.addr).await;
    assert!(
        counter(
            &metrics,
            "vss_http_connections_refused_total{limit=\"max_connections\"}"
        ) >= 1.0,
        "{metrics}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_take_every_place() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(limited(
        dir.path(),
        ServeOptions {
            max_connections: 100,
            max_connections_per_ip: 2,
            first_bytes_timeout: Duration::from_secs(60),
            ..ServeOptions::default()
        },
    ))
    .await;
    let _a = connect_from([127, 0, 0, 2], server.addr).await;
    let _b = connect_from([127, 0, 0, 2], server.addr).await;
    assert_closed_at_once(&mut connect_from([127, 0, 0, 2], server.addr).await).await;
    // Another address is still served.
    assert!(answered_from([127, 0, 0, 1], server.addr).await);
    let metrics = metrics(server.addr).await;
    assert!(
        counter(
            &metrics,
            "vss_http_connections_refused_total{limit=\"max_connections_per_ip\"}"
        ) >= 1.0,
        "{metrics}"
    );
    server.stop().await;
}
