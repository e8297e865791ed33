//! Alerts, the watch list and cases in a sled database of their own
//! (`oversight/` in the data directory), so that its transactions (a step
//! of the rules writes its alerts and its position together) never make
//! the request path's databases take sled's global transaction lock.
//!
//! | tree | key | value |
//! |---|---|---|
//! | `alerts` | alert id | key length (u32 BE) ‖ key ‖ the encoded `Alert` |
//! | `watched` | citizen pseudonym | the encoded `WatchEntry` |
//! | `cases` | case id | the encoded `Case` |
//! | `meta` | `evaluated` | the log size the rules have run through, u64 BE |

use std::{path::Path, time::SystemTime};

use async_trait::async_trait;
use civex_proto::v1::{Alert, AlertState, Case, WatchEntry};
use prost::Message;
use sled::{
    Transactional,
    transaction::{ConflictableTransactionError, TransactionError},
};

use crate::store::{Finding, OversightStore, StoreError};

pub const DIR: &str = "oversight";
const EVALUATED: &[u8] = b"evaluated";

pub struct SledOversight {
    db: sled::Db,
    alerts: sled::Tree,
    watched: sled::Tree,
    cases: sled::Tree,
    meta: sled::Tree,
    /// One writer of alerts at a time: the rules' and auditors' changes
    /// to one alert are read, merged and written under it.
    writing: tokio::sync::Mutex<()>,
}

fn frame(f: &Finding) -> Vec<u8> {
    let key = f.key.as_bytes();
    let mut out = Vec::with_capacity(4 + key.len() + f.alert.encoded_len());
    out.extend_from_slice(&(key.len() as u32).to_be_bytes());
    out.extend_from_slice(key);
    f.alert
        .encode(&mut out)
        .unwrap_or_else(|_| unreachable!("a Vec grows as needed"));
    out
}

fn unframe(bytes: &[u8]) -> Result<Finding, StoreError> {
    let bad = || StoreError("a stored alert is corrupt".into());
    let len = u32::from_be_bytes(bytes.get(..4).ok_or_else(bad)?.try_into().map_err(|_| bad())?) as usize;
    let key = bytes.get(4..4 + len).ok_or_else(bad)?;
    let alert = Alert::decode(&bytes[4 + len..]).map_err(|_| bad())?;
    Ok(Finding {
        key: String::from_utf8(key.to_vec()).map_err(|_| bad())?,
        alert,
    })
}

fn u64_of(v: Option<sled::IVec>) -> u64 {
    v.and_then(|v| v.as_ref().try_into().ok()).map_or(0, u64::from_be_bytes)
}

fn opened(alert: &Alert) -> SystemTime {
    alert
        .opened_at
        .as_ref()
        .and_then(civex_audit::clock::system_time)
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

/// `alert` with the auditors' part (state, case, note) of `stored`.
fn keep_auditors(mut alert: Alert, stored: &Alert) -> Alert {
    alert.state = stored.state;
    alert.case_id.clone_from(&stored.case_id);
    alert.note.clone_from(&stored.note);
    alert
}

/// `stored` with the auditors' part of `alert`.
fn set_auditors(mut stored: Alert, alert: &Alert) -> Alert {
    stored.state = alert.state;
    stored.case_id.clone_from(&alert.case_id);
    stored.note.clone_from(&alert.note);
    stored
}

impl SledOversight {
    /// Opens the database of `dir`; when it is new, the rules start at
    /// `log_size`, so that a log older than them is not flooded with alerts
    /// about its past.
    pub fn open(dir: &Path, log_size: u64) -> Result<SledOversight, StoreError> {
        let db = civex_audit::embedded::open_db(dir, DIR).map_err(StoreError::new)?;
        let tree = |name: &str| db.open_tree(name).map_err(StoreError::new);
        let meta = tree("meta")?;
        let _ = meta
            .compare_and_swap(EVALUATED, None as Option<&[u8]>, Some(&log_size.to_be_bytes()[..]))
            .map_err(StoreError::new)?;
        Ok(SledOversight {
            alerts: tree("alerts")?,
            watched: tree("watched")?,
            cases: tree("cases")?,
            meta,
            db,
            writing: tokio::sync::Mutex::new(()),
        })
    }

    async fn flush(&self) -> Result<(), StoreError> {
        self.db.flush_async().await.map(drop).map_err(StoreError::new)
    }

    /// The values of `tree` after the key `after`, at most `limit`.
    fn decode_all<T: Message + Default>(tree: &sled::Tree, after: &str, limit: usize) -> Result<Vec<T>, StoreError> {
        let start = std::ops::Bound::Excluded(after.as_bytes().to_vec());
        tree.range((start, std::ops::Bound::Unbounded))
            .values()
            .take(limit)
            .map(|v| T::decode(v.map_err(StoreError::new)?.as_ref()).map_err(StoreError::new))
            .collect()
    }
}

type Tx<T> = Result<T, ConflictableTransactionError<StoreError>>;
/// An alert's id and its framed value.
type Framed = (Vec<u8>, Vec<u8>);

/// Each of `alerts` framed with the auditors' part it brings, if every one
/// is stored and still open (read through `get`); `None` if one is not.
fn still_open(
    alerts: &[Alert],
    get: impl Fn(&[u8]) -> Result<Option<sled::IVec>, sled::transaction::UnabortableTransactionError>,
) -> Tx<Option<Vec<Framed>>> {
    let mut updated = Vec::new();
    for alert in alerts {
        let Some(stored) = get(alert.alert_id.as_bytes())? else {
            return Ok(None);
        };
        let f = unframe(&stored).map_err(ConflictableTransactionError::Abort)?;
        if f.alert.state != AlertState::AlertOpen as i32 {
            return Ok(None);
        }
        let framed = frame(&Finding {
            alert: set_auditors(f.alert, alert),
            key: f.key,
        });
        updated.push((alert.alert_id.as_bytes().to_vec(), framed));
    }
    Ok(Some(updated))
}

fn aborted(e: TransactionError<StoreError>) -> StoreError {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => StoreError::new(e),
    }
}

