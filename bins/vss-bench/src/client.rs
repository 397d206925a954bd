//! One persistent HTTP/1.1 connection speaking the VSS protocol, or a store
//! called in-process (the ceiling a server on that store can approach).

use std::fmt;
use std::path::PathBuf;
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
use vss_core::{KvStore, MemoryStore, UserToken};

/// A store the benchmark calls in-process, without HTTP or authentication.
#[derive(Clone)]
pub struct LocalStore {
    store: Arc<dyn KvStore>,
    name: String,
}

impl fmt::Debug for LocalStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl LocalStore {
    /// Opens `memory:` or `sqlite:PATH[?synchronous=full|normal]`; `None` for other URLs.
    async fn open(url: &str) -> Result<Option<Self>, String> {
        let store: Arc<dyn KvStore> = if url == "memory:" {
            Arc::new(MemoryStore::new())
        } else if let Some(rest) = url.strip_prefix("sqlite:") {
            let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
            if path.is_empty() {
                return Err(format!("{url}: no database path after sqlite:"));
            }
            let mut config = vss_backend_sqlite::SqliteConfig::new(PathBuf::from(path));
            for pair in query.split('&').filter(|p| !p.is_empty()) {
                config = match pair {
                    "synchronous=full" => config.synchronous(vss_backend_sqlite::Synchronous::Full),
                    "synchronous=normal" => {
                        config.synchronous(vss_backend_sqlite::Synchronous::Normal)
                    }
                    _ => {
                        return Err(format!(
                        "{url}: unknown option {pair:?} (synchronous=full or synchronous=normal)"
                    ))
                    }
                };
            }
            Arc::new(
                vss_backend_sqlite::SqliteStore::open(config)
                    .await
                    .map_err(|e| format!("{url}: {}", vss_core::error_chain(&e)))?,
            )
        } else {
            return Ok(None);
        };
        Ok(Some(LocalStore {
            store,
            name: url.to_string(),
        }))
    }
}

/// Where a server lives and how to talk to it.
#[derive(Debug, Clone)]
pub struct Target {
    /// The store itself when the run calls it in-process (`memory:`, `sqlite:PATH`).
    pub local: Option<LocalStore>,
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
    /// Parses a base URL such as `http://127.0.0.1:8080/vss` and `Name: value`
    /// headers, or opens an in-process store (`memory:`, `sqlite:PATH`).
    pub async fn parse(url: &str, headers: &[String]) -> Result<Self, String> {
        if let Some(local) = LocalStore::open(url).await? {
            return Ok(Target {
                local: Some(local),
                authority: String::new(),
                base_path: String::new(),
                headers: HeaderMap::new(),
                users: Arc::default(),
            });
        }
        let uri: Uri = url
            .parse()
            .map_err(|e| format!("invalid URL {url:?}: {e}"))?;
        if uri.scheme_str() != Some("http") {
            return Err(format!(
                "{url}: only http:// URLs (benchmark on loopback), memory: and sqlite:PATH are supported"
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
            local: None,
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

/// A keep-alive connection to one server, or a caller of an in-process store.
pub enum Connection {
    /// HTTP/1.1 to a server.
    Http {
        /// The connection's request half.
        sender: SendRequest<Full<Bytes>>,
        /// The server.
        target: Target,
    },
    /// Calls of an in-process store, as one user.
    Local {
        /// The store.
        store: Arc<dyn KvStore>,
        /// The user every call is made as.
        user: UserToken,
    },
}

/// The user of in-process calls (they have no credentials).
const LOCAL_USER: &str = "vss-bench";

impl Connection {
    /// Opens a connection.
    pub async fn open(target: &Target) -> Result<Self, CallError> {
        if let Some(local) = &target.local {
            let user = UserToken::new(LOCAL_USER)
                .map_err(|e| CallError::Transport(format!("user: {e}")))?;
            return Ok(Connection::Local {
                store: local.store.clone(),
                user,
            });
        }
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
        Ok(Connection::Http {
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
        let (sender, target) = match self {
            Connection::Http { sender, target } => (sender, target),
            Connection::Local { store, user } => {
                let body = Bytes::from(request.encode_to_vec());
                return match operation.call(store.as_ref(), user, body).await {
                    Ok(answer) => Resp::decode(answer.to_bytes())
                        .map_err(|e| CallError::Transport(format!("decode: {e}"))),
                    Err(e) => Err(CallError::Protocol(
                        e.error_code().as_str_name().to_string(),
                    )),
                };
            }
        };
        let mut builder = Request::builder()
            .method(Method::POST)
            .uri(format!("{}/{operation}", target.base_path))
            .header(HOST, target.authority.as_str())
            .header(CONTENT_TYPE, "application/octet-stream");
        for (name, value) in &target.headers {
            builder = builder.header(name, value);
        }
        let req = builder
            .body(Full::new(Bytes::from(request.encode_to_vec())))
            .map_err(|e| CallError::Transport(format!("request: {e}")))?;
        sender
            .ready()
            .await
            .map_err(|e| CallError::Transport(format!("connection: {e}")))?;
        let resp = sender
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
