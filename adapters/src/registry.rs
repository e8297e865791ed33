//! The embedded department registry: one sled tree per department, keyed by
//! citizen ID, holding that department's facts about each citizen.

use std::collections::BTreeMap;

use async_trait::async_trait;
use civex_proto::v1::Fact;
use serde::{Deserialize, Serialize};

use crate::{Adapter, AdapterError, Attribute, Department, value};

/// What a department holds about one citizen.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// When the department last confirmed the record, in seconds since the Unix epoch.
    pub as_of: i64,
    /// Attribute name to value; an absent attribute is not recorded.
    pub facts: BTreeMap<String, serde_json::Value>,
}

/// A department's facts, stored in the gateway's own sled database.
#[derive(Debug, Clone)]
pub struct EmbeddedRegistry {
    department: Department,
    tree: sled::Tree,
}

/// The tree that maps each department's code to the name of its current
/// registry tree (a registry replaced by [`Replacement`] lives in a new tree).
const CURRENT: &str = "registries";

/// The name of `department`'s current registry tree.
fn current_tree(db: &sled::Db, department: Department) -> sled::Result<Vec<u8>> {
    let pointers = db.open_tree(CURRENT)?;
    Ok(match pointers.get(department.code())? {
        Some(name) => name.to_vec(),
        None => format!("registry/{}", department.code()).into_bytes(),
    })
}

impl EmbeddedRegistry {
    /// Opens (or creates) the registry of `department` in `db`.
    pub fn open(db: &sled::Db, department: Department) -> sled::Result<Self> {
        let tree = db.open_tree(current_tree(db, department)?)?;
        Ok(EmbeddedRegistry { department, tree })
    }

    /// Number of citizens this registry holds a record for.
    pub fn len(&self) -> usize {
        self.tree.len()
    }

    /// Whether the registry holds no record at all.
    pub fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }

    /// Writes all `records` in one atomic batch and flushes it: after an
    /// error or a crash either every record is in or none is.
    pub fn import(&self, records: impl IntoIterator<Item = (String, Record)>) -> Result<usize, AdapterError> {
        let mut batch = sled::Batch::default();
        let mut count = 0;
        for (citizen_id, record) in records {
            let bytes = serde_json::to_vec(&record).map_err(|e| self.storage(e))?;
            batch.insert(citizen_id.as_bytes(), bytes);
            count += 1;
        }
        self.tree.apply_batch(batch).map_err(|e| self.storage(e))?;
        self.tree.flush().map_err(|e| self.storage(e))?;
        Ok(count)
    }

    /// The record held for `citizen_id`, if any.
    pub fn record(&self, citizen_id: &str) -> Result<Option<Record>, AdapterError> {
        match self.tree.get(citizen_id.as_bytes()).map_err(|e| self.storage(e))? {
            Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| self.storage(e)),
            None => Ok(None),
        }
    }

    fn storage(&self, cause: impl std::fmt::Display) -> AdapterError {
        AdapterError::Storage {
            department: self.department,
            cause: cause.to_string(),
        }
    }
}

/// A new version of a department's registry: written in chunks of bounded
/// size into a tree of its own, then made current in one step. Until
/// [`Replacement::commit`] nothing is visible; after a crash before it, the
/// old registry is intact and the half-written tree is dropped by the next
/// replacement.
pub struct Replacement {
    db: sled::Db,
    department: Department,
    name: String,
    tree: sled::Tree,
    count: usize,
}

impl Replacement {
    /// Starts replacing `department`'s registry, first dropping what an
    /// interrupted replacement left behind.
    pub fn begin(db: &sled::Db, department: Department) -> Result<Replacement, AdapterError> {
        let storage = |e: sled::Error| AdapterError::Storage {
            department,
            cause: e.to_string(),
        };
        let current = current_tree(db, department).map_err(storage)?;
        let prefix = format!("registry/{}@", department.code());
        for name in db.tree_names() {
            if name.starts_with(prefix.as_bytes()) && name.as_ref() != current.as_slice() {
                db.drop_tree(&name).map_err(storage)?;
            }
        }
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let name = format!("{prefix}{stamp}");
        let tree = db.open_tree(&name).map_err(storage)?;
        Ok(Replacement {
            db: db.clone(),
            department,
            name,
            tree,
            count: 0,
        })
    }

    fn storage(&self, cause: impl std::fmt::Display) -> AdapterError {
        AdapterError::Storage {
            department: self.department,
            cause: cause.to_string(),
        }
    }

    /// Writes one chunk of records.
    pub fn write(&mut self, records: impl IntoIterator<Item = (String, Record)>) -> Result<(), AdapterError> {
        let mut batch = sled::Batch::default();
        for (citizen_id, record) in records {
            let bytes = serde_json::to_vec(&record).map_err(|e| self.storage(e))?;
            batch.insert(citizen_id.as_bytes(), bytes);
            self.count += 1;
        }
        self.tree.apply_batch(batch).map_err(|e| self.storage(e))
    }

