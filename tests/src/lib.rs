//! The end-to-end harness: a real gateway on a free loopback port, with a
//! PKI minted for the test, synthetic citizens imported into its registries,
//! a manual clock, and real mTLS gRPC clients.
//!
//! # Layout
//! - [`TestGateway`]: start, connect as any agency, read the department files, stop.
//! - [`TestWitness`]: the reference witness of `civex witness` on loopback.
//! - [`reason`]: the civex reason of a status.
//!
//! The tests themselves live in `tests/it/`, one module per area.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, SystemTime},
};

use civex_adapters::Department;
use civex_adapters::import;
use civex_cli::{
    client::{self, ClientTls},
    demo_data,
    pki::{ClientSpec, DevCa, write_private},
};
use civex_gateway::{
    Gateway,
    authority::Ca,
    clock::{ManualClock, timestamp},
    config::{Config, TlsConfig},
    store,
};
use civex_proto::v1::{
    Consent, GrantConsentRequest, admin_service_client::AdminServiceClient, audit_service_client::AuditServiceClient,
    commitment_service_client::CommitmentServiceClient, consent_service_client::ConsentServiceClient,
    correction_service_client::CorrectionServiceClient, exchange_service_client::ExchangeServiceClient,
    oversight_service_client::OversightServiceClient,
};
use tokio::{sync::oneshot, task::JoinHandle};
use tonic::transport::Channel;

pub use civex_gateway::error::reason_of;

/// Citizens imported into every test gateway.
pub const CITIZENS: usize = 300;
/// Seed of the synthetic data, so every run sees the same citizens.
pub const SEED: u64 = 7;

/// The reference witness (`civex witness`'s server) on a free loopback
/// port, with a store of its own, trusting one log key.
pub struct TestWitness {
    pub addr: SocketAddr,
    /// Its cosignature verifier key.
    pub key: String,
    pub dir: tempfile::TempDir,
    task: JoinHandle<std::io::Result<()>>,
}

impl TestWitness {
    /// A witness named `name` trusting the log whose verifier key is `log`.
    pub async fn start(name: &str, log: &str) -> TestWitness {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = civex_audit::keys::Verifier::parse(log).expect("a log key");
        let witness = civex_audit::witness::Witness::open(dir.path(), name, vec![log]).expect("witness opens");
        let key = witness.verifier_key();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(civex_gateway::witness::server::serve(listener, Arc::new(witness)));
        TestWitness { addr, key, dir, task }
    }

    /// Its `[[audit.witnesses]]` entry.
    pub fn config(&self) -> civex_gateway::config::WitnessConfig {
        civex_gateway::config::WitnessConfig {
            url: format!("http://{}", self.addr),
            key: self.key.clone(),
        }
    }
}

