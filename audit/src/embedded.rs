//! The embedded engine: the log in a sled database of its own inside the
//! data directory (`audit/`), so it can be flushed and reopened on its own.
//!
//! Everything lives in one tree, so that one atomic batch carries a group of
//! records together with their Merkle nodes, search index entries, refusal
//! counters, the new tree size and any checkpoint:
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
//! Indices are big-endian so keys sort in log order.

use std::{
    ops::ControlFlow,
    path::{Path, PathBuf},
    sync::RwLock,
    time::{Duration, Instant},
};

use crate::{
    merkle::Hash,
    store::{Batch, IndexKey, LogStore, RefusalCount, Scan, StoreError},
};

/// The log's own sled database inside the data directory.
pub const DB_DIR: &str = "audit";
/// The tree that holds the log.
pub const TREE: &str = "audit";

const SIZE_KEY: &[u8] = b"msize";
const PROBE_KEY: &[u8] = b"mprobe";

/// The key of the leaf at `index`.
pub fn record_key(index: u64) -> [u8; 9] {
    let mut k = [b'r'; 9];
    k[1..].copy_from_slice(&index.to_be_bytes());
    k
}

/// The key of the Merkle node at (`level`, `index`).
pub fn node_key(level: u32, index: u64) -> [u8; 10] {
    let mut k = [b'n'; 10];
    k[1] = level as u8;
    k[2..].copy_from_slice(&index.to_be_bytes());
    k
}

fn index_prefix(key: &IndexKey) -> Vec<u8> {
    match key {
        IndexKey::Citizen(citizen_ref) => {
            let mut k = vec![b'c'];
            k.extend_from_slice(citizen_ref.as_bytes());
            k
        }
        IndexKey::Agency(agency) => {
            let mut k = vec![b'a'];
            k.extend_from_slice(agency.as_bytes());
            k.push(0);
            k
        }
    }
}

fn refusal_key(agency: &str, reason: &str) -> Vec<u8> {
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
fn index_suffix(key: &[u8]) -> Option<u64> {
    let tail: [u8; 8] = key.get(key.len().checked_sub(8)?..)?.try_into().ok()?;
    Some(u64::from_be_bytes(tail))
}

/// How long to wait for the store's file lock: sled releases it from a
/// background thread shortly after the last handle is dropped, so a process
/// that reopens a store must wait a moment.
const LOCK_WAIT: Duration = Duration::from_secs(3);

/// Opens (creating if needed) the sled database `name` inside `dir`,
/// waiting briefly for a lock that this process is still releasing.
pub fn open_db(dir: &Path, name: &str) -> Result<sled::Db, OpenError> {
    std::fs::create_dir_all(dir).map_err(|source| OpenError::Create {
        path: dir.to_owned(),
        source,
    })?;
    let path = dir.join(name);
    clear_empty_snapshots(&path);
    let started = Instant::now();
    loop {
        match sled::Config::new().path(&path).cache_capacity(256 * 1024 * 1024).open() {
            Err(sled::Error::Io(e)) if e.kind() == std::io::ErrorKind::Other && started.elapsed() < LOCK_WAIT => {
                std::thread::sleep(Duration::from_millis(20));
            }
            result => return result.map_err(|source| OpenError::Open { path, source }),
        }
    }
}

/// Removes snapshot files that a write on a full disk left empty. An empty
/// snapshot holds nothing, but sled takes it for the latest and refuses to
/// open ("Read corrupted data") until it is gone; without it sled recovers
/// from its log segments and any older snapshot, as after a crash.
fn clear_empty_snapshots(db: &Path) {
    let Ok(entries) = std::fs::read_dir(db) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let empty = entry.metadata().is_ok_and(|m| m.is_file() && m.len() == 0);
        if empty && name.to_string_lossy().starts_with("snap.") {
            tracing::warn!(file = %entry.path().display(), "removing an empty sled snapshot left by a full disk");
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Why a sled database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot create data directory {path}: {source}")]
    Create { path: PathBuf, source: std::io::Error },
    #[error("cannot open store {path} (is another civex using this data directory?): {source}")]
    Open { path: PathBuf, source: sled::Error },
}

/// Opens the log's database and tree in the data directory `data_dir`, for
/// tools and tests that read or edit a stopped gateway's log.
pub fn open_tree(data_dir: &Path) -> Result<(sled::Db, sled::Tree), StoreError> {
    let db = open_db(data_dir, DB_DIR).map_err(StoreError::unavailable)?;
    let tree = db.open_tree(TREE).map_err(StoreError::unavailable)?;
    Ok((db, tree))
}

/// The log in sled. After a failed write it drops its handles (sled does not
/// recover from an IO error in place, and what was not flushed must not be
/// built on) until [`LogStore::reopen`] opens it again from disk.
pub struct SledLog {
    dir: PathBuf,
    open: RwLock<Option<(sled::Db, sled::Tree)>>,
}

impl SledLog {
    /// Opens the log of the data directory `data_dir`.
    pub fn open(data_dir: &Path) -> Result<SledLog, StoreError> {
        Ok(SledLog {
            dir: data_dir.to_owned(),
            open: RwLock::new(Some(open_tree(data_dir)?)),
        })
    }

    fn handles(&self) -> Result<(sled::Db, sled::Tree), StoreError> {
        let open = self.open.read().unwrap_or_else(|p| p.into_inner()).clone();
        open.ok_or_else(|| StoreError::Unavailable("the audit store is being reopened".into()))
    }

    pub(crate) fn tree(&self) -> Result<sled::Tree, StoreError> {
        self.handles().map(|(_, tree)| tree)
    }

    fn scan<T: Send + 'static>(
        &self,
        prefix: Vec<u8>,
        from: Vec<u8>,
        item: impl Fn(&[u8], &[u8]) -> Option<T> + Send + 'static,
    ) -> Scan<'_, T> {
        let tree = match self.tree() {
            Ok(tree) => tree,
            Err(e) => return Box::new(std::iter::once(Err(e))),
        };
        Box::new(
            tree.range(from..)
                .take_while(move |kv| kv.as_ref().map_or(true, |(k, _)| k.starts_with(&prefix)))
                .map(move |kv| {
                    let (k, v) = kv.map_err(StoreError::storage)?;
                    item(&k, &v).ok_or_else(|| StoreError::Storage("malformed key or value".into()))
                }),
        )
    }
}

