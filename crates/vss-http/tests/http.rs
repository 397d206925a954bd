//! The service over a real socket: statuses, headers, limits, pipelining, HTTP/2.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on failure.

mod common;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use common::*;
use http::StatusCode;
use prost::Message;
use vss_core::proto::*;
use vss_core::{KvStore, MemoryStore, UserToken, VssError, INTERNAL_ERROR_MESSAGE};
use vss_http::{HttpConfig, NoopAuthorizer};

fn put_req(store_id: &str, key: &str, version: i64, value: &[u8]) -> PutObjectRequest {
    PutObjectRequest {
        store_id: store_id.into(),
        global_version: None,
        transaction_items: vec![KeyValue {
            key: key.into(),
            version,
            value: Bytes::copy_from_slice(value),
        }],
        delete_items: vec![],
    }
}

fn get_req(store_id: &str, key: &str) -> GetObjectRequest {
    GetObjectRequest {
        store_id: store_id.into(),
        key: key.into(),
    }
}

fn code(answer: &Answer) -> ErrorCode {
    ErrorCode::try_from(answer.error().error_code).unwrap()
}

/// Answers every call with an internal error whose cause must never reach clients.
struct FailingStore;

#[async_trait]
impl KvStore for FailingStore {
    async fn get(&self, _: &UserToken, _: GetObjectRequest) -> Result<GetObjectResponse, VssError> {
        Err(VssError::internal(
            "SELECT value FROM vss_db WHERE path='/var/lib/secret'",
        ))
    }
    async fn put(&self, _: &UserToken, _: PutObjectRequest) -> Result<PutObjectResponse, VssError> {
        Err(VssError::internal(
            "SELECT value FROM vss_db WHERE path='/var/lib/secret'",
        ))
    }
    async fn delete(
        &self,
        _: &UserToken,
        _: DeleteObjectRequest,
    ) -> Result<DeleteObjectResponse, VssError> {
        Err(VssError::internal(
            "SELECT value FROM vss_db WHERE path='/var/lib/secret'",
        ))
    }
    async fn list_key_versions(
        &self,
        _: &UserToken,
        _: ListKeyVersionsRequest,
    ) -> Result<ListKeyVersionsResponse, VssError> {
        Err(VssError::internal(
            "SELECT value FROM vss_db WHERE path='/var/lib/secret'",
        ))
    }
}

/// Never answers: every call waits forever.
struct HangingStore;

#[async_trait]
impl KvStore for HangingStore {
    async fn get(&self, _: &UserToken, _: GetObjectRequest) -> Result<GetObjectResponse, VssError> {
        std::future::pending().await
    }
    async fn put(&self, _: &UserToken, _: PutObjectRequest) -> Result<PutObjectResponse, VssError> {
        std::future::pending().await
    }
    async fn delete(
        &self,
        _: &UserToken,
        _: DeleteObjectRequest,
    ) -> Result<DeleteObjectResponse, VssError> {
        std::future::pending().await
    }
    async fn list_key_versions(
        &self,
        _: &UserToken,
        _: ListKeyVersionsRequest,
    ) -> Result<ListKeyVersionsResponse, VssError> {
        std::future::pending().await
    }
}