impl Drop for TestWitness {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A gateway serving on loopback for one test.
pub struct TestGateway {
    pub addr: SocketAddr,
    /// Where `/metrics` is served, if the configuration turns it on.
    pub metrics_addr: Option<SocketAddr>,
    pub dir: tempfile::TempDir,
    pub ca: Ca,
    pub clock: ManualClock,
    pub verifier_key: String,
    pub config: Config,
    /// Citizens the demo data guarantees, one per predicate branch and more.
    pub samples: Vec<demo_data::Sample>,
    /// Reloads the gateway's certificate, as SIGHUP does for `civex serve`.
    pub reloader: civex_gateway::Reloader,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl TestGateway {
    /// Starts a gateway with the demo agencies and [`CITIZENS`] synthetic citizens.
    pub async fn start() -> TestGateway {
        TestGateway::start_with(|_| {}).await
    }

    /// As [`TestGateway::start`], letting the test adjust the configuration.
    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> TestGateway {
        TestGateway::start_with_sources(|_, _| Vec::new(), adjust).await.0
    }

    /// As [`TestGateway::start_with`], with department sources started first:
    /// `sources` gets the CA and the demo-data directory and returns the
    /// sources to serve, which the gateway is configured to call.
    pub async fn start_with_sources(
        sources: impl FnOnce(&Ca, &Path) -> Vec<(Department, Box<SourceService>)>,
        adjust: impl FnOnce(&mut Config),
    ) -> (TestGateway, Vec<TestSource>) {
        let sources = |ca: &Ca, files: &Path| {
            sources(ca, files)
                .into_iter()
                .map(|(department, service)| (department, department.source_uri(), service))
                .collect()
        };
        TestGateway::start_with_claimed_sources(sources, adjust).await
    }

    /// As [`TestGateway::start_with_sources`], each source's certificate
    /// claiming the SAN URI given with it (its own department's, or another's).
    pub async fn start_with_claimed_sources(
        sources: impl FnOnce(&Ca, &Path) -> Vec<(Department, String, Box<SourceService>)>,
        adjust: impl FnOnce(&mut Config),
    ) -> (TestGateway, Vec<TestSource>) {
        let dir = tempfile::tempdir().expect("temp dir");
        let ca = Ca::generate("civex test CA").expect("CA");
        let certs = dir.path().join("certs");
        std::fs::create_dir_all(&certs).expect("certs dir");
        let server = ca
            .issue_server(
                &["localhost", "127.0.0.1"],
                &civex_gateway::net::identity::gateway_uri(civex_cli::pki::DEV_GATEWAY_NAME),
            )
            .expect("server cert");
        std::fs::write(certs.join("ca.pem"), ca.cert_pem()).expect("write CA");
        std::fs::write(certs.join("gateway.pem"), &server.cert_pem).expect("write cert");
        write_private(&certs.join("gateway.key"), server.key_pem.as_bytes()).expect("write key");
        write_private(&certs.join("ca.key"), ca.key_pem().as_bytes()).expect("write CA key");

        let data = dir.path().join("data");
        let samples = demo_data::generate(CITIZENS, SEED, &dir.path().join("demo-data")).expect("demo data");

        let mut config = Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: data,
            tls: TlsConfig::in_dir(&certs),
            ..Config::default()
        };
        let mut started = Vec::new();
        for (department, claims, service) in sources(&ca, &dir.path().join("demo-data")) {
            let source = TestSource::start_claiming(dir.path(), &ca, department, &claims, service, None).await;
            let remote = civex_gateway::config::RemoteDepartment {
                deadline_ms: 2_000,
                failure_threshold: 3,
                open_ms: 200,
                ..civex_gateway::config::RemoteDepartment::new(
                    format!("https://{}", source.addr),
                    certs.join("ca.pem"),
                    certs.join("gateway.pem"),
                    certs.join("gateway.key"),
                )
            };
            config.departments.insert(
                department.code().into(),
                civex_gateway::config::DepartmentConfig::Remote(remote),
            );
            started.push(source);
        }
        adjust(&mut config);
        import_demo_data(&config, &dir.path().join("demo-data"));
        let clock = ManualClock::new(SystemTime::now());
        let mut gateway = TestGateway::serve(config, dir, ca, clock).await;
        gateway.samples = samples;
        (gateway, started)
    }

    async fn serve(config: Config, dir: tempfile::TempDir, ca: Ca, clock: ManualClock) -> TestGateway {
        let gateway = Gateway::bind_with_clock(config.clone(), Arc::new(clock.clone()))
            .await
            .expect("gateway binds");
        let addr = gateway.local_addr();
        let metrics_addr = gateway.metrics_addr();
        let verifier_key = gateway.verifier_key();
        let reloader = gateway.reloader();
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(async move {
            gateway
                .serve(async {
                    let _ = rx.await;
                })
                .await
                .expect("gateway serves");
        });
        TestGateway {
            addr,
            metrics_addr,
            dir,
            ca,
            clock,
            verifier_key,
            config,
            samples: Vec::new(),
            reloader,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// Another gateway of the same deployment: the same configuration (so
    /// the same shared store), data directory (keys) and certificates, on
    /// a port of its own, with a clock of its own set to this one's time.
    pub async fn join(&self) -> TestGateway {
        let dir = tempfile::tempdir().expect("temp dir");
        std::os::unix::fs::symlink(self.dir.path().join("certs"), dir.path().join("certs")).expect("certs link");
        let ca = Ca::load(self.ca.cert_pem(), &self.ca.key_pem()).expect("CA");
        let clock = ManualClock::new(civex_gateway::clock::Clock::now(&self.clock));
        let mut joined = TestGateway::serve(self.config.clone(), dir, ca, clock).await;
        joined.samples = self.samples.clone();
        joined
    }

    /// Stops the gateway gracefully and starts it again on the same data
    /// directory, certificates and clock.
    pub async fn restart(self) -> TestGateway {
        self.restart_with(|_| {}).await
    }

    /// The same gateway restarted with a new witness of its own (quorum: it).
    pub async fn witnessed(self) -> (TestGateway, TestWitness) {
        let witness = TestWitness::start("witness.test/w1", &self.verifier_key).await;
        let config = witness.config();
        let gateway = self.restart_with(|c| c.audit.witnesses.push(config)).await;
        (gateway, witness)
    }

    /// [`TestGateway::restart`] with its configuration changed by `adjust`.
    pub async fn restart_with(mut self, adjust: impl FnOnce(&mut Config)) -> TestGateway {
        self.shutdown_and_wait().await;
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("temp dir"));
        let ca = std::mem::replace(&mut self.ca, Ca::generate("discarded").expect("CA"));
        let mut config = self.config.clone();
        adjust(&mut config);
        let mut gateway = TestGateway::serve(config, dir, ca, self.clock.clone()).await;
        gateway.samples = std::mem::take(&mut self.samples);
        gateway
    }

    async fn shutdown_and_wait(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("gateway task");
        }
    }

