//! The embedded department registry: one sled tree per department, holding
//! that department's facts about each citizen in a compact binary form, and
//! [`RegistryStore`], the seam every storage engine's registries sit behind.
//!
//! # Stored form
//! A registry is written whole by a [`Replacement`] and then only read. Its
//! tree holds, under the empty key, a [`Header`] (the number of records and
//! the attribute names that stored facts refer to by index), and under each
//! block's last citizen ID a [`Block`] of up to [`BLOCK`] consecutive records
//! in ascending citizen-ID order. A lookup is one range read (the first key
//! at or after the citizen ID), a binary search within the block and the
//! decoding of one record. sled's cost is per key, so few, larger keys are
//! what let an import write a million citizens in seconds, and keep a large
//! registry's index in sled's cache.

use std::{collections::BTreeMap, sync::Arc};

use async_trait::async_trait;
use bytes::Bytes;
use civex_proto::v1::{Fact, fact};
use prost::Message;
use serde::{Deserialize, Serialize};

use crate::{Adapter, AdapterError, Attribute, Department, catalogue, value};

/// What a department holds about one citizen, as imported and as the
/// reference department server keeps it in memory.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// When the department last confirmed the record, in seconds since the Unix epoch.
    pub as_of: i64,
    /// Attribute name to value; an absent attribute is not recorded.
    pub facts: BTreeMap<String, serde_json::Value>,
}

/// Records per stored block.
const BLOCK: usize = 16;

/// The key of the registry's [`Header`]; it sorts before every citizen ID.
const HEADER: &[u8] = b"";

/// What a registry tree holds besides its blocks.
#[derive(Clone, PartialEq, Message)]
struct Header {
    /// Number of records.
    #[prost(uint64, tag = "1")]
    records: u64,
    /// The attributes [`StoredFact::attribute`] indexes, sorted by name.
    #[prost(string, repeated, tag = "2")]
    attributes: Vec<String>,
}

/// Consecutive records, stored under the last one's citizen ID.
#[derive(Clone, PartialEq, Message)]
struct Block {
    /// Ascending.
    #[prost(bytes = "bytes", repeated, tag = "1")]
    citizen_ids: Vec<Bytes>,
    /// Each an encoded [`StoredRecord`], in the order of `citizen_ids`.
    #[prost(bytes = "bytes", repeated, tag = "2")]
    records: Vec<Bytes>,
}

/// One citizen's record in its stored form.
#[derive(Clone, PartialEq, Message)]
struct StoredRecord {
    #[prost(int64, tag = "1")]
    as_of: i64,
    #[prost(message, repeated, tag = "2")]
    facts: Vec<StoredFact>,
}

/// One recorded fact: the wire's own value, and its attribute as an index
/// into the header's names.
#[derive(Clone, PartialEq, Message)]
struct StoredFact {
    #[prost(uint32, tag = "1")]
    attribute: u32,
    #[prost(oneof = "fact::Value", tags = "2, 3, 4, 5")]
    value: Option<fact::Value>,
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

fn storage(department: Department, cause: impl std::fmt::Display) -> AdapterError {
    AdapterError::Storage {
        department,
        cause: cause.to_string(),
    }
}

/// A department's facts, stored in the gateway's own sled database.
#[derive(Debug, Clone)]
pub struct EmbeddedRegistry {
    department: Department,
    tree: sled::Tree,
    header: Header,
}

impl EmbeddedRegistry {
    /// Opens the current registry of `department` in `db` (empty if none was imported).
    pub fn open(db: &sled::Db, department: Department) -> Result<Self, AdapterError> {
        let fail = |e: sled::Error| storage(department, e);
        let tree = db
            .open_tree(current_tree(db, department).map_err(fail)?)
            .map_err(fail)?;
        let header = match tree.get(HEADER).map_err(fail)? {
            Some(bytes) => {
                Header::decode(bytes.as_ref()).map_err(|e| storage(department, format!("bad header: {e}")))?
            }
            None if tree.is_empty() => Header::default(),
            None => {
                return Err(storage(
                    department,
                    "the registry was written by an older civex in a form this one does not read; import the department's file again",
                ));
            }
        };
        Ok(EmbeddedRegistry {
            department,
            tree,
            header,
        })
    }

