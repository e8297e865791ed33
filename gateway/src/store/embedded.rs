//! The embedded engine: one data directory, no other service. A sled
//! database (`db/`) holds agencies, certificates and the department
//! registries; consents have their own (`consents/`) and so does the audit
//! log (`audit/`, see [`civex_audit::embedded`]): the two the audit writer
//! flushes with every batch, each dropped and reopened from disk after a
//! failed write, so that a disk that filled heals once space returns.
//!
//! | database | tree | key | value |
//! |---|---|---|---|
//! | `db` | `agencies` | code | the `Agency`, JSON |
//! | `db` | `issued_certificates` | serial | agency code |
//! | `db` | `revoked_certificates` | serial | `{revoked_at, reason}`, JSON |
//! | `consents` | `consents` | consent id | the encoded `Consent` |
//! | `consents` | `consents_by_citizen` | citizen id ‖ consent id | () |
//! | `consents` | `consents_meta` | `withdrawals_applied` | log size through which the log's withdrawals are applied, u64 BE |

use std::{
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
    time::SystemTime,
};

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
    let consents = Arc::new(SledConsents::open(dir, &db)?);
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
    data_dir: PathBuf,
    /// `None` between a failed write and the reopen that follows it.
    open: RwLock<Option<ConsentTrees>>,
}

/// The trees of the consent database.
#[derive(Clone)]
struct ConsentTrees {
    /// consent id → encoded `Consent`.
    consents: sled::Tree,
    /// citizen id ‖ consent id → (), for `List`.
    by_citizen: sled::Tree,
    /// [`APPLIED`] → the log size through which withdrawals are applied.
    meta: sled::Tree,
    db: sled::Db,
}

/// The consents' own sled database inside a data directory: apart from the
/// rest, so that after a failed write (a full disk) it can be dropped and
/// reopened from disk with the audit log, as sled does not recover in place.
pub const CONSENTS_DIR: &str = "consents";
/// The trees of the consent database, also their names in the older layout
/// that kept them in [`DB_DIR`].
const CONSENT_TREES: [&str; 3] = ["consents", "consents_by_citizen", "consents_meta"];

/// Key of the withdrawal watermark in `consents_meta`.
const APPLIED: &[u8] = b"withdrawals_applied";

impl ConsentTrees {
    fn open(data_dir: &Path) -> Result<ConsentTrees, String> {
        let db = civex_audit::embedded::open_db(data_dir, CONSENTS_DIR).map_err(|e| e.to_string())?;
        let tree = |name| db.open_tree(name).map_err(|e| e.to_string());
        Ok(ConsentTrees {
            consents: tree(CONSENT_TREES[0])?,
            by_citizen: tree(CONSENT_TREES[1])?,
            meta: tree(CONSENT_TREES[2])?,
            db: db.clone(),
        })
    }
}

impl SledConsents {
    /// Opens the consent database of `data_dir`, moving consents over from
    /// the older layout (trees in `main`) the first time.
    fn open(data_dir: &Path, main: &sled::Db) -> Result<SledConsents, StoreError> {
        let trees = ConsentTrees::open(data_dir).map_err(StoreError)?;
        let old_names = main.tree_names();
        if trees.consents.is_empty() {
            for (name, new) in CONSENT_TREES
                .iter()
                .zip([&trees.consents, &trees.by_citizen, &trees.meta])
            {
                if !old_names.iter().any(|n| n.as_ref() == name.as_bytes()) {
                    continue;
                }
                let old = main.open_tree(name).map_err(StoreError::new)?;
                for item in old.iter() {
                    let (k, v) = item.map_err(StoreError::new)?;
                    new.insert(k, v).map_err(StoreError::new)?;
                }
            }
            trees.db.flush().map_err(StoreError::new)?;
            for name in CONSENT_TREES {
                if old_names.iter().any(|n| n.as_ref() == name.as_bytes()) {
                    main.drop_tree(name).map_err(StoreError::new)?;
                }
            }
        }
        Ok(SledConsents {
            data_dir: data_dir.to_owned(),
            open: RwLock::new(Some(trees)),
        })
    }

