//! `CorrectionService`: objections and corrections (校核纠错, DESIGN §16;
//! 《政务数据共享条例》). A citizen objects to a fact at a registrar's
//! counter; the steward of the department that holds it resolves the
//! objection after checking its own records; on a correction, every agency
//! that the log shows received that fact (or a predicate's answer over it)
//! for that citizen is sent a `Correction` naming its own original call.
//! Each step is in the log: the objection, its resolution, and each
//! correction sent, as the gateway's own action toward its recipient.

use std::{sync::Arc, time::SystemTime};

use civex_adapters::{CitizenId, catalogue};
use civex_audit::search::Filter;
use civex_proto::v1::{
    AuditEntry, Correction, Decision, ListCorrectionsRequest, ListCorrectionsResponse, ListObjectionsRequest,
    ListObjectionsResponse, ObjectRequest, Objection, ObjectionState, ResolveRequest,
    correction_service_server::CorrectionService,
};
use tonic::{Request, Response, Status};

use super::{Draft, State, uncancelled};
use crate::{
    clock::{system_time, timestamp},
    commitments::GATEWAY_OPERATOR,
    error::{Error, Reason},
    policy::{
        access::Role,
        labels::{self, check_label},
        predicates,
    },
    store::{StoredCorrection, StoredObjection},
};

pub const OBJECT: &str = "CorrectionService/Object";
pub const RESOLVE: &str = "CorrectionService/Resolve";
/// A correction sent: the gateway's own action toward its recipient.
pub const NOTIFY: &str = "CorrectionService/Notify";
/// The calls whose answers carry a fact to their caller.
const RECEIVED: &[&str] = &[
    "ExchangeService/Query",
    "ExchangeService/Check",
    crate::commitments::VERIFY,
];
/// Longest statement kept, in bytes.
const MAX_STATEMENT: usize = 4096;
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;

#[derive(Clone)]
pub struct Corrections {
    state: Arc<State>,
}

fn page_size(size: u32) -> usize {
    match size as usize {
        0 => DEFAULT_PAGE,
        n => n.min(MAX_PAGE),
    }
}

fn page_token(token: &str) -> Result<&str, Error> {
    if token.is_empty() || labels::is_hex_id(token) {
        Ok(token)
    } else {
        Err(Error::new(
            Reason::InvalidRequest,
            "page_token is not one this gateway gave",
        ))
    }
}

/// The next page's token: the last id, when the page is full.
fn next<T>(found: &[T], size: usize, id: impl Fn(&T) -> &str) -> String {
    match found.last() {
        Some(last) if found.len() == size => id(last).to_owned(),
        _ => String::new(),
    }
}

/// `o` as anyone but the holding department's steward sees it.
fn without_the_citizen(mut o: Objection) -> Objection {
    o.citizen_id.clear();
    o.statement.clear();
    o
}

impl Corrections {
    pub fn new(state: Arc<State>) -> Corrections {
        Corrections { state }
    }

    async fn object(&self, request: Request<ObjectRequest>, draft: &mut Draft) -> Result<Objection, Error> {
        let state = &self.state;
        draft.labels(&request.get_ref().operator, "");
        draft.scopes(std::slice::from_ref(&request.get_ref().attribute));
        state.caller(&request, &[Role::ConsentRegistrar])?;
        let req = request.into_inner();
        let citizen = CitizenId::parse(&req.citizen_id)?;
        draft.citizen(state, &citizen);
        check_label("operator", &req.operator)?;
        let attribute = catalogue::attribute(&req.attribute)
            .or_else(|| catalogue::abolished_like(&req.attribute))
            .ok_or_else(|| {
                Error::new(
                    Reason::UnknownAttribute,
                    format!("unknown attribute {:?}", labels::logged_label(&req.attribute)),
                )
            })?;
        if attribute.abolished {
            return Err(Error::new(
                Reason::AttributeAbolished,
                format!("{} is abolished: no department holds it to correct", attribute.name),
            ));
        }
        let statement = req.statement.trim();
        if statement.is_empty() || statement.len() > MAX_STATEMENT {
            return Err(Error::new(
                Reason::InvalidRequest,
                format!("statement is required: what the citizen says is wrong, at most {MAX_STATEMENT} bytes"),
            ));
        }
        let now = state.clock.now();
        let objection = Objection {
            objection_id: labels::new_id(now),
            attribute: attribute.name.to_owned(),
            department: attribute.department.code().to_owned(),
            state: ObjectionState::ObjectionOpen as i32,
            opened_at: Some(timestamp(now)),
            citizen_id: citizen.as_str().to_owned(),
            statement: statement.to_owned(),
            ..Default::default()
        };
        draft.subject_label(&objection.objection_id);
        state.record(draft).await?;
        let stored = StoredObjection {
            objection,
            citizen_ref: state.pseudonyms.citizen_ref(citizen.as_str()),
        };
        state.corrections.open(&stored).await?;
        Ok(without_the_citizen(stored.objection))
    }

