//! civex's own TLS acceptor: rustls with client certificates required and
//! checked against the civex CA, deadlines for the handshake and the HTTP/2
//! preface, an idle timeout, caps on open connections overall and per peer,
//! and the peer's identity attached to each connection. The gateway serves
//! agencies through it; a department source (`civex source`), gateways.

use std::{
    future::Future,
    io,
    net::SocketAddr,
    path::{Path, PathBuf},
    pin::Pin,
    sync::{Arc, RwLock},
    task::{Context, Poll},
    time::Duration,
};

use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
    client::danger::HandshakeSignatureValid,
    pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer, UnixTime, pem::PemObject},
    server::{
        ClientHello, ResolvesServerCert, WebPkiClientVerifier,
        danger::{ClientCertVerified, ClientCertVerifier},
    },
    sign::CertifiedKey,
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{OwnedSemaphorePermit, Semaphore, mpsc},
};
use tokio_rustls::{TlsAcceptor, server::TlsStream};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::Connected;

use super::identity::{self, Activity, PeerIdentity};

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("no PEM {what} in {path}")]
    Pem { what: &'static str, path: PathBuf },
    #[error("invalid CA certificate in {path}: {source}")]
    Ca { path: PathBuf, source: rustls::Error },
    #[error("client verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    #[error("server certificate or key rejected: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("private key {path} is readable by group or others (mode {mode:o}); chmod 600 it")]
    KeyPermissions { path: PathBuf, mode: u32 },
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Reads every certificate from a PEM file.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem).filter_map(Result::ok).collect();
    if certs.is_empty() {
        return Err(TlsError::Pem {
            what: "certificate",
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

/// Reads a private key from a PEM file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(&read(path)?).map_err(|_| TlsError::Pem {
        what: "private key",
        path: path.to_owned(),
    })
}

/// The rustls provider civex uses everywhere.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The client-certificate verifier: webpki against the civex CA and its
/// CRL (expiry enforced), swapped whole when a new CRL arrives, so a revoked
/// certificate fails its next handshake without a restart.
#[derive(Debug)]
pub struct ClientVerifier {
    roots: Arc<RootCertStore>,
    provider: Arc<rustls::crypto::CryptoProvider>,
    hints: Vec<DistinguishedName>,
    inner: RwLock<Arc<dyn ClientCertVerifier>>,
}

impl ClientVerifier {
    fn new(ca: &Path, crl: Option<Vec<u8>>) -> Result<ClientVerifier, TlsError> {
        let mut roots = RootCertStore::empty();
        for c in load_certs(ca)? {
            roots.add(c).map_err(|source| TlsError::Ca {
                path: ca.to_owned(),
                source,
            })?;
        }
        let roots = Arc::new(roots);
        let provider = provider();
        let inner = Self::build(&roots, &provider, crl)?;
        let hints = inner.root_hint_subjects().to_vec();
        Ok(ClientVerifier {
            roots,
            provider,
            hints,
            inner: RwLock::new(inner),
        })
    }

    fn build(
        roots: &Arc<RootCertStore>,
        provider: &Arc<rustls::crypto::CryptoProvider>,
        crl: Option<Vec<u8>>,
    ) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
        let mut builder = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone());
        if let Some(crl) = crl {
            builder = builder
                .with_crls([CertificateRevocationListDer::from(crl)])
                .enforce_revocation_expiration();
        }
        Ok(builder.build()?)
    }

    /// Uses `crl` (DER) from the next handshake on.
    pub fn set_crl(&self, crl: Vec<u8>) -> Result<(), TlsError> {
        let inner = Self::build(&self.roots, &self.provider, Some(crl))?;
        *self.inner.write().unwrap_or_else(|p| p.into_inner()) = inner;
        Ok(())
    }

    fn current(&self) -> Arc<dyn ClientCertVerifier> {
        self.inner.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl ClientCertVerifier for ClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.current().verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.current().verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.current().verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.current().supported_verify_schemes()
    }
}

/// The gateway's own certificate, replaceable without a restart.
#[derive(Debug)]
pub struct ServerCert {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
}

impl ServerCert {
    fn load(cert: &Path, key: &Path) -> Result<ServerCert, TlsError> {
        let current = RwLock::new(Arc::new(Self::read(cert, key)?));
        Ok(ServerCert {
            cert: cert.to_owned(),
            key: key.to_owned(),
            current,
        })
    }

    fn read(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
        check_private(key)?;
        let signing = provider().key_provider.load_private_key(load_key(key)?)?;
        Ok(CertifiedKey::new(load_certs(cert)?, signing))
    }

    /// When the certificate in use expires (Unix time).
    pub fn not_after(&self) -> Option<i64> {
        let current = self.current.read().unwrap_or_else(|p| p.into_inner()).clone();
        let leaf = current.cert.first()?;
        let (_, cert) = x509_parser::parse_x509_certificate(leaf).ok()?;
        Some(cert.validity().not_after.timestamp())
    }

