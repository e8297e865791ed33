//! Clauses 十二 and 十六, `exam.accompanying_child`: entrance exams for children who
//! moved with their parents.

use civex_adapters::citizen_id::CitizenId;
use futures::future::try_join_all;
use time::Date;

use super::{
    Thresholds,
    facts::{
        CHILD_FACTS, Condition, FATHER, Facts, MOTHER, Member, PARENT_FACTS, PENSION_YEARS, PERMIT_DIVISION,
        PERMIT_HELD, PERMIT_ISSUED, Reader, SCHOOL_DIVISION, SCHOOLING_SINCE, Verdict, condition, full_years,
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
    let schooling = match (child.text(SCHOOL_DIVISION), child.date(SCHOOLING_SINCE)) {
        (Some(d), Some(since)) if d == division => {
            if full_years(since, today) >= i64::from(years) {
                condition(
                    true,
                    SCHOOLING,
                    &format!("在{division}连续就学满{years}年"),
                    &format!("at school in {division} for at least {years} years"),
                )
            } else {
                condition(
                    false,
                    SCHOOLING,
                    &format!("在{division}连续就学不满{years}年"),
                    &format!("at school in {division} for fewer than {years} years"),
                )
            }
        }
        (Some(d), None) if d == division => condition(
            false,
            SCHOOLING,
            "连续就学起始日期无记录",
            "start of continuous schooling not recorded",
        ),
        (Some(_), _) => condition(
            false,
            SCHOOLING,
            &format!("就学地不在{division}"),
            &format!("the school is not in {division}"),
        ),
        (None, _) => condition(false, SCHOOLING, "无就学记录", "no schooling recorded"),
    };
    let parents: Vec<(Member, CitizenId)> = [(Member::Father, FATHER), (Member::Mother, MOTHER)]
        .into_iter()
        .filter_map(|(member, name)| child.id(name, today).map(|id| (member, id)))
        .collect();
    let mut checks = vec![schooling];
    let mut some_parent = false;
    if parents.is_empty() {
        checks.push(condition(
            false,
            PARENTS,
            "户籍记录中无父母",
            "no parent is recorded in the household record",
        ));
    } else {
        let records = try_join_all(parents.iter().map(|(_, id)| r.facts(id, PARENT_FACTS))).await?;
        for ((member, _), f) in parents.iter().zip(&records) {
            let permit = parent_permit(*member, f, division, thresholds.exam_permit_years, today);
            let insurance = parent_insurance(*member, f, thresholds.exam_social_insurance_years);
            some_parent |= permit.holds && insurance.holds;
            checks.push(permit);
            checks.push(insurance);
        }
    }
    Ok(Verdict {
        satisfied: checks[0].holds && some_parent,
        checks,
    })
}

/// Whether a parent has held a residence permit issued in `division` for `years`.
fn parent_permit(member: Member, f: &Facts, division: &str, years: u32, today: Date) -> Condition {
    let [who_zh, who_en] = member.names();
    let topic_zh = format!("{who_zh}的居住证");
    let topic_en = format!("{who_en}'s residence permit");
    let topic = [topic_zh.as_str(), topic_en.as_str()];
    match (f.flag(PERMIT_HELD), f.text(PERMIT_DIVISION), f.date(PERMIT_ISSUED)) {
        (Some(true), Some(d), Some(issued)) if d == division => {
            if full_years(issued, today) >= i64::from(years) {
                condition(
                    true,
                    topic,
                    &format!("在{division}持有满{years}年"),
                    &format!("held in {division} for at least {years} years"),
                )
            } else {
                condition(
                    false,
                    topic,
                    &format!("在{division}持有不满{years}年"),
                    &format!("held in {division} for fewer than {years} years"),
                )
            }
        }
        (Some(true), Some(d), _) if d != division => condition(
            false,
            topic,
            &format!("不是在{division}办理"),
            &format!("not issued in {division}"),
        ),
        (Some(true), _, _) => condition(
            false,
            topic,
            "办理地或日期无记录",
            "place or date of issue not recorded",
        ),
        (Some(false), _, _) => condition(false, topic, "未持有", "not held"),
        (None, _, _) => condition(false, topic, "无记录", "not recorded"),
    }
}

/// Whether a parent has paid basic pension contributions for `years`.
fn parent_insurance(member: Member, f: &Facts, years: u32) -> Condition {
    let [who_zh, who_en] = member.names();
    let topic_zh = format!("{who_zh}的社会保险（养老保险）");
    let topic_en = format!("{who_en}'s social insurance (basic pension)");
    let topic = [topic_zh.as_str(), topic_en.as_str()];
    match f.int(PENSION_YEARS) {
        Some(paid) if paid >= i64::from(years) => condition(
            true,
            topic,
            &format!("缴费满{years}年"),
            &format!("contributions for at least {years} years"),
        ),
        Some(_) => condition(
            false,
            topic,
            &format!("缴费不满{years}年"),
            &format!("contributions for fewer than {years} years"),
        ),
        None => condition(false, topic, "无记录", "not recorded"),
    }
}
