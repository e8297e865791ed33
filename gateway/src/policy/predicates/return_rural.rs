//! Clause 八, `settlement.return_rural`: moving back to the rural place of origin.

use std::collections::HashSet;

use civex_adapters::citizen_id::CitizenId;
use futures::future::try_join_all;
use time::Date;

use super::facts::{
    CHILDREN, CONTRACT, FAMILY_FACTS, FATHER, HOLDINGS, HOMESTEAD, LAND_DIVISION, MAX_CHILDREN, MOTHER, OWNED,
    RESIDENCE_DIVISION, Reader, SPOUSE, Verdict, condition,
};
use crate::error::Error;

const MEANS: [&str; 2] = ["基本生产生活资料", "means of livelihood"];
const LIVES_THERE: [&str; 2] = ["实际居住", "actually lives there"];

/// Clause 八: "如本人或者其家庭成员（含其父母、配偶、子女）在农村原籍地具备土地承包经营权、合法
/// 稳定住所或宅基地使用权等基本生产生活资料且实际居住，可将户口迁回农村原籍地".
///
/// Holds if the applicant, a parent, the spouse or a child (as recorded in the
/// applicant's household registration: father, mother, spouse and the children
/// listed, at most [`MAX_CHILDREN`]) holds land contract rights or homestead
/// rights lying in the division, or owns a home there (合法稳定住所: here an
/// owned home — clause 八 does not add "含租赁" as clause 四 does, and a lease
/// is no means of livelihood); and the applicant actually lives in the division
/// (实际居住). That the division is the place of origin (原籍) is not checked
/// separately: contract and homestead rights belong to members of the village
/// collective there, and the counter sees the applicant's history. Land facts
/// are legitimate here, for purpose `hukou.return_rural`; the predicate is
/// land-based, so never usable for `hukou.settlement` (clause 十五).
pub(super) async fn return_rural(
    r: &Reader<'_>,
    citizen: &CitizenId,
    division: &str,
    today: Date,
) -> Result<Verdict, Error> {
    let me = r.facts(citizen, FAMILY_FACTS).await?;
    let mut family: Vec<CitizenId> = vec![citizen.clone()];
    family.extend(
        [FATHER, MOTHER, SPOUSE]
            .into_iter()
            .filter_map(|name| me.id(name, today)),
    );
    family.extend(me.ids(CHILDREN, today).into_iter().take(MAX_CHILDREN));
    // A citizen recorded twice (say, as their own child) counts once.
    let mut seen = HashSet::new();
    family.retain(|id| seen.insert(id.clone()));
    let holdings = try_join_all(family.iter().map(|id| r.facts(id, HOLDINGS))).await?;
    let held_here = holdings.iter().any(|f| {
        let land_here = f.text(LAND_DIVISION) == Some(division);
        (land_here && (f.flag(CONTRACT) == Some(true) || f.flag(HOMESTEAD) == Some(true)))
            || f.text(OWNED) == Some(division)
    });
    // Who in the family holds what is theirs, not the caller's: one condition for all of them.
    let means = condition(
        held_here,
        MEANS,
        &format!("本人或家庭成员（父母、配偶、子女）在{division}有土地承包经营权、宅基地使用权或自有住房"),
        &format!(
            "the applicant or a family member (parents, spouse, children) has land contract rights, homestead \
             rights or an owned home in {division}"
        ),
    );
    let lives = condition(
        me.text(RESIDENCE_DIVISION) == Some(division),
        LIVES_THERE,
        &format!("在{division}实际居住"),
        &format!("lives in {division}"),
    );
    Ok(Verdict {
        satisfied: means.holds && lives.holds,
        checks: vec![means, lives],
    })
}
