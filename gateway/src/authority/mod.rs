//! The gateway as certificate authority for agencies: certificates issued
//! from agencies' CSRs (their keys never reach the gateway) and registered,
//! revocations of registered serials kept in a [`CertificateStore`] and
//! checked on every call, and a signed CRL that the TLS verifier uses for new
//! handshakes. Certificates the CA issued outside the gateway (the dev PKI,
//! `civex certs`) are listed in [`ISSUED_FILE`] beside the CA certificate,
//! as openssl's `index.txt` lists its own.
//!
//! # Layout
//! - [`ca`]: the CA key: signing CSRs and CRLs.

pub mod ca;

use std::{
    collections::HashSet,
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
};

use time::OffsetDateTime;

pub use self::ca::{Ca, Issued, PkiError};
use crate::{
    error::{Error, Reason},
    net::tls::ClientVerifier,
    policy::labels,
    store::{Certificate, CertificateStore, Revocation},
};

/// File the current CRL (DER) is published to, in the data directory.
pub const CRL_FILE: &str = "crl.der";
/// File beside the CA certificate listing certificates issued outside the
/// gateway: one `<serial> <name> [<not_after>]` line each (serial in
/// lower-case hex, not_after in Unix seconds).
pub const ISSUED_FILE: &str = "issued.txt";

/// Adds a certificate issued outside the gateway to the [`ISSUED_FILE`] of
/// the CA directory `ca_dir`, so that the gateway can list and revoke it.
pub fn note_issued(ca_dir: &Path, issued: &Issued, name: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(ca_dir.join(ISSUED_FILE))?;
    writeln!(file, "{} {name} {}", issued.serial, issued.not_after.unix_timestamp())
}

/// The certificates an [`ISSUED_FILE`] lists; none if it is absent.
fn read_issued(path: &Path) -> Vec<Certificate> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|line| {
            let (serial, rest) = line.trim().split_once(' ')?;
            // The name may hold spaces; the end of validity, when written, is the last field.
            let (name, not_after) = match rest.rsplit_once(' ') {
                Some((name, t)) if t.parse::<i64>().is_ok() => (name, t.parse().ok()),
                _ => (rest, None),
            };
            Some(Certificate {
                serial: labels::serial(serial)?,
                agency: name.trim().to_owned(),
                not_after,
            })
        })
        .collect()
}

/// Issues and revokes agency certificates.
pub struct Authority {
    /// `None` when the gateway was started without the CA key: it can then
    /// still refuse revoked serials, but not issue certificates or CRLs.
    ca: Option<Ca>,
    certificates: Arc<dyn CertificateStore>,
    revoked: RwLock<HashSet<String>>,
    verifier: Arc<ClientVerifier>,
    crl_path: PathBuf,
    /// When the CRL in force expires (Unix time; 0 before one is in force).
    crl_next_update: std::sync::atomic::AtomicI64,
    issued_file: PathBuf,
    /// One CRL publication at a time, so the newest list is the one installed last.
    publishing: tokio::sync::Mutex<()>,
    certificate_days: u32,
    crl_validity: time::Duration,
}

fn stored(e: impl std::fmt::Display) -> Error {
    Error::internal(format!("revocation store: {e}"))
}

impl Authority {
    /// Loads the revocations of `certificates`; with a CA, signs a fresh CRL
    /// (without, loads the last one published) and hands it to `verifier`.
    /// `ca_dir` holds the CA certificate and its [`ISSUED_FILE`].
    #[allow(clippy::too_many_arguments)]
    pub async fn open(
        certificates: Arc<dyn CertificateStore>,
        ca: Option<Ca>,
        verifier: Arc<ClientVerifier>,
        data_dir: &Path,
        ca_dir: &Path,
        certificate_days: u32,
        crl_days: u32,
    ) -> Result<Authority, Error> {
        let revoked = certificates
            .list()
            .await
            .map_err(stored)?
            .into_iter()
            .map(|r| r.serial)
            .collect::<HashSet<_>>();
        let authority = Authority {
            ca,
            certificates,
            revoked: RwLock::new(revoked),
            verifier,
            crl_path: data_dir.join(CRL_FILE),
            crl_next_update: Default::default(),
            issued_file: ca_dir.join(ISSUED_FILE),
            publishing: tokio::sync::Mutex::new(()),
            certificate_days,
            crl_validity: time::Duration::days(i64::from(crl_days)),
        };
        authority.publish_crl().await?;
        Ok(authority)
    }

