//! `AdminService`: onboard, restrict, throttle and cut off agencies, without
//! a restart (role `admin`). Every change takes effect only once its audit
//! record is durable, and is then written through to the store.

use std::sync::Arc;

use civex_proto::v1::{
    self as pb, AgencyRef, IssueCertificateRequest, IssuedCertificate, ListAgenciesRequest, ListAgenciesResponse,
    RevokeCertificateRequest, RevokeCertificateResponse, SetAccessRightsRequest, admin_service_server::AdminService,
};
use tonic::{Request, Response, Status};

use super::{Draft, State, uncancelled};
use crate::{
    clock::timestamp,
    error::{Error, Reason},
    policy::{
        access::{AccessRight, Agency, RateLimit, Role, Status as AgencyStatus},
        labels::{self, check_label},
    },
};

/// Largest CSR accepted, in bytes.
const MAX_CSR: usize = 16 * 1024;

#[derive(Clone)]
pub struct Admin {
    state: Arc<State>,
}

fn role_from(r: i32) -> Result<Role, Error> {
    match pb::Role::try_from(r) {
        Ok(pb::Role::Requester) => Ok(Role::Requester),
        Ok(pb::Role::ConsentRegistrar) => Ok(Role::ConsentRegistrar),
        Ok(pb::Role::Auditor) => Ok(Role::Auditor),
        Ok(pb::Role::Admin) => Ok(Role::Admin),
        _ => Err(Error::new(Reason::InvalidRequest, format!("unknown role {r}"))),
    }
}

fn role_to(r: Role) -> i32 {
    (match r {
        Role::Requester => pb::Role::Requester,
        Role::ConsentRegistrar => pb::Role::ConsentRegistrar,
        Role::Auditor => pb::Role::Auditor,
        Role::Admin => pb::Role::Admin,
    }) as i32
}

fn rights_from(rights: Vec<pb::AccessRight>) -> Vec<AccessRight> {
    rights
        .into_iter()
        .map(|r| AccessRight {
            scope: r.scope,
            purposes: r.purposes,
        })
        .collect()
}

fn rate_from(rate: Option<pb::RateLimit>) -> Option<RateLimit> {
    rate.map(|r| RateLimit {
        per_second: r.per_second,
        burst: r.burst,
    })
}

/// The wire form of an agency.
pub fn agency_message(a: &Agency) -> pb::Agency {
    pb::Agency {
        code: a.code.clone(),
        name: a.name.clone(),
        department: a.department.clone(),
        roles: a.roles.iter().map(|r| role_to(*r)).collect(),
        rights: a
            .rights
            .iter()
            .map(|r| pb::AccessRight {
                scope: r.scope.clone(),
                purposes: r.purposes.clone(),
            })
            .collect(),
        rate: Some(pb::RateLimit {
            per_second: a.rate.per_second,
            burst: a.rate.burst,
        }),
        status: (match a.status {
            AgencyStatus::Active => pb::AgencyStatus::Active,
            AgencyStatus::Suspended => pb::AgencyStatus::Suspended,
        }) as i32,
    }
}

impl Admin {
    pub fn new(state: Arc<State>) -> Admin {
        Admin { state }
    }

    async fn register(&self, request: Request<pb::Agency>, draft: &mut Draft) -> Result<pb::Agency, Error> {
        draft.subject_agency(&request.get_ref().code);
        self.state.caller(&request, &[Role::Admin])?;
        let req = request.into_inner();
        let roles = req.roles.iter().map(|r| role_from(*r)).collect::<Result<Vec<_>, _>>()?;
        let fresh = Agency {
            code: req.code.clone(),
            name: req.name,
            department: req.department,
            roles,
            rights: rights_from(req.rights),
            rate: rate_from(req.rate).unwrap_or_default(),
            status: AgencyStatus::Active,
        };
        draft.scopes(&fresh.rights.iter().map(|r| r.scope.clone()).collect::<Vec<_>>());
        let template = fresh.clone();
        let change = self
            .state
            .directory
            .prepare(
                &req.code,
                || Some(template),
                |existing| {
                    // Registering again updates everything but the status.
                    *existing = Agency {
                        status: existing.status,
                        ..fresh
                    };
                    Ok(())
                },
            )
            .await?;
        self.state.record(draft).await?;
        let agency = change.apply().await?;
        Ok(agency_message(&agency))
    }

    async fn set_status(
        &self,
        request: Request<AgencyRef>,
        draft: &mut Draft,
        status: AgencyStatus,
    ) -> Result<pb::Agency, Error> {
        draft.subject_agency(&request.get_ref().code);
        draft.note(&request.get_ref().reason);
        self.state.caller(&request, &[Role::Admin])?;
        let req = request.into_inner();
        check_label("reason", &req.reason)?;
        let change = self
            .state
            .directory
            .prepare(
                &req.code,
                || None,
                |a| {
                    a.status = status;
                    Ok(())
                },
            )
            .await?;
        self.state.record(draft).await?;
        let agency = change.apply().await?;
        tracing::info!(agency = %agency.code, ?status, "agency status changed");
        Ok(agency_message(&agency))
    }

