//! `vss-server`: see `vss-server --help` and CONFIG.md.

use std::io::IsTerminal;
use std::process::ExitCode;

use tracing_subscriber::fmt::writer::BoxMakeWriter;
use vss_server::config::LogFormat;
use vss_server::{Config, Server};

fn main() -> ExitCode {
    let config = match Config::load() {
        Ok(config) => config,
        Err(err) => return err.report("vss-server"),
    };
    if let Err(err) = init_logging(&config) {
        eprintln!("vss-server: {err}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("vss-server: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let server = Server::start(config).await?;
        // Scripts and tests read this line to learn the address (port 0 picks one).
        println!("vss-server listening on {}", server.url());
        server.serve(shutdown_signal()).await
    });
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %err, "vss-server failed");
            eprintln!("vss-server: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Logs to standard error, or appended to the configured log file, as text
/// or one JSON object per line.
fn init_logging(config: &Config) -> Result<(), String> {
    let writer = match &config.log_file {
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| {
                    let names = vss_server::config::setting("log_config.file")
                        .map_or_else(|| "log_config.file".to_string(), |s| s.names());
                    format!("cannot open the log file {} ({names}): {e}", path.display())
                })?;
            BoxMakeWriter::new(std::sync::Mutex::new(file))
        }
        None => BoxMakeWriter::new(std::io::stderr),
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log_filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logger = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match config.log_format {
        LogFormat::Json => logger
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .init(),
        LogFormat::Text => logger
            .with_ansi(config.log_file.is_none() && std::io::stderr().is_terminal())
            .init(),
    }
    Ok(())
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => tracing::info!("SIGINT received: shutting down"),
        _ = terminate => tracing::info!("SIGTERM received: shutting down"),
    }
}
