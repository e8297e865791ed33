//! The development PKI of civex: one CA, a gateway certificate and one client
//! certificate per agency.
//!
//! Every connection to the gateway is mutually authenticated, so a developer
//! needs a CA and a set of certificates before anything can talk to anything.
//! This module makes them in-process with rcgen, so that `civex` needs no
//! openssl and the tests can mint exactly the certificates they need
//! (missing URI, two URIs, already expired) without touching the disk.
//!
//! An agency is identified by exactly one SAN URI `spiffe://civex/agency/<code>`
//! and by nothing else: the common name is informational only. Keeping the
//! identity in one machine-readable place means the gateway never has to
//! guess which of several names is authoritative, and a certificate that
//! carries zero or two agency URIs can be refused outright.
//!
//! Private keys are written with mode 0600 from the moment the file exists,
//! because a key that was world-readable for even a moment must be assumed
//! copied.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rand::RngCore;
use rcgen::string::Ia5String;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, PublicKeyData, SanType, SerialNumber,
};
use time::{Duration, OffsetDateTime, UtcOffset};

/// Scheme, trust domain and path that precede the agency code in its SAN URI.
pub const AGENCY_URI_PREFIX: &str = "spiffe://civex/agency/";

/// Common name of the CA that [`init_dir`] creates.
pub const DEV_CA_COMMON_NAME: &str = "civex development CA";

/// Names the development gateway certificate is valid for: loopback only, so a
/// development certificate is useless anywhere else.
pub const GATEWAY_NAMES: &[&str] = &["localhost", "127.0.0.1", "::1"];

/// Organization written into every subject, so certificates made here are
/// recognisable at a glance in any tool that prints a DN.
const ORGANIZATION: &str = "civex";

/// Backdating of every `not_before`, so a peer whose clock runs a little
/// behind does not reject a certificate that was just issued.
const CLOCK_SKEW: Duration = Duration::days(1);

/// Lifetime of the CA: long enough that a development setup never expires
/// under a developer's feet (about ten years).
const CA_LIFETIME: Duration = Duration::days(3650);

/// Lifetime of server certificates: 825 days, the longest that Apple
/// platforms and most browsers still accept for a TLS server certificate.
const SERVER_LIFETIME: Duration = Duration::days(825);

/// Lifetime of agency client certificates: 397 days, the CA/Browser Forum
/// limit, so the development setup rehearses yearly rotation.
const CLIENT_LIFETIME: Duration = Duration::days(397);

/// Makes an agency's key pair and a PKCS#10 certificate signing request for
/// it, as the agency does on its own side: `(csr_pem, key_pem)`.
pub fn make_csr(code: &str) -> Result<(String, String), PkiError> {
    validate_agency_code(code)?;
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    params.distinguished_name = subject(code);
    params.subject_alt_names = vec![SanType::URI(agency_uri(code).try_into()?)];
    let csr = params.serialize_request(&key)?;
    Ok((csr.pem()?, key.serialize_pem()))
}

/// Everything that can go wrong while making, loading or writing certificates.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// A file or directory could not be created, written or read.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// rcgen refused to build, sign or parse something.
    #[error("certificate generation failed: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// A certificate signing request could not be parsed or its signature is
    /// invalid (the request was not made by the holder of the key it names).
    #[error("invalid certificate signing request: {0}")]
    InvalidCsr(String),
    /// A PEM certificate or key could not be decoded.
    #[error("invalid PEM: {0}")]
    Pem(String),
    /// The certificate given as a CA does not have `basicConstraints CA:TRUE`.
    #[error("the CA certificate is not a CA (basicConstraints CA:TRUE is missing)")]
    NotCa,
    /// The CA key does not belong to the CA certificate: everything it signed
    /// would fail verification.
    #[error("the CA private key does not match the CA certificate's public key")]
    KeyMismatch,
    /// An agency code is empty, too long or has characters outside
    /// `[A-Za-z0-9._-]` (codes become URI path segments and file names).
    #[error("invalid agency code {0:?}: use 1 to 64 ASCII letters, digits, '-', '_' or '.', not starting with '.'")]
    InvalidAgencyCode(String),
    /// A server certificate was requested without a single name.
    #[error("a server certificate needs at least one DNS name or IP address")]
    NoServerNames,
    /// `not_after` is not later than `not_before`.
    #[error("invalid validity: not_after {not_after} is not after not_before {not_before}")]
    Validity {
        /// Requested start of validity.
        not_before: OffsetDateTime,
        /// Requested end of validity.
        not_after: OffsetDateTime,
    },
}

