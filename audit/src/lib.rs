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
//! - [`keys`]: the gateway's Ed25519 signing key and its verifier key (and a witness's).
//! - [`pseudonym`]: HMAC pseudonyms of citizen IDs.
//! - [`clock`]: time as the log (and the gateway) sees it, injectable.
//! - [`store`]: the [`LogStore`] and [`IndexStore`] traits every storage engine implements.
//! - [`tiles`]: the embedded log: C2SP tlog-tiles and a journal, in files.
//! - [`embedded`]: the embedded search indexes, in sled.
//! - [`shared`]: a log several gateways append to: sequencing under the head
//!   lock, integration and checkpoint signing by whichever gateway takes the tree lock.
//! - [`writer`]: the single group-commit writer; it counts consent uses.
//! - [`index`]: the search indexes kept up with the log, off the answer's path.
//! - [`verify`]: the whole tree recomputed from the store.
//! - [`search`]: auditors' searches over the indexes and the log.
//! - [`witness`]: a C2SP tlog-witness, cosigning checkpoints consistent with the last it saw.
//! - [`AuditLog`]: appends through the writer, reads straight from the store.

pub mod checkpoint;
pub mod clock;
pub mod embedded;
pub mod index;
pub mod keys;
pub mod merkle;
pub mod pseudonym;
pub mod search;
pub mod shared;
pub mod store;
pub mod tiles;
pub mod tlog;
pub mod verify;
pub mod witness;
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

use civex_proto::v1::{AuditRecord, Decision};
use prost::Message;
use tokio::sync::{oneshot, watch};

use self::{
    checkpoint::Checkpoint,
    clock::{Clock, system_time},
    index::Indexer,
    keys::{Signer, Verifier},
    merkle::{Frontier, Hash, ProofError},
    shared::SharedLog,
    writer::{Local, Mode, Msg, Pending, Tip, Writer},
};
pub use self::{
    pseudonym::Pseudonymizer,
    store::{IndexStore, LogStore, RefusalCount, StoreError},
    verify::{Verified, VerifyError, verify},
    writer::{Appended, BatchObserver, Overruled, WriterConfig},
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

/// How a consent stands in the [`UseLedger`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Uses counted so far.
    pub uses: u64,
    /// The most uses allowed; 0 for no limit.
    pub max_uses: u64,
    pub withdrawn: bool,
    /// The log size through which this consent's uses and withdrawal are
    /// counted: a replay counts only the records at or after it.
    pub counted_through: u64,
}

/// What the writer asks of the consents whose uses it counts, and tells
/// them. It sits between the log and the consent store, so that neither
/// reaches into the other. The log is the source of truth: the writer
/// decides each use against the ledger's count and its own, in log order,
/// and a use or withdrawal exists once its record is durable; the ledger is
/// told afterwards and brought up to date from the log at start.
pub trait UseLedger: Send + Sync + 'static {
    /// How `consent_id` stands as of the last [`UseLedger::apply`].
    fn usage(&self, consent_id: &str) -> Result<Usage, String>;

    /// Counts `uses` (per consent) and `withdrawals` (a consent already
    /// withdrawn keeps its first time) of the log's records up to `size`
    /// and marks each consent counted through `size` (a consent already
    /// counted through `size` is left alone), then moves
    /// [`UseLedger::applied`] to `size`. Each consent's tally is written
    /// whole or not at all; nothing need be durable: at start the log is
    /// replayed from [`UseLedger::applied`], each record counted only for
    /// the consents not yet counted through it.
    fn apply(
        &self,
        uses: &HashMap<String, u64>,
        withdrawals: &HashMap<String, SystemTime>,
        size: u64,
    ) -> Result<(), String>;

    /// The log size up to which every use and withdrawal is applied (0 for a new ledger).
    fn applied(&self) -> Result<u64, String>;

    /// Makes what was applied durable.
    fn flush(&self) -> Result<(), String>;

    /// Drops what was not made durable, after a failed write (the writer
    /// discards the log store at the same time).
    fn discard(&self) {}

    /// Opens the ledger again from disk after [`UseLedger::discard`].
    fn reopen(&self) -> Result<(), String> {
        Ok(())
    }
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

