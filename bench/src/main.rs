//! `civex-bench`: how fast the civex gateway is, measured against the best
//! the same stack can do on the same machine at the same moment.
//!
//! Absolute times on a shared machine drift, so the throughput benchmark runs
//! a bare tonic + rustls mTLS echo server (the ceiling) with the same client,
//! connections and concurrency, alternating rounds: echo, gateway (durable
//! audit), gateway with the benchmark-only no-flush audit, and again. Each
//! figure is reported with its spread over rounds, and the gateway as a ratio
//! of the echo of the same round. Client and server share the process and the
//! machine: that is the honest setting on a 2-core machine.
//!
//! # Layout
//! - `Setup`: a temporary directory with a PKI minted for the run, synthetic
//!   citizens generated and imported, the config, and consent granting.
//! - `Pool`: the consents granted, and the requests of each workload built on them.
//! - `Client::call`, `drive`: one call of a workload; one round of C connections × N tasks.
//! - `throughput`, `verify`, `idle`, `latency_scale`: the subcommands.
//!
//! # Reproduce (from the workspace root)
//! ```text
//! cargo run --release -p civex-bench -- throughput --connections 4 --concurrency 64 --workload query
//! cargo run --release -p civex-bench -- throughput --workload mixed --out target/bench/throughput-mixed.json
//! cargo run --release -p civex-bench -- verify --records 1000000
//! cargo run --release -p civex-bench -- idle --connections 1000
//! cargo run --release -p civex-bench -- latency-scale --small 10000 --large 1000000 --requests 20000
//! ```
//! Each prints a table and writes JSON under `target/bench/`. `idle` needs
//! about two file descriptors per connection (`ulimit -n`).

use std::{
    collections::HashMap,
    io::BufRead,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use anyhow::{Context, Result, anyhow, ensure};
use civex_adapters::import;
use civex_adapters::{Department, catalogue};
use civex_audit::{
    AuditLog, Entry, WriterConfig,
    keys::{Signer, Verifier},
    tiles::TileLog,
};
use civex_cli::{
    client::{self, ClientTls},
    demo_data::{self, Sample},
    pki,
};
use civex_gateway::{
    Gateway,
    clock::{SystemClock, timestamp},
    config::{Config, Engine, StorageConfig, TlsConfig},
    error::reason_of,
    policy::{access::RateLimit, predicates},
    store,
};
use civex_proto::v1::{
    AuditRecord, CheckRequest, Decision, FetchRequest, FetchResponse, GrantConsentRequest, ListAttributesRequest,
    QueryRequest,
    consent_service_client::ConsentServiceClient,
    department_source_service_client::DepartmentSourceServiceClient,
    department_source_service_server::{DepartmentSourceService, DepartmentSourceServiceServer},
    exchange_service_client::ExchangeServiceClient,
};
use clap::{Parser, Subcommand, ValueEnum};
use futures::{StreamExt, TryStreamExt};
use hdrhistogram::Histogram;
use serde_json::json;
use tokio::{sync::oneshot, task::JoinHandle};
use tonic::transport::Channel;

/// The requester every workload calls as, and the registrar that grants its consents.
const PSB: &str = "qujing-psb";
const PORTAL: &str = "qujing-portal";
const PERMIT: &str = "residence_permit.issue";
const OPERATOR: &str = "staff-0042";
/// Citizens with a query consent; attributes each consent covers (from as many departments).
const POOL: usize = 1_000;
const CONSENTED: usize = 5;
/// Consents per predicate sample, so concurrent checks rarely contend on one consent's use count.
const COPIES: usize = 4;
const SEED: u64 = 7;

/// Benchmarks of the civex gateway, each beside its ceiling where one exists.
#[derive(Parser)]
#[command(name = "civex-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Requests/s and latency, alternating a bare mTLS echo, the gateway, and the gateway without audit flush.
    Throughput(Throughput),
    /// Time `civex_audit::verify` over a log of many records.
    Verify {
        #[arg(long, default_value_t = 1_000_000)]
        records: u64,
        #[arg(long, default_value = "target/bench/verify.json")]
        out: PathBuf,
    },
    /// Resident memory of a durable gateway holding many idle connections.
    Idle {
        #[arg(long, default_value_t = 1_000)]
        connections: usize,
        #[arg(long, default_value_t = 1_000)]
        citizens: usize,
        #[arg(long, default_value = "target/bench/idle.json")]
        out: PathBuf,
    },
    /// Query latency at concurrency 1 with a small and a large population.
    LatencyScale {
        #[arg(long, default_value_t = 10_000)]
        small: usize,
        #[arg(long, default_value_t = 1_000_000)]
        large: usize,
        /// Measured calls per population, after a tenth as many unrecorded.
        #[arg(long, default_value_t = 20_000)]
        requests: u64,
        #[arg(long, default_value = "target/bench/latency_scale.json")]
        out: PathBuf,
    },
}

#[derive(clap::Args)]
struct Throughput {
    /// HTTP/2 connections, each its own TLS session.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Calls in flight, one task each, spread round-robin over the connections.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Measured seconds per round and kind.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Unrecorded seconds before each measurement.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Rounds; each runs echo, gateway and gateway-noflush once.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Synthetic citizens imported.
    #[arg(long, default_value_t = 10_000)]
    citizens: usize,
    #[arg(long, value_enum, default_value_t = Workload::Query)]
    workload: Workload,
    /// Instead of the no-flush gateway: 1, 2 and 3 gateways on one
    /// PostgreSQL (a server of the run's own), beside the embedded gateway.
    #[arg(long)]
    postgres: bool,
    /// Every alert rule off (DESIGN §13): to measure what the rules cost.
    #[arg(long)]
    no_alerts: bool,
    #[arg(long, default_value = "target/bench/throughput.json")]
    out: PathBuf,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Workload {
    /// 1–5 consented attributes across departments.
    Query,
    /// Eligibility predicates on the demo data's samples.
    Check,
    /// Refusals of each kind, in turn; the expected refusal counts as success.
    Denied,
    /// 70% query, 15% check, 15% denied.
    Mixed,
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Workload::Query => "query",
            Workload::Check => "check",
            Workload::Denied => "denied",
            Workload::Mixed => "mixed",
        }
    }
}

