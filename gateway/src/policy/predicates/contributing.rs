//! `hrss.contributing`: the social-insurance record (社保缴费证明), which the
//! human-resources department's own register answers: anything that can be
//! checked online is no longer demanded (国办发〔2018〕47号).

use civex_adapters::citizen_id::CitizenId;

use super::facts::{CONTINUOUS_MONTHS, Reader, Verdict, condition, months_en, single};
use crate::error::Error;

/// Holds if the citizen has paid basic pension insurance for at least
/// `months` months without a gap up to the last month.
pub(super) async fn contributing(r: &Reader<'_>, citizen: &CitizenId, months: u32) -> Result<Verdict, Error> {
    let f = r.facts(citizen, &[CONTINUOUS_MONTHS]).await?;
    Ok(single(condition(
        f.int(CONTINUOUS_MONTHS).is_some_and(|paid| paid >= i64::from(months)),
        ["社会保险", "social insurance"],
        &format!("连续缴纳基本养老保险满{months}个月"),
        &format!("basic pension insurance paid for {} without a gap", months_en(months)),
    )))
}
