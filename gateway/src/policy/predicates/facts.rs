//! What every predicate shares: the facts it reads, by catalogue name; the
//! [`Reader`] that reads them through [`Departments`]; and the [`Condition`]s
//! and [`Verdict`] an answer is made of.

use std::{
    collections::BTreeSet,
    sync::{Mutex, PoisonError},
};

use civex_adapters::{Attribute, Department, catalogue, citizen_id::CitizenId, value::parse_date};
use civex_proto::v1::{Fact, fact};
use time::Date;

use crate::{departments::Departments, error::Error};

// The facts predicates read, by catalogue name.
pub(super) const HUKOU_DIVISION: &str = "ps.hukou.division";
pub(super) const RESIDENCE_DIVISION: &str = "ps.residence.division";
pub(super) const RESIDENCE_SINCE: &str = "ps.residence.since";
pub(super) const ADDRESS_KEY: &str = "ps.residence.address_key";
pub(super) const FATHER: &str = "ps.kin.father_id";
pub(super) const MOTHER: &str = "ps.kin.mother_id";
pub(super) const SPOUSE: &str = "ps.kin.spouse_id";
pub(super) const CHILDREN: &str = "ps.kin.children_ids";
pub(super) const PERMIT_HELD: &str = "ps.residence_permit.held";
pub(super) const PERMIT_DIVISION: &str = "ps.residence_permit.division";
pub(super) const PERMIT_ISSUED: &str = "ps.residence_permit.issued_on";
pub(super) const SCHOOL_DIVISION: &str = "edu.school_division";
pub(super) const SCHOOLING_SINCE: &str = "edu.schooling_since";
pub(super) const EMPLOYED: &str = "hrss.employment.registered";
pub(super) const EMPLOYMENT_DIVISION: &str = "hrss.employment.division";
pub(super) const PENSION_YEARS: &str = "hrss.pension.contribution_years";
pub(super) const OWNED: &str = "housing.owned_residence.division";
pub(super) const LEASE: &str = "housing.registered_lease.division";
pub(super) const CONTRACT: &str = "land.contract_rights.held";
pub(super) const HOMESTEAD: &str = "land.homestead_rights.held";
pub(super) const LAND_DIVISION: &str = "land.rights.division";
pub(super) const HUKOU_CANCELLED: &str = "ps.hukou.cancelled";
pub(super) const DECEASED: &str = "ps.identity.deceased";
pub(super) const CONVICTED: &str = civex_adapters::catalogue::CRIMINAL_RECORD;
pub(super) const MARITAL_STATUS: &str = "ca.marital_status";
pub(super) const CONTINUOUS_MONTHS: &str = "hrss.pension.continuous_months";
pub(super) const OWNED_COUNT: &str = "housing.owned_residence.count";
pub(super) const INCOME_PER_PERSON: &str = civex_adapters::catalogue::MEANS_INCOME;
pub(super) const ASSETS_PER_PERSON: &str = civex_adapters::catalogue::MEANS_ASSETS;

// What each step reads in one call to the departments.
pub(super) const URBAN_FACTS: &[&str] = &[OWNED, LEASE, EMPLOYED, EMPLOYMENT_DIVISION];
pub(super) const RESIDENCE_FACTS: &[&str] = &[RESIDENCE_DIVISION, RESIDENCE_SINCE];
pub(super) const KIN_FACTS: &[&str] = &[FATHER, MOTHER, SPOUSE, ADDRESS_KEY];
pub(super) const PARENT_IDS: &[&str] = &[FATHER, MOTHER];
pub(super) const FAMILY_FACTS: &[&str] = &[RESIDENCE_DIVISION, FATHER, MOTHER, SPOUSE, CHILDREN];
pub(super) const HOLDINGS: &[&str] = &[CONTRACT, HOMESTEAD, LAND_DIVISION, OWNED];
pub(super) const PERMIT_FACTS: &[&str] = &[RESIDENCE_DIVISION, RESIDENCE_SINCE, HUKOU_DIVISION];
pub(super) const CHILD_FACTS: &[&str] = &[SCHOOL_DIVISION, SCHOOLING_SINCE, FATHER, MOTHER];
pub(super) const PARENT_FACTS: &[&str] = &[PERMIT_HELD, PERMIT_DIVISION, PERMIT_ISSUED, PENSION_YEARS];
pub(super) const RELATION_FACTS: &[&str] = &[FATHER, MOTHER, SPOUSE];
pub(super) const REGISTRATION_FACTS: &[&str] = &[HUKOU_DIVISION, HUKOU_CANCELLED];
pub(super) const HOUSING_FACTS: &[&str] = &[OWNED, LEASE];
pub(super) const EMPLOYMENT_FACTS: &[&str] = &[EMPLOYED, EMPLOYMENT_DIVISION];
pub(super) const MEANS_FACTS: &[&str] = &[INCOME_PER_PERSON, ASSETS_PER_PERSON];

/// Children looked at for clause 八, at most; a longer list is cut short.
pub(super) const MAX_CHILDREN: usize = 16;

/// Reads facts through the departments and remembers which departments it
/// asked and about whom.
pub(super) struct Reader<'a> {
    departments: &'a Departments,
    read: Mutex<BTreeSet<Department>>,
    people: Mutex<Vec<CitizenId>>,
}

