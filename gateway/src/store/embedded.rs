//! The embedded engine: one data directory, no other service. A sled
//! database (`db/`) holds agencies, revocations, consents and the
//! department registries; the audit log has its own (`audit/`, so it can be
//! flushed and reopened on its own; see [`civex_audit::embedded`]).
//!
//! | tree | key | value |
//! |---|---|---|
//! | `agencies` | code | the `Agency`, JSON |
//! | `issued_certificates` | serial | agency code |
//! | `revoked_certificates` | serial | `{revoked_at, reason}`, JSON |
//! | `consents` | consent id | the encoded `Consent` |
//! | `consents_by_citizen` | citizen id ‖ consent id | () |
//! | `consents_meta` | `withdrawals_applied` | log size through which the log's withdrawals are applied, u64 BE |

use std::{path::Path, sync::Arc, time::SystemTime};

use async_trait::async_trait;
use civex_adapters::{CitizenId, EmbeddedRegistries, RegistryStore};
use civex_audit::{LogStore, UseLedger, embedded::SledLog};
use civex_proto::v1::Consent;
use prost::Message;
use serde::{Deserialize, Serialize};

use super::{AgencyStore, CertificateStore, ConsentStore, Revocation, StoreError, Stores};
use crate::{
    consent::{ConsentError, Use, check_use, shorten, storage},
    policy::access::Agency,
};

/// The sled database inside a data directory.
pub const DB_DIR: &str = "db";

/// Opens (creating if needed) every store of the data directory `dir`.
pub fn open(dir: &Path) -> Result<Stores, StoreError> {
    let db = open_db(dir)?;
    let tree = |name: &str| db.open_tree(name).map_err(StoreError::new);
    let consents = Arc::new(SledConsents {
        consents: tree("consents")?,
        by_citizen: tree("consents_by_citizen")?,
        meta: tree("consents_meta")?,
    });
    Ok(Stores {
        agencies: Arc::new(SledAgencies(tree("agencies")?)),
        certificates: Arc::new(SledCertificates {
            issued: tree("issued_certificates")?,
            revoked: tree("revoked_certificates")?,
        }),
        consents: consents.clone(),
        ledger: consents,
        audit: open_log(dir)?,
        registries: Arc::new(EmbeddedRegistries::new(db)),
    })
}

fn open_db(dir: &Path) -> Result<sled::Db, StoreError> {
    civex_audit::embedded::open_db(dir, DB_DIR).map_err(StoreError::new)
}

/// Opens only the audit log of the data directory `dir`.
pub fn open_log(dir: &Path) -> Result<Arc<dyn LogStore>, StoreError> {
    Ok(Arc::new(SledLog::open(dir).map_err(StoreError::new)?))
}

/// Opens only the registries of the data directory `dir`.
pub fn open_registries(dir: &Path) -> Result<Arc<dyn RegistryStore>, StoreError> {
    Ok(Arc::new(EmbeddedRegistries::new(open_db(dir)?)))
}

struct SledAgencies(sled::Tree);

#[async_trait]
impl AgencyStore for SledAgencies {
    async fn list(&self) -> Result<Vec<Agency>, StoreError> {
        self.0
            .iter()
            .values()
            .map(|v| serde_json::from_slice(&v.map_err(StoreError::new)?).map_err(StoreError::new))
            .collect()
    }

    async fn put(&self, agencies: &[Agency]) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for agency in agencies {
            batch.insert(
                agency.code.as_bytes(),
                serde_json::to_vec(agency).map_err(StoreError::new)?,
            );
        }
        self.0.apply_batch(batch).map_err(StoreError::new)?;
        self.0.flush().map_err(StoreError::new)?;
        Ok(())
    }
}

struct SledCertificates {
    /// serial → agency code.
    issued: sled::Tree,
    /// serial → [`Stored`].
    revoked: sled::Tree,
}

/// A revocation as stored.
#[derive(Debug, Serialize, Deserialize)]
struct Stored {
    /// Unix seconds.
    revoked_at: i64,
    reason: String,
}

