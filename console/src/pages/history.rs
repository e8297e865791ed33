//! `GET /history?citizen_id=…`: a citizen's access history, the page a
//! registrar at a service counter prints and hands over: who looked at
//! the citizen's data, when and for what purpose, and every change of
//! their consents.

use axum::{
    extract::{RawQuery, State},
    response::Response,
};
use civex_proto::v1::AccessHistoryRequest;
use maud::{Markup, html};

use super::{AppState, Ctx, Failure, Fields, Nav};
use crate::{format, gateway::by};

/// Entries one printed page holds at most; more are paged.
const PAGE: u32 = 500;

pub(crate) async fn page(State(app): State<AppState>, ctx: Ctx, RawQuery(query): RawQuery) -> Response {
    let fields = Fields::query(query.as_deref());
    let body = history(&app, &ctx, &fields).await;
    ctx.page(Nav::History, ctx.t().history_title, body)
}

async fn history(app: &AppState, ctx: &Ctx, fields: &Fields) -> Result<Markup, Failure> {
    let t = ctx.t();
    let citizen = fields.get("citizen_id");
    let form = html! {
        form.history method="get" action="/history" {
            div.field {
                label for="citizen_id" { (t.citizen_id) }
                input #citizen_id type="text" name="citizen_id" value=(citizen) required autocomplete="off"
                    inputmode="numeric" maxlength="18";
            }
            button type="submit" { (t.show_history) }
        }
    };
    if citizen.is_empty() {
        return Ok(html! { (form) p.help { (t.history_help) } });
    }
    let found = app
        .gateway
        .audit()
        .access_history(by(
            &ctx.user,
            AccessHistoryRequest {
                citizen_id: citizen.to_owned(),
                page_size: PAGE,
                page_token: fields.get("page_token").to_owned(),
            },
        ))
        .await?
        .into_inner();
    Ok(html! {
        div.no-print { (form) }
        article.printable aria-labelledby="printed-heading" {
            h2 #printed-heading { (t.history_heading) }
            dl.facts {
                dt { (t.citizen_id) } dd { (format::masked_id(citizen)) }
                dt { (t.printed_at) } dd { (format::time(app.now())) " (UTC+8)" }
                dt { (t.printed_by) } dd { (ctx.user) }
            }
            @if found.entries.is_empty() {
                p { (t.history_empty) }
            } @else {
                table {
                    thead {
                        tr {
                            th scope="col" { (t.time) }
                            th scope="col" { (t.who) }
                            th scope="col" { (t.what) }
                            th scope="col" { (t.purpose) }
                            th scope="col" { (t.scopes) }
                            th scope="col" { (t.index) }
                        }
                    }
                    tbody {
                        @for e in &found.entries {
                            tr {
                                td { (format::timestamp(e.time.as_ref())) }
                                td { (e.agency) @if !e.operator.is_empty() { " / " (e.operator) } }
                                td { (t.action_name(&e.action)) }
                                td { code { (e.purpose) } }
                                td { @for (i, s) in e.scopes.iter().enumerate() { @if i > 0 { ", " } code { (s) } } }
                                td.num { (e.index) }
                            }
                        }
                    }
                }
            }
            p.muted { (t.history_footer) }
        }
        div.no-print {
            button type="button" data-print { (t.print) }
            @if !found.next_page_token.is_empty() {
                " "
                a rel="next" href={ "/history?" (fields.with("page_token", &found.next_page_token)) } { (t.next_page) }
            }
        }
    })
}
