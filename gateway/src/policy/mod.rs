//! What the gateway allows: roles and access rights, the purposes a use may
//! name, the land rule of clause 十五, and the reform's eligibility predicates.
//! Pure rules over the catalogue and the request: no storage, no IO.
//!
//! # Layout
//! - [`access`]: roles, access rights, the `Agency` and what an administrator may set.
//! - [`purposes`]: the purpose registry.
//! - [`labels`]: what caller text may enter the log (no raw ID, no unknown name).
//! - [`land`]: land facts are never used for settling in a town (十五).
//! - [`predicates`]: `ExchangeService.Check`'s rules, one file per predicate.

pub mod access;
pub mod labels;
pub mod land;
pub mod predicates;
pub mod purposes;