    async fn list_objections(
        &self,
        request: Request<ListObjectionsRequest>,
        _draft: &mut Draft,
    ) -> Result<ListObjectionsResponse, Error> {
        let steward = self.state.caller(&request, &[Role::DataSteward])?;
        let req = request.into_inner();
        let state = match ObjectionState::try_from(req.state) {
            Ok(ObjectionState::Unspecified) => None,
            Ok(s) => Some(s),
            Err(_) => return Err(Error::new(Reason::InvalidRequest, "unknown objection state")),
        };
        let size = page_size(req.page_size);
        let found = self
            .state
            .corrections
            .objections(&steward.department, state, page_token(&req.page_token)?, size)
            .await?;
        let next_page_token = next(&found, size, StoredObjection::id);
        Ok(ListObjectionsResponse {
            objections: found.into_iter().map(|o| o.objection).collect(),
            next_page_token,
        })
    }

    /// Resolves an objection of the steward's own department; on a
    /// correction, records and sends a `Correction` for every earlier call
    /// that received the fact, then stores the outcome with them.
    async fn resolve(&self, request: Request<ResolveRequest>, draft: &mut Draft) -> Result<Objection, Error> {
        let state = &self.state;
        draft.labels(&request.get_ref().operator, "");
        let id = request.get_ref().objection_id.clone();
        draft.subject_label(&labels::logged_consent_id(&id));
        let steward = state.caller(&request, &[Role::DataSteward])?;
        let req = request.into_inner();
        check_label("operator", &req.operator)?;
        check_label("note", &req.note)?;
        let not_found = || {
            Error::new(
                Reason::ObjectionNotFound,
                format!("no objection {}", labels::logged_label(&id)),
            )
        };
        let stored = state.corrections.objection(&id).await?.ok_or_else(not_found)?;
        draft.citizen_ref(&stored.citizen_ref);
        draft.scopes(std::slice::from_ref(&stored.objection.attribute));
        if stored.objection.department != steward.department {
            return Err(Error::new(
                Reason::NoAccessRight,
                format!(
                    "{} is held by department {}: only its steward resolves objections to it",
                    stored.objection.attribute, stored.objection.department
                ),
            ));
        }
        let outcome = match ObjectionState::try_from(req.outcome) {
            Ok(o @ (ObjectionState::ObjectionCorrected | ObjectionState::ObjectionRejected)) => o,
            _ => {
                return Err(Error::new(
                    Reason::InvalidRequest,
                    "outcome must be OBJECTION_CORRECTED or OBJECTION_REJECTED",
                ));
            }
        };
        if stored.objection.state() != ObjectionState::ObjectionOpen {
            return Err(Error::new(Reason::InvalidRequest, "the objection is resolved already"));
        }
        draft.note(outcome.as_str_name());
        let now = state.clock.now();
        let received = if outcome == ObjectionState::ObjectionCorrected {
            self.received(&stored)?
        } else {
            Vec::new()
        };
        state.record(draft).await?;
        let mut corrections = Vec::with_capacity(received.len());
        for call in &received {
            let correction = Correction {
                correction_id: labels::new_id(now),
                attribute: stored.objection.attribute.clone(),
                objection_id: id.clone(),
                original_index: call.index,
                original_request_id: call.request_id.clone(),
                corrected_at: Some(timestamp(now)),
            };
            let mut sent = Draft::own(NOTIFY, &call.agency, GATEWAY_OPERATOR);
            sent.citizen_ref(&stored.citizen_ref);
            // Under the original call's purpose, so that a notice of a call whose
            // disclosure is delayed (an investigation) is delayed with it.
            sent.purpose(&call.purpose);
            sent.scopes(std::slice::from_ref(&stored.objection.attribute));
            sent.subject_label(&correction.correction_id);
            sent.note(&id);
            state.record_own(&sent, None).await?;
            corrections.push(StoredCorrection {
                correction,
                agency: call.agency.clone(),
            });
        }
        let mut resolved = stored;
        resolved.objection.set_state(outcome);
        resolved.objection.resolved_at = Some(timestamp(now));
        resolved.objection.resolution = req.note;
        resolved.objection.notified = corrections.len() as u32;
        if !state.corrections.resolve(&resolved, &corrections).await? {
            return Err(Error::new(
                Reason::InvalidRequest,
                "the objection was resolved meanwhile",
            ));
        }
        Ok(resolved.objection)
    }