    /// `https://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// Client TLS material for a freshly minted certificate of `spec`.
    pub fn tls_for(&self, spec: &ClientSpec) -> ClientTls {
        let issued = self.ca.issue_client(spec).expect("client cert");
        // As `civex certs` does: the CA's index, so the gateway can revoke it.
        civex_gateway::authority::note_issued(&self.dir.path().join("certs"), &issued, &spec.common_name)
            .expect("CA index");
        ClientTls {
            ca_pem: self.ca.cert_pem().to_owned(),
            cert_pem: issued.cert_pem,
            key_pem: issued.key_pem,
        }
    }

    /// A bare TLS connection as `agency`, speaking HTTP/2 (ALPN `h2`), for
    /// tests that talk below gRPC.
    pub async fn raw_tls(&self, agency: &str) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
        self.raw_tls_with(&self.tls_for(&ClientSpec::agency(agency))).await
    }

    /// [`TestGateway::raw_tls`] with the certificate `tls`.
    pub async fn raw_tls_with(&self, tls: &ClientTls) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
        self.raw_tls_speaking(tls, b"h2").await
    }

    /// A bare TLS connection with the certificate `tls`, offering only `alpn`.
    pub async fn raw_tls_speaking(
        &self,
        tls: &ClientTls,
        alpn: &[u8],
    ) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
        use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject};
        let mut roots = rustls::RootCertStore::empty();
        for ca in CertificateDer::pem_slice_iter(tls.ca_pem.as_bytes()) {
            roots.add(ca.expect("CA PEM")).expect("CA");
        }
        let certs = CertificateDer::pem_slice_iter(tls.cert_pem.as_bytes())
            .map(|c| c.expect("cert PEM"))
            .collect();
        let key = PrivateKeyDer::from_pem_slice(tls.key_pem.as_bytes()).expect("key PEM");
        let mut config =
            rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .expect("protocol versions")
                .with_root_certificates(roots)
                .with_client_auth_cert(certs, key)
                .expect("client auth");
        config.alpn_protocols = vec![alpn.to_vec()];
        let tcp = tokio::net::TcpStream::connect(self.addr).await.expect("TCP connect");
        let name = ServerName::try_from("localhost").expect("server name");
        tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .expect("TLS handshake")
    }

    /// A connected mTLS channel as `agency`.
    pub async fn channel(&self, agency: &str) -> Channel {
        client::connect(&self.endpoint(), &self.tls_for(&ClientSpec::agency(agency)))
            .await
            .expect("connects")
    }

    pub async fn exchange(&self, agency: &str) -> ExchangeServiceClient<Channel> {
        ExchangeServiceClient::new(self.channel(agency).await)
    }

    pub async fn consents(&self, agency: &str) -> ConsentServiceClient<Channel> {
        ConsentServiceClient::new(self.channel(agency).await)
    }

    /// Registers a consent through `qujing-portal`, valid for a day.
    pub async fn grant(&self, citizen: &str, grantee: &str, scopes: &[&str], purpose: &str, max_uses: u32) -> Consent {
        self.try_grant(citizen, grantee, scopes, purpose, max_uses)
            .await
            .expect("grant")
    }

    /// As [`TestGateway::grant`], returning a refusal.
    pub async fn try_grant(
        &self,
        citizen: &str,
        grantee: &str,
        scopes: &[&str],
        purpose: &str,
        max_uses: u32,
    ) -> Result<Consent, tonic::Status> {
        self.consents("qujing-portal")
            .await
            .grant(GrantConsentRequest {
                citizen_id: citizen.into(),
                grantee: grantee.into(),
                scopes: scopes.iter().map(|s| (*s).into()).collect(),
                purpose: purpose.into(),
                not_after: Some(timestamp(self.clock_now() + Duration::from_secs(86_400))),
                max_uses,
            })
            .await
            .map(tonic::Response::into_inner)
    }

    fn clock_now(&self) -> SystemTime {
        use civex_gateway::clock::Clock;
        self.clock.now()
    }

    /// The JSONL records of `department`, as imported.
    pub fn records(&self, department: Department) -> Vec<serde_json::Map<String, serde_json::Value>> {
        read_records(&self.dir.path().join("demo-data"), department)
    }

    /// The first citizen whose `department` record satisfies `pred`.
    pub fn citizen_where(
        &self,
        department: Department,
        pred: impl Fn(&serde_json::Map<String, serde_json::Value>) -> bool,
    ) -> serde_json::Map<String, serde_json::Value> {
        self.records(department)
            .into_iter()
            .find(|r| pred(r))
            .expect("a matching citizen in the demo data")
    }

    /// Stops the gateway and waits until it has drained and flushed.
    pub async fn stop(mut self) {
        self.shutdown_and_wait().await;
    }

    pub async fn admin(&self, agency: &str) -> AdminServiceClient<Channel> {
        AdminServiceClient::new(self.channel(agency).await)
    }

    pub async fn audit(&self, agency: &str) -> AuditServiceClient<Channel> {
        AuditServiceClient::new(self.channel(agency).await)
    }

    /// A citizen's access history as a registrar's counter reads it (`qujing-portal`), up to 1000 entries.
    pub async fn history(&self, citizen: &str) -> Vec<civex_proto::v1::AuditEntry> {
        self.audit("qujing-portal")
            .await
            .access_history(civex_proto::v1::AccessHistoryRequest {
                citizen_id: citizen.into(),
                page_size: 1000,
                ..Default::default()
            })
            .await
            .expect("access history")
            .into_inner()
            .entries
    }

    /// What the demo auditor's search finds, up to 1000 entries.
    pub async fn search(&self, request: civex_proto::v1::AuditSearchRequest) -> Vec<civex_proto::v1::AuditEntry> {
        self.audit("qujing-audit")
            .await
            .search(civex_proto::v1::AuditSearchRequest {
                page_size: 1000,
                ..request
            })
            .await
            .expect("search")
            .into_inner()
            .entries
    }

    /// Has the demo auditor sign a checkpoint (a record of its own) and returns its tree size.
    pub async fn checkpoint_size(&self) -> u64 {
        self.audit("qujing-audit")
            .await
            .checkpoint(civex_proto::v1::CheckpointRequest {})
            .await
            .expect("a checkpoint")
            .into_inner()
            .tree_size
    }

    pub async fn corrections(&self, agency: &str) -> CorrectionServiceClient<Channel> {
        CorrectionServiceClient::new(self.channel(agency).await)
    }

    pub async fn commitments(&self, agency: &str) -> CommitmentServiceClient<Channel> {
        CommitmentServiceClient::new(self.channel(agency).await)
    }

    pub async fn oversight(&self, agency: &str) -> OversightServiceClient<Channel> {
        OversightServiceClient::new(self.channel(agency).await)
    }
}

