//! civex-cli: the `civex` command line. The gateway itself (`demo`,
//! `serve`), local tools (`certs`, `id`, `demo-data`, `import`, `keys`),
//! gRPC clients (`query`, `check`, `consent`, `catalogue`, `commitment`,
//! `agency`, `audit`, the web `console`) and the reference department server (`source`); and, as a
//! library for tests and benchmarks, what those are built from: mTLS
//! client channels, the development PKI, the demo data and the department server.
//! Only this crate installs a tracing subscriber.
//!
//! # Layout
//! - `demo`: `civex demo`, a gateway with embedded defaults on a fresh checkout.
//! - `tools`: commands that work on local files.
//! - `remote`: commands that call a running gateway over mTLS.
//! - `audit`: `civex audit verify|search|history|checkpoint|report|reindex`.
//! - `oversight`: `civex audit alerts|alert|watch|unwatch|watched|case`.
//! - `admin`: `civex agency …` and `civex certs csr`.
//! - `commitment`: `civex commitment record|list|show` (告知承诺).
//! - `correction`: `civex objection open|list|resolve`, `civex corrections` (校核纠错).
//! - `console`: `civex console`, the oversight console's web pages.
//! - `source`: `civex source`, serving one department's file.
//! - [`client`]: mTLS channels to a gateway or a department.
//! - [`pki`]: the development PKI written to `certs/`.
//! - [`demo_data`]: deterministic synthetic citizens, family by family.
//! - [`department_server`]: the reference `DepartmentSourceService`.

mod admin;
mod audit;
pub mod client;
mod commitment;
mod conn;
mod console;
mod correction;
mod demo;
pub mod demo_data;
pub mod department_server;
mod oversight;
pub mod pki;
mod remote;
mod source;
mod tools;
mod witness;

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "civex",
    version,
    about = "Consent-scoped mTLS gateway for verified citizen facts"
)]
struct Cli {
    /// Log as JSON lines instead of text.
    #[arg(long, global = true)]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a gateway with embedded defaults: dev PKI, synthetic citizens, demo agencies.
    Demo(demo::DemoArgs),
    /// Run a gateway from a TOML configuration file.
    Serve {
        #[arg(long, default_value = "civex.toml")]
        config: PathBuf,
    },
    /// Development PKI.
    #[command(subcommand)]
    Certs(tools::CertsCommand),
    /// Citizen ID numbers.
    #[command(subcommand)]
    Id(tools::IdCommand),
    /// Write deterministic synthetic citizens, one JSONL file per department.
    DemoData(tools::DemoDataArgs),
    /// Load a department's JSONL file into its embedded registry, all or nothing.
    Import(tools::ImportArgs),
    /// Serve one department's records as its own system would (DepartmentSourceService over mTLS).
    Source(source::SourceArgs),
    /// Print the gateway's public verifier key (never creates one).
    Keys {
        /// The gateway's data directory.
        #[arg(long, default_value = "civex-data")]
        data: PathBuf,
    },
    /// Run a reference witness (C2SP tlog-witness) that cosigns a gateway's checkpoints.
    Witness(witness::WitnessArgs),
    /// Ask a gateway for facts about a citizen (ExchangeService.Query).
    Query(remote::QueryArgs),
    /// Ask a yes/no eligibility question (ExchangeService.Check).
    Check(remote::CheckArgs),
    /// Register, withdraw and read consents (ConsentService).
    #[command(subcommand)]
    Consent(remote::ConsentCommand),
    /// List the attribute catalogue, predicates, purposes and the certificates they replace (ExchangeService.ListAttributes).
    Catalogue(remote::CatalogueArgs),
    /// Onboard, restrict, throttle and cut off agencies (AdminService).
    #[command(subcommand)]
    Agency(admin::AgencyCommand),
    /// Record citizens' commitments (告知承诺) and read how their later checks came out (CommitmentService).
    #[command(subcommand)]
    Commitment(commitment::CommitmentCommand),
    /// Objections to a fact (校核纠错): opened at a counter, resolved by the holding department's steward (CorrectionService).
    #[command(subcommand)]
    Objection(correction::ObjectionCommand),
    /// The corrections sent to your agency for facts it received (CorrectionService.ListCorrections).
    Corrections(correction::CorrectionsArgs),
    /// Verify, search and report on the audit log.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Serve the oversight console: web pages over the audit log, alerts and cases.
    Console(console::ConsoleArgs),
}

impl Command {
    /// Whether the command runs a server (which outlives its first reader).
    fn serves(&self) -> bool {
        matches!(
            self,
            Command::Demo(_) | Command::Serve { .. } | Command::Source(_) | Command::Console(_) | Command::Witness(_)
        )
    }
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // A server keeps serving when whoever read its banner goes away.
    if !cli.command.serves() {
        quiet_on_closed_pipe();
    }
    init_tracing(cli.log_json);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Demo(args) => demo::run(args).await,
        Command::Serve { config } => {
            let config = civex_gateway::config::Config::load(&config)?;
            serve(civex_gateway::Gateway::bind(config).await?).await
        }
        Command::Certs(tools::CertsCommand::Init { dir, force }) => tools::certs_init(&dir, force),
        Command::Certs(tools::CertsCommand::Csr(args)) => admin::csr(args),
        Command::Id(c) => tools::id(c),
        Command::DemoData(a) => tools::demo_data(a),
        Command::Import(a) => tools::import(a),
        Command::Keys { data } => tools::keys(&data),
        Command::Witness(a) => witness::run(a).await,
        Command::Query(a) => remote::query(a).await,
        Command::Check(a) => remote::check(a).await,
        Command::Consent(c) => remote::consent(c).await,
        Command::Catalogue(a) => remote::catalogue(a).await,
        Command::Audit(c) => audit::run(c).await,
        Command::Commitment(c) => commitment::run(c).await,
        Command::Objection(c) => correction::objection(c).await,
        Command::Corrections(a) => correction::corrections(a).await,
        Command::Source(a) => source::run(a).await,
        Command::Agency(c) => admin::run(c).await,
        Command::Console(a) => console::run(a).await,
    }
}

/// Output piped into a reader that stops early (`| head`) ends the command
/// quietly, as the shell's own tools do, instead of as a panic.
fn quiet_on_closed_pipe() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            // 128 + SIGPIPE, what a shell reports for a writer its reader left.
            std::process::exit(141);
        }
        report(info);
    }));
}

fn init_tracing(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CIVEX_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Serves until SIGINT or SIGTERM; SIGHUP reloads the server certificate.
pub(crate) async fn serve(gateway: civex_gateway::Gateway) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let reloader = gateway.reloader();
    let mut hangups = signal(SignalKind::hangup())?;
    let reload = tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            if let Err(e) = reloader.reload() {
                tracing::error!(cause = %e, "reload failed; keeping the current certificate");
            }
        }
    });
    let served = gateway.serve(shutdown_signal()).await;
    reload.abort();
    Ok(served?)
}

/// Resolves on SIGINT or SIGTERM.
pub(crate) async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(cause = %e, "cannot listen for SIGTERM; stopping on Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_command_line_is_well_formed() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