#[tokio::test]
async fn put_get_list_delete_round_trip() {
    let server = TestServer::memory().await;
    let put = post_msg(&server.url("/vss/putObjects"), &put_req("s", "k", 0, b"v1")).await;
    assert_eq!(put.status, StatusCode::OK);
    assert!(put.has_protocol_header());
    assert_eq!(
        PutObjectResponse::decode(put.body).unwrap(),
        PutObjectResponse {}
    );

    let get = post_msg(&server.url("/vss/getObject"), &get_req("s", "k")).await;
    assert_eq!(get.status, StatusCode::OK);
    let kv = GetObjectResponse::decode(get.body).unwrap().value.unwrap();
    assert_eq!(
        (kv.key.as_str(), kv.version, &kv.value[..]),
        ("k", 1, &b"v1"[..])
    );

    let list_req = ListKeyVersionsRequest {
        store_id: "s".into(),
        key_prefix: None,
        page_size: None,
        page_token: None,
    };
    let list = post_msg(&server.url("/vss/listKeyVersions"), &list_req).await;
    assert_eq!(list.status, StatusCode::OK);
    let list = ListKeyVersionsResponse::decode(list.body).unwrap();
    assert_eq!(list.key_versions.len(), 1);
    assert_eq!(list.key_versions[0].key, "k");
    assert_eq!(list.next_page_token.as_deref(), Some(""));

    let delete = DeleteObjectRequest {
        store_id: "s".into(),
        key_value: Some(KeyValue {
            key: "k".into(),
            version: -1,
            value: Bytes::new(),
        }),
    };
    let delete = post_msg(&server.url("/vss/deleteObject"), &delete).await;
    assert_eq!(delete.status, StatusCode::OK);
    let gone = post_msg(&server.url("/vss/getObject"), &get_req("s", "k")).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(code(&gone), ErrorCode::NoSuchKeyException);
    let outcome = server.stop().await;
    assert_eq!(outcome.aborted, 0);
    assert!(outcome.connections >= 1);
}

#[tokio::test]
async fn every_status_carries_the_protocol_header_and_its_error_code() {
    let memory = TestServer::start(
        Arc::new(MemoryStore::new()),
        Arc::new(NoopAuthorizer::default()),
        HttpConfig::new().with_max_body_size(64),
    )
    .await;
    let authenticated = TestServer::start(
        Arc::new(MemoryStore::new()),
        Arc::new(TokenAuthorizer),
        HttpConfig::default(),
    )
    .await;
    let failing = TestServer::start(
        Arc::new(FailingStore),
        Arc::new(NoopAuthorizer::default()),
        HttpConfig::default(),
    )
    .await;
    let hanging = TestServer::start(
        Arc::new(HangingStore),
        Arc::new(NoopAuthorizer::default()),
        HttpConfig::new().with_request_timeout(Duration::from_millis(200)),
    )
    .await;

    assert_eq!(
        post_msg(&memory.url("/vss/putObjects"), &put_req("s", "k", 0, b"v"))
            .await
            .status,
        StatusCode::OK
    );
    let cases: Vec<(Answer, StatusCode, Option<ErrorCode>)> = vec![
        (
            post_msg(&memory.url("/vss/getObject"), &get_req("s", "k")).await,
            StatusCode::OK,
            None,
        ),
        (
            post_msg(&memory.url("/vss/getObject"), &get_req("s", "missing")).await,
            StatusCode::NOT_FOUND,
            Some(ErrorCode::NoSuchKeyException),
        ),
        (
            post_msg(
                &memory.url("/vss/putObjects"),
                &put_req("s", "k", 0, b"again"),
            )
            .await,
            StatusCode::CONFLICT,
            Some(ErrorCode::ConflictException),
        ),
        (
            post(
                &memory.url("/vss/putObjects"),
                Bytes::from_static(b"\xff\xff\xff"),
            )
            .await,
            StatusCode::BAD_REQUEST,
            Some(ErrorCode::InvalidRequestException),
        ),
        (
            post_msg(&memory.url("/vss/getObject"), &get_req("s", "")).await,
            StatusCode::BAD_REQUEST,
            Some(ErrorCode::InvalidRequestException),
        ),
        (
            post(&memory.url("/vss/putObjects"), vec![0u8; 65]).await,
            StatusCode::PAYLOAD_TOO_LARGE,
            Some(ErrorCode::InvalidRequestException),
        ),
        (
            post(&memory.url("/vss/nothing"), Bytes::new()).await,
            StatusCode::NOT_FOUND,
            Some(ErrorCode::InvalidRequestException),
        ),
        (
            send("GET", &memory.url("/vss/getObject"), &[], Bytes::new()).await,
            StatusCode::METHOD_NOT_ALLOWED,
            Some(ErrorCode::InvalidRequestException),
        ),
        (
            post_msg(&authenticated.url("/vss/getObject"), &get_req("s", "k")).await,
            StatusCode::UNAUTHORIZED,
            Some(ErrorCode::AuthException),
        ),
        (
            post_msg(&failing.url("/vss/getObject"), &get_req("s", "k")).await,
            StatusCode::INTERNAL_SERVER_ERROR,
            Some(ErrorCode::InternalServerException),
        ),
        (
            post_msg(&hanging.url("/vss/getObject"), &get_req("s", "k")).await,
            StatusCode::INTERNAL_SERVER_ERROR,
            Some(ErrorCode::InternalServerException),
        ),
    ];
    for (i, (answer, status, error_code)) in cases.iter().enumerate() {
        assert_eq!(answer.status, *status, "case {i}");
        assert!(
            answer.has_protocol_header(),
            "case {i}: no vss-protocol-version: 0 on {}",
            answer.status
        );
        if let Some(error_code) = error_code {
            assert_eq!(code(answer), *error_code, "case {i}");
        }
    }
    for server in [memory, authenticated, failing, hanging] {
        server.stop().await;
    }
}