/// What serves a round.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Echo,
    Gateway,
    NoFlush,
    /// This many gateways on one PostgreSQL.
    Postgres(usize),
}

impl Kind {
    /// What one round runs, in order.
    fn all(args: &Throughput) -> Vec<Kind> {
        if args.postgres {
            vec![
                Kind::Echo,
                Kind::Gateway,
                Kind::Postgres(1),
                Kind::Postgres(2),
                Kind::Postgres(3),
            ]
        } else {
            vec![Kind::Echo, Kind::Gateway, Kind::NoFlush]
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Echo => "echo",
            Kind::Gateway => "gateway",
            Kind::NoFlush => "gateway-noflush",
            Kind::Postgres(1) => "postgres-1",
            Kind::Postgres(2) => "postgres-2",
            Kind::Postgres(_) => "postgres-3",
        }
    }
}

/// CPU ticks used so far by this process, and by each PostgreSQL process by pid.
fn cpu_ticks() -> (u64, HashMap<u32, u64>) {
    let ticks = |stat: &str| -> Option<u64> {
        // After the command name in parentheses: fields 14 and 15 are utime and stime.
        let rest = stat.rsplit_once(") ")?.1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
    };
    let own = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| ticks(&s))
        .unwrap_or(0);
    let mut postgres = HashMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if std::fs::read_to_string(entry.path().join("comm")).is_ok_and(|c| c.trim() == "postgres")
            && let Some(t) = std::fs::read_to_string(entry.path().join("stat"))
                .ok()
                .and_then(|s| ticks(&s))
        {
            postgres.insert(pid, t);
        }
    }
    (own, postgres)
}

/// CPU seconds of this process and of PostgreSQL between two readings
/// (a PostgreSQL process that ended between them is not counted).
fn cpu_between(before: &(u64, HashMap<u32, u64>), after: &(u64, HashMap<u32, u64>)) -> (f64, f64) {
    const HZ: f64 = 100.0;
    let postgres: u64 = after
        .1
        .iter()
        .map(|(pid, t)| t.saturating_sub(before.1.get(pid).copied().unwrap_or(0)))
        .sum();
    (after.0.saturating_sub(before.0) as f64 / HZ, postgres as f64 / HZ)
}

#[tokio::main]
async fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Throughput(args) => throughput(args).await,
        Command::Verify { records, out } => verify(records, &out).await,
        Command::Idle {
            connections,
            citizens,
            out,
        } => idle(connections, citizens, &out).await,
        Command::LatencyScale {
            small,
            large,
            requests,
            out,
        } => latency_scale(small, large, requests, &out).await,
    }
}

/// A temporary data directory with a PKI, imported citizens and a config to serve them.
struct Setup {
    /// Removed with everything in it when the setup is dropped.
    _dir: tempfile::TempDir,
    config: Config,
    /// The requester, the consent registrar, and the server (gateway and echo share a certificate).
    psb: ClientTls,
    portal: ClientTls,
    server: ClientTls,
    samples: Vec<Sample>,
    /// Up to `POOL` citizen IDs spread evenly over the population.
    citizens: Vec<String>,
    /// A PostgreSQL server of the run's own, with the same citizens, and
    /// the configuration of a gateway on it.
    postgres: Option<(civex_testpg::TestPostgres, Config)>,
}

impl Setup {
    /// Mints a PKI, generates `citizens` synthetic citizens and imports them.
    async fn create(citizens: usize, postgres: bool) -> Result<Setup> {
        tokio::task::spawn_blocking(move || Setup::build(citizens, postgres))
            .await
            .context("setup task")?
    }

