//! The oversight console in a real browser: Debian's chromium, driven by
//! playwright-core from `tests/browser/` (its lock file committed). This
//! test makes a working day of calls against a real gateway over mTLS,
//! starts the console on the gateway's clock, and runs
//! `tests/browser/console.test.mjs` against it with what it should find;
//! then checks in the log what the browser did.
//!
//! Nothing here is skipped: without chromium, the CJK font or the npm
//! packages the test fails and names the command that installs them
//! (`.ci/test` runs it on a fresh machine).

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use civex_proto::v1::{CaseState, Disposition, ListCasesRequest, QueryRequest, WatchCitizenRequest};
use civex_tests::{TestGateway, as_operator};

use crate::oversight::{alerts, citizens, consents, lookup_with, to_office_hours};

const AUDITOR: &str = "qujing-audit";
const CHROMIUM: &str = "/usr/bin/chromium";
const FONT: &str = "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc";
const INSTALL: &str = "run .ci/test, which installs them (apt-get install chromium fonts-wqy-microhei; \
                       npm ci --prefix tests/browser)";

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("browser")
}

/// Fails, naming the install command, when a part the browser test needs is missing.
fn require_parts() {
    let playwright = browser_dir().join("node_modules/playwright-core/package.json");
    for (part, path) in [
        ("Debian's chromium", Path::new(CHROMIUM)),
        ("the CJK font fonts-wqy-microhei", Path::new(FONT)),
        (
            "playwright-core from tests/browser/package-lock.json",
            playwright.as_path(),
        ),
    ] {
        assert!(path.exists(), "{part} is missing ({}): {INSTALL}", path.display());
    }
}

#[tokio::test]
async fn the_console_in_chromium_logs_in_finds_proves_prints_and_closes_a_case() {
    require_parts();
    let gw = TestGateway::start().await;
    to_office_hours(&gw);
    let people = citizens(&gw, 7);
    let (watched, others) = people.split_last().unwrap();
    gw.oversight(AUDITOR)
        .await
        .watch_citizen(as_operator(
            WatchCitizenRequest {
                citizen_id: watched.clone(),
                note: "browser test".into(),
            },
            "auditor.zhao",
        ))
        .await
        .unwrap();

    // A working day: each hour some look-ups by three officials and a
    // refused one (no consent), so the chart has bars of both kinds.
    let mut psb = gw.exchange("qujing-psb").await;
    for (hour, citizen) in others.iter().enumerate() {
        let consent = consents(&gw, std::slice::from_ref(citizen)).await.remove(0);
        for official in 0..=hour % 3 {
            lookup_with(&mut psb, &format!("officer-{official}"), citizen, &consent).await;
        }
        let refused = QueryRequest {
            citizen_id: citizen.clone(),
            attributes: vec!["ps.hukou.division".into()],
            purpose: "hukou.settlement".into(),
            operator: "officer-9".into(),
            request_id: format!("refused-{hour}"),
            ..QueryRequest::default()
        };
        psb.query(refused).await.unwrap_err();
        gw.clock.advance(Duration::from_secs(3600));
    }
    let consent = consents(&gw, std::slice::from_ref(watched)).await.remove(0);
    let index = lookup_with(&mut psb, "officer-7", watched, &consent).await;
    let request_id = format!("officer-7-{}", &watched[14..]);
    let raised = alerts(&gw).await;
    assert!(raised.iter().any(|a| a.rule == "watched_citizen"), "{raised:#?}");

    let (_, links) = crate::console::console(&gw).await;
    let link = links.lock().unwrap()[0].clone();

    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/browser-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let run = tokio::process::Command::new("node")
        .arg("--test")
        .arg("--test-reporter=spec")
        .arg("console.test.mjs")
        .current_dir(browser_dir())
        .env("CIVEX_LOGIN_LINK", &link)
        .env("CIVEX_CITIZEN", watched)
        .env("CIVEX_REQUEST_ID", &request_id)
        .env("CIVEX_ENTRY", index.to_string())
        .env("CIVEX_ARTIFACTS", &artifacts)
        .env("CHROMIUM", CHROMIUM)
        .kill_on_drop(true)
        .output();
    let run = tokio::time::timeout(Duration::from_secs(300), run)
        .await
        .expect("the browser tests ended within 5 minutes")
        .expect("node runs (it comes with the machine: /usr/bin/node)");
    let (out, err) = (
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr),
    );
    println!("{out}");
    eprintln!("{err}");
    assert!(run.status.success(), "the browser tests failed:\n{out}\n{err}");
    let told = links.lock().unwrap().clone();
    let [first, next] = &told[..] else {
        panic!("the first link and, after the login, the next: {told:?}")
    };
    assert_eq!(first, &link);
    assert_ne!(next, &link, "a used link is not told again");

    // What the browser did is in the log, under the user who logged in.
    let cases = gw
        .oversight(AUDITOR)
        .await
        .list_cases(ListCasesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .cases;
    let [case] = &cases[..] else {
        panic!("one case: {cases:#?}")
    };
    assert_eq!(
        (case.state, case.disposition),
        (CaseState::CaseClosed as i32, Disposition::Justified as i32)
    );
    crate::console::assert_recorded_under(
        &gw,
        "auditor.wang",
        &[
            "AuditService/Search",
            "AuditService/InclusionProof",
            "AuditService/AccessHistory",
            "OversightService/OpenCase",
            "OversightService/UpdateCase",
        ],
    )
    .await;
}
