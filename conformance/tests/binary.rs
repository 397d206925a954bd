//! The `vss-conformance` binary against live servers: a correct one passes,
//! a broken one fails, and the last line is the plain summary.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on failure.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use http::HeaderMap;
use vss_core::proto::*;
use vss_core::{KvStore, MemoryStore, UserToken, VssError};
use vss_http::{serve, Authorizer, HttpConfig, NoopAuthorizer, ServeOptions, VssService};

async fn server(
    store: Arc<dyn KvStore>,
    authorizer: Arc<dyn Authorizer>,
) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let service = VssService::new(store, authorizer, HttpConfig::default());
    tokio::spawn(serve(listener, service, stopped, ServeOptions::default()));
    (addr, stop)
}

async fn run(args: &[&str]) -> (Option<i32>, String) {
    let run = common::run(args).await;
    (run.code, run.stdout)
}

fn summary(stdout: &str) -> (usize, usize) {
    let last = stdout.lines().last().unwrap();
    let mut words = last.split(", ");
    let passed = words
        .next()
        .unwrap()
        .strip_suffix(" passed")
        .unwrap()
        .parse()
        .unwrap();
    let failed = words
        .next()
        .unwrap()
        .strip_suffix(" failed")
        .unwrap()
        .parse()
        .unwrap();
    (passed, failed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_correct_server_passes() {
    let (addr, _stop) = server(
        Arc::new(MemoryStore::new()),
        Arc::new(NoopAuthorizer::default()),
    )
    .await;
    let (code, stdout) = run(&["--base-url", &format!("http://{addr}/vss")]).await;
    assert_eq!(code, Some(0), "{stdout}");
    let (passed, failed) = summary(&stdout);
    assert!(passed > 40, "{stdout}");
    assert_eq!(failed, 0);
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("PASS ")).count(),
        passed
    );
}

/// Loses every write's value: a store a wallet must never trust.
struct ForgetfulStore(MemoryStore);

