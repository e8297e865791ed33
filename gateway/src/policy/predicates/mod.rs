//! Eligibility predicates for `ExchangeService.Check`: yes/no answers to the
//! questions the household-registration reform asks (曲政发〔2015〕82号), each
//! with its reasons, the clause it applies and the departments it read.
//!
//! A predicate is data minimisation at work: a department learns whether an
//! applicant may settle in a town, join a relative, move back to the rural
//! place of origin, get a residence permit or sit the entrance exams where
//! they live, not the records behind the answer. Every condition checked gives
//! one reason, `中文 / English`: the condition as the clause states it (with
//! the division asked about and the threshold) and whether it held, worded the
//! same either way (DESIGN §11). A reason never says why a condition failed
//! (a fact not recorded, held elsewhere, a number too small), never names the
//! kind of relation found, and states conditions over family members for the
//! family as a whole: whose record decided is that person's, not the caller's.
//!
//! Facts come only through [`Departments::fetch`], the path `ExchangeService.Query`
//! takes, so each department's deadline and the all-or-nothing rule apply; a
//! relative's facts are read the same way. A fact a department does not hold
//! fails its condition: a predicate never guesses. Thresholds the document leaves to local rules are
//! [`Thresholds`], from configuration.
//!
//! # Layout
//! - `mod.rs`: the predicates' names and parameters, [`PREDICATES`] and
//!   [`predicate`], [`Thresholds`], and [`evaluate`], which checks a call and
//!   hands it to the predicate's own file.
//! - `params.rs`: a call's parameters, checked (a county-level division code,
//!   a relative's citizen ID).
//! - `facts.rs`: the facts predicates read and how they are read through
//!   [`Departments`]; the conditions and verdicts every predicate builds.
//! - `urban.rs` (四), `join_kin.rs` (五), `return_rural.rs` (八),
//!   `residence_permit.rs` (十二), `exam.rs` (十二、十六): one predicate each.
//! - The certificates the clean-up removed (证明事项清理, DESIGN §15), each
//!   answered instead by a predicate: `registered_in.rs` (户籍证明),
//!   `kin.rs` (亲属关系证明), `residence.rs` (居住证明), `stable.rs`
//!   (合法稳定住所、就业证明, shared with `urban.rs`), `contributing.rs`
//!   (社保缴费证明), `means_test.rs` (收入、财产证明), and `status.rs` for the
//!   predicates over one registered status (健在、无犯罪记录、婚姻状况、无房).
//! - `tests.rs`: the five predicates of 曲政发〔2015〕82号 against a table of
//!   hand-made citizens, and what all predicates share. Every branch of every
//!   predicate is checked against the demo data's citizens in
//!   `cli/tests/demo_branches.rs` and, over mTLS, `tests/it/predicates.rs`.

mod contributing;
mod exam;
mod facts;
mod join_kin;
mod kin;
mod means_test;
mod params;
mod registered_in;
mod residence;
mod residence_permit;
mod return_rural;
mod stable;
mod status;
#[cfg(test)]
#[allow(clippy::type_complexity)] // Table rows are tuples on purpose: the expectation sits next to the input.
mod tests;
mod urban;

use std::collections::{BTreeMap, HashMap};

use civex_adapters::{Department, citizen_id::CitizenId};
use serde::{Deserialize, Serialize};
use time::Date;

use self::{
    contributing::contributing,
    exam::exam,
    facts::Reader,
    join_kin::join_kin,
    kin::related,
    means_test::means_test,
    params::{check_params, required},
    registered_in::registered_in,
    residence::months_at_least,
    residence_permit::residence_permit,
    return_rural::return_rural,
    stable::{stable_employment, stable_residence},
    status::{alive, no_criminal_record, owns_none, unmarried},
    urban::urban,
};
use crate::{
    departments::Departments,
    error::{Error, Reason},
};

