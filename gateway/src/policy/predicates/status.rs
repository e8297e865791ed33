//! Predicates over one registered status, each answering a certificate that
//! village committees may no longer issue (民发〔2020〕20号) and that the
//! responsible department now checks itself: `ps.alive` (健在证明),
//! `ps.no_criminal_record` (无犯罪记录证明), `ca.unmarried` (婚姻状况证明),
//! `housing.owns_none` (无房证明).
//!
//! A status not recorded fails, as every condition does: a register that
//! does not know the citizen proves nothing either way.

use civex_adapters::citizen_id::CitizenId;

use super::facts::{CONVICTED, DECEASED, MARITAL_STATUS, OWNED_COUNT, Reader, Verdict, condition, single};
use crate::error::Error;

/// Holds if public security records the citizen as living: the registration
/// was not cancelled for death.
pub(super) async fn alive(r: &Reader<'_>, citizen: &CitizenId) -> Result<Verdict, Error> {
    let f = r.facts(citizen, &[DECEASED]).await?;
    Ok(single(condition(
        f.flag(DECEASED) == Some(false),
        ["健在", "alive"],
        "户籍登记为健在",
        "registered as living",
    )))
}

/// Holds if public security records no criminal conviction. The record
/// itself (`ps.criminal_record.convicted`) is never served; this check is
/// open only to purposes where a law bars people with convictions
/// ([`super::Predicate::purposes`]).
pub(super) async fn no_criminal_record(r: &Reader<'_>, citizen: &CitizenId) -> Result<Verdict, Error> {
    let f = r.facts(citizen, &[CONVICTED]).await?;
    Ok(single(condition(
        f.flag(CONVICTED) == Some(false),
        ["犯罪记录", "criminal record"],
        "无犯罪记录",
        "no criminal conviction on record",
    )))
}

/// Holds if civil affairs records the citizen as having no spouse (无配偶):
/// single, divorced or widowed.
pub(super) async fn unmarried(r: &Reader<'_>, citizen: &CitizenId) -> Result<Verdict, Error> {
    let f = r.facts(citizen, &[MARITAL_STATUS]).await?;
    Ok(single(condition(
        matches!(f.text(MARITAL_STATUS), Some("single" | "divorced" | "widowed")),
        ["婚姻状况", "marital status"],
        "登记为无配偶（未婚、离婚或丧偶）",
        "registered as having no spouse (single, divorced or widowed)",
    )))
}

/// Holds if the real-estate register records no dwelling in the citizen's
/// name. Never where a dwelling lies: the count is all it reads.
pub(super) async fn owns_none(r: &Reader<'_>, citizen: &CitizenId) -> Result<Verdict, Error> {
    let f = r.facts(citizen, &[OWNED_COUNT]).await?;
    Ok(single(condition(
        f.int(OWNED_COUNT) == Some(0),
        ["住房", "housing"],
        "名下无登记住房",
        "no dwelling registered in the citizen's name",
    )))
}
