//! `hukou.registered_in`: the household-registration certificate (户籍证明),
//! which police stations no longer issue for what the ID card and the
//! household booklet prove (公通字〔2016〕21号) and village committees no longer
//! issue at all (民发〔2020〕20号).

use civex_adapters::citizen_id::CitizenId;

use super::facts::{HUKOU_CANCELLED, HUKOU_DIVISION, REGISTRATION_FACTS, Reader, Verdict, condition, single};
use crate::error::Error;

const REGISTRATION: [&str; 2] = ["户籍登记", "household registration"];

/// Holds if the citizen's household registration is in the county-level
/// division and has not been cancelled (注销).
pub(super) async fn registered_in(r: &Reader<'_>, citizen: &CitizenId, division: &str) -> Result<Verdict, Error> {
    let f = r.facts(citizen, REGISTRATION_FACTS).await?;
    Ok(single(condition(
        f.text(HUKOU_DIVISION) == Some(division) && f.flag(HUKOU_CANCELLED) == Some(false),
        REGISTRATION,
        &format!("户籍登记在{division}且未注销"),
        &format!("registered in {division} and not cancelled"),
    )))
}