#[async_trait]
impl CertificateStore for SledCertificates {
    async fn issued(&self, serial: &str, agency: &str) -> Result<(), StoreError> {
        self.issued.insert(serial, agency).map_err(StoreError::new)?;
        self.issued.flush().map_err(StoreError::new)?;
        Ok(())
    }

    async fn agency_of(&self, serial: &str) -> Result<Option<String>, StoreError> {
        let agency = self.issued.get(serial).map_err(StoreError::new)?;
        Ok(agency.map(|a| String::from_utf8_lossy(&a).into_owned()))
    }

    async fn list(&self) -> Result<Vec<Revocation>, StoreError> {
        self.revoked
            .iter()
            .map(|item| {
                let (k, v) = item.map_err(StoreError::new)?;
                let stored: Stored = serde_json::from_slice(&v).map_err(StoreError::new)?;
                Ok(Revocation {
                    serial: String::from_utf8_lossy(&k).into_owned(),
                    revoked_at: stored.revoked_at,
                    reason: stored.reason,
                })
            })
            .collect()
    }

    async fn revoke(&self, r: &Revocation) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(&Stored {
            revoked_at: r.revoked_at,
            reason: r.reason.clone(),
        })
        .map_err(StoreError::new)?;
        // Keep the first revocation time if a serial is revoked twice.
        let _ = self
            .revoked
            .compare_and_swap(r.serial.as_bytes(), None as Option<&[u8]>, Some(bytes))
            .map_err(StoreError::new)?;
        self.revoked.flush().map_err(StoreError::new)?;
        Ok(())
    }
}

/// The consents of every citizen.
struct SledConsents {
    /// consent id → encoded `Consent`.
    consents: sled::Tree,
    /// citizen id ‖ consent id → (), for `List`.
    by_citizen: sled::Tree,
    /// [`APPLIED`] → the log size through which withdrawals are applied.
    meta: sled::Tree,
}

/// Key of the withdrawal watermark in `consents_meta`.
const APPLIED: &[u8] = b"withdrawals_applied";

impl SledConsents {
    fn read(&self, id: &str) -> Result<Consent, ConsentError> {
        if id.is_empty() {
            return Err(ConsentError::Required);
        }
        let bytes = self.consents.get(id.as_bytes()).map_err(storage)?;
        let bytes = bytes.ok_or_else(|| ConsentError::NotFound(shorten(id)))?;
        Consent::decode(bytes.as_ref()).map_err(storage)
    }

    /// Read-modify-write with compare-and-swap, retried on contention.
    fn update(
        &self,
        id: &str,
        mut change: impl FnMut(&mut Consent) -> Result<(), ConsentError>,
    ) -> Result<Consent, ConsentError> {
        if id.is_empty() {
            return Err(ConsentError::Required);
        }
        loop {
            let old = self.consents.get(id.as_bytes()).map_err(storage)?;
            let old = old.ok_or_else(|| ConsentError::NotFound(shorten(id)))?;
            let mut consent = Consent::decode(old.as_ref()).map_err(storage)?;
            change(&mut consent)?;
            let new = consent.encode_to_vec();
            if new == old.as_ref() {
                return Ok(consent);
            }
            match self
                .consents
                .compare_and_swap(id.as_bytes(), Some(old), Some(new))
                .map_err(storage)?
            {
                // Not flushed here: the call's audit record is, and the audit
                // writer flushes this store with it before anything is answered.
                Ok(()) => return Ok(consent),
                Err(_) => continue,
            }
        }
    }
}

#[async_trait]
impl ConsentStore for SledConsents {
    async fn insert(&self, consent: &Consent) -> Result<(), ConsentError> {
        let mut index_key = consent.citizen_id.clone().into_bytes();
        index_key.extend_from_slice(consent.consent_id.as_bytes());
        self.consents
            .insert(consent.consent_id.as_bytes(), consent.encode_to_vec())
            .map_err(storage)?;
        self.by_citizen.insert(index_key, &[]).map_err(storage)?;
        self.consents.flush().map_err(storage)?;
        Ok(())
    }

