//! `civex commitment record|list|show`: notification and commitment
//! (告知承诺制, CommitmentService). The agency decides on the citizen's signed
//! statement now; the gateway keeps its hash, signs a receipt, and checks a
//! sample once `verify_after` has come.

use std::{
    path::PathBuf,
    time::{Duration, SystemTime},
};

use anyhow::Context;
use civex_gateway::clock::timestamp;
use civex_proto::v1::{
    Commitment, CommitmentState, GetCommitmentRequest, ListCommitmentsRequest, RecordCommitmentRequest,
    commitment_service_client::CommitmentServiceClient,
};
use clap::{Args, Subcommand, ValueEnum};

use crate::{
    audit::parse_time,
    conn::{Conn, Role, read_citizen, rpc_error},
    remote::{Asking, parse_params},
};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(super) enum StateArg {
    Pending,
    NotSampled,
    True,
    False,
    Unverifiable,
}

impl From<StateArg> for CommitmentState {
    fn from(s: StateArg) -> CommitmentState {
        match s {
            StateArg::Pending => CommitmentState::CommitmentPending,
            StateArg::NotSampled => CommitmentState::CommitmentNotSampled,
            StateArg::True => CommitmentState::CommitmentTrue,
            StateArg::False => CommitmentState::CommitmentFalse,
            StateArg::Unverifiable => CommitmentState::CommitmentUnverifiable,
        }
    }
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("when").required(true)))]
pub(super) struct RecordArgs {
    #[command(flatten)]
    asking: Asking,
    /// The matter, as the gateway's `[commitments."<matter>"]` names it, e.g. `demo.residence`.
    #[arg(long)]
    matter: String,
    /// A file holding the citizen's signed statement (text or a scan), or
    /// `-` for standard input: only its SHA-256 is kept.
    #[arg(long)]
    statement: PathBuf,
    /// The predicate that will check the statement, e.g. residence.months_at_least.
    #[arg(long)]
    predicate: String,
    /// `name=value`, e.g. `division=530302`; repeat for several.
    #[arg(long = "param")]
    params: Vec<String>,
    /// When the statement may be checked, RFC 3339 (e.g. 2027-03-01T00:00:00+08:00).
    #[arg(long, group = "when")]
    verify_after: Option<String>,
    /// When the statement may be checked, in days from now.
    #[arg(long, group = "when")]
    verify_in_days: Option<u64>,
}

#[derive(Debug, Subcommand)]
pub(super) enum CommitmentCommand {
    /// Record a citizen's commitment and get the gateway's signed receipt.
    Record(Box<RecordArgs>),
    /// Your agency's commitments, oldest first.
    List {
        #[command(flatten)]
        conn: Conn,
        /// Only commitments in this state.
        #[arg(long, value_enum)]
        state: Option<StateArg>,
        /// Only those recorded at or after this time, RFC 3339.
        #[arg(long)]
        since: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Start where an earlier listing said more remained.
        #[arg(long, default_value = "")]
        page_token: String,
    },
    /// One commitment, with its receipt as a signed note.
    Show {
        #[command(flatten)]
        conn: Conn,
        #[arg(long)]
        commitment: String,
    },
}

fn client(channel: tonic::transport::Channel) -> CommitmentServiceClient<tonic::transport::Channel> {
    CommitmentServiceClient::new(channel)
}

