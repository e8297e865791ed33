//! The tamper-evident audit log: every call to the gateway, allowed or
//! denied, is appended and made durable before its answer leaves.
//!
//! The log is an RFC 9162 Merkle tree of encoded `AuditRecord`s with signed
//! C2SP checkpoints, so standard transparency tooling can check it. Raw
//! citizen IDs never enter it: a record carries the citizen's pseudonym.
//! This crate knows nothing of gRPC: the gateway turns its errors into
//! statuses and its entries into answers.
//!
//! # Layout
//! - [`merkle`]: RFC 9162 hashing and proofs; pure, no IO.
//! - [`checkpoint`]: C2SP signed-note checkpoints.
//! - [`keys`]: the gateway's Ed25519 signing key and its verifier key.
//! - [`pseudonym`]: HMAC pseudonyms of citizen IDs.
//! - [`clock`]: time as the log (and the gateway) sees it, injectable.
//! - [`store`]: the [`LogStore`] trait every storage engine implements, and its [`Batch`].
//! - [`embedded`]: the embedded engine, in sled.
//! - [`writer`]: the single group-commit writer.
//! - [`verify`]: the whole tree recomputed from the store.
//! - [`search`]: auditors' searches over the store's indices.
//! - [`AuditLog`]: appends through the writer, reads straight from the store.

pub mod checkpoint;
pub mod clock;
pub mod embedded;
pub mod keys;
pub mod merkle;
pub mod pseudonym;
pub mod search;
pub mod store;
pub mod verify;
pub mod writer;

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
        mpsc,
    },
    time::{Instant, SystemTime},
};

use civex_proto::v1::AuditRecord;
use prost::Message;
use tokio::sync::{oneshot, watch};

use self::{
    clock::{Clock, system_time},
    keys::{Signer, Verifier},
    merkle::{Hash, ProofError},
    writer::{Msg, Pending, Tip, Writer},
};
pub use self::{
    pseudonym::Pseudonymizer,
    store::{LogStore, RefusalCount, StoreError},
    verify::{Verified, VerifyError, verify},
    writer::{Appended, Overruled, WriterConfig},
};

/// Why the log could not record or answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuditError {
    #[error("audit log cannot be written: {0}")]
    Unavailable(String),
    #[error("audit log storage: {0}")]
    Storage(String),
    #[error("audit log is inconsistent: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Verify(#[from] VerifyError),
    #[error(transparent)]
    Proof(#[from] ProofError),
    #[error("cannot use the pseudonym key {path}: {cause}")]
    PseudonymKey { path: PathBuf, cause: String },
}

impl From<StoreError> for AuditError {
    fn from(e: StoreError) -> AuditError {
        match e {
            StoreError::Unavailable(cause) => AuditError::Unavailable(cause),
            StoreError::Storage(cause) => AuditError::Storage(cause),
        }
    }
}

/// The action of a consent withdrawal's record: the log applies the
/// withdrawal itself, in log order (and again at start, from its records).
pub const WITHDRAWAL_ACTION: &str = "ConsentService/Revoke";

/// What the writer asks of the consents whose uses it records, and tells
/// them. It sits between the log and the consent store, so that neither
/// reaches into the other: the log orders uses against withdrawals, and a
/// withdrawal takes effect only once its record is durable.
pub trait UseLedger: Send + Sync + 'static {
    /// Whether the consent `consent_id` has been withdrawn.
    fn withdrawn(&self, consent_id: &str) -> Result<bool, String>;

    /// Withdraws `consent_id` as of `at`, whose withdrawal the log has made
    /// durable; a consent already withdrawn keeps its first time.
    fn withdraw(&self, consent_id: &str, at: SystemTime) -> Result<(), String>;

    /// The log size up to which every recorded withdrawal has been applied
    /// (0 for a new ledger). Durable with the next [`UseLedger::flush`].
    fn applied(&self) -> Result<u64, String>;

    /// Moves [`UseLedger::applied`] forward.
    fn set_applied(&self, size: u64) -> Result<(), String>;

    /// Drops what was not made durable, after a failed write (the writer
    /// discards the log store at the same time).
    fn discard(&self) {}

    /// Opens the ledger again from disk after [`UseLedger::discard`].
    fn reopen(&self) -> Result<(), String> {
        Ok(())
    }

    /// Makes every use and withdrawal counted so far durable. The durable
    /// writer calls it once per batch before the batch's records are
    /// written, so a use or withdrawal is durable once its call is answered.
    fn flush(&self) -> Result<(), String>;
}