    /// Replaces `department`'s registry in `db` with `records`, all or
    /// nothing, and opens the result. For small sets (tests, fixtures);
    /// `civex import` streams a file through a [`Replacement`] itself.
    pub fn replace(
        db: &sled::Db,
        department: Department,
        records: impl IntoIterator<Item = (String, Record)>,
    ) -> Result<Self, AdapterError> {
        let mut replacement = Box::new(Replacement::begin(db, department)?);
        let mut encoded = records
            .into_iter()
            .map(|(id, record)| Ok((id, replacement.encode(&record)?)))
            .collect::<Result<Vec<_>, AdapterError>>()?;
        encoded.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        replacement.write(encoded)?;
        replacement.commit()?;
        EmbeddedRegistry::open(db, department)
    }

    /// Number of citizens this registry holds a record for.
    pub fn len(&self) -> usize {
        self.header.records as usize
    }

    /// Whether the registry holds no record at all.
    pub fn is_empty(&self) -> bool {
        self.header.records == 0
    }

    fn storage(&self, cause: impl std::fmt::Display) -> AdapterError {
        storage(self.department, cause)
    }

    /// The stored record of `citizen_id`, if any.
    fn stored(&self, citizen_id: &str) -> Result<Option<StoredRecord>, AdapterError> {
        if citizen_id.is_empty() {
            return Ok(None);
        }
        let Some(entry) = self.tree.range(citizen_id.as_bytes()..).next() else {
            return Ok(None);
        };
        let (_, bytes) = entry.map_err(|e| self.storage(e))?;
        let block =
            Block::decode(Bytes::copy_from_slice(&bytes)).map_err(|e| self.storage(format!("bad block: {e}")))?;
        let Ok(i) = block
            .citizen_ids
            .binary_search_by(|id| id.as_ref().cmp(citizen_id.as_bytes()))
        else {
            return Ok(None);
        };
        let record = block
            .records
            .get(i)
            .ok_or_else(|| self.storage("bad block: a record is missing"))?;
        StoredRecord::decode(record.clone())
            .map(Some)
            .map_err(|e| self.storage(format!("bad record: {e}")))
    }

    /// The value stored for `attribute` in `record`; a value of the wrong
    /// kind (a store edited behind civex's back) counts as not recorded.
    fn value(&self, record: &StoredRecord, attribute: &Attribute) -> Option<fact::Value> {
        let index = self
            .header
            .attributes
            .binary_search_by(|name| name.as_str().cmp(attribute.name))
            .ok()?;
        record
            .facts
            .iter()
            .find(|f| f.attribute as usize == index)
            .and_then(|f| f.value.clone())
            .filter(|v| value::kind_matches(attribute.value_type, v))
    }

    /// The record held for `citizen_id`, if any, in its imported form.
    pub fn record(&self, citizen_id: &str) -> Result<Option<Record>, AdapterError> {
        let Some(stored) = self.stored(citizen_id)? else {
            return Ok(None);
        };
        let mut facts = BTreeMap::new();
        for fact in &stored.facts {
            let attribute = self
                .header
                .attributes
                .get(fact.attribute as usize)
                .and_then(|name| catalogue::attribute(name))
                .ok_or_else(|| self.storage(format!("bad record: attribute {} unknown", fact.attribute)))?;
            if let Some(v) = &fact.value {
                let json = value::from_wire(attribute.value_type, v).map_err(|e| self.storage(e))?;
                facts.insert(attribute.name.to_owned(), json);
            }
        }
        Ok(Some(Record {
            as_of: stored.as_of,
            facts,
        }))
    }
}

/// Where departments' registries are kept (filled by `civex import`): one
/// implementation per storage engine, [`EmbeddedRegistries`] the first.
pub trait RegistryStore: Send + Sync {
    /// The current registry of `department` (empty if none was imported), as
    /// the adapter the gateway asks.
    fn open(&self, department: Department) -> Result<Arc<dyn Adapter>, AdapterError>;

    /// How many citizens `department`'s registry holds a record for.
    fn records(&self, department: Department) -> Result<usize, AdapterError>;

    /// Starts replacing `department`'s registry: nothing is visible until
    /// [`RegistryWriter::commit`].
    fn replace(&self, department: Department) -> Result<Box<dyn RegistryWriter>, AdapterError>;
}

/// A registry being replaced, all or nothing.
pub trait RegistryWriter: Send {
    /// Encodes `record` in the stored form. Every fact must be an attribute
    /// the department holds, with a value of its type.
    fn encode(&self, record: &Record) -> Result<Vec<u8>, AdapterError>;

    /// Writes encoded records, which must come in strictly ascending
    /// citizen-ID order across all calls.
    fn write(&mut self, records: Vec<(String, Vec<u8>)>) -> Result<(), AdapterError>;

    /// Makes the new registry current (durably) and drops the old one;
    /// returns the number of records.
    fn commit(self: Box<Self>) -> Result<usize, AdapterError>;

