//! The listener's own TLS: HTTP/1.1 and HTTP/2 (ALPN) over it, a certificate
//! reloaded without dropping open connections, bad files and bad handshakes.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on failure.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use prost::Message;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_rustls::client::TlsStream;
use vss_core::proto::{GetObjectRequest, GetObjectResponse, KeyValue, PutObjectRequest};
use vss_core::MemoryStore;
use vss_http::{
    serve_tls, HttpConfig, NoopAuthorizer, ServeOptions, ServeOutcome, TlsConfig, TlsError,
    VssService,
};

/// A self-signed certificate for `localhost`, written as PEM files in `dir`.
fn certificate(dir: &Path, name: &str) -> CertificateDer<'static> {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(dir.join(format!("{name}.crt")), made.cert.pem()).unwrap();
    std::fs::write(
        dir.join(format!("{name}.key")),
        made.signing_key.serialize_pem(),
    )
    .unwrap();
    made.cert.der().clone()
}

struct TlsServer {
    addr: SocketAddr,
    tls: TlsConfig,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<ServeOutcome>,
}

async fn start(tls: TlsConfig) -> TlsServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = VssService::new(
        Arc::new(MemoryStore::new()),
        Arc::new(NoopAuthorizer::default()),
        HttpConfig::default(),
    );
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve_tls(
        listener,
        service,
        stopped,
        ServeOptions::default(),
        tls.clone(),
    ));
    TlsServer {
        addr,
        tls,
        stop,
        task,
    }
}

/// A TLS connection trusting only `trusted`, offering `alpn`.
async fn connect(
    addr: SocketAddr,
    trusted: &CertificateDer<'static>,
    alpn: &[&[u8]],
) -> Result<TlsStream<TcpStream>, std::io::Error> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trusted.clone()).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await?;
    connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
}

fn put(key: &str) -> Vec<u8> {
    PutObjectRequest {
        store_id: "s".into(),
        global_version: None,
        transaction_items: vec![KeyValue {
            key: key.into(),
            version: 0,
            value: Bytes::from_static(b"v"),
        }],
        delete_items: vec![],
    }
    .encode_to_vec()
}

fn get(key: &str) -> Vec<u8> {
    GetObjectRequest {
        store_id: "s".into(),
        key: key.into(),
    }
    .encode_to_vec()
}

fn request(addr: SocketAddr, op: &str, body: Vec<u8>) -> http::Request<Full<Bytes>> {
    http::Request::post(format!("https://localhost:{}/vss/{op}", addr.port()))
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

/// An HTTP/1.1 client on an established TLS connection.
async fn http1(
    stream: TlsStream<TcpStream>,
) -> hyper::client::conn::http1::SendRequest<Full<Bytes>> {
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

/// An HTTP/2 client on an established TLS connection.
async fn http2(
    stream: TlsStream<TcpStream>,
) -> hyper::client::conn::http2::SendRequest<Full<Bytes>> {
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    sender
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_and_http2_are_served_over_tls_by_alpn() {
    let dir = tempfile::tempdir().unwrap();
    let cert = certificate(dir.path(), "a");
    let tls = TlsConfig::from_files(dir.path().join("a.crt"), dir.path().join("a.key")).unwrap();
    let server = start(tls).await;

    // HTTP/2, chosen by ALPN.
    let stream = connect(server.addr, &cert, &[b"h2", b"http/1.1"])
        .await
        .unwrap();
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let mut h2 = http2(stream).await;
    let answer = h2
        .send_request(request(server.addr, "putObjects", put("k")))
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(answer.version(), http::Version::HTTP_2);

    // HTTP/1.1, chosen by ALPN, reads what HTTP/2 wrote.
    let stream = connect(server.addr, &cert, &[b"http/1.1"]).await.unwrap();
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let mut h1 = http1(stream).await;
    let answer = h1
        .send_request(request(server.addr, "getObject", get("k")))
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    let body = answer.into_body().collect().await.unwrap().to_bytes();
    let value = GetObjectResponse::decode(body).unwrap().value.unwrap();
    assert_eq!(value.version, 1);

    // No ALPN at all: HTTP/1.1 still works.
    let stream = connect(server.addr, &cert, &[]).await.unwrap();
    let mut plain = http1(stream).await;
    let answer = plain
        .send_request(request(server.addr, "getObject", get("k")))
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);

    let _ = server.stop.send(());
    server.task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reloaded_certificate_serves_new_connections_and_open_ones_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let (crt, key) = (dir.path().join("live.crt"), dir.path().join("live.key"));
    let first = certificate(dir.path(), "first");
    std::fs::copy(dir.path().join("first.crt"), &crt).unwrap();
    std::fs::copy(dir.path().join("first.key"), &key).unwrap();
    let server = start(TlsConfig::from_files(&crt, &key).unwrap()).await;

    let before = connect(server.addr, &first, &[b"http/1.1"]).await.unwrap();
    let mut open = http1(before).await;
    let answer = open
        .send_request(request(server.addr, "putObjects", put("before")))
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);

    // The files are replaced (as certbot or cert-manager do) and reloaded.
    let second = certificate(dir.path(), "second");
    std::fs::copy(dir.path().join("second.crt"), &crt).unwrap();
    std::fs::copy(dir.path().join("second.key"), &key).unwrap();
    server.tls.reload().unwrap();

    // New connections get the new certificate: a client trusting only the old one fails.
    assert!(connect(server.addr, &first, &[b"http/1.1"]).await.is_err());
    let after = connect(server.addr, &second, &[b"http/1.1"]).await.unwrap();
    let served = after.get_ref().1.peer_certificates().unwrap()[0].clone();
    assert_eq!(served, second);
    let mut fresh = http1(after).await;
    let answer = fresh
        .send_request(request(server.addr, "getObject", get("before")))
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);

    // The connection opened before the reload is still served.
    let answer = open
        .send_request(request(server.addr, "getObject", get("before")))
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);

    // A broken file on reload changes nothing: the second certificate stays.
    std::fs::write(&crt, "not a certificate").unwrap();
    let err = server.tls.reload().unwrap_err();
    assert!(matches!(err, TlsError::NoCertificate { .. }), "{err}");
    assert!(err.to_string().contains("live.crt"), "{err}");
    assert!(connect(server.addr, &second, &[b"http/1.1"]).await.is_ok());

    let _ = server.stop.send(());
    server.task.await.unwrap();
}

