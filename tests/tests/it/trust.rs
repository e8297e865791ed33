//! The trust boundary of DESIGN §11, over mTLS: each test is one finding of
//! the attacker's report (issue 13) that the gateway now refuses.

use std::time::Duration;

use civex_adapters::Department;
use civex_cli::pki::{ClientSpec, DevCa};
use civex_proto::v1::{
    AccessRight, Agency, AgencyRef, AgencyStatus, AuditSearchRequest, CheckRequest, CheckpointRequest, GetEntryRequest,
    GrantConsentRequest, ListAgenciesRequest, ListAttributesRequest, ListConsentsRequest, QueryRequest,
    RevokeCertificateRequest, RevokeConsentRequest, Role, SetAccessRightsRequest,
};
use civex_tests::{SmallDisk, TestGateway, reason};
use tonic::Code;

const SETTLE: &str = "hukou.settlement";
const DIVISION: &str = "ps.hukou.division";

fn citizen(gw: &TestGateway, n: usize) -> String {
    gw.records(Department::PublicSecurity)[n]["citizen_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn settle(citizen: &str, consent: &str) -> QueryRequest {
    QueryRequest {
        citizen_id: citizen.into(),
        attributes: vec![DIVISION.into()],
        purpose: SETTLE.into(),
        consent_id: consent.into(),
        ..Default::default()
    }
}

/// Every leaf of the log, as an auditor reads it.
async fn leaves(gw: &TestGateway) -> Vec<civex_proto::v1::AuditEntry> {
    let mut audit = gw.audit("qujing-audit").await;
    let size = audit
        .checkpoint(CheckpointRequest {})
        .await
        .unwrap()
        .into_inner()
        .tree_size;
    let mut entries = Vec::new();
    for index in 0..size {
        entries.push(audit.get_entry(GetEntryRequest { index }).await.unwrap().into_inner());
    }
    entries
}

#[tokio::test]
async fn no_raw_id_enters_the_log_through_any_field() {
    let gw = TestGateway::start().await;
    let id = citizen(&gw, 0);
    let consent = gw.grant(&id, "qujing-psb", &[DIVISION], SETTLE, 0).await.consent_id;
    let mut psb = gw.exchange("qujing-psb").await;
    let refusals: Vec<(&str, QueryRequest, &str)> = vec![
        (
            "operator",
            QueryRequest {
                operator: id.clone(),
                ..settle(&id, &consent)
            },
            "LABEL_HOLDS_CITIZEN_ID",
        ),
        (
            "request_id",
            QueryRequest {
                request_id: format!("req {id}"),
                ..settle(&id, &consent)
            },
            "LABEL_HOLDS_CITIZEN_ID",
        ),
        ("consent_id", settle(&id, &id), "CONSENT_NOT_FOUND"),
        (
            "purpose",
            QueryRequest {
                purpose: id.clone(),
                ..settle(&id, &consent)
            },
            "UNKNOWN_PURPOSE",
        ),
        (
            "attribute",
            QueryRequest {
                attributes: vec![id.clone()],
                ..settle(&id, &consent)
            },
            "UNKNOWN_ATTRIBUTE",
        ),
    ];
    for (field, request, expected) in refusals {
        let status = psb.query(request).await.unwrap_err();
        assert_eq!(reason(&status), expected, "{field}: {}", status.message());
        assert!(!status.message().contains(&id), "{field}: the refusal echoes the ID");
    }
    let mut portal = gw.consents("qujing-portal").await;
    let grant = |scopes: Vec<String>, grantee: &str| GrantConsentRequest {
        citizen_id: id.clone(),
        grantee: grantee.into(),
        scopes,
        purpose: SETTLE.into(),
        not_after: Some(civex_gateway::clock::timestamp(
            std::time::SystemTime::now() + Duration::from_secs(3600),
        )),
        max_uses: 0,
    };
    let status = portal.grant(grant(vec![id.clone()], "qujing-psb")).await.unwrap_err();
    assert_eq!(reason(&status), "UNKNOWN_ATTRIBUTE");
    let status = portal.grant(grant(vec![DIVISION.into()], &id)).await.unwrap_err();
    assert_eq!(reason(&status), "INVALID_REQUEST");
    let status = portal
        .revoke(RevokeConsentRequest {
            consent_id: consent.clone(),
            reason: format!("citizen {id} asked"),
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&status), "LABEL_HOLDS_CITIZEN_ID");
    let mut admin = gw.admin("qujing-admin").await;
    let status = admin
        .suspend_agency(AgencyRef {
            code: id.clone(),
            reason: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&status), "INVALID_REQUEST");
    let status = admin
        .suspend_agency(AgencyRef {
            code: "qujing-tax".into(),
            reason: id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&status), "LABEL_HOLDS_CITIZEN_ID");
    let status = admin
        .revoke_certificate(RevokeCertificateRequest {
            serial: id.clone(),
            reason: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        (status.code(), reason(&status).as_str()),
        (Code::NotFound, "CERTIFICATE_NOT_FOUND")
    );

    let entries = leaves(&gw).await;
    for entry in &entries {
        assert!(
            !String::from_utf8_lossy(&entry.leaf).contains(&id),
            "record {} holds the raw ID: {entry:?}",
            entry.index
        );
    }
    let refused: Vec<&civex_proto::v1::AuditEntry> = entries.iter().filter(|e| !e.reason.is_empty()).collect();
    assert_eq!(refused.len(), 11, "every refusal is recorded");
    assert_eq!(refused[0].operator, "[redacted]");
    assert_eq!(refused[1].request_id, "[redacted]");
    assert_eq!(refused[2].consent_id, "[redacted]");
    assert_eq!(refused[3].purpose, "[invalid]");
    assert_eq!(refused[4].scopes, ["[invalid]"]);
    assert_eq!(refused[5].scopes, ["[invalid]"]);
    assert_eq!(refused[6].subject, "[redacted]");
    assert_eq!(refused[7].note, "[redacted]");
    assert_eq!(refused[8].subject, "[redacted]");
    assert_eq!(refused[9].note, "[redacted]");
    assert_eq!(refused[10].subject, "[redacted]");
}

#[tokio::test]
async fn the_abolished_household_type_is_recognised_whatever_its_case() {
    let gw = TestGateway::start().await;
    let id = citizen(&gw, 1);
    let mut psb = gw.exchange("qujing-psb").await;
    let status = psb
        .query(QueryRequest {
            attributes: vec!["PS.HUKOU.NATURE".into()],
            ..settle(&id, "")
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&status), "ATTRIBUTE_ABOLISHED");
    let entries = leaves(&gw).await;
    let entry = entries.iter().rfind(|e| e.action == "ExchangeService/Query").unwrap();
    assert_eq!(
        entry.scopes,
        ["ps.hukou.nature"],
        "logged under its own name, for the abolished_request rule"
    );
    let catalogue = psb
        .list_attributes(ListAttributesRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(catalogue.attributes.iter().all(|a| a.name != "ps.hukou.rural"));
}

#[tokio::test]
async fn a_change_refused_for_want_of_its_record_changes_nothing() {
    let root = tempfile::tempdir().unwrap();
    let disk = SmallDisk::mount(root.path().join("disk"), "24m");
    let data = disk.0.join("data");
    let gw = TestGateway::start_with(|c| c.data_dir = data.clone()).await;
    let id = citizen(&gw, 2);
    let consent = gw.grant(&id, "qujing-psb", &[DIVISION], SETTLE, 0).await.consent_id;
    let tax_tls = gw.tls_for(&ClientSpec::agency("qujing-tax"));
    let serial = {
        let (_, pem) = x509_parser::pem::parse_x509_pem(tax_tls.cert_pem.as_bytes()).unwrap();
        hex::encode(pem.parse_x509().unwrap().raw_serial())
    };
    let mut admin = gw.admin("qujing-admin").await;
    let mut portal = gw.consents("qujing-portal").await;
    let before = admin.list_agencies(ListAgenciesRequest {}).await.unwrap().into_inner();

    let filler = disk.fill();
    let mut probe = gw.exchange("qujing-tax").await;
    let mut served = 0;
    while probe.list_attributes(ListAttributesRequest {}).await.is_ok() {
        served += 1;
        assert!(served < 50_000, "the log never ran out of room");
    }
    let unavailable = |status: tonic::Status| {
        assert_eq!(
            (status.code(), reason(&status)),
            (Code::Unavailable, "AUDIT_UNAVAILABLE".to_owned()),
            "{}",
            status.message()
        );
    };
    unavailable(
        admin
            .suspend_agency(AgencyRef {
                code: "qujing-tax".into(),
                reason: "complaint 17".into(),
            })
            .await
            .unwrap_err(),
    );
    unavailable(
        admin
            .set_access_rights(SetAccessRightsRequest {
                agency_code: "qujing-tax".into(),
                ..Default::default()
            })
            .await
            .unwrap_err(),
    );
    unavailable(
        admin
            .register_agency(Agency {
                code: "qujing-shadow".into(),
                name: "shadow".into(),
                department: "other".into(),
                roles: vec![Role::Admin as i32, Role::Auditor as i32],
                ..Default::default()
            })
            .await
            .unwrap_err(),
    );
    unavailable(
        admin
            .revoke_certificate(RevokeCertificateRequest {
                serial: serial.to_ascii_uppercase(),
                reason: "lost".into(),
            })
            .await
            .unwrap_err(),
    );
    unavailable(
        portal
            .revoke(RevokeConsentRequest {
                consent_id: consent.clone(),
                reason: "withdrawn at the counter".into(),
            })
            .await
            .unwrap_err(),
    );

    std::fs::remove_file(filler).unwrap();
    let mut attempts = 0;
    while admin.list_agencies(ListAgenciesRequest {}).await.is_err() {
        attempts += 1;
        assert!(attempts < 200, "the gateway did not recover after the disk was freed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Nothing changed: the agencies, the certificate, the consent.
    let after = admin.list_agencies(ListAgenciesRequest {}).await.unwrap().into_inner();
    assert_eq!(after, before);
    let mut tax = civex_proto::v1::exchange_service_client::ExchangeServiceClient::new(
        civex_cli::client::connect(&gw.endpoint(), &tax_tls).await.unwrap(),
    );
    tax.list_attributes(ListAttributesRequest {}).await.unwrap();
    gw.exchange("qujing-psb")
        .await
        .query(settle(&id, &consent))
        .await
        .unwrap();
    let listed = portal
        .list(ListConsentsRequest { citizen_id: id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert!(listed.consents.iter().all(|c| c.revoked_at.is_none()));

    // With room, the same changes happen, each with its record and reason.
    let suspended = admin
        .suspend_agency(AgencyRef {
            code: "qujing-tax".into(),
            reason: "complaint 17".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(suspended.status, AgencyStatus::Suspended as i32);
    let revoked = admin
        .revoke_certificate(RevokeCertificateRequest {
            serial: serial.to_ascii_uppercase(),
            reason: "lost".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(revoked.serial, serial, "an upper-case serial, as openssl prints it");
    portal
        .revoke(RevokeConsentRequest {
            consent_id: consent.clone(),
            reason: "withdrawn at the counter".into(),
        })
        .await
        .unwrap();
    let entries = leaves(&gw).await;
    let changes: Vec<(&str, &str, &str)> = entries
        .iter()
        .filter(|e| e.reason.is_empty() && e.note.len() > 1)
        .map(|e| (e.action.as_str(), e.subject.as_str(), e.note.as_str()))
        .collect();
    assert_eq!(
        changes,
        [
            ("AdminService/SuspendAgency", "qujing-tax", "complaint 17"),
            ("AdminService/RevokeCertificate", serial.as_str(), "lost"),
            ("ConsentService/Revoke", "", "withdrawn at the counter"),
        ]
    );
    let status = gw
        .exchange("qujing-psb")
        .await
        .query(settle(&id, &consent))
        .await
        .unwrap_err();
    assert_eq!(reason(&status), "CONSENT_REVOKED");
}

#[tokio::test]
async fn a_call_that_cannot_be_answered_uses_no_consent() {
    let gw = TestGateway::start().await;
    let sample = gw
        .samples
        .iter()
        .find(|s| s.label.starts_with("settlement.urban:"))
        .unwrap();
    let consent = gw
        .grant(&sample.citizen_id, "qujing-psb", &["settlement.urban"], SETTLE, 1)
        .await
        .consent_id;
    let mut psb = gw.exchange("qujing-psb").await;
    let check = |division: &str| CheckRequest {
        citizen_id: sample.citizen_id.clone(),
        predicate: "settlement.urban".into(),
        params: [("division".to_owned(), division.to_owned())].into(),
        purpose: SETTLE.into(),
        consent_id: consent.clone(),
        ..Default::default()
    };
    let status = psb.check(check("abc")).await.unwrap_err();
    assert_eq!(reason(&status), "INVALID_REQUEST");
    let division = sample.params[0].1.clone();
    psb.check(check(&division)).await.expect("the one use is still there");
    let status = psb.check(check(&division)).await.unwrap_err();
    assert_eq!(reason(&status), "CONSENT_EXHAUSTED");
}

#[tokio::test]
async fn requesters_and_registrars_never_meet() {
    let gw = TestGateway::start().await;
    let mut admin = gw.admin("qujing-admin").await;
    let both = Agency {
        code: "qujing-both".into(),
        name: "both".into(),
        department: "other".into(),
        roles: vec![Role::Requester as i32, Role::ConsentRegistrar as i32],
        rights: vec![AccessRight {
            scope: DIVISION.into(),
            purposes: vec![SETTLE.into()],
        }],
        ..Default::default()
    };
    let status = admin.register_agency(both.clone()).await.unwrap_err();
    assert_eq!(reason(&status), "INVALID_REQUEST", "{}", status.message());
    // Nor by adding the other role later.
    admin
        .register_agency(Agency {
            roles: vec![Role::ConsentRegistrar as i32],
            rights: vec![],
            ..both.clone()
        })
        .await
        .unwrap();
    let status = admin.update_agency(both).await.unwrap_err();
    assert_eq!(reason(&status), "INVALID_REQUEST");
    // A registrar never grants to itself.
    let id = citizen(&gw, 3);
    let status = gw
        .consents("qujing-portal")
        .await
        .grant(GrantConsentRequest {
            citizen_id: id,
            grantee: "qujing-portal".into(),
            scopes: vec![DIVISION.into()],
            purpose: SETTLE.into(),
            not_after: Some(civex_gateway::clock::timestamp(
                std::time::SystemTime::now() + Duration::from_secs(3600),
            )),
            max_uses: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&status), "CONSENT_GRANTEE");
    let none = gw
        .audit("qujing-audit")
        .await
        .search(AuditSearchRequest {
            agency: "qujing-both".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(none.entries.is_empty());
}

/// A direct `Fetch` to a source, with the certificate `tls`.
async fn fetch_directly(
    source: &civex_tests::TestSource,
    tls: &civex_cli::client::ClientTls,
    citizen: &str,
) -> Result<civex_proto::v1::FetchResponse, String> {
    use civex_proto::v1::{FetchRequest, department_source_service_client::DepartmentSourceServiceClient};
    let channel = civex_cli::client::connect(&format!("https://{}", source.addr), tls)
        .await
        .map_err(|e| e.to_string())?;
    DepartmentSourceServiceClient::new(channel)
        .fetch(FetchRequest {
            citizen_id: citizen.into(),
            attributes: vec!["tax.registered".into()],
        })
        .await
        .map(tonic::Response::into_inner)
        .map_err(|s| s.to_string())
}

#[tokio::test]
async fn departments_answer_only_the_gateway_and_the_gateway_only_the_department_it_means() {
    let (gw, sources) = TestGateway::start_with_claimed_sources(
        |_, files| {
            vec![
                (
                    Department::Tax,
                    Department::Tax.source_uri(),
                    civex_tests::TestSource::reference(files, Department::Tax),
                ),
                // A housing source that runs with the tax source's certificate.
                (
                    Department::Housing,
                    Department::Tax.source_uri(),
                    civex_tests::TestSource::reference(files, Department::Housing),
                ),
            ]
        },
        |_| {},
    )
    .await;
    let tax = &sources[0];
    let id = citizen(&gw, 4);

    // An agency's certificate (even a requester's) gets nothing from a source.
    let agency = gw.tls_for(&ClientSpec::agency("qujing-psb"));
    assert!(
        fetch_directly(tax, &agency, &id).await.is_err(),
        "an agency fetched from a source"
    );

    // A gateway certificate does, until it is revoked: the source follows the gateway's CRL.
    let gateway = {
        let issued = gw
            .ca
            .issue_server(
                &["localhost", "127.0.0.1"],
                &civex_gateway::net::identity::gateway_uri(civex_cli::pki::DEV_GATEWAY_NAME),
            )
            .unwrap();
        civex_gateway::authority::note_issued(&gw.dir.path().join("certs"), &issued, "gateway").unwrap();
        (
            civex_cli::client::ClientTls {
                ca_pem: gw.ca.cert_pem().to_owned(),
                cert_pem: issued.cert_pem,
                key_pem: issued.key_pem,
            },
            issued.serial,
        )
    };
    let answer = fetch_directly(tax, &gateway.0, &id)
        .await
        .expect("a gateway is answered");
    assert_eq!(answer.citizen_id, id);
    gw.admin("qujing-admin")
        .await
        .revoke_certificate(RevokeCertificateRequest {
            serial: gateway.1.clone(),
            reason: "key lost".into(),
        })
        .await
        .unwrap();
    let started = std::time::Instant::now();
    while fetch_directly(tax, &gateway.0, &id).await.is_ok() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the source never took the new CRL"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The gateway refuses a source whose certificate names another department.
    let consent = gw
        .grant(&id, "qujing-psb", &["housing.owned_residence.division"], SETTLE, 0)
        .await
        .consent_id;
    let status = gw
        .exchange("qujing-psb")
        .await
        .query(QueryRequest {
            attributes: vec!["housing.owned_residence.division".into()],
            ..settle(&id, &consent)
        })
        .await
        .unwrap_err();
    assert_eq!(
        reason(&status),
        "SOURCE_UNAVAILABLE",
        "a forged housing source was believed"
    );
}

/// Reads from a raw connection until the server closes it, or `within` passes.
async fn closed_within(stream: &mut (impl tokio::io::AsyncRead + Unpin), within: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn one_agency_cannot_starve_the_others() {
    use tokio::io::AsyncWriteExt;
    let gw = TestGateway::start_with(|c| {
        c.limits.max_connections = 16;
        c.limits.max_connections_per_agency = 4;
        c.limits.preface_timeout_ms = 300;
        c.limits.idle_timeout_ms = 600;
    })
    .await;
    // Sixteen TLS connections that never speak HTTP/2: each is dropped at its
    // preface deadline, and no more than four are held at once.
    let mut silent = Vec::new();
    for _ in 0..16 {
        silent.push(gw.raw_tls("qujing-tax").await);
    }
    gw.exchange("qujing-edu")
        .await
        .list_attributes(ListAttributesRequest {})
        .await
        .expect("another agency is served while one holds silent connections");
    for stream in &mut silent {
        assert!(
            closed_within(stream, Duration::from_secs(3)).await,
            "a silent connection was kept"
        );
    }
    // A connection that spoke HTTP/2 but makes no call is closed once idle.
    let mut quiet = gw.raw_tls("qujing-tax").await;
    quiet.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await.unwrap();
    quiet.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).await.unwrap();
    assert!(
        closed_within(&mut quiet, Duration::from_secs(3)).await,
        "an idle connection was kept"
    );

    // Four working connections of one agency fill its share; a fifth is turned away, others are not.
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut c = gw.exchange("qujing-tax").await;
        c.list_attributes(ListAttributesRequest {}).await.unwrap();
        held.push(c);
    }
    let endpoint = gw.endpoint();
    let fifth = civex_cli::client::connect(&endpoint, &gw.tls_for(&ClientSpec::agency("qujing-tax"))).await;
    let refused = match fifth {
        Err(_) => true,
        Ok(channel) => civex_proto::v1::exchange_service_client::ExchangeServiceClient::new(channel)
            .list_attributes(ListAttributesRequest {})
            .await
            .is_err(),
    };
    assert!(refused, "a fifth connection of one agency was served");
    gw.exchange("qujing-edu")
        .await
        .list_attributes(ListAttributesRequest {})
        .await
        .expect("another agency is served while one holds its share");
}

#[tokio::test]
async fn a_disk_that_filled_heals_once_space_returns() {
    let root = tempfile::tempdir().unwrap();
    let disk = SmallDisk::mount(root.path().join("disk"), "24m");
    let data = disk.0.join("data");
    let gw = TestGateway::start_with(|c| c.data_dir = data.clone()).await;
    let id = citizen(&gw, 5);
    let consent = gw.grant(&id, "qujing-psb", &[DIVISION], SETTLE, 0).await.consent_id;
    let mut psb = gw.exchange("qujing-psb").await;
    let filler = disk.fill();
    // Consent uses and grants while the disk is full, for long enough that
    // the writer retries its store several times against the full disk.
    let mut served = 0;
    while psb.query(settle(&id, &consent)).await.is_ok() {
        served += 1;
        assert!(served < 50_000, "the log never ran out of room");
    }
    let full_for = std::time::Instant::now();
    while full_for.elapsed() < Duration::from_secs(4) {
        let _ = psb.query(settle(&id, &consent)).await;
        let _ = gw
            .consents("qujing-portal")
            .await
            .list(ListConsentsRequest { citizen_id: id.clone() })
            .await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    std::fs::remove_file(filler).unwrap();
    let healed = std::time::Instant::now();
    while psb.query(settle(&id, &consent)).await.is_err() {
        assert!(
            healed.elapsed() < Duration::from_secs(20),
            "the gateway did not heal after the disk was freed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // And it keeps working: grants, uses, withdrawals, after a restart too.
    let fresh = gw.grant(&id, "qujing-psb", &[DIVISION], SETTLE, 0).await.consent_id;
    psb.query(settle(&id, &fresh)).await.unwrap();
    let gw = gw.restart().await;
    gw.exchange("qujing-psb")
        .await
        .query(settle(&id, &fresh))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_source_that_fails_uses_no_consent() {
    let (gw, sources) = TestGateway::start_with_sources(
        |_, files| {
            vec![(
                Department::Tax,
                civex_tests::TestSource::reference(files, Department::Tax),
            )]
        },
        |_| {},
    )
    .await;
    let id = citizen(&gw, 6);
    let consent = gw
        .grant(&id, "qujing-tax", &["tax.registered"], "tax.admin", 1)
        .await
        .consent_id;
    let ask = QueryRequest {
        citizen_id: id.clone(),
        attributes: vec!["tax.registered".into()],
        purpose: "tax.admin".into(),
        consent_id: consent.clone(),
        ..Default::default()
    };
    let mut tax = gw.exchange("qujing-tax").await;
    sources[0].kill();
    let status = tax.query(ask.clone()).await.unwrap_err();
    assert_eq!(reason(&status), "SOURCE_UNAVAILABLE");
    let _revived = civex_tests::TestSource::start(
        gw.dir.path(),
        &gw.ca,
        Department::Tax,
        civex_tests::TestSource::reference(&gw.dir.path().join("demo-data"), Department::Tax),
        Some(sources[0].addr),
    )
    .await;
    let started = std::time::Instant::now();
    loop {
        match tax.query(ask.clone()).await {
            Ok(_) => break,
            Err(status) => {
                assert_eq!(
                    reason(&status),
                    "SOURCE_UNAVAILABLE",
                    "the failed call used the one use"
                );
                assert!(
                    started.elapsed() < Duration::from_secs(30),
                    "the source never came back"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    let status = tax.query(ask).await.unwrap_err();
    assert_eq!(reason(&status), "CONSENT_EXHAUSTED");
}

#[tokio::test]
async fn without_the_ca_key_the_published_crl_still_guards_the_handshake() {
    let gw = TestGateway::start().await;
    let tls = gw.tls_for(&ClientSpec::agency("qujing-tax"));
    let serial = {
        let (_, pem) = x509_parser::pem::parse_x509_pem(tls.cert_pem.as_bytes()).unwrap();
        hex::encode(pem.parse_x509().unwrap().raw_serial())
    };
    gw.admin("qujing-admin")
        .await
        .revoke_certificate(RevokeCertificateRequest {
            serial,
            reason: "lost".into(),
        })
        .await
        .unwrap();
    let gw = gw.restart_with(|c| c.tls.ca_key = None).await;
    // Refused at the handshake, not only at the call: the server never
    // answers the HTTP/2 preface of a revoked certificate.
    let served = |tls: civex_cli::client::ClientTls| {
        let gw = &gw;
        async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut stream = gw.raw_tls_with(&tls).await;
            let _ = stream.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await;
            let _ = stream.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).await;
            let mut first = [0u8; 9];
            matches!(stream.read(&mut first).await, Ok(n) if n > 0)
        }
    };
    assert!(
        !served(tls).await,
        "a revoked certificate got through a gateway without the CA key"
    );
    assert!(served(gw.tls_for(&ClientSpec::agency("qujing-tax"))).await);
    gw.exchange("qujing-edu")
        .await
        .list_attributes(ListAttributesRequest {})
        .await
        .expect("others still get in");
}

#[tokio::test]
async fn a_caller_that_gives_up_cuts_no_change_in_half() {
    let gw = TestGateway::start().await;
    let id = citizen(&gw, 7);
    let mut portal = gw.consents("qujing-portal").await;
    // Deadlines around the group-commit latency: many grants are abandoned
    // while their record is being made durable, before the consent is stored.
    for i in 0..200u64 {
        let mut request = tonic::Request::new(GrantConsentRequest {
            citizen_id: id.clone(),
            grantee: "qujing-psb".into(),
            scopes: vec![DIVISION.into()],
            purpose: SETTLE.into(),
            not_after: Some(civex_gateway::clock::timestamp(
                std::time::SystemTime::now() + Duration::from_secs(3600),
            )),
            max_uses: 0,
        });
        request.set_timeout(Duration::from_micros(300 + 50 * (i % 60)));
        let _ = portal.grant(request).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stored = portal
        .list(ListConsentsRequest { citizen_id: id.clone() })
        .await
        .unwrap()
        .into_inner()
        .consents
        .len();
    let recorded = leaves(&gw)
        .await
        .iter()
        .filter(|e| e.action == "ConsentService/Grant" && e.reason.is_empty())
        .count();
    assert!(recorded > 0, "no grant got through at all");
    assert_eq!(stored, recorded, "every recorded grant is in force, and no other");
}
