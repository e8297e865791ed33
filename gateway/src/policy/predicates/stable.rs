//! `housing.stable_residence` and `hrss.stable_employment`: the two halves of
//! clause 四's test, asked on their own where a department used to demand the
//! certificate (合法稳定住所证明, 合法稳定就业证明); `settlement.urban` asks both.

use civex_adapters::citizen_id::CitizenId;

use super::facts::{
    Condition, EMPLOYED, EMPLOYMENT_DIVISION, EMPLOYMENT_FACTS, Facts, HOUSING_FACTS, LEASE, OWNED, Reader, Verdict,
    condition, single,
};
use crate::error::Error;

const OWNED_HOME: [&str; 2] = ["合法稳定住所（自有住房）", "legal stable residence (owned home)"];
const REGISTERED_LEASE: [&str; 2] = ["合法稳定住所（租赁）", "legal stable residence (registered lease)"];
const EMPLOYMENT: [&str; 2] = ["合法稳定就业", "legal stable employment"];

/// An owned home in the division; a registered lease (租赁登记备案) there.
pub(super) fn residence_conditions(f: &Facts, division: &str) -> [Condition; 2] {
    [
        condition(
            f.text(OWNED) == Some(division),
            OWNED_HOME,
            &format!("在{division}有自有住房"),
            &format!("owns a home in {division}"),
        ),
        condition(
            f.text(LEASE) == Some(division),
            REGISTERED_LEASE,
            &format!("在{division}有登记备案的住房租赁"),
            &format!("holds a registered lease in {division}"),
        ),
    ]
}

/// Registered employment (就业登记) in the division.
pub(super) fn employment_condition(f: &Facts, division: &str) -> Condition {
    condition(
        f.flag(EMPLOYED) == Some(true) && f.text(EMPLOYMENT_DIVISION) == Some(division),
        EMPLOYMENT,
        &format!("在{division}有就业登记"),
        &format!("registered employment in {division}"),
    )
}

/// 合法稳定住所: holds if the real-estate register records a home the
/// citizen owns in the division, or the housing department a registered
/// lease there ("含租赁", clause 四).
pub(super) async fn stable_residence(r: &Reader<'_>, citizen: &CitizenId, division: &str) -> Result<Verdict, Error> {
    let f = r.facts(citizen, HOUSING_FACTS).await?;
    let [owned, lease] = residence_conditions(&f, division);
    Ok(Verdict {
        satisfied: owned.holds || lease.holds,
        checks: vec![owned, lease],
    })
}

/// 合法稳定就业: holds if the citizen has registered employment in the
/// division. A business licence (个体工商户) is the market regulator's record,
/// which none of the gateway's departments holds: such applicants still show it.
pub(super) async fn stable_employment(r: &Reader<'_>, citizen: &CitizenId, division: &str) -> Result<Verdict, Error> {
    let f = r.facts(citizen, EMPLOYMENT_FACTS).await?;
    Ok(single(employment_condition(&f, division)))
}
