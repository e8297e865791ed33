//! Alerts, the watch list and cases in the deployment's database. An
//! alert's row keeps the rules' finding (`finding`, the encoded `Alert`)
//! apart from the auditors' columns (`state`, `case_id`, `note`), so that
//! neither writer overwrites the other; the rules' position moves by a
//! conditional `UPDATE`, so that of two gateways running them over the same
//! records one writes.

use std::time::SystemTime;

use async_trait::async_trait;
use civex_proto::v1::{Alert, AlertState, Case, WatchEntry};
use prost::Message;
use tokio_postgres::Row;

use super::{Db, failed, put_row, state::nanos};
use crate::store::{Finding, OversightStore, StoreError};

pub struct PgOversight(pub(crate) Db);

/// An alert from its row: `key, finding, state, case_id, note`.
fn alert(row: &Row) -> Result<Finding, StoreError> {
    let mut alert =
        Alert::decode(row.get::<_, &[u8]>(1)).map_err(|e| StoreError(failed(format!("stored alert: {e}"))))?;
    alert.state = row.get(2);
    alert.case_id = row.get(3);
    alert.note = row.get(4);
    Ok(Finding { key: row.get(0), alert })
}

fn decode<T: Message + Default>(row: &Row) -> Result<T, StoreError> {
    T::decode(row.get::<_, &[u8]>(0)).map_err(|e| StoreError(failed(format!("stored row: {e}"))))
}

fn opened_nanos(alert: &Alert) -> i64 {
    nanos(
        alert
            .opened_at
            .as_ref()
            .and_then(civex_audit::clock::system_time)
            .unwrap_or(SystemTime::UNIX_EPOCH),
    )
}

/// Sets the auditors' columns of `alerts`, in `tx`, each only if it is
/// still open; whether every one was.
async fn set_auditors(tx: &deadpool_postgres::Transaction<'_>, alerts: &[Alert]) -> Result<bool, String> {
    let update = tx
        .prepare_cached("UPDATE civex_alerts SET state = $2, case_id = $3, note = $4 WHERE id = $1 AND state = $5")
        .await
        .map_err(failed)?;
    let open = AlertState::AlertOpen as i32;
    for a in alerts {
        let changed = tx
            .execute(&update, &[&a.alert_id, &a.state, &a.case_id, &a.note, &open])
            .await
            .map_err(failed)?;
        if changed != 1 {
            return Ok(false);
        }
    }
    Ok(true)
}

#[async_trait]
impl OversightStore for PgOversight {
    async fn evaluated(&self) -> Result<u64, StoreError> {
        let rows = self
            .0
            .query("SELECT evaluated FROM civex_oversight_head WHERE id = 1", vec![])
            .await
            .map_err(StoreError)?;
        let row = rows
            .first()
            .ok_or_else(|| StoreError(failed("the oversight head's row is missing")))?;
        Ok(row.get::<_, i64>(0) as u64)
    }

    async fn advance(&self, from: u64, to: u64, findings: &[Finding]) -> Result<bool, StoreError> {
        let rows: Vec<(String, Vec<u8>, String, i64)> = findings
            .iter()
            .map(|f| {
                (
                    f.alert.alert_id.clone(),
                    f.alert.encode_to_vec(),
                    f.key.clone(),
                    opened_nanos(&f.alert),
                )
            })
            .collect();
        self.0
            .run(move |pool| async move {
                let mut client = pool.get().await.map_err(failed)?;
                let tx = client.transaction().await.map_err(failed)?;
                let moved = tx
                    .execute(
                        "UPDATE civex_oversight_head SET evaluated = $2 WHERE id = 1 AND evaluated = $1",
                        &[&(from as i64), &(to as i64)],
                    )
                    .await
                    .map_err(failed)?;
                if moved == 0 {
                    tx.rollback().await.map_err(failed)?;
                    return Ok(false);
                }
                for (id, finding, key, opened) in &rows {
                    put_row(
                        &tx,
                        "UPDATE civex_alerts SET finding = $2, key = $3, opened_at = $4 WHERE id = $1",
                        "INSERT INTO civex_alerts (id, finding, key, opened_at, state, case_id, note) \
                         VALUES ($1, $2, $3, $4, 1, '', '')",
                        &[id, finding, key, opened],
                    )
                    .await?;
                }
                tx.commit().await.map_err(failed)?;
                Ok(true)
            })
            .await
            .map_err(StoreError)
    }

    async fn alert(&self, id: &str) -> Result<Option<Alert>, StoreError> {
        let rows = self
            .0
            .query(
                "SELECT key, finding, state, case_id, note FROM civex_alerts WHERE id = $1",
                vec![Box::new(id.to_owned())],
            )
            .await
            .map_err(StoreError)?;
        rows.first().map(|r| alert(r).map(|f| f.alert)).transpose()
    }

