//! A log that several gateways append to at once: the engine of a
//! deployment whose state lives in a shared database.
//!
//! Sequencing follows Tessera on a shared database. Each gateway's writer
//! hands its batch to [`SharedLog::sequence`], which in one transaction locks
//! the log's head, reads how the batch's consents stand (locking their rows),
//! lets the writer lay the records out after whatever is durable, stores
//! them at the head with their consent uses and withdrawals, and commits;
//! only then are the calls answered. The head lock orders every batch of
//! every gateway, so log order is commit order, and a use is counted in the
//! same transaction as its record: `max_uses` holds across gateways and a
//! withdrawal is ordered against every use by the consent's row.
//!
//! Merkle integration and checkpoint signing run afterwards
//! ([`integrate`]), under a second lock, by whichever gateway takes it: no
//! election, and no two checkpoints of one tree size ever differ.

use std::{collections::BTreeMap, collections::HashMap, time::SystemTime};

use crate::{
    AuditError, Usage,
    checkpoint::{self, Checkpoint},
    keys::{Signer, Verifier},
    merkle::{self, Frontier, Hash},
    store::{LogStore, StoreError},
};

/// The head of a shared log, as a batch is sequenced under its lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// The index the batch starts at: every record before it is durable.
    pub next: u64,
    /// The time of the last record; records never go back in time.
    pub last_time: SystemTime,
}

/// A batch as the writer laid it out under the head lock.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    /// Encoded `AuditRecord`s, stored at `next`, `next + 1`, ...
    pub leaves: Vec<Vec<u8>>,
    /// The time of the batch's last record.
    pub last_time: Option<SystemTime>,
    /// Uses counted per consent. The store adds them only where the
    /// consent is not withdrawn and stays within its `max_uses`, and fails
    /// the whole batch otherwise (the writer already refused any use that
    /// would not fit, so a failure means the rows changed under the lock).
    pub uses: BTreeMap<String, u64>,
    /// Consents withdrawn by the batch, with the time of the record.
    pub withdrawals: BTreeMap<String, SystemTime>,
}

/// What one integration adds to the tree.
#[derive(Debug, Clone)]
pub struct Integration {
    /// The tree's right edge after the new leaves.
    pub frontier: Frontier,
    /// Every node the new leaves complete, leaves included: (level, index, hash).
    pub nodes: Vec<(u32, u64, Hash)>,
    /// The signed checkpoint of the tree after them.
    pub checkpoint: String,
}

/// How an integration went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Integrated {
    /// Another gateway holds the lock (and does the work).
    Busy,
    /// The tree now has `size` leaves; `more` sequenced records wait.
    Grew { size: u64, more: bool },
    /// Nothing was waiting: the tree and its latest checkpoint are of `size` leaves.
    Current { size: u64 },
}

/// Leaves integrated per transaction at most.
pub const INTEGRATE_AT_MOST: u64 = 1 << 14;

/// A log several gateways append to. [`LogStore::size`] is the number of
/// durable (sequenced) records, and [`LogStore::tree_size`] the number the
/// stored tree and checkpoints cover; records between the two are readable
/// and searchable, and get into the tree at the next integration.
pub trait SharedLog: LogStore {
    /// In one transaction: locks the head, reads (and locks) how each of
    /// `consents` stands, calls `lay_out` once with both, stores what it
    /// returns at the head, and commits durably. Returns the head the batch
    /// was laid out under. On an error nothing of the batch is stored.
    fn sequence(
        &self,
        consents: &[String],
        lay_out: &mut dyn FnMut(&Head, &HashMap<String, Usage>) -> Layout,
    ) -> Result<Head, StoreError>;

    /// In one transaction under the tree lock (waiting for it when `wait`,
    /// else returning [`Integrated::Busy`] if another holds it): reads the
    /// tree's right edge and at most `at_most` sequenced leaves after it,
    /// calls `work` with them (not at all if there are none), stores the
    /// nodes and checkpoint it returns and commits.
    fn integrate_tree(
        &self,
        wait: bool,
        at_most: u64,
        work: &mut dyn FnMut(&Frontier, &[Vec<u8>]) -> Integration,
    ) -> Result<Integrated, StoreError>;
}

/// Integrates every sequenced record of `store` into the tree and signs a
/// checkpoint of it; returns the newest checkpoint, or `None` when another
/// gateway held the lock and `wait` is false.
pub fn integrate(store: &dyn SharedLog, signer: &Signer, wait: bool) -> Result<Option<Checkpoint>, AuditError> {
    let mut signed = None;
    loop {
        let outcome = store.integrate_tree(wait, INTEGRATE_AT_MOST, &mut |frontier, leaves| {
            let mut frontier = frontier.clone();
            let mut nodes = Vec::with_capacity(leaves.len() * 2);
            for leaf in leaves {
                frontier.push(merkle::leaf_hash(leaf), |level, index, hash| {
                    nodes.push((level, index, *hash))
                });
            }
            let cp = checkpoint::sign(signer, frontier.size(), &frontier.root());
            let note = cp.note.clone();
            signed = Some(cp);
            Integration {
                frontier,
                nodes,
                checkpoint: note,
            }
        })?;
        match outcome {
            Integrated::Busy => return Ok(None),
            Integrated::Grew { more: true, .. } => continue,
            Integrated::Grew { more: false, .. } => return Ok(signed),
            Integrated::Current { size } => {
                if let Some(cp) = signed {
                    return Ok(Some(cp));
                }
                return latest(store, &Verifier::parse(&signer.verifier_key()).map_err(corrupt)?, size);
            }
        }
    }
}

fn corrupt(e: impl std::fmt::Display) -> AuditError {
    AuditError::Corrupt(e.to_string())
}

/// The stored checkpoint of the whole tree of `size` leaves, checked.
fn latest(store: &dyn SharedLog, verifier: &Verifier, size: u64) -> Result<Option<Checkpoint>, AuditError> {
    match store.latest_checkpoint()? {
        None if size == 0 => Ok(None),
        None => Err(corrupt(format!("the tree has {size} leaves but no checkpoint"))),
        Some((at, note)) => {
            let cp = checkpoint::verify(&note, verifier).map_err(|e| crate::VerifyError::Checkpoint(at, e))?;
            if cp.size != size {
                return Err(corrupt(format!(
                    "the latest checkpoint is of {} leaves but the tree has {size}",
                    cp.size
                )));
            }
            Ok(Some(cp))
        }
    }
}