impl LogStore for SledLog {
    fn append(&self, batch: &Batch, durable: bool) -> Result<(), StoreError> {
        let (db, tree) = self.handles()?;
        let mut writes = sled::Batch::default();
        for (i, leaf) in batch.leaves.iter().enumerate() {
            writes.insert(&record_key(batch.start + i as u64), leaf.as_slice());
        }
        for (level, index, hash) in &batch.nodes {
            writes.insert(&node_key(*level, *index), hash.as_slice());
        }
        for (key, index) in &batch.index {
            let mut k = index_prefix(key);
            k.extend_from_slice(&index.to_be_bytes());
            writes.insert(k, &[]);
        }
        for r in &batch.refusals {
            writes.insert(refusal_key(&r.agency, &r.reason), &r.count.to_be_bytes());
        }
        writes.insert(SIZE_KEY, &batch.size.to_be_bytes());
        if let Some(note) = &batch.checkpoint {
            writes.insert(&checkpoint_key(batch.size), note.as_bytes());
        }
        tree.apply_batch(writes).map_err(StoreError::unavailable)?;
        if durable {
            db.flush().map_err(StoreError::unavailable)?;
        }
        Ok(())
    }

    fn probe(&self, stamp: u64) -> Result<(), StoreError> {
        let (db, tree) = self.handles()?;
        tree.insert(PROBE_KEY, &stamp.to_be_bytes())
            .map_err(StoreError::unavailable)?;
        db.flush().map_err(StoreError::unavailable)?;
        Ok(())
    }

    fn discard(&self) {
        let handles = self.open.write().unwrap_or_else(|p| p.into_inner()).take();
        // Dropped outside the lock: readers fail at once instead of waiting for sled.
        drop(handles);
    }

    fn reopen(&self) -> Result<(), StoreError> {
        if self.open.read().unwrap_or_else(|p| p.into_inner()).is_some() {
            return Ok(());
        }
        // Opened outside the lock (it may wait for sled's file lock); only
        // the writer reopens, so no other open can race this one.
        let handles = open_tree(&self.dir)?;
        *self.open.write().unwrap_or_else(|p| p.into_inner()) = Some(handles);
        Ok(())
    }

    fn size(&self) -> Result<u64, StoreError> {
        Ok(self
            .tree()?
            .get(SIZE_KEY)
            .map_err(StoreError::storage)?
            .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map(u64::from_be_bytes)
            .unwrap_or(0))
    }

    fn leaf(&self, index: u64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .tree()?
            .get(record_key(index))
            .map_err(StoreError::storage)?
            .map(|v| v.to_vec()))
    }

    fn node(&self, level: u32, index: u64) -> Result<Option<Hash>, StoreError> {
        let v = self.tree()?.get(node_key(level, index)).map_err(StoreError::storage)?;
        Ok(v.and_then(|v| <Hash>::try_from(v.as_ref()).ok()))
    }

    fn scan_leaves(&self, visit: &mut dyn FnMut(u64, &[u8]) -> ControlFlow<()>) -> Result<(), StoreError> {
        for kv in self.tree()?.scan_prefix(b"r") {
            let (k, leaf) = kv.map_err(StoreError::storage)?;
            // A key that holds no index sorts after every record: report it as one.
            if visit(index_suffix(&k).unwrap_or(u64::MAX), &leaf).is_break() {
                break;
            }
        }
        Ok(())
    }

    fn level(&self, level: u32) -> Scan<'_, (u64, Hash)> {
        let prefix = node_key(level, 0)[..2].to_vec();
        self.scan(prefix.clone(), prefix, |k, v| {
            Some((index_suffix(k)?, <Hash>::try_from(v).ok()?))
        })
    }

    fn checkpoints(&self) -> Result<Vec<(u64, String)>, StoreError> {
        self.tree()?
            .scan_prefix(b"k")
            .map(|kv| {
                let (k, v) = kv.map_err(StoreError::storage)?;
                Ok((index_suffix(&k).unwrap_or(0), String::from_utf8_lossy(&v).into_owned()))
            })
            .collect()
    }

    fn indexed(&self, key: &IndexKey, from: u64) -> Scan<'_, u64> {
        let prefix = index_prefix(key);
        let mut start = prefix.clone();
        start.extend_from_slice(&from.to_be_bytes());
        self.scan(prefix, start, |k, _| index_suffix(k))
    }

    fn refusals(&self) -> Result<Vec<RefusalCount>, StoreError> {
        self.tree()?
            .scan_prefix(b"d")
            .filter_map(|kv| {
                let (k, v) = match kv {
                    Ok(kv) => kv,
                    Err(e) => return Some(Err(StoreError::storage(e))),
                };
                let rest = k.get(1..)?;
                let split = rest.iter().position(|b| *b == 0)?;
                Some(Ok(RefusalCount {
                    agency: String::from_utf8_lossy(&rest[..split]).into_owned(),
                    reason: String::from_utf8_lossy(&rest[split + 1..]).into_owned(),
                    count: <[u8; 8]>::try_from(v.as_ref()).map(u64::from_be_bytes).unwrap_or(0),
                }))
            })
            .collect()
    }
}
