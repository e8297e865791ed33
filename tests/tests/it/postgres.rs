//! The PostgreSQL engine through the public interface: a gateway whose
//! every piece of state is in a PostgreSQL server the test starts itself.

use std::collections::HashMap;

use civex_adapters::Department;
use civex_audit::{checkpoint, keys::Verifier, merkle};
use civex_gateway::config::{Config, Engine, StorageConfig};
use civex_proto::v1::{AuditSearchRequest, CheckpointRequest, GetConsentRequest, InclusionProofRequest};
use civex_testpg::TestPostgres;
use civex_tests::{TestGateway, reason};

use crate::{
    audit::hashes,
    consent::{first_citizen, query},
};

pub(crate) fn postgres() -> TestPostgres {
    TestPostgres::start().unwrap_or_else(|e| panic!("{e}"))
}

pub(crate) fn on(pg: &TestPostgres) -> impl FnOnce(&mut Config) + use<> {
    on_url(pg.url())
}

fn on_url(url: String) -> impl FnOnce(&mut Config) {
    move |config: &mut Config| {
        config.storage = StorageConfig {
            engine: Engine::Postgres,
            url: Some(url),
        }
    }
}

async fn uses(gw: &TestGateway, consent: &str) -> u32 {
    let mut portal = gw.consents("qujing-portal").await;
    let request = GetConsentRequest {
        consent_id: consent.into(),
    };
    portal.get(request).await.unwrap().into_inner().uses
}

/// Fifty queries under `consent` at once, spread over `clients`: how many
/// were answered (each with its one fact) and how many refused, by reason.
async fn fifty_at_once(
    clients: &[civex_proto::v1::exchange_service_client::ExchangeServiceClient<tonic::transport::Channel>],
    citizen: &str,
    consent: &str,
) -> HashMap<String, usize> {
    let calls = (0..50).map(|i| {
        let mut client = clients[i % clients.len()].clone();
        let request = query(citizen, consent);
        tokio::spawn(async move { client.query(request).await })
    });
    let mut outcomes: HashMap<String, usize> = HashMap::new();
    for call in futures::future::join_all(calls).await {
        let key = match call.unwrap() {
            Ok(answer) => {
                assert_eq!(answer.into_inner().facts.len(), 1, "the registry in PostgreSQL answers");
                "OK".to_owned()
            }
            Err(status) => reason(&status),
        };
        *outcomes.entry(key).or_default() += 1;
    }
    outcomes
}

