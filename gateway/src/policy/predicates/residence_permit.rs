//! Clause 十二, `residence_permit.apply`: applying for a residence permit.

use civex_adapters::citizen_id::CitizenId;
use time::Date;

use super::{
    Thresholds,
    facts::{HUKOU_DIVISION, PERMIT_FACTS, RESIDENCE_DIVISION, RESIDENCE_SINCE, Reader, Verdict, condition},
};
use crate::error::Error;

const PLACE_OF_RESIDENCE: [&str; 2] = ["居住地", "place of residence"];
const AWAY_FROM_REGISTRATION: [&str; 2] = ["离开户籍所在地", "away from the place of household registration"];
const TIME_LIVED: [&str; 2] = ["居住时间", "time lived there"];

/// Clause 十二: "公民离开户籍所在地到其它街道、乡镇居住三十日以上的，应当在居住地申领居住证".
///
/// Holds if the applicant's actual residence is in the division, the
/// registration is not, and the applicant has lived there for at least
/// [`Thresholds::residence_permit_days`] days (三十日以上: thirty or more).
/// Registries record divisions at county level, so a move between townships
/// (街道、乡镇) of the same county does not show: such an applicant is answered
/// that it is not registered outside the division, and the counter decides
/// on the address.
pub(super) async fn residence_permit(
    r: &Reader<'_>,
    citizen: &CitizenId,
    division: &str,
    thresholds: &Thresholds,
    today: Date,
) -> Result<Verdict, Error> {
    let f = r.facts(citizen, PERMIT_FACTS).await?;
    let days = thresholds.residence_permit_days;
    let lives = condition(
        f.text(RESIDENCE_DIVISION) == Some(division),
        PLACE_OF_RESIDENCE,
        &format!("在{division}居住"),
        &format!("lives in {division}"),
    );
    let away = condition(
        f.text(HUKOU_DIVISION).is_some_and(|d| d != division),
        AWAY_FROM_REGISTRATION,
        &format!("户籍不在{division}"),
        &format!("registered outside {division}"),
    );
    // The date of moving in is about the actual residence, so it counts only if that is in the division.
    let time = condition(
        lives.holds
            && f.date(RESIDENCE_SINCE)
                .is_some_and(|since| (today - since).whole_days() >= i64::from(days)),
        TIME_LIVED,
        &format!("在{division}已居住{days}日以上"),
        &format!("has lived in {division} for at least {days} days"),
    );
    Ok(Verdict {
        satisfied: lives.holds && away.holds && time.holds,
        checks: vec![lives, away, time],
    })
}
