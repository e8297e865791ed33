//! Deterministic synthetic department registries for the demo and for load tests.
//!
//! [`generate`] draws citizens from a seeded ChaCha8 generator and writes what
//! each department would hold about them as one JSONL file per department,
//! `<out>/<code>.jsonl`, in the form `civex import <department> <file>` reads:
//! `{"citizen_id": "...", "<attribute>": value, ...}`, where an absent key means
//! "not recorded". Distributions loosely follow Qujing, Yunnan after the 2015
//! household-registration reform: everyone's household category is `resident`
//! and the abolished `ps.hukou.nature` is never written.
//!
//! The same `citizens` and `seed` always give byte-identical files. Citizens are
//! generated and written one at a time, so a million take seconds and little
//! memory (only the set of issued IDs is kept, to keep them unique).

use std::{
    collections::HashSet,
    fs::{self, File},
    io::{self, BufWriter, Write},
    path::Path,
};

use civex_adapters::{Department, catalogue};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Map, Value};
use time::{Date, Month, macros::date};

use crate::citizen_id::CitizenId;

/// Qujing's county-level divisions (Qilin, Zhanyi, Malong, Luliang, Shizong,
/// Luoping, Fuyuan, Huize, Xuanwei).
const QUJING: &[&str] = &[
    "530302", "530303", "530304", "530322", "530323", "530324", "530325", "530326", "530381",
];
/// Elsewhere in Yunnan: Kunming Wuhua and Guandu, Chuxiong, Yuxi Hongta.
const YUNNAN: &[&str] = &["530102", "530111", "532301", "530402"];
/// Other provinces: Chengdu, Guiyang, Bijie, Guangzhou Tianhe, Beijing Chaoyang.
const OTHER: &[&str] = &["510107", "520102", "520502", "440106", "110105"];

/// Ages are counted by birth year against this year.
const AGE_YEAR: i32 = 2026;
/// No recorded event (moving, permits, schooling) is later than this.
const LATEST_EVENT: Date = date!(2025 - 12 - 31);
/// Residence permits under the national scheme date from 2016.
const PERMITS_FROM: Date = date!(2016 - 01 - 01);
/// Attempts at drawing an unused citizen ID before giving up.
const MAX_TRIES: usize = 10_000;

/// A labelled citizen worth trying queries on, picked while generating.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// What is notable about the citizen, e.g. "receives dibao (低保)".
    pub label: &'static str,
    /// The citizen's 18-character ID.
    pub citizen_id: String,
}

/// The first citizens are fixed kinds so that every held attribute appears in
/// small data sets too; everyone after them is drawn freely.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A rural child of school age registered in Qujing.
    Pupil,
    /// A working adult from outside Qujing who rents and holds a residence permit.
    Migrant,
    Anyone,
}

/// The facts that tie one citizen's departmental records together.
struct Person {
    id: CitizenId,
    birth: Date,
    age: i32,
    hukou: &'static str,
    residence: &'static str,
    permit: bool,
    rural: bool,
    in_school: bool,
    employed: bool,
    owns_home: bool,
    leases: bool,
    tax_registered: bool,
}

/// One optional line per department, in [`Department::ALL`] order.
type Records = [Option<Map<String, Value>>; 7];

/// Writes `citizens` synthetic citizens drawn with `seed` to `out/<code>.jsonl`,
/// one file per department (creating `out` if missing), and returns labelled
/// sample citizens: the first of each notable kind found.
pub fn generate(citizens: usize, seed: u64, out: &Path) -> io::Result<Vec<Sample>> {
    fs::create_dir_all(out)?;
    let mut files = Department::ALL
        .iter()
        .map(|d| File::create(out.join(format!("{}.jsonl", d.code()))).map(BufWriter::new))
        .collect::<io::Result<Vec<_>>>()?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut seen = HashSet::with_capacity(citizens.min(1 << 22));
    let mut samples = Vec::new();
    for index in 0..citizens {
        let kind = match index {
            0 => Kind::Pupil,
            1 => Kind::Migrant,
            _ => Kind::Anyone,
        };
        let p = person(&mut rng, kind, &mut seen)?;
        let records: Records = [
            Some(ps(&mut rng, &p)),
            edu(&mut rng, &p),
            hrss(&mut rng, &p),
            ca(&mut rng, &p),
            housing(&mut rng, &p),
            land(&mut rng, &p),
            tax(&mut rng, &p),
        ];
        for (label, found) in sample_kinds(&p, &records) {
            if found && samples.iter().all(|s: &Sample| s.label != label) {
                samples.push(Sample {
                    label,
                    citizen_id: p.id.as_str().to_owned(),
                });
            }
        }
        for (file, record) in files.iter_mut().zip(&records) {
            if let Some(line) = record {
                serde_json::to_writer(&mut *file, line)?;
                file.write_all(b"\n")?;
            }
        }
    }
    for file in &mut files {
        file.flush()?;
    }
    Ok(samples)
}

