//! `GET /search`: the filters of `AuditSearchRequest` (DESIGN §13) as a
//! form and as query parameters of the same names, results paged by log
//! index, each row opening its entry.

use axum::{
    extract::{RawQuery, State},
    response::Response,
};
use civex_proto::v1::{AuditEntry, AuditSearchRequest, Decision};
use maud::{Markup, html};

use super::{AppState, Ctx, Failure, Fields, Nav, time_field};
use crate::{format, gateway::by, i18n::Text};

/// Actions offered as suggestions in the action field.
const ACTIONS: &[&str] = &[
    "ExchangeService/Query",
    "ExchangeService/Check",
    "ConsentService/Grant",
    "ConsentService/Withdraw",
    "AuditService/Search",
    "AuditService/AccessHistory",
    "AuditService/GetEntry",
    "AdminService/SuspendAgency",
    "OversightService/OpenCase",
];

pub(crate) async fn page(State(app): State<AppState>, ctx: Ctx, RawQuery(query): RawQuery) -> Response {
    let fields = Fields::query(query.as_deref());
    let body = search(&app, &ctx, &fields).await;
    ctx.page(Nav::Search, ctx.t().search_title, body)
}

async fn search(app: &AppState, ctx: &Ctx, fields: &Fields) -> Result<Markup, Failure> {
    let t = ctx.t();
    let form = form(t, fields);
    if !fields.any() {
        return Ok(html! { (form) p.help { (t.search_help) } });
    }
    let request = AuditSearchRequest {
        citizen_id: fields.get("citizen_id").to_owned(),
        citizen_ref: fields.get("citizen_ref").to_owned(),
        agency: fields.get("agency").to_owned(),
        operator: fields.get("operator").to_owned(),
        action: fields.get("action").to_owned(),
        actions: fields.all("actions"),
        decision: decision(t, fields.get("decision"))? as i32,
        since: time_field(t, fields, "since")?,
        until: time_field(t, fields, "until")?,
        request_id: fields.get("request_id").to_owned(),
        consent_id: fields.get("consent_id").to_owned(),
        page_size: page_size(t, fields.get("page_size"))?,
        page_token: fields.get("page_token").to_owned(),
    };
    let found = app.gateway.audit().search(by(&ctx.user, request)).await?.into_inner();
    Ok(html! {
        (form)
        section aria-labelledby="results-heading" {
            h2 #results-heading { (t.results) }
            @if found.entries.is_empty() {
                p { (t.no_results) }
            } @else {
                p.muted { (t.results_from(found.entries[0].index, found.entries[found.entries.len() - 1].index)) }
                (entries(t, &found.entries))
            }
            @if !found.next_page_token.is_empty() {
                p { a rel="next" href={ "/search?" (fields.with("page_token", &found.next_page_token)) } { (t.next_page) } }
            } @else if !found.entries.is_empty() {
                p.muted { (t.no_more) }
            }
        }
    })
}

fn decision(t: &Text, raw: &str) -> Result<Decision, Failure> {
    match raw.to_ascii_lowercase().as_str() {
        "" | "any" => Ok(Decision::Unspecified),
        "allow" | "decision_allow" => Ok(Decision::Allow),
        "deny" | "decision_deny" => Ok(Decision::Deny),
        _ => Err(Failure::Input(format!("decision: {}", t.bad_decision))),
    }
}

fn page_size(t: &Text, raw: &str) -> Result<u32, Failure> {
    match raw {
        "" => Ok(50),
        raw => raw
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| Failure::Input(format!("page_size: {}", t.bad_page_size))),
    }
}

fn form(t: &Text, fields: &Fields) -> Markup {
    let text = |name: &'static str, label: &str, help: Option<&str>| {
        html! {
            div.field {
                label for=(name) { (label) }
                input id=(name) type="text" name=(name) value=(fields.get(name)) autocomplete="off";
                @if let Some(help) = help { small { (help) } }
            }
        }
    };
    let when = |name: &'static str, label: &str| {
        html! {
            div.field {
                label for=(name) { (label) " (UTC+8)" }
                input id=(name) type="datetime-local" name=(name) value=(local_value(fields.get(name)));
            }
        }
    };
    let decision = fields.get("decision").to_ascii_lowercase();
    html! {
        form.search method="get" action="/search" {
            fieldset {
                legend { (t.filters) }
                (text("citizen_id", t.citizen_id, Some(t.citizen_id_help)))
                (text("citizen_ref", t.citizen_ref, None))
                (text("agency", t.agency, None))
                (text("operator", t.operator, None))
                div.field {
                    label for="action" { (t.action) }
                    input #action type="text" name="action" value=(fields.get("action")) list="actions" autocomplete="off";
                    datalist #actions { @for a in ACTIONS { option value=(a) {} } }
                }
                div.field {
                    label for="decision" { (t.decision) }
                    select #decision name="decision" {
                        option value="" selected[decision.is_empty()] { (t.any) }
                        option value="allow" selected[decision == "allow"] { (t.allowed) }
                        option value="deny" selected[decision == "deny"] { (t.denied) }
                    }
                }
                (when("since", t.since))
                (when("until", t.until))
                (text("request_id", t.request_id, None))
                (text("consent_id", t.consent_id, None))
                div.field {
                    label for="page_size" { (t.page_size) }
                    input #page_size type="number" name="page_size" min="1" max="1000" value=(fields.get("page_size"));
                }
            }
            button type="submit" { (t.search) }
            " "
            a href="/search" { (t.clear) }
        }
    }
}

/// A time given as RFC 3339 shown in a `datetime-local` field (UTC+8).
fn local_value(raw: &str) -> String {
    match format::parse_time(raw) {
        Some(t) => format::time(t).replacen(' ', "T", 1),
        None => raw.to_owned(),
    }
}

/// Entries as a table, each opening its entry page.
pub(crate) fn entries(t: &Text, entries: &[AuditEntry]) -> Markup {
    html! {
        table.entries {
            thead {
                tr {
                    th scope="col" { (t.index) }
                    th scope="col" { (t.time) }
                    th scope="col" { (t.agency) }
                    th scope="col" { (t.operator) }
                    th scope="col" { (t.action) }
                    th scope="col" { (t.decision) }
                    th scope="col" { (t.purpose) }
                    th scope="col" { (t.citizen_ref) }
                    th scope="col" { (t.request_id) }
                }
            }
            tbody {
                @for e in entries {
                    tr {
                        td.num { a href={ "/entry/" (e.index) } { (e.index) } }
                        td { (format::timestamp(e.time.as_ref())) }
                        td { (e.agency) }
                        td { (e.operator) }
                        td { (t.action_name(&e.action)) }
                        td { (decision_cell(t, e.decision, &e.reason)) }
                        td { (e.purpose) }
                        td {
                            @if !e.citizen_ref.is_empty() {
                                a href={ "/search?citizen_ref=" (e.citizen_ref) } title=(e.citizen_ref) { code { (format::short(&e.citizen_ref)) } }
                            }
                        }
                        td { code { (e.request_id) } }
                    }
                }
            }
        }
    }
}

/// Allowed, or refused with its reason: in words, not colour alone.
pub(crate) fn decision_cell(t: &Text, decision: i32, reason: &str) -> Markup {
    if decision == Decision::Deny as i32 {
        html! { span.denied { "✗ " (t.denied) } " " code { (reason) } }
    } else {
        html! { span.allowed { "✓ " (t.allowed) } }
    }
}
