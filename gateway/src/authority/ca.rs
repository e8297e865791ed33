//! The CA key in the gateway's hands: agency certificates signed from their
//! CSRs, and certificate revocation lists. Certificates are made with rcgen,
//! in-process, so civex needs no openssl.
//!
//! An agency is identified by exactly one SAN URI `spiffe://civex/agency/<code>`
//! and by nothing else: the common name is informational only. Keeping the
//! identity in one machine-readable place means the gateway never has to
//! guess which of several names is authoritative, and a certificate that
//! carries zero or two agency URIs can be refused outright.

use std::{fmt, path::PathBuf};

use rand::RngCore;
use rcgen::{
    CertificateParams, CertificateSigningRequestParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PublicKeyData, SanType, SerialNumber, string::Ia5String,
};
use time::{Duration, OffsetDateTime, UtcOffset};

use crate::{net::identity::agency_uri, policy::access::is_agency_code};

/// Organization written into every subject, so certificates made here are
/// recognisable at a glance in any tool that prints a DN.
const ORGANIZATION: &str = "civex";

/// Backdating of every `not_before`, so a peer whose clock runs a little
/// behind does not reject a certificate that was just issued.
pub const CLOCK_SKEW: Duration = Duration::days(1);

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
    /// `[a-z0-9-]` (codes become URI path segments and file names).
    #[error("invalid agency code {0:?}: use 1 to 64 of a-z, 0-9 and '-'")]
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

/// Checks that `code` is a well-formed agency code (see
/// [`is_agency_code`]), which is also safe as a file name.
pub fn validate_agency_code(code: &str) -> Result<(), PkiError> {
    if is_agency_code(code) {
        Ok(())
    } else {
        Err(PkiError::InvalidAgencyCode(code.to_owned()))
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

    /// Signs `params` for `public_key` with the CA key (`key_pem` is handed
    /// back in the [`Issued`], empty when the key stays with its holder).
    /// The gateway itself signs only through [`Ca::sign_csr`], which fixes
    /// every extension; this is the seam the development PKI builds on.
    pub fn sign(
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
pub fn subject(common_name: &str) -> DistinguishedName {
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
pub fn leaf_params(
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
pub fn set_validity(
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
pub fn random_serial() -> Vec<u8> {
    loop {
        let mut bytes = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut bytes);
        bytes[0] = (bytes[0] & 0x7f).max(1);
        // A serial is logged as hex: never one that looks like an ID number
        // (about 1 in 100 would hold a run of 15 decimal digits).
        if !crate::policy::labels::holds_citizen_id(&hex::encode(bytes)) {
            return bytes.to_vec();
        }
    }
}