/// Which sample kinds the citizen is, by label.
fn sample_kinds(p: &Person, r: &Records) -> [(&'static str, bool); 8] {
    let is = |name: &str, value: Value| field(r, name) == Some(&value);
    [
        (
            "owns a home in Qilin (530302)",
            is("housing.owned_residence.division", "530302".into()),
        ),
        (
            "migrant with a residence permit",
            p.permit && !is_qujing(p.id.division()),
        ),
        (
            "lives away from hukou, no residence permit",
            p.residence != p.hukou && !p.permit,
        ),
        (
            "hukou moved to Qujing from another province",
            is_qujing(p.hukou) && !p.id.division().starts_with("53"),
        ),
        (
            "rural, holds land contract rights",
            is("land.contract_rights.held", true.into()),
        ),
        ("receives dibao (低保)", is("ca.dibao.receiving", true.into())),
        (
            "registered as unemployed",
            is("hrss.unemployment.registered", true.into()),
        ),
        ("school pupil", is("edu.student_level", "primary".into())),
    ]
}

/// The value recorded for `name` in the line of the department that holds it.
fn field<'a>(r: &'a Records, name: &str) -> Option<&'a Value> {
    let department = catalogue::attribute(name)?.department;
    let index = Department::ALL.iter().position(|d| *d == department)?;
    r.get(index)?.as_ref()?.get(name)
}

/// Draws a citizen with an unused ID and the facts that link their records.
fn person(rng: &mut ChaCha8Rng, kind: Kind, seen: &mut HashSet<CitizenId>) -> io::Result<Person> {
    for _ in 0..MAX_TRIES {
        let birth = match kind {
            Kind::Pupil => random_date(rng, date!(2012 - 01 - 01), date!(2017 - 12 - 31)),
            Kind::Migrant => random_date(rng, date!(1976 - 01 - 01), date!(1996 - 12 - 31)),
            Kind::Anyone => random_date(rng, date!(1940 - 01 - 01), date!(2020 - 12 - 31)),
        };
        let roll = match kind {
            Kind::Pupil => 0,
            Kind::Migrant => rng.gen_range(80..100),
            Kind::Anyone => rng.gen_range(0..100),
        };
        let division = match roll {
            0..80 => pick(rng, QUJING),
            80..92 => pick(rng, YUNNAN),
            _ => pick(rng, OTHER),
        };
        let Some(id) = CitizenId::from_parts(division, birth, rng.gen_range(0..1000)) else {
            continue;
        };
        if seen.insert(id.clone()) {
            return Ok(facts(rng, kind, id, division, birth));
        }
    }
    Err(io::Error::other("could not draw an unused citizen ID"))
}

