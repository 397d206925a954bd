//! `vss-conformance`: runs the VSS conformance suite against a live server.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{ArgGroup, Parser, ValueEnum};
use vss_auth::JwtSigner;
use vss_conformance::report::{self, RunInfo};
use vss_conformance::{rule_names, run_suite, HttpStore, Selection};
use vss_core::{StoreLimits, PROTOCOL_MAX_ITEMS_PER_PUT};

/// Runs the VSS conformance suite against a live server and reports every
/// rule's verdict: by default a line per rule, then `N passed, M failed`.
/// Exits 0 when no rule failed (and one passed), 1 when any failed, 2 when
/// the settings are wrong or the report could not be written.
///
/// Rules work under fresh store ids, so a server with data on it is safe to
/// test. The isolation rules need two users: give a second credential
/// (`--header-b`), or let the runner mint users (`--jwt-private-key`, `--sigs`).
#[derive(Parser, Debug)]
#[command(name = "vss-conformance", version)]
#[command(group(ArgGroup::new("users").args(["header_b", "jwt_private_key", "sigs"])))]
struct Args {
    /// The server's base URL, e.g. http://127.0.0.1:8080/vss.
    #[arg(long, value_name = "URL", required_unless_present = "list")]
    base_url: Option<String>,

    /// A header sent with every request, e.g. 'Authorization: Bearer <jwt>'. Repeatable.
    #[arg(long = "header", short = 'H', value_name = "'NAME: VALUE'")]
    headers: Vec<String>,

    /// A second user's credential, e.g. 'Authorization: Bearer <another jwt>', sent by the
    /// second user of the isolation rules in place of the --header of that name. Repeatable.
    #[arg(long = "header-b", value_name = "'NAME: VALUE'")]
    header_b: Vec<String>,

    /// Mint a JWT for every user with this private key (PEM: RSA, EC P-256 or Ed25519), for a
    /// server that verifies its public key.
    #[arg(long, value_name = "PATH")]
    jwt_private_key: Option<PathBuf>,

    /// The `aud` claim of minted JWTs, for a server that requires an audience.
    #[arg(long, value_name = "AUDIENCE", requires = "jwt_private_key")]
    jwt_audience: Option<String>,

    /// The `iss` claim of minted JWTs, for a server that requires an issuer.
    #[arg(long, value_name = "ISSUER", requires = "jwt_private_key")]
    jwt_issuer: Option<String>,

    /// The `kid` header of minted JWTs, for a server whose keys are named.
    #[arg(long, value_name = "KID", requires = "jwt_private_key")]
    jwt_kid: Option<String>,

    /// Sign every request with signature auth (vss-client-ng's SigsAuthProvider), a fresh key per
    /// user, for a server that accepts signature auth.
    #[arg(long)]
    sigs: bool,

