//! `civex witness`: a reference C2SP tlog-witness (DESIGN §12), with its
//! own key and small store, cosigning the checkpoints of the logs it is
//! told to trust only while each stays consistent with the last it saw.
//! `civex demo` starts one of its own with [`start`].

use std::{future::Future, net::SocketAddr, path::PathBuf, sync::Arc};

use anyhow::Context;
use civex_audit::{keys::Verifier, witness::Witness};
use clap::Args;

#[derive(Debug, Args)]
pub(super) struct WitnessArgs {
    /// Its cosigning key and its store of the last checkpoint cosigned per log (created on first start).
    #[arg(long, default_value = "civex-witness")]
    data: PathBuf,
    /// The name its cosignatures carry: a schema-less URL naming the witness.
    #[arg(long, default_value = "witness.localhost/civex")]
    name: String,
    /// Where it listens for `POST /add-checkpoint` (plain HTTP; port 0: a free one).
    #[arg(long, default_value = "127.0.0.1:7380")]
    listen: SocketAddr,
    /// A log to witness: its verifier key, or a file holding it (a
    /// gateway's `gateway.vkey`). The key's name is the log's origin. Repeat for several logs.
    #[arg(long = "log", required = true)]
    logs: Vec<String>,
}

pub(super) async fn run(args: WitnessArgs) -> anyhow::Result<()> {
    let logs = args
        .logs
        .iter()
        .map(|log| crate::tools::verifier_key(log))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let origins: Vec<String> = logs.iter().map(|l| l.name.clone()).collect();
    let (addr, key, serve) = start(&args.data, &args.name, args.listen, logs).await?;
    // A witness keeps the name its key was made with.
    let name = key.split('+').next().unwrap_or_default();
    if name != args.name {
        tracing::warn!(key = name, given = %args.name, "the witness's key was made under another name; it keeps that one");
    }
    println!("witness: http://{addr} cosigning as {name} for {}", origins.join(", "));
    println!("key: {key}");
    println!(
        "A gateway's civex.toml names it so:\n  [[audit.witnesses]]\n  url = \"http://{addr}\"\n  key = \"{key}\""
    );
    tokio::select! {
        served = serve => served,
        () = super::shutdown_signal() => Ok(()),
    }
}

/// Opens the witness in `data` trusting `logs`, binds `listen`: the address
/// bound, the witness's verifier key and the server to run.
pub(crate) async fn start(
    data: &std::path::Path,
    name: &str,
    listen: SocketAddr,
    logs: Vec<Verifier>,
) -> anyhow::Result<(SocketAddr, String, impl Future<Output = anyhow::Result<()>> + use<>)> {
    std::fs::create_dir_all(data).with_context(|| format!("cannot create {}", data.display()))?;
    let witness = Arc::new(Witness::open(data, name, logs)?);
    let key = witness.verifier_key();
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    let serve = civex_gateway::witness::server::serve(listener, witness);
    Ok((addr, key, async move { Ok(serve.await?) }))
}
