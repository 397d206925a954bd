//! One persistent HTTP/1.1 connection speaking the VSS protocol.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST};
use http::{HeaderMap, Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use prost::Message;
use tokio::net::TcpStream;
use vss_core::proto::{ErrorCode, ErrorResponse};
use vss_core::protocol::Operation;

/// Where a server lives and how to talk to it.
#[derive(Debug, Clone)]
pub struct Target {
    /// `host:port` to connect to.
    pub authority: String,
    /// Base path, such as `/vss`, without a trailing slash.
    pub base_path: String,
    /// Extra headers sent with every request (for example `Authorization`).
    pub headers: HeaderMap,
    /// One `Authorization` value per user, when the run spreads its
    /// connections over several users; connection `i` is user `i % len`.
    pub users: Arc<Vec<HeaderValue>>,
}

impl Target {
    /// Parses a base URL such as `http://127.0.0.1:8080/vss` and `Name: value` headers.
    pub fn parse(url: &str, headers: &[String]) -> Result<Self, String> {
        let uri: Uri = url
            .parse()
            .map_err(|e| format!("invalid URL {url:?}: {e}"))?;
        if uri.scheme_str() != Some("http") {
            return Err(format!(
                "{url}: only http:// URLs are supported (benchmark on loopback)"
            ));
        }
        let authority = uri.authority().ok_or_else(|| format!("{url}: no host"))?;
        let port = authority.port_u16().unwrap_or(80);
        let mut map = HeaderMap::new();
        for header in headers {
            let (name, value) = header
                .split_once(':')
                .ok_or_else(|| format!("header {header:?} is not `Name: value`"))?;
            let name = HeaderName::try_from(name.trim()).map_err(|e| format!("{header:?}: {e}"))?;
            let value =
                HeaderValue::try_from(value.trim()).map_err(|e| format!("{header:?}: {e}"))?;
            map.append(name, value);
        }
        Ok(Target {
            authority: format!("{}:{port}", authority.host()),
            base_path: uri.path().trim_end_matches('/').to_string(),
            headers: map,
            users: Arc::default(),
        })
    }

    /// The same server, spreading connections over users who authenticate
    /// with these bearer tokens.
    pub fn with_bearer_tokens(mut self, tokens: &[String]) -> Result<Self, String> {
        let values = tokens
            .iter()
            .map(|token| HeaderValue::try_from(format!("Bearer {token}")))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("a minted token is not a header value: {e}"))?;
        self.users = Arc::new(values);
        Ok(self)
    }

    /// How many users the connections are spread over (1 without users).
    pub fn user_count(&self) -> usize {
        self.users.len().max(1)
    }

    /// The target as user `index` (modulo the users) sees it.
    pub fn as_user(&self, index: usize) -> Target {
        let mut target = self.clone();
        if let Some(value) = self.users.get(index % self.user_count()) {
            target.headers.insert(AUTHORIZATION, value.clone());
        }
        target
    }
}

/// What a failed call was.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum CallError {
    /// The server answered an ErrorResponse with this code.
    Protocol(String),
    /// The connection or HTTP exchange failed.
    Transport(String),
}

impl CallError {
    /// A short label for error counts.
    pub fn label(&self) -> String {
        match self {
            CallError::Protocol(code) => code.clone(),
            CallError::Transport(_) => "TRANSPORT".to_string(),
        }
    }
}

/// A keep-alive connection to one server.
pub struct Connection {
    sender: SendRequest<Full<Bytes>>,
    target: Target,
}

impl Connection {
    /// Opens a connection.
    pub async fn open(target: &Target) -> Result<Self, CallError> {
        let stream = tokio::time::timeout(
            Duration::from_secs(10),
            TcpStream::connect(&target.authority),
        )
        .await
        .map_err(|_| CallError::Transport("connect timed out".into()))?
        .map_err(|e| CallError::Transport(format!("connect: {e}")))?;
        let _ = stream.set_nodelay(true);
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| CallError::Transport(format!("handshake: {e}")))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Connection {
            sender,
            target: target.clone(),
        })
    }

    /// Sends one request and decodes the answer.
    pub async fn call<Req: Message, Resp: Message + Default>(
        &mut self,
        operation: Operation,
        request: &Req,
    ) -> Result<Resp, CallError> {
        let mut builder = Request::builder()
            .method(Method::POST)
            .uri(format!("{}/{operation}", self.target.base_path))
            .header(HOST, self.target.authority.as_str())
            .header(CONTENT_TYPE, "application/octet-stream");
        for (name, value) in &self.target.headers {
            builder = builder.header(name, value);
        }
        let req = builder
            .body(Full::new(Bytes::from(request.encode_to_vec())))
            .map_err(|e| CallError::Transport(format!("request: {e}")))?;
        self.sender
            .ready()
            .await
            .map_err(|e| CallError::Transport(format!("connection: {e}")))?;
        let resp = self
            .sender
            .send_request(req)
            .await
            .map_err(|e| CallError::Transport(format!("send: {e}")))?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| CallError::Transport(format!("body: {e}")))?
            .to_bytes();
        if status.is_success() {
            Resp::decode(body).map_err(|e| CallError::Transport(format!("decode: {e}")))
        } else {
            let code = ErrorResponse::decode(body)
                .ok()
                .and_then(|e| ErrorCode::try_from(e.error_code).ok())
                .map(|c| c.as_str_name().to_string())
                .unwrap_or_else(|| format!("HTTP_{}", status.as_u16()));
            Err(CallError::Protocol(code))
        }
    }
}
