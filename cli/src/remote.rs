//! Commands that call a running gateway over mTLS: `query`, `consent`, `catalogue`.

use std::{
    path::PathBuf,
    time::{Duration, SystemTime},
};

use anyhow::Context;
use civex_proto::v1::{
    CheckRequest, Consent, GetConsentRequest, GrantConsentRequest, ListAttributesRequest, ListConsentsRequest,
    QueryRequest, RevokeConsentRequest, consent_service_client::ConsentServiceClient,
    exchange_service_client::ExchangeServiceClient, fact,
};
use clap::{Args, Subcommand};
use tonic::transport::Channel;

use civex_gateway::{clock::timestamp, error::reason_of};

use crate::client::{self, ClientTls};

/// How to reach the gateway and who to be. Unset files default to the demo's
/// files for `--agency` under `--certs`.
#[derive(Debug, Args)]
pub(super) struct Conn {
    #[arg(long, default_value = "https://127.0.0.1:50051", env = "CIVEX_ENDPOINT")]
    endpoint: String,
    /// Act as this demo agency (selects `<certs>/agencies/<agency>.pem|key`).
    #[arg(long)]
    agency: Option<String>,
    #[arg(long, default_value = "certs")]
    certs: PathBuf,
    /// CA certificate (PEM) the gateway's certificate must chain to.
    #[arg(long)]
    ca: Option<PathBuf>,
    /// Client certificate (PEM).
    #[arg(long)]
    cert: Option<PathBuf>,
    /// Client private key (PEM).
    #[arg(long)]
    key: Option<PathBuf>,
}

impl Conn {
    /// A connection to `endpoint` as `agency` (or the command's default) with the demo files under `certs`.
    pub(super) fn new(endpoint: &str, agency: Option<String>, certs: PathBuf) -> Conn {
        Conn {
            endpoint: endpoint.to_owned(),
            agency,
            certs,
            ca: None,
            cert: None,
            key: None,
        }
    }

    pub(super) async fn channel(&self, default_agency: &str) -> anyhow::Result<Channel> {
        client::connect(&self.endpoint, &self.tls(default_agency)?)
            .await
            .with_context(|| format!("cannot connect to {}", self.endpoint))
    }

    /// A channel that connects on first use (and again after a failure).
    pub(super) fn lazy_channel(&self, default_agency: &str) -> anyhow::Result<Channel> {
        Ok(client::endpoint_for(&self.endpoint, &self.tls(default_agency)?)
            .with_context(|| format!("bad endpoint {}", self.endpoint))?
            .connect_lazy())
    }

    /// The PEM files of `--agency` (else `default_agency`), or those given one by one.
    fn tls(&self, default_agency: &str) -> anyhow::Result<ClientTls> {
        let agency = self.agency.as_deref().unwrap_or(default_agency);
        let (ca, cert, key) = ClientTls::demo_paths(&self.certs, agency);
        Ok(ClientTls::from_files(
            self.ca.as_ref().unwrap_or(&ca),
            self.cert.as_ref().unwrap_or(&cert),
            self.key.as_ref().unwrap_or(&key),
        )?)
    }
}

/// What every ExchangeService call names: whose data, why, under which consent, by whom.
#[derive(Debug, Args)]
pub(super) struct Asking {
    #[command(flatten)]
    conn: Conn,
    #[arg(long)]
    citizen: String,
    #[arg(long)]
    purpose: String,
    #[arg(long)]
    consent: String,
    /// Staff number of the official at the counter.
    #[arg(long, default_value = "")]
    operator: String,
    #[arg(long, default_value = "")]
    request_id: String,
}

#[derive(Debug, Args)]
pub(super) struct QueryArgs {
    #[command(flatten)]
    asking: Asking,
    /// Attribute names; repeat for several.
    #[arg(long = "attribute", required = true)]
    attributes: Vec<String>,
}

