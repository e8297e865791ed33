//! `CommitmentService`: notification and commitment (告知承诺制, DESIGN §15),
//! for requesters. What happens after `Record` is [`crate::commitments`].

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, SystemTime},
};

use civex_adapters::CitizenId;
use civex_proto::v1::{
    Commitment, CommitmentState, GetCommitmentRequest, ListCommitmentsRequest, ListCommitmentsResponse,
    RecordCommitmentRequest, commitment_service_server::CommitmentService,
};
use tonic::{Request, Response, Status};

use super::{Draft, State, uncancelled};
use crate::{
    clock::{system_time, timestamp},
    commitments::{self, RECORD},
    consent::Use,
    error::{Error, Reason},
    policy::{
        access::Role,
        labels::{self, check_label},
        predicates, purposes,
    },
    store::{CommitmentFilter, StoredCommitment},
};

/// The latest `verify_after` a commitment may name: five years on.
const MAX_WAIT: Duration = Duration::from_secs(5 * 366 * 24 * 3600);
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;

#[derive(Clone)]
pub struct Commitments {
    state: Arc<State>,
}

impl Commitments {
    pub fn new(state: Arc<State>) -> Commitments {
        Commitments { state }
    }

    /// Checks a commitment as `Check` checks a call (rights, parameters, the
    /// consent), signs its receipt, records the call and then stores it. The
    /// consent is not used now: only the later check reads anything.
    async fn record(&self, request: Request<RecordCommitmentRequest>, draft: &mut Draft) -> Result<Commitment, Error> {
        let state = &self.state;
        {
            let req = request.get_ref();
            draft.labels(&req.operator, &req.request_id);
            draft.scopes(std::slice::from_ref(&req.predicate));
            draft.purpose(&req.purpose);
            draft.consent(&req.consent_id);
        }
        let caller = state.caller(&request, &[Role::Requester])?;
        let req = request.into_inner();
        let citizen = CitizenId::parse(&req.citizen_id)?;
        draft.citizen(state, &citizen);
        check_label("request_id", &req.request_id)?;
        check_label("operator", &req.operator)?;
        let predicate = predicates::predicate(&req.predicate)?;
        let purpose = purposes::purpose(&req.purpose)?;
        caller.check_rights([predicate.name], purpose.code)?;
        if !state.matters.contains_key(&req.matter) {
            let known: Vec<&str> = state.matters.keys().map(String::as_str).collect();
            return Err(Error::new(
                Reason::InvalidRequest,
                format!(
                    "matter {:?} is not one this gateway samples ([commitments.\"<matter>\"]); it knows {}",
                    labels::logged_label(&req.matter),
                    known.join(", ")
                ),
            ));
        }
        draft.note(&req.matter);
        if !predicate.purposes.is_empty() {
            // The criminal-record check: asked where a law requires it, never
            // committed to, for a conviction is no false statement.
            return Err(Error::new(
                Reason::InvalidRequest,
                format!(
                    "{} is asked only for {}, never committed to",
                    predicate.name,
                    predicate.purposes.join(", ")
                ),
            ));
        }
        let now = state.clock.now();
        let params: std::collections::HashMap<String, String> = req.params.into_iter().collect();
        let call = predicates::check(
            predicate,
            &citizen,
            &params,
            &state.thresholds,
            predicates::day_in_china(now),
        )?;
        if !call.named().is_empty() {
            return Err(Error::new(
                Reason::InvalidRequest,
                format!(
                    "{} names another person, whose consent cannot be held for a later check: \
                     ask it with ExchangeService.Check",
                    predicate.name
                ),
            ));
        }
        if req.statement.is_empty() {
            return Err(Error::new(
                Reason::InvalidRequest,
                "statement is required: the citizen's signed statement, of which the gateway keeps the SHA-256",
            ));
        }
        let verify_after = req
            .verify_after
            .as_ref()
            .and_then(system_time)
            .filter(|t| *t > now && *t <= now + MAX_WAIT)
            .ok_or_else(|| {
                Error::new(
                    Reason::InvalidRequest,
                    "verify_after must be a time after now and within five years",
                )
            })?;
        let scope = [predicate.name];
        state
            .consent_allows(
                &req.consent_id,
                Use {
                    caller: &caller.code,
                    citizen: &citizen,
                    scopes: &scope,
                    purpose: purpose.code,
                    now,
                },
            )
            .await?;
        // A consent that ends before the check could only make it unverifiable.
        let consent = state.consents.get(&req.consent_id).await?;
        if consent
            .not_after
            .as_ref()
            .and_then(system_time)
            .is_none_or(|end| end <= verify_after)
        {
            return Err(Error::new(
                Reason::InvalidRequest,
                "the consent ends before verify_after: the check needs a consent that outlasts it",
            ));
        }
        let mut commitment = Commitment {
            commitment_id: labels::new_id(now),
            statement_sha256: commitments::statement_sha256(&req.statement),
            matter: req.matter,
            recorded_at: Some(timestamp(now)),
            verify_after: Some(timestamp(verify_after)),
            state: CommitmentState::CommitmentPending as i32,
            predicate: predicate.name.to_owned(),
            purpose: purpose.code.to_owned(),
            request_id: req.request_id,
            ..Default::default()
        };
        commitments::sign(&mut commitment, &caller.code, &state.signer);
        draft.subject_label(&commitment.commitment_id);
        let appended = state.record(draft).await?;
        commitment.audit_index = appended.index;
        let stored = StoredCommitment {
            commitment: commitment.clone(),
            agency: caller.code.clone(),
            citizen_id: citizen.as_str().to_owned(),
            citizen_ref: state.pseudonyms.citizen_ref(citizen.as_str()),
            params: params.into_iter().collect::<BTreeMap<_, _>>(),
            consent_id: req.consent_id,
            operator: req.operator,
        };
        state.commitments.insert(&stored).await?;
        Ok(commitment)
    }

