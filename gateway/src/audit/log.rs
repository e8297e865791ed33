//! The audit log's storage and its single writer.
//!
//! Everything lives in one sled tree, so that one atomic batch carries a
//! group of records together with their Merkle nodes, search index entries,
//! refusal counters, the new tree size and any checkpoint:
//!
//! | key | value |
//! |---|---|
//! | `r` ‖ index | leaf bytes (an encoded `AuditRecord`) |
//! | `n` ‖ level ‖ index | node hash |
//! | `c` ‖ citizen_ref ‖ index | (search index) |
//! | `a` ‖ agency ‖ 0 ‖ index | (search index) |
//! | `d` ‖ agency ‖ 0 ‖ reason | refusals counted |
//! | `k` ‖ size | signed checkpoint note |
//! | `m` `size` | committed tree size |
//!
//! Indices are big-endian so keys sort in log order. Record times never go
//! backwards, so a time range maps to an index range.

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering},
        mpsc,
    },
    time::{Duration, Instant, SystemTime},
};

use civex_proto::v1::{AuditRecord, Decision};
use prost::Message;
use tokio::sync::{oneshot, watch};

use super::{
    AuditError,
    checkpoint::{self, Checkpoint},
    merkle::{self, Frontier, Hash},
};
use crate::{
    clock::{Clock, system_time, timestamp},
    consent::ConsentStore,
    error::Reason,
    signing::{Signer, Verifier},
};

pub(crate) const SIZE_KEY: &[u8] = b"msize";
const PROBE_KEY: &[u8] = b"mprobe";

pub fn record_key(index: u64) -> [u8; 9] {
    let mut k = [b'r'; 9];
    k[1..].copy_from_slice(&index.to_be_bytes());
    k
}

pub(crate) fn node_key(level: u32, index: u64) -> [u8; 10] {
    let mut k = [b'n'; 10];
    k[1] = level as u8;
    k[2..].copy_from_slice(&index.to_be_bytes());
    k
}

pub(crate) fn citizen_prefix(citizen_ref: &str) -> Vec<u8> {
    let mut k = vec![b'c'];
    k.extend_from_slice(citizen_ref.as_bytes());
    k
}

pub(crate) fn agency_prefix(agency: &str) -> Vec<u8> {
    let mut k = vec![b'a'];
    k.extend_from_slice(agency.as_bytes());
    k.push(0);
    k
}

fn denial_key(agency: &str, reason: &str) -> Vec<u8> {
    let mut k = vec![b'd'];
    k.extend_from_slice(agency.as_bytes());
    k.push(0);
    k.extend_from_slice(reason.as_bytes());
    k
}

fn checkpoint_key(size: u64) -> [u8; 9] {
    let mut k = [b'k'; 9];
    k[1..].copy_from_slice(&size.to_be_bytes());
    k
}

/// The index at the end of an index key.
pub(crate) fn index_suffix(key: &[u8]) -> Option<u64> {
    let tail: [u8; 8] = key.get(key.len().checked_sub(8)?..)?.try_into().ok()?;
    Some(u64::from_be_bytes(tail))
}

fn read_u64(tree: &sled::Tree, key: &[u8]) -> sled::Result<u64> {
    Ok(tree
        .get(key)?
        .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
        .map(u64::from_be_bytes)
        .unwrap_or(0))
}

/// Reads a stored node; a missing node is an error (the tree is incomplete).
pub(crate) fn stored_node(tree: &sled::Tree, level: u32, index: u64) -> Result<Hash, AuditError> {
    let v = tree.get(node_key(level, index)).map_err(AuditError::storage)?;
    v.and_then(|v| <Hash>::try_from(v.as_ref()).ok())
        .ok_or(AuditError::Corrupt(format!("node ({level}, {index}) is missing")))
}

/// What checking the whole store found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub size: u64,
    pub root: Hash,
    pub latest: Option<Checkpoint>,
    pub checkpoints: usize,
    pub(crate) frontier: Frontier,
}

/// Why the stored log does not verify; indices name the first bad record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("record {0} is missing (deleted?)")]
    Missing(u64),
    #[error("record {0} is beyond the committed tree size (inserted?)")]
    Extra(u64),
    #[error("record {0} was altered or moved: it does not match the tree")]
    Altered(u64),
    #[error("checkpoint of size {size} does not match the records: a record in {from}..{size} was altered")]
    CheckpointMismatch { size: u64, from: u64 },
    #[error("checkpoint of size {0}: {1}")]
    Checkpoint(u64, checkpoint::CheckpointError),
    #[error("storage: {0}")]
    Storage(String),
}

