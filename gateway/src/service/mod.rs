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
//! - [`oversight`]: `OversightService` (auditors): alerts, the watch list, cases.
//! - [`commitment`]: `CommitmentService` (requesters): notification and commitment.
//! - [`correction`]: `CorrectionService`: objections (registrars), their resolution
//!   (data stewards) and the corrections sent (requesters).
//! - [`guard`]: the tower layer every request passes: connection activity,
//!   and the record of calls the decoder refused.

pub mod admin;
pub mod audit;
pub mod commitment;
pub mod consent;
pub mod correction;
pub mod exchange;
pub mod guard;
pub mod oversight;
pub mod tlog;

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
    consent::{Use, covers},
    departments::Departments,
    directory::Directory,
    error::{Error, Reason},
    net::{identity::PeerIdentity, limits::RateLimiters},
    policy::{
        access::{Agency, Role},
        labels::{self, check_label},
        predicates::Thresholds,
    },
    store::{CommitmentStore, ConsentStore, CorrectionStore, OversightStore},
};

/// Runs `call` on a task of its own and waits for it. A call that changes
/// state goes through here, so that it runs to its end even if its caller
/// goes away (a client's deadline, a reset stream, a closed connection):
/// a change and its record are never cut apart, and a consent use is never
/// taken without the record that accounts for it.
pub async fn uncancelled<R: Send + 'static>(
    call: impl std::future::Future<Output = Result<R, Status>> + Send + 'static,
) -> Result<R, Status> {
    tokio::spawn(call).await.unwrap_or_else(|e| {
        tracing::error!(cause = %e, "a call's task failed");
        Err(Error::internal(e).into())
    })
}

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
    pub limiters: Arc<RateLimiters>,
    /// Whether agencies and revocations are known current (a shared store).
    pub freshness: crate::changes::Freshness,
    /// Alerts, the watch list and cases.
    pub oversight: Arc<dyn OversightStore>,
    /// Commitments, and the matters they are sampled by.
    pub commitments: Arc<dyn CommitmentStore>,
    pub matters: std::collections::BTreeMap<String, crate::commitments::Matter>,
    /// Objections and the corrections they sent.
    pub corrections: Arc<dyn CorrectionStore>,
    pub metrics: crate::metrics::Metrics,
    /// The witnesses that cosign checkpoints, if any are configured.
    pub witnesses: Option<crate::witness::Witnesses>,
}

/// The metadata naming the official who makes a call: an operator label
/// for calls whose request has no `operator` field of its own.
pub const OPERATOR: &str = civex_proto::OPERATOR_METADATA;

/// Most scopes kept in one audit record.
const MAX_LOGGED_SCOPES: usize = 64;

/// The audit record of one call, drafted as the call proceeds and
/// appended when it ends. Every setter stores caller text only as
/// [`labels`] allows: a name civex knows, a label that passed its check, or
/// `[redacted]` / `[invalid]` in its place.
pub struct Draft {
    record: AuditRecord,
    consent_uses: Vec<String>,
    withdrawal: Option<String>,
    checkpoint: bool,
    /// Set once the handler wrote the record itself (see [`State::record`]).
    recorded: Option<Appended>,
}

impl Draft {
    /// A record of `action` by `agency`'s `operator`; for an action the
    /// gateway takes itself on the agency's behalf, with no request and no
    /// certificate, as it stands.
    pub fn own(action: &str, agency: &str, operator: &str) -> Draft {
        Draft {
            record: AuditRecord {
                agency: agency.to_owned(),
                operator: operator.to_owned(),
                action: action.to_owned(),
                ..Default::default()
            },
            consent_uses: Vec::new(),
            withdrawal: None,
            checkpoint: false,
            recorded: None,
        }
    }

    /// Records the citizen, by pseudonym only.
    pub fn citizen(&mut self, state: &State, id: &CitizenId) {
        self.record.citizen_ref = state.pseudonyms.citizen_ref(id.as_str());
    }

    /// Records the citizen a call is about when it names them by pseudonym.
    pub fn citizen_ref(&mut self, citizen_ref: &str) {
        self.record.citizen_ref = citizen_ref.to_owned();
    }

    /// Records the other people whose records the call read, by pseudonym only.
    pub fn related(&mut self, state: &State, ids: &[CitizenId]) {
        self.record.related_refs = ids.iter().map(|id| state.pseudonyms.citizen_ref(id.as_str())).collect();
    }

