//! The alert rules of DESIGN §13, run over the log's records in log order.
//!
//! [`Rules`] are the thresholds, resolved from `[alerts.<rule>]`; an
//! [`Engine`] holds, per rule, the records of its window that it needs and
//! turns each record it is fed into the [`Hit`]s it causes. Time is the
//! records' own (the gateway's clock when each was written), so a replay of
//! the same records gives the same hits, and a test's manual clock drives
//! the windows.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    time::{Duration, SystemTime},
};

use civex_proto::v1::{AuditRecord, CommitmentState, Decision, Severity};
use serde::{Deserialize, Serialize};

use crate::config::ConfigError;

/// A lookup of a citizen's data: what `operator_volume`, `citizen_spread`
/// and `shared_credential` count.
const LOOKUPS: &[&str] = &["ExchangeService/Query", "ExchangeService/Check"];
const GRANT: &str = "ConsentService/Grant";
const HISTORY: &str = "AuditService/AccessHistory";
const WATCH: &str = "OversightService/WatchCitizen";
const UNWATCH: &str = "OversightService/UnwatchCitizen";
const VERIFY: &str = crate::commitments::VERIFY;
const NOTIFY: &str = crate::service::correction::NOTIFY;
/// Oversight's own work: never an access to watch.
const OVERSIGHT: &[&str] = &["AuditService/", "OversightService/"];
/// How many indices an alert names at most.
pub const MAX_INDICES: usize = 100;

/// Each rule's name, as alerts and `[alerts.<rule>]` spell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rule {
    OperatorVolume,
    OffHours,
    SharedCredential,
    CitizenSpread,
    RefusalProbe,
    ConsentBurst,
    HistoryVolume,
    AbolishedRequest,
    WatchedCitizen,
    FalseCommitment,
}

impl Rule {
    pub const ALL: [Rule; 10] = [
        Rule::OperatorVolume,
        Rule::OffHours,
        Rule::SharedCredential,
        Rule::CitizenSpread,
        Rule::RefusalProbe,
        Rule::ConsentBurst,
        Rule::HistoryVolume,
        Rule::AbolishedRequest,
        Rule::WatchedCitizen,
        Rule::FalseCommitment,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Rule::OperatorVolume => "operator_volume",
            Rule::OffHours => "off_hours",
            Rule::SharedCredential => "shared_credential",
            Rule::CitizenSpread => "citizen_spread",
            Rule::RefusalProbe => "refusal_probe",
            Rule::ConsentBurst => "consent_burst",
            Rule::HistoryVolume => "history_volume",
            Rule::AbolishedRequest => "abolished_request",
            Rule::WatchedCitizen => "watched_citizen",
            Rule::FalseCommitment => "false_commitment",
        }
    }

    pub fn parse(name: &str) -> Option<Rule> {
        Rule::ALL.into_iter().find(|r| r.name() == name)
    }
}

/// One `[alerts.<rule>]` section as written; what is left out takes the
/// rule's default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuleConfig {
    pub enabled: Option<bool>,
    /// The count past which the rule fires.
    pub threshold: Option<u32>,
    /// The window the count is over; for the rules that fire on one record,
    /// how long one alert gathers the records that follow.
    pub window_seconds: Option<u64>,
    /// `off_hours`: office hours in UTC+8, `"HH:MM"`.
    pub start: Option<String>,
    pub end: Option<String>,
    /// `off_hours`: the office days, `["mon", …]`.
    pub days: Option<Vec<String>>,
    /// `off_hours`: days with no office hours, `["YYYY-MM-DD", …]`.
    pub holidays: Option<Vec<String>>,
    /// `consent_burst`: a grant first used this soon, for a citizen with no
    /// other history, raises an alert.
    pub first_use_seconds: Option<u64>,
}

/// `[alerts]`: one section per rule.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertsConfig {
    pub operator_volume: RuleConfig,
    pub off_hours: RuleConfig,
    pub shared_credential: RuleConfig,
    pub citizen_spread: RuleConfig,
    pub refusal_probe: RuleConfig,
    pub consent_burst: RuleConfig,
    pub history_volume: RuleConfig,
    pub abolished_request: RuleConfig,
    pub watched_citizen: RuleConfig,
    pub false_commitment: RuleConfig,
}

/// One rule's resolved thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub enabled: bool,
    pub threshold: u32,
    pub window: Duration,
}

