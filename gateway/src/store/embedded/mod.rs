//! The embedded engine: one data directory, no other service. A sled
//! database (`db/`) holds agencies, certificates and the department
//! registries; consents have their own (`consents/`), dropped and reopened
//! from disk with the audit log after a failed write, so that a disk that
//! filled heals once space returns. The audit log is in files (`log/`, see
//! [`civex_audit::tiles`]) and its search indexes in a sled database of
//! their own (`audit-index/`), rebuilt from the log when lost.
//!
//! Consent uses and withdrawals are counted by the audit writer, which
//! makes them durable in its records; this store is told after each batch
//! (not flushed) and brought up to date from the log at start, from its
//! `applied` watermark. Alerts, the watch list and cases have a database
//! of their own ([`oversight`]), and so have commitments ([`commitments`])
//! and objections with their corrections ([`corrections`]).
//!
//! | database | tree | key | value |
//! |---|---|---|---|
//! | `db` | `agencies` | code | the `Agency`, JSON |
//! | `db` | `issued_certificates` | serial | agency code |
//! | `db` | `revoked_certificates` | serial | `{revoked_at, reason}`, JSON |
//! | `consents` | `consents` | consent id | the encoded `Consent` |
//! | `consents` | `consents_by_citizen` | citizen id ‖ consent id | () |
//! | `consents` | `consent_uses` | consent id | [`Tally`]: uses and withdrawal counted from the log, and the log size they are counted through |
//! | `consents` | `consents_meta` | `withdrawals_applied` | log size through which every consent's uses and withdrawals are applied, u64 BE |
//!
//! A consent's `uses` and `revoked_at` as read are its record's (uses
//! counted before this layout) plus its tally. The tally is one key, so it
//! is written whole or not at all without a sled batch or transaction: the
//! first of those in a process makes every sled operation in it take one
//! global lock, which the request path's reads would wait on.

pub mod commitments;
pub mod corrections;
pub mod oversight;

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, RwLock},
    time::{Duration, Instant, SystemTime},
};

use async_trait::async_trait;
use civex_adapters::{CitizenId, EmbeddedRegistries, RegistryStore};
use civex_audit::{IndexStore, LogEngine, LogStore, Usage, UseLedger, embedded::SledIndex, tiles::TileLog};
use civex_proto::v1::Consent;
use prost::Message;
use serde::{Deserialize, Serialize};

use super::{AgencyStore, Certificate, CertificateStore, ConsentStore, Revocation, StoreError, Stores};
use crate::{
    consent::{ConsentError, shorten, storage},
    policy::access::Agency,
};

/// The sled database inside a data directory.
pub const DB_DIR: &str = "db";

/// Opens (creating if needed) every store of the data directory `dir`.
pub fn open(dir: &Path) -> Result<Stores, StoreError> {
    let db = open_db(dir)?;
    let tree = |name: &str| db.open_tree(name).map_err(StoreError::new);
    let consents = Arc::new(SledConsents::open(dir, &db)?);
    let log = open_log(dir)?;
    Ok(Stores {
        agencies: Arc::new(SledAgencies(tree("agencies")?)),
        certificates: Arc::new(SledCertificates {
            issued: tree("issued_certificates")?,
            revoked: tree("revoked_certificates")?,
        }),
        consents: consents.clone(),
        log: LogEngine::Local {
            store: log.clone(),
            ledger: consents,
        },
        audit_index: open_log_index(dir)?,
        registries: Arc::new(EmbeddedRegistries::new(db)),
        oversight: Arc::new(oversight::SledOversight::open(
            dir,
            log.size().map_err(StoreError::new)?,
        )?),
        commitments: Arc::new(commitments::SledCommitments::open(dir)?),
        corrections: Arc::new(corrections::SledCorrections::open(dir)?),
        changes: None,
        load: None,
    })
}

fn open_db(dir: &Path) -> Result<sled::Db, StoreError> {
    civex_audit::embedded::open_db(dir, DB_DIR).map_err(StoreError::new)
}

