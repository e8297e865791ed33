//! `ConsentService`: citizens grant and withdraw consent through a
//! `consent_registrar` agency (a service counter or portal).

use std::{sync::Arc, time::Duration};

use civex_proto::v1::{
    Consent, GetConsentRequest, GrantConsentRequest, ListConsentsRequest, ListConsentsResponse, RevokeConsentRequest,
    consent_service_server::ConsentService,
};
use tonic::{Request, Response, Status};

use super::{Draft, State, uncancelled};
use civex_adapters::CitizenId;

use crate::{
    clock::{system_time, timestamp},
    consent::{self, NewConsent},
    error::{Error, Reason},
    policy::{
        access::{self, Role},
        labels::{self, check_label},
        purposes::purpose,
        scope_rule,
    },
};

/// Longest validity a consent may be granted for: five years.
const MAX_VALIDITY: Duration = Duration::from_secs(5 * 366 * 24 * 3600);
/// Most scopes one consent may name.
const MAX_SCOPES: usize = 64;

#[derive(Clone)]
pub struct Consents {
    state: Arc<State>,
}

impl Consents {
    pub fn new(state: Arc<State>) -> Consents {
        Consents { state }
    }

    /// Validates a grant and makes the signed consent, which is stored (and
    /// so takes effect) only after its audit record is durable.
    async fn grant(&self, request: Request<GrantConsentRequest>, draft: &mut Draft) -> Result<Consent, Error> {
        let state = &self.state;
        draft.scopes(&request.get_ref().scopes);
        draft.purpose(&request.get_ref().purpose);
        draft.subject_agency(&request.get_ref().grantee);
        let registrar = state.caller(&request, &[Role::ConsentRegistrar])?;
        let req = request.into_inner();
        let citizen = CitizenId::parse(&req.citizen_id)?;
        draft.citizen(state, &citizen);
        // Scopes are exact attribute or predicate names: a citizen consents to
        // named facts, or to a named yes/no answer (which reveals no fact).
        let scopes = access::scopes(&req.scopes, MAX_SCOPES)?;
        let purpose = purpose(&req.purpose)?;
        for scope in &scopes {
            scope_rule(scope, purpose.code).map_err(|e| Error::new(Reason::InvalidRequest, e.message))?;
        }
        let grantee = state.directory.agency(&req.grantee).ok_or_else(|| {
            Error::new(
                Reason::InvalidRequest,
                format!(
                    "grantee {:?} is not a registered agency",
                    labels::logged_agency_code(&req.grantee)
                ),
            )
        })?;
        if grantee.code == registrar.code {
            return Err(Error::new(
                Reason::ConsentGrantee,
                "a registrar never grants a consent to itself",
            ));
        }
        let now = state.clock.now();
        let not_after = req
            .not_after
            .as_ref()
            .and_then(system_time)
            .ok_or_else(|| Error::new(Reason::InvalidRequest, "not_after is required"))?;
        if not_after <= now || not_after.duration_since(now).unwrap_or_default() > MAX_VALIDITY {
            return Err(Error::new(
                Reason::InvalidRequest,
                "not_after must be in the future and at most five years away",
            ));
        }
        let consent = consent::sign(
            NewConsent {
                citizen,
                grantee: grantee.code.clone(),
                scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
                purpose: purpose.code.to_owned(),
                not_after,
                max_uses: req.max_uses,
                registrar: registrar.code.clone(),
            },
            &state.signer,
            now,
        );
        draft.consent(&consent.consent_id);
        state.record(draft).await?;
        state.consents.insert(&consent).await?;
        Ok(consent)
    }

    /// Withdraws a consent: the log applies the withdrawal once its record
    /// is durable, in log order, so that every use recorded after it is refused.
    async fn revoke(&self, request: Request<RevokeConsentRequest>, draft: &mut Draft) -> Result<Consent, Error> {
        draft.consent(&request.get_ref().consent_id);
        draft.note(&request.get_ref().reason);
        self.state.caller(&request, &[Role::ConsentRegistrar])?;
        let req = request.into_inner();
        check_label("reason", &req.reason)?;
        let consent = self.state.consents.get(&req.consent_id).await?;
        self.cite(draft, &consent);
        draft.withdraws(&consent.consent_id);
        let appended = self.state.record(draft).await?;
        // In force from its record on (or from the first withdrawal's time):
        // answered from what was read, not from a store that may lag.
        let mut consent = consent;
        consent.revoked_at.get_or_insert_with(|| timestamp(appended.time));
        Ok(consent)
    }

    async fn get(&self, request: Request<GetConsentRequest>, draft: &mut Draft) -> Result<Consent, Error> {
        draft.consent(&request.get_ref().consent_id);
        self.state.caller(&request, &[Role::ConsentRegistrar])?;
        let consent = self.state.consents.get(&request.into_inner().consent_id).await?;
        self.cite(draft, &consent);
        Ok(consent)
    }

    async fn list(
        &self,
        request: Request<ListConsentsRequest>,
        draft: &mut Draft,
    ) -> Result<ListConsentsResponse, Error> {
        self.state.caller(&request, &[Role::ConsentRegistrar])?;
        let citizen = CitizenId::parse(&request.into_inner().citizen_id)?;
        draft.citizen(&self.state, &citizen);
        Ok(ListConsentsResponse {
            consents: self.state.consents.list(&citizen).await?,
        })
    }

    /// Records whose consent a call touched.
    fn cite(&self, draft: &mut Draft, consent: &Consent) {
        // Invariant: stored consents were validated when granted.
        if let Ok(citizen) = CitizenId::parse(&consent.citizen_id) {
            draft.citizen(&self.state, &citizen);
        }
        draft.scopes(&consent.scopes);
        draft.purpose(&consent.purpose);
    }
}

#[tonic::async_trait]
impl ConsentService for Consents {
    async fn grant(&self, request: Request<GrantConsentRequest>) -> Result<Response<Consent>, Status> {
        let this = self.clone();
        uncancelled(async move {
            this.state
                .answer(request, "ConsentService/Grant", async |request, draft| {
                    Consents::grant(&this, request, draft).await
                })
                .await
        })
        .await
    }

    async fn revoke(&self, request: Request<RevokeConsentRequest>) -> Result<Response<Consent>, Status> {
        let this = self.clone();
        uncancelled(async move {
            this.state
                .answer(request, civex_audit::WITHDRAWAL_ACTION, async |request, draft| {
                    Consents::revoke(&this, request, draft).await
                })
                .await
        })
        .await
    }

    async fn get(&self, request: Request<GetConsentRequest>) -> Result<Response<Consent>, Status> {
        self.state
            .answer(request, "ConsentService/Get", async |request, draft| {
                Consents::get(self, request, draft).await
            })
            .await
    }

    async fn list(&self, request: Request<ListConsentsRequest>) -> Result<Response<ListConsentsResponse>, Status> {
        self.state
            .answer(request, "ConsentService/List", async |request, draft| {
                Consents::list(self, request, draft).await
            })
            .await
    }
}