    fn build(citizens: usize, postgres: bool) -> Result<Setup> {
        let dir = tempfile::Builder::new()
            .prefix("civex-bench-")
            .tempdir()
            .context("temp dir")?;
        // A PKI minted for this run, laid out as `civex certs init` does.
        let certs = dir.path().join("certs");
        pki::init_dir(&certs, &[PSB, PORTAL]).context("mint PKI")?;
        let agency = |code: &str| {
            let (ca, cert, key) = ClientTls::demo_paths(&certs, code);
            ClientTls::from_files(&ca, &cert, &key).with_context(|| format!("read {code}'s certificate"))
        };
        let (psb, portal) = (agency(PSB)?, agency(PORTAL)?);
        let server = ClientTls::from_files(
            &certs.join("ca.pem"),
            &certs.join("gateway.pem"),
            &certs.join("gateway.key"),
        )
        .context("read the gateway's certificate")?;

        let files = dir.path().join("demo-data");
        let data = dir.path().join("data");
        let started = Instant::now();
        let samples = demo_data::generate(citizens, SEED, &files).context("generate demo data")?;
        eprintln!(
            "generated {citizens} citizens in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        let import_all = |stores: store::Stores| -> Result<()> {
            let started = Instant::now();
            for department in Department::ALL {
                let path = files.join(format!("{}.jsonl", department.code()));
                let file = std::fs::File::open(&path).with_context(|| format!("open {}", path.display()))?;
                import::import(stores.registries.as_ref(), department, std::io::BufReader::new(file))
                    .with_context(|| format!("import {}", path.display()))?;
            }
            eprintln!("imported in {:.1} s", started.elapsed().as_secs_f64());
            Ok(())
        };
        import_all(store::open(&data).context("open store")?)?;
        let postgres = if postgres {
            let server = civex_testpg::TestPostgres::start().map_err(|e| anyhow!(e))?;
            import_all(store::postgres::open(&server.url()).context("open the database")?)?;
            Some(server)
        } else {
            None
        };
        let ps = files.join(format!("{}.jsonl", Department::PublicSecurity.code()));
        let citizens = spread_citizens(&ps, citizens)?;

        let mut config = Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: data,
            tls: TlsConfig::in_dir(&certs),
            ..Config::default()
        };
        // Measure the gateway, not its quotas: no rate limit, room for every stream and connection.
        config.limits.default_rate = RateLimit {
            per_second: 0,
            burst: 0,
        };
        config.limits.max_concurrent_streams = 1_024;
        config.limits.max_connections = 16_384;
        let postgres = postgres.map(|server| {
            let mut on = config.clone();
            on.data_dir = dir.path().join("pg-keys");
            on.storage = StorageConfig {
                engine: Engine::Postgres,
                url: Some(server.url()),
            };
            (server, on)
        });
        Ok(Setup {
            postgres,
            _dir: dir,
            config,
            psb,
            portal,
            server,
            samples,
            citizens,
        })
    }

    /// Starts a gateway on the data directory; `durable = false` is the benchmark-only no-flush audit.
    /// A sled directory is opened by one gateway at a time: stop one before starting the next.
    async fn gateway(&self, durable: bool) -> Result<Running> {
        let gateway = Gateway::bind_for_benchmark(self.config.clone(), durable)
            .await
            .map_err(|e| anyhow!("gateway cannot start: {e}"))?;
        let addr = gateway.local_addr();
        let (stop, shutdown) = switch();
        let task = tokio::spawn(async move { gateway.serve(shutdown).await.map_err(|e| e.to_string()) });
        Ok(Running { addr, stop, task })
    }

    /// Starts `n` gateways of one deployment on the run's PostgreSQL.
    async fn postgres(&self, n: usize) -> Result<Vec<Running>> {
        let (_, config) = self.postgres.as_ref().context("no PostgreSQL in this run")?;
        let mut running = Vec::with_capacity(n);
        for _ in 0..n {
            let gateway = Gateway::bind_for_benchmark(config.clone(), true)
                .await
                .map_err(|e| anyhow!("gateway on PostgreSQL cannot start: {e}"))?;
            let addr = gateway.local_addr();
            let (stop, shutdown) = switch();
            let task = tokio::spawn(async move { gateway.serve(shutdown).await.map_err(|e| e.to_string()) });
            running.push(Running { addr, stop, task });
        }
        Ok(running)
    }

    /// Starts the ceiling: a bare tonic + rustls mTLS server whose `Fetch` echoes the citizen ID.
    async fn echo(&self) -> Result<Running> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .context("echo binds")?;
        let addr = listener.local_addr().context("echo address")?;
        let tls = self.server.clone();
        let (stop, shutdown) = switch();
        let task = tokio::spawn(async move {
            use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
            let config = ServerTlsConfig::new()
                .identity(Identity::from_pem(&tls.cert_pem, &tls.key_pem))
                .client_ca_root(Certificate::from_pem(&tls.ca_pem));
            Server::builder()
                .tls_config(config)
                .map_err(|e| e.to_string())?
                .add_service(DepartmentSourceServiceServer::new(Echo))
                .serve_with_incoming_shutdown(tokio_stream::wrappers::TcpListenerStream::new(listener), shutdown)
                .await
                .map_err(|e| e.to_string())
        });
        Ok(Running { addr, stop, task })
    }

    /// Grants, through `gateway`'s ConsentService as the portal, unlimited consents to qujing-psb:
    /// `CONSENTED` attributes of as many departments per pooled citizen for residence_permit.issue,
    /// and `COPIES` per sample of each predicate psb may check.
    async fn grant(&self, gateway: &Running) -> Result<Pool> {
        let channel = client::connect(&gateway.endpoint(), &self.portal)
            .await
            .context("connect as portal")?;
        let portal = ConsentServiceClient::new(channel);
        let until = SystemTime::now() + Duration::from_secs(7 * 86_400);
        let request = |citizen: &str, scopes: Vec<String>, purpose: &str| GrantConsentRequest {
            citizen_id: citizen.to_owned(),
            grantee: PSB.into(),
            scopes,
            purpose: purpose.into(),
            not_after: Some(timestamp(until)),
            max_uses: 0,
        };
        let mut rng = Rng::new(SEED);
        let attributes: Vec<Vec<&'static str>> = self.citizens.iter().map(|_| consented(&mut rng)).collect();
        ensure!(
            attributes.iter().all(|a| !a.is_empty()),
            "the catalogue holds no attributes"
        );
        let checks: Vec<(&Sample, &'static str, &'static str)> = self
            .samples
            .iter()
            .filter_map(|s| {
                let (predicate, _) = s.label.split_once(':')?;
                Some((s, predicate, psb_purpose(predicate)?))
            })
            .flat_map(|c| std::iter::repeat_n(c, COPIES))
            .collect();
        let mut requests: Vec<GrantConsentRequest> = self
            .citizens
            .iter()
            .zip(&attributes)
            .map(|(c, a)| request(c.as_str(), a.iter().map(|s| (*s).to_owned()).collect(), PERMIT))
            .collect();
        requests.extend(
            checks
                .iter()
                .map(|(s, predicate, purpose)| request(s.citizen_id.as_str(), vec![(*predicate).to_owned()], purpose)),
        );
        let started = Instant::now();
        let ids: Vec<String> = futures::stream::iter(requests)
            .map(|r| {
                let mut portal = portal.clone();
                async move { portal.grant(r).await.map(|c| c.into_inner().consent_id) }
            })
            .buffered(32)
            .try_collect()
            .await
            .context("grant consents")?;
        eprintln!(
            "granted {} consents in {:.1} s",
            ids.len(),
            started.elapsed().as_secs_f64()
        );
        // Invariant: one id per request, in order, the query consents first.
        let (query_ids, check_ids) = ids.split_at(self.citizens.len());
        let queries = self
            .citizens
            .iter()
            .zip(attributes)
            .zip(query_ids)
            .map(|((citizen, attributes), consent)| Grant {
                citizen: citizen.clone(),
                attributes,
                consent: consent.clone(),
            })
            .collect();
        let checks = checks
            .into_iter()
            .zip(check_ids)
            .map(|((s, predicate, purpose), consent)| PredicateGrant {
                citizen: s.citizen_id.clone(),
                predicate,
                purpose,
                params: s.params.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect(),
                consent: consent.clone(),
            })
            .collect();
        Ok(Pool { queries, checks })
    }
}

