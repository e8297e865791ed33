//! Eligibility predicates for `ExchangeService.Check`: yes/no answers to the
//! questions the household-registration reform asks (曲政发〔2015〕82号), each
//! with its reasons, the clause it applies and the departments it read.
//!
//! A predicate is data minimisation at work: a department learns whether an
//! applicant may settle in a town, join a relative, move back to the rural
//! place of origin, get a residence permit or sit the entrance exams where
//! they live, not the records behind the answer. Every condition checked gives
//! one reason, `中文 / English`, saying whether it held; a reason names what
//! the question itself names (the division asked about, the relation found,
//! the threshold) and never the underlying values (another division, a date,
//! a number of years).
//!
//! Facts come only through [`Sources::fetch`], the path `ExchangeService.Query`
//! takes, so each department's deadline and the all-or-nothing rule apply; a
//! relative's facts are read the same way. A fact a department does not hold
//! fails its condition, and the reason says it is not recorded: a predicate
//! never guesses. Thresholds the document leaves to local rules are
//! [`Thresholds`], from configuration.

use std::{
    collections::{BTreeSet, HashMap, HashSet},
    sync::{Mutex, PoisonError},
};

use civex_adapters::{Attribute, Department, catalogue, value::parse_date};
use civex_proto::v1::{Fact, fact};
use futures::future::{try_join, try_join_all};
use serde::{Deserialize, Serialize};
use time::Date;

use crate::{
    citizen_id::{CitizenId, is_province},
    error::{Error, Reason},
    sources::Sources,
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

/// Parameter: a six-digit county-level division code (县级行政区划代码).
pub const DIVISION: &str = "division";
/// Parameter: the citizen ID of the relative to be joined (被投靠人).
pub const RELATIVE_CITIZEN_ID: &str = "relative_citizen_id";

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
    },
    Predicate {
        name: RESIDENCE_PERMIT_APPLY,
        description: "Lives in the division, away from the place of household registration, for at least the \
                      configured number of days (30 by default), and so may apply for a residence permit (居住证)",
        params: &[DIVISION],
        basis: "曲政发〔2015〕82号（十二）",
        sources: &[Department::PublicSecurity],
        land_based: false,
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
    },
];

/// Looks a predicate up, refusing unknown names with `UNKNOWN_PREDICATE`.
pub fn predicate(name: &str) -> Result<&'static Predicate, Error> {
    if name.is_empty() {
        return Err(Error::new(Reason::UnknownPredicate, "predicate is required"));
    }
    PREDICATES.iter().find(|p| p.name == name).ok_or_else(|| {
        let shown: String = name.chars().take(80).collect();
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
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            residence_permit_days: 30,
            exam_schooling_years: 3,
            exam_permit_years: 3,
            exam_social_insurance_years: 3,
            settlement_residence_years: 0,
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
}

/// Evaluates `p` for `citizen` on `today`. Parameters must be exactly the
/// predicate's (`INVALID_REQUEST` otherwise); a `division` must be a six-digit
/// county-level division code, a `relative_citizen_id` a valid citizen ID
/// (`INVALID_CITIZEN_ID`) other than the applicant's. A department that
/// cannot answer fails the whole call (`SOURCE_UNAVAILABLE`, from [`Sources`]).
pub async fn evaluate(
    p: &Predicate,
    citizen: &CitizenId,
    params: &HashMap<String, String>,
    sources: &Sources,
    thresholds: &Thresholds,
    today: Date,
) -> Result<Outcome, Error> {
    let known = predicate(p.name)?;
    let given = check_params(known, params, citizen, today)?;
    let reader = Reader::new(sources);
    let division = given.division.as_deref();
    let verdict = match known.name {
        SETTLEMENT_URBAN => urban(&reader, citizen, required(division)?, thresholds, today).await?,
        SETTLEMENT_JOIN_KIN => join_kin(&reader, citizen, required(given.relative.as_ref())?, today).await?,
        SETTLEMENT_RETURN_RURAL => return_rural(&reader, citizen, required(division)?, today).await?,
        RESIDENCE_PERMIT_APPLY => residence_permit(&reader, citizen, required(division)?, thresholds, today).await?,
        EXAM_ACCOMPANYING_CHILD => exam(&reader, citizen, required(division)?, thresholds, today).await?,
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
    })
}

/// The parameters of a call, checked.
#[derive(Debug, Default)]
struct Given {
    division: Option<String>,
    relative: Option<CitizenId>,
}

fn check_params(
    p: &Predicate,
    params: &HashMap<String, String>,
    citizen: &CitizenId,
    today: Date,
) -> Result<Given, Error> {
    let mut unknown: Vec<&str> = params
        .keys()
        .map(String::as_str)
        .filter(|key| !p.params.iter().any(|known| known == key))
        .collect();
    // The smallest name, so that the message does not depend on the map's order.
    unknown.sort_unstable();
    if let Some(key) = unknown.first() {
        let shown: String = key.chars().take(40).collect();
        return Err(Error::new(
            Reason::InvalidRequest,
            format!(
                "{} takes no parameter {shown:?}; it takes {}",
                p.name,
                p.params.join(", ")
            ),
        ));
    }
    let mut given = Given::default();
    for &name in p.params {
        let value = params
            .get(name)
            .ok_or_else(|| Error::new(Reason::InvalidRequest, format!("{} needs parameter {name}", p.name)))?;
        match name {
            DIVISION => given.division = Some(county_division(value)?.to_owned()),
            RELATIVE_CITIZEN_ID => {
                let relative = CitizenId::parse_on(value, today)
                    .map_err(|e| Error::new(Reason::InvalidCitizenId, format!("{RELATIVE_CITIZEN_ID}: {e}")))?;
                if relative == *citizen {
                    return Err(Error::new(
                        Reason::InvalidRequest,
                        format!("{RELATIVE_CITIZEN_ID} must name a citizen other than the applicant"),
                    ));
                }
                given.relative = Some(relative);
            }
            other => {
                return Err(Error::internal(format!(
                    "{} declares unknown parameter {other}",
                    p.name
                )));
            }
        }
    }
    Ok(given)
}

/// A parameter [`check_params`] has made sure of.
fn required<T>(value: Option<T>) -> Result<T, Error> {
    value.ok_or_else(|| Error::internal("a checked parameter is missing"))
}

/// Checks a county-level administrative division code (县级行政区划代码): six
/// ASCII digits, a province-level first pair, and neither a `00` second pair
/// (a province itself) nor a `00` third pair (a prefecture-level city). Whether
/// the code exists is left to the departments, as for citizen IDs: division
/// tables change over time.
fn county_division(value: &str) -> Result<&str, Error> {
    let refuse = |why: &str| {
        Error::new(
            Reason::InvalidRequest,
            format!("parameter {DIVISION} must be a six-digit county-level division code such as 530302: {why}"),
        )
    };
    let bytes = value.as_bytes();
    if bytes.len() != 6 || !bytes.iter().all(u8::is_ascii_digit) {
        return Err(refuse("expected six ASCII digits"));
    }
    let province = (bytes[0] - b'0') * 10 + (bytes[1] - b'0');
    if !is_province(province) {
        return Err(refuse("the first two digits name no province"));
    }
    if &value[2..4] == "00" {
        return Err(refuse("this code names a province"));
    }
    if &value[4..] == "00" {
        return Err(refuse("this code names a prefecture-level city"));
    }
    Ok(value)
}

// The facts predicates read, by catalogue name.
const HUKOU_DIVISION: &str = "ps.hukou.division";
const RESIDENCE_DIVISION: &str = "ps.residence.division";
const RESIDENCE_SINCE: &str = "ps.residence.since";
const ADDRESS_KEY: &str = "ps.residence.address_key";
const FATHER: &str = "ps.kin.father_id";
const MOTHER: &str = "ps.kin.mother_id";
const SPOUSE: &str = "ps.kin.spouse_id";
const CHILDREN: &str = "ps.kin.children_ids";
const PERMIT_HELD: &str = "ps.residence_permit.held";
const PERMIT_DIVISION: &str = "ps.residence_permit.division";
const PERMIT_ISSUED: &str = "ps.residence_permit.issued_on";
const SCHOOL_DIVISION: &str = "edu.school_division";
const SCHOOLING_SINCE: &str = "edu.schooling_since";
const EMPLOYED: &str = "hrss.employment.registered";
const EMPLOYMENT_DIVISION: &str = "hrss.employment.division";
const PENSION_YEARS: &str = "hrss.pension.contribution_years";
const OWNED: &str = "housing.owned_residence.division";
const LEASE: &str = "housing.registered_lease.division";
const CONTRACT: &str = "land.contract_rights.held";
const HOMESTEAD: &str = "land.homestead_rights.held";
const LAND_DIVISION: &str = "land.rights.division";

