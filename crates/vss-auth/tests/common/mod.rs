//! A VSS server on a free loopback port with the authorizers under test, and
//! plain HTTP requests with chosen headers.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use prost::Message;
use secp256k1::{Secp256k1, SecretKey};
use tokio::sync::oneshot;
use vss_auth::LnurlAuthIssuer;
use vss_core::proto::{ErrorCode, ErrorResponse};
use vss_core::MemoryStore;
use vss_http::{serve, Authorizer, HttpConfig, ServeOptions, VssService};

pub const RS256_PRIVATE: &str = include_str!("../fixtures/rs256-private.pem");
pub const RS256_PUBLIC: &str = include_str!("../fixtures/rs256-public.pem");
pub const OTHER_RS256_PRIVATE: &str = include_str!("../fixtures/other-rs256-private.pem");
pub const ISSUER_PRIVATE: &str = include_str!("../fixtures/issuer-es256-private.pem");

pub struct TestServer {
    pub port: u16,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl TestServer {
    /// Serves a fresh memory store; the issuer, if any, on `/lnurl-auth`.
    pub async fn start(
        authorizer: Arc<dyn Authorizer>,
        issuer: Option<Arc<LnurlAuthIssuer>>,
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut service = VssService::new(
            Arc::new(MemoryStore::new()),
            authorizer,
            HttpConfig::default(),
        );
        if let Some(issuer) = issuer {
            service = service.with_endpoint("/lnurl-auth", issuer).unwrap();
        }
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(serve(listener, service, stopped, ServeOptions::default()));
        TestServer {
            port,
            stop: Some(stop),
        }
    }

    /// The VSS base URL by name (`localhost`, as LNURL clients need a host name).
    pub fn vss_url(&self) -> String {
        format!("http://localhost:{}/vss", self.port)
    }

    pub fn lnurl_url(&self) -> String {
        format!("http://localhost:{}/lnurl-auth", self.port)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

pub struct Answer {
    pub status: StatusCode,
    pub body: Bytes,
}

impl Answer {
    pub fn error_code(&self) -> ErrorCode {
        ErrorResponse::decode(self.body.clone())
            .expect("an ErrorResponse")
            .error_code()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.body.to_vec()).unwrap()
    }
}

pub async fn request(method: &str, url: &str, auth: Option<&str>, body: Vec<u8>) -> Answer {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut builder = Request::builder().method(method).uri(url);
    if let Some(auth) = auth {
        builder = builder.header("authorization", auth);
    }
    let response = client
        .request(builder.body(Full::new(Bytes::from(body))).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Answer { status, body }
}

pub async fn get(url: &str) -> Answer {
    request("GET", url, None, Vec::new()).await
}

/// POSTs a protocol message to `{base}/{op}`.
pub async fn call(server: &TestServer, op: &str, auth: Option<&str>, msg: &impl Message) -> Answer {
    request(
        "POST",
        &server.url(&format!("/vss/{op}")),
        auth,
        msg.encode_to_vec(),
    )
    .await
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

pub fn mint(private_pem: &str, claims: serde_json::Value) -> String {
    let key = EncodingKey::from_rsa_pem(private_pem.as_bytes()).unwrap();
    jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &key).unwrap()
}

pub fn secret(byte: u8) -> SecretKey {
    SecretKey::from_slice(&[byte; 32]).unwrap()
}

pub fn pubkey_hex(key: &SecretKey) -> String {
    hex::encode(key.public_key(&Secp256k1::new()).serialize())
}

/// A signature header as `SigsAuthProvider` builds it, signed at `time`.
pub fn sigs_header(key: &SecretKey, time: u64) -> String {
    vss_auth::sign(key, time)
}

/// The DER signature of `k1` (hex) by `key`, in hex, as LNURL-auth wallets send it.
pub fn sign_k1(key: &SecretKey, k1_hex: &str) -> String {
    let k1: [u8; 32] = hex::decode(k1_hex).unwrap().try_into().unwrap();
    let sig = Secp256k1::new().sign_ecdsa(&secp256k1::Message::from_digest(k1), key);
    hex::encode(sig.serialize_der())
}

/// The `k1` of an LNURL-auth callback URL.
pub fn k1_of(url: &str) -> String {
    let query = url.split_once('?').unwrap().1;
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "k1")
        .unwrap()
        .1
        .to_string()
}