    /// Gives up: the current registry stays as it was.
    fn abandon(self: Box<Self>) -> Result<(), AdapterError>;
}

/// The registries of the embedded engine, in the gateway's sled database.
#[derive(Debug, Clone)]
pub struct EmbeddedRegistries {
    db: sled::Db,
}

impl EmbeddedRegistries {
    pub fn new(db: sled::Db) -> EmbeddedRegistries {
        EmbeddedRegistries { db }
    }

    /// Registries in a database that lives only as long as this value: for
    /// tests and fixtures.
    pub fn temporary() -> Result<EmbeddedRegistries, AdapterError> {
        let db = sled::Config::new()
            .temporary(true)
            .open()
            .map_err(|e| storage(Department::PublicSecurity, e))?;
        Ok(EmbeddedRegistries { db })
    }

    /// Replaces `department`'s registry with `records` ([`EmbeddedRegistry::replace`]).
    pub fn fill(
        &self,
        department: Department,
        records: impl IntoIterator<Item = (String, Record)>,
    ) -> Result<EmbeddedRegistry, AdapterError> {
        EmbeddedRegistry::replace(&self.db, department, records)
    }
}

impl RegistryStore for EmbeddedRegistries {
    fn open(&self, department: Department) -> Result<Arc<dyn Adapter>, AdapterError> {
        Ok(Arc::new(EmbeddedRegistry::open(&self.db, department)?))
    }

    fn records(&self, department: Department) -> Result<usize, AdapterError> {
        Ok(EmbeddedRegistry::open(&self.db, department)?.len())
    }

    fn replace(&self, department: Department) -> Result<Box<dyn RegistryWriter>, AdapterError> {
        Ok(Box::new(Replacement::begin(&self.db, department)?))
    }
}

/// A new version of a department's registry: written in blocks into a tree
/// of its own, then made current in one step. Until [`Replacement::commit`]
/// nothing is visible; after a crash before it, the old registry is intact
/// and the half-written tree is dropped by the next replacement.
pub struct Replacement {
    db: sled::Db,
    department: Department,
    name: String,
    tree: sled::Tree,
    /// The department's attributes, sorted by name: what stored facts index.
    attributes: Vec<&'static Attribute>,
    count: usize,
    /// The last citizen ID written: records must come in ascending order.
    last: Option<String>,
}

impl Replacement {
    /// Starts replacing `department`'s registry, first dropping what an
    /// interrupted replacement left behind.
    pub fn begin(db: &sled::Db, department: Department) -> Result<Replacement, AdapterError> {
        let fail = |e: sled::Error| storage(department, e);
        let current = current_tree(db, department).map_err(fail)?;
        let prefix = format!("registry/{}@", department.code());
        for name in db.tree_names() {
            if name.starts_with(prefix.as_bytes()) && name.as_ref() != current.as_slice() {
                db.drop_tree(&name).map_err(fail)?;
            }
        }
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let name = format!("{prefix}{stamp}");
        let tree = db.open_tree(&name).map_err(fail)?;
        let mut attributes: Vec<_> = catalogue::held_by(department).collect();
        attributes.sort_unstable_by_key(|a| a.name);
        Ok(Replacement {
            db: db.clone(),
            department,
            name,
            tree,
            attributes,
            count: 0,
            last: None,
        })
    }

    fn storage(&self, cause: impl std::fmt::Display) -> AdapterError {
        storage(self.department, cause)
    }
}

impl RegistryWriter for Replacement {
    fn encode(&self, record: &Record) -> Result<Vec<u8>, AdapterError> {
        let facts = record
            .facts
            .iter()
            .map(|(name, json)| {
                let index = self
                    .attributes
                    .binary_search_by(|a| a.name.cmp(name))
                    .map_err(|_| self.storage(format!("{name} is not an attribute held by {}", self.department)))?;
                let value = value::to_wire(self.attributes[index].value_type, json)
                    .ok_or_else(|| self.storage(format!("{name}: {json} does not fit its type")))?;
                Ok(StoredFact {
                    attribute: index as u32,
                    value: Some(value),
                })
            })
            .collect::<Result<_, AdapterError>>()?;
        Ok(StoredRecord {
            as_of: record.as_of,
            facts,
        }
        .encode_to_vec())
    }

