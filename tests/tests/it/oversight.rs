//! Oversight through the public interface (DESIGN §13): each alert rule
//! raises exactly its own alert from the calls that should raise it, with
//! the manual clock driving the windows; the watch list; cases; and the new
//! search filters and reports.

use std::{
    collections::BTreeSet,
    time::{Duration, SystemTime},
};

use civex_adapters::Department;
use civex_gateway::{clock::Clock, config::Config};
use civex_proto::v1::{
    Alert, AlertState, AuditSearchRequest, CaseState, DismissAlertRequest, Disposition, GetAlertRequest,
    GetCaseRequest, GrantConsentRequest, ListAlertsRequest, OpenCaseRequest, QueryRequest, UnwatchCitizenRequest,
    UpdateCaseRequest, WatchCitizenRequest, oversight_service_client::OversightServiceClient,
};
use civex_tests::{TestGateway, as_operator, reason};
use tonic::transport::Channel;

const AUDITOR: &str = "qujing-audit";
const ME: &str = "auditor-1";

/// Unix seconds of the next Monday 10:00 in UTC+8 after `now`: office hours.
fn next_monday_morning(now: SystemTime) -> u64 {
    let now = now.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
    let local_day = (now + 8 * 3600) / 86_400;
    // 1970-01-01 was a Thursday: Monday is 0.
    let weekday = (local_day + 3) % 7;
    (local_day + 7 - weekday) * 86_400 + 10 * 3600 - 8 * 3600
}

/// Moves the clock to the next Monday 10:00 in UTC+8.
pub(crate) fn to_office_hours(gw: &TestGateway) {
    let now = gw.clock.now();
    let target = next_monday_morning(now);
    gw.clock.advance(Duration::from_secs(
        target - now.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs(),
    ));
}

/// The demo's public-security citizens, `n` of them.
pub(crate) fn citizens(gw: &TestGateway, n: usize) -> Vec<String> {
    gw.records(Department::PublicSecurity)
        .iter()
        .take(n)
        .map(|r| r["citizen_id"].as_str().unwrap().to_owned())
        .collect()
}

/// A consent for `qujing-psb` to read each citizen's division, used a
/// minute and more later (so that no first use is "within seconds").
pub(crate) async fn consents(gw: &TestGateway, citizens: &[String]) -> Vec<String> {
    let mut ids = Vec::new();
    for c in citizens {
        ids.push(
            gw.grant(c, "qujing-psb", &["ps.hukou.division"], "hukou.settlement", 0)
                .await
                .consent_id,
        );
    }
    gw.clock.advance(Duration::from_secs(61));
    ids
}

/// A lookup by `operator` of `qujing-psb`; its audit index.
async fn lookup(gw: &TestGateway, operator: &str, citizen: &str, consent: &str) -> u64 {
    lookup_with(&mut gw.exchange("qujing-psb").await, operator, citizen, consent).await
}

/// As [`lookup`], on a connection (a certificate) the caller holds.
pub(crate) async fn lookup_with(
    client: &mut civex_proto::v1::exchange_service_client::ExchangeServiceClient<Channel>,
    operator: &str,
    citizen: &str,
    consent: &str,
) -> u64 {
    client
        .query(QueryRequest {
            citizen_id: citizen.into(),
            attributes: vec!["ps.hukou.division".into()],
            purpose: "hukou.settlement".into(),
            consent_id: consent.into(),
            operator: operator.into(),
            request_id: format!("{operator}-{}", &citizen[14..]),
        })
        .await
        .expect("answered")
        .into_inner()
        .audit_index
}

async fn oversight(gw: &TestGateway) -> OversightServiceClient<Channel> {
    gw.oversight(AUDITOR).await
}