    fn trees(&self) -> Result<ConsentTrees, ConsentError> {
        let open = self.open.read().unwrap_or_else(|p| p.into_inner()).clone();
        open.ok_or_else(|| storage("the consent store is being reopened after a failed write"))
    }

    fn read(&self, id: &str) -> Result<Consent, ConsentError> {
        if id.is_empty() {
            return Err(ConsentError::Required);
        }
        let bytes = self.trees()?.consents.get(id.as_bytes()).map_err(storage)?;
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
        let consents = self.trees()?.consents;
        loop {
            let old = consents.get(id.as_bytes()).map_err(storage)?;
            let old = old.ok_or_else(|| ConsentError::NotFound(shorten(id)))?;
            let mut consent = Consent::decode(old.as_ref()).map_err(storage)?;
            change(&mut consent)?;
            let new = consent.encode_to_vec();
            if new == old.as_ref() {
                return Ok(consent);
            }
            match consents
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
        let trees = self.trees()?;
        let mut index_key = consent.citizen_id.clone().into_bytes();
        index_key.extend_from_slice(consent.consent_id.as_bytes());
        trees
            .consents
            .insert(consent.consent_id.as_bytes(), consent.encode_to_vec())
            .map_err(storage)?;
        trees.by_citizen.insert(index_key, &[]).map_err(storage)?;
        trees.db.flush().map_err(storage)?;
        Ok(())
    }

    async fn get(&self, id: &str) -> Result<Consent, ConsentError> {
        self.read(id)
    }

    async fn list(&self, citizen: &CitizenId) -> Result<Vec<Consent>, ConsentError> {
        let prefix = citizen.as_str().as_bytes();
        self.trees()?
            .by_citizen
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
        let trees = self.trees().map_err(|e| e.to_string())?;
        let stored = trees.meta.get(APPLIED).map_err(|e| e.to_string())?;
        Ok(stored
            .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map_or(0, u64::from_be_bytes))
    }

    fn set_applied(&self, size: u64) -> Result<(), String> {
        let trees = self.trees().map_err(|e| e.to_string())?;
        trees
            .meta
            .insert(APPLIED, &size.to_be_bytes())
            .map(drop)
            .map_err(|e| e.to_string())
    }

    fn flush(&self) -> Result<(), String> {
        let trees = self.trees().map_err(|e| e.to_string())?;
        trees.db.flush().map(drop).map_err(|e| e.to_string())
    }

    fn discard(&self) {
        let trees = self.open.write().unwrap_or_else(|p| p.into_inner()).take();
        drop(trees);
    }

    fn reopen(&self) -> Result<(), String> {
        if self.open.read().unwrap_or_else(|p| p.into_inner()).is_some() {
            return Ok(());
        }
        // Only the audit writer reopens, so no other open races this one.
        let trees = ConsentTrees::open(&self.data_dir)?;
        *self.open.write().unwrap_or_else(|p| p.into_inner()) = Some(trees);
        Ok(())
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
        let main = sled::Config::new().temporary(true).open().unwrap();
        let store = SledConsents::open(dir.path(), &main).unwrap();
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

    #[test]
    fn consents_move_out_of_the_older_layout_once() {
        let dir = tempfile::tempdir().unwrap();
        let main = sled::Config::new().temporary(true).open().unwrap();
        main.open_tree("consents").unwrap().insert("c1", "body").unwrap();
        main.open_tree("consents_by_citizen")
            .unwrap()
            .insert("idc1", "")
            .unwrap();
        let store = SledConsents::open(dir.path(), &main).unwrap();
        let trees = store.trees().unwrap();
        assert_eq!(trees.consents.get("c1").unwrap().as_deref(), Some(&b"body"[..]));
        assert!(trees.by_citizen.get("idc1").unwrap().is_some());
        assert!(!main.tree_names().iter().any(|n| n.as_ref() == b"consents"));
        drop(trees);
        // A failed write drops the store; it reopens from disk with what was durable.
        store.discard();
        assert!(store.trees().is_err());
        store.reopen().unwrap();
        assert!(store.trees().unwrap().consents.get("c1").unwrap().is_some());
    }
}