/// Every `total / POOL`-th citizen of a department file, up to `POOL`.
fn spread_citizens(file: &Path, total: usize) -> Result<Vec<String>> {
    let opened = std::fs::File::open(file).with_context(|| format!("open {}", file.display()))?;
    let reader = std::io::BufReader::new(opened);
    let mut ids = Vec::with_capacity(POOL);
    for line in reader.lines().step_by((total / POOL).max(1)) {
        let line = line.context("read demo data")?;
        let record: serde_json::Value = serde_json::from_str(&line).context("parse demo data")?;
        if let Some(id) = record.get("citizen_id").and_then(|v| v.as_str()) {
            ids.push(id.to_owned());
        }
        if ids.len() == POOL {
            break;
        }
    }
    ensure!(!ids.is_empty(), "no citizens in {}", file.display());
    Ok(ids)
}

/// One attribute from each of `CONSENTED` random departments.
fn consented(rng: &mut Rng) -> Vec<&'static str> {
    let mut departments = Department::ALL.to_vec();
    let mut chosen = Vec::with_capacity(CONSENTED);
    while chosen.len() < CONSENTED && !departments.is_empty() {
        let department = departments.swap_remove(rng.below(departments.len()));
        let held: Vec<&'static str> = catalogue::held_by(department).map(|a| a.name).collect();
        if !held.is_empty() {
            chosen.push(held[rng.below(held.len())]);
        }
    }
    chosen
}

/// The purpose qujing-psb checks `predicate` for under the demo rights; `None` if not psb's to check.
/// `settlement.join_kin` is left out: it needs the relative's consent as well.
fn psb_purpose(predicate: &str) -> Option<&'static str> {
    match predicate {
        predicates::SETTLEMENT_URBAN => Some("hukou.settlement"),
        predicates::SETTLEMENT_RETURN_RURAL => Some("hukou.return_rural"),
        predicates::RESIDENCE_PERMIT_APPLY => Some(PERMIT),
        _ => None,
    }
}

/// A shutdown switch: the sender, and the future a server stops on.
fn switch() -> (
    oneshot::Sender<()>,
    impl std::future::Future<Output = ()> + Send + 'static,
) {
    let (tx, rx) = oneshot::channel::<()>();
    (tx, async move {
        let _ = rx.await;
    })
}

/// A server task and the switch that stops it.
struct Running {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), String>>,
}

impl Running {
    fn endpoint(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// Stops the server and waits until it has drained (a gateway also flushes its log).
    async fn stop(self) -> Result<()> {
        let _ = self.stop.send(());
        self.task
            .await
            .context("server task")?
            .map_err(|e| anyhow!("server failed: {e}"))
    }
}

/// The ceiling's service: the citizen ID back, no facts.
struct Echo;

#[tonic::async_trait]
impl DepartmentSourceService for Echo {
    async fn fetch(
        &self,
        request: tonic::Request<FetchRequest>,
    ) -> Result<tonic::Response<FetchResponse>, tonic::Status> {
        let citizen_id = request.into_inner().citizen_id;
        Ok(tonic::Response::new(FetchResponse {
            facts: Vec::new(),
            citizen_id,
        }))
    }
}

/// A consent for one citizen and the attributes it covers.
struct Grant {
    citizen: String,
    attributes: Vec<&'static str>,
    consent: String,
}

/// A predicate consent for one of the demo data's samples.
struct PredicateGrant {
    citizen: String,
    predicate: &'static str,
    purpose: &'static str,
    params: HashMap<String, String>,
    consent: String,
}

/// The consents granted, and the requests of every workload built on them.
struct Pool {
    queries: Vec<Grant>,
    checks: Vec<PredicateGrant>,
}

impl Pool {
    /// A consented query for 1 to all of a random citizen's consented attributes.
    fn query(&self, rng: &mut Rng, seq: u64) -> QueryRequest {
        let g = &self.queries[rng.below(self.queries.len())];
        QueryRequest {
            citizen_id: g.citizen.clone(),
            attributes: some_of(&g.attributes, rng),
            purpose: PERMIT.into(),
            consent_id: g.consent.clone(),
            request_id: format!("bench-{seq}"),
            operator: OPERATOR.into(),
        }
    }

    /// What the echo gets: the same citizen and attributes a query would carry.
    fn fetch(&self, rng: &mut Rng) -> FetchRequest {
        let g = &self.queries[rng.below(self.queries.len())];
        FetchRequest {
            citizen_id: g.citizen.clone(),
            attributes: some_of(&g.attributes, rng),
        }
    }

    fn check(&self, rng: &mut Rng, seq: u64) -> CheckRequest {
        let g = &self.checks[rng.below(self.checks.len())];
        CheckRequest {
            citizen_id: g.citizen.clone(),
            predicate: g.predicate.into(),
            params: g.params.clone(),
            purpose: g.purpose.into(),
            consent_id: g.consent.clone(),
            request_id: format!("bench-{seq}"),
            operator: OPERATOR.into(),
            related_consent_ids: Vec::new(),
        }
    }