/// Clause 四: settling in a town where one has a home or a job.
pub const SETTLEMENT_URBAN: &str = "settlement.urban";
/// Clause 五: joining lineal relatives one lives with.
pub const SETTLEMENT_JOIN_KIN: &str = "settlement.join_kin";
/// Clause 八: moving back to the rural place of origin.
pub const SETTLEMENT_RETURN_RURAL: &str = "settlement.return_rural";
/// Clause 十二: applying for a residence permit.
pub const RESIDENCE_PERMIT_APPLY: &str = "residence_permit.apply";
/// Clauses 十二 and 十六: entrance exams for children who moved with their parents.
pub const EXAM_ACCOMPANYING_CHILD: &str = "exam.accompanying_child";
/// 户籍证明: registered in a division.
pub const HUKOU_REGISTERED_IN: &str = "hukou.registered_in";
/// 亲属关系证明: two people are close relatives.
pub const KIN_RELATED: &str = "kin.related";
/// 婚姻状况证明: has no spouse.
pub const CA_UNMARRIED: &str = "ca.unmarried";
/// 居住证明: has lived in a division for some months.
pub const RESIDENCE_MONTHS_AT_LEAST: &str = "residence.months_at_least";
/// 合法稳定住所证明: owns a home or holds a registered lease in a division.
pub const HOUSING_STABLE_RESIDENCE: &str = "housing.stable_residence";
/// 合法稳定就业证明: registered employment in a division.
pub const HRSS_STABLE_EMPLOYMENT: &str = "hrss.stable_employment";
/// 社保缴费证明: has paid into the pension for some months without a gap.
pub const HRSS_CONTRIBUTING: &str = "hrss.contributing";
/// 无房证明: owns no dwelling.
pub const HOUSING_OWNS_NONE: &str = "housing.owns_none";
/// 健在证明: is alive.
pub const PS_ALIVE: &str = "ps.alive";
/// 无犯罪记录证明: has no criminal conviction.
pub const PS_NO_CRIMINAL_RECORD: &str = "ps.no_criminal_record";
/// 收入、财产证明: the household passes a program's means test.
pub const CA_MEANS_TEST: &str = "ca.means_test";

/// Parameter: a six-digit county-level division code (县级行政区划代码).
pub const DIVISION: &str = "division";
/// Parameter: the citizen ID of the relative to be joined (被投靠人).
pub const RELATIVE_CITIZEN_ID: &str = "relative_citizen_id";
/// Parameter: a number of whole months, 1 to 1200.
pub const MONTHS: &str = "months";
/// Parameter: a means-tested program configured in `[predicates.means_test]`.
pub const PROGRAM: &str = "program";

/// One eligibility rule of the reform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Predicate {
    /// `<topic>.<rule>`, usable as a consent scope and in access rights.
    pub name: &'static str,
    pub description: &'static str,
    /// The parameters a call must give, no more and no fewer.
    pub params: &'static [&'static str],
    /// The document and clause applied, e.g. `曲政发〔2015〕82号（四）`.
    pub basis: &'static str,
    /// The departments it may read, in catalogue order; an answer names those it actually read.
    pub sources: &'static [Department],
    /// Reads land facts: never usable for purpose `hukou.settlement` (clause 十五).
    pub land_based: bool,
    /// The only purposes it may be used for; empty for any.
    pub purposes: &'static [&'static str],
    /// The facts it reads that are never served on its own (the criminal
    /// record, a household's finances): only this predicate reads them.
    pub unserved: &'static [&'static str],
}

/// Purpose of hiring for a post a law closes to people with convictions.
const RESTRICTED_POST: &str = super::purposes::RESTRICTED_POST;

const fn certificate_check(
    name: &'static str,
    description: &'static str,
    params: &'static [&'static str],
    basis: &'static str,
    sources: &'static [Department],
) -> Predicate {
    Predicate {
        name,
        description,
        params,
        basis,
        sources,
        land_based: false,
        purposes: &[],
        unserved: &[],
    }
}

