//! What the gateway allows: roles and access rights, the purposes a use may
//! name, the land rule of clause 十五, and the reform's eligibility predicates.
//! Pure rules over the catalogue and the request: no storage, no IO.
//!
//! # Layout
//! - [`access`]: roles, access rights, the `Agency` and what an administrator may set.
//! - [`purposes`]: the purpose registry.
//! - [`labels`]: what caller text may enter the log (no raw ID, no unknown name).
//! - [`land`]: land facts are never used for settling in a town (十五).
//! - [`certificates`]: the certificates the clean-up removed and what answers each (DESIGN §15).
//! - [`predicates`]: `ExchangeService.Check`'s rules, one file per predicate.

pub mod access;
pub mod certificates;
pub mod labels;
pub mod land;
pub mod predicates;
pub mod purposes;

use crate::error::{Error, Reason};

/// The rules a scope obeys for a purpose, whoever holds a right to it:
/// clause 十五's land rule, and a predicate limited to some purposes (the
/// criminal-record check, only where a law bars people with convictions).
/// A `prefix.*` scope is held to the land rule only: which predicate it is
/// used for is checked when it is used.
pub fn scope_rule(scope: &str, purpose: &str) -> Result<(), Error> {
    land::land_rule(scope, purpose)?;
    match predicates::predicate(scope) {
        Ok(p) if !p.purposes.is_empty() && !p.purposes.contains(&purpose) => Err(Error::new(
            Reason::NoAccessRight,
            format!("{} may be used only for {}: {}", p.name, p.purposes.join(", "), p.basis),
        )),
        _ => Ok(()),
    }
}
