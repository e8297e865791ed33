//! The storage seam: every piece of persistent state behind a trait, and
//! the engines that implement them. The request path sees only the traits.
//!
//! | state | trait |
//! |---|---|
//! | agencies | [`AgencyStore`] |
//! | issued certificates and their revocations | [`CertificateStore`] |
//! | consents and their uses | [`ConsentStore`] (and the log's [`UseLedger`]) |
//! | the audit log and its checkpoints | [`civex_audit::LogStore`] |
//! | the log's search indexes and refusal counters | [`civex_audit::IndexStore`] |
//! | departments' registries | [`civex_adapters::RegistryStore`] |
//! | each gateway's calls per agency, for shared quotas | [`LoadStore`] |
//! | alerts, the watch list, cases, and how far the alert rules have run | [`OversightStore`] |
//! | notification-and-commitment records and their verification | [`CommitmentStore`] |
//! | objections to facts, and the corrections sent for them | [`CorrectionStore`] |
//!
//! Each trait says what must hold, not how: the embedded engine keeps
//! consent uses exact by counting them in the audit writer (the log is
//! their source of truth), a database engine with a conditional `UPDATE`. State added later (alerts, cases, commitments,
//! objections) gets a trait of its own here and a field in [`Stores`].
//!
//! # Layout
//! - [`embedded`]: the embedded engine (sled and the log's tiles in the data
//!   directory); the only module of the gateway that names sled.
//! - [`postgres`]: the PostgreSQL engine, every piece of state in one
//!   database that many gateways share; the only module that names tokio-postgres.

pub mod embedded;
pub mod postgres;

use std::{
    collections::{BTreeMap, HashMap},
    path::Path,
    sync::Arc,
    time::SystemTime,
};

use async_trait::async_trait;
use civex_adapters::{CitizenId, RegistryStore};
use civex_audit::{IndexStore, LogEngine, LogStore};
use civex_proto::v1::{
    Alert, Case, Commitment, CommitmentState, Consent, Correction, Objection, ObjectionState, WatchEntry,
};
use serde::{Deserialize, Serialize};

use crate::{
    config::{Engine, StorageConfig},
    consent::ConsentError,
    policy::access::Agency,
};

/// Why a store could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct StoreError(pub String);

impl StoreError {
    pub fn new(e: impl std::fmt::Display) -> StoreError {
        StoreError(e.to_string())
    }
}

/// Every store of one deployment, opened by one engine.
#[derive(Clone)]
pub struct Stores {
    pub agencies: Arc<dyn AgencyStore>,
    pub certificates: Arc<dyn CertificateStore>,
    pub consents: Arc<dyn ConsentStore>,
    /// The audit log, with the consents as its writer counts their uses.
    pub log: LogEngine,
    pub audit_index: Arc<dyn IndexStore>,
    pub registries: Arc<dyn RegistryStore>,
    pub oversight: Arc<dyn OversightStore>,
    pub commitments: Arc<dyn CommitmentStore>,
    pub corrections: Arc<dyn CorrectionStore>,
    /// The counter of changes other gateways make, for a store they share;
    /// `None` when this gateway is the store's only writer.
    pub changes: Option<Arc<dyn ChangeFeed>>,
    /// Where the gateways sharing the store publish their calls per agency,
    /// to divide each agency's quota between them; `None` when this
    /// gateway is the only one.
    pub load: Option<Arc<dyn LoadStore>>,
}

/// Opens the stores of the data directory `data_dir` (the embedded engine).
pub fn open(data_dir: &Path) -> Result<Stores, StoreError> {
    embedded::open(data_dir)
}

/// Opens the stores `storage` names: the embedded engine's in `data_dir`,
/// or the deployment's database.
pub fn open_engine(storage: &StorageConfig, data_dir: &Path) -> Result<Stores, StoreError> {
    match (storage.engine, &storage.url) {
        (Engine::Postgres, Some(url)) => postgres::open(url),
        (Engine::Postgres, None) => Err(StoreError("the postgres engine needs a url".into())),
        (Engine::Embedded, _) => embedded::open(data_dir),
    }
}