    /// A query the gateway must refuse, and the reason it must give; `seq` rotates the kinds.
    fn denied(&self, rng: &mut Rng, seq: u64) -> (QueryRequest, &'static str) {
        let mut q = self.query(rng, seq);
        match seq % 5 {
            0 => {
                q.citizen_id = wrong_check_character(&q.citizen_id);
                (q, "INVALID_CITIZEN_ID")
            }
            1 => {
                q.consent_id.clear();
                (q, "CONSENT_REQUIRED")
            }
            2 => {
                q.attributes = vec!["ps.hukou.colour".into()];
                (q, "UNKNOWN_ATTRIBUTE")
            }
            3 => {
                q.attributes = vec![catalogue::HOUSEHOLD_NATURE.into()];
                (q, "ATTRIBUTE_ABOLISHED")
            }
            _ => {
                // psb may read ps.* for settlement, but the consent was given for a permit.
                q.purpose = "hukou.settlement".into();
                q.attributes = vec!["ps.hukou.division".into()];
                (q, "CONSENT_PURPOSE")
            }
        }
    }
}

/// A run of 1 to all of `attributes` from a random start (wrapping), so request sizes vary.
fn some_of(attributes: &[&'static str], rng: &mut Rng) -> Vec<String> {
    let n = attributes.len().max(1);
    let start = rng.below(n);
    (0..1 + rng.below(n))
        .filter_map(|i| attributes.get((start + i) % n).map(|a| (*a).to_owned()))
        .collect()
}

/// The same ID with another check character, which no valid ID has.
fn wrong_check_character(id: &str) -> String {
    let mut wrong = id.to_owned();
    let replacement = if wrong.ends_with('0') { '1' } else { '0' };
    wrong.pop();
    wrong.push(replacement);
    wrong
}

/// A client of the echo or the gateway, on one connection.
enum Client {
    Echo(DepartmentSourceServiceClient<Channel>),
    Gateway(ExchangeServiceClient<Channel>),
}

impl Client {
    /// One call of `workload`: `Ok` when the server answered as expected (the right refusal, for `denied`).
    async fn call(&mut self, workload: Workload, pool: &Pool, rng: &mut Rng, seq: u64) -> Result<(), String> {
        let exchange = match self {
            Client::Echo(echo) => return echo.fetch(pool.fetch(rng)).await.map(|_| ()).map_err(|s| s.to_string()),
            Client::Gateway(exchange) => exchange,
        };
        let workload = match workload {
            Workload::Mixed => match rng.below(100) {
                0..70 => Workload::Query,
                70..85 => Workload::Check,
                _ => Workload::Denied,
            },
            w => w,
        };
        match workload {
            Workload::Check => exchange
                .check(pool.check(rng, seq))
                .await
                .map(|_| ())
                .map_err(|s| s.to_string()),
            Workload::Denied => {
                let (request, expected) = pool.denied(rng, seq);
                match exchange.query(request).await {
                    Err(status) if reason_of(&status).as_deref() == Some(expected) => Ok(()),
                    Err(status) => Err(format!("expected {expected}, got {status}")),
                    Ok(_) => Err(format!("expected {expected}, got an answer")),
                }
            }
            _ => exchange
                .query(pool.query(rng, seq))
                .await
                .map(|_| ())
                .map_err(|s| s.to_string()),
        }
    }
}

/// Counts and latencies (µs) of calls; each task keeps its own, merged at the end.
struct Tally {
    hist: Histogram<u64>,
    ok: u64,
    errors: u64,
    first_error: Option<String>,
}

impl Tally {
    fn new() -> Result<Tally> {
        // 1 µs to 60 s at 3 significant digits.
        let hist = Histogram::new_with_bounds(1, 60_000_000, 3).map_err(|e| anyhow!("histogram: {e:?}"))?;
        Ok(Tally {
            hist,
            ok: 0,
            errors: 0,
            first_error: None,
        })
    }

    fn record(&mut self, latency: Duration, outcome: Result<(), String>) {
        self.hist
            .saturating_record(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX));
        match outcome {
            Ok(()) => self.ok += 1,
            Err(e) => {
                self.errors += 1;
                if self.first_error.is_none() {
                    self.first_error = Some(e);
                }
            }
        }
    }

    fn merge(&mut self, other: Tally) -> Result<()> {
        self.hist.add(&other.hist).map_err(|e| anyhow!("histogram: {e:?}"))?;
        self.ok += other.ok;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        Ok(())
    }

    /// p50, p99 and p99.9, in µs.
    fn percentiles(&self) -> [u64; 3] {
        [0.5, 0.99, 0.999].map(|q| self.hist.value_at_quantile(q))
    }
}

/// What one round of one kind measured.
struct Round {
    round: usize,
    kind: Kind,
    tally: Tally,
    rps: f64,
    /// CPU of the whole run (load, gateways, PostgreSQL) per answered call, µs.
    cpu_us: f64,
    /// PostgreSQL's part of that CPU.
    postgres_share: f64,
}

/// Runs `args.concurrency` tasks round-robin over `channels`, each calling in a loop until the
/// deadline; only calls completed in the measured window (after the warm-up) are recorded.
async fn drive(channels: &[Channel], kind: Kind, args: &Throughput, pool: &Arc<Pool>) -> Result<Tally> {
    let measure_from = Instant::now() + Duration::from_secs(args.warmup);
    let until = measure_from + Duration::from_secs(args.duration);
    let mut tasks: Vec<JoinHandle<Result<Tally>>> = Vec::with_capacity(args.concurrency);
    for t in 0..args.concurrency {
        let channel = channels[t % channels.len()].clone();
        let mut client = match kind {
            Kind::Echo => Client::Echo(DepartmentSourceServiceClient::new(channel)),
            _ => Client::Gateway(ExchangeServiceClient::new(channel)),
        };
        let (pool, workload) = (pool.clone(), args.workload);
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::new()?;
            let mut rng = Rng::new(t as u64 + 1);
            let mut seq = 0;
            loop {
                let sent = Instant::now();
                if sent >= until {
                    break;
                }
                let outcome = client.call(workload, &pool, &mut rng, seq).await;
                let done = Instant::now();
                seq += 1;
                if (measure_from..=until).contains(&done) {
                    tally.record(done - sent, outcome);
                }
            }
            anyhow::Ok(tally)
        }));
    }
    let mut total = Tally::new()?;
    for task in tasks {
        total.merge(task.await.context("load task")??)?;
    }
    Ok(total)
}

