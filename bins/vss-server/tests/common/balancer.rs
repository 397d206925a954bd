//! A round-robin HTTP balancer for the multi-instance tests: every request,
//! even on one kept-alive client connection, goes to the next instance in turn,
//! so consecutive calls of one client (a challenge and its answer, the pages
//! of one listing, each step of a sequence) land on different instances.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

/// A balancer on a loopback port; stops when dropped.
pub struct Balancer {
    /// Where clients reach it.
    pub addr: SocketAddr,
    served: Arc<Vec<AtomicUsize>>,
    task: tokio::task::JoinHandle<()>,
}

struct Shared {
    origins: Vec<String>,
    next: AtomicUsize,
    served: Arc<Vec<AtomicUsize>>,
    client: Client<HttpConnector, Incoming>,
}

impl Balancer {
    /// Balances over the instances whose base URLs are `urls` (their origin is used).
    pub async fn start(urls: &[String]) -> Balancer {
        let origins: Vec<String> = urls.iter().map(|url| origin(url)).collect();
        let served = Arc::new(
            (0..origins.len())
                .map(|_| AtomicUsize::new(0))
                .collect::<Vec<_>>(),
        );
        let shared = Arc::new(Shared {
            origins,
            next: AtomicUsize::new(0),
            served: served.clone(),
            client: Client::builder(TokioExecutor::new()).build_http(),
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let shared = shared.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| forward(shared.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Balancer { addr, served, task }
    }

    /// The balancer's URL for `path` (e.g. `/vss`).
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Requests each instance was given so far, in the order of the URLs.
    pub fn served(&self) -> Vec<usize> {
        self.served
            .iter()
            .map(|n| n.load(Ordering::SeqCst))
            .collect()
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `http://host:port` of a URL.
fn origin(url: &str) -> String {
    let rest = url.strip_prefix("http://").unwrap();
    format!("http://{}", rest.split('/').next().unwrap())
}

async fn forward(
    shared: Arc<Shared>,
    mut req: Request<Incoming>,
) -> Result<Response<Incoming>, hyper_util::client::legacy::Error> {
    let i = shared.next.fetch_add(1, Ordering::SeqCst) % shared.origins.len();
    shared.served[i].fetch_add(1, Ordering::SeqCst);
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    *req.uri_mut() = format!("{}{path}", shared.origins[i])
        .parse::<Uri>()
        .unwrap();
    // The client's Host header stays, as a proxy keeps it: callback URLs name the balancer.
    shared.client.request(req).await
}
