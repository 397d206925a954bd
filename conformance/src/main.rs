//! `vss-conformance`: runs the VSS conformance suite against a live server.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use vss_conformance::HttpStore;
use vss_core::conformance::{self, Subject};
use vss_core::StoreLimits;

/// Runs the VSS conformance suite against a live server and prints a line per
/// test, then `N passed, M failed`. Exits non-zero when any test failed.
///
/// Tests work under fresh store ids, so a server with data on it is safe to test.
#[derive(Parser, Debug)]
#[command(name = "vss-conformance", version)]
struct Args {
    /// The server's base URL, e.g. http://127.0.0.1:8080/vss.
    #[arg(long, value_name = "URL")]
    base_url: String,

    /// A header sent with every request, e.g. 'Authorization: Bearer <jwt>'. Repeatable.
    #[arg(long = "header", short = 'H', value_name = "'NAME: VALUE'")]
    headers: Vec<String>,

    /// The most items the server accepts in one putObjects (when lower than the protocol's 1000).
    #[arg(long, value_name = "N")]
    max_items_per_put: Option<usize>,

    /// The server's largest listing page (when not the default 100).
    #[arg(long, value_name = "N")]
    max_page_size: Option<i32>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let store = match build_store(&args) {
        Ok(store) => store,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(2);
        }
    };
    let report = conformance::run_all(|| {
        let store = Arc::clone(&store);
        async move { Subject::single_user(store) }
    })
    .await;
    if report.failed() == 0 && report.passed() > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn build_store(args: &Args) -> Result<Arc<HttpStore>, vss_conformance::ClientConfigError> {
    let mut store = HttpStore::new(&args.base_url)?;
    for header in &args.headers {
        store = store.with_header(header)?;
    }
    let mut limits = StoreLimits::default();
    if let Some(n) = args.max_items_per_put {
        limits.max_items_per_put = n;
    }
    if let Some(n) = args.max_page_size {
        limits.max_page_size = n;
        limits.default_page_size = limits.default_page_size.min(n);
    }
    Ok(Arc::new(store.with_limits(limits)))
}
