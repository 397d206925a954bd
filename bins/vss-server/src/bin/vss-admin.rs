//! `vss-admin`: operations on a deployment's data, pointed at it with the
//! same configuration as vss-server (a config file path, flags, `VSS_*`).

use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use vss_core::admin::PageSize;
use vss_core::{AdminStore, UserToken};
use vss_server::{admin, archive, backend, BackendConfig, Config};

/// Operations on the data of a vss-rs deployment.
///
/// Commands on one deployment read its configuration exactly as vss-server
/// does: give the same arguments (a config file path, flags) after the
/// command's own options; `VSS_*` variables are read too. `copy` and
/// `verify` take two configuration files instead, and read no `VSS_*`
/// variables (they would apply to both sides).
#[derive(Parser, Debug)]
#[command(name = "vss-admin", version)]
struct Admin {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Copy every store from one deployment to another, exactly
    ///
    /// Keys, values, versions, listing order and global versions, any
    /// backend to any backend (those with an admin interface), a page at a
    /// time. It records where it is in a state file after every page: run
    /// the same command again after a crash or Ctrl-C and it resumes there.
    /// The destination must hold no data unless --merge is given.
    Copy(CopyArgs),
    /// Compare two deployments store by store; exit status 1 on any difference
    ///
    /// Every key's version, position (listing order) and value, every
    /// global version, every user's usage, and stores that only one side has.
    Verify(VerifyArgs),
    /// Write every store of a deployment to a file (format: vss_server::archive)
    ///
    /// Exactly (keys, values, versions, listing order, global versions),
    /// streamed a page at a time, gzip-compressed, with a SHA-256 of the
    /// whole in its last record. The file must not exist.
    Export(ExportArgs),
    /// Restore an export file into a deployment, exactly, on any backend
    ///
    /// Reads the whole file once to check it (structure, counts, checksum)
    /// before writing anything. The deployment must hold no data unless
    /// --merge is given (each store of the file then replaces the
    /// deployment's store of the same user and id).
    Import(ImportArgs),
    /// Users and what each stores (keys, bytes of keys plus values)
    Usage(UsageArgs),
    /// Totals of the deployment: users, keys, bytes
    Stats(StatsArgs),
    /// Delete every store of one user (account closure, legal requests)
    DeleteUser(DeleteUserArgs),
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
    /// Ask a running vss-server whether it is ready; exit status 0 if so, 1 if not
    ///
    /// GETs the readiness probe (`/ready`) over plain HTTP and succeeds on 200:
    /// the health check of the container image, where no curl is at hand.
    /// The cause of a failure (no answer, or the probe's own) goes to stderr.
    Probe(ProbeArgs),
}

#[derive(clap::Args, Debug)]
struct ProbeArgs {
    /// The probe's URL (on the main listener, or on `metrics_bind_address`'s)
    #[arg(default_value = "http://127.0.0.1:8080/ready")]
    url: String,
    /// Seconds to wait for the answer
    #[arg(long, default_value_t = 5)]
    timeout_secs: u64,
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

#[derive(clap::Args, Debug)]
struct Pair {
    /// The source deployment's config file (as vss-server reads it)
    #[arg(long, value_name = "FILE")]
    from: PathBuf,
    /// The destination deployment's config file
    #[arg(long, value_name = "FILE")]
    to: PathBuf,
    /// Most keys read and written at once
    #[arg(long, default_value_t = PageSize::default().items as u32,
          value_parser = clap::value_parser!(u32).range(1..))]
    page_keys: u32,
    /// Most bytes of values read and written at once (a single larger value
    /// still moves, alone)
    #[arg(long, default_value_t = PageSize::default().bytes)]
    page_bytes: usize,
}

impl Pair {
    fn page(&self) -> PageSize {
        PageSize {
            items: self.page_keys as usize,
            bytes: self.page_bytes,
        }
    }
}

#[derive(clap::Args, Debug)]
struct CopyArgs {
    #[command(flatten)]
    pair: Pair,
    /// Copy into a destination that holds data: each store of the source
    /// replaces the destination's store of the same user and id; the
    /// destination's other stores are kept
    #[arg(long)]
    merge: bool,
    /// Where the copy records how far it got [default: vss-admin-copy.state
    /// next to the destination's config file]
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,
    /// Draw no progress bar (there is none when stderr is not a terminal)
    #[arg(long)]
    no_progress: bool,
    /// Print the summary as JSON
    #[arg(long)]
    json: bool,
    /// For tests: abort (as a crash would) after this many pages
    #[arg(long, hide = true)]
    abort_after_pages: Option<u64>,
}

