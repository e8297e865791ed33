//! The oversight console over HTTP, against a real gateway over mTLS:
//! login with the one-time token, the session cookie, CSRF refusals, and
//! pages that show the calls a test made, each checked, with the
//! console's own calls in the log under the logged-in user.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use civex_audit::{clock::Clock, keys::Verifier};
use civex_console::{Console, ConsoleConfig};
use civex_proto::v1::{AuditSearchRequest, ListCasesRequest};
use civex_tests::TestGateway;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::oversight::{citizens, consents, lookup_with};

const AUDITOR: &str = "qujing-audit";

/// A console for `gw` on the gateway's clock, serving; and the login links it told, in order.
pub(crate) async fn console(gw: &TestGateway) -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let links = Arc::new(Mutex::new(Vec::new()));
    let told = links.clone();
    let mut config = ConsoleConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        gw.channel(AUDITOR).await,
        Verifier::parse(&gw.verifier_key).unwrap(),
    );
    config.on_login_link = Box::new(move |link| told.lock().unwrap().push(link.to_owned()));
    let clock = gw.clock.clone();
    config.clock = Arc::new(move || clock.now());
    let console = Console::bind(config).await.unwrap();
    let addr = console.local_addr();
    tokio::spawn(console.serve(std::future::pending()));
    while links.lock().unwrap().is_empty() {
        tokio::task::yield_now().await;
    }
    (addr, links)
}