    async fn get(&self, id: &str) -> Result<Consent, ConsentError> {
        self.read(id)
    }

    async fn list(&self, citizen: &CitizenId) -> Result<Vec<Consent>, ConsentError> {
        let prefix = citizen.as_str().as_bytes();
        self.by_citizen
            .scan_prefix(prefix)
            .keys()
            .map(|key| {
                let key = key.map_err(storage)?;
                let id = std::str::from_utf8(&key[prefix.len()..]).map_err(storage)?;
                self.read(id)
            })
            .collect()
    }

    async fn use_for(&self, id: &str, u: Use<'_>) -> Result<Consent, ConsentError> {
        self.update(id, |consent| check_use(consent, &u))
    }
}

impl UseLedger for SledConsents {
    fn withdrawn(&self, consent_id: &str) -> Result<bool, String> {
        let consent = self.read(consent_id).map_err(|e| e.to_string())?;
        Ok(consent
            .revoked_at
            .as_ref()
            .and_then(civex_audit::clock::system_time)
            .is_some())
    }

    fn withdraw(&self, consent_id: &str, at: SystemTime) -> Result<(), String> {
        let withdrawn = self.update(consent_id, |consent| {
            if consent.revoked_at.is_none() {
                consent.revoked_at = Some(civex_audit::clock::timestamp(at));
            }
            Ok(())
        });
        match withdrawn {
            Ok(_) | Err(ConsentError::NotFound(_)) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }

    fn applied(&self) -> Result<u64, String> {
        let stored = self.meta.get(APPLIED).map_err(|e| e.to_string())?;
        Ok(stored
            .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map_or(0, u64::from_be_bytes))
    }

    fn set_applied(&self, size: u64) -> Result<(), String> {
        self.meta
            .insert(APPLIED, &size.to_be_bytes())
            .map(drop)
            .map_err(|e| e.to_string())
    }

    fn flush(&self) -> Result<(), String> {
        // One database: flushing one tree makes every tree's writes durable.
        self.consents.flush().map(drop).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use ed25519_dalek::SigningKey;
    use time::macros::date;

    use civex_audit::keys::{Signer, Verifier};
    use civex_proto::v1::ConsentBody;

    use super::*;
    use crate::{
        consent::{NewConsent, sign},
        error::{Error, Reason},
    };

    async fn grant(store: &SledConsents, new: NewConsent, signer: &Signer, now: SystemTime) -> Consent {
        let consent = sign(new, signer, now);
        store.insert(&consent).await.unwrap();
        consent
    }

    fn setup() -> (tempfile::TempDir, SledConsents, Signer, CitizenId) {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let store = SledConsents {
            consents: db.open_tree("consents").unwrap(),
            by_citizen: db.open_tree("consents_by_citizen").unwrap(),
            meta: db.open_tree("consents_meta").unwrap(),
        };
        let signer = Signer::new(SigningKey::from_bytes(&[1; 32]), "civex/test");
        let citizen = CitizenId::from_parts("530302", date!(1990 - 03 - 07), 11).unwrap();
        (dir, store, signer, citizen)
    }

    #[tokio::test]
    async fn use_table() {
        let (_dir, store, signer, citizen) = setup();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let other = CitizenId::from_parts("530302", date!(1991 - 03 - 07), 12).unwrap();
        let consent = grant(
            &store,
            NewConsent {
                citizen: citizen.clone(),
                grantee: "qujing-psb".into(),
                scopes: vec!["ps.hukou.division".into(), "tax.registered".into()],
                purpose: "hukou.settlement".into(),
                not_after: t0 + Duration::from_secs(3600),
                max_uses: 3,
                registrar: "qujing-portal".into(),
            },
            &signer,
            t0,
        )
        .await;
        let id = consent.consent_id.as_str();
        let ok = Use {
            caller: "qujing-psb",
            citizen: &citizen,
            scopes: &["tax.registered"],
            purpose: "hukou.settlement",
            now: t0,
        };
        let cases: Vec<(&str, Use<'_>, Result<u32, Reason>)> = vec![
            ("allowed", ok, Ok(1)),
            (
                "both scopes",
                Use {
                    scopes: &["ps.hukou.division", "tax.registered"],
                    ..ok
                },
                Ok(2),
            ),
            (
                "other agency",
                Use {
                    caller: "qujing-tax",
                    ..ok
                },
                Err(Reason::ConsentGrantee),
            ),
            (
                "other citizen",
                Use { citizen: &other, ..ok },
                Err(Reason::ConsentScope),
            ),
            (
                "scope not granted",
                Use {
                    scopes: &["tax.iit.months_paid_last_12"],
                    ..ok
                },
                Err(Reason::ConsentScope),
            ),
            (
                "other purpose",
                Use {
                    purpose: "tax.admin",
                    ..ok
                },
                Err(Reason::ConsentPurpose),
            ),
            (
                "before not_before",
                Use {
                    now: t0 - Duration::from_secs(1),
                    ..ok
                },
                Err(Reason::ConsentExpired),
            ),
            (
                "at not_after",
                Use {
                    now: t0 + Duration::from_secs(3600),
                    ..ok
                },
                Err(Reason::ConsentExpired),
            ),
            ("last use", ok, Ok(3)),
            ("exhausted", ok, Err(Reason::ConsentExhausted)),
        ];
        for (name, u, expected) in cases {
            let got = store
                .use_for(id, u)
                .await
                .map(|c| c.uses)
                .map_err(|e| Error::from(e).reason);
            assert_eq!(got, expected, "{name}");
        }
        assert_eq!(
            store
                .use_for("nope", ok)
                .await
                .map_err(|e| Error::from(e).reason)
                .unwrap_err(),
            Reason::ConsentNotFound
        );
        assert_eq!(
            store
                .use_for("", ok)
                .await
                .map_err(|e| Error::from(e).reason)
                .unwrap_err(),
            Reason::ConsentRequired
        );
    }

    #[tokio::test]
    async fn revoked_consents_stop_at_once_and_the_signature_covers_the_body() {
        let (_dir, store, signer, citizen) = setup();
        let t0 = SystemTime::now();
        let consent = grant(
            &store,
            NewConsent {
                citizen: citizen.clone(),
                grantee: "g".into(),
                scopes: vec!["tax.registered".into()],
                purpose: "tax.admin".into(),
                not_after: t0 + Duration::from_secs(60),
                max_uses: 0,
                registrar: "r".into(),
            },
            &signer,
            t0,
        )
        .await;
        let verifier = Verifier::parse(&signer.verifier_key()).unwrap();
        verifier.verify(&consent.body, &consent.signature).unwrap();
        let body = ConsentBody::decode(consent.body.as_slice()).unwrap();
        assert_eq!(body.citizen_id, citizen.as_str());
        assert_eq!(body.registrar, "r");

        let u = Use {
            caller: "g",
            citizen: &citizen,
            scopes: &["tax.registered"],
            purpose: "tax.admin",
            now: t0,
        };
        for _ in 0..5 {
            store.use_for(&consent.consent_id, u).await.unwrap();
        }
        assert_eq!(store.applied().unwrap(), 0);
        store.withdraw(&consent.consent_id, t0).unwrap();
        store
            .withdraw(&consent.consent_id, t0 + Duration::from_secs(1))
            .unwrap();
        store.set_applied(7).unwrap();
        assert_eq!(store.applied().unwrap(), 7);
        let revoked = store.get(&consent.consent_id).await.unwrap();
        assert_eq!(
            revoked.revoked_at,
            Some(civex_audit::clock::timestamp(t0)),
            "the first time is kept"
        );
        assert!(store.withdrawn(&consent.consent_id).unwrap());
        assert_eq!(
            store.use_for(&consent.consent_id, u).await.unwrap_err(),
            ConsentError::Revoked
        );
        assert_eq!(store.list(&citizen).await.unwrap(), vec![revoked]);
    }
}