/// Draws where a citizen is registered and lives, and what they do.
fn facts(rng: &mut ChaCha8Rng, kind: Kind, id: CitizenId, division: &'static str, birth: Date) -> Person {
    let age = AGE_YEAR - birth.year();
    let adult = age >= 18;
    let (pupil, migrant) = (kind == Kind::Pupil, kind == Kind::Migrant);
    let hukou = if !migrant && rng.gen_bool(0.10) {
        other_qujing(rng, division)
    } else {
        division
    };
    let rural = is_qujing(hukou) && (pupil || rng.gen_bool(0.45));
    let stays = !migrant && is_qujing(hukou) && (pupil || rng.gen_bool(0.75));
    let residence = if stays { hukou } else { other_qujing(rng, hukou) };
    let permit = residence != hukou && (migrant || rng.gen_bool(0.80));
    let school_odds = if age <= 17 { 0.97 } else { 0.5 };
    let in_school = (6..=22).contains(&age) && (pupil || rng.gen_bool(school_odds));
    let employed = (18..=65).contains(&age) && (migrant || rng.gen_bool(0.60));
    let owns_home = adult && !migrant && rng.gen_bool(0.50);
    let lease_odds = if owns_home { 0.05 } else { 0.35 };
    let leases = adult && (migrant || rng.gen_bool(lease_odds));
    let tax_odds = if employed { 0.80 } else { 0.20 };
    let tax_registered = adult && (migrant || rng.gen_bool(tax_odds));
    Person {
        id,
        birth,
        age,
        hukou,
        residence,
        permit,
        rural,
        in_school,
        employed,
        owns_home,
        leases,
        tax_registered,
    }
}

/// Public security: identity, household registration, residence. Everyone has one.
fn ps(rng: &mut ChaCha8Rng, p: &Person) -> Map<String, Value> {
    let mut m = line(p);
    let since = random_date(rng, p.birth, LATEST_EVENT);
    put(&mut m, "ps.identity.birth_date", date_value(p.id.birth_date()));
    put(
        &mut m,
        "ps.identity.gender",
        if p.id.is_male() { "male" } else { "female" },
    );
    put(&mut m, "ps.hukou.division", p.hukou);
    put(&mut m, "ps.hukou.category", "resident");
    put(&mut m, "ps.hukou.collective", rng.gen_bool(0.05));
    put(&mut m, "ps.residence_permit.held", p.permit);
    if p.permit {
        put(&mut m, "ps.residence_permit.division", p.residence);
        let issued = random_date(rng, since.max(PERMITS_FROM), LATEST_EVENT);
        put(&mut m, "ps.residence_permit.issued_on", date_value(issued));
    }
    put(&mut m, "ps.residence.division", p.residence);
    put(&mut m, "ps.residence.since", date_value(since));
    m
}

/// Education: school-age citizens and students.
fn edu(rng: &mut ChaCha8Rng, p: &Person) -> Option<Map<String, Value>> {
    if !p.in_school {
        return None;
    }
    let mut m = line(p);
    let school = if rng.gen_bool(0.90) {
        p.residence
    } else {
        pick(rng, QUJING)
    };
    let latest = LATEST_EVENT.year();
    let start = rng.gen_range((p.birth.year() + 6).min(latest)..=latest);
    // Invariant: 1 September exists in every year.
    let since = Date::from_calendar_date(start, Month::September, 1).unwrap_or(LATEST_EVENT);
    let level = match p.age {
        ..=11 => "primary",
        12..=14 => "junior_secondary",
        15..=17 => "senior_secondary",
        _ if rng.gen_bool(0.40) => "vocational",
        _ => "higher",
    };
    put(&mut m, "edu.enrolled", rng.gen_bool(0.96));
    put(&mut m, "edu.school_division", school);
    put(&mut m, "edu.schooling_since", date_value(since));
    put(&mut m, "edu.student_level", level);
    Some(m)
}

/// Human resources and social security: working-age adults.
fn hrss(rng: &mut ChaCha8Rng, p: &Person) -> Option<Map<String, Value>> {
    if !(18..=65).contains(&p.age) {
        return None;
    }
    let mut m = line(p);
    let most = i64::from((p.age - 18).min(40));
    put(&mut m, "hrss.employment.registered", p.employed);
    if p.employed {
        let place = if rng.gen_bool(0.85) {
            p.residence
        } else {
            pick(rng, QUJING)
        };
        put(&mut m, "hrss.employment.division", place);
    }
    put(&mut m, "hrss.pension.contribution_years", rng.gen_range(0..=most));
    put(&mut m, "hrss.medical.contribution_years", rng.gen_range(0..=most));
    put(
        &mut m,
        "hrss.unemployment.registered",
        !p.employed && rng.gen_bool(0.12),
    );
    Some(m)
}

