//! Gateway configuration: a TOML file plus `CIVEX_*` environment overrides,
//! validated once before any port is bound.
//!
//! [`Config::default`] is the demo's configuration: the Qujing demo agencies
//! with rights that fit each one's work.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::{Deserialize, Serialize};

use crate::{
    oversight::rules::AlertsConfig,
    policy::{
        access::{self, AccessRight, Agency, RateLimit, Role, Status, is_agency_code},
        predicates::Thresholds,
    },
};

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot parse config {path}: {source}")]
    Parse { path: PathBuf, source: toml::de::Error },
    #[error("environment variable {name}: {message}")]
    Env { name: &'static str, message: String },
    #[error("invalid config: {0}")]
    Invalid(String),
}

/// Everything a gateway needs to start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The gateway's name: its signing key is `civex/<name>` (CIVEX_NAME).
    pub name: String,
    /// Address to serve gRPC over mTLS on (CIVEX_LISTEN).
    pub listen: SocketAddr,
    /// Directory holding the store and the signing key (CIVEX_DATA_DIR).
    pub data_dir: PathBuf,
    /// Where the deployment's state lives.
    pub storage: StorageConfig,
    pub tls: TlsConfig,
    pub limits: Limits,
    pub audit: AuditConfig,
    /// Thresholds of the eligibility predicates that the reform leaves to local rules.
    pub predicates: Thresholds,
    /// The oversight rules' thresholds, `[alerts.<rule>]` (DESIGN §13).
    pub alerts: AlertsConfig,
    /// Notification and commitment: each matter's sample, `[commitments."<matter>"]` (DESIGN §15).
    pub commitments: BTreeMap<String, crate::commitments::Matter>,
    /// The Prometheus metrics listener, `[metrics] listen` (DESIGN §12).
    pub metrics: MetricsConfig,
    /// Where each department's facts come from, by department code; a
    /// department not listed is embedded (served from this gateway's store).
    pub departments: BTreeMap<String, DepartmentConfig>,
    /// Agencies and their rights. Agencies are identified by the SAN URI of
    /// their client certificate, `spiffe://civex/agency/<code>`.
    pub agencies: Vec<AgencyConfig>,
}

/// Certificates and keys, PEM files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// The civex CA: client certificates must chain to it.
    pub ca_cert: PathBuf,
    /// The gateway's server certificate and key.
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// The CA's private key. With it the gateway issues agency certificates
    /// from CSRs and signs its own CRL; without it, it can only refuse
    /// revoked serials (default `certs/ca.key` for the demo).
    pub ca_key: Option<PathBuf>,
    /// Validity of issued agency certificates, in days (default 397).
    pub certificate_days: u32,
    /// Validity of each signed CRL, in days; it is re-signed at half of it (default 7).
    pub crl_days: u32,
}

/// Bounds on what one caller can make the gateway hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Time allowed for a TLS handshake, in milliseconds (default 5,000).
    pub handshake_timeout_ms: u64,
    /// Time allowed after the handshake for the HTTP/2 connection preface,
    /// in milliseconds (default 5,000).
    pub preface_timeout_ms: u64,
    /// A connection that carries no call for this long is closed, in
    /// milliseconds (default 300,000).
    pub idle_timeout_ms: u64,
    /// Open connections at most (default 4,096); more wait to be accepted.
    pub max_connections: usize,
    /// Open connections of one agency at most (default 256).
    pub max_connections_per_agency: usize,
    /// Concurrent HTTP/2 streams per connection (default 128).
    pub max_concurrent_streams: u32,
    /// Largest request message, in bytes (default 64 KiB).
    pub max_message_bytes: usize,
    /// Attributes one query may ask for (default 64).
    pub max_attributes: usize,
    /// Deadline for a department's answer, in milliseconds (default 2,000).
    pub adapter_deadline_ms: u64,
    /// Quota of agencies without a rate of their own (default 1,000/s, burst 2,000; 0 = unlimited).
    pub default_rate: RateLimit,
    /// On SIGTERM, how long calls in flight may take to finish before the
    /// log closes under them (they are then refused), in milliseconds (default 30,000).
    pub shutdown_grace_ms: u64,
}