#[test]
fn unusable_files_are_refused_with_the_file_and_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    certificate(dir.path(), "a");
    certificate(dir.path(), "b");
    let crt = |n: &str| dir.path().join(format!("{n}.crt"));
    let key = |n: &str| dir.path().join(format!("{n}.key"));

    let missing = TlsConfig::from_files(dir.path().join("none.crt"), key("a")).unwrap_err();
    assert!(matches!(missing, TlsError::Read { .. }), "{missing}");
    assert!(missing.to_string().contains("none.crt"), "{missing}");
    // Key and certificate swapped: neither file holds what it should.
    let swapped = TlsConfig::from_files(key("a"), crt("a")).unwrap_err();
    assert!(
        matches!(swapped, TlsError::NoCertificate { .. }),
        "{swapped}"
    );
    let no_key = TlsConfig::from_files(crt("a"), crt("a")).unwrap_err();
    assert!(matches!(no_key, TlsError::NoKey { .. }), "{no_key}");
    // A key of another certificate.
    let mismatch = TlsConfig::from_files(crt("a"), key("b")).unwrap_err();
    assert!(matches!(mismatch, TlsError::Unusable { .. }), "{mismatch}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_and_garbage_on_the_tls_port_cost_only_their_connection() {
    let dir = tempfile::tempdir().unwrap();
    let cert = certificate(dir.path(), "a");
    let tls = TlsConfig::from_files(dir.path().join("a.crt"), dir.path().join("a.key")).unwrap();
    let server = start(tls).await;
    for bytes in [
        &b"POST /vss/getObject HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"[..],
        &[0x16, 0x03, 0x01, 0xff, 0xff, 0, 0, 0][..],
        &[0u8; 64][..],
    ] {
        let mut raw = TcpStream::connect(server.addr).await.unwrap();
        raw.write_all(bytes).await.unwrap();
        // The server closes it (a TLS alert at most): reading ends.
        let mut buf = Vec::new();
        let _ = tokio::io::AsyncReadExt::read_to_end(&mut raw, &mut buf).await;
        assert!(!buf.windows(4).any(|w| w == b"HTTP"), "{buf:?}");
    }
    // And the server still serves.
    let stream = connect(server.addr, &cert, &[b"h2"]).await.unwrap();
    let mut h2 = http2(stream).await;
    let answer = h2
        .send_request(request(server.addr, "putObjects", put("k")))
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    let _ = server.stop.send(());
    server.task.await.unwrap();
}