/// `message` as a request from the official `operator` (the
/// `civex-operator` metadata, for calls whose request has no field for it).
pub fn as_operator<T>(message: T, operator: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        civex_gateway::service::OPERATOR,
        operator.parse().expect("an ASCII operator label"),
    );
    request
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

fn read_records(dir: &Path, department: Department) -> Vec<serde_json::Map<String, serde_json::Value>> {
    let text = std::fs::read_to_string(dir.join(format!("{}.jsonl", department.code()))).expect("department file");
    text.lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

/// Generates the synthetic citizens into `files` and imports every department into `data`.
/// Imports the demo data's files into the registries of the engine `config` names.
fn import_demo_data(config: &Config, files: &Path) {
    let stores = store::open_engine(&config.storage, &config.data_dir).expect("store");
    for department in Department::ALL {
        let path: PathBuf = files.join(format!("{}.jsonl", department.code()));
        let reader = std::io::BufReader::new(std::fs::File::open(&path).expect("file"));
        import::import(stores.registries.as_ref(), department, reader).expect("import");
    }
}

/// A department source service the harness can serve: the reference
/// `civex_cli::department_server::DepartmentServer`, or a test's own misbehaving one.
pub type SourceService = dyn civex_proto::v1::department_source_service_server::DepartmentSourceService;

/// A department source on loopback, over mTLS with a certificate from the test CA.
///
/// It runs on a runtime of its own, so that [`TestSource::kill`] drops its open
/// connections with it, as a crashed process would; aborting only the accept
/// loop would leave them draining gracefully.
pub struct TestSource {
    pub addr: SocketAddr,
    pub department: Department,
    runtime: std::sync::Mutex<Option<tokio::runtime::Runtime>>,
}

struct Boxed(Box<SourceService>);

#[tonic::async_trait]
impl civex_proto::v1::department_source_service_server::DepartmentSourceService for Boxed {
    async fn fetch(
        &self,
        request: tonic::Request<civex_proto::v1::FetchRequest>,
    ) -> Result<tonic::Response<civex_proto::v1::FetchResponse>, tonic::Status> {
        self.0.fetch(request).await
    }
}

impl TestSource {
    /// Serves `service` for `department` on `at` (or a free port), beside the
    /// test gateway whose directory is `root`: certificates go to its
    /// `certs/sources/`, and the source follows the CRL it publishes.
    pub async fn start(
        root: &Path,
        ca: &Ca,
        department: Department,
        service: Box<SourceService>,
        at: Option<SocketAddr>,
    ) -> TestSource {
        TestSource::start_claiming(root, ca, department, &department.source_uri(), service, at).await
    }

    /// [`TestSource::start`] with a certificate that claims `principal`
    /// (a SAN URI) instead of its own department's.
    pub async fn start_claiming(
        root: &Path,
        ca: &Ca,
        department: Department,
        principal: &str,
        service: Box<SourceService>,
        at: Option<SocketAddr>,
    ) -> TestSource {
        let issued = ca
            .issue_server(&["localhost", "127.0.0.1"], principal)
            .expect("source cert");
        let dir = root.join("certs").join("sources");
        std::fs::create_dir_all(&dir).expect("sources dir");
        let name = format!("{}-{}", department.code(), issued.serial);
        let (cert, key) = (dir.join(format!("{name}.pem")), dir.join(format!("{name}.key")));
        std::fs::write(&cert, &issued.cert_pem).expect("source cert");
        write_private(&key, issued.key_pem.as_bytes()).expect("source key");
        let tls = civex_cli::department_server::SourceTls {
            ca: root.join("certs").join("ca.pem"),
            cert,
            key,
            crl: Some(root.join("data").join(civex_gateway::authority::CRL_FILE)),
            gateways: vec![civex_cli::pki::DEV_GATEWAY_NAME.to_owned()],
        };
        let listener = std::net::TcpListener::bind(at.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0))))
            .expect("source binds");
        listener.set_nonblocking(true).expect("non-blocking listener");
        let addr = listener.local_addr().expect("source address");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("source runtime");
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("source listener");
            let _ = civex_cli::department_server::serve(Boxed(service), &tls, listener, std::future::pending()).await;
        });
        TestSource {
            addr,
            department,
            runtime: std::sync::Mutex::new(Some(runtime)),
        }
    }

    /// The reference source for `department`, from the demo-data directory.
    pub fn reference(files: &Path, department: Department) -> Box<SourceService> {
        let path = files.join(format!("{}.jsonl", department.code()));
        Box::new(civex_cli::department_server::DepartmentServer::open(department, &path).expect("source data"))
    }

    /// Stops the source abruptly, as a crash would: its listener and every
    /// open connection close at once.
    pub fn kill(&self) {
        if let Some(runtime) = self.runtime.lock().expect("source runtime").take() {
            // Waits until its tasks (and so its sockets) are gone; on a thread of
            // its own because a runtime may not be shut down from async code.
            std::thread::spawn(move || runtime.shutdown_timeout(Duration::from_secs(5)))
                .join()
                .expect("source runtime shut down");
        }
    }
}

