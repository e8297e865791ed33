//! Crash safety of the real `civex` binary: under a concurrent mixed load it
//! is killed with SIGKILL at random moments and restarted; after every
//! restart, everything acknowledged is still there, the log verifies, new
//! checkpoints are consistent with all earlier ones, consents are neither
//! lost nor over-counted, and each consent's `uses` is exactly the number of
//! allowed records in the log that count it (the log is their source of
//! truth). The kills are split across several tests so they run side by side. Also: a graceful SIGTERM loses nothing, and an
//! import killed half-way leaves nothing half-imported.

#![allow(clippy::unwrap_used)]

use std::{
    collections::HashMap,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime},
};

use civex_adapters::Department;
use civex_audit::{LogStore, checkpoint, clock::timestamp, keys::Verifier, merkle, tiles::TileLog};
use civex_cli::client::{self, ClientTls};
use civex_proto::v1::{
    AuditRecord, CheckpointRequest, ConsistencyProofRequest, Decision, GetConsentRequest, GetEntryRequest,
    GrantConsentRequest, QueryRequest, RevokeConsentRequest, audit_service_client::AuditServiceClient,
    consent_service_client::ConsentServiceClient, exchange_service_client::ExchangeServiceClient,
};
use prost::Message;
use rand::{Rng, SeedableRng, rngs::StdRng};
use tonic::transport::Channel;

const CIVEX: &str = env!("CARGO_BIN_EXE_civex");
/// SIGKILLs per crash test; there are [`CRASH_TESTS`] of them.
const KILLS: usize = 20;
const CRASH_TESTS: usize = 5;

struct Gateway(Child);

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Peak resident memory (VmHWM) of a process, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `civex demo` on `port` in `dir` and waits until it serves.
fn start(dir: &Path, port: u16) -> Gateway {
    start_with(dir, port, &[])
}

/// As [`start`], with more arguments for `civex demo`.
fn start_with(dir: &Path, port: u16, args: &[&str]) -> Gateway {
    let mut child = Command::new(CIVEX)
        .args(["demo", "--citizens", "200", "--listen", &format!("127.0.0.1:{port}")])
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join("gateway.log"))
                .unwrap(),
        )
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let gateway = Gateway(child);
    let started = Instant::now();
    for line in BufReader::new(stdout).lines() {
        assert!(started.elapsed() < Duration::from_secs(60), "the gateway did not start");
        if line.unwrap().starts_with("civex demo serving on") {
            return gateway;
        }
    }
    panic!("the gateway exited before serving");
}

fn tls(dir: &Path, agency: &str) -> ClientTls {
    let (ca, cert, key) = ClientTls::demo_paths(&dir.join("certs"), agency);
    ClientTls::from_files(&ca, &cert, &key).unwrap()
}

async fn connect(dir: &Path, port: u16, agency: &str) -> Result<Channel, tonic::transport::Error> {
    client::connect(&format!("https://127.0.0.1:{port}"), &tls(dir, agency)).await
}

async fn channel(dir: &Path, port: u16, agency: &str) -> Channel {
    connect(dir, port, agency).await.unwrap()
}

/// What the clients were told, across all runs.
#[derive(Default)]
struct Acknowledged {
    /// audit index → request id of every answered query.
    records: HashMap<u64, String>,
    /// consent id → (max uses, uses answered, uses attempted).
    consents: HashMap<String, (u32, u32, u32)>,
    revoked: Vec<String>,
    checkpoints: Vec<(u64, merkle::Hash)>,
}

/// How much was checked, for the report.
#[derive(Default)]
struct Totals {
    peak_kib: u64,
    records: usize,
    consents: usize,
    revoked: usize,
    checkpoints: usize,
}