#[derive(Debug, Args)]
pub(super) struct CheckArgs {
    #[command(flatten)]
    asking: Asking,
    /// e.g. settlement.urban, settlement.join_kin, settlement.return_rural,
    /// residence_permit.apply, exam.accompanying_child.
    #[arg(long)]
    predicate: String,
    /// `name=value`, e.g. `division=530302`; repeat for several.
    #[arg(long = "param")]
    params: Vec<String>,
    /// The consent of a person the parameters name (e.g. the relative of
    /// `relative_citizen_id`) to the same check; repeat for several.
    #[arg(long = "related-consent")]
    related_consents: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub(super) enum ConsentCommand {
    /// Register a citizen's consent for an agency.
    Grant {
        #[command(flatten)]
        conn: Conn,
        #[arg(long)]
        citizen: String,
        /// Agency code that may use the consent.
        #[arg(long)]
        grantee: String,
        /// Attribute names; repeat for several.
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
        #[arg(long)]
        purpose: String,
        /// Days the consent stays valid.
        #[arg(long, default_value_t = 30)]
        days: u64,
        /// Uses at most (0 = unlimited).
        #[arg(long, default_value_t = 0)]
        max_uses: u32,
    },
    /// Withdraw a consent, effective immediately.
    Revoke {
        #[command(flatten)]
        conn: Conn,
        #[arg(long)]
        consent: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Show one consent.
    Get {
        #[command(flatten)]
        conn: Conn,
        #[arg(long)]
        consent: String,
    },
    /// List a citizen's consents.
    List {
        #[command(flatten)]
        conn: Conn,
        #[arg(long)]
        citizen: String,
    },
}

#[derive(Debug, Args)]
pub(super) struct CatalogueArgs {
    #[command(flatten)]
    conn: Conn,
}

/// Turns a status into an error that names the code and civex reason.
pub(super) fn rpc_error(status: tonic::Status) -> anyhow::Error {
    let reason = reason_of(&status).unwrap_or_default();
    anyhow::anyhow!("{:?} {reason}: {}", status.code(), status.message())
}

pub(super) async fn query(q: QueryArgs) -> anyhow::Result<()> {
    let a = q.asking;
    let mut client = ExchangeServiceClient::new(a.conn.channel("qujing-psb").await?);
    let response = client
        .query(QueryRequest {
            citizen_id: a.citizen,
            attributes: q.attributes,
            purpose: a.purpose,
            consent_id: a.consent,
            request_id: a.request_id,
            operator: a.operator,
        })
        .await
        .map_err(rpc_error)?
        .into_inner();
    for f in response.facts {
        let value = match f.value {
            Some(fact::Value::BoolValue(b)) => b.to_string(),
            Some(fact::Value::IntValue(i)) => i.to_string(),
            Some(fact::Value::TextValue(s)) | Some(fact::Value::DateValue(s)) => s,
            None => "(not recorded)".to_owned(),
        };
        println!("{} = {value}  [source {}]", f.attribute, f.source);
    }
    Ok(())
}

pub(super) async fn check(c: CheckArgs) -> anyhow::Result<()> {
    let a = c.asking;
    let params = c
        .params
        .iter()
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .with_context(|| format!("param {p:?} is not name=value"))
        })
        .collect::<anyhow::Result<_>>()?;
    let mut client = ExchangeServiceClient::new(a.conn.channel("qujing-psb").await?);
    let r = client
        .check(CheckRequest {
            citizen_id: a.citizen,
            predicate: c.predicate,
            params,
            purpose: a.purpose,
            consent_id: a.consent,
            request_id: a.request_id,
            operator: a.operator,
            related_consent_ids: c.related_consents,
        })
        .await
        .map_err(rpc_error)?
        .into_inner();
    println!(
        "{}  ({}; read {})",
        if r.satisfied { "SATISFIED" } else { "NOT SATISFIED" },
        r.basis,
        r.sources.join(",")
    );
    for reason in r.reasons {
        println!("  - {reason}");
    }
    Ok(())
}

fn print_consent(c: &Consent) {
    println!("consent_id: {}", c.consent_id);
    println!("citizen_id: {}", c.citizen_id);
    println!("grantee: {}", c.grantee);
    println!("scopes: {}", c.scopes.join(","));
    println!("purpose: {}", c.purpose);
    let time = |t: &Option<prost_types::Timestamp>| t.as_ref().map(ToString::to_string).unwrap_or_else(|| "-".into());
    println!("not_before: {}", time(&c.not_before));
    println!("not_after: {}", time(&c.not_after));
    println!(
        "uses: {} of {}",
        c.uses,
        if c.max_uses == 0 {
            "unlimited".to_owned()
        } else {
            c.max_uses.to_string()
        }
    );
    println!("revoked_at: {}", time(&c.revoked_at));
    println!("key_id: {}", c.key_id);
}

pub(super) async fn consent(command: ConsentCommand) -> anyhow::Result<()> {
    const REGISTRAR: &str = "qujing-portal";
    match command {
        ConsentCommand::Grant {
            conn,
            citizen,
            grantee,
            scopes,
            purpose,
            days,
            max_uses,
        } => {
            let mut client = ConsentServiceClient::new(conn.channel(REGISTRAR).await?);
            let not_after = SystemTime::now() + Duration::from_secs(days.saturating_mul(86_400));
            let consent = client
                .grant(GrantConsentRequest {
                    citizen_id: citizen,
                    grantee,
                    scopes,
                    purpose,
                    not_after: Some(timestamp(not_after)),
                    max_uses,
                })
                .await
                .map_err(rpc_error)?
                .into_inner();
            print_consent(&consent);
        }
        ConsentCommand::Revoke { conn, consent, reason } => {
            let mut client = ConsentServiceClient::new(conn.channel(REGISTRAR).await?);
            let c = client
                .revoke(RevokeConsentRequest {
                    consent_id: consent,
                    reason,
                })
                .await
                .map_err(rpc_error)?
                .into_inner();
            print_consent(&c);
        }
        ConsentCommand::Get { conn, consent } => {
            let mut client = ConsentServiceClient::new(conn.channel(REGISTRAR).await?);
            let c = client
                .get(GetConsentRequest { consent_id: consent })
                .await
                .map_err(rpc_error)?
                .into_inner();
            print_consent(&c);
        }
        ConsentCommand::List { conn, citizen } => {
            let mut client = ConsentServiceClient::new(conn.channel(REGISTRAR).await?);
            let list = client
                .list(ListConsentsRequest { citizen_id: citizen })
                .await
                .map_err(rpc_error)?
                .into_inner();
            for c in &list.consents {
                print_consent(c);
                println!();
            }
        }
    }
    Ok(())
}

pub(super) async fn catalogue(a: CatalogueArgs) -> anyhow::Result<()> {
    let mut client = ExchangeServiceClient::new(a.conn.channel("qujing-psb").await?);
    let c = client
        .list_attributes(ListAttributesRequest {})
        .await
        .map_err(rpc_error)?
        .into_inner();
    for a in c.attributes {
        let flag = if a.abolished { "  ABOLISHED" } else { "" };
        println!(
            "{:<36} {:<5} {:<13} {}{flag}",
            a.name, a.value_type, a.sharing, a.description
        );
    }
    println!();
    println!();
    for p in c.predicates {
        println!("{:<26} ({}) {}  {}", p.name, p.params.join(","), p.basis, p.description);
    }
    println!();
    for p in c.purposes {
        println!("{:<26} {}  {}", p.code, p.basis, p.description);
    }
    Ok(())
}