impl Drop for TestSource {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The civex reason of a failed call (empty if it carries none).
pub fn reason(status: &tonic::Status) -> String {
    reason_of(status).unwrap_or_default()
}

/// A small tmpfs of the test's own, so that it can fill it; unmounted on drop.
pub struct SmallDisk(pub PathBuf);

impl SmallDisk {
    /// Mounts a tmpfs of `size` (e.g. `24m`) at `at`. A test that needs a
    /// full disk fails, never passes, where it cannot have one.
    pub fn mount(at: PathBuf, size: &str) -> SmallDisk {
        std::fs::create_dir_all(&at).expect("mount point");
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&at)
            .status();
        assert!(
            status.as_ref().is_ok_and(|s| s.success()),
            "cannot mount a tmpfs at {} ({status:?}): the full-disk tests need root (CAP_SYS_ADMIN), \
             as CI has; run them with `sudo -E cargo test` or in `unshare -rm`",
            at.display()
        );
        SmallDisk(at)
    }

    /// Writes zeros until the disk is full; returns the filler's path.
    pub fn fill(&self) -> PathBuf {
        use std::io::Write;
        let path = self.0.join("filler");
        let mut file = std::fs::File::create(&path).expect("filler");
        let block = vec![0u8; 64 * 1024];
        while file.write_all(&block).is_ok() {}
        let _ = file.sync_all();
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}
