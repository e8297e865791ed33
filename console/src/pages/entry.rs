//! `GET /entry/<index>`: one record as the log holds it, read from the
//! leaf itself (what is proven is what is shown), the consent it used and
//! its grant, and its inclusion proven against a signed checkpoint.

use axum::{
    extract::{Path, State},
    response::Response,
};
use civex_proto::v1::{AuditRecord, AuditSearchRequest, GetEntryRequest};
use maud::{Markup, html};
use prost::Message;

use super::{AppState, Ctx, Failure, Nav, checkpoints::outcome, search::decision_cell};
use crate::{
    format,
    gateway::{Outcome, by},
};

pub(crate) async fn page(State(app): State<AppState>, ctx: Ctx, Path(index): Path<String>) -> Response {
    let t = ctx.t();
    let body = match index.parse::<u64>() {
        Ok(index) => entry(&app, &ctx, index).await,
        Err(_) => Err(Failure::Input(format!("{}: {}", t.index, t.bad_index))),
    };
    ctx.page(Nav::Search, &format!("{} {index}", t.entry_title), body)
}

async fn entry(app: &AppState, ctx: &Ctx, index: u64) -> Result<Markup, Failure> {
    let t = ctx.t();
    let user = ctx.user.as_str();
    let entry = app
        .gateway
        .audit()
        .get_entry(by(user, GetEntryRequest { index }))
        .await?
        .into_inner();
    let record = AuditRecord::decode(entry.leaf.as_slice());
    let signed = app.gateway.checkpoint_holding(user, index).await?;
    let proof = match app.gateway.open(&signed) {
        Ok(cp) => app.gateway.inclusion(user, index, &entry.leaf, &cp).await?,
        Err(why) => Outcome::Failed(why),
    };
    let Ok(r) = record else {
        return Ok(html! { p.bad role="alert" { (t.undecodable) } });
    };
    let grant = match r.consent_id.as_str() {
        "" => None,
        consent_id => app
            .gateway
            .audit()
            .search(by(
                user,
                AuditSearchRequest {
                    consent_id: consent_id.to_owned(),
                    action: "ConsentService/Grant".to_owned(),
                    page_size: 1,
                    ..AuditSearchRequest::default()
                },
            ))
            .await?
            .into_inner()
            .entries
            .into_iter()
            .next(),
    };
    let list = |items: &[String]| html! { @for (i, s) in items.iter().enumerate() { @if i > 0 { ", " } code { (s) } } };
    Ok(html! {
        dl.facts {
            dt { (t.index) } dd { (index) }
            dt { (t.time) } dd { (format::timestamp(r.time.as_ref())) " (UTC+8)" }
            dt { (t.agency) } dd { (r.agency) }
            dt { (t.operator) } dd { (r.operator) }
            dt { (t.certificate) } dd { code { (r.certificate) } }
            dt { (t.action) } dd { (t.action_name(&r.action)) " " code { (r.action) } }
            dt { (t.decision) } dd { (decision_cell(t, r.decision, &r.reason)) }
            dt { (t.purpose) } dd { code { (r.purpose) } }
            dt { (t.scopes) } dd { (list(&r.scopes)) }
            dt { (t.citizen_ref) } dd {
                @if !r.citizen_ref.is_empty() {
                    a href={ "/search?citizen_ref=" (r.citizen_ref) } { code.hash { (r.citizen_ref) } }
                }
            }
            @if !r.related_refs.is_empty() {
                dt { (t.related) } dd { (list(&r.related_refs)) }
            }
            dt { (t.request_id) } dd { a href={ "/search?request_id=" (r.request_id) } { code { (r.request_id) } } }
            @if !r.subject.is_empty() { dt { (t.subject) } dd { code { (r.subject) } } }
            @if !r.note.is_empty() { dt { (t.note) } dd { (r.note) } }
        }
        section aria-labelledby="consent-heading" {
            h2 #consent-heading { (t.consent) }
            @if r.consent_id.is_empty() && r.consent_uses.is_empty() {
                p { (t.no_consent) }
            } @else {
                dl.facts {
                    @if !r.consent_id.is_empty() {
                        dt { (t.consent_id) } dd { a href={ "/search?consent_id=" (r.consent_id) } { code { (r.consent_id) } } }
                    }
                    @if !r.consent_uses.is_empty() {
                        dt { (t.consent_uses) } dd {
                            @for (i, id) in r.consent_uses.iter().enumerate() {
                                @if i > 0 { ", " }
                                a href={ "/search?consent_id=" (id) } { code { (id) } }
                            }
                        }
                    }
                    @if let Some(g) = &grant {
                        dt { (t.granted) } dd {
                            a href={ "/entry/" (g.index) } { (format::timestamp(g.time.as_ref())) }
                            " " (t.by) " " (g.agency) " / " (g.operator)
                        }
                        dt { (t.granted_for) } dd { code { (g.purpose) } " · " (list(&g.scopes)) }
                    }
                }
            }
        }
        section aria-labelledby="proof-heading" {
            h2 #proof-heading { (t.inclusion) }
            p { (outcome(t, &proof)) }
            p.muted { (t.inclusion_in(signed.tree_size)) " " code.hash { (hex::encode(&signed.root_hash)) } }
        }
    })
}
