//! Agencies, certificates and revocations, and consents, in the
//! deployment's database.
//!
//! A change of agencies or revocations moves `civex_changes` in the same
//! transaction, so that every gateway polling it reloads within its poll
//! interval. A consent's `uses` and `withdrawn_at` are written only by the
//! log's sequencing transactions ([`super::log`]), under the log's head lock.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use civex_adapters::CitizenId;
use civex_proto::v1::Consent;
use deadpool_postgres::{GenericClient, Transaction};
use prost::Message;
use tokio_postgres::types::ToSql;

use super::{Db, failed, put_row};
use crate::{
    consent::{ConsentError, shorten, storage},
    policy::access::Agency,
    store::{AgencyStore, CertificateStore, ChangeFeed, ConsentStore, Load, LoadStore, Revocation, StoreError},
};

/// Moves the change counter gateways poll, in `tx`.
async fn changed(tx: &Transaction<'_>) -> Result<(), String> {
    tx.execute("UPDATE civex_changes SET version = version + 1 WHERE id = 1", &[])
        .await
        .map(drop)
        .map_err(failed)
}

/// The change counter gateways poll.
pub struct PgChanges(pub(crate) Db);

#[async_trait]
impl ChangeFeed for PgChanges {
    async fn version(&self) -> Result<i64, StoreError> {
        let rows = self
            .0
            .query("SELECT version FROM civex_changes WHERE id = 1", vec![])
            .await
            .map_err(StoreError)?;
        rows.first()
            .map(|r| r.get(0))
            .ok_or_else(|| StoreError(failed("the change counter's row is missing")))
    }
}

/// What each gateway publishes of its calls, by the database's clock, so
/// that gateways whose clocks differ agree on who is alive.
pub struct PgLoad(pub(crate) Db);

#[async_trait]
impl LoadStore for PgLoad {
    async fn publish(&self, gateway: &str, calls: &[(String, u64)]) -> Result<Load, StoreError> {
        let gateway = gateway.to_owned();
        let calls: Vec<(String, i64)> = calls
            .iter()
            .map(|(agency, n)| (agency.clone(), i64::try_from(*n).unwrap_or(i64::MAX)))
            .collect();
        self.0
            .run(|pool| async move {
                let mut client = pool.get().await.map_err(failed)?;
                let tx = client.transaction().await.map_err(failed)?;
                put_row(
                    &tx,
                    "UPDATE civex_gateways SET seen_at = CURRENT_TIMESTAMP WHERE gateway = $1",
                    "INSERT INTO civex_gateways (gateway, seen_at) VALUES ($1, CURRENT_TIMESTAMP)",
                    &[&gateway],
                )
                .await?;
                let insert = tx
                    .prepare_cached("INSERT INTO civex_gateway_calls (gateway, agency, calls) VALUES ($1, $2, $3)")
                    .await
                    .map_err(failed)?;
                tx.execute("DELETE FROM civex_gateway_calls WHERE gateway = $1", &[&gateway])
                    .await
                    .map_err(failed)?;
                let rows: Vec<[&(dyn ToSql + Sync); 3]> = calls
                    .iter()
                    .map(|(agency, n)| [&gateway as _, agency as _, n as _])
                    .collect();
                futures::future::try_join_all(rows.iter().map(|row| tx.execute(&insert, row)))
                    .await
                    .map_err(failed)?;
                // Gateways gone for a minute are forgotten.
                tx.batch_execute(
                    "DELETE FROM civex_gateway_calls WHERE gateway IN (SELECT gateway FROM civex_gateways \
                     WHERE seen_at < CURRENT_TIMESTAMP - INTERVAL '1 minute'); \
                     DELETE FROM civex_gateways WHERE seen_at < CURRENT_TIMESTAMP - INTERVAL '1 minute'",
                )
                .await
                .map_err(failed)?;
                let live = "g.seen_at > CURRENT_TIMESTAMP - INTERVAL '2 seconds'";
                let gateways = tx
                    .query_one(&format!("SELECT COUNT(*) FROM civex_gateways g WHERE {live}"), &[])
                    .await
                    .map_err(failed)?
                    .get::<_, i64>(0);
                let rows = tx
                    .query(
                        &format!(
                            "SELECT c.agency, CAST(SUM(c.calls) AS BIGINT) FROM civex_gateway_calls c \
                             JOIN civex_gateways g ON g.gateway = c.gateway WHERE {live} GROUP BY c.agency"
                        ),
                        &[],
                    )
                    .await
                    .map_err(failed)?;
                tx.commit().await.map_err(failed)?;
                Ok(Load {
                    gateways: u32::try_from(gateways).unwrap_or(u32::MAX),
                    calls: rows
                        .iter()
                        .map(|r| (r.get(0), u64::try_from(r.get::<_, i64>(1)).unwrap_or(0)))
                        .collect(),
                })
            })
            .await
            .map_err(StoreError)
    }
}

