//! Oversight (DESIGN §13): rules over the audit log that raise alerts as
//! the log grows, the auditors' watch list, and cases.
//!
//! The rules run in log order over every record, on whichever gateway
//! first finds records they have not yet seen: [`follow`] reads the log
//! from where the rules stopped ([`OversightStore::evaluated`]), feeds
//! each record to the [`rules::Engine`], gathers its hits into alerts and
//! writes them together with the new position, only if no other gateway
//! moved it first ([`OversightStore::advance`]). A gateway that lost that
//! race feeds the same records to its engine without raising anything and
//! reloads the alerts, so every gateway's windows follow the whole log.
//!
//! One alert per rule and key (an official, a certificate, a citizen, an
//! agency) at a time: a hit whose key has an alert opened less than the
//! rule's window ago grows that alert (its count, and its indices up to
//! [`rules::MAX_INDICES`]); otherwise it opens a new one.
//!
//! # Layout
//! - [`rules`]: the rules, their thresholds (`[alerts.<rule>]`) and the engine.

pub mod rules;

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, SystemTime},
};

use civex_audit::{AuditLog, clock::timestamp, search::Filter};
use civex_proto::v1::{Alert, AlertState, AuditRecord};
use prost::Message;
use sha2::Digest;

use self::rules::{Engine, Hit, MAX_INDICES, Rules, Seen};
use crate::store::{Finding, OversightStore, StoreError};

/// How often a gateway looks for records the rules have not seen.
pub const EVALUATE_EVERY: Duration = Duration::from_millis(200);
/// Records read per step at most.
const STEP: u64 = 4096;
/// How long a gateway waits for another to catch up with what it fed
/// before it starts its engine over.
const GIVE_UP_AFTER: Duration = Duration::from_secs(10);

/// The alert `hit` opens: its id names its first record, rule and key.
fn open(hit: &Hit, time: SystemTime) -> Alert {
    let digest = sha2::Sha256::digest(format!("{}\0{}", hit.rule.name(), hit.key));
    // Named by the record that raised it: ids sort in the order alerts open.
    let last = hit.indices.last().copied().unwrap_or_default();
    Alert {
        alert_id: format!("{last:012}-{}", hex::encode(&digest[..6])),
        rule: hit.rule.name().to_owned(),
        severity: hit.rule.severity() as i32,
        agency: hit.agency.clone(),
        operator: hit.operator.clone(),
        citizen_ref: hit.citizen_ref.clone(),
        opened_at: Some(timestamp(time)),
        indices: hit.indices.clone(),
        count: hit.count,
        summary: hit.summary.clone(),
        state: AlertState::AlertOpen as i32,
        case_id: String::new(),
        note: String::new(),
    }
}

/// The alert each rule's key has open, for growing it.
#[derive(Default)]
struct Tracker {
    open: HashMap<(String, String), (SystemTime, Alert)>,
}

impl Tracker {
    /// Starts over from the alerts opened within the longest window.
    fn reload(&mut self, findings: Vec<Finding>) {
        self.open.clear();
        for f in findings {
            let opened = f
                .alert
                .opened_at
                .as_ref()
                .and_then(civex_audit::clock::system_time)
                .unwrap_or(SystemTime::UNIX_EPOCH);
            self.open.insert((f.alert.rule.clone(), f.key), (opened, f.alert));
        }
    }

    /// Forgets the alerts no later hit can grow any more.
    fn prune(&mut self, now: SystemTime, rules: &Rules) {
        self.open.retain(|(rule, _), (opened, _)| {
            let window = rules::Rule::parse(rule).map_or(Duration::ZERO, |r| rules.limit(r).window);
            now.duration_since(*opened).unwrap_or_default() < window
        });
    }

    /// The alert `hit`, seen at `time`, opens or grows; its rule and key.
    fn apply(&mut self, hit: Hit, time: SystemTime, rules: &Rules) -> (String, String) {
        let window = rules.limit(hit.rule).window;
        let key = (hit.rule.name().to_owned(), hit.key.clone());
        match self.open.get_mut(&key) {
            Some((opened, alert)) if time.duration_since(*opened).unwrap_or_default() < window => {
                let last = hit.indices.last().copied().unwrap_or_default();
                if alert.indices.last() != Some(&last) && !alert.indices.contains(&last) {
                    if alert.indices.len() < MAX_INDICES {
                        alert.indices.push(last);
                    }
                    alert.count += 1;
                }
            }
            _ => {
                self.open.insert(key.clone(), (time, open(&hit, time)));
            }
        }
        key
    }

    /// The alert open under a rule and key, as a finding to write.
    fn finding(&self, key: &(String, String)) -> Option<Finding> {
        self.open.get(key).map(|(_, alert)| Finding {
            key: key.1.clone(),
            alert: alert.clone(),
        })
    }
}

/// What one gateway knows of the rules' run over the log.
pub struct Oversight {
    pub store: Arc<dyn OversightStore>,
    engine: Engine,
    tracker: Tracker,
    /// The log size through which this gateway's engine has been fed.
    fed: Option<u64>,
    /// Since when the deployment's position has stayed behind `fed`.
    behind_since: Option<std::time::Instant>,
}

impl Oversight {
    pub fn new(store: Arc<dyn OversightStore>, rules: Rules) -> Oversight {
        Oversight {
            store,
            engine: Engine::new(rules),
            tracker: Tracker::default(),
            fed: None,
            behind_since: None,
        }
    }