/// The SAN URI that identifies agency `code`.
pub fn agency_uri(code: &str) -> String {
    format!("{AGENCY_URI_PREFIX}{code}")
}

/// The agency code carried by `uri`, if it is a well-formed agency URI.
pub fn parse_agency_uri(uri: &str) -> Option<&str> {
    let code = uri.strip_prefix(AGENCY_URI_PREFIX)?;
    validate_agency_code(code).ok().map(|()| code)
}

/// Checks that `code` is a well-formed agency code (see
/// [`crate::access::is_agency_code`]), which is also safe as a file name.
pub fn validate_agency_code(code: &str) -> Result<(), PkiError> {
    if crate::access::is_agency_code(code) {
        Ok(())
    } else {
        Err(PkiError::InvalidAgencyCode(code.to_owned()))
    }
}

/// What goes into a client certificate. Tests build odd ones on purpose (no
/// URI, two URIs, already expired) to check that the gateway refuses them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSpec {
    /// Subject common name; informational only, never used for authorization.
    pub common_name: String,
    /// SAN URIs, written in this order.
    pub uris: Vec<String>,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
}

impl ClientSpec {
    /// The regular certificate of agency `code`: CN = `code`, exactly one URI
    /// [`agency_uri`]`(code)`, valid from a day ago for 397 days.
    pub fn agency(code: &str) -> ClientSpec {
        let now = OffsetDateTime::now_utc();
        ClientSpec {
            common_name: code.to_owned(),
            uris: vec![agency_uri(code)],
            not_before: now - CLOCK_SKEW,
            not_after: now + CLIENT_LIFETIME,
        }
    }
}

/// A freshly issued certificate.
#[derive(Clone, PartialEq, Eq)]
pub struct Issued {
    /// The certificate, PEM-encoded.
    pub cert_pem: String,
    /// The matching PKCS#8 private key, PEM-encoded; empty when the
    /// certificate was signed from a CSR and the key never left its holder.
    pub key_pem: String,
    /// The serial number as lower-case hex of its bytes (as written in the
    /// certificate, no separators).
    pub serial: String,
    /// End of validity, in UTC and truncated to whole seconds like the
    /// certificate itself.
    pub not_after: OffsetDateTime,
}

/// Debug output leaves the private key out so it cannot leak into logs.
impl fmt::Debug for Issued {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = if self.key_pem.is_empty() { "<none>" } else { "<elided>" };
        f.debug_struct("Issued")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &key)
            .field("serial", &self.serial)
            .field("not_after", &self.not_after)
            .finish()
    }
}