#[derive(clap::Args, Debug)]
struct VerifyArgs {
    #[command(flatten)]
    pair: Pair,
    /// Stop after this many differences
    #[arg(long, default_value_t = 20)]
    max_differences: usize,
    /// Print the report as JSON
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args, Debug)]
struct ExportArgs {
    /// The file to write (must not exist)
    #[arg(long, value_name = "FILE")]
    file: PathBuf,
    /// Print the summary as JSON
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(clap::Args, Debug)]
struct ImportArgs {
    /// The export file to read
    #[arg(long, value_name = "FILE")]
    file: PathBuf,
    /// Import into a deployment that holds data (each store of the file
    /// replaces the deployment's store of the same user and id)
    #[arg(long)]
    merge: bool,
    /// Only check the file (structure, counts, checksum); write nothing
    #[arg(long)]
    check: bool,
    /// Print the summary as JSON
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum SortBy {
    /// Most bytes first
    Bytes,
    /// Most keys first
    Keys,
    /// By user token
    User,
}

#[derive(clap::Args, Debug)]
struct UsageArgs {
    /// Order of the users
    #[arg(long, value_enum, default_value_t = SortBy::Bytes)]
    sort: SortBy,
    /// Show at most this many users
    #[arg(long)]
    limit: Option<usize>,
    /// Print JSON: an array of {"user", "keys", "bytes"}
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(clap::Args, Debug)]
struct StatsArgs {
    /// Print JSON
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(clap::Args, Debug)]
struct DeleteUserArgs {
    /// The user token whose data goes
    #[arg(long, value_name = "TOKEN")]
    user: String,
    /// Delete: without it, only say what would be deleted
    #[arg(long)]
    yes: bool,
    #[command(flatten)]
    server: ServerArgs,
}

fn main() -> ExitCode {
    let admin = Admin::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
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
    match runtime.block_on(run(admin.command)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("vss-admin: {err}");
            ExitCode::FAILURE
        }
    }
}

/// The configuration vss-server would read from `args` (and `VSS_*`).
fn server_config(args: &ServerArgs) -> Result<Config, String> {
    let argv = std::iter::once(OsString::from("vss-server")).chain(args.server.iter().cloned());
    Config::from_sources(argv, &|name| std::env::var(name).ok()).map_err(|e| e.to_string())
}

/// The configuration of the config file `path` alone.
fn file_config(path: &Path) -> Result<Config, String> {
    let argv = [
        OsString::from("vss-server"),
        OsString::from("--config"),
        path.into(),
    ];
    Config::from_sources(argv, &|_| None)
        .map_err(|e| format!("the config file {}: {e}", path.display()))
}

async fn open(config: &Config, side: &str) -> Result<Arc<dyn AdminStore>, String> {
    backend::open_admin(&config.backend)
        .await
        .map_err(|e| format!("{side}: {e}"))
}