    /// The caller's own commitment `id`; another agency's is not found, as one that does not exist.
    async fn get(&self, request: Request<GetCommitmentRequest>, draft: &mut Draft) -> Result<Commitment, Error> {
        let id = request.get_ref().commitment_id.clone();
        draft.subject_label(&labels::logged_consent_id(&id));
        let caller = self.state.caller(&request, &[Role::Requester])?;
        match self.state.commitments.get(&id).await? {
            Some(c) if c.agency == caller.code => Ok(c.commitment),
            _ => Err(Error::new(
                Reason::CommitmentNotFound,
                format!("no commitment {} of agency {}", labels::logged_label(&id), caller.code),
            )),
        }
    }

    async fn list(
        &self,
        request: Request<ListCommitmentsRequest>,
        _draft: &mut Draft,
    ) -> Result<ListCommitmentsResponse, Error> {
        let caller = self.state.caller(&request, &[Role::Requester])?;
        let req = request.into_inner();
        let state = match CommitmentState::try_from(req.state) {
            Ok(CommitmentState::Unspecified) => None,
            Ok(s) => Some(s),
            Err(_) => return Err(Error::new(Reason::InvalidRequest, "unknown commitment state")),
        };
        let since = match &req.since {
            None => SystemTime::UNIX_EPOCH,
            Some(t) => system_time(t).ok_or_else(|| Error::new(Reason::InvalidRequest, "since is not a valid time"))?,
        };
        let token = req.page_token;
        if !(token.is_empty() || labels::is_hex_id(&token)) {
            return Err(Error::new(
                Reason::InvalidRequest,
                "page_token is not one this gateway gave",
            ));
        }
        let size = match req.page_size as usize {
            0 => DEFAULT_PAGE,
            n => n.min(MAX_PAGE),
        };
        let found = self
            .state
            .commitments
            .list(&caller.code, CommitmentFilter { state, since }, &token, size)
            .await?;
        let next_page_token = if found.len() == size {
            found.last().map(|c| c.id().to_owned()).unwrap_or_default()
        } else {
            String::new()
        };
        Ok(ListCommitmentsResponse {
            commitments: found.into_iter().map(|c| c.commitment).collect(),
            next_page_token,
        })
    }
}

#[tonic::async_trait]
impl CommitmentService for Commitments {
    async fn record(&self, request: Request<RecordCommitmentRequest>) -> Result<Response<Commitment>, Status> {
        let this = self.clone();
        uncancelled(async move {
            this.state
                .answer(request, RECORD, async |request, draft| {
                    Commitments::record(&this, request, draft).await
                })
                .await
        })
        .await
    }

    async fn list_commitments(
        &self,
        request: Request<ListCommitmentsRequest>,
    ) -> Result<Response<ListCommitmentsResponse>, Status> {
        self.state
            .answer(request, "CommitmentService/ListCommitments", async |request, draft| {
                Commitments::list(self, request, draft).await
            })
            .await
    }

    async fn get_commitment(&self, request: Request<GetCommitmentRequest>) -> Result<Response<Commitment>, Status> {
        self.state
            .answer(request, "CommitmentService/GetCommitment", async |request, draft| {
                Commitments::get(self, request, draft).await
            })
            .await
    }
}