/// A certificate authority that can issue gateway and agency certificates.
///
/// The `Debug` output never shows the private key (rcgen elides it).
#[derive(Debug)]
pub struct Ca {
    /// The CA certificate, PEM-encoded.
    cert_pem: String,
    /// The CA's subject, key-identifier method and signing key, as rcgen needs
    /// them to sign.
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    /// Generates a new self-signed CA with an ECDSA P-256 key, valid from a
    /// day ago for about ten years, subject `CN=<common_name>, O=civex`.
    pub fn generate(common_name: &str) -> Result<Ca, PkiError> {
        let key = KeyPair::generate()?;
        let now = OffsetDateTime::now_utc();
        let mut params = CertificateParams::default();
        params.distinguished_name = subject(common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.serial_number = Some(SerialNumber::from(random_serial()));
        set_validity(&mut params, now - CLOCK_SKEW, now + CA_LIFETIME)?;
        let cert = params.self_signed(&key)?;
        Ok(Ca {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// Loads a CA from its PEM certificate and PEM (PKCS#8) private key.
    ///
    /// Refuses a certificate that is not a CA and a key that does not belong
    /// to the certificate, because either would only surface later as
    /// certificates that no peer accepts.
    pub fn load(cert_pem: &str, key_pem: &str) -> Result<Ca, PkiError> {
        let key = KeyPair::from_pem(key_pem).map_err(|e| PkiError::Pem(format!("CA private key: {e}")))?;

        let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes())
            .map_err(|e| PkiError::Pem(format!("CA certificate: {e}")))?;
        if pem.label != "CERTIFICATE" {
            return Err(PkiError::Pem(format!(
                "CA certificate: expected a CERTIFICATE block, found {:?}",
                pem.label
            )));
        }
        let cert = pem
            .parse_x509()
            .map_err(|e| PkiError::Pem(format!("CA certificate: {e}")))?;
        if !cert.is_ca() {
            return Err(PkiError::NotCa);
        }
        if *cert.public_key().subject_public_key.data != *key.public_key_raw() {
            return Err(PkiError::KeyMismatch);
        }

        let issuer = Issuer::from_ca_cert_pem(cert_pem, key)?;
        Ok(Ca {
            cert_pem: cert_pem.to_owned(),
            issuer,
        })
    }

    /// The CA certificate, PEM-encoded.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA private key, PKCS#8 PEM-encoded. Write it with [`write_private`].
    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    /// Issues a server certificate with a new P-256 key for `names`: each name
    /// that parses as an IP address becomes an IP SAN, any other a DNS SAN.
    ///
    /// The certificate allows clientAuth as well as serverAuth because the
    /// gateway presents the same certificate when it connects to department
    /// sources. Valid from a day ago for 825 days.
    pub fn issue_server(&self, names: &[&str]) -> Result<Issued, PkiError> {
        let Some(first) = names.first() else {
            return Err(PkiError::NoServerNames);
        };
        let now = OffsetDateTime::now_utc();
        let (mut params, serial) = leaf_params(first, now - CLOCK_SKEW, now + SERVER_LIFETIME)?;
        params.subject_alt_names = names
            .iter()
            .map(|name| -> Result<SanType, PkiError> {
                Ok(match name.parse::<IpAddr>() {
                    Ok(ip) => SanType::IpAddress(ip),
                    Err(_) => SanType::DnsName(Ia5String::try_from(*name)?),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        self.issue_with_new_key(&params, serial)
    }

    /// Issues a client certificate with a new P-256 key exactly as `spec`
    /// says, without any check on its URIs: callers (tests above all) decide
    /// what the certificate claims. EKU clientAuth, key usage digitalSignature.
    pub fn issue_client(&self, spec: &ClientSpec) -> Result<Issued, PkiError> {
        let (mut params, serial) = leaf_params(&spec.common_name, spec.not_before, spec.not_after)?;
        params.subject_alt_names = spec
            .uris
            .iter()
            .map(|uri| -> Result<SanType, PkiError> { Ok(SanType::URI(Ia5String::try_from(uri.as_str())?)) })
            .collect::<Result<Vec<_>, _>>()?;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue_with_new_key(&params, serial)
    }

    /// Issues the regular certificate of agency `code` ([`ClientSpec::agency`]).
    pub fn issue_agency(&self, code: &str) -> Result<Issued, PkiError> {
        validate_agency_code(code)?;
        self.issue_client(&ClientSpec::agency(code))
    }

    /// Signs a certificate revocation list of `revoked` serials (lower-case
    /// hex, with their revocation times), valid from now for `validity`.
    /// `number` must grow with every new list.
    pub fn crl(
        &self,
        revoked: &[(String, OffsetDateTime)],
        number: u64,
        validity: Duration,
    ) -> Result<Vec<u8>, PkiError> {
        let now = whole_seconds_utc(OffsetDateTime::now_utc());
        let revoked_certs = revoked
            .iter()
            .map(|(serial, at)| {
                let bytes = hex::decode(serial).map_err(|_| PkiError::Pem(format!("serial {serial:?} is not hex")))?;
                Ok(rcgen::RevokedCertParams {
                    serial_number: SerialNumber::from(bytes),
                    revocation_time: *at,
                    reason_code: Some(rcgen::RevocationReason::CessationOfOperation),
                    invalidity_date: None,
                })
            })
            .collect::<Result<Vec<_>, PkiError>>()?;
        let params = rcgen::CertificateRevocationListParams {
            this_update: now - CLOCK_SKEW,
            next_update: now + validity,
            crl_number: SerialNumber::from(number.to_be_bytes().to_vec()),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        };
        Ok(params.signed_by(&self.issuer)?.der().to_vec())
    }

    /// Signs a PEM certificate signing request for agency `code`, valid from a
    /// day ago until `validity_days` days from now.
    ///
    /// Only the public key is taken from the request, and only after its
    /// signature has been verified (rcgen's `from_pem` checks that the request
    /// was signed by the key it carries). Subject, SANs, key usages, CA flag and
    /// every other requested extension are discarded and replaced: subject
    /// `CN=<code>, O=civex`, exactly one SAN URI [`agency_uri`]`(code)`, EKU
    /// clientAuth. An agency therefore cannot obtain a certificate for another
    /// agency, or a CA certificate, however it words its request.
    ///
    /// The returned [`Issued::key_pem`] is empty: the key stays with the agency.
    pub fn sign_csr(&self, csr_pem: &str, code: &str, validity_days: u32) -> Result<Issued, PkiError> {
        validate_agency_code(code)?;
        let csr =
            CertificateSigningRequestParams::from_pem(csr_pem).map_err(|e| PkiError::InvalidCsr(e.to_string()))?;
        let now = OffsetDateTime::now_utc();
        if validity_days == 0 {
            // Backdating alone would otherwise make this a certificate that
            // expires the moment it is issued.
            return Err(PkiError::Validity {
                not_before: now,
                not_after: now,
            });
        }
        let not_after = now + Duration::days(i64::from(validity_days));
        let (mut params, serial) = leaf_params(code, now - CLOCK_SKEW, not_after)?;
        params.subject_alt_names = vec![SanType::URI(Ia5String::try_from(agency_uri(code))?)];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(&params, &csr.public_key, String::new(), serial)
    }

    /// Generates a P-256 key and signs `params` for it.
    fn issue_with_new_key(&self, params: &CertificateParams, serial: String) -> Result<Issued, PkiError> {
        let key = KeyPair::generate()?;
        let key_pem = key.serialize_pem();
        self.sign(params, &key, key_pem, serial)
    }

    /// Signs `params` for `public_key` with the CA key.
    fn sign(
        &self,
        params: &CertificateParams,
        public_key: &impl PublicKeyData,
        key_pem: String,
        serial: String,
    ) -> Result<Issued, PkiError> {
        let cert = params.signed_by(public_key, &self.issuer)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem,
            serial,
            not_after: params.not_after,
        })
    }
}

/// `CN=<common_name>, O=civex`; the CN is left out when empty.
fn subject(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    if !common_name.is_empty() {
        dn.push(DnType::CommonName, common_name);
    }
    dn.push(DnType::OrganizationName, ORGANIZATION);
    dn
}

/// Parameters shared by every end-entity certificate: subject, explicit
/// `CA:FALSE`, key usage digitalSignature, an authority key identifier (so
/// chain building does not rely on DN matching alone), a random serial and
/// the validity. Returns the serial as hex alongside.
fn leaf_params(
    common_name: &str,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<(CertificateParams, String), PkiError> {
    let serial = random_serial();
    let serial_hex = hex::encode(&serial);
    let mut params = CertificateParams::default();
    params.distinguished_name = subject(common_name);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.use_authority_key_identifier_extension = true;
    params.serial_number = Some(SerialNumber::from(serial));
    set_validity(&mut params, not_before, not_after)?;
    Ok((params, serial_hex))
}

/// Sets the validity in UTC, truncated to whole seconds (what the certificate
/// can express), and refuses an empty or inverted interval.
fn set_validity(
    params: &mut CertificateParams,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<(), PkiError> {
    let not_before = whole_seconds_utc(not_before);
    let not_after = whole_seconds_utc(not_after);
    if not_after <= not_before {
        return Err(PkiError::Validity { not_before, not_after });
    }
    params.not_before = not_before;
    params.not_after = not_after;
    Ok(())
}

fn whole_seconds_utc(t: OffsetDateTime) -> OffsetDateTime {
    let t = t.to_offset(UtcOffset::UTC);
    t - Duration::nanoseconds(i64::from(t.nanosecond()))
}

/// 16 random bytes, read as a positive integer with no leading zero byte, so
/// the DER encoding keeps exactly these bytes and the hex in [`Issued::serial`]
/// matches what any tool prints. About 126 bits of randomness: far beyond the
/// 64 bits the CA/Browser Forum asks for.
fn random_serial() -> Vec<u8> {
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes[0] = (bytes[0] & 0x7f).max(1);
    bytes.to_vec()
}

/// Creates a fresh development PKI in `dir`, overwriting whatever certificates
/// and keys are already there:
///
/// - `ca.pem`, `ca.key`: a new CA named [`DEV_CA_COMMON_NAME`];
/// - `gateway.pem`, `gateway.key`: the gateway, for [`GATEWAY_NAMES`];
/// - `agencies/<code>.pem`, `agencies/<code>.key`: one per agency code.
///
/// Keys are written with mode 0600. All codes are checked before anything is
/// written, so a bad code leaves no half-made directory behind.
pub fn init_dir(dir: &Path, agencies: &[&str]) -> Result<(), PkiError> {
    for code in agencies {
        validate_agency_code(code)?;
    }
    let agencies_dir = dir.join("agencies");
    fs::create_dir_all(&agencies_dir).map_err(|source| PkiError::Io {
        path: agencies_dir.clone(),
        source,
    })?;

    let ca = Ca::generate(DEV_CA_COMMON_NAME)?;
    write_public(&dir.join("ca.pem"), ca.cert_pem().as_bytes())?;
    write_private(&dir.join("ca.key"), ca.key_pem().as_bytes())?;

    let gateway = ca.issue_server(GATEWAY_NAMES)?;
    write_public(&dir.join("gateway.pem"), gateway.cert_pem.as_bytes())?;
    write_private(&dir.join("gateway.key"), gateway.key_pem.as_bytes())?;

    for code in agencies {
        let issued = ca.issue_agency(code)?;
        write_public(&agencies_dir.join(format!("{code}.pem")), issued.cert_pem.as_bytes())?;
        write_private(&agencies_dir.join(format!("{code}.key")), issued.key_pem.as_bytes())?;
    }

    // Server certificates for department sources run beside the demo (`civex source`).
    let sources_dir = dir.join("sources");
    fs::create_dir_all(&sources_dir).map_err(|source| PkiError::Io {
        path: sources_dir.clone(),
        source,
    })?;
    for department in civex_adapters::Department::ALL {
        let issued = ca.issue_server(GATEWAY_NAMES)?;
        write_public(
            &sources_dir.join(format!("{department}.pem")),
            issued.cert_pem.as_bytes(),
        )?;
        write_private(
            &sources_dir.join(format!("{department}.key")),
            issued.key_pem.as_bytes(),
        )?;
    }
    Ok(())
}

/// Writes a private key. A new file is created with mode 0600, so it is never
/// readable by others, not even briefly; an existing file is truncated and
/// narrowed to 0600 before the key is written into it.
pub fn write_private(path: &Path, contents: &[u8]) -> Result<(), PkiError> {
    let io = |source| PkiError::Io {
        path: path.to_owned(),
        source,
    };
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(io)?;
    #[cfg(unix)]
    {
        // `mode` only applies when the file is created; an older key file may
        // have been more permissive.
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(0o600)).map_err(io)?;
    }
    file.write_all(contents).map_err(io)?;
    Ok(())
}

/// Writes a certificate or anything else that may be world-readable.
pub fn write_public(path: &Path, contents: &[u8]) -> Result<(), PkiError> {
    fs::write(path, contents).map_err(|source| PkiError::Io {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use x509_parser::certificate::X509Certificate;
    use x509_parser::extensions::GeneralName;

    use super::*;

    /// DER contents of the first PEM block.
    fn der(pem: &str) -> Vec<u8> {
        x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap().1.contents
    }

    fn parse(der: &[u8]) -> X509Certificate<'_> {
        let (rest, cert) = x509_parser::parse_x509_certificate(der).unwrap();
        assert!(rest.is_empty());
        cert
    }

    /// Number of SAN entries of any kind.
    fn san_count(cert: &X509Certificate<'_>) -> usize {
        cert.subject_alternative_name()
            .unwrap()
            .map_or(0, |san| san.value.general_names.len())
    }

    fn uris(cert: &X509Certificate<'_>) -> Vec<String> {
        let Some(san) = cert.subject_alternative_name().unwrap() else {
            return Vec::new();
        };
        san.value
            .general_names
            .iter()
            .filter_map(|name| match name {
                GeneralName::URI(uri) => Some((*uri).to_owned()),
                _ => None,
            })
            .collect()
    }

    fn common_name(cert: &X509Certificate<'_>) -> String {
        cert.subject()
            .iter_common_name()
            .next()
            .unwrap()
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Asserts that `leaf` was issued and signed by `ca`.
    fn assert_issued_by(leaf: &X509Certificate<'_>, ca: &X509Certificate<'_>) {
        assert_eq!(leaf.issuer().to_string(), ca.subject().to_string());
        leaf.verify_signature(Some(ca.public_key())).unwrap();
    }

    fn to_pem(label: &str, der: &[u8]) -> String {
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        let mut pem = format!("-----BEGIN {label}-----\n");
        for line in b64.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(line).unwrap());
            pem.push('\n');
        }
        pem.push_str(&format!("-----END {label}-----\n"));
        pem
    }

    #[test]
    fn ca_is_a_self_signed_ca() {
        let ca = Ca::generate("test CA").unwrap();
        let ca_der = der(ca.cert_pem());
        let cert = parse(&ca_der);
        assert!(cert.is_ca());
        assert_eq!(common_name(&cert), "test CA");
        assert_issued_by(&cert, &cert);
        let usage = cert.key_usage().unwrap().unwrap().value;
        assert!(usage.key_cert_sign() && usage.crl_sign() && usage.digital_signature());
        assert!(KeyPair::from_pem(&ca.key_pem()).is_ok());
    }

    #[test]
    fn agency_certificate_carries_exactly_its_agency_uri() {
        let ca = Ca::generate("test CA").unwrap();
        let issued = ca.issue_agency("gongan").unwrap();
        let ca_der = der(ca.cert_pem());
        let leaf_der = der(&issued.cert_pem);
        let leaf = parse(&leaf_der);

        assert_eq!(san_count(&leaf), 1);
        assert_eq!(uris(&leaf), vec![agency_uri("gongan")]);
        assert_eq!(common_name(&leaf), "gongan");
        assert!(!leaf.is_ca());
        let eku = leaf.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.client_auth && !eku.server_auth);
        assert_issued_by(&leaf, &parse(&ca_der));

        assert_eq!(hex::encode(leaf.raw_serial()), issued.serial);
        assert_eq!(leaf.validity().not_after.to_datetime(), issued.not_after);
        let key = KeyPair::from_pem(&issued.key_pem).unwrap();
        assert_eq!(&*leaf.public_key().subject_public_key.data, key.public_key_raw());
    }

    #[test]
    fn agency_uri_round_trips() {
        assert_eq!(agency_uri("gongan"), "spiffe://civex/agency/gongan");
        assert_eq!(parse_agency_uri(&agency_uri("gongan")), Some("gongan"));
        assert_eq!(parse_agency_uri("spiffe://civex/agency/"), None);
        assert_eq!(parse_agency_uri("spiffe://civex/agency/a/b"), None);
        assert_eq!(parse_agency_uri("spiffe://other/agency/gongan"), None);
    }

    #[test]
    fn bad_agency_codes_are_refused() {
        let ca = Ca::generate("test CA").unwrap();
        let too_long = "x".repeat(65);
        for code in ["", "../evil", "a/b", ".hidden", "公安", too_long.as_str()] {
            assert!(
                matches!(ca.issue_agency(code), Err(PkiError::InvalidAgencyCode(_))),
                "{code:?} accepted"
            );
        }
    }

    #[test]
    fn serials_are_random_positive_and_distinct() {
        let ca = Ca::generate("test CA").unwrap();
        let a = ca.issue_agency("a").unwrap();
        let b = ca.issue_agency("a").unwrap();
        assert_ne!(a.serial, b.serial);
        for serial in [&a.serial, &b.serial] {
            assert_eq!(serial.len(), 32);
            let first = u8::from_str_radix(&serial[..2], 16).unwrap();
            assert!(first != 0 && first < 0x80, "{serial}");
        }
    }

    #[test]
    fn server_certificate_has_dns_and_ip_names_and_both_ekus() {
        let ca = Ca::generate("test CA").unwrap();
        let issued = ca.issue_server(GATEWAY_NAMES).unwrap();
        let leaf_der = der(&issued.cert_pem);
        let leaf = parse(&leaf_der);
        let san = leaf.subject_alternative_name().unwrap().unwrap();
        let names = &san.value.general_names;
        assert_eq!(names.len(), 3);
        assert!(matches!(names[0], GeneralName::DNSName("localhost")));
        assert!(matches!(names[1], GeneralName::IPAddress(ip) if *ip == [127, 0, 0, 1]));
        assert!(matches!(names[2], GeneralName::IPAddress(ip) if *ip == std::net::Ipv6Addr::LOCALHOST.octets()));
        let eku = leaf.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && eku.client_auth);
        assert!(!leaf.is_ca());
        assert!(matches!(ca.issue_server(&[]), Err(PkiError::NoServerNames)));
    }

    #[test]
    fn client_spec_mints_odd_certificates_on_purpose() {
        let ca = Ca::generate("test CA").unwrap();
        let now = OffsetDateTime::now_utc();

        let mut none = ClientSpec::agency("gongan");
        none.uris.clear();
        let none_der = der(&ca.issue_client(&none).unwrap().cert_pem);
        assert!(uris(&parse(&none_der)).is_empty());

        let mut two = ClientSpec::agency("gongan");
        two.uris.push(agency_uri("minzheng"));
        let two_der = der(&ca.issue_client(&two).unwrap().cert_pem);
        assert_eq!(
            uris(&parse(&two_der)),
            vec![agency_uri("gongan"), agency_uri("minzheng")]
        );

        let expired = ClientSpec {
            not_before: now - Duration::days(30),
            not_after: now - Duration::days(1),
            ..ClientSpec::agency("gongan")
        };
        let issued = ca.issue_client(&expired).unwrap();
        assert!(issued.not_after < now);
        let expired_der = der(&issued.cert_pem);
        assert!(parse(&expired_der).validity().not_after.to_datetime() < now);

        let inverted = ClientSpec {
            not_before: now,
            not_after: now - Duration::days(1),
            ..ClientSpec::agency("x")
        };
        assert!(matches!(ca.issue_client(&inverted), Err(PkiError::Validity { .. })));
    }

    #[test]
    fn loaded_ca_issues_certificates_that_verify_against_the_original() {
        let ca = Ca::generate("test CA").unwrap();
        let loaded = Ca::load(ca.cert_pem(), &ca.key_pem()).unwrap();
        assert_eq!(loaded.cert_pem(), ca.cert_pem());

        let issued = loaded.issue_agency("gongan").unwrap();
        let ca_der = der(ca.cert_pem());
        let leaf_der = der(&issued.cert_pem);
        assert_issued_by(&parse(&leaf_der), &parse(&ca_der));
    }

    #[test]
    fn load_refuses_a_foreign_key_a_leaf_and_garbage() {
        let ca = Ca::generate("test CA").unwrap();
        let other = Ca::generate("other CA").unwrap();
        assert!(matches!(
            Ca::load(ca.cert_pem(), &other.key_pem()),
            Err(PkiError::KeyMismatch)
        ));

        let leaf = ca.issue_agency("gongan").unwrap();
        assert!(matches!(Ca::load(&leaf.cert_pem, &leaf.key_pem), Err(PkiError::NotCa)));

        assert!(matches!(
            Ca::load("not a certificate", &ca.key_pem()),
            Err(PkiError::Pem(_))
        ));
        assert!(matches!(Ca::load(ca.cert_pem(), "not a key"), Err(PkiError::Pem(_))));
    }

    #[test]
    fn init_dir_writes_every_file_and_keeps_keys_private() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("pki");
        init_dir(&dir, &["gongan", "minzheng"]).unwrap();

        let ca_pem = fs::read_to_string(dir.join("ca.pem")).unwrap();
        let ca_key = fs::read_to_string(dir.join("ca.key")).unwrap();
        let ca = Ca::load(&ca_pem, &ca_key).unwrap();
        let ca_der = der(ca.cert_pem());
        let ca_cert = parse(&ca_der);
        assert_eq!(common_name(&ca_cert), DEV_CA_COMMON_NAME);

        let gateway_der = der(&fs::read_to_string(dir.join("gateway.pem")).unwrap());
        let gateway = parse(&gateway_der);
        assert_issued_by(&gateway, &ca_cert);
        assert_eq!(san_count(&gateway), GATEWAY_NAMES.len());
        KeyPair::from_pem(&fs::read_to_string(dir.join("gateway.key")).unwrap()).unwrap();

        for code in ["gongan", "minzheng"] {
            let cert_der = der(&fs::read_to_string(dir.join(format!("agencies/{code}.pem"))).unwrap());
            let cert = parse(&cert_der);
            assert_issued_by(&cert, &ca_cert);
            assert_eq!(uris(&cert), vec![agency_uri(code)]);
            KeyPair::from_pem(&fs::read_to_string(dir.join(format!("agencies/{code}.key"))).unwrap()).unwrap();
        }

        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for key in ["ca.key", "gateway.key", "agencies/gongan.key", "agencies/minzheng.key"] {
                let mode = fs::metadata(dir.join(key)).unwrap().permissions().mode();
                assert_eq!(mode & 0o777, 0o600, "{key}");
            }
        }
    }

    #[test]
    fn init_dir_refuses_a_bad_code_before_writing_anything() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("pki");
        assert!(matches!(
            init_dir(&dir, &["ok", "../escape"]),
            Err(PkiError::InvalidAgencyCode(_))
        ));
        assert!(!dir.exists());
    }

    #[cfg(unix)]
    #[test]
    fn write_private_narrows_an_existing_file() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("old.key");
        fs::write(&path, b"a much longer old secret").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        write_private(&path, b"new").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }

    /// A CSR for `key` that asks for far more than an agency may have.
    fn greedy_csr(key: &KeyPair) -> rcgen::CertificateSigningRequest {
        let mut params = CertificateParams::new(vec!["evil.example".to_owned()]).unwrap();
        params
            .subject_alt_names
            .push(SanType::URI(Ia5String::try_from(agency_uri("minzheng")).unwrap()));
        params.distinguished_name.push(DnType::CommonName, "minzheng");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.serialize_request(key).unwrap()
    }

    #[test]
    fn sign_csr_replaces_everything_but_the_key() {
        let ca = Ca::generate("test CA").unwrap();
        let key = KeyPair::generate().unwrap();
        let csr = greedy_csr(&key);
        let issued = ca.sign_csr(&csr.pem().unwrap(), "gongan", 30).unwrap();
        assert!(issued.key_pem.is_empty());

        let ca_der = der(ca.cert_pem());
        let leaf_der = der(&issued.cert_pem);
        let leaf = parse(&leaf_der);
        assert_issued_by(&leaf, &parse(&ca_der));
        assert_eq!(san_count(&leaf), 1);
        assert_eq!(uris(&leaf), vec![agency_uri("gongan")]);
        assert_eq!(common_name(&leaf), "gongan");
        assert!(!leaf.is_ca());
        let eku = leaf.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.client_auth && !eku.server_auth);
        assert!(!leaf.key_usage().unwrap().unwrap().value.key_cert_sign());
        assert_eq!(&*leaf.public_key().subject_public_key.data, key.public_key_raw());
        assert_eq!(hex::encode(leaf.raw_serial()), issued.serial);

