//! `AuditService`: search and verify the log (role `auditor`; the citizen-facing
//! `AccessHistory` also for `consent_registrar`). Auditors' calls are audited too.

use std::sync::Arc;

use civex_proto::v1::{
    AccessHistoryRequest, AuditEntry, AuditSearchRequest, AuditSearchResponse, CheckpointRequest,
    ConsistencyProofRequest, Decision, GetEntryRequest, InclusionProofRequest, Proof, ReportRequest, ReportResponse,
    ReportRow, SignedCheckpoint, audit_service_server::AuditService,
};
use tonic::{Request, Response, Status};

use super::{Call, State, exchange::check_label};
use crate::{
    access::Role,
    audit::search::{self, Filter},
    citizen_id::CitizenId,
    clock::system_time,
    error::{Error, Reason},
};

/// Actions that read a citizen's data: what `AccessHistory` shows.
const DATA_ACCESS: &[&str] = &["ExchangeService/Query", "ExchangeService/Check"];
const DEFAULT_PAGE: usize = 100;

pub struct Audit {
    state: Arc<State>,
}

fn page_token(token: &str) -> Result<Option<u64>, Error> {
    if token.is_empty() {
        return Ok(None);
    }
    token
        .parse()
        .map(Some)
        .map_err(|_| Error::new(Reason::InvalidRequest, "malformed page_token"))
}

fn page_size(size: u32) -> usize {
    if size == 0 { DEFAULT_PAGE } else { size as usize }
}

impl Audit {
    pub fn new(state: Arc<State>) -> Audit {
        Audit { state }
    }

    fn respond(&self, filter: &Filter, size: u32, token: &str) -> Result<AuditSearchResponse, Error> {
        let page = self.state.audit.search(filter, page_size(size), page_token(token)?)?;
        Ok(AuditSearchResponse {
            entries: page.entries,
            next_page_token: page.next.map(|n| n.to_string()).unwrap_or_default(),
        })
    }

    fn search(&self, request: Request<AuditSearchRequest>, call: &mut Call) -> Result<AuditSearchResponse, Error> {
        self.state.caller(&request, &[Role::Auditor])?;
        let req = request.into_inner();
        let mut filter = Filter::default();
        if !req.citizen_id.is_empty() {
            let citizen = CitizenId::parse(&req.citizen_id)?;
            call.citizen(&self.state, &citizen);
            filter.citizen_ref = Some(self.state.pseudonyms.citizen_ref(citizen.as_str()));
        }
        for (field, value) in [("agency", &req.agency), ("action", &req.action)] {
            check_label(field, value)?;
        }
        filter.agency = Some(req.agency).filter(|a| !a.is_empty());
        filter.actions = Some(req.action).filter(|a| !a.is_empty()).into_iter().collect();
        filter.decision = match Decision::try_from(req.decision) {
            Ok(Decision::Unspecified) => None,
            Ok(d) => Some(d),
            Err(_) => return Err(Error::new(Reason::InvalidRequest, "unknown decision")),
        };
        let time = |t: Option<prost_types::Timestamp>, field: &str| match t {
            None => Ok(None),
            Some(t) => system_time(&t)
                .map(Some)
                .ok_or_else(|| Error::new(Reason::InvalidRequest, format!("{field} is not a valid time"))),
        };
        filter.since = time(req.since, "since")?;
        filter.until = time(req.until, "until")?;
        self.respond(&filter, req.page_size, &req.page_token)
    }

    fn history(&self, request: Request<AccessHistoryRequest>, call: &mut Call) -> Result<AuditSearchResponse, Error> {
        self.state.caller(&request, &[Role::Auditor, Role::ConsentRegistrar])?;
        let req = request.into_inner();
        let citizen = CitizenId::parse(&req.citizen_id)?;
        call.citizen(&self.state, &citizen);
        let filter = Filter {
            citizen_ref: Some(self.state.pseudonyms.citizen_ref(citizen.as_str())),
            actions: DATA_ACCESS.iter().map(|a| (*a).to_owned()).collect(),
            decision: Some(Decision::Allow),
            ..Filter::default()
        };
        self.respond(&filter, req.page_size, &req.page_token)
    }