/// Civil affairs: marital status and social assistance of adults.
fn ca(rng: &mut ChaCha8Rng, p: &Person) -> Option<Map<String, Value>> {
    if p.age < 18 {
        return None;
    }
    let table: &[(&'static str, u32)] = match p.age {
        ..=24 => &[("single", 85), ("married", 15)],
        25..=34 => &[("single", 30), ("married", 64), ("divorced", 6)],
        35..=59 => &[("single", 5), ("married", 84), ("divorced", 8), ("widowed", 3)],
        _ => &[("single", 3), ("married", 70), ("divorced", 5), ("widowed", 22)],
    };
    let mut m = line(p);
    put(&mut m, "ca.marital_status", weighted(rng, table));
    put(&mut m, "ca.dibao.receiving", rng.gen_bool(0.04));
    put(&mut m, "ca.assistance.receiving", rng.gen_bool(0.02));
    Some(m)
}

/// Housing: owned homes, registered leases and housing guarantee.
fn housing(rng: &mut ChaCha8Rng, p: &Person) -> Option<Map<String, Value>> {
    let guarantee = p.age >= 18 && rng.gen_bool(if p.owns_home { 0.005 } else { 0.06 });
    if !(p.owns_home || p.leases || guarantee) {
        return None;
    }
    let mut m = line(p);
    if p.owns_home {
        let place = if rng.gen_bool(0.85) {
            p.residence
        } else {
            pick(rng, QUJING)
        };
        put(&mut m, "housing.owned_residence.division", place);
    }
    if p.leases {
        let place = if rng.gen_bool(0.90) {
            p.residence
        } else {
            pick(rng, QUJING)
        };
        put(&mut m, "housing.registered_lease.division", place);
    }
    put(&mut m, "housing.guarantee.receiving", guarantee);
    Some(m)
}

/// Land: the rights of rural households, where the household is registered.
fn land(rng: &mut ChaCha8Rng, p: &Person) -> Option<Map<String, Value>> {
    if !p.rural {
        return None;
    }
    let mut m = line(p);
    let contract = rng.gen_bool(0.90);
    // A rural household with no contract land still has its homestead.
    let homestead = !contract || rng.gen_bool(0.85);
    put(&mut m, "land.contract_rights.held", contract);
    put(&mut m, "land.homestead_rights.held", homestead);
    put(&mut m, "land.rights.division", p.hukou);
    put(&mut m, "land.rights.certified", rng.gen_bool(0.80));
    Some(m)
}

/// Tax: registration and individual income tax of adults.
fn tax(rng: &mut ChaCha8Rng, p: &Person) -> Option<Map<String, Value>> {
    if p.age < 18 {
        return None;
    }
    let mut m = line(p);
    put(&mut m, "tax.registered", p.tax_registered);
    if p.tax_registered {
        let most = if p.employed { 12 } else { 6 };
        put(&mut m, "tax.iit.months_paid_last_12", rng.gen_range(0..=most));
    }
    Some(m)
}

/// A new line holding only the citizen ID.
fn line(p: &Person) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("citizen_id".to_owned(), p.id.as_str().into());
    m
}

fn put(m: &mut Map<String, Value>, name: &str, value: impl Into<Value>) {
    m.insert(name.to_owned(), value.into());
}

fn date_value(d: Date) -> Value {
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day()).into()
}

/// A uniformly drawn date in `lo..=hi` (`lo` if the range is empty).
fn random_date(rng: &mut ChaCha8Rng, lo: Date, hi: Date) -> Date {
    let (a, b) = (lo.to_julian_day(), hi.to_julian_day());
    // Invariant: every day between two valid dates is valid.
    Date::from_julian_day(rng.gen_range(a..=b.max(a))).unwrap_or(lo)
}

