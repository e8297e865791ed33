//! `ExchangeService.Query` and `ListAttributes` through the public interface.

use std::time::Duration;

use civex_adapters::{Department, catalogue};
use civex_proto::v1::{Fact, ListAttributesRequest, QueryRequest, fact};
use civex_tests::{TestGateway, reason};
use serde_json::Value;
use tonic::Code;

fn query(citizen: &str, attributes: &[&str], purpose: &str, consent: &str) -> QueryRequest {
    QueryRequest {
        citizen_id: citizen.into(),
        attributes: attributes.iter().map(|a| (*a).into()).collect(),
        purpose: purpose.into(),
        consent_id: consent.into(),
        request_id: "req-1".into(),
        operator: "staff-0042".into(),
    }
}

fn json_of(fact: &Fact) -> Option<Value> {
    match fact.value.as_ref()? {
        fact::Value::BoolValue(b) => Some(Value::from(*b)),
        fact::Value::IntValue(i) => Some(Value::from(*i)),
        fact::Value::TextValue(s) | fact::Value::DateValue(s) => Some(Value::from(s.as_str())),
    }
}

#[tokio::test]
async fn a_consented_query_returns_exactly_the_department_facts() {
    let gw = TestGateway::start().await;
    // Every attribute the settlement authority may see for permits, across all seven departments.
    let names: Vec<&str> = catalogue::ATTRIBUTES
        .iter()
        .filter(|a| a.served())
        .map(|a| a.name)
        .collect();
    let ps = gw.records(Department::PublicSecurity);
    let others: Vec<_> = Department::ALL[1..].iter().map(|d| (*d, gw.records(*d))).collect();
    let mut exchange = gw.exchange("qujing-psb").await;
    for person in ps.iter().step_by(37) {
        let id = person["citizen_id"].as_str().unwrap();
        let consent = gw.grant(id, "qujing-psb", &names, "residence_permit.issue", 0).await;
        let response = exchange
            .query(query(id, &names, "residence_permit.issue", &consent.consent_id))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(response.request_id, "req-1");
        assert_eq!(response.facts.len(), names.len());
        for (fact, name) in response.facts.iter().zip(&names) {
            assert_eq!(fact.attribute, *name, "facts come back in the order asked");
            let attribute = catalogue::attribute(name).unwrap();
            assert_eq!(fact.source, attribute.department.code());
            let record = if attribute.department == Department::PublicSecurity {
                Some(person)
            } else {
                let (_, records) = others.iter().find(|(d, _)| *d == attribute.department).unwrap();
                records.iter().find(|r| r["citizen_id"] == id)
            };
            let expected = record.and_then(|r| r.get(*name)).cloned();
            assert_eq!(json_of(fact), expected, "{id} {name}");
            assert_eq!(fact.recorded, expected.is_some());
            assert_eq!(fact.as_of.is_some(), record.is_some());
        }
    }
}