/// Every alert, once the rules have run over everything logged so far.
pub(crate) async fn alerts(gw: &TestGateway) -> Vec<Alert> {
    let size = gw.checkpoint_size().await;
    let mut client = oversight(gw).await;
    for _ in 0..200 {
        let list = ListAlertsRequest {
            page_size: 1000,
            ..ListAlertsRequest::default()
        };
        let page = client.list_alerts(as_operator(list, ME)).await.unwrap().into_inner();
        if page.evaluated >= size {
            return page.alerts;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the rules did not reach the log's size {size} within 10 s");
}

fn rules(alerts: &[Alert]) -> BTreeSet<&str> {
    alerts.iter().map(|a| a.rule.as_str()).collect()
}

fn only<'a>(alerts: &'a [Alert], rule: &str) -> Vec<&'a Alert> {
    alerts.iter().filter(|a| a.rule == rule).collect()
}

async fn start(adjust: impl FnOnce(&mut Config)) -> TestGateway {
    let gw = TestGateway::start_with(adjust).await;
    to_office_hours(&gw);
    gw
}

#[tokio::test]
async fn one_official_looking_up_too_many_citizens_raises_operator_volume_naming_those_calls() {
    let gw = start(|c| c.alerts.operator_volume.threshold = Some(3)).await;
    let people = citizens(&gw, 4);
    let consented = consents(&gw, &people).await;
    let mut calls = Vec::new();
    for (citizen, consent) in people.iter().zip(&consented) {
        calls.push(lookup(&gw, "officer-1", citizen, consent).await);
    }
    // Another official stays at the threshold; the same citizen twice is one.
    for (citizen, consent) in people.iter().zip(&consented).take(3) {
        lookup(&gw, "officer-2", citizen, consent).await;
    }
    lookup(&gw, "officer-2", &people[0], &consented[0]).await;

    let raised = alerts(&gw).await;
    assert_eq!(rules(&raised), BTreeSet::from(["operator_volume"]), "{raised:#?}");
    let [alert] = only(&raised, "operator_volume")[..] else {
        panic!("one alert: {raised:#?}")
    };
    assert_eq!(
        (alert.agency.as_str(), alert.operator.as_str()),
        ("qujing-psb", "officer-1")
    );
    assert_eq!(alert.indices, calls, "the alert names the four look-ups that raised it");
    assert_eq!(alert.count, 4);
    assert_eq!(alert.state, AlertState::AlertOpen as i32);

    // A fifth look-up within the window grows the same alert.
    let fifth = citizens(&gw, 5).pop().unwrap();
    let consent = consents(&gw, std::slice::from_ref(&fifth)).await;
    calls.push(lookup(&gw, "officer-1", &fifth, &consent[0]).await);
    let raised = alerts(&gw).await;
    let [alert] = only(&raised, "operator_volume")[..] else {
        panic!("still one alert: {raised:#?}")
    };
    assert_eq!((alert.indices.clone(), alert.count), (calls, 5));
}

#[tokio::test]
async fn a_look_up_outside_office_hours_or_on_a_holiday_raises_off_hours() {
    // The Tuesday after the Monday the test runs on, in UTC+8, is a holiday.
    let monday = next_monday_morning(SystemTime::now());
    let tuesday = time::OffsetDateTime::from_unix_timestamp((monday + 8 * 3600 + 86_400) as i64)
        .unwrap()
        .date()
        .to_string();
    let gw = start(move |c| c.alerts.off_hours.holidays = Some(vec![tuesday])).await;
    let people = citizens(&gw, 3);
    let consented = consents(&gw, &people).await;
    lookup(&gw, "officer-1", &people[0], &consented[0]).await;
    assert_eq!(
        rules(&alerts(&gw).await),
        BTreeSet::new(),
        "Monday 10:00 is office hours"
    );

    gw.clock.advance(Duration::from_secs(10 * 3600));
    let evening = lookup(&gw, "officer-1", &people[1], &consented[1]).await;
    gw.clock.advance(Duration::from_secs(14 * 3600));
    // The first consents have run out by now (a day): a fresh one.
    let fresh = consents(&gw, &people[2..]).await;
    let holiday = lookup(&gw, "officer-2", &people[2], &fresh[0]).await;

    let raised = alerts(&gw).await;
    assert_eq!(rules(&raised), BTreeSet::from(["off_hours"]), "{raised:#?}");
    let mut found: Vec<(String, Vec<u64>)> = only(&raised, "off_hours")
        .iter()
        .map(|a| (format!("{}/{}", a.agency, a.operator), a.indices.clone()))
        .collect();
    found.sort();
    let grant = grant_index(&gw, &fresh[0]).await;
    assert_eq!(
        found,
        vec![
            ("qujing-portal/".to_owned(), vec![grant]),
            ("qujing-psb/officer-1".to_owned(), vec![evening]),
            ("qujing-psb/officer-2".to_owned(), vec![holiday]),
        ],
        "the evening look-up, and on the holiday the grant and the look-up"
    );
}