    /// Makes the new registry current (durably) and drops the old one;
    /// returns the number of records.
    pub fn commit(self) -> Result<usize, AdapterError> {
        let old = current_tree(&self.db, self.department).map_err(|e| self.storage(e))?;
        self.tree.flush().map_err(|e| self.storage(e))?;
        let pointers = self.db.open_tree(CURRENT).map_err(|e| self.storage(e))?;
        pointers
            .insert(self.department.code(), self.name.as_bytes())
            .map_err(|e| self.storage(e))?;
        pointers.flush().map_err(|e| self.storage(e))?;
        self.db.drop_tree(old).map_err(|e| self.storage(e))?;
        Ok(self.count)
    }

    /// Gives up: the current registry stays as it was.
    pub fn abandon(self) -> Result<(), AdapterError> {
        self.db
            .drop_tree(self.name.as_bytes())
            .map(drop)
            .map_err(|e| self.storage(e))
    }
}

/// Builds the facts for `attributes` out of a department's record: every
/// asked attribute gets a fact, `recorded = false` where the record lacks it.
pub fn facts_from_record(
    department: Department,
    record: Option<&Record>,
    attributes: &[&'static Attribute],
) -> Vec<Fact> {
    let as_of = record.map(|r| prost_types::Timestamp {
        seconds: r.as_of,
        nanos: 0,
    });
    attributes
        .iter()
        .map(|attribute| {
            let value = record
                .and_then(|r| r.facts.get(attribute.name))
                .and_then(|v| value::to_wire(attribute.value_type, v));
            Fact {
                attribute: attribute.name.to_owned(),
                recorded: value.is_some(),
                value,
                source: department.code().to_owned(),
                as_of,
            }
        })
        .collect()
}

#[async_trait]
impl Adapter for EmbeddedRegistry {
    fn department(&self) -> Department {
        self.department
    }

    async fn fetch(&self, citizen_id: &str, attributes: &[&'static Attribute]) -> Result<Vec<Fact>, AdapterError> {
        let record = self.record(citizen_id)?;
        Ok(facts_from_record(self.department, record.as_ref(), attributes))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::catalogue;

    #[test]
    fn a_replacement_is_invisible_until_committed_and_then_replaces_everything() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let record = |n: i64| Record {
            as_of: n,
            facts: [("tax.registered".to_owned(), json!(true))].into(),
        };
        EmbeddedRegistry::open(&db, Department::Tax)
            .unwrap()
            .import([("old".to_owned(), record(1))])
            .unwrap();

        let mut replacement = Replacement::begin(&db, Department::Tax).unwrap();
        replacement
            .write([("a".to_owned(), record(2)), ("b".to_owned(), record(2))])
            .unwrap();
        let before = EmbeddedRegistry::open(&db, Department::Tax).unwrap();
        assert_eq!((before.len(), before.record("old").unwrap().is_some()), (1, true));
        replacement.abandon().unwrap();
        assert_eq!(EmbeddedRegistry::open(&db, Department::Tax).unwrap().len(), 1);

        let mut replacement = Replacement::begin(&db, Department::Tax).unwrap();
        replacement.write([("a".to_owned(), record(3))]).unwrap();
        replacement.write([("b".to_owned(), record(3))]).unwrap();
        assert_eq!(replacement.commit().unwrap(), 2);
        let after = EmbeddedRegistry::open(&db, Department::Tax).unwrap();
        assert_eq!((after.len(), after.record("old").unwrap()), (2, None));
        // An interrupted replacement leaves a tree behind; the next one drops it.
        let mut interrupted = Replacement::begin(&db, Department::Tax).unwrap();
        interrupted.write([("c".to_owned(), record(4))]).unwrap();
        drop(interrupted);
        Replacement::begin(&db, Department::Tax).unwrap().abandon().unwrap();
        let trees = db
            .tree_names()
            .into_iter()
            .filter(|n| n.starts_with(b"registry/tax"))
            .count();
        assert_eq!(trees, 1);
    }

    #[tokio::test]
    async fn imported_facts_come_back_typed_and_missing_ones_unrecorded() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let registry = EmbeddedRegistry::open(&db, Department::Tax).unwrap();
        let record = Record {
            as_of: 1_700_000_000,
            facts: [("tax.registered".to_owned(), json!(true))].into(),
        };
        assert_eq!(registry.import([("53030219900307001X".to_owned(), record)]).unwrap(), 1);

        let asked = [
            catalogue::attribute("tax.registered").unwrap(),
            catalogue::attribute("tax.iit.months_paid_last_12").unwrap(),
        ];
        let facts = registry.fetch("53030219900307001X", &asked).await.unwrap();
        assert_eq!(facts[0].value, Some(civex_proto::v1::fact::Value::BoolValue(true)));
        assert!(facts[0].recorded);
        assert!(!facts[1].recorded);
        assert_eq!(facts[1].value, None);

        let nobody = registry.fetch("110101199003070011", &asked).await.unwrap();
        assert!(nobody.iter().all(|f| !f.recorded && f.as_of.is_none()));
    }
}