/// Where one department's facts come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DepartmentConfig {
    /// The registry in the gateway's own store, filled by `civex import`.
    Embedded,
    /// The department's own system, through `DepartmentSourceService` over mTLS.
    Remote(RemoteDepartment),
}

/// A department's own system.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteDepartment {
    /// `https://host:port`.
    pub endpoint: String,
    /// CA the source's certificate must chain to (PEM).
    pub ca: PathBuf,
    /// The gateway's client certificate and key for this source (PEM).
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Deadline of one call, in milliseconds (default 1,500; at most `limits.adapter_deadline_ms`).
    #[serde(default = "RemoteDepartment::default_deadline")]
    pub deadline_ms: u64,
    /// Calls in flight at most (default 64).
    #[serde(default = "RemoteDepartment::default_in_flight")]
    pub max_in_flight: usize,
    /// Consecutive failures that stop calls to the source (default 5) ...
    #[serde(default = "RemoteDepartment::default_threshold")]
    pub failure_threshold: u32,
    /// ... for this long, in milliseconds, before one probe call (default 2,000).
    #[serde(default = "RemoteDepartment::default_open")]
    pub open_ms: u64,
}

impl RemoteDepartment {
    fn default_deadline() -> u64 {
        1_500
    }

    fn default_in_flight() -> usize {
        64
    }

    fn default_threshold() -> u32 {
        5
    }

    fn default_open() -> u64 {
        2_000
    }

    /// A department's system at `endpoint`, with the default bounds.
    pub fn new(endpoint: String, ca: PathBuf, cert: PathBuf, key: PathBuf) -> RemoteDepartment {
        RemoteDepartment {
            endpoint,
            ca,
            cert,
            key,
            deadline_ms: Self::default_deadline(),
            max_in_flight: Self::default_in_flight(),
            failure_threshold: Self::default_threshold(),
            open_ms: Self::default_open(),
        }
    }
}

/// The storage engine (DESIGN §9).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    pub engine: Engine,
    /// The database of the `postgres` engine, `postgres://user@host:port/db`;
    /// `?sslmode=require&sslrootcert=<CA file>` for TLS (CIVEX_STORAGE_URL,
    /// which also selects the engine).
    pub url: Option<String>,
}

/// Which engine keeps the state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Engine {
    /// Everything in the data directory, for one gateway.
    #[default]
    Embedded,
    /// Everything in one PostgreSQL database, for any number of gateways;
    /// the data directory holds only keys.
    Postgres,
}

/// Prometheus metrics in the text format on plain HTTP: off unless
/// `listen` is set (e.g. `"127.0.0.1:9464"`; a port of 0 picks a free one).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    pub listen: Option<SocketAddr>,
}

/// The audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// The key that turns citizen IDs into pseudonyms, in a file of its own
    /// so it can be kept apart from the store (default `<data_dir>/pseudonym.key`;
    /// created if absent).
    pub pseudonym_key: Option<PathBuf>,
    /// Sign a checkpoint after this many records (default 1,000).
    pub checkpoint_every: u64,
    /// ... or after this many milliseconds with new records (default 10,000).
    pub checkpoint_interval_ms: u64,
    /// Witnesses that cosign checkpoints (C2SP tlog-witness), `[[audit.witnesses]]`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub witnesses: Vec<WitnessConfig>,
    /// How many witnesses must cosign a checkpoint before it is given out
    /// (default: every one listed).
    pub witness_quorum: Option<usize>,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            pseudonym_key: None,
            checkpoint_every: 1_000,
            checkpoint_interval_ms: 10_000,
            witnesses: Vec::new(),
            witness_quorum: None,
        }
    }
}

impl AuditConfig {
    /// The quorum in force: as configured, or every witness.
    pub fn quorum(&self) -> usize {
        self.witness_quorum.unwrap_or(self.witnesses.len())
    }
}

