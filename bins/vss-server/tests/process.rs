//! The real binary as a child process: what it does at startup and at signals.

// The child-server helpers serve the SQLite tests only; other builds compile them unused.
#![cfg_attr(not(feature = "sqlite"), allow(unused_imports, dead_code))]
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on failure.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::child::{run_to_end, start, SERVER};
use vss_conformance::HttpStore;
use vss_core::proto::{GetObjectRequest, KeyValue, PutObjectRequest};
use vss_core::{KvStore, UserToken};

#[tokio::test]
async fn it_refuses_to_listen_on_all_interfaces_without_authentication() {
    for (args, env) in [
        (
            vec!["--bind-address", "0.0.0.0:0", "--backend", "memory"],
            vec![],
        ),
        (
            vec!["--backend", "memory"],
            vec![("VSS_BIND_ADDRESS", "0.0.0.0:0")],
        ),
        (
            vec!["--backend", "memory"],
            vec![("VSS_BIND_ADDRESS", "[::]:0")],
        ),
    ] {
        let (code, stdout, stderr) = run_to_end(SERVER, &args, &env).await;
        assert_eq!(code, Some(1), "{stderr}");
        assert!(stderr.contains("refusing to listen on"), "{stderr}");
        assert!(stderr.contains("--allow-unauthenticated"), "{stderr}");
        assert!(!stdout.contains("listening"), "{stdout}");
    }
}

#[tokio::test]
async fn a_bad_config_value_stops_startup_naming_it() {
    let (code, _, stderr) = run_to_end(SERVER, &[], &[("VSS_MAX_REQUEST_BODY_SIZE", "lots")]).await;
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains(
            "invalid value for VSS_MAX_REQUEST_BODY_SIZE / server_config.max_request_body_size"
        ),
        "{stderr}"
    );
    let (code, _, stderr) = run_to_end(SERVER, &["--bind-address", "everywhere"], &[]).await;
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("VSS_BIND_ADDRESS") && stderr.contains("--bind-address"),
        "{stderr}"
    );
    let (code, _, stderr) = run_to_end(SERVER, &["--no-such-flag"], &[]).await;
    assert_eq!(code, Some(2));
    assert!(stderr.contains("--no-such-flag"), "{stderr}");
}

#[tokio::test]
async fn help_lists_the_settings_and_their_variables() {
    let (code, stdout, _) = run_to_end(SERVER, &["--help"], &[]).await;
    assert_eq!(code, Some(0));
    for needle in [
        "--bind-address",
        "VSS_BIND_ADDRESS",
        "--max-request-body-size",
        "VSS_JWT_RSA_PEM_FILE",
        "--allow-unauthenticated",
        "--config",
    ] {
        assert!(stdout.contains(needle), "--help lacks {needle}:\n{stdout}");
    }
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn zero_configuration_serves_sqlite_under_vss_data_and_warns_that_auth_is_off() {
    let dir = tempfile::tempdir().unwrap();
    // Only the port differs from a real zero-configuration start (8080 may be taken here).
    let server = start(dir.path(), &["--bind-address", "127.0.0.1:0"], &[]).await;
    assert!(
        server.url.starts_with("http://127.0.0.1:") && server.url.ends_with("/vss"),
        "{}",
        server.url
    );
    let store = HttpStore::new(&server.url).unwrap();
    let user = UserToken::new("ignored").unwrap();
    store
        .get(
            &user,
            GetObjectRequest {
                store_id: "s".into(),
                key: "global_version".into(),
            },
        )
        .await
        .unwrap();
    assert!(dir.path().join("vss-data/vss.sqlite3").exists());
    let (code, stderr) = server.signal("TERM").await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("authentication is OFF"), "{stderr}");
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn sigterm_and_sigint_shut_down_gracefully_and_keep_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db/vss.sqlite3");
    let args = [
        "--bind-address",
        "127.0.0.1:0",
        "--auth",
        "none",
        "--sqlite-path",
        db.to_str().unwrap(),
    ];
    let user = UserToken::new("ignored").unwrap();
    let put = PutObjectRequest {
        store_id: "s".into(),
        global_version: Some(0),
        transaction_items: vec![KeyValue {
            key: "k".into(),
            version: 0,
            value: Bytes::from_static(b"kept"),
        }],
        delete_items: vec![],
    };

    let server = start(dir.path(), &args, &[]).await;
    let store = Arc::new(HttpStore::new(&server.url).unwrap());
    store.put(&user, put).await.unwrap();
    let (code, stderr) = server.signal("TERM").await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("SIGTERM received"), "{stderr}");
    assert!(stderr.contains("store closed"), "{stderr}");

    let server = start(dir.path(), &args, &[]).await;
    let store = HttpStore::new(&server.url).unwrap();
    let got = store
        .get(
            &user,
            GetObjectRequest {
                store_id: "s".into(),
                key: "k".into(),
            },
        )
        .await
        .unwrap()
        .value
        .unwrap();
    assert_eq!((got.version, &got.value[..]), (1, &b"kept"[..]));
    let global = store
        .get(
            &user,
            GetObjectRequest {
                store_id: "s".into(),
                key: "global_version".into(),
            },
        )
        .await
        .unwrap()
        .value
        .unwrap();
    assert_eq!(global.version, 1);
    let (code, stderr) = server.signal("INT").await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("SIGINT received"), "{stderr}");
    assert!(stderr.contains("store closed"), "{stderr}");
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn the_config_file_may_be_the_first_argument_and_the_log_goes_to_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("vss.log");
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[server_config]\nbind_address = \"127.0.0.1:0\"\nauth = \"none\"\n\
             [sqlite_config]\npath = \"{}\"\n[log_config]\nfile = \"{}\"\n",
            dir.path().join("vss.sqlite3").display(),
            log.display()
        ),
    )
    .unwrap();
    let server = start(dir.path(), &[config.to_str().unwrap()], &[]).await;
    let store = HttpStore::new(&server.url).unwrap();
    store
        .get(
            &UserToken::new("ignored").unwrap(),
            GetObjectRequest {
                store_id: "s".into(),
                key: "global_version".into(),
            },
        )
        .await
        .unwrap();
    let (code, stderr) = server.signal("TERM").await;
    assert_eq!(code, Some(0), "{stderr}");
    let logged = std::fs::read_to_string(&log).unwrap();
    for line in [
        "backend sqlite",
        "serving",
        "SIGTERM received",
        "store closed",
    ] {
        assert!(logged.contains(line), "the log file lacks {line}: {logged}");
        assert!(
            !stderr.contains(line),
            "standard error has {line}: {stderr}"
        );
    }
}

