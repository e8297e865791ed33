//! A call's parameters, checked before any department is asked.

use std::collections::HashMap;

use civex_adapters::citizen_id::{CitizenId, is_province};
use time::Date;

use super::{DIVISION, MONTHS, PROGRAM, Predicate, RELATIVE_CITIZEN_ID, Thresholds};
use crate::error::{Error, Reason};

/// The parameters of a call, checked.
#[derive(Debug, Default)]
pub(super) struct Given {
    pub(super) division: Option<String>,
    pub(super) relative: Option<CitizenId>,
    pub(super) months: Option<u32>,
    pub(super) program: Option<String>,
}

/// The most months a `months` parameter may name: a hundred years.
const MAX_MONTHS: u32 = 1200;

pub(super) fn check_params(
    p: &Predicate,
    params: &HashMap<String, String>,
    citizen: &CitizenId,
    thresholds: &Thresholds,
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
            if p.params.is_empty() {
                format!("{} takes no parameters; {shown:?} was given", p.name)
            } else {
                format!(
                    "{} takes no parameter {shown:?}; it takes {}",
                    p.name,
                    p.params.join(", ")
                )
            },
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
            MONTHS => {
                let months = value.parse::<u32>().ok().filter(|m| (1..=MAX_MONTHS).contains(m));
                given.months = Some(months.ok_or_else(|| {
                    Error::new(
                        Reason::InvalidRequest,
                        format!("parameter {MONTHS} must be a whole number of months from 1 to {MAX_MONTHS}"),
                    )
                })?);
            }
            PROGRAM => {
                if !thresholds.means_test.contains_key(value) {
                    let known: Vec<&str> = thresholds.means_test.keys().map(String::as_str).collect();
                    let shown: String = value.chars().take(40).collect();
                    return Err(Error::new(
                        Reason::InvalidRequest,
                        format!(
                            "parameter {PROGRAM} {shown:?} names no means-tested program; this gateway knows {}",
                            known.join(", ")
                        ),
                    ));
                }
                given.program = Some(value.clone());
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
pub(super) fn required<T>(value: Option<T>) -> Result<T, Error> {
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
