//! `ExchangeService`: verified facts for department systems (role `requester`).

use std::sync::Arc;

use civex_adapters::{CitizenId, catalogue};
use civex_proto::v1::{
    AttributeInfo, Catalogue, CertificateInfo, CertificateStatus, CheckRequest, CheckResponse, ListAttributesRequest,
    PredicateInfo, PurposeInfo, QueryRequest, QueryResponse, exchange_service_server::ExchangeService,
};
use tonic::{Request, Response, Status};

use super::{Draft, State, uncancelled};
use crate::{
    consent::Use,
    error::{Error, Reason},
    policy::{
        access::{self, Role},
        certificates,
        labels::{self, check_label},
        predicates,
        purposes::{self, PURPOSES},
    },
};

/// Most people a predicate's parameters may name, and so related consents a Check may carry.
const MAX_RELATED: usize = 8;

#[derive(Clone)]
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
        let asked = Use {
            caller: &caller.code,
            citizen: &citizen,
            scopes: &scopes,
            purpose: purpose.code,
            now: state.clock.now(),
        };
        state.consent_allows(&req.consent_id, asked).await?;
        let facts = state.departments.fetch(citizen.as_str(), &attributes).await?;
        state.take_use(&req.consent_id, asked, draft).await?;
        Ok(QueryResponse {
            facts,
            audit_index: 0,
            request_id: req.request_id,
        })
    }

    async fn check(&self, request: Request<CheckRequest>, draft: &mut Draft) -> Result<CheckResponse, Error> {
        let state = &self.state;
        {
            let req = request.get_ref();
            draft.labels(&req.operator, &req.request_id);
            // Only the predicate's name is logged: its parameters may hold a
            // relative's ID number, which enters the log only as a pseudonym.
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
        let today = predicates::day_in_china(now);
        // Parameters first: a call that cannot be answered uses no consent.
        let params = predicates::check(
            predicate,
            &citizen,
            &req.params.into_iter().collect(),
            &state.thresholds,
            today,
        )?;
        let named = params.named();
        draft.related(state, &named);
        let scope = [predicate.name];
        let asked = |whom| Use {
            caller: &caller.code,
            citizen: whom,
            scopes: &scope,
            purpose: purpose.code,
            now,
        };
        state.consent_allows(&req.consent_id, asked(&citizen)).await?;
        let related = self.related_consents(&named, &req.related_consent_ids, asked).await?;
        let outcome = predicates::evaluate_checked(params, &state.departments, &state.thresholds).await?;
        state.take_use(&req.consent_id, asked(&citizen), draft).await?;
        for (person, consent_id) in named.iter().zip(&related) {
            state.take_use(consent_id, asked(person), draft).await?;
        }
        draft.related(state, &outcome.related);
        Ok(CheckResponse {
            satisfied: outcome.satisfied,
            reasons: outcome.reasons,
            basis: outcome.basis,
            sources: outcome.sources,
            audit_index: 0,
            request_id: req.request_id,
        })
    }

    /// The consent of each person in `named`, among `given`, that covers
    /// `asked(person)`: `RELATED_CONSENT_REQUIRED` for anyone without one.
    /// Returns them in the order of `named`.
    async fn related_consents<'a>(
        &self,
        named: &'a [CitizenId],
        given: &[String],
        asked: impl Fn(&'a CitizenId) -> Use<'a>,
    ) -> Result<Vec<String>, Error> {
        if given.len() > MAX_RELATED {
            return Err(Error::new(
                Reason::InvalidRequest,
                format!("at most {MAX_RELATED} related_consent_ids"),
            ));
        }
        if let Some(bad) = given.iter().find(|id| !labels::is_consent_id(id)) {
            let shown = labels::logged_label(bad);
            return Err(Error::new(
                Reason::InvalidRequest,
                format!("related consent id {shown:?} is not 32 lower-case hex characters"),
            ));
        }
        let mut found = Vec::with_capacity(named.len());
        for person in named {
            let mut covering = None;
            for id in given {
                if self.state.consent_allows(id, asked(person)).await.is_ok() {
                    covering = Some(id.clone());
                    break;
                }
            }
            found.push(covering.ok_or_else(|| {
                Error::new(
                    Reason::RelatedConsentRequired,
                    "a person named in the parameters has not consented to this check for this purpose \
                     (related_consent_ids)",
                )
            })?);
        }
        if found.len() < given.len() {
            return Err(Error::new(
                Reason::InvalidRequest,
                "related_consent_ids names consents of no one in the parameters",
            ));
        }
        Ok(found)
    }
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
                disclosure_delay_days: p.disclosure_delay_days,
            })
            .collect(),
        certificates: certificates::CERTIFICATES
            .iter()
            .map(|c| CertificateInfo {
                name_zh: c.name_zh.into(),
                name_en: c.name_en.into(),
                holder: c.holder.into(),
                status: match c.status {
                    certificates::Status::Abolished => CertificateStatus::CertAbolished,
                    certificates::Status::ReplacedBySharing => CertificateStatus::CertReplacedBySharing,
                    certificates::Status::Commitment => CertificateStatus::CertCommitment,
                    certificates::Status::StillIssued => CertificateStatus::CertStillIssued,
                }
                .into(),
                answered_by: c.answered_by.iter().map(|s| (*s).into()).collect(),
                basis: c.basis.into(),
                note: c.note.into(),
            })
            .collect(),
    }
}

#[tonic::async_trait]
impl ExchangeService for Exchange {
    async fn query(&self, request: Request<QueryRequest>) -> Result<Response<QueryResponse>, Status> {
        let this = self.clone();
        uncancelled(async move {
            let (mut response, appended) = this
                .state
                .call(request, "ExchangeService/Query", async |request, draft| {
                    Exchange::query(&this, request, draft).await
                })
                .await?;
            response.audit_index = appended.index;
            Ok(Response::new(response))
        })
        .await
    }

    async fn check(&self, request: Request<CheckRequest>) -> Result<Response<CheckResponse>, Status> {
        let this = self.clone();
        uncancelled(async move {
            let (mut response, appended) = this
                .state
                .call(request, "ExchangeService/Check", async |request, draft| {
                    Exchange::check(&this, request, draft).await
                })
                .await?;
            response.audit_index = appended.index;
            Ok(Response::new(response))
        })
        .await
    }

    async fn list_attributes(&self, request: Request<ListAttributesRequest>) -> Result<Response<Catalogue>, Status> {
        let (catalogue, _) = self
            .state
            .call(request, "ExchangeService/ListAttributes", async |request, _| {
                // Every role reads the catalogue: a counter shows citizens what
                // may be shared, an auditor what a record's scopes mean.
                self.state.caller(&request, &Role::ALL).map(|_| catalogue_message())
            })
            .await?;
        Ok(Response::new(catalogue))
    }
}