/// Panics on every call: a bug in a backend must not take the server down.
struct PanickingStore;

#[async_trait]
impl KvStore for PanickingStore {
    async fn get(&self, _: &UserToken, _: GetObjectRequest) -> Result<GetObjectResponse, VssError> {
        panic!("backend bug")
    }
    async fn put(&self, _: &UserToken, _: PutObjectRequest) -> Result<PutObjectResponse, VssError> {
        Ok(PutObjectResponse {})
    }
    async fn delete(
        &self,
        _: &UserToken,
        _: DeleteObjectRequest,
    ) -> Result<DeleteObjectResponse, VssError> {
        panic!("backend bug")
    }
    async fn list_key_versions(
        &self,
        _: &UserToken,
        _: ListKeyVersionsRequest,
    ) -> Result<ListKeyVersionsResponse, VssError> {
        panic!("backend bug")
    }
}

#[tokio::test]
async fn a_panicking_store_gets_an_internal_error_and_the_server_keeps_serving() {
    let server = TestServer::start(
        Arc::new(PanickingStore),
        Arc::new(NoopAuthorizer::default()),
        HttpConfig::default(),
    )
    .await;
    let mut conn = RawConn::connect(server.addr).await;
    conn.write(&raw_post(
        "/vss/getObject",
        &get_req("s", "k").encode_to_vec(),
    ))
    .await;
    let answer = conn.read_response().await.unwrap();
    assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(answer.has_protocol_header());
    assert_eq!(answer.error().message, INTERNAL_ERROR_MESSAGE);
    // The same connection still answers.
    conn.write(&raw_post(
        "/vss/putObjects",
        &put_req("s", "k", 0, b"v").encode_to_vec(),
    ))
    .await;
    assert_eq!(conn.read_response().await.unwrap().status, StatusCode::OK);
    server.stop().await;
}

#[tokio::test]
async fn internal_errors_do_not_leak_their_cause() {
    let server = TestServer::start(
        Arc::new(FailingStore),
        Arc::new(NoopAuthorizer::default()),
        HttpConfig::default(),
    )
    .await;
    for (path, body) in [
        ("/vss/getObject", get_req("s", "k").encode_to_vec()),
        (
            "/vss/putObjects",
            put_req("s", "k", 0, b"v").encode_to_vec(),
        ),
    ] {
        let answer = post(&server.url(path), body).await;
        assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
        let error = answer.error();
        assert_eq!(error.message, INTERNAL_ERROR_MESSAGE);
        assert!(!String::from_utf8_lossy(&answer.body).contains("SELECT"));
        assert!(!String::from_utf8_lossy(&answer.body).contains("/var/lib"));
    }
    server.stop().await;
}