#[async_trait]
impl KvStore for ForgetfulStore {
    async fn get(
        &self,
        user: &UserToken,
        req: GetObjectRequest,
    ) -> Result<GetObjectResponse, VssError> {
        self.0.get(user, req).await
    }
    async fn put(
        &self,
        user: &UserToken,
        mut req: PutObjectRequest,
    ) -> Result<PutObjectResponse, VssError> {
        for item in &mut req.transaction_items {
            item.value = bytes::Bytes::new();
        }
        self.0.put(user, req).await
    }
    async fn delete(
        &self,
        user: &UserToken,
        req: DeleteObjectRequest,
    ) -> Result<DeleteObjectResponse, VssError> {
        self.0.delete(user, req).await
    }
    async fn list_key_versions(
        &self,
        user: &UserToken,
        req: ListKeyVersionsRequest,
    ) -> Result<ListKeyVersionsResponse, VssError> {
        self.0.list_key_versions(user, req).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_server_fails() {
    let (addr, _stop) = server(
        Arc::new(ForgetfulStore(MemoryStore::new())),
        Arc::new(NoopAuthorizer::default()),
    )
    .await;
    let (code, stdout) = run(&["--base-url", &format!("http://{addr}/vss")]).await;
    assert_eq!(code, Some(1), "{stdout}");
    let (_, failed) = summary(&stdout);
    assert!(failed > 0, "{stdout}");
    assert!(stdout.lines().any(|l| l.starts_with("FAIL ")), "{stdout}");
}

/// Requires `X-Test-Key: sesame`, so only a client sending the header passes.
struct HeaderAuthorizer;

#[async_trait]
impl Authorizer for HeaderAuthorizer {
    async fn authorize(&self, headers: &HeaderMap) -> Result<UserToken, VssError> {
        match headers.get("x-test-key") {
            Some(v) if v == "sesame" => UserToken::new("header-user"),
            _ => Err(VssError::Auth("no key".into())),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_are_sent_with_every_request() {
    let (addr, _stop) = server(Arc::new(MemoryStore::new()), Arc::new(HeaderAuthorizer)).await;
    let url = format!("http://{addr}/vss");
    let (code, stdout) = run(&["--base-url", &url, "--header", "X-Test-Key: sesame"]).await;
    assert_eq!(code, Some(0), "{stdout}");
    let (code, stdout) = run(&["--base-url", &url]).await;
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains("AUTH") || stdout.contains("authentication"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_or_invalid_url_is_reported() {
    let common::Run { code, stderr, .. } =
        common::run(&["--base-url", "ftp://127.0.0.1/vss"]).await;
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("must start with http:// or https://"),
        "{stderr}"
    );
    // https to a server that speaks plain HTTP: the TLS handshake fails, every test fails.
    let (addr, _stop) = server(
        Arc::new(MemoryStore::new()),
        Arc::new(NoopAuthorizer::default()),
    )
    .await;
    let (code, stdout) = run(&["--base-url", &format!("https://{addr}/vss")]).await;
    assert_eq!(code, Some(1), "{stdout}");
    assert_eq!(summary(&stdout).0, 0, "{stdout}");
    // Nothing listens on a port that was just freed: every test fails, none passes.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (code, stdout) = run(&["--base-url", &format!("http://127.0.0.1:{port}/vss")]).await;
    assert_eq!(code, Some(1), "{stdout}");
    assert_eq!(summary(&stdout).0, 0);
}

/// Requires `X-Test-Key: sesame`; the user is the `Authorization` header's value.
struct KeyAndUserAuthorizer;

#[async_trait]
impl Authorizer for KeyAndUserAuthorizer {
    async fn authorize(&self, headers: &HeaderMap) -> Result<UserToken, VssError> {
        match (headers.get("x-test-key"), headers.get("authorization")) {
            (Some(key), Some(user)) if key == "sesame" => {
                UserToken::new(user.to_str().unwrap_or_default())
            }
            _ => Err(VssError::Auth("no key or no user".into())),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_second_credential_replaces_only_headers_of_its_names() {
    let (addr, _stop) = server(Arc::new(MemoryStore::new()), Arc::new(KeyAndUserAuthorizer)).await;
    let url = format!("http://{addr}/vss");
    // The gateway key goes with both users' requests; only Authorization differs.
    let args = [
        "--base-url",
        &url,
        "--header",
        "X-Test-Key: sesame",
        "--header",
        "Authorization: alice",
        "--header-b",
        "Authorization: bob",
        "--only",
        "isolated",
    ];
    let (code, stdout) = run(&args).await;
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.contains("PASS users_are_isolated"), "{stdout}");
    // --header-b repeats: a second user with its own gateway key too.
    let mut repeated = args.to_vec();
    repeated.extend(["--header-b", "X-Test-Key: sesame"]);
    let (code, stdout) = run(&repeated).await;
    assert_eq!(code, Some(0), "{stdout}");
    // A second user without the gateway key is refused: its header replaced the common one.
    let mut wrong = args.to_vec();
    wrong.extend(["--header-b", "X-Test-Key: wrong"]);
    let (code, stdout) = run(&wrong).await;
    assert_eq!(code, Some(1), "{stdout}");
    assert!(stdout.contains("FAIL users_are_isolated"), "{stdout}");
    assert!(stdout.contains("PASS stores_are_isolated"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minted_jwts_carry_the_audience_issuer_and_kid_a_server_requires() {
    let fixtures = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../crates/vss-auth/tests/fixtures/jwt"
    );
    let public = std::fs::read_to_string(format!("{fixtures}/es256-public.pem")).unwrap();
    let authorizer = vss_auth::JwtAuthorizer::new(vec![vss_auth::JwtKey::from_public_pem(&public)
        .unwrap()
        .with_kid("k1")])
    .unwrap()
    .with_audience("vss")
    .unwrap()
    .with_issuer("https://issuer.example")
    .unwrap();
    let (addr, _stop) = server(Arc::new(MemoryStore::new()), Arc::new(authorizer)).await;
    let url = format!("http://{addr}/vss");
    let key = format!("{fixtures}/es256-private.pem");
    let base = [
        "--base-url",
        &url,
        "--jwt-private-key",
        &key,
        "--only",
        "isolated",
    ];
    let (code, stdout) = run(&base).await;
    assert_eq!(code, Some(1), "{stdout}");
    assert!(stdout.contains("authentication failed"), "{stdout}");
    let mut claims = base.to_vec();
    claims.extend([
        "--jwt-audience",
        "vss",
        "--jwt-issuer",
        "https://issuer.example",
        "--jwt-kid",
        "k1",
    ]);
    let (code, stdout) = run(&claims).await;
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.contains("PASS users_are_isolated"), "{stdout}");
    // The claims need a key to sign with.
    let (code, _) = run(&["--base-url", &url, "--jwt-audience", "vss"]).await;
    assert_eq!(code, Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_out_of_range_are_refused_naming_the_flag() {
    for (flag, value) in [
        ("--max-page-size", "0"),
        ("--max-items-per-put", "0"),
        ("--max-items-per-put", "1001"),
        ("--default-page-size", "101"),
    ] {
        let run = common::run(&["--base-url", "http://127.0.0.1:1/vss", flag, value]).await;
        assert_eq!(run.code, Some(2), "{flag} {value}: {}", run.stderr);
        assert!(run.stderr.contains(flag), "{flag} {value}: {}", run.stderr);
        assert!(run.stdout.is_empty());
    }
    // --list shows what --only and --skip select, without a server.
    let listed = common::run(&["--list", "--only", "isolated", "--skip", "users"]).await;
    assert_eq!(listed.code, Some(0), "{}", listed.stderr);
    assert_eq!(
        listed.stdout.lines().collect::<Vec<_>>(),
        ["stores_are_isolated"]
    );
}
