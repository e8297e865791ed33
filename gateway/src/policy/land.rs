//! Clause 十五: giving up land rights (土地承包经营权, 宅基地) must not be a
//! condition of settling in a town.

use super::{predicates, purposes::SETTLEMENT};
use crate::error::{Error, Reason};

/// Whether a scope (attribute, predicate or prefix) reaches land facts.
fn is_land(scope: &str) -> bool {
    if scope == "*" || scope.starts_with("land.") {
        return true;
    }
    match scope.strip_suffix('*') {
        Some(prefix) => predicates::PREDICATES
            .iter()
            .any(|p| p.land_based && p.name.starts_with(prefix)),
        None => predicates::predicate(scope).is_ok_and(|p| p.land_based),
    }
}

/// Clause 十五: giving up land rights must not be a condition of settling in
/// a town, so land facts and land-based predicates are never used for
/// purpose `hukou.settlement`.
pub fn land_rule(scope: &str, purpose: &str) -> Result<(), Error> {
    let is_land = is_land(scope);
    if is_land && purpose == SETTLEMENT {
        return Err(Error::new(
            Reason::NoAccessRight,
            format!(
                "{scope} may not be used for {SETTLEMENT}: clause 十五 of 曲政发〔2015〕82号 forbids \
                 making land contract or homestead rights a condition of settling in a town"
            ),
        ));
    }
    Ok(())
}
