//! `GET /login?token=…` (the form), `POST /login` (the session starts,
//! the token is used up and the next link told), `POST /logout`.

use axum::{
    body::Bytes,
    extract::{RawQuery, State},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
};
use maud::{Markup, html};

use super::{AppState, Ctx, Fields, Nav, ReqLang, layout};
use crate::{
    i18n::Lang,
    session::{COOKIE, LoginError, UserError},
};

pub(crate) async fn form(State(app): State<AppState>, ReqLang(lang): ReqLang, RawQuery(query): RawQuery) -> Response {
    let fields = Fields::query(query.as_deref());
    let token = fields.get("token");
    let here = format!("/login?{}", fields.with("lang", lang.code()));
    if token.is_empty() {
        return (StatusCode::OK, needed(lang)).into_response();
    }
    if !app.sessions.token_is_current(token) {
        return (StatusCode::FORBIDDEN, used(lang, &here)).into_response();
    }
    login_form(lang, &here, token, "", None).into_response()
}

pub(crate) async fn submit(State(app): State<AppState>, ReqLang(lang): ReqLang, body: Bytes) -> Response {
    let fields = Fields::parse(&body);
    let (token, user) = (fields.get("token"), fields.get("user"));
    let here = format!("/login?token={token}&lang={}", lang.code());
    match app.sessions.login(token, user) {
        Ok((id, _)) => {
            (app.on_login_link)(&app.sessions.login_link(app.addr));
            tracing::info!(user, "console login; the next login link was printed");
            let mut response = Redirect::to(&format!("/?lang={}", lang.code())).into_response();
            let cookie = format!(
                "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
                app.session_lifetime.as_secs()
            );
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                response.headers_mut().append(header::SET_COOKIE, value);
            }
            response
        }
        Err(LoginError::Token) => (StatusCode::FORBIDDEN, used(lang, &here)).into_response(),
        Err(LoginError::User(why)) => {
            (StatusCode::BAD_REQUEST, login_form(lang, &here, token, user, Some(why))).into_response()
        }
    }
}

pub(crate) async fn logout(State(app): State<AppState>, ctx: Ctx, body: Bytes) -> Response {
    if let Err(failure) = ctx.check(&Fields::parse(&body)) {
        return ctx.after(Nav::None, Err(failure));
    }
    app.sessions.logout(&ctx.session_id);
    let mut response = (StatusCode::OK, logged_out(ctx.lang)).into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_static("civex_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    response
}

fn login_form(lang: Lang, here: &str, token: &str, user: &str, problem: Option<UserError>) -> Markup {
    let t = lang.text();
    layout::bare(
        lang,
        here,
        t.login_title,
        html! {
            p { (t.login_intro) }
            form.login method="post" action={ "/login?lang=" (lang.code()) } {
                input type="hidden" name="token" value=(token);
                label for="user" { (t.user_name) }
                input #user type="text" name="user" value=(user) required autofocus autocomplete="username"
                    maxlength="64" pattern="[A-Za-z0-9._@\\-]+" aria-describedby="user-help";
                p #user-help .help { (t.user_help) }
                @if let Some(problem) = problem {
                    p.failure role="alert" { (t.user_error(problem)) }
                }
                button type="submit" { (t.log_in) }
            }
        },
    )
}

/// The page for a visitor without a session: where the login link is.
pub(crate) fn needed(lang: Lang) -> Markup {
    let t = lang.text();
    layout::bare(lang, "/login", t.login_title, html! { p { (t.login_needed) } })
}

fn used(lang: Lang, here: &str) -> Markup {
    let t = lang.text();
    layout::bare(
        lang,
        here,
        t.login_title,
        html! { p.failure role="alert" { (t.login_used) } },
    )
}

fn logged_out(lang: Lang) -> Markup {
    let t = lang.text();
    layout::bare(lang, "/login", t.logged_out, html! { p { (t.login_needed) } })
}
