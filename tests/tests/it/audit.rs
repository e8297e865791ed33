//! `AuditService` through the public interface: every call is recorded, searches
//! and proofs work, the log survives restarts, and raw citizen IDs never enter it.

use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};

use civex_adapters::Department;
use civex_audit::{
    Pseudonymizer, checkpoint,
    clock::{Clock, timestamp},
    keys::Verifier,
    merkle::{self, Hash},
};
use civex_proto::v1::{
    AccessHistoryRequest, AuditEntry, AuditRecord, AuditSearchRequest, AuditSearchResponse, CheckpointRequest,
    ConsistencyProofRequest, Decision, GetEntryRequest, GrantConsentRequest, InclusionProofRequest,
    ListConsentsRequest, Proof, QueryRequest, ReportRequest, ReportResponse, audit_service_client::AuditServiceClient,
};
use civex_tests::{TestGateway, reason};
use prost::Message;
use tonic::{Code, transport::Channel};

type Audit = AuditServiceClient<Channel>;

const OPERATOR: &str = "staff-0042";
const DIVISION: &str = "ps.hukou.division";
const SETTLE: &str = "hukou.settlement";
const QUERY: &str = "ExchangeService/Query";
const GRANT: &str = "ConsentService/Grant";
const ALLOW: i32 = Decision::Allow as i32;
const DENY: i32 = Decision::Deny as i32;

fn query(citizen: &str, attribute: &str, purpose: &str, consent: &str, request_id: &str) -> QueryRequest {
    QueryRequest {
        citizen_id: citizen.into(),
        attributes: vec![attribute.into()],
        purpose: purpose.into(),
        consent_id: consent.into(),
        request_id: request_id.into(),
        operator: OPERATOR.into(),
    }
}

/// `qujing-psb` asking for a citizen's registered division, to settle them in a town.
fn settle(citizen: &str, consent: &str, request_id: &str) -> QueryRequest {
    query(citizen, DIVISION, SETTLE, consent, request_id)
}

/// The first `n` citizens of the demo data.
fn citizens(gw: &TestGateway, n: usize) -> Vec<String> {
    gw.records(Department::PublicSecurity)
        .iter()
        .take(n)
        .map(|r| r["citizen_id"].as_str().unwrap().to_owned())
        .collect()
}

/// The pseudonym the gateway records for `citizen`, from its own key file.
fn pseudonym(gw: &TestGateway, citizen: &str) -> String {
    Pseudonymizer::load_or_create(&gw.config.pseudonym_key_path())
        .unwrap()
        .citizen_ref(citizen)
}

/// `id` with a wrong check character.
fn wrong_check(id: &str) -> String {
    let wrong = if id.ends_with('1') { '2' } else { '1' };
    format!("{}{wrong}", &id[..17])
}

/// Every page of `request`, following page tokens until one comes back empty.
async fn pages(audit: &mut Audit, mut request: AuditSearchRequest) -> Vec<AuditSearchResponse> {
    let mut pages = Vec::new();
    loop {
        let page = audit.search(request.clone()).await.unwrap().into_inner();
        request.page_token = page.next_page_token.clone();
        pages.push(page);
        if request.page_token.is_empty() {
            return pages;
        }
    }
}

/// Every entry `request` matches, across all pages.
async fn search_all(audit: &mut Audit, request: AuditSearchRequest) -> Vec<AuditEntry> {
    pages(audit, request)
        .await
        .into_iter()
        .flat_map(|p| p.entries)
        .collect()
}

/// A fresh checkpoint whose note verifies under the gateway key and agrees with its fields.
async fn signed_checkpoint(audit: &mut Audit, verifier: &Verifier) -> (u64, Hash) {
    let cp = audit.checkpoint(CheckpointRequest {}).await.unwrap().into_inner();
    let note = checkpoint::verify(&cp.note, verifier).expect("the note is signed by the gateway key");
    assert_eq!(note.origin, verifier.name);
    assert_eq!((note.size, note.root.to_vec()), (cp.tree_size, cp.root_hash.clone()));
    (cp.tree_size, note.root)
}

/// A proof's hashes, each 32 bytes.
pub(crate) fn hashes(proof: &Proof) -> Vec<Hash> {
    proof
        .hashes
        .iter()
        .map(|h| <[u8; 32]>::try_from(h.as_slice()).unwrap())
        .collect()
}

/// RFC 9162 MTH over leaf hashes, computed apart from the gateway.
fn mth(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => merkle::empty_root(),
        1 => leaves[0],
        n => {
            let k = 1usize << (usize::BITS - 1 - (n - 1).leading_zeros());
            merkle::node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
        }
    }
}

/// (action, agency, decision, reason).
fn summary(e: &AuditEntry) -> (&str, &str, i32, &str) {
    (e.action.as_str(), e.agency.as_str(), e.decision, e.reason.as_str())
}

/// (action, agency, citizen_ref, request_id, decision).
type Row<'a> = (&'a str, &'a str, &'a str, &'a str, i32);

fn rows(entries: &[AuditEntry]) -> Vec<Row<'_>> {
    entries
        .iter()
        .map(|e| {
            (
                e.action.as_str(),
                e.agency.as_str(),
                e.citizen_ref.as_str(),
                e.request_id.as_str(),
                e.decision,
            )
        })
        .collect()
}