/// Records applied to the ledger per write while replaying.
const REPLAY_CHUNK: u64 = 4096;

/// The record stored at `index`.
pub(crate) fn decode(store: &dyn LogStore, index: u64) -> Result<AuditRecord, AuditError> {
    let leaf = store
        .leaf(index)?
        .ok_or_else(|| AuditError::Corrupt(format!("record {index} is missing")))?;
    AuditRecord::decode(leaf.as_slice()).map_err(|e| AuditError::Corrupt(format!("record {index}: {e}")))
}

/// The uses and withdrawals one record counts, added to `uses` and `withdrawals`.
pub(crate) fn tally(
    record: &AuditRecord,
    uses: &mut HashMap<String, u64>,
    withdrawals: &mut HashMap<String, SystemTime>,
) {
    if record.decision != Decision::Allow as i32 {
        return;
    }
    for id in &record.consent_uses {
        *uses.entry(id.clone()).or_default() += 1;
    }
    if record.action == WITHDRAWAL_ACTION && !record.consent_id.is_empty() {
        let at = record
            .time
            .as_ref()
            .and_then(system_time)
            .unwrap_or(std::time::UNIX_EPOCH);
        withdrawals.entry(record.consent_id.clone()).or_insert(at);
    }
}

/// Brings the ledger up to date with the log: applies the uses and
/// withdrawals recorded after its watermark, those a crash cut off between
/// the record and the consent store, each only for a consent not yet
/// counted through it.
pub(crate) fn replay(store: &dyn LogStore, ledger: &dyn UseLedger, size: u64) -> Result<(), AuditError> {
    let ledger_error = |e: String| AuditError::Storage(format!("consent ledger: {e}"));
    let applied = ledger.applied().map_err(ledger_error)?;
    if applied > size {
        tracing::warn!(applied, size, "the consent ledger counts records the log does not hold");
    }
    let mut from = applied.min(size);
    let mut counted_through: HashMap<String, u64> = HashMap::new();
    while from < size {
        let to = size.min(from + REPLAY_CHUNK);
        let (mut uses, mut withdrawals) = (HashMap::new(), HashMap::new());
        for index in from..to {
            let mut record = decode(store, index)?;
            let mut counted = |id: &String| -> Result<bool, AuditError> {
                if let Some(through) = counted_through.get(id) {
                    return Ok(*through <= index);
                }
                // A consent the store lacks has nothing to count.
                let through = ledger.usage(id).map_or(u64::MAX, |u| u.counted_through);
                counted_through.insert(id.clone(), through);
                Ok(through <= index)
            };
            let mut keep = Vec::new();
            for id in std::mem::take(&mut record.consent_uses) {
                if counted(&id)? {
                    keep.push(id);
                }
            }
            record.consent_uses = keep;
            if record.action == WITHDRAWAL_ACTION && !counted(&record.consent_id)? {
                record.consent_id.clear();
            }
            tally(&record, &mut uses, &mut withdrawals);
        }
        ledger.apply(&uses, &withdrawals, to).map_err(ledger_error)?;
        from = to;
    }
    if applied < size {
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

/// What opening the log found.
#[derive(Debug, Clone)]
pub struct Opened {
    pub size: u64,
    pub latest: Option<Checkpoint>,
}

/// Stored node lookups for the Merkle functions; a missing node is an
/// error (the tree is incomplete).
fn nodes(store: &dyn LogStore) -> impl FnMut(u32, u64) -> Result<Hash, AuditError> + '_ {
    move |level, index| {
        store
            .node(level, index)?
            .ok_or(AuditError::Corrupt(format!("node ({level}, {index}) is missing")))
    }
}

/// Checks the latest signed checkpoint against the stored tree (a root
/// from O(log n) nodes; the engine checked the tail it replayed).
fn check_latest(store: &dyn LogStore, verifier: &Verifier) -> Result<Option<Checkpoint>, AuditError> {
    let Some((at, note)) = store.latest_checkpoint()? else {
        return Ok(None);
    };
    let size = store.tree_size()?;
    let cp = checkpoint::verify(&note, verifier).map_err(|e| VerifyError::Checkpoint(at, e))?;
    if cp.size > size {
        return Err(AuditError::Corrupt(format!(
            "the latest checkpoint is of {} records but the tree holds {size}",
            cp.size
        )));
    }
    if merkle::root(&mut nodes(store), cp.size)? != cp.root {
        return Err(VerifyError::CheckpointMismatch { size: cp.size, from: 0 }.into());
    }
    Ok(Some(cp))
}

/// Checks the latest checkpoint ([`check_latest`]) and reads what the
/// writer of a log of its own continues from. `civex audit verify` checks everything.
pub(crate) fn load(store: &dyn LogStore, verifier: &Verifier) -> Result<(Opened, Tip), AuditError> {
    let latest = check_latest(store, verifier)?;
    let size = store.size()?;
    let frontier = Frontier::load(&mut nodes(store), size)?;
    let last_time = match size {
        0 => std::time::UNIX_EPOCH,
        n => record_time(store, n - 1)?.unwrap_or(std::time::UNIX_EPOCH),
    };
    Ok((Opened { size, latest }, Tip { frontier, last_time }))
}

/// Where the log is, and who else writes it.
#[derive(Clone)]
pub enum LogEngine {
    /// The log of one gateway: its writer lays out the tree, signs the
    /// checkpoints and counts consent uses against `ledger`.
    Local {
        store: Arc<dyn LogStore>,
        ledger: Arc<dyn UseLedger>,
    },
    /// A log that several gateways append to ([`shared`]); consent uses
    /// are counted by the store, in the transaction that sequences their records.
    Shared(Arc<dyn SharedLog>),
}

impl LogEngine {
    /// The log's store, for reading.
    pub fn store(&self) -> Arc<dyn LogStore> {
        match self {
            LogEngine::Local { store, .. } => store.clone(),
            LogEngine::Shared(shared) => shared.clone(),
        }
    }
}

/// What the writer tells the background thread.
pub(crate) enum Background {
    /// Records up to `size` are durable; `checkpoint` if a checkpoint was signed.
    Committed {
        size: u64,
        checkpoint: bool,
    },
    Close(oneshot::Sender<()>),
}

/// What the background thread works on.
struct Work {
    store: Arc<dyn LogStore>,
    index: Arc<dyn IndexStore>,
    indexer: Arc<Mutex<Option<Indexer>>>,
    /// A shared log and the key its checkpoints are signed with: the tree
    /// is integrated here, when this gateway takes the lock.
    shared: Option<(Arc<dyn SharedLog>, Arc<Signer>)>,
}

impl Work {
    /// Opens the index if it is not yet (here, not before the gateway
    /// serves: searches read the log until then) and files records up to `to`.
    fn index(&self, to: u64) {
        if self.indexer.lock().unwrap_or_else(|p| p.into_inner()).is_none()
            && let Ok(size) = self.store.size()
        {
            match Indexer::open(self.index.clone(), size) {
                Ok(opened) => *self.indexer.lock().unwrap_or_else(|p| p.into_inner()) = Some(opened),
                Err(e) => tracing::warn!(cause = %e, "search index cannot be opened; searches read the log"),
            }
        }
        let mut indexer = self.indexer.lock().unwrap_or_else(|p| p.into_inner());
        let Some(indexer) = indexer.as_mut() else { return };
        // Another gateway may have filed records of a shared log.
        if self.shared.is_some()
            && let Err(e) = indexer.refresh()
        {
            tracing::warn!(cause = %e, "search index not read; searches read the log past it");
            return;
        }
        while indexer.size() < to {
            if let Err(e) = indexer.catch_up(self.store.as_ref(), to) {
                tracing::warn!(cause = %e, "search index not updated; searches read the log past it");
                return;
            }
        }
    }

    /// Writes the tiles of a log of its own, or integrates a shared log's
    /// tree if no other gateway is at it; `wait` for the lock at close.
    fn integrate(&self, wait: bool) -> bool {
        let result = match &self.shared {
            None => self.store.integrate().map_err(AuditError::from),
            Some((shared, signer)) => shared::integrate(shared.as_ref(), signer, wait).map(drop),
        };
        match result {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(cause = %e, "audit tree not integrated; the durable records wait for the next try");
                false
            }
        }
    }

    /// Whether a shared log holds records its tree does not yet cover.
    fn unintegrated(&self) -> bool {
        self.shared.as_ref().is_some_and(
            |(shared, _)| matches!((shared.size(), shared.tree_size()), (Ok(size), Ok(tree)) if tree < size),
        )
    }
}

