//! The gRPC services. Each handler follows the request path of DESIGN §2:
//! peer identity → agency (active?) → role → validate → access rights →
//! consent → adapters → response.
//!
//! # Layout
//! - [`exchange`]: `ExchangeService` (requesters).
//! - [`consent`]: `ConsentService` (consent registrars).

pub mod consent;
pub mod exchange;

use std::sync::Arc;

use tonic::Request;

use crate::{
    access::{Agency, Directory, Role},
    clock::Clock,
    config::Limits,
    consent::ConsentStore,
    error::{Error, Reason},
    identity::PeerIdentity,
    signing::Signer,
    sources::Sources,
};

/// What every handler shares.
pub struct State {
    pub directory: Directory,
    pub consents: ConsentStore,
    pub sources: Sources,
    pub signer: Signer,
    pub clock: Arc<dyn Clock>,
    pub limits: Limits,
}

impl State {
    /// The calling agency, from the connection's verified certificate only,
    /// if it is active and holds `role`.
    pub fn caller<T>(&self, request: &Request<T>, role: Role) -> Result<Arc<Agency>, Error> {
        // Invariant: every connection comes through `tls::incoming`, which
        // attaches the identity; a request without one never passed mTLS.
        let peer = request
            .extensions()
            .get::<PeerIdentity>()
            .ok_or_else(|| Error::new(Reason::RoleRequired, "no verified client certificate"))?;
        self.directory.authorize(&peer.agency, role)
    }
}
