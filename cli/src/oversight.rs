//! `civex audit alerts|alert|watch|unwatch|watched|case`: the auditors'
//! side of oversight (OversightService). Every call carries the auditor's
//! name (`--auditor`, default `$CIVEX_OPERATOR` or `$USER`), so that the
//! log says who looked and who acted.

use civex_proto::v1::{
    Alert, AlertState, Case, CaseState, DismissAlertRequest, Disposition, GetAlertRequest, GetCaseRequest,
    ListAlertsRequest, ListCasesRequest, ListWatchedRequest, OpenCaseRequest, UnwatchCitizenRequest, UpdateCaseRequest,
    WatchCitizenRequest, oversight_service_client::OversightServiceClient,
};
use clap::{Args, Subcommand, ValueEnum};
use tonic::transport::Channel;

use crate::conn::{Conn, Role, read_citizen, rpc_error};

/// Who the auditor is, for the log.
#[derive(Debug, Args)]
pub(super) struct Auditor {
    #[command(flatten)]
    conn: Conn,
    /// The auditor's own name, recorded as the operator of every call.
    #[arg(long, env = "CIVEX_OPERATOR", default_value_t = default_operator())]
    auditor: String,
}

fn default_operator() -> String {
    std::env::var("USER").unwrap_or_default()
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(super) enum AlertStateArg {
    Open,
    InCase,
    Dismissed,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(super) enum CaseStateArg {
    Open,
    Investigating,
    Closed,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(super) enum DispositionArg {
    Justified,
    Misuse,
    FalsePositive,
}

#[derive(Debug, Args)]
pub(super) struct AlertsArgs {
    #[command(flatten)]
    who: Auditor,
    /// Only alerts in this state.
    #[arg(long, value_enum)]
    state: Option<AlertStateArg>,
    /// Only this rule's alerts, e.g. `operator_volume` (in any case).
    #[arg(long, default_value = "")]
    rule: String,
    /// Only alerts about this agency's officials.
    #[arg(long, default_value = "")]
    agency: String,
    /// Only alerts about this official (an operator label).
    #[arg(long, default_value = "")]
    operator: String,
    /// At most this many alerts; the last line says where the next page starts.
    #[arg(long, default_value_t = 100)]
    limit: usize,
    /// Start where an earlier listing said more remained.
    #[arg(long, default_value = "")]
    page_token: String,
}

#[derive(Debug, Subcommand)]
pub(super) enum AlertCommand {
    /// One alert, with the audit indices that raised it.
    Show {
        #[command(flatten)]
        who: Auditor,
        id: String,
    },
    /// Close an alert that needs no case, with the reason.
    Dismiss {
        #[command(flatten)]
        who: Auditor,
        id: String,
        #[arg(long)]
        note: String,
    },
}

#[derive(Debug, Subcommand)]
pub(super) enum CaseCommand {
    /// Open a case from alerts; by default with every other open alert of the same officials.
    Open {
        #[command(flatten)]
        who: Auditor,
        #[arg(long)]
        title: String,
        /// An alert to work in the case (repeat for several).
        #[arg(long = "alert", required = true)]
        alerts: Vec<String>,
        #[arg(long, default_value = "")]
        assignee: String,
        /// Only the alerts named, not the officials' other open alerts.
        #[arg(long)]
        only: bool,
    },
    /// Add a note to a case.
    Note {
        #[command(flatten)]
        who: Auditor,
        id: String,
        #[arg(long)]
        text: String,
    },
    /// Give a case to an auditor.
    Assign {
        #[command(flatten)]
        who: Auditor,
        id: String,
        #[arg(long)]
        to: String,
    },
    /// Mark a case as under investigation.
    Investigate {
        #[command(flatten)]
        who: Auditor,
        id: String,
    },
    /// Close a case with its disposition.
    Close {
        #[command(flatten)]
        who: Auditor,
        id: String,
        #[arg(long, value_enum)]
        disposition: DispositionArg,
        #[arg(long, default_value = "")]
        note: String,
    },
    List {
        #[command(flatten)]
        who: Auditor,
        #[arg(long, value_enum)]
        state: Option<CaseStateArg>,
        #[arg(long, default_value = "")]
        assignee: String,
    },
    /// One case with its alerts and every step taken.
    Show {
        #[command(flatten)]
        who: Auditor,
        id: String,
    },
}

impl Auditor {
    async fn client(&self) -> anyhow::Result<OversightServiceClient<Channel>> {
        Ok(OversightServiceClient::new(self.conn.channel(Role::Auditor).await?))
    }

    /// `message` as this auditor's request.
    fn request<T>(&self, message: T) -> anyhow::Result<tonic::Request<T>> {
        let mut request = tonic::Request::new(message);
        if !self.auditor.is_empty() {
            let value = self
                .auditor
                .parse()
                .map_err(|_| anyhow::anyhow!("--auditor must be printable ASCII"))?;
            request.metadata_mut().insert(civex_gateway::service::OPERATOR, value);
        }
        Ok(request)
    }
}

fn state_name(state: i32) -> &'static str {
    match AlertState::try_from(state) {
        Ok(AlertState::AlertOpen) => "open",
        Ok(AlertState::AlertInCase) => "in case",
        Ok(AlertState::AlertDismissed) => "dismissed",
        _ => "?",
    }
}

/// `agency/operator`, or the agency alone when no official was named.
fn official(agency: &str, operator: &str) -> String {
    match operator {
        "" => agency.to_owned(),
        operator => format!("{agency}/{operator}"),
    }
}

fn print_alert_row(a: &Alert) {
    println!(
        "{:<26} {:<18} {:<28} {:>6} {:<10} {}",
        a.alert_id,
        a.rule,
        official(&a.agency, &a.operator),
        a.count,
        state_name(a.state),
        a.summary
    );
}

/// An enum's proto name without its type's prefix, lower-case: `ALERT_SEVERITY_HIGH` → `high`.
fn short_name(name: &str, prefix: &str) -> String {
    name.strip_prefix(prefix).unwrap_or(name).to_lowercase()
}

fn case_state_name(state: i32) -> String {
    CaseState::try_from(state).map_or("?".into(), |s| short_name(s.as_str_name(), "CASE_"))
}

fn print_alert(a: &Alert) {
    println!("alert      {}", a.alert_id);
    println!(
        "rule       {} (severity {})",
        a.rule,
        short_name(a.severity().as_str_name(), "SEVERITY_")
    );
    println!("official   {}", official(&a.agency, &a.operator));
    if !a.citizen_ref.is_empty() {
        println!("citizen    {} (pseudonym)", a.citizen_ref);
    }
    println!(
        "opened     {}",
        a.opened_at.as_ref().map(ToString::to_string).unwrap_or_default()
    );
    println!(
        "state      {}{}",
        state_name(a.state),
        if a.case_id.is_empty() {
            String::new()
        } else {
            format!(" ({})", a.case_id)
        }
    );
    println!("summary    {}", a.summary);
    if !a.note.is_empty() {
        println!("note       {}", a.note);
    }
    let indices: Vec<String> = a.indices.iter().map(u64::to_string).collect();
    println!("records    {} (audit indices: {})", a.count, indices.join(" "));
}

fn print_case(c: &Case) {
    let state = case_state_name(c.state);
    println!("case       {}  {}", c.case_id, c.title);
    println!(
        "state      {state}  assignee {}",
        if c.assignee.is_empty() { "-" } else { &c.assignee }
    );
    if c.state == CaseState::CaseClosed as i32 {
        let disposition =
            Disposition::try_from(c.disposition).map_or("?".into(), |d| short_name(d.as_str_name(), "DISPOSITION_"));
        println!(
            "closed     {} as {disposition}",
            c.closed_at.as_ref().map(ToString::to_string).unwrap_or_default()
        );
    }
    println!("alerts     {}", c.alert_ids.join(" "));
    for e in &c.events {
        let time = e.time.as_ref().map(ToString::to_string).unwrap_or_default();
        println!(
            "  {time}  {:<9} {:<24} {}  (audit index {})",
            e.kind, e.actor, e.text, e.audit_index
        );
    }
}

pub(super) async fn alerts(a: AlertsArgs) -> anyhow::Result<()> {
    let mut client = a.who.client().await?;
    anyhow::ensure!(a.limit > 0, "--limit must be at least 1");
    let mut request = ListAlertsRequest {
        state: match a.state {
            None => AlertState::Unspecified,
            Some(AlertStateArg::Open) => AlertState::AlertOpen,
            Some(AlertStateArg::InCase) => AlertState::AlertInCase,
            Some(AlertStateArg::Dismissed) => AlertState::AlertDismissed,
        } as i32,
        rule: a.rule.to_lowercase(),
        agency: a.agency,
        operator: a.operator,
        page_token: a.page_token,
        ..ListAlertsRequest::default()
    };
    // Pages never reach past the limit, so the last one's token is exactly where the next listing starts.
    let mut listed = civex_proto::v1::ListAlertsResponse::default();
    loop {
        request.page_size = (a.limit - listed.alerts.len()).min(1000) as u32;
        let page = client
            .list_alerts(a.who.request(request.clone())?)
            .await
            .map_err(rpc_error)?
            .into_inner();
        listed.alerts.extend(page.alerts);
        listed.evaluated = page.evaluated;
        listed.next_page_token = page.next_page_token;
        if listed.next_page_token.is_empty() || listed.alerts.len() >= a.limit {
            break;
        }
        request.page_token.clone_from(&listed.next_page_token);
    }
    a.who.conn.show(&listed, |listed| {
        println!(
            "{:<26} {:<18} {:<28} {:>6} {:<10} summary",
            "alert", "rule", "official", "count", "state"
        );
        listed.alerts.iter().for_each(print_alert_row);
        println!(
            "({} alerts; the rules have run through log size {})",
            listed.alerts.len(),
            listed.evaluated
        );
        if !listed.next_page_token.is_empty() {
            println!("more: continue with --page-token {}", listed.next_page_token);
        }
    });
    Ok(())
}

pub(super) async fn alert(command: AlertCommand) -> anyhow::Result<()> {
    match command {
        AlertCommand::Show { who, id } => {
            let alert = who
                .client()
                .await?
                .get_alert(who.request(GetAlertRequest { alert_id: id })?)
                .await
                .map_err(rpc_error)?
                .into_inner();
            who.conn.show(&alert, print_alert);
        }
        AlertCommand::Dismiss { who, id, note } => {
            let alert = who
                .client()
                .await?
                .dismiss_alert(who.request(DismissAlertRequest { alert_id: id, note })?)
                .await
                .map_err(rpc_error)?
                .into_inner();
            who.conn.show(&alert, print_alert);
        }
    }
    Ok(())
}

pub(super) async fn watch(who: Auditor, citizen: String, note: String) -> anyhow::Result<()> {
    let entry = who
        .client()
        .await?
        .watch_citizen(who.request(WatchCitizenRequest {
            citizen_id: read_citizen(citizen)?,
            note,
        })?)
        .await
        .map_err(rpc_error)?
        .into_inner();
    who.conn.show(&entry, |e| {
        println!("watched: {} (pseudonym), by {}", e.citizen_ref, e.added_by)
    });
    Ok(())
}

pub(super) async fn unwatch(who: Auditor, citizen: String) -> anyhow::Result<()> {
    let entry = who
        .client()
        .await?
        .unwatch_citizen(who.request(UnwatchCitizenRequest {
            citizen_id: read_citizen(citizen)?,
        })?)
        .await
        .map_err(rpc_error)?
        .into_inner();
    who.conn
        .show(&entry, |e| println!("no longer watched: {} (pseudonym)", e.citizen_ref));
    Ok(())
}

pub(super) async fn watched(who: Auditor) -> anyhow::Result<()> {
    let list = who
        .client()
        .await?
        .list_watched(who.request(ListWatchedRequest {})?)
        .await
        .map_err(rpc_error)?
        .into_inner();
    who.conn.show(&list, |list| {
        println!("{:<64} {:<24} note", "citizen (pseudonym)", "added by");
        for w in &list.entries {
            println!("{:<64} {:<24} {}", w.citizen_ref, w.added_by, w.note);
        }
    });
    Ok(())
}

pub(super) async fn case(command: CaseCommand) -> anyhow::Result<()> {
    let update = |id: String, f: &dyn Fn(&mut UpdateCaseRequest)| {
        let mut request = UpdateCaseRequest {
            case_id: id,
            ..UpdateCaseRequest::default()
        };
        f(&mut request);
        request
    };
    let (who, request) = match command {
        CaseCommand::Open {
            who,
            title,
            alerts,
            assignee,
            only,
        } => {
            let request = OpenCaseRequest {
                title,
                alert_ids: alerts,
                assignee,
                all_of_operator: !only,
            };
            let case = who
                .client()
                .await?
                .open_case(who.request(request)?)
                .await
                .map_err(rpc_error)?
                .into_inner();
            who.conn.show(&case, print_case);
            return Ok(());
        }
        CaseCommand::List { who, state, assignee } => {
            let request = ListCasesRequest {
                state: match state {
                    None => CaseState::Unspecified,
                    Some(CaseStateArg::Open) => CaseState::CaseOpen,
                    Some(CaseStateArg::Investigating) => CaseState::CaseInvestigating,
                    Some(CaseStateArg::Closed) => CaseState::CaseClosed,
                } as i32,
                assignee,
                page_size: 1000,
                ..ListCasesRequest::default()
            };
            let list = who
                .client()
                .await?
                .list_cases(who.request(request)?)
                .await
                .map_err(rpc_error)?
                .into_inner();
            who.conn.show(&list, |list| {
                println!(
                    "{:<14} {:<14} {:<12} {:>6} title",
                    "case", "state", "assignee", "alerts"
                );
                for c in &list.cases {
                    println!(
                        "{:<14} {:<14} {:<12} {:>6} {}",
                        c.case_id,
                        case_state_name(c.state),
                        c.assignee,
                        c.alert_ids.len(),
                        c.title
                    );
                }
                if !list.next_page_token.is_empty() {
                    println!("more: over 1000 cases; narrow with --state or --assignee");
                }
            });
            return Ok(());
        }
        CaseCommand::Show { who, id } => {
            let case = who
                .client()
                .await?
                .get_case(who.request(GetCaseRequest { case_id: id })?)
                .await
                .map_err(rpc_error)?
                .into_inner();
            who.conn.show(&case, print_case);
            return Ok(());
        }
        CaseCommand::Note { who, id, text } => (who, update(id, &|r| r.note.clone_from(&text))),
        CaseCommand::Assign { who, id, to } => (who, update(id, &|r| r.assignee.clone_from(&to))),
        CaseCommand::Investigate { who, id } => (who, update(id, &|r| r.state = CaseState::CaseInvestigating as i32)),
        CaseCommand::Close {
            who,
            id,
            disposition,
            note,
        } => {
            let disposition = match disposition {
                DispositionArg::Justified => Disposition::Justified,
                DispositionArg::Misuse => Disposition::Misuse,
                DispositionArg::FalsePositive => Disposition::FalsePositive,
            } as i32;
            let request = update(id, &|r| {
                r.state = CaseState::CaseClosed as i32;
                r.disposition = disposition;
                r.note.clone_from(&note);
            });
            (who, request)
        }
    };
    let case = who
        .client()
        .await?
        .update_case(who.request(request)?)
        .await
        .map_err(rpc_error)?
        .into_inner();
    who.conn.show(&case, print_case);
    Ok(())
}
