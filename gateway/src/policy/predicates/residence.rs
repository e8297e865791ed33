//! `residence.months_at_least`: the residence certificate (居住证明), which
//! police stations and village committees no longer issue: the department
//! checks residence elsewhere itself (公通字〔2016〕21号, 民发〔2020〕20号).

use civex_adapters::citizen_id::CitizenId;
use time::Date;

use super::facts::{
    RESIDENCE_DIVISION, RESIDENCE_FACTS, RESIDENCE_SINCE, Reader, Verdict, condition, full_months, months_en, single,
};
use crate::error::Error;

const RESIDENCE: [&str; 2] = ["实际居住", "actual residence"];

/// Holds if public security records the citizen's actual place of residence
/// in the division, since at least `months` whole months before `today`.
pub(super) async fn months_at_least(
    r: &Reader<'_>,
    citizen: &CitizenId,
    division: &str,
    months: u32,
    today: Date,
) -> Result<Verdict, Error> {
    let f = r.facts(citizen, RESIDENCE_FACTS).await?;
    Ok(single(condition(
        f.text(RESIDENCE_DIVISION) == Some(division)
            && f.date(RESIDENCE_SINCE)
                .is_some_and(|since| full_months(since, today) >= i64::from(months)),
        RESIDENCE,
        &format!("在{division}居住满{months}个月"),
        &format!("has lived in {division} for at least {}", months_en(months)),
    )))
}
