//! `civex audit`: verify the log offline (from the store) or online (from
//! checkpoints and proofs only), search it, and report refusals.

use std::path::PathBuf;

use anyhow::Context;
use civex_proto::v1::{
    AccessHistoryRequest, AuditEntry, AuditSearchRequest, CheckpointRequest, ConsistencyProofRequest, Decision,
    GetEntryRequest, InclusionProofRequest, ReportRequest, audit_service_client::AuditServiceClient,
};
use clap::{Args, Subcommand, ValueEnum};
use rand::Rng;
use tonic::transport::Channel;

use super::remote::{Conn, rpc_error};
use civex_audit::{
    checkpoint,
    clock::timestamp,
    keys::{VERIFIER_KEY_FILE, Verifier},
    merkle,
};

const AUDITOR: &str = "qujing-audit";

#[derive(Debug, Subcommand)]
pub(super) enum AuditCommand {
    /// Check the log: offline from a data directory, or online from a gateway's checkpoints and proofs.
    Verify(VerifyArgs),
    /// Search the log.
    Search(SearchArgs),
    /// Who accessed a citizen's data.
    History {
        #[command(flatten)]
        conn: Conn,
        #[arg(long)]
        citizen: String,
    },
    /// Print a fresh signed checkpoint.
    Checkpoint {
        #[command(flatten)]
        conn: Conn,
    },
    /// Refused requests per agency and reason; with a window or options,
    /// the window's calls counted by agency, action, decision and reason.
    Report {
        #[command(flatten)]
        conn: Conn,
        /// Only records at or after this time (RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// Only records before this time (RFC 3339).
        #[arg(long)]
        until: Option<String>,
        /// Count allowed calls too.
        #[arg(long)]
        allowed: bool,
        /// One row per operator of each agency.
        #[arg(long)]
        per_operator: bool,
    },
    /// The alerts the rules raised over the log.
    Alerts(super::oversight::AlertsArgs),
    /// Show or dismiss one alert.
    #[command(subcommand)]
    Alert(super::oversight::AlertCommand),
    /// Put a citizen on the watch list: every access to their data raises an alert.
    Watch {
        #[command(flatten)]
        who: super::oversight::Auditor,
        #[arg(long)]
        citizen: String,
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Take a citizen off the watch list.
    Unwatch {
        #[command(flatten)]
        who: super::oversight::Auditor,
        #[arg(long)]
        citizen: String,
    },
    /// The watch list, by pseudonym.
    Watched {
        #[command(flatten)]
        who: super::oversight::Auditor,
    },
    /// Cases: open one from alerts, note, assign, investigate, close, list, show.
    #[command(subcommand)]
    Case(super::oversight::CaseCommand),
    /// Rebuild the search indexes from the log (the gateway must be stopped).
    Reindex {
        /// The data directory.
        #[arg(long, default_value = "civex-data")]
        data: PathBuf,
        /// The deployment's PostgreSQL database instead (every gateway stopped).
        #[arg(long, env = "CIVEX_STORAGE_URL", conflicts_with = "data")]
        storage: Option<String>,
    },
}

#[derive(Debug, Args)]
pub(super) struct VerifyArgs {
    /// Verify the store in this data directory (the gateway must be stopped).
    #[arg(long, conflicts_with = "endpoint")]
    data: Option<PathBuf>,
    /// Verify the shared log in this PostgreSQL database (`postgres://…`),
    /// with the verifier key given by --vkey; gateways may keep serving.
    #[arg(long, conflicts_with_all = ["endpoint", "data"])]
    storage: Option<String>,
    /// Verify a running gateway from checkpoints and proofs.
    #[arg(long)]
    endpoint: Option<String>,
    /// The gateway's verifier key file (default `<data>/gateway.vkey`, or `civex-data/gateway.vkey` online).
    #[arg(long)]
    vkey: Option<PathBuf>,
    /// Online: where the last verified checkpoint is kept, to prove the log only grew.
    #[arg(long, default_value = "civex-audit-state.txt")]
    state: PathBuf,
    /// Online: how many random entries to check inclusion of.
    #[arg(long, default_value_t = 16)]
    sample: u64,
    #[arg(long)]
    agency: Option<String>,
    #[arg(long, default_value = "certs")]
    certs: PathBuf,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum DecisionArg {
    Allow,
    Deny,
}

#[derive(Debug, Args)]
pub(super) struct SearchArgs {
    #[command(flatten)]
    conn: Conn,
    #[arg(long, default_value = "")]
    citizen: String,
    #[arg(long, default_value = "")]
    agency_filter: String,
    /// Only these actions (repeat for several), e.g. `ExchangeService/Query`.
    #[arg(long)]
    action: Vec<String>,
    /// Only calls by this official (the agency's operator label).
    #[arg(long, default_value = "")]
    operator: String,
    #[arg(long, default_value = "")]
    request_id: String,
    /// Only calls under, or using, this consent.
    #[arg(long, default_value = "")]
    consent_id: String,
    /// The citizen by pseudonym, as entries and alerts show it.
    #[arg(long, default_value = "", conflicts_with = "citizen")]
    citizen_ref: String,
    #[arg(long, value_enum)]
    decision: Option<DecisionArg>,
    /// Only records at or after this time (RFC 3339).
    #[arg(long)]
    since: Option<String>,
    /// Only records before this time (RFC 3339).
    #[arg(long)]
    until: Option<String>,
    /// Stop after this many entries.
    #[arg(long, default_value_t = 100)]
    limit: usize,
}

pub(super) async fn run(command: AuditCommand) -> anyhow::Result<()> {
    match command {
        AuditCommand::Verify(args) => match (&args.data, &args.endpoint) {
            _ if args.storage.is_some() => verify_shared(&args),
            (Some(data), _) => verify_offline(data, args.vkey.clone()),
            (None, Some(endpoint)) => verify_online(&args, endpoint).await,
            (None, None) => anyhow::bail!("give --data DIR (offline) or --endpoint URL (online)"),
        },
        AuditCommand::Search(args) => search(args).await,
        AuditCommand::Alerts(args) => super::oversight::alerts(args).await,
        AuditCommand::Alert(command) => super::oversight::alert(command).await,
        AuditCommand::Watch { who, citizen, note } => super::oversight::watch(who, citizen, note).await,
        AuditCommand::Unwatch { who, citizen } => super::oversight::unwatch(who, citizen).await,
        AuditCommand::Watched { who } => super::oversight::watched(who).await,
        AuditCommand::Case(command) => super::oversight::case(command).await,
        AuditCommand::Reindex { data, storage } => reindex(&data, storage.as_deref()),
        AuditCommand::History { conn, citizen } => {
            let mut client = AuditServiceClient::new(conn.channel(AUDITOR).await?);
            let mut token = String::new();
            loop {
                let page = client
                    .access_history(AccessHistoryRequest {
                        citizen_id: citizen.clone(),
                        page_size: 500,
                        page_token: token,
                    })
                    .await
                    .map_err(rpc_error)?
                    .into_inner();
                page.entries.iter().for_each(print_entry);
                if page.next_page_token.is_empty() {
                    return Ok(());
                }
                token = page.next_page_token;
            }
        }
        AuditCommand::Checkpoint { conn } => {
            let mut client = AuditServiceClient::new(conn.channel(AUDITOR).await?);
            let cp = client
                .checkpoint(CheckpointRequest {})
                .await
                .map_err(rpc_error)?
                .into_inner();
            print!("{}", cp.note);
            Ok(())
        }
        AuditCommand::Report {
            conn,
            since,
            until,
            allowed,
            per_operator,
        } => {
            let mut client = AuditServiceClient::new(conn.channel(AUDITOR).await?);
            let request = ReportRequest {
                since: parse_time(&since)?,
                until: parse_time(&until)?,
                allowed,
                per_operator,
                ..ReportRequest::default()
            };
            let report = client.report(request).await.map_err(rpc_error)?.into_inner();
            println!(
                "{:<20} {:<16} {:<32} {:<8} {:<24} {:>8}",
                "agency", "operator", "action", "decision", "reason", "calls"
            );
            for row in report.rows {
                let decision = if row.decision == Decision::Allow as i32 {
                    "allow"
                } else {
                    "deny"
                };
                let or_dash = |s: &str| if s.is_empty() { "-".to_owned() } else { s.to_owned() };
                println!(
                    "{:<20} {:<16} {:<32} {:<8} {:<24} {:>8}",
                    row.agency,
                    or_dash(&row.operator),
                    or_dash(&row.action),
                    decision,
                    or_dash(&row.reason),
                    row.count
                );
            }
            Ok(())
        }
    }
}

fn read_verifier(path: &std::path::Path) -> anyhow::Result<Verifier> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read verifier key {}", path.display()))?;
    Ok(Verifier::parse(&text)?)
}

/// The stores of a deployment's PostgreSQL database.
fn shared_stores(url: &str) -> anyhow::Result<civex_gateway::store::Stores> {
    Ok(civex_gateway::store::postgres::open(url)?)
}

fn reindex(data: &std::path::Path, storage: Option<&str>) -> anyhow::Result<()> {
    let (log, index) = match storage {
        Some(url) => {
            let stores = shared_stores(url)?;
            (stores.log.store(), stores.audit_index)
        }
        None => (
            civex_gateway::store::open_log(data)?,
            civex_gateway::store::open_log_index(data)?,
        ),
    };
    let started = std::time::Instant::now();
    let records = civex_audit::index::reindex(log.as_ref(), index).context("reindex FAILED")?;
    println!(
        "search indexes rebuilt: {records} records in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn verify_offline(data: &std::path::Path, vkey: Option<PathBuf>) -> anyhow::Result<()> {
    let verifier = read_verifier(&vkey.unwrap_or_else(|| data.join(VERIFIER_KEY_FILE)))?;
    report(civex_gateway::store::open_log(data)?.as_ref(), &verifier)
}

/// `civex audit verify --storage`: the shared log, read from its database.
fn verify_shared(args: &VerifyArgs) -> anyhow::Result<()> {
    let vkey = args
        .vkey
        .clone()
        .context("give --vkey FILE: the deployment's verifier key")?;
    let url = args.storage.as_deref().unwrap_or_default();
    report(shared_stores(url)?.log.store().as_ref(), &read_verifier(&vkey)?)
}

/// Recomputes the whole tree of `log` and prints what was checked.
fn report(log: &dyn civex_audit::LogStore, verifier: &Verifier) -> anyhow::Result<()> {
    let verified = civex_audit::verify(log, verifier).context("audit log verification FAILED")?;
    println!(
        "audit log OK: {} records, root {}, {} signed checkpoints verified (latest at size {})",
        verified.size,
        hex::encode(verified.root),
        verified.checkpoints,
        verified.latest.as_ref().map_or(0, |c| c.size)
    );
    Ok(())
}

async fn verify_online(args: &VerifyArgs, endpoint: &str) -> anyhow::Result<()> {
    let verifier = read_verifier(
        &args
            .vkey
            .clone()
            .unwrap_or_else(|| PathBuf::from("civex-data").join(VERIFIER_KEY_FILE)),
    )?;
    let conn = Conn::new(endpoint, args.agency.clone(), args.certs.clone());
    let mut client: AuditServiceClient<Channel> = AuditServiceClient::new(conn.channel(AUDITOR).await?);
    let signed = client
        .checkpoint(CheckpointRequest {})
        .await
        .map_err(rpc_error)?
        .into_inner();
    let cp = checkpoint::verify(&signed.note, &verifier).context("checkpoint signature FAILED")?;
    anyhow::ensure!(
        cp.size == signed.tree_size && cp.root.as_slice() == signed.root_hash,
        "checkpoint fields disagree with its note"
    );

    if let Ok(old_note) = std::fs::read_to_string(&args.state) {
        let old = checkpoint::verify(&old_note, &verifier).context("the saved checkpoint does not verify")?;
        anyhow::ensure!(
            old.size <= cp.size,
            "the log shrank from {} to {} entries",
            old.size,
            cp.size
        );
        if old.size > 0 {
            let proof = client
                .consistency_proof(ConsistencyProofRequest {
                    first: old.size,
                    second: cp.size,
                })
                .await
                .map_err(rpc_error)?
                .into_inner();
            merkle::verify_consistency(old.size, cp.size, &old.root, &cp.root, &hashes(&proof.hashes)?)
                .context("consistency with the saved checkpoint FAILED: the log was rewritten")?;
            println!("consistent with the saved checkpoint of {} entries", old.size);
        }
    }
    let mut rng = rand::thread_rng();
    let picks: Vec<u64> = if cp.size <= args.sample {
        (0..cp.size).collect()
    } else {
        (0..args.sample).map(|_| rng.gen_range(0..cp.size)).collect()
    };
    for index in &picks {
        let entry = client
            .get_entry(GetEntryRequest { index: *index })
            .await
            .map_err(rpc_error)?
            .into_inner();
        let proof = client
            .inclusion_proof(InclusionProofRequest {
                index: *index,
                tree_size: cp.size,
            })
            .await
            .map_err(rpc_error)?
            .into_inner();
        merkle::verify_inclusion(
            &merkle::leaf_hash(&entry.leaf),
            *index,
            cp.size,
            &hashes(&proof.hashes)?,
            &cp.root,
        )
        .with_context(|| format!("inclusion of entry {index} FAILED"))?;
    }
    std::fs::write(&args.state, &signed.note).with_context(|| format!("cannot save {}", args.state.display()))?;
    println!(
        "audit log OK: checkpoint of {} entries verified, {} entries proven included",
        cp.size,
        picks.len()
    );
    Ok(())
}

fn hashes(raw: &[Vec<u8>]) -> anyhow::Result<Vec<merkle::Hash>> {
    raw.iter()
        .map(|h| h.as_slice().try_into().context("a proof hash is not 32 bytes"))
        .collect()
}

fn parse_time(s: &Option<String>) -> anyhow::Result<Option<prost_types::Timestamp>> {
    s.as_deref()
        .map(|s| {
            let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .with_context(|| format!("{s:?} is not an RFC 3339 time"))?;
            Ok(timestamp(t.into()))
        })
        .transpose()
}

async fn search(a: SearchArgs) -> anyhow::Result<()> {
    let mut client = AuditServiceClient::new(a.conn.channel(AUDITOR).await?);
    let mut request = AuditSearchRequest {
        citizen_id: a.citizen,
        agency: a.agency_filter,
        actions: a.action,
        operator: a.operator,
        request_id: a.request_id,
        consent_id: a.consent_id,
        citizen_ref: a.citizen_ref,
        decision: match a.decision {
            None => Decision::Unspecified,
            Some(DecisionArg::Allow) => Decision::Allow,
            Some(DecisionArg::Deny) => Decision::Deny,
        } as i32,
        since: parse_time(&a.since)?,
        until: parse_time(&a.until)?,
        page_size: a.limit.min(1000) as u32,
        ..AuditSearchRequest::default()
    };
    let mut shown = 0;
    loop {
        let page = client.search(request.clone()).await.map_err(rpc_error)?.into_inner();
        for e in &page.entries {
            if shown == a.limit {
                return Ok(());
            }
            print_entry(e);
            shown += 1;
        }
        if page.next_page_token.is_empty() {
            return Ok(());
        }
        request.page_token = page.next_page_token;
    }
}

fn print_entry(e: &AuditEntry) {
    let time = e.time.as_ref().map(ToString::to_string).unwrap_or_default();
    let decision = if e.decision == Decision::Allow as i32 {
        "ALLOW"
    } else {
        "DENY"
    };
    let citizen = if e.citizen_ref.is_empty() {
        "-"
    } else {
        &e.citizen_ref[..16]
    };
    println!(
        "{:>7} {time} {:<16} {:<32} {decision:<5} {:<22} citizen {citizen}… purpose {} operator {} scopes {}",
        e.index,
        e.agency,
        e.action,
        e.reason,
        e.purpose,
        e.operator,
        e.scopes.join(",")
    );
}