    /// Reads the revocations from the store again (another gateway sharing
    /// it may have revoked a certificate) and publishes a CRL if they grew.
    pub async fn reload(&self) -> Result<(), Error> {
        let revoked: HashSet<String> = self
            .certificates
            .list()
            .await
            .map_err(stored)?
            .into_iter()
            .map(|r| r.serial)
            .collect();
        let grew = {
            let mut known = self.revoked.write().unwrap_or_else(|p| p.into_inner());
            let grew = revoked.len() != known.len();
            *known = revoked;
            grew
        };
        if grew {
            self.publish_crl().await?;
        }
        Ok(())
    }

    /// How long each published CRL stays valid.
    pub fn crl_validity(&self) -> std::time::Duration {
        self.crl_validity.try_into().unwrap_or_default()
    }

    /// Whether the certificate with this serial was revoked.
    pub fn is_revoked(&self, serial: &str) -> bool {
        self.revoked.read().unwrap_or_else(|p| p.into_inner()).contains(serial)
    }

    fn ca(&self) -> Result<&Ca, Error> {
        self.ca.as_ref().ok_or_else(|| {
            Error::new(
                Reason::InvalidRequest,
                "this gateway was started without the CA key (tls.ca_key)",
            )
        })
    }

    /// Signs an agency's CSR after checking its signature; the certificate
    /// carries exactly the agency's SAN URI. It is not [`Authority::register`]ed yet.
    pub fn sign(&self, code: &str, csr_pem: &str) -> Result<Issued, Error> {
        self.ca()?
            .sign_csr(csr_pem, code, self.certificate_days)
            .map_err(|e| match e {
                PkiError::InvalidCsr(cause) => Error::new(Reason::InvalidRequest, format!("CSR refused: {cause}")),
                PkiError::Pem(cause) => Error::new(Reason::InvalidRequest, format!("CSR refused: {cause}")),
                other => Error::internal(other),
            })
    }

    /// Registers a certificate signed for agency `code`, so it can be revoked.
    pub async fn register(&self, code: &str, issued: &Issued) -> Result<(), Error> {
        let certificate = Certificate {
            serial: issued.serial.clone(),
            agency: code.to_owned(),
            not_after: Some(issued.not_after.unix_timestamp()),
        };
        self.certificates.issued(&certificate).await.map_err(stored)
    }

    /// Every certificate issued to agency `code` (by the gateway or, per
    /// [`ISSUED_FILE`], outside it), by serial, each with its revocation if revoked.
    pub async fn certificates(&self, code: &str) -> Result<Vec<(Certificate, Option<Revocation>)>, Error> {
        let mut found = self.certificates.issued_to(code).await.map_err(stored)?;
        for outside in read_issued(&self.issued_file) {
            if outside.agency == code && !found.iter().any(|c| c.serial == outside.serial) {
                found.push(outside);
            }
        }
        found.sort_by(|a, b| a.serial.cmp(&b.serial));
        let revocations = self.certificates.list().await.map_err(stored)?;
        Ok(found
            .into_iter()
            .map(|c| {
                let revoked = revocations.iter().find(|r| r.serial == c.serial).cloned();
                (c, revoked)
            })
            .collect())
    }

    /// `serial` (hex in either case) in the form the gateway writes it, if
    /// the CA issued it: `INVALID_REQUEST` if it is not hex,
    /// `CERTIFICATE_NOT_FOUND` if it was never issued.
    pub async fn issued(&self, serial: &str) -> Result<String, Error> {
        let normal = labels::serial(serial).ok_or_else(|| {
            Error::new(
                Reason::InvalidRequest,
                "serial must be hex, as printed by openssl or civex",
            )
        })?;
        if self.certificates.agency_of(&normal).await.map_err(stored)?.is_some() {
            return Ok(normal);
        }
        // Issued outside the gateway since it last looked?
        if let Some(outside) = read_issued(&self.issued_file).into_iter().find(|c| c.serial == normal) {
            self.certificates.issued(&outside).await.map_err(stored)?;
            return Ok(normal);
        }
        Err(Error::new(
            Reason::CertificateNotFound,
            "no certificate with this serial was issued by this CA",
        ))
    }

