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
//! Citizens come in households (户): a single adult, or a couple with their
//! children and grandchildren, linked by `ps.kin.*` (father, mother, spouse,
//! children) as household registration records them. Every linked ID names a
//! citizen of the same data set; a parent or spouse who is not in it is simply
//! not recorded. Parents are 22 to 38 years older than their children. People
//! who live together share `ps.residence.address_key`; adult children often
//! live apart, some of them with a household registration of their own where
//! they live (落户城镇).
//!
//! The first households are fixed scenarios: every branch of every eligibility
//! predicate (`civex_gateway::policy::predicates`) has a sample citizen, listed in
//! [`BRANCHES`], so that `civex demo` can show each one. The scenarios take 33
//! citizens; a smaller data set holds those that fit, a larger one all of them.
//!
//! The same `citizens`, `seed` and day always give byte-identical files. Only
//! the scenario dates that must stay recent relative to the day the data is
//! used (a move ten days ago, a permit issued 300 days ago, schooling begun
//! last autumn) depend on the day; everything else is fixed, no later than
//! 2025. Citizens are generated and written a household at a time, so a million
//! take seconds and little memory (only the set of issued IDs is kept, to keep
//! them unique).

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
use time::{Date, Duration, Month, macros::date};

use civex_adapters::citizen_id::{CitizenId, today_in_china};

/// Qujing's county-level divisions (Qilin, Zhanyi, Malong, Luliang, Shizong,
/// Luoping, Fuyuan, Huize, Xuanwei).
const QUJING: &[&str] = &[
    "530302", "530303", "530304", "530322", "530323", "530324", "530325", "530326", "530381",
];
/// Elsewhere in Yunnan: Kunming Wuhua and Guandu, Chuxiong, Yuxi Hongta.
const YUNNAN: &[&str] = &["530102", "530111", "532301", "530402"];
/// Other provinces: Chengdu, Guiyang, Bijie, Guangzhou Tianhe, Beijing Chaoyang.
const OTHER: &[&str] = &["510107", "520102", "520502", "440106", "110105"];

/// Divisions the scenarios name.
const QILIN: &str = "530302";
const ZHANYI: &str = "530303";
const MALONG: &str = "530304";
const LUOPING: &str = "530324";
const HUIZE: &str = "530326";
const XUANWEI: &str = "530381";
const WUHUA: &str = "530102";
const CHUXIONG: &str = "532301";
const BIJIE: &str = "520502";

/// Ages are counted by birth year against this year.
const AGE_YEAR: i32 = 2026;
/// No recorded event of a free citizen (moving, permits, schooling) is later than this.
const LATEST_EVENT: Date = date!(2025 - 12 - 31);
/// Residence permits under the national scheme date from 2016.
const PERMITS_FROM: Date = date!(2016 - 01 - 01);
/// Nobody is born later than this, so every ID's birth date is in the past.
const LAST_BIRTH: Date = date!(2020 - 12 - 31);
/// Spouses are at least 22 in [`AGE_YEAR`], the legal age of marriage for men.
const LAST_SPOUSE_BIRTH: Date = date!(2004 - 12 - 31);
/// Attempts at drawing an unused citizen ID before giving up.
const MAX_TRIES: usize = 10_000;

/// A labelled citizen worth trying queries and checks on, picked while generating.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// What is notable about the citizen, e.g. "receives dibao (低保)". Predicate
    /// samples are labelled `<predicate>: <branch>` and listed in [`BRANCHES`].
    pub label: &'static str,
    /// The citizen's 18-character ID.
    pub citizen_id: String,
    /// Parameters to check the predicate with, e.g. `("division", "530302")` or
    /// `("relative_citizen_id", <ID>)`; empty for samples of no predicate.
    pub params: Vec<(&'static str, String)>,
}

impl Sample {
    fn at(label: &'static str, who: &Person, division: &'static str) -> Sample {
        Sample {
            label,
            citizen_id: who.id.as_str().to_owned(),
            params: vec![("division", division.to_owned())],
        }
    }

    fn kin(label: &'static str, who: &Person, relative: &CitizenId) -> Sample {
        Sample::with(label, who, &[("relative_citizen_id", relative.as_str())])
    }

    fn with(label: &'static str, who: &Person, params: &[(&'static str, &str)]) -> Sample {
        Sample {
            label,
            citizen_id: who.id.as_str().to_owned(),
            params: params.iter().map(|&(k, v)| (k, v.to_owned())).collect(),
        }
    }

    /// A sample of a predicate that takes no parameters.
    fn of(label: &'static str, who: &Person) -> Sample {
        Sample::with(label, who, &[])
    }

    /// A sample of `residence.months_at_least` in Qilin for a year.
    fn year_in_qilin(label: &'static str, who: &Person) -> Sample {
        Sample::with(label, who, &[("division", QILIN), ("months", "12")])
    }

    /// A sample of `hrss.contributing` for a year.
    fn year_paid(label: &'static str, who: &Person) -> Sample {
        Sample::with(label, who, &[("months", "12")])
    }

    /// A sample of `ca.means_test` for the minimum living allowance (低保).
    fn dibao(label: &'static str, who: &Person) -> Sample {
        Sample::with(label, who, &[("program", "dibao")])
    }
}

/// A branch of a predicate that the generator guarantees a sample citizen for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Branch {
    /// The sample's label: the predicate's name, a colon and the branch.
    pub label: &'static str,
    /// Whether the predicate holds for the sample under the default thresholds.
    pub satisfied: bool,
}

impl Branch {
    /// The name of the predicate the branch belongs to.
    pub fn predicate(&self) -> &'static str {
        self.label.split_once(':').map_or(self.label, |(name, _)| name)
    }
}

const fn holds(label: &'static str) -> Branch {
    Branch { label, satisfied: true }
}

const fn fails(label: &'static str) -> Branch {
    Branch {
        label,
        satisfied: false,
    }
}