    async fn alerts(&self, after: &str, limit: usize) -> Result<Vec<Alert>, StoreError> {
        let rows = self
            .0
            .query(
                "SELECT key, finding, state, case_id, note FROM civex_alerts WHERE id > $1 ORDER BY id LIMIT $2",
                vec![
                    Box::new(after.to_owned()),
                    Box::new(limit.min(i64::MAX as usize) as i64),
                ],
            )
            .await
            .map_err(StoreError)?;
        rows.iter().map(|r| alert(r).map(|f| f.alert)).collect()
    }

    async fn alerts_since(&self, since: SystemTime) -> Result<Vec<Finding>, StoreError> {
        let rows = self
            .0
            .query(
                "SELECT key, finding, state, case_id, note FROM civex_alerts WHERE opened_at >= $1 ORDER BY id",
                vec![Box::new(nanos(since))],
            )
            .await
            .map_err(StoreError)?;
        rows.iter().map(alert).collect()
    }

    async fn watch(&self, entry: &WatchEntry) -> Result<(), StoreError> {
        let (citizen, body) = (entry.citizen_ref.clone(), entry.encode_to_vec());
        self.0
            .run(move |pool| async move {
                let mut client = pool.get().await.map_err(failed)?;
                let tx = client.transaction().await.map_err(failed)?;
                put_row(
                    &tx,
                    "UPDATE civex_watched SET body = $2 WHERE citizen_ref = $1",
                    "INSERT INTO civex_watched (citizen_ref, body) VALUES ($1, $2)",
                    &[&citizen, &body],
                )
                .await?;
                tx.commit().await.map_err(failed)
            })
            .await
            .map_err(StoreError)
    }

    async fn unwatch(&self, citizen_ref: &str) -> Result<Option<WatchEntry>, StoreError> {
        let rows = self
            .0
            .query(
                "DELETE FROM civex_watched WHERE citizen_ref = $1 RETURNING body",
                vec![Box::new(citizen_ref.to_owned())],
            )
            .await
            .map_err(StoreError)?;
        rows.first().map(decode).transpose()
    }

    async fn watched(&self) -> Result<Vec<WatchEntry>, StoreError> {
        let rows = self
            .0
            .query("SELECT body FROM civex_watched ORDER BY citizen_ref", vec![])
            .await
            .map_err(StoreError)?;
        rows.iter().map(decode).collect()
    }

    async fn put_case(&self, case: &Case, events_before: Option<usize>, alerts: &[Alert]) -> Result<bool, StoreError> {
        let (id, body, events) = (case.case_id.clone(), case.encode_to_vec(), case.events.len() as i64);
        let alerts = alerts.to_vec();
        self.0
            .run(move |pool| async move {
                let mut client = pool.get().await.map_err(failed)?;
                let tx = client.transaction().await.map_err(failed)?;
                let stored = tx
                    .query_opt("SELECT events FROM civex_cases WHERE id = $1 FOR UPDATE", &[&id])
                    .await
                    .map_err(failed)?
                    .map(|r| r.get::<_, i64>(0) as usize);
                if stored != events_before {
                    tx.rollback().await.map_err(failed)?;
                    return Ok(false);
                }
                put_row(
                    &tx,
                    "UPDATE civex_cases SET body = $2, events = $3 WHERE id = $1",
                    "INSERT INTO civex_cases (id, body, events) VALUES ($1, $2, $3)",
                    &[&id, &body, &events],
                )
                .await?;
                if !set_auditors(&tx, &alerts).await? {
                    tx.rollback().await.map_err(failed)?;
                    return Ok(false);
                }
                tx.commit().await.map_err(failed)?;
                Ok(true)
            })
            .await
            .map_err(StoreError)
    }

    async fn set_alerts(&self, alerts: &[Alert]) -> Result<bool, StoreError> {
        let alerts = alerts.to_vec();
        self.0
            .run(move |pool| async move {
                let mut client = pool.get().await.map_err(failed)?;
                let tx = client.transaction().await.map_err(failed)?;
                if !set_auditors(&tx, &alerts).await? {
                    tx.rollback().await.map_err(failed)?;
                    return Ok(false);
                }
                tx.commit().await.map_err(failed)?;
                Ok(true)
            })
            .await
            .map_err(StoreError)
    }

    async fn case(&self, id: &str) -> Result<Option<Case>, StoreError> {
        let rows = self
            .0
            .query(
                "SELECT body FROM civex_cases WHERE id = $1",
                vec![Box::new(id.to_owned())],
            )
            .await
            .map_err(StoreError)?;
        rows.first().map(decode).transpose()
    }

    async fn cases(&self, after: &str, limit: usize) -> Result<Vec<Case>, StoreError> {
        let rows = self
            .0
            .query(
                "SELECT body FROM civex_cases WHERE id > $1 ORDER BY id LIMIT $2",
                vec![
                    Box::new(after.to_owned()),
                    Box::new(limit.min(i64::MAX as usize) as i64),
                ],
            )
            .await
            .map_err(StoreError)?;
        rows.iter().map(decode).collect()
    }
}
