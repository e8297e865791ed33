//! The console's routes (DESIGN §14, §17) and what every page shares: the
//! logged-in user, the language, CSRF checks, security headers and the
//! error page.
//!
//! A GET page renders from fresh calls; a form POSTs, is checked against
//! the session's CSRF token, makes its one call and redirects to the page
//! that shows the result.

mod alerts;
mod checkpoints;
mod entry;
mod history;
mod layout;
mod login;
mod overview;
mod search;

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, SystemTime},
};

use axum::{
    Router,
    extract::{DefaultBodyLimit, FromRequestParts, Request},
    http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts},
    middleware::{self, Next},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use maud::Markup;
use tonic::Status;

use crate::{
    ConsoleConfig,
    gateway::Gateway,
    i18n::{Lang, Text},
    session::{self, Sessions},
};

pub(crate) use layout::Nav;

/// Largest form a page accepts.
const MAX_FORM: usize = 64 * 1024;
/// The cookie that remembers the language chosen with `?lang=`.
const LANG_COOKIE: &str = "civex_lang";
const CSP: &str = "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'";

/// What the pages share.
pub(crate) struct App {
    pub(crate) addr: SocketAddr,
    pub(crate) sessions: Sessions,
    pub(crate) gateway: Gateway,
    pub(crate) on_login_link: Box<dyn Fn(&str) + Send + Sync>,
    session_lifetime: Duration,
    clock: Arc<dyn Fn() -> SystemTime + Send + Sync>,
}

impl App {
    pub(crate) fn new(config: ConsoleConfig, addr: SocketAddr) -> App {
        App {
            addr,
            sessions: Sessions::new(config.session_lifetime),
            gateway: Gateway::new(config.channel, config.verifier),
            on_login_link: config.on_login_link,
            session_lifetime: config.session_lifetime,
            clock: config.clock,
        }
    }

    fn now(&self) -> SystemTime {
        (self.clock)()
    }
}

type AppState = Arc<App>;

pub(crate) fn router(app: AppState) -> Router {
    Router::new()
        .route("/", get(overview::page))
        .route("/login", get(login::form).post(login::submit))
        .route("/logout", post(login::logout))
        .route("/search", get(search::page))
        .route("/entry/{index}", get(entry::page))
        .route("/history", get(history::page))
        .route("/alerts", get(alerts::list))
        .route("/alerts/{id}", get(alerts::show))
        .route("/alerts/{id}/dismiss", post(alerts::dismiss))
        .route("/cases", get(alerts::cases).post(alerts::open_case))
        .route("/cases/{id}", get(alerts::case).post(alerts::update_case))
        .route("/checkpoints", get(checkpoints::page))
        .route("/assets/console.css", get(layout::css))
        .route("/assets/console.js", get(layout::script))
        .route("/assets/icon.svg", get(layout::icon))
        .route("/favicon.ico", get(layout::icon))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_FORM))
        .layer(middleware::from_fn(headers))
        .with_state(app)
}

/// Security headers on every answer, and the language cookie when `?lang=` chose one.
async fn headers(request: Request, next: Next) -> Response {
    let chosen = request.uri().query().and_then(Lang::from_query);
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // Login links carry their token in the URL: no page tells another site where it came from.
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    if !h.contains_key(header::CACHE_CONTROL) {
        // Pages hold who looked at whom: never kept by the browser.
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if let Some(lang) = chosen
        && let Ok(cookie) = HeaderValue::from_str(&format!(
            "{LANG_COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age=31536000",
            lang.code()
        ))
    {
        h.append(header::SET_COOKIE, cookie);
    }
    response
}

/// The value of cookie `name`, if the request carries it.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The language of a request: `?lang=`, else the cookie, else Chinese.
fn lang_of(parts: &Parts) -> Lang {
    parts
        .uri
        .query()
        .and_then(Lang::from_query)
        .or_else(|| cookie(&parts.headers, LANG_COOKIE).and_then(Lang::from_code))
        .unwrap_or_default()
}

/// A request's language, for the pages without a session.
pub(crate) struct ReqLang(pub(crate) Lang);

impl<S: Sync> FromRequestParts<S> for ReqLang {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<ReqLang, Self::Rejection> {
        Ok(ReqLang(lang_of(parts)))
    }
}

/// A request's language and, on every page but the login page, its session.
pub(crate) struct Ctx {
    pub(crate) user: String,
    csrf: String,
    session_id: String,
    pub(crate) lang: Lang,
    /// The path and query, for the language links.
    pub(crate) here: String,
}

impl Ctx {
    pub(crate) fn t(&self) -> &'static Text {
        self.lang.text()
    }

    /// The hidden field every form of this session carries.
    pub(crate) fn csrf_field(&self) -> Markup {
        maud::html! { input type="hidden" name="csrf" value=(self.csrf); }
    }

    /// Refuses a form that does not carry this session's CSRF token.
    pub(crate) fn check(&self, form: &Fields) -> Result<(), Failure> {
        if session::same(form.get("csrf"), &self.csrf) {
            Ok(())
        } else {
            Err(Failure::Csrf)
        }
    }

    /// A whole page, or the error page for `body`'s failure.
    pub(crate) fn page(&self, nav: Nav, title: &str, body: Result<Markup, Failure>) -> Response {
        match body {
            Ok(body) => layout::page(self, nav, title, body).into_response(),
            Err(failure) => self.failure(nav, failure),
        }
    }

    /// The answer to a form: on to `then`, or the error page.
    pub(crate) fn after(&self, nav: Nav, done: Result<String, Failure>) -> Response {
        match done {
            Ok(then) => Redirect::to(&then).into_response(),
            Err(failure) => self.failure(nav, failure),
        }
    }

    fn failure(&self, nav: Nav, failure: Failure) -> Response {
        let t = self.t();
        let status = failure.status();
        let body = layout::failure(t, &failure);
        (status, layout::page(self, nav, t.error_title, body)).into_response()
    }
}