/// An HTTP answer: status, headers (names lowercase), body.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request on a connection of its own.
async fn http(addr: SocketAddr, method: &str, path: &str, cookie: Option<&str>, form: Option<&str>) -> Answer {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(cookie) = cookie {
        request.push_str(&format!("Cookie: {cookie}\r\n"));
    }
    let body = form.unwrap_or_default();
    if form.is_some() {
        request.push_str(&format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let raw = String::from_utf8(raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Answer {
        status,
        headers,
        body: body.to_owned(),
    }
}

fn token(link: &str) -> &str {
    link.rsplit_once("token=").unwrap().1
}

/// The CSRF token in a page's forms.
fn csrf(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a form with a CSRF token") + 19;
    page[at..at + 32].to_owned()
}

#[tokio::test]
async fn an_auditor_logs_in_once_finds_the_calls_and_sees_them_proven() {
    let gw = TestGateway::start().await;
    let citizen = citizens(&gw, 1).remove(0);
    let consent = consents(&gw, std::slice::from_ref(&citizen)).await.remove(0);
    let index = lookup_with(&mut gw.exchange("qujing-psb").await, "officer-7", &citizen, &consent).await;
    // An investigation's look-up, whose disclosure is delayed (DESIGN §16).
    let investigation = civex_gateway::policy::purposes::INVESTIGATION;
    let secret = gw
        .grant(&citizen, "qujing-psb", &["ps.hukou.division"], investigation, 0)
        .await
        .consent_id;
    gw.exchange("qujing-psb")
        .await
        .query(civex_proto::v1::QueryRequest {
            purpose: investigation.into(),
            ..crate::consent::query(&citizen, &secret)
        })
        .await
        .unwrap();
    let (addr, links) = console(&gw).await;
    let first = links.lock().unwrap()[0].clone();
    assert!(first.starts_with(&format!("http://{addr}/login?token=")), "{first}");

    // Without a session, pages lead to the login page and forms are refused.
    let page = http(addr, "GET", "/search", None, None).await;
    assert_eq!((page.status, page.header("location")), (303, Some("/login")));
    assert_eq!(http(addr, "POST", "/cases", None, Some("title=x")).await.status, 403);

    // A wrong token and a bad user name start no session.
    let wrong = http(
        addr,
        "POST",
        "/login",
        None,
        Some("token=00000000000000000000000000000000&user=li.wei"),
    )
    .await;
    assert_eq!((wrong.status, wrong.header("set-cookie")), (403, None));
    let bad_user = format!("token={}&user=530302199003070011", token(&first));
    assert_eq!(http(addr, "POST", "/login", None, Some(&bad_user)).await.status, 400);

    let form = http(addr, "GET", &format!("/login?token={}", token(&first)), None, None).await;
    assert_eq!(form.status, 200);
    assert!(form.body.contains("name=\"user\""), "{}", form.body);
    assert_eq!(
        form.header("content-security-policy")
            .map(|c| c.starts_with("default-src 'self'")),
        Some(true)
    );
    let login = http(
        addr,
        "POST",
        "/login",
        None,
        Some(&format!("token={}&user=auditor.li", token(&first))),
    )
    .await;
    assert_eq!(login.status, 303);
    let cookie = login.header("set-cookie").unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let session = cookie.split(';').next().unwrap().to_owned();
    // The token is used up; the next one was told.
    let again = http(
        addr,
        "POST",
        "/login",
        None,
        Some(&format!("token={}&user=mallory", token(&first))),
    )
    .await;
    assert_eq!(again.status, 403);
    let next = links.lock().unwrap().last().unwrap().clone();
    assert_ne!(token(&next), token(&first));

    // The search finds the look-up, by citizen, with its request id.
    let found = http(
        addr,
        "GET",
        &format!("/search?citizen_id={citizen}"),
        Some(&session),
        None,
    )
    .await;
    assert_eq!(found.status, 200, "{}", found.body);
    assert!(found.body.contains(&format!("/entry/{index}")), "{}", found.body);
    assert!(found.body.contains(&format!("officer-7-{}", &citizen[14..])));
    assert!(!found.body.contains("/entry/9999"));

    // The entry shows its consent and a verified inclusion proof.
    let entry = http(addr, "GET", &format!("/entry/{index}?lang=en"), Some(&session), None).await;
    assert_eq!(entry.status, 200, "{}", entry.body);
    assert!(entry.body.contains("✓ verified"), "{}", entry.body);
    assert!(entry.body.contains(&consent) && entry.body.contains("hukou.settlement"));

    // The counter's history: the look-up, the ID shown masked.
    let history = http(
        addr,
        "GET",
        &format!("/history?citizen_id={citizen}"),
        Some(&session),
        None,
    )
    .await;
    assert_eq!(history.status, 200);
    assert!(history.body.contains("查询数据") && history.body.contains(&civex_masked(&citizen)));
    assert!(!history.body.contains(&format!("<dd>{citizen}</dd>")));
    assert!(
        !history.body.contains(investigation),
        "the investigation is not shown yet"
    );

    // A form without the session's CSRF token changes nothing.
    let forged = http(addr, "POST", "/cases", Some(&session), Some("title=forged")).await;
    assert_eq!(forged.status, 403);
    let cases = gw
        .oversight(AUDITOR)
        .await
        .list_cases(ListCasesRequest::default())
        .await
        .unwrap();
    assert!(cases.into_inner().cases.is_empty());

    // Bad input gets a clear error with the gateway's reason.
    let bad = http(
        addr,
        "GET",
        "/history?citizen_id=530302199003070012",
        Some(&session),
        None,
    )
    .await;
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("INVALID_CITIZEN_ID"), "{}", bad.body);

    // The checkpoints page checks every pair it shows.
    let checkpoints = http(addr, "GET", "/checkpoints", Some(&session), None).await;
    assert_eq!(checkpoints.status, 200);
    assert!(
        checkpoints.body.contains("✓") && !checkpoints.body.contains("✗"),
        "{}",
        checkpoints.body
    );

    // Logging out ends the session; its CSRF token is needed for that too.
    let overview = http(addr, "GET", "/", Some(&session), None).await;
    assert_eq!(overview.status, 200);
    let out = format!("csrf={}", csrf(&overview.body));
    assert_eq!(
        http(addr, "POST", "/logout", Some(&session), Some(&out)).await.status,
        200
    );
    assert_eq!(http(addr, "GET", "/", Some(&session), None).await.status, 303);

    // The console's own calls are in the log, under the user who made them.
    assert_recorded_under(
        &gw,
        "auditor.li",
        &[
            "AuditService/Search",
            "AuditService/GetEntry",
            "AuditService/InclusionProof",
            "AuditService/AccessHistory",
            "AuditService/Report",
        ],
    )
    .await;
}

/// Each of `actions` is in the log at least once under `operator`.
pub(crate) async fn assert_recorded_under(gw: &TestGateway, operator: &str, actions: &[&str]) {
    let mine = gw
        .audit(AUDITOR)
        .await
        .search(AuditSearchRequest {
            operator: operator.into(),
            page_size: 1000,
            ..AuditSearchRequest::default()
        })
        .await
        .unwrap()
        .into_inner()
        .entries;
    for action in actions {
        assert!(mine.iter().any(|e| e.action == *action), "no {action} by {operator}");
    }
}

/// The ID as a printed history shows it.
fn civex_masked(id: &str) -> String {
    format!("{}{}{}", &id[..6], "*".repeat(8), &id[14..])
}