/// Office hours in UTC+8.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfficeHours {
    /// Minutes after midnight.
    pub start: u16,
    pub end: u16,
    /// Monday = 0.
    pub days: [bool; 7],
    pub holidays: HashSet<time::Date>,
}

/// Every rule's thresholds, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    limits: HashMap<Rule, Limit>,
    pub office: OfficeHours,
    pub first_use: Duration,
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

impl Rule {
    /// The defaults (DESIGN §13 where it names them) and how serious a finding is.
    fn defaults(self) -> (u32, u64, Severity) {
        const HOUR: u64 = 3600;
        const DAY: u64 = 24 * HOUR;
        match self {
            Rule::OperatorVolume => (200, HOUR, Severity::High),
            Rule::OffHours => (0, DAY, Severity::Medium),
            Rule::SharedCredential => (5, HOUR, Severity::High),
            Rule::CitizenSpread => (5, DAY, Severity::Medium),
            Rule::RefusalProbe => (20, HOUR, Severity::Medium),
            Rule::ConsentBurst => (30, HOUR, Severity::High),
            Rule::HistoryVolume => (50, HOUR, Severity::Medium),
            Rule::AbolishedRequest => (0, DAY, Severity::Low),
            Rule::WatchedCitizen => (0, DAY, Severity::High),
            Rule::FalseCommitment => (0, DAY, Severity::High),
        }
    }

    pub fn severity(self) -> Severity {
        self.defaults().2
    }
}

