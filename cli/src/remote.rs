//! Commands that call a running gateway over mTLS: `query`, `consent`, `catalogue`.

use std::time::{Duration, SystemTime};

use anyhow::Context;
use civex_gateway::clock::timestamp;
use civex_proto::v1::{
    Catalogue, CertificateStatus, CheckRequest, Consent, GetConsentRequest, GrantConsentRequest, ListAttributesRequest,
    ListConsentsRequest, QueryRequest, RevokeConsentRequest, consent_service_client::ConsentServiceClient,
    exchange_service_client::ExchangeServiceClient, fact,
};
use clap::{Args, Subcommand};

use crate::conn::{Conn, Role, read_citizen, rpc_error};

/// What every ExchangeService call names: whose data, why, under which consent, by whom.
#[derive(Debug, Args)]
pub(crate) struct Asking {
    #[command(flatten)]
    pub(crate) conn: Conn,
    /// The citizen's ID number; `-` reads it from standard input.
    #[arg(long)]
    pub(crate) citizen: String,
    /// Why: a purpose code from the catalogue, e.g. `hukou.settlement`.
    #[arg(long)]
    pub(crate) purpose: String,
    /// The consent_id of the citizen's consent that covers the request.
    #[arg(long)]
    pub(crate) consent: String,
    /// Staff number of the official at the counter.
    #[arg(long, default_value = "")]
    pub(crate) operator: String,
    /// Your own id for this request, recorded with it (default: a new random one, printed).
    #[arg(long)]
    request_id: Option<String>,
}

/// `name=value` parameters of a predicate, each named once.
pub(crate) fn parse_params(given: &[String]) -> anyhow::Result<std::collections::HashMap<String, String>> {
    let mut params = std::collections::HashMap::new();
    for p in given {
        let (name, value) = p
            .split_once('=')
            .with_context(|| format!("param {p:?} is not name=value"))?;
        anyhow::ensure!(
            params.insert(name.to_owned(), value.to_owned()).is_none(),
            "param {name} is given twice"
        );
    }
    Ok(params)
}

impl Asking {
    /// The request id to send: the one given, or a fresh one to find the record by later.
    pub(crate) fn request_id(&self) -> String {
        self.request_id
            .clone()
            .unwrap_or_else(|| format!("cli-{:016x}", rand::random::<u64>()))
    }
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
    /// A predicate of `civex catalogue`, e.g. settlement.urban or, in place of
    /// a certificate, ps.alive (`civex catalogue --certificates`).
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
        /// The citizen's ID number; `-` reads it from standard input.
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
        /// The citizen's ID number; `-` reads it from standard input.
        #[arg(long)]
        citizen: String,
    },
}

#[derive(Debug, Args)]
pub(super) struct CatalogueArgs {
    #[command(flatten)]
    conn: Conn,
    /// Only the certificates departments used to demand, and what answers
    /// each now (证明事项清理); with `--output json`, the catalogue with only
    /// its `certificates`.
    #[arg(long)]
    certificates: bool,
}

pub(super) async fn query(q: QueryArgs) -> anyhow::Result<()> {
    let a = q.asking;
    let mut client = ExchangeServiceClient::new(a.conn.channel(Role::Requester).await?);
    let response = client
        .query(QueryRequest {
            request_id: a.request_id(),
            citizen_id: read_citizen(a.citizen)?,
            attributes: q.attributes,
            purpose: a.purpose,
            consent_id: a.consent,
            operator: a.operator,
        })
        .await
        .map_err(rpc_error)?
        .into_inner();
    a.conn.show(&response, |r| {
        for f in &r.facts {
            let value = match &f.value {
                Some(fact::Value::BoolValue(b)) => b.to_string(),
                Some(fact::Value::IntValue(i)) => i.to_string(),
                Some(fact::Value::TextValue(s)) | Some(fact::Value::DateValue(s)) => s.clone(),
                None => "(not recorded)".to_owned(),
            };
            println!("{} = {value}  [source {}]", f.attribute, f.source);
        }
        println!("audit_index: {}  request_id: {}", r.audit_index, r.request_id);
    });
    Ok(())
}