/// Recomputes the whole tree from the stored records, checking every record
/// against its stored node, every stored checkpoint's signature and root, and
/// that records run from 0 to the committed size with no gap or extra.
pub fn verify_store(tree: &sled::Tree, verifier: &Verifier) -> Result<Verified, VerifyError> {
    let storage = |e: sled::Error| VerifyError::Storage(e.to_string());
    let size = read_u64(tree, SIZE_KEY).map_err(storage)?;
    let mut checkpoints = Vec::new();
    for item in tree.scan_prefix(b"k") {
        let (key, note) = item.map_err(storage)?;
        let at = index_suffix(&key).unwrap_or(0);
        let note = String::from_utf8_lossy(&note).into_owned();
        let cp = checkpoint::verify(&note, verifier).map_err(|e| VerifyError::Checkpoint(at, e))?;
        checkpoints.push(cp);
    }
    let mut pending = checkpoints.iter().peekable();
    let mut last_good = 0;
    let mut frontier = Frontier::default();
    let mut mismatch: Option<u64> = None;
    let mut stored = StoredNodes {
        tree,
        levels: Vec::new(),
    };
    for item in tree.scan_prefix(b"r") {
        let (key, leaf) = item.map_err(storage)?;
        let index = index_suffix(&key).unwrap_or(u64::MAX);
        let expected = frontier.size();
        if index != expected {
            return Err(if index > expected && expected < size {
                VerifyError::Missing(expected)
            } else {
                VerifyError::Extra(index)
            });
        }
        if index >= size {
            return Err(VerifyError::Extra(index));
        }
        if AuditRecord::decode(leaf.as_ref()).is_err() {
            return Err(VerifyError::Altered(index));
        }
        frontier.push(merkle::leaf_hash(&leaf), |level, i, hash| {
            if mismatch.is_none() && !stored.matches(level, i, hash) {
                mismatch = Some(i << level);
            }
        });
        if let Some(first) = mismatch {
            return Err(VerifyError::Altered(first));
        }
        while let Some(cp) = pending.next_if(|cp| cp.size == frontier.size()) {
            if cp.root != frontier.root() {
                return Err(VerifyError::CheckpointMismatch {
                    size: cp.size,
                    from: last_good,
                });
            }
            last_good = cp.size;
        }
    }
    if frontier.size() != size {
        return Err(VerifyError::Missing(frontier.size()));
    }
    if let Some(cp) = pending.next() {
        return Err(VerifyError::CheckpointMismatch {
            size: cp.size,
            from: last_good,
        });
    }
    Ok(Verified {
        size,
        root: frontier.root(),
        latest: checkpoints.last().cloned(),
        checkpoints: checkpoints.len(),
        frontier,
    })
}

/// The stored Merkle nodes, read level by level in index order as the
/// recomputed tree completes them: one scan per level instead of a lookup
/// per node.
struct StoredNodes<'a> {
    tree: &'a sled::Tree,
    levels: Vec<sled::Iter>,
}

impl StoredNodes<'_> {
    /// Whether the next stored node of `level` is node `index` with `hash`.
    fn matches(&mut self, level: u32, index: u64, hash: &Hash) -> bool {
        while self.levels.len() <= level as usize {
            let prefix = &node_key(self.levels.len() as u32, 0)[..2];
            self.levels.push(self.tree.scan_prefix(prefix));
        }
        match self.levels[level as usize].next() {
            Some(Ok((key, value))) => key.as_ref() == node_key(level, index) && value.as_ref() == hash.as_slice(),
            _ => false,
        }
    }
}

/// A record waiting for its turn in the log.
pub(crate) struct Pending {
    pub(crate) record: AuditRecord,
    /// If the record allows a use of this consent, refuse it when the consent
    /// was revoked before the record's place in the log.
    pub(crate) consent_use: Option<String>,
    /// Sign a checkpoint that includes this record.
    pub(crate) checkpoint: bool,
    pub(crate) reply: oneshot::Sender<Result<Appended, AuditError>>,
}

