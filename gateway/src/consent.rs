//! Citizens' consents: stored in sled, signed by the gateway, counted and
//! checked atomically on every use.
//!
//! A consent says: citizen C authorises agency G to obtain scopes S for
//! purpose P from `not_before` until `not_after`, at most `max_uses` times
//! (0 = unlimited). Withdrawal takes effect on the next use.

use std::time::SystemTime;

use civex_proto::v1::{Consent, ConsentBody};
use prost::Message;
use rand::RngCore;

use crate::{
    citizen_id::CitizenId,
    clock::{system_time, timestamp},
    error::{Error, Reason},
    signing::Signer,
};

/// Why a consent cannot be granted, found or used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConsentError {
    #[error("a consent_id is required")]
    Required,
    #[error("no consent {0:?}")]
    NotFound(String),
    #[error("consent was granted to another agency")]
    Grantee,
    #[error("consent was granted for another citizen")]
    Citizen,
    #[error("consent does not cover {0}")]
    Scope(String),
    #[error("consent was granted for purpose {granted}, not {asked}")]
    Purpose { granted: String, asked: String },
    #[error("consent is not valid before {0}")]
    NotYetValid(String),
    #[error("consent expired at {0}")]
    Expired(String),
    #[error("consent was revoked")]
    Revoked,
    #[error("consent has been used {0} times, its limit")]
    Exhausted(u32),
    #[error("consent store: {0}")]
    Storage(String),
}

impl From<ConsentError> for Error {
    fn from(e: ConsentError) -> Error {
        let reason = match &e {
            ConsentError::Required => Reason::ConsentRequired,
            ConsentError::NotFound(_) => Reason::ConsentNotFound,
            ConsentError::Grantee => Reason::ConsentGrantee,
            ConsentError::Citizen | ConsentError::Scope(_) => Reason::ConsentScope,
            ConsentError::Purpose { .. } => Reason::ConsentPurpose,
            ConsentError::NotYetValid(_) | ConsentError::Expired(_) => Reason::ConsentExpired,
            ConsentError::Revoked => Reason::ConsentRevoked,
            ConsentError::Exhausted(_) => Reason::ConsentExhausted,
            ConsentError::Storage(cause) => return Error::internal(cause),
        };
        Error::new(reason, e.to_string())
    }
}

fn storage(e: impl std::fmt::Display) -> ConsentError {
    ConsentError::Storage(e.to_string())
}

/// A validated request to register a consent.
#[derive(Debug, Clone)]
pub struct NewConsent {
    pub citizen: CitizenId,
    pub grantee: String,
    pub scopes: Vec<String>,
    pub purpose: String,
    pub not_after: SystemTime,
    pub max_uses: u32,
    /// The consent_registrar agency registering it.
    pub registrar: String,
}

/// One use a caller wants to make of a consent.
#[derive(Debug, Clone, Copy)]
pub struct Use<'a> {
    pub caller: &'a str,
    pub citizen: &'a CitizenId,
    pub scopes: &'a [&'a str],
    pub purpose: &'a str,
    pub now: SystemTime,
}

/// The consents of every citizen, in the gateway's sled database.
#[derive(Debug, Clone)]
pub struct ConsentStore {
    /// consent id → encoded `Consent`.
    consents: sled::Tree,
    /// citizen id ‖ consent id → (), for `List`.
    by_citizen: sled::Tree,
}

fn fmt_time(t: &Option<prost_types::Timestamp>) -> String {
    t.as_ref().map(|t| t.to_string()).unwrap_or_default()
}

fn at(t: &Option<prost_types::Timestamp>) -> Option<SystemTime> {
    t.as_ref().and_then(system_time)
}

/// Makes a consent valid from `now`, with a fresh id, signed by the gateway.
/// It takes effect once [`ConsentStore::insert`]ed.
pub fn sign(new: NewConsent, signer: &Signer, now: SystemTime) -> Consent {
    let mut id = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut id);
    let body = ConsentBody {
        consent_id: hex::encode(id),
        citizen_id: new.citizen.to_string(),
        grantee: new.grantee,
        scopes: new.scopes,
        purpose: new.purpose,
        not_before: Some(timestamp(now)),
        not_after: Some(timestamp(new.not_after)),
        max_uses: new.max_uses,
        registrar: new.registrar,
        issued_at: Some(timestamp(now)),
    };
    let body_bytes = body.encode_to_vec();
    Consent {
        signature: signer.sign(&body_bytes).to_vec(),
        key_id: signer.key_id(),
        consent_id: body.consent_id,
        citizen_id: body.citizen_id,
        grantee: body.grantee,
        scopes: body.scopes,
        purpose: body.purpose,
        not_before: body.not_before,
        not_after: body.not_after,
        max_uses: body.max_uses,
        uses: 0,
        revoked_at: None,
        body: body_bytes,
    }
}

impl ConsentStore {
    pub fn open(db: &sled::Db) -> sled::Result<ConsentStore> {
        Ok(ConsentStore {
            consents: db.open_tree("consents")?,
            by_citizen: db.open_tree("consents_by_citizen")?,
        })
    }

