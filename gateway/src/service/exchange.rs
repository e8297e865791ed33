//! `ExchangeService`: verified facts for department systems (role `requester`).

use std::sync::Arc;

use civex_adapters::{CitizenId, catalogue};
use civex_proto::v1::{
    AttributeInfo, Catalogue, CheckRequest, CheckResponse, ListAttributesRequest, PredicateInfo, PurposeInfo,
    QueryRequest, QueryResponse, exchange_service_server::ExchangeService,
};
use tonic::{Request, Response, Status};

use super::{Draft, State};
use crate::{
    consent::Use,
    error::{Error, Reason},
    policy::{
        access::{self, Role},
        predicates,
        purposes::{self, PURPOSES},
    },
};

/// Longest caller label (`request_id`, `operator`, `reason`), in bytes.
const MAX_LABEL: usize = 128;

pub struct Exchange {
    state: Arc<State>,
}

impl Exchange {
    pub fn new(state: Arc<State>) -> Exchange {
        Exchange { state }
    }

    async fn query(&self, request: Request<QueryRequest>, draft: &mut Draft) -> Result<QueryResponse, Error> {
        let state = &self.state;
        {
            let req = request.get_ref();
            draft.labels(&req.operator, &req.request_id);
            draft.scopes(&req.attributes);
            draft.purpose(&req.purpose);
            draft.consent(&req.consent_id);
        }
        let caller = state.caller(&request, &[Role::Requester])?;
        let req = request.into_inner();
        let citizen = CitizenId::parse(&req.citizen_id)?;
        draft.citizen(state, &citizen);
        let attributes = access::attributes(&req.attributes, state.limits.max_attributes)?;
        let purpose = purposes::purpose(&req.purpose)?;
        check_label("request_id", &req.request_id)?;
        check_label("operator", &req.operator)?;
        let scopes: Vec<&str> = attributes.iter().map(|a| a.name).collect();
        caller.check_rights(scopes.iter().copied(), purpose.code)?;
        state
            .consents
            .use_for(
                &req.consent_id,
                Use {
                    caller: &caller.code,
                    citizen: &citizen,
                    scopes: &scopes,
                    purpose: purpose.code,
                    now: state.clock.now(),
                },
            )
            .await?;
        draft.uses_consent(&req.consent_id);
        let facts = state.departments.fetch(citizen.as_str(), &attributes).await?;
        Ok(QueryResponse {
            facts,
            audit_index: 0,
            request_id: req.request_id,
        })
    }
}

impl Exchange {
    async fn check(&self, request: Request<CheckRequest>, draft: &mut Draft) -> Result<CheckResponse, Error> {
        let state = &self.state;
        {
            let req = request.get_ref();
            draft.labels(&req.operator, &req.request_id);
            // Only the predicate's name is logged: its parameters may hold a
            // relative's ID number, which must never enter the log.
            draft.scopes(std::slice::from_ref(&req.predicate));
            draft.purpose(&req.purpose);
            draft.consent(&req.consent_id);
        }
        let caller = state.caller(&request, &[Role::Requester])?;
        let req = request.into_inner();
        let citizen = CitizenId::parse(&req.citizen_id)?;
        draft.citizen(state, &citizen);
        let predicate = predicates::predicate(&req.predicate)?;
        let purpose = purposes::purpose(&req.purpose)?;
        check_label("request_id", &req.request_id)?;
        check_label("operator", &req.operator)?;
        caller.check_rights([predicate.name], purpose.code)?;
        let now = state.clock.now();
        state
            .consents
            .use_for(
                &req.consent_id,
                Use {
                    caller: &caller.code,
                    citizen: &citizen,
                    scopes: &[predicate.name],
                    purpose: purpose.code,
                    now,
                },
            )
            .await?;
        draft.uses_consent(&req.consent_id);
        let today = (time::OffsetDateTime::from(now) + time::Duration::hours(8)).date();
        let outcome = predicates::evaluate(
            predicate,
            &citizen,
            &req.params.into_iter().collect(),
            &state.departments,
            &state.thresholds,
            today,
        )
        .await?;
        Ok(CheckResponse {
            satisfied: outcome.satisfied,
            reasons: outcome.reasons,
            basis: outcome.basis,
            sources: outcome.sources,
            audit_index: 0,
        })
    }
}

/// Refuses over-long or non-printable caller labels with `INVALID_REQUEST`.
pub(crate) fn check_label(field: &str, value: &str) -> Result<(), Error> {
    if value.len() > MAX_LABEL || value.chars().any(char::is_control) {
        return Err(Error::new(
            Reason::InvalidRequest,
            format!("{field} must be at most {MAX_LABEL} bytes of printable text"),
        ));
    }
    Ok(())
}

/// The catalogue as served by `ListAttributes`.
pub fn catalogue_message() -> Catalogue {
    Catalogue {
        attributes: catalogue::ATTRIBUTES
            .iter()
            .map(|a| AttributeInfo {
                name: a.name.into(),
                department: a.department.code().into(),
                value_type: a.value_type.name().into(),
                description: a.description.into(),
                sharing: a.sharing.name().into(),
                sensitive: a.sensitive,
                abolished: a.abolished,
            })
            .collect(),
        predicates: predicates::PREDICATES
            .iter()
            .map(|p| PredicateInfo {
                name: p.name.into(),
                description: p.description.into(),
                params: p.params.iter().map(|s| (*s).into()).collect(),
                basis: p.basis.into(),
                sources: p.sources.iter().map(|d| d.code().into()).collect(),
            })
            .collect(),
        purposes: PURPOSES
            .iter()
            .map(|p| PurposeInfo {
                code: p.code.into(),
                description: p.description.into(),
                basis: p.basis.into(),
            })
            .collect(),
    }
}

#[tonic::async_trait]
impl ExchangeService for Exchange {
    async fn query(&self, request: Request<QueryRequest>) -> Result<Response<QueryResponse>, Status> {
        let (mut response, appended) = self
            .state
            .call(request, "ExchangeService/Query", async |request, draft| {
                Exchange::query(self, request, draft).await
            })
            .await?;
        response.audit_index = appended.index;
        Ok(Response::new(response))
    }

    async fn check(&self, request: Request<CheckRequest>) -> Result<Response<CheckResponse>, Status> {
        let (mut response, appended) = self
            .state
            .call(request, "ExchangeService/Check", async |request, draft| {
                Exchange::check(self, request, draft).await
            })
            .await?;
        response.audit_index = appended.index;
        Ok(Response::new(response))
    }

    async fn list_attributes(&self, request: Request<ListAttributesRequest>) -> Result<Response<Catalogue>, Status> {
        let (catalogue, _) = self
            .state
            .call(request, "ExchangeService/ListAttributes", async |request, _| {
                self.state
                    .caller(&request, &[Role::Requester])
                    .map(|_| catalogue_message())
            })
            .await?;
        Ok(Response::new(catalogue))
    }
}
