//! Objections and corrections (校核纠错, DESIGN §16) in a sled database of
//! their own (`corrections/` in the data directory).
//!
//! | tree | key | value |
//! |---|---|---|
//! | `objections` | objection id | the [`StoredObjection`], JSON |
//! | `by_department` | department ‖ 0 ‖ objection id | — |
//! | `corrections` | agency ‖ 0 ‖ correction id | the [`StoredCorrection`], JSON |

use std::{path::Path, time::SystemTime};

use async_trait::async_trait;
use civex_proto::v1::ObjectionState;
use serde::{Serialize, de::DeserializeOwned};
use sled::{Transactional, transaction::ConflictableTransactionError};

use crate::{
    clock::system_time,
    store::{CorrectionStore, StoreError, StoredCorrection, StoredObjection},
};

pub const DIR: &str = "corrections";

pub struct SledCorrections {
    db: sled::Db,
    objections: sled::Tree,
    by_department: sled::Tree,
    corrections: sled::Tree,
}

fn joined(prefix: &str, id: &str) -> Vec<u8> {
    [prefix.as_bytes(), &[0], id.as_bytes()].concat()
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError(format!("a stored objection or correction is corrupt: {e}")))
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(StoreError::new)
}

/// The values under `prefix` ‖ 0 after `after` in `tree` that `keep`, at most `limit`.
fn scan<T: DeserializeOwned>(
    tree: &sled::Tree,
    prefix: &str,
    after: &str,
    limit: usize,
    mut value: impl FnMut(&[u8], sled::IVec) -> Result<Option<T>, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let start = joined(prefix, "");
    let from = std::ops::Bound::Excluded(joined(prefix, after));
    let mut found = Vec::new();
    for item in tree.range((from, std::ops::Bound::Unbounded)) {
        let (key, stored) = item.map_err(StoreError::new)?;
        if !key.starts_with(&start) || found.len() == limit {
            break;
        }
        if let Some(v) = value(&key[start.len()..], stored)? {
            found.push(v);
        }
    }
    Ok(found)
}

impl SledCorrections {
    pub fn open(dir: &Path) -> Result<SledCorrections, StoreError> {
        let db = civex_audit::embedded::open_db(dir, DIR).map_err(StoreError::new)?;
        let tree = |name: &str| db.open_tree(name).map_err(StoreError::new);
        Ok(SledCorrections {
            objections: tree("objections")?,
            by_department: tree("by_department")?,
            corrections: tree("corrections")?,
            db,
        })
    }

    async fn flush(&self) -> Result<(), StoreError> {
        self.db.flush_async().await.map(drop).map_err(StoreError::new)
    }
}

#[async_trait]
impl CorrectionStore for SledCorrections {
    async fn open(&self, o: &StoredObjection) -> Result<(), StoreError> {
        let value = encode(o)?;
        (&self.objections, &self.by_department)
            .transaction(|(objections, by_department)| {
                objections.insert(o.id().as_bytes(), value.as_slice())?;
                by_department.insert(joined(&o.objection.department, o.id()), &[][..])?;
                Ok::<_, ConflictableTransactionError<StoreError>>(())
            })
            .map_err(|e| StoreError(format!("storing an objection: {e:?}")))?;
        self.flush().await
    }

    async fn objection(&self, id: &str) -> Result<Option<StoredObjection>, StoreError> {
        self.objections
            .get(id.as_bytes())
            .map_err(StoreError::new)?
            .map(|v| decode(&v))
            .transpose()
    }

    async fn objections(
        &self,
        department: &str,
        state: Option<ObjectionState>,
        after: &str,
        limit: usize,
    ) -> Result<Vec<StoredObjection>, StoreError> {
        scan(&self.by_department, department, after, limit, |id, _| {
            let Some(stored) = self.objections.get(id).map_err(StoreError::new)? else {
                return Ok(None);
            };
            let o: StoredObjection = decode(&stored)?;
            Ok(state.is_none_or(|s| s == o.objection.state()).then_some(o))
        })
    }

    async fn resolve(&self, resolved: &StoredObjection, corrections: &[StoredCorrection]) -> Result<bool, StoreError> {
        let value = encode(resolved)?;
        let sent = corrections
            .iter()
            .map(|c| Ok((joined(&c.agency, &c.correction.correction_id), encode(c)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        let done = (&self.objections, &self.corrections)
            .transaction(|(objections, stored)| {
                let Some(current) = objections.get(resolved.id().as_bytes())? else {
                    return Ok(false);
                };
                let current: StoredObjection = decode(&current).map_err(ConflictableTransactionError::Abort)?;
                if current.objection.state() != ObjectionState::ObjectionOpen {
                    return Ok(false);
                }
                objections.insert(resolved.id().as_bytes(), value.as_slice())?;
                for (key, value) in &sent {
                    stored.insert(key.as_slice(), value.as_slice())?;
                }
                Ok(true)
            })
            .map_err(|e| StoreError(format!("resolving an objection: {e:?}")))?;
        self.flush().await?;
        Ok(done)
    }

    async fn corrections(
        &self,
        agency: &str,
        since: SystemTime,
        after: &str,
        limit: usize,
    ) -> Result<Vec<StoredCorrection>, StoreError> {
        scan(&self.corrections, agency, after, limit, |_, stored| {
            let c: StoredCorrection = decode(&stored)?;
            let at = c.correction.corrected_at.as_ref().and_then(system_time);
            Ok(at.is_some_and(|t| t >= since).then_some(c))
        })
    }
}
