//! The departments' registries in the deployment's database, as
//! `civex import` fills them: each import writes a new version of the
//! department's records, then makes it current and drops the old one in
//! one transaction, so a gateway reads one version or the other, never a mix.

use std::sync::Arc;

use async_trait::async_trait;
use civex_adapters::{
    Adapter, AdapterError, Attribute, Department, Record, RegistryStore, RegistryWriter, catalogue, registry, value,
};
use civex_proto::v1::Fact;

use super::{Db, failed, put_row};

/// The advisory lock replacements of a registry commit under ("civreg" in ASCII).
const REPLACE_LOCK: i64 = 0x63_69_76_72_65_67;

pub struct PgRegistries(pub(crate) Db);

fn storage(department: Department, cause: impl std::fmt::Display) -> AdapterError {
    AdapterError::Storage {
        department,
        cause: cause.to_string(),
    }
}

impl RegistryStore for PgRegistries {
    fn open(&self, department: Department) -> Result<Arc<dyn Adapter>, AdapterError> {
        Ok(Arc::new(PgRegistry {
            db: self.0.clone(),
            department,
        }))
    }

    fn records(&self, department: Department) -> Result<usize, AdapterError> {
        let rows = self
            .0
            .query_blocking(
                "SELECT records FROM civex_registries WHERE department = $1",
                vec![Box::new(department.code())],
            )
            .map_err(|e| storage(department, e))?;
        Ok(rows.first().map_or(0, |r| r.get::<_, i64>(0) as usize))
    }

    fn replace(&self, department: Department) -> Result<Box<dyn RegistryWriter>, AdapterError> {
        // The database numbers imports, so that "started later" does not
        // depend on the clocks of the machines importing.
        let rows = self
            .0
            .query_blocking(
                "UPDATE civex_registry_counter SET last = last + 1 WHERE id = 1 RETURNING last",
                vec![],
            )
            .map_err(|e| storage(department, e))?;
        let version: i64 = rows
            .first()
            .ok_or_else(|| storage(department, failed("the registry counter's row is missing")))?
            .get(0);
        Ok(Box::new(PgReplacement {
            db: self.0.clone(),
            department,
            version,
            count: 0,
            last: None,
        }))
    }
}

/// One department's current registry.
struct PgRegistry {
    db: Db,
    department: Department,
}

#[async_trait]
impl Adapter for PgRegistry {
    fn department(&self) -> Department {
        self.department
    }

    async fn fetch(&self, citizen_id: &str, attributes: &[&'static Attribute]) -> Result<Vec<Fact>, AdapterError> {
        let rows = self
            .db
            .query(
                "SELECT r.record FROM civex_registry_records r JOIN civex_registries c \
                 ON c.department = r.department AND c.version = r.version \
                 WHERE r.department = $1 AND r.citizen_id = $2",
                vec![Box::new(self.department.code()), Box::new(citizen_id.to_owned())],
            )
            .await
            .map_err(|e| storage(self.department, e))?;
        let stored: Option<String> = rows.first().map(|r| r.get(0));
        let record: Option<Record> = stored
            .map(|s| serde_json::from_str(&s))
            .transpose()
            .map_err(|e| storage(self.department, format!("stored record: {e}")))?;
        Ok(registry::facts_from_record(
            self.department,
            record.as_ref(),
            attributes,
        ))
    }
}

/// A new version of a department's registry, invisible until committed.
struct PgReplacement {
    db: Db,
    department: Department,
    version: i64,
    count: usize,
    last: Option<String>,
}

impl RegistryWriter for PgReplacement {
    fn encode(&self, record: &Record) -> Result<Vec<u8>, AdapterError> {
        for (name, json) in &record.facts {
            let attribute = catalogue::attribute(name)
                .filter(|a| a.department == self.department)
                .ok_or_else(|| {
                    storage(
                        self.department,
                        format!("{name} is not an attribute held by {}", self.department),
                    )
                })?;
            if value::to_wire(attribute.value_type, json).is_none() {
                return Err(storage(
                    self.department,
                    format!("{name}: {json} does not fit its type"),
                ));
            }
        }
        serde_json::to_vec(record).map_err(|e| storage(self.department, e))
    }

    fn write(&mut self, records: Vec<(String, Vec<u8>)>) -> Result<(), AdapterError> {
        let mut ids = Vec::with_capacity(records.len());
        let mut bodies = Vec::with_capacity(records.len());
        for (citizen_id, record) in records {
            if citizen_id.is_empty() || self.last.as_ref().is_some_and(|last| *last >= citizen_id) {
                return Err(storage(
                    self.department,
                    format!(
                        "citizen {} is empty, out of order or repeated",
                        civex_adapters::citizen_id::mask(&citizen_id)
                    ),
                ));
            }
            self.last = Some(citizen_id.clone());
            ids.push(citizen_id);
            bodies.push(String::from_utf8(record).map_err(|e| storage(self.department, e))?);
        }
        self.count += ids.len();
        self.db
            .query_blocking(
                "INSERT INTO civex_registry_records (department, version, citizen_id, record) \
                 SELECT $1, $2, id, record FROM UNNEST($3::TEXT[], $4::TEXT[]) AS r(id, record)",
                vec![
                    Box::new(self.department.code()),
                    Box::new(self.version),
                    Box::new(ids),
                    Box::new(bodies),
                ],
            )
            .map(drop)
            .map_err(|e| storage(self.department, e))
    }

    fn commit(self: Box<Self>) -> Result<usize, AdapterError> {
        let (code, version, records) = (self.department.code(), self.version, self.count as i64);
        let superseded = self
            .db
            .block(move |pool| async move {
                let mut client = pool.get().await.map_err(failed)?;
                let tx = client.transaction().await.map_err(failed)?;
                // Replacements of one department commit one at a time; the
                // one that started later stands, whichever commits first.
                tx.execute("SELECT pg_advisory_xact_lock($1)", &[&REPLACE_LOCK])
                    .await
                    .map_err(failed)?;
                let current = tx
                    .query_opt("SELECT version FROM civex_registries WHERE department = $1", &[&code])
                    .await
                    .map_err(failed)?
                    .map(|r| r.get::<_, i64>(0));
                let superseded = current.is_some_and(|current| current > version);
                if superseded {
                    tx.execute(
                        "DELETE FROM civex_registry_records WHERE department = $1 AND version = $2",
                        &[&code, &version],
                    )
                    .await
                    .map_err(failed)?;
                } else {
                    put_row(
                        &tx,
                        "UPDATE civex_registries SET version = $2, records = $3 WHERE department = $1",
                        "INSERT INTO civex_registries (department, version, records) VALUES ($1, $2, $3)",
                        &[&code, &version, &records],
                    )
                    .await?;
                    // Older versions only: a later replacement may be writing its own.
                    tx.execute(
                        "DELETE FROM civex_registry_records WHERE department = $1 AND version < $2",
                        &[&code, &version],
                    )
                    .await
                    .map_err(failed)?;
                }
                tx.commit().await.map_err(failed)?;
                Ok(superseded)
            })
            .map_err(|e| storage(self.department, e))?;
        if superseded {
            return Err(storage(
                self.department,
                "an import of this department started later was committed while this one ran: it stands, this one is dropped",
            ));
        }
        Ok(self.count)
    }

    fn abandon(self: Box<Self>) -> Result<(), AdapterError> {
        self.db
            .query_blocking(
                "DELETE FROM civex_registry_records WHERE department = $1 AND version = $2",
                vec![Box::new(self.department.code()), Box::new(self.version)],
            )
            .map(drop)
            .map_err(|e| storage(self.department, e))
    }
}
