//! Who is calling: the agency named by the verified client certificate.
//!
//! The agency code comes from exactly one SAN URI `spiffe://civex/agency/<code>`
//! in a certificate that chained to the civex CA. Nothing in request metadata
//! can add to it or override it. Gateways (towards department sources) and
//! department sources carry `spiffe://civex/gateway/<name>` and
//! `spiffe://civex/department/<code>` the same way.

use std::{
    net::SocketAddr,
    sync::{
        Arc, LazyLock,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use x509_parser::{extensions::GeneralName, prelude::*};

use civex_adapters::Department;

use crate::policy::access::is_agency_code;

/// The prefix of the SAN URI that names an agency.
pub const AGENCY_URI_PREFIX: &str = "spiffe://civex/agency/";
/// The prefix of the SAN URI that names a gateway (its client certificate
/// towards department sources).
pub const GATEWAY_URI_PREFIX: &str = "spiffe://civex/gateway/";
/// The prefix of the SAN URI that names a department's source.
pub use civex_adapters::department::SOURCE_URI_PREFIX as DEPARTMENT_URI_PREFIX;

/// The SAN URI that identifies agency `code`.
pub fn agency_uri(code: &str) -> String {
    format!("{AGENCY_URI_PREFIX}{code}")
}

/// The SAN URI that identifies the gateway `name`.
pub fn gateway_uri(name: &str) -> String {
    format!("{GATEWAY_URI_PREFIX}{name}")
}

/// The agency code carried by `uri`, if it is a well-formed agency URI.
pub fn parse_agency_uri(uri: &str) -> Option<&str> {
    uri.strip_prefix(AGENCY_URI_PREFIX).filter(|code| is_agency_code(code))
}

/// Who a civex certificate says its holder is: its one civex SAN URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Agency(String),
    Gateway(String),
    Department(Department),
}

impl Principal {
    fn parse(uri: &str) -> Option<Principal> {
        if let Some(code) = parse_agency_uri(uri) {
            return Some(Principal::Agency(code.to_owned()));
        }
        if let Some(name) = uri.strip_prefix(GATEWAY_URI_PREFIX).filter(|n| is_agency_code(n)) {
            return Some(Principal::Gateway(name.to_owned()));
        }
        uri.strip_prefix(DEPARTMENT_URI_PREFIX)
            .and_then(|code| code.parse().ok())
            .map(Principal::Department)
    }
}

/// The verified identity of the peer of one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity {
    /// The agency code from the certificate's SAN URI (at a department
    /// source: the calling gateway's name).
    pub agency: String,
    /// The certificate serial, lower-case hex.
    pub serial: String,
    pub remote: SocketAddr,
    /// When a call on the connection last began or ended.
    pub activity: Activity,
}

/// When a connection last carried a call, and how many it carries now,
/// shared by the connection (which closes itself when idle too long) and the
/// calls on it (which mark their start and end).
#[derive(Debug, Clone)]
pub struct Activity(Arc<(AtomicU64, AtomicUsize)>);

/// The process's own zero for [`Activity`] times.
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

impl Default for Activity {
    fn default() -> Activity {
        let activity = Activity(Arc::new((AtomicU64::new(0), AtomicUsize::new(0))));
        activity.touch();
        activity
    }
}

impl Activity {
    fn touch(&self) {
        self.0.0.store(EPOCH.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// A call begins; it is in flight until the returned guard is dropped.
    pub fn begin(&self) -> InFlight {
        self.touch();
        self.0.1.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    /// How long the connection has carried no call (zero while one is in flight).
    pub fn quiet_for(&self) -> Duration {
        if self.0.1.load(Ordering::Relaxed) > 0 {
            return Duration::ZERO;
        }
        EPOCH
            .elapsed()
            .saturating_sub(Duration::from_millis(self.0.0.load(Ordering::Relaxed)))
    }
}

/// One call in flight on a connection; its end is marked when dropped.
pub struct InFlight(Activity);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.0.1.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Every connection's activity is its own: equal only to itself.
impl PartialEq for Activity {
    fn eq(&self, other: &Activity) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Activity {}

/// Why a verified certificate still names no one this peer accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("certificate cannot be parsed")]
    Unparsable,
    #[error("certificate has {0} SAN URIs; exactly one spiffe://civex/<kind>/<name> is required")]
    UriCount(usize),
    #[error("certificate SAN URI is not spiffe://civex/agency|gateway|department/<name>")]
    NotCivex,
}

/// Reads the principal and serial out of a DER certificate of the civex CA.
pub fn principal_of(der: &[u8]) -> Result<(Principal, String), IdentityError> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|_| IdentityError::Unparsable)?;
    let san = cert.subject_alternative_name().map_err(|_| IdentityError::Unparsable)?;
    let uris: Vec<&str> = san
        .map(|ext| {
            ext.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    GeneralName::URI(uri) => Some(*uri),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let [uri] = uris.as_slice() else {
        return Err(IdentityError::UriCount(uris.len()));
    };
    let principal = Principal::parse(uri).ok_or(IdentityError::NotCivex)?;
    Ok((principal, hex::encode(cert.raw_serial())))
}
