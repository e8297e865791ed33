//! Offline verification: the whole tree recomputed from the stored records.

use std::ops::ControlFlow;

use civex_proto::v1::AuditRecord;
use prost::Message;

use crate::{
    checkpoint::{self, Checkpoint},
    keys::Verifier,
    merkle::{self, Frontier, Hash},
    store::{LogStore, Scan},
};

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
pub fn verify(store: &dyn LogStore, verifier: &Verifier) -> Result<Verified, VerifyError> {
    let storage = |e: crate::store::StoreError| VerifyError::Storage(e.to_string());
    let size = store.size().map_err(storage)?;
    let mut checkpoints = Vec::new();
    for (at, note) in store.checkpoints().map_err(storage)? {
        let cp = checkpoint::verify(&note, verifier).map_err(|e| VerifyError::Checkpoint(at, e))?;
        checkpoints.push(cp);
    }
    let mut pending = checkpoints.iter().peekable();
    let mut last_good = 0;
    let mut frontier = Frontier::default();
    let mut mismatch: Option<u64> = None;
    let mut stored = StoredNodes {
        store,
        tree_size: store.tree_size().map_err(storage)?,
        levels: Vec::new(),
    };
    let mut failed = None;
    let mut check = |index: u64, leaf: &[u8]| -> Result<(), VerifyError> {
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
        if AuditRecord::decode(leaf).is_err() {
            return Err(VerifyError::Altered(index));
        }
        frontier.push(merkle::leaf_hash(leaf), |level, i, hash| {
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
        Ok(())
    };
    store
        .scan_leaves(&mut |index, leaf| match check(index, leaf) {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => {
                failed = Some(e);
                ControlFlow::Break(())
            }
        })
        .map_err(storage)?;
    if let Some(e) = failed {
        return Err(e);
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
    store: &'a dyn LogStore,
    /// Nodes are stored for the tree of this many leaves (a shared log's
    /// newest records are not yet in it).
    tree_size: u64,
    /// Per level; `None` where the engine stores nothing (it computes those nodes).
    levels: Vec<Option<Scan<'a, (u64, Hash)>>>,
}

impl StoredNodes<'_> {
    /// Whether the next stored node of `level` is node `index` with `hash`.
    fn matches(&mut self, level: u32, index: u64, hash: &Hash) -> bool {
        if (index + 1) << level > self.tree_size {
            return true;
        }
        while self.levels.len() <= level as usize {
            self.levels.push(self.store.level(self.levels.len() as u32));
        }
        match &mut self.levels[level as usize] {
            None => true,
            Some(scan) => match scan.next() {
                Some(Ok((i, stored))) => i == index && stored == *hash,
                _ => false,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        keys::Signer,
        store::{Batch, LogStore},
        tiles::{TileLog, tile_path},
    };

    /// A store of `n` records, as the writer lays them out, with a
    /// checkpoint at the end, integrated into tiles.
    fn store(n: u64) -> (tempfile::TempDir, TileLog, Verifier) {
        let dir = tempfile::tempdir().unwrap();
        let log = TileLog::open(dir.path()).unwrap();
        let signer = Signer::load_or_create(dir.path(), "civex/test").unwrap();
        let mut frontier = Frontier::default();
        let mut batch = Batch::default();
        for i in 0..n {
            let leaf = AuditRecord {
                agency: format!("agency-{i}"),
                ..Default::default()
            }
            .encode_to_vec();
            frontier.push(merkle::leaf_hash(&leaf), |level, index, hash| {
                batch.nodes.push((level, index, *hash))
            });
            batch.leaves.push(leaf);
        }
        batch.size = n;
        batch.checkpoint = Some(checkpoint::sign(&signer, n, &frontier.root()).note);
        log.append(&batch, true).unwrap();
        log.integrate().unwrap();
        let verifier = Verifier::parse(&signer.verifier_key()).unwrap();
        (dir, log, verifier)
    }

    #[test]
    fn an_altered_hash_tile_names_the_first_record_beneath_it() {
        let (dir, log, verifier) = store(600);
        assert_eq!(verify(&log, &verifier).unwrap().size, 600);
        drop(log);
        let path = dir.path().join("log").join(tile_path(Some(0), 1, 256));
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[32 * 9] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        let log = TileLog::open(dir.path()).unwrap();
        assert_eq!(verify(&log, &verifier), Err(VerifyError::Altered(256 + 9)));
    }
}