/// One call's record with what the log does with it.
#[derive(Debug, Clone, Default)]
pub struct Entry {
    pub record: AuditRecord,
    /// If the record allows a use of these consents, refuse it when one was
    /// withdrawn before the record's place in the log.
    pub consent_uses: Vec<String>,
    /// The record withdraws this consent: applied once it is durable.
    pub withdrawal: Option<String>,
    /// Sign a checkpoint that includes this record.
    pub checkpoint: bool,
}

/// Applies the withdrawals recorded after the ledger's watermark: those a
/// crash may have cut off between the record and the consent store.
pub(crate) fn replay_withdrawals(store: &dyn LogStore, ledger: &dyn UseLedger, size: u64) -> Result<(), AuditError> {
    let ledger_error = |e: String| AuditError::Storage(format!("consent ledger: {e}"));
    let from = ledger.applied().map_err(ledger_error)?.min(size);
    for index in from..size {
        let leaf = store
            .leaf(index)?
            .ok_or_else(|| AuditError::Corrupt(format!("record {index} is missing")))?;
        let record = AuditRecord::decode(leaf.as_slice()).map_err(|e| AuditError::Corrupt(e.to_string()))?;
        if record.action == WITHDRAWAL_ACTION
            && record.decision == civex_proto::v1::Decision::Allow as i32
            && !record.consent_id.is_empty()
        {
            let at = record
                .time
                .as_ref()
                .and_then(system_time)
                .unwrap_or(std::time::UNIX_EPOCH);
            ledger.withdraw(&record.consent_id, at).map_err(ledger_error)?;
        }
    }
    if from < size {
        ledger.set_applied(size).map_err(ledger_error)?;
        ledger.flush().map_err(ledger_error)?;
    }
    Ok(())
}

/// The time of a stored record.
pub(crate) fn record_time(store: &dyn LogStore, index: u64) -> Result<Option<SystemTime>, AuditError> {
    let Some(leaf) = store.leaf(index)? else {
        return Ok(None);
    };
    let record = AuditRecord::decode(leaf.as_slice()).map_err(|e| AuditError::Corrupt(e.to_string()))?;
    Ok(record.time.as_ref().and_then(system_time))
}

/// Recomputes the whole tree from the store's records, refusing it if it
/// does not match every signed checkpoint, and reads what the writer
/// continues from.
pub(crate) fn load(store: &dyn LogStore, verifier: &Verifier) -> Result<(Verified, Tip), AuditError> {
    let verified = verify(store, verifier)?;
    let last_time = match verified.size {
        0 => std::time::UNIX_EPOCH,
        n => record_time(store, n - 1)?.unwrap_or(std::time::UNIX_EPOCH),
    };
    let refusals = store
        .refusals()?
        .into_iter()
        .map(|r| ((r.agency, r.reason), r.count))
        .collect::<HashMap<_, _>>();
    let tip = Tip {
        frontier: verified.frontier.clone(),
        last_time,
        refusals,
    };
    Ok((verified, tip))
}

