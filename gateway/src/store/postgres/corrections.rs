//! Objections and corrections in the deployment's database. An objection is
//! resolved by a conditional `UPDATE` (`WHERE state = OPEN`) in the same
//! transaction that stores its corrections: of two stewards resolving it at
//! once, one does.

use std::time::SystemTime;

use async_trait::async_trait;
use civex_proto::v1::ObjectionState;
use serde::de::DeserializeOwned;
use tokio_postgres::Row;

use super::{Db, failed, state::nanos};
use crate::{
    clock::system_time,
    store::{CorrectionStore, StoreError, StoredCorrection, StoredObjection},
};

pub struct PgCorrections(pub(crate) Db);

const OPEN: i32 = ObjectionState::ObjectionOpen as i32;

fn body<T: DeserializeOwned>(row: &Row) -> Result<T, StoreError> {
    serde_json::from_str(row.get::<_, &str>(0)).map_err(|e| StoreError(failed(format!("stored row: {e}"))))
}

fn json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(StoreError::new)
}

#[async_trait]
impl CorrectionStore for PgCorrections {
    async fn open(&self, o: &StoredObjection) -> Result<(), StoreError> {
        let opened = o.objection.opened_at.as_ref().and_then(system_time).map_or(0, nanos);
        self.0
            .query(
                "INSERT INTO civex_objections (id, department, state, opened_at, body) VALUES ($1, $2, $3, $4, $5)",
                vec![
                    Box::new(o.id().to_owned()),
                    Box::new(o.objection.department.clone()),
                    Box::new(o.objection.state),
                    Box::new(opened),
                    Box::new(json(o)?),
                ],
            )
            .await
            .map_err(StoreError)?;
        Ok(())
    }

    async fn objection(&self, id: &str) -> Result<Option<StoredObjection>, StoreError> {
        let rows = self
            .0
            .query(
                "SELECT body FROM civex_objections WHERE id = $1",
                vec![Box::new(id.to_owned())],
            )
            .await
            .map_err(StoreError)?;
        rows.first().map(body).transpose()
    }

    async fn objections(
        &self,
        department: &str,
        state: Option<ObjectionState>,
        after: &str,
        limit: usize,
    ) -> Result<Vec<StoredObjection>, StoreError> {
        // State 0 (unspecified) stands for any.
        let state = state.map_or(0, |s| s as i32);
        let rows = self
            .0
            .query(
                "SELECT body FROM civex_objections WHERE department = $1 AND id > $2 AND ($3 = 0 OR state = $3) \
                 ORDER BY id LIMIT $4",
                vec![
                    Box::new(department.to_owned()),
                    Box::new(after.to_owned()),
                    Box::new(state),
                    Box::new(limit.min(i64::MAX as usize) as i64),
                ],
            )
            .await
            .map_err(StoreError)?;
        rows.iter().map(body).collect()
    }

    async fn resolve(&self, resolved: &StoredObjection, corrections: &[StoredCorrection]) -> Result<bool, StoreError> {
        let (id, state, value) = (resolved.id().to_owned(), resolved.objection.state, json(resolved)?);
        let sent = corrections
            .iter()
            .map(|c| {
                let at = c
                    .correction
                    .corrected_at
                    .as_ref()
                    .and_then(system_time)
                    .map_or(0, nanos);
                Ok((c.agency.clone(), c.correction.correction_id.clone(), at, json(c)?))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        self.0
            .run(move |pool| async move {
                let mut client = pool.get().await.map_err(failed)?;
                let tx = client.transaction().await.map_err(failed)?;
                let moved = tx
                    .execute(
                        "UPDATE civex_objections SET state = $2, body = $3 WHERE id = $1 AND state = $4",
                        &[&id, &state, &value, &OPEN],
                    )
                    .await
                    .map_err(failed)?;
                if moved == 0 {
                    tx.rollback().await.map_err(failed)?;
                    return Ok(false);
                }
                for (agency, correction, at, body) in &sent {
                    tx.execute(
                        "INSERT INTO civex_corrections (agency, id, corrected_at, body) VALUES ($1, $2, $3, $4)",
                        &[agency, correction, at, body],
                    )
                    .await
                    .map_err(failed)?;
                }
                tx.commit().await.map_err(failed)?;
                Ok(true)
            })
            .await
            .map_err(StoreError)
    }

    async fn corrections(
        &self,
        agency: &str,
        since: SystemTime,
        after: &str,
        limit: usize,
    ) -> Result<Vec<StoredCorrection>, StoreError> {
        let rows = self
            .0
            .query(
                "SELECT body FROM civex_corrections WHERE agency = $1 AND id > $2 AND corrected_at >= $3 \
                 ORDER BY id LIMIT $4",
                vec![
                    Box::new(agency.to_owned()),
                    Box::new(after.to_owned()),
                    Box::new(nanos(since)),
                    Box::new(limit.min(i64::MAX as usize) as i64),
                ],
            )
            .await
            .map_err(StoreError)?;
        rows.iter().map(body).collect()
    }
}
