//! The tamper-evident audit log: every call, allowed or denied, is appended
//! and made durable before its answer leaves.
//!
//! # Layout
//! - [`merkle`]: RFC 9162 hashing and proofs; pure.
//! - [`checkpoint`]: C2SP signed-note checkpoints.
//! - [`log`]: the store layout, the single group-commit writer, offline verification.
//! - [`search`]: auditors' searches over the store's indices.
//!
//! Raw citizen IDs never enter the log: a record carries the citizen's
//! pseudonym, HMAC-SHA-256 of the ID under a key kept in its own file.

pub mod checkpoint;
pub mod log;
pub mod merkle;
pub mod search;

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicU64, Ordering},
        mpsc,
    },
    time::Instant,
};

use civex_proto::v1::AuditRecord;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use tokio::sync::{oneshot, watch};

pub use self::log::{Appended, Verified, VerifyError, WriterConfig, verify_store};
use self::{
    log::{Msg, Pending, Writer},
    merkle::{Hash, ProofError},
};
use crate::{
    clock::Clock,
    consent::ConsentStore,
    signing::{Signer, Verifier},
};

/// Name of the sled tree that holds the log.
pub const TREE: &str = "audit";

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

impl AuditError {
    pub(crate) fn storage(e: impl std::fmt::Display) -> AuditError {
        AuditError::Storage(e.to_string())
    }

    pub(crate) fn unavailable(e: impl std::fmt::Display) -> AuditError {
        AuditError::Unavailable(e.to_string())
    }
}

/// Turns citizen IDs into pseudonyms: HMAC-SHA-256 under a secret key.
pub struct Pseudonymizer {
    key: [u8; 32],
}