    /// One sled batch per call.
    fn write(&mut self, records: Vec<(String, Vec<u8>)>) -> Result<(), AdapterError> {
        let mut batch = sled::Batch::default();
        let mut block = Block::default();
        let mut records = records.into_iter().peekable();
        while let Some((citizen_id, record)) = records.next() {
            if citizen_id.is_empty() || self.last.as_ref().is_some_and(|last| *last >= citizen_id) {
                return Err(self.storage(format!(
                    "citizen {} is empty, out of order or repeated",
                    crate::citizen_id::mask(&citizen_id)
                )));
            }
            block.citizen_ids.push(Bytes::copy_from_slice(citizen_id.as_bytes()));
            block.records.push(record.into());
            self.count += 1;
            if block.records.len() == BLOCK || records.peek().is_none() {
                batch.insert(citizen_id.as_bytes(), std::mem::take(&mut block).encode_to_vec());
            }
            self.last = Some(citizen_id);
        }
        self.tree.apply_batch(batch).map_err(|e| self.storage(e))
    }

    fn commit(self: Box<Self>) -> Result<usize, AdapterError> {
        let fail = |e: sled::Error| self.storage(e);
        let header = Header {
            records: self.count as u64,
            attributes: self.attributes.iter().map(|a| a.name.to_owned()).collect(),
        };
        self.tree.insert(HEADER, header.encode_to_vec()).map_err(fail)?;
        let old = current_tree(&self.db, self.department).map_err(fail)?;
        self.tree.flush().map_err(fail)?;
        let pointers = self.db.open_tree(CURRENT).map_err(fail)?;
        pointers
            .insert(self.department.code(), self.name.as_bytes())
            .map_err(fail)?;
        pointers.flush().map_err(fail)?;
        self.db.drop_tree(old).map_err(fail)?;
        Ok(self.count)
    }

    fn abandon(self: Box<Self>) -> Result<(), AdapterError> {
        self.db
            .drop_tree(self.name.as_bytes())
            .map(drop)
            .map_err(|e| self.storage(e))
    }
}

/// The fact answering `attribute`: `recorded` exactly when there is a value.
fn fact(
    department: Department,
    attribute: &Attribute,
    value: Option<fact::Value>,
    as_of: Option<prost_types::Timestamp>,
) -> Fact {
    Fact {
        attribute: attribute.name.to_owned(),
        recorded: value.is_some(),
        value,
        source: department.code().to_owned(),
        as_of,
    }
}

fn timestamp(seconds: i64) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds, nanos: 0 }
}