#[tokio::test]
async fn one_certificate_used_by_many_operators_or_by_none_raises_shared_credential() {
    let gw = start(|c| c.alerts.shared_credential.threshold = Some(2)).await;
    let people = citizens(&gw, 4);
    let consented = consents(&gw, &people).await;
    // One certificate (the test harness issues one per connection).
    let mut psb = gw.exchange("qujing-psb").await;
    let mut named = Vec::new();
    for (i, operator) in ["officer-1", "officer-2", "officer-3"].iter().enumerate() {
        named.push(lookup_with(&mut psb, operator, &people[i], &consented[i]).await);
    }
    let unnamed = lookup_with(&mut psb, "", &people[3], &consented[3]).await;

    let raised = alerts(&gw).await;
    assert_eq!(rules(&raised), BTreeSet::from(["shared_credential"]), "{raised:#?}");
    let mut found: Vec<Vec<u64>> = only(&raised, "shared_credential")
        .iter()
        .map(|a| a.indices.clone())
        .collect();
    found.sort();
    assert_eq!(found, vec![named, vec![unnamed]]);
}

#[tokio::test]
async fn one_citizen_looked_up_by_many_officials_raises_citizen_spread_by_pseudonym() {
    let gw = start(|c| c.alerts.citizen_spread.threshold = Some(2)).await;
    let people = citizens(&gw, 2);
    let consented = consents(&gw, &people).await;
    let mut calls = Vec::new();
    for operator in ["officer-1", "officer-2", "officer-3"] {
        calls.push(lookup(&gw, operator, &people[0], &consented[0]).await);
    }
    for operator in ["officer-1", "officer-2"] {
        lookup(&gw, operator, &people[1], &consented[1]).await;
    }

    let raised = alerts(&gw).await;
    assert_eq!(rules(&raised), BTreeSet::from(["citizen_spread"]), "{raised:#?}");
    let [alert] = only(&raised, "citizen_spread")[..] else {
        panic!("one alert: {raised:#?}")
    };
    assert_eq!(alert.indices, calls);
    let entry = gw
        .audit(AUDITOR)
        .await
        .get_entry(civex_proto::v1::GetEntryRequest { index: calls[0] })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        alert.citizen_ref, entry.citizen_ref,
        "the citizen by pseudonym, never by number"
    );
    assert!(!alert.summary.contains(&people[0]) && !format!("{alert:?}").contains(&people[0]));
}