fn minutes(field: &str, hhmm: &str) -> Result<u16, ConfigError> {
    let bad = || ConfigError::Invalid(format!("alerts.off_hours.{field} must be \"HH:MM\", not {hhmm:?}"));
    let (h, m) = hhmm.split_once(':').ok_or_else(bad)?;
    let (h, m): (u16, u16) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if h > 24 || m > 59 || h * 60 + m > 24 * 60 {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

impl AlertsConfig {
    fn section_mut(&mut self, rule: Rule) -> &mut RuleConfig {
        match rule {
            Rule::OperatorVolume => &mut self.operator_volume,
            Rule::OffHours => &mut self.off_hours,
            Rule::SharedCredential => &mut self.shared_credential,
            Rule::CitizenSpread => &mut self.citizen_spread,
            Rule::RefusalProbe => &mut self.refusal_probe,
            Rule::ConsentBurst => &mut self.consent_burst,
            Rule::HistoryVolume => &mut self.history_volume,
            Rule::AbolishedRequest => &mut self.abolished_request,
            Rule::WatchedCitizen => &mut self.watched_citizen,
            Rule::FalseCommitment => &mut self.false_commitment,
        }
    }

    fn section(&self, rule: Rule) -> &RuleConfig {
        match rule {
            Rule::OperatorVolume => &self.operator_volume,
            Rule::OffHours => &self.off_hours,
            Rule::SharedCredential => &self.shared_credential,
            Rule::CitizenSpread => &self.citizen_spread,
            Rule::RefusalProbe => &self.refusal_probe,
            Rule::ConsentBurst => &self.consent_burst,
            Rule::HistoryVolume => &self.history_volume,
            Rule::AbolishedRequest => &self.abolished_request,
            Rule::WatchedCitizen => &self.watched_citizen,
            Rule::FalseCommitment => &self.false_commitment,
        }
    }

    /// The thresholds, each rule's default where the section leaves it out.
    pub fn resolve(&self) -> Result<Rules, ConfigError> {
        let mut limits = HashMap::new();
        for rule in Rule::ALL {
            let (threshold, window, _) = rule.defaults();
            let section = self.section(rule);
            let office = section.start.is_some()
                || section.end.is_some()
                || section.days.is_some()
                || section.holidays.is_some();
            if office && rule != Rule::OffHours || section.first_use_seconds.is_some() && rule != Rule::ConsentBurst {
                return Err(ConfigError::Invalid(format!(
                    "alerts.{}: start, end, days and holidays are for off_hours, first_use_seconds for consent_burst",
                    rule.name()
                )));
            }
            let window = section.window_seconds.unwrap_or(window);
            if window == 0 || window > 366 * 24 * 3600 {
                return Err(ConfigError::Invalid(format!(
                    "alerts.{}.window_seconds must be between 1 and a year",
                    rule.name()
                )));
            }
            limits.insert(
                rule,
                Limit {
                    enabled: section.enabled.unwrap_or(true),
                    threshold: section.threshold.unwrap_or(threshold),
                    window: Duration::from_secs(window),
                },
            );
        }
        let o = &self.off_hours;
        let start = minutes("start", o.start.as_deref().unwrap_or("08:00"))?;
        let end = minutes("end", o.end.as_deref().unwrap_or("18:00"))?;
        if start >= end {
            return Err(ConfigError::Invalid(
                "alerts.off_hours: start must be before end".into(),
            ));
        }
        let mut days = [false; 7];
        let office_days = o
            .days
            .clone()
            .unwrap_or_else(|| DAYS[..5].iter().map(|d| (*d).to_owned()).collect());
        for day in &office_days {
            let i = DAYS.iter().position(|d| d == day).ok_or_else(|| {
                ConfigError::Invalid(format!("alerts.off_hours.days: {day:?} is not one of {DAYS:?}"))
            })?;
            days[i] = true;
        }
        let format = time::macros::format_description!("[year]-[month]-[day]");
        let holidays = o
            .holidays
            .iter()
            .flatten()
            .map(|d| {
                time::Date::parse(d, &format)
                    .map_err(|_| ConfigError::Invalid(format!("alerts.off_hours.holidays: {d:?} is not YYYY-MM-DD")))
            })
            .collect::<Result<_, _>>()?;
        let first_use = Duration::from_secs(self.consent_burst.first_use_seconds.unwrap_or(60));
        Ok(Rules {
            limits,
            office: OfficeHours {
                start,
                end,
                days,
                holidays,
            },
            first_use,
        })
    }

    /// Every rule off.
    pub fn off() -> AlertsConfig {
        let mut config = AlertsConfig::default();
        for rule in Rule::ALL {
            config.section_mut(rule).enabled = Some(false);
        }
        config
    }

    /// The demo's thresholds: low enough that a newcomer trips each rule
    /// from the command line within a minute.
    pub fn demo() -> AlertsConfig {
        let count = |threshold: u32| RuleConfig {
            threshold: Some(threshold),
            window_seconds: Some(600),
            ..RuleConfig::default()
        };
        AlertsConfig {
            operator_volume: count(3),
            shared_credential: count(2),
            citizen_spread: count(2),
            refusal_probe: count(3),
            consent_burst: RuleConfig {
                first_use_seconds: Some(120),
                ..count(3)
            },
            history_volume: count(3),
            ..AlertsConfig::default()
        }
    }
}

impl Rules {
    pub fn limit(&self, rule: Rule) -> Limit {
        self.limits.get(&rule).copied().unwrap_or(Limit {
            enabled: false,
            threshold: 0,
            window: Duration::from_secs(1),
        })
    }

    /// Whether any rule is on: if none is, nothing reads the log for them.
    pub fn any_enabled(&self) -> bool {
        self.limits.values().any(|l| l.enabled)
    }

    /// The longest window any rule looks back over.
    pub fn longest_window(&self) -> Duration {
        self.limits.values().map(|l| l.window).max().unwrap_or_default()
    }

    /// Whether `t` falls outside office hours (UTC+8).
    pub fn off_hours(&self, t: SystemTime) -> bool {
        let secs = t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
        let Ok(utc) = time::OffsetDateTime::from_unix_timestamp(secs) else {
            return true;
        };
        let local = utc.to_offset(time::macros::offset!(+8));
        let minute = local.hour() as u16 * 60 + local.minute() as u16;
        let day = local.weekday().number_days_from_monday() as usize;
        !self.office.days[day]
            || self.office.holidays.contains(&local.date())
            || minute < self.office.start
            || minute >= self.office.end
    }
}

/// What the rules read of one record.
#[derive(Debug, Clone)]
pub struct Seen {
    pub index: u64,
    pub time: SystemTime,
    pub record: AuditRecord,
}

impl Seen {
    fn is(&self, actions: &[&str]) -> bool {
        actions.contains(&self.record.action.as_str())
    }

    fn allowed(&self) -> bool {
        self.record.decision == Decision::Allow as i32
    }

    /// Agency and operator, as one official.
    fn official(&self) -> String {
        format!("{}/{}", self.record.agency, self.record.operator)
    }
}

/// A rule's finding on one record: the alert for `key` opens, or grows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub rule: Rule,
    /// What the rule counts by; one alert per key at a time.
    pub key: String,
    pub agency: String,
    pub operator: String,
    pub citizen_ref: String,
    /// The records that raised it: the window's, ending with this one
    /// (the first [`MAX_INDICES`] and this one).
    pub indices: Vec<u64>,
    /// How many records of the window raised it.
    pub count: u64,
    pub summary: String,
}

/// Records of one rule's window, oldest first: (time, key, value), and per
/// key what they hold. Every step costs the same however full the window is.
#[derive(Debug, Default)]
struct Window {
    length: Duration,
    seen: VecDeque<(SystemTime, String, String)>,
    keys: HashMap<String, KeyWindow>,
}

/// One key's records in a window.
#[derive(Debug, Default)]
struct KeyWindow {
    /// How often each value is in it.
    values: HashMap<String, u32>,
    /// Their indices, oldest first.
    indices: VecDeque<u64>,
}

impl Window {
    fn new(length: Duration) -> Window {
        Window {
            length,
            ..Window::default()
        }
    }

    /// Drops what is older than the window before `now`.
    fn expire(&mut self, now: SystemTime) {
        while let Some((t, key, value)) = self.seen.front() {
            if now.duration_since(*t).unwrap_or_default() < self.length {
                break;
            }
            // Times never go backwards: a key's oldest record is the window's.
            if let Some(k) = self.keys.get_mut(key) {
                k.indices.pop_front();
                if let Some(n) = k.values.get_mut(value) {
                    *n -= 1;
                    if *n == 0 {
                        k.values.remove(value);
                    }
                }
                if k.indices.is_empty() {
                    self.keys.remove(key);
                }
            }
            self.seen.pop_front();
        }
    }

    /// Adds one record; returns how many records, and how many distinct
    /// values, `key` has in the window now.
    fn add(&mut self, seen: &Seen, key: &str, value: &str) -> (u32, usize) {
        self.expire(seen.time);
        self.seen.push_back((seen.time, key.to_owned(), value.to_owned()));
        if !self.keys.contains_key(key) {
            self.keys.insert(key.to_owned(), KeyWindow::default());
        }
        let k = self.keys.get_mut(key).unwrap_or_else(|| unreachable!("inserted above"));
        match k.values.get_mut(value) {
            Some(n) => *n += 1,
            None => {
                k.values.insert(value.to_owned(), 1);
            }
        }
        k.indices.push_back(seen.index);
        (k.indices.len() as u32, k.values.len())
    }

    /// The indices of `key`'s records in the window, first ones first, at
    /// most [`MAX_INDICES`] of them and always the last.
    fn indices(&self, key: &str) -> Vec<u64> {
        let Some(k) = self.keys.get(key) else { return Vec::new() };
        let mut indices: Vec<u64> = k.indices.iter().copied().take(MAX_INDICES).collect();
        if k.indices.len() > MAX_INDICES
            && let Some(last) = k.indices.back()
        {
            indices.pop();
            indices.push(*last);
        }
        indices
    }
}

/// A grant not yet used, for `consent_burst`'s first-use check.
#[derive(Debug, Clone)]
struct Grant {
    time: SystemTime,
    index: u64,
    agency: String,
    operator: String,
    citizen_ref: String,
}

/// The rules and what they remember of the log so far.
pub struct Engine {
    rules: Rules,
    windows: HashMap<Rule, Window>,
    grants: HashMap<String, Grant>,
    watched: HashSet<String>,
}

/// Whether the log holds a record of `citizen_ref` before index `before`.
pub type History<'a> = &'a dyn Fn(&str, u64) -> bool;

impl Engine {
    pub fn new(rules: Rules) -> Engine {
        let windows = Rule::ALL
            .into_iter()
            .map(|r| (r, Window::new(rules.limit(r).window)))
            .collect();
        Engine {
            rules,
            windows,
            grants: HashMap::new(),
            watched: HashSet::new(),
        }
    }

    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// Forgets every record fed so far.
    pub fn reset(&mut self) {
        for window in self.windows.values_mut() {
            *window = Window::new(window.length);
        }
        self.grants.clear();
    }

    /// The citizens on the auditors' watch list, by pseudonym, as it stood
    /// before the records about to be fed (which then change it in log order).
    pub fn watch(&mut self, watched: HashSet<String>) {
        self.watched = watched;
    }

    fn on(&self, rule: Rule) -> bool {
        self.rules.limit(rule).enabled
    }

    /// Counts `value` under `key` in `rule`'s window; a hit once the count
    /// (of distinct values, or of records) passes the threshold.
    fn count(&mut self, rule: Rule, seen: &Seen, key: &str, value: &str, distinct: bool) -> Option<(Vec<u64>, u64)> {
        let threshold = self.rules.limit(rule).threshold;
        let window = self.windows.get_mut(&rule)?;
        let (records, values) = window.add(seen, key, value);
        let count = if distinct { values } else { records as usize };
        (count > threshold as usize).then(|| (window.indices(key), u64::from(records)))
    }

    /// A rule's threshold and window in seconds, for its summary.
    fn bounds(&self, rule: Rule) -> (u32, u64) {
        let limit = self.rules.limit(rule);
        (limit.threshold, limit.window.as_secs())
    }

    /// Feeds the next record of the log; returns what it raises.
    pub fn feed(&mut self, seen: &Seen, history: History<'_>) -> Vec<Hit> {
        let r = &seen.record;
        let mut hits = Vec::new();
        let lookup = seen.is(LOOKUPS) && !r.citizen_ref.is_empty();
        // Auditors' own work; a registrar reading a history at the counter is not.
        let oversight = r.action != HISTORY && OVERSIGHT.iter().any(|p| r.action.starts_with(p));
        let official = seen.official();

        if lookup && self.on(Rule::OperatorVolume) {
            let (threshold, w) = self.bounds(Rule::OperatorVolume);
            if let Some((indices, count)) = self.count(Rule::OperatorVolume, seen, &official, &r.citizen_ref, true) {
                let summary =
                    format!("official {official} looked up more than {threshold} distinct citizens within {w} s");
                hits.push(Hit {
                    count,
                    ..hit(Rule::OperatorVolume, official.clone(), r, "", indices, summary)
                });
            }
        }
        // The gateway's own actions: a commitment's check reads data, when it
        // falls due, at any hour; a correction sent reads nothing.
        let notice = seen.is(&[NOTIFY]);
        let by_an_official = !oversight && !notice && !seen.is(&[VERIFY]);
        if !r.citizen_ref.is_empty() && by_an_official && self.on(Rule::OffHours) && self.rules.off_hours(seen.time) {
            let summary = format!("official {official} reached a citizen's data outside office hours (UTC+8)");
            hits.push(hit(Rule::OffHours, official.clone(), r, "", vec![seen.index], summary));
        }
        if lookup && self.on(Rule::SharedCredential) {
            let certificate = format!("{}/{}", r.agency, r.certificate);
            if r.operator.is_empty() {
                let summary = format!(
                    "certificate {} of agency {} looked up citizens with no operator named",
                    r.certificate, r.agency
                );
                let key = format!("{certificate}/unnamed");
                hits.push(hit(Rule::SharedCredential, key, r, "", vec![seen.index], summary));
            } else {
                let (threshold, w) = self.bounds(Rule::SharedCredential);
                if let Some((indices, count)) =
                    self.count(Rule::SharedCredential, seen, &certificate, &r.operator, true)
                {
                    let summary = format!(
                        "certificate {} of agency {} was used by more than {threshold} operators within {w} s",
                        r.certificate, r.agency
                    );
                    // About the certificate, not the official whose call tipped it.
                    let mut h = hit(Rule::SharedCredential, certificate, r, "", indices, summary);
                    h.operator.clear();
                    h.count = count;
                    hits.push(h);
                }
            }
        }
        if lookup && self.on(Rule::CitizenSpread) {
            let (threshold, w) = self.bounds(Rule::CitizenSpread);
            if let Some((indices, count)) = self.count(Rule::CitizenSpread, seen, &r.citizen_ref, &official, true) {
                let summary =
                    format!("one citizen was looked up by more than {threshold} agencies or officials within {w} s");
                let key = r.citizen_ref.clone();
                // About the citizen, not the official whose look-up tipped it.
                let mut h = hit(Rule::CitizenSpread, key, r, &r.citizen_ref, indices, summary);
                h.agency.clear();
                h.operator.clear();
                h.count = count;
                hits.push(h);
            }
        }
        let probing = ["CONSENT_", "UNKNOWN_"].iter().any(|p| r.reason.starts_with(p)) || r.reason == "NO_ACCESS_RIGHT";
        // The gateway's own checks are refused for a lapsed consent, not for a probe.
        if !seen.allowed() && probing && by_an_official && self.on(Rule::RefusalProbe) {
            let (threshold, w) = self.bounds(Rule::RefusalProbe);
            if let Some((indices, count)) = self.count(Rule::RefusalProbe, seen, &r.agency, "", false) {
                let summary = format!(
                    "agency {} was refused more than {threshold} times for consent, rights or unknown names within {w} s",
                    r.agency
                );
                let mut h = hit(Rule::RefusalProbe, r.agency.clone(), r, "", indices, summary);
                h.operator.clear();
                h.count = count;
                hits.push(h);
            }
        }
        if seen.is(&[GRANT]) && seen.allowed() && self.on(Rule::ConsentBurst) {
            let (threshold, w) = self.bounds(Rule::ConsentBurst);
            if let Some((indices, count)) = self.count(Rule::ConsentBurst, seen, &official, "", false) {
                let summary = format!("registrar {official} granted more than {threshold} consents within {w} s");
                hits.push(Hit {
                    count,
                    ..hit(Rule::ConsentBurst, official.clone(), r, "", indices, summary)
                });
            }
            if !history(&r.citizen_ref, seen.index) {
                self.grants.insert(
                    r.consent_id.clone(),
                    Grant {
                        time: seen.time,
                        index: seen.index,
                        agency: r.agency.clone(),
                        operator: r.operator.clone(),
                        citizen_ref: r.citizen_ref.clone(),
                    },
                );
            }
        }
        if lookup && seen.allowed() && self.on(Rule::ConsentBurst) {
            let first_use = self.rules.first_use;
            self.grants
                .retain(|_, g| seen.time.duration_since(g.time).unwrap_or_default() <= first_use);
            if let Some(grant) = self.grants.remove(&r.consent_id) {
                let summary = format!(
                    "a consent granted by {}/{} for a citizen with no earlier history was first used within {} s, by {}",
                    grant.agency,
                    grant.operator,
                    first_use.as_secs(),
                    r.agency
                );
                hits.push(Hit {
                    rule: Rule::ConsentBurst,
                    key: format!("first-use/{}", r.consent_id),
                    agency: grant.agency,
                    operator: grant.operator,
                    citizen_ref: grant.citizen_ref,
                    indices: vec![grant.index, seen.index],
                    count: 2,
                    summary,
                });
            }
        }
        if seen.is(&[HISTORY]) && self.on(Rule::HistoryVolume) {
            let (threshold, w) = self.bounds(Rule::HistoryVolume);
            if let Some((indices, count)) = self.count(Rule::HistoryVolume, seen, &official, "", false) {
                let summary = format!("{official} read more than {threshold} access histories within {w} s");
                hits.push(Hit {
                    count,
                    ..hit(Rule::HistoryVolume, official.clone(), r, "", indices, summary)
                });
            }
        }
        if r.reason == "ATTRIBUTE_ABOLISHED" && self.on(Rule::AbolishedRequest) {
            let summary = format!("{official} asked for an abolished attribute");
            hits.push(hit(
                Rule::AbolishedRequest,
                official.clone(),
                r,
                &r.citizen_ref,
                vec![seen.index],
                summary,
            ));
        }
        let verified_false = r.note == CommitmentState::CommitmentFalse.as_str_name();
        if seen.allowed() && seen.is(&[VERIFY]) && verified_false && self.on(Rule::FalseCommitment) {
            let summary = format!(
                "a commitment recorded by agency {} was verified false (commitment {})",
                r.agency, r.subject
            );
            let key = format!("{}/{}", r.agency, r.subject);
            let mut h = hit(Rule::FalseCommitment, key, r, &r.citizen_ref, vec![seen.index], summary);
            // The gateway made the check; the agency's official made no call.
            h.operator.clear();
            hits.push(h);
        }
        // The watch list changes in log order, with the auditors' calls.
        if seen.allowed() && seen.is(&[WATCH]) {
            self.watched.insert(r.citizen_ref.clone());
        }
        if seen.allowed() && seen.is(&[UNWATCH]) {
            self.watched.remove(&r.citizen_ref);
        }
        if self.on(Rule::WatchedCitizen) && !oversight && !notice {
            for citizen in std::iter::once(&r.citizen_ref).chain(&r.related_refs) {
                if !citizen.is_empty() && self.watched.contains(citizen) {
                    let summary = format!("agency {} reached the data of a watched citizen", r.agency);
                    let key = format!("{citizen}/{}", r.agency);
                    hits.push(hit(Rule::WatchedCitizen, key, r, citizen, vec![seen.index], summary));
                }
            }
        }
        hits
    }
}

/// A finding about the official of `r`.
fn hit(rule: Rule, key: String, r: &AuditRecord, citizen_ref: &str, indices: Vec<u64>, summary: String) -> Hit {
    Hit {
        rule,
        key,
        agency: r.agency.clone(),
        operator: r.operator.clone(),
        citizen_ref: citizen_ref.to_owned(),
        count: indices.len() as u64,
        indices,
        summary,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(index: u64, citizen: &str) -> Seen {
        Seen {
            index,
            time: SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + index),
            record: AuditRecord {
                agency: "qujing-psb".into(),
                operator: "officer-1".into(),
                action: "ExchangeService/Query".into(),
                citizen_ref: citizen.into(),
                decision: Decision::Allow as i32,
                ..AuditRecord::default()
            },
        }
    }

    #[test]
    fn a_hit_past_a_hundred_records_counts_them_all_and_names_the_first_and_the_last() {
        let config = AlertsConfig {
            operator_volume: RuleConfig {
                threshold: Some(150),
                ..RuleConfig::default()
            },
            off_hours: RuleConfig {
                enabled: Some(false),
                ..RuleConfig::default()
            },
            ..AlertsConfig::default()
        };
        let mut engine = Engine::new(config.resolve().unwrap());
        let history = |_: &str, _: u64| true;
        let mut hits = Vec::new();
        for i in 0..151 {
            hits.extend(engine.feed(&lookup(i, &format!("{i:064x}")), &history));
        }
        let [hit] = &hits[..] else { panic!("{hits:?}") };
        assert_eq!((hit.rule, hit.count), (Rule::OperatorVolume, 151));
        assert_eq!(hit.indices.len(), MAX_INDICES);
        assert_eq!((hit.indices[0], hit.indices[98], hit.indices[99]), (0, 98, 150));
    }

    #[test]
    fn a_check_found_false_raises_false_commitment_and_the_gateways_own_checks_keep_no_office_hours() {
        let mut engine = Engine::new(AlertsConfig::default().resolve().unwrap());
        let history = |_: &str, _: u64| true;
        // 21:46 in UTC+8: outside office hours.
        let at_night = lookup(0, "ref-1");
        let rules = |hits: Vec<Hit>| hits.into_iter().map(|h| h.rule).collect::<Vec<_>>();
        assert_eq!(rules(engine.feed(&at_night, &history)), [Rule::OffHours]);
        let check = |index: u64, outcome: CommitmentState| {
            let mut seen = lookup(index, "ref-1");
            seen.record.action = VERIFY.into();
            seen.record.operator = crate::commitments::GATEWAY_OPERATOR.into();
            seen.record.subject = format!("commitment-{index}");
            seen.record.note = outcome.as_str_name().into();
            seen
        };
        assert!(
            engine
                .feed(&check(1, CommitmentState::CommitmentTrue), &history)
                .is_empty()
        );
        let hits = engine.feed(&check(2, CommitmentState::CommitmentFalse), &history);
        let [hit] = &hits[..] else { panic!("{hits:?}") };
        assert_eq!(
            (
                hit.rule,
                hit.agency.as_str(),
                hit.operator.as_str(),
                hit.citizen_ref.as_str()
            ),
            (Rule::FalseCommitment, "qujing-psb", "", "ref-1")
        );
        assert_eq!(hit.indices, [2]);
        assert!(hit.summary.contains("commitment-2"), "{}", hit.summary);
    }

    #[test]
    fn bad_thresholds_are_refused_with_the_section_named() {
        let mut config = AlertsConfig::default();
        config.off_hours.start = Some("25:00".into());
        assert!(
            config
                .resolve()
                .unwrap_err()
                .to_string()
                .contains("alerts.off_hours.start")
        );
        let mut config = AlertsConfig::default();
        config.citizen_spread.window_seconds = Some(0);
        assert!(
            config
                .resolve()
                .unwrap_err()
                .to_string()
                .contains("alerts.citizen_spread")
        );
        let mut config = AlertsConfig::default();
        config.off_hours.days = Some(vec!["monday".into()]);
        assert!(config.resolve().is_err());
        let mut config = AlertsConfig::default();
        config.operator_volume.holidays = Some(vec!["2026-10-01".into()]);
        assert!(
            config
                .resolve()
                .unwrap_err()
                .to_string()
                .contains("alerts.operator_volume")
        );
        assert!(AlertsConfig::demo().resolve().is_ok());
    }
}
