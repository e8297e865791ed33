//! Clause 八, `settlement.return_rural`: moving back to the rural place of origin.

use std::collections::HashSet;

use civex_adapters::citizen_id::CitizenId;
use futures::future::try_join_all;
use time::Date;

use super::facts::{
    CHILDREN, CONTRACT, FAMILY_FACTS, FATHER, HOLDINGS, HOMESTEAD, LAND_DIVISION, MAX_CHILDREN, MOTHER, Member, OWNED,
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
    let mut family: Vec<(Member, CitizenId)> = vec![(Member::Applicant, citizen.clone())];
    for (member, name) in [
        (Member::Father, FATHER),
        (Member::Mother, MOTHER),
        (Member::Spouse, SPOUSE),
    ] {
        family.extend(me.id(name, today).map(|id| (member, id)));
    }
    family.extend(
        me.ids(CHILDREN, today)
            .into_iter()
            .take(MAX_CHILDREN)
            .map(|id| (Member::Child, id)),
    );
    // A citizen recorded twice (say, as their own child) counts once.
    let mut seen = HashSet::new();
    family.retain(|(_, id)| seen.insert(id.clone()));
    let holdings = try_join_all(family.iter().map(|(_, id)| r.facts(id, HOLDINGS))).await?;
    let mut found: Vec<[String; 2]> = Vec::new();
    let mut recorded = false;
    for ((member, _), f) in family.iter().zip(&holdings) {
        recorded |= HOLDINGS.iter().any(|name| f.value(name).is_some());
        let land_here = f.text(LAND_DIVISION) == Some(division);
        let held = [
            (
                ["土地承包经营权", "land contract rights"],
                land_here && f.flag(CONTRACT) == Some(true),
            ),
            (
                ["宅基地使用权", "homestead rights"],
                land_here && f.flag(HOMESTEAD) == Some(true),
            ),
            (["自有住房", "an owned home"], f.text(OWNED) == Some(division)),
        ];
        let [who_zh, who_en] = member.names();
        for ([what_zh, what_en], yes) in held {
            if yes {
                found.push([
                    format!("{who_zh}在{division}有{what_zh}"),
                    format!("{who_en} has {what_en} in {division}"),
                ]);
            }
        }
    }
    let means = if !found.is_empty() {
        let zh: Vec<&str> = found.iter().map(|[zh, _]| zh.as_str()).collect();
        let en: Vec<&str> = found.iter().map(|[_, en]| en.as_str()).collect();
        condition(true, MEANS, &zh.join("；"), &en.join("; "))
    } else if !recorded {
        condition(
            false,
            MEANS,
            &format!(
                "本人及家庭成员（父母、配偶、子女）在{division}\
                 的土地承包经营权、宅基地使用权和自有住房均无记录"
            ),
            &format!(
                "land contract rights, homestead rights and owned homes in {division} are not recorded for the \
                 applicant or any family member (parents, spouse, children)"
            ),
        )
    } else {
        let others = family.len() - 1;
        condition(
            false,
            MEANS,
            &format!(
                "本人及{others}名家庭成员（父母、配偶、子女）在{division}\
                 均无土地承包经营权、宅基地使用权或自有住房"
            ),
            &format!(
                "none of the applicant and the {others} family member(s) checked (parents, spouse, children) has \
                 land contract rights, homestead rights or an owned home in {division}"
            ),
        )
    };
    let lives = match me.text(RESIDENCE_DIVISION) {
        Some(d) if d == division => condition(
            true,
            LIVES_THERE,
            &format!("在{division}实际居住"),
            &format!("lives in {division}"),
        ),
        Some(_) => condition(
            false,
            LIVES_THERE,
            &format!("不在{division}居住"),
            &format!("does not live in {division}"),
        ),
        None => condition(false, LIVES_THERE, "居住地无记录", "place of residence not recorded"),
    };
    Ok(Verdict {
        satisfied: means.holds && lives.holds,
        checks: vec![means, lives],
    })
}
