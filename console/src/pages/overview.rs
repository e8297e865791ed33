//! `GET /`: the log's size, the newest checkpoint and whether it extends
//! the one before, calls and refusals per hour over the last day (chart
//! and table), per agency, and the open alerts.

use std::{
    collections::BTreeMap,
    time::{Duration, UNIX_EPOCH},
};

use axum::{extract::State, response::Response};
use civex_proto::v1::{AlertState, Decision, ListAlertsRequest, ReportRequest, SignedCheckpoint};
use maud::{Markup, html};

use super::{AppState, Ctx, Failure, Nav, alerts::alert_rows, checkpoints::outcome};
use crate::{
    chart::{self, Hour},
    format,
    gateway::{Outcome, by},
};

const HOUR: Duration = Duration::from_secs(3600);
/// Open alerts the overview lists.
const ALERTS_SHOWN: u32 = 10;

pub(crate) async fn page(State(app): State<AppState>, ctx: Ctx) -> Response {
    let body = overview(&app, &ctx).await;
    ctx.page(Nav::Overview, ctx.t().overview_title, body)
}

async fn overview(app: &AppState, ctx: &Ctx) -> Result<Markup, Failure> {
    let t = ctx.t();
    let user = ctx.user.as_str();
    let now = app.now();
    let this_hour = UNIX_EPOCH + HOUR * (now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() / 3600) as u32;
    let since = this_hour - HOUR * 23;
    let report = ReportRequest {
        since: Some(civex_audit::clock::timestamp(since)),
        until: Some(civex_audit::clock::timestamp(now)),
        allowed: true,
        bucket_seconds: 3600,
        ..ReportRequest::default()
    };
    let open = ListAlertsRequest {
        state: AlertState::AlertOpen as i32,
        page_size: ALERTS_SHOWN,
        ..ListAlertsRequest::default()
    };
    let (checkpoints, report, alerts) = tokio::join!(
        app.gateway.checkpoints(user, 2, String::new()),
        async { app.gateway.audit().report(by(user, report)).await },
        async { app.gateway.oversight().list_alerts(by(user, open)).await },
    );
    let (checkpoints, _) = checkpoints?;
    let (rows, alerts) = (report?.into_inner().rows, alerts?.into_inner());

    let mut hours: Vec<Hour> = (0..24)
        .map(|i| Hour {
            start: since + HOUR * i,
            calls: 0,
            refusals: 0,
        })
        .collect();
    let mut agencies: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for row in &rows {
        let denied = u64::from(row.decision == Decision::Deny as i32) * row.count;
        let start = format::system_time(row.bucket_start.as_ref());
        if let Some(h) = hours.iter_mut().find(|h| Some(h.start) == start) {
            h.calls += row.count;
            h.refusals += denied;
        }
        let a = agencies.entry(row.agency.clone()).or_default();
        a.0 += row.count;
        a.1 += denied;
    }

    let newest = latest(app, ctx, &checkpoints).await?;
    Ok(html! {
        section.summary aria-labelledby="log-heading" {
            h2 #log-heading { (t.log_heading) }
            (newest)
        }
        section aria-labelledby="day-heading" {
            h2 #day-heading { (t.day_heading) }
            div.chart-and-table {
                div.chart-side {
                    figure { (chart::hours(t, &hours)) }
                    table {
                        caption { (t.per_agency) }
                        thead { tr { th scope="col" { (t.agency) } th scope="col" { (t.calls) } th scope="col" { (t.refusals) } } }
                        tbody {
                            @for (agency, (calls, refusals)) in &agencies {
                                tr {
                                    th scope="row" { a href={ "/search?agency=" (agency) } { (agency) } }
                                    td.num { (calls) }
                                    td.num { (refusals) }
                                }
                            }
                        }
                    }
                }
                table.hours {
                    caption { (t.per_hour) }
                    thead { tr { th scope="col" { (t.hour) } th scope="col" { (t.calls) } th scope="col" { (t.refusals) } } }
                    tbody {
                        @for h in &hours {
                            tr { th scope="row" { (format::hour(h.start)) } td.num { (h.calls) } td.num { (h.refusals) } }
                        }
                    }
                    tfoot {
                        tr {
                            th scope="row" { (t.total) }
                            td.num { (hours.iter().map(|h| h.calls).sum::<u64>()) }
                            td.num { (hours.iter().map(|h| h.refusals).sum::<u64>()) }
                        }
                    }
                }
            }
        }
        section aria-labelledby="alerts-heading" {
            h2 #alerts-heading { (t.open_alerts) }
            @if alerts.alerts.is_empty() {
                p { (t.no_open_alerts) }
            } @else {
                (alert_rows(t, &alerts.alerts, None))
                @if !alerts.next_page_token.is_empty() {
                    p { a href="/alerts?state=open" { (t.all_open_alerts) } }
                }
            }
        }
    })
}

/// The newest checkpoint, checked, and whether it extends the one before.
async fn latest(app: &AppState, ctx: &Ctx, checkpoints: &[SignedCheckpoint]) -> Result<Markup, Failure> {
    let t = ctx.t();
    let Some(newest) = checkpoints.first() else {
        return Ok(html! { p { (t.no_checkpoints) } });
    };
    let opened = app.gateway.open(newest);
    let extends = match (&opened, checkpoints.get(1).map(|cp| app.gateway.open(cp))) {
        (Ok(newer), Some(Ok(older))) => Some((older.size, app.gateway.consistency(&ctx.user, &older, newer).await?)),
        (_, Some(Err(why))) => Some((checkpoints[1].tree_size, Outcome::Failed(why))),
        _ => None,
    };
    Ok(html! {
        dl.facts {
            dt { (t.tree_size) } dd { (newest.tree_size) }
            dt { (t.root_hash) } dd { code.hash { (hex::encode(&newest.root_hash)) } }
            dt { (t.signature) } dd { (outcome(t, &Outcome::of(&opened))) }
            @if let Some((size, checked)) = extends {
                dt { (t.consistent_with_previous) " (" (size) ")" } dd { (outcome(t, &checked)) }
            }
        }
        p { a href="/checkpoints" { (t.all_checkpoints) } }
    })
}