/// Every predicate `ExchangeService.Check` answers.
pub static PREDICATES: &[Predicate] = &[
    Predicate {
        name: SETTLEMENT_URBAN,
        description: "Has a legal stable residence (an owned home or a registered lease) or legal stable employment \
                      in the county-level division, and so may settle in its towns \
                      (合法稳定住所（含租赁）或合法稳定就业)",
        params: &[DIVISION],
        basis: "曲政发〔2015〕82号（四）",
        // Public security only when `settlement_residence_years` is set.
        sources: &[
            Department::PublicSecurity,
            Department::HumanResources,
            Department::Housing,
        ],
        land_based: false,
        purposes: &[],
        unserved: &[],
    },
    Predicate {
        name: SETTLEMENT_JOIN_KIN,
        description: "The applicant and the relative are lineal relatives within three generations (parent, child, \
                      grandparent, grandchild) who live together, so the applicant may settle where they live \
                      (三代以内共同居住的直系亲属投靠落户)",
        params: &[RELATIVE_CITIZEN_ID],
        basis: "曲政发〔2015〕82号（五）",
        sources: &[Department::PublicSecurity],
        land_based: false,
        purposes: &[],
        unserved: &[],
    },
    Predicate {
        name: SETTLEMENT_RETURN_RURAL,
        description: "The applicant or a family member (parents, spouse, children) holds land contract rights, \
                      homestead rights or an owned home in the rural place of origin, and the applicant actually \
                      lives there, so the registration may move back (返农村原籍地落户)",
        params: &[DIVISION],
        basis: "曲政发〔2015〕82号（八）",
        sources: &[Department::PublicSecurity, Department::Housing, Department::Land],
        land_based: true,
        purposes: &[],
        unserved: &[],
    },
    Predicate {
        name: RESIDENCE_PERMIT_APPLY,
        description: "Lives in the division, away from the place of household registration, for at least the \
                      configured number of days (30 by default), and so may apply for a residence permit (居住证)",
        params: &[DIVISION],
        basis: "曲政发〔2015〕82号（十二）",
        sources: &[Department::PublicSecurity],
        land_based: false,
        purposes: &[],
        unserved: &[],
    },
    Predicate {
        name: EXAM_ACCOMPANYING_CHILD,
        description: "A child who moved with the parents (随迁子女) has been at school in the division for the \
                      configured years, and a parent has held a residence permit there and paid social insurance \
                      for the configured years, so the child may sit the entrance exams there (中考、高考)",
        params: &[DIVISION],
        basis: "曲政发〔2015〕82号（十二）（十六）",
        sources: &[
            Department::PublicSecurity,
            Department::Education,
            Department::HumanResources,
        ],
        land_based: false,
        purposes: &[],
        unserved: &[],
    },
    certificate_check(
        HUKOU_REGISTERED_IN,
        "The household registration is in the county-level division and has not been cancelled \
         (户籍登记在该地且未注销), in place of a household-registration certificate (户籍证明)",
        &[DIVISION],
        "公通字〔2016〕21号；民发〔2020〕20号",
        &[Department::PublicSecurity],
    ),
    certificate_check(
        KIN_RELATED,
        "The applicant and the relative are close relatives (近亲属: spouses, parent and child, siblings, \
         grandparent and grandchild) as household registration records them, in place of a kinship \
         certificate (亲属关系证明); the relative consents too",
        &[RELATIVE_CITIZEN_ID],
        "公通字〔2016〕21号；民发〔2020〕20号；《民法典》第一千零四十五条",
        &[Department::PublicSecurity],
    ),
    certificate_check(
        CA_UNMARRIED,
        "Registered as having no spouse: single, divorced or widowed (无配偶), in place of a \
         marital-status certificate (婚姻状况证明)",
        &[],
        "公通字〔2016〕21号；民发〔2020〕20号",
        &[Department::CivilAffairs],
    ),
    certificate_check(
        RESIDENCE_MONTHS_AT_LEAST,
        "Has actually lived in the county-level division for at least the given number of whole months, \
         in place of a residence certificate (居住证明)",
        &[DIVISION, MONTHS],
        "公通字〔2016〕21号；民发〔2020〕20号",
        &[Department::PublicSecurity],
    ),
    certificate_check(
        HOUSING_STABLE_RESIDENCE,
        "Owns a home or holds a registered lease in the county-level division, in place of a certificate \
         of legal stable residence (合法稳定住所证明)",
        &[DIVISION],
        "曲政发〔2015〕82号（四）；国办发〔2018〕47号",
        &[Department::Housing],
    ),
    certificate_check(
        HRSS_STABLE_EMPLOYMENT,
        "Has registered employment in the county-level division, in place of a certificate of legal \
         stable employment (合法稳定就业证明)",
        &[DIVISION],
        "曲政发〔2015〕82号（四）；国办发〔2018〕47号",
        &[Department::HumanResources],
    ),
    certificate_check(
        HRSS_CONTRIBUTING,
        "Has paid basic pension insurance for at least the given number of months without a gap, in \
         place of a social-insurance record (社保缴费证明)",
        &[MONTHS],
        "国办发〔2018〕47号",
        &[Department::HumanResources],
    ),
    certificate_check(
        HOUSING_OWNS_NONE,
        "The real-estate register records no dwelling in the applicant's name, in place of a no-property \
         certificate (无房证明); never where a dwelling lies",
        &[],
        "国办发〔2018〕47号",
        &[Department::Housing],
    ),
    certificate_check(
        PS_ALIVE,
        "Registered as living: the registration was not cancelled for death, in place of a certificate of \
         being alive (健在证明)",
        &[],
        "民发〔2020〕20号；公通字〔2016〕21号",
        &[Department::PublicSecurity],
    ),
    Predicate {
        name: PS_NO_CRIMINAL_RECORD,
        description: "No criminal conviction on record, in place of a no-criminal-record certificate \
                      (无犯罪记录证明); only for posts a law closes to people with convictions, and never \
                      the record itself",
        params: &[],
        basis: "公通字〔2021〕19号；民发〔2020〕20号",
        sources: &[Department::PublicSecurity],
        land_based: false,
        purposes: &[RESTRICTED_POST],
        unserved: &[civex_adapters::catalogue::CRIMINAL_RECORD],
    },
    Predicate {
        name: CA_MEANS_TEST,
        description: "The household's income and financial assets per person, as the means-test centre \
                      assessed them, are within the program's standards (set in [predicates.means_test]), in \
                      place of income and asset certificates (收入、财产证明); never the figures themselves",
        params: &[PROGRAM],
        basis: "《社会救助暂行办法》（国务院令第649号）第十一条；民发〔2020〕20号",
        sources: &[Department::CivilAffairs],
        land_based: false,
        purposes: &[],
        unserved: &[
            civex_adapters::catalogue::MEANS_INCOME,
            civex_adapters::catalogue::MEANS_ASSETS,
        ],
    },
];