        let days = (issued.not_after - OffsetDateTime::now_utc()).whole_days();
        assert!((29..=30).contains(&days), "{days}");
    }

    #[test]
    fn sign_csr_refuses_a_tampered_signature() {
        let ca = Ca::generate("test CA").unwrap();
        let key = KeyPair::generate().unwrap();
        let csr = greedy_csr(&key);
        let mut bytes = csr.der().to_vec();

        // Control: the same bytes, re-encoded by this test, are accepted.
        assert!(
            ca.sign_csr(&to_pem("CERTIFICATE REQUEST", &bytes), "gongan", 30)
                .is_ok()
        );

        // The signature is the last element of the request; its last byte is
        // the low byte of the ECDSA `s` value.
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        let err = ca
            .sign_csr(&to_pem("CERTIFICATE REQUEST", &bytes), "gongan", 30)
            .unwrap_err();
        assert!(
            matches!(&err, PkiError::InvalidCsr(message) if message.contains("signature")),
            "{err}"
        );

        assert!(matches!(
            ca.sign_csr("garbage", "gongan", 30),
            Err(PkiError::InvalidCsr(_))
        ));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        // The normal suite's share of the `csr` fuzz target: no input panics,
        // and anything issued names exactly the agency.
        #[test]
        fn arbitrary_csrs_never_panic(body in "[A-Za-z0-9+/=\\n]{0,400}", junk in "\\PC{0,100}") {
            let ca = test_ca();
            for pem in [
                format!("-----BEGIN CERTIFICATE REQUEST-----\n{body}\n-----END CERTIFICATE REQUEST-----\n"),
                junk.clone(),
            ] {
                if let Ok(issued) = ca.sign_csr(&pem, "qujing-prop", 1) {
                    let (agency, _) = crate::identity::agency_of(&der(&issued.cert_pem)).unwrap();
                    proptest::prop_assert_eq!(agency, "qujing-prop");
                }
            }
        }
    }

    fn test_ca() -> &'static Ca {
        static CA: std::sync::OnceLock<Ca> = std::sync::OnceLock::new();
        CA.get_or_init(|| Ca::generate("proptest CA").unwrap())
    }
}