    /// Re-reads the certificate and key files; new handshakes use them.
    pub fn reload(&self) -> Result<(), TlsError> {
        let fresh = Arc::new(Self::read(&self.cert, &self.key)?);
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = fresh;
        Ok(())
    }
}

impl ResolvesServerCert for ServerCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().unwrap_or_else(|p| p.into_inner()).clone())
    }
}

/// Refuses a private key file that group or others may read.
pub fn check_private(path: &Path) -> Result<(), TlsError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(TlsError::KeyPermissions {
            path: path.to_owned(),
            mode: mode & 0o777,
        });
    }
    Ok(())
}

/// What can be changed under a running server.
#[derive(Debug, Clone)]
pub struct TlsHandles {
    pub verifier: Arc<ClientVerifier>,
    pub cert: Arc<ServerCert>,
}

/// A server config that requires a client certificate chaining to `ca`
/// (and not revoked by `crl`, if given) and speaks HTTP/2.
pub fn server_config(
    ca: &Path,
    cert: &Path,
    key: &Path,
    crl: Option<Vec<u8>>,
) -> Result<(Arc<ServerConfig>, TlsHandles), TlsError> {
    let verifier = Arc::new(ClientVerifier::new(ca, crl)?);
    let server_cert = Arc::new(ServerCert::load(cert, key)?);
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_client_cert_verifier(verifier.clone())
        .with_cert_resolver(server_cert.clone());
    // gRPC over h2; the log's tiles also over HTTP/1.1 for plain clients (DESIGN §12).
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((
        Arc::new(config),
        TlsHandles {
            verifier,
            cert: server_cert,
        },
    ))
}

/// The HTTP/2 connection preface every client sends first (RFC 9113 §3.4).
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What one listener allows its peers.
#[derive(Debug, Clone, Copy)]
pub struct Admission {
    /// Time for the TLS handshake.
    pub handshake_timeout: Duration,
    /// Time, after the handshake, for the HTTP/2 connection preface.
    pub preface_timeout: Duration,
    /// A connection that carries nothing for this long is closed.
    pub idle_timeout: Duration,
    /// Open (or handshaking) connections at most.
    pub max_connections: usize,
    /// Open connections of one peer (agency, or gateway at a source) at most.
    pub max_per_peer: usize,
}

/// Which verified principals a listener serves, by the name it knows them by.
pub type Admit = Arc<dyn Fn(&identity::Principal) -> Option<String> + Send + Sync>;

/// An accepted, verified connection, with the peer it belongs to. It holds
/// a slot of the connection cap, and of its peer's, until dropped; it ends
/// itself once idle for the listener's idle timeout.
pub struct PeerStream {
    inner: TlsStream<TcpStream>,
    peer: PeerIdentity,
    /// The connection preface, read to check it arrived in time; handed to
    /// the HTTP/2 server first.
    preface: Option<&'static [u8]>,
    idle: Idle,
    _slot: OwnedSemaphorePermit,
    _peer_slot: PeerSlot,
}

impl std::fmt::Debug for PeerStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerStream")
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

/// The idle timer of one connection: it fires `timeout` after the last call
/// on the connection began or ended (HTTP/2 keep-alive pings do not count).
struct Idle {
    timeout: Duration,
    activity: Activity,
    timer: Pin<Box<tokio::time::Sleep>>,
}

impl Idle {
    fn new(timeout: Duration, activity: Activity) -> Idle {
        Idle {
            timeout,
            activity,
            timer: Box::pin(tokio::time::sleep(timeout)),
        }
    }

    /// Whether the connection has been idle too long; if not, the timer is
    /// set for when it will have been, and wakes `cx` then.
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        while self.timer.as_mut().poll(cx).is_ready() {
            let quiet = self.activity.quiet_for();
            if quiet >= self.timeout {
                return true;
            }
            let next = tokio::time::Instant::now() + (self.timeout - quiet);
            self.timer.as_mut().reset(next);
        }
        false
    }
}

/// One peer's share of its connection cap, given back on drop.
/// Open connections per peer, shared by the acceptor (which caps them)
/// and whoever reports them (metrics).
#[derive(Debug, Clone, Default)]
pub struct Connections(Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>>);

impl Connections {
    /// Each peer with open connections and how many.
    pub fn snapshot(&self) -> Vec<(String, usize)> {
        let counts = self.0.lock().unwrap_or_else(|p| p.into_inner());
        counts.iter().map(|(peer, open)| (peer.clone(), *open)).collect()
    }
}

struct PeerSlot {
    open: Connections,
    peer: String,
}

impl PeerSlot {
    fn take(open: &Connections, peer: &str, max: usize) -> Option<PeerSlot> {
        let mut counts = open.0.lock().unwrap_or_else(|p| p.into_inner());
        let count = counts.entry(peer.to_owned()).or_default();
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(PeerSlot {
            open: open.clone(),
            peer: peer.to_owned(),
        })
    }
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut counts = self.open.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = counts.get_mut(&self.peer) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.peer);
            }
        }
    }
}

impl Connected for PeerStream {
    type ConnectInfo = PeerIdentity;

