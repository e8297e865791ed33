//! The gRPC services. Each handler follows the request path of DESIGN §2:
//! peer identity → agency (active?) → role → validate → access rights →
//! consent → adapters, then appends the call's audit record and answers only
//! once that record is durable. A refusal is recorded like an answer.
//!
//! Every RPC goes through [`State::call`], the one place that starts its
//! [`Draft`] record, runs the handler in a span naming agency, method and
//! request id, and holds the answer until the record is durable.
//!
//! # Layout
//! - [`exchange`]: `ExchangeService` (requesters).
//! - [`consent`]: `ConsentService` (consent registrars).
//! - [`audit`]: `AuditService` (auditors).
//! - [`admin`]: `AdminService` (administrators).

pub mod admin;
pub mod audit;
pub mod consent;
pub mod exchange;

use std::sync::Arc;

use civex_adapters::CitizenId;
use civex_audit::{Appended, AuditLog, Overruled, Pseudonymizer, keys::Signer};
use civex_proto::v1::{AuditRecord, Decision};
use tonic::{Request, Response, Status};
use tracing::{Instrument, field};

use crate::{
    authority::Authority,
    clock::Clock,
    config::Limits,
    departments::Departments,
    directory::Directory,
    error::{Error, Reason},
    net::{identity::PeerIdentity, limits::RateLimiters},
    policy::{
        access::{Agency, Role},
        predicates::Thresholds,
    },
    store::ConsentStore,
};

/// What every handler shares.
pub struct State {
    pub directory: Directory,
    pub consents: Arc<dyn ConsentStore>,
    pub departments: Departments,
    pub signer: Arc<Signer>,
    pub clock: Arc<dyn Clock>,
    pub limits: Limits,
    /// The thresholds local rules set for predicates.
    pub thresholds: Thresholds,
    pub audit: AuditLog,
    pub pseudonyms: Pseudonymizer,
    pub authority: Authority,
    pub limiters: RateLimiters,
}

/// Longest caller-supplied text kept in an audit record, in characters.
const MAX_LOGGED: usize = 128;
/// Most scopes kept in one audit record.
const MAX_LOGGED_SCOPES: usize = 64;

/// Caller text as it may enter the log: bounded, without control characters.
fn logged(s: &str) -> String {
    s.chars()
        .take(MAX_LOGGED)
        .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
        .collect()
}

/// The audit record of one call, drafted as the call proceeds and
/// appended when it ends.
pub struct Draft {
    record: AuditRecord,
    consent_use: Option<String>,
    checkpoint: bool,
}

impl Draft {
    /// Records the citizen, by pseudonym only.
    pub fn citizen(&mut self, state: &State, id: &CitizenId) {
        self.record.citizen_ref = state.pseudonyms.citizen_ref(id.as_str());
    }

    pub fn scopes(&mut self, scopes: &[String]) {
        self.record.scopes = scopes.iter().take(MAX_LOGGED_SCOPES).map(|s| logged(s)).collect();
    }

    pub fn purpose(&mut self, purpose: &str) {
        self.record.purpose = logged(purpose);
    }

    pub fn consent(&mut self, consent_id: &str) {
        self.record.consent_id = logged(consent_id);
    }

    /// The agency's own labels: the official at the counter and its request
    /// id, which the call's span carries from here on.
    pub fn labels(&mut self, operator: &str, request_id: &str) {
        self.record.operator = logged(operator);
        self.record.request_id = logged(request_id);
        tracing::Span::current().record("request_id", self.record.request_id.as_str());
    }

    /// This call used `consent_id`: the log re-checks it in log order.
    pub fn uses_consent(&mut self, consent_id: &str) {
        self.consent_use = Some(consent_id.to_owned());
    }

    /// What an administrative call acted on.
    pub fn subject(&mut self, subject: &str) {
        self.record.subject = logged(subject);
    }

    /// Sign a checkpoint that includes this call's record.
    pub fn with_checkpoint(&mut self) {
        self.checkpoint = true;
    }
}

impl State {
    /// Runs one RPC: drafts its record as `method` (e.g.
    /// `ExchangeService/Query`), runs `handle` in a span naming the agency,
    /// method and request id, and returns its answer only once the record is
    /// durable. If the record cannot be written, the caller gets
    /// `AUDIT_UNAVAILABLE` and nothing else.
    pub async fn call<T, R>(
        &self,
        request: Request<T>,
        method: &'static str,
        handle: impl AsyncFnOnce(Request<T>, &mut Draft) -> Result<R, Error>,
    ) -> Result<(R, Appended), Status> {
        let agency = request
            .extensions()
            .get::<PeerIdentity>()
            .map(|p| p.agency.clone())
            .unwrap_or_default();
        let span = tracing::info_span!("rpc", %agency, method, request_id = field::Empty);
        let mut draft = Draft {
            record: AuditRecord {
                agency,
                action: method.to_owned(),
                ..Default::default()
            },
            consent_use: None,
            checkpoint: false,
        };
        async {
            let result = handle(request, &mut draft).await;
            if let Err(e) = &result {
                tracing::debug!(reason = %e.reason, "refused");
            }
            self.finish(draft, result).await
        }
        .instrument(span)
        .await
    }

    /// [`State::call`] for the RPCs whose answer is the handler's result alone.
    pub async fn answer<T, R>(
        &self,
        request: Request<T>,
        method: &'static str,
        handle: impl AsyncFnOnce(Request<T>, &mut Draft) -> Result<R, Error>,
    ) -> Result<Response<R>, Status> {
        Ok(Response::new(self.call(request, method, handle).await?.0))
    }

    /// The calling agency, from the connection's verified certificate only,
    /// if its certificate is not revoked, it is active, holds one of `roles`
    /// and is within its quota. Checked on every call, so a revocation or
    /// suspension also cuts off connections that are already open.
    pub fn caller<T>(&self, request: &Request<T>, roles: &[Role]) -> Result<Arc<Agency>, Error> {
        // Invariant: every connection comes through `tls::incoming`, which
        // attaches the identity; a request without one never passed mTLS.
        let peer = request
            .extensions()
            .get::<PeerIdentity>()
            .ok_or_else(|| Error::new(Reason::RoleRequired, "no verified client certificate"))?;
        if self.authority.is_revoked(&peer.serial) {
            return Err(Error::new(
                Reason::CertificateRevoked,
                format!("certificate {} of agency {} is revoked", peer.serial, peer.agency),
            ));
        }
        let agency = self.directory.authorize(&peer.agency, roles)?;
        self.limiters.check(&agency)?;
        Ok(agency)
    }

    /// Records the call's outcome and waits until the record is durable;
    /// only then may the result leave.
    async fn finish<R>(&self, draft: Draft, result: Result<R, Error>) -> Result<(R, Appended), Status> {
        let mut record = draft.record;
        let consent_use = match &result {
            Ok(_) => {
                record.decision = Decision::Allow as i32;
                draft.consent_use
            }
            Err(e) => {
                record.decision = Decision::Deny as i32;
                record.reason = e.reason.as_str().to_owned();
                None
            }
        };
        let appended = self
            .audit
            .append(record, consent_use, draft.checkpoint)
            .await
            .map_err(Error::from)?;
        if let Some(overruled) = appended.overruled {
            let reason = match overruled {
                Overruled::ConsentRevoked => Reason::ConsentRevoked,
                Overruled::Unchecked => Reason::Internal,
            };
            return Err(Error::new(reason, "the consent was withdrawn before this use was recorded").into());
        }
        Ok((result?, appended))
    }
}
