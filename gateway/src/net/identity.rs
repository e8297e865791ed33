//! Who is calling: the agency named by the verified client certificate.
//!
//! The agency code comes from exactly one SAN URI `spiffe://civex/agency/<code>`
//! in a certificate that chained to the civex CA. Nothing in request metadata
//! can add to it or override it.

use std::net::SocketAddr;

use x509_parser::{extensions::GeneralName, prelude::*};

use crate::policy::access::is_agency_code;

/// The prefix of the SAN URI that names an agency.
pub const AGENCY_URI_PREFIX: &str = "spiffe://civex/agency/";

/// The SAN URI that identifies agency `code`.
pub fn agency_uri(code: &str) -> String {
    format!("{AGENCY_URI_PREFIX}{code}")
}

/// The agency code carried by `uri`, if it is a well-formed agency URI.
pub fn parse_agency_uri(uri: &str) -> Option<&str> {
    uri.strip_prefix(AGENCY_URI_PREFIX).filter(|code| is_agency_code(code))
}

/// The verified identity of the peer of one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity {
    /// The agency code from the certificate's SAN URI.
    pub agency: String,
    /// The certificate serial, lower-case hex.
    pub serial: String,
    pub remote: SocketAddr,
}

/// Why a verified certificate still names no agency.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("client certificate cannot be parsed")]
    Unparsable,
    #[error("client certificate has {0} SAN URIs; exactly one spiffe://civex/agency/<code> is required")]
    UriCount(usize),
    #[error("client certificate SAN URI is not spiffe://civex/agency/<code>")]
    NotAnAgency,
}

/// Reads the agency code and serial out of a DER client certificate.
pub fn agency_of(der: &[u8]) -> Result<(String, String), IdentityError> {
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
    let code = parse_agency_uri(uri).ok_or(IdentityError::NotAnAgency)?;
    Ok((code.to_owned(), hex::encode(cert.raw_serial())))
}