/// The facts a predicate may read: of the applicant, and of the people it
/// reaches (a relative, family members, parents, grandparents).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reads {
    pub applicant: Vec<&'static str>,
    pub reached: Vec<&'static str>,
}

/// What predicate `name` may read: a correction of one of these facts
/// concerns its earlier answers (DESIGN §16). Empty for a name that is no predicate.
pub fn reads(name: &str) -> Reads {
    use facts::*;
    let (applicant, reached): (&[&[&'static str]], &[&[&'static str]]) = match name {
        SETTLEMENT_URBAN => (&[URBAN_FACTS, RESIDENCE_FACTS], &[]),
        SETTLEMENT_JOIN_KIN => (&[KIN_FACTS], &[KIN_FACTS, PARENT_IDS]),
        SETTLEMENT_RETURN_RURAL => (&[FAMILY_FACTS, HOLDINGS], &[HOLDINGS]),
        RESIDENCE_PERMIT_APPLY => (&[PERMIT_FACTS], &[]),
        EXAM_ACCOMPANYING_CHILD => (&[CHILD_FACTS], &[PARENT_FACTS]),
        HUKOU_REGISTERED_IN => (&[REGISTRATION_FACTS], &[]),
        KIN_RELATED => (&[RELATION_FACTS], &[RELATION_FACTS, PARENT_IDS]),
        CA_UNMARRIED => (&[&[MARITAL_STATUS]], &[]),
        RESIDENCE_MONTHS_AT_LEAST => (&[RESIDENCE_FACTS], &[]),
        HOUSING_STABLE_RESIDENCE => (&[HOUSING_FACTS], &[]),
        HRSS_STABLE_EMPLOYMENT => (&[EMPLOYMENT_FACTS], &[]),
        HRSS_CONTRIBUTING => (&[&[CONTINUOUS_MONTHS]], &[]),
        HOUSING_OWNS_NONE => (&[&[OWNED_COUNT]], &[]),
        PS_ALIVE => (&[&[DECEASED]], &[]),
        PS_NO_CRIMINAL_RECORD => (&[&[CONVICTED]], &[]),
        CA_MEANS_TEST => (&[MEANS_FACTS], &[]),
        _ => (&[], &[]),
    };
    let flat = |groups: &[&[&'static str]]| groups.iter().flat_map(|g| g.iter().copied()).collect();
    Reads {
        applicant: flat(applicant),
        reached: flat(reached),
    }
}

/// The day `now` falls on in China (UTC+8): the day predicates count from.
pub fn day_in_china(now: std::time::SystemTime) -> Date {
    (time::OffsetDateTime::from(now) + time::Duration::hours(8)).date()
}

/// Looks a predicate up, refusing unknown names with `UNKNOWN_PREDICATE`.
pub fn predicate(name: &str) -> Result<&'static Predicate, Error> {
    if name.is_empty() {
        return Err(Error::new(Reason::UnknownPredicate, "predicate is required"));
    }
    PREDICATES.iter().find(|p| p.name == name).ok_or_else(|| {
        let shown = crate::policy::labels::logged_label(name);
        Error::new(Reason::UnknownPredicate, format!("unknown predicate {shown:?}"))
    })
}

/// Thresholds that 曲政发〔2015〕82号 leaves to local rules, from configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Thresholds {
    /// Days lived away from the place of registration before one applies for a
    /// residence permit (default 30: clause 十二, 居住三十日以上).
    pub residence_permit_days: u32,
    /// Years of continuous schooling in the division a child needs for the
    /// entrance exams (default 3; clause 十二 leaves it to local rules).
    pub exam_schooling_years: u32,
    /// Years a parent must have held a residence permit in the division (default 3).
    pub exam_permit_years: u32,
    /// Years of a parent's social insurance (basic pension) contributions (default 3).
    pub exam_social_insurance_years: u32,
    /// Years of actual residence in the division needed to settle there
    /// (default 0: clause 四 sets none; a positive value adds the condition).
    pub settlement_residence_years: u32,
    /// The standards of each means-tested program `ca.means_test` answers
    /// for, by the program's name (`[predicates.means_test.<program>]`).
    /// Each city sets its own; the defaults are the demo's.
    pub means_test: BTreeMap<String, MeansTest>,
}

