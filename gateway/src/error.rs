//! The one place where civex errors become gRPC statuses (and HTTP answers).
//!
//! Every refusal carries a [`Reason`] from the contract (DESIGN §8); the
//! status gets the matching code and a `google.rpc.ErrorInfo` detail with
//! domain `civex`. Messages say what was wrong, never a citizen's data.

use std::{fmt, time::Duration};

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use civex_adapters::citizen_id::CitizenIdError;
use civex_audit::AuditError;

/// The `ErrorInfo.domain` of every civex error.
pub const DOMAIN: &str = "civex";

/// Why a call was refused: the contract's `ErrorInfo.reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    InvalidCitizenId,
    UnknownAttribute,
    UnknownPredicate,
    UnknownPurpose,
    AttributeAbolished,
    InvalidRequest,
    RoleRequired,
    NoAccessRight,
    ConsentRequired,
    ConsentScope,
    ConsentPurpose,
    ConsentGrantee,
    AgencySuspended,
    CertificateRevoked,
    ConsentNotFound,
    ConsentExpired,
    ConsentRevoked,
    ConsentExhausted,
    RateLimited,
    SourceUnavailable,
    AuditUnavailable,
    /// A free-text label holds what looks like an ID number (DESIGN §11).
    LabelHoldsCitizenId,
    /// A predicate reads a person named in its parameters without their consent.
    RelatedConsentRequired,
    /// The decoder refused the request before any handler ran.
    MalformedRequest,
    CertificateNotFound,
    AlreadyExists,
    AlertNotFound,
    CaseNotFound,
    CommitmentNotFound,
    ObjectionNotFound,
    /// Not in the contract's table: a fault inside civex (storage, bugs).
    Internal,
}