/// The labels of the predicate samples, one per branch.
mod label {
    pub(super) const URBAN_OWNED: &str = "settlement.urban: satisfied by an owned home in 530302";
    pub(super) const URBAN_LEASE: &str = "settlement.urban: satisfied by a registered lease in 530302";
    pub(super) const URBAN_JOB: &str = "settlement.urban: satisfied by registered employment in 530302";
    pub(super) const URBAN_ELSEWHERE: &str = "settlement.urban: home and employment in another division";
    pub(super) const URBAN_NOT_EMPLOYED: &str = "settlement.urban: no home or lease, employment not registered";
    pub(super) const URBAN_MISSING: &str = "settlement.urban: no housing or employment facts recorded";
    pub(super) const KIN_PARENT: &str = "settlement.join_kin: parent living together";
    pub(super) const KIN_CHILD: &str = "settlement.join_kin: child living together";
    pub(super) const KIN_GRANDPARENT: &str = "settlement.join_kin: grandparent living together";
    pub(super) const KIN_GRANDCHILD: &str = "settlement.join_kin: grandchild living together";
    pub(super) const KIN_APART: &str = "settlement.join_kin: parent living apart";
    pub(super) const KIN_SPOUSE: &str = "settlement.join_kin: spouse, not a lineal relative";
    pub(super) const KIN_IN_LAW: &str = "settlement.join_kin: parent-in-law, not a lineal relative";
    pub(super) const KIN_SIBLING: &str = "settlement.join_kin: sibling, not a lineal relative";
    pub(super) const KIN_UNRELATED: &str = "settlement.join_kin: not related";
    pub(super) const KIN_MISSING: &str = "settlement.join_kin: household relations and address not recorded";
    pub(super) const RURAL_SELF: &str = "settlement.return_rural: own land contract rights in 530326, lives there";
    pub(super) const RURAL_PARENT: &str = "settlement.return_rural: parent holds land rights in 530326 and lives there";
    pub(super) const RURAL_SPOUSE: &str = "settlement.return_rural: spouse holds homestead rights in 530326";
    pub(super) const RURAL_CHILD: &str = "settlement.return_rural: child owns a home in 530326";
    pub(super) const RURAL_ELSEWHERE: &str =
        "settlement.return_rural: family holds land in 530326 but the applicant lives elsewhere";
    pub(super) const RURAL_NOTHING: &str =
        "settlement.return_rural: lives in 530326 without land, homestead or home of self or family";
    pub(super) const RURAL_MISSING: &str = "settlement.return_rural: residence and holdings not recorded";
    pub(super) const PERMIT_OK: &str = "residence_permit.apply: permit-eligible after 30+ days away from hukou";
    pub(super) const PERMIT_HOME: &str = "residence_permit.apply: hukou is in 530302";
    pub(super) const PERMIT_ELSEWHERE: &str = "residence_permit.apply: lives in another division";
    pub(super) const PERMIT_RECENT: &str = "residence_permit.apply: moved in fewer than 30 days ago";
    pub(super) const PERMIT_MISSING: &str = "residence_permit.apply: residence not recorded";
    pub(super) const EXAM_FATHER: &str = "exam.accompanying_child: satisfied through the father";
    pub(super) const EXAM_MOTHER: &str = "exam.accompanying_child: satisfied through the mother";
    pub(super) const EXAM_SHORT: &str = "exam.accompanying_child: schooling in 530302 too short";
    pub(super) const EXAM_SCHOOL_ELSEWHERE: &str = "exam.accompanying_child: school in another division";
    pub(super) const EXAM_NO_PERMIT: &str = "exam.accompanying_child: parents hold no residence permit";
    pub(super) const EXAM_PERMIT_RECENT: &str = "exam.accompanying_child: parent's residence permit too recent";
    pub(super) const EXAM_INSURANCE: &str = "exam.accompanying_child: parent's social insurance too short";
    pub(super) const EXAM_MISSING: &str = "exam.accompanying_child: no schooling or parents recorded";
    pub(super) const REGISTERED_HERE: &str = "hukou.registered_in: registered in 530302";
    pub(super) const REGISTERED_ELSEWHERE: &str = "hukou.registered_in: registered in another division";
    pub(super) const REGISTERED_CANCELLED: &str = "hukou.registered_in: registration cancelled on death";
    pub(super) const REGISTERED_MISSING: &str = "hukou.registered_in: registration status not recorded";
    pub(super) const RELATED_SPOUSE: &str = "kin.related: spouse";
    pub(super) const RELATED_PARENT: &str = "kin.related: parent";
    pub(super) const RELATED_SIBLING: &str = "kin.related: sibling";
    pub(super) const RELATED_GRANDCHILD: &str = "kin.related: grandchild";
    pub(super) const RELATED_IN_LAW: &str = "kin.related: parent-in-law, not a close relative";
    pub(super) const RELATED_NONE: &str = "kin.related: not related";
    pub(super) const RELATED_MISSING: &str = "kin.related: household relations not recorded";
    pub(super) const UNMARRIED_SINGLE: &str = "ca.unmarried: single";
    pub(super) const UNMARRIED_DIVORCED: &str = "ca.unmarried: divorced";
    pub(super) const UNMARRIED_WIDOWED: &str = "ca.unmarried: widowed";
    pub(super) const UNMARRIED_MARRIED: &str = "ca.unmarried: married";
    pub(super) const UNMARRIED_MISSING: &str = "ca.unmarried: marital status not recorded";
    pub(super) const MONTHS_OK: &str = "residence.months_at_least: a year and more in 530302";
    pub(super) const MONTHS_SHORT: &str = "residence.months_at_least: moved to 530302 ten days ago";
    pub(super) const MONTHS_ELSEWHERE: &str = "residence.months_at_least: lives in another division";
    pub(super) const MONTHS_MISSING: &str = "residence.months_at_least: residence not recorded";
    pub(super) const STABLE_OWNED: &str = "housing.stable_residence: owned home in 530302";
    pub(super) const STABLE_LEASE: &str = "housing.stable_residence: registered lease in 530302";
    pub(super) const STABLE_ELSEWHERE: &str = "housing.stable_residence: home in another division";
    pub(super) const STABLE_NONE: &str = "housing.stable_residence: neither home nor lease";
    pub(super) const STABLE_MISSING: &str = "housing.stable_residence: no housing record";
    pub(super) const EMPLOYED_HERE: &str = "hrss.stable_employment: registered employment in 530302";
    pub(super) const EMPLOYED_ELSEWHERE: &str = "hrss.stable_employment: employment in another division";
    pub(super) const EMPLOYED_NOT: &str = "hrss.stable_employment: employment not registered";
    pub(super) const EMPLOYED_MISSING: &str = "hrss.stable_employment: no employment record";
    pub(super) const PAID_OK: &str = "hrss.contributing: paid for years without a gap";
    pub(super) const PAID_SHORT: &str = "hrss.contributing: paid for five months";
    pub(super) const PAID_MISSING: &str = "hrss.contributing: no social-insurance record";
    pub(super) const OWNS_NONE: &str = "housing.owns_none: no dwelling registered";
    pub(super) const OWNS_ONE: &str = "housing.owns_none: owns a home";
    pub(super) const OWNS_MISSING: &str = "housing.owns_none: no real-estate record";
    pub(super) const ALIVE: &str = "ps.alive: living";
    pub(super) const ALIVE_DECEASED: &str = "ps.alive: deceased";
    pub(super) const ALIVE_MISSING: &str = "ps.alive: status not recorded";
    pub(super) const CLEAN: &str = "ps.no_criminal_record: no conviction";
    pub(super) const CLEAN_CONVICTED: &str = "ps.no_criminal_record: convicted";
    pub(super) const CLEAN_MISSING: &str = "ps.no_criminal_record: record not kept";
    pub(super) const MEANS_OK: &str = "ca.means_test: within the dibao standards";
    pub(super) const MEANS_INCOME: &str = "ca.means_test: income above the dibao standard";
    pub(super) const MEANS_ASSETS: &str = "ca.means_test: assets above the dibao standard";
    pub(super) const MEANS_MISSING: &str = "ca.means_test: no means-test record";
}

/// Every predicate branch a data set of 33 citizens or more has a sample for,
/// with the outcome expected under the default thresholds (30 days for a
/// residence permit; 3 years of schooling, permit and social insurance for the
/// exams; no years of residence for settling in a town). Each sample's
/// parameters are in its [`Sample::params`].
pub static BRANCHES: &[Branch] = &[
    holds(label::URBAN_OWNED),
    holds(label::URBAN_LEASE),
    holds(label::URBAN_JOB),
    fails(label::URBAN_ELSEWHERE),
    fails(label::URBAN_NOT_EMPLOYED),
    fails(label::URBAN_MISSING),
    holds(label::KIN_PARENT),
    holds(label::KIN_CHILD),
    holds(label::KIN_GRANDPARENT),
    holds(label::KIN_GRANDCHILD),
    fails(label::KIN_APART),
    fails(label::KIN_SPOUSE),
    fails(label::KIN_IN_LAW),
    fails(label::KIN_SIBLING),
    fails(label::KIN_UNRELATED),
    fails(label::KIN_MISSING),
    holds(label::RURAL_SELF),
    holds(label::RURAL_PARENT),
    holds(label::RURAL_SPOUSE),
    holds(label::RURAL_CHILD),
    fails(label::RURAL_ELSEWHERE),
    fails(label::RURAL_NOTHING),
    fails(label::RURAL_MISSING),
    holds(label::PERMIT_OK),
    fails(label::PERMIT_HOME),
    fails(label::PERMIT_ELSEWHERE),
    fails(label::PERMIT_RECENT),
    fails(label::PERMIT_MISSING),
    holds(label::EXAM_FATHER),
    holds(label::EXAM_MOTHER),
    fails(label::EXAM_SHORT),
    fails(label::EXAM_SCHOOL_ELSEWHERE),
    fails(label::EXAM_NO_PERMIT),
    fails(label::EXAM_PERMIT_RECENT),
    fails(label::EXAM_INSURANCE),
    fails(label::EXAM_MISSING),
    holds(label::REGISTERED_HERE),
    fails(label::REGISTERED_ELSEWHERE),
    fails(label::REGISTERED_CANCELLED),
    fails(label::REGISTERED_MISSING),
    holds(label::RELATED_SPOUSE),
    holds(label::RELATED_PARENT),
    holds(label::RELATED_SIBLING),
    holds(label::RELATED_GRANDCHILD),
    fails(label::RELATED_IN_LAW),
    fails(label::RELATED_NONE),
    fails(label::RELATED_MISSING),
    holds(label::UNMARRIED_SINGLE),
    holds(label::UNMARRIED_DIVORCED),
    holds(label::UNMARRIED_WIDOWED),
    fails(label::UNMARRIED_MARRIED),
    fails(label::UNMARRIED_MISSING),
    holds(label::MONTHS_OK),
    fails(label::MONTHS_SHORT),
    fails(label::MONTHS_ELSEWHERE),
    fails(label::MONTHS_MISSING),
    holds(label::STABLE_OWNED),
    holds(label::STABLE_LEASE),
    fails(label::STABLE_ELSEWHERE),
    fails(label::STABLE_NONE),
    fails(label::STABLE_MISSING),
    holds(label::EMPLOYED_HERE),
    fails(label::EMPLOYED_ELSEWHERE),
    fails(label::EMPLOYED_NOT),
    fails(label::EMPLOYED_MISSING),
    holds(label::PAID_OK),
    fails(label::PAID_SHORT),
    fails(label::PAID_MISSING),
    holds(label::OWNS_NONE),
    fails(label::OWNS_ONE),
    fails(label::OWNS_MISSING),
    holds(label::ALIVE),
    fails(label::ALIVE_DECEASED),
    fails(label::ALIVE_MISSING),
    holds(label::CLEAN),
    fails(label::CLEAN_CONVICTED),
    fails(label::CLEAN_MISSING),
    holds(label::MEANS_OK),
    fails(label::MEANS_INCOME),
    fails(label::MEANS_ASSETS),
    fails(label::MEANS_MISSING),
];