    async fn set_rights(
        &self,
        request: Request<SetAccessRightsRequest>,
        draft: &mut Draft,
    ) -> Result<pb::Agency, Error> {
        draft.subject_agency(&request.get_ref().agency_code);
        self.state.caller(&request, &[Role::Admin])?;
        let req = request.into_inner();
        let rights = rights_from(req.rights);
        draft.scopes(&rights.iter().map(|r| r.scope.clone()).collect::<Vec<_>>());
        let rate = rate_from(req.rate);
        let change = self
            .state
            .directory
            .prepare(
                &req.agency_code,
                || None,
                |a| {
                    a.rights = rights;
                    if let Some(rate) = rate {
                        a.rate = rate;
                    }
                    Ok(())
                },
            )
            .await?;
        self.state.record(draft).await?;
        let agency = change.apply().await?;
        Ok(agency_message(&agency))
    }

    async fn issue(
        &self,
        request: Request<IssueCertificateRequest>,
        draft: &mut Draft,
    ) -> Result<IssuedCertificate, Error> {
        draft.subject_agency(&request.get_ref().agency_code);
        self.state.caller(&request, &[Role::Admin])?;
        let req = request.into_inner();
        if req.csr_pem.len() > MAX_CSR {
            return Err(Error::new(
                Reason::InvalidRequest,
                format!("CSR larger than {MAX_CSR} bytes"),
            ));
        }
        let agency = self.state.directory.agency(&req.agency_code).ok_or_else(|| {
            Error::new(
                Reason::InvalidRequest,
                format!(
                    "no agency {:?}: register it first",
                    labels::logged_agency_code(&req.agency_code)
                ),
            )
        })?;
        let issued = self.state.authority.sign(&agency.code, &req.csr_pem)?;
        draft.subject_serial(&issued.serial);
        // The certificate is a credential: it leaves only once its record is
        // durable, and is registered (so it can be revoked) before it leaves.
        self.state.record(draft).await?;
        self.state.authority.register(&agency.code, &issued).await?;
        Ok(IssuedCertificate {
            cert_pem: issued.cert_pem,
            chain_pem: self.state.authority.ca_pem()?,
            serial: issued.serial,
            not_after: Some(timestamp(issued.not_after.into())),
        })
    }

    async fn revoke(
        &self,
        request: Request<RevokeCertificateRequest>,
        draft: &mut Draft,
    ) -> Result<RevokeCertificateResponse, Error> {
        draft.subject_serial(&request.get_ref().serial);
        draft.note(&request.get_ref().reason);
        self.state.caller(&request, &[Role::Admin])?;
        let req = request.into_inner();
        check_label("reason", &req.reason)?;
        let serial = self.state.authority.issued(&req.serial).await?;
        self.state.record(draft).await?;
        let at = self.state.authority.revoke(&serial, &req.reason).await?;
        Ok(RevokeCertificateResponse {
            serial,
            revoked_at: Some(timestamp(at.into())),
        })
    }
}

#[tonic::async_trait]
impl AdminService for Admin {
    async fn register_agency(&self, request: Request<pb::Agency>) -> Result<Response<pb::Agency>, Status> {
        let this = self.clone();
        uncancelled(async move {
            this.state
                .answer(request, "AdminService/RegisterAgency", async |request, draft| {
                    this.register(request, draft).await
                })
                .await
        })
        .await
    }

    async fn list_agencies(
        &self,
        request: Request<ListAgenciesRequest>,
    ) -> Result<Response<ListAgenciesResponse>, Status> {
        self.state
            .answer(request, "AdminService/ListAgencies", async |request, _| {
                self.state
                    .caller(&request, &[Role::Admin])
                    .map(|_| ListAgenciesResponse {
                        agencies: self.state.directory.list().iter().map(|a| agency_message(a)).collect(),
                    })
            })
            .await
    }

    async fn suspend_agency(&self, request: Request<AgencyRef>) -> Result<Response<pb::Agency>, Status> {
        let this = self.clone();
        uncancelled(async move {
            this.state
                .answer(request, "AdminService/SuspendAgency", async |request, draft| {
                    this.set_status(request, draft, AgencyStatus::Suspended).await
                })
                .await
        })
        .await
    }

    async fn reinstate_agency(&self, request: Request<AgencyRef>) -> Result<Response<pb::Agency>, Status> {
        let this = self.clone();
        uncancelled(async move {
            this.state
                .answer(request, "AdminService/ReinstateAgency", async |request, draft| {
                    this.set_status(request, draft, AgencyStatus::Active).await
                })
                .await
        })
        .await
    }

    async fn set_access_rights(
        &self,
        request: Request<SetAccessRightsRequest>,
    ) -> Result<Response<pb::Agency>, Status> {
        let this = self.clone();
        uncancelled(async move {
            this.state
                .answer(request, "AdminService/SetAccessRights", async |request, draft| {
                    this.set_rights(request, draft).await
                })
                .await
        })
        .await
    }

    async fn issue_certificate(
        &self,
        request: Request<IssueCertificateRequest>,
    ) -> Result<Response<IssuedCertificate>, Status> {
        let this = self.clone();
        uncancelled(async move {
            this.state
                .answer(request, "AdminService/IssueCertificate", async |request, draft| {
                    this.issue(request, draft).await
                })
                .await
        })
        .await
    }

    async fn revoke_certificate(
        &self,
        request: Request<RevokeCertificateRequest>,
    ) -> Result<Response<RevokeCertificateResponse>, Status> {
        let this = self.clone();
        uncancelled(async move {
            this.state
                .answer(request, "AdminService/RevokeCertificate", async |request, draft| {
                    this.revoke(request, draft).await
                })
                .await
        })
        .await
    }
}