/// The audit log: appends through the writer thread, reads straight from the store.
pub struct AuditLog {
    tx: Mutex<Option<mpsc::Sender<Msg>>>,
    store: Arc<dyn LogStore>,
    committed: Arc<AtomicU64>,
    healthy: watch::Receiver<bool>,
    verifier: Verifier,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl AuditLog {
    /// Opens the log kept in `store`, recomputing the whole tree from its
    /// records and refusing to start if it does not match the last signed
    /// checkpoint. Uses are re-checked against and flushed with `ledger`.
    pub fn open(
        store: Arc<dyn LogStore>,
        signer: Arc<Signer>,
        clock: Arc<dyn Clock>,
        ledger: Arc<dyn UseLedger>,
        config: WriterConfig,
    ) -> Result<(AuditLog, Verified), AuditError> {
        let verifier = Verifier::parse(&signer.verifier_key()).map_err(|e| AuditError::Corrupt(e.to_string()))?;
        let (verified, tip) = load(store.as_ref(), &verifier)?;
        replay_withdrawals(store.as_ref(), ledger.as_ref(), verified.size)?;
        let committed = Arc::new(AtomicU64::new(verified.size));
        let (healthy_tx, healthy) = watch::channel(true);
        let writer = Writer {
            store: store.clone(),
            verifier: verifier.clone(),
            broken: false,
            tip,
            committed: committed.clone(),
            last_checkpoint: (verified.latest.as_ref().map_or(0, |c| c.size), Instant::now()),
            signer,
            clock,
            ledger,
            unapplied: HashMap::new(),
            healthy: healthy_tx,
            config,
        };
        let (tx, rx) = mpsc::channel();
        let handle = std::thread::Builder::new()
            .name("civex-audit".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| AuditError::Unavailable(e.to_string()))?;
        let log = AuditLog {
            tx: Mutex::new(Some(tx)),
            store,
            committed,
            healthy,
            verifier,
            writer: Mutex::new(Some(handle)),
        };
        Ok((log, verified))
    }

    /// Appends `entry`'s record and waits until it is durable.
    pub async fn append(&self, entry: Entry) -> Result<Appended, AuditError> {
        let (reply, answer) = oneshot::channel();
        let pending = Pending { entry, reply };
        let sent = match &*self.tx.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(tx) => tx.send(Msg::Append(Box::new(pending))).is_ok(),
            None => false,
        };
        if !sent {
            return Err(AuditError::Unavailable("the audit log is closed".into()));
        }
        answer
            .await
            .map_err(|_| AuditError::Unavailable("the audit writer stopped".into()))?
    }

    /// Flushes, writes a final checkpoint and stops the writer.
    pub async fn close(&self) {
        let tx = self.tx.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(tx) = tx {
            let (done, wait) = oneshot::channel();
            if tx.send(Msg::Close(done)).is_ok() {
                let _ = wait.await;
            }
        }
        let handle = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(handle) = handle {
            let _ = tokio::task::spawn_blocking(move || handle.join()).await;
        }
    }

    /// Whether the last write succeeded; watch it to drive health.
    pub fn health(&self) -> watch::Receiver<bool> {
        self.healthy.clone()
    }

    /// The number of durable records.
    pub fn size(&self) -> u64 {
        self.committed.load(Ordering::Acquire)
    }

    /// The verifier of the gateway key that signs checkpoints.
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    pub(crate) fn store(&self) -> &dyn LogStore {
        self.store.as_ref()
    }

    /// The stored leaf bytes at `index`, if durable.
    pub fn leaf(&self, index: u64) -> Result<Option<Vec<u8>>, AuditError> {
        if index >= self.size() {
            return Ok(None);
        }
        Ok(self.store.leaf(index)?)
    }

    /// Stored node lookups for the Merkle functions; a missing node is an
    /// error (the tree is incomplete).
    fn nodes(&self) -> impl FnMut(u32, u64) -> Result<Hash, AuditError> + '_ {
        move |level, index| {
            self.store
                .node(level, index)?
                .ok_or(AuditError::Corrupt(format!("node ({level}, {index}) is missing")))
        }
    }

    /// The root of the tree at `size` (at most the durable size).
    pub fn root(&self, size: u64) -> Result<Hash, AuditError> {
        self.check_size(size)?;
        merkle::root(&mut self.nodes(), size)
    }

    /// An inclusion proof for `index` in the tree of `size`.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, AuditError> {
        self.check_size(size)?;
        Ok(merkle::inclusion_proof(&mut self.nodes(), index, size)??)
    }

    /// A consistency proof between the trees of `first` and `second` leaves.
    pub fn consistency_proof(&self, first: u64, second: u64) -> Result<Vec<Hash>, AuditError> {
        self.check_size(second)?;
        Ok(merkle::consistency_proof(&mut self.nodes(), first, second)??)
    }

    fn check_size(&self, size: u64) -> Result<(), AuditError> {
        let have = self.size();
        if size > have {
            return Err(AuditError::Proof(ProofError::IndexOutOfRange {
                index: size,
                size: have + 1,
            }));
        }
        Ok(())
    }

    /// Refused requests per agency and reason, most first.
    pub fn report(&self) -> Result<Vec<RefusalCount>, AuditError> {
        let mut rows = self.store.refusals()?;
        rows.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| (&a.agency, &a.reason).cmp(&(&b.agency, &b.reason)))
        });
        Ok(rows)
    }
}
