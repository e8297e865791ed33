//! What a storage engine keeps for the log, and the two traits it implements.
//!
//! The writer ([`crate::writer`]) decides everything about a batch: where
//! its records land, the Merkle nodes they complete and any checkpoint. A
//! [`LogStore`] only stores a [`Batch`] all or nothing, durably, and reads
//! back what it stored; the embedded one is [`crate::tiles::TileLog`]. The
//! search indexes and refusal counters are an [`IndexStore`], written after
//! the log by [`crate::index`] and rebuilt from it when lost; the embedded
//! one is [`crate::embedded::SledIndex`]. A database engine implements both
//! over its own tables.

use std::ops::ControlFlow;

use crate::merkle::Hash;

/// Why the log store could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// A write failed or the store is closed after one: nothing may be
    /// answered until [`LogStore::reopen`] succeeds.
    #[error("{0}")]
    Unavailable(String),
    /// A read failed or found something the store could not have written.
    #[error("{0}")]
    Storage(String),
}

impl StoreError {
    pub fn unavailable(e: impl std::fmt::Display) -> StoreError {
        StoreError::Unavailable(e.to_string())
    }

    pub fn storage(e: impl std::fmt::Display) -> StoreError {
        StoreError::Storage(e.to_string())
    }
}

/// A search index: the records of one citizen (by pseudonym) or one agency.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum IndexKey {
    Citizen(String),
    Agency(String),
}

/// Refusals of one agency for one reason, counted over the whole log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusalCount {
    pub agency: String,
    pub reason: String,
    pub count: u64,
}

/// One group commit: everything that becomes durable together.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    /// The index of the first leaf.
    pub start: u64,
    /// Leaf bytes (encoded `AuditRecord`s) at `start`, `start + 1`, ...
    pub leaves: Vec<Vec<u8>>,
    /// Merkle nodes the leaves complete: (level, index, hash), leaves included.
    pub nodes: Vec<(u32, u64, Hash)>,
    /// The tree size once the batch is stored.
    pub size: u64,
    /// A signed checkpoint note of the tree at `size`.
    pub checkpoint: Option<String>,
}

/// Stored leaves, nodes or indices in index order, as an engine reads them back.
pub type Scan<'a, T> = Box<dyn Iterator<Item = Result<T, StoreError>> + Send + 'a>;

/// Where the log lives. Methods block: they are called from the writer's
/// thread, at start, and by readers for short lookups. An engine whose
/// client is asynchronous runs it on its own runtime and waits here.
pub trait LogStore: Send + Sync + 'static {
    /// Stores `batch` all or nothing; with `durable`, only returns once it
    /// would survive a crash (one fsync or commit). After an error the store
    /// may hold less than it was asked to: the writer calls
    /// [`LogStore::discard`] and builds only on what [`LogStore::reopen`] finds.
    fn append(&self, batch: &Batch, durable: bool) -> Result<(), StoreError>;

    /// A small durable write, to tell a store that can be written from one that cannot.
    fn probe(&self, stamp: u64) -> Result<(), StoreError>;

    /// Closes the store after a failed write, so that nothing is built on
    /// what may not be durable: readers get `Unavailable` until [`LogStore::reopen`].
    fn discard(&self);

    /// Opens the store again from what is durable (nothing to do if it is open).
    fn reopen(&self) -> Result<(), StoreError>;

    /// The number of durable records.
    fn size(&self) -> Result<u64, StoreError>;

    /// The number of records the stored Merkle nodes and checkpoints cover:
    /// [`LogStore::size`], except in a [`crate::shared::SharedLog`], whose
    /// newest records get into the tree after they are answered.
    fn tree_size(&self) -> Result<u64, StoreError> {
        self.size()
    }

    /// The leaf bytes stored at `index`.
    fn leaf(&self, index: u64) -> Result<Option<Vec<u8>>, StoreError>;

    /// The Merkle node at (`level`, `index`), if that subtree is complete.
    fn node(&self, level: u32, index: u64) -> Result<Option<Hash>, StoreError>;

    /// The complete nodes of `level` from `from` up to `to` (what a hash
    /// tile holds), stopping at the first that is not.
    fn hashes(&self, level: u32, from: u64, to: u64) -> Result<Vec<Hash>, StoreError> {
        (from..to).map_while(|i| self.node(level, i).transpose()).collect()
    }

    /// Shows `visit` every stored leaf, by index, including any past the
    /// committed size (verification reports those), until it breaks. The
    /// leaf is lent, not copied: verification reads every record.
    fn scan_leaves(&self, visit: &mut dyn FnMut(u64, &[u8]) -> ControlFlow<()>) -> Result<(), StoreError>;

    /// Every stored node of `level`, by index; `None` for a level the
    /// engine does not store but computes from another.
    fn level(&self, level: u32) -> Option<Scan<'_, (u64, Hash)>>;

    /// Every stored checkpoint note with the tree size it was stored under, by size.
    fn checkpoints(&self) -> Result<Vec<(u64, String)>, StoreError>;

    /// The newest stored checkpoint note and its size.
    fn latest_checkpoint(&self) -> Result<Option<(u64, String)>, StoreError>;

    /// Moves what is durable into the engine's long-term layout (the
    /// embedded engine writes its tiles). Called off the answer's path,
    /// after checkpoints; nothing is lost if it fails or never runs.
    fn integrate(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// The search indexes and refusal counters: derived from the log, written
/// after it (an entry may lag behind its record, never the other way), and
/// rebuilt from it when lost (`civex audit reindex`).
pub trait IndexStore: Send + Sync + 'static {
    /// The log size through which every record is indexed.
    fn indexed_size(&self) -> Result<u64, StoreError>;

    /// Files the index entries of the records up to `size`, then `size`
    /// with every refusal counter's total at once: entries past the stored
    /// `size` may remain after a crash, and are filed again (the same entry
    /// twice is one). Need not be durable: after a crash the log is indexed
    /// again from the last `size` that was.
    fn add(&self, entries: &[(IndexKey, u64)], refusals: &[RefusalCount], size: u64) -> Result<(), StoreError>;

    /// The indices filed under `key`, at or after `from`, ascending.
    fn indexed(&self, key: &IndexKey, from: u64) -> Scan<'_, u64>;

    /// Every refusal counter.
    fn refusals(&self) -> Result<Vec<RefusalCount>, StoreError>;

    /// Drops every entry and counter, to rebuild them.
    fn clear(&self) -> Result<(), StoreError>;

    /// Makes what was added durable.
    fn flush(&self) -> Result<(), StoreError>;
}