/// Opens only the audit log of `data_dir`, for tools that read a stopped
/// gateway's log (`civex audit verify --data`).
pub fn open_log(data_dir: &Path) -> Result<Arc<dyn LogStore>, StoreError> {
    embedded::open_log(data_dir)
}

/// Opens only the log's search indexes of `data_dir`, for `civex audit reindex`.
pub fn open_log_index(data_dir: &Path) -> Result<Arc<dyn IndexStore>, StoreError> {
    embedded::open_log_index(data_dir)
}

/// Opens only the registries of `data_dir`, for `civex import`.
pub fn open_registries(data_dir: &Path) -> Result<Arc<dyn RegistryStore>, StoreError> {
    embedded::open_registries(data_dir)
}

/// A counter that moves with every change of agencies or revocations,
/// made by any gateway sharing the store.
#[async_trait]
pub trait ChangeFeed: Send + Sync {
    async fn version(&self) -> Result<i64, StoreError>;
}

/// What the live gateways of a deployment published about their calls.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Load {
    /// Gateways that published within the last few seconds, this one included.
    pub gateways: u32,
    /// Agency code → calls per second over all those gateways.
    pub calls: HashMap<String, u64>,
}

/// Each gateway's recent calls per agency, published for the others.
#[async_trait]
pub trait LoadStore: Send + Sync {
    /// Replaces what `gateway` published before with `calls` (agency code →
    /// calls per second, counted before its quota is applied) and returns
    /// the deployment's [`Load`] now.
    async fn publish(&self, gateway: &str, calls: &[(String, u64)]) -> Result<Load, StoreError>;
}

/// The agencies, as administrators registered and changed them.
#[async_trait]
pub trait AgencyStore: Send + Sync {
    /// Every stored agency.
    async fn list(&self) -> Result<Vec<Agency>, StoreError>;

    /// Stores each of `agencies` under its code, replacing what was there,
    /// all durable together on return.
    async fn put(&self, agencies: &[Agency]) -> Result<(), StoreError>;

    /// Stores `agencies` if the store holds none, and returns what it holds
    /// then. A store that gateways share seeds once however many start
    /// together; this default is for a store with one writer.
    async fn seed(&self, agencies: &[Agency]) -> Result<Vec<Agency>, StoreError> {
        let known = self.list().await?;
        if !known.is_empty() {
            return Ok(known);
        }
        self.put(agencies).await?;
        Ok(agencies.to_vec())
    }
}

/// A certificate's revocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    /// Lower-case hex.
    pub serial: String,
    /// Unix seconds.
    pub revoked_at: i64,
    pub reason: String,
}

/// A certificate the CA issued to an agency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Certificate {
    /// Lower-case hex.
    pub serial: String,
    pub agency: String,
    /// End of validity, Unix seconds; `None` for one registered before it was kept.
    pub not_after: Option<i64>,
}

/// The certificates the gateway issued, and those revoked.
#[async_trait]
pub trait CertificateStore: Send + Sync {
    /// Registers an issued certificate; durable on return.
    async fn issued(&self, certificate: &Certificate) -> Result<(), StoreError>;

    /// The agency whose certificate has `serial`, if the gateway issued it.
    async fn agency_of(&self, serial: &str) -> Result<Option<String>, StoreError>;

    /// Every certificate registered for `agency`, by serial.
    async fn issued_to(&self, agency: &str) -> Result<Vec<Certificate>, StoreError>;

    /// Every revocation.
    async fn list(&self) -> Result<Vec<Revocation>, StoreError>;

    /// Records `revocation` unless its serial was revoked before (the first
    /// time is kept); durable on return.
    async fn revoke(&self, revocation: &Revocation) -> Result<(), StoreError>;
}

/// Citizens' consents and their uses.
#[async_trait]
pub trait ConsentStore: Send + Sync {
    /// Stores a consent made by [`crate::consent::sign`]; durable on return.
    async fn insert(&self, consent: &Consent) -> Result<(), ConsentError>;