    fn entry(&self, request: Request<GetEntryRequest>) -> Result<AuditEntry, Error> {
        self.state.caller(&request, &[Role::Auditor])?;
        let index = request.into_inner().index;
        let leaf = self.state.audit.leaf(index)?.ok_or_else(|| {
            Error::new(
                Reason::InvalidRequest,
                format!("no entry {index}: the log has {} entries", self.state.audit.size()),
            )
        })?;
        Ok(search::entry(index, leaf)?)
    }

    fn proof(&self, hashes: Vec<[u8; 32]>) -> Proof {
        Proof {
            hashes: hashes.into_iter().map(|h| h.to_vec()).collect(),
        }
    }
}

#[tonic::async_trait]
impl AuditService for Audit {
    #[tracing::instrument(skip_all, fields(rpc = "Search"))]
    async fn search(&self, request: Request<AuditSearchRequest>) -> Result<Response<AuditSearchResponse>, Status> {
        let mut call = self.state.begin(&request, "AuditService/Search");
        let result = Audit::search(self, request, &mut call);
        Ok(Response::new(self.state.finish(call, result).await?.0))
    }

    #[tracing::instrument(skip_all, fields(rpc = "AccessHistory"))]
    async fn access_history(
        &self,
        request: Request<AccessHistoryRequest>,
    ) -> Result<Response<AuditSearchResponse>, Status> {
        let mut call = self.state.begin(&request, "AuditService/AccessHistory");
        let result = self.history(request, &mut call);
        Ok(Response::new(self.state.finish(call, result).await?.0))
    }

    #[tracing::instrument(skip_all, fields(rpc = "Checkpoint"))]
    async fn checkpoint(&self, request: Request<CheckpointRequest>) -> Result<Response<SignedCheckpoint>, Status> {
        let mut call = self.state.begin(&request, "AuditService/Checkpoint");
        call.with_checkpoint();
        let result = self.state.caller(&request, &[Role::Auditor]).map(drop);
        let (_, appended) = self.state.finish(call, result).await?;
        let cp = appended
            .checkpoint
            .ok_or_else(|| Error::internal("the writer signed no checkpoint for a checkpoint call"))?;
        Ok(Response::new(SignedCheckpoint {
            tree_size: cp.size,
            root_hash: cp.root.to_vec(),
            note: cp.note,
        }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "GetEntry"))]
    async fn get_entry(&self, request: Request<GetEntryRequest>) -> Result<Response<AuditEntry>, Status> {
        let call = self.state.begin(&request, "AuditService/GetEntry");
        let result = self.entry(request);
        Ok(Response::new(self.state.finish(call, result).await?.0))
    }

    #[tracing::instrument(skip_all, fields(rpc = "InclusionProof"))]
    async fn inclusion_proof(&self, request: Request<InclusionProofRequest>) -> Result<Response<Proof>, Status> {
        let call = self.state.begin(&request, "AuditService/InclusionProof");
        let result = self.state.caller(&request, &[Role::Auditor]).and_then(|_| {
            let r = request.get_ref();
            Ok(self.proof(self.state.audit.inclusion_proof(r.index, r.tree_size)?))
        });
        Ok(Response::new(self.state.finish(call, result).await?.0))
    }

    #[tracing::instrument(skip_all, fields(rpc = "ConsistencyProof"))]
    async fn consistency_proof(&self, request: Request<ConsistencyProofRequest>) -> Result<Response<Proof>, Status> {
        let call = self.state.begin(&request, "AuditService/ConsistencyProof");
        let result = self.state.caller(&request, &[Role::Auditor]).and_then(|_| {
            let r = request.get_ref();
            Ok(self.proof(self.state.audit.consistency_proof(r.first, r.second)?))
        });
        Ok(Response::new(self.state.finish(call, result).await?.0))
    }

    #[tracing::instrument(skip_all, fields(rpc = "Report"))]
    async fn report(&self, request: Request<ReportRequest>) -> Result<Response<ReportResponse>, Status> {
        let call = self.state.begin(&request, "AuditService/Report");
        let result = self.state.caller(&request, &[Role::Auditor]).and_then(|_| {
            let rows = self.state.audit.report()?;
            Ok(ReportResponse {
                rows: rows
                    .into_iter()
                    .map(|(agency, reason, count)| ReportRow { agency, reason, count })
                    .collect(),
            })
        });
        Ok(Response::new(self.state.finish(call, result).await?.0))
    }
}
