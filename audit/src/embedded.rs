//! The embedded engine's sled parts: opening a sled database in the data
//! directory, and the search indexes ([`SledIndex`]) in one of their own
//! (`audit-index/`). The log itself is in files ([`crate::tiles`]).
//!
//! | key | value |
//! |---|---|
//! | `c` ‖ citizen_ref ‖ index | (search index) |
//! | `a` ‖ agency ‖ 0 ‖ index | (search index) |
//! | `m` `indexed` | the log size through which records are indexed, and every refusal counter |
//!
//! Indices are big-endian so keys sort in log order. Nothing here is a
//! sled batch or transaction: the first of those in a process makes every
//! sled operation in it take one global lock, which the request path's
//! registry reads would then wait on. Entries are inserted one by one (an
//! entry filed twice is the same key) and the watermark with the counters
//! last, in one key.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use crate::store::{IndexKey, IndexStore, RefusalCount, Scan, StoreError};

/// The search indexes' own sled database inside the data directory.
pub const INDEX_DIR: &str = "audit-index";
/// The tree that holds them.
const TREE: &str = "index";

const INDEXED_KEY: &[u8] = b"mindexed";

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

/// The watermark and counters as stored: size, then per counter
/// `u16 len ‖ agency ‖ u16 len ‖ reason ‖ u64 count`, all big-endian.
fn encode_state(size: u64, refusals: &[RefusalCount]) -> Vec<u8> {
    let mut out = size.to_be_bytes().to_vec();
    for r in refusals {
        for text in [&r.agency, &r.reason] {
            out.extend_from_slice(&(text.len() as u16).to_be_bytes());
            out.extend_from_slice(text.as_bytes());
        }
        out.extend_from_slice(&r.count.to_be_bytes());
    }
    out
}

fn decode_state(bytes: &[u8]) -> Option<(u64, Vec<RefusalCount>)> {
    let size = u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?);
    let mut rest = &bytes[8..];
    let text = |rest: &mut &[u8]| -> Option<String> {
        let len = u16::from_be_bytes(rest.get(..2)?.try_into().ok()?) as usize;
        let s = String::from_utf8_lossy(rest.get(2..2 + len)?).into_owned();
        *rest = &rest[2 + len..];
        Some(s)
    };
    let mut refusals = Vec::new();
    while !rest.is_empty() {
        let agency = text(&mut rest)?;
        let reason = text(&mut rest)?;
        let count = u64::from_be_bytes(rest.get(..8)?.try_into().ok()?);
        rest = &rest[8..];
        refusals.push(RefusalCount { agency, reason, count });
    }
    Some((size, refusals))
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

/// The search indexes in sled.
pub struct SledIndex {
    dir: PathBuf,
    /// Opened on first use: recovering a large sled database takes seconds,
    /// and the first user is the log's background thread, not start-up.
    open: std::sync::OnceLock<Result<(sled::Db, sled::Tree), StoreError>>,
}

impl SledIndex {
    /// The indexes of the data directory `data_dir`, opened on first use.
    pub fn open(data_dir: &Path) -> Result<SledIndex, StoreError> {
        Ok(SledIndex {
            dir: data_dir.to_owned(),
            open: std::sync::OnceLock::new(),
        })
    }

    fn handles(&self) -> Result<&(sled::Db, sled::Tree), StoreError> {
        self.open
            .get_or_init(|| {
                let db = open_db(&self.dir, INDEX_DIR).map_err(StoreError::unavailable)?;
                let tree = db.open_tree(TREE).map_err(StoreError::unavailable)?;
                Ok((db, tree))
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    fn tree(&self) -> Result<&sled::Tree, StoreError> {
        self.handles().map(|(_, tree)| tree)
    }

    fn scan<T: Send + 'static>(
        &self,
        prefix: Vec<u8>,
        from: Vec<u8>,
        item: impl Fn(&[u8]) -> Option<T> + Send + 'static,
    ) -> Scan<'_, T> {
        let tree = match self.tree() {
            Ok(tree) => tree,
            Err(e) => return Box::new(std::iter::once(Err(e))),
        };
        Box::new(
            tree.range(from..)
                .take_while(move |kv| kv.as_ref().map_or(true, |(k, _)| k.starts_with(&prefix)))
                .map(move |kv| {
                    let (k, _) = kv.map_err(StoreError::storage)?;
                    item(&k).ok_or_else(|| StoreError::Storage("malformed index key".into()))
                }),
        )
    }
}

impl SledIndex {
    fn state(&self) -> Result<(u64, Vec<RefusalCount>), StoreError> {
        match self.tree()?.get(INDEXED_KEY).map_err(StoreError::storage)? {
            None => Ok((0, Vec::new())),
            Some(v) => decode_state(&v).ok_or_else(|| StoreError::Storage("malformed index watermark".into())),
        }
    }
}

impl IndexStore for SledIndex {
    fn indexed_size(&self) -> Result<u64, StoreError> {
        Ok(self.state()?.0)
    }

