//! `AdminService`: onboarding from a CSR to a first query, suspension and
//! revocation that bite at once, quotas that isolate agencies.

use std::collections::HashMap;

use civex_adapters::Department;
use civex_cli::{
    client::ClientTls,
    pki::{self, DevCa},
};
use civex_proto::v1::{
    AccessRight, Agency, AgencyRef, IssueCertificateRequest, ListAgenciesRequest, ListAttributesRequest,
    ListCertificatesRequest, QueryRequest, RateLimit, RevokeCertificateRequest, Role, SetAccessRightsRequest,
    exchange_service_client::ExchangeServiceClient,
};
use civex_tests::{TestGateway, reason};
use tonic::Code;
use tonic_types::StatusExt;

fn new_agency() -> Agency {
    Agency {
        code: "qujing-newagency".into(),
        name: "曲靖市新机构 New agency".into(),
        department: "housing".into(),
        roles: vec![Role::Requester as i32],
        rights: vec![AccessRight {
            scope: "housing.*".into(),
            purposes: vec!["housing.guarantee".into()],
        }],
        ..Default::default()
    }
}

#[tokio::test]
async fn a_new_agency_goes_from_csr_to_its_first_consented_query_without_a_restart() {
    let gw = TestGateway::start().await;
    let mut admin = gw.admin("qujing-admin").await;
    let registered = admin.register_agency(new_agency()).await.unwrap().into_inner();
    assert_eq!(registered.status, civex_proto::v1::AgencyStatus::Active as i32);

    // The agency makes its key and CSR on its own side; only the CSR travels.
    let (csr_pem, key_pem) = pki::make_csr("qujing-newagency").unwrap();
    let issued = admin
        .issue_certificate(IssueCertificateRequest {
            agency_code: "qujing-newagency".into(),
            csr_pem,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(issued.chain_pem, gw.ca.cert_pem());
    assert!(
        !issued.serial.is_empty()
            && issued
                .serial
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );

    let owner = gw.citizen_where(Department::Housing, |r| {
        r.contains_key("housing.owned_residence.division")
    });
    let id = owner["citizen_id"].as_str().unwrap();
    let consent = gw
        .grant(
            id,
            "qujing-newagency",
            &["housing.owned_residence.division"],
            "housing.guarantee",
            0,
        )
        .await;
    let tls = ClientTls {
        ca_pem: issued.chain_pem,
        cert_pem: issued.cert_pem,
        key_pem,
    };
    let channel = civex_cli::client::connect(&gw.endpoint(), &tls).await.unwrap();
    let response = ExchangeServiceClient::new(channel)
        .query(QueryRequest {
            citizen_id: id.into(),
            attributes: vec!["housing.owned_residence.division".into()],
            purpose: "housing.guarantee".into(),
            consent_id: consent.consent_id,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.facts[0].source, "housing");
    assert!(response.facts[0].recorded);

    let listed = admin.list_agencies(ListAgenciesRequest {}).await.unwrap().into_inner();
    assert!(listed.agencies.iter().any(|a| a.code == "qujing-newagency"));
}

#[tokio::test]
async fn suspension_bites_on_an_open_connection_and_reinstating_restores_it() {
    let gw = TestGateway::start().await;
    let mut tax = gw.exchange("qujing-tax").await;
    tax.list_attributes(ListAttributesRequest {})
        .await
        .expect("served before suspension");
    let mut admin = gw.admin("qujing-admin").await;
    let suspend = AgencyRef {
        code: "qujing-tax".into(),
        reason: "investigation".into(),
    };
    admin.suspend_agency(suspend.clone()).await.unwrap();
    let status = tax.list_attributes(ListAttributesRequest {}).await.unwrap_err();
    assert_eq!(
        (status.code(), reason(&status).as_str()),
        (Code::PermissionDenied, "AGENCY_SUSPENDED")
    );
    admin.reinstate_agency(suspend).await.unwrap();
    tax.list_attributes(ListAttributesRequest {})
        .await
        .expect("served again after reinstatement");
}

#[tokio::test]
async fn a_revoked_certificate_is_refused_on_its_open_connection_and_at_the_next_handshake() {
    let gw = TestGateway::start().await;
    let tls = gw.tls_for(&pki::ClientSpec::agency("qujing-edu"));
    let serial = {
        let (_, pem) = x509_parser::pem::parse_x509_pem(tls.cert_pem.as_bytes()).unwrap();
        let cert = pem.parse_x509().unwrap();
        hex::encode(cert.raw_serial())
    };
    let channel = civex_cli::client::connect(&gw.endpoint(), &tls).await.unwrap();
    let mut edu = ExchangeServiceClient::new(channel);
    edu.list_attributes(ListAttributesRequest {})
        .await
        .expect("served before revocation");

    let revoked = gw
        .admin("qujing-admin")
        .await
        .revoke_certificate(RevokeCertificateRequest {
            serial: serial.clone(),
            reason: "key compromise".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(revoked.serial, serial);
    let status = edu.list_attributes(ListAttributesRequest {}).await.unwrap_err();
    assert_eq!(
        (status.code(), reason(&status).as_str()),
        (Code::PermissionDenied, "CERTIFICATE_REVOKED")
    );

    // A new connection with the same certificate fails at the handshake (the CRL).
    let fresh = match civex_cli::client::connect(&gw.endpoint(), &tls).await {
        Err(_) => None,
        Ok(channel) => Some(
            ExchangeServiceClient::new(channel)
                .list_attributes(ListAttributesRequest {})
                .await,
        ),
    };
    if let Some(result) = fresh {
        let status = result.expect_err("a revoked certificate completed a handshake and was served");
        assert_eq!(reason(&status), "", "refused before any handler: {status:?}");
    }
    // Another certificate of the same agency still works.
    gw.exchange("qujing-edu")
        .await
        .list_attributes(ListAttributesRequest {})
        .await
        .expect("a fresh certificate works");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooded_agency_uses_up_only_its_own_quota() {
    let gw = TestGateway::start().await;
    gw.admin("qujing-admin")
        .await
        .set_access_rights(SetAccessRightsRequest {
            agency_code: "qujing-tax".into(),
            rights: vec![AccessRight {
                scope: "tax.*".into(),
                purposes: vec!["tax.admin".into()],
            }],
            rate: Some(RateLimit {
                per_second: 2,
                burst: 3,
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    let tax = gw.exchange("qujing-tax").await;
    let edu = gw.exchange("qujing-edu").await;
    let flood = (0..60).map(|_| {
        let mut c = tax.clone();
        tokio::spawn(async move { c.list_attributes(ListAttributesRequest {}).await })
    });
    let others = (0..60).map(|_| {
        let mut c = edu.clone();
        tokio::spawn(async move { c.list_attributes(ListAttributesRequest {}).await })
    });
    let (flood, others) =
        futures::future::join(futures::future::join_all(flood), futures::future::join_all(others)).await;
    let mut outcomes: HashMap<String, usize> = HashMap::new();
    for r in flood {
        match r.unwrap() {
            Ok(_) => *outcomes.entry("OK".into()).or_default() += 1,
            Err(status) => {
                assert_eq!(status.code(), Code::ResourceExhausted);
                let retry = status.get_details_retry_info().expect("a retry hint");
                assert!(retry.retry_delay.is_some_and(|d| d.as_secs_f64() <= 1.0), "{retry:?}");
                *outcomes.entry(reason(&status)).or_default() += 1;
            }
        }
    }
    // A burst of 3 plus 2 per second: a 60-call flood is mostly refused, however slow the machine.
    assert!(outcomes.get("RATE_LIMITED").copied().unwrap_or(0) >= 30, "{outcomes:?}");
    assert!(
        others.into_iter().all(|r| r.unwrap().is_ok()),
        "another agency's calls were slowed or refused"
    );
}

#[tokio::test]
async fn administration_is_refused_to_others_and_bad_input_is_refused() {
    let gw = TestGateway::start().await;
    let status = gw
        .admin("qujing-psb")
        .await
        .list_agencies(ListAgenciesRequest {})
        .await
        .unwrap_err();
    assert_eq!(
        (status.code(), reason(&status).as_str()),
        (Code::PermissionDenied, "ROLE_REQUIRED")
    );

    let mut admin = gw.admin("qujing-admin").await;
    let with = |f: &dyn Fn(&mut Agency)| {
        let mut a = new_agency();
        f(&mut a);
        a
    };
    let right = |scope: &str, purpose: &str| AccessRight {
        scope: scope.into(),
        purposes: vec![purpose.into()],
    };
    let cases: Vec<(&str, Agency, &str)> = vec![
        (
            "household type",
            with(&|a| a.rights = vec![right("ps.hukou.nature", "hukou.settlement")]),
            "ATTRIBUTE_ABOLISHED",
        ),
        (
            "land for settlement",
            with(&|a| a.rights = vec![right("land.*", "hukou.settlement")]),
            "NO_ACCESS_RIGHT",
        ),
        (
            "unknown scope",
            with(&|a| a.rights = vec![right("housing.secret", "housing.guarantee")]),
            "UNKNOWN_ATTRIBUTE",
        ),
        (
            "unknown purpose",
            with(&|a| a.rights = vec![right("housing.*", "curiosity")]),
            "UNKNOWN_PURPOSE",
        ),
        ("bad code", with(&|a| a.code = "Qujing New".into()), "INVALID_REQUEST"),
        ("no role", with(&|a| a.roles.clear()), "INVALID_REQUEST"),
        (
            "unknown department",
            with(&|a| a.department = "army".into()),
            "INVALID_REQUEST",
        ),
    ];
    for (name, agency, expected) in cases {
        let status = admin.register_agency(agency).await.expect_err(name);
        assert_eq!(reason(&status), expected, "{name}: {}", status.message());
    }

    // A CSR whose signature does not verify is refused.
    admin.register_agency(new_agency()).await.unwrap();
    let (csr_pem, _) = pki::make_csr("qujing-newagency").unwrap();
    let (_, pem) = x509_parser::pem::parse_x509_pem(csr_pem.as_bytes()).unwrap();
    let mut der = pem.contents.clone();
    let last = der.len() - 1;
    der[last] ^= 0x01;
    let tampered = format!(
        "-----BEGIN CERTIFICATE REQUEST-----\n{}\n-----END CERTIFICATE REQUEST-----\n",
        base64_lines(&der)
    );
    let status = admin
        .issue_certificate(IssueCertificateRequest {
            agency_code: "qujing-newagency".into(),
            csr_pem: tampered,
        })
        .await
        .unwrap_err();
    assert_eq!(
        (status.code(), reason(&status).as_str()),
        (Code::InvalidArgument, "INVALID_REQUEST")
    );
    let status = admin
        .issue_certificate(IssueCertificateRequest {
            agency_code: "qujing-nobody".into(),
            csr_pem: csr_pem.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&status), "INVALID_REQUEST");
}

fn base64_lines(der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    b64.as_bytes()
        .chunks(64)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn a_key_readable_by_others_stops_the_gateway_from_starting() {
    let gw = TestGateway::start().await;
    // Checked before the data directory is opened, so the running gateway's lock does not matter.
    let mut config = gw.config.clone();
    use std::os::unix::fs::PermissionsExt;
    config.listen = "127.0.0.1:0".parse().unwrap();
    for key in [config.tls.server_key.clone(), config.tls.ca_key.clone().unwrap()] {
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
        let err = civex_gateway::Gateway::bind(config.clone())
            .await
            .err()
            .expect("refused to start");
        assert!(err.to_string().contains("readable by group or others"), "{err}");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
}

/// The serial of the certificate the gateway presents to a new connection.
async fn served_serial(gw: &TestGateway) -> String {
    let stream = gw.raw_tls("qujing-tax").await;
    let leaf = stream.get_ref().1.peer_certificates().unwrap()[0].clone();
    let (_, cert) = x509_parser::parse_x509_certificate(&leaf).unwrap();
    hex::encode(cert.raw_serial())
}

#[tokio::test]
async fn the_server_certificate_is_replaced_without_a_restart() {
    let gw = TestGateway::start().await;
    let before = served_serial(&gw).await;
    let fresh = gw
        .ca
        .issue_server(
            &["localhost", "127.0.0.1"],
            &civex_gateway::net::identity::gateway_uri(pki::DEV_GATEWAY_NAME),
        )
        .unwrap();
    std::fs::write(&gw.config.tls.server_cert, &fresh.cert_pem).unwrap();
    pki::write_private(&gw.config.tls.server_key, fresh.key_pem.as_bytes()).unwrap();
    assert_eq!(served_serial(&gw).await, before, "nothing changes before the reload");
    gw.reloader.reload().unwrap();
    assert_eq!(served_serial(&gw).await, fresh.serial);
    gw.exchange("qujing-tax")
        .await
        .list_attributes(ListAttributesRequest {})
        .await
        .expect("served with the new certificate");
}

fn right(scope: &str, purposes: &[&str]) -> AccessRight {
    AccessRight {
        scope: scope.into(),
        purposes: purposes.iter().map(|p| (*p).into()).collect(),
    }
}

#[tokio::test]
async fn registering_twice_is_refused_and_an_update_is_made_on_purpose() {
    let gw = TestGateway::start().await;
    let mut admin = gw.admin("qujing-admin").await;
    admin.register_agency(new_agency()).await.unwrap();
    let again = admin
        .register_agency(Agency {
            name: "a typo".into(),
            ..new_agency()
        })
        .await
        .unwrap_err();
    assert_eq!(
        (again.code(), reason(&again).as_str()),
        (Code::AlreadyExists, "ALREADY_EXISTS")
    );
    let get = |code: &str| AgencyRef {
        code: code.into(),
        reason: String::new(),
    };
    let kept = admin.get_agency(get("qujing-newagency")).await.unwrap().into_inner();
    assert_eq!(kept.name, new_agency().name, "the refused registration changed nothing");

    // An update changes it, and keeps a suspension.
    admin
        .suspend_agency(AgencyRef {
            code: "qujing-newagency".into(),
            reason: "review".into(),
        })
        .await
        .unwrap();
    let updated = admin
        .update_agency(Agency {
            name: "曲靖市住房保障中心".into(),
            ..new_agency()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.name, "曲靖市住房保障中心");
    assert_eq!(updated.status, civex_proto::v1::AgencyStatus::Suspended as i32);
    // Only a registered agency is updated or shown.
    for status in [
        admin
            .update_agency(Agency {
                code: "qujing-nobody".into(),
                ..new_agency()
            })
            .await
            .unwrap_err(),
        admin.get_agency(get("qujing-nobody")).await.unwrap_err(),
    ] {
        assert_eq!(reason(&status), "INVALID_REQUEST", "{}", status.message());
    }
    // The rate in force is shown as its value: the default, or the agency's own.
    let default = gw.config.limits.default_rate;
    let shown = admin.get_agency(get("qujing-newagency")).await.unwrap().into_inner();
    assert_eq!(shown.rate.unwrap().per_second, 0);
    let effective = shown.effective_rate.unwrap();
    assert_eq!(
        (effective.per_second, effective.burst),
        (default.per_second, default.burst)
    );
    assert!(effective.per_second > 0);
    let own = admin
        .set_access_rights(SetAccessRightsRequest {
            agency_code: "qujing-newagency".into(),
            rate: Some(RateLimit {
                per_second: 7,
                burst: 9,
            }),
            add: vec![right("housing.*", &["housing.guarantee"])],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        own.effective_rate,
        Some(RateLimit {
            per_second: 7,
            burst: 9
        })
    );
}

#[tokio::test]
async fn rights_are_added_and_removed_one_by_one_or_replaced_whole() {
    let gw = TestGateway::start().await;
    let mut admin = gw.admin("qujing-admin").await;
    admin.register_agency(new_agency()).await.unwrap();
    let set = |add: Vec<AccessRight>, remove: &[&str]| SetAccessRightsRequest {
        agency_code: "qujing-newagency".into(),
        add,
        remove: remove.iter().map(|s| (*s).into()).collect(),
        ..Default::default()
    };
    let added = admin
        .set_access_rights(set(
            vec![
                right("housing.*", &["social_assistance.review"]),
                right("ps.hukou.division", &["housing.guarantee"]),
            ],
            &[],
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        added.rights,
        [
            right("housing.*", &["housing.guarantee", "social_assistance.review"]),
            right("ps.hukou.division", &["housing.guarantee"]),
        ]
    );
    let removed = admin
        .set_access_rights(set(vec![], &["housing.*"]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(removed.rights, [right("ps.hukou.division", &["housing.guarantee"])]);
    // Removing what is not held, or mixing a replacement with edits, is refused and changes nothing.
    let not_held = admin.set_access_rights(set(vec![], &["tax.*"])).await.unwrap_err();
    assert_eq!(reason(&not_held), "INVALID_REQUEST", "{}", not_held.message());
    let mixed = admin
        .set_access_rights(SetAccessRightsRequest {
            rights: vec![right("housing.*", &["housing.guarantee"])],
            ..set(vec![], &["ps.hukou.division"])
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&mixed), "INVALID_REQUEST");
    let get = AgencyRef {
        code: "qujing-newagency".into(),
        reason: String::new(),
    };
    assert_eq!(
        admin.get_agency(get).await.unwrap().into_inner().rights,
        [right("ps.hukou.division", &["housing.guarantee"])]
    );
}

#[tokio::test]
async fn an_agencys_certificates_are_listed_with_their_expiry_and_revocation() {
    let gw = TestGateway::start().await;
    let mut admin = gw.admin("qujing-admin").await;
    admin.register_agency(new_agency()).await.unwrap();
    let (csr_pem, _) = pki::make_csr("qujing-newagency").unwrap();
    let issue = IssueCertificateRequest {
        agency_code: "qujing-newagency".into(),
        csr_pem,
    };
    let first = admin.issue_certificate(issue.clone()).await.unwrap().into_inner();
    let second = admin.issue_certificate(issue).await.unwrap().into_inner();
    // One issued outside the gateway, by the dev PKI's CA, is listed too.
    let outside = gw.tls_for(&pki::ClientSpec::agency("qujing-newagency"));
    let outside_serial = {
        let (_, pem) = x509_parser::pem::parse_x509_pem(outside.cert_pem.as_bytes()).unwrap();
        hex::encode(pem.parse_x509().unwrap().raw_serial())
    };
    admin
        .revoke_certificate(RevokeCertificateRequest {
            serial: first.serial.to_uppercase(),
            reason: "key lost".into(),
        })
        .await
        .unwrap();
    let listed = admin
        .list_certificates(ListCertificatesRequest {
            agency_code: "qujing-newagency".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .certificates;
    let mut serials: Vec<&str> = listed.iter().map(|c| c.serial.as_str()).collect();
    let mut want = vec![first.serial.as_str(), second.serial.as_str(), outside_serial.as_str()];
    want.sort();
    serials.sort();
    assert_eq!(serials, want);
    for c in &listed {
        assert!(c.not_after.is_some(), "{c:?}");
        assert_eq!(c.agency_code, "qujing-newagency");
        let revoked = c.serial == first.serial;
        assert_eq!(c.revoked_at.is_some(), revoked, "{c:?}");
        assert_eq!(c.revocation_reason, if revoked { "key lost" } else { "" });
    }
    let issued = listed.iter().find(|c| c.serial == second.serial).unwrap();
    assert_eq!(issued.not_after, second.not_after);
    // Another agency's list does not hold them; an unknown agency is refused.
    let other = admin
        .list_certificates(ListCertificatesRequest {
            agency_code: "qujing-tax".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(other.certificates.iter().all(|c| c.agency_code == "qujing-tax"));
    assert!(!other.certificates.iter().any(|c| want.contains(&c.serial.as_str())));
    let unknown = admin
        .list_certificates(ListCertificatesRequest {
            agency_code: "qujing-nobody".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&unknown), "INVALID_REQUEST");
}
