//! `AdminService`: onboard, restrict, throttle and cut off agencies, without
//! a restart (role `admin`). Every change takes effect only once its audit
//! record is durable, and is then written through to the store.

use std::sync::Arc;

use civex_proto::v1::{
    self as pb, AgencyCertificate, AgencyRef, IssueCertificateRequest, IssuedCertificate, ListAgenciesRequest,
    ListAgenciesResponse, ListCertificatesRequest, ListCertificatesResponse, RevokeCertificateRequest,
    RevokeCertificateResponse, SetAccessRightsRequest, admin_service_server::AdminService,
};
use tonic::{Request, Response, Status};

use super::{Draft, State, uncancelled};
use crate::{
    clock::timestamp,
    directory::no_agency,
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
        Ok(pb::Role::DataSteward) => Ok(Role::DataSteward),
        _ => Err(Error::new(Reason::InvalidRequest, format!("unknown role {r}"))),
    }
}

fn role_to(r: Role) -> i32 {
    (match r {
        Role::Requester => pb::Role::Requester,
        Role::ConsentRegistrar => pb::Role::ConsentRegistrar,
        Role::Auditor => pb::Role::Auditor,
        Role::Admin => pb::Role::Admin,
        Role::DataSteward => pb::Role::DataSteward,
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

fn rate_message(rate: RateLimit) -> pb::RateLimit {
    pb::RateLimit {
        per_second: rate.per_second,
        burst: rate.burst,
    }
}

/// The wire form of an agency, with the rate in force for it.
pub fn agency_message(a: &Agency, effective_rate: RateLimit) -> pb::Agency {
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
        rate: Some(rate_message(a.rate)),
        status: (match a.status {
            AgencyStatus::Active => pb::AgencyStatus::Active,
            AgencyStatus::Suspended => pb::AgencyStatus::Suspended,
        }) as i32,
        effective_rate: Some(rate_message(effective_rate)),
    }
}

/// Takes the rights to `remove` away (each must be held), then adds `add`,
/// merging purposes into a scope already held.
fn edit_rights(rights: &mut Vec<AccessRight>, add: Vec<AccessRight>, remove: &[String]) -> Result<(), Error> {
    for scope in remove {
        let before = rights.len();
        rights.retain(|r| &r.scope != scope);
        if rights.len() == before {
            return Err(Error::new(
                Reason::InvalidRequest,
                format!(
                    "the agency holds no right to {:?} to remove",
                    labels::logged_label(scope)
                ),
            ));
        }
    }
    for right in add {
        match rights.iter_mut().find(|r| r.scope == right.scope) {
            Some(held) => {
                for purpose in right.purposes {
                    if !held.purposes.contains(&purpose) {
                        held.purposes.push(purpose);
                    }
                }
            }
            None => rights.push(right),
        }
    }
    Ok(())
}

/// Whether `register` registers a new agency or updates one on purpose.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Registration {
    New,
    Update,
}

impl Admin {
    pub fn new(state: Arc<State>) -> Admin {
        Admin { state }
    }

    fn message(&self, a: &Agency) -> pb::Agency {
        agency_message(a, self.state.limiters.rate_of(a))
    }

    async fn register(
        &self,
        request: Request<pb::Agency>,
        draft: &mut Draft,
        registration: Registration,
    ) -> Result<pb::Agency, Error> {
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
        let created = std::sync::atomic::AtomicBool::new(false);
        let template = fresh.clone();
        let change = self
            .state
            .directory
            .prepare(
                &req.code,
                || {
                    created.store(true, std::sync::atomic::Ordering::Relaxed);
                    (registration == Registration::New).then_some(template)
                },
                |existing| {
                    if registration == Registration::New && !created.load(std::sync::atomic::Ordering::Relaxed) {
                        return Err(Error::new(
                            Reason::AlreadyExists,
                            format!(
                                "agency {} is registered already: change it on purpose with UpdateAgency (civex agency update)",
                                fresh.code
                            ),
                        ));
                    }
                    // An update changes everything but the status.
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
        Ok(self.message(&agency))
    }

    fn get(&self, request: &Request<AgencyRef>) -> Result<pb::Agency, Error> {
        self.state.caller(request, &[Role::Admin])?;
        let code = &request.get_ref().code;
        let agency = self.state.directory.agency(code).ok_or_else(|| no_agency(code))?;
        Ok(self.message(&agency))
    }

    async fn list_certificates(
        &self,
        request: &Request<ListCertificatesRequest>,
    ) -> Result<ListCertificatesResponse, Error> {
        self.state.caller(request, &[Role::Admin])?;
        let code = &request.get_ref().agency_code;
        if self.state.directory.agency(code).is_none() {
            return Err(no_agency(code));
        }
        let time = |t: i64| {
            time::OffsetDateTime::from_unix_timestamp(t)
                .ok()
                .map(|t| timestamp(t.into()))
        };
        let certificates = self
            .state
            .authority
            .certificates(code)
            .await?
            .into_iter()
            .map(|(c, revoked)| AgencyCertificate {
                serial: c.serial,
                agency_code: c.agency,
                not_after: c.not_after.and_then(time),
                revoked_at: revoked.as_ref().and_then(|r| time(r.revoked_at)),
                revocation_reason: revoked.map(|r| r.reason).unwrap_or_default(),
            })
            .collect();
        Ok(ListCertificatesResponse { certificates })
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
        Ok(self.message(&agency))
    }

    async fn set_rights(
        &self,
        request: Request<SetAccessRightsRequest>,
        draft: &mut Draft,
    ) -> Result<pb::Agency, Error> {
        draft.subject_agency(&request.get_ref().agency_code);
        self.state.caller(&request, &[Role::Admin])?;
        let req = request.into_inner();
        let (rights, add) = (rights_from(req.rights), rights_from(req.add));
        let remove = req.remove;
        let scopes = rights
            .iter()
            .chain(&add)
            .map(|r| r.scope.clone())
            .chain(remove.iter().cloned());
        draft.scopes(&scopes.collect::<Vec<_>>());
        let edits = !add.is_empty() || !remove.is_empty();
        let rate = rate_from(req.rate);
        // Only a rate: the rights stay as they are.
        let keep = !edits && rights.is_empty() && rate.is_some();
        if edits && !rights.is_empty() {
            return Err(Error::new(
                Reason::InvalidRequest,
                "give rights to replace them all, or add and remove to change them, not both",
            ));
        }
        let change = self
            .state
            .directory
            .prepare(
                &req.agency_code,
                || None,
                |a| {
                    if edits {
                        edit_rights(&mut a.rights, add, &remove)?;
                    } else if !keep {
                        a.rights = rights;
                    }
                    if let Some(rate) = rate {
                        a.rate = rate;
                    }
                    Ok(())
                },
            )
            .await?;
        self.state.record(draft).await?;
        let agency = change.apply().await?;
        Ok(self.message(&agency))
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
                    this.register(request, draft, Registration::New).await
                })
                .await
        })
        .await
    }

    async fn update_agency(&self, request: Request<pb::Agency>) -> Result<Response<pb::Agency>, Status> {
        let this = self.clone();
        uncancelled(async move {
            this.state
                .answer(request, "AdminService/UpdateAgency", async |request, draft| {
                    this.register(request, draft, Registration::Update).await
                })
                .await
        })
        .await
    }

    async fn get_agency(&self, request: Request<AgencyRef>) -> Result<Response<pb::Agency>, Status> {
        self.state
            .answer(request, "AdminService/GetAgency", async |request, draft| {
                draft.subject_agency(&request.get_ref().code);
                self.get(&request)
            })
            .await
    }

    async fn list_certificates(
        &self,
        request: Request<ListCertificatesRequest>,
    ) -> Result<Response<ListCertificatesResponse>, Status> {
        self.state
            .answer(request, "AdminService/ListCertificates", async |request, draft| {
                draft.subject_agency(&request.get_ref().agency_code);
                self.list_certificates(&request).await
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
                        agencies: self.state.directory.list().iter().map(|a| self.message(a)).collect(),
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