/// Opens only the audit log of the data directory `dir`.
pub fn open_log(dir: &Path) -> Result<Arc<dyn LogStore>, StoreError> {
    let log = TileLog::open(dir).map_err(StoreError::new)?;
    civex_audit::embedded::migrate_sled_log(dir, &log).map_err(StoreError::new)?;
    Ok(Arc::new(log))
}

/// Opens only the log's search indexes of the data directory `dir`.
pub fn open_log_index(dir: &Path) -> Result<Arc<dyn IndexStore>, StoreError> {
    Ok(Arc::new(SledIndex::open(dir).map_err(StoreError::new)?))
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

/// An issued certificate as stored: JSON, or the agency code alone as
/// gateways wrote it before they kept `not_after`.
fn stored_certificate(serial: &[u8], value: &[u8]) -> Certificate {
    serde_json::from_slice(value).unwrap_or_else(|_| Certificate {
        serial: String::from_utf8_lossy(serial).into_owned(),
        agency: String::from_utf8_lossy(value).into_owned(),
        not_after: None,
    })
}

struct SledCertificates {
    /// serial → [`Certificate`] as JSON (before `not_after` was kept: the agency code alone).
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
    async fn issued(&self, certificate: &Certificate) -> Result<(), StoreError> {
        let value = serde_json::to_vec(certificate).map_err(StoreError::new)?;
        self.issued
            .insert(certificate.serial.as_bytes(), value)
            .map_err(StoreError::new)?;
        self.issued.flush().map_err(StoreError::new)?;
        Ok(())
    }

    async fn agency_of(&self, serial: &str) -> Result<Option<String>, StoreError> {
        let stored = self.issued.get(serial).map_err(StoreError::new)?;
        Ok(stored.map(|v| stored_certificate(serial.as_bytes(), &v).agency))
    }

    async fn issued_to(&self, agency: &str) -> Result<Vec<Certificate>, StoreError> {
        let mut found = Vec::new();
        for item in self.issued.iter() {
            let (serial, value) = item.map_err(StoreError::new)?;
            let certificate = stored_certificate(&serial, &value);
            if certificate.agency == agency {
                found.push(certificate);
            }
        }
        Ok(found)
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
    /// Tallies the log counted that are not yet written to sled.
    unwritten: Mutex<Unwritten>,
}

/// The log's tallies in memory, written to sled at most once per
/// [`WRITE_EVERY`] (a consent used a thousand times a second is written
/// once) and at every flush; reads see them at once. What a crash loses of
/// them the log replays.
#[derive(Default)]
struct Unwritten {
    tallies: HashMap<String, Tally>,
    /// The watermark to write with them.
    applied: Option<u64>,
    written: Option<Instant>,
}

/// How often the log's tallies are written to sled.
const WRITE_EVERY: Duration = Duration::from_millis(500);

/// The trees of the consent database.
#[derive(Clone)]
struct ConsentTrees {
    /// consent id → encoded `Consent`.
    consents: sled::Tree,
    /// citizen id ‖ consent id → (), for `List`.
    by_citizen: sled::Tree,
    /// consent id → [`Tally`].
    uses: sled::Tree,
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

/// The tree of the log's tallies per consent.
const USES_TREE: &str = "consent_uses";

/// What the log counted for one consent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Tally {
    uses: u64,
    /// Unix nanoseconds of the withdrawal; 0 if none.
    withdrawn_at: u64,
    /// The log size through which this tally counts.
    through: u64,
}

impl Tally {
    fn encode(&self) -> [u8; 24] {
        let mut out = [0; 24];
        out[..8].copy_from_slice(&self.uses.to_be_bytes());
        out[8..16].copy_from_slice(&self.withdrawn_at.to_be_bytes());
        out[16..].copy_from_slice(&self.through.to_be_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Option<Tally> {
        let word = |i: usize| Some(u64::from_be_bytes(bytes.get(i..i + 8)?.try_into().ok()?));
        Some(Tally {
            uses: word(0)?,
            withdrawn_at: word(8)?,
            through: word(16)?,
        })
    }
}

/// Key of the withdrawal watermark in `consents_meta`.
const APPLIED: &[u8] = b"withdrawals_applied";

fn tally(trees: &ConsentTrees, id: &str) -> Result<Tally, String> {
    match trees.uses.get(id.as_bytes()).map_err(|e| e.to_string())? {
        None => Ok(Tally::default()),
        Some(v) => Tally::decode(&v).ok_or_else(|| format!("malformed use tally of consent {}", shorten(id))),
    }
}

impl ConsentTrees {
    fn open(data_dir: &Path) -> Result<ConsentTrees, String> {
        let db = civex_audit::embedded::open_db(data_dir, CONSENTS_DIR).map_err(|e| e.to_string())?;
        let tree = |name| db.open_tree(name).map_err(|e| e.to_string());
        Ok(ConsentTrees {
            consents: tree(CONSENT_TREES[0])?,
            by_citizen: tree(CONSENT_TREES[1])?,
            meta: tree(CONSENT_TREES[2])?,
            uses: tree(USES_TREE)?,
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
            unwritten: Mutex::new(Unwritten::default()),
        })
    }

    /// The tally of `id`: the unwritten one, else the stored one.
    fn tally(&self, trees: &ConsentTrees, id: &str) -> Result<Tally, String> {
        if let Some(t) = self.unwritten.lock().unwrap_or_else(|p| p.into_inner()).tallies.get(id) {
            return Ok(*t);
        }
        tally(trees, id)
    }

    /// Writes the unwritten tallies to sled, then their watermark. Readers
    /// keep seeing each tally in memory until it is in sled.
    fn write_out(&self, trees: &ConsentTrees) -> Result<(), String> {
        let (tallies, applied) = {
            let mut unwritten = self.unwritten.lock().unwrap_or_else(|p| p.into_inner());
            unwritten.written = Some(Instant::now());
            (unwritten.tallies.clone(), unwritten.applied)
        };
        for (id, t) in &tallies {
            trees
                .uses
                .insert(id.as_bytes(), &t.encode())
                .map_err(|e| e.to_string())?;
        }
        if let Some(size) = applied {
            trees
                .meta
                .insert(APPLIED, &size.to_be_bytes())
                .map_err(|e| e.to_string())?;
        }
        let mut unwritten = self.unwritten.lock().unwrap_or_else(|p| p.into_inner());
        unwritten.tallies.retain(|id, t| tallies.get(id) != Some(t));
        if unwritten.applied == applied {
            unwritten.applied = None;
        }
        Ok(())
    }

    fn trees(&self) -> Result<ConsentTrees, ConsentError> {
        let open = self.open.read().unwrap_or_else(|p| p.into_inner()).clone();
        open.ok_or_else(|| storage("the consent store is being reopened after a failed write"))
    }

    /// The consent `id` with the log's tally merged in.
    fn read(&self, id: &str) -> Result<Consent, ConsentError> {
        if id.is_empty() {
            return Err(ConsentError::Required);
        }
        let trees = self.trees()?;
        let bytes = trees.consents.get(id.as_bytes()).map_err(storage)?;
        let bytes = bytes.ok_or_else(|| ConsentError::NotFound(shorten(id)))?;
        let mut consent = Consent::decode(bytes.as_ref()).map_err(storage)?;
        let tally = self.tally(&trees, id).map_err(storage)?;
        consent.uses = u32::try_from(u64::from(consent.uses) + tally.uses).unwrap_or(u32::MAX);
        if consent.revoked_at.is_none() && tally.withdrawn_at != 0 {
            let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_nanos(tally.withdrawn_at);
            consent.revoked_at = Some(civex_audit::clock::timestamp(at));
        }
        Ok(consent)
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
}

impl UseLedger for SledConsents {
    fn usage(&self, consent_id: &str) -> Result<Usage, String> {
        let consent = self.read(consent_id).map_err(|e| e.to_string())?;
        let trees = self.trees().map_err(|e| e.to_string())?;
        Ok(Usage {
            uses: consent.uses.into(),
            max_uses: consent.max_uses.into(),
            withdrawn: consent.revoked_at.is_some(),
            counted_through: self.tally(&trees, consent_id)?.through,
        })
    }

    fn apply(
        &self,
        uses: &HashMap<String, u64>,
        withdrawals: &HashMap<String, SystemTime>,
        size: u64,
    ) -> Result<(), String> {
        let trees = self.trees().map_err(|e| e.to_string())?;
        let mut ids: Vec<&String> = uses.keys().chain(withdrawals.keys()).collect();
        ids.sort();
        ids.dedup();
        let due = {
            let mut unwritten = self.unwritten.lock().unwrap_or_else(|p| p.into_inner());
            for id in ids {
                let mut t = match unwritten.tallies.get(id) {
                    Some(t) => *t,
                    None => tally(&trees, id)?,
                };
                if t.through >= size {
                    continue;
                }
                t.uses += uses.get(id).copied().unwrap_or(0);
                if t.withdrawn_at == 0
                    && let Some(at) = withdrawals.get(id)
                {
                    t.withdrawn_at = at
                        .duration_since(SystemTime::UNIX_EPOCH)
                        .map_or(1, |d| d.as_nanos() as u64)
                        .max(1);
                }
                t.through = size;
                unwritten.tallies.insert(id.clone(), t);
            }
            unwritten.applied = Some(size);
            unwritten.written.is_none_or(|at| at.elapsed() >= WRITE_EVERY)
        };
        if due { self.write_out(&trees) } else { Ok(()) }
    }

    fn applied(&self) -> Result<u64, String> {
        if let Some(size) = self.unwritten.lock().unwrap_or_else(|p| p.into_inner()).applied {
            return Ok(size);
        }
        let trees = self.trees().map_err(|e| e.to_string())?;
        let stored = trees.meta.get(APPLIED).map_err(|e| e.to_string())?;
        Ok(stored
            .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map_or(0, u64::from_be_bytes))
    }

    fn flush(&self) -> Result<(), String> {
        let trees = self.trees().map_err(|e| e.to_string())?;
        self.write_out(&trees)?;
        trees.db.flush().map(drop).map_err(|e| e.to_string())
    }

    fn discard(&self) {
        *self.unwritten.lock().unwrap_or_else(|p| p.into_inner()) = Unwritten::default();
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
        consent::{NewConsent, Use, covers, sign},
        error::{Error, Reason},
    };

    /// Checks `u` against the stored consent and, if it is covered, counts
    /// it as the audit writer does.
    async fn use_for(store: &SledConsents, id: &str, u: Use<'_>, size: u64) -> Result<Consent, ConsentError> {
        covers(&store.get(id).await?, &u)?;
        store
            .apply(&HashMap::from([(id.to_owned(), 1)]), &HashMap::new(), size)
            .unwrap();
        store.get(id).await
    }

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
        for (n, (name, u, expected)) in cases.into_iter().enumerate() {
            let got = use_for(&store, id, u, n as u64 + 1)
                .await
                .map(|c| c.uses)
                .map_err(|e| Error::from(e).reason);
            assert_eq!(got, expected, "{name}");
        }
        assert_eq!(
            use_for(&store, "nope", ok, 99)
                .await
                .map_err(|e| Error::from(e).reason)
                .unwrap_err(),
            Reason::ConsentNotFound
        );
        assert_eq!(
            use_for(&store, "", ok, 99)
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
        for i in 1..=5 {
            use_for(&store, &consent.consent_id, u, i).await.unwrap();
        }
        assert_eq!(store.applied().unwrap(), 5);
        let id = consent.consent_id.clone();
        store
            .apply(&HashMap::new(), &HashMap::from([(id.clone(), t0)]), 6)
            .unwrap();
        store
            .apply(
                &HashMap::from([(id.clone(), 2)]),
                &HashMap::from([(id.clone(), t0 + Duration::from_secs(1))]),
                7,
            )
            .unwrap();
        assert_eq!(store.applied().unwrap(), 7);
        let revoked = store.get(&consent.consent_id).await.unwrap();
        assert_eq!(
            revoked.revoked_at,
            Some(civex_audit::clock::timestamp(t0)),
            "the first time is kept"
        );
        assert_eq!(
            store.usage(&id).unwrap(),
            Usage {
                uses: 7,
                max_uses: 0,
                withdrawn: true,
                counted_through: 7,
            }
        );
        assert_eq!(
            use_for(&store, &consent.consent_id, u, 8).await.unwrap_err(),
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
