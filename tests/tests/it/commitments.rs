//! Notification and commitment (告知承诺制, DESIGN §15) through the public
//! interface, with the manual clock: a commitment recorded with its signed
//! receipt, left alone until `verify_after`, then drawn or not by its
//! matter's sample (always for a citizen found false before), checked under
//! its consent by the gateway in the log, and a false one raising
//! `false_commitment`.

use std::time::Duration;

use civex_audit::keys::Verifier;
use civex_gateway::{
    clock::{Clock, timestamp},
    commitments::{GATEWAY_OPERATOR, Matter, VERIFY},
};
use civex_proto::v1::{
    AuditEntry, AuditSearchRequest, Commitment, CommitmentState, Decision, GetCommitmentRequest, ListAlertsRequest,
    ListCommitmentsRequest, RecordCommitmentRequest, RevokeConsentRequest,
};
use civex_tests::{TestGateway, as_operator, reason};
use sha2::Digest;
use tonic::Code;

const AGENCY: &str = "qujing-psb";
const PURPOSE: &str = "residence_permit.issue";
const PREDICATE: &str = "residence.months_at_least";
/// Lived in Qilin a year and more: the statement is true.
pub(crate) const RESIDENT: &str = "residence.months_at_least: a year and more";
/// Moved to Qilin ten days ago: a statement of a year is false.
pub(crate) const NEWCOMER: &str = "residence.months_at_least: moved to 530302 ten days ago";
pub(crate) const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);

async fn start() -> TestGateway {
    TestGateway::start_with(|c| {
        c.commitments.insert("test.never".into(), Matter { sample: 0.0 });
    })
    .await
}

pub(crate) fn citizen(gw: &TestGateway, label: &str) -> String {
    gw.samples
        .iter()
        .find(|s| s.label.starts_with(label))
        .unwrap_or_else(|| panic!("no sample {label}"))
        .citizen_id
        .clone()
}

