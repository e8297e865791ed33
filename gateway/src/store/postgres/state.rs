//! Agencies, certificates and revocations, and consents, in the
//! deployment's database.
//!
//! A change of agencies or revocations moves `civex_changes` in the same
//! transaction, so that every gateway polling it reloads within its poll
//! interval. A consent's `uses` and `withdrawn_at` are written only by the
//! log's sequencing transactions ([`super::log`]), under the log's head lock.

use std::{
    collections::HashMap,
    time::{Duration, SystemTime},
};

use async_trait::async_trait;
use civex_adapters::CitizenId;
use civex_proto::v1::Consent;
use deadpool_postgres::{GenericClient, Transaction};
use prost::Message;

use super::{Db, failed, put_row};
use crate::{
    consent::{ConsentError, shorten, storage},
    policy::access::Agency,
    store::{
        AgencyStore, Certificate, CertificateStore, ChangeFeed, ConsentStore, Load, LoadStore, Revocation, StoreError,
    },
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

/// What each gateway publishes of its calls, one row per gateway, by the
/// database's clock so that gateways whose clocks differ agree on who is alive.
pub struct PgLoad(pub(crate) Db);

#[async_trait]
impl LoadStore for PgLoad {
    async fn publish(&self, gateway: &str, calls: &[(String, u64)]) -> Result<Load, StoreError> {
        let gateway = gateway.to_owned();
        let calls: HashMap<&str, u64> = calls.iter().map(|(a, n)| (a.as_str(), *n)).collect();
        let calls = serde_json::to_string(&calls).map_err(StoreError::new)?;
        let rows = self
            .0
            .run(|pool| async move {
                let mut client = pool.get().await.map_err(failed)?;
                // Gateways gone for a minute are forgotten, in a statement of its own.
                client
                    .execute(
                        "DELETE FROM civex_gateways WHERE seen_at < CURRENT_TIMESTAMP - INTERVAL '1 minute' \
                         AND gateway <> $1",
                        &[&gateway],
                    )
                    .await
                    .map_err(failed)?;
                let tx = client.transaction().await.map_err(failed)?;
                put_row(
                    &tx,
                    "UPDATE civex_gateways SET seen_at = CURRENT_TIMESTAMP, calls = $2 WHERE gateway = $1",
                    "INSERT INTO civex_gateways (gateway, seen_at, calls) VALUES ($1, CURRENT_TIMESTAMP, $2)",
                    &[&gateway, &calls],
                )
                .await?;
                tx.commit().await.map_err(failed)?;
                // Alive: published within `net::limits::LIVE`.
                let live = client
                    .prepare_cached(
                        "SELECT calls FROM civex_gateways WHERE seen_at > CURRENT_TIMESTAMP - INTERVAL '2 seconds'",
                    )
                    .await
                    .map_err(failed)?;
                let rows = client.query(&live, &[]).await.map_err(failed)?;
                Ok(rows.iter().map(|r| r.get::<_, String>(0)).collect::<Vec<_>>())
            })
            .await
            .map_err(StoreError)?;
        let mut load = Load {
            gateways: u32::try_from(rows.len()).unwrap_or(u32::MAX),
            calls: HashMap::new(),
        };
        for row in rows {
            let calls: HashMap<String, u64> = serde_json::from_str(&row)
                .map_err(|e| StoreError(failed(format!("a gateway's published calls: {e}"))))?;
            for (agency, n) in calls {
                *load.calls.entry(agency).or_default() += n;
            }
        }
        Ok(load)
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
        self.write(agencies, false).await.map(drop)
    }

    async fn seed(&self, agencies: &[Agency]) -> Result<Vec<Agency>, StoreError> {
        if self.write(agencies, true).await? {
            return Ok(agencies.to_vec());
        }
        self.list().await
    }
}

impl PgAgencies {
    /// Stores `agencies`, or with `only_if_none` only into an empty table;
    /// whether it stored them.
    async fn write(&self, agencies: &[Agency], only_if_none: bool) -> Result<bool, StoreError> {
        let rows: Vec<(String, String)> = agencies
            .iter()
            .map(|a| Ok((a.code.clone(), serde_json::to_string(a)?)))
            .collect::<Result<_, serde_json::Error>>()
            .map_err(StoreError::new)?;
        self.0
            .run(move |pool| async move {
                let mut client = pool.get().await.map_err(failed)?;
                // Read committed, whatever the server's default: a writer
                // that waited for the counter's lock then sees what the
                // one before it committed.
                let tx = client
                    .build_transaction()
                    .isolation_level(tokio_postgres::IsolationLevel::ReadCommitted)
                    .start()
                    .await
                    .map_err(failed)?;
                // First, as it locks the counter's row: writers take turns.
                changed(&tx).await?;
                if only_if_none {
                    let count: i64 = tx
                        .query_one("SELECT COUNT(*) FROM civex_agencies", &[])
                        .await
                        .map_err(failed)?
                        .get(0);
                    if count > 0 {
                        tx.rollback().await.map_err(failed)?;
                        return Ok(false);
                    }
                }
                for (code, body) in &rows {
                    put_row(
                        &tx,
                        "UPDATE civex_agencies SET body = $2 WHERE code = $1",
                        "INSERT INTO civex_agencies (code, body) VALUES ($1, $2)",
                        &[code, body],
                    )
                    .await?;
                }
                tx.commit().await.map_err(failed)?;
                Ok(true)
            })
            .await
            .map_err(StoreError)
    }
}

pub struct PgCertificates(pub(crate) Db);

#[async_trait]
impl CertificateStore for PgCertificates {
    async fn issued(&self, certificate: &Certificate) -> Result<(), StoreError> {
        let c = certificate.clone();
        self.0
            .run(|pool| async move {
                let mut client = pool.get().await.map_err(failed)?;
                let tx = client.transaction().await.map_err(failed)?;
                put_row(
                    &tx,
                    "UPDATE civex_certificates SET agency = $2, not_after = $3 WHERE serial = $1",
                    "INSERT INTO civex_certificates (serial, agency, not_after) VALUES ($1, $2, $3)",
                    &[&c.serial, &c.agency, &c.not_after],
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

    async fn issued_to(&self, agency: &str) -> Result<Vec<Certificate>, StoreError> {
        let rows = self
            .0
            .query(
                "SELECT serial, not_after FROM civex_certificates WHERE agency = $1 ORDER BY serial",
                vec![Box::new(agency.to_owned())],
            )
            .await
            .map_err(StoreError)?;
        Ok(rows
            .iter()
            .map(|r| Certificate {
                serial: r.get(0),
                agency: agency.to_owned(),
                not_after: r.get(1),
            })
            .collect())
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
