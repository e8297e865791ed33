//! Departments' own systems behind the gateway: the remote adapter against
//! real `DepartmentSourceService` servers on loopback over mTLS.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use civex_adapters::{Department, catalogue};
use civex_proto::v1::{
    Fact, FetchRequest, FetchResponse, QueryRequest, department_source_service_server::DepartmentSourceService, fact,
};
use civex_tests::{SourceService, TestGateway, TestSource, reason};
use tonic::{Code, Request, Response, Status};

const REMOTE: [Department; 2] = [Department::Housing, Department::Tax];

fn reference_sources(files: &std::path::Path) -> Vec<(Department, Box<SourceService>)> {
    REMOTE.iter().map(|d| (*d, TestSource::reference(files, *d))).collect()
}

fn names() -> Vec<&'static str> {
    catalogue::ATTRIBUTES
        .iter()
        .filter(|a| a.served())
        .map(|a| a.name)
        .collect()
}

fn query(citizen: &str, attributes: &[&str], consent: &str) -> QueryRequest {
    QueryRequest {
        citizen_id: citizen.into(),
        attributes: attributes.iter().map(|a| (*a).into()).collect(),
        purpose: "residence_permit.issue".into(),
        consent_id: consent.into(),
        ..Default::default()
    }
}

/// What a fact says, without when it was confirmed (import and load times differ).
fn said(f: &Fact) -> (String, Option<fact::Value>, bool, String) {
    (f.attribute.clone(), f.value.clone(), f.recorded, f.source.clone())
}

