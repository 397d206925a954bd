//! `vss-bench`: a load generator for VSS servers.
//!
//! ```text
//! vss-bench run --url http://127.0.0.1:8080/vss --workload put --connections 1,64 --duration 10s
//! vss-bench run --url http://A/vss --compare http://B/vss --workload get --rounds 3
//! vss-bench run --url sqlite:/tmp/bench.sqlite3 --compare http://127.0.0.1:8080/vss --workload create
//! vss-bench chart --input results.json --output docs/throughput.svg
//! vss-bench table --input results.json
//! ```

mod chart;
mod client;
mod report;
mod workload;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::client::Target;
use crate::report::{Comparison, Output};
use crate::workload::{Params, Workload};

#[derive(Parser)]
#[command(version, about = "Load generator for VSS servers")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Measures a workload against one server, or two alternately with --compare.
    Run(Box<RunArgs>),
    /// Draws throughput against connections from `run --json` outputs, as SVG.
    Chart {
        /// JSON files written by `run --json` (one or more after the flag).
        #[arg(long, required = true, num_args = 1..)]
        input: Vec<PathBuf>,
        /// The SVG file to write.
        #[arg(long)]
        output: PathBuf,
        /// The chart's title.
        #[arg(long, default_value = "VSS throughput")]
        title: String,
    },
    /// Prints a Markdown table of requests per second by connections from `run --json` outputs.
    Table {
        /// JSON files written by `run --json` (one or more after the flag).
        #[arg(long, required = true, num_args = 1..)]
        input: Vec<PathBuf>,
        /// Adds each point's 99th percentile latency (milliseconds) to its cell.
        #[arg(long)]
        p99: bool,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// Base URL of the server, e.g. http://127.0.0.1:8080/vss; or a store called
    /// in-process, without HTTP (the ceiling of a server on it): `memory:`, or
    /// `sqlite:PATH` with an optional `?synchronous=full`.
    #[arg(long)]
    url: String,
    /// Name for the server in reports (default: its URL).
    #[arg(long)]
    label: Option<String>,
    /// A header for every request, `Name: value` (repeatable), e.g. authorization.
    #[arg(long = "header")]
    headers: Vec<String>,
    /// The workload.
    #[arg(long, value_enum, default_value = "get")]
    workload: Workload,
    /// Concurrent connections; a comma-separated list runs each in turn.
    #[arg(long, value_delimiter = ',', default_value = "64")]
    connections: Vec<usize>,
    /// How long each measurement lasts (e.g. 10s, 500ms, 1m).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Stop after this many requests instead of after --duration.
    #[arg(long)]
    requests: Option<u64>,
    /// Unmeasured warm-up before each measurement.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    warmup: Duration,
    /// Bytes per written value.
    #[arg(long, default_value_t = 1024)]
    value_size: usize,
    /// Keys in the store that get, put, list and mixed work on.
    #[arg(long, default_value_t = 1000)]
    keys: usize,
    /// `put` writes fresh keys instead of overwriting existing ones.
    #[arg(long)]
    fresh: bool,
    /// A second server, run alternately with the first; prints rps(B)/rps(A).
    #[arg(long)]
    compare: Option<String>,
    /// Name for the second server in reports.
    #[arg(long)]
    compare_label: Option<String>,
    /// Headers for the second server (default: the same as the first).
    #[arg(long = "compare-header")]
    compare_headers: Vec<String>,
    /// Spread the connections over this many users (connection i is user
    /// i mod N), each with a JWT minted by --jwt-private-key; the server must
    /// accept that key's tokens (`--auth jwt`).
    #[arg(long, default_value_t = 1, requires = "jwt_private_key")]
    users: usize,
    /// A private key (PEM: RSA, EC P-256 or Ed25519) that mints the users' JWTs.
    #[arg(long)]
    jwt_private_key: Option<PathBuf>,
    /// Alternating rounds per server with --compare.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((text, "s"), |i| text.split_at(i));
    let n: f64 = number
        .parse()
        .map_err(|_| format!("invalid duration {text:?}"))?;
    let seconds = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => {
            return Err(format!(
                "invalid duration unit in {text:?} (use ms, s or m)"
            ))
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("invalid duration {text:?}: {e}"))
}