pub struct PgAgencies(pub(crate) Db);

#[async_trait]
impl AgencyStore for PgAgencies {
    async fn list(&self) -> Result<Vec<Agency>, StoreError> {
        let rows = self
            .0
            .query("SELECT body FROM civex_agencies ORDER BY code", vec![])
            .await
            .map_err(StoreError)?;
        rows.iter()
            .map(|row| serde_json::from_str(row.get(0)).map_err(|e| StoreError(failed(format!("stored agency: {e}")))))
            .collect()
    }

    async fn put(&self, agencies: &[Agency]) -> Result<(), StoreError> {
        let rows: Vec<(String, String)> = agencies
            .iter()
            .map(|a| Ok((a.code.clone(), serde_json::to_string(a)?)))
            .collect::<Result<_, serde_json::Error>>()
            .map_err(StoreError::new)?;
        self.0
            .run(|pool| async move {
                let mut client = pool.get().await.map_err(failed)?;
                let tx = client.transaction().await.map_err(failed)?;
                // First, as it locks the counter's row: puts from gateways
                // starting together on an empty database take turns, and
                // the later finds the rows the earlier inserted.
                changed(&tx).await?;
                for (code, body) in &rows {
                    put_row(
                        &tx,
                        "UPDATE civex_agencies SET body = $2 WHERE code = $1",
                        "INSERT INTO civex_agencies (code, body) VALUES ($1, $2)",
                        &[code, body],
                    )
                    .await?;
                }
                tx.commit().await.map_err(failed)
            })
            .await
            .map_err(StoreError)
    }
}

pub struct PgCertificates(pub(crate) Db);

#[async_trait]
impl CertificateStore for PgCertificates {
    async fn issued(&self, serial: &str, agency: &str) -> Result<(), StoreError> {
        let (serial, agency) = (serial.to_owned(), agency.to_owned());
        self.0
            .run(|pool| async move {
                let mut client = pool.get().await.map_err(failed)?;
                let tx = client.transaction().await.map_err(failed)?;
                put_row(
                    &tx,
                    "UPDATE civex_certificates SET agency = $2 WHERE serial = $1",
                    "INSERT INTO civex_certificates (serial, agency) VALUES ($1, $2)",
                    &[&serial, &agency],
                )
                .await?;
                tx.commit().await.map_err(failed)
            })
            .await
            .map_err(StoreError)
    }

    async fn agency_of(&self, serial: &str) -> Result<Option<String>, StoreError> {
        let rows = self
            .0
            .query(
                "SELECT agency FROM civex_certificates WHERE serial = $1",
                vec![Box::new(serial.to_owned())],
            )
            .await
            .map_err(StoreError)?;
        Ok(rows.first().map(|r| r.get(0)))
    }

    async fn list(&self) -> Result<Vec<Revocation>, StoreError> {
        self.0
            .run(|pool| async move { revocations(&pool.get().await.map_err(failed)?).await })
            .await
            .map_err(StoreError)
    }