#[tokio::test]
async fn an_agency_refused_again_and_again_raises_refusal_probe() {
    let gw = start(|c| c.alerts.refusal_probe.threshold = Some(3)).await;
    let people = citizens(&gw, 4);
    let mut exchange = gw.exchange("qujing-psb").await;
    let mut refused = Vec::new();
    for citizen in &people {
        let status = exchange
            .query(QueryRequest {
                citizen_id: citizen.clone(),
                attributes: vec!["ps.hukou.division".into()],
                purpose: "hukou.settlement".into(),
                consent_id: "0123456789abcdef0123456789abcdef".into(),
                operator: "officer-1".into(),
                request_id: String::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(reason(&status), "CONSENT_NOT_FOUND");
        refused.push(status);
    }
    let raised = alerts(&gw).await;
    assert_eq!(rules(&raised), BTreeSet::from(["refusal_probe"]), "{raised:#?}");
    let [alert] = only(&raised, "refusal_probe")[..] else {
        panic!("one alert: {raised:#?}")
    };
    assert_eq!((alert.agency.as_str(), alert.count), ("qujing-psb", 4));
    // The indices are the refusals themselves.
    let mut audit = gw.audit(AUDITOR).await;
    for index in &alert.indices {
        let e = audit
            .get_entry(civex_proto::v1::GetEntryRequest { index: *index })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            (e.action.as_str(), e.reason.as_str()),
            ("ExchangeService/Query", "CONSENT_NOT_FOUND")
        );
    }
}

/// A grant by the registrar official `operator`, for `qujing-psb`.
async fn grant_as(gw: &TestGateway, operator: &str, citizen: &str) -> String {
    let request = GrantConsentRequest {
        citizen_id: citizen.into(),
        grantee: "qujing-psb".into(),
        scopes: vec!["ps.hukou.division".into()],
        purpose: "hukou.settlement".into(),
        not_after: Some(civex_gateway::clock::timestamp(
            gw.clock.now() + Duration::from_secs(86_400),
        )),
        max_uses: 0,
    };
    gw.consents("qujing-portal")
        .await
        .grant(as_operator(request, operator))
        .await
        .expect("granted")
        .into_inner()
        .consent_id
}

/// The audit index of the grant of `consent`, found by the consent filter.
async fn grant_index(gw: &TestGateway, consent: &str) -> u64 {
    let found = gw
        .audit(AUDITOR)
        .await
        .search(AuditSearchRequest {
            consent_id: consent.into(),
            actions: vec!["ConsentService/Grant".into()],
            ..AuditSearchRequest::default()
        })
        .await
        .unwrap()
        .into_inner()
        .entries;
    assert_eq!(found.len(), 1, "{found:?}");
    found[0].index
}

#[tokio::test]
async fn a_registrar_granting_too_many_consents_raises_consent_burst() {
    let gw = start(|c| c.alerts.consent_burst.threshold = Some(3)).await;
    let people = citizens(&gw, 4);
    let mut grants = Vec::new();
    for c in &people {
        let consent = grant_as(&gw, "clerk-9", c).await;
        grants.push(grant_index(&gw, &consent).await);
    }
    let raised = alerts(&gw).await;
    assert_eq!(rules(&raised), BTreeSet::from(["consent_burst"]), "{raised:#?}");
    let [alert] = only(&raised, "consent_burst")[..] else {
        panic!("one alert: {raised:#?}")
    };
    assert_eq!(
        (alert.agency.as_str(), alert.operator.as_str(), alert.indices.clone()),
        ("qujing-portal", "clerk-9", grants)
    );
}

#[tokio::test]
async fn a_grant_used_within_seconds_for_a_citizen_with_no_history_raises_consent_burst() {
    let gw = start(|_| {}).await;
    let people = citizens(&gw, 3);
    // Fresh citizen, used at once: raised, naming the grant and the use.
    let fresh = grant_as(&gw, "clerk-1", &people[0]).await;
    gw.clock.advance(Duration::from_secs(5));
    let used = lookup(&gw, "officer-1", &people[0], &fresh).await;
    // A citizen with history (an earlier consent read at the counter), used at once: not raised.
    let earlier = gw
        .grant(&people[1], "qujing-psb", &["ps.hukou.division"], "hukou.settlement", 0)
        .await;
    gw.clock.advance(Duration::from_secs(3600));
    let known = grant_as(&gw, "clerk-1", &people[1]).await;
    lookup(&gw, "officer-1", &people[1], &known).await;
    // A fresh citizen whose grant is first used after a minute: not raised.
    let slow = grant_as(&gw, "clerk-1", &people[2]).await;
    gw.clock.advance(Duration::from_secs(61));
    lookup(&gw, "officer-1", &people[2], &slow).await;
    assert!(!earlier.consent_id.is_empty());

    let raised = alerts(&gw).await;
    assert_eq!(rules(&raised), BTreeSet::from(["consent_burst"]), "{raised:#?}");
    let [alert] = only(&raised, "consent_burst")[..] else {
        panic!("one alert: {raised:#?}")
    };
    assert_eq!(alert.indices, vec![grant_index(&gw, &fresh).await, used]);
    assert_eq!(
        (alert.agency.as_str(), alert.operator.as_str()),
        ("qujing-portal", "clerk-1")
    );
}

#[tokio::test]
async fn a_gateway_restarted_between_a_grant_and_its_first_use_still_raises_consent_burst() {
    let gw = start(|_| {}).await;
    let people = citizens(&gw, 1);
    let fresh = grant_as(&gw, "clerk-1", &people[0]).await;
    // The rules have run past the grant before the restart.
    assert_eq!(rules(&alerts(&gw).await), BTreeSet::new());
    let gw = gw.restart().await;
    gw.clock.advance(Duration::from_secs(5));
    let used = lookup(&gw, "officer-1", &people[0], &fresh).await;
    let raised = alerts(&gw).await;
    let [alert] = only(&raised, "consent_burst")[..] else {
        panic!("one alert: {raised:#?}")
    };
    assert_eq!(alert.indices, vec![grant_index(&gw, &fresh).await, used]);
}

#[tokio::test]
async fn a_registrar_reading_too_many_histories_raises_history_volume() {
    let gw = start(|c| c.alerts.history_volume.threshold = Some(3)).await;
    let mut audit = gw.audit("qujing-portal").await;
    let mut reads = 0;
    for c in citizens(&gw, 4) {
        let request = civex_proto::v1::AccessHistoryRequest {
            citizen_id: c,
            ..Default::default()
        };
        audit.access_history(as_operator(request, "clerk-2")).await.unwrap();
        reads += 1;
    }
    let raised = alerts(&gw).await;
    assert_eq!(rules(&raised), BTreeSet::from(["history_volume"]), "{raised:#?}");
    let [alert] = only(&raised, "history_volume")[..] else {
        panic!("one alert: {raised:#?}")
    };
    assert_eq!((alert.operator.as_str(), alert.count), ("clerk-2", reads));
}

#[tokio::test]
async fn a_request_for_an_abolished_attribute_raises_abolished_request() {
    let gw = start(|_| {}).await;
    let people = citizens(&gw, 1);
    let consented = consents(&gw, &people).await;
    let status = gw
        .exchange("qujing-psb")
        .await
        .query(QueryRequest {
            citizen_id: people[0].clone(),
            attributes: vec!["ps.hukou.nature".into()],
            purpose: "hukou.settlement".into(),
            consent_id: consented[0].clone(),
            operator: "officer-1".into(),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&status), "ATTRIBUTE_ABOLISHED");
    let raised = alerts(&gw).await;
    assert_eq!(rules(&raised), BTreeSet::from(["abolished_request"]), "{raised:#?}");
}

#[tokio::test]
async fn an_access_to_a_watched_citizen_raises_watched_citizen_until_unwatched() {
    let gw = start(|_| {}).await;
    let people = citizens(&gw, 2);
    let consented = consents(&gw, &people).await;
    let mut client = oversight(&gw).await;
    let watch = WatchCitizenRequest {
        citizen_id: people[0].clone(),
        note: "public figure".into(),
    };
    let entry = client.watch_citizen(as_operator(watch, ME)).await.unwrap().into_inner();
    assert_eq!(entry.added_by, format!("{AUDITOR}/{ME}"));
    let watched = lookup(&gw, "officer-1", &people[0], &consented[0]).await;
    lookup(&gw, "officer-1", &people[1], &consented[1]).await;

    let raised = alerts(&gw).await;
    assert_eq!(rules(&raised), BTreeSet::from(["watched_citizen"]), "{raised:#?}");
    let [alert] = only(&raised, "watched_citizen")[..] else {
        panic!("one alert: {raised:#?}")
    };
    assert_eq!(
        (alert.indices.clone(), alert.citizen_ref.clone()),
        (vec![watched], entry.citizen_ref)
    );

    let unwatch = UnwatchCitizenRequest {
        citizen_id: people[0].clone(),
    };
    client.unwatch_citizen(as_operator(unwatch.clone(), ME)).await.unwrap();
    lookup(&gw, "officer-1", &people[0], &consented[0]).await;
    let raised = alerts(&gw).await;
    assert_eq!(only(&raised, "watched_citizen")[0].count, 1, "no longer watched");
    let again = client.unwatch_citizen(as_operator(unwatch, ME)).await.unwrap_err();
    assert_eq!(reason(&again), "INVALID_REQUEST");
}

#[tokio::test]
async fn a_case_gathers_one_officials_alerts_needs_a_disposition_to_close_and_every_step_is_logged() {
    let gw = start(|c| c.alerts.operator_volume.threshold = Some(2)).await;
    let people = citizens(&gw, 3);
    let consented = consents(&gw, &people).await;
    for (citizen, consent) in people.iter().zip(&consented) {
        lookup(&gw, "officer-1", citizen, consent).await;
    }
    gw.clock.advance(Duration::from_secs(10 * 3600));
    lookup(&gw, "officer-1", &people[0], &consented[0]).await;
    lookup(&gw, "officer-2", &people[0], &consented[0]).await;
    let raised = alerts(&gw).await;
    let volume = only(&raised, "operator_volume")[0].alert_id.clone();
    let officer_2 = raised
        .iter()
        .find(|a| a.operator == "officer-2")
        .expect("officer-2's evening look-up")
        .alert_id
        .clone();
    assert_eq!(raised.len(), 3, "volume and two evenings: {raised:#?}");

    let mut client = oversight(&gw).await;
    let mut calls = 0;
    let open = OpenCaseRequest {
        title: "officer-1 look-ups".into(),
        alert_ids: vec![volume.clone()],
        assignee: "auditor-2".into(),
        all_of_operator: true,
    };
    let case = client.open_case(as_operator(open, ME)).await.unwrap().into_inner();
    calls += 1;
    assert_eq!(
        case.alert_ids.len(),
        2,
        "both of officer-1's alerts, not officer-2's: {case:#?}"
    );
    assert!(!case.alert_ids.contains(&officer_2));
    assert_eq!(case.state, CaseState::CaseOpen as i32);
    assert_eq!(case.assignee, "auditor-2");
    for id in &case.alert_ids {
        let alert = client
            .get_alert(as_operator(GetAlertRequest { alert_id: id.clone() }, ME))
            .await
            .unwrap()
            .into_inner();
        calls += 1;
        assert_eq!(
            (alert.state, alert.case_id.as_str()),
            (AlertState::AlertInCase as i32, case.case_id.as_str())
        );
    }
    let update = |f: &dyn Fn(&mut UpdateCaseRequest)| {
        let mut request = UpdateCaseRequest {
            case_id: case.case_id.clone(),
            ..UpdateCaseRequest::default()
        };
        f(&mut request);
        as_operator(request, ME)
    };
    client
        .update_case(update(&|r| r.note = "asked the bureau".into()))
        .await
        .unwrap();
    client
        .update_case(update(&|r| r.state = CaseState::CaseInvestigating as i32))
        .await
        .unwrap();
    let refused = client
        .update_case(update(&|r| r.state = CaseState::CaseClosed as i32))
        .await
        .unwrap_err();
    assert_eq!(reason(&refused), "INVALID_REQUEST", "closing needs a disposition");
    let closed = client
        .update_case(update(&|r| {
            r.state = CaseState::CaseClosed as i32;
            r.disposition = Disposition::Misuse as i32;
        }))
        .await
        .unwrap()
        .into_inner();
    calls += 4;
    assert_eq!(
        (closed.state, closed.disposition),
        (CaseState::CaseClosed as i32, Disposition::Misuse as i32)
    );
    assert!(closed.closed_at.is_some());
    let kinds: Vec<&str> = closed.events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["opened", "assigned", "note", "state", "closed"]);
    let after_close = client
        .update_case(update(&|r| r.note = "more".into()))
        .await
        .unwrap_err();
    calls += 1;
    assert_eq!(reason(&after_close), "INVALID_REQUEST");

    // Alerts in a case are not dismissed; the other one is.
    let in_case = DismissAlertRequest {
        alert_id: volume,
        note: "no".into(),
    };
    assert_eq!(
        reason(&client.dismiss_alert(as_operator(in_case, ME)).await.unwrap_err()),
        "INVALID_REQUEST"
    );
    let dismiss = DismissAlertRequest {
        alert_id: officer_2,
        note: "night shift on duty".into(),
    };
    let dismissed = client
        .dismiss_alert(as_operator(dismiss, ME))
        .await
        .unwrap()
        .into_inner();
    calls += 2;
    assert_eq!(
        (dismissed.state, dismissed.note.as_str()),
        (AlertState::AlertDismissed as i32, "night shift on duty")
    );
    for (request, expected) in [
        (
            client
                .get_case(as_operator(GetCaseRequest { case_id: "C999".into() }, ME))
                .await
                .unwrap_err(),
            "CASE_NOT_FOUND",
        ),
        (
            client
                .get_alert(as_operator(
                    GetAlertRequest {
                        alert_id: "nope".into(),
                    },
                    ME,
                ))
                .await
                .unwrap_err(),
            "ALERT_NOT_FOUND",
        ),
    ] {
        assert_eq!(reason(&request), expected);
        calls += 1;
    }
    let shown = client
        .get_case(as_operator(
            GetCaseRequest {
                case_id: case.case_id.clone(),
            },
            ME,
        ))
        .await
        .unwrap()
        .into_inner();
    calls += 1;
    assert_eq!(shown, closed);

    // Every oversight call, allowed or refused, is in the log under the auditor's name.
    let logged = gw
        .audit(AUDITOR)
        .await
        .search(AuditSearchRequest {
            operator: ME.into(),
            actions: ["OpenCase", "UpdateCase", "GetCase", "GetAlert", "DismissAlert"]
                .iter()
                .map(|a| format!("OversightService/{a}"))
                .collect(),
            page_size: 1000,
            ..AuditSearchRequest::default()
        })
        .await
        .unwrap()
        .into_inner()
        .entries;
    assert_eq!(logged.len(), calls, "{logged:#?}");
    let case_records: Vec<_> = logged.iter().filter(|e| e.subject == case.case_id).collect();
    assert_eq!(
        case_records.len(),
        6,
        "five updates, refused or not, and one read name the case"
    );
}

