//! Shared helpers: a server on a free loopback port, a plain HTTP client, raw sockets.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use vss_core::proto::ErrorResponse;
use vss_core::{KvStore, UserToken, VssError};
use vss_http::{
    serve, Authorizer, HttpConfig, NoopAuthorizer, ServeOptions, ServeOutcome, VssService,
};

pub struct TestServer {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<ServeOutcome>>,
}

impl TestServer {
    pub async fn start(
        store: Arc<dyn KvStore>,
        authorizer: Arc<dyn Authorizer>,
        config: HttpConfig,
    ) -> Self {
        Self::serving(VssService::new(store, authorizer, config)).await
    }

    /// Serves `service` (with whatever endpoints it has).
    pub async fn serving(service: VssService) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, service, stopped, ServeOptions::default()));
        TestServer {
            addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub async fn memory() -> Self {
        Self::start(
            Arc::new(vss_core::MemoryStore::new()),
            Arc::new(NoopAuthorizer::default()),
            HttpConfig::default(),
        )
        .await
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn stop(mut self) -> ServeOutcome {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap()
    }
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn error(&self) -> ErrorResponse {
        ErrorResponse::decode(self.body.clone()).expect("error body is an ErrorResponse")
    }

    pub fn has_protocol_header(&self) -> bool {
        self.headers
            .get("vss-protocol-version")
            .map(|v| v.as_bytes())
            == Some(b"0")
    }
}

/// One request over a fresh HTTP/1.1 client.
pub async fn send(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Answer {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut request = Request::builder().method(method).uri(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Full::new(body.into())).unwrap();
    let response = client.request(request).await.unwrap();
    let (parts, body) = response.into_parts();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes(),
    }
}

pub async fn post(url: &str, body: impl Into<Bytes>) -> Answer {
    send("POST", url, &[], body).await
}

pub async fn post_msg(url: &str, msg: &impl Message) -> Answer {
    post(url, msg.encode_to_vec()).await
}

/// Reads raw HTTP/1.1 responses from a socket: status, headers and body (by Content-Length).
pub struct RawConn {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl RawConn {
    pub async fn connect(addr: SocketAddr) -> Self {
        RawConn {
            stream: TcpStream::connect(addr).await.unwrap(),
            buf: Vec::new(),
        }
    }

    pub async fn write(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// The next response, or None when the server closed the connection first.
    /// Panics instead of hanging when nothing comes for 10 s.
    pub async fn read_response(&mut self) -> Option<Answer> {
        tokio::time::timeout(
            std::time::Duration::from_secs(10),
            self.read_response_inner(),
        )
        .await
        .expect("the server neither answered nor closed the connection")
    }

    async fn read_response_inner(&mut self) -> Option<Answer> {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut response = httparse::Response::new(&mut headers);
            if let httparse::Status::Complete(head_len) = response.parse(&self.buf).unwrap() {
                let status = StatusCode::from_u16(response.code.unwrap()).unwrap();
                let mut map = HeaderMap::new();
                for h in response.headers.iter() {
                    map.append(
                        http::HeaderName::from_bytes(h.name.as_bytes()).unwrap(),
                        http::HeaderValue::from_bytes(h.value).unwrap(),
                    );
                }
                let len: usize = map
                    .get("content-length")
                    .map(|v| v.to_str().unwrap().parse().unwrap())
                    .unwrap_or(0);
                while self.buf.len() < head_len + len {
                    if !self.fill().await {
                        return None;
                    }
                }
                let body = Bytes::copy_from_slice(&self.buf[head_len..head_len + len]);
                self.buf.drain(..head_len + len);
                return Some(Answer {
                    status,
                    headers: map,
                    body,
                });
            }
            if !self.fill().await {
                return None;
            }
        }
    }

    /// True once the server has closed the connection (EOF or reset) with nothing more to read.
    pub async fn closed_by_server(&mut self) -> bool {
        !self.fill().await && self.buf.is_empty()
    }

    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 8192];
        match self.stream.read(&mut chunk).await {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }
}

/// A raw POST request with a body and a correct Content-Length.
pub fn raw_post(path: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// The secret half of the test authorizer's tokens.
pub const TOKEN_SECRET: &str = "s3cr3t-4f1c2b";

/// The token [`TokenAuthorizer`] accepts for `user`.
pub fn token(user: &str) -> String {
    format!("{TOKEN_SECRET}.{user}")
}

/// A stand-in for a real authorizer (those live in vss-auth):
/// `Authorization: Bearer <secret>.<user>` is `user` when the secret is
/// [`TOKEN_SECRET`]; anything else is refused with AUTH.
pub struct TokenAuthorizer;

#[async_trait::async_trait]
impl Authorizer for TokenAuthorizer {
    async fn authorize(&self, headers: &HeaderMap) -> Result<UserToken, VssError> {
        match vss_http::bearer_token(headers)?.split_once('.') {
            Some((secret, user)) if secret == TOKEN_SECRET => UserToken::new(user),
            _ => Err(VssError::Auth("unknown token".into())),
        }
    }
}