impl<'a> Reader<'a> {
    pub(super) fn new(departments: &'a Departments) -> Reader<'a> {
        Reader {
            departments,
            read: Mutex::new(BTreeSet::new()),
            people: Mutex::new(Vec::new()),
        }
    }

    /// The facts `names` about `citizen`, all or an error.
    pub(super) async fn facts(&self, citizen: &CitizenId, names: &[&'static str]) -> Result<Facts, Error> {
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
        {
            let mut people = self.people.lock().unwrap_or_else(PoisonError::into_inner);
            if !people.contains(citizen) {
                people.push(citizen.clone());
            }
        }
        let facts = self.departments.fetch(citizen.as_str(), &attributes).await?;
        Ok(Facts(names.iter().copied().zip(facts).collect()))
    }

    /// Everyone whose records were read so far, in the order first read.
    pub(super) fn people(&self) -> Vec<CitizenId> {
        self.people.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Codes of the departments asked so far, in catalogue order.
    pub(super) fn departments(&self) -> Vec<String> {
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
pub(super) struct Facts(Vec<(&'static str, Fact)>);

impl Facts {
    pub(super) fn value(&self, name: &str) -> Option<&fact::Value> {
        self.0
            .iter()
            .find(|(n, _)| *n == name)
            .filter(|(_, f)| f.recorded)
            .and_then(|(_, f)| f.value.as_ref())
    }

    pub(super) fn text(&self, name: &str) -> Option<&str> {
        match self.value(name)? {
            fact::Value::TextValue(s) => Some(s.as_str()),
            _ => None,
        }
    }

    pub(super) fn flag(&self, name: &str) -> Option<bool> {
        match self.value(name)? {
            fact::Value::BoolValue(b) => Some(*b),
            _ => None,
        }
    }

    pub(super) fn int(&self, name: &str) -> Option<i64> {
        match self.value(name)? {
            fact::Value::IntValue(i) => Some(*i),
            _ => None,
        }
    }

    pub(super) fn date(&self, name: &str) -> Option<Date> {
        match self.value(name)? {
            fact::Value::DateValue(s) => parse_date(s),
            _ => None,
        }
    }

    /// A relative's ID; one that does not parse is treated as not recorded.
    pub(super) fn id(&self, name: &str, today: Date) -> Option<CitizenId> {
        self.text(name).and_then(|s| CitizenId::parse_on(s, today).ok())
    }

    /// A comma-separated list of IDs, skipping any that do not parse.
    pub(super) fn ids(&self, name: &str, today: Date) -> Vec<CitizenId> {
        self.text(name)
            .map(|s| {
                s.split(',')
                    .filter_map(|one| CitizenId::parse_on(one.trim(), today).ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether the fact `name` is `id` (compared in normal form: a lower-case `x` counts as `X`).
    pub(super) fn names(&self, name: &str, id: &CitizenId) -> bool {
        self.text(name).is_some_and(|s| s.eq_ignore_ascii_case(id.as_str()))
    }
}

/// One condition checked: whether it held, and the reason given for it.
pub(super) struct Condition {
    pub(super) holds: bool,
    pub(super) reason: String,
}

/// A condition's reason: `<topic>：<requirement>——符合 / <topic>: <requirement> — holds`.
/// The requirement is the clause's, stated the same whether it held or not:
/// a reason never says why it failed (not recorded, elsewhere, too short).
pub(super) fn condition(holds: bool, topic: [&str; 2], zh: &str, en: &str) -> Condition {
    let (verdict_zh, verdict_en) = if holds {
        ("符合", "holds")
    } else {
        ("不符合", "does not hold")
    };
    Condition {
        holds,
        reason: format!("{}：{zh}——{verdict_zh} / {}: {en} — {verdict_en}", topic[0], topic[1]),
    }
}

/// The conditions checked and whether the predicate holds.
pub(super) struct Verdict {
    pub(super) satisfied: bool,
    pub(super) checks: Vec<Condition>,
}

/// Whole months from `from` to `to` (negative if `from` is later): a month
/// is complete on the same day of the month, or on the month's last day
/// when it has no such day.
pub(super) fn full_months(from: Date, to: Date) -> i64 {
    let months = (i64::from(to.year()) - i64::from(from.year())) * 12 + i64::from(u8::from(to.month()))
        - i64::from(u8::from(from.month()));
    let month_ended = to.day() >= from.day() || to.day() == to.month().length(to.year());
    if month_ended { months } else { months - 1 }
}

/// `n months` in English, `1 month` for one.
pub(super) fn months_en(n: u32) -> String {
    if n == 1 {
        "1 month".to_owned()
    } else {
        format!("{n} months")
    }
}

/// The verdict of a predicate of one condition.
pub(super) fn single(check: Condition) -> Verdict {
    Verdict {
        satisfied: check.holds,
        checks: vec![check],
    }
}

/// Whole years from `from` to `to` (negative if `from` is later).
pub(super) fn full_years(from: Date, to: Date) -> i64 {
    let years = i64::from(to.year()) - i64::from(from.year());
    if (u8::from(to.month()), to.day()) < (u8::from(from.month()), from.day()) {
        years - 1
    } else {
        years
    }
}