impl Reason {
    /// The reason as written on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::InvalidCitizenId => "INVALID_CITIZEN_ID",
            Reason::UnknownAttribute => "UNKNOWN_ATTRIBUTE",
            Reason::UnknownPredicate => "UNKNOWN_PREDICATE",
            Reason::UnknownPurpose => "UNKNOWN_PURPOSE",
            Reason::AttributeAbolished => "ATTRIBUTE_ABOLISHED",
            Reason::InvalidRequest => "INVALID_REQUEST",
            Reason::RoleRequired => "ROLE_REQUIRED",
            Reason::NoAccessRight => "NO_ACCESS_RIGHT",
            Reason::ConsentRequired => "CONSENT_REQUIRED",
            Reason::ConsentScope => "CONSENT_SCOPE",
            Reason::ConsentPurpose => "CONSENT_PURPOSE",
            Reason::ConsentGrantee => "CONSENT_GRANTEE",
            Reason::AgencySuspended => "AGENCY_SUSPENDED",
            Reason::CertificateRevoked => "CERTIFICATE_REVOKED",
            Reason::ConsentNotFound => "CONSENT_NOT_FOUND",
            Reason::ConsentExpired => "CONSENT_EXPIRED",
            Reason::ConsentRevoked => "CONSENT_REVOKED",
            Reason::ConsentExhausted => "CONSENT_EXHAUSTED",
            Reason::RateLimited => "RATE_LIMITED",
            Reason::SourceUnavailable => "SOURCE_UNAVAILABLE",
            Reason::AuditUnavailable => "AUDIT_UNAVAILABLE",
            Reason::LabelHoldsCitizenId => "LABEL_HOLDS_CITIZEN_ID",
            Reason::RelatedConsentRequired => "RELATED_CONSENT_REQUIRED",
            Reason::MalformedRequest => "MALFORMED_REQUEST",
            Reason::CertificateNotFound => "CERTIFICATE_NOT_FOUND",
            Reason::AlreadyExists => "ALREADY_EXISTS",
            Reason::AlertNotFound => "ALERT_NOT_FOUND",
            Reason::CaseNotFound => "CASE_NOT_FOUND",
            Reason::CommitmentNotFound => "COMMITMENT_NOT_FOUND",
            Reason::ObjectionNotFound => "OBJECTION_NOT_FOUND",
            Reason::Internal => "INTERNAL",
        }
    }

    /// The gRPC code that goes with the reason (DESIGN §8's table).
    pub const fn code(self) -> Code {
        match self {
            Reason::InvalidCitizenId
            | Reason::UnknownAttribute
            | Reason::UnknownPredicate
            | Reason::UnknownPurpose
            | Reason::AttributeAbolished
            | Reason::InvalidRequest
            | Reason::LabelHoldsCitizenId
            | Reason::MalformedRequest => Code::InvalidArgument,
            Reason::RoleRequired
            | Reason::NoAccessRight
            | Reason::ConsentRequired
            | Reason::ConsentScope
            | Reason::ConsentPurpose
            | Reason::ConsentGrantee
            | Reason::AgencySuspended
            | Reason::CertificateRevoked
            | Reason::RelatedConsentRequired => Code::PermissionDenied,
            Reason::ConsentNotFound
            | Reason::CertificateNotFound
            | Reason::AlertNotFound
            | Reason::CaseNotFound
            | Reason::CommitmentNotFound
            | Reason::ObjectionNotFound => Code::NotFound,
            Reason::AlreadyExists => Code::AlreadyExists,
            Reason::ConsentExpired | Reason::ConsentRevoked | Reason::ConsentExhausted => Code::FailedPrecondition,
            Reason::RateLimited => Code::ResourceExhausted,
            Reason::SourceUnavailable | Reason::AuditUnavailable => Code::Unavailable,
            Reason::Internal => Code::Internal,
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused or failed call: the reason and a message for the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {message}")]
pub struct Error {
    pub reason: Reason,
    pub message: String,
    /// For `RATE_LIMITED`: when the caller may retry.
    pub retry_after: Option<Duration>,
}

impl Error {
    pub fn new(reason: Reason, message: impl Into<String>) -> Error {
        Error {
            reason,
            message: message.into(),
            retry_after: None,
        }
    }

    /// The same refusal, saying when the caller may retry.
    pub fn with_retry_after(self, delay: Duration) -> Error {
        Error {
            retry_after: Some(delay),
            ..self
        }
    }

    /// A fault inside civex; the cause is logged, the caller sees a generic message.
    pub fn internal(cause: impl fmt::Display) -> Error {
        tracing::error!(cause = %cause, "internal error");
        Error::new(Reason::Internal, "internal error")
    }
}

impl From<CitizenIdError> for Error {
    fn from(e: CitizenIdError) -> Error {
        Error::new(Reason::InvalidCitizenId, e.to_string())
    }
}

impl From<AuditError> for Error {
    fn from(e: AuditError) -> Error {
        match e {
            AuditError::Unavailable(cause) => {
                tracing::error!(%cause, "audit log unavailable");
                Error::new(
                    Reason::AuditUnavailable,
                    "the audit log cannot be written: no data is released",
                )
            }
            AuditError::Proof(p) => Error::new(Reason::InvalidRequest, p.to_string()),
            other => Error::internal(other),
        }
    }
}

impl From<crate::store::StoreError> for Error {
    /// A store that cannot be read or written: like the log, nothing is
    /// answered from it and nothing changes.
    fn from(e: crate::store::StoreError) -> Error {
        tracing::error!(cause = %e, "store unavailable");
        Error::new(
            Reason::AuditUnavailable,
            "the store cannot be read or written: nothing changed",
        )
    }
}

impl From<Error> for Status {
    fn from(e: Error) -> Status {
        let mut details = ErrorDetails::with_error_info(e.reason.as_str(), DOMAIN, []);
        if let Some(delay) = e.retry_after {
            details.set_retry_info(Some(delay));
        }
        let mut status = Status::with_error_details(e.reason.code(), e.message, details);
        if let Some(delay) = e.retry_after {
            // The same hint for clients that read metadata, not details.
            status
                .metadata_mut()
                .insert(RETRY_AFTER, retry_after_seconds(delay).into());
        }
        status
    }
}

/// The `retry-after` metadata and HTTP header: whole seconds, rounded up.
pub const RETRY_AFTER: &str = "retry-after";

fn retry_after_seconds(delay: Duration) -> u64 {
    delay.as_secs() + u64::from(delay.subsec_nanos() > 0)
}

impl Error {
    /// The refusal as a plain HTTP answer (the log's tiles over HTTPS): the
    /// status that goes with the reason's gRPC code, the reason and the
    /// message as text, and `Retry-After` when the caller may retry.
    pub fn into_http(self) -> http::Response<String> {
        use http::StatusCode as S;
        let status = match self.reason.code() {
            Code::InvalidArgument => S::BAD_REQUEST,
            Code::PermissionDenied => S::FORBIDDEN,
            Code::NotFound => S::NOT_FOUND,
            Code::AlreadyExists => S::CONFLICT,
            Code::FailedPrecondition => S::PRECONDITION_FAILED,
            Code::ResourceExhausted => S::TOO_MANY_REQUESTS,
            Code::Unavailable => S::SERVICE_UNAVAILABLE,
            _ => S::INTERNAL_SERVER_ERROR,
        };
        let mut response = http::Response::new(format!("{}: {}\n", self.reason, self.message));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        if let Some(delay) = self.retry_after {
            headers.insert(http::header::RETRY_AFTER, retry_after_seconds(delay).into());
        }
        response
    }
}

/// Reads the civex reason out of a status, for clients and tests.
pub fn reason_of(status: &Status) -> Option<String> {
    status
        .get_details_error_info()
        .filter(|info| info.domain == DOMAIN)
        .map(|info| info.reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_carries_code_reason_and_retry_hint() {
        let mut e = Error::new(Reason::RateLimited, "slow down");
        e.retry_after = Some(Duration::from_millis(250));
        let status = Status::from(e);
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert_eq!(reason_of(&status).as_deref(), Some("RATE_LIMITED"));
        let retry = status.get_details_retry_info().unwrap();
        assert_eq!(retry.retry_delay, Some(Duration::from_millis(250)));
    }
}
