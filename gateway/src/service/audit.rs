//! `AuditService`: search and verify the log (role `auditor`; the citizen-facing
//! `AccessHistory` also for `consent_registrar`). Auditors' calls are audited too.

use std::{
    sync::Arc,
    time::{Duration, UNIX_EPOCH},
};

use civex_proto::v1::{
    AccessHistoryRequest, AuditEntry, AuditSearchRequest, AuditSearchResponse, CheckpointRequest,
    ConsistencyProofRequest, Decision, GetEntryRequest, InclusionProofRequest, ListCheckpointsRequest,
    ListCheckpointsResponse, Proof, ReportRequest, ReportResponse, ReportRow, SignedCheckpoint,
    audit_service_server::AuditService,
};
use tonic::{Request, Response, Status};

use super::{Draft, State};
use civex_adapters::CitizenId;
use civex_audit::{
    checkpoint::Checkpoint,
    search::{self, Filter, TallyOptions},
};

use crate::{
    clock::{system_time, timestamp},
    error::{Error, Reason},
    policy::{access::Role, labels::check_label, purposes::PURPOSES},
};

/// What `AccessHistory` shows a citizen: who read their data (the gateway's
/// own check of a commitment too), every commitment recorded on their
/// statement, their objections, how each was resolved and who was sent the
/// correction, and every reading or change of their consents and of this
/// history at a counter.
const HISTORY: &[&str] = &[
    "ExchangeService/Query",
    "ExchangeService/Check",
    crate::commitments::RECORD,
    crate::commitments::VERIFY,
    super::correction::OBJECT,
    super::correction::RESOLVE,
    super::correction::NOTIFY,
    "ConsentService/Grant",
    civex_audit::WITHDRAWAL_ACTION,
    "ConsentService/Get",
    "ConsentService/List",
    "AuditService/AccessHistory",
];
const DEFAULT_PAGE: usize = 100;
/// Largest page of checkpoints.
const MAX_CHECKPOINTS: usize = 1000;

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

/// An optional time of a request, checked.
pub(crate) fn time(t: Option<prost_types::Timestamp>, field: &str) -> Result<Option<std::time::SystemTime>, Error> {
    match t {
        None => Ok(None),
        Some(t) => system_time(&t)
            .map(Some)
            .ok_or_else(|| Error::new(Reason::InvalidRequest, format!("{field} is not a valid time"))),
    }
}

/// A `since`–`until` window; one that ends before it starts is refused, not answered empty.
type Window = (Option<std::time::SystemTime>, Option<std::time::SystemTime>);