/// Where a record landed.
#[derive(Debug, Clone)]
pub struct Appended {
    pub index: u64,
    /// Set when the writer turned an allowed use into a refusal (the consent
    /// was revoked earlier in the log).
    pub overruled: Option<Reason>,
    pub checkpoint: Option<Checkpoint>,
}

pub(crate) enum Msg {
    Append(Box<Pending>),
    Close(oneshot::Sender<()>),
}

/// Tuning of the writer.
#[derive(Debug, Clone, Copy)]
pub struct WriterConfig {
    pub checkpoint_every: u64,
    pub checkpoint_interval: Duration,
    /// Flush (fsync) before answering. Off only in the benchmark's
    /// measurement of what durability costs.
    pub durable: bool,
}

/// The single writer: takes every waiting record, appends them in one batch,
/// flushes once, then answers them all (group commit). After a failed write
/// it drops its store and reopens it from disk before writing again, so what
/// it builds on is exactly what is durable.
pub(crate) struct Writer {
    pub(crate) dir: PathBuf,
    pub(crate) verifier: Verifier,
    /// `None` after a failed write, until the store is reopened.
    pub(crate) store: Option<(sled::Db, sled::Tree)>,
    /// The tree readers use; emptied while the store is broken.
    pub(crate) shared: Arc<RwLock<Option<sled::Tree>>>,
    pub(crate) frontier: Frontier,
    pub(crate) committed: Arc<AtomicU64>,
    pub(crate) last_time: SystemTime,
    pub(crate) last_checkpoint: (u64, Instant),
    pub(crate) denials: HashMap<Vec<u8>, u64>,
    pub(crate) signer: Arc<Signer>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) consents: ConsentStore,
    pub(crate) healthy: watch::Sender<bool>,
    pub(crate) config: WriterConfig,
}

const MAX_BATCH: usize = 4096;
/// How often a broken store is retried when no call arrives.
const RETRY: Duration = Duration::from_secs(1);

