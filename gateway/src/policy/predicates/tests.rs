use std::{collections::BTreeMap, sync::Arc, time::Duration};

use civex_adapters::{Adapter, EmbeddedRegistries, Record, RegistryStore, catalogue};
use serde_json::Value;
use time::macros::date;

use super::{facts::*, *};

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

    fn departments(&self) -> (EmbeddedRegistries, Departments) {
        let registries = EmbeddedRegistries::temporary().unwrap();
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
            adapters.push(Arc::new(registries.fill(department, records).unwrap()));
        }
        (registries, Departments::new(adapters, Duration::from_secs(5)))
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
    let kids = format!("{},{}", w.id("returnee").as_str(), w.id("emigrant").as_str());
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
            Answer(true, &["owns a home in 530302 — holds"]),
        ),
        (
            SETTLEMENT_URBAN,
            "uncle",
            IN_QILIN,
            Answer(true, &["holds a registered lease in 530302 — holds"]),
        ),
        (
            SETTLEMENT_URBAN,
            "mother",
            IN_QILIN,
            Answer(true, &["registered employment in 530302 — holds"]),
        ),
        (
            SETTLEMENT_URBAN,
            "stranger",
            IN_QILIN,
            Answer(
                false,
                &[
                    "owns a home in 530302 — does not hold",
                    "holds a registered lease in 530302 — does not hold",
                    "registered employment in 530302 — does not hold",
                ],
            ),
        ),
        (
            SETTLEMENT_URBAN,
            "jobless",
            IN_QILIN,
            Answer(false, &["registered employment in 530302 — does not hold"]),
        ),
        (
            SETTLEMENT_URBAN,
            "bare",
            IN_QILIN,
            Answer(
                false,
                &[
                    "owns a home in 530302 — does not hold",
                    "holds a registered lease in 530302 — does not hold",
                    "registered employment in 530302 — does not hold",
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
                &[
                    "lineal relatives within three generations — holds",
                    "both are recorded at the same residence address — holds",
                ],
            ),
        ),
        (
            SETTLEMENT_JOIN_KIN,
            "father",
            &[(RELATIVE_CITIZEN_ID, "grandma")],
            Answer(true, &["lineal relatives within three generations — holds"]),
        ),
        (
            SETTLEMENT_JOIN_KIN,
            "grandpa",
            &[(RELATIVE_CITIZEN_ID, "father")],
            Answer(true, &["lineal relatives within three generations — holds"]),
        ),
        (
            SETTLEMENT_JOIN_KIN,
            "child",
            &[(RELATIVE_CITIZEN_ID, "grandpa")],
            Answer(true, &["lineal relatives within three generations — holds"]),
        ),
        (
            SETTLEMENT_JOIN_KIN,
            "grandma",
            &[(RELATIVE_CITIZEN_ID, "child")],
            Answer(true, &["lineal relatives within three generations — holds"]),
        ),
        (
            SETTLEMENT_JOIN_KIN,
            "child",
            &[(RELATIVE_CITIZEN_ID, "granny")],
            Answer(
                false,
                &[
                    "lineal relatives within three generations — holds",
                    "both are recorded at the same residence address — does not hold",
                ],
            ),
        ),
        (
            SETTLEMENT_JOIN_KIN,
            "uncle",
            &[(RELATIVE_CITIZEN_ID, "grandma")],
            Answer(
                false,
                &[
                    "lineal relatives within three generations — holds",
                    "both are recorded at the same residence address — does not hold",
                ],
            ),
        ),
        (
            SETTLEMENT_JOIN_KIN,
            "mother",
            &[(RELATIVE_CITIZEN_ID, "father")],
            Answer(
                false,
                &[
                    "lineal relatives within three generations — does not hold",
                    "both are recorded at the same residence address — holds",
                ],
            ),
        ),
        (
            SETTLEMENT_JOIN_KIN,
            "mother",
            &[(RELATIVE_CITIZEN_ID, "grandma")],
            Answer(false, &["lineal relatives within three generations — does not hold"]),
        ),
        (
            SETTLEMENT_JOIN_KIN,
            "sibling",
            &[(RELATIVE_CITIZEN_ID, "child")],
            Answer(
                false,
                &[
                    "lineal relatives within three generations — does not hold",
                    "both are recorded at the same residence address — holds",
                ],
            ),
        ),
        (
            SETTLEMENT_JOIN_KIN,
            "stranger",
            &[(RELATIVE_CITIZEN_ID, "grandpa")],
            Answer(
                false,
                &[
                    "lineal relatives within three generations — does not hold",
                    "both are recorded at the same residence address — does not hold",
                ],
            ),
        ),
        (
            SETTLEMENT_JOIN_KIN,
            "bare",
            &[(RELATIVE_CITIZEN_ID, "grandpa")],
            Answer(
                false,
                &["both are recorded at the same residence address — does not hold"],
            ),
        ),
        (
            SETTLEMENT_JOIN_KIN,
            "grandpa",
            &[(RELATIVE_CITIZEN_ID, "bare")],
            Answer(
                false,
                &["both are recorded at the same residence address — does not hold"],
            ),
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
            Answer(true, &["or an owned home in 530326 — holds", "lives in 530326 — holds"]),
        ),
        (
            SETTLEMENT_RETURN_RURAL,
            "returnee",
            IN_HUIZE,
            Answer(true, &["or an owned home in 530326 — holds"]),
        ),
        (
            SETTLEMENT_RETURN_RURAL,
            "emigrant",
            IN_HUIZE,
            Answer(
                false,
                &["or an owned home in 530326 — holds", "lives in 530326 — does not hold"],
            ),
        ),
        (
            SETTLEMENT_RETURN_RURAL,
            "husband",
            IN_HUIZE,
            Answer(true, &["or an owned home in 530326 — holds"]),
        ),
        (
            SETTLEMENT_RETURN_RURAL,
            "elder",
            IN_HUIZE,
            Answer(true, &["or an owned home in 530326 — holds"]),
        ),
        (
            SETTLEMENT_RETURN_RURAL,
            "renter",
            IN_HUIZE,
            Answer(false, &["or an owned home in 530326 — does not hold"]),
        ),
        (
            SETTLEMENT_RETURN_RURAL,
            "landless",
            IN_HUIZE,
            Answer(false, &["or an owned home in 530326 — does not hold"]),
        ),
        (
            SETTLEMENT_RETURN_RURAL,
            "bare",
            IN_HUIZE,
            Answer(
                false,
                &[
                    "or an owned home in 530326 — does not hold",
                    "lives in 530326 — does not hold",
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
                &[
                    "lives in 530302 — holds",
                    "registered outside 530302 — holds",
                    "for at least 30 days — holds",
                ],
            ),
        ),
        (
            RESIDENCE_PERMIT_APPLY,
            "father",
            IN_QILIN,
            Answer(false, &["registered outside 530302 — does not hold"]),
        ),
        (
            RESIDENCE_PERMIT_APPLY,
            "stranger",
            IN_QILIN,
            Answer(
                false,
                &[
                    "lives in 530302 — does not hold",
                    "for at least 30 days — does not hold",
                ],
            ),
        ),
        (
            RESIDENCE_PERMIT_APPLY,
            "newcomer",
            IN_QILIN,
            Answer(false, &["for at least 30 days — does not hold"]),
        ),
        (
            RESIDENCE_PERMIT_APPLY,
            "newcomer30",
            IN_QILIN,
            Answer(true, &["for at least 30 days — holds"]),
        ),
        (
            RESIDENCE_PERMIT_APPLY,
            "newcomer29",
            IN_QILIN,
            Answer(false, &["for at least 30 days — does not hold"]),
        ),
        (
            RESIDENCE_PERMIT_APPLY,
            "bare",
            IN_QILIN,
            Answer(
                false,
                &[
                    "lives in 530302 — does not hold",
                    "registered outside 530302 — does not hold",
                ],
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
                    "at school in 530302 for at least 3 years — holds",
                    "basic pension contributions for at least 3 years — holds",
                ],
            ),
        ),
        (
            EXAM_ACCOMPANYING_CHILD,
            "pupil_m",
            IN_QILIN,
            Answer(true, &["basic pension contributions for at least 3 years — holds"]),
        ),
        (
            EXAM_ACCOMPANYING_CHILD,
            "new_pupil",
            IN_QILIN,
            Answer(false, &["at school in 530302 for at least 3 years — does not hold"]),
        ),
        (
            EXAM_ACCOMPANYING_CHILD,
            "far_pupil",
            IN_QILIN,
            Answer(false, &["at school in 530302 for at least 3 years — does not hold"]),
        ),
        (
            EXAM_ACCOMPANYING_CHILD,
            "sibling",
            IN_QILIN,
            Answer(
                false,
                &["basic pension contributions for at least 3 years — does not hold"],
            ),
        ),
        (
            EXAM_ACCOMPANYING_CHILD,
            "pupil_recent",
            IN_QILIN,
            Answer(
                false,
                &["basic pension contributions for at least 3 years — does not hold"],
            ),
        ),
        (
            EXAM_ACCOMPANYING_CHILD,
            "pupil_poor",
            IN_QILIN,
            Answer(
                false,
                &["basic pension contributions for at least 3 years — does not hold"],
            ),
        ),
        (
            EXAM_ACCOMPANYING_CHILD,
            "pupil_away",
            IN_QILIN,
            Answer(
                false,
                &["basic pension contributions for at least 3 years — does not hold"],
            ),
        ),
        (
            EXAM_ACCOMPANYING_CHILD,
            "pupil_ghost",
            IN_QILIN,
            Answer(
                false,
                &["basic pension contributions for at least 3 years — does not hold"],
            ),
        ),
        (
            EXAM_ACCOMPANYING_CHILD,
            "orphan",
            IN_QILIN,
            Answer(
                false,
                &["basic pension contributions for at least 3 years — does not hold"],
            ),
        ),
        (
            EXAM_ACCOMPANYING_CHILD,
            "bare",
            IN_QILIN,
            Answer(
                false,
                &[
                    "at school in 530302 for at least 3 years — does not hold",
                    "basic pension contributions for at least 3 years — does not hold",
                ],
            ),
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

/// A predicate's reasons disclose the outcome, not the facts (DESIGN §11):
/// each is a requirement of the clause and whether it held, so the reasons
/// of an answer are the same for every citizen with the same outcome of
/// each condition.
#[tokio::test]
async fn reasons_disclose_only_which_conditions_held() {
    let w = world();
    let (_registries, departments) = w.departments();
    // What the reasons once said: why a condition failed, whose record decided, which relation.
    const TELLING: &[&str] = &[
        "not recorded",
        "无记录",
        "fewer than",
        "不满",
        "is not in",
        "does not live",
        "not registered",
        "not held",
        "the father",
        "the mother",
        "the spouse",
        "a child has",
        "applicant's",
        "grandparent",
        "grandchild",
        "父亲的",
        "母亲的",
    ];
    let mut by_outcome: HashMap<(&str, Vec<bool>), Vec<String>> = HashMap::new();
    for (name, who, given, expect) in cases() {
        if matches!(expect, Expect::Refused(_)) {
            continue;
        }
        let outcome = evaluate(
            predicate(name).unwrap(),
            w.id(who),
            &params(&w, given),
            &departments,
            &Thresholds::default(),
            TODAY,
        )
        .await
        .unwrap();
        for reason in &outcome.reasons {
            assert!(
                !TELLING.iter().any(|t| reason.contains(t)),
                "{name} for {who} tells more than the outcome: {reason}"
            );
        }
        let held = outcome.reasons.iter().map(|r| r.ends_with("— holds")).collect();
        let seen = by_outcome
            .entry((name, held))
            .or_insert_with(|| outcome.reasons.clone());
        if given == [(DIVISION, QILIN)] || given == [(DIVISION, HUIZE)] {
            assert_eq!(
                *seen, outcome.reasons,
                "{name} for {who}: the same outcome, other words"
            );
        }
    }
}

#[tokio::test]
async fn every_predicate_answers_its_table_of_cases() {
    let w = world();
    let (_registries, departments) = w.departments();
    let thresholds = Thresholds::default();
    for (name, who, given, expect) in cases() {
        let p = predicate(name).unwrap();
        let params = params(&w, given);
        let result = evaluate(p, w.id(who), &params, &departments, &thresholds, TODAY).await;
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
    let (_registries, departments) = w.departments();
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
            &departments,
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
    let (_registries, departments) = w.departments();
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
            "has lived in 530302 for at least 2 years — holds",
        ),
        // The uncle's lease is in Qilin, but he moved there this year.
        (
            SETTLEMENT_URBAN,
            "uncle",
            false,
            "has lived in 530302 for at least 2 years — does not hold",
        ),
        (
            SETTLEMENT_URBAN,
            "mother",
            true,
            "has lived in 530302 for at least 2 years — holds",
        ),
        (RESIDENCE_PERMIT_APPLY, "newcomer", true, "for at least 5 days — holds"),
        (
            EXAM_ACCOMPANYING_CHILD,
            "new_pupil",
            true,
            "at school in 530302 for at least 1 years — holds",
        ),
    ];
    for (name, who, satisfied, fragment) in cases {
        let outcome = evaluate(
            predicate(name).unwrap(),
            w.id(who),
            &params(&w, &[(DIVISION, QILIN)]),
            &departments,
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
fn whole_months_end_on_the_same_day_or_the_last_day_of_a_shorter_month() {
    let cases = [
        (date!(2026 - 01 - 15), date!(2026 - 02 - 14), 0),
        (date!(2026 - 01 - 15), date!(2026 - 02 - 15), 1),
        (date!(2026 - 01 - 31), date!(2026 - 02 - 28), 1),
        (date!(2026 - 01 - 31), date!(2026 - 02 - 27), 0),
        (date!(2024 - 01 - 31), date!(2024 - 02 - 29), 1),
        (date!(2024 - 02 - 29), date!(2025 - 02 - 28), 12),
        (date!(2025 - 06 - 01), date!(2026 - 06 - 01), 12),
        (date!(2025 - 12 - 31), date!(2026 - 01 - 30), 0),
        (date!(2026 - 06 - 02), date!(2026 - 06 - 01), -1),
    ];
    for (from, to, months) in cases {
        assert_eq!(full_months(from, to), months, "{from} to {to}");
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
        assert!(
            p.basis.contains('〔') || p.basis.contains('《'),
            "{}: {}",
            p.name,
            p.basis
        );
        assert!(!p.sources.is_empty(), "{}", p.name);
        let Reads { applicant, reached } = reads(p.name);
        assert!(!applicant.is_empty(), "{} says what it reads", p.name);
        let read: Vec<&str> = applicant.into_iter().chain(reached).collect();
        for fact in &read {
            let department = catalogue::attribute(fact).unwrap().department;
            assert!(
                p.sources.contains(&department),
                "{} reads {fact} of a department it does not list",
                p.name
            );
        }
        for fact in p.unserved {
            assert!(read.contains(fact), "{} reads {fact}", p.name);
            assert!(!catalogue::attribute(fact).unwrap().served(), "{fact}");
        }
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
        RELATION_FACTS,
        REGISTRATION_FACTS,
        HOUSING_FACTS,
        EMPLOYMENT_FACTS,
        MEANS_FACTS,
        &[DECEASED, CONVICTED, MARITAL_STATUS, CONTINUOUS_MONTHS, OWNED_COUNT],
    ];
    for name in groups.into_iter().flatten() {
        let attribute = catalogue::attribute(name).unwrap_or_else(|| panic!("{name} is not catalogued"));
        assert!(!attribute.abolished, "{name}");
    }
}

#[tokio::test]
async fn a_predicate_outside_the_registry_is_unknown() {
    let w = world();
    let (_registries, departments) = w.departments();
    let made_up = Predicate {
        name: "settlement.anywhere",
        ..PREDICATES[0]
    };
    let err = evaluate(
        &made_up,
        w.id("father"),
        &params(&w, &[(DIVISION, QILIN)]),
        &departments,
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
    let registries = EmbeddedRegistries::temporary().unwrap();
    let ps = RegistryStore::open(&registries, Department::PublicSecurity).unwrap();
    let departments = Departments::new([ps], Duration::from_secs(5));
    let err = evaluate(
        predicate(SETTLEMENT_URBAN).unwrap(),
        w.id("father"),
        &params(&w, &[(DIVISION, QILIN)]),
        &departments,
        &Thresholds::default(),
        TODAY,
    )
    .await
    .unwrap_err();
    assert_eq!(err.reason, Reason::SourceUnavailable);
}