fn window(since: Option<prost_types::Timestamp>, until: Option<prost_types::Timestamp>) -> Result<Window, Error> {
    let (since, until) = (time(since, "since")?, time(until, "until")?);
    if let (Some(since), Some(until)) = (since, until)
        && until < since
    {
        return Err(Error::new(Reason::InvalidRequest, "until is before since"));
    }
    Ok((since, until))
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

    fn search(&self, request: Request<AuditSearchRequest>, draft: &mut Draft) -> Result<AuditSearchResponse, Error> {
        self.state.caller(&request, &[Role::Auditor])?;
        let req = request.into_inner();
        let mut filter = Filter::default();
        if !req.citizen_id.is_empty() {
            let citizen = CitizenId::parse(&req.citizen_id)?;
            draft.citizen(&self.state, &citizen);
            filter.citizen_ref = Some(self.state.pseudonyms.citizen_ref(citizen.as_str()));
        }
        if !req.citizen_ref.is_empty() {
            if req.citizen_ref.len() != 64 || !req.citizen_ref.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(Error::new(
                    Reason::InvalidRequest,
                    "citizen_ref is a pseudonym: 64 hex characters",
                ));
            }
            if filter.citizen_ref.is_some() {
                return Err(Error::new(
                    Reason::InvalidRequest,
                    "give citizen_id or citizen_ref, not both",
                ));
            }
            filter.citizen_ref = Some(req.citizen_ref.to_ascii_lowercase());
        }
        for (field, value) in [
            ("agency", &req.agency),
            ("action", &req.action),
            ("operator", &req.operator),
            ("request_id", &req.request_id),
            ("consent_id", &req.consent_id),
        ]
        .into_iter()
        .chain(req.actions.iter().map(|a| ("actions", a)))
        {
            check_label(field, value)?;
        }
        let set = |v: String| Some(v).filter(|v| !v.is_empty());
        filter.agency = set(req.agency);
        filter.operator = set(req.operator);
        filter.request_id = set(req.request_id);
        filter.consent_id = set(req.consent_id);
        filter.actions = set(req.action)
            .into_iter()
            .chain(req.actions)
            .filter(|a| !a.is_empty())
            .collect();
        filter.decision = match Decision::try_from(req.decision) {
            Ok(Decision::Unspecified) => None,
            Ok(d) => Some(d),
            Err(_) => return Err(Error::new(Reason::InvalidRequest, "unknown decision")),
        };
        (filter.since, filter.until) = window(req.since, req.until)?;
        let found = self.respond(&filter, req.page_size, &req.page_token)?;
        // A pseudonym given is recorded only once the log shows it is one:
        // 64 hex characters could also spell out an ID number.
        if !req.citizen_ref.is_empty()
            && let Some(e) = found
                .entries
                .iter()
                .find(|e| Some(&e.citizen_ref) == filter.citizen_ref.as_ref())
        {
            draft.citizen_ref(&e.citizen_ref);
        }
        Ok(found)
    }

    fn history(&self, request: Request<AccessHistoryRequest>, draft: &mut Draft) -> Result<AuditSearchResponse, Error> {
        self.state.caller(&request, &[Role::Auditor, Role::ConsentRegistrar])?;
        let req = request.into_inner();
        let citizen = CitizenId::parse(&req.citizen_id)?;
        draft.citizen(&self.state, &citizen);
        // A use whose disclosure is delayed shows once its delay has passed.
        let now = self.state.clock.now();
        let withheld = PURPOSES
            .iter()
            .filter(|p| p.disclosure_delay_days > 0)
            .map(|p| {
                let delay = Duration::from_secs(u64::from(p.disclosure_delay_days) * 86_400);
                (p.code.to_owned(), now.checked_sub(delay).unwrap_or(UNIX_EPOCH))
            })
            .collect();
        let filter = Filter {
            citizen_ref: Some(self.state.pseudonyms.citizen_ref(citizen.as_str())),
            actions: HISTORY.iter().map(|a| (*a).to_owned()).collect(),
            decision: Some(Decision::Allow),
            withheld,
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
    async fn search(&self, request: Request<AuditSearchRequest>) -> Result<Response<AuditSearchResponse>, Status> {
        self.state
            .answer(request, "AuditService/Search", async |request, draft| {
                Audit::search(self, request, draft)
            })
            .await
    }

    async fn access_history(
        &self,
        request: Request<AccessHistoryRequest>,
    ) -> Result<Response<AuditSearchResponse>, Status> {
        self.state
            .answer(request, "AuditService/AccessHistory", async |request, draft| {
                self.history(request, draft)
            })
            .await
    }

    async fn checkpoint(&self, request: Request<CheckpointRequest>) -> Result<Response<SignedCheckpoint>, Status> {
        let (_, appended) = self
            .state
            .call(request, "AuditService/Checkpoint", async |request, draft| {
                draft.with_checkpoint();
                self.state.caller(&request, &[Role::Auditor]).map(drop)
            })
            .await?;
        let cp = appended
            .checkpoint
            .ok_or_else(|| Error::internal("the writer signed no checkpoint for a checkpoint call"))?;
        let cp = match &self.state.witnesses {
            Some(witnesses) => witnesses.cosign(&self.state, cp).await?,
            None => cp,
        };
        Ok(Response::new(signed(cp)))
    }

    async fn get_entry(&self, request: Request<GetEntryRequest>) -> Result<Response<AuditEntry>, Status> {
        self.state
            .answer(request, "AuditService/GetEntry", async |request, _| self.entry(request))
            .await
    }

    async fn inclusion_proof(&self, request: Request<InclusionProofRequest>) -> Result<Response<Proof>, Status> {
        let handle = async |request: Request<InclusionProofRequest>, _: &mut Draft| {
            self.state.caller(&request, &[Role::Auditor])?;
            let r = request.get_ref();
            Ok(self.proof(self.state.audit.inclusion_proof(r.index, r.tree_size)?))
        };
        self.state.answer(request, "AuditService/InclusionProof", handle).await
    }

    async fn consistency_proof(&self, request: Request<ConsistencyProofRequest>) -> Result<Response<Proof>, Status> {
        let handle = async |request: Request<ConsistencyProofRequest>, _: &mut Draft| {
            self.state.caller(&request, &[Role::Auditor])?;
            let r = request.get_ref();
            Ok(self.proof(self.state.audit.consistency_proof(r.first, r.second)?))
        };
        self.state
            .answer(request, "AuditService/ConsistencyProof", handle)
            .await
    }

    async fn report(&self, request: Request<ReportRequest>) -> Result<Response<ReportResponse>, Status> {
        let handle = async |request: Request<ReportRequest>, _: &mut Draft| {
            self.state.caller(&request, &[Role::Auditor])?;
            let req = request.into_inner();
            let (since, until) = window(req.since, req.until)?;
            let options = TallyOptions {
                since,
                until,
                allowed: req.allowed,
                per_operator: req.per_operator,
                bucket: (req.bucket_seconds > 0).then(|| Duration::from_secs(req.bucket_seconds.into())),
            };
            if options.since.is_none()
                && options.until.is_none()
                && !options.allowed
                && !options.per_operator
                && options.bucket.is_none()
            {
                // Refusals over the whole log: the index's running totals.
                let rows = self.state.audit.report()?;
                return Ok(ReportResponse {
                    rows: rows
                        .into_iter()
                        .map(|r| ReportRow {
                            agency: r.agency,
                            reason: r.reason,
                            count: r.count,
                            decision: Decision::Deny as i32,
                            ..ReportRow::default()
                        })
                        .collect(),
                });
            }
            let rows = self.state.audit.tally(options)?;
            Ok(ReportResponse {
                rows: rows
                    .into_iter()
                    .map(|r| ReportRow {
                        agency: r.agency,
                        reason: r.reason,
                        count: r.count,
                        operator: r.operator,
                        decision: r.decision,
                        action: r.action,
                        bucket_start: r.bucket_start.map(timestamp),
                    })
                    .collect(),
            })
        };
        self.state.answer(request, "AuditService/Report", handle).await
    }

    async fn list_checkpoints(
        &self,
        request: Request<ListCheckpointsRequest>,
    ) -> Result<Response<ListCheckpointsResponse>, Status> {
        let handle = async |request: Request<ListCheckpointsRequest>, _: &mut Draft| {
            self.state.caller(&request, &[Role::Auditor])?;
            let req = request.into_inner();
            let (page, more) = self.state.audit.checkpoints(
                page_token(&req.page_token)?,
                page_size(req.page_size).min(MAX_CHECKPOINTS),
            )?;
            Ok(ListCheckpointsResponse {
                next_page_token: page
                    .last()
                    .filter(|_| more)
                    .map(|cp| cp.size.to_string())
                    .unwrap_or_default(),
                checkpoints: page.into_iter().map(signed).collect(),
            })
        };
        self.state.answer(request, "AuditService/ListCheckpoints", handle).await
    }
}

/// A checkpoint as the wire carries it.
fn signed(cp: Checkpoint) -> SignedCheckpoint {
    SignedCheckpoint {
        tree_size: cp.size,
        root_hash: cp.root.to_vec(),
        note: cp.note,
    }
}