/// One witness: where its `add-checkpoint` is and the key its cosignatures verify with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WitnessConfig {
    /// The submission prefix, e.g. `"http://witness.example:7380"`;
    /// `<url>/add-checkpoint` is posted to.
    pub url: String,
    /// Its cosignature verifier key, `<name>+<hash>+<base64(0x04 ‖ key)>`,
    /// as `civex witness` prints it.
    pub key: String,
}

impl Config {
    /// Where the pseudonym key lives.
    pub fn pseudonym_key_path(&self) -> PathBuf {
        self.audit
            .pseudonym_key
            .clone()
            .unwrap_or_else(|| self.data_dir.join("pseudonym.key"))
    }
}

/// One agency and what it may do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgencyConfig {
    /// Code in the certificate's SAN URI, e.g. `qujing-psb`.
    pub code: String,
    pub name: String,
    /// Department code: `ps`, `edu`, `hrss`, `ca`, `housing`, `land`, `tax` or `other`.
    pub department: String,
    pub roles: Vec<Role>,
    #[serde(default)]
    pub rights: Vec<AccessRight>,
    /// Calls per second and burst; unset means `limits.default_rate`.
    #[serde(default)]
    pub rate: RateLimit,
}

impl From<&AgencyConfig> for Agency {
    fn from(c: &AgencyConfig) -> Agency {
        Agency {
            code: c.code.clone(),
            name: c.name.clone(),
            department: c.department.clone(),
            roles: c.roles.clone(),
            rights: c.rights.clone(),
            rate: c.rate,
            status: Status::Active,
        }
    }
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig::in_dir(Path::new("certs"))
    }
}

impl TlsConfig {
    /// The files of a PKI laid out as `civex certs init` writes it in `dir`.
    pub fn in_dir(dir: &Path) -> TlsConfig {
        TlsConfig {
            ca_cert: dir.join("ca.pem"),
            server_cert: dir.join("gateway.pem"),
            server_key: dir.join("gateway.key"),
            ca_key: Some(dir.join("ca.key")),
            certificate_days: 397,
            crl_days: 7,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            handshake_timeout_ms: 5_000,
            preface_timeout_ms: 5_000,
            idle_timeout_ms: 300_000,
            max_connections: 4_096,
            max_connections_per_agency: 256,
            max_concurrent_streams: 128,
            max_message_bytes: 64 * 1024,
            max_attributes: 64,
            adapter_deadline_ms: 2_000,
            default_rate: RateLimit {
                per_second: 1_000,
                burst: 2_000,
            },
            shutdown_grace_ms: 30_000,
        }
    }
}

impl Limits {
    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_millis(self.handshake_timeout_ms)
    }

    /// What the gateway's listener allows each connection.
    pub fn admission(&self) -> crate::net::tls::Admission {
        crate::net::tls::Admission {
            handshake_timeout: self.handshake_timeout(),
            preface_timeout: Duration::from_millis(self.preface_timeout_ms),
            idle_timeout: Duration::from_millis(self.idle_timeout_ms),
            max_connections: self.max_connections,
            max_per_peer: self.max_connections_per_agency,
        }
    }

    pub fn adapter_deadline(&self) -> Duration {
        Duration::from_millis(self.adapter_deadline_ms)
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            name: "qujing-demo".into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            data_dir: "civex-data".into(),
            storage: StorageConfig::default(),
            tls: TlsConfig::default(),
            limits: Limits::default(),
            audit: AuditConfig::default(),
            predicates: Thresholds::default(),
            alerts: AlertsConfig::default(),
            commitments: crate::commitments::demo_matters(),
            metrics: MetricsConfig::default(),
            departments: BTreeMap::new(),
            agencies: demo_agencies(),
        }
    }
}