    /// The consent with `id`.
    async fn get(&self, id: &str) -> Result<Consent, ConsentError>;

    /// Every consent registered for `citizen`.
    async fn list(&self, citizen: &CitizenId) -> Result<Vec<Consent>, ConsentError>;
}

/// An alert as the rules found it, with the key they count it by (an
/// official, a certificate, a citizen's pseudonym, an agency).
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub key: String,
    pub alert: Alert,
}

/// Alerts, the auditors' watch list and cases (DESIGN §13), and how far the
/// alert rules have run over the log.
///
/// An alert has two writers that never overwrite each other: the rules
/// (its finding: indices, count, summary) and auditors (its state, case
/// and note).
#[async_trait]
pub trait OversightStore: Send + Sync {
    /// The log size through which the alert rules have run.
    async fn evaluated(&self) -> Result<u64, StoreError>;

    /// Records what the rules found in the records `from..to`, if they had
    /// run through exactly `from`; otherwise another gateway ran them first,
    /// nothing is written and the answer is `false`. Each of `findings` is
    /// an alert new or grown: a grown alert keeps its state, case and note.
    async fn advance(&self, from: u64, to: u64, findings: &[Finding]) -> Result<bool, StoreError>;

    async fn alert(&self, id: &str) -> Result<Option<Alert>, StoreError>;

    /// Alerts in id order (the order they were opened in), after `after`, at most `limit`.
    async fn alerts(&self, after: &str, limit: usize) -> Result<Vec<Alert>, StoreError>;

    /// Alerts opened at or after `since`, with their keys, for the rules.
    async fn alerts_since(&self, since: std::time::SystemTime) -> Result<Vec<Finding>, StoreError>;

    /// Puts a citizen on the watch list, replacing an earlier entry.
    async fn watch(&self, entry: &WatchEntry) -> Result<(), StoreError>;

    /// Takes a citizen off the watch list; what was there.
    async fn unwatch(&self, citizen_ref: &str) -> Result<Option<WatchEntry>, StoreError>;

    async fn watched(&self) -> Result<Vec<WatchEntry>, StoreError>;

    /// Stores `case`, new when `events_before` is `None`, else replacing
    /// the stored case if it still has `events_before` events (no other
    /// auditor changed it since it was read); and, together with it, the
    /// state, case and note of each of `alerts`, each of which must still be
    /// open. `false`, and nothing written, when the case or an alert changed.
    async fn put_case(&self, case: &Case, events_before: Option<usize>, alerts: &[Alert]) -> Result<bool, StoreError>;

    /// Sets the state, case and note of each of `alerts` if each is still
    /// open; `false`, and nothing written, if one is not.
    async fn set_alerts(&self, alerts: &[Alert]) -> Result<bool, StoreError>;

    async fn case(&self, id: &str) -> Result<Option<Case>, StoreError>;

    /// Cases in id order after `after`, at most `limit`.
    async fn cases(&self, after: &str, limit: usize) -> Result<Vec<Case>, StoreError>;
}

/// A commitment (告知承诺, DESIGN §15) as the gateway keeps it: the answer its
/// agency sees, and what the later check needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredCommitment {
    /// The answer, as `GetCommitment` returns it (its state and settling time
    /// are the store's current ones).
    #[serde(with = "encoded")]
    pub commitment: Commitment,
    /// The recording agency: the only one that may read it, and the grantee
    /// of the consent the check runs under.
    pub agency: String,
    /// The citizen's ID, kept for the check as consents keep it; never logged.
    pub citizen_id: String,
    /// The citizen's pseudonym, as the log names them.
    pub citizen_ref: String,
    pub params: BTreeMap<String, String>,
    pub consent_id: String,
    /// The official who recorded it.
    pub operator: String,
}

impl StoredCommitment {
    pub fn id(&self) -> &str {
        &self.commitment.commitment_id
    }

    pub fn state(&self) -> CommitmentState {
        self.commitment.state()
    }
}