/// A means-tested program's standards (低保标准 and the like), in yuan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeansTest {
    /// Highest monthly household income per person.
    pub income_per_person: i64,
    /// Highest household financial assets per person.
    pub assets_per_person: i64,
}

impl MeansTest {
    const fn new(income_per_person: i64, assets_per_person: i64) -> MeansTest {
        MeansTest {
            income_per_person,
            assets_per_person,
        }
    }
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            residence_permit_days: 30,
            exam_schooling_years: 3,
            exam_permit_years: 3,
            exam_social_insurance_years: 3,
            settlement_residence_years: 0,
            means_test: BTreeMap::from([
                // 低保 (minimum living allowance) and 住房保障 (housing guarantee).
                ("dibao".to_owned(), MeansTest::new(800, 40_000)),
                ("housing_guarantee".to_owned(), MeansTest::new(2_600, 150_000)),
            ]),
        }
    }
}

/// A predicate's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub satisfied: bool,
    /// One per condition checked, `中文 / English`, saying whether it held.
    pub reasons: Vec<String>,
    /// The document and clause applied.
    pub basis: String,
    /// Codes of the departments actually read, in catalogue order.
    pub sources: Vec<String>,
    /// The other people whose records were read (relatives, family
    /// members, parents): the call is recorded under their pseudonyms too.
    pub related: Vec<CitizenId>,
}

/// A call's parameters, checked against its predicate before anything is read.
#[derive(Debug)]
pub struct Params<'a> {
    predicate: &'static Predicate,
    citizen: &'a CitizenId,
    given: params::Given,
    today: Date,
}

impl Params<'_> {
    /// The people the parameters name besides the applicant (a relative to
    /// be joined): each must consent as well.
    pub fn named(&self) -> Vec<CitizenId> {
        self.given.relative.iter().cloned().collect()
    }
}