/// Tiles are written, and a shared tree integrated, at most this often
/// (each integration syncs several files or rows, which would otherwise
/// compete with the log's own writes).
const INTEGRATE_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// The background thread: files index entries and integrates the store
/// (tiles, or a shared log's tree) after the writer has answered.
fn background(work: Work, rx: mpsc::Receiver<Background>) {
    let mut integrate = false;
    let mut integrated = Instant::now() - INTEGRATE_EVERY;
    loop {
        // A shared log is looked at every second: another gateway may have
        // sequenced records and stopped before integrating them.
        let wait = if integrate || work.shared.is_some() {
            INTEGRATE_EVERY.saturating_sub(integrated.elapsed())
        } else {
            std::time::Duration::from_secs(3600)
        };
        let first = match rx.recv_timeout(wait) {
            Ok(message) => Some(message),
            Err(mpsc::RecvTimeoutError::Timeout) => None,
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        };
        let mut to = 0;
        let mut close = None;
        for message in first.into_iter().chain(rx.try_iter()) {
            match message {
                Background::Committed { size, checkpoint } => {
                    to = to.max(size);
                    integrate |= checkpoint || work.shared.is_some();
                }
                Background::Close(done) => close = Some(done),
            }
        }
        work.index(to);
        let due = integrated.elapsed() >= INTEGRATE_EVERY;
        if due && (integrate || work.unintegrated()) || close.is_some() {
            integrated = Instant::now();
            if work.integrate(close.is_some()) {
                integrate = false;
            }
        }
        if let Some(done) = close {
            if let Err(e) = work.index.flush() {
                tracing::warn!(cause = %e, "search index not flushed; it is rebuilt from the log at start");
            }
            let _ = done.send(());
            return;
        }
    }
}