/// A prost message as its encoding, for serde.
mod encoded {
    use prost::Message;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer, M: Message>(m: &M, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&m.encode_to_vec())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>, M: Message + Default>(d: D) -> Result<M, D::Error> {
        let bytes = Vec::<u8>::deserialize(d)?;
        M::decode(bytes.as_slice()).map_err(serde::de::Error::custom)
    }
}

/// Which of an agency's commitments a listing wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitmentFilter {
    /// Only those in this state.
    pub state: Option<CommitmentState>,
    /// Only those recorded at or after this time.
    pub since: SystemTime,
}

/// Commitments and their verification. Ids are in the order commitments
/// were recorded; a commitment leaves `PENDING` once, by [`CommitmentStore::settle`].
#[async_trait]
pub trait CommitmentStore: Send + Sync {
    /// Stores a new commitment; durable on return.
    async fn insert(&self, commitment: &StoredCommitment) -> Result<(), StoreError>;

    async fn get(&self, id: &str) -> Result<Option<StoredCommitment>, StoreError>;

    /// `agency`'s commitments that pass `filter`, in id order after `after`, at most `limit`.
    async fn list(
        &self,
        agency: &str,
        filter: CommitmentFilter,
        after: &str,
        limit: usize,
    ) -> Result<Vec<StoredCommitment>, StoreError>;

    /// Pending commitments whose `verify_after` has come by `now` and that
    /// no gateway holds a claim on, earliest due first, at most `limit`.
    async fn due(&self, now: SystemTime, limit: usize) -> Result<Vec<StoredCommitment>, StoreError>;

    /// Claims a due commitment for verification until `until`, if it is
    /// still pending and no claim on it lasts past `now`: of gateways
    /// sharing the store, one verifies it. A claim that lapses (its gateway
    /// stopped) lets another try.
    async fn claim(&self, id: &str, now: SystemTime, until: SystemTime) -> Result<bool, StoreError>;

    /// Moves a pending commitment to `state` at `at`; durable on return.
    /// `false`, and nothing written, if it had left `PENDING` already.
    async fn settle(&self, id: &str, state: CommitmentState, at: SystemTime) -> Result<bool, StoreError>;

    /// Whether a commitment of the citizen `citizen_ref` that `agency` recorded was found false.
    async fn found_false(&self, agency: &str, citizen_ref: &str) -> Result<bool, StoreError>;
}

/// An objection (校核纠错, DESIGN §16) as the gateway keeps it: with the
/// citizen's ID and statement, which only the holding department's steward sees.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredObjection {
    #[serde(with = "encoded")]
    pub objection: Objection,
    /// The citizen's pseudonym, as the log names them.
    pub citizen_ref: String,
}

impl StoredObjection {
    pub fn id(&self) -> &str {
        &self.objection.objection_id
    }
}

/// A correction as sent to `agency`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredCorrection {
    #[serde(with = "encoded")]
    pub correction: Correction,
    pub agency: String,
}

/// Objections and the corrections they sent. An objection is resolved once,
/// together with its corrections.
#[async_trait]
pub trait CorrectionStore: Send + Sync {
    /// Stores a new objection; durable on return.
    async fn open(&self, objection: &StoredObjection) -> Result<(), StoreError>;

    async fn objection(&self, id: &str) -> Result<Option<StoredObjection>, StoreError>;

    /// Objections to `department`'s facts, in `state` if given, in id order after `after`, at most `limit`.
    async fn objections(
        &self,
        department: &str,
        state: Option<ObjectionState>,
        after: &str,
        limit: usize,
    ) -> Result<Vec<StoredObjection>, StoreError>;

    /// Stores `resolved` (an open objection, now resolved) and `corrections`
    /// together; `false`, and nothing written, if it was no longer open.
    async fn resolve(&self, resolved: &StoredObjection, corrections: &[StoredCorrection]) -> Result<bool, StoreError>;

    /// The corrections sent to `agency` at or after `since`, in id order after `after`, at most `limit`.
    async fn corrections(
        &self,
        agency: &str,
        since: SystemTime,
        after: &str,
        limit: usize,
    ) -> Result<Vec<StoredCorrection>, StoreError>;
}