#[tokio::test]
async fn search_finds_by_operator_request_consent_several_actions_and_pseudonym() {
    let gw = start(|_| {}).await;
    let people = citizens(&gw, 2);
    let consented = consents(&gw, &people).await;
    let a = lookup(&gw, "officer-1", &people[0], &consented[0]).await;
    let b = lookup(&gw, "officer-2", &people[1], &consented[1]).await;
    let mut audit = gw.audit(AUDITOR).await;
    let mut found = async |request: AuditSearchRequest| -> Vec<u64> {
        let page = audit.search(request).await.unwrap().into_inner();
        page.entries.iter().map(|e| e.index).collect()
    };
    let by_operator = found(AuditSearchRequest {
        operator: "officer-2".into(),
        ..Default::default()
    })
    .await;
    assert_eq!(by_operator, vec![b]);
    let by_request = found(AuditSearchRequest {
        request_id: format!("officer-1-{}", &people[0][14..]),
        ..Default::default()
    })
    .await;
    assert_eq!(by_request, vec![a]);
    let by_consent = found(AuditSearchRequest {
        consent_id: consented[1].clone(),
        ..Default::default()
    })
    .await;
    assert_eq!(by_consent.len(), 2, "the grant and the use: {by_consent:?}");
    assert_eq!(by_consent[1], b);
    let by_actions = found(AuditSearchRequest {
        actions: vec!["ConsentService/Grant".into(), "ExchangeService/Query".into()],
        ..Default::default()
    })
    .await;
    assert_eq!(by_actions.len(), 4);
    let pseudonym = gw
        .audit(AUDITOR)
        .await
        .get_entry(civex_proto::v1::GetEntryRequest { index: a })
        .await
        .unwrap()
        .into_inner()
        .citizen_ref;
    let by_ref = found(AuditSearchRequest {
        citizen_ref: pseudonym.clone(),
        ..Default::default()
    })
    .await;
    let by_id = found(AuditSearchRequest {
        citizen_id: people[0].clone(),
        ..Default::default()
    })
    .await;
    assert_eq!(by_ref[..2], by_id[..2], "a pseudonym finds what the ID number finds");
    let bad = gw
        .audit(AUDITOR)
        .await
        .search(AuditSearchRequest {
            citizen_ref: "not-hex".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&bad), "INVALID_REQUEST");
}

