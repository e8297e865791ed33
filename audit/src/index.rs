//! Keeping the search indexes and refusal counters up with the log, off the
//! answer's path: the background thread files each committed run of
//! records after it is answered, and a search walks the index up to where
//! it is filed and the log itself after that, so a lagging index never
//! hides a record.

use std::{collections::HashMap, sync::Arc};

use civex_proto::v1::{AuditRecord, Decision};

use crate::{
    AuditError, decode,
    store::{IndexKey, IndexStore, LogStore, RefusalCount},
};

/// Records filed per write to the index store.
const CHUNK: u64 = 4096;

/// The keys that find `record`: its citizen, each related person (their
/// history shows the access too) and its agency.
pub(crate) fn keys(record: &AuditRecord) -> impl Iterator<Item = IndexKey> + '_ {
    std::iter::once(&record.citizen_ref)
        .chain(&record.related_refs)
        .filter(|c| !c.is_empty())
        .map(|c| IndexKey::Citizen(c.clone()))
        .chain(std::iter::once(IndexKey::Agency(record.agency.clone())))
}

/// The indexes as filed so far, with the refusal totals they hold.
pub struct Indexer {
    index: Arc<dyn IndexStore>,
    refusals: HashMap<(String, String), u64>,
    size: u64,
}

impl Indexer {
    /// Picks up where `index` left off; an index ahead of a log of `log_size`
    /// records (a log cut back to its last durable batch) is rebuilt.
    pub fn open(index: Arc<dyn IndexStore>, log_size: u64) -> Result<Indexer, AuditError> {
        let mut size = index.indexed_size()?;
        if size > log_size {
            tracing::warn!(
                indexed = size,
                log = log_size,
                "the search index is ahead of the log; rebuilding it"
            );
            index.clear()?;
            size = 0;
        }
        let refusals = index
            .refusals()?
            .into_iter()
            .map(|r| ((r.agency, r.reason), r.count))
            .collect();
        Ok(Indexer { index, refusals, size })
    }

    /// Picks up what another gateway filed in a shared index since.
    pub fn refresh(&mut self) -> Result<(), AuditError> {
        if self.index.indexed_size()? > self.size {
            *self = Indexer::open(self.index.clone(), u64::MAX)?;
        }
        Ok(())
    }

    /// The log size through which records are filed.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Refusals per agency and reason through [`Indexer::size`].
    pub(crate) fn refusals(&self) -> &HashMap<(String, String), u64> {
        &self.refusals
    }

    /// Files the next records of `store` toward `to`, at most [`CHUNK`] of them.
    pub fn catch_up(&mut self, store: &dyn LogStore, to: u64) -> Result<(), AuditError> {
        if self.size < to {
            let end = to.min(self.size + CHUNK);
            let mut entries = Vec::new();
            let mut changed: HashMap<(String, String), u64> = HashMap::new();
            for index in self.size..end {
                let record = decode(store, index)?;
                entries.extend(keys(&record).map(|k| (k, index)));
                if record.decision == Decision::Deny as i32 {
                    let key = (record.agency, record.reason);
                    let before = self.refusals.get(&key).copied().unwrap_or(0);
                    *changed.entry(key).or_insert(before) += 1;
                }
            }
            let mut totals = self.refusals.clone();
            totals.extend(changed);
            let refusals: Vec<RefusalCount> = totals
                .iter()
                .map(|((agency, reason), count)| RefusalCount {
                    agency: agency.clone(),
                    reason: reason.clone(),
                    count: *count,
                })
                .collect();
            self.index.add(&entries, &refusals, end)?;
            self.refusals = totals;
            self.size = end;
        }
        Ok(())
    }
}

/// Drops the indexes of `index` and files the whole log again (`civex audit
/// reindex`); returns the number of records filed.
pub fn reindex(store: &dyn LogStore, index: Arc<dyn IndexStore>) -> Result<u64, AuditError> {
    index.clear()?;
    let size = store.size()?;
    let mut indexer = Indexer::open(index.clone(), size)?;
    while indexer.size() < size {
        indexer.catch_up(store, size)?;
    }
    index.flush()?;
    Ok(size)
}
