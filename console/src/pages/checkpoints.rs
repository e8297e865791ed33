//! `GET /checkpoints`: the signed checkpoints the log stored, newest
//! first, each signature checked and each checkpoint proven consistent
//! with the next older one.

use axum::{
    extract::{RawQuery, State},
    response::Response,
};
use futures::future::join_all;
use maud::{Markup, html};

use super::{AppState, Ctx, Failure, Fields, Nav};
use crate::{gateway::Outcome, i18n::Text};

/// Checkpoints a page shows.
const PAGE: u32 = 20;

pub(crate) async fn page(State(app): State<AppState>, ctx: Ctx, RawQuery(query): RawQuery) -> Response {
    let fields = Fields::query(query.as_deref());
    let body = checkpoints(&app, &ctx, &fields).await;
    ctx.page(Nav::Checkpoints, ctx.t().checkpoints_title, body)
}

async fn checkpoints(app: &AppState, ctx: &Ctx, fields: &Fields) -> Result<Markup, Failure> {
    let t = ctx.t();
    // One more than shown: the last one shown is checked against it.
    let (page, next) = app
        .gateway
        .checkpoints(&ctx.user, PAGE + 1, fields.get("page_token").to_owned())
        .await?;
    let opened: Vec<_> = page.iter().map(|cp| app.gateway.open(cp)).collect();
    let opened = &opened;
    let checks = join_all((0..page.len().min(PAGE as usize)).map(|i| async move {
        match (&opened[i], opened.get(i + 1)) {
            (Ok(newer), Some(Ok(older))) => app.gateway.consistency(&ctx.user, older, newer).await.map(Some),
            (_, Some(Err(why))) => Ok(Some(Outcome::Failed(format!("{}: {why}", t.older_checkpoint)))),
            (Err(_), Some(Ok(_))) => Ok(Some(Outcome::Failed(t.bad_signature.to_owned()))),
            (_, None) => Ok(None),
        }
    }))
    .await;
    let more = page.len() > PAGE as usize || !next.is_empty();
    let next_token = page
        .get(PAGE as usize - 1)
        .filter(|_| more)
        .map(|cp| cp.tree_size.to_string());
    Ok(html! {
        p { (t.checkpoints_intro) " " code { (app.gateway.key_name()) } }
        @if page.is_empty() {
            p { (t.no_checkpoints) }
        } @else {
            table {
                thead {
                    tr {
                        th scope="col" { (t.tree_size) }
                        th scope="col" { (t.root_hash) }
                        th scope="col" { (t.signature) }
                        th scope="col" { (t.consistent_with_older) }
                    }
                }
                tbody {
                    @for (i, check) in checks.into_iter().enumerate() {
                        @let cp = &page[i];
                        tr {
                            td.num { (cp.tree_size) }
                            td { code.hash { (hex::encode(&cp.root_hash)) } }
                            td { (outcome(t, &Outcome::of(&opened[i]))) }
                            td {
                                @match check? {
                                    Some(checked) => {
                                        (outcome(t, &checked)) " "
                                        span.muted { "(" (page[i + 1].tree_size) ")" }
                                    }
                                    None => span.muted { (t.oldest_checkpoint) },
                                }
                            }
                        }
                    }
                }
            }
            @if let Some(token) = next_token {
                p { a rel="next" href={ "/checkpoints?page_token=" (token) } { (t.older) } }
            }
        }
    })
}

/// A check's result, in words and a symbol, never colour alone.
pub(crate) fn outcome(t: &Text, outcome: &Outcome) -> Markup {
    match outcome {
        Outcome::Verified => html! { span.ok { "✓ " (t.verified) } },
        Outcome::Failed(why) => html! { span.bad role="alert" { "✗ " (t.failed) ": " (why) } },
    }
}