#[tokio::test]
async fn a_report_over_a_window_counts_allowed_calls_per_operator() {
    let gw = start(|_| {}).await;
    let people = citizens(&gw, 3);
    let consented = consents(&gw, &people).await;
    let since = civex_gateway::clock::timestamp(gw.clock.now());
    lookup(&gw, "officer-1", &people[0], &consented[0]).await;
    lookup(&gw, "officer-1", &people[1], &consented[1]).await;
    lookup(&gw, "officer-2", &people[2], &consented[2]).await;
    gw.clock.advance(Duration::from_secs(60));
    let until = civex_gateway::clock::timestamp(gw.clock.now());
    lookup(&gw, "officer-2", &people[2], &consented[2]).await;
    let report = gw
        .audit(AUDITOR)
        .await
        .report(civex_proto::v1::ReportRequest {
            since: Some(since),
            until: Some(until),
            allowed: true,
            per_operator: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let queries: Vec<(&str, u64)> = report
        .rows
        .iter()
        .filter(|r| r.action == "ExchangeService/Query")
        .map(|r| (r.operator.as_str(), r.count))
        .collect();
    assert_eq!(queries, vec![("officer-1", 2), ("officer-2", 1)], "{report:#?}");
    // A window that ends before it starts is refused, not answered empty.
    let mut audit = gw.audit(AUDITOR).await;
    let reversed = audit
        .report(civex_proto::v1::ReportRequest {
            since: Some(until),
            until: Some(since),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&reversed), "INVALID_REQUEST", "{}", reversed.message());
    let reversed = audit
        .search(civex_proto::v1::AuditSearchRequest {
            since: Some(until),
            until: Some(since),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&reversed), "INVALID_REQUEST");
}

#[tokio::test]
async fn only_auditors_see_alerts_and_a_bad_rule_name_is_refused() {
    let gw = start(|_| {}).await;
    let status = gw
        .oversight("qujing-psb")
        .await
        .list_alerts(ListAlertsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(reason(&status), "ROLE_REQUIRED");
    let mut psb = gw.oversight("qujing-psb").await;
    let refusals = [
        psb.get_alert(GetAlertRequest::default()).await.unwrap_err(),
        psb.list_cases(civex_proto::v1::ListCasesRequest::default())
            .await
            .unwrap_err(),
        psb.list_watched(civex_proto::v1::ListWatchedRequest {})
            .await
            .unwrap_err(),
        psb.open_case(OpenCaseRequest::default()).await.unwrap_err(),
        psb.watch_citizen(WatchCitizenRequest::default()).await.unwrap_err(),
    ];
    for status in refusals {
        assert_eq!(reason(&status), "ROLE_REQUIRED", "{status:?}");
    }
    let status = oversight(&gw)
        .await
        .list_alerts(ListAlertsRequest {
            rule: "no_such_rule".into(),
            ..ListAlertsRequest::default()
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&status), "INVALID_REQUEST");
    let status = oversight(&gw)
        .await
        .list_alerts(as_operator(ListAlertsRequest::default(), "110101199003077777"))
        .await
        .unwrap_err();
    assert_eq!(
        reason(&status),
        "LABEL_HOLDS_CITIZEN_ID",
        "an ID number as the operator is refused"
    );
}