    /// Every allowed call so far whose answer carried the objection's
    /// fact about its citizen: the fact itself, or a predicate that reads it,
    /// of the applicant when the citizen was the applicant, of a person it
    /// reached when the citizen was one of those.
    fn received(&self, o: &StoredObjection) -> Result<Vec<AuditEntry>, Error> {
        let attribute = o.objection.attribute.as_str();
        let filter = Filter {
            citizen_ref: Some(o.citizen_ref.clone()),
            actions: RECEIVED.iter().map(|a| (*a).to_owned()).collect(),
            decision: Some(Decision::Allow),
            ..Filter::default()
        };
        let (mut found, mut after) = (Vec::new(), None);
        loop {
            let page = self.state.audit.search(&filter, 1000, after)?;
            let carried = |e: &AuditEntry| {
                let applicant = e.citizen_ref == o.citizen_ref;
                e.scopes.iter().any(|s| {
                    let reads = predicates::reads(s);
                    (applicant && (s == attribute || reads.applicant.contains(&attribute)))
                        || (!applicant && reads.reached.contains(&attribute))
                })
            };
            found.extend(page.entries.into_iter().filter(carried));
            match page.next {
                Some(n) => after = Some(n),
                None => return Ok(found),
            }
        }
    }

    async fn list_corrections(
        &self,
        request: Request<ListCorrectionsRequest>,
        _draft: &mut Draft,
    ) -> Result<ListCorrectionsResponse, Error> {
        let caller = self.state.caller(&request, &[Role::Requester])?;
        let req = request.into_inner();
        let since = match &req.since {
            None => SystemTime::UNIX_EPOCH,
            Some(t) => system_time(t).ok_or_else(|| Error::new(Reason::InvalidRequest, "since is not a valid time"))?,
        };
        let size = page_size(req.page_size);
        let found = self
            .state
            .corrections
            .corrections(&caller.code, since, page_token(&req.page_token)?, size)
            .await?;
        let next_page_token = next(&found, size, |c| c.correction.correction_id.as_str());
        Ok(ListCorrectionsResponse {
            corrections: found.into_iter().map(|c| c.correction).collect(),
            next_page_token,
        })
    }
}

#[tonic::async_trait]
impl CorrectionService for Corrections {
    async fn object(&self, request: Request<ObjectRequest>) -> Result<Response<Objection>, Status> {
        let this = self.clone();
        uncancelled(async move {
            this.state
                .answer(request, OBJECT, async |request, draft| {
                    Corrections::object(&this, request, draft).await
                })
                .await
        })
        .await
    }

    async fn list_objections(
        &self,
        request: Request<ListObjectionsRequest>,
    ) -> Result<Response<ListObjectionsResponse>, Status> {
        self.state
            .answer(request, "CorrectionService/ListObjections", async |request, draft| {
                Corrections::list_objections(self, request, draft).await
            })
            .await
    }

    async fn resolve(&self, request: Request<ResolveRequest>) -> Result<Response<Objection>, Status> {
        let this = self.clone();
        uncancelled(async move {
            this.state
                .answer(request, RESOLVE, async |request, draft| {
                    Corrections::resolve(&this, request, draft).await
                })
                .await
        })
        .await
    }

    async fn list_corrections(
        &self,
        request: Request<ListCorrectionsRequest>,
    ) -> Result<Response<ListCorrectionsResponse>, Status> {
        self.state
            .answer(request, "CorrectionService/ListCorrections", async |request, draft| {
                Corrections::list_corrections(self, request, draft).await
            })
            .await
    }
}
