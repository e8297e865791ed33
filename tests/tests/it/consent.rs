//! `ConsentService` and how consents bind queries: signatures, revocation,
//! expiry, use limits under concurrency.

use std::{collections::HashMap, time::Duration};

use civex_adapters::Department;
use civex_audit::{clock::timestamp, keys::Verifier};
use civex_proto::v1::{
    ConsentBody, GetConsentRequest, GrantConsentRequest, ListConsentsRequest, QueryRequest, RevokeConsentRequest,
};
use civex_tests::{TestGateway, reason};
use prost::Message;
use tonic::Code;

/// A query of the household's division under `consent`.
pub(crate) fn query(citizen: &str, consent: &str) -> QueryRequest {
    QueryRequest {
        citizen_id: citizen.into(),
        attributes: vec!["ps.hukou.division".into()],
        purpose: "hukou.settlement".into(),
        consent_id: consent.into(),
        ..Default::default()
    }
}

/// The first citizen of the demo's public-security registry.
pub(crate) fn first_citizen(gw: &TestGateway) -> String {
    gw.records(Department::PublicSecurity)[0]["citizen_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn consents_are_signed_listed_and_revoked_at_once() {
    let gw = TestGateway::start().await;
    let id = first_citizen(&gw);
    let consent = gw
        .grant(&id, "qujing-psb", &["ps.hukou.division"], "hukou.settlement", 0)
        .await;

    let verifier = Verifier::parse(&gw.verifier_key).unwrap();
    assert_eq!(consent.key_id, verifier.key_id());
    verifier
        .verify(&consent.body, &consent.signature)
        .expect("gateway signature verifies");
    let body = ConsentBody::decode(consent.body.as_slice()).unwrap();
    assert_eq!(
        (
            body.consent_id.as_str(),
            body.citizen_id.as_str(),
            body.grantee.as_str(),
            body.registrar.as_str()
        ),
        (consent.consent_id.as_str(), id.as_str(), "qujing-psb", "qujing-portal")
    );
    assert_eq!(body.scopes, consent.scopes);
    assert_eq!(
        body.encode_to_vec(),
        consent.body,
        "the body is the deterministic encoding"
    );

    let mut portal = gw.consents("qujing-portal").await;
    let got = portal
        .get(GetConsentRequest {
            consent_id: consent.consent_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got, consent);
    let listed = portal
        .list(ListConsentsRequest { citizen_id: id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.consents, vec![consent.clone()]);

    let mut psb = gw.exchange("qujing-psb").await;
    psb.query(query(&id, &consent.consent_id))
        .await
        .expect("allowed before revocation");
    let revoked = portal
        .revoke(RevokeConsentRequest {
            consent_id: consent.consent_id.clone(),
            reason: "citizen withdrew".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(revoked.revoked_at.is_some());
    let status = psb.query(query(&id, &consent.consent_id)).await.unwrap_err();
    assert_eq!(
        (status.code(), reason(&status).as_str()),
        (Code::FailedPrecondition, "CONSENT_REVOKED")
    );

    let status = portal
        .get(GetConsentRequest {
            consent_id: "0".repeat(32),
        })
        .await
        .unwrap_err();
    assert_eq!(
        (status.code(), reason(&status).as_str()),
        (Code::NotFound, "CONSENT_NOT_FOUND")
    );
    let status = gw
        .consents("qujing-psb")
        .await
        .get(GetConsentRequest {
            consent_id: consent.consent_id,
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&status), "ROLE_REQUIRED");
}

#[tokio::test]
async fn expiry_takes_effect_at_not_after() {
    let gw = TestGateway::start().await;
    let id = first_citizen(&gw);
    let consent = gw
        .grant(&id, "qujing-psb", &["ps.hukou.division"], "hukou.settlement", 0)
        .await;
    let mut psb = gw.exchange("qujing-psb").await;
    gw.clock.advance(Duration::from_secs(86_399));
    psb.query(query(&id, &consent.consent_id))
        .await
        .expect("valid one second before not_after");
    gw.clock.advance(Duration::from_secs(1));
    let status = psb.query(query(&id, &consent.consent_id)).await.unwrap_err();
    assert_eq!(reason(&status), "CONSENT_EXPIRED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_uses_is_never_exceeded_under_concurrency() {
    let gw = TestGateway::start().await;
    let id = first_citizen(&gw);
    let consent = gw
        .grant(&id, "qujing-psb", &["ps.hukou.division"], "hukou.settlement", 7)
        .await;
    let psb = gw.exchange("qujing-psb").await;
    let calls = (0..50).map(|_| {
        let mut client = psb.clone();
        let request = query(&id, &consent.consent_id);
        tokio::spawn(async move { client.query(request).await })
    });
    let mut outcomes: HashMap<String, usize> = HashMap::new();
    for call in futures::future::join_all(calls).await {
        let key = match call.unwrap() {
            Ok(_) => "OK".to_owned(),
            Err(status) => reason(&status),
        };
        *outcomes.entry(key).or_default() += 1;
    }
    assert_eq!(
        outcomes,
        HashMap::from([("OK".to_owned(), 7), ("CONSENT_EXHAUSTED".to_owned(), 43)])
    );
    let after = gw
        .consents("qujing-portal")
        .await
        .get(GetConsentRequest {
            consent_id: consent.consent_id,
        })
        .await;
    assert_eq!(after.unwrap().into_inner().uses, 7);
}

#[tokio::test]
async fn grants_are_validated() {
    let gw = TestGateway::start().await;
    let id = first_citizen(&gw);
    let mut portal = gw.consents("qujing-portal").await;
    let ok = GrantConsentRequest {
        citizen_id: id.clone(),
        grantee: "qujing-psb".into(),
        scopes: vec!["ps.hukou.division".into()],
        purpose: "hukou.settlement".into(),
        not_after: Some(timestamp(std::time::SystemTime::now() + Duration::from_secs(3600))),
        max_uses: 0,
    };
    portal.grant(ok.clone()).await.expect("the control grant is accepted");
    let with = |f: &dyn Fn(&mut GrantConsentRequest)| {
        let mut g = ok.clone();
        f(&mut g);
        g
    };
    let cases: Vec<(&str, GrantConsentRequest, &str)> = vec![
        (
            "bad citizen",
            with(&|g| g.citizen_id = "12345".into()),
            "INVALID_CITIZEN_ID",
        ),
        (
            "unknown grantee",
            with(&|g| g.grantee = "qujing-nobody".into()),
            "INVALID_REQUEST",
        ),
        ("no scopes", with(&|g| g.scopes.clear()), "INVALID_REQUEST"),
        (
            "unknown scope",
            with(&|g| g.scopes = vec!["ps.secret".into()]),
            "UNKNOWN_ATTRIBUTE",
        ),
        (
            "household type",
            with(&|g| g.scopes = vec!["ps.hukou.nature".into()]),
            "ATTRIBUTE_ABOLISHED",
        ),
        (
            "unknown purpose",
            with(&|g| g.purpose = "marketing".into()),
            "UNKNOWN_PURPOSE",
        ),
        (
            "land for settlement",
            with(&|g| g.scopes = vec!["land.homestead_rights.held".into()]),
            "INVALID_REQUEST",
        ),
        ("no end", with(&|g| g.not_after = None), "INVALID_REQUEST"),
        (
            "already over",
            with(&|g| g.not_after = Some(timestamp(std::time::UNIX_EPOCH))),
            "INVALID_REQUEST",
        ),
    ];
    for (name, request, expected) in cases {
        let status = portal.grant(request).await.expect_err(name);
        assert_eq!(
            (status.code(), reason(&status).as_str()),
            (Code::InvalidArgument, expected),
            "{name}"
        );
    }
}