/// Invariant: called only with the non-empty division tables above.
fn pick(rng: &mut ChaCha8Rng, items: &[&'static str]) -> &'static str {
    items[rng.gen_range(0..items.len())]
}

/// A Qujing division other than `not`, drawn uniformly.
fn other_qujing(rng: &mut ChaCha8Rng, not: &str) -> &'static str {
    if !QUJING.contains(&not) {
        return pick(rng, QUJING);
    }
    let last = QUJING.len() - 1;
    let drawn = QUJING[rng.gen_range(0..last)];
    if drawn == not { QUJING[last] } else { drawn }
}

fn is_qujing(division: &str) -> bool {
    division.starts_with("5303")
}

/// Draws a value with probability proportional to its weight.
fn weighted(rng: &mut ChaCha8Rng, table: &[(&'static str, u32)]) -> &'static str {
    let total: u32 = table.iter().map(|(_, w)| w).sum();
    let mut roll = rng.gen_range(0..total.max(1));
    for &(value, weight) in table {
        if roll < weight {
            return value;
        }
        roll -= weight;
    }
    table.first().map_or("", |&(value, _)| value)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use civex_adapters::value::check_json;

    use super::*;

    fn file(dir: &Path, department: Department) -> String {
        fs::read_to_string(dir.join(format!("{}.jsonl", department.code()))).unwrap()
    }

    #[test]
    fn the_same_seed_gives_the_same_bytes() {
        let [a, b, c] = [(); 3].map(|()| tempfile::tempdir().unwrap());
        let samples_a = generate(300, 7, a.path()).unwrap();
        let samples_b = generate(300, 7, b.path()).unwrap();
        generate(300, 8, c.path()).unwrap();
        assert_eq!(samples_a, samples_b);
        for department in Department::ALL {
            assert_eq!(file(a.path(), department), file(b.path(), department), "{department}");
        }
        assert!(Department::ALL.iter().any(|&d| file(a.path(), d) != file(c.path(), d)));
    }

    /// Checks every line and returns the attribute names seen in each file.
    fn check_files(dir: &Path, citizens: usize) -> Vec<(Department, BTreeSet<String>)> {
        let mut result = Vec::new();
        for department in Department::ALL {
            let text = file(dir, department);
            assert!(!text.contains(catalogue::HOUSEHOLD_NATURE));
            let mut seen = BTreeSet::new();
            let mut lines = 0;
            for line in text.lines() {
                lines += 1;
                let json: Value = serde_json::from_str(line).unwrap();
                let object = json.as_object().unwrap();
                let id = CitizenId::parse(object["citizen_id"].as_str().unwrap()).unwrap();
                for (key, value) in object.iter().filter(|(k, _)| *k != "citizen_id") {
                    let attr = catalogue::attribute(key).unwrap_or_else(|| panic!("unknown {key}"));
                    assert_eq!(attr.department, department, "{key}");
                    assert!(!attr.abolished, "{key}");
                    check_json(attr.value_type, value).unwrap_or_else(|e| panic!("{key}: {e}"));
                    seen.insert(key.clone());
                }
                if department == Department::PublicSecurity {
                    assert_eq!(object["ps.hukou.category"], "resident");
                    assert_eq!(object["ps.identity.birth_date"], date_value(id.birth_date()));
                    let gender = if id.is_male() { "male" } else { "female" };
                    assert_eq!(object["ps.identity.gender"], gender);
                }
            }
            if department == Department::PublicSecurity {
                assert_eq!(lines, citizens);
            }
            result.push((department, seen));
        }
        result
    }

    #[test]
    fn every_line_is_valid_and_every_held_attribute_appears() {
        let dir = tempfile::tempdir().unwrap();
        let samples = generate(500, 2015, dir.path()).unwrap();
        for (department, seen) in check_files(dir.path(), 500) {
            for attr in catalogue::held_by(department) {
                assert!(seen.contains(attr.name), "{} never written", attr.name);
            }
        }
        assert!(!samples.is_empty());
        for sample in &samples {
            CitizenId::parse(&sample.citizen_id).unwrap();
        }
    }

    #[test]
    fn small_data_sets_cover_the_catalogue_too() {
        for seed in 0..10 {
            let dir = tempfile::tempdir().unwrap();
            generate(50, seed, dir.path()).unwrap();
            for (department, seen) in check_files(dir.path(), 50) {
                for attr in catalogue::held_by(department) {
                    assert!(seen.contains(attr.name), "seed {seed}: {} never written", attr.name);
                }
            }
        }
    }
}
