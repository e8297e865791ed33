//! Alerts and cases: `GET /alerts`, `GET /alerts/<id>` and its dismissal,
//! `GET /cases`, `POST /cases` (open one), `GET /cases/<id>` and
//! `POST /cases/<id>` (note, assign, investigate, close).

use axum::{
    body::Bytes,
    extract::{Path, RawQuery, State},
    response::Response,
};
use civex_proto::v1::{
    Alert, AlertState, CaseState, DismissAlertRequest, Disposition, GetAlertRequest, GetCaseRequest, ListAlertsRequest,
    ListCasesRequest, OpenCaseRequest, UpdateCaseRequest,
};
use maud::{Markup, html};

use super::{AppState, Ctx, Failure, Fields, Nav};
use crate::{format, gateway::by, i18n::Text};

const PAGE: u32 = 50;

pub(crate) async fn list(State(app): State<AppState>, ctx: Ctx, RawQuery(query): RawQuery) -> Response {
    let fields = Fields::query(query.as_deref());
    let body = alerts(&app, &ctx, &fields).await;
    ctx.page(Nav::Alerts, ctx.t().alerts_title, body)
}

fn alert_state(t: &Text, raw: &str) -> Result<AlertState, Failure> {
    Ok(match raw {
        "" | "open" => AlertState::AlertOpen,
        "in_case" => AlertState::AlertInCase,
        "dismissed" => AlertState::AlertDismissed,
        "all" => AlertState::Unspecified,
        _ => return Err(Failure::Input(format!("state: {}", t.bad_state))),
    })
}

