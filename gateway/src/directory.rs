//! The directory of agencies: who may call, with which roles and rights,
//! and whether they are suspended.

use std::{
    collections::HashMap,
    fmt,
    sync::{Arc, RwLock},
};

use crate::{
    error::{Error, Reason},
    policy::access::{Agency, Role, Status},
    store::AgencyStore,
};

/// The agencies the gateway serves: persisted in an [`AgencyStore`], cached
/// in memory, looked up on every call, so a change takes effect on the next call.
pub struct Directory {
    store: Arc<dyn AgencyStore>,
    agencies: RwLock<HashMap<String, Arc<Agency>>>,
    /// Serialises changes, so each reads what the one before wrote.
    changes: tokio::sync::Mutex<()>,
}

fn stored(e: impl fmt::Display) -> Error {
    Error::internal(format!("agency store: {e}"))
}

/// The refusal for an agency code nobody registered.
pub fn no_agency(code: &str) -> Error {
    Error::new(
        Reason::InvalidRequest,
        format!(
            "no agency {:?} is registered",
            crate::policy::labels::logged_agency_code(code)
        ),
    )
}

/// Each configured agency that the store does not hold as configured, and
/// how it differs (its status aside, which only Suspend and Reinstate set).
pub fn drift(configured: &[Agency], stored: &[Agency]) -> Vec<(String, String)> {
    configured
        .iter()
        .filter_map(|want| {
            let Some(have) = stored.iter().find(|a| a.code == want.code) else {
                return Some((want.code.clone(), "not in the store".to_owned()));
            };
            let differ_as_sets = |a: Vec<String>, b: Vec<String>| {
                let sorted = |mut v: Vec<String>| {
                    v.sort();
                    v
                };
                sorted(a) != sorted(b)
            };
            let roles = |a: &Agency| a.roles.iter().map(|r| r.to_string()).collect();
            let rights = |a: &Agency| {
                a.rights
                    .iter()
                    .flat_map(|r| r.purposes.iter().map(move |p| format!("{}={p}", r.scope)))
                    .collect()
            };
            let fields = [
                ("name", want.name != have.name),
                ("department", want.department != have.department),
                ("roles", differ_as_sets(roles(want), roles(have))),
                ("rights", differ_as_sets(rights(want), rights(have))),
                ("rate", want.rate != have.rate),
            ];
            let differ: Vec<&str> = fields.iter().filter(|(_, d)| *d).map(|(f, _)| *f).collect();
            (!differ.is_empty()).then(|| (want.code.clone(), format!("{} differ", differ.join(", "))))
        })
        .collect()
}

impl Directory {
    /// Loads the agencies of `store`; at first start (an empty store) it is
    /// seeded with `seed`, and from then on the store is the source of truth.
    pub async fn open(store: Arc<dyn AgencyStore>, seed: impl IntoIterator<Item = Agency>) -> Result<Directory, Error> {
        let seed: Vec<Agency> = seed.into_iter().collect();
        let known = store.seed(&seed).await.map_err(stored)?;
        for (agency, difference) in drift(&seed, &known) {
            tracing::warn!(
                agency,
                difference,
                "an agency in the configuration differs from the store, which is in force \
                 (civex agency add or update changes the store; the file's agencies only seed an empty one)"
            );
        }
        let agencies = known.into_iter().map(|a| (a.code.clone(), Arc::new(a))).collect();
        Ok(Directory {
            store,
            agencies: RwLock::new(agencies),
            changes: tokio::sync::Mutex::new(()),
        })
    }

    /// Reads every agency from the store again: another gateway sharing it
    /// may have changed them.
    pub async fn reload(&self) -> Result<(), Error> {
        let known = self.store.list().await.map_err(stored)?;
        let agencies = known.into_iter().map(|a| (a.code.clone(), Arc::new(a))).collect();
        *self.agencies.write().unwrap_or_else(|p| p.into_inner()) = agencies;
        Ok(())
    }

    /// The agency with `code`, if registered.
    pub fn agency(&self, code: &str) -> Option<Arc<Agency>> {
        self.agencies
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(code)
            .cloned()
    }

    /// Every agency, by code.
    pub fn list(&self) -> Vec<Arc<Agency>> {
        let mut all: Vec<_> = self
            .agencies
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        all.sort_by(|a, b| a.code.cmp(&b.code));
        all
    }

    /// Prepares a change of (or, with `create`, the registration of) an
    /// agency: validated, but not in effect until [`Change::apply`]. Changes
    /// run one at a time from here until applied or dropped, so that a
    /// change's audit record can be made durable in between and each change
    /// reads what the one before wrote.
    pub async fn prepare(
        &self,
        code: &str,
        create: impl FnOnce() -> Option<Agency>,
        change: impl FnOnce(&mut Agency) -> Result<(), Error>,
    ) -> Result<Change<'_>, Error> {
        let one_at_a_time = self.changes.lock().await;
        let mut agency = match self.agency(code) {
            Some(a) => Agency::clone(&a),
            None => create().ok_or_else(|| no_agency(code))?,
        };
        change(&mut agency)?;
        agency.validate()?;
        Ok(Change {
            directory: self,
            agency,
            _one_at_a_time: one_at_a_time,
        })
    }

    /// The calling agency, if it is registered, active and holds one of `roles`.
    pub fn authorize(&self, code: &str, roles: &[Role]) -> Result<Arc<Agency>, Error> {
        let agency = self.agency(code).ok_or_else(|| {
            Error::new(
                Reason::RoleRequired,
                format!("agency {code} is not registered with this gateway"),
            )
        })?;
        if agency.status == Status::Suspended {
            return Err(Error::new(
                Reason::AgencySuspended,
                format!("agency {code} is suspended"),
            ));
        }
        if !roles.iter().any(|r| agency.roles.contains(r)) {
            let names: Vec<String> = roles.iter().map(Role::to_string).collect();
            return Err(Error::new(
                Reason::RoleRequired,
                format!(
                    "this call needs role {}; agency {code} does not hold it",
                    names.join(" or ")
                ),
            ));
        }
        Ok(agency)
    }
}

/// A validated change of one agency, not yet in effect.
pub struct Change<'a> {
    directory: &'a Directory,
    agency: Agency,
    _one_at_a_time: tokio::sync::MutexGuard<'a, ()>,
}

impl Change<'_> {
    /// The agency as it will be.
    pub fn agency(&self) -> &Agency {
        &self.agency
    }

    /// Writes the agency through to the store, durable, and puts it in effect.
    pub async fn apply(self) -> Result<Arc<Agency>, Error> {
        let directory = self.directory;
        directory
            .store
            .put(std::slice::from_ref(&self.agency))
            .await
            .map_err(stored)?;
        let agency = Arc::new(self.agency);
        directory
            .agencies
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(agency.code.clone(), agency.clone());
        Ok(agency)
    }
}