    /// Runs the rules over what the log holds past where they stopped, one
    /// step of at most [`STEP`] records; returns whether there is more.
    pub async fn step(&mut self, log: &AuditLog) -> Result<bool, StoreError> {
        let size = log.size();
        let evaluated = self.store.evaluated().await?;
        match self.fed {
            Some(fed) if fed == evaluated => self.behind_since = None,
            // This gateway lost a race to one that stopped short of it: wait
            // for that one to pass it rather than start over, unless it stays
            // behind (it may have stopped).
            Some(fed) if fed > evaluated && self.behind_since.is_none_or(|t| t.elapsed() < GIVE_UP_AFTER) => {
                self.behind_since.get_or_insert_with(std::time::Instant::now);
                return Ok(false);
            }
            _ => {
                self.behind_since = None;
                self.catch_up(log, evaluated).await?;
            }
        }
        if evaluated >= size {
            return Ok(false);
        }
        let to = size.min(evaluated + STEP);
        // Read first, so that a failed read feeds the engine nothing.
        let records = (evaluated..to).map(|i| read(log, i)).collect::<Result<Vec<_>, _>>()?;
        // The alerts this step opened or grew, written as they stand at its end.
        let mut touched: std::collections::BTreeSet<(String, String)> = Default::default();
        let history = |citizen: &str, before: u64| had_history(log, citizen, before);
        for seen in &records {
            for hit in self.engine.feed(seen, &history) {
                touched.insert(self.tracker.apply(hit, seen.time, self.engine.rules()));
            }
        }
        let findings: Vec<Finding> = touched.iter().filter_map(|k| self.tracker.finding(k)).collect();
        self.fed = Some(to);
        let last = records.last().map_or(SystemTime::UNIX_EPOCH, |r| r.time);
        if self.store.advance(evaluated, to, &findings).await? {
            for f in &findings {
                tracing::info!(alert = %f.alert.alert_id, rule = %f.alert.rule, count = f.alert.count, "alert");
            }
            self.tracker.prune(last, self.engine.rules());
        } else {
            // Another gateway ran the rules over these records first: its
            // alerts, not this gateway's unwritten copies, are the open ones.
            let since = last.checked_sub(self.engine.rules().longest_window());
            self.tracker
                .reload(self.store.alerts_since(since.unwrap_or(SystemTime::UNIX_EPOCH)).await?);
        }
        Ok(to < size)
    }

    /// Brings this gateway's engine to `evaluated`, which another gateway
    /// (or an earlier run) reached, without raising anything: from where it
    /// was fed if that is behind, else afresh from the longest window before
    /// `evaluated`. Then reloads the alerts still open.
    async fn catch_up(&mut self, log: &AuditLog, evaluated: u64) -> Result<(), StoreError> {
        let window = self.engine.rules().longest_window();
        let since = match evaluated {
            0 => SystemTime::UNIX_EPOCH,
            n => read(log, n - 1)?
                .time
                .checked_sub(window)
                .unwrap_or(SystemTime::UNIX_EPOCH),
        };
        let from = match self.fed {
            Some(fed) if fed <= evaluated => fed,
            _ => first_at_or_after(log, since, evaluated)?,
        };
        let records = (from..evaluated).map(|i| read(log, i)).collect::<Result<Vec<_>, _>>()?;
        if self.fed.is_none_or(|fed| fed > evaluated) {
            // The watch list as it stands now; the records fed change it.
            self.engine.reset();
            let watched = self.store.watched().await?;
            self.engine.watch(watched.into_iter().map(|w| w.citizen_ref).collect());
        }
        self.fed = None;
        // Grants are remembered with their citizens' history, as when raised.
        let history = |citizen: &str, before: u64| had_history(log, citizen, before);
        for seen in &records {
            self.engine.feed(seen, &history);
        }
        self.tracker.reload(self.store.alerts_since(since).await?);
        self.fed = Some(evaluated);
        Ok(())
    }
}

fn read(log: &AuditLog, index: u64) -> Result<Seen, StoreError> {
    let leaf = log
        .leaf(index)
        .map_err(StoreError::new)?
        .ok_or_else(|| StoreError(format!("audit record {index} is missing")))?;
    let record = AuditRecord::decode(leaf.as_slice()).map_err(|e| StoreError(format!("audit record {index}: {e}")))?;
    let time = record
        .time
        .as_ref()
        .and_then(civex_audit::clock::system_time)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    Ok(Seen { index, time, record })
}

/// The first index at or after `t`, below `end` (record times never go backwards).
fn first_at_or_after(log: &AuditLog, t: SystemTime, end: u64) -> Result<u64, StoreError> {
    let (mut lo, mut hi) = (0, end);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if read(log, mid)?.time < t {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    Ok(lo)
}

/// Whether the log holds a record of `citizen_ref` before `before`.
fn had_history(log: &AuditLog, citizen_ref: &str, before: u64) -> bool {
    let filter = Filter {
        citizen_ref: Some(citizen_ref.to_owned()),
        ..Filter::default()
    };
    log.search(&filter, 1, None)
        .map(|page| page.entries.first().is_some_and(|e| e.index < before))
        .unwrap_or(true)
}

/// Runs the rules as the log grows, until the task is dropped.
pub async fn follow(state: Arc<crate::service::State>, mut oversight: Oversight) {
    let mut failing = false;
    loop {
        let more = oversight.step(&state.audit).await;
        match more {
            Ok(true) => continue,
            Ok(false) => {
                if std::mem::take(&mut failing) {
                    tracing::info!("alert rules running again");
                }
            }
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(cause = %e, "alert rules cannot run; they pick up where they stopped");
            }
            Err(_) => {}
        }
        tokio::time::sleep(EVALUATE_EVERY).await;
    }
}
