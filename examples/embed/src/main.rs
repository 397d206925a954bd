//! Serves your own `KvStore` to VSS clients: here `OrderedMapBackend`, the
//! custom backend of `crates/vss-core/examples/custom_backend.rs`, through
//! vss-http, with JWT authentication (tokens signed by your issuer's key).
//!
//! ```text
//! cargo run -p vss-embed-example -- --jwt-public-key issuer.pub.pem --bind 127.0.0.1:8080
//! ```

// The example's own `main` and its conformance `subject` are not used here.
#[allow(dead_code)]
#[path = "../../../crates/vss-core/examples/custom_backend.rs"]
mod custom_backend;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use vss_http::{serve, HttpConfig, ServeOptions, VssService};

/// A VSS server on a custom backend.
#[derive(Parser)]
struct Args {
    /// PEM file of the public key(s) that verify the clients' JWTs.
    #[arg(long, env = "VSS_JWT_RSA_PEM_FILE")]
    jwt_public_key: PathBuf,
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, env = "VSS_BIND_ADDRESS", default_value = "127.0.0.1:8080")]
    bind: SocketAddr,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let authorizer = match std::fs::read_to_string(&args.jwt_public_key)
        .map_err(|e| e.to_string())
        .and_then(|pem| vss_auth::JwtAuthorizer::from_public_pems(&pem).map_err(|e| e.to_string()))
    {
        Ok(authorizer) => authorizer,
        Err(err) => {
            eprintln!("--jwt-public-key {}: {err}", args.jwt_public_key.display());
            return ExitCode::FAILURE;
        }
    };
    let store = Arc::new(custom_backend::OrderedMapBackend::default());
    let service = VssService::new(store, Arc::new(authorizer), HttpConfig::default());
    let listener = match tokio::net::TcpListener::bind(args.bind).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("--bind {}: {err}", args.bind);
            return ExitCode::FAILURE;
        }
    };
    match listener.local_addr() {
        Ok(addr) => println!("serving on http://{addr}/vss"),
        Err(err) => eprintln!("the listener's address: {err}"),
    }
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    serve(listener, service, stop, ServeOptions::default()).await;
    ExitCode::SUCCESS
}
