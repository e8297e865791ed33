//! The gateway as certificate authority for agencies: certificates issued
//! from agencies' CSRs (their keys never reach the gateway), revocations kept
//! in a [`RevocationStore`] and checked on every call, and a signed CRL that
//! the TLS verifier uses for new handshakes.
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
    store::{Revocation, RevocationStore},
};

/// File the current CRL (DER) is published to, in the data directory.
pub const CRL_FILE: &str = "crl.der";

/// Issues and revokes agency certificates.
pub struct Authority {
    /// `None` when the gateway was started without the CA key: it can then
    /// still refuse revoked serials, but not issue certificates or CRLs.
    ca: Option<Ca>,
    revocations: Arc<dyn RevocationStore>,
    revoked: RwLock<HashSet<String>>,
    verifier: Arc<ClientVerifier>,
    crl_path: PathBuf,
    certificate_days: u32,
    crl_validity: time::Duration,
}

fn stored(e: impl std::fmt::Display) -> Error {
    Error::internal(format!("revocation store: {e}"))
}

impl Authority {
    /// Loads the revocations of `revocations`; with a CA, signs a fresh CRL
    /// and hands it to `verifier`.
    pub async fn open(
        revocations: Arc<dyn RevocationStore>,
        ca: Option<Ca>,
        verifier: Arc<ClientVerifier>,
        data_dir: &Path,
        certificate_days: u32,
        crl_days: u32,
    ) -> Result<Authority, Error> {
        let revoked = revocations
            .list()
            .await
            .map_err(stored)?
            .into_iter()
            .map(|r| r.serial)
            .collect::<HashSet<_>>();
        let authority = Authority {
            ca,
            revocations,
            revoked: RwLock::new(revoked),
            verifier,
            crl_path: data_dir.join(CRL_FILE),
            certificate_days,
            crl_validity: time::Duration::days(i64::from(crl_days)),
        };
        authority.publish_crl().await?;
        Ok(authority)
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
    /// carries exactly the agency's SAN URI.
    pub fn issue(&self, code: &str, csr_pem: &str) -> Result<Issued, Error> {
        self.ca()?
            .sign_csr(csr_pem, code, self.certificate_days)
            .map_err(|e| match e {
                PkiError::InvalidCsr(cause) => Error::new(Reason::InvalidRequest, format!("CSR refused: {cause}")),
                PkiError::Pem(cause) => Error::new(Reason::InvalidRequest, format!("CSR refused: {cause}")),
                other => Error::internal(other),
            })
    }

    /// Revokes a serial (lower-case hex) from now on: on every open connection
    /// at its next call, and at the handshake once the new CRL is published.
    pub async fn revoke(&self, serial: &str, reason: &str) -> Result<OffsetDateTime, Error> {
        let well_formed = (2..=40).contains(&serial.len())
            && serial.len().is_multiple_of(2)
            && serial.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !well_formed {
            return Err(Error::new(
                Reason::InvalidRequest,
                "serial must be lower-case hex, as issued",
            ));
        }
        let now = OffsetDateTime::now_utc();
        let revocation = Revocation {
            serial: serial.to_owned(),
            revoked_at: now.unix_timestamp(),
            reason: reason.to_owned(),
        };
        self.revocations.revoke(&revocation).await.map_err(stored)?;
        self.revoked
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(serial.to_owned());
        self.publish_crl().await?;
        Ok(now)
    }

    /// Signs a CRL of every revocation, writes it to `<data>/crl.der` and
    /// gives it to the TLS verifier. Called at start, on each revocation and
    /// periodically, well before the previous one expires.
    pub async fn publish_crl(&self) -> Result<(), Error> {
        let Some(ca) = &self.ca else { return Ok(()) };
        let mut revoked = Vec::new();
        for r in self.revocations.list().await.map_err(stored)? {
            let at = OffsetDateTime::from_unix_timestamp(r.revoked_at).map_err(stored)?;
            revoked.push((r.serial, at));
        }
        // CRL numbers must grow: milliseconds since the epoch do.
        let number = (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as u64;
        let der = ca.crl(&revoked, number, self.crl_validity).map_err(Error::internal)?;
        let tmp = self.crl_path.with_extension("der.tmp");
        std::fs::write(&tmp, &der)
            .and_then(|()| std::fs::rename(&tmp, &self.crl_path))
            .map_err(Error::internal)?;
        self.verifier.set_crl(der).map_err(Error::internal)?;
        Ok(())
    }

    /// The CA certificate, for `IssuedCertificate.chain_pem`.
    pub fn ca_pem(&self) -> Result<String, Error> {
        Ok(self.ca()?.cert_pem().to_owned())
    }
}
