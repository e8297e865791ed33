//! `ExchangeService.Check`: every branch of every predicate, on the citizens
//! the demo data guarantees, through the public interface; consent and
//! rights for predicates; clause 十五.

use civex_cli::demo_data::BRANCHES;
use civex_gateway::policy::predicates;
use civex_proto::v1::{AuditSearchRequest, CertificateStatus, CheckRequest, ListAttributesRequest, QueryRequest};
use civex_tests::{TestGateway, reason};
use tonic::Code;

/// Who asks, and for which purpose, for each predicate (the demo's rights).
fn asker(predicate: &str) -> (&'static str, &'static str) {
    match predicate {
        predicates::SETTLEMENT_URBAN | predicates::SETTLEMENT_JOIN_KIN => ("qujing-psb", "hukou.settlement"),
        predicates::SETTLEMENT_RETURN_RURAL => ("qujing-psb", "hukou.return_rural"),
        predicates::RESIDENCE_PERMIT_APPLY | predicates::RESIDENCE_MONTHS_AT_LEAST => {
            ("qujing-psb", "residence_permit.issue")
        }
        predicates::HUKOU_REGISTERED_IN | predicates::KIN_RELATED => ("qujing-psb", "hukou.settlement"),
        predicates::CA_UNMARRIED | predicates::CA_MEANS_TEST => ("qujing-civil", "social_assistance.review"),
        predicates::HOUSING_STABLE_RESIDENCE | predicates::HOUSING_OWNS_NONE => ("qujing-housing", "housing.guarantee"),
        predicates::HRSS_STABLE_EMPLOYMENT | predicates::HRSS_CONTRIBUTING | predicates::PS_ALIVE => {
            ("qujing-hrss", "social_insurance.transfer")
        }
        predicates::PS_NO_CRIMINAL_RECORD => ("qujing-edu", "employment.restricted_post"),
        _ => ("qujing-edu", "education.enrollment"),
    }
}

fn request(citizen: &str, predicate: &str, params: &[(&str, String)], purpose: &str, consent: &str) -> CheckRequest {
    CheckRequest {
        citizen_id: citizen.into(),
        predicate: predicate.into(),
        params: params.iter().map(|(k, v)| ((*k).into(), v.clone())).collect(),
        purpose: purpose.into(),
        consent_id: consent.into(),
        request_id: "chk".into(),
        operator: "staff-7".into(),
        related_consent_ids: Vec::new(),
    }
}

#[tokio::test]
async fn every_branch_of_every_predicate_answers_as_expected_and_cites_its_clause() {
    let gw = TestGateway::start().await;
    let mut seen = 0;
    for branch in BRANCHES {
        let sample = gw
            .samples
            .iter()
            .find(|s| s.label == branch.label)
            .unwrap_or_else(|| panic!("no sample for {}", branch.label));
        let predicate = branch.label.split(':').next().unwrap();
        let (agency, purpose) = asker(predicate);
        let consent = gw
            .grant(&sample.citizen_id, agency, &[predicate], purpose, 1)
            .await
            .consent_id;
        // A relative named in the parameters consents too.
        let mut related_consent_ids = Vec::new();
        for (_, relative) in sample.params.iter().filter(|(k, _)| *k == "relative_citizen_id") {
            related_consent_ids.push(gw.grant(relative, agency, &[predicate], purpose, 1).await.consent_id);
        }
        let answer = gw
            .exchange(agency)
            .await
            .check(CheckRequest {
                related_consent_ids,
                ..request(&sample.citizen_id, predicate, &sample.params, purpose, &consent)
            })
            .await
            .unwrap_or_else(|s| panic!("{}: {s:?}", branch.label))
            .into_inner();
        assert_eq!(
            answer.satisfied, branch.satisfied,
            "{}: {:?}",
            branch.label, answer.reasons
        );
        let p = predicates::predicate(predicate).unwrap();
        assert_eq!(answer.basis, p.basis, "{}", branch.label);
        assert!(
            !answer.reasons.is_empty() && answer.reasons.iter().all(|r| r.contains(" / ")),
            "{:?}",
            answer.reasons
        );
        assert!(!answer.sources.is_empty() && answer.sources.iter().all(|s| p.sources.iter().any(|d| d.code() == s)));
        seen += 1;
    }
    assert_eq!(seen, BRANCHES.len());
}

