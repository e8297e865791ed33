//! Commitments (告知承诺, DESIGN §15) in a sled database of their own
//! (`commitments/` in the data directory). The embedded engine has one
//! writer, so a verification claim lives in memory.
//!
//! | tree | key | value |
//! |---|---|---|
//! | `commitments` | commitment id | the [`StoredCommitment`], JSON |
//! | `pending` | `verify_after` (ns, u64 BE) ‖ id | — |
//! | `by_agency` | agency ‖ 0 ‖ id | — |
//! | `found_false` | agency ‖ 0 ‖ citizen pseudonym ‖ 0 ‖ id | — |

use std::{
    collections::HashMap,
    path::Path,
    sync::{Mutex, PoisonError},
    time::SystemTime,
};

use async_trait::async_trait;
use civex_proto::v1::CommitmentState;
use sled::{Transactional, transaction::ConflictableTransactionError};

use crate::{
    clock::timestamp,
    store::{CommitmentFilter, CommitmentStore, StoreError, StoredCommitment},
};

pub const DIR: &str = "commitments";

pub struct SledCommitments {
    db: sled::Db,
    commitments: sled::Tree,
    pending: sled::Tree,
    by_agency: sled::Tree,
    found_false: sled::Tree,
    /// Commitment id → until when it is being verified.
    claims: Mutex<HashMap<String, SystemTime>>,
}

fn nanos(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn joined(prefix: &str, id: &str) -> Vec<u8> {
    [prefix.as_bytes(), &[0], id.as_bytes()].concat()
}

/// `a` ‖ 0 ‖ `b`, as text (agency codes and pseudonyms hold no 0 byte).
fn joined_str(a: &str, b: &str) -> String {
    format!("{a}\0{b}")
}

fn pending_key(c: &StoredCommitment) -> Vec<u8> {
    let due = c
        .commitment
        .verify_after
        .as_ref()
        .and_then(crate::clock::system_time)
        .map_or(0, nanos);
    [&due.to_be_bytes()[..], c.id().as_bytes()].concat()
}

fn decode(bytes: &[u8]) -> Result<StoredCommitment, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError(format!("a stored commitment is corrupt: {e}")))
}

fn encode(c: &StoredCommitment) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(c).map_err(StoreError::new)
}

impl SledCommitments {
    pub fn open(dir: &Path) -> Result<SledCommitments, StoreError> {
        let db = civex_audit::embedded::open_db(dir, DIR).map_err(StoreError::new)?;
        let tree = |name: &str| db.open_tree(name).map_err(StoreError::new);
        Ok(SledCommitments {
            commitments: tree("commitments")?,
            pending: tree("pending")?,
            by_agency: tree("by_agency")?,
            found_false: tree("found_false")?,
            db,
            claims: Mutex::new(HashMap::new()),
        })
    }

    fn read(&self, id: &[u8]) -> Result<Option<StoredCommitment>, StoreError> {
        self.commitments
            .get(id)
            .map_err(StoreError::new)?
            .map(|v| decode(&v))
            .transpose()
    }

    async fn flush(&self) -> Result<(), StoreError> {
        self.db.flush_async().await.map(drop).map_err(StoreError::new)
    }
}

#[async_trait]
impl CommitmentStore for SledCommitments {
    async fn insert(&self, c: &StoredCommitment) -> Result<(), StoreError> {
        let value = encode(c)?;
        (&self.commitments, &self.pending, &self.by_agency)
            .transaction(|(commitments, pending, by_agency)| {
                commitments.insert(c.id().as_bytes(), value.as_slice())?;
                pending.insert(pending_key(c), &[][..])?;
                by_agency.insert(joined(&c.agency, c.id()), &[][..])?;
                Ok::<_, ConflictableTransactionError<StoreError>>(())
            })
            .map_err(|e| StoreError(format!("storing a commitment: {e:?}")))?;
        self.flush().await
    }

    async fn get(&self, id: &str) -> Result<Option<StoredCommitment>, StoreError> {
        self.read(id.as_bytes())
    }

    async fn list(
        &self,
        agency: &str,
        filter: CommitmentFilter,
        after: &str,
        limit: usize,
    ) -> Result<Vec<StoredCommitment>, StoreError> {
        let prefix = joined(agency, "");
        let start = std::ops::Bound::Excluded(joined(agency, after));
        let mut found = Vec::new();
        for key in self.by_agency.range((start, std::ops::Bound::Unbounded)).keys() {
            let key = key.map_err(StoreError::new)?;
            if !key.starts_with(&prefix) || found.len() == limit {
                break;
            }
            let Some(c) = self.read(&key[prefix.len()..])? else {
                continue;
            };
            let recorded = c
                .commitment
                .recorded_at
                .as_ref()
                .and_then(crate::clock::system_time)
                .unwrap_or(SystemTime::UNIX_EPOCH);
            if recorded >= filter.since && filter.state.is_none_or(|s| s == c.state()) {
                found.push(c);
            }
        }
        Ok(found)
    }

    async fn due(&self, now: SystemTime, limit: usize) -> Result<Vec<StoredCommitment>, StoreError> {
        let end = (nanos(now) + 1).to_be_bytes();
        let claims = self.claims.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let mut found = Vec::new();
        for key in self.pending.range(..end.as_slice()).keys() {
            let key = key.map_err(StoreError::new)?;
            let id = &key[8..];
            let claimed = std::str::from_utf8(id)
                .ok()
                .and_then(|id| claims.get(id))
                .is_some_and(|until| *until > now);
            if claimed {
                continue;
            }
            if let Some(c) = self.read(id)? {
                found.push(c);
            }
            if found.len() == limit {
                break;
            }
        }
        Ok(found)
    }

    async fn claim(&self, id: &str, now: SystemTime, until: SystemTime) -> Result<bool, StoreError> {
        let pending = self
            .read(id.as_bytes())?
            .is_some_and(|c| c.state() == CommitmentState::CommitmentPending);
        let mut claims = self.claims.lock().unwrap_or_else(PoisonError::into_inner);
        claims.retain(|_, until| *until > now);
        if !pending || claims.contains_key(id) {
            return Ok(false);
        }
        claims.insert(id.to_owned(), until);
        Ok(true)
    }

    async fn settle(&self, id: &str, state: CommitmentState, at: SystemTime) -> Result<bool, StoreError> {
        let settled = (&self.commitments, &self.pending, &self.found_false)
            .transaction(|(commitments, pending, found_false)| {
                let Some(stored) = commitments.get(id.as_bytes())? else {
                    return Ok(false);
                };
                let mut c = decode(&stored).map_err(ConflictableTransactionError::Abort)?;
                if c.state() != CommitmentState::CommitmentPending {
                    return Ok(false);
                }
                pending.remove(pending_key(&c))?;
                c.commitment.set_state(state);
                c.commitment.settled_at = Some(timestamp(at));
                commitments.insert(id.as_bytes(), encode(&c).map_err(ConflictableTransactionError::Abort)?)?;
                if state == CommitmentState::CommitmentFalse {
                    found_false.insert(joined(&joined_str(&c.agency, &c.citizen_ref), id), &[][..])?;
                }
                Ok(true)
            })
            .map_err(|e| StoreError(format!("settling a commitment: {e:?}")))?;
        self.claims.lock().unwrap_or_else(PoisonError::into_inner).remove(id);
        self.flush().await?;
        Ok(settled)
    }

    async fn found_false(&self, agency: &str, citizen_ref: &str) -> Result<bool, StoreError> {
        let prefix = joined(&joined_str(agency, citizen_ref), "");
        Ok(self.found_false.scan_prefix(prefix).next().is_some())
    }
}