/// Where a household lives.
#[derive(Debug, Clone)]
struct Home {
    /// The opaque address key shared by everyone living there.
    key: String,
    division: &'static str,
    /// When the household moved in.
    since: Date,
}

/// Rural land rights of a household, recorded by the land department.
#[derive(Debug, Clone, Copy)]
struct Land {
    contract: bool,
    homestead: bool,
    division: &'static str,
}

/// Every fact that ties one citizen's departmental records together, decided
/// before any record is written; records only add incidental details.
struct Person {
    id: CitizenId,
    birth: Date,
    age: i32,
    hukou: &'static str,
    /// `ps.hukou.rural`: the registered address lies in a village.
    rural: bool,
    residence: &'static str,
    residence_since: Date,
    address_key: String,
    /// Division and date of issue of a residence permit.
    permit: Option<(&'static str, Date)>,
    father: Option<CitizenId>,
    mother: Option<CitizenId>,
    spouse: Option<CitizenId>,
    children: Vec<CitizenId>,
    /// Division and start of continuous schooling.
    school: Option<(&'static str, Date)>,
    /// Division of registered employment.
    employment: Option<&'static str>,
    /// Years of pension contributions, recorded for ages 18 to 65.
    pension_years: i64,
    owned: Option<&'static str>,
    lease: Option<&'static str>,
    land: Option<Land>,
    tax_registered: bool,
    /// `ca.marital_status` when a scenario fixes it; otherwise married with a
    /// spouse in the data, drawn without one.
    marital: Option<&'static str>,
    /// Died: the registration is cancelled, on this day.
    died: Option<Date>,
    convicted: bool,
    /// `hrss.pension.continuous_months` when a scenario or the draw fixes it;
    /// otherwise every year paid while employed, none without employment.
    continuous_months: Option<i64>,
    /// The means-test centre's monthly income and financial assets per person, in yuan.
    means: (i64, i64),
    /// Departments other than public security that hold no record of the citizen.
    no_record: Vec<Department>,
    /// Attributes left out of the records, for missing-data samples.
    unrecorded: Vec<&'static str>,
}

impl Person {
    /// A citizen registered in `hukou` and living at `home`, with no activity yet.
    fn new(id: CitizenId, hukou: &'static str, home: &Home) -> Person {
        let birth = id.birth_date();
        Person {
            birth,
            age: AGE_YEAR - birth.year(),
            hukou,
            rural: false,
            residence: home.division,
            residence_since: home.since.max(birth),
            address_key: home.key.clone(),
            permit: None,
            father: None,
            mother: None,
            spouse: None,
            children: Vec::new(),
            school: None,
            employment: None,
            pension_years: 0,
            owned: None,
            lease: None,
            land: None,
            tax_registered: false,
            marital: None,
            died: None,
            convicted: false,
            continuous_months: None,
            means: (3_000, 80_000),
            no_record: Vec::new(),
            unrecorded: Vec::new(),
            id,
        }
    }
}

/// One optional line per department, in [`Department::ALL`] order.
type Records = [Option<Map<String, Value>>; 7];

/// The generator's state: the random stream, the IDs issued and the addresses handed out.
struct Gen {
    rng: ChaCha8Rng,
    seen: HashSet<CitizenId>,
    /// Mixed into address keys so that different seeds give different keys.
    salt: u64,
    addresses: u64,
}

impl Gen {
    fn new(seed: u64, citizens: usize) -> Gen {
        Gen {
            rng: ChaCha8Rng::seed_from_u64(seed),
            seen: HashSet::with_capacity(citizens.min(1 << 22) + 64),
            salt: mix(seed),
            addresses: 0,
        }
    }

    fn chance(&mut self, p: f64) -> bool {
        self.rng.gen_bool(p)
    }

    fn date(&mut self, lo: Date, hi: Date) -> Date {
        random_date(&mut self.rng, lo, hi)
    }

    fn pick(&mut self, items: &[&'static str]) -> &'static str {
        pick(&mut self.rng, items)
    }

    fn other_qujing(&mut self, not: &str) -> &'static str {
        other_qujing(&mut self.rng, not)
    }

    /// An unused ID for a man or woman born in `division` on `birth`.
    fn id(&mut self, division: &str, birth: Date, male: bool) -> io::Result<CitizenId> {
        for _ in 0..MAX_TRIES {
            // Odd sequence numbers are men's, even ones women's.
            let sequence = self.rng.gen_range(0..500u16) * 2 + u16::from(male);
            let Some(id) = CitizenId::from_parts(division, birth, sequence) else {
                break;
            };
            if self.seen.insert(id.clone()) {
                return Ok(id);
            }
        }
        Err(io::Error::other("could not draw an unused citizen ID"))
    }

    /// A new address. Keys are a bijection of a counter, so no two households share one.
    fn home(&mut self, division: &'static str, since: Date) -> Home {
        self.addresses += 1;
        Home {
            key: format!("{:016x}", mix(self.salt ^ self.addresses)),
            division,
            since,
        }
    }

    /// A scenario citizen born some day of `year` in `division`, registered in `hukou`, living at `home`.
    fn person(
        &mut self,
        division: &'static str,
        year: i32,
        male: bool,
        hukou: &'static str,
        home: &Home,
    ) -> io::Result<Person> {
        let lo = Date::from_calendar_date(year, Month::January, 1).map_err(io::Error::other)?;
        let hi = Date::from_calendar_date(year, Month::December, 31).map_err(io::Error::other)?;
        let birth = self.date(lo, hi);
        let id = self.id(division, birth, male)?;
        Ok(Person::new(id, hukou, home))
    }
}

/// Writes `citizens` synthetic citizens drawn with `seed` to `out/<code>.jsonl`,
/// one file per department (creating `out` if missing), and returns labelled
/// sample citizens: one per predicate branch in [`BRANCHES`] and the first of
/// each other notable kind found. Recent scenario dates count back from today
/// in China; see [`generate_on`].
pub fn generate(citizens: usize, seed: u64, out: &Path) -> io::Result<Vec<Sample>> {
    generate_on(citizens, seed, today_in_china(), out)
}

/// As [`generate`], with the scenario dates that must stay recent (a move ten
/// days ago, a permit issued 300 days ago, schooling begun last autumn) counted
/// back from `today`, the day the predicates will be evaluated on. `today`
/// must be later than 2020.
pub fn generate_on(citizens: usize, seed: u64, today: Date, out: &Path) -> io::Result<Vec<Sample>> {
    fs::create_dir_all(out)?;
    let mut files = Department::ALL
        .iter()
        .map(|d| File::create(out.join(format!("{}.jsonl", d.code()))).map(BufWriter::new))
        .collect::<io::Result<Vec<_>>>()?;
    let mut g = Gen::new(seed, citizens);
    let mut samples = Vec::new();
    let mut written = 0;
    // Scenarios are written whole or not at all, so that every sample's relatives are in the data.
    for scenario in scenarios(&mut g, today)? {
        if written + scenario.people.len() > citizens {
            break;
        }
        for p in &scenario.people {
            emit(&mut g.rng, p, &mut files, &mut samples)?;
        }
        written += scenario.people.len();
        samples.extend(scenario.samples);
    }
    while written < citizens {
        let mut family = free_family(&mut g)?;
        let room = citizens - written;
        if family.len() > room {
            trim(&mut family, room);
        }
        for p in &family {
            emit(&mut g.rng, p, &mut files, &mut samples)?;
        }
        written += family.len();
    }
    for file in &mut files {
        file.flush()?;
    }
    Ok(samples)
}

/// Writes one citizen's records and notes which sample kinds they are.
fn emit(rng: &mut ChaCha8Rng, p: &Person, files: &mut [BufWriter<File>], samples: &mut Vec<Sample>) -> io::Result<()> {
    let mut records: Records = [
        Some(ps(rng, p)),
        edu(rng, p),
        hrss(rng, p),
        ca(rng, p),
        housing(rng, p),
        land(rng, p),
        tax(rng, p),
    ];
    for name in &p.unrecorded {
        let index = catalogue::attribute(name).and_then(|a| Department::ALL.iter().position(|d| *d == a.department));
        if let Some(Some(line)) = index.and_then(|i| records.get_mut(i)) {
            line.remove(*name);
        }
    }
    for (record, department) in records.iter_mut().zip(Department::ALL) {
        // Public security holds a record of everyone; another department's line
        // with nothing but the ID would say nothing.
        let empty = record.as_ref().is_some_and(|line| line.len() <= 1);
        if department != Department::PublicSecurity && (p.no_record.contains(&department) || empty) {
            *record = None;
        }
    }
    for (label, found) in sample_kinds(p, &records) {
        if found && samples.iter().all(|s| s.label != label) {
            samples.push(Sample {
                label,
                citizen_id: p.id.as_str().to_owned(),
                params: Vec::new(),
            });
        }
    }
    for (file, record) in files.iter_mut().zip(&records) {
        if let Some(line) = record {
            serde_json::to_writer(&mut *file, line)?;
            file.write_all(b"\n")?;
        }
    }
    Ok(())
}

/// Which sample kinds (other than predicate branches) the citizen is, by label.
fn sample_kinds(p: &Person, r: &Records) -> [(&'static str, bool); 8] {
    let is = |name: &str, value: Value| field(r, name) == Some(&value);
    [
        (
            "owns a home in Qilin (530302)",
            is("housing.owned_residence.division", "530302".into()),
        ),
        (
            "migrant with a residence permit",
            p.permit.is_some() && !is_qujing(p.id.division()),
        ),
        (
            "lives away from hukou, no residence permit",
            p.residence != p.hukou && p.permit.is_none(),
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

/// A household written as a whole, and the samples it guarantees.
struct Scenario {
    people: Vec<Person>,
    samples: Vec<Sample>,
}

/// The fixed households, in the order they are written. Every fact a predicate
/// reads is set explicitly (a scenario citizen starts with no activity), so the
/// samples hold for any seed; birth days, address keys and incidental facts
/// (marital status, tax, medical insurance…) still vary with the seed.
fn scenarios(g: &mut Gen, today: Date) -> io::Result<Vec<Scenario>> {
    let first = three_generations(g, today)?;
    // Later samples compare other citizens with the grandfather of the first household.
    let grandfather = first.people[0].id.clone();
    Ok(vec![
        first,
        migrant_family(g, today, &grandfather)?,
        newcomers(g, today)?,
        recent_permit(g, today)?,
        short_insurance(g, today)?,
        rural_family(g, today)?,
        rural_spouse(g, today)?,
        elder_with_son(g, today)?,
        renter(g, today)?,
        sparse_records(g, &grandfather)?,
        child_without_records(g)?,
    ])
}

/// `years` years before `today`, give or take a day.
fn years_before(today: Date, years: i64) -> Date {
    today - Duration::days(years * 365 + years / 4)
}

/// 1 September of `year`, when school years begin.
fn september_first(year: i32) -> Date {
    // Invariant: 1 September exists in every year.
    Date::from_calendar_date(year, Month::September, 1).unwrap_or(LATEST_EVENT)
}

/// Grandparents, their son with his wife and two children in one home in
/// Qilin, and a second son living apart: clause 五's relations, clause 四's
/// three ways to settle, and locally registered parents for the exams.
fn three_generations(g: &mut Gen, today: Date) -> io::Result<Scenario> {
    const GRANDFATHER: usize = 0;
    const GRANDMOTHER: usize = 1;
    const FATHER: usize = 2;
    const MOTHER: usize = 3;
    const SON: usize = 4;
    const DAUGHTER: usize = 5;
    const UNCLE: usize = 6;
    let since = g.date(date!(1980 - 01 - 01), date!(1989 - 12 - 31));
    let home = g.home(QILIN, since);
    let mut p = vec![
        g.person(QILIN, 1950, true, QILIN, &home)?,
        g.person(QILIN, 1952, false, QILIN, &home)?,
        g.person(QILIN, 1977, true, QILIN, &home)?,
        // Born in Xuanwei, registered in Qilin since her marriage.
        g.person(XUANWEI, 1979, false, QILIN, &home)?,
        g.person(QILIN, 2008, true, QILIN, &home)?,
        g.person(QILIN, 2012, false, QILIN, &home)?,
    ];
    let moved = g.date(date!(2005 - 01 - 01), date!(2015 - 12 - 31));
    let flat = g.home(QILIN, moved);
    p.push(g.person(QILIN, 1981, true, QILIN, &flat)?);
    marry(&mut p, GRANDFATHER, GRANDMOTHER);
    marry(&mut p, FATHER, MOTHER);
    for son in [FATHER, UNCLE] {
        set_parent(&mut p, GRANDFATHER, son);
        set_parent(&mut p, GRANDMOTHER, son);
    }
    for child in [SON, DAUGHTER] {
        set_parent(&mut p, FATHER, child);
        set_parent(&mut p, MOTHER, child);
    }
    p[GRANDFATHER].owned = Some(QILIN);
    p[FATHER].owned = Some(QILIN);
    p[FATHER].pension_years = 20;
    p[FATHER].tax_registered = true;
    p[MOTHER].residence_since = g.date(date!(2003 - 01 - 01), date!(2007 - 12 - 31));
    p[MOTHER].employment = Some(QILIN);
    p[MOTHER].pension_years = 15;
    p[DAUGHTER].school = Some((QILIN, september_first(today.year() - 6)));
    p[UNCLE].lease = Some(QILIN);
    p[UNCLE].employment = Some(MALONG);
    p[UNCLE].pension_years = 10;
    p[UNCLE].marital = Some("divorced");
    let samples = vec![
        Sample::at(label::URBAN_OWNED, &p[FATHER], QILIN),
        Sample::at(label::URBAN_LEASE, &p[UNCLE], QILIN),
        Sample::at(label::URBAN_JOB, &p[MOTHER], QILIN),
        Sample::kin(label::KIN_PARENT, &p[FATHER], &p[GRANDFATHER].id),
        Sample::kin(label::KIN_CHILD, &p[GRANDFATHER], &p[FATHER].id),
        Sample::kin(label::KIN_GRANDPARENT, &p[SON], &p[GRANDFATHER].id),
        Sample::kin(label::KIN_GRANDCHILD, &p[GRANDMOTHER], &p[SON].id),
        Sample::kin(label::KIN_APART, &p[UNCLE], &p[GRANDMOTHER].id),
        Sample::kin(label::KIN_SPOUSE, &p[MOTHER], &p[FATHER].id),
        Sample::kin(label::KIN_IN_LAW, &p[MOTHER], &p[GRANDMOTHER].id),
        Sample::kin(label::KIN_SIBLING, &p[DAUGHTER], &p[SON].id),
        Sample::at(label::PERMIT_HOME, &p[FATHER], QILIN),
        Sample::at(label::EXAM_NO_PERMIT, &p[DAUGHTER], QILIN),
        Sample::at(label::REGISTERED_HERE, &p[FATHER], QILIN),
        Sample::kin(label::RELATED_SPOUSE, &p[MOTHER], &p[FATHER].id),
        Sample::kin(label::RELATED_PARENT, &p[FATHER], &p[GRANDFATHER].id),
        Sample::kin(label::RELATED_SIBLING, &p[DAUGHTER], &p[SON].id),
        Sample::kin(label::RELATED_GRANDCHILD, &p[GRANDMOTHER], &p[SON].id),
        Sample::kin(label::RELATED_IN_LAW, &p[MOTHER], &p[GRANDMOTHER].id),
        Sample::of(label::UNMARRIED_DIVORCED, &p[UNCLE]),
        Sample::of(label::UNMARRIED_MARRIED, &p[FATHER]),
        Sample::year_in_qilin(label::MONTHS_OK, &p[FATHER]),
        Sample::at(label::STABLE_OWNED, &p[FATHER], QILIN),
        Sample::at(label::STABLE_LEASE, &p[UNCLE], QILIN),
        Sample::at(label::EMPLOYED_HERE, &p[MOTHER], QILIN),
        Sample::at(label::EMPLOYED_ELSEWHERE, &p[UNCLE], QILIN),
        Sample::year_paid(label::PAID_OK, &p[MOTHER]),
        Sample::of(label::OWNS_ONE, &p[FATHER]),
        Sample::of(label::ALIVE, &p[FATHER]),
        Sample::of(label::CLEAN, &p[FATHER]),
        Sample::dibao(label::MEANS_INCOME, &p[FATHER]),
    ];
    Ok(Scenario { people: p, samples })
}

/// Parents from Chuxiong with residence permits in Qilin for six years; the
/// father has paid into the pension for eight years, the mother for one.
/// Their three children have schooled long in Qilin, briefly in Qilin, and
/// long in Zhanyi.
fn migrant_family(g: &mut Gen, today: Date, grandfather: &CitizenId) -> io::Result<Scenario> {
    const FATHER: usize = 0;
    const MOTHER: usize = 1;
    let home = g.home(QILIN, years_before(today, 8));
    let mut p = vec![
        g.person(CHUXIONG, 1985, true, CHUXIONG, &home)?,
        g.person(CHUXIONG, 1987, false, CHUXIONG, &home)?,
        g.person(CHUXIONG, 2013, true, CHUXIONG, &home)?,
        g.person(CHUXIONG, 2016, false, CHUXIONG, &home)?,
        g.person(CHUXIONG, 2014, true, CHUXIONG, &home)?,
    ];
    marry(&mut p, FATHER, MOTHER);
    for child in 2..5 {
        set_parent(&mut p, FATHER, child);
        set_parent(&mut p, MOTHER, child);
    }
    let issued = years_before(today, 6);
    p[FATHER].permit = Some((QILIN, issued));
    p[FATHER].employment = Some(QILIN);
    p[FATHER].lease = Some(QILIN);
    p[FATHER].pension_years = 8;
    p[FATHER].tax_registered = true;
    p[MOTHER].permit = Some((QILIN, issued));
    p[MOTHER].pension_years = 1;
    p[2].school = Some((QILIN, september_first(today.year() - 6)));
    p[3].school = Some((QILIN, september_first(today.year() - 1)));
    p[4].school = Some((ZHANYI, september_first(today.year() - 6)));
    let samples = vec![
        Sample::at(label::PERMIT_OK, &p[FATHER], QILIN),
        Sample::kin(label::KIN_UNRELATED, &p[FATHER], grandfather),
        Sample::at(label::REGISTERED_ELSEWHERE, &p[FATHER], QILIN),
        Sample::kin(label::RELATED_NONE, &p[FATHER], grandfather),
        Sample::at(label::EXAM_FATHER, &p[2], QILIN),
        Sample::at(label::EXAM_SHORT, &p[3], QILIN),
        Sample::at(label::EXAM_SCHOOL_ELSEWHERE, &p[4], QILIN),
    ];
    Ok(Scenario { people: p, samples })
}

/// Parents from Bijie: the father's permit is 300 days old, the mother's five
/// years; a relative who moved in with them ten days ago, without work.
fn newcomers(g: &mut Gen, today: Date) -> io::Result<Scenario> {
    const FATHER: usize = 0;
    const MOTHER: usize = 1;
    const DAUGHTER: usize = 2;
    const COUSIN: usize = 3;
    let home = g.home(QILIN, years_before(today, 7));
    let mut p = vec![
        g.person(BIJIE, 1984, true, BIJIE, &home)?,
        g.person(BIJIE, 1986, false, BIJIE, &home)?,
        g.person(BIJIE, 2012, false, BIJIE, &home)?,
        g.person(BIJIE, 1990, true, BIJIE, &home)?,
    ];
    marry(&mut p, FATHER, MOTHER);
    set_parent(&mut p, FATHER, DAUGHTER);
    set_parent(&mut p, MOTHER, DAUGHTER);
    p[FATHER].permit = Some((QILIN, today - Duration::days(300)));
    p[FATHER].employment = Some(QILIN);
    p[FATHER].pension_years = 10;
    p[MOTHER].permit = Some((QILIN, years_before(today, 5)));
    p[MOTHER].pension_years = 6;
    p[DAUGHTER].school = Some((QILIN, september_first(today.year() - 6)));
    p[COUSIN].residence_since = today - Duration::days(10);
    p[COUSIN].marital = Some("single");
    let samples = vec![
        Sample::at(label::EXAM_MOTHER, &p[DAUGHTER], QILIN),
        Sample::at(label::PERMIT_RECENT, &p[COUSIN], QILIN),
        Sample::at(label::URBAN_NOT_EMPLOYED, &p[COUSIN], QILIN),
        Sample::of(label::UNMARRIED_SINGLE, &p[COUSIN]),
        Sample::year_in_qilin(label::MONTHS_SHORT, &p[COUSIN]),
        Sample::at(label::STABLE_NONE, &p[COUSIN], QILIN),
        Sample::at(label::EMPLOYED_NOT, &p[COUSIN], QILIN),
        Sample::of(label::OWNS_NONE, &p[COUSIN]),
    ];
    Ok(Scenario { people: p, samples })
}

/// A father from Kunming whose permit is 300 days old, and his son; the
/// mother is not in the data.
fn recent_permit(g: &mut Gen, today: Date) -> io::Result<Scenario> {
    let home = g.home(QILIN, years_before(today, 7));
    let mut p = vec![
        g.person(WUHUA, 1983, true, WUHUA, &home)?,
        g.person(WUHUA, 2013, true, WUHUA, &home)?,
    ];
    set_parent(&mut p, 0, 1);
    p[0].permit = Some((QILIN, today - Duration::days(300)));
    p[0].employment = Some(QILIN);
    p[0].pension_years = 9;
    p[1].school = Some((QILIN, september_first(today.year() - 6)));
    let samples = vec![Sample::at(label::EXAM_PERMIT_RECENT, &p[1], QILIN)];
    Ok(Scenario { people: p, samples })
}

/// A father from Luoping with a six-year-old permit but one year of pension
/// contributions, and his daughter; the mother is not in the data.
fn short_insurance(g: &mut Gen, today: Date) -> io::Result<Scenario> {
    let home = g.home(QILIN, years_before(today, 7));
    let mut p = vec![
        g.person(LUOPING, 1982, true, LUOPING, &home)?,
        g.person(LUOPING, 2012, false, LUOPING, &home)?,
    ];
    set_parent(&mut p, 0, 1);
    p[0].permit = Some((QILIN, years_before(today, 6)));
    p[0].pension_years = 1;
    p[1].school = Some((QILIN, september_first(today.year() - 6)));
    let samples = vec![Sample::at(label::EXAM_INSURANCE, &p[1], QILIN)];
    Ok(Scenario { people: p, samples })
}

/// Farmers in Huize holding contract and homestead rights; a son who settled
/// in Qilin and has come back to live with them; a daughter settled, working
/// and owning a home in Xuanwei.
fn rural_family(g: &mut Gen, today: Date) -> io::Result<Scenario> {
    const FARMER: usize = 0;
    const WIFE: usize = 1;
    const RETURNEE: usize = 2;
    const EMIGRANT: usize = 3;
    let since = g.date(date!(1978 - 01 - 01), date!(1981 - 12 - 31));
    let farm = g.home(HUIZE, since);
    let mut p = vec![
        g.person(HUIZE, 1955, true, HUIZE, &farm)?,
        g.person(HUIZE, 1957, false, HUIZE, &farm)?,
        g.person(HUIZE, 1982, true, QILIN, &farm)?,
    ];
    let moved = g.date(date!(2008 - 01 - 01), date!(2014 - 12 - 31));
    let away = g.home(XUANWEI, moved);
    p.push(g.person(HUIZE, 1985, false, XUANWEI, &away)?);
    marry(&mut p, FARMER, WIFE);
    for child in [RETURNEE, EMIGRANT] {
        set_parent(&mut p, FARMER, child);
        set_parent(&mut p, WIFE, child);
    }
    for farmer in [FARMER, WIFE] {
        p[farmer].rural = true;
        p[farmer].land = Some(Land {
            contract: true,
            homestead: true,
            division: HUIZE,
        });
    }
    p[RETURNEE].residence_since = years_before(today, 2);
    p[RETURNEE].owned = Some(QILIN);
    p[RETURNEE].pension_years = 12;
    p[EMIGRANT].owned = Some(XUANWEI);
    p[EMIGRANT].employment = Some(XUANWEI);
    p[EMIGRANT].pension_years = 14;
    p[FARMER].means = (500, 10_000);
    p[WIFE].means = (600, 90_000);
    let samples = vec![
        Sample::at(label::RURAL_SELF, &p[FARMER], HUIZE),
        Sample::at(label::RURAL_PARENT, &p[RETURNEE], HUIZE),
        Sample::at(label::RURAL_ELSEWHERE, &p[EMIGRANT], HUIZE),
        Sample::at(label::URBAN_ELSEWHERE, &p[EMIGRANT], QILIN),
        Sample::at(label::PERMIT_ELSEWHERE, &p[EMIGRANT], QILIN),
        Sample::year_in_qilin(label::MONTHS_ELSEWHERE, &p[EMIGRANT]),
        Sample::at(label::STABLE_ELSEWHERE, &p[EMIGRANT], QILIN),
        Sample::dibao(label::MEANS_OK, &p[FARMER]),
        Sample::dibao(label::MEANS_ASSETS, &p[WIFE]),
    ];
    Ok(Scenario { people: p, samples })
}

/// A man registered in Qilin living in Huize with his wife, who holds only
/// homestead rights there; he has a criminal conviction.
fn rural_spouse(g: &mut Gen, today: Date) -> io::Result<Scenario> {
    let home = g.home(HUIZE, years_before(today, 3));
    let mut p = vec![
        g.person(QILIN, 1980, true, QILIN, &home)?,
        g.person(HUIZE, 1983, false, HUIZE, &home)?,
    ];
    marry(&mut p, 0, 1);
    p[0].convicted = true;
    p[1].rural = true;
    p[1].land = Some(Land {
        contract: false,
        homestead: true,
        division: HUIZE,
    });
    let samples = vec![
        Sample::at(label::RURAL_SPOUSE, &p[0], HUIZE),
        Sample::of(label::CLEAN_CONVICTED, &p[0]),
    ];
    Ok(Scenario { people: p, samples })
}

/// A widower registered in Qilin who moved back to Huize into the home his
/// son owns there; the son's mother died in 2023.
fn elder_with_son(g: &mut Gen, today: Date) -> io::Result<Scenario> {
    let since = g.date(date!(2010 - 01 - 01), date!(2015 - 12 - 31));
    let home = g.home(HUIZE, since);
    let mut p = vec![
        g.person(HUIZE, 1956, true, QILIN, &home)?,
        g.person(HUIZE, 1984, true, HUIZE, &home)?,
        g.person(HUIZE, 1958, false, HUIZE, &home)?,
    ];
    set_parent(&mut p, 0, 1);
    set_parent(&mut p, 2, 1);
    p[0].residence_since = years_before(today, 2);
    p[0].marital = Some("widowed");
    p[1].owned = Some(HUIZE);
    p[1].employment = Some(HUIZE);
    p[1].pension_years = 15;
    p[2].died = Some(date!(2023 - 03 - 14));
    let samples = vec![
        Sample::at(label::RURAL_CHILD, &p[0], HUIZE),
        Sample::of(label::UNMARRIED_WIDOWED, &p[0]),
        Sample::of(label::ALIVE_DECEASED, &p[2]),
        Sample::at(label::REGISTERED_CANCELLED, &p[2], HUIZE),
    ];
    Ok(Scenario { people: p, samples })
}

/// A woman renting in Huize whose father farms in Xuanwei: family land, but not there.
fn renter(g: &mut Gen, today: Date) -> io::Result<Scenario> {
    let since = g.date(date!(1985 - 01 - 01), date!(1990 - 12 - 31));
    let farm = g.home(XUANWEI, since);
    let rented = g.home(HUIZE, years_before(today, 1));
    let mut p = vec![
        g.person(XUANWEI, 1962, true, XUANWEI, &farm)?,
        g.person(XUANWEI, 1990, false, QILIN, &rented)?,
    ];
    set_parent(&mut p, 0, 1);
    p[0].rural = true;
    p[0].land = Some(Land {
        contract: true,
        homestead: true,
        division: XUANWEI,
    });
    p[1].lease = Some(HUIZE);
    p[1].employment = Some(HUIZE);
    p[1].pension_years = 6;
    p[1].continuous_months = Some(5);
    let samples = vec![
        Sample::at(label::RURAL_NOTHING, &p[1], HUIZE),
        Sample::year_paid(label::PAID_SHORT, &p[1]),
    ];
    Ok(Scenario { people: p, samples })
}

/// A pensioner whose public-security record lacks the place of residence and
/// the statuses (registration, death, criminal record), and whom no other
/// department holds a record of.
fn sparse_records(g: &mut Gen, grandfather: &CitizenId) -> io::Result<Scenario> {
    let since = g.date(date!(1990 - 01 - 01), date!(1999 - 12 - 31));
    let home = g.home(ZHANYI, since);
    let mut x = g.person(ZHANYI, 1956, false, ZHANYI, &home)?;
    x.no_record = vec![
        Department::Education,
        Department::HumanResources,
        Department::CivilAffairs,
        Department::Housing,
        Department::Land,
    ];
    x.unrecorded = vec![
        "ps.residence.division",
        "ps.residence.since",
        "ps.residence.address_key",
        "ps.hukou.cancelled",
        "ps.identity.deceased",
        "ps.criminal_record.convicted",
    ];
    let samples = vec![
        Sample::at(label::URBAN_MISSING, &x, QILIN),
        Sample::kin(label::KIN_MISSING, &x, grandfather),
        Sample::at(label::RURAL_MISSING, &x, HUIZE),
        Sample::at(label::PERMIT_MISSING, &x, QILIN),
        Sample::at(label::REGISTERED_MISSING, &x, ZHANYI),
        Sample::kin(label::RELATED_MISSING, &x, grandfather),
        Sample::of(label::UNMARRIED_MISSING, &x),
        Sample::year_in_qilin(label::MONTHS_MISSING, &x),
        Sample::at(label::STABLE_MISSING, &x, QILIN),
        Sample::at(label::EMPLOYED_MISSING, &x, QILIN),
        Sample::year_paid(label::PAID_MISSING, &x),
        Sample::of(label::OWNS_MISSING, &x),
        Sample::of(label::ALIVE_MISSING, &x),
        Sample::of(label::CLEAN_MISSING, &x),
        Sample::dibao(label::MEANS_MISSING, &x),
    ];
    Ok(Scenario {
        people: vec![x],
        samples,
    })
}

/// A boy whose parents are not in the data (he lives with relatives who are
/// not either) and whose schooling is not recorded.
fn child_without_records(g: &mut Gen) -> io::Result<Scenario> {
    let since = g.date(date!(2015 - 01 - 01), date!(2019 - 12 - 31));
    let home = g.home(QILIN, since);
    let mut x = g.person(QILIN, 2014, true, QILIN, &home)?;
    x.no_record = vec![Department::Education];
    let samples = vec![Sample::at(label::EXAM_MISSING, &x, QILIN)];
    Ok(Scenario {
        people: vec![x],
        samples,
    })
}

/// Records `parent` as a parent of `child` on both sides: the child's father or
/// mother (by the parent's gender), the parent's children.
fn set_parent(family: &mut [Person], parent: usize, child: usize) {
    let parent_id = family[parent].id.clone();
    let child_id = family[child].id.clone();
    if parent_id.is_male() {
        family[child].father = Some(parent_id);
    } else {
        family[child].mother = Some(parent_id);
    }
    family[parent].children.push(child_id);
}

/// Records `a` and `b` as each other's spouse.
fn marry(family: &mut [Person], a: usize, b: usize) {
    family[a].spouse = Some(family[b].id.clone());
    family[b].spouse = Some(family[a].id.clone());
}

/// Keeps the first `keep` members of a household (parents come before their
/// children) and forgets links to the others: a relative outside the data set
/// is not recorded.
fn trim(family: &mut Vec<Person>, keep: usize) {
    family.truncate(keep);
    let kept: HashSet<CitizenId> = family.iter().map(|p| p.id.clone()).collect();
    for p in family.iter_mut() {
        for link in [&mut p.father, &mut p.mother, &mut p.spouse] {
            if link.as_ref().is_some_and(|id| !kept.contains(id)) {
                *link = None;
            }
        }
        p.children.retain(|c| kept.contains(c));
    }
}

/// Draws a household of free citizens: one adult living alone, or a couple
/// with their children and grandchildren, some of whom live apart.
fn free_family(g: &mut Gen) -> io::Result<Vec<Person>> {
    let roll = g.rng.gen_range(0..100);
    let origin = match roll {
        0..80 => g.pick(QUJING),
        80..92 => g.pick(YUNNAN),
        _ => g.pick(OTHER),
    };
    // Families from outside Qujing have come to live and work here.
    let migrant = !is_qujing(origin);
    let hukou = if !migrant && g.chance(0.10) {
        g.other_qujing(origin)
    } else {
        origin
    };
    let rural = is_qujing(hukou) && g.chance(0.45);
    let division = if !migrant && g.chance(0.75) {
        hukou
    } else {
        g.other_qujing(hukou)
    };
    let mut family = Vec::new();
    if g.chance(0.15) {
        let birth = g.date(date!(1940 - 01 - 01), date!(2004 - 12 - 31));
        let male = g.chance(0.5);
        let id = g.id(origin, birth, male)?;
        let since = g.date(add_years(birth, 18), LATEST_EVENT);
        let home = g.home(division, since);
        family.push(Person::new(id, hukou, &home));
    } else {
        let husband_birth = g.date(date!(1940 - 01 - 01), date!(1975 - 12 - 31));
        let wife_birth = g.date(add_years(husband_birth, -5), add_years(husband_birth, 3));
        let wife_origin = if g.chance(0.7) { origin } else { g.pick(QUJING) };
        let husband = g.id(origin, husband_birth, true)?;
        let wife = g.id(wife_origin, wife_birth, false)?;
        let since = g.date(add_years(husband_birth.max(wife_birth), 22), LATEST_EVENT);
        let home = g.home(division, since);
        family.push(Person::new(husband, hukou, &home));
        family.push(Person::new(wife, hukou, &home));
        marry(&mut family, 0, 1);
        let children = g.rng.gen_range(1..=3);
        for _ in 0..children {
            add_child(g, &mut family, (0, 1), &home, true)?;
        }
    }
    for p in &mut family {
        // The village address is the family's; whoever registered elsewhere left it.
        p.rural = rural && p.hukou == hukou;
        draw_activities(g, p, migrant);
    }
    Ok(family)
}

/// Adds a child of `parents` (indices into `family`, father first), born when
/// both were 22 to 38 years old and registered with the father. An adult child
/// may live apart and settle where they live; a child of the first generation
/// may marry someone from outside the family and have children of their own.
fn add_child(
    g: &mut Gen,
    family: &mut Vec<Person>,
    parents: (usize, usize),
    home: &Home,
    first_generation: bool,
) -> io::Result<()> {
    let (father, mother) = parents;
    let (father_birth, mother_birth) = (family[father].birth, family[mother].birth);
    let lo = add_years(father_birth.max(mother_birth), 22);
    let hi = add_years(father_birth.min(mother_birth), 38).min(LAST_BIRTH);
    if lo > hi {
        return Ok(());
    }
    let birth = g.date(lo, hi);
    let male = g.chance(0.5);
    let registered = family[father].hukou;
    let id = g.id(registered, birth, male)?;
    let age = AGE_YEAR - birth.year();
    let apart = age >= 18 && g.chance(if first_generation { 0.6 } else { 0.5 });
    let lives = if apart {
        let division = if g.chance(0.6) {
            home.division
        } else {
            g.other_qujing(home.division)
        };
        let since = g.date(add_years(birth, 18), LATEST_EVENT);
        g.home(division, since)
    } else {
        home.clone()
    };
    let mut child = Person::new(id, registered, &lives);
    if apart && is_qujing(lives.division) && g.chance(0.3) {
        child.hukou = lives.division;
    }
    let index = family.len();
    family.push(child);
    set_parent(family, father, index);
    set_parent(family, mother, index);
    if first_generation && age >= 24 && g.chance(0.7) {
        let spouse_birth = g.date(add_years(birth, -4), add_years(birth, 4).min(LAST_SPOUSE_BIRTH));
        let origin = if g.chance(0.8) { g.pick(QUJING) } else { g.pick(YUNNAN) };
        let spouse_id = g.id(origin, spouse_birth, !male)?;
        // Most spouses move their registration to their partner's.
        let hukou = if g.chance(0.6) { family[index].hukou } else { origin };
        let spouse = family.len();
        family.push(Person::new(spouse_id, hukou, &lives));
        marry(family, index, spouse);
        let couple = if male { (index, spouse) } else { (spouse, index) };
        let children = g.rng.gen_range(0..=2);
        for _ in 0..children {
            add_child(g, family, couple, &lives, false)?;
        }
    }
    Ok(())
}

/// Draws what a free citizen does: residence permit, school, work, housing,
/// social insurance, tax and (in a village) land rights.
fn draw_activities(g: &mut Gen, p: &mut Person, migrant: bool) {
    let adult = p.age >= 18;
    if p.residence != p.hukou && (migrant || g.chance(0.80)) {
        let issued = g.date(p.residence_since.max(PERMITS_FROM), LATEST_EVENT);
        p.permit = Some((p.residence, issued));
    }
    let school_odds = if p.age <= 17 { 0.97 } else { 0.5 };
    if (6..=22).contains(&p.age) && g.chance(school_odds) {
        let division = if g.chance(0.90) { p.residence } else { g.pick(QUJING) };
        let latest = LATEST_EVENT.year();
        let start = g.rng.gen_range((p.birth.year() + 6).min(latest)..=latest);
        p.school = Some((division, september_first(start)));
    }
    if (18..=65).contains(&p.age) {
        if g.chance(if migrant { 0.90 } else { 0.60 }) {
            let place = if g.chance(0.85) { p.residence } else { g.pick(QUJING) };
            p.employment = Some(place);
        }
        let most = i64::from((p.age - 18).min(40));
        p.pension_years = g.rng.gen_range(0..=most);
    }
    if adult && !migrant && g.chance(0.50) {
        let place = if g.chance(0.85) { p.residence } else { g.pick(QUJING) };
        p.owned = Some(place);
    }
    let lease_odds = match (p.owned.is_some(), migrant) {
        (true, _) => 0.05,
        (false, true) => 0.60,
        (false, false) => 0.35,
    };
    if adult && g.chance(lease_odds) {
        let place = if g.chance(0.90) { p.residence } else { g.pick(QUJING) };
        p.lease = Some(place);
    }
    if p.employment.is_some() {
        p.continuous_months = Some(g.rng.gen_range(0..=p.pension_years * 12));
    }
    p.convicted = adult && g.chance(0.01);
    p.means = if g.chance(0.06) {
        (g.rng.gen_range(300..=800), g.rng.gen_range(0..=30_000))
    } else {
        (g.rng.gen_range(900..=8_000), g.rng.gen_range(10_000..=400_000))
    };
    let tax_odds = if p.employment.is_some() { 0.80 } else { 0.20 };
    p.tax_registered = adult && g.chance(tax_odds);
    if p.rural {
        let contract = g.chance(0.90);
        // A rural household with no contract land still has its homestead.
        let homestead = !contract || g.chance(0.85);
        p.land = Some(Land {
            contract,
            homestead,
            division: p.hukou,
        });
    }
}

/// Public security: identity, household registration and relations, residence. Everyone has one.
fn ps(rng: &mut ChaCha8Rng, p: &Person) -> Map<String, Value> {
    let mut m = line(p);
    put(&mut m, "ps.identity.birth_date", date_value(p.id.birth_date()));
    put(
        &mut m,
        "ps.identity.gender",
        if p.id.is_male() { "male" } else { "female" },
    );
    put(&mut m, "ps.identity.deceased", p.died.is_some());
    put(&mut m, "ps.hukou.division", p.hukou);
    put(&mut m, "ps.hukou.category", "resident");
    put(&mut m, "ps.hukou.collective", rng.gen_bool(0.05));
    if p.hukou != p.id.division() {
        let moved = if p.hukou == p.residence {
            p.residence_since
        } else {
            random_date(rng, p.birth, LATEST_EVENT)
        };
        put(&mut m, "ps.hukou.moved_in_on", date_value(moved.max(p.birth)));
        put(&mut m, "ps.hukou.moved_from", p.id.division());
    }
    put(&mut m, "ps.hukou.cancelled", p.died.is_some());
    if let Some(died) = p.died {
        put(&mut m, "ps.hukou.cancelled_on", date_value(died));
    }
    put(&mut m, catalogue::CRIMINAL_RECORD, p.convicted);
    put(&mut m, "ps.residence_permit.held", p.permit.is_some());
    if let Some((division, issued)) = p.permit {
        put(&mut m, "ps.residence_permit.division", division);
        put(&mut m, "ps.residence_permit.issued_on", date_value(issued));
    }
    put(&mut m, "ps.residence.division", p.residence);
    put(&mut m, "ps.residence.since", date_value(p.residence_since));
    put(&mut m, "ps.residence.address_key", p.address_key.as_str());
    for (name, relative) in [
        ("ps.kin.father_id", &p.father),
        ("ps.kin.mother_id", &p.mother),
        ("ps.kin.spouse_id", &p.spouse),
    ] {
        if let Some(id) = relative {
            put(&mut m, name, id.as_str());
        }
    }
    if !p.children.is_empty() {
        let ids: Vec<&str> = p.children.iter().map(CitizenId::as_str).collect();
        put(&mut m, "ps.kin.children_ids", ids.join(","));
    }
    m
}

/// Education: school-age citizens and students.
fn edu(rng: &mut ChaCha8Rng, p: &Person) -> Option<Map<String, Value>> {
    let (school, since) = p.school?;
    let mut m = line(p);
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
    put(&mut m, "hrss.employment.registered", p.employment.is_some());
    if let Some(place) = p.employment {
        put(&mut m, "hrss.employment.division", place);
    }
    put(&mut m, "hrss.pension.contribution_years", p.pension_years);
    let employed_years = if p.employment.is_some() {
        p.pension_years * 12
    } else {
        0
    };
    put(
        &mut m,
        "hrss.pension.continuous_months",
        p.continuous_months.unwrap_or(employed_years),
    );
    put(&mut m, "hrss.medical.contribution_years", rng.gen_range(0..=most));
    put(
        &mut m,
        "hrss.unemployment.registered",
        p.employment.is_none() && rng.gen_bool(0.12),
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
    // A spouse in the data means married; without one, "married" is to someone not in it.
    let status = match (p.marital, &p.spouse) {
        (Some(fixed), _) => fixed,
        (None, Some(_)) => "married",
        (None, None) => weighted(rng, table),
    };
    let mut m = line(p);
    put(&mut m, "ca.marital_status", status);
    put(&mut m, "ca.means_test.income_per_person", p.means.0);
    put(&mut m, "ca.means_test.assets_per_person", p.means.1);
    // Most households within the allowance's income line receive it.
    put(&mut m, "ca.dibao.receiving", p.means.0 <= 800 && rng.gen_bool(0.8));
    put(&mut m, "ca.assistance.receiving", rng.gen_bool(0.02));
    Some(m)
}

/// Housing: the real-estate register's count of dwellings (for everyone:
/// the registry answers "none" too), owned homes, registered leases and
/// housing guarantee.
fn housing(rng: &mut ChaCha8Rng, p: &Person) -> Option<Map<String, Value>> {
    let owns = p.owned.is_some();
    let guarantee = p.age >= 18 && rng.gen_bool(if owns { 0.005 } else { 0.06 });
    let mut m = line(p);
    put(&mut m, "housing.owned_residence.count", i64::from(owns));
    if let Some(place) = p.owned {
        put(&mut m, "housing.owned_residence.division", place);
    }
    if let Some(place) = p.lease {
        put(&mut m, "housing.registered_lease.division", place);
    }
    put(&mut m, "housing.guarantee.receiving", guarantee);
    Some(m)
}

/// Land: the rights of rural households, where the household is registered.
fn land(rng: &mut ChaCha8Rng, p: &Person) -> Option<Map<String, Value>> {
    let rights = p.land?;
    let mut m = line(p);
    put(&mut m, "land.contract_rights.held", rights.contract);
    put(&mut m, "land.homestead_rights.held", rights.homestead);
    put(&mut m, "land.rights.division", rights.division);
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
        let most = if p.employment.is_some() { 12 } else { 6 };
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

/// `d` moved by `years` years (negative: back), give or take a day.
fn add_years(d: Date, years: i64) -> Date {
    d + Duration::days(years * 365 + years / 4)
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

/// A bijection on `u64` (the SplitMix64 finaliser): distinct inputs give
/// distinct outputs that look random, so address keys reveal nothing.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeSet, HashMap};

    use civex_adapters::value::check_json;
    use civex_gateway::policy::predicates::{PREDICATES, predicate};

    use super::*;

    /// The day the tests' data is generated for.
    const TODAY: Date = date!(2026 - 06 - 01);

    fn file(dir: &Path, department: Department) -> String {
        fs::read_to_string(dir.join(format!("{}.jsonl", department.code()))).unwrap()
    }

    #[test]
    fn the_same_seed_gives_the_same_bytes() {
        let [a, b, c] = [(); 3].map(|()| tempfile::tempdir().unwrap());
        let samples_a = generate_on(300, 7, TODAY, a.path()).unwrap();
        let samples_b = generate_on(300, 7, TODAY, b.path()).unwrap();
        generate_on(300, 8, TODAY, c.path()).unwrap();
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
        let samples = generate_on(500, 2015, TODAY, dir.path()).unwrap();
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
            generate_on(50, seed, TODAY, dir.path()).unwrap();
            for (department, seen) in check_files(dir.path(), 50) {
                for attr in catalogue::held_by(department) {
                    assert!(seen.contains(attr.name), "seed {seed}: {} never written", attr.name);
                }
            }
        }
    }

    #[test]
    fn tiny_data_sets_have_exactly_as_many_citizens() {
        for citizens in [0, 1, 5, 7, 8, 31, 32, 33] {
            let dir = tempfile::tempdir().unwrap();
            generate_on(citizens, 3, TODAY, dir.path()).unwrap();
            check_files(dir.path(), citizens);
            check_households(dir.path());
        }
    }

    /// What the public-security file says about one citizen's household.
    struct Kin {
        male: bool,
        birth: Date,
        father: Option<String>,
        mother: Option<String>,
        spouse: Option<String>,
        children: Vec<String>,
    }

    fn households(dir: &Path) -> HashMap<String, Kin> {
        let text = file(dir, Department::PublicSecurity);
        let text_of = |o: &Map<String, Value>, k: &str| o.get(k).map(|v| v.as_str().unwrap().to_owned());
        text.lines()
            .map(|line| {
                let json: Value = serde_json::from_str(line).unwrap();
                let o = json.as_object().unwrap();
                let id = CitizenId::parse(o["citizen_id"].as_str().unwrap()).unwrap();
                let children = text_of(o, "ps.kin.children_ids")
                    .map(|s| s.split(',').map(str::to_owned).collect())
                    .unwrap_or_default();
                let kin = Kin {
                    male: id.is_male(),
                    birth: id.birth_date(),
                    father: text_of(o, "ps.kin.father_id"),
                    mother: text_of(o, "ps.kin.mother_id"),
                    spouse: text_of(o, "ps.kin.spouse_id"),
                    children,
                };
                (id.as_str().to_owned(), kin)
            })
            .collect()
    }

    /// Whole years from `from` to `to`.
    fn years(from: Date, to: Date) -> i32 {
        let whole = to.year() - from.year();
        if (u8::from(to.month()), to.day()) < (u8::from(from.month()), from.day()) {
            whole - 1
        } else {
            whole
        }
    }

    /// Checks that every relation points into the data and is recorded on both sides,
    /// and returns how many parent links there are.
    fn check_households(dir: &Path) -> usize {
        let people = households(dir);
        let mut links = 0;
        for (id, kin) in &people {
            for (parent, male) in [(&kin.father, true), (&kin.mother, false)] {
                let Some(parent) = parent else { continue };
                links += 1;
                let p = people
                    .get(parent)
                    .unwrap_or_else(|| panic!("{id}: parent {parent} not in the data"));
                assert_eq!(p.male, male, "{id}: parent {parent} has the wrong gender");
                assert!(p.children.contains(id), "{parent} does not list child {id}");
                let gap = years(p.birth, kin.birth);
                assert!((20..=40).contains(&gap), "{id} born {gap} years after parent {parent}");
            }
            if let Some(spouse) = &kin.spouse {
                let s = people
                    .get(spouse)
                    .unwrap_or_else(|| panic!("{id}: spouse {spouse} not in the data"));
                assert_eq!(
                    s.spouse.as_deref(),
                    Some(id.as_str()),
                    "{id}: marriage recorded on one side"
                );
                assert_ne!(s.male, kin.male, "{id}: spouse of the same gender");
            }
            for child in &kin.children {
                let c = people
                    .get(child)
                    .unwrap_or_else(|| panic!("{id}: child {child} not in the data"));
                let parents = [c.father.as_deref(), c.mother.as_deref()];
                assert!(
                    parents.contains(&Some(id.as_str())),
                    "{child} does not name parent {id}"
                );
            }
        }
        links
    }

    #[test]
    fn households_are_consistent_and_every_predicate_branch_has_a_sample() {
        let ps_ids = |dir: &Path| -> HashSet<String> { households(dir).into_keys().collect() };
        for citizens in [200, 1_000] {
            for seed in [0, 1, 7, 2015] {
                let dir = tempfile::tempdir().unwrap();
                let samples = generate_on(citizens, seed, TODAY, dir.path()).unwrap();
                let context = format!("{citizens} citizens, seed {seed}");
                assert!(
                    check_households(dir.path()) > citizens / 4,
                    "{context}: too few parent links"
                );
                let ids = ps_ids(dir.path());
                for branch in BRANCHES {
                    let found: Vec<_> = samples.iter().filter(|s| s.label == branch.label).collect();
                    assert_eq!(found.len(), 1, "{context}: {}", branch.label);
                    let sample = found[0];
                    assert!(ids.contains(&sample.citizen_id), "{context}: {}", branch.label);
                    let p = predicate(branch.predicate()).unwrap();
                    let names: Vec<&str> = sample.params.iter().map(|(name, _)| *name).collect();
                    assert_eq!(names, p.params, "{context}: {}", branch.label);
                    for (name, value) in &sample.params {
                        match *name {
                            "division" => assert!(value.len() == 6 && value.bytes().all(|b| b.is_ascii_digit())),
                            "relative_citizen_id" => assert!(ids.contains(value), "{context}: {}", branch.label),
                            "months" | "program" => {}
                            other => panic!("{context}: {}: unexpected parameter {other}", branch.label),
                        }
                    }
                }
                for sample in samples.iter().filter(|s| s.label.contains(':')) {
                    assert!(
                        BRANCHES.iter().any(|b| b.label == sample.label),
                        "{context}: {} is not a listed branch",
                        sample.label
                    );
                }
            }
        }
    }

    #[test]
    fn branches_are_named_after_the_predicates() {
        let predicates: Vec<&str> = PREDICATES.iter().map(|p| p.name).collect();
        for (i, branch) in BRANCHES.iter().enumerate() {
            assert!(predicates.contains(&branch.predicate()), "{}", branch.label);
            assert!(
                BRANCHES[i + 1..].iter().all(|b| b.label != branch.label),
                "{}",
                branch.label
            );
            assert!(!branch.label.contains(['\t', '\n']), "{}", branch.label);
        }
        for predicate in predicates {
            let of = |satisfied: bool| {
                BRANCHES
                    .iter()
                    .filter(|b| b.predicate() == predicate && b.satisfied == satisfied)
                    .count()
            };
            assert!(of(true) >= 1 && of(false) >= 2, "{predicate}");
        }
    }

    #[test]
    fn address_keys_are_shared_only_by_households() {
        let dir = tempfile::tempdir().unwrap();
        generate_on(1_000, 11, TODAY, dir.path()).unwrap();
        let mut by_key: HashMap<String, Vec<Value>> = HashMap::new();
        for line in file(dir.path(), Department::PublicSecurity).lines() {
            let json: Value = serde_json::from_str(line).unwrap();
            if let Some(key) = json.get("ps.residence.address_key").and_then(Value::as_str) {
                by_key.entry(key.to_owned()).or_default().push(json.clone());
            }
        }
        let shared = by_key.values().filter(|people| people.len() > 1).count();
        assert!(shared > 50, "only {shared} shared addresses");
        for people in by_key.values() {
            let divisions: BTreeSet<&str> = people
                .iter()
                .map(|p| p["ps.residence.division"].as_str().unwrap_or_default())
                .collect();
            assert_eq!(divisions.len(), 1, "one address lies in one division");
        }
    }
}