/// One JWT per user (`sub` = `bench-<run>-<i>`, valid for a day), signed with
/// the key in `path`. The run's random part keeps runs' users apart.
fn mint_tokens(path: &Path, users: usize) -> Result<Vec<String>, String> {
    let pem = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let signer = vss_auth::JwtSigner::from_private_pem(&pem)
        .map_err(|e| format!("--jwt-private-key {}: {e}", path.display()))?;
    let run = fastrand::u32(..);
    (0..users)
        .map(|i| {
            signer
                .token(
                    &format!("bench-{run:08x}-{i}"),
                    std::time::Duration::from_secs(86_400),
                )
                .map_err(|e| format!("minting a token: {e}"))
        })
        .collect()
}

async fn run(args: RunArgs) -> Result<Output, String> {
    let tokens = match &args.jwt_private_key {
        Some(path) => Some(mint_tokens(path, args.users.max(1))?),
        None => None,
    };
    let with_users = |target: Target| match &tokens {
        Some(tokens) => target.with_bearer_tokens(tokens),
        None => Ok(target),
    };
    let a = with_users(Target::parse(&args.url, &args.headers).await?)?;
    let a_label = args.label.clone().unwrap_or_else(|| args.url.clone());
    let b = match &args.compare {
        Some(url) => {
            let headers = if args.compare_headers.is_empty() {
                &args.headers
            } else {
                &args.compare_headers
            };
            let label = args.compare_label.clone().unwrap_or_else(|| url.clone());
            Some((with_users(Target::parse(url, headers).await?)?, label))
        }
        None => None,
    };
    let mut output = Output::default();
    for &connections in &args.connections {
        let params = Params {
            workload: args.workload,
            connections: connections.max(1),
            duration: args.duration,
            requests: args.requests,
            warmup: args.warmup,
            value_size: args.value_size,
            keys: args.keys.max(1),
            fresh: args.fresh,
        };
        let prepared_a = workload::prepare(&a, &params).await?;
        let prepared_b = match &b {
            Some((target, _)) => Some(workload::prepare(target, &params).await?),
            None => None,
        };
        let rounds = if b.is_some() { args.rounds.max(1) } else { 1 };
        let mut ratios = Vec::new();
        for _ in 0..rounds {
            let mut first = workload::run(&a, &params, &prepared_a).await?;
            first.server = a_label.clone();
            report(&args, &first);
            if let (Some((target, label)), Some(prepared)) = (&b, &prepared_b) {
                let mut second = workload::run(target, &params, prepared).await?;
                second.server = label.clone();
                report(&args, &second);
                ratios.push(second.rps / first.rps.max(f64::MIN_POSITIVE));
                output.runs.push(second);
            }
            output.runs.push(first);
        }
        if let Some((_, b_label)) = &b {
            let comparison = Comparison::new(
                workload::workload_name(args.workload),
                params.connections,
                &a_label,
                b_label,
                ratios,
            );
            if !args.json {
                println!("{}", comparison.line());
            }
            output.comparisons.push(comparison);
        }
    }
    Ok(output)
}

/// Reads the `run --json` outputs named on the command line.
fn read_outputs(paths: &[PathBuf]) -> Result<Vec<Output>, String> {
    paths
        .iter()
        .map(|path| {
            let text =
                std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            serde_json::from_str::<Output>(&text).map_err(|e| format!("{}: {e}", path.display()))
        })
        .collect()
}

fn report(args: &RunArgs, result: &report::RunResult) {
    if !args.json {
        println!("{}", result.line());
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => {
            let json = args.json;
            run(*args).await.and_then(|output| {
                if json {
                    let text = serde_json::to_string_pretty(&output).map_err(|e| e.to_string())?;
                    println!("{text}");
                }
                Ok(())
            })
        }
        Command::Chart {
            input,
            output,
            title,
        } => read_outputs(&input).and_then(|outputs| chart::draw(&outputs, &output, &title)),
        Command::Table { input, p99 } => read_outputs(&input).map(|outputs| {
            print!("{}", report::markdown_table(&outputs, p99));
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vss-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("3h").is_err());
        assert!(parse_duration("x").is_err());
    }
}