fn citizens(dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(dir.join("civex-data/demo-data/ps.jsonl")).unwrap();
    text.lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["citizen_id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

/// One client's share of the mixed load, until `stop`.
async fn load(
    dir: PathBuf,
    port: u16,
    seed: u64,
    ids: Arc<Vec<String>>,
    acked: Arc<Mutex<Acknowledged>>,
    stop: Instant,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    // The gateway may already be dead: a client that cannot connect has nothing to do.
    let (Ok(e), Ok(c), Ok(a)) = (
        connect(&dir, port, "qujing-psb").await,
        connect(&dir, port, "qujing-portal").await,
        connect(&dir, port, "qujing-audit").await,
    ) else {
        return;
    };
    let (mut exchange, mut consents, mut audit) = (
        ExchangeServiceClient::new(e),
        ConsentServiceClient::new(c),
        AuditServiceClient::new(a),
    );
    let mut mine: Vec<String> = Vec::new();
    let mut n = 0u64;
    while Instant::now() < stop {
        n += 1;
        let citizen = &ids[rng.gen_range(0..ids.len())];
        match rng.gen_range(0..10) {
            0..=1 => {
                let max_uses = rng.gen_range(1..5);
                let grant = GrantConsentRequest {
                    citizen_id: citizen.clone(),
                    grantee: "qujing-psb".into(),
                    scopes: vec!["ps.hukou.division".into()],
                    purpose: "hukou.settlement".into(),
                    not_after: Some(timestamp(SystemTime::now() + Duration::from_secs(86_400))),
                    max_uses,
                };
                let Ok(c) = consents.grant(grant).await else { return };
                acked
                    .lock()
                    .unwrap()
                    .consents
                    .insert(c.get_ref().consent_id.clone(), (max_uses, 0, 0));
                mine.push(c.into_inner().consent_id);
            }
            2..=6 if !mine.is_empty() => {
                let consent = mine[rng.gen_range(0..mine.len())].clone();
                let citizen_of = acked.lock().unwrap().consents.contains_key(&consent);
                let request_id = format!("{seed}-{n}");
                let query = QueryRequest {
                    citizen_id: String::new(),
                    attributes: vec!["ps.hukou.division".into()],
                    purpose: "hukou.settlement".into(),
                    consent_id: consent.clone(),
                    request_id: request_id.clone(),
                    operator: "crash-test".into(),
                };
                // The citizen is only known to the granting call: ask the gateway.
                let Ok(c) = consents
                    .get(GetConsentRequest {
                        consent_id: consent.clone(),
                    })
                    .await
                else {
                    return;
                };
                let query = QueryRequest {
                    citizen_id: c.into_inner().citizen_id,
                    ..query
                };
                assert!(citizen_of);
                acked.lock().unwrap().consents.get_mut(&consent).unwrap().2 += 1;
                match exchange.query(query).await {
                    Ok(r) => {
                        let mut a = acked.lock().unwrap();
                        a.records.insert(r.get_ref().audit_index, request_id);
                        a.consents.get_mut(&consent).unwrap().1 += 1;
                    }
                    Err(s) if s.code() == tonic::Code::Unavailable || s.code() == tonic::Code::Unknown => return,
                    Err(_) => {}
                }
            }
            7 if !mine.is_empty() => {
                let consent = mine.swap_remove(rng.gen_range(0..mine.len()));
                if consents
                    .revoke(RevokeConsentRequest {
                        consent_id: consent.clone(),
                        reason: String::new(),
                    })
                    .await
                    .is_err()
                {
                    return;
                }
                acked.lock().unwrap().revoked.push(consent);
            }
            8 => {
                // Denied: no consent at all.
                let denied = QueryRequest {
                    citizen_id: citizen.clone(),
                    attributes: vec!["ps.hukou.division".into()],
                    purpose: "hukou.settlement".into(),
                    ..Default::default()
                };
                if let Err(s) = exchange.query(denied).await
                    && s.code() != tonic::Code::PermissionDenied
                {
                    return;
                }
            }
            _ => {
                let Ok(cp) = audit.checkpoint(CheckpointRequest {}).await else {
                    return;
                };
                let cp = cp.into_inner();
                acked
                    .lock()
                    .unwrap()
                    .checkpoints
                    .push((cp.tree_size, cp.root_hash.try_into().unwrap()));
            }
        }
    }
}

/// Retries a call refused for the checking client's own quota, as a
/// well-behaved client does with the retry hint, or by a gateway failing
/// closed for a moment.
async fn patiently<T, Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>>(
    mut call: impl FnMut() -> Fut,
) -> Result<T, tonic::Status> {
    // A gateway under load may miss its 100 ms poll of the shared store
    // and fail closed (UNAVAILABLE) for a moment: that is not a loss, so it
    // is retried too, within a deadline that a real outage outlasts.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        match call().await {
            Err(s)
                if matches!(s.code(), tonic::Code::ResourceExhausted | tonic::Code::Unavailable)
                    && std::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            r => return r.map(tonic::Response::into_inner),
        }
    }
}