impl Config {
    /// Reads a TOML file, applies `CIVEX_*` overrides and validates the result.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config: Config = toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source,
        })?;
        config.apply_env(|name| std::env::var(name).ok())?;
        config.validate()?;
        Ok(config)
    }

    /// Applies `CIVEX_NAME`, `CIVEX_LISTEN`, `CIVEX_DATA_DIR` and `CIVEX_STORAGE_URL`.
    pub fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        if let Some(name) = var("CIVEX_NAME") {
            self.name = name;
        }
        if let Some(listen) = var("CIVEX_LISTEN") {
            self.listen = listen.parse().map_err(|e| ConfigError::Env {
                name: "CIVEX_LISTEN",
                message: format!("{e}"),
            })?;
        }
        if let Some(dir) = var("CIVEX_DATA_DIR") {
            self.data_dir = dir.into();
        }
        if let Some(url) = var("CIVEX_STORAGE_URL") {
            self.storage = StorageConfig {
                engine: Engine::Postgres,
                url: Some(url),
            };
        }
        Ok(())
    }

    /// Checks what serde cannot: names, codes, rights.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        if self.name.is_empty() || !self.name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return invalid(format!("name {:?} must be letters, digits and '-'", self.name));
        }
        let l = &self.limits;
        match (self.storage.engine, &self.storage.url) {
            (Engine::Postgres, None) => return invalid("storage: the postgres engine needs a url".into()),
            (Engine::Embedded, Some(_)) => {
                return invalid("storage: a url is for engine = \"postgres\"".into());
            }
            _ => {}
        }
        if self.tls.certificate_days == 0 || self.tls.crl_days == 0 {
            return invalid("tls certificate_days and crl_days must be positive".into());
        }
        self.alerts.resolve()?;
        crate::commitments::validate_matters(&self.commitments).map_err(ConfigError::Invalid)?;
        if self.audit.checkpoint_every == 0 || self.audit.checkpoint_interval_ms == 0 {
            return invalid("audit checkpoint_every and checkpoint_interval_ms must be positive".into());
        }
        crate::witness::Witnesses::new(&self.audit).map_err(ConfigError::Invalid)?;
        if l.max_connections == 0
            || l.max_concurrent_streams == 0
            || l.max_message_bytes < 1024
            || l.max_attributes == 0
            || l.shutdown_grace_ms == 0
        {
            return invalid("limits must be positive (max_message_bytes at least 1024)".into());
        }
        for (code, source) in &self.departments {
            if code.parse::<civex_adapters::Department>().is_err() {
                return invalid(format!("departments: unknown department {code:?}"));
            }
            if let DepartmentConfig::Remote(r) = source
                && (r.deadline_ms == 0 || r.deadline_ms > l.adapter_deadline_ms || r.max_in_flight == 0)
            {
                return invalid(format!(
                    "departments.{code}: deadline_ms must be 1..={} and max_in_flight positive",
                    l.adapter_deadline_ms
                ));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for agency in &self.agencies {
            if !is_agency_code(&agency.code) {
                return invalid(format!(
                    "agency code {:?} must be 1-64 of a-z, 0-9 and '-'",
                    agency.code
                ));
            }
            if !seen.insert(&agency.code) {
                return invalid(format!("agency {} is listed twice", agency.code));
            }
            if !access::is_department_code(&agency.department) {
                return invalid(format!(
                    "agency {}: unknown department {:?}",
                    agency.code, agency.department
                ));
            }
            for right in &agency.rights {
                access::validate_right(right)
                    .map_err(|e| ConfigError::Invalid(format!("agency {}: {}", agency.code, e.message)))?;
            }
        }
        Ok(())
    }
}

fn right(scope: &str, purposes: &[&str]) -> AccessRight {
    AccessRight {
        scope: scope.into(),
        purposes: purposes.iter().map(|p| (*p).into()).collect(),
    }
}

fn agency(code: &str, name: &str, department: &str, roles: &[Role], rights: Vec<AccessRight>) -> AgencyConfig {
    AgencyConfig {
        code: code.into(),
        name: name.into(),
        department: department.into(),
        roles: roles.to_vec(),
        rights,
        rate: RateLimit::default(),
    }
}