    pub fn scopes(&mut self, scopes: &[String]) {
        self.record.scopes = scopes
            .iter()
            .take(MAX_LOGGED_SCOPES)
            .map(|s| labels::logged_scope(s))
            .collect();
    }

    pub fn purpose(&mut self, purpose: &str) {
        self.record.purpose = labels::logged_purpose(purpose);
    }

    pub fn consent(&mut self, consent_id: &str) {
        self.record.consent_id = labels::logged_consent_id(consent_id);
    }

    /// The agency's own labels: the official at the counter and its request
    /// id, which the call's span carries from here on.
    pub fn labels(&mut self, operator: &str, request_id: &str) {
        // The request's own field, else what the call's metadata named.
        if !operator.is_empty() {
            self.record.operator = labels::logged_label(operator);
        }
        self.record.request_id = labels::logged_label(request_id);
        tracing::Span::current().record("request_id", self.record.request_id.as_str());
    }

    /// The agency and operator the call came from.
    pub fn official(&self) -> (&str, &str) {
        (&self.record.agency, &self.record.operator)
    }

    /// What an oversight call acted on (an alert or case id), as a label.
    pub fn subject_label(&mut self, id: &str) {
        self.record.subject = labels::logged_label(id);
    }

    /// The caller's own words for a change (a reason text).
    pub fn note(&mut self, note: &str) {
        self.record.note = labels::logged_label(note);
    }

    /// This call used `consent_id`: the log re-checks it in log order.
    fn uses_consent(&mut self, consent_id: &str) {
        self.consent_uses.push(consent_id.to_owned());
    }

    /// This call withdraws `consent_id`: the log applies it in log order.
    pub fn withdraws(&mut self, consent_id: &str) {
        self.withdrawal = Some(consent_id.to_owned());
    }

    /// The agency an administrative call acted on.
    pub fn subject_agency(&mut self, code: &str) {
        self.record.subject = labels::logged_agency_code(code);
    }

    /// The certificate an administrative call acted on.
    pub fn subject_serial(&mut self, serial: &str) {
        self.record.subject = labels::logged_serial(serial);
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
        let (agency, certificate) = request
            .extensions()
            .get::<PeerIdentity>()
            .map(|p| (p.agency.clone(), p.serial.clone()))
            .unwrap_or_default();
        // Metadata values are visible ASCII; anything else is refused, not guessed at.
        let (operator, bad_operator) = match request.metadata().get(OPERATOR).map(|v| v.to_str()) {
            None => (String::new(), None),
            Some(Ok(v)) => (v.to_owned(), check_label(OPERATOR, v).err()),
            Some(Err(_)) => (
                "[invalid]".to_owned(),
                Some(Error::new(
                    Reason::InvalidRequest,
                    "civex-operator must be printable ASCII (a staff number)",
                )),
            ),
        };
        if let Some(handled) = request.extensions().get::<guard::Handled>() {
            handled.set();
        }
        let span = tracing::info_span!("rpc", %agency, method, request_id = field::Empty);
        let mut draft = Draft::own(method, &agency, &labels::logged_label(&operator));
        draft.record.certificate = certificate;
        let (started, agency) = (std::time::Instant::now(), draft.record.agency.clone());
        let answer = async {
            // A poll late on a busy machine is waited for, not taken for an unreachable store.
            self.freshness.settle().await;
            let result = match bad_operator {
                None => handle(request, &mut draft).await,
                Some(e) => Err(e),
            };
            if let Err(e) = &result {
                tracing::debug!(reason = %e.reason, "refused");
            }
            self.finish(draft, result).await
        }
        .instrument(span)
        .await;
        let reason = answer
            .as_ref()
            .err()
            .map(|s| crate::error::reason_of(s).unwrap_or_else(|| "UNKNOWN".into()));
        self.metrics.call(method, &agency, reason.as_deref(), started.elapsed());
        answer
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
        self.peer_caller(request.extensions().get::<PeerIdentity>(), roles)
    }