#[async_trait]
impl OversightStore for SledOversight {
    async fn evaluated(&self) -> Result<u64, StoreError> {
        Ok(u64_of(self.meta.get(EVALUATED).map_err(StoreError::new)?))
    }

    async fn advance(&self, from: u64, to: u64, findings: &[Finding]) -> Result<bool, StoreError> {
        let _writing = self.writing.lock().await;
        let advanced = (&self.alerts, &self.meta)
            .transaction(|(alerts, meta)| {
                if u64_of(meta.get(EVALUATED)?) != from {
                    return Ok(false);
                }
                for f in findings {
                    let alert = match alerts.get(f.alert.alert_id.as_bytes())? {
                        Some(stored) => keep_auditors(
                            f.alert.clone(),
                            &unframe(&stored).map_err(ConflictableTransactionError::Abort)?.alert,
                        ),
                        None => f.alert.clone(),
                    };
                    let framed = frame(&Finding {
                        key: f.key.clone(),
                        alert,
                    });
                    alerts.insert(f.alert.alert_id.as_bytes(), framed)?;
                }
                meta.insert(EVALUATED, &to.to_be_bytes())?;
                Ok(true)
            })
            .map_err(aborted)?;
        self.flush().await?;
        Ok(advanced)
    }

    async fn alert(&self, id: &str) -> Result<Option<Alert>, StoreError> {
        let stored = self.alerts.get(id.as_bytes()).map_err(StoreError::new)?;
        stored.map(|s| unframe(&s).map(|f| f.alert)).transpose()
    }

    async fn alerts(&self, after: &str, limit: usize) -> Result<Vec<Alert>, StoreError> {
        let start = std::ops::Bound::Excluded(after.as_bytes().to_vec());
        self.alerts
            .range((start, std::ops::Bound::Unbounded))
            .values()
            .take(limit)
            .map(|v| unframe(&v.map_err(StoreError::new)?).map(|f| f.alert))
            .collect()
    }

    async fn alerts_since(&self, since: SystemTime) -> Result<Vec<Finding>, StoreError> {
        // Ids begin with the first record's index: newest last. Every alert
        // is read; the rules ask only when they start or lost a race.
        let mut found = Vec::new();
        for v in self.alerts.iter().values() {
            let f = unframe(&v.map_err(StoreError::new)?)?;
            if opened(&f.alert) >= since {
                found.push(f);
            }
        }
        Ok(found)
    }

    async fn watch(&self, entry: &WatchEntry) -> Result<(), StoreError> {
        self.watched
            .insert(entry.citizen_ref.as_bytes(), entry.encode_to_vec())
            .map_err(StoreError::new)?;
        self.flush().await
    }

    async fn unwatch(&self, citizen_ref: &str) -> Result<Option<WatchEntry>, StoreError> {
        let removed = self.watched.remove(citizen_ref.as_bytes()).map_err(StoreError::new)?;
        self.flush().await?;
        removed
            .map(|v| WatchEntry::decode(v.as_ref()).map_err(StoreError::new))
            .transpose()
    }

    async fn watched(&self) -> Result<Vec<WatchEntry>, StoreError> {
        SledOversight::decode_all(&self.watched, "", usize::MAX)
    }

    async fn put_case(&self, case: &Case, events_before: Option<usize>, alerts: &[Alert]) -> Result<bool, StoreError> {
        let _writing = self.writing.lock().await;
        let put = (&self.cases, &self.alerts)
            .transaction(|(cases, stored_alerts)| {
                let stored = cases.get(case.case_id.as_bytes())?;
                let stored_events = stored
                    .map(|s| Case::decode(s.as_ref()).map(|c| c.events.len()))
                    .transpose()
                    .map_err(|e| ConflictableTransactionError::Abort(StoreError::new(e)))?;
                if stored_events != events_before {
                    return Ok(false);
                }
                let Some(updated) = still_open(alerts, |id| stored_alerts.get(id))? else {
                    return Ok(false);
                };
                cases.insert(case.case_id.as_bytes(), case.encode_to_vec())?;
                for (id, framed) in updated {
                    stored_alerts.insert(id, framed)?;
                }
                Ok(true)
            })
            .map_err(aborted)?;
        self.flush().await?;
        Ok(put)
    }

    async fn set_alerts(&self, alerts: &[Alert]) -> Result<bool, StoreError> {
        let _writing = self.writing.lock().await;
        let set = self
            .alerts
            .transaction(|stored_alerts| {
                let Some(updated) = still_open(alerts, |id| stored_alerts.get(id))? else {
                    return Ok(false);
                };
                for (id, framed) in updated {
                    stored_alerts.insert(id, framed)?;
                }
                Ok(true)
            })
            .map_err(aborted)?;
        self.flush().await?;
        Ok(set)
    }

    async fn case(&self, id: &str) -> Result<Option<Case>, StoreError> {
        let stored = self.cases.get(id.as_bytes()).map_err(StoreError::new)?;
        stored
            .map(|s| Case::decode(s.as_ref()).map_err(StoreError::new))
            .transpose()
    }

    async fn cases(&self, after: &str, limit: usize) -> Result<Vec<Case>, StoreError> {
        SledOversight::decode_all(&self.cases, after, limit)
    }
}
