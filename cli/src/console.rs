//! `civex console`: the oversight console (DESIGN §14) for a running
//! gateway, with an auditor agency's certificate; `civex demo` starts one
//! of its own with [`start`].

use std::{net::SocketAddr, path::PathBuf};

use anyhow::Context;
use civex_audit::keys::{VERIFIER_KEY_FILE, Verifier};
use civex_console::{Console, ConsoleConfig};
use clap::Args;
use tonic::transport::Channel;

use crate::remote::Conn;

/// The demo's auditor agency, whose certificate the console calls with.
pub(crate) const AUDITOR: &str = "qujing-audit";

#[derive(Debug, Args)]
pub(super) struct ConsoleArgs {
    #[command(flatten)]
    conn: Conn,
    /// Where the console listens (port 0: a free one).
    #[arg(long, default_value = "127.0.0.1:8443")]
    listen: SocketAddr,
    /// Listen on an address other than loopback. The console speaks plain
    /// HTTP: put it behind a proxy that terminates TLS.
    #[arg(long)]
    allow_remote: bool,
    /// The gateway's verifier key file (as `civex keys` prints it):
    /// every checkpoint the console shows is checked with it.
    #[arg(long)]
    vkey: Option<PathBuf>,
    /// The gateway's data directory, for its verifier key when `--vkey` is not given.
    #[arg(long, default_value = "civex-data")]
    data: PathBuf,
}

pub(super) async fn run(args: ConsoleArgs) -> anyhow::Result<()> {
    let path = args.vkey.unwrap_or_else(|| args.data.join(VERIFIER_KEY_FILE));
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "cannot read the gateway's verifier key {} (give --vkey FILE)",
            path.display()
        )
    })?;
    let verifier = Verifier::parse(&text).with_context(|| format!("{} is not a verifier key", path.display()))?;
    let mut config = ConsoleConfig::new(args.listen, args.conn.lazy_channel(AUDITOR)?, verifier);
    config.allow_remote = args.allow_remote;
    let console = Console::bind(config).await?;
    console.serve(super::shutdown_signal()).await?;
    Ok(())
}

/// Binds a console for the demo; the caller serves it.
pub(crate) async fn start(listen: SocketAddr, channel: Channel, verifier_key: &str) -> anyhow::Result<Console> {
    let verifier = Verifier::parse(verifier_key).context("the gateway's own verifier key does not parse")?;
    Ok(Console::bind(ConsoleConfig::new(listen, channel, verifier)).await?)
}