/// The uses each consent has in the stopped gateway's log: its allowed
/// records that count it.
fn uses_in_log(dir: &Path) -> HashMap<String, u32> {
    uses_in(&TileLog::open(&dir.join("civex-data")).unwrap())
}

/// The uses each consent has in `log`.
fn uses_in(log: &dyn LogStore) -> HashMap<String, u32> {
    let mut uses = HashMap::new();
    log.scan_leaves(&mut |_, leaf| {
        let record = AuditRecord::decode(leaf).unwrap();
        if record.decision == Decision::Allow as i32 {
            for id in record.consent_uses {
                *uses.entry(id).or_default() += 1;
            }
        }
        std::ops::ControlFlow::Continue(())
    })
    .unwrap();
    uses
}

/// Checks everything acknowledged so far against a freshly restarted
/// gateway, whose log held `logged` uses per consent when it was stopped.
async fn check(dir: &Path, port: u16, acked: &Acknowledged, verifier: &Verifier, logged: &HashMap<String, u32>) {
    let audit = AuditServiceClient::new(channel(dir, port, "qujing-audit").await);
    let consents = ConsentServiceClient::new(channel(dir, port, "qujing-portal").await);
    let cp = patiently(|| {
        let mut a = audit.clone();
        async move { a.checkpoint(CheckpointRequest {}).await }
    })
    .await
    .unwrap();
    let now = checkpoint::verify(&cp.note, verifier).unwrap();
    for (index, request_id) in &acked.records {
        let entry = patiently(|| {
            let mut a = audit.clone();
            async move { a.get_entry(GetEntryRequest { index: *index }).await }
        })
        .await
        .unwrap();
        assert_eq!(
            &entry.request_id, request_id,
            "acknowledged record {index} is not what was answered"
        );
    }
    for (size, root) in &acked.checkpoints {
        let proof = patiently(|| {
            let mut a = audit.clone();
            async move {
                a.consistency_proof(ConsistencyProofRequest {
                    first: *size,
                    second: now.size,
                })
                .await
            }
        })
        .await
        .unwrap();
        let hashes: Vec<merkle::Hash> = proof.hashes.into_iter().map(|h| h.try_into().unwrap()).collect();
        merkle::verify_consistency(*size, now.size, root, &now.root, &hashes)
            .unwrap_or_else(|e| panic!("checkpoint of {size} is not consistent with {}: {e}", now.size));
    }
    for (id, (max_uses, answered, attempted)) in &acked.consents {
        let c = patiently(|| {
            let mut c = consents.clone();
            async move { c.get(GetConsentRequest { consent_id: id.clone() }).await }
        })
        .await
        .expect("an acknowledged consent was lost");
        let uses = c.uses;
        assert!(
            uses >= *answered && uses <= *attempted && uses <= *max_uses,
            "consent {id}: {uses} uses, {answered} answered, {attempted} attempted, max {max_uses}"
        );
        let in_log = logged.get(id).copied().unwrap_or(0);
        assert_eq!(
            uses, in_log,
            "consent {id}: the store counts {uses} uses, the log {in_log}"
        );
    }
    for id in &acked.revoked {
        let c = patiently(|| {
            let mut c = consents.clone();
            async move { c.get(GetConsentRequest { consent_id: id.clone() }).await }
        })
        .await
        .unwrap();
        assert!(c.revoked_at.is_some(), "an acknowledged revocation of {id} was lost");
    }
}

fn verify_offline(dir: &Path) {
    let out = Command::new(CIVEX)
        .args(["audit", "verify", "--data", "civex-data"])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "audit verify after a crash: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

macro_rules! crash_tests {
    ($($name:ident = $seed:expr),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            killed_at_random_moments_the_gateway_loses_nothing_it_acknowledged($seed).await
        }
    )*};
}

crash_tests! {
    crash_1 = 0xC1_7E_C5,
    crash_2 = 2,
    crash_3 = 3,
    crash_4 = 4,
    crash_5 = 5,
}