    /// Stores a consent made by [`sign`].
    pub fn insert(&self, consent: &Consent) -> Result<(), ConsentError> {
        let mut index_key = consent.citizen_id.clone().into_bytes();
        index_key.extend_from_slice(consent.consent_id.as_bytes());
        self.consents
            .insert(consent.consent_id.as_bytes(), consent.encode_to_vec())
            .map_err(storage)?;
        self.by_citizen.insert(index_key, &[]).map_err(storage)?;
        self.consents.flush().map_err(storage)?;
        Ok(())
    }

    /// The consent with `id`.
    pub fn get(&self, id: &str) -> Result<Consent, ConsentError> {
        if id.is_empty() {
            return Err(ConsentError::Required);
        }
        let bytes = self.consents.get(id.as_bytes()).map_err(storage)?;
        let bytes = bytes.ok_or_else(|| ConsentError::NotFound(shorten(id)))?;
        Consent::decode(bytes.as_ref()).map_err(storage)
    }

    /// Every consent registered for `citizen`, oldest first by id order.
    pub fn list(&self, citizen: &CitizenId) -> Result<Vec<Consent>, ConsentError> {
        let prefix = citizen.as_str().as_bytes();
        self.by_citizen
            .scan_prefix(prefix)
            .keys()
            .map(|key| {
                let key = key.map_err(storage)?;
                let id = std::str::from_utf8(&key[prefix.len()..]).map_err(storage)?;
                self.get(id)
            })
            .collect()
    }

    /// Withdraws a consent from `now` on; withdrawing twice keeps the first time.
    pub fn revoke(&self, id: &str, now: SystemTime) -> Result<Consent, ConsentError> {
        self.update(id, |consent| {
            if consent.revoked_at.is_none() {
                consent.revoked_at = Some(timestamp(now));
            }
            Ok(())
        })
    }

    /// Checks that the consent covers `u` and counts one use, atomically:
    /// concurrent uses never push `uses` past `max_uses`.
    pub fn use_for(&self, id: &str, u: Use<'_>) -> Result<Consent, ConsentError> {
        self.update(id, |consent| {
            if consent.grantee != u.caller {
                return Err(ConsentError::Grantee);
            }
            if consent.citizen_id != u.citizen.as_str() {
                return Err(ConsentError::Citizen);
            }
            if consent.revoked_at.is_some() {
                return Err(ConsentError::Revoked);
            }
            if at(&consent.not_before).is_none_or(|t| u.now < t) {
                return Err(ConsentError::NotYetValid(fmt_time(&consent.not_before)));
            }
            if at(&consent.not_after).is_none_or(|t| u.now >= t) {
                return Err(ConsentError::Expired(fmt_time(&consent.not_after)));
            }
            if consent.purpose != u.purpose {
                return Err(ConsentError::Purpose {
                    granted: consent.purpose.clone(),
                    asked: u.purpose.to_owned(),
                });
            }
            if let Some(missing) = u.scopes.iter().find(|s| !consent.scopes.iter().any(|c| c == *s)) {
                return Err(ConsentError::Scope((*missing).to_owned()));
            }
            if consent.max_uses != 0 && consent.uses >= consent.max_uses {
                return Err(ConsentError::Exhausted(consent.uses));
            }
            consent.uses += 1;
            Ok(())
        })
    }

    /// Makes every change so far durable. The audit writer calls it in each
    /// group commit, so a use or withdrawal is durable once its call is answered.
    pub fn flush(&self) -> Result<(), ConsentError> {
        self.consents.flush().map(drop).map_err(storage)
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

/// Ids come from callers: echo at most a short prefix back.
fn shorten(id: &str) -> String {
    id.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use ed25519_dalek::SigningKey;
    use time::macros::date;

    use super::*;

    fn grant(store: &ConsentStore, new: NewConsent, signer: &Signer, now: SystemTime) -> Consent {
        let consent = sign(new, signer, now);
        store.insert(&consent).unwrap();
        consent
    }

    fn setup() -> (tempfile::TempDir, ConsentStore, Signer, CitizenId) {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let store = ConsentStore::open(&db).unwrap();
        let signer = Signer::new(SigningKey::from_bytes(&[1; 32]), "civex/test");
        let citizen = CitizenId::from_parts("530302", date!(1990 - 03 - 07), 11).unwrap();
        (dir, store, signer, citizen)
    }

    #[test]
    fn use_table() {
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
        );
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
            let got = store.use_for(id, u).map(|c| c.uses).map_err(|e| Error::from(e).reason);
            assert_eq!(got, expected, "{name}");
        }
        assert_eq!(
            store
                .use_for("nope", ok)
                .map_err(|e| Error::from(e).reason)
                .unwrap_err(),
            Reason::ConsentNotFound
        );
        assert_eq!(
            store.use_for("", ok).map_err(|e| Error::from(e).reason).unwrap_err(),
            Reason::ConsentRequired
        );
    }

    #[test]
    fn revoked_consents_stop_at_once_and_the_signature_covers_the_body() {
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
        );
        let verifier = crate::signing::Verifier::parse(&signer.verifier_key()).unwrap();
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
            store.use_for(&consent.consent_id, u).unwrap();
        }
        let revoked = store.revoke(&consent.consent_id, t0).unwrap();
        assert!(revoked.revoked_at.is_some());
        assert_eq!(
            store.use_for(&consent.consent_id, u).unwrap_err(),
            ConsentError::Revoked
        );
        assert_eq!(store.list(&citizen).unwrap(), vec![revoked]);
    }
}
