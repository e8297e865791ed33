//! `ca.means_test`: income and asset certificates (收入证明, 财产证明) for
//! social assistance and housing guarantee, which village committees no
//! longer issue (民发〔2020〕20号): the civil-affairs means-test centre checks
//! a household's finances itself (居民家庭经济状况核对, 《社会救助暂行办法》
//! 第十一条).

use civex_adapters::citizen_id::CitizenId;

use super::{
    MeansTest,
    facts::{ASSETS_PER_PERSON, INCOME_PER_PERSON, MEANS_FACTS, Reader, Verdict, condition},
};
use crate::error::Error;

const INCOME: [&str; 2] = ["家庭收入", "household income"];
const ASSETS: [&str; 2] = ["家庭财产", "household assets"];

/// Holds if the household's monthly income per person and its financial
/// assets per person, as the means-test centre assessed them, are both at
/// most the program's standards ([`MeansTest`], from `[predicates]`). The
/// reasons state the standards, which are public, never the household's figures.
pub(super) async fn means_test(
    r: &Reader<'_>,
    citizen: &CitizenId,
    program: &str,
    standard: &MeansTest,
) -> Result<Verdict, Error> {
    let f = r.facts(citizen, MEANS_FACTS).await?;
    let (income_line, assets_line) = (standard.income_per_person, standard.assets_per_person);
    let income = condition(
        f.int(INCOME_PER_PERSON).is_some_and(|v| v <= income_line),
        INCOME,
        &format!("家庭人均月收入不高于{program}标准{income_line}元"),
        &format!("monthly household income per person at most the {program} standard of {income_line} yuan"),
    );
    let assets = condition(
        f.int(ASSETS_PER_PERSON).is_some_and(|v| v <= assets_line),
        ASSETS,
        &format!("家庭人均金融资产不高于{program}标准{assets_line}元"),
        &format!("household financial assets per person at most the {program} standard of {assets_line} yuan"),
    );
    Ok(Verdict {
        satisfied: income.holds && assets.holds,
        checks: vec![income, assets],
    })
}