/// Builds the facts for `attributes` out of a department's record: every
/// asked attribute gets a fact, `recorded = false` where the record lacks it.
pub fn facts_from_record(
    department: Department,
    record: Option<&Record>,
    attributes: &[&'static Attribute],
) -> Vec<Fact> {
    let as_of = record.map(|r| timestamp(r.as_of));
    attributes
        .iter()
        .map(|attribute| {
            let value = record
                .and_then(|r| r.facts.get(attribute.name))
                .and_then(|v| value::to_wire(attribute.value_type, v));
            fact(department, attribute, value, as_of)
        })
        .collect()
}

#[async_trait]
impl Adapter for EmbeddedRegistry {
    fn department(&self) -> Department {
        self.department
    }

    async fn fetch(&self, citizen_id: &str, attributes: &[&'static Attribute]) -> Result<Vec<Fact>, AdapterError> {
        let record = self.stored(citizen_id)?;
        let as_of = record.as_ref().map(|r| timestamp(r.as_of));
        Ok(attributes
            .iter()
            .map(|attribute| {
                let value = record.as_ref().and_then(|r| self.value(r, attribute));
                fact(self.department, attribute, value, as_of)
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn record(n: i64) -> Record {
        Record {
            as_of: n,
            facts: [("tax.registered".to_owned(), json!(n % 2 == 0))].into(),
        }
    }

    fn encoded(replacement: &Replacement, ids: &[&str], n: i64) -> Vec<(String, Vec<u8>)> {
        ids.iter()
            .map(|id| ((*id).to_owned(), replacement.encode(&record(n)).unwrap()))
            .collect()
    }

    #[test]
    fn a_replacement_is_invisible_until_committed_and_then_replaces_everything() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        EmbeddedRegistry::replace(&db, Department::Tax, [("old".to_owned(), record(1))]).unwrap();

        let mut replacement = Box::new(Replacement::begin(&db, Department::Tax).unwrap());
        replacement.write(encoded(&replacement, &["a", "b"], 2)).unwrap();
        let before = EmbeddedRegistry::open(&db, Department::Tax).unwrap();
        assert_eq!((before.len(), before.record("old").unwrap().is_some()), (1, true));
        replacement.abandon().unwrap();
        assert_eq!(EmbeddedRegistry::open(&db, Department::Tax).unwrap().len(), 1);

        let mut replacement = Box::new(Replacement::begin(&db, Department::Tax).unwrap());
        replacement.write(encoded(&replacement, &["a"], 3)).unwrap();
        replacement.write(encoded(&replacement, &["b"], 3)).unwrap();
        assert_eq!(replacement.commit().unwrap(), 2);
        let after = EmbeddedRegistry::open(&db, Department::Tax).unwrap();
        assert_eq!((after.len(), after.record("old").unwrap()), (2, None));
        assert_eq!(after.record("b").unwrap(), Some(record(3)));
        // An interrupted replacement leaves a tree behind; the next one drops it.
        let mut interrupted = Box::new(Replacement::begin(&db, Department::Tax).unwrap());
        interrupted.write(encoded(&interrupted, &["c"], 4)).unwrap();
        drop(interrupted);
        Box::new(Replacement::begin(&db, Department::Tax).unwrap())
            .abandon()
            .unwrap();
        let trees = db
            .tree_names()
            .into_iter()
            .filter(|n| n.starts_with(b"registry/tax"))
            .count();
        assert_eq!(trees, 1);
    }

    #[test]
    fn every_record_is_found_across_blocks_and_nothing_between_them() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        // Even numbers only, so each odd one falls between two stored records
        // (and the last ones beyond every block).
        let n = (BLOCK * 3 + 5) as i64;
        let id = |i: i64| format!("{i:018}");
        let registry =
            EmbeddedRegistry::replace(&db, Department::Tax, (0..n).rev().map(|i| (id(2 * i), record(i)))).unwrap();
        assert_eq!(registry.len(), n as usize);
        for i in 0..n {
            assert_eq!(registry.record(&id(2 * i)).unwrap(), Some(record(i)), "{i}");
            assert_eq!(registry.record(&id(2 * i + 1)).unwrap(), None, "{i}");
        }
        assert_eq!(registry.record("").unwrap(), None);
        // Blocks, not records, are what the tree holds.
        assert_eq!(registry.tree.len(), 1 + (n as usize).div_ceil(BLOCK));
    }

    #[test]
    fn writes_out_of_order_and_foreign_attributes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let mut replacement = Box::new(Replacement::begin(&db, Department::Tax).unwrap());
        replacement.write(encoded(&replacement, &["b"], 1)).unwrap();
        for ids in [&["a"][..], &["b"], &["c", "c"], &[""]] {
            assert!(replacement.write(encoded(&replacement, ids, 1)).is_err(), "{ids:?}");
        }
        let foreign = Record {
            as_of: 1,
            facts: [("ps.identity.gender".to_owned(), json!("male"))].into(),
        };
        assert!(replacement.encode(&foreign).is_err());
        let mistyped = Record {
            as_of: 1,
            facts: [("tax.registered".to_owned(), json!("yes"))].into(),
        };
        assert!(replacement.encode(&mistyped).is_err());
    }

    #[test]
    fn a_registry_in_the_older_form_is_refused_with_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        db.open_tree("registry/tax")
            .unwrap()
            .insert("53030219900307001X", br#"{"as_of":1,"facts":{}}"#)
            .unwrap();
        let err = EmbeddedRegistry::open(&db, Department::Tax).unwrap_err();
        assert!(err.to_string().contains("import the department's file again"), "{err}");
        assert!(EmbeddedRegistry::open(&db, Department::Land).unwrap().is_empty());
    }

    #[tokio::test]
    async fn imported_facts_come_back_typed_and_missing_ones_unrecorded() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let record = Record {
            as_of: 1_700_000_000,
            facts: [("tax.registered".to_owned(), json!(true))].into(),
        };
        let registry =
            EmbeddedRegistry::replace(&db, Department::Tax, [("53030219900307001X".to_owned(), record)]).unwrap();
        assert_eq!(registry.len(), 1);

        let asked = [
            catalogue::attribute("tax.registered").unwrap(),
            catalogue::attribute("tax.iit.months_paid_last_12").unwrap(),
        ];
        let facts = registry.fetch("53030219900307001X", &asked).await.unwrap();
        assert_eq!(facts[0].value, Some(fact::Value::BoolValue(true)));
        assert!(facts[0].recorded);
        assert_eq!(facts[0].as_of.as_ref().map(|t| t.seconds), Some(1_700_000_000));
        assert!(!facts[1].recorded);
        assert_eq!(facts[1].value, None);

        let nobody = registry.fetch("110101199003070011", &asked).await.unwrap();
        assert!(nobody.iter().all(|f| !f.recorded && f.as_of.is_none()));
    }
}
