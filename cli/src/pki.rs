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

use std::{fs, net::IpAddr, path::Path};

use civex_gateway::{
    authority::{
        Ca, Issued, PkiError,
        ca::{CLOCK_SKEW, leaf_params, random_serial, set_validity, subject, validate_agency_code},
    },
    net::identity::{agency_uri, gateway_uri},
};
use rcgen::{
    BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType,
    SerialNumber, string::Ia5String,
};
use time::{Duration, OffsetDateTime};

/// Common name of the CA that [`init_dir`] creates.
pub const DEV_CA_COMMON_NAME: &str = "civex development CA";

/// Names the development gateway certificate is valid for: loopback only, so a
/// development certificate is useless anywhere else.
pub const GATEWAY_NAMES: &[&str] = &["localhost", "127.0.0.1", "::1"];

/// The development gateway's name, in its certificate's SAN URI
/// (`spiffe://civex/gateway/<name>`) and in what `civex source` trusts.
pub const DEV_GATEWAY_NAME: &str = "qujing-demo";

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

/// What the development PKI makes with a [`Ca`] beyond what the gateway
/// does: the CA itself, and certificates whose keys are made here.
pub trait DevCa: Sized {
    /// Generates a new self-signed CA with an ECDSA P-256 key, valid from a
    /// day ago for about ten years, subject `CN=<common_name>, O=civex`.
    fn generate(common_name: &str) -> Result<Ca, PkiError>;

    /// Issues a server certificate with a new P-256 key for `names`: each name
    /// that parses as an IP address becomes an IP SAN, any other a DNS SAN;
    /// `principal` is the one civex SAN URI it carries (a gateway's
    /// `spiffe://civex/gateway/<name>`, a source's
    /// `spiffe://civex/department/<code>`). It allows clientAuth as well as
    /// serverAuth because the gateway presents the same certificate when it
    /// connects to department sources. Valid from a day ago for 825 days.
    fn issue_server(&self, names: &[&str], principal: &str) -> Result<Issued, PkiError>;

    /// Issues a client certificate with a new P-256 key exactly as `spec`
    /// says, without any check on its URIs: callers (tests above all) decide
    /// what the certificate claims. EKU clientAuth, key usage digitalSignature.
    fn issue_client(&self, spec: &ClientSpec) -> Result<Issued, PkiError>;

    /// Issues the regular certificate of agency `code` ([`ClientSpec::agency`]).
    fn issue_agency(&self, code: &str) -> Result<Issued, PkiError>;
}

impl DevCa for Ca {
    fn generate(common_name: &str) -> Result<Ca, PkiError> {
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
        Ca::load(&cert.pem(), &key.serialize_pem())
    }

    fn issue_server(&self, names: &[&str], principal: &str) -> Result<Issued, PkiError> {
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
        params
            .subject_alt_names
            .push(SanType::URI(Ia5String::try_from(principal)?));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        issue_with_new_key(self, &params, serial)
    }

    fn issue_client(&self, spec: &ClientSpec) -> Result<Issued, PkiError> {
        let (mut params, serial) = leaf_params(&spec.common_name, spec.not_before, spec.not_after)?;
        params.subject_alt_names = spec
            .uris
            .iter()
            .map(|uri| -> Result<SanType, PkiError> { Ok(SanType::URI(Ia5String::try_from(uri.as_str())?)) })
            .collect::<Result<Vec<_>, _>>()?;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        issue_with_new_key(self, &params, serial)
    }

    fn issue_agency(&self, code: &str) -> Result<Issued, PkiError> {
        validate_agency_code(code)?;
        self.issue_client(&ClientSpec::agency(code))
    }
}

/// Generates a P-256 key and signs `params` for it.
fn issue_with_new_key(ca: &Ca, params: &CertificateParams, serial: String) -> Result<Issued, PkiError> {
    let key = KeyPair::generate()?;
    let key_pem = key.serialize_pem();
    ca.sign(params, &key, key_pem, serial)
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

    let gateway = ca.issue_server(GATEWAY_NAMES, &gateway_uri(DEV_GATEWAY_NAME))?;
    write_public(&dir.join("gateway.pem"), gateway.cert_pem.as_bytes())?;
    write_private(&dir.join("gateway.key"), gateway.key_pem.as_bytes())?;

    for code in agencies {
        let issued = ca.issue_agency(code)?;
        write_public(&agencies_dir.join(format!("{code}.pem")), issued.cert_pem.as_bytes())?;
        write_private(&agencies_dir.join(format!("{code}.key")), issued.key_pem.as_bytes())?;
        civex_gateway::authority::note_issued(dir, &issued, code).map_err(|source| PkiError::Io {
            path: dir.join(civex_gateway::authority::ISSUED_FILE),
            source,
        })?;
    }

    // Server certificates for department sources run beside the demo (`civex source`).
    let sources_dir = dir.join("sources");
    fs::create_dir_all(&sources_dir).map_err(|source| PkiError::Io {
        path: sources_dir.clone(),
        source,
    })?;
    for department in civex_adapters::Department::ALL {
        let issued = ca.issue_server(GATEWAY_NAMES, &department.source_uri())?;
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

/// Writes a private key with mode 0600 ([`civex_audit::keys::write_private`]).
pub fn write_private(path: &Path, contents: &[u8]) -> Result<(), PkiError> {
    civex_audit::keys::write_private(path, contents).map_err(|source| PkiError::Io {
        path: path.to_owned(),
        source,
    })
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
    use civex_gateway::net::identity::{Principal, parse_agency_uri};
    use rcgen::DnType;
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
        let issued = ca.issue_server(GATEWAY_NAMES, &gateway_uri("g")).unwrap();
        let leaf_der = der(&issued.cert_pem);
        let leaf = parse(&leaf_der);
        let san = leaf.subject_alternative_name().unwrap().unwrap();
        let names = &san.value.general_names;
        assert_eq!(names.len(), 4);
        assert!(matches!(names[0], GeneralName::DNSName("localhost")));
        assert!(matches!(names[1], GeneralName::IPAddress(ip) if *ip == [127, 0, 0, 1]));
        assert!(matches!(names[2], GeneralName::IPAddress(ip) if *ip == std::net::Ipv6Addr::LOCALHOST.octets()));
        assert!(matches!(names[3], GeneralName::URI("spiffe://civex/gateway/g")));
        let eku = leaf.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && eku.client_auth);
        assert!(!leaf.is_ca());
        assert!(matches!(
            ca.issue_server(&[], "spiffe://civex/gateway/g"),
            Err(PkiError::NoServerNames)
        ));
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
        assert_eq!(san_count(&gateway), GATEWAY_NAMES.len() + 1);
        assert_eq!(uris(&gateway), vec![gateway_uri(DEV_GATEWAY_NAME)]);
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
                    let (principal, _) = civex_gateway::net::identity::principal_of(&der(&issued.cert_pem)).unwrap();
                    proptest::prop_assert_eq!(principal, Principal::Agency("qujing-prop".into()));
                }
            }
        }
    }

    fn test_ca() -> &'static Ca {
        static CA: std::sync::OnceLock<Ca> = std::sync::OnceLock::new();
        CA.get_or_init(|| Ca::generate("proptest CA").unwrap())
    }
}