async fn connect(endpoint: &str, tls: &ClientTls, n: usize) -> Result<Vec<Channel>> {
    let mut channels = Vec::with_capacity(n);
    for _ in 0..n {
        channels.push(
            client::connect(endpoint, tls)
                .await
                .with_context(|| format!("connect to {endpoint}"))?,
        );
    }
    Ok(channels)
}

async fn throughput(args: Throughput) -> Result<()> {
    ensure!(
        args.connections > 0 && args.concurrency > 0 && args.rounds > 0 && args.duration > 0,
        "connections, concurrency, rounds and duration must be positive"
    );
    let mut setup = Setup::create(args.citizens, args.postgres).await?;
    if args.no_alerts {
        setup.config.alerts = civex_gateway::oversight::rules::AlertsConfig::off();
    }
    let gateway = setup.gateway(true).await?;
    let pool = Arc::new(setup.grant(&gateway).await?);
    gateway.stop().await?;
    // The deployment on PostgreSQL has consents of its own.
    let pg_pool = match &setup.postgres {
        None => None,
        Some(_) => {
            let first = setup.postgres(1).await?;
            let granted = setup.grant(&first[0]).await?;
            for g in first {
                g.stop().await?;
            }
            Some(Arc::new(granted))
        }
    };
    if matches!(args.workload, Workload::Check | Workload::Mixed) {
        ensure!(
            !pool.checks.is_empty(),
            "no predicate samples: use --citizens 32 or more"
        );
    }
    let mut rounds = Vec::new();
    for round in 0..args.rounds {
        for kind in Kind::all(&args) {
            let servers = match kind {
                Kind::Echo => vec![setup.echo().await?],
                Kind::Gateway => vec![setup.gateway(true).await?],
                Kind::NoFlush => vec![setup.gateway(false).await?],
                Kind::Postgres(n) => setup.postgres(n).await?,
            };
            let mut channels = Vec::with_capacity(args.connections);
            for c in 0..args.connections {
                channels.extend(connect(&servers[c % servers.len()].endpoint(), &setup.psb, 1).await?);
            }
            let pool = match (kind, &pg_pool) {
                (Kind::Postgres(_), Some(pg)) => pg,
                _ => &pool,
            };
            let before = cpu_ticks();
            let tally = drive(&channels, kind, &args, pool).await?;
            let (own, postgres) = cpu_between(&before, &cpu_ticks());
            drop(channels);
            for server in servers {
                server.stop().await?;
            }
            let rps = tally.ok as f64 / args.duration as f64;
            // CPU over warm-up and measurement, scaled to the measured window.
            let measured = args.duration as f64 / (args.duration + args.warmup) as f64;
            let cpu_us = (own + postgres) * measured * 1e6 / tally.ok.max(1) as f64;
            let postgres_share = postgres / (own + postgres).max(1e-9);
            let [_, p99, _] = tally.percentiles();
            eprintln!(
                "round {}/{} {:<16} {rps:>9.0} req/s  p99 {p99} µs  cpu {cpu_us:.0} µs/call ({:.0}% PostgreSQL)  errors {}",
                round + 1,
                args.rounds,
                kind.name(),
                postgres_share * 100.0,
                tally.errors
            );
            rounds.push(Round {
                round,
                kind,
                tally,
                rps,
                cpu_us,
                postgres_share,
            });
        }
    }
    report(&args, &rounds)
}

/// Mean, min and max of per-round figures.
struct Spread {
    mean: f64,
    min: f64,
    max: f64,
}

impl Spread {
    fn of(values: impl IntoIterator<Item = f64>) -> Spread {
        let v: Vec<f64> = values.into_iter().collect();
        Spread {
            mean: v.iter().sum::<f64>() / v.len().max(1) as f64,
            min: v.iter().copied().fold(f64::INFINITY, f64::min),
            max: v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        }
    }

    fn show(&self, digits: usize) -> String {
        format!(
            "{:.*} ({:.*}..{:.*})",
            digits, self.mean, digits, self.min, digits, self.max
        )
    }

    fn json(&self) -> serde_json::Value {
        json!({ "mean": self.mean, "min": self.min, "max": self.max })
    }
}