fn only<'a>(rows: &[Row<'a>], keep: impl Fn(&Row<'a>) -> bool) -> Vec<Row<'a>> {
    rows.iter().copied().filter(|r| keep(r)).collect()
}

fn indices(entries: &[AuditEntry]) -> Vec<u64> {
    entries.iter().map(|e| e.index).collect()
}

/// (agency, reason, count) of a report, sorted.
fn report_rows(report: ReportResponse) -> Vec<(String, String, u64)> {
    let mut rows: Vec<_> = report.rows.into_iter().map(|r| (r.agency, r.reason, r.count)).collect();
    rows.sort();
    rows
}

fn row(agency: &str, reason: &str, count: u64) -> (String, String, u64) {
    (agency.to_owned(), reason.to_owned(), count)
}

#[tokio::test]
async fn every_call_is_recorded_allowed_or_denied() {
    let gw = TestGateway::start().await;
    let ids = citizens(&gw, 2);
    let consent = gw.grant(&ids[0], "qujing-psb", &[DIVISION], SETTLE, 0).await.consent_id;
    let mut psb = gw.exchange("qujing-psb").await;
    let allowed = psb
        .query(settle(&ids[0], &consent, "call-ok"))
        .await
        .unwrap()
        .into_inner();
    let status = psb
        .query(settle(&ids[0][..17], &consent, "call-bad-id"))
        .await
        .unwrap_err();
    assert_eq!(
        (status.code(), reason(&status).as_str()),
        (Code::InvalidArgument, "INVALID_CITIZEN_ID")
    );
    let status = psb.query(settle(&ids[1], "", "call-no-consent")).await.unwrap_err();
    assert_eq!(reason(&status), "CONSENT_REQUIRED");
    let status = gw
        .exchange("qujing-portal")
        .await
        .query(settle(&ids[1], "", "portal-query"))
        .await
        .unwrap_err();
    assert_eq!(reason(&status), "ROLE_REQUIRED");
    let mut audit = gw.audit("qujing-audit").await;
    let found = audit
        .search(AuditSearchRequest {
            agency: "qujing-psb".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(found.entries.len(), 3, "the three queries so far");
    let status = gw
        .audit("qujing-psb")
        .await
        .search(AuditSearchRequest::default())
        .await
        .unwrap_err();
    assert_eq!(
        (status.code(), reason(&status).as_str()),
        (Code::PermissionDenied, "ROLE_REQUIRED")
    );

    let expected = [
        (GRANT, "qujing-portal", ALLOW, ""),
        (QUERY, "qujing-psb", ALLOW, ""),
        (QUERY, "qujing-psb", DENY, "INVALID_CITIZEN_ID"),
        (QUERY, "qujing-psb", DENY, "CONSENT_REQUIRED"),
        (QUERY, "qujing-portal", DENY, "ROLE_REQUIRED"),
        ("AuditService/Search", "qujing-audit", ALLOW, ""),
        ("AuditService/Search", "qujing-psb", DENY, "ROLE_REQUIRED"),
    ];
    // Small pages, so that the walk spans several calls, each recorded too.
    let walk = pages(
        &mut audit,
        AuditSearchRequest {
            page_size: 3,
            ..Default::default()
        },
    )
    .await;
    assert!(walk.len() > 2);
    let entries: Vec<AuditEntry> = walk.iter().flat_map(|p| p.entries.clone()).collect();
    assert_eq!(
        indices(&entries),
        (0..entries.len() as u64).collect::<Vec<_>>(),
        "every index once, in order"
    );
    // Every page but the last was recorded before the walk read on.
    assert_eq!(entries.len(), expected.len() + walk.len() - 1);
    let got: Vec<_> = entries.iter().map(summary).collect();
    assert_eq!(&got[..expected.len()], &expected[..]);
    for e in &entries[expected.len()..] {
        assert_eq!(summary(e), ("AuditService/Search", "qujing-audit", ALLOW, ""));
    }
    let bad_id = &entries[2];
    assert_eq!(
        (bad_id.request_id.as_str(), bad_id.citizen_ref.as_str()),
        ("call-bad-id", "")
    );

    // The answer names its own record.
    assert_eq!(allowed.audit_index, 1);
    let own = audit
        .get_entry(GetEntryRequest {
            index: allowed.audit_index,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (
            own.index,
            own.action.as_str(),
            own.request_id.as_str(),
            own.operator.as_str()
        ),
        (allowed.audit_index, QUERY, "call-ok", OPERATOR)
    );
    assert_eq!(own.citizen_ref, pseudonym(&gw, &ids[0]));
    assert_eq!(
        (own.purpose.as_str(), own.consent_id.as_str(), own.decision),
        (SETTLE, consent.as_str(), ALLOW)
    );
    assert_eq!(own.scopes, [DIVISION]);
    let record = AuditRecord::decode(own.leaf.as_slice()).unwrap();
    assert_eq!(
        (record.time, record.request_id, record.operator),
        (own.time, own.request_id, own.operator)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrent_burst_of_1000_calls_yields_exactly_1000_records() {
    let gw = TestGateway::start().await;
    let verifier = Verifier::parse(&gw.verifier_key).unwrap();
    let id = citizens(&gw, 1).remove(0);
    let consent = gw.grant(&id, "qujing-psb", &[DIVISION], SETTLE, 0).await.consent_id;
    let mut clients = Vec::new();
    for _ in 0..8 {
        clients.push(gw.exchange("qujing-psb").await);
    }
    // Half allowed, a quarter for a purpose the consent does not cover, a quarter naming no known consent.
    let mut expected: HashMap<String, String> = HashMap::new();
    let mut requests = Vec::new();
    for i in 0..1000u32 {
        let request_id = format!("burst-{i:04}");
        let (request, outcome) = match i % 4 {
            0 | 2 => (settle(&id, &consent, &request_id), ""),
            1 => (
                query(&id, DIVISION, "residence_permit.issue", &consent, &request_id),
                "CONSENT_PURPOSE",
            ),
            _ => (settle(&id, &"f".repeat(32), &request_id), "CONSENT_NOT_FOUND"),
        };
        expected.insert(request_id, outcome.to_owned());
        requests.push(request);
    }
    let mut audit = gw.audit("qujing-audit").await;
    let (before, _) = signed_checkpoint(&mut audit, &verifier).await;

    let tasks: Vec<_> = requests
        .into_iter()
        .enumerate()
        .map(|(i, request)| {
            let mut client = clients[i % clients.len()].clone();
            tokio::spawn(async move {
                let request_id = request.request_id.clone();
                (request_id, client.query(request).await)
            })
        })
        .collect();
    let mut outcomes: HashMap<String, String> = HashMap::new();
    let mut answered_at = HashSet::new();
    for task in futures::future::join_all(tasks).await {
        let (request_id, result) = task.unwrap();
        let outcome = match result {
            Ok(response) => {
                let response = response.into_inner();
                assert_eq!(response.request_id, request_id);
                assert!(answered_at.insert(response.audit_index), "two answers share a record");
                String::new()
            }
            Err(status) => reason(&status),
        };
        outcomes.insert(request_id, outcome);
    }
    assert_eq!(outcomes, expected);
    assert_eq!(answered_at.len(), 500);

    let (after, _) = signed_checkpoint(&mut audit, &verifier).await;
    assert_eq!(
        after - before,
        1000 + 1,
        "the burst's records and the second checkpoint's own"
    );
    let entries = search_all(
        &mut audit,
        AuditSearchRequest {
            agency: "qujing-psb".into(),
            page_size: 200,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(entries.len(), 1000);
    assert!(entries.iter().all(|e| (before..after).contains(&e.index)));
    assert!(entries.iter().all(|e| (e.decision == ALLOW) == e.reason.is_empty()));
    let recorded: HashMap<String, String> = entries
        .iter()
        .map(|e| (e.request_id.clone(), e.reason.clone()))
        .collect();
    assert_eq!(recorded, expected, "every request id once, with its outcome");
    let allowed: HashSet<u64> = entries
        .iter()
        .filter(|e| e.decision == ALLOW)
        .map(|e| e.index)
        .collect();
    assert_eq!(
        allowed, answered_at,
        "one Allow record per OK answer, at the index the answer named"
    );
}

#[tokio::test]
async fn search_filters_and_page_tokens() {
    let gw = TestGateway::start().await;
    let ids = citizens(&gw, 2);
    let (a, b) = (ids[0].as_str(), ids[1].as_str());
    let (ref_a, ref_b) = (pseudonym(&gw, a), pseudonym(&gw, b));
    let (ra, rb) = (ref_a.as_str(), ref_b.as_str());
    let t0 = gw.clock.now();

    // The first group of calls, at t0.
    let consent_a = gw.grant(a, "qujing-psb", &[DIVISION], SETTLE, 0).await.consent_id;
    let consent_b = gw.grant(b, "qujing-psb", &[DIVISION], SETTLE, 0).await.consent_id;
    let tax_a = gw
        .grant(a, "qujing-tax", &["tax.registered"], "tax.admin", 0)
        .await
        .consent_id;
    let mut psb = gw.exchange("qujing-psb").await;
    psb.query(settle(a, &consent_a, "a-1")).await.unwrap();
    psb.query(settle(b, &consent_b, "b-1")).await.unwrap();
    psb.query(settle(a, "", "a-2")).await.unwrap_err();
    gw.exchange("qujing-tax")
        .await
        .query(query(a, "tax.registered", "tax.admin", &tax_a, "a-3"))
        .await
        .unwrap();
    // The second group, an hour later.
    gw.clock.advance(Duration::from_secs(3600));
    psb.query(settle(a, &consent_a, "a-4")).await.unwrap();
    let status = gw
        .exchange("qujing-edu")
        .await
        .query(query(b, DIVISION, "education.enrollment", "", "b-2"))
        .await
        .unwrap_err();
    assert_eq!(reason(&status), "CONSENT_REQUIRED");
    let status = psb.query(settle(b, &"0".repeat(32), "b-3")).await.unwrap_err();
    assert_eq!(reason(&status), "CONSENT_NOT_FOUND");
    // Searches come another hour later, outside both groups' time windows.
    gw.clock.advance(Duration::from_secs(3600));

    let first = [
        (GRANT, "qujing-portal", ra, "", ALLOW),
        (GRANT, "qujing-portal", rb, "", ALLOW),
        (GRANT, "qujing-portal", ra, "", ALLOW),
        (QUERY, "qujing-psb", ra, "a-1", ALLOW),
        (QUERY, "qujing-psb", rb, "b-1", ALLOW),
        (QUERY, "qujing-psb", ra, "a-2", DENY),
        (QUERY, "qujing-tax", ra, "a-3", ALLOW),
    ];
    let second = [
        (QUERY, "qujing-psb", ra, "a-4", ALLOW),
        (QUERY, "qujing-edu", rb, "b-2", DENY),
        (QUERY, "qujing-psb", rb, "b-3", DENY),
    ];
    let all: Vec<Row<'_>> = first.iter().chain(&second).copied().collect();
    let mut audit = gw.audit("qujing-audit").await;
    let search = |f: &dyn Fn(&mut AuditSearchRequest)| {
        let mut request = AuditSearchRequest::default();
        f(&mut request);
        request
    };

    // By citizen: only that citizen's records, by pseudonym.
    let by_a = search_all(&mut audit, search(&|r| r.citizen_id = a.into())).await;
    assert_eq!(rows(&by_a), only(&all, |r| r.2 == ra));
    for e in &by_a {
        assert_eq!(e.citizen_ref.len(), 64);
        assert!(
            e.citizen_ref
                .bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
        );
        assert!(!String::from_utf8_lossy(&e.leaf).contains(a));
    }
    assert_ne!(ra, rb);
    let by_b = search_all(&mut audit, search(&|r| r.citizen_id = b.into())).await;
    assert_eq!(rows(&by_b), only(&all, |r| r.2 == rb));

    // By action, by decision, and combined.
    let grants = search_all(&mut audit, search(&|r| r.action = GRANT.into())).await;
    assert_eq!(rows(&grants), only(&all, |r| r.0 == GRANT));
    let denied = search_all(&mut audit, search(&|r| r.decision = DENY)).await;
    assert_eq!(rows(&denied), only(&all, |r| r.4 == DENY), "the three refused queries");
    let narrow = search_all(
        &mut audit,
        search(&|r| {
            r.citizen_id = a.into();
            r.agency = "qujing-psb".into();
            r.decision = DENY;
        }),
    )
    .await;
    assert_eq!(rows(&narrow), [(QUERY, "qujing-psb", ra, "a-2", DENY)]);

    // By time, on the gateway's clock: `since` inclusive, `until` exclusive.
    let half_hour = Duration::from_secs(1800);
    let early = search_all(&mut audit, search(&|r| r.until = Some(timestamp(t0 + half_hour)))).await;
    assert_eq!(rows(&early), first);
    assert!(early.iter().all(|e| e.time == Some(timestamp(t0))));
    let later = search_all(
        &mut audit,
        search(&|r| {
            r.since = Some(timestamp(t0 + half_hour));
            r.until = Some(timestamp(t0 + 3 * half_hour));
        }),
    )
    .await;
    assert_eq!(rows(&later), second);
    let t1 = t0 + Duration::from_secs(3600);
    assert!(later.iter().all(|e| e.time == Some(timestamp(t1))));
    let at_t1 = search_all(
        &mut audit,
        search(&|r| {
            r.since = Some(timestamp(t1));
            r.until = Some(timestamp(t1 + Duration::from_secs(1)));
        }),
    )
    .await;
    assert_eq!(rows(&at_t1), second, "since is inclusive");

    // By agency, two at a time: ascending, no duplicates, nothing missed.
    let walk = pages(
        &mut audit,
        search(&|r| {
            r.agency = "qujing-psb".into();
            r.page_size = 2;
        }),
    )
    .await;
    assert_eq!(walk.iter().map(|p| p.entries.len()).collect::<Vec<_>>(), [2, 2, 1]);
    let walked: Vec<AuditEntry> = walk.iter().flat_map(|p| p.entries.clone()).collect();
    assert_eq!(rows(&walked), only(&all, |r| r.1 == "qujing-psb"));
    assert!(walked.windows(2).all(|w| w[0].index < w[1].index));

    // The whole log, two at a time, while the walk itself adds records.
    let everything = search_all(&mut audit, search(&|r| r.page_size = 2)).await;
    assert_eq!(indices(&everything), (0..everything.len() as u64).collect::<Vec<_>>());
    assert_eq!(rows(&everything[..all.len()]), all);

    // A token taken when the log was smaller sees what came after.
    let token = walk[1].next_page_token.clone();
    assert!(!token.is_empty());
    psb.query(settle(a, &consent_a, "a-5")).await.unwrap();
    let resumed = search_all(
        &mut audit,
        search(&|r| {
            r.agency = "qujing-psb".into();
            r.page_size = 2;
            r.page_token = token.clone();
        }),
    )
    .await;
    let resumed: Vec<&str> = resumed.iter().map(|e| e.request_id.as_str()).collect();
    assert_eq!(resumed, ["b-3", "a-5"]);

    // Refusals (searches are recorded too, so these come last).
    let status = audit
        .search(search(&|r| r.citizen_id = wrong_check(a)))
        .await
        .unwrap_err();
    assert_eq!(
        (status.code(), reason(&status).as_str()),
        (Code::InvalidArgument, "INVALID_CITIZEN_ID")
    );
    let status = audit
        .search(search(&|r| r.page_token = "not-a-token".into()))
        .await
        .unwrap_err();
    assert_eq!(
        (status.code(), reason(&status).as_str()),
        (Code::InvalidArgument, "INVALID_REQUEST")
    );
    let status = gw
        .audit("qujing-psb")
        .await
        .search(search(&|r| r.agency = "qujing-psb".into()))
        .await
        .unwrap_err();
    assert_eq!(
        (status.code(), reason(&status).as_str()),
        (Code::PermissionDenied, "ROLE_REQUIRED")
    );
}

#[tokio::test]
async fn access_history_shows_who_read_a_citizens_data() {
    let gw = TestGateway::start().await;
    let ids = citizens(&gw, 2);
    let (c, other) = (ids[0].as_str(), ids[1].as_str());
    let psb_consent = gw.grant(c, "qujing-psb", &[DIVISION], SETTLE, 0).await.consent_id;
    let tax_consent = gw
        .grant(c, "qujing-tax", &["tax.registered"], "tax.admin", 0)
        .await
        .consent_id;
    let other_consent = gw.grant(other, "qujing-psb", &[DIVISION], SETTLE, 0).await.consent_id;
    let psb_read = gw
        .exchange("qujing-psb")
        .await
        .query(settle(c, &psb_consent, "h-1"))
        .await
        .unwrap()
        .into_inner();
    let tax_read = gw
        .exchange("qujing-tax")
        .await
        .query(query(c, "tax.registered", "tax.admin", &tax_consent, "h-2"))
        .await
        .unwrap()
        .into_inner();
    // Not in this citizen's history: a refusal, another citizen.
    let status = gw
        .exchange("qujing-edu")
        .await
        .query(query(c, DIVISION, "education.enrollment", "", "h-3"))
        .await
        .unwrap_err();
    assert_eq!(reason(&status), "CONSENT_REQUIRED");
    gw.exchange("qujing-psb")
        .await
        .query(settle(other, &other_consent, "h-4"))
        .await
        .unwrap();
    // In it (DESIGN §11): reading the citizen's consents at a counter.
    gw.consents("qujing-portal")
        .await
        .list(ListConsentsRequest { citizen_id: c.into() })
        .await
        .unwrap();

    let request = AccessHistoryRequest {
        citizen_id: c.into(),
        ..Default::default()
    };
    let mut portal = gw.audit("qujing-portal").await;
    let seen = portal.access_history(request.clone()).await.unwrap().into_inner();
    assert!(seen.next_page_token.is_empty());
    let got: Vec<_> = seen
        .entries
        .iter()
        .map(|e| {
            (
                e.agency.as_str(),
                e.action.as_str(),
                e.purpose.as_str(),
                e.scopes.clone(),
                e.request_id.as_str(),
                e.decision,
            )
        })
        .collect();
    let grant = |purpose, scope: &str| {
        (
            "qujing-portal",
            "ConsentService/Grant",
            purpose,
            vec![scope.to_owned()],
            "",
            ALLOW,
        )
    };
    assert_eq!(
        got,
        vec![
            grant(SETTLE, DIVISION),
            grant("tax.admin", "tax.registered"),
            ("qujing-psb", QUERY, SETTLE, vec![DIVISION.to_owned()], "h-1", ALLOW),
            (
                "qujing-tax",
                QUERY,
                "tax.admin",
                vec!["tax.registered".to_owned()],
                "h-2",
                ALLOW
            ),
            ("qujing-portal", "ConsentService/List", "", vec![], "", ALLOW),
        ]
    );
    let reads: Vec<u64> = seen
        .entries
        .iter()
        .filter(|e| e.action == QUERY)
        .map(|e| e.index)
        .collect();
    assert_eq!(reads, [psb_read.audit_index, tax_read.audit_index]);
    let c_ref = pseudonym(&gw, c);
    assert!(seen.entries.iter().all(|e| e.citizen_ref == c_ref && e.time.is_some()));

    // One at a time, with tokens; the history read just made is in it now
    // (and each page read adds one more, so stop one past what was seen).
    let mut paged = Vec::new();
    let mut token = String::new();
    while paged.len() <= seen.entries.len() {
        let page = portal
            .access_history(AccessHistoryRequest {
                page_size: 1,
                page_token: token,
                ..request.clone()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(page.entries.len(), 1);
        paged.extend(page.entries);
        token = page.next_page_token;
    }
    assert_eq!(paged[..seen.entries.len()], seen.entries[..]);
    assert_eq!(paged[seen.entries.len()].action, "AuditService/AccessHistory");

    // The auditor sees the same.
    let by_auditor = gw
        .audit("qujing-audit")
        .await
        .access_history(request.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_auditor.entries[..seen.entries.len()], seen.entries[..]);

    let status = gw.audit("qujing-psb").await.access_history(request).await.unwrap_err();
    assert_eq!(
        (status.code(), reason(&status).as_str()),
        (Code::PermissionDenied, "ROLE_REQUIRED")
    );
    let status = portal
        .access_history(AccessHistoryRequest {
            citizen_id: "12345".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        (status.code(), reason(&status).as_str()),
        (Code::InvalidArgument, "INVALID_CITIZEN_ID")
    );
}

#[tokio::test]
async fn checkpoints_and_proofs_verify() {
    let gw = TestGateway::start().await;
    let verifier = Verifier::parse(&gw.verifier_key).unwrap();
    let ids = citizens(&gw, 3);
    let mut psb = gw.exchange("qujing-psb").await;
    for (i, id) in ids.iter().enumerate() {
        let consent = gw.grant(id, "qujing-psb", &[DIVISION], SETTLE, 0).await.consent_id;
        psb.query(settle(id, &consent, &format!("p-{i}"))).await.unwrap();
        psb.query(settle(id, "", &format!("p-{i}-refused"))).await.unwrap_err();
    }
    let mut audit = gw.audit("qujing-audit").await;
    let (size1, root1) = signed_checkpoint(&mut audit, &verifier).await;
    assert_eq!(size1, 3 * 3 + 1, "nine calls and the checkpoint's own record");

    // The root is the RFC 9162 root of the leaves the log hands out.
    let entries = search_all(&mut audit, AuditSearchRequest::default()).await;
    let entries = &entries[..size1 as usize];
    assert_eq!(indices(entries), (0..size1).collect::<Vec<_>>());
    assert_eq!(entries[size1 as usize - 1].action, "AuditService/Checkpoint");
    let leaves: Vec<Hash> = entries.iter().map(|e| merkle::leaf_hash(&e.leaf)).collect();
    assert_eq!(mth(&leaves), root1);

    for index in [0, 1, size1 / 2, size1 - 1] {
        let entry = audit.get_entry(GetEntryRequest { index }).await.unwrap().into_inner();
        assert_eq!(entry.index, index);
        assert_eq!(entry.leaf, entries[index as usize].leaf);
        let record = AuditRecord::decode(entry.leaf.as_slice()).unwrap();
        assert_eq!(
            (record.action, record.agency, record.request_id),
            (entry.action, entry.agency, entry.request_id)
        );
        let leaf = merkle::leaf_hash(&entry.leaf);
        let proof = hashes(
            &audit
                .inclusion_proof(InclusionProofRequest {
                    index,
                    tree_size: size1,
                })
                .await
                .unwrap()
                .into_inner(),
        );
        assert_eq!(
            merkle::verify_inclusion(&leaf, index, size1, &proof, &root1),
            Ok(()),
            "entry {index}"
        );
        let mut flipped = proof.clone();
        flipped[0][0] ^= 1;
        assert!(merkle::verify_inclusion(&leaf, index, size1, &flipped, &root1).is_err());
        let neighbour = merkle::leaf_hash(&entries[(index as usize + 1) % size1 as usize].leaf);
        assert!(merkle::verify_inclusion(&neighbour, index, size1, &proof, &root1).is_err());
    }

    for i in 0..5 {
        psb.query(settle(&ids[0], "", &format!("more-{i}"))).await.unwrap_err();
    }
    let (size2, root2) = signed_checkpoint(&mut audit, &verifier).await;
    assert!(size2 > size1);
    let proof = hashes(
        &audit
            .consistency_proof(ConsistencyProofRequest {
                first: size1,
                second: size2,
            })
            .await
            .unwrap()
            .into_inner(),
    );
    assert_eq!(merkle::verify_consistency(size1, size2, &root1, &root2, &proof), Ok(()));
    let mut flipped = proof.clone();
    flipped[0][31] ^= 0x80;
    assert!(merkle::verify_consistency(size1, size2, &root1, &root2, &flipped).is_err());
    assert!(merkle::verify_consistency(size1, size2, &root2, &root2, &proof).is_err());
    // An old entry is still in the grown tree.
    let proof = hashes(
        &audit
            .inclusion_proof(InclusionProofRequest {
                index: 0,
                tree_size: size2,
            })
            .await
            .unwrap()
            .into_inner(),
    );
    assert_eq!(merkle::verify_inclusion(&leaves[0], 0, size2, &proof, &root2), Ok(()));

    for (index, tree_size) in [(size2, size2), (size2 + 5, size2), (0, size2 + 1000)] {
        let status = audit
            .inclusion_proof(InclusionProofRequest { index, tree_size })
            .await
            .unwrap_err();
        assert_eq!(
            (status.code(), reason(&status).as_str()),
            (Code::InvalidArgument, "INVALID_REQUEST"),
            "index {index} of {tree_size}"
        );
    }
    for (first, second) in [(0, size1), (size2, size1), (size1, size2 + 1000)] {
        let status = audit
            .consistency_proof(ConsistencyProofRequest { first, second })
            .await
            .unwrap_err();
        assert_eq!(
            (status.code(), reason(&status).as_str()),
            (Code::InvalidArgument, "INVALID_REQUEST"),
            "{first} to {second}"
        );
    }
    let status = audit
        .get_entry(GetEntryRequest { index: size2 + 1000 })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);

    // A note with a changed size no longer verifies.
    let cp = audit.checkpoint(CheckpointRequest {}).await.unwrap().into_inner();
    let forged = cp.note.replacen(
        &format!("\n{}\n", cp.tree_size),
        &format!("\n{}\n", cp.tree_size + 1),
        1,
    );
    assert_ne!(forged, cp.note);
    assert!(checkpoint::verify(&forged, &verifier).is_err());
}

#[tokio::test]
async fn the_log_survives_a_restart_and_stays_consistent() {
    let gw = TestGateway::start().await;
    let vkey = gw.verifier_key.clone();
    let verifier = Verifier::parse(&vkey).unwrap();
    let ids = citizens(&gw, 2);
    let consent = gw.grant(&ids[0], "qujing-psb", &[DIVISION], SETTLE, 0).await.consent_id;
    let mut psb = gw.exchange("qujing-psb").await;
    for i in 0..5 {
        psb.query(settle(&ids[0], &consent, &format!("before-{i}")))
            .await
            .unwrap();
    }
    psb.query(settle(&ids[1], &consent, "before-refused"))
        .await
        .unwrap_err();
    let mut audit = gw.audit("qujing-audit").await;
    let kept = [0u64, 3, 6];
    let mut leaves = Vec::new();
    for index in kept {
        leaves.push(
            audit
                .get_entry(GetEntryRequest { index })
                .await
                .unwrap()
                .into_inner()
                .leaf,
        );
    }
    let (n1, r1) = signed_checkpoint(&mut audit, &verifier).await;
    assert_eq!(n1, 7 + 3 + 1, "seven calls, three reads and the checkpoint");
    drop((psb, audit));

    let gw = gw.restart().await;
    assert_eq!(gw.verifier_key, vkey, "the signing key survives the restart");
    let mut audit = gw.audit("qujing-audit").await;
    for (index, leaf) in kept.iter().zip(&leaves) {
        let entry = audit
            .get_entry(GetEntryRequest { index: *index })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(&entry.leaf, leaf, "entry {index} after the restart");
    }
    let mut psb = gw.exchange("qujing-psb").await;
    let first = psb
        .query(settle(&ids[0], &consent, "after-0"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        first.audit_index,
        n1 + kept.len() as u64,
        "the log goes on where it stopped"
    );
    for i in 1..4 {
        psb.query(settle(&ids[0], &consent, &format!("after-{i}")))
            .await
            .unwrap();
    }
    let (n2, r2) = signed_checkpoint(&mut audit, &verifier).await;
    assert_eq!(n2, n1 + kept.len() as u64 + 4 + 1);
    let proof = hashes(
        &audit
            .consistency_proof(ConsistencyProofRequest { first: n1, second: n2 })
            .await
            .unwrap()
            .into_inner(),
    );
    assert_eq!(merkle::verify_consistency(n1, n2, &r1, &r2, &proof), Ok(()));
    for (index, leaf) in kept.iter().zip(&leaves) {
        let proof = hashes(
            &audit
                .inclusion_proof(InclusionProofRequest {
                    index: *index,
                    tree_size: n2,
                })
                .await
                .unwrap()
                .into_inner(),
        );
        assert_eq!(
            merkle::verify_inclusion(&merkle::leaf_hash(leaf), *index, n2, &proof, &r2),
            Ok(()),
            "entry {index}"
        );
    }
}

#[tokio::test]
async fn no_record_contains_a_raw_id_number() {
    let gw = TestGateway::start().await;
    let mut valid = citizens(&gw, 3);
    // One whose check character is X, also sent with a lower-case x.
    let with_x = gw
        .records(Department::PublicSecurity)
        .iter()
        .filter_map(|r| r["citizen_id"].as_str().map(str::to_owned))
        .find(|id| id.ends_with('X'));
    valid.extend(with_x);
    let invalid = vec![
        wrong_check(&valid[0]),
        valid[1][..17].to_owned(),
        format!("{} ", valid[2]),
        "110105491231002".to_owned(),
    ];

    let mut psb = gw.exchange("qujing-psb").await;
    let mut portal = gw.consents("qujing-portal").await;
    let mut history = gw.audit("qujing-portal").await;
    let mut audit = gw.audit("qujing-audit").await;
    for (i, id) in valid.iter().enumerate() {
        let consent = gw.grant(id, "qujing-psb", &[DIVISION], SETTLE, 0).await.consent_id;
        psb.query(settle(id, &consent, &format!("v-{i}"))).await.unwrap();
        psb.query(settle(&id.to_lowercase(), &consent, &format!("v-{i}-lower")))
            .await
            .unwrap();
        portal
            .list(ListConsentsRequest { citizen_id: id.clone() })
            .await
            .unwrap();
        audit
            .search(AuditSearchRequest {
                citizen_id: id.to_lowercase(),
                ..Default::default()
            })
            .await
            .unwrap();
        history
            .access_history(AccessHistoryRequest {
                citizen_id: id.clone(),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    for (i, id) in invalid.iter().enumerate() {
        let status = psb.query(settle(id, "", &format!("i-{i}"))).await.unwrap_err();
        assert_eq!(reason(&status), "INVALID_CITIZEN_ID", "{id:?}");
        let status = portal
            .grant(GrantConsentRequest {
                citizen_id: id.clone(),
                grantee: "qujing-psb".into(),
                scopes: vec![DIVISION.into()],
                purpose: SETTLE.into(),
                not_after: Some(timestamp(gw.clock.now() + Duration::from_secs(3600))),
                max_uses: 0,
            })
            .await
            .unwrap_err();
        assert_eq!(reason(&status), "INVALID_CITIZEN_ID", "{id:?}");
        let status = audit
            .search(AuditSearchRequest {
                citizen_id: id.clone(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(reason(&status), "INVALID_CITIZEN_ID", "{id:?}");
        let status = history
            .access_history(AccessHistoryRequest {
                citizen_id: id.clone(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(reason(&status), "INVALID_CITIZEN_ID", "{id:?}");
    }

    let entries = search_all(
        &mut audit,
        AuditSearchRequest {
            page_size: 1000,
            ..Default::default()
        },
    )
    .await;
    assert!(entries.len() >= valid.len() * 6 + invalid.len() * 4);
    let mut needles = Vec::new();
    for id in valid.iter().chain(&invalid) {
        let id = id.trim();
        needles.push(id.to_owned());
        needles.push(id.to_lowercase());
        if id.len() >= 17 {
            needles.push(id[..17].to_owned());
        }
    }
    for e in &entries {
        let text = String::from_utf8_lossy(&e.leaf);
        for needle in &needles {
            let raw = e.leaf.windows(needle.len()).any(|w| w == needle.as_bytes());
            assert!(
                !raw && !text.contains(needle.as_str()),
                "entry {} ({}) contains {needle}",
                e.index,
                e.action
            );
        }
    }
    // The records do name the citizens, by pseudonym only.
    for id in &valid {
        let r = pseudonym(&gw, id);
        assert!(entries.iter().any(|e| e.citizen_ref == r), "no record about {id}");
    }
}

#[tokio::test]
async fn the_oversight_report_counts_refusals_per_agency_and_reason() {
    let gw = TestGateway::start().await;
    let id = citizens(&gw, 1).remove(0);
    let mut tax = gw.exchange("qujing-tax").await;
    for i in 0..3 {
        let status = tax
            .query(query(&id, "ps.hukou.nature", "tax.admin", "", &format!("n-{i}")))
            .await
            .unwrap_err();
        assert_eq!(reason(&status), "ATTRIBUTE_ABOLISHED");
    }
    let status = gw
        .exchange("qujing-edu")
        .await
        .query(QueryRequest {
            attributes: vec![DIVISION.into(), "ps.hukou.nature".into()],
            ..query(&id, DIVISION, "education.enrollment", "", "n-edu")
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&status), "ATTRIBUTE_ABOLISHED");
    let status = tax
        .query(query(&id, DIVISION, "tax.admin", "", "no-right"))
        .await
        .unwrap_err();
    assert_eq!(reason(&status), "NO_ACCESS_RIGHT");
    // Allowed calls are not refusals.
    let consent = gw
        .grant(&id, "qujing-tax", &["tax.registered"], "tax.admin", 0)
        .await
        .consent_id;
    tax.query(query(&id, "tax.registered", "tax.admin", &consent, "ok"))
        .await
        .unwrap();

    let mut audit = gw.audit("qujing-audit").await;
    let mut expected = vec![
        row("qujing-edu", "ATTRIBUTE_ABOLISHED", 1),
        row("qujing-tax", "ATTRIBUTE_ABOLISHED", 3),
        row("qujing-tax", "NO_ACCESS_RIGHT", 1),
    ];
    let report = audit.report(ReportRequest::default()).await.unwrap().into_inner();
    assert_eq!(report_rows(report), expected);

    // A refused report is a refusal like any other.
    let status = gw
        .audit("qujing-psb")
        .await
        .report(ReportRequest::default())
        .await
        .unwrap_err();
    assert_eq!(
        (status.code(), reason(&status).as_str()),
        (Code::PermissionDenied, "ROLE_REQUIRED")
    );
    expected.push(row("qujing-psb", "ROLE_REQUIRED", 1));
    expected.sort();
    let report = audit.report(ReportRequest::default()).await.unwrap().into_inner();
    assert_eq!(report_rows(report), expected);
}

#[tokio::test]
async fn reports_count_per_hour_and_stored_checkpoints_page_newest_first() {
    let gw = TestGateway::start().await;
    let mut audit = gw.audit("qujing-audit").await;
    let start = gw.clock.now();
    let mut sizes = Vec::new();
    for _ in 0..3 {
        sizes.push(
            audit
                .checkpoint(CheckpointRequest {})
                .await
                .unwrap()
                .into_inner()
                .tree_size,
        );
        gw.clock.advance(Duration::from_secs(3600));
    }
    let rows = audit
        .report(ReportRequest {
            since: Some(timestamp(start - Duration::from_secs(3600))),
            allowed: true,
            bucket_seconds: 3600,
            ..ReportRequest::default()
        })
        .await
        .unwrap()
        .into_inner()
        .rows;
    // One checkpoint call in each of three hours, each counted in its own.
    let buckets: HashSet<i64> = rows
        .iter()
        .filter(|r| r.action == "AuditService/Checkpoint")
        .map(|r| r.bucket_start.unwrap().seconds)
        .collect();
    assert_eq!(buckets.len(), 3, "{rows:?}");
    assert!(buckets.iter().all(|b| b % 3600 == 0));

    let verifier = Verifier::parse(&gw.verifier_key).unwrap();
    let first = audit
        .list_checkpoints(civex_proto::v1::ListCheckpointsRequest {
            page_size: 2,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let shown: Vec<u64> = first.checkpoints.iter().map(|c| c.tree_size).collect();
    assert_eq!(shown, vec![sizes[2], sizes[1]]);
    for cp in &first.checkpoints {
        assert_eq!(checkpoint::verify(&cp.note, &verifier).unwrap().size, cp.tree_size);
    }
    let rest = audit
        .list_checkpoints(civex_proto::v1::ListCheckpointsRequest {
            page_size: 2,
            page_token: first.next_page_token,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rest.checkpoints.first().map(|c| c.tree_size), Some(sizes[0]));
    let malformed = audit
        .list_checkpoints(civex_proto::v1::ListCheckpointsRequest {
            page_size: 2,
            page_token: "x".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&malformed), "INVALID_REQUEST");
}

/// DESIGN §16: a use for a purpose with a disclosure delay (an investigation)
/// stays out of the citizen's history until the delay ends, and auditors
/// see it all along.
#[tokio::test]
async fn an_investigations_use_reaches_the_citizens_history_on_the_day_its_delay_ends() {
    use civex_gateway::policy::purposes::{INVESTIGATION, INVESTIGATION_DELAY_DAYS};

    let gw = TestGateway::start().await;
    let citizen = crate::consent::first_citizen(&gw);
    let consent = gw
        .grant(&citizen, "qujing-psb", &["ps.hukou.division"], INVESTIGATION, 0)
        .await
        .consent_id;
    let answered = gw
        .exchange("qujing-psb")
        .await
        .query(civex_proto::v1::QueryRequest {
            purpose: INVESTIGATION.into(),
            ..crate::consent::query(&citizen, &consent)
        })
        .await
        .unwrap()
        .into_inner();
    // A correction of the fact the investigation received is sent at once, and delayed in the history with it.
    let objection = gw
        .corrections("qujing-portal")
        .await
        .object(civex_proto::v1::ObjectRequest {
            citizen_id: citizen.clone(),
            attribute: "ps.hukou.division".into(),
            statement: "registered elsewhere".into(),
            operator: "counter-1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let resolved = gw
        .corrections("qujing-psb")
        .await
        .resolve(civex_proto::v1::ResolveRequest {
            objection_id: objection.objection_id,
            outcome: civex_proto::v1::ObjectionState::ObjectionCorrected as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resolved.notified, 1);
    let shown = async || {
        let history = gw.history(&citizen).await;
        let notified = history.iter().any(|e| e.action == "CorrectionService/Notify");
        let read = history.iter().any(|e| e.index == answered.audit_index);
        assert_eq!(notified, read, "the notice shows with the call it corrects");
        read
    };
    let audited = gw
        .search(AuditSearchRequest {
            citizen_id: citizen.clone(),
            ..Default::default()
        })
        .await;
    assert!(
        audited.iter().any(|e| e.index == answered.audit_index),
        "auditors see it at once"
    );
    assert!(!shown().await, "not in the history while the investigation runs");
    let delay = Duration::from_secs(u64::from(INVESTIGATION_DELAY_DAYS) * 86_400);
    gw.clock.advance(delay - Duration::from_secs(3600));
    assert!(!shown().await, "an hour before the delay ends");
    gw.clock.advance(Duration::from_secs(3601));
    assert!(shown().await, "once the delay has ended");
}
