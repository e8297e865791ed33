//! Clauses 十二 and 十六, `exam.accompanying_child`: entrance exams for children who
//! moved with their parents.

use civex_adapters::citizen_id::CitizenId;
use futures::future::try_join_all;
use time::Date;

use super::{
    Thresholds,
    facts::{
        CHILD_FACTS, FATHER, Facts, MOTHER, PARENT_FACTS, PENSION_YEARS, PERMIT_DIVISION, PERMIT_HELD, PERMIT_ISSUED,
        Reader, SCHOOL_DIVISION, SCHOOLING_SINCE, Verdict, condition, full_years,
    },
};
use crate::error::Error;

const SCHOOLING: [&str; 2] = ["随迁子女连续就学", "the child's continuous schooling"];
const PARENTS: [&str; 2] = ["父母", "parents"];

/// Clauses 十二 and 十六: "结合随迁子女在当地连续就学年限等情况，达到相关报考条件，逐步享有随迁子女
/// 在当地参加中考和高考的资格", with residence-permit holders' services tied to
/// "连续居住年限和参加社会保险年限".
///
/// The applicant is the child. Holds if the child has been at school in the
/// division continuously for at least [`Thresholds::exam_schooling_years`]
/// (`edu.schooling_since` is the start of continuous schooling there) and one
/// parent — the father or mother recorded in household registration — both
/// holds a residence permit issued in the division at least
/// [`Thresholds::exam_permit_years`] ago and has paid basic pension
/// contributions for at least [`Thresholds::exam_social_insurance_years`]
/// (the years recorded in total: the registry does not split them by place).
/// Children of parents registered in the division hold no permit there and sit
/// the exams as local pupils; the predicate answers for those who moved.
pub(super) async fn exam(
    r: &Reader<'_>,
    citizen: &CitizenId,
    division: &str,
    thresholds: &Thresholds,
    today: Date,
) -> Result<Verdict, Error> {
    let child = r.facts(citizen, CHILD_FACTS).await?;
    let years = thresholds.exam_schooling_years;
    let schooling = condition(
        child.text(SCHOOL_DIVISION) == Some(division)
            && child
                .date(SCHOOLING_SINCE)
                .is_some_and(|since| full_years(since, today) >= i64::from(years)),
        SCHOOLING,
        &format!("在{division}连续就学满{years}年"),
        &format!("at school in {division} for at least {years} years"),
    );
    let parents: Vec<CitizenId> = [FATHER, MOTHER]
        .into_iter()
        .filter_map(|name| child.id(name, today))
        .collect();
    let records = try_join_all(parents.iter().map(|id| r.facts(id, PARENT_FACTS))).await?;
    let (permit_years, insured_years) = (thresholds.exam_permit_years, thresholds.exam_social_insurance_years);
    let qualifies = |f: &Facts| {
        f.flag(PERMIT_HELD) == Some(true)
            && f.text(PERMIT_DIVISION) == Some(division)
            && f.date(PERMIT_ISSUED)
                .is_some_and(|issued| full_years(issued, today) >= i64::from(permit_years))
            && f.int(PENSION_YEARS)
                .is_some_and(|paid| paid >= i64::from(insured_years))
    };
    // One condition for both parents: which parent qualifies, and the other's
    // records, are theirs, not the caller's.
    let parent = condition(
        records.iter().any(qualifies),
        PARENTS,
        &format!("父亲或母亲在{division}持有居住证满{permit_years}年且缴纳基本养老保险满{insured_years}年"),
        &format!(
            "a parent has held a residence permit issued in {division} for at least {permit_years} years and paid \
             basic pension contributions for at least {insured_years} years"
        ),
    );
    Ok(Verdict {
        satisfied: schooling.holds && parent.holds,
        checks: vec![schooling, parent],
    })
}
