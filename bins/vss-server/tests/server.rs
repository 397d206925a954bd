//! Starting the server in-process: the authentication guard and the URL.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on failure.

mod common;

use common::*;
use vss_server::{AuthConfig, BackendConfig, Server, ServerError};

#[tokio::test]
async fn without_auth_only_loopback_addresses_are_accepted() {
    for public in ["0.0.0.0:0", "[::]:0", "192.0.2.1:0"] {
        let mut cfg = config(BackendConfig::Memory);
        cfg.bind_address = public.parse().unwrap();
        let err = Server::start(cfg).await.unwrap_err();
        assert!(
            matches!(err, ServerError::UnauthenticatedPublicBind(_)),
            "{public}: {err}"
        );
    }
    // Allowed explicitly, or with JWT, the guard lets the address through: binding is
    // tried (192.0.2.1 is a documentation address this machine does not have, so it fails).
    let mut allowed = config(BackendConfig::Memory);
    allowed.bind_address = "192.0.2.1:0".parse().unwrap();
    allowed.allow_unauthenticated = true;
    assert!(matches!(
        Server::start(allowed).await.unwrap_err(),
        ServerError::Bind { .. }
    ));
    let mut jwt = config(BackendConfig::Memory);
    jwt.bind_address = "192.0.2.1:0".parse().unwrap();
    jwt.auth = AuthConfig::jwt(PUBLIC_PEM);
    assert!(matches!(
        Server::start(jwt).await.unwrap_err(),
        ServerError::Bind { .. }
    ));
    // Loopback is fine without auth, on IPv4 and IPv6.
    for loopback in ["127.0.0.1:0", "[::1]:0"] {
        let mut cfg = config(BackendConfig::Memory);
        cfg.bind_address = loopback.parse().unwrap();
        match Server::start(cfg).await {
            Ok(server) => assert!(server.local_addr().ip().is_loopback()),
            // A machine without IPv6 loopback cannot bind [::1].
            Err(ServerError::Bind { .. }) if loopback.starts_with('[') => {}
            Err(err) => panic!("{loopback}: {err}"),
        }
    }
}

#[tokio::test]
async fn a_short_jwt_key_is_refused_at_start() {
    let mut cfg = config(BackendConfig::Memory);
    cfg.auth = AuthConfig::jwt(RSA1024_PUBLIC_PEM);
    let err = Server::start(cfg).await.unwrap_err();
    assert!(matches!(err, ServerError::Jwt(_)), "{err}");
}

#[tokio::test]
async fn the_url_has_the_bound_port_and_the_base_path() {
    let mut cfg = config(BackendConfig::Memory);
    cfg.http = cfg.http.with_base_path("/custom/").unwrap();
    let server = start(cfg).await;
    let port = server.addr.port();
    assert_ne!(port, 0);
    assert_eq!(server.url, format!("http://127.0.0.1:{port}/custom"));
    let outcome = server.stop().await;
    assert_eq!(outcome.aborted, 0);
}

#[tokio::test]
async fn run_serves_until_shutdown() {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(vss_server::run(config(BackendConfig::Memory), async move {
        let _ = stopped.await;
    }));
    stop.send(()).unwrap();
    let outcome = task.await.unwrap().unwrap();
    assert_eq!(outcome.connections, 0);
}
