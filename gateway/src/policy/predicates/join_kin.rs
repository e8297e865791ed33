//! Clause 五, `settlement.join_kin`: joining lineal relatives one lives with.

use civex_adapters::citizen_id::CitizenId;
use futures::future::{try_join, try_join_all};
use time::Date;

use super::facts::{ADDRESS_KEY, FATHER, Facts, KIN_FACTS, MOTHER, PARENT_IDS, Reader, SPOUSE, Verdict, condition};
use crate::error::Error;

/// A lineal relation within three generations, from the applicant's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Relation {
    Father,
    Mother,
    Child,
    Grandparent,
    Grandchild,
}

impl Relation {
    fn names(self) -> [&'static str; 2] {
        match self {
            Relation::Father => ["父亲", "father"],
            Relation::Mother => ["母亲", "mother"],
            Relation::Child => ["子女", "child"],
            Relation::Grandparent => ["祖父母或外祖父母", "grandparent"],
            Relation::Grandchild => ["孙子女或外孙子女", "grandchild"],
        }
    }
}

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
/// or in-laws: clause 五 does not apply to them, and the reason says so for a
/// spouse (marriage has its own rules, e.g. the last sentence of clause 八).
pub(super) async fn join_kin(
    r: &Reader<'_>,
    applicant: &CitizenId,
    relative: &CitizenId,
    today: Date,
) -> Result<Verdict, Error> {
    let (a, b) = try_join(r.facts(applicant, KIN_FACTS), r.facts(relative, KIN_FACTS)).await?;
    // Grandparents and grandchildren need a parent's record, read only when nearer relations fail.
    let relation = if a.names(FATHER, relative) {
        Some(Relation::Father)
    } else if a.names(MOTHER, relative) {
        Some(Relation::Mother)
    } else if b.names(FATHER, applicant) || b.names(MOTHER, applicant) {
        Some(Relation::Child)
    } else if names_as_parent(r, &parents(&a, today), relative).await? {
        Some(Relation::Grandparent)
    } else if names_as_parent(r, &parents(&b, today), applicant).await? {
        Some(Relation::Grandchild)
    } else {
        None
    };
    let spouses = a.names(SPOUSE, relative) || b.names(SPOUSE, applicant);
    let kin = match relation {
        Some(relation) => {
            let [zh, en] = relation.names();
            condition(
                true,
                LINEAL,
                &format!("被投靠人是申请人的{zh}"),
                &format!("the relative is the applicant's {en}"),
            )
        }
        None if spouses => condition(
            false,
            LINEAL,
            "被投靠人是申请人的配偶；配偶不是直系血亲，不适用第（五）项",
            "the relative is the applicant's spouse; a spouse is not a lineal relative, so clause 五 does not apply",
        ),
        None => condition(
            false,
            LINEAL,
            "户籍记录中未发现三代以内的直系亲属关系",
            "the household records show no lineal relation within three generations",
        ),
    };
    let together = match (a.text(ADDRESS_KEY), b.text(ADDRESS_KEY)) {
        (Some(x), Some(y)) if x == y => condition(true, TOGETHER, "住址相同", "same residence address"),
        (Some(_), Some(_)) => condition(false, TOGETHER, "住址不同", "different residence addresses"),
        (None, Some(_)) => condition(
            false,
            TOGETHER,
            "申请人住址无记录",
            "the applicant's residence address is not recorded",
        ),
        (Some(_), None) => condition(
            false,
            TOGETHER,
            "被投靠人住址无记录",
            "the relative's residence address is not recorded",
        ),
        (None, None) => condition(
            false,
            TOGETHER,
            "双方住址均无记录",
            "neither residence address is recorded",
        ),
    };
    Ok(Verdict {
        satisfied: kin.holds && together.holds,
        checks: vec![kin, together],
    })
}

/// The father and mother recorded in `f`.
fn parents(f: &Facts, today: Date) -> Vec<CitizenId> {
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
