//! The reference department server (`civex source`). It serves one
//! department's facts from the same JSONL file `civex import` reads, through
//! `DepartmentSourceService` over mTLS, with gRPC health, to the gateways it
//! trusts only: a caller's certificate must chain to the civex CA, not be on
//! the gateway's CRL, and carry `spiffe://civex/gateway/<name>` for a
//! trusted name (DESIGN §11). Agencies never reach a source directly. It is the peer the remote adapter
//! is tested against, and an example for a department integrating with civex.

use std::{
    collections::HashMap,
    future::Future,
    io::BufRead,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use civex_adapters::{Department, Record, catalogue, registry::facts_from_record};
use civex_gateway::net::{self, identity::Principal};
use civex_proto::v1::{
    FetchRequest, FetchResponse,
    department_source_service_server::{DepartmentSourceService, DepartmentSourceServiceServer},
};
use tokio::net::TcpListener;
use tonic::{Request, Response, Status, transport::Server};

use civex_adapters::{
    CitizenId,
    import::{self, ImportError},
};

/// Attributes one fetch may ask for.
const MAX_ATTRIBUTES: usize = 64;

/// One department's registry, held in memory.
pub struct DepartmentServer {
    department: Department,
    records: HashMap<String, Record>,
}

impl DepartmentServer {
    /// Reads a department's JSONL file, refusing it whole if a line is bad.
    pub fn load(department: Department, reader: impl BufRead) -> Result<DepartmentServer, ImportError> {
        let records = import::read(department, reader)?.into_iter().collect();
        Ok(DepartmentServer { department, records })
    }

    /// Loads the file at `path`.
    pub fn open(department: Department, path: &Path) -> Result<DepartmentServer, ImportError> {
        DepartmentServer::load(department, std::io::BufReader::new(std::fs::File::open(path)?))
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

#[tonic::async_trait]
impl DepartmentSourceService for DepartmentServer {
    async fn fetch(&self, request: Request<FetchRequest>) -> Result<Response<FetchResponse>, Status> {
        let req = request.into_inner();
        let citizen = CitizenId::parse(&req.citizen_id).map_err(|e| Status::invalid_argument(e.to_string()))?;
        if req.attributes.is_empty() || req.attributes.len() > MAX_ATTRIBUTES {
            return Err(Status::invalid_argument(format!(
                "ask for 1 to {MAX_ATTRIBUTES} attributes"
            )));
        }
        let attributes = req
            .attributes
            .iter()
            .map(|name| {
                catalogue::attribute(name)
                    .filter(|a| a.department == self.department && !a.abolished)
                    .ok_or_else(|| {
                        Status::invalid_argument(format!("{name:?} is not an attribute held by {}", self.department))
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let facts = facts_from_record(self.department, self.records.get(citizen.as_str()), &attributes);
        Ok(Response::new(FetchResponse {
            facts,
            citizen_id: citizen.as_str().to_owned(),
        }))
    }
}

/// Whom a department source lets in, and with what it proves itself.
#[derive(Debug, Clone)]
pub struct SourceTls {
    /// The CA its callers' certificates must chain to.
    pub ca: PathBuf,
    /// The source's own certificate (naming its department) and key.
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The CRL the gateway publishes (`<data>/crl.der`), re-read when it
    /// changes; a revoked certificate is refused at the handshake.
    pub crl: Option<PathBuf>,
    /// The gateways it answers, by the name in their certificate's
    /// `spiffe://civex/gateway/<name>`: no agency, no other source.
    pub gateways: Vec<String>,
}

/// How often a source looks for a new CRL.
const CRL_POLL: Duration = Duration::from_secs(1);

/// Serves a department source on `listener` over mTLS until `shutdown`
/// resolves, to the gateways `tls` names only.
pub async fn serve<S: DepartmentSourceService>(
    source: S,
    tls: &SourceTls,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let read_crl = |path: &Path| std::fs::read(path).ok();
    let crl = tls.crl.as_deref().and_then(read_crl);
    let (config, handles) = net::tls::server_config(&tls.ca, &tls.cert, &tls.key, crl.clone())?;
    let crl_watch = tls.crl.clone().map(|path| {
        let verifier = handles.verifier.clone();
        tokio::spawn(async move {
            let mut seen = crl;
            loop {
                tokio::time::sleep(CRL_POLL).await;
                let now = read_crl(&path);
                if now.is_some() && now != seen {
                    match verifier.set_crl(now.clone().unwrap_or_default()) {
                        Ok(()) => seen = now,
                        Err(e) => tracing::warn!(cause = %e, "new CRL refused"),
                    }
                }
            }
        })
    });
    let gateways = tls.gateways.clone();
    let admit: net::tls::Admit = Arc::new(move |principal| match principal {
        Principal::Gateway(name) if gateways.contains(name) => Some(name.clone()),
        _ => None,
    });
    let admission = net::tls::Admission {
        handshake_timeout: Duration::from_secs(5),
        preface_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(300),
        max_connections: 1024,
        max_per_peer: 256,
    };
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<DepartmentSourceServiceServer<S>>().await;
    let served = Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .add_service(health_service)
        .add_service(DepartmentSourceServiceServer::new(source).max_decoding_message_size(64 * 1024))
        .serve_with_incoming_shutdown(
            net::tls::incoming(listener, config, admission, admit, Default::default()),
            shutdown,
        )
        .await;
    if let Some(watch) = crl_watch {
        watch.abort();
    }
    Ok(served?)
}