// What each step reads in one call to the sources.
const URBAN_FACTS: &[&str] = &[OWNED, LEASE, EMPLOYED, EMPLOYMENT_DIVISION];
const RESIDENCE_FACTS: &[&str] = &[RESIDENCE_DIVISION, RESIDENCE_SINCE];
const KIN_FACTS: &[&str] = &[FATHER, MOTHER, SPOUSE, ADDRESS_KEY];
const PARENT_IDS: &[&str] = &[FATHER, MOTHER];
const FAMILY_FACTS: &[&str] = &[RESIDENCE_DIVISION, FATHER, MOTHER, SPOUSE, CHILDREN];
const HOLDINGS: &[&str] = &[CONTRACT, HOMESTEAD, LAND_DIVISION, OWNED];
const PERMIT_FACTS: &[&str] = &[RESIDENCE_DIVISION, RESIDENCE_SINCE, HUKOU_DIVISION];
const CHILD_FACTS: &[&str] = &[SCHOOL_DIVISION, SCHOOLING_SINCE, FATHER, MOTHER];
const PARENT_FACTS: &[&str] = &[PERMIT_HELD, PERMIT_DIVISION, PERMIT_ISSUED, PENSION_YEARS];

/// Children looked at for clause 八, at most; a longer list is cut short.
const MAX_CHILDREN: usize = 16;

/// Reads facts through the sources and remembers which departments it asked.
struct Reader<'a> {
    sources: &'a Sources,
    read: Mutex<BTreeSet<Department>>,
}