    /// [`State::caller`] for a connection's identity (an HTTP request's as well as a gRPC call's).
    pub fn peer_caller(&self, peer: Option<&PeerIdentity>, roles: &[Role]) -> Result<Arc<Agency>, Error> {
        // Invariant: every connection comes through `tls::incoming`, which
        // attaches the identity; a request without one never passed mTLS.
        let peer = peer.ok_or_else(|| Error::new(Reason::RoleRequired, "no verified client certificate"))?;
        self.freshness.check()?;
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

    /// Checks, counting nothing, that the consent `id` covers `asked` and
    /// has a use left.
    pub async fn consent_allows(&self, id: &str, asked: Use<'_>) -> Result<(), Error> {
        let consent = self.consents.get(id).await?;
        Ok(covers(&consent, &asked)?)
    }

    /// Checks that the consent `id` covers `asked` and marks the call as
    /// using it. The use is counted by the audit writer, in log order, as
    /// the call's record is written: it refuses the call there if the
    /// consent was withdrawn or ran out before the record's place in the
    /// log, so `max_uses` holds under any concurrency. A call takes its uses
    /// last, once everything else about it is answerable: a refused call
    /// uses nothing.
    pub async fn take_use(&self, id: &str, asked: Use<'_>, draft: &mut Draft) -> Result<(), Error> {
        self.consent_allows(id, asked).await?;
        draft.uses_consent(id);
        Ok(())
    }

    /// Writes the call's record now, as allowed, and waits until it is
    /// durable. A handler whose call changes state calls it once everything
    /// is checked and before the change is applied: the change then happens
    /// only after its record (DESIGN §11). If the change fails after all, the
    /// failure is recorded too.
    pub async fn record(&self, draft: &mut Draft) -> Result<Appended, Error> {
        let mut record = draft.record.clone();
        record.decision = Decision::Allow as i32;
        let appended = self.append(record, draft).await?;
        draft.recorded = Some(appended.clone());
        Ok(appended)
    }

    async fn append(&self, record: AuditRecord, draft: &Draft) -> Result<Appended, Error> {
        let allowed = record.decision == Decision::Allow as i32;
        let appended = self
            .audit
            .append(civex_audit::Entry {
                record,
                consent_uses: if allowed {
                    draft.consent_uses.clone()
                } else {
                    Vec::new()
                },
                withdrawal: draft.withdrawal.clone().filter(|_| allowed),
                checkpoint: draft.checkpoint,
            })
            .await?;
        if let Some(overruled) = appended.overruled {
            let (reason, message) = match overruled {
                Overruled::ConsentRevoked => (
                    Reason::ConsentRevoked,
                    "the consent was withdrawn before this use was recorded",
                ),
                Overruled::ConsentExhausted => (
                    Reason::ConsentExhausted,
                    "the consent's uses ran out before this use was recorded",
                ),
                Overruled::Unchecked => (Reason::Internal, "the consent could not be re-checked"),
            };
            return Err(Error::new(reason, message));
        }
        Ok(appended)
    }

    /// Writes the record of an action the gateway took itself ([`Draft::own`]):
    /// allowed, or refused with `refusal`'s reason; durable on return.
    pub async fn record_own(&self, draft: &Draft, refusal: Option<&Error>) -> Result<Appended, Error> {
        let mut record = draft.record.clone();
        match refusal {
            None => record.decision = Decision::Allow as i32,
            Some(e) => {
                record.decision = Decision::Deny as i32;
                record.reason = e.reason.as_str().to_owned();
            }
        }
        self.append(record, draft).await
    }

    /// Records a call that the decoder refused before any handler ran.
    pub async fn record_undecoded(&self, agency: &str, method: &str) -> Result<(), Error> {
        let record = AuditRecord {
            agency: agency.to_owned(),
            action: method.to_owned(),
            decision: Decision::Deny as i32,
            reason: Reason::MalformedRequest.as_str().to_owned(),
            ..Default::default()
        };
        self.audit
            .append(civex_audit::Entry {
                record,
                ..Default::default()
            })
            .await?;
        Ok(())
    }

    /// Records the call's outcome (unless the handler already did) and
    /// waits until the record is durable; only then may the result leave.
    async fn finish<R>(&self, draft: Draft, result: Result<R, Error>) -> Result<(R, Appended), Status> {
        let mut record = draft.record.clone();
        match (&result, &draft.recorded) {
            (Ok(_), Some(appended)) => return Ok((result?, appended.clone())),
            (Ok(_), None) => record.decision = Decision::Allow as i32,
            (Err(e), _) => {
                record.decision = Decision::Deny as i32;
                record.reason = e.reason.as_str().to_owned();
            }
        }
        let appended = self.append(record, &draft).await?;
        Ok((result?, appended))
    }
}