#[tokio::test]
async fn a_predicate_consent_does_not_open_the_records_behind_it() {
    let gw = TestGateway::start().await;
    let sample = gw
        .samples
        .iter()
        .find(|s| s.label.starts_with("settlement.urban: satisfied"))
        .unwrap();
    let consent = gw
        .grant(
            &sample.citizen_id,
            "qujing-psb",
            &["settlement.urban"],
            "hukou.settlement",
            0,
        )
        .await
        .consent_id;
    let mut psb = gw.exchange("qujing-psb").await;
    psb.check(request(
        &sample.citizen_id,
        "settlement.urban",
        &sample.params,
        "hukou.settlement",
        &consent,
    ))
    .await
    .unwrap();
    let status = psb
        .query(QueryRequest {
            citizen_id: sample.citizen_id.clone(),
            attributes: vec!["housing.owned_residence.division".into()],
            purpose: "hukou.settlement".into(),
            consent_id: consent.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        (status.code(), reason(&status).as_str()),
        (Code::PermissionDenied, "CONSENT_SCOPE")
    );
    // ... nor another predicate.
    let status = psb
        .check(request(
            &sample.citizen_id,
            "residence_permit.apply",
            &sample.params,
            "hukou.settlement",
            &consent,
        ))
        .await
        .unwrap_err();
    assert_eq!(
        reason(&status),
        "NO_ACCESS_RIGHT",
        "residence_permit.apply is not a right for hukou.settlement"
    );
    let kin = gw
        .grant(
            &sample.citizen_id,
            "qujing-psb",
            &["settlement.join_kin"],
            "hukou.settlement",
            0,
        )
        .await;
    let status = psb
        .check(request(
            &sample.citizen_id,
            "settlement.urban",
            &sample.params,
            "hukou.settlement",
            &kin.consent_id,
        ))
        .await
        .unwrap_err();
    assert_eq!(reason(&status), "CONSENT_SCOPE");
}

#[tokio::test]
async fn land_based_predicates_are_never_used_for_settling_in_a_town() {
    let gw = TestGateway::start().await;
    let sample = gw
        .samples
        .iter()
        .find(|s| s.label.starts_with("settlement.return_rural: own land"))
        .unwrap();
    let mut portal = gw.consents("qujing-portal").await;
    let mut grant = civex_proto::v1::GrantConsentRequest {
        citizen_id: sample.citizen_id.clone(),
        grantee: "qujing-psb".into(),
        scopes: vec!["settlement.return_rural".into()],
        purpose: "hukou.settlement".into(),
        not_after: Some(civex_gateway::clock::timestamp(
            std::time::SystemTime::now() + std::time::Duration::from_secs(600),
        )),
        max_uses: 0,
    };
    let status = portal.grant(grant.clone()).await.unwrap_err();
    assert_eq!(reason(&status), "INVALID_REQUEST");
    assert!(status.message().contains("十五"), "{}", status.message());
    grant.purpose = "hukou.return_rural".into();
    let consent = portal.grant(grant).await.unwrap().into_inner().consent_id;
    let status = gw
        .exchange("qujing-psb")
        .await
        .check(request(
            &sample.citizen_id,
            "settlement.return_rural",
            &sample.params,
            "hukou.settlement",
            &consent,
        ))
        .await
        .unwrap_err();
    assert_eq!(
        (status.code(), reason(&status).as_str()),
        (Code::PermissionDenied, "NO_ACCESS_RIGHT")
    );
    assert!(status.message().contains("十五"), "{}", status.message());
}

#[tokio::test]
async fn bad_predicates_and_parameters_are_refused_and_a_relatives_id_never_enters_the_log() {
    let gw = TestGateway::start().await;
    let kin = gw
        .samples
        .iter()
        .find(|s| s.label.starts_with("settlement.join_kin: parent living together"))
        .unwrap();
    let consent = gw
        .grant(
            &kin.citizen_id,
            "qujing-psb",
            &["settlement.join_kin"],
            "hukou.settlement",
            0,
        )
        .await
        .consent_id;
    let mut psb = gw.exchange("qujing-psb").await;
    let ask = |predicate: &str, params: Vec<(&str, String)>| {
        request(&kin.citizen_id, predicate, &params, "hukou.settlement", &consent)
    };
    let cases: Vec<(&str, CheckRequest, Code, &str)> = vec![
        (
            "unknown predicate",
            ask("settlement.anywhere", kin.params.clone()),
            Code::InvalidArgument,
            "UNKNOWN_PREDICATE",
        ),
        (
            "missing param",
            ask("settlement.join_kin", vec![]),
            Code::InvalidArgument,
            "INVALID_REQUEST",
        ),
        (
            "extra param",
            ask("settlement.join_kin", vec![kin.params[0].clone(), ("x", "1".into())]),
            Code::InvalidArgument,
            "INVALID_REQUEST",
        ),
        (
            "bad relative id",
            ask("settlement.join_kin", vec![("relative_citizen_id", "12345".into())]),
            Code::InvalidArgument,
            "INVALID_CITIZEN_ID",
        ),
    ];
    for (name, req, code, expected) in cases {
        let status = psb.check(req).await.unwrap_err();
        assert_eq!(
            (status.code(), reason(&status).as_str()),
            (code, expected),
            "{name}: {}",
            status.message()
        );
    }
    // The relative is read too, so the relative must consent as well (DESIGN §11).
    let status = psb
        .check(ask("settlement.join_kin", kin.params.clone()))
        .await
        .unwrap_err();
    assert_eq!(
        (status.code(), reason(&status).as_str()),
        (Code::PermissionDenied, "RELATED_CONSENT_REQUIRED")
    );
    let relative = &kin.params[0].1;
    let relatives_consent = gw
        .grant(relative, "qujing-psb", &["settlement.join_kin"], "hukou.settlement", 0)
        .await
        .consent_id;
    let wrong = CheckRequest {
        related_consent_ids: vec![consent.clone()],
        ..ask("settlement.join_kin", kin.params.clone())
    };
    let status = psb.check(wrong).await.unwrap_err();
    assert_eq!(
        reason(&status),
        "RELATED_CONSENT_REQUIRED",
        "the applicant's own consent is not the relative's"
    );
    let answer = psb
        .check(CheckRequest {
            related_consent_ids: vec![relatives_consent],
            ..ask("settlement.join_kin", kin.params.clone())
        })
        .await
        .unwrap()
        .into_inner();
    assert!(answer.satisfied);
    // The check shows in the relative's own history, by pseudonym only.
    let history = gw
        .audit("qujing-portal")
        .await
        .access_history(civex_proto::v1::AccessHistoryRequest {
            citizen_id: relative.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let seen = history
        .entries
        .iter()
        .find(|e| e.index == answer.audit_index)
        .expect("the check is in the relative's history");
    assert_eq!(seen.related_refs.len(), 1);
    assert_ne!(seen.related_refs[0], seen.citizen_ref);
    let log = gw
        .audit("qujing-audit")
        .await
        .search(AuditSearchRequest {
            page_size: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    for entry in log.into_inner().entries {
        let leaf = String::from_utf8_lossy(&entry.leaf);
        assert!(
            !leaf.contains(relative.as_str()) && !leaf.contains(&kin.citizen_id),
            "a raw ID entered the log"
        );
    }
}

#[tokio::test]
async fn the_catalogue_lists_predicates_with_their_clauses() {
    let gw = TestGateway::start().await;
    let catalogue = gw
        .exchange("qujing-psb")
        .await
        .list_attributes(civex_proto::v1::ListAttributesRequest {})
        .await
        .unwrap()
        .into_inner();
    let names: Vec<&str> = catalogue.predicates.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, predicates::PREDICATES.iter().map(|p| p.name).collect::<Vec<_>>());
    let urban = catalogue
        .predicates
        .iter()
        .find(|p| p.name == "settlement.urban")
        .unwrap();
    assert_eq!(
        (urban.basis.as_str(), urban.params.as_slice()),
        ("曲政发〔2015〕82号（四）", &["division".to_owned()][..])
    );
}

/// The first sample of a branch whose label starts with `label`.
fn sample<'a>(gw: &'a TestGateway, label: &str) -> &'a civex_cli::demo_data::Sample {
    gw.samples
        .iter()
        .find(|s| s.label.starts_with(label))
        .unwrap_or_else(|| panic!("no sample {label}"))
}

/// DESIGN §15: every certificate departments used to demand is in the
/// catalogue, and what answers it is a predicate or a served attribute.
#[tokio::test]
async fn the_catalogue_maps_every_removed_certificate_to_what_answers_it() {
    let gw = TestGateway::start().await;
    let catalogue = gw
        .exchange("qujing-tax")
        .await
        .list_attributes(ListAttributesRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(catalogue.certificates.len(), 22);
    let household_type = &catalogue.certificates[0];
    assert_eq!(household_type.name_zh, "户口性质证明");
    assert_eq!(household_type.status(), CertificateStatus::CertAbolished);
    assert!(household_type.answered_by.is_empty());
    assert!(household_type.basis.contains("82号"));
    for c in &catalogue.certificates {
        assert_ne!(c.status(), CertificateStatus::Unspecified, "{}", c.name_zh);
        for name in &c.answered_by {
            let predicate = catalogue.predicates.iter().any(|p| &p.name == name);
            let served = catalogue
                .attributes
                .iter()
                .any(|a| &a.name == name && !a.abolished && a.sharing != "not_shared");
            assert!(predicate || served, "{}: {name} answers nothing", c.name_zh);
        }
    }
    let commitments: Vec<&str> = catalogue
        .certificates
        .iter()
        .filter(|c| c.status() == CertificateStatus::CertCommitment)
        .map(|c| c.name_zh.as_str())
        .collect();
    assert_eq!(commitments, ["户籍地无监护条件证明", "集体经济组织成员证明"]);
    let record = catalogue
        .attributes
        .iter()
        .find(|a| a.name == "ps.criminal_record.convicted")
        .expect("the criminal record is catalogued");
    assert_eq!(record.sharing, "not_shared");
}

/// The criminal record is read by `ps.no_criminal_record` only, and that
/// only for posts a law closes to people with convictions.
#[tokio::test]
async fn the_criminal_record_is_never_served_and_its_check_only_for_restricted_posts() {
    let gw = TestGateway::start().await;
    let clean = sample(&gw, "ps.no_criminal_record: no conviction");
    let refused = |status: tonic::Status, code: Code, why: &str| {
        assert_eq!(
            (status.code(), reason(&status).as_str()),
            (code, why),
            "{}",
            status.message()
        );
        status.message().to_owned()
    };
    // No consent can name the record itself, and no right reaches it.
    let status = gw
        .try_grant(
            &clean.citizen_id,
            "qujing-psb",
            &["ps.criminal_record.convicted"],
            "hukou.settlement",
            1,
        )
        .await
        .unwrap_err();
    let message = refused(status, Code::PermissionDenied, "NO_ACCESS_RIGHT");
    assert!(message.contains("ps.no_criminal_record"), "{message}");
    let status = gw
        .exchange("qujing-psb")
        .await
        .query(QueryRequest {
            citizen_id: clean.citizen_id.clone(),
            attributes: vec!["ps.criminal_record.convicted".into()],
            purpose: "hukou.settlement".into(),
            consent_id: "0".repeat(32),
            request_id: "q".into(),
            operator: "staff-7".into(),
        })
        .await
        .unwrap_err();
    refused(status, Code::PermissionDenied, "NO_ACCESS_RIGHT");
    // Nor a household's assessed finances, which only the means test reads,
    // whatever prefix right an agency holds (qujing-psb's `ca.*`).
    let status = gw
        .try_grant(
            &clean.citizen_id,
            "qujing-psb",
            &["ca.means_test.income_per_person"],
            "hukou.settlement",
            1,
        )
        .await
        .unwrap_err();
    let message = refused(status, Code::PermissionDenied, "NO_ACCESS_RIGHT");
    assert!(message.contains("ca.means_test"), "{message}");
    // No administrator can hand out a right to them, by name or by a prefix that covers only them.
    for (scope, why) in [
        ("ps.criminal_record.convicted", "NO_ACCESS_RIGHT"),
        ("ps.criminal_record.*", "UNKNOWN_ATTRIBUTE"),
        ("ca.means_test.*", "UNKNOWN_ATTRIBUTE"),
    ] {
        let status = gw
            .admin("qujing-admin")
            .await
            .set_access_rights(civex_proto::v1::SetAccessRightsRequest {
                agency_code: "qujing-tax".into(),
                add: vec![civex_proto::v1::AccessRight {
                    scope: scope.into(),
                    purposes: vec!["employment.restricted_post".into()],
                }],
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(reason(&status), why, "{scope}: {}", status.message());
    }
    // The check is not for settling, even to an agency whose `ps.*` right covers it.
    let status = gw
        .try_grant(
            &clean.citizen_id,
            "qujing-psb",
            &["ps.no_criminal_record"],
            "hukou.settlement",
            1,
        )
        .await
        .unwrap_err();
    let message = refused(status, Code::InvalidArgument, "INVALID_REQUEST");
    assert!(message.contains("employment.restricted_post"), "{message}");
    let consent = gw
        .grant(&clean.citizen_id, "qujing-psb", &["ps.alive"], "hukou.settlement", 1)
        .await
        .consent_id;
    let status = gw
        .exchange("qujing-psb")
        .await
        .check(request(
            &clean.citizen_id,
            "ps.no_criminal_record",
            &[],
            "hukou.settlement",
            &consent,
        ))
        .await
        .unwrap_err();
    refused(status, Code::PermissionDenied, "NO_ACCESS_RIGHT");
}

/// Parameters of the certificate checks are checked before anything is read,
/// and a means test's reasons state the public standard, never the household's figures.
#[tokio::test]
async fn certificate_checks_refuse_bad_parameters_and_disclose_no_figures() {
    let gw = TestGateway::start().await;
    let (agency, purpose) = asker("ca.means_test");
    let poor = sample(&gw, "ca.means_test: within the dibao standards");
    let consent = gw
        .grant(&poor.citizen_id, agency, &["ca.means_test", "ca.unmarried"], purpose, 0)
        .await
        .consent_id;
    let mut civil = gw.exchange(agency).await;
    type Params = Vec<(&'static str, String)>;
    let cases: [(&str, Params, &str); 4] = [
        (
            "ca.means_test",
            vec![("program", "lottery".into())],
            "names no means-tested program",
        ),
        ("ca.means_test", vec![], "needs parameter program"),
        (
            "ca.unmarried",
            vec![("division", "530302".into())],
            "takes no parameters",
        ),
        (
            "ca.means_test",
            vec![("program", "dibao".into()), ("months", "12".into())],
            "takes no parameter",
        ),
    ];
    for (predicate, params, says) in cases {
        let status = civil
            .check(request(&poor.citizen_id, predicate, &params, purpose, &consent))
            .await
            .unwrap_err();
        assert_eq!(
            (status.code(), reason(&status).as_str()),
            (Code::InvalidArgument, "INVALID_REQUEST"),
            "{predicate} {params:?}"
        );
        assert!(status.message().contains(says), "{}", status.message());
    }
    let (agency, purpose) = asker("residence.months_at_least");
    let resident = sample(&gw, "residence.months_at_least: a year and more");
    let consent = gw
        .grant(&resident.citizen_id, agency, &["residence.months_at_least"], purpose, 0)
        .await
        .consent_id;
    for months in ["0", "1201", "twelve", "-3", "1.5"] {
        let status = gw
            .exchange(agency)
            .await
            .check(request(
                &resident.citizen_id,
                "residence.months_at_least",
                &[("division", "530302".into()), ("months", months.into())],
                purpose,
                &consent,
            ))
            .await
            .unwrap_err();
        assert_eq!(reason(&status), "INVALID_REQUEST", "months={months}");
    }
    let (agency, purpose) = asker("ca.means_test");
    let consent = gw
        .grant(&poor.citizen_id, agency, &["ca.means_test"], purpose, 1)
        .await
        .consent_id;
    let answer = civil
        .check(request(
            &poor.citizen_id,
            "ca.means_test",
            &poor.params,
            purpose,
            &consent,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(answer.satisfied, "{:?}", answer.reasons);
    assert!(answer.reasons.iter().any(|r| r.contains("800")), "{:?}", answer.reasons);
    // The demo household's own figures (500 yuan, 10 000 yuan) appear nowhere.
    assert!(
        answer
            .reasons
            .iter()
            .all(|r| !r.contains("500") && !r.contains("10000")),
        "{:?}",
        answer.reasons
    );
}