/// The audit log: appends through the writer thread, reads straight from the store.
pub struct AuditLog {
    tx: Mutex<Option<mpsc::Sender<Msg>>>,
    background: Mutex<Option<mpsc::Sender<Background>>>,
    store: Arc<dyn LogStore>,
    /// Set when other gateways append to the log too.
    shared: bool,
    index: Arc<dyn IndexStore>,
    /// `None` until the background thread has opened the index.
    indexer: Arc<Mutex<Option<Indexer>>>,
    committed: Arc<AtomicU64>,
    healthy: watch::Receiver<bool>,
    verifier: Verifier,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
    observer: Arc<std::sync::OnceLock<writer::BatchObserver>>,
}

impl AuditLog {
    /// Opens the log of `engine` with its search indexes in `index`,
    /// refusing to start if the stored tree does not match the last signed
    /// checkpoint; a log of one gateway's own brings its ledger up to date
    /// with the log's uses and withdrawals.
    pub fn open(
        engine: LogEngine,
        index: Arc<dyn IndexStore>,
        signer: Arc<Signer>,
        clock: Arc<dyn Clock>,
        config: WriterConfig,
    ) -> Result<(AuditLog, Opened), AuditError> {
        let verifier = Verifier::parse(&signer.verifier_key()).map_err(|e| AuditError::Corrupt(e.to_string()))?;
        let store = engine.store();
        let (opened, mode) = match engine {
            LogEngine::Local { store, ledger } => {
                let (opened, tip) = load(store.as_ref(), &verifier)?;
                replay(store.as_ref(), ledger.as_ref(), opened.size)?;
                let local = Local {
                    tip,
                    last_checkpoint: (opened.latest.as_ref().map_or(0, |c| c.size), Instant::now()),
                    ledger,
                    unapplied: Default::default(),
                    applied: opened.size,
                };
                (opened, Mode::Local(local))
            }
            LogEngine::Shared(shared) => {
                let latest = check_latest(shared.as_ref(), &verifier)?;
                let opened = Opened {
                    size: shared.size()?,
                    latest,
                };
                (opened, Mode::Shared(shared))
            }
        };
        let work = Work {
            store: store.clone(),
            index: index.clone(),
            indexer: Arc::new(Mutex::new(None)),
            shared: match &mode {
                Mode::Local(_) => None,
                Mode::Shared(shared) => Some((shared.clone(), signer.clone())),
            },
        };
        let shared = work.shared.is_some();
        let indexer = work.indexer.clone();
        let committed = Arc::new(AtomicU64::new(opened.size));
        let (healthy_tx, healthy) = watch::channel(true);
        let (background_tx, background_rx) = mpsc::channel();
        // Catch the index up and integrate what the journal replayed.
        let _ = background_tx.send(Background::Committed {
            size: opened.size,
            checkpoint: true,
        });
        let observer = Arc::new(std::sync::OnceLock::new());
        let writer = Writer {
            store: store.clone(),
            mode,
            verifier: verifier.clone(),
            broken: false,
            committed: committed.clone(),
            signer,
            clock,
            background: background_tx.clone(),
            healthy: healthy_tx,
            config,
            observer: observer.clone(),
        };
        let (tx, rx) = mpsc::channel();
        let spawn = |name: &str, run: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name.into())
                .spawn(run)
                .map_err(|e| AuditError::Unavailable(e.to_string()))
        };
        let threads = vec![
            spawn("civex-audit", Box::new(move || writer.run(rx)))?,
            spawn("civex-audit-bg", Box::new(move || background(work, background_rx)))?,
        ];
        let log = AuditLog {
            tx: Mutex::new(Some(tx)),
            background: Mutex::new(Some(background_tx)),
            store,
            shared,
            index,
            indexer,
            committed,
            healthy,
            verifier,
            threads: Mutex::new(threads),
            observer,
        };
        Ok((log, opened))
    }

    /// Has `observe` told of every batch made durable from now on (once; a
    /// second observer is refused and handed back).
    pub fn observe_batches(&self, observe: BatchObserver) -> Result<(), BatchObserver> {
        self.observer.set(observe)
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

    /// Flushes, writes a final checkpoint, brings the indexes and tiles up
    /// to date and stops.
    pub async fn close(&self) {
        let tx = self.tx.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(tx) = tx {
            let (done, wait) = oneshot::channel();
            if tx.send(Msg::Close(done)).is_ok() {
                let _ = wait.await;
            }
        }
        let background = self.background.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(background) = background {
            let (done, wait) = oneshot::channel();
            if background.send(Background::Close(done)).is_ok() {
                let _ = wait.await;
            }
        }
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner()));
        let _ = tokio::task::spawn_blocking(move || threads.into_iter().for_each(|t| drop(t.join()))).await;
    }

    /// Whether the last write succeeded; watch it to drive health.
    pub fn health(&self) -> watch::Receiver<bool> {
        self.healthy.clone()
    }

    /// The number of durable records (of every gateway, for a shared log).
    pub fn size(&self) -> u64 {
        let committed = self.committed.load(Ordering::Acquire);
        if !self.shared {
            return committed;
        }
        self.store.size().map_or(committed, |size| size.max(committed))
    }

    /// The number of records the stored tree covers: proofs and
    /// checkpoints go this far. Only a shared log's lags behind [`AuditLog::size`].
    pub fn tree_size(&self) -> Result<u64, AuditError> {
        if !self.shared {
            return Ok(self.size());
        }
        Ok(self.store.tree_size()?)
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

    /// The root of the tree at `size` (at most the durable size).
    pub fn root(&self, size: u64) -> Result<Hash, AuditError> {
        self.check_size(size)?;
        merkle::root(&mut nodes(self.store()), size)
    }

    /// An inclusion proof for `index` in the tree of `size`.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, AuditError> {
        self.check_size(size)?;
        Ok(merkle::inclusion_proof(&mut nodes(self.store()), index, size)??)
    }

    /// A consistency proof between the trees of `first` and `second` leaves.
    pub fn consistency_proof(&self, first: u64, second: u64) -> Result<Vec<Hash>, AuditError> {
        self.check_size(second)?;
        Ok(merkle::consistency_proof(&mut nodes(self.store()), first, second)??)
    }

    /// The stored checkpoints of trees smaller than `below` (every one when
    /// `None`) that proofs reach, newest first, at most `limit`; and whether
    /// older ones remain.
    pub fn checkpoints(&self, below: Option<u64>, limit: usize) -> Result<(Vec<Checkpoint>, bool), AuditError> {
        let reach = self.tree_size()?;
        let mut older = self
            .store
            .checkpoints()?
            .into_iter()
            .rev()
            .filter(|(size, _)| *size <= reach && below.is_none_or(|b| *size < b));
        let page = older
            .by_ref()
            .take(limit)
            .map(|(size, note)| {
                checkpoint::verify(&note, &self.verifier)
                    .map_err(|e| AuditError::Corrupt(format!("stored checkpoint of size {size}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok((page, older.next().is_some()))
    }

    fn check_size(&self, size: u64) -> Result<(), AuditError> {
        let have = self.tree_size()?;
        if size > have {
            return Err(AuditError::Proof(ProofError::IndexOutOfRange {
                index: size,
                size: have + 1,
            }));
        }
        Ok(())
    }

    pub(crate) fn index(&self) -> &dyn IndexStore {
        self.index.as_ref()
    }

    /// The log size through which the search indexes are filed.
    pub(crate) fn indexed(&self) -> u64 {
        let indexer = self.indexer.lock().unwrap_or_else(|p| p.into_inner());
        indexer.as_ref().map_or(0, Indexer::size).min(self.size())
    }

    /// Refused requests per agency and reason, most first: the indexes'
    /// counters and the records filed after them.
    pub fn report(&self) -> Result<Vec<RefusalCount>, AuditError> {
        let (from, mut totals) = {
            let indexer = self.indexer.lock().unwrap_or_else(|p| p.into_inner());
            indexer
                .as_ref()
                .map_or_else(Default::default, |i| (i.size(), i.refusals().clone()))
        };
        for index in from..self.size() {
            let record = decode(self.store(), index)?;
            if record.decision == Decision::Deny as i32 {
                *totals.entry((record.agency, record.reason)).or_default() += 1;
            }
        }
        let mut rows: Vec<RefusalCount> = totals
            .into_iter()
            .map(|((agency, reason), count)| RefusalCount { agency, reason, count })
            .collect();
        rows.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| (&a.agency, &a.reason).cmp(&(&b.agency, &b.reason)))
        });
        Ok(rows)
    }
}
