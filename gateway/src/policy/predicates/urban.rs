//! Clause 四, `settlement.urban`: settling in a town where one has a home or a job.

use civex_adapters::citizen_id::CitizenId;
use time::Date;

use super::{
    Thresholds,
    facts::{
        RESIDENCE_DIVISION, RESIDENCE_FACTS, RESIDENCE_SINCE, Reader, URBAN_FACTS, Verdict, condition, full_years,
    },
    stable::{employment_condition, residence_conditions},
};
use crate::error::Error;

const YEARS_OF_RESIDENCE: [&str; 2] = ["居住年限", "years of residence"];

/// Clause 四: "在各县（市、区）城区、产业园区、建制镇（含乡）有合法稳定住所（含租赁）或有合法
/// 稳定就业的人员……可以在当地申请登记常住户口".
///
/// Holds if the applicant owns a home in the division, holds a registered
/// lease there (租赁登记备案: "含租赁") or has registered employment there
/// (就业登记). Every county-level division has towns; which town within it is
/// the registering police station's business, not the gateway's. Land facts are
/// never read: giving up land rights must not be a condition (clause 十五).
/// Clause 四 sets no years of residence; a local rule may add one with
/// [`Thresholds::settlement_residence_years`], which also reads the actual
/// place of residence from public security.
pub(super) async fn urban(
    r: &Reader<'_>,
    citizen: &CitizenId,
    division: &str,
    thresholds: &Thresholds,
    today: Date,
) -> Result<Verdict, Error> {
    let f = r.facts(citizen, URBAN_FACTS).await?;
    let [owned, lease] = residence_conditions(&f, division);
    let job = employment_condition(&f, division);
    let mut satisfied = owned.holds || lease.holds || job.holds;
    let mut checks = vec![owned, lease, job];
    let years = thresholds.settlement_residence_years;
    if years > 0 {
        let ps = r.facts(citizen, RESIDENCE_FACTS).await?;
        let stayed = ps.text(RESIDENCE_DIVISION) == Some(division)
            && ps
                .date(RESIDENCE_SINCE)
                .is_some_and(|since| full_years(since, today) >= i64::from(years));
        let stay = condition(
            stayed,
            YEARS_OF_RESIDENCE,
            &format!("在{division}居住满{years}年"),
            &format!("has lived in {division} for at least {years} years"),
        );
        satisfied &= stay.holds;
        checks.push(stay);
    }
    Ok(Verdict { satisfied, checks })
}