fn request(
    citizen: &str,
    matter: &str,
    consent: &str,
    verify_after: Duration,
    gw: &TestGateway,
) -> RecordCommitmentRequest {
    RecordCommitmentRequest {
        citizen_id: citizen.into(),
        matter: matter.into(),
        statement: format!("本人承诺在530302居住满12个月。{citizen}").into_bytes(),
        predicate: PREDICATE.into(),
        params: [("division", "530302"), ("months", "12")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        purpose: PURPOSE.into(),
        consent_id: consent.into(),
        verify_after: Some(timestamp(gw.clock.now() + verify_after)),
        operator: "counter-3".into(),
        request_id: "commit-1".into(),
    }
}

/// Records a commitment of `citizen` for `matter`, due in `verify_after`, under a fresh day-long consent.
pub(crate) async fn record(gw: &TestGateway, citizen: &str, matter: &str, verify_after: Duration) -> Commitment {
    let consent = gw.grant(citizen, AGENCY, &[PREDICATE], PURPOSE, 1).await.consent_id;
    gw.commitments(AGENCY)
        .await
        .record(request(citizen, matter, &consent, verify_after, gw))
        .await
        .unwrap()
        .into_inner()
}

pub(crate) async fn get(gw: &TestGateway, id: &str) -> Commitment {
    gw.commitments(AGENCY)
        .await
        .get_commitment(GetCommitmentRequest {
            commitment_id: id.into(),
        })
        .await
        .unwrap()
        .into_inner()
}

/// The commitment once it has left PENDING (the verifier looks every half second).
pub(crate) async fn settled(gw: &TestGateway, id: &str) -> Commitment {
    for _ in 0..100 {
        let c = get(gw, id).await;
        if c.state() != CommitmentState::CommitmentPending {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("commitment {id} was not verified within 10 s");
}

/// The gateway's own checks of `citizen`'s commitments, from the log.
pub(crate) async fn verifications(gw: &TestGateway, citizen: &str) -> Vec<AuditEntry> {
    gw.search(AuditSearchRequest {
        citizen_id: citizen.into(),
        action: VERIFY.into(),
        ..Default::default()
    })
    .await
}

#[tokio::test]
async fn a_commitment_is_checked_once_due_true_or_false_and_a_false_one_raises_an_alert() {
    let gw = start().await;
    let (resident, newcomer) = (citizen(&gw, RESIDENT), citizen(&gw, NEWCOMER));
    let honest = record(&gw, &resident, "demo.residence", HOUR).await;
    let false_one = record(&gw, &newcomer, "demo.residence", HOUR).await;

    // The receipt: the statement's hash, signed by the gateway's log key as a signed note.
    assert_eq!(honest.state(), CommitmentState::CommitmentPending);
    let statement = request(&resident, "demo.residence", "", HOUR, &gw).statement;
    assert_eq!(honest.statement_sha256, hex::encode(sha2::Sha256::digest(&statement)));
    assert!(
        honest.receipt.contains(&honest.commitment_id) && honest.receipt.contains(&honest.statement_sha256),
        "{}",
        honest.receipt
    );
    assert!(!honest.receipt.contains(&resident), "the receipt holds no ID number");
    let key = Verifier::parse(&gw.verifier_key).unwrap();
    assert_eq!(honest.signature[..4], key.key_hash.to_be_bytes());
    key.verify(honest.receipt.as_bytes(), &honest.signature[4..]).unwrap();
    assert!(gw.verifier_key.starts_with(&honest.key_id));

    // Not checked before its time.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        get(&gw, &honest.commitment_id).await.state(),
        CommitmentState::CommitmentPending
    );
    assert!(verifications(&gw, &resident).await.is_empty());

    gw.clock.advance(2 * HOUR);
    let honest = settled(&gw, &honest.commitment_id).await;
    let false_one = settled(&gw, &false_one.commitment_id).await;
    assert_eq!(honest.state(), CommitmentState::CommitmentTrue);
    assert_eq!(false_one.state(), CommitmentState::CommitmentFalse);
    assert!(honest.settled_at.is_some());

    // Each check is the gateway's own record, under the citizen's consent, by pseudonym.
    for (who, outcome) in [(&resident, "COMMITMENT_TRUE"), (&newcomer, "COMMITMENT_FALSE")] {
        let checks = verifications(&gw, who).await;
        assert_eq!(checks.len(), 1, "{checks:#?}");
        let check = &checks[0];
        assert_eq!(
            (check.agency.as_str(), check.operator.as_str(), check.note.as_str()),
            (AGENCY, GATEWAY_OPERATOR, outcome)
        );
        assert_eq!(check.decision(), Decision::Allow);
        assert_eq!(check.scopes, [PREDICATE]);
        assert_eq!(check.consent_uses.len(), 1, "the check used the consent");
        assert!(!String::from_utf8_lossy(&check.leaf).contains(who.as_str()));
    }

    // The citizen's history shows the commitment and its check.
    let history = gw.history(&resident).await;
    let actions: Vec<&str> = history
        .iter()
        .filter(|e| e.action.starts_with("CommitmentService/"))
        .map(|e| e.action.as_str())
        .collect();
    assert_eq!(actions, [civex_gateway::commitments::RECORD, VERIFY]);

    // The false one raises false_commitment, about the agency's applicant.
    let newcomer_ref = verifications(&gw, &newcomer).await[0].citizen_ref.clone();
    let mut found = None;
    for _ in 0..100 {
        let alerts = gw
            .oversight("qujing-audit")
            .await
            .list_alerts(as_operator(
                ListAlertsRequest {
                    rule: "false_commitment".into(),
                    ..Default::default()
                },
                "auditor-1",
            ))
            .await
            .unwrap()
            .into_inner()
            .alerts;
        if let Some(alert) = alerts.into_iter().next() {
            found = Some(alert);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let alert = found.expect("a false_commitment alert");
    assert_eq!(
        (alert.agency.as_str(), alert.citizen_ref.as_str()),
        (AGENCY, newcomer_ref.as_str())
    );
    assert!(alert.summary.contains(&false_one.commitment_id), "{}", alert.summary);

    // Only the recording agency lists and reads its commitments.
    let listed = |agency: &'static str, state: CommitmentState| {
        let gw = &gw;
        async move {
            gw.commitments(agency)
                .await
                .list_commitments(ListCommitmentsRequest {
                    state: state as i32,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
                .commitments
        }
    };
    let all = listed(AGENCY, CommitmentState::Unspecified).await;
    let ids: Vec<&str> = all.iter().map(|c| c.commitment_id.as_str()).collect();
    assert_eq!(ids, [honest.commitment_id.as_str(), false_one.commitment_id.as_str()]);
    let falses = listed(AGENCY, CommitmentState::CommitmentFalse).await;
    assert_eq!(falses.len(), 1);
    assert_eq!(falses[0].commitment_id, false_one.commitment_id);
    assert!(listed("qujing-edu", CommitmentState::Unspecified).await.is_empty());
    let status = gw
        .commitments("qujing-edu")
        .await
        .get_commitment(GetCommitmentRequest {
            commitment_id: honest.commitment_id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        (status.code(), reason(&status).as_str()),
        (Code::NotFound, "COMMITMENT_NOT_FOUND")
    );
}

#[tokio::test]
async fn sampling_follows_the_matter_but_always_checks_a_citizen_found_false_before() {
    let gw = start().await;
    let (resident, newcomer) = (citizen(&gw, RESIDENT), citizen(&gw, NEWCOMER));
    let first = record(&gw, &newcomer, "demo.residence", HOUR).await;
    gw.clock.advance(2 * HOUR);
    assert_eq!(
        settled(&gw, &first.commitment_id).await.state(),
        CommitmentState::CommitmentFalse
    );

    // A matter that samples nothing: the resident's is not checked, the newcomer's is.
    let skipped = record(&gw, &resident, "test.never", HOUR).await;
    let again = record(&gw, &newcomer, "test.never", HOUR).await;
    gw.clock.advance(2 * HOUR);
    let skipped = settled(&gw, &skipped.commitment_id).await;
    assert_eq!(skipped.state(), CommitmentState::CommitmentNotSampled);
    assert_eq!(
        settled(&gw, &again.commitment_id).await.state(),
        CommitmentState::CommitmentFalse
    );
    // Not drawn, and so nothing read: its record uses no consent and names no scope.
    let checks = verifications(&gw, &resident).await;
    assert_eq!(checks.len(), 1);
    assert_eq!(checks[0].note, "COMMITMENT_NOT_SAMPLED");
    assert!(checks[0].consent_uses.is_empty() && checks[0].scopes.is_empty());
}

#[tokio::test]
async fn a_consent_that_lapsed_or_was_withdrawn_leaves_the_commitment_unverifiable() {
    let gw = start().await;
    let resident = citizen(&gw, RESIDENT);
    // The consent lasts a day; the check is due in an hour but runs only after two days.
    let lapsing = record(&gw, &resident, "demo.residence", HOUR).await;
    let consent = gw.grant(&resident, AGENCY, &[PREDICATE], PURPOSE, 1).await.consent_id;
    let withdrawn = gw
        .commitments(AGENCY)
        .await
        .record(request(&resident, "demo.residence", &consent, HOUR, &gw))
        .await
        .unwrap()
        .into_inner();
    gw.consents("qujing-portal")
        .await
        .revoke(RevokeConsentRequest {
            consent_id: consent,
            reason: "withdrawn at the counter".into(),
        })
        .await
        .unwrap();
    gw.clock.advance(2 * DAY);
    for (c, why) in [(&lapsing, "CONSENT_EXPIRED"), (&withdrawn, "CONSENT_REVOKED")] {
        let c = settled(&gw, &c.commitment_id).await;
        assert_eq!(c.state(), CommitmentState::CommitmentUnverifiable);
        let checks = verifications(&gw, &resident).await;
        let check = checks
            .iter()
            .find(|e| e.subject == c.commitment_id)
            .expect("the refused check is recorded");
        assert_eq!((check.decision(), check.reason.as_str()), (Decision::Deny, why));
    }
}

#[tokio::test]
async fn a_commitment_that_cannot_be_checked_later_is_refused_now_and_nothing_is_stored() {
    let gw = start().await;
    let resident = citizen(&gw, RESIDENT);
    let consent = gw.grant(&resident, AGENCY, &[PREDICATE], PURPOSE, 1).await.consent_id;
    let other = gw.grant(&resident, AGENCY, &["ps.alive"], PURPOSE, 1).await.consent_id;
    let good = || request(&resident, "demo.residence", &consent, HOUR, &gw);
    let cases: Vec<(&str, RecordCommitmentRequest, Code, &str)> = vec![
        (
            "unknown matter",
            RecordCommitmentRequest {
                matter: "demo.unknown".into(),
                ..good()
            },
            Code::InvalidArgument,
            "INVALID_REQUEST",
        ),
        (
            "no statement",
            RecordCommitmentRequest {
                statement: Vec::new(),
                ..good()
            },
            Code::InvalidArgument,
            "INVALID_REQUEST",
        ),
        (
            "due in the past",
            RecordCommitmentRequest {
                verify_after: Some(timestamp(gw.clock.now() - HOUR)),
                ..good()
            },
            Code::InvalidArgument,
            "INVALID_REQUEST",
        ),
        (
            "no time",
            RecordCommitmentRequest {
                verify_after: None,
                ..good()
            },
            Code::InvalidArgument,
            "INVALID_REQUEST",
        ),
        (
            "unknown predicate",
            RecordCommitmentRequest {
                predicate: "residence.forever".into(),
                ..good()
            },
            Code::InvalidArgument,
            "UNKNOWN_PREDICATE",
        ),
        (
            "bad parameter",
            RecordCommitmentRequest {
                params: [("division".to_owned(), "530302".to_owned())].into_iter().collect(),
                ..good()
            },
            Code::InvalidArgument,
            "INVALID_REQUEST",
        ),
        (
            "a relative's consent cannot be held",
            RecordCommitmentRequest {
                predicate: "kin.related".into(),
                params: [("relative_citizen_id".to_owned(), citizen(&gw, NEWCOMER))]
                    .into_iter()
                    .collect(),
                purpose: "hukou.settlement".into(),
                ..good()
            },
            Code::InvalidArgument,
            "INVALID_REQUEST",
        ),
        (
            "a consent that ends before the check",
            request(&resident, "demo.residence", &consent, 2 * DAY, &gw),
            Code::InvalidArgument,
            "INVALID_REQUEST",
        ),
        (
            "a consent to something else",
            RecordCommitmentRequest {
                consent_id: other,
                ..good()
            },
            Code::PermissionDenied,
            "CONSENT_SCOPE",
        ),
    ];
    let mut psb = gw.commitments(AGENCY).await;
    for (what, request, code, why) in cases {
        let status = psb.record(request).await.unwrap_err();
        assert_eq!(
            (status.code(), reason(&status).as_str()),
            (code, why),
            "{what}: {}",
            status.message()
        );
    }
    // No right to the predicate for that purpose.
    let status = gw.commitments("qujing-tax").await.record(good()).await.unwrap_err();
    assert_eq!(reason(&status), "NO_ACCESS_RIGHT");
    // The criminal-record check is asked where a law requires it, never committed to.
    let clean = citizen(&gw, "ps.no_criminal_record: no conviction");
    let consent = gw
        .grant(
            &clean,
            "qujing-edu",
            &["ps.no_criminal_record"],
            "employment.restricted_post",
            1,
        )
        .await
        .consent_id;
    let status = gw
        .commitments("qujing-edu")
        .await
        .record(RecordCommitmentRequest {
            predicate: "ps.no_criminal_record".into(),
            params: Default::default(),
            purpose: "employment.restricted_post".into(),
            ..request(&clean, "demo.residence", &consent, HOUR, &gw)
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&status), "INVALID_REQUEST", "{}", status.message());
    let listed = psb
        .list_commitments(ListCommitmentsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(listed.commitments.is_empty());
    // Every refusal is recorded.
    let refused = gw
        .search(AuditSearchRequest {
            action: civex_gateway::commitments::RECORD.into(),
            decision: Decision::Deny as i32,
            ..Default::default()
        })
        .await;
    assert_eq!(refused.len(), 11);
}