#[tokio::test]
async fn every_refusal_has_its_reason_and_code() {
    let gw = TestGateway::start().await;
    let person = gw.citizen_where(Department::Tax, |r| r.contains_key("tax.registered"));
    let id = person["citizen_id"].as_str().unwrap().to_owned();
    let other = gw.records(Department::PublicSecurity)[5]["citizen_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let scopes = ["tax.registered", "tax.iit.months_paid_last_12"];
    let consent = gw.grant(&id, "qujing-tax", &scopes, "tax.admin", 0).await.consent_id;
    let psb_consent = gw
        .grant(&id, "qujing-psb", &["tax.registered"], "hukou.settlement", 0)
        .await
        .consent_id;
    let mut tax = gw.exchange("qujing-tax").await;
    let mut portal = gw.exchange("qujing-portal").await;

    let ok = query(&id, &["tax.registered"], "tax.admin", &consent);
    tax.query(ok.clone()).await.expect("the control query is allowed");

    let with = |f: &dyn Fn(&mut QueryRequest)| {
        let mut q = ok.clone();
        f(&mut q);
        q
    };
    let cases: Vec<(&str, QueryRequest, Code, &str)> = vec![
        (
            "empty id",
            with(&|q| q.citizen_id.clear()),
            Code::InvalidArgument,
            "INVALID_CITIZEN_ID",
        ),
        (
            "bad check",
            with(&|q| q.citizen_id = bad_check(&id)),
            Code::InvalidArgument,
            "INVALID_CITIZEN_ID",
        ),
        (
            "15 digits",
            with(&|q| q.citizen_id = "110105491231002".into()),
            Code::InvalidArgument,
            "INVALID_CITIZEN_ID",
        ),
        (
            "unknown attribute",
            with(&|q| q.attributes = vec!["tax.nope".into()]),
            Code::InvalidArgument,
            "UNKNOWN_ATTRIBUTE",
        ),
        (
            "household type",
            with(&|q| q.attributes = vec!["ps.hukou.nature".into()]),
            Code::InvalidArgument,
            "ATTRIBUTE_ABOLISHED",
        ),
        (
            "no attributes",
            with(&|q| q.attributes.clear()),
            Code::InvalidArgument,
            "INVALID_REQUEST",
        ),
        (
            "operator with control chars",
            with(&|q| q.operator = "a\nb".into()),
            Code::InvalidArgument,
            "INVALID_REQUEST",
        ),
        (
            "unknown purpose",
            with(&|q| q.purpose = "curiosity".into()),
            Code::InvalidArgument,
            "UNKNOWN_PURPOSE",
        ),
        (
            "no right",
            with(&|q| q.attributes = vec!["ps.hukou.division".into()]),
            Code::PermissionDenied,
            "NO_ACCESS_RIGHT",
        ),
        (
            "no consent",
            with(&|q| q.consent_id.clear()),
            Code::PermissionDenied,
            "CONSENT_REQUIRED",
        ),
        (
            "unknown consent",
            with(&|q| q.consent_id = "feedface".into()),
            Code::NotFound,
            "CONSENT_NOT_FOUND",
        ),
        (
            "another agency's consent",
            with(&|q| q.consent_id = psb_consent.clone()),
            Code::PermissionDenied,
            "CONSENT_GRANTEE",
        ),
        (
            "another citizen",
            with(&|q| q.citizen_id = other.clone()),
            Code::PermissionDenied,
            "CONSENT_SCOPE",
        ),
        (
            "scope not consented",
            with(&|q| q.attributes = vec!["tax.registered".into(), "tax.iit.months_paid_last_12".into()]),
            Code::Ok,
            "",
        ),
    ];
    for (name, request, code, expected) in cases {
        match tax.query(request).await {
            Ok(_) => assert_eq!(code, Code::Ok, "{name}: allowed"),
            Err(status) => {
                assert_eq!(
                    (status.code(), reason(&status).as_str()),
                    (code, expected),
                    "{name}: {}",
                    status.message()
                );
            }
        }
    }

    // Scope and purpose: a consent for one attribute does not cover another.
    let narrow = gw
        .grant(&id, "qujing-tax", &["tax.registered"], "tax.admin", 0)
        .await
        .consent_id;
    let status = tax
        .query(query(&id, &["tax.iit.months_paid_last_12"], "tax.admin", &narrow))
        .await
        .unwrap_err();
    assert_eq!(
        (status.code(), reason(&status).as_str()),
        (Code::PermissionDenied, "CONSENT_SCOPE")
    );
    let civil = gw
        .grant(
            &id,
            "qujing-civil",
            &["tax.iit.months_paid_last_12"],
            "social_assistance.review",
            0,
        )
        .await;
    let mut civil_client = gw.exchange("qujing-civil").await;
    let status = civil_client
        .query(query(
            &id,
            &["tax.iit.months_paid_last_12"],
            "social_assistance.review",
            &consent,
        ))
        .await
        .unwrap_err();
    assert_eq!(reason(&status), "CONSENT_GRANTEE");
    civil_client
        .query(query(
            &id,
            &["tax.iit.months_paid_last_12"],
            "social_assistance.review",
            &civil.consent_id,
        ))
        .await
        .unwrap();
    let psb_purpose = gw
        .grant(&id, "qujing-psb", &["tax.registered"], "residence_permit.issue", 0)
        .await
        .consent_id;
    let status = gw
        .exchange("qujing-psb")
        .await
        .query(query(&id, &["tax.registered"], "hukou.settlement", &psb_purpose))
        .await
        .unwrap_err();
    assert_eq!(
        (status.code(), reason(&status).as_str()),
        (Code::PermissionDenied, "CONSENT_PURPOSE")
    );

    // Role: a consent registrar may not query.
    let status = portal.query(ok.clone()).await.unwrap_err();
    assert_eq!(
        (status.code(), reason(&status).as_str()),
        (Code::PermissionDenied, "ROLE_REQUIRED")
    );

    // Expiry, on the gateway's clock.
    gw.clock.advance(Duration::from_secs(86_400));
    let status = tax.query(ok).await.unwrap_err();
    assert_eq!(
        (status.code(), reason(&status).as_str()),
        (Code::FailedPrecondition, "CONSENT_EXPIRED")
    );
}

/// `id` with a wrong check character.
fn bad_check(id: &str) -> String {
    let wrong = if id.ends_with('1') { '2' } else { '1' };
    format!("{}{wrong}", &id[..17])
}

#[tokio::test]
async fn land_facts_are_refused_for_settling_in_a_town() {
    let gw = TestGateway::start().await;
    let person = gw.citizen_where(Department::Land, |_| true);
    let id = person["citizen_id"].as_str().unwrap();
    let consent = gw
        .grant(
            id,
            "qujing-psb",
            &["land.contract_rights.held"],
            "hukou.return_rural",
            0,
        )
        .await;
    let status = gw
        .exchange("qujing-psb")
        .await
        .query(query(
            id,
            &["land.contract_rights.held"],
            "hukou.settlement",
            &consent.consent_id,
        ))
        .await
        .unwrap_err();
    assert_eq!(reason(&status), "NO_ACCESS_RIGHT");
    assert!(status.message().contains("十五"), "{}", status.message());
}

#[tokio::test]
async fn household_type_is_abolished_and_the_message_says_what_to_use() {
    let gw = TestGateway::start().await;
    let id = gw.records(Department::PublicSecurity)[0]["citizen_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let status = gw
        .exchange("qujing-psb")
        .await
        .query(query(
            &id,
            &["ps.hukou.division", "ps.hukou.nature"],
            "hukou.settlement",
            "any",
        ))
        .await
        .unwrap_err();
    assert_eq!(
        (status.code(), reason(&status).as_str()),
        (Code::InvalidArgument, "ATTRIBUTE_ABOLISHED")
    );
    assert!(status.message().contains("clause 十"));
    assert!(status.message().contains("settlement.urban"));
}

#[tokio::test]
async fn the_catalogue_lists_every_attribute_and_purpose_to_every_role() {
    let gw = TestGateway::start().await;
    let catalogue = gw
        .exchange("qujing-edu")
        .await
        .list_attributes(ListAttributesRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(catalogue.attributes.len(), catalogue::ATTRIBUTES.len());
    let nature = catalogue
        .attributes
        .iter()
        .find(|a| a.name == "ps.hukou.nature")
        .unwrap();
    assert!(nature.abolished);
    assert_eq!(nature.sharing, "not_shared");
    let pension = catalogue
        .attributes
        .iter()
        .find(|a| a.name == "hrss.pension.contribution_years")
        .unwrap();
    assert_eq!(
        (
            pension.department.as_str(),
            pension.value_type.as_str(),
            pension.sensitive
        ),
        ("hrss", "int", true)
    );
    assert!(
        catalogue
            .purposes
            .iter()
            .any(|p| p.code == "hukou.return_rural" && p.basis.contains("（八）"))
    );
    // Every role reads it: a counter, an auditor, an administrator.
    for agency in ["qujing-portal", "qujing-audit", "qujing-admin"] {
        let theirs = gw
            .exchange(agency)
            .await
            .list_attributes(ListAttributesRequest {})
            .await
            .unwrap_or_else(|s| panic!("{agency}: {s:?}"))
            .into_inner();
        assert_eq!(theirs, catalogue, "{agency}");
    }
}
