//! Clause 四, `settlement.urban`: settling in a town where one has a home or a job.

use civex_adapters::citizen_id::CitizenId;
use time::Date;

use super::{
    Thresholds,
    facts::{
        EMPLOYED, EMPLOYMENT_DIVISION, LEASE, OWNED, RESIDENCE_DIVISION, RESIDENCE_FACTS, RESIDENCE_SINCE, Reader,
        URBAN_FACTS, Verdict, condition, full_years,
    },
};
use crate::error::Error;

const OWNED_HOME: [&str; 2] = ["合法稳定住所（自有住房）", "legal stable residence (owned home)"];
const REGISTERED_LEASE: [&str; 2] = ["合法稳定住所（租赁）", "legal stable residence (registered lease)"];
const EMPLOYMENT: [&str; 2] = ["合法稳定就业", "legal stable employment"];
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
    let owned = match f.text(OWNED) {
        Some(d) if d == division => condition(
            true,
            OWNED_HOME,
            &format!("在{division}有自有住房"),
            &format!("owns a home in {division}"),
        ),
        Some(_) => condition(
            false,
            OWNED_HOME,
            &format!("自有住房不在{division}"),
            &format!("the owned home is not in {division}"),
        ),
        None => condition(false, OWNED_HOME, "无记录", "not recorded"),
    };
    let lease = match f.text(LEASE) {
        Some(d) if d == division => condition(
            true,
            REGISTERED_LEASE,
            &format!("在{division}有登记备案的住房租赁"),
            &format!("holds a registered lease in {division}"),
        ),
        Some(_) => condition(
            false,
            REGISTERED_LEASE,
            &format!("登记的租赁不在{division}"),
            &format!("the registered lease is not in {division}"),
        ),
        None => condition(false, REGISTERED_LEASE, "无记录", "not recorded"),
    };
    let job = match (f.flag(EMPLOYED), f.text(EMPLOYMENT_DIVISION)) {
        (Some(true), Some(d)) if d == division => condition(
            true,
            EMPLOYMENT,
            &format!("在{division}有就业登记"),
            &format!("registered employment in {division}"),
        ),
        (Some(true), Some(_)) => condition(
            false,
            EMPLOYMENT,
            &format!("登记的就业不在{division}"),
            &format!("the registered employment is not in {division}"),
        ),
        (Some(true), None) => condition(
            false,
            EMPLOYMENT,
            "就业地无记录",
            "the place of employment is not recorded",
        ),
        (Some(false), _) => condition(false, EMPLOYMENT, "无就业登记", "employment is not registered"),
        (None, _) => condition(false, EMPLOYMENT, "无记录", "not recorded"),
    };
    let mut satisfied = owned.holds || lease.holds || job.holds;
    let mut checks = vec![owned, lease, job];
    let years = thresholds.settlement_residence_years;
    if years > 0 {
        let ps = r.facts(citizen, RESIDENCE_FACTS).await?;
        let stay = match (ps.text(RESIDENCE_DIVISION), ps.date(RESIDENCE_SINCE)) {
            (Some(d), Some(since)) if d == division => {
                if full_years(since, today) >= i64::from(years) {
                    condition(
                        true,
                        YEARS_OF_RESIDENCE,
                        &format!("在{division}居住满{years}年"),
                        &format!("has lived in {division} for at least {years} years"),
                    )
                } else {
                    condition(
                        false,
                        YEARS_OF_RESIDENCE,
                        &format!("在{division}居住不满{years}年"),
                        &format!("has lived in {division} for fewer than {years} years"),
                    )
                }
            }
            (Some(d), _) if d != division => condition(
                false,
                YEARS_OF_RESIDENCE,
                &format!("不在{division}居住"),
                &format!("does not live in {division}"),
            ),
            _ => condition(
                false,
                YEARS_OF_RESIDENCE,
                "居住地或居住起始日期无记录",
                "place or start of residence not recorded",
            ),
        };
        satisfied &= stay.holds;
        checks.push(stay);
    }
    Ok(Verdict { satisfied, checks })
}