impl FromRequestParts<AppState> for Ctx {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Ctx, Response> {
        let lang = lang_of(parts);
        let here = parts
            .uri
            .path_and_query()
            .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned());
        let found =
            cookie(&parts.headers, session::COOKIE).and_then(|id| app.sessions.find(id).map(|s| (id.to_owned(), s)));
        match found {
            Some((session_id, s)) => Ok(Ctx {
                user: s.user,
                csrf: s.csrf,
                session_id,
                lang,
                here,
            }),
            // A page opened without a session goes to the login page; a
            // form sent without one is refused (it may be forged).
            None if parts.method == axum::http::Method::GET => Err(Redirect::to("/login").into_response()),
            None => Err((StatusCode::FORBIDDEN, login::needed(lang)).into_response()),
        }
    }
}

/// Why a page could not be shown or a form not be done.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The gateway refused or failed the call.
    Gateway(Status),
    /// What was typed cannot be asked: the message says which field.
    Input(String),
    /// A form without this session's CSRF token.
    Csrf,
    NotFound,
}

impl From<Status> for Failure {
    fn from(status: Status) -> Failure {
        Failure::Gateway(status)
    }
}

impl Failure {
    fn status(&self) -> StatusCode {
        use tonic::Code;
        match self {
            Failure::Input(_) => StatusCode::BAD_REQUEST,
            Failure::Csrf => StatusCode::FORBIDDEN,
            Failure::NotFound => StatusCode::NOT_FOUND,
            Failure::Gateway(s) => match s.code() {
                Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
                Code::NotFound => StatusCode::NOT_FOUND,
                Code::PermissionDenied | Code::Unauthenticated => StatusCode::FORBIDDEN,
                Code::FailedPrecondition | Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
                Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
                Code::Unavailable | Code::DeadlineExceeded => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::BAD_GATEWAY,
            },
        }
    }
}

async fn not_found(ctx: Ctx) -> Response {
    ctx.page(Nav::None, ctx.t().error_title, Err(Failure::NotFound))
}

/// The fields of a query string or a form, in order; a name may repeat.
pub(crate) struct Fields(Vec<(String, String)>);

impl Fields {
    pub(crate) fn parse(raw: &[u8]) -> Fields {
        Fields(form_urlencoded::parse(raw).into_owned().collect())
    }

    pub(crate) fn query(raw: Option<&str>) -> Fields {
        Fields::parse(raw.unwrap_or_default().as_bytes())
    }

    /// The first value of `name`, trimmed; empty if absent.
    pub(crate) fn get(&self, name: &str) -> &str {
        self.0.iter().find(|(k, _)| k == name).map_or("", |(_, v)| v.trim())
    }

    /// Every non-empty value of `name`.
    pub(crate) fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, v)| k == name && !v.trim().is_empty())
            .map(|(_, v)| v.trim().to_owned())
            .collect()
    }

    /// Whether any field other than `lang` has a value.
    pub(crate) fn any(&self) -> bool {
        self.0.iter().any(|(k, v)| k != "lang" && !v.is_empty())
    }

    /// The query string of these fields with `name` set to `value`.
    pub(crate) fn with(&self, name: &str, value: &str) -> String {
        let mut out = form_urlencoded::Serializer::new(String::new());
        for (k, v) in self.0.iter().filter(|(k, v)| k != name && k != "lang" && !v.is_empty()) {
            out.append_pair(k, v);
        }
        out.append_pair(name, value);
        out.finish()
    }
}

/// A time field of a form, checked.
pub(crate) fn time_field(t: &Text, fields: &Fields, name: &str) -> Result<Option<prost_types::Timestamp>, Failure> {
    let raw = fields.get(name);
    if raw.is_empty() {
        return Ok(None);
    }
    crate::format::parse_time(raw)
        .map(|time| Some(civex_audit::clock::timestamp(time)))
        .ok_or_else(|| Failure::Input(format!("{name}: {}", t.bad_time)))
}
