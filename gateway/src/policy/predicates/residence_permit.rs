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
/// "registered in the division", and the counter decides on the address.
pub(super) async fn residence_permit(
    r: &Reader<'_>,
    citizen: &CitizenId,
    division: &str,
    thresholds: &Thresholds,
    today: Date,
) -> Result<Verdict, Error> {
    let f = r.facts(citizen, PERMIT_FACTS).await?;
    let days = thresholds.residence_permit_days;
    let lives = match f.text(RESIDENCE_DIVISION) {
        Some(d) if d == division => condition(
            true,
            PLACE_OF_RESIDENCE,
            &format!("在{division}居住"),
            &format!("lives in {division}"),
        ),
        Some(_) => condition(
            false,
            PLACE_OF_RESIDENCE,
            &format!("不在{division}居住"),
            &format!("does not live in {division}"),
        ),
        None => condition(false, PLACE_OF_RESIDENCE, "无记录", "not recorded"),
    };
    let away = match f.text(HUKOU_DIVISION) {
        Some(d) if d != division => condition(
            true,
            AWAY_FROM_REGISTRATION,
            &format!("户籍不在{division}"),
            &format!("registered outside {division}"),
        ),
        Some(_) => condition(
            false,
            AWAY_FROM_REGISTRATION,
            &format!("户籍在{division}"),
            &format!("registered in {division}"),
        ),
        None => condition(
            false,
            AWAY_FROM_REGISTRATION,
            "户籍地无记录",
            "place of registration not recorded",
        ),
    };
    // The date of moving in is about the actual residence, so it counts only if that is in the division.
    let time = match f.date(RESIDENCE_SINCE) {
        _ if !lives.holds => condition(
            false,
            TIME_LIVED,
            &format!("居住地不是{division}或无记录，不计算"),
            &format!("not counted, as the place of residence is not {division} or not recorded"),
        ),
        Some(since) if (today - since).whole_days() >= i64::from(days) => condition(
            true,
            TIME_LIVED,
            &format!("在{division}已居住{days}日以上"),
            &format!("has lived in {division} for at least {days} days"),
        ),
        Some(_) => condition(
            false,
            TIME_LIVED,
            &format!("在{division}居住不满{days}日"),
            &format!("has lived in {division} for fewer than {days} days"),
        ),
        None => condition(false, TIME_LIVED, "迁入日期无记录", "date of moving in not recorded"),
    };
    Ok(Verdict {
        satisfied: lives.holds && away.holds && time.holds,
        checks: vec![lives, away, time],
    })
}
