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

use crate::conn::{Conn, Role, read_citizen, rpc_error};
use civex_audit::{checkpoint, clock::timestamp, keys::Verifier, merkle};

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
        /// The citizen's ID number; `-` reads it from standard input.
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
        /// The citizen's ID number; `-` reads it from standard input.
        #[arg(long)]
        citizen: String,
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Take a citizen off the watch list.
    Unwatch {
        #[command(flatten)]
        who: super::oversight::Auditor,
        /// The citizen's ID number; `-` reads it from standard input.
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
    #[arg(long, conflicts_with_all = ["endpoint", "profile"])]
    data: Option<PathBuf>,
    /// Verify the shared log in this PostgreSQL database (`postgres://…`),
    /// with the verifier key given by --vkey; gateways may keep serving.
    #[arg(long, conflicts_with_all = ["endpoint", "profile", "data"])]
    storage: Option<String>,
    /// Online (with --endpoint or --profile): a running gateway, from checkpoints and proofs.
    #[command(flatten)]
    conn: Conn,
    /// The gateway's verifier key: the key itself (as the demo prints it),
    /// a file holding it, or the gateway's data directory (default: --data,
    /// else `civex-data`).
    #[arg(long)]
    vkey: Option<String>,
    /// Online: where the last verified checkpoint is kept, to prove the log only grew.
    #[arg(long, default_value = "civex-audit-state.txt")]
    state: PathBuf,
    /// Online: how many random entries to check inclusion of.
    #[arg(long, default_value_t = 16)]
    sample: u64,
    /// Online: a witness's cosignature verifier key (as `civex witness`
    /// prints it) whose cosignature the checkpoint must carry; repeat for several.
    #[arg(long = "witness")]
    witnesses: Vec<String>,
    /// Online: how many of the --witness keys must have cosigned (default: all).
    #[arg(long, requires = "witnesses")]
    quorum: Option<usize>,
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
    /// Only calls about this citizen (ID number; `-` reads it from standard input).
    #[arg(long, default_value = "")]
    citizen: String,
    /// Only calls by this agency.
    #[arg(long, default_value = "")]
    agency: String,
    /// Only these actions (repeat for several), e.g. `ExchangeService/Query`.
    #[arg(long)]
    action: Vec<String>,
    /// Only calls by this official (the agency's operator label).
    #[arg(long, default_value = "")]
    operator: String,
    /// Only the call with this request id.
    #[arg(long, default_value = "")]
    request_id: String,
    /// Only calls under, or using, this consent.
    #[arg(long, default_value = "")]
    consent_id: String,
    /// The citizen by pseudonym (64 hex digits), as entries and alerts show it.
    #[arg(long, default_value = "", conflicts_with = "citizen")]
    citizen_ref: String,
    /// Only allowed, or only refused, calls.
    #[arg(long, value_enum)]
    decision: Option<DecisionArg>,
    /// Only records at or after this time (RFC 3339).
    #[arg(long)]
    since: Option<String>,
    /// Only records before this time (RFC 3339).
    #[arg(long)]
    until: Option<String>,
    /// At most this many entries; the last line says where the next page starts.
    #[arg(long, default_value_t = 100)]
    limit: usize,
    /// Start where an earlier search said more remained.
    #[arg(long, default_value = "")]
    page_token: String,
}

pub(super) async fn run(command: AuditCommand) -> anyhow::Result<()> {
    match command {
        AuditCommand::Verify(args) => match &args.data {
            _ if args.storage.is_some() => verify_shared(&args),
            Some(data) => verify_offline(data, args.vkey.as_deref()),
            None => verify_online(&args).await,
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
            let mut client = AuditServiceClient::new(conn.channel(Role::Auditor).await?);
            let citizen_id = read_citizen(citizen)?;
            // The whole history, every page, as one answer.
            let mut history = civex_proto::v1::AuditSearchResponse::default();
            loop {
                let page = client
                    .access_history(AccessHistoryRequest {
                        citizen_id: citizen_id.clone(),
                        page_size: 500,
                        page_token: std::mem::take(&mut history.next_page_token),
                    })
                    .await
                    .map_err(rpc_error)?
                    .into_inner();
                history.entries.extend(page.entries);
                history.next_page_token = page.next_page_token;
                if history.next_page_token.is_empty() {
                    break;
                }
            }
            conn.show(&history, |h| {
                print_entries(&h.entries);
                println!("({} accesses)", h.entries.len());
            });
            Ok(())
        }
        AuditCommand::Checkpoint { conn } => {
            let mut client = AuditServiceClient::new(conn.channel(Role::Auditor).await?);
            let cp = client
                .checkpoint(CheckpointRequest {})
                .await
                .map_err(rpc_error)?
                .into_inner();
            conn.show(&cp, |cp| print!("{}", cp.note));
            Ok(())
        }
        AuditCommand::Report {
            conn,
            since,
            until,
            allowed,
            per_operator,
        } => {
            let mut client = AuditServiceClient::new(conn.channel(Role::Auditor).await?);
            let (since, until) = parse_window(&since, &until)?;
            let request = ReportRequest {
                since,
                until,
                allowed,
                per_operator,
                ..ReportRequest::default()
            };
            let report = client.report(request).await.map_err(rpc_error)?.into_inner();
            conn.show(&report, print_report);
            Ok(())
        }
    }
}