fn report(args: &Throughput, rounds: &[Round]) -> Result<()> {
    let of = |kind: Kind| rounds.iter().filter(move |r| r.kind == kind);
    println!(
        "\nworkload {}, {} connections, {} in flight, {} rounds of {} s after {} s warm-up, {} citizens",
        args.workload.name(),
        args.connections,
        args.concurrency,
        args.rounds,
        args.duration,
        args.warmup,
        args.citizens
    );
    println!(
        "{:<16} {:>28} {:>9} {:>9} {:>9} {:>8}",
        "kind", "req/s mean (min..max)", "p50 µs", "p99 µs", "p99.9 µs", "errors"
    );
    let mut kinds = serde_json::Map::new();
    for kind in Kind::all(args) {
        let rps = Spread::of(of(kind).map(|r| r.rps));
        let [p50, p99, p999] = [0, 1, 2].map(|i| Spread::of(of(kind).map(|r| r.tally.percentiles()[i] as f64)));
        let errors: u64 = of(kind).map(|r| r.tally.errors).sum();
        let first_error = of(kind).find_map(|r| r.tally.first_error.clone());
        let cpu = Spread::of(of(kind).map(|r| r.cpu_us));
        let share = Spread::of(of(kind).map(|r| r.postgres_share * 100.0));
        println!(
            "{:<16} {:>28} {:>9.0} {:>9.0} {:>9.0} {errors:>8}  cpu/call {:.0} µs, PostgreSQL {:.0}%",
            kind.name(),
            rps.show(0),
            p50.mean,
            p99.mean,
            p999.mean,
            cpu.mean,
            share.mean
        );
        kinds.insert(
            kind.name().into(),
            json!({
                "requests_per_second": rps.json(), "p50_us": p50.json(), "p99_us": p99.json(),
                "p999_us": p999.json(), "errors": errors, "first_error": first_error,
                "cpu_us_per_call": cpu.json(), "postgres_cpu_percent": share.json(),
            }),
        );
    }
    let mut ratios = serde_json::Map::new();
    for kind in Kind::all(args).into_iter().filter(|k| *k != Kind::Echo) {
        // Per round: each gateway round against the echo round just before it.
        let pairs: Vec<(&Round, &Round)> = of(Kind::Echo).zip(of(kind)).collect();
        let throughput = Spread::of(pairs.iter().map(|(e, g)| g.rps / e.rps));
        let p99 = Spread::of(
            pairs
                .iter()
                .map(|(e, g)| g.tally.percentiles()[1] as f64 / e.tally.percentiles()[1].max(1) as f64),
        );
        println!(
            "{:<16} ÷ echo: throughput {}  p99 {}",
            kind.name(),
            throughput.show(2),
            p99.show(2)
        );
        ratios.insert(
            format!("{}/echo", kind.name()),
            json!({ "throughput": throughput.json(), "p99": p99.json() }),
        );
    }
    let per_round: Vec<_> = rounds
        .iter()
        .map(|r| {
            let [p50, p99, p999] = r.tally.percentiles();
            json!({
                "round": r.round, "kind": r.kind.name(), "requests_per_second": r.rps, "ok": r.tally.ok,
                "errors": r.tally.errors, "p50_us": p50, "p99_us": p99, "p999_us": p999,
            })
        })
        .collect();
    write_json(
        &args.out,
        json!({
            "benchmark": "throughput", "workload": args.workload.name(), "connections": args.connections,
            "concurrency": args.concurrency, "duration_s": args.duration, "warmup_s": args.warmup,
            "rounds": args.rounds, "citizens": args.citizens, "machine": machine(),
            "kinds": kinds, "ratios": ratios, "per_round": per_round,
        }),
    )
}