/// The Qujing demo agencies, each with rights that fit its own work.
pub fn demo_agencies() -> Vec<AgencyConfig> {
    use Role::*;
    const SETTLE: &str = "hukou.settlement";
    const PERMIT: &str = "residence_permit.issue";
    const RETURN: &str = "hukou.return_rural";
    use crate::policy::purposes::{INVESTIGATION, RESTRICTED_POST};
    // The settlement authority may see every department's facts; land facts
    // never for settling in a town (clause 十五), only for permits and for
    // returning to the rural place of origin (clause 八).
    let mut psb: Vec<_> = ["ps.*", "edu.*", "hrss.*", "ca.*", "housing.*", "tax.*"]
        .into_iter()
        .map(|s| right(s, &[SETTLE, PERMIT]))
        .collect();
    psb.push(right("land.*", &[PERMIT, RETURN]));
    // Eligibility checks instead of certificates (clauses 四, 五, 八, 十二).
    psb.push(right("settlement.urban", &[SETTLE]));
    psb.push(right("settlement.join_kin", &[SETTLE]));
    psb.push(right("settlement.return_rural", &[RETURN]));
    psb.push(right("residence_permit.apply", &[PERMIT]));
    // Checks instead of the certificates the clean-up removed (DESIGN §15);
    // `ps.*`, `ca.*`, `housing.*` and `hrss.*` above cover those named so.
    psb.push(right("hukou.registered_in", &[SETTLE, PERMIT]));
    psb.push(right("kin.related", &[SETTLE]));
    psb.push(right("residence.months_at_least", &[SETTLE, PERMIT]));
    // Investigations: uses reach the citizen's history after 90 days (DESIGN §17).
    psb.push(right("ps.*", &[INVESTIGATION]));
    psb.push(right("hrss.employment.*", &[INVESTIGATION]));
    psb.push(right("housing.*", &[INVESTIGATION]));
    psb.push(right("ps.*", &[RETURN]));
    psb.push(right("housing.*", &[RETURN]));
    vec![
        agency(
            "qujing-psb",
            "曲靖市公安局 Qujing Public Security Bureau",
            "ps",
            &[Requester, DataSteward],
            psb,
        ),
        agency(
            "qujing-edu",
            "曲靖市教育局 Qujing Education Bureau",
            "edu",
            &[Requester, DataSteward],
            vec![
                right("edu.*", &["education.enrollment"]),
                right("exam.accompanying_child", &["education.enrollment"]),
                right("ps.identity.*", &["education.enrollment"]),
                right("ps.hukou.division", &["education.enrollment"]),
                right("ps.residence.*", &["education.enrollment"]),
                right("ps.residence_permit.*", &["education.enrollment"]),
                right("hrss.pension.contribution_years", &["education.enrollment"]),
                right("hrss.medical.contribution_years", &["education.enrollment"]),
                right("hukou.registered_in", &["education.enrollment"]),
                right("residence.months_at_least", &["education.enrollment"]),
                right("hrss.contributing", &["education.enrollment"]),
                // Hiring teachers (教师法 第十四条).
                right("ps.no_criminal_record", &[RESTRICTED_POST]),
            ],
        ),
        agency(
            "qujing-hrss",
            "曲靖市人力资源和社会保障局 Qujing HR and Social Security Bureau",
            "hrss",
            &[Requester, DataSteward],
            vec![
                right("hrss.*", &["social_insurance.transfer"]),
                right("ps.identity.*", &["social_insurance.transfer"]),
                right("ps.hukou.division", &["social_insurance.transfer"]),
                right("ps.residence.*", &["social_insurance.transfer"]),
                right("ps.alive", &["social_insurance.transfer"]),
            ],
        ),
        agency(
            "qujing-civil",
            "曲靖市民政局 Qujing Civil Affairs Bureau",
            "ca",
            &[Requester, DataSteward],
            vec![
                right("ca.*", &["social_assistance.review"]),
                right("hrss.employment.registered", &["social_assistance.review"]),
                right("hrss.unemployment.registered", &["social_assistance.review"]),
                right("housing.*", &["social_assistance.review"]),
                right("tax.iit.months_paid_last_12", &["social_assistance.review"]),
                right("ps.hukou.division", &["social_assistance.review"]),
                right("ps.alive", &["social_assistance.review"]),
                right("kin.related", &["social_assistance.review"]),
            ],
        ),
        agency(
            "qujing-housing",
            "曲靖市住房和城乡建设局 Qujing Housing Bureau",
            "housing",
            &[Requester, DataSteward],
            vec![
                right("housing.*", &["housing.guarantee"]),
                right("ps.hukou.division", &["housing.guarantee"]),
                right("ps.residence.*", &["housing.guarantee"]),
                right("ps.residence_permit.*", &["housing.guarantee"]),
                right("ca.dibao.receiving", &["housing.guarantee"]),
                right("hrss.employment.*", &["housing.guarantee"]),
                right("ca.means_test", &["housing.guarantee"]),
                right("hrss.contributing", &["housing.guarantee"]),
                right("residence.months_at_least", &["housing.guarantee"]),
            ],
        ),
        agency(
            "qujing-land",
            "曲靖市国土资源局 Qujing Land and Resources Bureau",
            "land",
            &[Requester, DataSteward],
            vec![
                right("land.*", &["land.rights"]),
                right("ps.hukou.division", &["land.rights"]),
                right("ps.hukou.collective", &["land.rights"]),
                right("ps.residence.*", &["land.rights"]),
            ],
        ),
        agency(
            "qujing-tax",
            "曲靖市税务局 Qujing Tax Bureau",
            "tax",
            &[Requester, DataSteward],
            vec![right("tax.*", &["tax.admin"])],
        ),
        agency(
            "qujing-portal",
            "曲靖市政务服务中心 Qujing Government Service Centre",
            "other",
            &[ConsentRegistrar],
            vec![],
        ),
        agency(
            "qujing-audit",
            "曲靖市审计局 Qujing Audit Bureau",
            "other",
            &[Auditor],
            vec![],
        ),
        agency("qujing-admin", "civex administration", "other", &[Admin], vec![]),
    ]
}