    /// Whether an answer without `vss-protocol-version: 0` fails every rule (as vss-client-ng 0.6
    /// and later refuse it). With false, only the rule
    /// replies_carry_the_protocol_version_header fails for it, and the others judge semantics
    /// (as vss-client-ng 0.4 and ldk-node 0.7 see the server).
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set)]
    require_protocol_header: bool,

    /// The report on stdout: text (a line per rule as it finishes, then the summary), json or
    /// junit (XML for CI systems; progress lines then go to stderr).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,

    /// Run only the rules whose name contains this. Repeatable.
    #[arg(long, value_name = "PATTERN")]
    only: Vec<String>,

    /// Skip the rules whose name contains this. Repeatable.
    #[arg(long, value_name = "PATTERN")]
    skip: Vec<String>,

    /// Print the name of every rule that would run (after --only and --skip) and exit.
    #[arg(long)]
    list: bool,

    /// The most items the server accepts in one putObjects (when lower than the protocol's 1000).
    #[arg(long, value_name = "N")]
    max_items_per_put: Option<usize>,

    /// The server's largest listing page (when not the protocol's 100).
    #[arg(long, value_name = "N")]
    max_page_size: Option<i32>,

    /// The server's page when a listing asks for no size (when not 100, or the --max-page-size
    /// below 100).
    #[arg(long, value_name = "N")]
    default_page_size: Option<i32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Text,
    Json,
    Junit,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    if args.list {
        return match Selection::new(args.only.clone(), args.skip.clone()) {
            Ok(selection) => {
                for name in rule_names().into_iter().filter(|n| selection.selects(n)) {
                    println!("{name}");
                }
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("error: {err}");
                ExitCode::from(2)
            }
        };
    }
    let (store, selection) = match settings(&args) {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(2);
        }
    };
    let started = Instant::now();
    let text = args.format == Format::Text;
    let outcomes = run_suite(&store, &selection, |outcome| {
        if text {
            println!("{}", report::line(outcome));
        } else {
            eprintln!("{}", report::line(outcome));
        }
    })
    .await;
    let info = RunInfo {
        base_url: store.base_url().to_string(),
        users: store.users_mode(),
        require_protocol_header: args.require_protocol_header,
        duration: started.elapsed(),
    };
    let rendered = match args.format {
        Format::Text => Ok(report::summary(&outcomes) + "\n"),
        Format::Json => Ok(report::json(&info, &outcomes)),
        Format::Junit => report::junit(&info, &outcomes),
    };
    let written = rendered.and_then(|out| {
        let mut stdout = std::io::stdout().lock();
        stdout
            .write_all(out.as_bytes())
            .and_then(|()| stdout.flush())
            .map_err(|e| format!("writing the report: {e}"))
    });
    if let Err(err) = written {
        eprintln!("error: {err}");
        return ExitCode::from(2);
    }
    let (passed, failed, _) = report::counts(&outcomes);
    if failed == 0 && passed > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn settings(args: &Args) -> Result<(HttpStore, Selection), String> {
    let selection =
        Selection::new(args.only.clone(), args.skip.clone()).map_err(|e| e.to_string())?;
    let base_url = args.base_url.as_deref().unwrap_or_default();
    let mut store = HttpStore::new(base_url)
        .map_err(|e| format!("--base-url: {e}"))?
        .with_protocol_header_required(args.require_protocol_header);
    for header in &args.headers {
        store = store
            .with_header(header)
            .map_err(|e| format!("--header: {e}"))?;
    }
    for header in &args.header_b {
        store = store
            .with_second_user_header(header)
            .map_err(|e| format!("--header-b: {e}"))?;
    }
    if let Some(path) = &args.jwt_private_key {
        let pem = std::fs::read_to_string(path)
            .map_err(|e| format!("--jwt-private-key {}: {e}", path.display()))?;
        let mut signer = JwtSigner::from_private_pem(&pem)
            .map_err(|e| format!("--jwt-private-key {}: {e}", path.display()))?;
        if let Some(audience) = &args.jwt_audience {
            signer = signer
                .with_audience(audience)
                .map_err(|e| format!("--jwt-audience: {e}"))?;
        }
        if let Some(issuer) = &args.jwt_issuer {
            signer = signer
                .with_issuer(issuer)
                .map_err(|e| format!("--jwt-issuer: {e}"))?;
        }
        if let Some(kid) = &args.jwt_kid {
            signer = signer.with_kid(kid);
        }
        store = store.with_jwt_signer(signer);
    }
    if args.sigs {
        store = store.with_signature_auth();
    }
    let mut limits = StoreLimits::default();
    if let Some(n) = args.max_items_per_put {
        if !(1..=PROTOCOL_MAX_ITEMS_PER_PUT).contains(&n) {
            return Err(format!(
                "--max-items-per-put {n} must be between 1 and the protocol's {PROTOCOL_MAX_ITEMS_PER_PUT}"
            ));
        }
        limits.max_items_per_put = n;
    }
    if let Some(n) = args.max_page_size {
        if n < 1 {
            return Err(format!("--max-page-size {n} must be at least 1"));
        }
        limits.max_page_size = n;
        limits.default_page_size = limits.default_page_size.min(n);
    }
    if let Some(n) = args.default_page_size {
        limits.default_page_size = n;
    }
    if limits.default_page_size < 1 || limits.default_page_size > limits.max_page_size {
        return Err(format!(
            "--default-page-size {} must be between 1 and the largest page, {} (--max-page-size)",
            limits.default_page_size, limits.max_page_size
        ));
    }
    Ok((store.with_limits(limits), selection))
}