pub(super) async fn run(command: CommitmentCommand) -> anyhow::Result<()> {
    match command {
        CommitmentCommand::Record(r) => record(*r).await,
        CommitmentCommand::List {
            conn,
            state,
            since,
            limit,
            page_token,
        } => {
            let listed = client(conn.channel(Role::Requester).await?)
                .list_commitments(ListCommitmentsRequest {
                    state: state.map_or(CommitmentState::Unspecified, CommitmentState::from) as i32,
                    since: parse_time(&since)?,
                    page_size: limit,
                    page_token,
                })
                .await
                .map_err(rpc_error)?
                .into_inner();
            conn.show(&listed, |listed| {
                println!(
                    "{:<32} {:<24} {:<24} {:<26} recorded",
                    "commitment", "matter", "state", "verify after"
                );
                for c in &listed.commitments {
                    println!(
                        "{:<32} {:<24} {:<24} {:<26} {}",
                        c.commitment_id,
                        c.matter,
                        state_name(c),
                        time(&c.verify_after),
                        time(&c.recorded_at)
                    );
                }
                if !listed.next_page_token.is_empty() {
                    println!("more: continue with --page-token {}", listed.next_page_token);
                }
            });
            Ok(())
        }
        CommitmentCommand::Show { conn, commitment } => {
            let c = client(conn.channel(Role::Requester).await?)
                .get_commitment(GetCommitmentRequest {
                    commitment_id: commitment,
                })
                .await
                .map_err(rpc_error)?
                .into_inner();
            conn.show(&c, print_commitment);
            Ok(())
        }
    }
}

async fn record(r: RecordArgs) -> anyhow::Result<()> {
    let a = r.asking;
    let statement = if r.statement.as_os_str() == "-" {
        anyhow::ensure!(
            a.citizen != "-",
            "--statement - and --citizen - cannot both read standard input"
        );
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut bytes).context("statement from standard input")?;
        bytes
    } else {
        std::fs::read(&r.statement).with_context(|| format!("statement {}", r.statement.display()))?
    };
    let verify_after = match (r.verify_after, r.verify_in_days) {
        (Some(at), _) => parse_time(&Some(at))?,
        (None, Some(days)) => Some(timestamp(
            SystemTime::now() + Duration::from_secs(days.saturating_mul(86_400)),
        )),
        (None, None) => None,
    };
    let c = client(a.conn.channel(Role::Requester).await?)
        .record(RecordCommitmentRequest {
            request_id: a.request_id(),
            citizen_id: read_citizen(a.citizen)?,
            matter: r.matter,
            statement,
            predicate: r.predicate,
            params: parse_params(&r.params)?,
            purpose: a.purpose,
            consent_id: a.consent,
            verify_after,
            operator: a.operator,
        })
        .await
        .map_err(rpc_error)?
        .into_inner();
    a.conn.show(&c, print_commitment);
    Ok(())
}

fn time(t: &Option<prost_types::Timestamp>) -> String {
    t.as_ref().map(ToString::to_string).unwrap_or_else(|| "-".into())
}

fn state_name(c: &Commitment) -> &'static str {
    match c.state() {
        CommitmentState::Unspecified => "unknown",
        CommitmentState::CommitmentPending => "pending",
        CommitmentState::CommitmentNotSampled => "not sampled",
        CommitmentState::CommitmentTrue => "true",
        CommitmentState::CommitmentFalse => "FALSE",
        CommitmentState::CommitmentUnverifiable => "unverifiable",
    }
}

fn print_commitment(c: &Commitment) {
    use base64::Engine as _;
    println!("commitment_id: {}", c.commitment_id);
    println!("state: {}", state_name(c));
    println!("matter: {}", c.matter);
    println!("predicate: {}  purpose: {}", c.predicate, c.purpose);
    println!("statement_sha256: {}", c.statement_sha256);
    println!("recorded_at: {}", time(&c.recorded_at));
    println!("verify_after: {}", time(&c.verify_after));
    println!("settled_at: {}", time(&c.settled_at));
    println!("audit_index: {}  request_id: {}", c.audit_index, c.request_id);
    // The receipt as a C2SP signed note: any note tool checks it with the gateway's key (`civex keys`).
    let name = c.key_id.rsplit_once('+').map_or(c.key_id.as_str(), |(name, _)| name);
    println!("receipt (a signed note; check it with the gateway's verifier key):");
    print!("{}", c.receipt);
    println!();
    println!(
        "\u{2014} {name} {}",
        base64::engine::general_purpose::STANDARD.encode(&c.signature)
    );
}