/// Checks `params` for `p`: exactly the predicate's parameters
/// (`INVALID_REQUEST` otherwise); a `division` must be a six-digit
/// county-level division code, a `relative_citizen_id` a valid citizen ID
/// (`INVALID_CITIZEN_ID`) other than the applicant's, `months` a whole number
/// from 1 to 1200, a `program` one of [`Thresholds::means_test`].
pub fn check<'a>(
    p: &Predicate,
    citizen: &'a CitizenId,
    params: &HashMap<String, String>,
    thresholds: &Thresholds,
    today: Date,
) -> Result<Params<'a>, Error> {
    let predicate = predicate(p.name)?;
    let given = check_params(predicate, params, citizen, thresholds, today)?;
    Ok(Params {
        predicate,
        citizen,
        given,
        today,
    })
}

/// Evaluates `p` for `citizen` on `today`, after [`check`]ing its parameters.
/// A department that cannot answer fails the whole call
/// (`SOURCE_UNAVAILABLE`, from [`Departments`]).
pub async fn evaluate(
    p: &Predicate,
    citizen: &CitizenId,
    params: &HashMap<String, String>,
    departments: &Departments,
    thresholds: &Thresholds,
    today: Date,
) -> Result<Outcome, Error> {
    evaluate_checked(check(p, citizen, params, thresholds, today)?, departments, thresholds).await
}

/// Evaluates a call whose parameters [`check`] accepted.
pub async fn evaluate_checked(
    call: Params<'_>,
    departments: &Departments,
    thresholds: &Thresholds,
) -> Result<Outcome, Error> {
    let Params {
        predicate: known,
        citizen,
        given,
        today,
    } = call;
    let reader = Reader::new(departments);
    let division = given.division.as_deref();
    let verdict = match known.name {
        SETTLEMENT_URBAN => urban(&reader, citizen, required(division)?, thresholds, today).await?,
        SETTLEMENT_JOIN_KIN => join_kin(&reader, citizen, required(given.relative.as_ref())?, today).await?,
        SETTLEMENT_RETURN_RURAL => return_rural(&reader, citizen, required(division)?, today).await?,
        RESIDENCE_PERMIT_APPLY => residence_permit(&reader, citizen, required(division)?, thresholds, today).await?,
        EXAM_ACCOMPANYING_CHILD => exam(&reader, citizen, required(division)?, thresholds, today).await?,
        HUKOU_REGISTERED_IN => registered_in(&reader, citizen, required(division)?).await?,
        KIN_RELATED => related(&reader, citizen, required(given.relative.as_ref())?, today).await?,
        CA_UNMARRIED => unmarried(&reader, citizen).await?,
        RESIDENCE_MONTHS_AT_LEAST => {
            months_at_least(&reader, citizen, required(division)?, required(given.months)?, today).await?
        }
        HOUSING_STABLE_RESIDENCE => stable_residence(&reader, citizen, required(division)?).await?,
        HRSS_STABLE_EMPLOYMENT => stable_employment(&reader, citizen, required(division)?).await?,
        HRSS_CONTRIBUTING => contributing(&reader, citizen, required(given.months)?).await?,
        HOUSING_OWNS_NONE => owns_none(&reader, citizen).await?,
        PS_ALIVE => alive(&reader, citizen).await?,
        PS_NO_CRIMINAL_RECORD => no_criminal_record(&reader, citizen).await?,
        CA_MEANS_TEST => {
            let program = required(given.program.as_deref())?;
            let standard = thresholds
                .means_test
                .get(program)
                .ok_or_else(|| Error::internal("a checked program has no standards"))?;
            means_test(&reader, citizen, program, standard).await?
        }
        other => {
            return Err(Error::new(
                Reason::UnknownPredicate,
                format!("unknown predicate {other:?}"),
            ));
        }
    };
    Ok(Outcome {
        satisfied: verdict.satisfied,
        reasons: verdict.checks.into_iter().map(|c| c.reason).collect(),
        basis: known.basis.to_owned(),
        sources: reader.departments(),
        related: reader.people().into_iter().filter(|p| p != citizen).collect(),
    })
}