/// Codes of the demo agencies, for `civex certs init`.
pub fn demo_agency_codes() -> Vec<String> {
    demo_agencies().into_iter().map(|a| a.code).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_config_is_valid_and_round_trips_through_toml() {
        let config = Config::default();
        config.validate().unwrap();
        let text = toml::to_string(&config).unwrap();
        assert_eq!(toml::from_str::<Config>(&text).unwrap(), config);
    }

    #[test]
    fn environment_overrides_apply() {
        let mut config = Config::default();
        config
            .apply_env(|name| match name {
                "CIVEX_LISTEN" => Some("127.0.0.1:6000".into()),
                "CIVEX_DATA_DIR" => Some("/tmp/x".into()),
                _ => None,
            })
            .unwrap();
        assert_eq!(config.listen.port(), 6000);
        assert_eq!(config.data_dir, PathBuf::from("/tmp/x"));
        let bad = config.apply_env(|name| (name == "CIVEX_LISTEN").then(|| "nowhere".into()));
        assert!(matches!(bad, Err(ConfigError::Env { .. })));
    }

    #[test]
    fn the_storage_url_selects_the_postgres_engine_and_each_engine_is_checked() {
        let mut config = Config::default();
        config
            .apply_env(|name| (name == "CIVEX_STORAGE_URL").then(|| "postgres://civex@db/civex".into()))
            .unwrap();
        assert_eq!(config.storage.engine, Engine::Postgres);
        config.validate().unwrap();
        let parsed: Config = toml::from_str("[storage]\nengine = \"postgres\"\nurl = \"postgres://x@y/z\"\n").unwrap();
        assert_eq!(parsed.storage.url.as_deref(), Some("postgres://x@y/z"));
        config.storage.url = None;
        assert!(config.validate().unwrap_err().to_string().contains("needs a url"));
        config.storage = StorageConfig {
            engine: Engine::Embedded,
            url: Some("postgres://x@y/z".into()),
        };
        assert!(config.validate().unwrap_err().to_string().contains("postgres"));
    }

    #[test]
    fn land_facts_can_never_be_granted_for_settling_in_a_town() {
        let mut config = Config::default();
        config.agencies[0].rights.push(AccessRight {
            scope: "land.contract_rights.held".into(),
            purposes: vec!["hukou.settlement".into()],
        });
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("十五"), "{err}");
    }
}
