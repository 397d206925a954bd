//! `vss-admin`: operations on a deployment's data, pointed at it with the
//! same configuration as vss-server (a config file path, flags, `VSS_*`).

use std::ffi::OsString;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use vss_server::{BackendConfig, Config};

/// Operations on the data of a vss-rs deployment.
///
/// Each command reads the deployment's configuration exactly as vss-server
/// does: give the same arguments (a config file path, flags) after the
/// command; `VSS_*` variables are read too.
#[derive(Parser, Debug)]
#[command(name = "vss-admin", version)]
struct Admin {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Copy the reference server's data (its table vss_db) into this server's tables
    ///
    /// In the same PostgreSQL database: keys, values, versions, global versions
    /// and listing order, exactly, in one transaction. Safe while the reference
    /// still serves; run it again after stopping the reference (the final
    /// pass), then start vss-server.
    ImportReference(ServerArgs),
    /// The way back: copy this server's data into the reference server's table vss_db
    ///
    /// The table must exist (the reference's migrations create it). Exactly,
    /// listing order included, in one transaction. Stop every vss-server
    /// first; vss-server then refuses to start on the database until it is
    /// imported again.
    ExportReference(ServerArgs),
}

#[derive(clap::Args, Debug)]
struct ServerArgs {
    /// vss-server's arguments for the deployment: its config file and flags
    #[arg(
        value_name = "VSS-SERVER ARGS",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    server: Vec<OsString>,
}

fn main() -> ExitCode {
    let admin = Admin::parse();
    let (Command::ImportReference(args) | Command::ExportReference(args)) = &admin.command;
    let argv = std::iter::once(OsString::from("vss-server")).chain(args.server.iter().cloned());
    let config = match Config::from_sources(argv, &|name| std::env::var(name).ok()) {
        Ok(config) => config,
        Err(err) => return err.report("vss-admin"),
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&config.log_filter)
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("vss-admin: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&admin.command, &config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("vss-admin: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: &Command, config: &Config) -> Result<(), String> {
    let BackendConfig::Postgres(settings) = &config.backend else {
        return Err(format!(
            "the reference server's data lives in PostgreSQL, but this configuration picks the \
             `{}` backend ({})",
            config.backend.name(),
            config.decisions.first().map_or("", String::as_str)
        ));
    };
    reference(command, settings).await
}

#[cfg(feature = "postgres")]
async fn reference(
    command: &Command,
    settings: &vss_server::backend::PostgresSettings,
) -> Result<(), String> {
    use vss_backend_postgres::{export_reference, import_reference};
    let pg = settings.backend_config().map_err(|e| e.to_string())?;
    let user = vss_http::NoopAuthorizer::DEFAULT_USER;
    let started = std::time::Instant::now();
    let (report, done) = match command {
        Command::ImportReference(_) => (
            import_reference(&pg, user).await,
            "imported from the reference server's vss_db into",
        ),
        Command::ExportReference(_) => (
            export_reference(&pg, user).await,
            "exported into the reference server's vss_db in",
        ),
    };
    let report = report.map_err(|e| vss_core::error_chain(&e))?;
    for warning in &report.warnings {
        eprintln!("vss-admin: warning: {warning}");
    }
    println!(
        "{} keys, {} global versions, {} stores of {} users {done} database `{}` at {} in {:.1} s",
        report.keys,
        report.global_versions,
        report.stores,
        report.users,
        pg.database,
        pg.address,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

#[cfg(not(feature = "postgres"))]
async fn reference(_: &Command, _: &vss_server::backend::PostgresSettings) -> Result<(), String> {
    Err("this build has no PostgreSQL backend: rebuild with `--features postgres`".into())
}