impl<'a> Reader<'a> {
    fn new(sources: &'a Sources) -> Reader<'a> {
        Reader {
            sources,
            read: Mutex::new(BTreeSet::new()),
        }
    }

    /// The facts `names` about `citizen`, all or an error.
    async fn facts(&self, citizen: &str, names: &[&'static str]) -> Result<Facts, Error> {
        let mut attributes: Vec<&'static Attribute> = Vec::with_capacity(names.len());
        for name in names {
            attributes.push(
                catalogue::attribute(name)
                    .ok_or_else(|| Error::internal(format!("predicate fact {name} is not in the catalogue")))?,
            );
        }
        self.read
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(attributes.iter().map(|a| a.department));
        let facts = self.sources.fetch(citizen, &attributes).await?;
        Ok(Facts(names.iter().copied().zip(facts).collect()))
    }

    /// Codes of the departments asked so far, in catalogue order.
    fn departments(&self) -> Vec<String> {
        let read = self.read.lock().unwrap_or_else(PoisonError::into_inner);
        Department::ALL
            .iter()
            .filter(|d| read.contains(d))
            .map(|d| d.code().to_owned())
            .collect()
    }
}

/// Facts about one citizen, by attribute name; an unrecorded fact reads as `None`.
#[derive(Debug, Default)]
struct Facts(Vec<(&'static str, Fact)>);

impl Facts {
    fn value(&self, name: &str) -> Option<&fact::Value> {
        self.0
            .iter()
            .find(|(n, _)| *n == name)
            .filter(|(_, f)| f.recorded)
            .and_then(|(_, f)| f.value.as_ref())
    }

    fn text(&self, name: &str) -> Option<&str> {
        match self.value(name)? {
            fact::Value::TextValue(s) => Some(s.as_str()),
            _ => None,
        }
    }

    fn flag(&self, name: &str) -> Option<bool> {
        match self.value(name)? {
            fact::Value::BoolValue(b) => Some(*b),
            _ => None,
        }
    }

    fn int(&self, name: &str) -> Option<i64> {
        match self.value(name)? {
            fact::Value::IntValue(i) => Some(*i),
            _ => None,
        }
    }

    fn date(&self, name: &str) -> Option<Date> {
        match self.value(name)? {
            fact::Value::DateValue(s) => parse_date(s),
            _ => None,
        }
    }

    /// A relative's ID; one that does not parse is treated as not recorded.
    fn id(&self, name: &str, today: Date) -> Option<CitizenId> {
        self.text(name).and_then(|s| CitizenId::parse_on(s, today).ok())
    }

    /// A comma-separated list of IDs, skipping any that do not parse.
    fn ids(&self, name: &str, today: Date) -> Vec<CitizenId> {
        self.text(name)
            .map(|s| {
                s.split(',')
                    .filter_map(|one| CitizenId::parse_on(one.trim(), today).ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether the fact `name` is `id` (compared in normal form: a lower-case `x` counts as `X`).
    fn names(&self, name: &str, id: &CitizenId) -> bool {
        self.text(name).is_some_and(|s| s.eq_ignore_ascii_case(id.as_str()))
    }
}

/// One condition checked: whether it held, and the reason given for it.
struct Check {
    holds: bool,
    reason: String,
}

/// A condition's reason: `<topic>：<detail>——符合 / <topic>: <detail> — holds`.
fn check(holds: bool, topic: [&str; 2], zh: &str, en: &str) -> Check {
    let (verdict_zh, verdict_en) = if holds {
        ("符合", "holds")
    } else {
        ("不符合", "does not hold")
    };
    Check {
        holds,
        reason: format!("{}：{zh}——{verdict_zh} / {}: {en} — {verdict_en}", topic[0], topic[1]),
    }
}

/// The conditions checked and whether the predicate holds.
struct Verdict {
    satisfied: bool,
    checks: Vec<Check>,
}

/// Whole years from `from` to `to` (negative if `from` is later).
fn full_years(from: Date, to: Date) -> i64 {
    let years = i64::from(to.year()) - i64::from(from.year());
    if (u8::from(to.month()), to.day()) < (u8::from(from.month()), from.day()) {
        years - 1
    } else {
        years
    }
}

const OWNED_HOME: [&str; 2] = ["合法稳定住所（自有住房）", "legal stable residence (owned home)"];
const REGISTERED_LEASE: [&str; 2] = ["合法稳定住所（租赁）", "legal stable residence (registered lease)"];
const EMPLOYMENT: [&str; 2] = ["合法稳定就业", "legal stable employment"];
const YEARS_OF_RESIDENCE: [&str; 2] = ["居住年限", "years of residence"];

/// Clause 四: "在各县（市、区）城区、产业园区、建制镇（含乡）有合法稳定住所（含租赁）或有合法
/// 稳定就业的人员……可以在当地申请登记常住户口".
///
/// Holds if the applicant owns a home in the division, holds a registered
/// lease there (租赁登记备案: "含租赁") or has registered employment there
/// (就业登记). Every county-level division has towns; which town within it is
/// the registering police station's business, not the gateway's. Land facts are
/// never read: giving up land rights must not be a condition (clause 十五).
/// Clause 四 sets no years of residence; a local rule may add one with
/// [`Thresholds::settlement_residence_years`], which also reads the actual
/// place of residence from public security.
async fn urban(
    r: &Reader<'_>,
    citizen: &CitizenId,
    division: &str,
    thresholds: &Thresholds,
    today: Date,
) -> Result<Verdict, Error> {
    let f = r.facts(citizen.as_str(), URBAN_FACTS).await?;
    let owned = match f.text(OWNED) {
        Some(d) if d == division => check(
            true,
            OWNED_HOME,
            &format!("在{division}有自有住房"),
            &format!("owns a home in {division}"),
        ),
        Some(_) => check(
            false,
            OWNED_HOME,
            &format!("自有住房不在{division}"),
            &format!("the owned home is not in {division}"),
        ),
        None => check(false, OWNED_HOME, "无记录", "not recorded"),
    };
    let lease = match f.text(LEASE) {
        Some(d) if d == division => check(
            true,
            REGISTERED_LEASE,
            &format!("在{division}有登记备案的住房租赁"),
            &format!("holds a registered lease in {division}"),
        ),
        Some(_) => check(
            false,
            REGISTERED_LEASE,
            &format!("登记的租赁不在{division}"),
            &format!("the registered lease is not in {division}"),
        ),
        None => check(false, REGISTERED_LEASE, "无记录", "not recorded"),
    };
    let job = match (f.flag(EMPLOYED), f.text(EMPLOYMENT_DIVISION)) {
        (Some(true), Some(d)) if d == division => check(
            true,
            EMPLOYMENT,
            &format!("在{division}有就业登记"),
            &format!("registered employment in {division}"),
        ),
        (Some(true), Some(_)) => check(
            false,
            EMPLOYMENT,
            &format!("登记的就业不在{division}"),
            &format!("the registered employment is not in {division}"),
        ),
        (Some(true), None) => check(
            false,
            EMPLOYMENT,
            "就业地无记录",
            "the place of employment is not recorded",
        ),
        (Some(false), _) => check(false, EMPLOYMENT, "无就业登记", "employment is not registered"),
        (None, _) => check(false, EMPLOYMENT, "无记录", "not recorded"),
    };
    let mut satisfied = owned.holds || lease.holds || job.holds;
    let mut checks = vec![owned, lease, job];
    let years = thresholds.settlement_residence_years;
    if years > 0 {
        let ps = r.facts(citizen.as_str(), RESIDENCE_FACTS).await?;
        let stay = match (ps.text(RESIDENCE_DIVISION), ps.date(RESIDENCE_SINCE)) {
            (Some(d), Some(since)) if d == division => {
                if full_years(since, today) >= i64::from(years) {
                    check(
                        true,
                        YEARS_OF_RESIDENCE,
                        &format!("在{division}居住满{years}年"),
                        &format!("has lived in {division} for at least {years} years"),
                    )
                } else {
                    check(
                        false,
                        YEARS_OF_RESIDENCE,
                        &format!("在{division}居住不满{years}年"),
                        &format!("has lived in {division} for fewer than {years} years"),
                    )
                }
            }
            (Some(d), _) if d != division => check(
                false,
                YEARS_OF_RESIDENCE,
                &format!("不在{division}居住"),
                &format!("does not live in {division}"),
            ),
            _ => check(
                false,
                YEARS_OF_RESIDENCE,
                "居住地或居住起始日期无记录",
                "place or start of residence not recorded",
            ),
        };
        satisfied &= stay.holds;
        checks.push(stay);
    }
    Ok(Verdict { satisfied, checks })
}

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
async fn join_kin(r: &Reader<'_>, applicant: &CitizenId, relative: &CitizenId, today: Date) -> Result<Verdict, Error> {
    let (a, b) = try_join(
        r.facts(applicant.as_str(), KIN_FACTS),
        r.facts(relative.as_str(), KIN_FACTS),
    )
    .await?;
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
            check(
                true,
                LINEAL,
                &format!("被投靠人是申请人的{zh}"),
                &format!("the relative is the applicant's {en}"),
            )
        }
        None if spouses => check(
            false,
            LINEAL,
            "被投靠人是申请人的配偶；配偶不是直系血亲，不适用第（五）项",
            "the relative is the applicant's spouse; a spouse is not a lineal relative, so clause 五 does not apply",
        ),
        None => check(
            false,
            LINEAL,
            "户籍记录中未发现三代以内的直系亲属关系",
            "the household records show no lineal relation within three generations",
        ),
    };
    let together = match (a.text(ADDRESS_KEY), b.text(ADDRESS_KEY)) {
        (Some(x), Some(y)) if x == y => check(true, TOGETHER, "住址相同", "same residence address"),
        (Some(_), Some(_)) => check(false, TOGETHER, "住址不同", "different residence addresses"),
        (None, Some(_)) => check(
            false,
            TOGETHER,
            "申请人住址无记录",
            "the applicant's residence address is not recorded",
        ),
        (Some(_), None) => check(
            false,
            TOGETHER,
            "被投靠人住址无记录",
            "the relative's residence address is not recorded",
        ),
        (None, None) => check(
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
    let records = try_join_all(people.iter().map(|p| r.facts(p.as_str(), PARENT_IDS))).await?;
    Ok(records
        .iter()
        .any(|f| f.names(FATHER, parent) || f.names(MOTHER, parent)))
}

/// Whose holdings count under clause 八: "本人或者其家庭成员（含其父母、配偶、子女）".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Member {
    Applicant,
    Father,
    Mother,
    Spouse,
    Child,
}

impl Member {
    fn names(self) -> [&'static str; 2] {
        match self {
            Member::Applicant => ["本人", "the applicant"],
            Member::Father => ["父亲", "the father"],
            Member::Mother => ["母亲", "the mother"],
            Member::Spouse => ["配偶", "the spouse"],
            Member::Child => ["子女", "a child"],
        }
    }
}

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
async fn return_rural(r: &Reader<'_>, citizen: &CitizenId, division: &str, today: Date) -> Result<Verdict, Error> {
    let me = r.facts(citizen.as_str(), FAMILY_FACTS).await?;
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
    let holdings = try_join_all(family.iter().map(|(_, id)| r.facts(id.as_str(), HOLDINGS))).await?;
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
        check(true, MEANS, &zh.join("；"), &en.join("; "))
    } else if !recorded {
        check(
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
        check(
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
        Some(d) if d == division => check(
            true,
            LIVES_THERE,
            &format!("在{division}实际居住"),
            &format!("lives in {division}"),
        ),
        Some(_) => check(
            false,
            LIVES_THERE,
            &format!("不在{division}居住"),
            &format!("does not live in {division}"),
        ),
        None => check(false, LIVES_THERE, "居住地无记录", "place of residence not recorded"),
    };
    Ok(Verdict {
        satisfied: means.holds && lives.holds,
        checks: vec![means, lives],
    })
}

const PLACE_OF_RESIDENCE: [&str; 2] = ["居住地", "place of residence"];
const AWAY_FROM_REGISTRATION: [&str; 2] = ["离开户籍所在地", "away from the place of household registration"];
const TIME_LIVED: [&str; 2] = ["居住时间", "time lived there"];

/// Clause 十二: "公民离开户籍所在地到其它街道、乡镇居住三十日以上的，应当在居住地申领居住证".
///
/// Holds if the applicant's actual residence is in the division, the
/// registration is not, and the applicant has lived there for at least
/// [`Thresholds::residence_permit_days`] days (三十日以上: thirty or more).
/// Registries record divisions at county level, so a move between townships
/// (街道、乡镇) of the same county does not show: such an applicant is answered
/// "registered in the division", and the counter decides on the address.
async fn residence_permit(
    r: &Reader<'_>,
    citizen: &CitizenId,
    division: &str,
    thresholds: &Thresholds,
    today: Date,
) -> Result<Verdict, Error> {
    let f = r.facts(citizen.as_str(), PERMIT_FACTS).await?;
    let days = thresholds.residence_permit_days;
    let lives = match f.text(RESIDENCE_DIVISION) {
        Some(d) if d == division => check(
            true,
            PLACE_OF_RESIDENCE,
            &format!("在{division}居住"),
            &format!("lives in {division}"),
        ),
        Some(_) => check(
            false,
            PLACE_OF_RESIDENCE,
            &format!("不在{division}居住"),
            &format!("does not live in {division}"),
        ),
        None => check(false, PLACE_OF_RESIDENCE, "无记录", "not recorded"),
    };
    let away = match f.text(HUKOU_DIVISION) {
        Some(d) if d != division => check(
            true,
            AWAY_FROM_REGISTRATION,
            &format!("户籍不在{division}"),
            &format!("registered outside {division}"),
        ),
        Some(_) => check(
            false,
            AWAY_FROM_REGISTRATION,
            &format!("户籍在{division}"),
            &format!("registered in {division}"),
        ),
        None => check(
            false,
            AWAY_FROM_REGISTRATION,
            "户籍地无记录",
            "place of registration not recorded",
        ),
    };
    // The date of moving in is about the actual residence, so it counts only if that is in the division.
    let time = match f.date(RESIDENCE_SINCE) {
        _ if !lives.holds => check(
            false,
            TIME_LIVED,
            &format!("居住地不是{division}或无记录，不计算"),
            &format!("not counted, as the place of residence is not {division} or not recorded"),
        ),
        Some(since) if (today - since).whole_days() >= i64::from(days) => check(
            true,
            TIME_LIVED,
            &format!("在{division}已居住{days}日以上"),
            &format!("has lived in {division} for at least {days} days"),
        ),
        Some(_) => check(
            false,
            TIME_LIVED,
            &format!("在{division}居住不满{days}日"),
            &format!("has lived in {division} for fewer than {days} days"),
        ),
        None => check(false, TIME_LIVED, "迁入日期无记录", "date of moving in not recorded"),
    };
    Ok(Verdict {
        satisfied: lives.holds && away.holds && time.holds,
        checks: vec![lives, away, time],
    })
}

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
async fn exam(
    r: &Reader<'_>,
    citizen: &CitizenId,
    division: &str,
    thresholds: &Thresholds,
    today: Date,
) -> Result<Verdict, Error> {
    let child = r.facts(citizen.as_str(), CHILD_FACTS).await?;
    let years = thresholds.exam_schooling_years;
    let schooling = match (child.text(SCHOOL_DIVISION), child.date(SCHOOLING_SINCE)) {
        (Some(d), Some(since)) if d == division => {
            if full_years(since, today) >= i64::from(years) {
                check(
                    true,
                    SCHOOLING,
                    &format!("在{division}连续就学满{years}年"),
                    &format!("at school in {division} for at least {years} years"),
                )
            } else {
                check(
                    false,
                    SCHOOLING,
                    &format!("在{division}连续就学不满{years}年"),
                    &format!("at school in {division} for fewer than {years} years"),
                )
            }
        }
        (Some(d), None) if d == division => check(
            false,
            SCHOOLING,
            "连续就学起始日期无记录",
            "start of continuous schooling not recorded",
        ),
        (Some(_), _) => check(
            false,
            SCHOOLING,
            &format!("就学地不在{division}"),
            &format!("the school is not in {division}"),
        ),
        (None, _) => check(false, SCHOOLING, "无就学记录", "no schooling recorded"),
    };
    let parents: Vec<(Member, CitizenId)> = [(Member::Father, FATHER), (Member::Mother, MOTHER)]
        .into_iter()
        .filter_map(|(member, name)| child.id(name, today).map(|id| (member, id)))
        .collect();
    let mut checks = vec![schooling];
    let mut some_parent = false;
    if parents.is_empty() {
        checks.push(check(
            false,
            PARENTS,
            "户籍记录中无父母",
            "no parent is recorded in the household record",
        ));
    } else {
        let records = try_join_all(parents.iter().map(|(_, id)| r.facts(id.as_str(), PARENT_FACTS))).await?;
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
fn parent_permit(member: Member, f: &Facts, division: &str, years: u32, today: Date) -> Check {
    let [who_zh, who_en] = member.names();
    let topic_zh = format!("{who_zh}的居住证");
    let topic_en = format!("{who_en}'s residence permit");
    let topic = [topic_zh.as_str(), topic_en.as_str()];
    match (f.flag(PERMIT_HELD), f.text(PERMIT_DIVISION), f.date(PERMIT_ISSUED)) {
        (Some(true), Some(d), Some(issued)) if d == division => {
            if full_years(issued, today) >= i64::from(years) {
                check(
                    true,
                    topic,
                    &format!("在{division}持有满{years}年"),
                    &format!("held in {division} for at least {years} years"),
                )
            } else {
                check(
                    false,
                    topic,
                    &format!("在{division}持有不满{years}年"),
                    &format!("held in {division} for fewer than {years} years"),
                )
            }
        }
        (Some(true), Some(d), _) if d != division => check(
            false,
            topic,
            &format!("不是在{division}办理"),
            &format!("not issued in {division}"),
        ),
        (Some(true), _, _) => check(
            false,
            topic,
            "办理地或日期无记录",
            "place or date of issue not recorded",
        ),
        (Some(false), _, _) => check(false, topic, "未持有", "not held"),
        (None, _, _) => check(false, topic, "无记录", "not recorded"),
    }
}

/// Whether a parent has paid basic pension contributions for `years`.
fn parent_insurance(member: Member, f: &Facts, years: u32) -> Check {
    let [who_zh, who_en] = member.names();
    let topic_zh = format!("{who_zh}的社会保险（养老保险）");
    let topic_en = format!("{who_en}'s social insurance (basic pension)");
    let topic = [topic_zh.as_str(), topic_en.as_str()];
    match f.int(PENSION_YEARS) {
        Some(paid) if paid >= i64::from(years) => check(
            true,
            topic,
            &format!("缴费满{years}年"),
            &format!("contributions for at least {years} years"),
        ),
        Some(_) => check(
            false,
            topic,
            &format!("缴费不满{years}年"),
            &format!("contributions for fewer than {years} years"),
        ),
        None => check(false, topic, "无记录", "not recorded"),
    }
}

#[cfg(test)]
#[allow(clippy::type_complexity)] // Table rows are tuples on purpose: the expectation sits next to the input.
mod tests {
    use std::{collections::BTreeMap, sync::Arc, time::Duration};

    use civex_adapters::{Adapter, EmbeddedRegistry, Record};
    use serde_json::Value;
    use time::macros::date;

    use super::*;

    const TODAY: Date = date!(2026 - 06 - 01);
    const QILIN: &str = "530302";
    const ZHANYI: &str = "530303";
    const MALONG: &str = "530304";
    const HUIZE: &str = "530326";
    const XUANWEI: &str = "530381";
    const CHUXIONG: &str = "532301";

    /// Hand-made citizens and what each department holds about them.
    #[derive(Default)]
    struct World {
        people: BTreeMap<&'static str, CitizenId>,
        records: BTreeMap<(Department, String), BTreeMap<String, Value>>,
    }

    impl World {
        fn person(&mut self, name: &'static str, division: &str, birth: Date, sequence: u16) {
            let id = CitizenId::from_parts(division, birth, sequence).unwrap();
            assert!(
                self.people.values().all(|other| *other != id),
                "{name} has a duplicate ID"
            );
            assert!(self.people.insert(name, id).is_none(), "{name} is defined twice");
        }

        fn id(&self, name: &str) -> &CitizenId {
            self.people.get(name).unwrap_or_else(|| panic!("no person {name}"))
        }

        fn set(&mut self, name: &str, attribute: &str, value: impl Into<Value>) {
            let department = catalogue::attribute(attribute).unwrap().department;
            let id = self.id(name).as_str().to_owned();
            self.records
                .entry((department, id))
                .or_default()
                .insert(attribute.to_owned(), value.into());
        }

        /// Records `other`'s ID as `name`'s `attribute` (a relation).
        fn link(&mut self, name: &str, attribute: &str, other: &str) {
            let other = self.id(other).as_str().to_owned();
            self.set(name, attribute, other);
        }

        fn sources(&self) -> (tempfile::TempDir, Sources) {
            let dir = tempfile::tempdir().unwrap();
            let db = sled::open(dir.path()).unwrap();
            let mut adapters: Vec<Arc<dyn Adapter>> = Vec::new();
            for department in Department::ALL {
                let records = self
                    .records
                    .iter()
                    .filter(|((d, _), _)| *d == department)
                    .map(|((_, id), facts)| {
                        let record = Record {
                            as_of: 1_700_000_000,
                            facts: facts.clone(),
                        };
                        (id.clone(), record)
                    });
                adapters.push(Arc::new(EmbeddedRegistry::replace(&db, department, records).unwrap()));
            }
            (dir, Sources::new(adapters, Duration::from_secs(5)))
        }
    }

    /// The citizens every case is checked against.
    fn world() -> World {
        let mut w = World::default();

        // A three-generation household in Qilin; the uncle lives apart, and so
        // does the mother's mother.
        w.person("grandpa", QILIN, date!(1950 - 03 - 02), 11);
        w.person("grandma", QILIN, date!(1952 - 07 - 08), 12);
        w.person("father", QILIN, date!(1977 - 05 - 06), 13);
        w.person("mother", XUANWEI, date!(1979 - 01 - 09), 14);
        w.person("child", QILIN, date!(2008 - 09 - 10), 15);
        w.person("sibling", QILIN, date!(2012 - 02 - 03), 16);
        w.person("uncle", QILIN, date!(1981 - 04 - 04), 17);
        w.person("granny", XUANWEI, date!(1955 - 10 - 10), 18);
        for name in ["grandpa", "grandma", "father", "mother", "child", "sibling"] {
            w.set(name, ADDRESS_KEY, "k-home");
            w.set(name, HUKOU_DIVISION, QILIN);
            w.set(name, RESIDENCE_DIVISION, QILIN);
            w.set(name, RESIDENCE_SINCE, "1985-01-01");
        }
        w.link("grandpa", SPOUSE, "grandma");
        w.link("grandma", SPOUSE, "grandpa");
        w.link("father", SPOUSE, "mother");
        w.link("mother", SPOUSE, "father");
        for kid in ["father", "uncle"] {
            w.link(kid, FATHER, "grandpa");
            w.link(kid, MOTHER, "grandma");
        }
        for kid in ["child", "sibling"] {
            w.link(kid, FATHER, "father");
            w.link(kid, MOTHER, "mother");
        }
        w.link("mother", MOTHER, "granny");
        w.set("granny", ADDRESS_KEY, "k-granny");
        w.set("uncle", ADDRESS_KEY, "k-uncle");
        w.set("uncle", RESIDENCE_DIVISION, QILIN);
        w.set("uncle", RESIDENCE_SINCE, "2026-01-01");
        w.set("father", OWNED, QILIN);
        w.set("father", EMPLOYED, false);
        w.set("father", PERMIT_HELD, false);
        w.set("father", PENSION_YEARS, 20);
        w.set("mother", EMPLOYED, true);
        w.set("mother", EMPLOYMENT_DIVISION, QILIN);
        w.set("mother", PERMIT_HELD, false);
        w.set("mother", PENSION_YEARS, 15);
        w.set("uncle", LEASE, QILIN);
        w.set("uncle", EMPLOYED, true);
        w.set("uncle", EMPLOYMENT_DIVISION, MALONG);
        w.set("sibling", SCHOOL_DIVISION, QILIN);
        w.set("sibling", SCHOOLING_SINCE, "2019-09-01");

        // Housing and work elsewhere; no work; nothing recorded at all.
        w.person("stranger", ZHANYI, date!(1970 - 01 - 01), 19);
        w.set("stranger", OWNED, XUANWEI);
        w.set("stranger", LEASE, ZHANYI);
        w.set("stranger", EMPLOYED, true);
        w.set("stranger", EMPLOYMENT_DIVISION, MALONG);
        w.set("stranger", ADDRESS_KEY, "k-stranger");
        w.set("stranger", HUKOU_DIVISION, ZHANYI);
        w.set("stranger", RESIDENCE_DIVISION, XUANWEI);
        w.set("stranger", RESIDENCE_SINCE, "2020-01-01");
        w.person("jobless", ZHANYI, date!(1990 - 01 - 01), 21);
        w.set("jobless", EMPLOYED, false);
        w.person("bare", ZHANYI, date!(1960 - 01 - 01), 23);

        // Farmers in Huize with a son back from Qilin and a daughter in Xuanwei.
        w.person("farmer", HUIZE, date!(1955 - 02 - 02), 31);
        w.person("farmwife", HUIZE, date!(1957 - 03 - 03), 32);
        w.person("returnee", HUIZE, date!(1982 - 04 - 04), 33);
        w.person("emigrant", HUIZE, date!(1985 - 05 - 05), 34);
        w.link("farmer", SPOUSE, "farmwife");
        w.link("farmwife", SPOUSE, "farmer");
        for kid in ["returnee", "emigrant"] {
            w.link(kid, FATHER, "farmer");
            w.link(kid, MOTHER, "farmwife");
        }
        let kids = format!("{},{}", w.id("returnee"), w.id("emigrant"));
        w.set("farmer", CHILDREN, kids.clone());
        w.set("farmwife", CHILDREN, kids);
        w.set("farmer", CONTRACT, true);
        w.set("farmer", HOMESTEAD, true);
        w.set("farmer", LAND_DIVISION, HUIZE);
        for name in ["farmer", "farmwife", "returnee"] {
            w.set(name, RESIDENCE_DIVISION, HUIZE);
        }
        w.set("returnee", OWNED, QILIN);
        w.set("emigrant", RESIDENCE_DIVISION, XUANWEI);
        // A husband whose wife holds homestead rights only.
        w.person("husband", QILIN, date!(1980 - 06 - 06), 35);
        w.person("wife", HUIZE, date!(1983 - 07 - 07), 36);
        w.link("husband", SPOUSE, "wife");
        w.link("wife", SPOUSE, "husband");
        w.set("husband", RESIDENCE_DIVISION, HUIZE);
        w.set("wife", CONTRACT, false);
        w.set("wife", HOMESTEAD, true);
        w.set("wife", LAND_DIVISION, HUIZE);
        // An elder living in the home his son owns.
        w.person("elder", HUIZE, date!(1956 - 08 - 08), 37);
        w.person("son", HUIZE, date!(1984 - 09 - 09), 39);
        w.link("son", FATHER, "elder");
        w.link("elder", CHILDREN, "son");
        w.set("elder", RESIDENCE_DIVISION, HUIZE);
        w.set("son", OWNED, HUIZE);
        // A renter whose father's land lies in another county.
        w.person("renter", XUANWEI, date!(1990 - 10 - 10), 40);
        w.person("far_farmer", XUANWEI, date!(1962 - 11 - 11), 41);
        w.link("renter", FATHER, "far_farmer");
        w.link("far_farmer", CHILDREN, "renter");
        w.set("renter", RESIDENCE_DIVISION, HUIZE);
        w.set("renter", LEASE, HUIZE);
        w.set("far_farmer", CONTRACT, true);
        w.set("far_farmer", HOMESTEAD, true);
        w.set("far_farmer", LAND_DIVISION, XUANWEI);
        // Recorded in a village of Huize, without rights.
        w.person("landless", HUIZE, date!(1970 - 12 - 12), 43);
        w.set("landless", RESIDENCE_DIVISION, HUIZE);
        w.set("landless", CONTRACT, false);
        w.set("landless", HOMESTEAD, false);
        w.set("landless", LAND_DIVISION, HUIZE);

        // Migrants in Qilin: permits, pension years, and their children at school.
        w.person("migrant", CHUXIONG, date!(1985 - 01 - 15), 51);
        w.person("migrant_mother", CHUXIONG, date!(1987 - 04 - 15), 52);
        w.person("newcomer", CHUXIONG, date!(1990 - 02 - 15), 53);
        w.person("newcomer30", CHUXIONG, date!(1991 - 03 - 15), 55);
        w.person("newcomer29", CHUXIONG, date!(1992 - 03 - 15), 57);
        for (name, since) in [
            ("migrant", "2018-01-01"),
            ("newcomer", "2026-05-22"),
            ("newcomer30", "2026-05-02"),
            ("newcomer29", "2026-05-03"),
        ] {
            w.set(name, HUKOU_DIVISION, CHUXIONG);
            w.set(name, RESIDENCE_DIVISION, QILIN);
            w.set(name, RESIDENCE_SINCE, since);
        }
        w.person("late_father", CHUXIONG, date!(1984 - 05 - 15), 59);
        w.person("good_mother", CHUXIONG, date!(1986 - 06 - 15), 60);
        w.person("poor_father", CHUXIONG, date!(1983 - 07 - 15), 61);
        w.person("zhanyi_father", CHUXIONG, date!(1982 - 08 - 15), 63);
        w.person("ghost", CHUXIONG, date!(1981 - 09 - 15), 65);
        for (name, division, issued, pension) in [
            ("migrant", QILIN, "2019-03-01", 8),
            ("migrant_mother", QILIN, "2019-03-01", 1),
            ("late_father", QILIN, "2025-10-01", 10),
            ("good_mother", QILIN, "2020-01-01", 6),
            ("poor_father", QILIN, "2019-01-01", 1),
            ("zhanyi_father", ZHANYI, "2019-01-01", 9),
        ] {
            w.set(name, PERMIT_HELD, true);
            w.set(name, PERMIT_DIVISION, division);
            w.set(name, PERMIT_ISSUED, issued);
            w.set(name, PENSION_YEARS, pension);
        }
        let pupils: [(&'static str, u16, Option<&str>, Option<&str>, &str, &str); 9] = [
            (
                "pupil",
                71,
                Some("migrant"),
                Some("migrant_mother"),
                QILIN,
                "2019-09-01",
            ),
            (
                "pupil_m",
                73,
                Some("late_father"),
                Some("good_mother"),
                QILIN,
                "2019-09-01",
            ),
            ("new_pupil", 75, Some("migrant"), None, QILIN, "2024-09-01"),
            ("far_pupil", 77, Some("migrant"), None, ZHANYI, "2019-09-01"),
            ("pupil_recent", 79, Some("late_father"), None, QILIN, "2019-09-01"),
            ("pupil_poor", 81, Some("poor_father"), None, QILIN, "2019-09-01"),
            ("pupil_away", 83, Some("zhanyi_father"), None, QILIN, "2019-09-01"),
            ("pupil_ghost", 85, Some("ghost"), None, QILIN, "2019-09-01"),
            ("orphan", 87, None, None, QILIN, "2019-09-01"),
        ];
        for (name, sequence, father, mother, school, since) in pupils {
            w.person(name, CHUXIONG, date!(2013 - 01 - 20), sequence);
            if let Some(father) = father {
                w.link(name, FATHER, father);
            }
            if let Some(mother) = mother {
                w.link(name, MOTHER, mother);
            }
            w.set(name, SCHOOL_DIVISION, school);
            w.set(name, SCHOOLING_SINCE, since);
        }
        w
    }

    /// What a case expects: an answer and fragments of its reasons, or a refusal.
    #[derive(Debug)]
    enum Expect {
        Answer(bool, &'static [&'static str]),
        Refused(Reason),
    }

    type Case = (
        &'static str,
        &'static str,
        &'static [(&'static str, &'static str)],
        Expect,
    );

    fn cases() -> Vec<Case> {
        use Expect::{Answer, Refused};
        const IN_QILIN: &[(&str, &str)] = &[(DIVISION, QILIN)];
        const IN_HUIZE: &[(&str, &str)] = &[(DIVISION, HUIZE)];
        vec![
            // 四: an owned home, a registered lease or registered employment in the division.
            (
                SETTLEMENT_URBAN,
                "father",
                IN_QILIN,
                Answer(true, &["owns a home in 530302"]),
            ),
            (
                SETTLEMENT_URBAN,
                "uncle",
                IN_QILIN,
                Answer(true, &["holds a registered lease in 530302"]),
            ),
            (
                SETTLEMENT_URBAN,
                "mother",
                IN_QILIN,
                Answer(true, &["registered employment in 530302"]),
            ),
            (
                SETTLEMENT_URBAN,
                "stranger",
                IN_QILIN,
                Answer(
                    false,
                    &[
                        "the owned home is not in 530302",
                        "the registered lease is not in 530302",
                        "the registered employment is not in 530302",
                    ],
                ),
            ),
            (
                SETTLEMENT_URBAN,
                "jobless",
                IN_QILIN,
                Answer(false, &["employment is not registered"]),
            ),
            (
                SETTLEMENT_URBAN,
                "bare",
                IN_QILIN,
                Answer(
                    false,
                    &[
                        "(owned home): not recorded",
                        "(registered lease): not recorded",
                        "employment: not recorded",
                    ],
                ),
            ),
            (SETTLEMENT_URBAN, "father", &[], Refused(Reason::InvalidRequest)),
            (
                SETTLEMENT_URBAN,
                "father",
                &[(DIVISION, "5303")],
                Refused(Reason::InvalidRequest),
            ),
            (
                SETTLEMENT_URBAN,
                "father",
                &[(DIVISION, "5303020")],
                Refused(Reason::InvalidRequest),
            ),
            (
                SETTLEMENT_URBAN,
                "father",
                &[(DIVISION, "53030x")],
                Refused(Reason::InvalidRequest),
            ),
            (
                SETTLEMENT_URBAN,
                "father",
                &[(DIVISION, "990302")],
                Refused(Reason::InvalidRequest),
            ),
            (
                SETTLEMENT_URBAN,
                "father",
                &[(DIVISION, "530000")],
                Refused(Reason::InvalidRequest),
            ),
            (
                SETTLEMENT_URBAN,
                "father",
                &[(DIVISION, "530300")],
                Refused(Reason::InvalidRequest),
            ),
            (
                SETTLEMENT_URBAN,
                "father",
                &[(DIVISION, QILIN), (RELATIVE_CITIZEN_ID, "grandpa")],
                Refused(Reason::InvalidRequest),
            ),
            // 五: lineal relatives within three generations who live together.
            (
                SETTLEMENT_JOIN_KIN,
                "father",
                &[(RELATIVE_CITIZEN_ID, "grandpa")],
                Answer(
                    true,
                    &["the relative is the applicant's father", "same residence address"],
                ),
            ),
            (
                SETTLEMENT_JOIN_KIN,
                "father",
                &[(RELATIVE_CITIZEN_ID, "grandma")],
                Answer(true, &["the applicant's mother"]),
            ),
            (
                SETTLEMENT_JOIN_KIN,
                "grandpa",
                &[(RELATIVE_CITIZEN_ID, "father")],
                Answer(true, &["the applicant's child"]),
            ),
            (
                SETTLEMENT_JOIN_KIN,
                "child",
                &[(RELATIVE_CITIZEN_ID, "grandpa")],
                Answer(true, &["the applicant's grandparent"]),
            ),
            (
                SETTLEMENT_JOIN_KIN,
                "grandma",
                &[(RELATIVE_CITIZEN_ID, "child")],
                Answer(true, &["the applicant's grandchild"]),
            ),
            (
                SETTLEMENT_JOIN_KIN,
                "child",
                &[(RELATIVE_CITIZEN_ID, "granny")],
                Answer(false, &["the applicant's grandparent", "different residence addresses"]),
            ),
            (
                SETTLEMENT_JOIN_KIN,
                "uncle",
                &[(RELATIVE_CITIZEN_ID, "grandma")],
                Answer(false, &["the applicant's mother", "different residence addresses"]),
            ),
            (
                SETTLEMENT_JOIN_KIN,
                "mother",
                &[(RELATIVE_CITIZEN_ID, "father")],
                Answer(
                    false,
                    &[
                        "the applicant's spouse",
                        "not a lineal relative",
                        "same residence address",
                    ],
                ),
            ),
            (
                SETTLEMENT_JOIN_KIN,
                "mother",
                &[(RELATIVE_CITIZEN_ID, "grandma")],
                Answer(false, &["no lineal relation"]),
            ),
            (
                SETTLEMENT_JOIN_KIN,
                "sibling",
                &[(RELATIVE_CITIZEN_ID, "child")],
                Answer(false, &["no lineal relation", "same residence address"]),
            ),
            (
                SETTLEMENT_JOIN_KIN,
                "stranger",
                &[(RELATIVE_CITIZEN_ID, "grandpa")],
                Answer(false, &["no lineal relation", "different residence addresses"]),
            ),
            (
                SETTLEMENT_JOIN_KIN,
                "bare",
                &[(RELATIVE_CITIZEN_ID, "grandpa")],
                Answer(false, &["the applicant's residence address is not recorded"]),
            ),
            (
                SETTLEMENT_JOIN_KIN,
                "grandpa",
                &[(RELATIVE_CITIZEN_ID, "bare")],
                Answer(false, &["the relative's residence address is not recorded"]),
            ),
            (
                SETTLEMENT_JOIN_KIN,
                "father",
                &[(RELATIVE_CITIZEN_ID, "123")],
                Refused(Reason::InvalidCitizenId),
            ),
            (
                SETTLEMENT_JOIN_KIN,
                "father",
                &[(RELATIVE_CITIZEN_ID, "father")],
                Refused(Reason::InvalidRequest),
            ),
            (SETTLEMENT_JOIN_KIN, "father", &[], Refused(Reason::InvalidRequest)),
            (SETTLEMENT_JOIN_KIN, "father", IN_QILIN, Refused(Reason::InvalidRequest)),
            // 八: self or family hold land, a homestead or a home there, and the applicant lives there.
            (
                SETTLEMENT_RETURN_RURAL,
                "farmer",
                IN_HUIZE,
                Answer(
                    true,
                    &[
                        "the applicant has land contract rights in 530326",
                        "the applicant has homestead rights in 530326",
                        "lives in 530326",
                    ],
                ),
            ),
            (
                SETTLEMENT_RETURN_RURAL,
                "returnee",
                IN_HUIZE,
                Answer(true, &["the father has land contract rights in 530326"]),
            ),
            (
                SETTLEMENT_RETURN_RURAL,
                "emigrant",
                IN_HUIZE,
                Answer(
                    false,
                    &[
                        "the father has land contract rights in 530326",
                        "does not live in 530326",
                    ],
                ),
            ),
            (
                SETTLEMENT_RETURN_RURAL,
                "husband",
                IN_HUIZE,
                Answer(true, &["the spouse has homestead rights in 530326"]),
            ),
            (
                SETTLEMENT_RETURN_RURAL,
                "elder",
                IN_HUIZE,
                Answer(true, &["a child has an owned home in 530326"]),
            ),
            (
                SETTLEMENT_RETURN_RURAL,
                "renter",
                IN_HUIZE,
                Answer(false, &["none of the applicant and the 1 family member(s) checked"]),
            ),
            (
                SETTLEMENT_RETURN_RURAL,
                "landless",
                IN_HUIZE,
                Answer(false, &["none of the applicant and the 0 family member(s) checked"]),
            ),
            (
                SETTLEMENT_RETURN_RURAL,
                "bare",
                IN_HUIZE,
                Answer(
                    false,
                    &[
                        "not recorded for the applicant or any family member",
                        "place of residence not recorded",
                    ],
                ),
            ),
            (
                SETTLEMENT_RETURN_RURAL,
                "farmer",
                &[(DIVISION, "")],
                Refused(Reason::InvalidRequest),
            ),
            // 十二: living in the division, away from the registration, for 30 days or more.
            (
                RESIDENCE_PERMIT_APPLY,
                "migrant",
                IN_QILIN,
                Answer(
                    true,
                    &["lives in 530302", "registered outside 530302", "for at least 30 days"],
                ),
            ),
            (
                RESIDENCE_PERMIT_APPLY,
                "father",
                IN_QILIN,
                Answer(false, &["registered in 530302"]),
            ),
            (
                RESIDENCE_PERMIT_APPLY,
                "stranger",
                IN_QILIN,
                Answer(false, &["does not live in 530302", "not counted"]),
            ),
            (
                RESIDENCE_PERMIT_APPLY,
                "newcomer",
                IN_QILIN,
                Answer(false, &["fewer than 30 days"]),
            ),
            (
                RESIDENCE_PERMIT_APPLY,
                "newcomer30",
                IN_QILIN,
                Answer(true, &["at least 30 days"]),
            ),
            (
                RESIDENCE_PERMIT_APPLY,
                "newcomer29",
                IN_QILIN,
                Answer(false, &["fewer than 30 days"]),
            ),
            (
                RESIDENCE_PERMIT_APPLY,
                "bare",
                IN_QILIN,
                Answer(
                    false,
                    &["place of residence: not recorded", "place of registration not recorded"],
                ),
            ),
            (
                RESIDENCE_PERMIT_APPLY,
                "migrant",
                &[(DIVISION, "530302 ")],
                Refused(Reason::InvalidRequest),
            ),
            // 十二、十六: the child's schooling, a parent's permit and social insurance.
            (
                EXAM_ACCOMPANYING_CHILD,
                "pupil",
                IN_QILIN,
                Answer(
                    true,
                    &[
                        "at school in 530302 for at least 3 years",
                        "the father's residence permit: held in 530302 for at least 3 years",
                        "the father's social insurance (basic pension): contributions for at least 3 years",
                        "the mother's social insurance (basic pension): contributions for fewer than 3 years",
                    ],
                ),
            ),
            (
                EXAM_ACCOMPANYING_CHILD,
                "pupil_m",
                IN_QILIN,
                Answer(
                    true,
                    &[
                        "the father's residence permit: held in 530302 for fewer than 3 years",
                        "the mother's residence permit: held in 530302 for at least 3 years",
                    ],
                ),
            ),
            (
                EXAM_ACCOMPANYING_CHILD,
                "new_pupil",
                IN_QILIN,
                Answer(false, &["at school in 530302 for fewer than 3 years"]),
            ),
            (
                EXAM_ACCOMPANYING_CHILD,
                "far_pupil",
                IN_QILIN,
                Answer(false, &["the school is not in 530302"]),
            ),
            (
                EXAM_ACCOMPANYING_CHILD,
                "sibling",
                IN_QILIN,
                Answer(
                    false,
                    &[
                        "the father's residence permit: not held",
                        "the mother's residence permit: not held",
                    ],
                ),
            ),
            (
                EXAM_ACCOMPANYING_CHILD,
                "pupil_recent",
                IN_QILIN,
                Answer(false, &["held in 530302 for fewer than 3 years"]),
            ),
            (
                EXAM_ACCOMPANYING_CHILD,
                "pupil_poor",
                IN_QILIN,
                Answer(false, &["contributions for fewer than 3 years"]),
            ),
            (
                EXAM_ACCOMPANYING_CHILD,
                "pupil_away",
                IN_QILIN,
                Answer(false, &["not issued in 530302"]),
            ),
            (
                EXAM_ACCOMPANYING_CHILD,
                "pupil_ghost",
                IN_QILIN,
                Answer(false, &["the father's residence permit: not recorded"]),
            ),
            (
                EXAM_ACCOMPANYING_CHILD,
                "orphan",
                IN_QILIN,
                Answer(false, &["no parent is recorded"]),
            ),
            (
                EXAM_ACCOMPANYING_CHILD,
                "bare",
                IN_QILIN,
                Answer(false, &["no schooling recorded", "no parent is recorded"]),
            ),
            (
                EXAM_ACCOMPANYING_CHILD,
                "pupil",
                &[(DIVISION, QILIN), ("colour", "red")],
                Refused(Reason::InvalidRequest),
            ),
        ]
    }

    /// Parameters as a caller sends them: a relative named in the world becomes their ID.
    fn params(w: &World, given: &[(&str, &str)]) -> HashMap<String, String> {
        given
            .iter()
            .map(|&(key, value)| {
                let value = match w.people.get(value) {
                    Some(id) if key == RELATIVE_CITIZEN_ID => id.as_str().to_owned(),
                    _ => value.to_owned(),
                };
                (key.to_owned(), value)
            })
            .collect()
    }

    #[tokio::test]
    async fn every_predicate_answers_its_table_of_cases() {
        let w = world();
        let (_dir, sources) = w.sources();
        let thresholds = Thresholds::default();
        for (name, who, given, expect) in cases() {
            let p = predicate(name).unwrap();
            let params = params(&w, given);
            let result = evaluate(p, w.id(who), &params, &sources, &thresholds, TODAY).await;
            let context = format!("{name} for {who} with {given:?}");
            match (expect, result) {
                (Expect::Answer(satisfied, fragments), Ok(outcome)) => {
                    assert_eq!(outcome.satisfied, satisfied, "{context}: {:#?}", outcome.reasons);
                    for fragment in fragments {
                        assert!(
                            outcome.reasons.iter().any(|r| r.contains(fragment)),
                            "{context}: no reason says {fragment:?}: {:#?}",
                            outcome.reasons
                        );
                    }
                    assert!(
                        outcome.reasons.iter().all(|r| r.contains(" / ")),
                        "{context}: bilingual"
                    );
                    assert_eq!(outcome.basis, p.basis, "{context}");
                    for source in &outcome.sources {
                        assert!(
                            p.sources.iter().any(|d| d.code() == source),
                            "{context}: read {source}, which the predicate does not list"
                        );
                    }
                    assert!(
                        p.land_based || outcome.sources.iter().all(|s| s != "land"),
                        "{context}: read land facts"
                    );
                }
                (Expect::Refused(reason), Err(e)) => assert_eq!(e.reason, reason, "{context}: {e}"),
                (expect, result) => panic!("{context}: expected {expect:?}, got {result:?}"),
            }
        }
    }

    #[tokio::test]
    async fn answers_name_the_departments_actually_read() {
        let w = world();
        let (_dir, sources) = w.sources();
        let cases: [(&str, &str, &[(&str, &str)], &[&str]); 6] = [
            (SETTLEMENT_URBAN, "father", &[(DIVISION, QILIN)], &["hrss", "housing"]),
            (
                SETTLEMENT_JOIN_KIN,
                "child",
                &[(RELATIVE_CITIZEN_ID, "grandpa")],
                &["ps"],
            ),
            (
                SETTLEMENT_RETURN_RURAL,
                "farmer",
                &[(DIVISION, HUIZE)],
                &["ps", "housing", "land"],
            ),
            (RESIDENCE_PERMIT_APPLY, "migrant", &[(DIVISION, QILIN)], &["ps"]),
            (
                EXAM_ACCOMPANYING_CHILD,
                "pupil",
                &[(DIVISION, QILIN)],
                &["ps", "edu", "hrss"],
            ),
            // No parent is recorded, so no parent's social insurance is read.
            (EXAM_ACCOMPANYING_CHILD, "orphan", &[(DIVISION, QILIN)], &["ps", "edu"]),
        ];
        for (name, who, given, read) in cases {
            let outcome = evaluate(
                predicate(name).unwrap(),
                w.id(who),
                &params(&w, given),
                &sources,
                &Thresholds::default(),
                TODAY,
            )
            .await
            .unwrap();
            assert_eq!(outcome.sources, read, "{name} for {who}");
        }
    }

    #[tokio::test]
    async fn thresholds_from_configuration_move_the_answers() {
        let w = world();
        let (_dir, sources) = w.sources();
        let strict = Thresholds {
            settlement_residence_years: 2,
            residence_permit_days: 5,
            exam_schooling_years: 1,
            ..Thresholds::default()
        };
        let cases: [(&str, &str, bool, &str); 5] = [
            (
                SETTLEMENT_URBAN,
                "father",
                true,
                "has lived in 530302 for at least 2 years",
            ),
            // The uncle's lease is in Qilin, but he moved there this year.
            (
                SETTLEMENT_URBAN,
                "uncle",
                false,
                "has lived in 530302 for fewer than 2 years",
            ),
            (
                SETTLEMENT_URBAN,
                "mother",
                true,
                "has lived in 530302 for at least 2 years",
            ),
            (RESIDENCE_PERMIT_APPLY, "newcomer", true, "for at least 5 days"),
            (
                EXAM_ACCOMPANYING_CHILD,
                "new_pupil",
                true,
                "at school in 530302 for at least 1 years",
            ),
        ];
        for (name, who, satisfied, fragment) in cases {
            let outcome = evaluate(
                predicate(name).unwrap(),
                w.id(who),
                &params(&w, &[(DIVISION, QILIN)]),
                &sources,
                &strict,
                TODAY,
            )
            .await
            .unwrap();
            assert_eq!(outcome.satisfied, satisfied, "{name} for {who}: {:#?}", outcome.reasons);
            assert!(
                outcome.reasons.iter().any(|r| r.contains(fragment)),
                "{name} for {who}: {:#?}",
                outcome.reasons
            );
            if name == SETTLEMENT_URBAN {
                assert!(
                    outcome.sources.contains(&"ps".to_owned()),
                    "years of residence come from ps"
                );
            }
        }
    }

    #[test]
    fn thresholds_have_documented_defaults_and_refuse_unknown_keys() {
        let defaults = Thresholds::default();
        assert_eq!(defaults.residence_permit_days, 30);
        assert_eq!(defaults.exam_schooling_years, 3);
        assert_eq!(defaults.exam_permit_years, 3);
        assert_eq!(defaults.exam_social_insurance_years, 3);
        assert_eq!(defaults.settlement_residence_years, 0);
        assert_eq!(toml::from_str::<Thresholds>("").unwrap(), defaults);
        let changed: Thresholds = toml::from_str("exam_schooling_years = 2").unwrap();
        assert_eq!(changed.exam_schooling_years, 2);
        assert_eq!(changed.residence_permit_days, 30);
        assert!(toml::from_str::<Thresholds>("residence_days = 30").is_err());
        let text = toml::to_string(&defaults).unwrap();
        assert_eq!(toml::from_str::<Thresholds>(&text).unwrap(), defaults);
    }

    #[test]
    fn the_registry_cites_its_clauses_and_reads_only_catalogued_facts() {
        for (i, p) in PREDICATES.iter().enumerate() {
            assert!(PREDICATES[i + 1..].iter().all(|q| q.name != p.name), "{} twice", p.name);
            assert!(p.basis.starts_with("曲政发〔2015〕82号（"), "{}", p.basis);
            assert!(!p.params.is_empty() && !p.sources.is_empty(), "{}", p.name);
            assert_eq!(predicate(p.name).unwrap(), p);
            assert_eq!(p.land_based, p.sources.contains(&Department::Land), "{}", p.name);
        }
        assert_eq!(
            PREDICATES
                .iter()
                .filter(|p| p.land_based)
                .map(|p| p.name)
                .collect::<Vec<_>>(),
            [SETTLEMENT_RETURN_RURAL]
        );
        assert_eq!(
            predicate("settlement.anywhere").unwrap_err().reason,
            Reason::UnknownPredicate
        );
        assert_eq!(predicate("").unwrap_err().reason, Reason::UnknownPredicate);
        let groups = [
            URBAN_FACTS,
            RESIDENCE_FACTS,
            KIN_FACTS,
            PARENT_IDS,
            FAMILY_FACTS,
            HOLDINGS,
            PERMIT_FACTS,
            CHILD_FACTS,
            PARENT_FACTS,
        ];
        for name in groups.into_iter().flatten() {
            let attribute = catalogue::attribute(name).unwrap_or_else(|| panic!("{name} is not catalogued"));
            assert!(!attribute.abolished, "{name}");
        }
    }

    #[tokio::test]
    async fn a_predicate_outside_the_registry_is_unknown() {
        let w = world();
        let (_dir, sources) = w.sources();
        let made_up = Predicate {
            name: "settlement.anywhere",
            ..PREDICATES[0]
        };
        let err = evaluate(
            &made_up,
            w.id("father"),
            &params(&w, &[(DIVISION, QILIN)]),
            &sources,
            &Thresholds::default(),
            TODAY,
        )
        .await
        .unwrap_err();
        assert_eq!(err.reason, Reason::UnknownPredicate);
    }

    #[tokio::test]
    async fn a_missing_department_fails_the_whole_answer() {
        let w = world();
        // Only public security answers: the housing facts clause 四 needs cannot be had.
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let ps = EmbeddedRegistry::open(&db, Department::PublicSecurity).unwrap();
        let sources = Sources::new([Arc::new(ps) as Arc<dyn Adapter>], Duration::from_secs(5));
        let err = evaluate(
            predicate(SETTLEMENT_URBAN).unwrap(),
            w.id("father"),
            &params(&w, &[(DIVISION, QILIN)]),
            &sources,
            &Thresholds::default(),
            TODAY,
        )
        .await
        .unwrap_err();
        assert_eq!(err.reason, Reason::SourceUnavailable);
    }

    /// The demo's samples are what the demo prints for each predicate: each must answer as its label says.
    #[tokio::test]
    async fn every_demo_sample_answers_as_its_branch_says() {
        for seed in [1, 2015] {
            let dir = tempfile::tempdir().unwrap();
            let files = dir.path().join("files");
            let samples = crate::demo_data::generate_on(200, seed, TODAY, &files).unwrap();
            let db = sled::open(dir.path().join("db")).unwrap();
            let mut adapters: Vec<Arc<dyn Adapter>> = Vec::new();
            for department in Department::ALL {
                let file = std::fs::File::open(files.join(format!("{}.jsonl", department.code()))).unwrap();
                crate::import::import(&db, department, std::io::BufReader::new(file)).unwrap();
                adapters.push(Arc::new(EmbeddedRegistry::open(&db, department).unwrap()));
            }
            let sources = Sources::new(adapters, Duration::from_secs(5));
            for branch in crate::demo_data::BRANCHES {
                let sample = samples
                    .iter()
                    .find(|s| s.label == branch.label)
                    .unwrap_or_else(|| panic!("seed {seed}: no sample for {}", branch.label));
                let citizen = CitizenId::parse_on(&sample.citizen_id, TODAY).unwrap();
                let params: HashMap<String, String> = sample
                    .params
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), v.clone()))
                    .collect();
                let outcome = evaluate(
                    predicate(branch.predicate()).unwrap(),
                    &citizen,
                    &params,
                    &sources,
                    &Thresholds::default(),
                    TODAY,
                )
                .await
                .unwrap_or_else(|e| panic!("seed {seed}: {}: {e}", branch.label));
                assert_eq!(
                    outcome.satisfied, branch.satisfied,
                    "seed {seed}: {}: {:#?}",
                    branch.label, outcome.reasons
                );
            }
        }
    }
}