/// [`KILLS`] rounds of mixed load, SIGKILL, offline verify, restart and check.
async fn killed_at_random_moments_the_gateway_loses_nothing_it_acknowledged(seed: u64) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut rng = StdRng::seed_from_u64(seed);
    let acked = Arc::new(Mutex::new(Acknowledged::default()));
    let gateway = start(dir.path(), port);
    let verifier =
        Verifier::parse(&std::fs::read_to_string(dir.path().join("civex-data/gateway.vkey")).unwrap()).unwrap();
    let ids = Arc::new(citizens(dir.path()));
    let mut gateway = Some(gateway);
    let mut total = Totals::default();
    for round in 0..KILLS {
        let life = Duration::from_millis(rng.gen_range(100..700));
        let stop = Instant::now() + Duration::from_secs(5);
        let clients: Vec<_> = (0..8)
            .map(|c| {
                tokio::spawn(load(
                    dir.path().to_owned(),
                    port,
                    (round * 8 + c) as u64,
                    ids.clone(),
                    acked.clone(),
                    stop,
                ))
            })
            .collect();
        tokio::time::sleep(life).await;
        if let Some(g) = &gateway {
            total.peak_kib = total.peak_kib.max(peak_rss_kib(g.0.id()));
        }
        drop(gateway.take()); // SIGKILL
        for c in clients {
            c.await.unwrap();
        }
        verify_offline(dir.path());
        let logged = uses_in_log(dir.path());
        gateway = Some(start(dir.path(), port));
        // This round's acknowledgements are checked now; earlier rounds' records
        // stay covered by the offline verify and the consistency proofs.
        let mut round_acked = std::mem::take(&mut *acked.lock().unwrap());
        check(dir.path(), port, &round_acked, &verifier, &logged).await;
        total.records += round_acked.records.len();
        total.revoked += round_acked.revoked.len();
        total.checkpoints += round_acked.checkpoints.len();
        // Consents carry over: their counts must stay right across every later crash.
        round_acked.records.clear();
        round_acked.revoked.clear();
        let earlier = round_acked.checkpoints.last().copied();
        round_acked.checkpoints = earlier.into_iter().collect();
        *acked.lock().unwrap() = round_acked;
    }
    let a = acked.lock().unwrap();
    let a = Totals {
        consents: a.consents.len(),
        ..total
    };
    eprintln!(
        "{KILLS} kills (of {}) survived: {} acknowledged query records, {} consents, {} revocations, {} checkpoints checked; \
         gateway peak resident memory {} MiB",
        KILLS * CRASH_TESTS,
        a.records,
        a.consents,
        a.revoked,
        a.checkpoints,
        a.peak_kib / 1024
    );
    assert!(
        a.records > 100 && a.revoked > 0 && a.checkpoints > 10,
        "the load was too light to prove anything"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_flushes_and_checkpoints_and_a_restart_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let acked = Arc::new(Mutex::new(Acknowledged::default()));
    let mut gateway = start(dir.path(), port);
    let verifier =
        Verifier::parse(&std::fs::read_to_string(dir.path().join("civex-data/gateway.vkey")).unwrap()).unwrap();
    let ids = Arc::new(citizens(dir.path()));
    let stop = Instant::now() + Duration::from_millis(600);
    let clients: Vec<_> = (0..4)
        .map(|c| tokio::spawn(load(dir.path().to_owned(), port, c, ids.clone(), acked.clone(), stop)))
        .collect();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let term = Command::new("kill")
        .args(["-TERM", &gateway.0.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let exit = gateway.0.wait().unwrap();
    let log = std::fs::read_to_string(dir.path().join("gateway.log")).unwrap();
    assert!(exit.success(), "SIGTERM exits 0: {exit:?}\n{log}");
    for c in clients {
        c.await.unwrap();
    }
    // The final checkpoint covers the whole log.
    let out = Command::new(CIVEX)
        .args(["audit", "verify", "--data", "civex-data"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let size = said
        .split(" records")
        .next()
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap()
        .to_owned();
    assert!(
        said.contains(&format!("latest at size {size})")),
        "no final checkpoint: {said}"
    );
    let logged = uses_in_log(dir.path());
    let _gateway = start(dir.path(), port);
    let snapshot = std::mem::take(&mut *acked.lock().unwrap());
    assert!(!snapshot.records.is_empty());
    check(dir.path(), port, &snapshot, &verifier, &logged).await;
}

#[test]
fn an_import_killed_half_way_leaves_nothing_half_imported() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(CIVEX)
        .args(["demo-data", "--citizens", "40000", "--out", "files"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let total = std::fs::read_to_string(dir.path().join("files/ps.jsonl"))
        .unwrap()
        .lines()
        .count();
    let mut rng = StdRng::seed_from_u64(7);
    let mut outcomes = HashMap::new();
    for round in 0..6 {
        let data = dir.path().join(format!("data-{round}"));
        let mut child = Command::new(CIVEX)
            .args(["import", "ps", "files/ps.jsonl", "--data"])
            .arg(&data)
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rng.gen_range(20..600)));
        let _ = child.kill();
        let _ = child.wait();
        let stores = civex_gateway::store::open(&data).unwrap();
        let count = stores.registries.records(Department::PublicSecurity).unwrap();
        assert!(
            count == 0 || count == total,
            "round {round}: {count} of {total} records imported"
        );
        *outcomes.entry(count == total).or_insert(0) += 1;
    }
    eprintln!("imports killed: {outcomes:?} (true = it had finished)");
}

/// Three `civex demo` gateways on one PostgreSQL under a mixed load spread
/// across all three: in turn one gateway is SIGKILLed and restarted, and
/// PostgreSQL itself is stopped (as a crash would) and started again. After
/// each round everything acknowledged by any gateway is in the one log, every
/// checkpoint any gateway signed is consistent with the latest, and each
/// consent's uses are exactly its allowed records in the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_gateways_on_one_database_lose_nothing_when_one_is_killed_or_the_database_stops() {
    const ROUNDS: usize = 8;
    let pg = civex_testpg::TestPostgres::start().unwrap_or_else(|e| panic!("{e}"));
    let url = pg.url();
    let storage = ["--storage", url.as_str()];
    let dir = tempfile::tempdir().unwrap();
    let ports = [free_port(), free_port(), free_port()];
    let mut gateways: Vec<Option<Gateway>> = ports
        .iter()
        .map(|port| Some(start_with(dir.path(), *port, &storage)))
        .collect();
    let verifier =
        Verifier::parse(&std::fs::read_to_string(dir.path().join("civex-data/gateway.vkey")).unwrap()).unwrap();
    let ids = Arc::new(citizens(dir.path()));
    let acked = Arc::new(Mutex::new(Acknowledged::default()));
    let mut rng = StdRng::seed_from_u64(0x9A7E);
    let (mut records, mut kills, mut outages) = (0, 0, 0);
    for round in 0..ROUNDS {
        let stop = Instant::now() + Duration::from_secs(3);
        let clients: Vec<_> = (0..9)
            .map(|c| {
                tokio::spawn(load(
                    dir.path().to_owned(),
                    ports[c % 3],
                    (round * 9 + c) as u64,
                    ids.clone(),
                    acked.clone(),
                    stop,
                ))
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(rng.gen_range(200..800))).await;
        if round % 2 == 0 {
            let victim = rng.gen_range(0..3);
            drop(gateways[victim].take()); // SIGKILL
            kills += 1;
            for c in clients {
                c.await.unwrap();
            }
            gateways[victim] = Some(start_with(dir.path(), ports[victim], &storage));
        } else {
            pg.stop().unwrap();
            outages += 1;
            tokio::time::sleep(Duration::from_millis(300)).await;
            pg.start_again().unwrap();
            for c in clients {
                c.await.unwrap();
            }
        }
        let out = Command::new(CIVEX)
            .args([
                "audit",
                "verify",
                "--storage",
                &url,
                "--vkey",
                "civex-data/gateway.vkey",
            ])
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "verify: {}", String::from_utf8_lossy(&out.stderr));
        let logged = uses_in(civex_gateway::store::postgres::open(&url).unwrap().log.store().as_ref());
        let mut round_acked = std::mem::take(&mut *acked.lock().unwrap());
        check(dir.path(), ports[round % 3], &round_acked, &verifier, &logged).await;
        records += round_acked.records.len();
        round_acked.records.clear();
        round_acked.revoked.clear();
        let earlier = round_acked.checkpoints.last().copied();
        round_acked.checkpoints = earlier.into_iter().collect();
        *acked.lock().unwrap() = round_acked;
    }
    let consents = acked.lock().unwrap().consents.len();
    eprintln!(
        "three gateways on one PostgreSQL: {kills} gateway kills and {outages} database stops survived; \
         {records} acknowledged query records and {consents} consents checked"
    );
    assert!(records > 50, "the load was too light to prove anything");
}