async fn alerts(app: &AppState, ctx: &Ctx, fields: &Fields) -> Result<Markup, Failure> {
    let t = ctx.t();
    let state = alert_state(t, fields.get("state"))?;
    let request = ListAlertsRequest {
        state: state as i32,
        rule: fields.get("rule").to_owned(),
        agency: fields.get("agency").to_owned(),
        operator: fields.get("operator").to_owned(),
        page_size: PAGE,
        page_token: fields.get("page_token").to_owned(),
        ..ListAlertsRequest::default()
    };
    let found = app
        .gateway
        .oversight()
        .list_alerts(by(&ctx.user, request))
        .await?
        .into_inner();
    let states = [
        ("open", t.state_open),
        ("in_case", t.state_in_case),
        ("dismissed", t.state_dismissed),
        ("all", t.all),
    ];
    let chosen = match fields.get("state") {
        "" => "open",
        s => s,
    };
    Ok(html! {
        form.filters method="get" action="/alerts" {
            div.field {
                label for="state" { (t.state) }
                select #state name="state" {
                    @for (value, label) in states { option value=(value) selected[value == chosen] { (label) } }
                }
            }
            div.field { label for="rule" { (t.rule) } input #rule type="text" name="rule" value=(fields.get("rule")); }
            div.field { label for="agency" { (t.agency) } input #agency type="text" name="agency" value=(fields.get("agency")); }
            div.field { label for="operator" { (t.operator) } input #operator type="text" name="operator" value=(fields.get("operator")); }
            button type="submit" { (t.filter) }
        }
        p.muted { (t.evaluated(found.evaluated)) }
        @if found.alerts.is_empty() {
            p { (t.no_alerts) }
        } @else if state == AlertState::AlertOpen {
            form method="post" action="/cases" {
                (ctx.csrf_field())
                (alert_rows(t, &found.alerts, Some(t.select_for_case)))
                fieldset.case-open {
                    legend { (t.open_case_with_selected) }
                    (case_fields(t))
                    button type="submit" { (t.open_case) }
                }
            }
        } @else {
            (alert_rows(t, &found.alerts, None))
        }
        @if !found.next_page_token.is_empty() {
            p { a rel="next" href={ "/alerts?" (fields.with("page_token", &found.next_page_token)) } { (t.next_page) } }
        }
    })
}

fn case_fields(t: &Text) -> Markup {
    html! {
        div.field { label for="title" { (t.case_title) } input #title type="text" name="title" required maxlength="200"; }
        div.field { label for="assignee" { (t.assignee) } input #assignee type="text" name="assignee" maxlength="64"; }
    }
}

/// Alerts as a table; with `select`, a checkbox per row labelled so.
pub(crate) fn alert_rows(t: &Text, alerts: &[Alert], select: Option<&str>) -> Markup {
    html! {
        table.alerts {
            thead {
                tr {
                    @if select.is_some() { th scope="col" { (t.select) } }
                    th scope="col" { (t.opened) }
                    th scope="col" { (t.rule) }
                    th scope="col" { (t.severity) }
                    th scope="col" { (t.agency) }
                    th scope="col" { (t.operator) }
                    th scope="col" { (t.count) }
                    th scope="col" { (t.summary) }
                    th scope="col" { (t.state) }
                }
            }
            tbody {
                @for a in alerts {
                    tr {
                        @if let Some(label) = select {
                            td { input type="checkbox" name="alert_ids" value=(a.alert_id) aria-label={ (label) " " (a.alert_id) }; }
                        }
                        td { a href={ "/alerts/" (a.alert_id) } { (format::timestamp(a.opened_at.as_ref())) } }
                        td { code { (a.rule) } }
                        td { (t.severity_name(a.severity)) }
                        td { (a.agency) }
                        td { (a.operator) }
                        td.num { (a.count) }
                        td { (a.summary) }
                        td { (t.alert_state_name(a.state)) }
                    }
                }
            }
        }
    }
}

pub(crate) async fn show(State(app): State<AppState>, ctx: Ctx, Path(id): Path<String>) -> Response {
    let body = alert(&app, &ctx, &id).await;
    ctx.page(Nav::Alerts, &format!("{} {id}", ctx.t().alert_title), body)
}

async fn alert(app: &AppState, ctx: &Ctx, id: &str) -> Result<Markup, Failure> {
    let t = ctx.t();
    let a = app
        .gateway
        .oversight()
        .get_alert(by(
            &ctx.user,
            GetAlertRequest {
                alert_id: id.to_owned(),
            },
        ))
        .await?
        .into_inner();
    Ok(html! {
        dl.facts {
            dt { (t.rule) } dd { code { (a.rule) } }
            dt { (t.severity) } dd { (t.severity_name(a.severity)) }
            dt { (t.state) } dd {
                (t.alert_state_name(a.state))
                @if !a.case_id.is_empty() { " · " a href={ "/cases/" (a.case_id) } { (t.case_title) " " (a.case_id) } }
            }
            dt { (t.opened) } dd { (format::timestamp(a.opened_at.as_ref())) }
            dt { (t.agency) } dd { (a.agency) }
            dt { (t.operator) } dd { (a.operator) }
            @if !a.citizen_ref.is_empty() {
                dt { (t.citizen_ref) } dd { a href={ "/search?citizen_ref=" (a.citizen_ref) } { code.hash { (a.citizen_ref) } } }
            }
            dt { (t.summary) } dd { (a.summary) }
            dt { (t.count) } dd { (a.count) }
            @if !a.note.is_empty() { dt { (t.note) } dd { (a.note) } }
            dt { (t.entries_raised) } dd.indices {
                @for (i, index) in a.indices.iter().enumerate() {
                    @if i > 0 { " " }
                    a href={ "/entry/" (index) } { (index) }
                }
            }
        }
        @if a.state == AlertState::AlertOpen as i32 {
            div.actions {
                form method="post" action={ "/alerts/" (a.alert_id) "/dismiss" } {
                    (ctx.csrf_field())
                    fieldset {
                        legend { (t.dismiss) }
                        div.field { label for="note" { (t.note) } textarea #note name="note" required maxlength="2000" {} }
                        button type="submit" { (t.dismiss) }
                    }
                }
                form method="post" action="/cases" {
                    (ctx.csrf_field())
                    input type="hidden" name="alert_ids" value=(a.alert_id);
                    fieldset {
                        legend { (t.open_case) }
                        (case_fields(t))
                        div.field.check {
                            input #all_of_operator type="checkbox" name="all_of_operator" value="true";
                            label for="all_of_operator" { (t.all_of_operator) }
                        }
                        button type="submit" { (t.open_case) }
                    }
                }
            }
        }
    })
}

pub(crate) async fn dismiss(State(app): State<AppState>, ctx: Ctx, Path(id): Path<String>, body: Bytes) -> Response {
    let form = Fields::parse(&body);
    let done = async {
        ctx.check(&form)?;
        let request = DismissAlertRequest {
            alert_id: id.clone(),
            note: form.get("note").to_owned(),
        };
        app.gateway.oversight().dismiss_alert(by(&ctx.user, request)).await?;
        Ok(format!("/alerts/{id}"))
    };
    ctx.after(Nav::Alerts, done.await)
}

pub(crate) async fn cases(State(app): State<AppState>, ctx: Ctx, RawQuery(query): RawQuery) -> Response {
    let fields = Fields::query(query.as_deref());
    let body = case_list(&app, &ctx, &fields).await;
    ctx.page(Nav::Cases, ctx.t().cases_title, body)
}

fn case_state(t: &Text, raw: &str) -> Result<CaseState, Failure> {
    Ok(match raw {
        "" | "all" => CaseState::Unspecified,
        "open" => CaseState::CaseOpen,
        "investigating" => CaseState::CaseInvestigating,
        "closed" => CaseState::CaseClosed,
        _ => return Err(Failure::Input(format!("state: {}", t.bad_state))),
    })
}

async fn case_list(app: &AppState, ctx: &Ctx, fields: &Fields) -> Result<Markup, Failure> {
    let t = ctx.t();
    let request = ListCasesRequest {
        state: case_state(t, fields.get("state"))? as i32,
        assignee: fields.get("assignee").to_owned(),
        page_size: PAGE,
        page_token: fields.get("page_token").to_owned(),
    };
    let found = app
        .gateway
        .oversight()
        .list_cases(by(&ctx.user, request))
        .await?
        .into_inner();
    let states = [
        ("all", t.all),
        ("open", t.case_open),
        ("investigating", t.case_investigating),
        ("closed", t.case_closed),
    ];
    let chosen = match fields.get("state") {
        "" => "all",
        s => s,
    };
    Ok(html! {
        form.filters method="get" action="/cases" {
            div.field {
                label for="state" { (t.state) }
                select #state name="state" {
                    @for (value, label) in states { option value=(value) selected[value == chosen] { (label) } }
                }
            }
            div.field { label for="assignee" { (t.assignee) } input #assignee type="text" name="assignee" value=(fields.get("assignee")); }
            button type="submit" { (t.filter) }
        }
        @if found.cases.is_empty() {
            p { (t.no_cases) }
        } @else {
            table.cases {
                thead {
                    tr {
                        th scope="col" { (t.case_title) }
                        th scope="col" { (t.state) }
                        th scope="col" { (t.assignee) }
                        th scope="col" { (t.opened) }
                        th scope="col" { (t.alerts) }
                        th scope="col" { (t.disposition) }
                    }
                }
                tbody {
                    @for c in &found.cases {
                        tr {
                            td { a href={ "/cases/" (c.case_id) } { (c.title) } }
                            td { (t.case_state_name(c.state)) }
                            td { (c.assignee) }
                            td { (format::timestamp(c.opened_at.as_ref())) }
                            td.num { (c.alert_ids.len()) }
                            td { (t.disposition_name(c.disposition)) }
                        }
                    }
                }
            }
        }
        @if !found.next_page_token.is_empty() {
            p { a rel="next" href={ "/cases?" (fields.with("page_token", &found.next_page_token)) } { (t.next_page) } }
        }
    })
}

pub(crate) async fn open_case(State(app): State<AppState>, ctx: Ctx, body: Bytes) -> Response {
    let form = Fields::parse(&body);
    let done = async {
        ctx.check(&form)?;
        let request = OpenCaseRequest {
            title: form.get("title").to_owned(),
            alert_ids: form.all("alert_ids"),
            assignee: form.get("assignee").to_owned(),
            all_of_operator: form.get("all_of_operator") == "true",
        };
        let case = app
            .gateway
            .oversight()
            .open_case(by(&ctx.user, request))
            .await?
            .into_inner();
        Ok(format!("/cases/{}", case.case_id))
    };
    ctx.after(Nav::Cases, done.await)
}

pub(crate) async fn case(State(app): State<AppState>, ctx: Ctx, Path(id): Path<String>) -> Response {
    let body = case_page(&app, &ctx, &id).await;
    ctx.page(Nav::Cases, &format!("{} {id}", ctx.t().case_title), body)
}

async fn case_page(app: &AppState, ctx: &Ctx, id: &str) -> Result<Markup, Failure> {
    let t = ctx.t();
    let c = app
        .gateway
        .oversight()
        .get_case(by(&ctx.user, GetCaseRequest { case_id: id.to_owned() }))
        .await?
        .into_inner();
    let closed = c.state == CaseState::CaseClosed as i32;
    let action = format!("/cases/{}", c.case_id);
    Ok(html! {
        dl.facts {
            dt { (t.case_title) } dd { (c.title) }
            dt { (t.state) } dd.case-state { (t.case_state_name(c.state)) }
            dt { (t.assignee) } dd { (c.assignee) }
            dt { (t.opened) } dd { (format::timestamp(c.opened_at.as_ref())) }
            @if closed {
                dt { (t.closed_at) } dd { (format::timestamp(c.closed_at.as_ref())) }
                dt { (t.disposition) } dd { (t.disposition_name(c.disposition)) }
            }
            dt { (t.alerts) } dd {
                @for (i, a) in c.alert_ids.iter().enumerate() {
                    @if i > 0 { ", " }
                    a href={ "/alerts/" (a) } { (a) }
                }
            }
        }
        section aria-labelledby="events-heading" {
            h2 #events-heading { (t.events) }
            ol.events {
                @for e in &c.events {
                    li {
                        (format::timestamp(e.time.as_ref())) " · " strong { (e.actor) } " · " (e.kind)
                        @if !e.text.is_empty() { ": " (e.text) }
                        @if e.audit_index > 0 { " · " a href={ "/entry/" (e.audit_index) } { (t.index) " " (e.audit_index) } }
                    }
                }
            }
        }
        @if !closed {
            div.actions {
                form method="post" action=(action) {
                    (ctx.csrf_field())
                    input type="hidden" name="op" value="note";
                    fieldset {
                        legend { (t.add_note) }
                        div.field { label for="note" { (t.note) } textarea #note name="note" required maxlength="2000" {} }
                        button type="submit" { (t.add_note) }
                    }
                }
                form method="post" action=(action) {
                    (ctx.csrf_field())
                    input type="hidden" name="op" value="assign";
                    fieldset {
                        legend { (t.assign) }
                        div.field { label for="assignee" { (t.assignee) } input #assignee type="text" name="assignee" required maxlength="64" value=(c.assignee); }
                        button type="submit" { (t.assign) }
                    }
                }
                @if c.state == CaseState::CaseOpen as i32 {
                    form method="post" action=(action) {
                        (ctx.csrf_field())
                        input type="hidden" name="op" value="investigate";
                        button type="submit" { (t.start_investigating) }
                    }
                }
                form method="post" action=(action) {
                    (ctx.csrf_field())
                    input type="hidden" name="op" value="close";
                    fieldset {
                        legend { (t.close_case) }
                        @for (value, d) in [("justified", Disposition::Justified), ("misuse", Disposition::Misuse), ("false_positive", Disposition::FalsePositive)] {
                            div.field.check {
                                input type="radio" name="disposition" id={ "d-" (value) } value=(value) required;
                                label for={ "d-" (value) } { (t.disposition_name(d as i32)) }
                            }
                        }
                        div.field { label for="close-note" { (t.note) } textarea #close-note name="note" maxlength="2000" {} }
                        button type="submit" { (t.close_case) }
                    }
                }
            }
        }
    })
}

pub(crate) async fn update_case(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let form = Fields::parse(&body);
    let t = ctx.t();
    let done = async {
        ctx.check(&form)?;
        let mut request = UpdateCaseRequest {
            case_id: id.clone(),
            note: form.get("note").to_owned(),
            ..UpdateCaseRequest::default()
        };
        match form.get("op") {
            "note" => {}
            "assign" => request.assignee = form.get("assignee").to_owned(),
            "investigate" => request.state = CaseState::CaseInvestigating as i32,
            "close" => {
                request.state = CaseState::CaseClosed as i32;
                request.disposition = match form.get("disposition") {
                    "justified" => Disposition::Justified,
                    "misuse" => Disposition::Misuse,
                    "false_positive" => Disposition::FalsePositive,
                    _ => return Err(Failure::Input(format!("disposition: {}", t.bad_disposition))),
                } as i32;
            }
            _ => return Err(Failure::Input(format!("op: {}", t.bad_op))),
        }
        app.gateway.oversight().update_case(by(&ctx.user, request)).await?;
        Ok(format!("/cases/{id}"))
    };
    ctx.after(Nav::Cases, done.await)
}