#[tokio::test]
async fn unknown_paths_and_methods_get_an_error_response() {
    let server = TestServer::memory().await;
    for path in [
        "/vss/nothing",
        "/vss/putObject",
        "/other/getObject",
        "/",
        "/vss/getObject/extra",
        "/vss",
    ] {
        let answer = post(&server.url(path), get_req("s", "k").encode_to_vec()).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{path}");
        assert!(answer.has_protocol_header(), "{path}");
        assert_eq!(code(&answer), ErrorCode::InvalidRequestException, "{path}");
    }
    for method in ["GET", "PUT", "DELETE", "PATCH"] {
        let answer = send(method, &server.url("/vss/getObject"), &[], Bytes::new()).await;
        assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
        assert_eq!(answer.headers["allow"], "POST");
        assert!(answer.has_protocol_header(), "{method}");
        assert_eq!(code(&answer), ErrorCode::InvalidRequestException);
    }
    // The query string is not part of the route.
    let answer = post(
        &server.url("/vss/getObject?x=1"),
        get_req("s", "k").encode_to_vec(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(code(&answer), ErrorCode::NoSuchKeyException);
    server.stop().await;
}

#[tokio::test]
async fn garbage_bodies_are_invalid_requests_and_never_break_the_server() {
    let server = TestServer::memory().await;
    let ops = ["getObject", "putObjects", "deleteObject", "listKeyVersions"];
    // Bytes that are not protobuf: a truncated varint, wire type 7, a length past the end.
    for garbage in [&b"\xff\xff\xff"[..], b"\x0f", b"\x0a\x05ab", b"\x80"] {
        for op in ops {
            let answer = post(
                &server.url(&format!("/vss/{op}")),
                Bytes::copy_from_slice(garbage),
            )
            .await;
            assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{op} {garbage:?}");
            assert_eq!(code(&answer), ErrorCode::InvalidRequestException);
            assert!(answer.has_protocol_header());
        }
    }
    // Random bytes: whatever they decode to, the answer is a protocol answer.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for round in 0..200 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let len = (seed % 64) as usize;
        let body: Vec<u8> = (0..len)
            .map(|i| (seed >> (i % 8 * 8)) as u8 ^ i as u8)
            .collect();
        let op = ops[round % ops.len()];
        let answer = post(&server.url(&format!("/vss/{op}")), body).await;
        assert!(answer.has_protocol_header());
        assert!(
            [
                StatusCode::OK,
                StatusCode::BAD_REQUEST,
                StatusCode::NOT_FOUND,
                StatusCode::CONFLICT
            ]
            .contains(&answer.status),
            "{op}: {}",
            answer.status
        );
    }
    let ok = post_msg(
        &server.url("/vss/putObjects"),
        &put_req("s", "still-serving", 0, b"v"),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK);
    server.stop().await;
}

#[tokio::test]
async fn a_declared_oversized_body_is_refused_before_it_is_sent() {
    let limit = 1024;
    let server = TestServer::start(
        Arc::new(MemoryStore::new()),
        Arc::new(NoopAuthorizer::default()),
        HttpConfig::new().with_max_body_size(limit),
    )
    .await;
    let mut conn = RawConn::connect(server.addr).await;
    // Only the headers: the server must answer from Content-Length alone.
    conn.write(
        format!(
            "POST /vss/putObjects HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
            limit + 1
        )
        .as_bytes(),
    )
    .await;
    let answer = conn
        .read_response()
        .await
        .expect("a response before the body was sent");
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(answer.has_protocol_header());
    assert_eq!(code(&answer), ErrorCode::InvalidRequestException);
    // That connection cannot be reused (its body was never read)...
    assert!(conn.closed_by_server().await);
    // ...but the server keeps serving, also a body of exactly the limit.
    let fits = put_req("s", "k", 0, &vec![7u8; limit - 20]);
    let len = fits.encoded_len();
    assert!(len <= limit);
    let ok = post_msg(&server.url("/vss/putObjects"), &fits).await;
    assert_eq!(ok.status, StatusCode::OK, "a {len}-byte body");
    server.stop().await;
}

#[tokio::test]
async fn a_streamed_oversized_body_is_refused_while_it_streams() {
    let limit = 1024;
    let server = TestServer::start(
        Arc::new(MemoryStore::new()),
        Arc::new(NoopAuthorizer::default()),
        HttpConfig::new().with_max_body_size(limit),
    )
    .await;
    let mut conn = RawConn::connect(server.addr).await;
    conn.write(b"POST /vss/putObjects HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        .await;
    // Chunks past the limit, without the final empty chunk: the server must not wait for the end.
    for _ in 0..3 {
        conn.write(format!("{:x}\r\n", 400).as_bytes()).await;
        conn.write(&[1u8; 400]).await;
        conn.write(b"\r\n").await;
    }
    let answer = conn
        .read_response()
        .await
        .expect("a response before the body ended");
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(answer.has_protocol_header());
    assert_eq!(code(&answer), ErrorCode::InvalidRequestException);
    let ok = post_msg(&server.url("/vss/putObjects"), &put_req("s", "k", 0, b"v")).await;
    assert_eq!(ok.status, StatusCode::OK);
    server.stop().await;
}

#[tokio::test]
async fn pipelined_requests_on_one_connection_are_answered_in_order() {
    let server = TestServer::memory().await;
    let mut conn = RawConn::connect(server.addr).await;
    let mut batch = raw_post(
        "/vss/putObjects",
        &put_req("s", "k", 0, b"pipelined").encode_to_vec(),
    );
    batch.extend(raw_post(
        "/vss/getObject",
        &get_req("s", "k").encode_to_vec(),
    ));
    batch.extend(raw_post(
        "/vss/getObject",
        &get_req("s", "missing").encode_to_vec(),
    ));
    batch.extend(raw_post(
        "/vss/putObjects",
        &put_req("s", "k", 0, b"again").encode_to_vec(),
    ));
    conn.write(&batch).await;
    let put = conn.read_response().await.unwrap();
    assert_eq!(put.status, StatusCode::OK);
    let get = conn.read_response().await.unwrap();
    assert_eq!(get.status, StatusCode::OK);
    let kv = GetObjectResponse::decode(get.body.clone())
        .unwrap()
        .value
        .unwrap();
    assert_eq!(&kv.value[..], b"pipelined");
    let missing = conn.read_response().await.unwrap();
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let conflict = conn.read_response().await.unwrap();
    assert_eq!(conflict.status, StatusCode::CONFLICT);
    for answer in [&put, &get, &missing, &conflict] {
        assert!(answer.has_protocol_header());
    }
    // Still open for more (keep-alive).
    conn.write(&raw_post(
        "/vss/getObject",
        &get_req("s", "k").encode_to_vec(),
    ))
    .await;
    assert_eq!(conn.read_response().await.unwrap().status, StatusCode::OK);
    server.stop().await;
}

#[tokio::test]
async fn http2_with_prior_knowledge_is_served() {
    use http_body_util::{BodyExt, Full};
    use hyper_util::rt::{TokioExecutor, TokioIo};

    let server = TestServer::memory().await;
    let stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    for (path, body, status) in [
        (
            "/vss/putObjects",
            put_req("s", "h2", 0, b"v").encode_to_vec(),
            StatusCode::OK,
        ),
        (
            "/vss/getObject",
            get_req("s", "h2").encode_to_vec(),
            StatusCode::OK,
        ),
        (
            "/vss/getObject",
            get_req("s", "none").encode_to_vec(),
            StatusCode::NOT_FOUND,
        ),
    ] {
        let request = http::Request::post(server.url(path))
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.status(), status);
        assert_eq!(response.headers()["vss-protocol-version"], "0");
        let _ = response.into_body().collect().await.unwrap();
    }
    server.stop().await;
}

#[tokio::test]
async fn a_server_under_a_base_path_serves_only_there() {
    let server = TestServer::start(
        Arc::new(MemoryStore::new()),
        Arc::new(NoopAuthorizer::default()),
        HttpConfig::new().with_base_path("/api/v1/").unwrap(),
    )
    .await;
    assert_eq!(
        post_msg(
            &server.url("/api/v1/putObjects"),
            &put_req("s", "k", 0, b"v")
        )
        .await
        .status,
        StatusCode::OK
    );
    assert_eq!(
        post_msg(&server.url("/vss/getObject"), &get_req("s", "k"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        code(&post_msg(&server.url("/vss/getObject"), &get_req("s", "k")).await),
        ErrorCode::InvalidRequestException
    );
    server.stop().await;
}

#[tokio::test]
async fn users_are_kept_apart_by_their_tokens() {
    let server = TestServer::start(
        Arc::new(MemoryStore::new()),
        Arc::new(TokenAuthorizer),
        HttpConfig::default(),
    )
    .await;
    let alice = format!("Bearer {}", token("alice"));
    let bob = format!("Bearer {}", token("bob"));
    let put = send(
        "POST",
        &server.url("/vss/putObjects"),
        &[("authorization", &alice)],
        put_req("s", "k", 0, b"alice's").encode_to_vec(),
    )
    .await;
    assert_eq!(put.status, StatusCode::OK);
    let as_alice = send(
        "POST",
        &server.url("/vss/getObject"),
        &[("authorization", &alice)],
        get_req("s", "k").encode_to_vec(),
    )
    .await;
    assert_eq!(as_alice.status, StatusCode::OK);
    let as_bob = send(
        "POST",
        &server.url("/vss/getObject"),
        &[("authorization", &bob)],
        get_req("s", "k").encode_to_vec(),
    )
    .await;
    assert_eq!(as_bob.status, StatusCode::NOT_FOUND);
    let refused = send(
        "POST",
        &server.url("/vss/getObject"),
        &[("authorization", "Bearer forged.alice")],
        get_req("s", "k").encode_to_vec(),
    )
    .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(code(&refused), ErrorCode::AuthException);
    assert!(refused.has_protocol_header());
    server.stop().await;
}

/// Answers every request with the reserved user, as a JWT authorizer would for a
/// token whose `sub` is that user's text (JSON carries control characters).
struct ReservedAuthorizer;

#[async_trait]
impl vss_http::Authorizer for ReservedAuthorizer {
    async fn authorize(&self, _: &http::HeaderMap) -> Result<UserToken, VssError> {
        UserToken::reserved("lnurl-auth")
    }
}

#[tokio::test]
async fn no_credential_can_name_a_reserved_user() {
    let store = Arc::new(MemoryStore::new());
    let reserved = UserToken::reserved("lnurl-auth").unwrap();
    store
        .put(&reserved, put_req("s", "k", 0, b"the server's own"))
        .await
        .unwrap();
    let server =
        TestServer::start(store, Arc::new(ReservedAuthorizer), HttpConfig::default()).await;
    let read = post_msg(&server.url("/vss/getObject"), &get_req("s", "k")).await;
    assert_eq!(read.status, StatusCode::UNAUTHORIZED);
    assert_eq!(code(&read), ErrorCode::AuthException);
    assert!(
        read.error().message.contains("reserved"),
        "{:?}",
        read.error()
    );
    server.stop().await;
}

/// Puts that never finish, counted while they run, with the deadline each saw.
#[derive(Default)]
struct GateStore {
    running: Arc<std::sync::atomic::AtomicUsize>,
    entered: tokio::sync::Notify,
    deadlines: std::sync::Mutex<Vec<Option<std::time::Instant>>>,
}

/// Counts one running put until dropped. Dropping it takes a while, as a
/// store's clean-up may: the request is not over before that is done.
struct Running(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for Running {
    fn drop(&mut self) {
        std::thread::sleep(Duration::from_millis(100));
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Puts wait forever (counted, see above); every other call as [`HangingStore`].
#[async_trait]
impl KvStore for GateStore {
    async fn get(
        &self,
        user: &UserToken,
        req: GetObjectRequest,
    ) -> Result<GetObjectResponse, VssError> {
        HangingStore.get(user, req).await
    }
    async fn put(&self, _: &UserToken, _: PutObjectRequest) -> Result<PutObjectResponse, VssError> {
        self.running
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let _running = Running(Arc::clone(&self.running));
        self.deadlines
            .lock()
            .unwrap()
            .push(vss_core::deadline::current());
        self.entered.notify_one();
        std::future::pending().await
    }
    async fn delete(
        &self,
        user: &UserToken,
        req: DeleteObjectRequest,
    ) -> Result<DeleteObjectResponse, VssError> {
        HangingStore.delete(user, req).await
    }
    async fn list_key_versions(
        &self,
        user: &UserToken,
        req: ListKeyVersionsRequest,
    ) -> Result<ListKeyVersionsResponse, VssError> {
        HangingStore.list_key_versions(user, req).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_is_given_a_deadline_before_the_request_timeout() {
    let store = Arc::new(GateStore::default());
    let timeout = Duration::from_secs(10);
    let server = TestServer::start(
        store.clone(),
        Arc::new(NoopAuthorizer::default()),
        HttpConfig::default().with_request_timeout(timeout),
    )
    .await;
    let sent = std::time::Instant::now();
    let url = server.url("/vss/putObjects");
    let put = tokio::spawn(async move { post_msg(&url, &put_req("s", "k", 0, b"v")).await });
    store.entered.notified().await;
    let deadline = store.deadlines.lock().unwrap()[0].expect("the store saw a deadline");
    // A fifth of the timeout, at most 2 s, before it.
    let expected = timeout - vss_http::STORE_DEADLINE_MAX_MARGIN;
    let given = deadline.duration_since(sent);
    assert!(
        given >= expected && given < expected + Duration::from_secs(1),
        "deadline {given:?} after sending, expected about {expected:?}"
    );
    put.abort();
    server.stop().await;
}

/// hyper runs each HTTP/2 request in a task of its own, outside the
/// connection's: when the grace runs out, serve must end those too before it
/// returns, or they race the store's close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_http2_request_runs_after_serve_returns() {
    use http_body_util::Full;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use std::sync::atomic::Ordering;

    let store = Arc::new(GateStore::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let options = vss_http::ServeOptions {
        shutdown_grace: Duration::from_millis(200),
        ..Default::default()
    };
    let service = vss_http::VssService::new(
        store.clone(),
        Arc::new(NoopAuthorizer::default()),
        HttpConfig::default(),
    );
    let serving = tokio::spawn(vss_http::serve(listener, service, stopped, options));

    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let request = http::Request::post(format!("http://{addr}/vss/putObjects"))
        .body(Full::new(Bytes::from(
            put_req("s", "k", 0, b"v").encode_to_vec(),
        )))
        .unwrap();
    tokio::spawn(sender.send_request(request));
    store.entered.notified().await;
    assert_eq!(store.running.load(Ordering::SeqCst), 1);

    stop.send(()).unwrap();
    let outcome = serving.await.unwrap();
    assert_eq!(outcome.aborted, 1, "{outcome:?}");
    assert_eq!(
        store.running.load(Ordering::SeqCst),
        0,
        "an HTTP/2 request still runs after serve returned"
    );
}