    fn connect_info(&self) -> PeerIdentity {
        self.peer.clone()
    }
}

impl AsyncRead for PeerStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if let Some(preface) = this.preface.take() {
            let n = preface.len().min(buf.remaining());
            buf.put_slice(&preface[..n]);
            if n < preface.len() {
                this.preface = Some(&preface[n..]);
            }
            return Poll::Ready(Ok(()));
        }
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(result) => Poll::Ready(result),
            Poll::Pending if this.idle.expired(cx) => {
                tracing::debug!(peer = %this.peer.agency, "idle connection closed");
                Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "idle connection")))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncWrite for PeerStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The gateway's admission: agencies only, by their code.
pub fn agencies() -> Admit {
    Arc::new(|p| match p {
        identity::Principal::Agency(code) => Some(code.clone()),
        _ => None,
    })
}

/// Accepts TCP connections on `listener` and yields those that, within the
/// limits of `admission`, finished their TLS handshake with a certificate
/// naming a principal `admit` serves, and then sent the HTTP/2 preface.
/// Handshakes run concurrently, so a slow client delays nobody else; no
/// peer holds more than its share of connections, and no unauthenticated or
/// silent peer holds a slot for longer than its deadlines. `per_peer`
/// counts each peer's open connections.
pub fn incoming(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    admission: Admission,
    admit: Admit,
    per_peer: Connections,
) -> ReceiverStream<io::Result<PeerStream>> {
    let (tx, rx) = mpsc::channel(64);
    let acceptor = TlsAcceptor::from(config);
    let slots = Arc::new(Semaphore::new(admission.max_connections));
    tokio::spawn(async move {
        loop {
            let Ok(slot) = slots.clone().acquire_owned().await else {
                return;
            };
            let (tcp, remote) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Per-connection errors (e.g. reset before accept, fd limits) must not stop the server.
                        tracing::warn!(cause = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                },
                _ = tx.closed() => return,
            };
            let _ = tcp.set_nodelay(true);
            let accept = Accept {
                acceptor: acceptor.clone(),
                admission,
                admit: admit.clone(),
                per_peer: per_peer.clone(),
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                if let Some(stream) = accept.run(tcp, remote, slot).await {
                    let _ = tx.send(Ok(stream)).await;
                }
            });
        }
    });
    ReceiverStream::new(rx)
}

/// What one connection's acceptance needs.
struct Accept {
    acceptor: TlsAcceptor,
    admission: Admission,
    admit: Admit,
    per_peer: Connections,
}

impl Accept {
    async fn run(self, tcp: TcpStream, remote: SocketAddr, slot: OwnedSemaphorePermit) -> Option<PeerStream> {
        let mut tls = match tokio::time::timeout(self.admission.handshake_timeout, self.acceptor.accept(tcp)).await {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                tracing::info!(%remote, cause = %e, "TLS handshake refused");
                return None;
            }
            Err(_) => {
                tracing::info!(%remote, "TLS handshake timed out");
                return None;
            }
        };
        let (_, conn) = tls.get_ref();
        let Some(leaf) = conn.peer_certificates().and_then(|c| c.first()) else {
            tracing::info!(%remote, "no client certificate");
            return None;
        };
        let (principal, serial) = match identity::principal_of(leaf) {
            Ok(found) => found,
            Err(e) => {
                tracing::info!(%remote, cause = %e, "client certificate names no civex principal");
                return None;
            }
        };
        let Some(name) = (self.admit)(&principal) else {
            tracing::info!(%remote, ?principal, "client certificate names a principal this listener does not serve");
            return None;
        };
        let Some(peer_slot) = PeerSlot::take(&self.per_peer, &name, self.admission.max_per_peer) else {
            tracing::warn!(%remote, peer = %name, cap = self.admission.max_per_peer, "connection cap of the peer reached");
            return None;
        };
        // HTTP/1.1 (the log's tiles for plain clients) has no preface to
        // wait for: hyper's timeout on reading its headers stands in.
        let http1 = conn.alpn_protocol() == Some(b"http/1.1");
        if !http1 {
            let mut preface = [0u8; PREFACE.len()];
            match tokio::time::timeout(
                self.admission.preface_timeout,
                tokio::io::AsyncReadExt::read_exact(&mut tls, &mut preface),
            )
            .await
            {
                Ok(Ok(_)) if preface == *PREFACE => {}
                Ok(_) => {
                    tracing::info!(%remote, peer = %name, "no HTTP/2 connection preface");
                    return None;
                }
                Err(_) => {
                    tracing::info!(%remote, peer = %name, "HTTP/2 connection preface timed out");
                    return None;
                }
            }
        }
        tracing::debug!(%remote, peer = %name, "connection accepted");
        let activity = Activity::default();
        Some(PeerStream {
            inner: tls,
            peer: PeerIdentity {
                agency: name,
                serial,
                remote,
                activity: activity.clone(),
            },
            preface: (!http1).then_some(PREFACE),
            idle: Idle::new(self.admission.idle_timeout, activity),
            _slot: slot,
            _peer_slot: peer_slot,
        })
    }
}