/// A realistic audit record: a query by one of many officials; one in twenty refused.
fn audit_record(i: u64) -> AuditRecord {
    let denied = i.is_multiple_of(20);
    let decision = if denied { Decision::Deny } else { Decision::Allow };
    AuditRecord {
        agency: PSB.into(),
        operator: format!("staff-{:04}", i % 500),
        action: "ExchangeService/Query".into(),
        citizen_ref: format!("{:064x}", i.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
        scopes: vec![
            "ps.hukou.division".into(),
            "housing.owned_residence.division".into(),
            "hrss.pension.contribution_years".into(),
        ],
        purpose: PERMIT.into(),
        consent_id: format!("{:032x}", i / 3),
        decision: decision as i32,
        reason: if denied { "CONSENT_SCOPE".into() } else { String::new() },
        request_id: format!("req-{i}"),
        ..Default::default()
    }
}

async fn verify(records: u64, out: &Path) -> Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("civex-bench-")
        .tempdir()
        .context("temp dir")?;
    let signer = Arc::new(Signer::load_or_create(dir.path(), "civex/bench").context("signing key")?);
    let stores = store::open(dir.path()).context("open store")?;
    let writer = WriterConfig {
        checkpoint_every: 100_000,
        checkpoint_interval: Duration::from_secs(3_600),
        durable: false,
    };
    let (log, _) = AuditLog::open(
        stores.log,
        stores.audit_index,
        signer.clone(),
        Arc::new(SystemClock),
        writer,
    )
    .context("open audit log")?;
    let log = Arc::new(log);
    let started = Instant::now();
    const WRITERS: u64 = 512;
    let tasks: Vec<JoinHandle<Result<()>>> = (0..WRITERS)
        .map(|w| {
            let log = log.clone();
            tokio::spawn(async move {
                for i in (w..records).step_by(WRITERS as usize) {
                    log.append(Entry {
                        record: audit_record(i),
                        ..Entry::default()
                    })
                    .await
                    .context("append")?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for task in tasks {
        task.await.context("append task")??;
    }
    log.close().await;
    let build_seconds = started.elapsed().as_secs_f64();
    eprintln!("appended {records} records in {build_seconds:.1} s");
    // The stores are locked while the log is open: drop them, as `civex audit verify` runs on a stopped gateway.
    drop(log);
    drop((stores.agencies, stores.certificates, stores.consents, stores.registries));
    let verifier = Verifier::parse(&signer.verifier_key()).context("verifier key")?;
    let store = TileLog::open(dir.path()).context("open audit store")?;
    let started = Instant::now();
    let verified = civex_audit::verify(&store, &verifier).context("verify")?;
    let seconds = started.elapsed().as_secs_f64();
    drop(store);
    // Start-up: what a gateway does before it answers (the latest checkpoint
    // against the tiles, the journal's tail, the consent ledger's watermark).
    let started = Instant::now();
    let reopened = store::open(dir.path()).context("reopen stores")?;
    let stores_seconds = started.elapsed().as_secs_f64();
    let (log, opened) = AuditLog::open(
        reopened.log,
        reopened.audit_index,
        signer.clone(),
        Arc::new(SystemClock),
        writer,
    )
    .context("reopen audit log")?;
    let startup_seconds = started.elapsed().as_secs_f64();
    ensure!(opened.size == records, "reopened {} records of {records}", opened.size);
    log.close().await;
    println!(
        "start-up on {records} records: {startup_seconds:.3} s ({stores_seconds:.3} s opening the stores, the rest opening the log)"
    );
    ensure!(
        verified.size == records,
        "verified {} records of {records}",
        verified.size
    );
    let rate = records as f64 / seconds;
    println!(
        "verified {records} records and {} checkpoints in {seconds:.2} s: {rate:.0} records/s",
        verified.checkpoints
    );
    write_json(
        out,
        json!({
            "benchmark": "verify", "records": records, "checkpoints": verified.checkpoints,
            "seconds": seconds, "records_per_second": rate, "append_seconds": build_seconds,
            "startup_seconds": startup_seconds, "startup_stores_seconds": stores_seconds,
            "append_writers": WRITERS, "machine": machine(),
        }),
    )
}

/// This process's resident set size, in KiB.
fn rss_kib() -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status").context("read /proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS in /proc/self/status")
}

async fn idle(connections: usize, citizens: usize, out: &Path) -> Result<()> {
    let mut setup = Setup::create(citizens, false).await?;
    setup.config.limits.max_connections = setup.config.limits.max_connections.max(connections * 2);
    setup.config.limits.max_connections_per_agency =
        setup.config.limits.max_connections_per_agency.max(connections * 2);
    let baseline = rss_kib()?;
    let gateway = setup.gateway(true).await?;
    let endpoint = gateway.endpoint();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let serving = rss_kib()?;
    let channels: Vec<Channel> = futures::stream::iter(0..connections)
        .map(|_| {
            let (endpoint, tls) = (endpoint.clone(), setup.psb.clone());
            async move {
                let channel = client::connect(&endpoint, &tls).await.context("connect")?;
                let mut exchange = ExchangeServiceClient::new(channel.clone());
                exchange
                    .list_attributes(ListAttributesRequest {})
                    .await
                    .context("ListAttributes")?;
                anyhow::Ok(channel)
            }
        })
        .buffer_unordered(16)
        .try_collect()
        .await?;
    // Let buffers settle; the connections stay open and idle.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let held = rss_kib()?;
    drop(channels);
    gateway.stop().await?;
    let mib = |kib: u64| kib as f64 / 1024.0;
    let per_connection = held.saturating_sub(serving) as f64 / connections.max(1) as f64;
    println!(
        "resident memory, MiB: before the gateway {:.1}, serving {:.1}, with {connections} idle connections {:.1}",
        mib(baseline),
        mib(serving),
        mib(held)
    );
    println!(
        "gateway and connections: {:.1} MiB over the baseline ({per_connection:.1} KiB per connection, both ends)",
        mib(held.saturating_sub(baseline))
    );
    let note = "one process: the clients' ends of the connections are counted too, so the figures bound the \
                gateway's from above; the baseline (after setup, before the gateway) is subtracted";
    println!("note: {note}");
    write_json(
        out,
        json!({
            "benchmark": "idle", "connections": connections, "citizens": citizens,
            "rss_mib": { "baseline": mib(baseline), "serving": mib(serving), "with_connections": mib(held) },
            "over_baseline_mib": mib(held.saturating_sub(baseline)),
            "per_connection_kib": per_connection, "note": note, "machine": machine(),
        }),
    )
}

async fn latency_scale(small: usize, large: usize, requests: u64, out: &Path) -> Result<()> {
    let mut results = Vec::new();
    for citizens in [small, large] {
        let setup = Setup::create(citizens, false).await?;
        let gateway = setup.gateway(true).await?;
        let pool = setup.grant(&gateway).await?;
        let channel = client::connect(&gateway.endpoint(), &setup.psb)
            .await
            .context("connect")?;
        let mut client = Client::Gateway(ExchangeServiceClient::new(channel));
        let (mut rng, mut tally) = (Rng::new(SEED), Tally::new()?);
        let warmup = (requests / 10).max(100);
        for seq in 0..warmup + requests {
            let sent = Instant::now();
            let outcome = client.call(Workload::Query, &pool, &mut rng, seq).await;
            if seq >= warmup {
                tally.record(sent.elapsed(), outcome);
            }
        }
        drop(client);
        gateway.stop().await?;
        let [p50, p99, p999] = tally.percentiles();
        println!(
            "{citizens:>9} citizens: p50 {p50} µs  p99 {p99} µs  p99.9 {p999} µs  errors {}",
            tally.errors
        );
        results.push((citizens, tally));
    }
    let ratio = |i: usize| results[1].1.percentiles()[i] as f64 / results[0].1.percentiles()[i].max(1) as f64;
    let (p50_ratio, p99_ratio) = (ratio(0), ratio(1));
    println!("large ÷ small: p50 {p50_ratio:.3}  p99 {p99_ratio:.3}");
    let sizes: Vec<_> = results
        .iter()
        .map(|(citizens, t)| {
            let [p50, p99, p999] = t.percentiles();
            json!({ "citizens": citizens, "p50_us": p50, "p99_us": p99, "p999_us": p999, "errors": t.errors,
                    "first_error": t.first_error })
        })
        .collect();
    write_json(
        out,
        json!({
            "benchmark": "latency-scale", "requests": requests, "concurrency": 1, "connections": 1,
            "sizes": sizes, "ratio_large_small": { "p50": p50_ratio, "p99": p99_ratio }, "machine": machine(),
        }),
    )
}

/// The machine the figures come from.
fn machine() -> serde_json::Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, model)| model.trim().to_owned());
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    json!({ "cpu": cpu, "cpus": cpus, "os": std::env::consts::OS, "arch": std::env::consts::ARCH })
}

fn write_json(path: &Path, value: serde_json::Value) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    let text = serde_json::to_string_pretty(&value).context("encode JSON")?;
    std::fs::write(path, text + "\n").with_context(|| format!("write {}", path.display()))?;
    println!("wrote {}", path.display());
    Ok(())
}

/// xorshift64*: seeded and cheap, enough to pick requests.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn step(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (0 when `n` is 0).
    fn below(&mut self, n: usize) -> usize {
        (self.step() % n.max(1) as u64) as usize
    }
}