pub(super) async fn check(c: CheckArgs) -> anyhow::Result<()> {
    let a = c.asking;
    let params = parse_params(&c.params)?;
    let mut client = ExchangeServiceClient::new(a.conn.channel(Role::Requester).await?);
    let response = client
        .check(CheckRequest {
            request_id: a.request_id(),
            citizen_id: read_citizen(a.citizen)?,
            predicate: c.predicate,
            params,
            purpose: a.purpose,
            consent_id: a.consent,
            operator: a.operator,
            related_consent_ids: c.related_consents,
        })
        .await
        .map_err(rpc_error)?
        .into_inner();
    a.conn.show(&response, |r| {
        println!(
            "{}  ({}; read {})",
            if r.satisfied { "SATISFIED" } else { "NOT SATISFIED" },
            r.basis,
            r.sources.join(",")
        );
        for reason in &r.reasons {
            println!("  - {reason}");
        }
        println!("audit_index: {}  request_id: {}", r.audit_index, r.request_id);
    });
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
    let client = async |conn: &Conn| anyhow::Ok(ConsentServiceClient::new(conn.channel(Role::ConsentRegistrar).await?));
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
            let not_after = SystemTime::now() + Duration::from_secs(days.saturating_mul(86_400));
            let consent = client(&conn)
                .await?
                .grant(GrantConsentRequest {
                    citizen_id: read_citizen(citizen)?,
                    grantee,
                    scopes,
                    purpose,
                    not_after: Some(timestamp(not_after)),
                    max_uses,
                })
                .await
                .map_err(rpc_error)?
                .into_inner();
            conn.show(&consent, print_consent);
        }
        ConsentCommand::Revoke { conn, consent, reason } => {
            let c = client(&conn)
                .await?
                .revoke(RevokeConsentRequest {
                    consent_id: consent,
                    reason,
                })
                .await
                .map_err(rpc_error)?
                .into_inner();
            conn.show(&c, print_consent);
        }
        ConsentCommand::Get { conn, consent } => {
            let c = client(&conn)
                .await?
                .get(GetConsentRequest { consent_id: consent })
                .await
                .map_err(rpc_error)?
                .into_inner();
            conn.show(&c, print_consent);
        }
        ConsentCommand::List { conn, citizen } => {
            let list = client(&conn)
                .await?
                .list(ListConsentsRequest {
                    citizen_id: read_citizen(citizen)?,
                })
                .await
                .map_err(rpc_error)?
                .into_inner();
            conn.show(&list, |list| {
                for c in &list.consents {
                    print_consent(c);
                    println!();
                }
                println!("{} consents", list.consents.len());
            });
        }
    }
    Ok(())
}

pub(super) async fn catalogue(a: CatalogueArgs) -> anyhow::Result<()> {
    let mut client = ExchangeServiceClient::new(a.conn.channel(Role::Requester).await?);
    let catalogue = client
        .list_attributes(ListAttributesRequest {})
        .await
        .map_err(rpc_error)?
        .into_inner();
    if a.certificates {
        let certificates = Catalogue {
            certificates: catalogue.certificates,
            ..Catalogue::default()
        };
        a.conn.show(&certificates, print_certificates);
    } else {
        a.conn.show(&catalogue, print_catalogue);
    }
    Ok(())
}

fn print_certificates(c: &Catalogue) {
    for (i, cert) in c.certificates.iter().enumerate() {
        let status = match CertificateStatus::try_from(cert.status) {
            Ok(CertificateStatus::CertAbolished) => "abolished",
            Ok(CertificateStatus::CertReplacedBySharing) => "replaced by sharing",
            Ok(CertificateStatus::CertCommitment) => "notification and commitment",
            Ok(CertificateStatus::CertStillIssued) => "still issued",
            _ => "unknown",
        };
        println!("{:>2}. {}  {}", i + 1, cert.name_zh, cert.name_en);
        println!("    {status}; formerly issued by {}; {}", cert.holder, cert.basis);
        if cert.answered_by.is_empty() {
            println!("    answered by: nothing");
        } else {
            println!("    answered by: {}", cert.answered_by.join(", "));
        }
        if !cert.note.is_empty() {
            println!("    {}", cert.note);
        }
    }
}

fn print_catalogue(c: &Catalogue) {
    for a in &c.attributes {
        let flag = if a.abolished { "  ABOLISHED" } else { "" };
        println!(
            "{:<36} {:<5} {:<13} {}{flag}",
            a.name, a.value_type, a.sharing, a.description
        );
    }
    println!();
    println!();
    for p in &c.predicates {
        println!("{:<26} ({}) {}  {}", p.name, p.params.join(","), p.basis, p.description);
    }
    println!();
    for p in &c.purposes {
        let delay = match p.disclosure_delay_days {
            0 => String::new(),
            days => format!("  (in the citizen's history after {days} days)"),
        };
        println!("{:<26} {}  {}{delay}", p.code, p.basis, p.description);
    }
}
