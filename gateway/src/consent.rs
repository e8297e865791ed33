//! Citizens' consents: what one says, how the gateway signs it, and the rule
//! every use is checked against. The consent stores (`store`) apply the
//! rule and count uses atomically.
//!
//! A consent says: citizen C authorises agency G to obtain scopes S for
//! purpose P from `not_before` until `not_after`, at most `max_uses` times
//! (0 = unlimited). Withdrawal takes effect on the next use.

use std::time::SystemTime;

use civex_proto::v1::{Consent, ConsentBody};
use prost::Message;
use rand::RngCore;

use civex_adapters::CitizenId;
use civex_audit::{
    clock::{system_time, timestamp},
    keys::Signer,
};

use crate::error::{Error, Reason};

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

pub(crate) fn storage(e: impl std::fmt::Display) -> ConsentError {
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

fn fmt_time(t: &Option<prost_types::Timestamp>) -> String {
    t.as_ref().map(|t| t.to_string()).unwrap_or_default()
}

fn at(t: &Option<prost_types::Timestamp>) -> Option<SystemTime> {
    t.as_ref().and_then(system_time)
}

/// Makes a consent valid from `now`, with a fresh id, signed by the gateway.
/// It takes effect once stored.
pub fn sign(new: NewConsent, signer: &Signer, now: SystemTime) -> Consent {
    // A consent id enters the log as it is: never one that looks like an ID number.
    let consent_id = loop {
        let mut id = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut id);
        let hex = hex::encode(id);
        if !crate::policy::labels::holds_citizen_id(&hex) {
            break hex;
        }
    };
    let body = ConsentBody {
        consent_id,
        citizen_id: new.citizen.as_str().to_owned(),
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

/// Checks that `consent` covers the use `u` and has a use left, counting
/// nothing: a call checks this first, and the audit writer counts the use,
/// in log order, when the call's record is written.
pub fn covers(consent: &Consent, u: &Use<'_>) -> Result<(), ConsentError> {
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
    Ok(())
}

/// Ids come from callers: echo one back only if it has the form of a
/// consent id, never what might be an ID number put in its place.
pub(crate) fn shorten(id: &str) -> String {
    crate::policy::labels::logged_consent_id(id)
}