#[tokio::test]
async fn a_log_file_that_cannot_be_opened_stops_startup_naming_it() {
    let (code, stdout, stderr) = run_to_end(
        SERVER,
        &["--backend", "memory"],
        &[("VSS_LOG_FILE", "/nonexistent-dir/vss.log")],
    )
    .await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("VSS_LOG_FILE") && stderr.contains("/nonexistent-dir/vss.log"),
        "{stderr}"
    );
    assert!(!stdout.contains("listening"), "{stdout}");
}

/// A self-signed certificate for `localhost` as PEM files `NAME.crt` and `NAME.key` in `dir`.
fn certificate(dir: &std::path::Path, name: &str) -> rustls::pki_types::CertificateDer<'static> {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(dir.join(format!("{name}.crt")), made.cert.pem()).unwrap();
    std::fs::write(
        dir.join(format!("{name}.key")),
        made.signing_key.serialize_pem(),
    )
    .unwrap();
    made.cert.der().clone()
}

/// An HTTP/1.1 client over TLS to `addr`, trusting only `trusted`.
async fn https_client(
    addr: std::net::SocketAddr,
    trusted: &rustls::pki_types::CertificateDer<'static>,
) -> Result<hyper::client::conn::http1::SendRequest<http_body_util::Full<Bytes>>, std::io::Error> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trusted.clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(
            rustls::pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await?;
    let (sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    Ok(sender)
}

async fn ready(
    client: &mut hyper::client::conn::http1::SendRequest<http_body_util::Full<Bytes>>,
) -> u16 {
    let request = hyper::Request::get("https://localhost/ready")
        .body(http_body_util::Full::new(Bytes::new()))
        .unwrap();
    client
        .send_request(request)
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_is_served_and_sighup_reloads_the_certificate_without_dropping_connections() {
    let dir = tempfile::tempdir().unwrap();
    let (crt, key) = (dir.path().join("live.crt"), dir.path().join("live.key"));
    let first = certificate(dir.path(), "first");
    std::fs::copy(dir.path().join("first.crt"), &crt).unwrap();
    std::fs::copy(dir.path().join("first.key"), &key).unwrap();
    let server = start(
        dir.path(),
        &[
            "--bind-address",
            "127.0.0.1:0",
            "--auth",
            "none",
            "--backend",
            "memory",
        ],
        &[
            ("VSS_TLS_CERT_FILE", crt.to_str().unwrap()),
            ("VSS_TLS_KEY_FILE", key.to_str().unwrap()),
        ],
    )
    .await;
    assert!(
        server.url.starts_with("https://127.0.0.1:"),
        "{}",
        server.url
    );
    let addr = server.addr();
    let mut open = https_client(addr, &first).await.unwrap();
    assert_eq!(ready(&mut open).await, 200);

    let second = certificate(dir.path(), "second");
    std::fs::copy(dir.path().join("second.crt"), &crt).unwrap();
    std::fs::copy(dir.path().join("second.key"), &key).unwrap();
    let status = std::process::Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // The reload is asynchronous: wait until a new connection gets the new certificate.
    let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut fresh = loop {
        if let Ok(client) = https_client(addr, &second).await {
            break client;
        }
        assert!(
            std::time::Instant::now() < until,
            "SIGHUP did not reload the certificate"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(ready(&mut fresh).await, 200);
    assert!(
        https_client(addr, &first).await.is_err(),
        "the old certificate is still served"
    );
    // The connection from before the reload is still served.
    assert_eq!(ready(&mut open).await, 200);

    let (code, stderr) = server.signal("TERM").await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("TLS certificate reloaded"), "{stderr}");
}

#[tokio::test]
async fn a_tls_file_that_cannot_be_used_stops_startup_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    certificate(dir.path(), "a");
    let (crt, key) = (dir.path().join("a.crt"), dir.path().join("a.key"));
    // Only one of the two.
    let (code, _, stderr) = run_to_end(
        SERVER,
        &["--bind-address", "127.0.0.1:0", "--auth", "none"],
        &[("VSS_TLS_CERT_FILE", crt.to_str().unwrap())],
    )
    .await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("VSS_TLS_CERT_FILE") && stderr.contains("VSS_TLS_KEY_FILE"),
        "{stderr}"
    );
    // The key where the certificate belongs.
    let (code, _, stderr) = run_to_end(
        SERVER,
        &[
            "--bind-address",
            "127.0.0.1:0",
            "--auth",
            "none",
            "--backend",
            "memory",
        ],
        &[
            ("VSS_TLS_CERT_FILE", key.to_str().unwrap()),
            ("VSS_TLS_KEY_FILE", key.to_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("VSS_TLS_CERT_FILE")
            && stderr.contains("a.key")
            && stderr.contains("no PEM certificate"),
        "{stderr}"
    );
}
