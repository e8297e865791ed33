//! Objections and corrections (校核纠错, DESIGN §16) through the public
//! interface: a correction reaches exactly the agencies that received the
//! fact (or a predicate over it) for that citizen, each naming its own call;
//! a rejection reaches nobody; only the holding department's steward resolves.

use civex_adapters::Department;
use civex_proto::v1::{
    AuditSearchRequest, CheckRequest, Correction, ListCorrectionsRequest, ListObjectionsRequest, ObjectRequest,
    Objection, ObjectionState, QueryRequest, ResolveRequest,
};
use civex_tests::{TestGateway, reason};
use tonic::Code;

const DIVISION: &str = "ps.hukou.division";

/// `agency` reads `attribute` of `citizen` for `purpose`; the call's audit index.
async fn read(gw: &TestGateway, agency: &str, citizen: &str, attribute: &str, purpose: &str, request: &str) -> u64 {
    let consent = gw.grant(citizen, agency, &[attribute], purpose, 1).await.consent_id;
    gw.exchange(agency)
        .await
        .query(QueryRequest {
            citizen_id: citizen.into(),
            attributes: vec![attribute.into()],
            purpose: purpose.into(),
            consent_id: consent,
            request_id: request.into(),
            operator: "officer-2".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .audit_index
}

async fn object(gw: &TestGateway, citizen: &str, attribute: &str) -> Objection {
    gw.corrections("qujing-portal")
        .await
        .object(ObjectRequest {
            citizen_id: citizen.into(),
            attribute: attribute.into(),
            statement: "我的户籍已于去年迁出，登记仍是旧址。".into(),
            operator: "counter-1".into(),
        })
        .await
        .unwrap()
        .into_inner()
}

fn resolve(id: &str, outcome: ObjectionState) -> ResolveRequest {
    ResolveRequest {
        objection_id: id.into(),
        outcome: outcome as i32,
        note: "checked against the register".into(),
        operator: "steward-1".into(),
    }
}

async fn corrections(gw: &TestGateway, agency: &str) -> Vec<Correction> {
    gw.corrections(agency)
        .await
        .list_corrections(ListCorrectionsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .corrections
}

#[tokio::test]
async fn a_correction_reaches_exactly_the_agencies_that_received_the_fact_for_that_citizen() {
    let gw = TestGateway::start().await;
    let records = gw.records(Department::PublicSecurity);
    let (citizen, other) = (
        records[0]["citizen_id"].as_str().unwrap().to_owned(),
        records[1]["citizen_id"].as_str().unwrap().to_owned(),
    );
    let division = records[0][DIVISION].as_str().unwrap().to_owned();
    let psb = read(&gw, "qujing-psb", &citizen, DIVISION, "hukou.settlement", "psb-1").await;
    let hrss = read(
        &gw,
        "qujing-hrss",
        &citizen,
        DIVISION,
        "social_insurance.transfer",
        "hrss-1",
    )
    .await;
    // Another fact of the citizen, and the same fact of another citizen: not concerned.
    read(
        &gw,
        "qujing-edu",
        &citizen,
        "ps.residence.division",
        "education.enrollment",
        "edu-1",
    )
    .await;
    read(&gw, "qujing-edu", &other, DIVISION, "education.enrollment", "edu-2").await;
    // A predicate over the fact is concerned too.
    let consent = gw
        .grant(&citizen, "qujing-psb", &["hukou.registered_in"], "hukou.settlement", 1)
        .await
        .consent_id;
    let check = gw
        .exchange("qujing-psb")
        .await
        .check(CheckRequest {
            citizen_id: citizen.clone(),
            predicate: "hukou.registered_in".into(),
            params: [("division".to_owned(), division)].into_iter().collect(),
            purpose: "hukou.settlement".into(),
            consent_id: consent,
            request_id: "psb-2".into(),
            operator: "officer-2".into(),
            related_consent_ids: Vec::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .audit_index;

    let objection = object(&gw, &citizen, DIVISION).await;
    assert_eq!(
        (objection.department.as_str(), objection.state()),
        ("ps", ObjectionState::ObjectionOpen)
    );
    assert!(
        objection.citizen_id.is_empty() && objection.statement.is_empty(),
        "only the steward sees them"
    );

    // The steward of another department cannot resolve it, nor see it.
    let status = gw
        .corrections("qujing-tax")
        .await
        .resolve(resolve(&objection.objection_id, ObjectionState::ObjectionCorrected))
        .await
        .unwrap_err();
    assert_eq!(
        (status.code(), reason(&status).as_str()),
        (Code::PermissionDenied, "NO_ACCESS_RIGHT")
    );
    let theirs = gw
        .corrections("qujing-tax")
        .await
        .list_objections(ListObjectionsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(theirs.objections.is_empty());
    // The holding department's steward sees whose record and what is said.
    let mine = gw
        .corrections("qujing-psb")
        .await
        .list_objections(ListObjectionsRequest {
            state: ObjectionState::ObjectionOpen as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .objections;
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].citizen_id, citizen);
    assert!(!mine[0].statement.is_empty());

    let resolved = gw
        .corrections("qujing-psb")
        .await
        .resolve(resolve(&objection.objection_id, ObjectionState::ObjectionCorrected))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resolved.state(), ObjectionState::ObjectionCorrected);
    assert_eq!(resolved.notified, 3);

    let sent = |list: Vec<Correction>| -> Vec<(u64, String)> {
        list.into_iter()
            .map(|c| {
                assert_eq!(
                    (c.attribute.as_str(), c.objection_id.as_str()),
                    (DIVISION, objection.objection_id.as_str())
                );
                (c.original_index, c.original_request_id)
            })
            .collect()
    };
    assert_eq!(
        sent(corrections(&gw, "qujing-psb").await),
        [(psb, "psb-1".to_owned()), (check, "psb-2".to_owned())]
    );
    assert_eq!(
        sent(corrections(&gw, "qujing-hrss").await),
        [(hrss, "hrss-1".to_owned())]
    );
    assert!(corrections(&gw, "qujing-edu").await.is_empty());

    // Resolved once.
    let again = gw
        .corrections("qujing-psb")
        .await
        .resolve(resolve(&objection.objection_id, ObjectionState::ObjectionRejected))
        .await
        .unwrap_err();
    assert_eq!(reason(&again), "INVALID_REQUEST");

    // The citizen's history: the objection, its outcome, and who was told.
    let history = gw.history(&citizen).await;
    let told: Vec<(&str, &str)> = history
        .iter()
        .filter(|e| e.action.starts_with("CorrectionService/"))
        .map(|e| (e.action.as_str(), e.agency.as_str()))
        .collect();
    assert_eq!(
        told,
        [
            ("CorrectionService/Object", "qujing-portal"),
            ("CorrectionService/Resolve", "qujing-psb"),
            ("CorrectionService/Notify", "qujing-psb"),
            ("CorrectionService/Notify", "qujing-hrss"),
            ("CorrectionService/Notify", "qujing-psb"),
        ]
    );
    assert!(
        history
            .iter()
            .all(|e| !String::from_utf8_lossy(&e.leaf).contains(&citizen))
    );
}

#[tokio::test]
async fn a_rejected_objection_reaches_nobody_and_bad_ones_are_refused() {
    let gw = TestGateway::start().await;
    let citizen = gw.records(Department::PublicSecurity)[0]["citizen_id"]
        .as_str()
        .unwrap()
        .to_owned();
    read(&gw, "qujing-edu", &citizen, DIVISION, "education.enrollment", "edu-1").await;
    let objection = object(&gw, &citizen, DIVISION).await;
    let rejected = gw
        .corrections("qujing-psb")
        .await
        .resolve(resolve(&objection.objection_id, ObjectionState::ObjectionRejected))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (rejected.state(), rejected.notified),
        (ObjectionState::ObjectionRejected, 0)
    );
    assert!(corrections(&gw, "qujing-edu").await.is_empty());
    let notified = gw
        .search(AuditSearchRequest {
            action: "CorrectionService/Notify".into(),
            ..Default::default()
        })
        .await;
    assert!(notified.is_empty());

    let mut portal = gw.corrections("qujing-portal").await;
    for (attribute, statement, why) in [
        ("ps.hukou.colour", "wrong", "UNKNOWN_ATTRIBUTE"),
        ("ps.hukou.nature", "wrong", "ATTRIBUTE_ABOLISHED"),
        (DIVISION, "  ", "INVALID_REQUEST"),
    ] {
        let status = portal
            .object(ObjectRequest {
                citizen_id: citizen.clone(),
                attribute: attribute.into(),
                statement: statement.into(),
                operator: "counter-1".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(reason(&status), why, "{attribute}");
    }
    // Only registrars take objections; only stewards resolve them.
    let status = gw
        .corrections("qujing-psb")
        .await
        .object(ObjectRequest {
            citizen_id: citizen.clone(),
            attribute: DIVISION.into(),
            statement: "wrong".into(),
            operator: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&status), "ROLE_REQUIRED");
    let status = gw
        .corrections("qujing-psb")
        .await
        .resolve(resolve(
            "0123456789abcdef0123456789abcdef",
            ObjectionState::ObjectionCorrected,
        ))
        .await
        .unwrap_err();
    assert_eq!(
        (status.code(), reason(&status).as_str()),
        (Code::NotFound, "OBJECTION_NOT_FOUND")
    );
}
