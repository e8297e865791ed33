//! The page shell: the navigation, the language switch, the signed-in
//! user and the log-out button; the error page; the embedded assets.

use axum::{
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use maud::{DOCTYPE, Markup, html};

use super::{Ctx, Failure};
use crate::i18n::{Lang, Text};

const CSS: &str = include_str!("../../assets/console.css");
const SCRIPT: &str = include_str!("../../assets/console.js");
const ICON: &str = include_str!("../../assets/icon.svg");

/// Which navigation entry a page belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Nav {
    Overview,
    Search,
    History,
    Alerts,
    Cases,
    Checkpoints,
    None,
}

pub(crate) fn page(ctx: &Ctx, nav: Nav, title: &str, body: Markup) -> Markup {
    let t = ctx.t();
    let links = [
        (Nav::Overview, "/", t.nav_overview),
        (Nav::Search, "/search", t.nav_search),
        (Nav::History, "/history", t.nav_history),
        (Nav::Alerts, "/alerts", t.nav_alerts),
        (Nav::Cases, "/cases", t.nav_cases),
        (Nav::Checkpoints, "/checkpoints", t.nav_checkpoints),
    ];
    html! {
        (DOCTYPE)
        html lang=(ctx.lang.html()) {
            (head(title))
            body {
                a.skip href="#main" { (t.skip_to_content) }
                header.top {
                    span.brand { (t.brand) }
                    nav aria-label=(t.nav_label) {
                        ul {
                            @for (which, href, label) in links {
                                li {
                                    @if which == nav {
                                        a href=(href) aria-current="page" { (label) }
                                    } @else {
                                        a href=(href) { (label) }
                                    }
                                }
                            }
                        }
                    }
                    div.who {
                        (languages(ctx.lang, &ctx.here))
                        span { (t.signed_in_as) " " strong { (ctx.user) } }
                        form method="post" action="/logout" {
                            (ctx.csrf_field())
                            button type="submit" { (t.log_out) }
                        }
                    }
                }
                main #main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// A page for someone not logged in.
pub(crate) fn bare(lang: Lang, here: &str, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang=(lang.html()) {
            (head(title))
            body {
                header.top { span.brand { (lang.text().brand) } div.who { (languages(lang, here)) } }
                main #main { h1 { (title) } (body) }
            }
        }
    }
}

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · civex" }
            link rel="icon" type="image/svg+xml" href="/assets/icon.svg";
            link rel="stylesheet" href="/assets/console.css";
            script src="/assets/console.js" defer {}
        }
    }
}

/// Links to this page (`here`, a path and query) in each language.
fn languages(current: Lang, here: &str) -> Markup {
    let (path, query) = here.split_once('?').unwrap_or((here, ""));
    let fields = super::Fields::query(Some(query));
    html! {
        ul.lang aria-label=(current.text().language) {
            @for lang in Lang::ALL {
                li {
                    a href={ (path) "?" (fields.with("lang", lang.code())) } lang=(lang.html())
                        aria-current=[(lang == current).then_some("true")] { (lang.name()) }
                }
            }
        }
    }
}

/// What went wrong, in words, with the gateway's reason where it gave one.
pub(crate) fn failure(t: &Text, failure: &Failure) -> Markup {
    html! {
        div.failure role="alert" {
            @match failure {
                Failure::Gateway(status) => {
                    p { (t.gateway_refused) }
                    dl {
                        dt { (t.reason) } dd { code { (reason(status)) } }
                        dt { (t.message) } dd { (status.message()) }
                        dt { (t.grpc_status) } dd { code { (format!("{:?}", status.code())) } }
                    }
                }
                Failure::Input(why) => p { (t.bad_input) ": " (why) },
                Failure::Csrf => p { (t.csrf_refused) },
                Failure::NotFound => p { (t.not_found) },
            }
        }
    }
}

/// The civex reason a status carries (`google.rpc.ErrorInfo`), or its code.
pub(crate) fn reason(status: &tonic::Status) -> String {
    use tonic_types::StatusExt;
    status
        .get_details_error_info()
        .map(|info| info.reason)
        .unwrap_or_else(|| format!("{:?}", status.code()))
}

pub(crate) async fn css() -> Response {
    asset("text/css; charset=utf-8", CSS)
}

pub(crate) async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

/// The tab icon; linked from every page, and served at `/favicon.ico` too
/// for clients that ask there whatever the page says.
pub(crate) async fn icon() -> Response {
    asset("image/svg+xml", ICON)
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
    response
}
