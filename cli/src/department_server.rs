//! The reference department server (`civex source`). It serves one
//! department's facts from the same JSONL file `civex import` reads, through
//! `DepartmentSourceService` over mTLS (only clients of the civex CA, such as
//! the gateway, get in), with gRPC health. It is the peer the remote adapter
//! is tested against, and an example for a department integrating with civex.

use std::{collections::HashMap, future::Future, io::BufRead, path::Path};

use civex_adapters::{Department, Record, catalogue, registry::facts_from_record};
use civex_proto::v1::{
    FetchRequest, FetchResponse,
    department_source_service_server::{DepartmentSourceService, DepartmentSourceServiceServer},
};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{
    Request, Response, Status,
    transport::{Certificate, Identity, Server, ServerTlsConfig},
};

use civex_adapters::{
    CitizenId,
    import::{self, ImportError},
};

use crate::client::ClientTls;

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

/// Serves a department source on `listener` over mTLS until `shutdown`
/// resolves. `tls` is the source's own certificate and key and the CA its
/// clients must chain to.
pub async fn serve<S: DepartmentSourceService>(
    source: S,
    tls: &ClientTls,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<DepartmentSourceServiceServer<S>>().await;
    let config = ServerTlsConfig::new()
        .identity(Identity::from_pem(&tls.cert_pem, &tls.key_pem))
        .client_ca_root(Certificate::from_pem(&tls.ca_pem));
    Server::builder()
        .tls_config(config)?
        .add_service(health_service)
        .add_service(DepartmentSourceServiceServer::new(source).max_decoding_message_size(64 * 1024))
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
        .await
}