impl Writer {
    pub(crate) fn run(mut self, rx: mpsc::Receiver<Msg>) {
        loop {
            let wait = if self.store.is_none() {
                RETRY.min(self.config.checkpoint_interval)
            } else {
                self.config.checkpoint_interval
            };
            let first = match rx.recv_timeout(wait) {
                Ok(m) => m,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if self.store.is_none() {
                        self.recover();
                    } else {
                        self.commit(Vec::new(), false);
                    }
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            };
            let mut batch = Vec::new();
            let mut close = None;
            match first {
                Msg::Append(p) => batch.push(*p),
                Msg::Close(done) => close = Some(done),
            }
            while close.is_none() && batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(Msg::Append(p)) => batch.push(*p),
                    Ok(Msg::Close(done)) => close = Some(done),
                    Err(_) => break,
                }
            }
            let closing = close.is_some();
            self.commit(batch, closing);
            if let Some(done) = close {
                let _ = done.send(());
                return;
            }
        }
    }

    /// Reopens a broken store and proves it writable; health follows.
    fn recover(&mut self) {
        match self.reopen().and_then(|()| self.probe()) {
            Ok(()) => {
                tracing::info!("audit log writable again");
                self.healthy.send_if_modified(|h| !std::mem::replace(h, true));
            }
            Err(e) => {
                tracing::warn!(cause = %e, "audit log still cannot be written");
                self.break_store();
            }
        }
    }

    fn reopen(&mut self) -> Result<(), AuditError> {
        if self.store.is_some() {
            return Ok(());
        }
        let opened = super::load(&self.dir, &self.verifier)?;
        self.frontier = opened.verified.frontier.clone();
        self.committed.store(opened.verified.size, Ordering::Release);
        self.last_time = self.last_time.max(opened.last_time);
        self.denials = opened.denials;
        *self.shared.write().unwrap_or_else(|p| p.into_inner()) = Some(opened.tree.clone());
        self.store = Some((opened.db, opened.tree));
        Ok(())
    }

    /// A small durable write, to tell a store that reads from one that writes.
    fn probe(&self) -> Result<(), AuditError> {
        let (db, tree) = self
            .store
            .as_ref()
            .ok_or_else(|| AuditError::Unavailable("store is closed".into()))?;
        let stamp = self
            .clock
            .now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as u64;
        tree.insert(PROBE_KEY, &stamp.to_be_bytes())
            .map_err(AuditError::unavailable)?;
        db.flush().map_err(AuditError::unavailable)?;
        Ok(())
    }

    /// Drops the store after a failure: sled does not recover from an IO
    /// error in place, and what was not flushed must not be built on.
    fn break_store(&mut self) {
        *self.shared.write().unwrap_or_else(|p| p.into_inner()) = None;
        self.store = None;
        self.healthy.send_if_modified(|h| std::mem::replace(h, false));
    }

    fn commit(&mut self, batch: Vec<Pending>, force_checkpoint: bool) {
        if let Err(e) = self.reopen() {
            tracing::error!(cause = %e, "audit log cannot be reopened");
            self.break_store();
            for p in batch {
                let _ = p.reply.send(Err(AuditError::Unavailable(e.to_string())));
            }
            return;
        }
        let before = (self.frontier.clone(), self.last_time, self.denials.clone());
        let mut writes = sled::Batch::default();
        let mut landed = Vec::with_capacity(batch.len());
        let mut want_checkpoint = force_checkpoint;
        for mut p in batch {
            let overruled = self.overrule(&p);
            if let Some(reason) = overruled {
                p.record.decision = Decision::Deny as i32;
                p.record.reason = reason.as_str().to_owned();
            }
            let now = self.clock.now().max(self.last_time);
            self.last_time = now;
            p.record.time = Some(timestamp(now));
            let index = self.frontier.size();
            let leaf = p.record.encode_to_vec();
            self.frontier.push(merkle::leaf_hash(&leaf), |level, i, hash| {
                writes.insert(&node_key(level, i), hash.as_slice())
            });
            writes.insert(&record_key(index), leaf);
            let mut index_key = |mut prefix: Vec<u8>| {
                prefix.extend_from_slice(&index.to_be_bytes());
                writes.insert(prefix, &[]);
            };
            if !p.record.citizen_ref.is_empty() {
                index_key(citizen_prefix(&p.record.citizen_ref));
            }
            index_key(agency_prefix(&p.record.agency));
            if p.record.decision == Decision::Deny as i32 {
                let key = denial_key(&p.record.agency, &p.record.reason);
                let count = self.denials.entry(key.clone()).or_default();
                *count += 1;
                writes.insert(key, &count.to_be_bytes());
            }
            want_checkpoint |= p.checkpoint;
            landed.push((p.reply, index, overruled, p.checkpoint));
        }
        let size = self.frontier.size();
        let (last_size, last_at) = self.last_checkpoint;
        let due = size > last_size
            && (size - last_size >= self.config.checkpoint_every
                || last_at.elapsed() >= self.config.checkpoint_interval);
        let checkpoint =
            (want_checkpoint && size > 0 || due).then(|| checkpoint::sign(&self.signer, size, &self.frontier.root()));
        if landed.is_empty() && (checkpoint.is_none() || size == last_size) {
            return;
        }
        writes.insert(SIZE_KEY, &size.to_be_bytes());
        if let Some(cp) = &checkpoint {
            writes.insert(&checkpoint_key(size), cp.note.as_bytes());
        }
        let written = match &self.store {
            Some((db, tree)) => tree.apply_batch(writes).and_then(|()| {
                if self.config.durable {
                    // Consent uses and withdrawals of this batch's calls first, then the records.
                    self.consents
                        .flush()
                        .map_err(|e| sled::Error::Unsupported(e.to_string()))?;
                    db.flush().map(drop)
                } else {
                    Ok(())
                }
            }),
            None => Err(sled::Error::Unsupported("the store is closed".into())),
        };
        match written {
            Ok(()) => {
                self.committed.store(size, Ordering::Release);
                if let Some(cp) = &checkpoint {
                    self.last_checkpoint = (cp.size, Instant::now());
                }
                self.healthy.send_if_modified(|h| !std::mem::replace(h, true));
                for (reply, index, overruled, wants) in landed {
                    let cp = if wants { checkpoint.clone() } else { None };
                    let _ = reply.send(Ok(Appended {
                        index,
                        overruled,
                        checkpoint: cp,
                    }));
                }
            }
            Err(e) => {
                tracing::error!(cause = %e, "audit log write failed: refusing every call until it works again");
                (self.frontier, self.last_time, self.denials) = before;
                self.break_store();
                for (reply, ..) in landed {
                    let _ = reply.send(Err(AuditError::Unavailable(e.to_string())));
                }
            }
        }
    }

    /// The ordering rule for withdrawals: a use whose record lands after the
    /// consent's revocation is refused, whatever the handler saw.
    fn overrule(&self, p: &Pending) -> Option<Reason> {
        let id = p.consent_use.as_deref()?;
        if p.record.decision != Decision::Allow as i32 {
            return None;
        }
        match self.consents.get(id) {
            Ok(c) if c.revoked_at.as_ref().and_then(system_time).is_some() => Some(Reason::ConsentRevoked),
            Ok(_) => None,
            Err(e) => {
                tracing::error!(cause = %e, "cannot re-check a consent while logging its use");
                Some(Reason::Internal)
            }
        }
    }
}

