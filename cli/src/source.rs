//! `civex source`: run the reference department server.

use std::{net::SocketAddr, path::PathBuf};

use anyhow::Context;
use civex_adapters::Department;
use clap::Args;

use crate::department_server::{DepartmentServer, SourceTls};

#[derive(Debug, Args)]
pub(super) struct SourceArgs {
    /// Department code: ps, edu, hrss, ca, housing, land or tax.
    #[arg(long)]
    department: Department,
    /// The department's records, in `civex import`'s JSONL format.
    #[arg(long)]
    data: PathBuf,
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Where the dev PKI is: `ca.pem` and `sources/<department>.pem|key`.
    #[arg(long, default_value = "certs")]
    certs: PathBuf,
    /// The source's certificate and key (PEM), instead of the dev PKI's.
    #[arg(long, requires = "key")]
    cert: Option<PathBuf>,
    #[arg(long, requires = "cert")]
    key: Option<PathBuf>,
    /// CA that clients (the gateway) must chain to.
    #[arg(long)]
    ca: Option<PathBuf>,
    /// The gateway's published CRL (`<data>/crl.der`), followed as it changes.
    #[arg(long)]
    crl: Option<PathBuf>,
    /// A gateway to answer, by the name in its certificate
    /// (`spiffe://civex/gateway/<name>`); repeat for several.
    #[arg(long = "gateway", default_value = crate::pki::DEV_GATEWAY_NAME)]
    gateways: Vec<String>,
    /// Stop when standard input closes: a parent (`civex demo --remote`)
    /// that dies, however it dies, takes its sources with it.
    #[arg(long)]
    until_stdin_closes: bool,
}

pub(super) async fn run(a: SourceArgs) -> anyhow::Result<()> {
    let code = a.department.code();
    let tls = SourceTls {
        ca: a.ca.unwrap_or_else(|| a.certs.join("ca.pem")),
        cert: a
            .cert
            .unwrap_or_else(|| a.certs.join("sources").join(format!("{code}.pem"))),
        key: a
            .key
            .unwrap_or_else(|| a.certs.join("sources").join(format!("{code}.key"))),
        crl: a.crl,
        gateways: a.gateways,
    };
    let source =
        DepartmentServer::open(a.department, &a.data).with_context(|| format!("cannot load {}", a.data.display()))?;
    let listener = tokio::net::TcpListener::bind(a.listen)
        .await
        .with_context(|| format!("cannot listen on {}", a.listen))?;
    // The first line of output names the address: `civex demo --remote` reads it.
    println!(
        "civex source {code} serving {} records on https://{}",
        source.len(),
        listener.local_addr()?
    );
    let parent_gone = async {
        if a.until_stdin_closes {
            let mut sink = tokio::io::sink();
            let _ = tokio::io::copy(&mut tokio::io::stdin(), &mut sink).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    let shutdown = async {
        tokio::select! {
            _ = super::shutdown_signal() => {}
            _ = parent_gone => {}
        }
    };
    crate::department_server::serve(source, &tls, listener, shutdown).await?;
    Ok(())
}
