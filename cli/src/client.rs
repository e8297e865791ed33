//! mTLS client channels to a civex gateway (or any civex-PKI server), for
//! the command line and tests.

use std::path::{Path, PathBuf};

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// The PEM material a client presents and trusts.
#[derive(Debug, Clone)]
pub struct ClientTls {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

impl ClientTls {
    /// Reads the CA certificate, client certificate and key from PEM files.
    pub fn from_files(ca: &Path, cert: &Path, key: &Path) -> std::io::Result<ClientTls> {
        let read = |p: &Path| {
            std::fs::read_to_string(p).map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", p.display())))
        };
        Ok(ClientTls {
            ca_pem: read(ca)?,
            cert_pem: read(cert)?,
            key_pem: read(key)?,
        })
    }

    /// The demo's files for `agency` under `certs_dir`: `ca.pem`, `agencies/<agency>.pem|key`.
    pub fn demo_paths(certs_dir: &Path, agency: &str) -> (PathBuf, PathBuf, PathBuf) {
        (
            certs_dir.join("ca.pem"),
            certs_dir.join("agencies").join(format!("{agency}.pem")),
            certs_dir.join("agencies").join(format!("{agency}.key")),
        )
    }
}

/// Connects to `endpoint` (e.g. `https://127.0.0.1:50051`) over mTLS.
pub async fn connect(endpoint: &str, tls: &ClientTls) -> Result<Channel, tonic::transport::Error> {
    endpoint_for(endpoint, tls)?.connect().await
}

/// An endpoint configured for mTLS, not yet connected.
pub fn endpoint_for(endpoint: &str, tls: &ClientTls) -> Result<Endpoint, tonic::transport::Error> {
    let config = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&tls.ca_pem))
        .identity(Identity::from_pem(&tls.cert_pem, &tls.key_pem));
    Endpoint::from_shared(endpoint.to_owned())?.tls_config(config)
}