async fn run(command: Command) -> Result<ExitCode, String> {
    match command {
        Command::Probe(args) => probe(&args).await,
        Command::ImportReference(ref args) | Command::ExportReference(ref args) => {
            let config = server_config(args)?;
            let BackendConfig::Postgres(settings) = &config.backend else {
                return Err(format!(
                    "the reference server's data lives in PostgreSQL, but this configuration \
                     picks the `{}` backend ({})",
                    config.backend.name(),
                    config.decisions.first().map_or("", String::as_str)
                ));
            };
            reference(matches!(command, Command::ImportReference(_)), settings).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Copy(args) => {
            let (from, to) = (file_config(&args.pair.from)?, file_config(&args.pair.to)?);
            let (source, destination) = (
                open(&from, "the source").await?,
                open(&to, "the destination").await?,
            );
            let state = args.state.clone().unwrap_or_else(|| {
                args.pair
                    .to
                    .parent()
                    .unwrap_or(Path::new("."))
                    .join("vss-admin-copy.state")
            });
            let options = admin::CopyOptions {
                merge: args.merge,
                state: state.clone(),
                page: args.pair.page(),
                progress: !args.no_progress && std::io::stderr().is_terminal(),
                abort_after_pages: args.abort_after_pages,
            };
            let from_name = args.pair.from.display().to_string();
            let to_name = args.pair.to.display().to_string();
            let summary =
                admin::copy(&*source, &*destination, &from_name, &to_name, &options).await;
            close(&*source).await;
            close(&*destination).await;
            let summary = summary?;
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string(&summary).map_err(|e| e.to_string())?
                );
            } else {
                println!(
                    "copied {} stores, {} keys, {} bytes from {from_name} ({}) to {to_name} ({}) \
                     in {:.1} s{} ({:.0} keys/s); state in {}",
                    summary.stores,
                    summary.keys,
                    summary.bytes,
                    from.backend.name(),
                    to.backend.name(),
                    summary.seconds,
                    if summary.resumed {
                        ", resuming an earlier run"
                    } else {
                        ""
                    },
                    summary.keys as f64 / summary.seconds.max(1e-9),
                    state.display()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify(args) => {
            let (from, to) = (file_config(&args.pair.from)?, file_config(&args.pair.to)?);
            let (a, b) = (
                open(&from, "the source").await?,
                open(&to, "the destination").await?,
            );
            let report =
                admin::verify(&*a, &*b, args.pair.page(), args.max_differences.max(1)).await;
            close(&*a).await;
            close(&*b).await;
            let report = report?;
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string(&report).map_err(|e| e.to_string())?
                );
            } else {
                for difference in &report.differences {
                    println!("DIFFERENT {difference}");
                }
                println!(
                    "{} stores, {} keys, {} bytes compared: {}",
                    report.stores,
                    report.keys,
                    report.bytes,
                    if report.differences.is_empty() {
                        "identical".to_string()
                    } else {
                        format!("{} difference(s)", report.differences.len())
                    }
                );
            }
            Ok(if report.differences.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Export(args) => {
            let store = open(&server_config(&args.server)?, "the deployment").await?;
            let started = std::time::Instant::now();
            let contents = archive::export(&*store, &args.file, PageSize::default()).await;
            close(&*store).await;
            report_contents(&contents?, "exported to", &args.file, started, args.json)
        }
        Command::Import(args) => {
            let started = std::time::Instant::now();
            if args.check {
                let contents = archive::check(&args.file)?;
                return report_contents(&contents, "checked", &args.file, started, args.json);
            }
            let store = open(&server_config(&args.server)?, "the deployment").await?;
            let result = async {
                if !args.merge {
                    if let Some(store) = admin::first_store_with_data(&*store).await? {
                        return Err(format!(
                            "the deployment holds data ({store}, and maybe more): import into \
                             an empty deployment, or pass --merge to replace each store the \
                             file has and keep the others"
                        ));
                    }
                }
                archive::import(&*store, &args.file, PageSize::default()).await
            }
            .await;
            close(&*store).await;
            report_contents(&result?, "imported from", &args.file, started, args.json)
        }
        Command::Usage(args) => {
            let store = open(&server_config(&args.server)?, "the deployment").await?;
            let users = admin::all_usage(&*store).await;
            close(&*store).await;
            let mut users = users?;
            match args.sort {
                SortBy::Bytes => {
                    users.sort_by(|a, b| b.1.bytes.cmp(&a.1.bytes).then(a.0.cmp(&b.0)))
                }
                SortBy::Keys => users.sort_by(|a, b| b.1.keys.cmp(&a.1.keys).then(a.0.cmp(&b.0))),
                SortBy::User => users.sort_by(|a, b| a.0.cmp(&b.0)),
            }
            users.truncate(args.limit.unwrap_or(usize::MAX));
            if args.json {
                let rows: Vec<serde_json::Value> = users
                    .iter()
                    .map(|(user, usage)| {
                        serde_json::json!({"user": user.as_str(), "keys": usage.keys, "bytes": usage.bytes})
                    })
                    .collect();
                println!("{}", serde_json::Value::Array(rows));
            } else {
                println!("{:>12} {:>16}  user", "keys", "bytes");
                for (user, usage) in &users {
                    println!("{:>12} {:>16}  {user}", usage.keys, usage.bytes);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Stats(args) => {
            let store = open(&server_config(&args.server)?, "the deployment").await?;
            let totals = admin::totals(&*store).await;
            close(&*store).await;
            let totals = totals?;
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string(&totals).map_err(|e| e.to_string())?
                );
            } else {
                println!(
                    "{} users, {} keys, {} bytes (keys plus values)",
                    totals.users, totals.keys, totals.bytes
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::DeleteUser(args) => {
            let user = UserToken::new(args.user.clone()).map_err(|e| format!("--user: {e}"))?;
            let store = open(&server_config(&args.server)?, "the deployment").await?;
            let result = delete_user(&*store, &user, args.yes).await;
            close(&*store).await;
            result
        }
    }
}

fn report_contents(
    contents: &archive::Contents,
    done: &str,
    file: &Path,
    started: std::time::Instant,
    json: bool,
) -> Result<ExitCode, String> {
    if json {
        println!(
            "{}",
            serde_json::to_string(contents).map_err(|e| e.to_string())?
        );
    } else {
        println!(
            "{} stores, {} keys, {} bytes {done} {} in {:.1} s",
            contents.stores,
            contents.keys,
            contents.bytes,
            file.display(),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn delete_user(
    store: &dyn AdminStore,
    user: &UserToken,
    yes: bool,
) -> Result<ExitCode, String> {
    let usage = store.usage(user).await.map_err(|e| {
        format!(
            "reading the usage of `{user}`: {}",
            vss_core::error_chain(&e)
        )
    })?;
    if !yes {
        println!(
            "would delete user `{user}`: {} keys, {} bytes; run again with --yes to delete",
            usage.keys, usage.bytes
        );
        return Ok(ExitCode::from(3));
    }
    store
        .delete_user(user)
        .await
        .map_err(|e| format!("deleting user `{user}`: {}", vss_core::error_chain(&e)))?;
    println!(
        "deleted user `{user}`: {} keys, {} bytes",
        usage.keys, usage.bytes
    );
    Ok(ExitCode::SUCCESS)
}

/// Finishes the store's pending work (SQLite checkpoints its WAL); a failure
/// is only told.
async fn close(store: &dyn AdminStore) {
    if let Err(err) = store.close().await {
        eprintln!(
            "vss-admin: warning: closing a backend: {}",
            vss_core::error_chain(&err)
        );
    }
}

#[cfg(feature = "postgres")]
async fn reference(
    import: bool,
    settings: &vss_server::backend::PostgresSettings,
) -> Result<(), String> {
    use vss_backend_postgres::{export_reference, import_reference};
    let pg = settings.backend_config().map_err(|e| e.to_string())?;
    let user = vss_http::NoopAuthorizer::DEFAULT_USER;
    let started = std::time::Instant::now();
    let (report, done) = if import {
        (
            import_reference(&pg, user).await,
            "imported from the reference server's vss_db into",
        )
    } else {
        (
            export_reference(&pg, user).await,
            "exported into the reference server's vss_db in",
        )
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
async fn reference(_: bool, _: &vss_server::backend::PostgresSettings) -> Result<(), String> {
    Err("this build has no PostgreSQL backend: rebuild with `--features postgres`".into())
}

/// `vss-admin probe`: 0 when `args.url` answers 200 within the timeout.
async fn probe(args: &ProbeArgs) -> Result<ExitCode, String> {
    use http_body_util::BodyExt;

    let url = &args.url;
    let uri: http::Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err(format!(
            "{url}: only http:// URLs (probe the server's own listener, from its host)"
        ));
    }
    let authority = uri
        .authority()
        .ok_or_else(|| format!("{url}: no host"))?
        .clone();
    let address = format!(
        "{}:{}",
        authority.host(),
        authority.port_u16().unwrap_or(80)
    );
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
    let exchange = async {
        let stream = tokio::net::TcpStream::connect(&address)
            .await
            .map_err(|e| format!("cannot connect to {address}: {e}"))?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| format!("{url}: {e}"))?;
        tokio::spawn(connection);
        let request = http::Request::get(path)
            .header(http::header::HOST, authority.as_str())
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .map_err(|e| format!("{url}: {e}"))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        Ok::<_, String>((status, body))
    };
    let (status, body) =
        tokio::time::timeout(std::time::Duration::from_secs(args.timeout_secs), exchange)
            .await
            .map_err(|_| format!("{url}: no answer within {} s", args.timeout_secs))??;
    let text = String::from_utf8_lossy(&body);
    let text: String = text.trim().chars().take(300).collect();
    if status == http::StatusCode::OK {
        println!("{url}: ready");
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("vss-admin: {url}: not ready: HTTP {status}: {text}");
        Ok(ExitCode::FAILURE)
    }
}
