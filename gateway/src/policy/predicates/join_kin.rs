//! Clause 五, `settlement.join_kin`: joining lineal relatives one lives with.

use civex_adapters::citizen_id::CitizenId;
use futures::future::{try_join, try_join_all};
use time::Date;

use super::facts::{ADDRESS_KEY, FATHER, Facts, KIN_FACTS, MOTHER, PARENT_IDS, Reader, Verdict, condition};
use crate::error::Error;

const LINEAL: [&str; 2] = ["三代以内直系亲属关系", "lineal relation within three generations"];
const TOGETHER: [&str; 2] = ["共同居住", "living together"];

/// Clause 五: "三代以内共同居住的直系亲属，可在实际居住地投靠落户，不受年龄限制".
///
/// Holds if the relative (被投靠人) is the applicant's parent, child,
/// grandparent or grandchild — lineal relatives by blood (直系血亲) within three
/// generations, great-grandparents being a fourth — and both are recorded at
/// the same residence address. The relation is read from household
/// registration: the father and mother recorded for the applicant and the
/// relative, and for their parents (a grandparent is a parent's parent, on
/// either side). A spouse is not a lineal relative, and neither are siblings
/// or in-laws: clause 五 does not apply to them (marriage has its own rules,
/// e.g. the last sentence of clause 八).
pub(super) async fn join_kin(
    r: &Reader<'_>,
    applicant: &CitizenId,
    relative: &CitizenId,
    today: Date,
) -> Result<Verdict, Error> {
    let (a, b) = try_join(r.facts(applicant, KIN_FACTS), r.facts(relative, KIN_FACTS)).await?;
    let related = lineal(r, (applicant, &a), (relative, &b), today).await?;
    // Which relation it is, and the relative's own records, are the relative's:
    // the reasons say only whether each condition of clause 五 held.
    let kin = condition(
        related,
        LINEAL,
        "被投靠人与申请人是三代以内的直系亲属",
        "the relative and the applicant are lineal relatives within three generations",
    );
    let together = condition(
        matches!((a.text(ADDRESS_KEY), b.text(ADDRESS_KEY)), (Some(x), Some(y)) if x == y),
        TOGETHER,
        "双方登记在同一住址",
        "both are recorded at the same residence address",
    );
    Ok(Verdict {
        satisfied: kin.holds && together.holds,
        checks: vec![kin, together],
    })
}

/// Whether two people, each with their recorded father and mother, are
/// lineal relatives by blood within three generations: parent, child,
/// grandparent or grandchild. Grandparents and grandchildren need a parent's
/// record, read only when nearer relations fail.
pub(super) async fn lineal(
    r: &Reader<'_>,
    (one, one_facts): (&CitizenId, &Facts),
    (other, other_facts): (&CitizenId, &Facts),
    today: Date,
) -> Result<bool, Error> {
    Ok(one_facts.names(FATHER, other)
        || one_facts.names(MOTHER, other)
        || other_facts.names(FATHER, one)
        || other_facts.names(MOTHER, one)
        || names_as_parent(r, &parents(one_facts, today), other).await?
        || names_as_parent(r, &parents(other_facts, today), one).await?)
}

/// The father and mother recorded in `f`.
pub(super) fn parents(f: &Facts, today: Date) -> Vec<CitizenId> {
    [FATHER, MOTHER]
        .into_iter()
        .filter_map(|name| f.id(name, today))
        .collect()
}

/// Whether the record of one of `people` names `parent` as father or mother.
async fn names_as_parent(r: &Reader<'_>, people: &[CitizenId], parent: &CitizenId) -> Result<bool, Error> {
    let records = try_join_all(people.iter().map(|p| r.facts(p, PARENT_IDS))).await?;
    Ok(records
        .iter()
        .any(|f| f.names(FATHER, parent) || f.names(MOTHER, parent)))
}