    async fn revoke(&self, revocation: &Revocation) -> Result<(), StoreError> {
        let r = revocation.clone();
        self.0
            .run(|pool| async move {
                let mut client = pool.get().await.map_err(failed)?;
                let tx = client.transaction().await.map_err(failed)?;
                // Locks out a concurrent first revocation of the same serial.
                tx.execute("SELECT id FROM civex_changes WHERE id = 1 FOR UPDATE", &[])
                    .await
                    .map_err(failed)?;
                let known = tx
                    .query_opt("SELECT serial FROM civex_revocations WHERE serial = $1", &[&r.serial])
                    .await
                    .map_err(failed)?;
                if known.is_none() {
                    tx.execute(
                        "INSERT INTO civex_revocations (serial, revoked_at, reason) VALUES ($1, $2, $3)",
                        &[&r.serial, &r.revoked_at, &r.reason],
                    )
                    .await
                    .map_err(failed)?;
                    changed(&tx).await?;
                }
                tx.commit().await.map_err(failed)
            })
            .await
            .map_err(StoreError)
    }
}

/// Every revocation.
pub(crate) async fn revocations(client: &impl GenericClient) -> Result<Vec<Revocation>, String> {
    let rows = client
        .query(
            "SELECT serial, revoked_at, reason FROM civex_revocations ORDER BY serial",
            &[],
        )
        .await
        .map_err(failed)?;
    Ok(rows
        .iter()
        .map(|row| Revocation {
            serial: row.get(0),
            revoked_at: row.get(1),
            reason: row.get(2),
        })
        .collect())
}

pub struct PgConsents(pub(crate) Db);

/// Unix nanoseconds, as the log's rows keep time.
pub(crate) fn nanos(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

pub(crate) fn from_nanos(n: i64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_nanos(u64::try_from(n).unwrap_or(0))
}

/// A stored consent with its counted uses and withdrawal.
fn consent(row: &tokio_postgres::Row) -> Result<Consent, String> {
    let mut consent = Consent::decode(row.get::<_, &[u8]>(0)).map_err(|e| failed(format!("stored consent: {e}")))?;
    consent.uses = u32::try_from(row.get::<_, i64>(1)).unwrap_or(u32::MAX);
    if let Some(at) = row.get::<_, Option<i64>>(2) {
        consent.revoked_at = Some(civex_audit::clock::timestamp(from_nanos(at)));
    }
    Ok(consent)
}

#[async_trait]
impl ConsentStore for PgConsents {
    async fn insert(&self, consent: &Consent) -> Result<(), ConsentError> {
        let (id, citizen) = (consent.consent_id.clone(), consent.citizen_id.clone());
        let max_uses = i64::from(consent.max_uses);
        let uses = i64::from(consent.uses);
        let body = Consent {
            uses: 0,
            revoked_at: None,
            ..consent.clone()
        }
        .encode_to_vec();
        self.0
            .query(
                "INSERT INTO civex_consents (id, citizen_id, body, max_uses, uses) VALUES ($1, $2, $3, $4, $5)",
                vec![
                    Box::new(id),
                    Box::new(citizen),
                    Box::new(body),
                    Box::new(max_uses),
                    Box::new(uses),
                ],
            )
            .await
            .map(drop)
            .map_err(storage)
    }

    async fn get(&self, id: &str) -> Result<Consent, ConsentError> {
        if id.is_empty() {
            return Err(ConsentError::Required);
        }
        let rows = self
            .0
            .query(
                "SELECT body, uses, withdrawn_at FROM civex_consents WHERE id = $1",
                vec![Box::new(id.to_owned())],
            )
            .await
            .map_err(storage)?;
        let row = rows.first().ok_or_else(|| ConsentError::NotFound(shorten(id)))?;
        consent(row).map_err(storage)
    }

    async fn list(&self, citizen: &CitizenId) -> Result<Vec<Consent>, ConsentError> {
        let rows = self
            .0
            .query(
                "SELECT body, uses, withdrawn_at FROM civex_consents WHERE citizen_id = $1 ORDER BY id",
                vec![Box::new(citizen.as_str().to_owned())],
            )
            .await
            .map_err(storage)?;
        rows.iter().map(consent).collect::<Result<_, _>>().map_err(storage)
    }
}