    fn add(&self, entries: &[(IndexKey, u64)], refusals: &[RefusalCount], size: u64) -> Result<(), StoreError> {
        for (key, index) in entries {
            let mut k = index_prefix(key);
            k.extend_from_slice(&index.to_be_bytes());
            self.tree()?.insert(k, &[]).map_err(StoreError::unavailable)?;
        }
        self.tree()?
            .insert(INDEXED_KEY, encode_state(size, refusals))
            .map_err(StoreError::unavailable)?;
        Ok(())
    }

    fn indexed(&self, key: &IndexKey, from: u64) -> Scan<'_, u64> {
        let prefix = index_prefix(key);
        let mut start = prefix.clone();
        start.extend_from_slice(&from.to_be_bytes());
        self.scan(prefix, start, index_suffix)
    }

    fn refusals(&self) -> Result<Vec<RefusalCount>, StoreError> {
        Ok(self.state()?.1)
    }

    fn clear(&self) -> Result<(), StoreError> {
        self.tree()?.clear().map_err(StoreError::unavailable)?;
        self.flush()
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.handles()?.0.flush().map(drop).map_err(StoreError::unavailable)
    }
}

/// The sled database that held the log before it moved to tiles.
pub const OLD_LOG_DIR: &str = "audit";
/// Where the old database is kept once its records are in the tiles.
pub const MIGRATED_LOG_DIR: &str = "audit.sled-migrated";

/// Moves a log kept in the older sled layout (`<data>/audit`: records under
/// `r` ‖ index, checkpoints under `k` ‖ size) into `log`, which must be
/// empty: the same leaves in the same order, so every checkpoint signed
/// before still verifies, each stored at its size. The old database is then
/// renamed to [`MIGRATED_LOG_DIR`], kept for whoever wants to compare.
/// Returns the number of records moved, if there was anything to move.
pub fn migrate_sled_log(data_dir: &Path, log: &crate::tiles::TileLog) -> Result<Option<u64>, StoreError> {
    use crate::{
        merkle::{self, Frontier},
        store::{Batch, LogStore},
    };
    let old = data_dir.join(OLD_LOG_DIR);
    if !old.join("conf").exists() {
        return Ok(None);
    }
    if log.size()? != 0 {
        return Err(StoreError::Storage(format!(
            "{} holds an audit log in the older layout, and {} is not empty: move one of them away",
            old.display(),
            log.dir().display()
        )));
    }
    let db = open_db(data_dir, OLD_LOG_DIR).map_err(StoreError::unavailable)?;
    let tree = db.open_tree("audit").map_err(StoreError::unavailable)?;
    let suffix = |k: &[u8]| k.get(1..9).and_then(|t| t.try_into().ok()).map(u64::from_be_bytes);
    let mut checkpoints = std::collections::BTreeMap::new();
    for kv in tree.scan_prefix(b"k") {
        let (k, v) = kv.map_err(StoreError::storage)?;
        let size = suffix(&k).ok_or_else(|| StoreError::Storage("malformed old checkpoint key".into()))?;
        checkpoints.insert(size, String::from_utf8_lossy(&v).into_owned());
    }
    let mut frontier = Frontier::default();
    let mut batch = Batch::default();
    let flush = |batch: &mut Batch, frontier: &Frontier| -> Result<(), StoreError> {
        batch.size = frontier.size();
        batch.checkpoint = checkpoints.get(&batch.size).cloned();
        log.append(batch, false)?;
        *batch = Batch {
            start: frontier.size(),
            ..Batch::default()
        };
        Ok(())
    };
    for kv in tree.scan_prefix(b"r") {
        let (k, leaf) = kv.map_err(StoreError::storage)?;
        if suffix(&k) != Some(frontier.size()) {
            return Err(StoreError::Storage(format!(
                "the old audit log lacks record {}: run `civex audit verify` on a copy of it",
                frontier.size()
            )));
        }
        frontier.push(merkle::leaf_hash(&leaf), |level, index, hash| {
            batch.nodes.push((level, index, *hash))
        });
        batch.leaves.push(leaf.to_vec());
        if batch.leaves.len() >= 4096 || checkpoints.contains_key(&frontier.size()) {
            flush(&mut batch, &frontier)?;
        }
    }
    if !batch.leaves.is_empty() {
        flush(&mut batch, &frontier)?;
    }
    // One fsync for everything: an empty batch that carries nothing but durability.
    log.append(
        &Batch {
            start: frontier.size(),
            size: frontier.size(),
            ..Batch::default()
        },
        true,
    )?;
    log.integrate()?;
    drop((tree, db));
    std::fs::rename(&old, data_dir.join(MIGRATED_LOG_DIR)).map_err(StoreError::unavailable)?;
    tracing::info!(records = frontier.size(), "audit log moved from sled into tiles");
    Ok(Some(frontier.size()))
}
