//! `civex console`: the oversight console (DESIGN §14) for a running
//! gateway, with an auditor agency's certificate; `civex demo` starts one
//! of its own with [`start`].

use std::net::SocketAddr;

use anyhow::Context;
use civex_audit::keys::Verifier;
use civex_console::{Console, ConsoleConfig};
use clap::Args;
use tonic::transport::Channel;

use crate::conn::{Conn, Role};

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
    /// The gateway's verifier key: the key itself, a file holding it, or
    /// the gateway's data directory. Every checkpoint the console shows is checked with it.
    #[arg(long, default_value = "civex-data")]
    vkey: String,
}

pub(super) async fn run(args: ConsoleArgs) -> anyhow::Result<()> {
    let verifier = crate::tools::verifier_key(&args.vkey)?;
    let mut config = ConsoleConfig::new(args.listen, args.conn.lazy_channel(Role::Auditor)?, verifier);
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