/// Checks, through `audit`, that the tree of `later` extends that of `earlier`.
async fn extends(
    audit: &mut civex_proto::v1::audit_service_client::AuditServiceClient<tonic::transport::Channel>,
    earlier: &checkpoint::Checkpoint,
    later: &checkpoint::Checkpoint,
) {
    let proof = audit
        .consistency_proof(civex_proto::v1::ConsistencyProofRequest {
            first: earlier.size,
            second: later.size,
        })
        .await
        .unwrap()
        .into_inner();
    merkle::verify_consistency(earlier.size, later.size, &earlier.root, &later.root, &hashes(&proof)).unwrap_or_else(
        |e| {
            panic!(
                "the tree of {} does not extend that of {}: {e}",
                later.size, earlier.size
            )
        },
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_on_postgres_answers_counts_and_proves_and_keeps_it_across_a_restart() {
    let pg = postgres();
    let gw = TestGateway::start_with(on(&pg)).await;
    let citizen = first_citizen(&gw);
    let consent = gw
        .grant(&citizen, "qujing-psb", &["ps.hukou.division"], "hukou.settlement", 7)
        .await;
    let psb = [gw.exchange("qujing-psb").await];
    assert_eq!(
        fifty_at_once(&psb, &citizen, &consent.consent_id).await,
        HashMap::from([("OK".to_owned(), 7), ("CONSENT_EXHAUSTED".to_owned(), 43)])
    );
    assert_eq!(uses(&gw, &consent.consent_id).await, 7);

    // Every call is in the log, and a checkpoint proves the first one.
    let verifier = Verifier::parse(&gw.verifier_key).unwrap();
    let mut audit = gw.audit("qujing-audit").await;
    let cp = audit.checkpoint(CheckpointRequest {}).await.unwrap().into_inner();
    let note = checkpoint::verify(&cp.note, &verifier).expect("signed by the gateway key");
    assert_eq!(
        note.size,
        1 + 50 + 1 + 1,
        "grant, queries, the consent read, the checkpoint call"
    );
    let found = audit
        .search(AuditSearchRequest {
            citizen_id: citizen.clone(),
            page_size: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .entries;
    assert_eq!(
        found.len(),
        52,
        "the grant, the 50 queries and the consent read name the citizen"
    );
    let first = &found[0];
    let proof = audit
        .inclusion_proof(InclusionProofRequest {
            index: first.index,
            tree_size: note.size,
        })
        .await
        .unwrap()
        .into_inner();
    merkle::verify_inclusion(
        &merkle::leaf_hash(&first.leaf),
        first.index,
        note.size,
        &hashes(&proof),
        &note.root,
    )
    .expect("the first record is in the signed tree");

    // A restarted gateway keeps nothing of its own: the database has it all.
    let gw = gw.restart().await;
    assert_eq!(uses(&gw, &consent.consent_id).await, 7);
    let mut audit = gw.audit("qujing-audit").await;
    let later = audit.checkpoint(CheckpointRequest {}).await.unwrap().into_inner();
    let later = checkpoint::verify(&later.note, &verifier).unwrap();
    assert!(later.size > note.size);
    extends(&mut audit, &note, &later).await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_gateways_share_one_log_count_uses_exactly_and_see_a_suspension_at_once() {
    let pg = postgres();
    let first = TestGateway::start_with(on(&pg)).await;
    let gateways = [&first, &first.join().await, &first.join().await];
    let citizen = first_citizen(&first);
    let consent = first
        .grant(&citizen, "qujing-psb", &["ps.hukou.division"], "hukou.settlement", 7)
        .await;

    // 50 concurrent queries spread over the three: exactly 7 uses.
    let mut clients = Vec::new();
    for gw in gateways {
        clients.push(gw.exchange("qujing-psb").await);
    }
    assert_eq!(
        fifty_at_once(&clients, &citizen, &consent.consent_id).await,
        HashMap::from([("OK".to_owned(), 7), ("CONSENT_EXHAUSTED".to_owned(), 43)])
    );
    for gw in gateways {
        assert_eq!(
            uses(gw, &consent.consent_id).await,
            7,
            "every gateway reads the same count"
        );
    }

    // One log: every gateway's checkpoint is consistent with every later one.
    let verifier = Verifier::parse(&first.verifier_key).unwrap();
    let mut checkpoints = Vec::new();
    for gw in gateways.iter().chain(gateways.iter()) {
        let mut audit = gw.audit("qujing-audit").await;
        let cp = audit.checkpoint(CheckpointRequest {}).await.unwrap().into_inner();
        checkpoints.push((checkpoint::verify(&cp.note, &verifier).unwrap(), audit));
    }
    for (i, (earlier, _)) in checkpoints.iter().enumerate() {
        for (later, audit) in &checkpoints[i + 1..] {
            assert!(later.size > earlier.size, "each checkpoint call adds its own record");
            extends(&mut audit.clone(), earlier, later).await;
        }
    }
    let (last, _) = checkpoints.last().unwrap();
    assert_eq!(
        last.size,
        1 + 50 + 3 + 6,
        "grant, queries, three consent reads, six checkpoint calls"
    );

    // A suspension answered by one gateway is in effect on the others at once.
    let mut tax: Vec<_> = Vec::new();
    for gw in &gateways[1..] {
        let mut client = gw.exchange("qujing-tax").await;
        client
            .list_attributes(civex_proto::v1::ListAttributesRequest {})
            .await
            .expect("served before the suspension");
        tax.push(client);
    }
    let mut admin = first.admin("qujing-admin").await;
    admin
        .suspend_agency(civex_proto::v1::AgencyRef {
            code: "qujing-tax".into(),
            reason: "investigation".into(),
        })
        .await
        .unwrap();
    let answered = std::time::Instant::now();
    for client in &mut tax {
        // A gateway that has not seen the change yet refuses rather than
        // answer on stale state once its last poll is 100 ms old: a call
        // after that is never served.
        tokio::time::sleep(civex_gateway::changes::STALE_AFTER.saturating_sub(answered.elapsed())).await;
        let status = client
            .list_attributes(civex_proto::v1::ListAttributesRequest {})
            .await
            .unwrap_err();
        assert_eq!(reason(&status), "AGENCY_SUSPENDED");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_goes_away_fails_every_call_closed_and_comes_back_with_nothing_lost() {
    use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};

    let pg = postgres();
    let gw = TestGateway::start_with(on(&pg)).await;
    let mut tax = gw.exchange("qujing-tax").await;
    let list = civex_proto::v1::ListAttributesRequest {};
    let mut acknowledged = 0u64;
    for _ in 0..5 {
        tax.list_attributes(list)
            .await
            .expect("served while the database is up");
        acknowledged += 1;
    }
    let mut health = HealthClient::new(gw.channel("qujing-tax").await);
    let check = HealthCheckRequest {
        service: "civex.v1.ExchangeService".into(),
    };
    let status = |s: i32| ServingStatus::try_from(s).unwrap();

    pg.stop().unwrap();
    for _ in 0..3 {
        let e = tax.list_attributes(list).await.expect_err("no answer without a record");
        assert_eq!(
            (e.code(), reason(&e).as_str()),
            (tonic::Code::Unavailable, "AUDIT_UNAVAILABLE")
        );
    }
    assert_eq!(
        status(health.check(check.clone()).await.unwrap().into_inner().status),
        ServingStatus::NotServing
    );

    pg.start_again().unwrap();
    let mut attempts = 0;
    loop {
        match tax.list_attributes(list).await {
            Ok(_) => break,
            Err(e) => assert_eq!(reason(&e), "AUDIT_UNAVAILABLE"),
        }
        attempts += 1;
        assert!(
            attempts < 200,
            "the gateway did not recover when the database came back"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    acknowledged += 1;
    assert_eq!(
        status(health.check(check).await.unwrap().into_inner().status),
        ServingStatus::Serving
    );
    // Every acknowledged call has its record; refused ones may have theirs too.
    let mut audit = gw.audit("qujing-audit").await;
    let listed = audit
        .search(AuditSearchRequest {
            agency: "qujing-tax".into(),
            action: "ExchangeService/ListAttributes".into(),
            decision: civex_proto::v1::Decision::Allow as i32,
            page_size: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .entries;
    assert_eq!(listed.len() as u64, acknowledged);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_divide_an_agencys_quota_by_its_calls_on_each() {
    use civex_gateway::net::limits::PUBLISH_EVERY;
    use civex_proto::v1::{AccessRight, ListAttributesRequest, RateLimit, SetAccessRightsRequest};

    let pg = postgres();
    let first = TestGateway::start_with(on(&pg)).await;
    let second = first.join().await;
    let (per_second, burst) = (40u32, 40u32);
    first
        .admin("qujing-admin")
        .await
        .set_access_rights(SetAccessRightsRequest {
            agency_code: "qujing-tax".into(),
            rights: vec![AccessRight {
                scope: "tax.*".into(),
                purposes: vec!["tax.admin".into()],
            }],
            rate: Some(RateLimit { per_second, burst }),
            ..Default::default()
        })
        .await
        .unwrap();
    // Both gateways have published once since the other started.
    tokio::time::sleep(2 * PUBLISH_EVERY).await;

    // Three calls on the first for each one on the second, together well
    // over the quota and, on the second alone, under it: each gateway
    // applying the whole quota would admit about 1.6 times what is allowed.
    let (to_first, to_second) = (first.exchange("qujing-tax").await, second.exchange("qujing-tax").await);
    let started = std::time::Instant::now();
    let run = std::time::Duration::from_secs(3);
    let flood = |client: civex_proto::v1::exchange_service_client::ExchangeServiceClient<tonic::transport::Channel>,
                 every: std::time::Duration| {
        async move {
            let mut tick = tokio::time::interval(every);
            let mut calls = Vec::new();
            while started.elapsed() < run {
                tick.tick().await;
                let mut c = client.clone();
                calls.push(tokio::spawn(async move {
                    c.list_attributes(ListAttributesRequest {}).await
                }));
            }
            let mut admitted = 0u32;
            for call in futures::future::join_all(calls).await {
                match call.unwrap() {
                    Ok(_) => admitted += 1,
                    // A gateway that stalled past the changes' staleness
                    // bound on a loaded machine refuses before the quota.
                    Err(status) => assert!(
                        ["RATE_LIMITED", "AUDIT_UNAVAILABLE"].contains(&reason(&status).as_str()),
                        "{status:?}"
                    ),
                }
            }
            admitted
        }
    };
    let (on_first, on_second) = futures::future::join(
        flood(to_first, std::time::Duration::from_millis(10)),
        flood(to_second, std::time::Duration::from_millis(30)),
    )
    .await;
    let allowed = f64::from(burst) + f64::from(per_second) * started.elapsed().as_secs_f64();
    let admitted = f64::from(on_first + on_second);
    println!("admitted {on_first} + {on_second} = {admitted} of {allowed:.0} allowed");
    assert!(
        admitted <= 1.25 * allowed && admitted >= 0.6 * allowed,
        "{on_first} + {on_second} admitted where the quota allows {allowed:.0}"
    );
    assert!(
        on_first >= 2 * on_second && on_second > 0,
        "each gateway's share follows its calls (3 : 1), not an equal split: {on_first} and {on_second}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_takes_only_tls_is_reached_over_tls_and_checked_against_its_ca() {
    use civex_gateway::store::postgres;

    let pg = TestPostgres::start_tls().unwrap_or_else(|e| panic!("{e}"));
    // Without TLS the database refuses: what a gateway does below went over TLS.
    let plain = postgres::open(&format!("{}?sslmode=disable", pg.url()))
        .err()
        .expect("refused");
    assert!(plain.0.contains("pg_hba.conf"), "{plain}");
    let gw = TestGateway::start_with(on_url(pg.tls_url())).await;
    // A server whose certificate another CA signed is refused.
    let other_ca = gw.dir.path().join("other-ca.pem");
    std::fs::write(&other_ca, gw.ca.cert_pem()).unwrap();
    let wrong = postgres::open(&format!(
        "{}?sslmode=require&sslrootcert={}",
        pg.url(),
        other_ca.display()
    ))
    .err()
    .expect("refused");
    assert!(wrong.0.contains("UnknownIssuer"), "{wrong}");
    let asks_tls = postgres::open(&format!("{}?sslmode=require", pg.url()))
        .err()
        .expect("refused");
    assert!(asks_tls.0.contains("sslrootcert"), "{asks_tls}");

    let citizen = first_citizen(&gw);
    let consent = gw
        .grant(&citizen, "qujing-psb", &["ps.hukou.division"], "hukou.settlement", 1)
        .await;
    let answer = gw
        .exchange("qujing-psb")
        .await
        .query(query(&citizen, &consent.consent_id))
        .await
        .expect("answered from the registry in the database, over TLS")
        .into_inner();
    assert_eq!(answer.facts.len(), 1);
    assert_eq!(uses(&gw, &consent.consent_id).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateways_starting_together_on_an_empty_database_seed_its_agencies_once() {
    use civex_gateway::{config::demo_agencies, directory::Directory, policy::access::Agency, store::postgres};

    let pg = postgres();
    let url = pg.url();
    let stores: Vec<_> = (0..6).map(|_| postgres::open(&url).expect("opened")).collect();
    // Each with a seed of its own: one of them is stored, whole, and no mix.
    let seeds: Vec<Vec<Agency>> = (0..stores.len())
        .map(|i| {
            let mut seed: Vec<Agency> = demo_agencies().iter().map(Agency::from).collect();
            for a in &mut seed {
                a.name = format!("{} #{i}", a.name);
            }
            seed.sort_by(|a, b| a.code.cmp(&b.code));
            seed
        })
        .collect();
    let started = futures::future::join_all(
        stores
            .iter()
            .zip(&seeds)
            .map(|(s, seed)| Directory::open(s.agencies.clone(), seed.clone())),
    )
    .await;
    let stored = stores[0].agencies.list().await.unwrap();
    assert!(seeds.contains(&stored), "{stored:?}");
    for directory in started {
        let directory = directory.expect("every gateway starts, whichever seeds");
        for agency in &stored {
            assert_eq!(
                directory.agency(&agency.code).map(|a| a.name.clone()),
                Some(agency.name.clone()),
                "every gateway holds the one seed stored"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imports_of_one_registry_that_overlap_leave_the_later_whole() {
    use civex_adapters::{Record, RegistryWriter};
    use civex_gateway::store::postgres;

    let pg = postgres();
    let stores = postgres::open(&pg.url()).expect("opened");
    let registries = stores.registries.clone();
    let ids = ["530302199001010011", "530302199001010038", "530302199001010054"];
    let write = |writer: &mut Box<dyn RegistryWriter>, ids: &[&str], division: &str| {
        let record = Record {
            as_of: 0,
            facts: [("ps.hukou.division".to_owned(), serde_json::json!(division))].into(),
        };
        let encoded = writer.encode(&record).unwrap();
        writer
            .write(ids.iter().map(|id| (id.to_string(), encoded.clone())).collect())
            .unwrap();
    };
    let divisions = || async {
        let adapter = registries.open(Department::PublicSecurity).unwrap();
        let attribute = civex_adapters::catalogue::attribute("ps.hukou.division").unwrap();
        let mut found = Vec::new();
        for id in ids {
            let facts = adapter.fetch(id, &[attribute]).await.unwrap();
            found.push(facts.first().and_then(|f| f.value.as_ref()).map(|v| format!("{v:?}")));
        }
        found
    };
    // Either order of commits: the import that started later stands, whole.
    for later_commits_first in [true, false] {
        let mut earlier = registries.replace(Department::PublicSecurity).unwrap();
        write(&mut earlier, &ids[..1], "earlier");
        let mut later = registries.replace(Department::PublicSecurity).unwrap();
        write(&mut later, &ids[..2], "later");
        if later_commits_first {
            assert_eq!(later.commit().unwrap(), 2);
            write(&mut earlier, &ids[1..], "earlier");
            let refused = earlier.commit().expect_err("superseded by the later import");
            assert!(refused.to_string().contains("started later"), "{refused}");
        } else {
            write(&mut earlier, &ids[1..], "earlier");
            assert_eq!(earlier.commit().unwrap(), 3);
            assert_eq!(later.commit().unwrap(), 2);
        }
        let found = divisions().await;
        assert!(found[0].as_ref().is_some_and(|v| v.contains("later")), "{found:?}");
        assert!(found[1].as_ref().is_some_and(|v| v.contains("later")), "{found:?}");
        assert_eq!(found[2], None, "nothing of the dropped import is current");
        assert_eq!(registries.records(Department::PublicSecurity).unwrap(), 2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_raised_from_calls_on_two_gateways_is_one_alert_seen_by_both() {
    use crate::oversight::{alerts, citizens};

    let pg = postgres();
    let first = TestGateway::start_with(|c| {
        on(&pg)(c);
        c.alerts.refusal_probe.threshold = Some(2);
    })
    .await;
    let second = first.join().await;
    let people = citizens(&first, 2);
    // Twenty refusals, alternating between the gateways, with the rules
    // running on both all along: one alert counting each exactly once.
    let mut refused = Vec::new();
    for i in 0..20 {
        let gw = if i % 2 == 0 { &first } else { &second };
        let status = gw
            .exchange("qujing-psb")
            .await
            .query(civex_proto::v1::QueryRequest {
                citizen_id: people[i % 2].clone(),
                attributes: vec!["ps.hukou.division".into()],
                purpose: "hukou.settlement".into(),
                consent_id: "0123456789abcdef0123456789abcdef".into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(reason(&status), "CONSENT_NOT_FOUND");
        refused.push(status);
    }
    let (on_first, on_second) = (alerts(&first).await, alerts(&second).await);
    let probe = |raised: &[civex_proto::v1::Alert]| -> Vec<(String, u64, usize)> {
        raised
            .iter()
            .filter(|a| a.rule == "refusal_probe")
            .map(|a| (a.alert_id.clone(), a.count, a.indices.len()))
            .collect()
    };
    let found = probe(&on_first);
    assert_eq!(
        found.len(),
        1,
        "one alert, however many gateways ran the rules: {on_first:#?}"
    );
    assert_eq!(
        (found[0].1, found[0].2),
        (20, 20),
        "each refusal counted once, on both gateways' calls"
    );
    assert_eq!(found, probe(&on_second), "both gateways show the same alert");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commitment_on_a_shared_store_is_checked_once_whichever_gateways_run_the_checks() {
    use crate::commitments::{HOUR, NEWCOMER, RESIDENT, citizen, record, settled, verifications};
    use civex_proto::v1::CommitmentState;

    let pg = postgres();
    let first = TestGateway::start_with(on(&pg)).await;
    let second = first.join().await;
    let (resident, newcomer) = (citizen(&first, RESIDENT), citizen(&first, NEWCOMER));
    let mut recorded = Vec::new();
    for who in [&resident, &newcomer] {
        for _ in 0..3 {
            recorded.push(record(&first, who, "demo.residence", HOUR).await.commitment_id);
        }
    }
    // Both gateways' checkers find them due at once.
    first.clock.advance(2 * HOUR);
    second.clock.advance(2 * HOUR);
    for (i, id) in recorded.iter().enumerate() {
        let seen = settled(&second, id).await;
        let expected = if i < 3 {
            CommitmentState::CommitmentTrue
        } else {
            CommitmentState::CommitmentFalse
        };
        assert_eq!(seen.state(), expected, "{id}");
    }
    for who in [&resident, &newcomer] {
        let checks = verifications(&first, who).await;
        assert_eq!(checks.len(), 3, "each commitment checked once: {checks:#?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_correction_on_a_shared_store_finds_the_calls_any_gateway_answered() {
    use civex_proto::v1::{ListCorrectionsRequest, ObjectRequest, ObjectionState, ResolveRequest};

    let pg = postgres();
    let first = TestGateway::start_with(on(&pg)).await;
    let second = first.join().await;
    let citizen = first_citizen(&first);
    let consent = first
        .grant(&citizen, "qujing-psb", &["ps.hukou.division"], "hukou.settlement", 0)
        .await
        .consent_id;
    let mut answered = Vec::new();
    for gw in [&first, &second] {
        let index = gw
            .exchange("qujing-psb")
            .await
            .query(query(&citizen, &consent))
            .await
            .unwrap()
            .into_inner()
            .audit_index;
        answered.push(index);
    }
    let objection = second
        .corrections("qujing-portal")
        .await
        .object(ObjectRequest {
            citizen_id: citizen.clone(),
            attribute: "ps.hukou.division".into(),
            statement: "moved last year".into(),
            operator: "counter-1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let resolved = first
        .corrections("qujing-psb")
        .await
        .resolve(ResolveRequest {
            objection_id: objection.objection_id.clone(),
            outcome: ObjectionState::ObjectionCorrected as i32,
            note: String::new(),
            operator: "steward-1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resolved.notified, 2);
    let sent: Vec<u64> = second
        .corrections("qujing-psb")
        .await
        .list_corrections(ListCorrectionsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .corrections
        .into_iter()
        .map(|c| c.original_index)
        .collect();
    assert_eq!(sent, answered);
}