fn print_report(report: &civex_proto::v1::ReportResponse) {
    {
        {
            println!(
                "{:<20} {:<16} {:<32} {:<8} {:<24} {:>8}",
                "agency", "operator", "action", "decision", "reason", "calls"
            );
            for row in &report.rows {
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
        }
    }
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

fn verify_offline(data: &std::path::Path, vkey: Option<&str>) -> anyhow::Result<()> {
    let verifier = crate::tools::verifier_key(vkey.unwrap_or(&data.display().to_string()))?;
    report(civex_gateway::store::open_log(data)?.as_ref(), &verifier)
}

/// `civex audit verify --storage`: the shared log, read from its database.
fn verify_shared(args: &VerifyArgs) -> anyhow::Result<()> {
    let vkey = args
        .vkey
        .as_deref()
        .context("give --vkey: the deployment's verifier key, its file or a gateway's data directory")?;
    let url = args.storage.as_deref().unwrap_or_default();
    report(
        shared_stores(url)?.log.store().as_ref(),
        &crate::tools::verifier_key(vkey)?,
    )
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

async fn verify_online(args: &VerifyArgs) -> anyhow::Result<()> {
    let verifier = crate::tools::verifier_key(args.vkey.as_deref().unwrap_or("civex-data"))?;
    let mut client: AuditServiceClient<Channel> = AuditServiceClient::new(args.conn.channel(Role::Auditor).await?);
    let signed = client
        .checkpoint(CheckpointRequest {})
        .await
        .map_err(rpc_error)?
        .into_inner();
    let cp = checkpoint::verify(&signed.note, &verifier).map_err(|e| signature_failure(e, &signed.note, &verifier))?;
    let cosigned = check_cosignatures(&signed.note, &args.witnesses, args.quorum)?;
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
    // As the proto3 JSON of a checkpoint would have it: 64-bit numbers as strings, bytes in base64.
    let verified = serde_json::json!({
        "ok": true,
        "treeSize": cp.size.to_string(),
        "rootHash": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, cp.root),
        "includedChecked": picks.len().to_string(),
        "cosignedBy": cosigned,
        "checkpoint": signed.note,
    });
    match args.conn.output {
        crate::conn::Format::Json => println!("{verified}"),
        crate::conn::Format::Text => {
            if !cosigned.is_empty() {
                println!("cosigned by {}", cosigned.join(", "));
            }
            println!(
                "audit log OK: checkpoint of {} entries verified, {} entries proven included",
                cp.size,
                picks.len()
            );
        }
    }
    Ok(())
}

/// The names of the `witnesses` (cosignature verifier keys) whose valid
/// cosignature `note` carries; an error unless at least `quorum` (default: all) do.
fn check_cosignatures(note: &str, witnesses: &[String], quorum: Option<usize>) -> anyhow::Result<Vec<String>> {
    use civex_audit::keys::KeyKind;
    let (body, signatures) = checkpoint::split(note)?;
    let mut cosigned = Vec::new();
    let mut missing = Vec::new();
    for key in witnesses {
        let key = Verifier::parse_kind(key, KeyKind::Cosignature)
            .with_context(|| format!("--witness {key:?} is not a witness's cosignature key"))?;
        match checkpoint::cosigned_at(body, signatures, &key) {
            Some(_) => cosigned.push(key.name),
            None => missing.push(key.name),
        }
    }
    let quorum = quorum.unwrap_or(witnesses.len());
    anyhow::ensure!(
        cosigned.len() >= quorum,
        "witness cosignatures FAILED: {} of the {quorum} required; none valid from {}",
        cosigned.len(),
        missing.join(", ")
    );
    Ok(cosigned)
}

/// Why a checkpoint's signature failed, naming a key mismatch as such:
/// signed by a key of the same name but another key hash means the key
/// given is not the gateway's (or the gateway's key changed), not tampering.
fn signature_failure(e: checkpoint::CheckpointError, note: &str, verifier: &Verifier) -> anyhow::Error {
    let signatures = checkpoint::split(note).map(|(_, s)| s).unwrap_or_default();
    let signed_by: Vec<String> = checkpoint::key_hashes(signatures, &verifier.name)
        .iter()
        .map(|hash| format!("{hash:08x}"))
        .collect();
    match e {
        checkpoint::CheckpointError::NoSignature(_) if !signed_by.is_empty() => anyhow::anyhow!(
            "checkpoint signature FAILED: key hash mismatch: the checkpoint is signed by {}+{}, \
             the key given is {}; give the gateway's own key (--vkey), or its key was replaced",
            verifier.name,
            signed_by.join(","),
            verifier.key_id()
        ),
        e => anyhow::Error::new(e).context("checkpoint signature FAILED"),
    }
}

fn hashes(raw: &[Vec<u8>]) -> anyhow::Result<Vec<merkle::Hash>> {
    raw.iter()
        .map(|h| h.as_slice().try_into().context("a proof hash is not 32 bytes"))
        .collect()
}

/// `--since` and `--until`, refusing a window that ends before it starts.
fn parse_window(
    since: &Option<String>,
    until: &Option<String>,
) -> anyhow::Result<(Option<prost_types::Timestamp>, Option<prost_types::Timestamp>)> {
    let (from, to) = (parse_time(since)?, parse_time(until)?);
    if let (Some(from), Some(to)) = (&from, &to) {
        anyhow::ensure!(
            (to.seconds, to.nanos) >= (from.seconds, from.nanos),
            "--until {} is before --since {}",
            until.as_deref().unwrap_or_default(),
            since.as_deref().unwrap_or_default()
        );
    }
    Ok((from, to))
}

/// An RFC 3339 time, if given.
pub(crate) fn parse_time(s: &Option<String>) -> anyhow::Result<Option<prost_types::Timestamp>> {
    s.as_deref()
        .map(|s| {
            let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .map_err(|_| anyhow::anyhow!("{s:?} is not an RFC 3339 time such as 2026-12-01T08:00:00+08:00"))?;
            Ok(timestamp(t.into()))
        })
        .transpose()
}

async fn search(a: SearchArgs) -> anyhow::Result<()> {
    let mut client = AuditServiceClient::new(a.conn.channel(Role::Auditor).await?);
    anyhow::ensure!(a.limit > 0, "--limit must be at least 1");
    let (since, until) = parse_window(&a.since, &a.until)?;
    let citizen_id = match a.citizen.as_str() {
        "" => String::new(),
        _ => read_citizen(a.citizen)?,
    };
    let mut request = AuditSearchRequest {
        citizen_id,
        agency: a.agency,
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
        since,
        until,
        page_token: a.page_token,
        ..AuditSearchRequest::default()
    };
    // Pages never reach past the limit, so the last one's token is exactly where the next search starts.
    let mut found = civex_proto::v1::AuditSearchResponse::default();
    loop {
        request.page_size = (a.limit - found.entries.len()).min(1000) as u32;
        let page = client.search(request.clone()).await.map_err(rpc_error)?.into_inner();
        found.entries.extend(page.entries);
        found.next_page_token = page.next_page_token;
        if found.next_page_token.is_empty() || found.entries.len() >= a.limit {
            break;
        }
        request.page_token.clone_from(&found.next_page_token);
    }
    a.conn.show(&found, |found| {
        print_entries(&found.entries);
        match found.next_page_token.as_str() {
            "" => println!("({} entries)", found.entries.len()),
            token => println!(
                "({} entries)\nmore: continue with --page-token {token}",
                found.entries.len()
            ),
        }
    });
    Ok(())
}

/// Entries, one per line under a header.
fn print_entries(entries: &[AuditEntry]) {
    println!(
        "{:>7} {:<30} {:<16} {:<32} {:<5} {:<22} then citizen (pseudonym), purpose, operator, scopes, request id",
        "index", "time", "agency", "action", "decision", "reason"
    );
    entries.iter().for_each(print_entry);
}

fn print_entry(e: &AuditEntry) {
    let time = e.time.as_ref().map(ToString::to_string).unwrap_or_default();
    let decision = if e.decision == Decision::Allow as i32 {
        "ALLOW"
    } else {
        "DENY"
    };
    let citizen = if e.citizen_ref.is_empty() { "-" } else { &e.citizen_ref };
    println!(
        "{:>7} {time} {:<16} {:<32} {decision:<5} {:<22} citizen {citizen} purpose {} operator {} scopes {} request {}",
        e.index,
        e.agency,
        e.action,
        e.reason,
        e.purpose,
        e.operator,
        e.scopes.join(","),
        if e.request_id.is_empty() { "-" } else { &e.request_id }
    );
}