impl Pseudonymizer {
    /// Loads the 32-byte key (hex) from `path`, creating it (mode 0600) if absent.
    pub fn load_or_create(path: &Path) -> Result<Pseudonymizer, AuditError> {
        let fail = |cause: String| AuditError::PseudonymKey {
            path: path.to_owned(),
            cause,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let key = hex::decode(text.trim()).map_err(|e| fail(e.to_string()))?;
                let key: [u8; 32] = key.try_into().map_err(|_| fail("expected 32 bytes of hex".into()))?;
                Ok(Pseudonymizer { key })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut key);
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
                }
                crate::pki::write_private(path, format!("{}\n", hex::encode(key)).as_bytes())
                    .map_err(|e| fail(e.to_string()))?;
                Ok(Pseudonymizer { key })
            }
            Err(e) => Err(fail(e.to_string())),
        }
    }

    /// The pseudonym of a (validated) citizen ID, lower-case hex.
    pub fn citizen_ref(&self, citizen_id: &str) -> String {
        // Invariant: HMAC accepts keys of any length.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key).unwrap_or_else(|_| unreachable!());
        mac.update(citizen_id.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

/// The audit log's own sled database inside the data directory.
pub const DB_DIR: &str = "audit";

/// Opens the audit store of the data directory `data_dir`.
pub fn open_store(data_dir: &Path) -> Result<(sled::Db, sled::Tree), AuditError> {
    let db = crate::store::open_at(data_dir, DB_DIR).map_err(AuditError::unavailable)?;
    let tree = db.open_tree(TREE).map_err(AuditError::unavailable)?;
    Ok((db, tree))
}

/// A store opened and verified from disk.
pub(crate) struct Loaded {
    pub(crate) db: sled::Db,
    pub(crate) tree: sled::Tree,
    pub(crate) verified: Verified,
    pub(crate) denials: std::collections::HashMap<Vec<u8>, u64>,
    pub(crate) last_time: std::time::SystemTime,
}

/// Opens the store and recomputes the whole tree from its records, refusing
/// it if it does not match every signed checkpoint.
pub(crate) fn load(data_dir: &Path, verifier: &Verifier) -> Result<Loaded, AuditError> {
    let (db, tree) = open_store(data_dir)?;
    let verified = verify_store(&tree, verifier)?;
    let last_time = match verified.size {
        0 => std::time::UNIX_EPOCH,
        n => log::record_time(&tree, n - 1)?.unwrap_or(std::time::UNIX_EPOCH),
    };
    let denials = log::load_denials(&tree).map_err(AuditError::storage)?;
    Ok(Loaded {
        db,
        tree,
        verified,
        denials,
        last_time,
    })
}

/// The audit log: appends through the writer thread, reads straight from the store.
pub struct AuditLog {
    tx: Mutex<Option<mpsc::Sender<Msg>>>,
    tree: Arc<RwLock<Option<sled::Tree>>>,
    committed: Arc<AtomicU64>,
    healthy: watch::Receiver<bool>,
    verifier: Verifier,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl AuditLog {
    /// Opens the log in `data_dir`, recomputing the whole tree from its
    /// records and refusing to start if it does not match the last signed checkpoint.
    pub fn open(
        data_dir: &Path,
        signer: Arc<Signer>,
        clock: Arc<dyn Clock>,
        consents: ConsentStore,
        config: WriterConfig,
    ) -> Result<(AuditLog, Verified), AuditError> {
        let verifier = Verifier::parse(&signer.verifier_key()).map_err(|e| AuditError::Corrupt(e.to_string()))?;
        let loaded = load(data_dir, &verifier)?;
        let verified = loaded.verified.clone();
        let committed = Arc::new(AtomicU64::new(verified.size));
        let shared = Arc::new(RwLock::new(Some(loaded.tree.clone())));
        let (healthy_tx, healthy) = watch::channel(true);
        let writer = Writer {
            dir: data_dir.to_owned(),
            verifier: verifier.clone(),
            store: Some((loaded.db, loaded.tree)),
            shared: shared.clone(),
            frontier: verified.frontier.clone(),
            committed: committed.clone(),
            last_time: loaded.last_time,
            last_checkpoint: (verified.latest.as_ref().map_or(0, |c| c.size), Instant::now()),
            denials: loaded.denials,
            signer,
            clock,
            consents,
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
            tree: shared,
            committed,
            healthy,
            verifier,
            writer: Mutex::new(Some(handle)),
        };
        Ok((log, verified))
    }

    /// Appends `record` and waits until it is durable.
    pub async fn append(
        &self,
        record: AuditRecord,
        consent_use: Option<String>,
        checkpoint: bool,
    ) -> Result<Appended, AuditError> {
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            record,
            consent_use,
            checkpoint,
            reply,
        };
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

    /// The store, unless it is broken and being reopened.
    pub(crate) fn tree(&self) -> Result<sled::Tree, AuditError> {
        let tree = self.tree.read().unwrap_or_else(|p| p.into_inner()).clone();
        tree.ok_or_else(|| AuditError::Unavailable("the audit store is being reopened".into()))
    }

    /// The stored leaf bytes at `index`, if durable.
    pub fn leaf(&self, index: u64) -> Result<Option<Vec<u8>>, AuditError> {
        if index >= self.size() {
            return Ok(None);
        }
        Ok(self
            .tree()?
            .get(log::record_key(index))
            .map_err(AuditError::storage)?
            .map(|v| v.to_vec()))
    }

    /// Stored node lookups for the Merkle functions.
    fn nodes(&self) -> Result<impl FnMut(u32, u64) -> Result<Hash, AuditError>, AuditError> {
        let tree = self.tree()?;
        Ok(move |level, index| log::stored_node(&tree, level, index))
    }

    /// The root of the tree at `size` (at most the durable size).
    pub fn root(&self, size: u64) -> Result<Hash, AuditError> {
        self.check_size(size)?;
        merkle::root(&mut self.nodes()?, size)
    }

    /// An inclusion proof for `index` in the tree of `size`.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, AuditError> {
        self.check_size(size)?;
        Ok(merkle::inclusion_proof(&mut self.nodes()?, index, size)??)
    }

    /// A consistency proof between the trees of `first` and `second` leaves.
    pub fn consistency_proof(&self, first: u64, second: u64) -> Result<Vec<Hash>, AuditError> {
        self.check_size(second)?;
        Ok(merkle::consistency_proof(&mut self.nodes()?, first, second)??)
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

    /// Refused requests per agency and reason.
    pub fn report(&self) -> Result<Vec<(String, String, u64)>, AuditError> {
        let mut rows = log::denial_rows(&self.tree()?).map_err(AuditError::storage)?;
        rows.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| (&a.0, &a.1).cmp(&(&b.0, &b.1))));
        Ok(rows)
    }
}

/// The latest signed checkpoint stored in `tree`, unverified.
pub fn latest_checkpoint_note(tree: &sled::Tree) -> Result<Option<String>, AuditError> {
    let last = tree
        .scan_prefix(b"k")
        .next_back()
        .transpose()
        .map_err(AuditError::storage)?;
    Ok(last.map(|(_, v)| String::from_utf8_lossy(&v).into_owned()))
}
