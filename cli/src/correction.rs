//! `civex objection open|list|resolve` and `civex corrections`: objections
//! to a fact and the corrections they send (校核纠错, CorrectionService).

use civex_proto::v1::{
    Correction, ListCorrectionsRequest, ListObjectionsRequest, ObjectRequest, Objection, ObjectionState,
    ResolveRequest, correction_service_client::CorrectionServiceClient,
};
use clap::{Args, Subcommand, ValueEnum};
use tonic::transport::Channel;

use crate::{
    audit::parse_time,
    conn::{Conn, Role, read_citizen, rpc_error},
};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(super) enum StateArg {
    Open,
    Corrected,
    Rejected,
}

impl From<StateArg> for ObjectionState {
    fn from(s: StateArg) -> ObjectionState {
        match s {
            StateArg::Open => ObjectionState::ObjectionOpen,
            StateArg::Corrected => ObjectionState::ObjectionCorrected,
            StateArg::Rejected => ObjectionState::ObjectionRejected,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(super) enum OutcomeArg {
    Corrected,
    Rejected,
}

#[derive(Debug, Subcommand)]
pub(super) enum ObjectionCommand {
    /// At a registrar's counter: the citizen objects to a fact a department holds.
    Open {
        #[command(flatten)]
        conn: Conn,
        /// The citizen's ID number; `-` reads it from standard input.
        #[arg(long)]
        citizen: String,
        /// The attribute objected to, e.g. ps.residence.since.
        #[arg(long)]
        attribute: String,
        /// What the citizen says is wrong, in their words.
        #[arg(long)]
        statement: String,
        /// Staff number of the official at the counter.
        #[arg(long, default_value = "")]
        operator: String,
    },
    /// As a department's data steward: the objections to its facts, oldest first.
    List {
        #[command(flatten)]
        conn: Conn,
        #[arg(long, value_enum)]
        state: Option<StateArg>,
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[arg(long, default_value = "")]
        page_token: String,
    },
    /// As a department's data steward: corrected (every earlier recipient is told) or rejected.
    Resolve {
        #[command(flatten)]
        conn: Conn,
        #[arg(long)]
        objection: String,
        #[arg(long, value_enum)]
        outcome: OutcomeArg,
        #[arg(long, default_value = "")]
        note: String,
        #[arg(long, default_value = "")]
        operator: String,
    },
}

#[derive(Debug, Args)]
pub(super) struct CorrectionsArgs {
    #[command(flatten)]
    conn: Conn,
    /// Only corrections sent at or after this time, RFC 3339.
    #[arg(long)]
    since: Option<String>,
    #[arg(long, default_value_t = 100)]
    limit: u32,
    #[arg(long, default_value = "")]
    page_token: String,
}

async fn client(conn: &Conn, role: Role) -> anyhow::Result<CorrectionServiceClient<Channel>> {
    Ok(CorrectionServiceClient::new(conn.channel(role).await?))
}

pub(super) async fn objection(command: ObjectionCommand) -> anyhow::Result<()> {
    match command {
        ObjectionCommand::Open {
            conn,
            citizen,
            attribute,
            statement,
            operator,
        } => {
            let o = client(&conn, Role::ConsentRegistrar)
                .await?
                .object(ObjectRequest {
                    citizen_id: read_citizen(citizen)?,
                    attribute,
                    statement,
                    operator,
                })
                .await
                .map_err(rpc_error)?
                .into_inner();
            conn.show(&o, print_objection);
        }
        ObjectionCommand::List {
            conn,
            state,
            limit,
            page_token,
        } => {
            let listed = client(&conn, Role::DataSteward)
                .await?
                .list_objections(ListObjectionsRequest {
                    state: state.map_or(ObjectionState::Unspecified, ObjectionState::from) as i32,
                    page_size: limit,
                    page_token,
                })
                .await
                .map_err(rpc_error)?
                .into_inner();
            conn.show(&listed, |listed| {
                for o in &listed.objections {
                    print_objection(o);
                    println!();
                }
                if !listed.next_page_token.is_empty() {
                    println!("more: continue with --page-token {}", listed.next_page_token);
                }
            });
        }
        ObjectionCommand::Resolve {
            conn,
            objection,
            outcome,
            note,
            operator,
        } => {
            let outcome = match outcome {
                OutcomeArg::Corrected => ObjectionState::ObjectionCorrected,
                OutcomeArg::Rejected => ObjectionState::ObjectionRejected,
            };
            let o = client(&conn, Role::DataSteward)
                .await?
                .resolve(ResolveRequest {
                    objection_id: objection,
                    outcome: outcome as i32,
                    note,
                    operator,
                })
                .await
                .map_err(rpc_error)?
                .into_inner();
            conn.show(&o, print_objection);
        }
    }
    Ok(())
}

pub(super) async fn corrections(a: CorrectionsArgs) -> anyhow::Result<()> {
    let listed = client(&a.conn, Role::Requester)
        .await?
        .list_corrections(ListCorrectionsRequest {
            since: parse_time(&a.since)?,
            page_size: a.limit,
            page_token: a.page_token,
        })
        .await
        .map_err(rpc_error)?
        .into_inner();
    a.conn.show(&listed, |listed| {
        println!(
            "{:<32} {:<36} {:>12} {:<24} corrected",
            "correction", "attribute", "your call", "your request"
        );
        listed.corrections.iter().for_each(print_correction);
        if !listed.next_page_token.is_empty() {
            println!("more: continue with --page-token {}", listed.next_page_token);
        }
    });
    Ok(())
}

fn time(t: &Option<prost_types::Timestamp>) -> String {
    t.as_ref().map(ToString::to_string).unwrap_or_else(|| "-".into())
}

fn print_objection(o: &Objection) {
    let state = match o.state() {
        ObjectionState::ObjectionOpen => "open",
        ObjectionState::ObjectionCorrected => "corrected",
        ObjectionState::ObjectionRejected => "rejected",
        ObjectionState::Unspecified => "unknown",
    };
    println!("objection_id: {}", o.objection_id);
    println!("attribute: {} (department {})", o.attribute, o.department);
    println!("state: {state}");
    println!(
        "opened_at: {}  resolved_at: {}",
        time(&o.opened_at),
        time(&o.resolved_at)
    );
    if !o.citizen_id.is_empty() {
        println!("citizen_id: {}", o.citizen_id);
        println!("statement: {}", o.statement);
    }
    if !o.resolution.is_empty() {
        println!("resolution: {}", o.resolution);
    }
    if o.state() == ObjectionState::ObjectionCorrected {
        println!("corrections sent: {}", o.notified);
    }
}

fn print_correction(c: &Correction) {
    println!(
        "{:<32} {:<36} {:>12} {:<24} {}",
        c.correction_id,
        c.attribute,
        c.original_index,
        c.original_request_id,
        time(&c.corrected_at)
    );
}