#[tokio::test]
async fn mixing_remote_and_embedded_departments_gives_the_same_answer() {
    let embedded = TestGateway::start().await;
    let (mixed, _sources) = TestGateway::start_with_sources(|_, files| reference_sources(files), |_| {}).await;
    let names = names();
    for person in embedded.records(Department::PublicSecurity).iter().step_by(29) {
        let id = person["citizen_id"].as_str().unwrap();
        let mut answers = Vec::new();
        for gw in [&embedded, &mixed] {
            let consent = gw.grant(id, "qujing-psb", &names, "residence_permit.issue", 0).await;
            let facts = gw
                .exchange("qujing-psb")
                .await
                .query(query(id, &names, &consent.consent_id))
                .await
                .unwrap();
            answers.push(facts.into_inner().facts.iter().map(said).collect::<Vec<_>>());
        }
        assert_eq!(answers[0], answers[1], "{id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_source_fails_only_the_queries_that_touch_it_and_the_gateway_recovers() {
    let (gw, sources) = TestGateway::start_with_sources(|_, files| reference_sources(files), |_| {}).await;
    let tax = sources.iter().find(|s| s.department == Department::Tax).unwrap();
    let person = gw.records(Department::PublicSecurity)[3].clone();
    let id = person["citizen_id"].as_str().unwrap().to_owned();
    let scopes = [
        "ps.hukou.division",
        "housing.owned_residence.division",
        "tax.registered",
    ];
    let consent = gw
        .grant(&id, "qujing-psb", &scopes, "residence_permit.issue", 0)
        .await
        .consent_id;
    let psb = gw.exchange("qujing-psb").await;
    // Forty concurrent queries, every other one touching tax.
    let burst = || {
        (0..40)
            .map(|i| {
                let mut client = psb.clone();
                let asked = if i % 2 == 0 {
                    [scopes[0], scopes[2]]
                } else {
                    [scopes[0], scopes[1]]
                };
                let request = query(&id, &asked, &consent);
                tokio::spawn(async move { (i % 2 == 0, client.query(request).await) })
            })
            .collect::<Vec<_>>()
    };
    // Healthy: everything is answered.
    for call in futures::future::join_all(burst()).await {
        assert!(call.unwrap().1.is_ok());
    }
    tax.kill();
    let mut failed = 0;
    for call in futures::future::join_all(burst()).await {
        let (touches, result) = call.unwrap();
        match result {
            Ok(_) => assert!(!touches, "a query touching the dead tax source was answered"),
            Err(status) => {
                assert!(touches, "a query not touching tax failed: {status:?}");
                assert_eq!(
                    (status.code(), reason(&status).as_str()),
                    (Code::Unavailable, "SOURCE_UNAVAILABLE")
                );
                assert!(status.message().contains("tax"), "{}", status.message());
                failed += 1;
            }
        }
    }
    assert_eq!(failed, 20);

    // The source comes back on the same address; the breaker probes it back in.
    let _revived = TestSource::start(
        gw.dir.path(),
        &gw.ca,
        Department::Tax,
        TestSource::reference(&gw.dir.path().join("demo-data"), Department::Tax),
        Some(tax.addr),
    )
    .await;
    let mut psb = gw.exchange("qujing-psb").await;
    let started = Instant::now();
    while psb.query(query(&id, &[scopes[2]], &consent)).await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the gateway never recovered the tax source"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A department system that misbehaves in one way.
enum Faulty {
    Sleeps,
    UnknownAttribute,
    WrongType,
    OtherCitizen,
}

#[tonic::async_trait]
impl DepartmentSourceService for Faulty {
    async fn fetch(&self, request: Request<FetchRequest>) -> Result<Response<FetchResponse>, Status> {
        let req = request.into_inner();
        let fact = |attribute: &str, value| Fact {
            attribute: attribute.into(),
            value: Some(value),
            recorded: true,
            source: "tax".into(),
            as_of: None,
        };
        let facts: Vec<Fact> = req
            .attributes
            .iter()
            .map(|a| fact(a, fact::Value::BoolValue(true)))
            .collect();
        let (facts, citizen_id) = match self {
            Faulty::Sleeps => {
                tokio::time::sleep(Duration::from_secs(60)).await;
                (facts, req.citizen_id)
            }
            Faulty::UnknownAttribute => (
                vec![fact("tax.offshore_accounts", fact::Value::BoolValue(true))],
                req.citizen_id,
            ),
            Faulty::WrongType => (
                req.attributes
                    .iter()
                    .map(|a| fact(a, fact::Value::TextValue("yes".into())))
                    .collect(),
                req.citizen_id,
            ),
            Faulty::OtherCitizen => (facts, "11010519491231002X".into()),
        };
        Ok(Response::new(FetchResponse { facts, citizen_id }))
    }
}

#[tokio::test]
async fn slow_and_misbehaving_sources_are_refused_and_nothing_they_said_is_passed_on() {
    let mut outcomes = HashMap::new();
    for (name, faulty) in [
        ("sleeps past the deadline", Faulty::Sleeps),
        ("unknown attribute", Faulty::UnknownAttribute),
        ("wrong type", Faulty::WrongType),
        ("another citizen's data", Faulty::OtherCitizen),
    ] {
        let (gw, _sources) = TestGateway::start_with_sources(
            move |_, _| vec![(Department::Tax, Box::new(faulty) as Box<SourceService>)],
            |_| {},
        )
        .await;
        let id = gw.records(Department::PublicSecurity)[0]["citizen_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let consent = gw
            .grant(&id, "qujing-tax", &["tax.registered"], "tax.admin", 0)
            .await
            .consent_id;
        let started = Instant::now();
        let result = gw
            .exchange("qujing-tax")
            .await
            .query(QueryRequest {
                purpose: "tax.admin".into(),
                ..query(&id, &["tax.registered"], &consent)
            })
            .await;
        // The source sleeps a minute; the caller hears within the deadline (2 s here), far sooner.
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{name}: the caller waited for the source"
        );
        let status = result.expect_err(name);
        outcomes.insert(name, (status.code(), reason(&status)));
        assert!(status.message().contains("tax"), "{name}: {}", status.message());
    }
    for (name, outcome) in outcomes {
        assert_eq!(outcome, (Code::Unavailable, "SOURCE_UNAVAILABLE".to_owned()), "{name}");
    }
}