    /// Revokes an issued serial ([`Authority::issued`]) from now on: on every
    /// open connection at its next call, and at the handshake once the new
    /// CRL is published.
    pub async fn revoke(&self, serial: &str, reason: &str) -> Result<OffsetDateTime, Error> {
        let now = OffsetDateTime::now_utc();
        let revocation = Revocation {
            serial: serial.to_owned(),
            revoked_at: now.unix_timestamp(),
            reason: reason.to_owned(),
        };
        self.certificates.revoke(&revocation).await.map_err(stored)?;
        self.revoked
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(serial.to_owned());
        self.publish_crl().await?;
        Ok(now)
    }

    /// Signs a CRL of every revocation, writes it to `<data>/crl.der` and
    /// gives it to the TLS verifier. Called at start, on each revocation and
    /// periodically, well before the previous one expires. Without the CA
    /// key, the last CRL published to `<data>/crl.der` is used.
    pub async fn publish_crl(&self) -> Result<(), Error> {
        let _one_at_a_time = self.publishing.lock().await;
        let Some(ca) = &self.ca else {
            return match std::fs::read(&self.crl_path) {
                Ok(der) => self.install_crl(der),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(Error::internal(e)),
            };
        };
        let mut revoked = Vec::new();
        for r in self.certificates.list().await.map_err(stored)? {
            let at = OffsetDateTime::from_unix_timestamp(r.revoked_at).map_err(stored)?;
            revoked.push((r.serial, at));
        }
        // CRL numbers must grow: milliseconds since the epoch do.
        let number = (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as u64;
        let der = ca.crl(&revoked, number, self.crl_validity).map_err(Error::internal)?;
        // Gateways sharing a data directory each write their own aside.
        let tmp = self
            .crl_path
            .with_extension(format!("der.{:016x}.tmp", rand::random::<u64>()));
        std::fs::write(&tmp, &der)
            .and_then(|()| std::fs::rename(&tmp, &self.crl_path))
            .map_err(Error::internal)?;
        self.install_crl(der)
    }

    /// Gives the TLS verifier `der` and notes when it expires.
    fn install_crl(&self, der: Vec<u8>) -> Result<(), Error> {
        let next_update = x509_parser::parse_x509_crl(&der)
            .ok()
            .and_then(|(_, crl)| crl.next_update())
            .map_or(0, |at| at.timestamp());
        self.verifier.set_crl(der).map_err(Error::internal)?;
        self.crl_next_update
            .store(next_update, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// When the CRL in force expires (Unix time), once one is.
    pub fn crl_next_update(&self) -> Option<i64> {
        Some(self.crl_next_update.load(std::sync::atomic::Ordering::Relaxed)).filter(|&at| at != 0)
    }

    /// The CA certificate, for `IssuedCertificate.chain_pem`.
    pub fn ca_pem(&self) -> Result<String, Error> {
        Ok(self.ca()?.cert_pem().to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issued_file_is_read_in_either_layout_and_names_may_hold_spaces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(ISSUED_FILE);
        std::fs::write(
            &path,
            "0A1b qujing-psb\n0c2d qujing-tax 1798761600\n0e3f civex test agency 1798761601\n",
        )
        .unwrap();
        let read = read_issued(&path);
        let row = |serial: &str, agency: &str, not_after| Certificate {
            serial: serial.into(),
            agency: agency.into(),
            not_after,
        };
        assert_eq!(
            read,
            [
                row("0a1b", "qujing-psb", None),
                row("0c2d", "qujing-tax", Some(1_798_761_600)),
                row("0e3f", "civex test agency", Some(1_798_761_601)),
            ]
        );
    }
}