/// Loads the refusal counters.
pub(crate) fn load_denials(tree: &sled::Tree) -> sled::Result<HashMap<Vec<u8>, u64>> {
    tree.scan_prefix(b"d")
        .map(|item| {
            let (k, v) = item?;
            let n = <[u8; 8]>::try_from(v.as_ref()).map(u64::from_be_bytes).unwrap_or(0);
            Ok((k.to_vec(), n))
        })
        .collect()
}

/// Refusal counts per (agency, reason).
pub(crate) fn denial_rows(tree: &sled::Tree) -> sled::Result<Vec<(String, String, u64)>> {
    Ok(load_denials(tree)?
        .into_iter()
        .filter_map(|(k, n)| {
            let rest = k.get(1..)?;
            let split = rest.iter().position(|b| *b == 0)?;
            let agency = String::from_utf8_lossy(&rest[..split]).into_owned();
            let reason = String::from_utf8_lossy(&rest[split + 1..]).into_owned();
            Some((agency, reason, n))
        })
        .collect())
}

/// The time of a stored record.
pub(crate) fn record_time(tree: &sled::Tree, index: u64) -> Result<Option<SystemTime>, AuditError> {
    let leaf = tree.get(record_key(index)).map_err(AuditError::storage)?;
    let Some(leaf) = leaf else { return Ok(None) };
    let record = AuditRecord::decode(leaf.as_ref()).map_err(|e| AuditError::Corrupt(e.to_string()))?;
    Ok(record.time.as_ref().and_then(system_time))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store of `n` records and their nodes, as the writer lays them out,
    /// without checkpoints.
    fn store(n: u64) -> (tempfile::TempDir, sled::Tree, Verifier) {
        let dir = tempfile::tempdir().unwrap();
        let tree = sled::open(dir.path().join("db")).unwrap().open_tree("audit").unwrap();
        let mut frontier = Frontier::default();
        for i in 0..n {
            let leaf = AuditRecord {
                agency: format!("agency-{i}"),
                ..Default::default()
            }
            .encode_to_vec();
            frontier.push(merkle::leaf_hash(&leaf), |level, index, hash| {
                tree.insert(node_key(level, index), hash.as_slice()).unwrap();
            });
            tree.insert(record_key(i), leaf).unwrap();
        }
        tree.insert(SIZE_KEY, &n.to_be_bytes()).unwrap();
        let signer = Signer::load_or_create(dir.path(), "civex/test").unwrap();
        let verifier = Verifier::parse(&signer.verifier_key()).unwrap();
        (dir, tree, verifier)
    }

    #[test]
    fn a_missing_or_altered_node_names_the_first_record_beneath_it() {
        let (_dir, tree, verifier) = store(13);
        assert_eq!(verify_store(&tree, &verifier).unwrap().size, 13);

        let node = tree.remove(node_key(1, 2)).unwrap().unwrap();
        assert_eq!(verify_store(&tree, &verifier), Err(VerifyError::Altered(4)));
        tree.insert(node_key(1, 2), node).unwrap();
        assert!(verify_store(&tree, &verifier).is_ok());

        tree.insert(node_key(0, 9), &[0u8; 32]).unwrap();
        assert_eq!(verify_store(&tree, &verifier), Err(VerifyError::Altered(9)));
        tree.remove(node_key(0, 9)).unwrap();
        assert_eq!(verify_store(&tree, &verifier), Err(VerifyError::Altered(9)));
    }
}
