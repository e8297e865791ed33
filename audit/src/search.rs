//! Auditors' searches. A search walks the narrowest index that applies (the
//! citizen's pseudonym, as the subject or as a related person of a record,
//! else the agency, else the log itself from the first record at or after
//! `since`), in log order, and never past the durable size. An index is
//! walked as far as it is filed and the log itself after that, so a record
//! not yet indexed is still found.
//! Page tokens are the last index looked at, so they stay valid as the log grows.

use std::{
    collections::BTreeMap,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use civex_proto::v1::{AuditEntry, AuditRecord, Decision};
use prost::Message;

use crate::{AuditError, AuditLog, clock::system_time, record_time, store::IndexKey};

/// Largest page a search returns.
pub const MAX_PAGE: usize = 1000;
/// Candidates one call looks at before handing back a token to continue.
const SCAN_BUDGET: usize = 10_000;

/// What to look for; unset fields match everything.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub citizen_ref: Option<String>,
    pub agency: Option<String>,
    /// The official (the agency's operator label).
    pub operator: Option<String>,
    pub request_id: Option<String>,
    pub consent_id: Option<String>,
    /// Any of these actions (empty: any action).
    pub actions: Vec<String>,
    pub decision: Option<Decision>,
    pub since: Option<SystemTime>,
    pub until: Option<SystemTime>,
    /// Records of each purpose named here written after its time are left
    /// out (a use whose disclosure is delayed, until the delay has passed).
    pub withheld: Vec<(String, SystemTime)>,
}

impl Filter {
    fn matches(&self, r: &AuditEntry, time: Option<SystemTime>) -> bool {
        self.citizen_ref
            .as_ref()
            .is_none_or(|c| *c == r.citizen_ref || r.related_refs.contains(c))
            && self.agency.as_ref().is_none_or(|a| *a == r.agency)
            && self.operator.as_ref().is_none_or(|o| *o == r.operator)
            && self.request_id.as_ref().is_none_or(|q| *q == r.request_id)
            && self
                .consent_id
                .as_ref()
                .is_none_or(|c| *c == r.consent_id || r.consent_uses.contains(c))
            && (self.actions.is_empty() || self.actions.contains(&r.action))
            && self.decision.is_none_or(|d| d as i32 == r.decision)
            && self.since.is_none_or(|s| time.is_some_and(|t| t >= s))
            && self.until.is_none_or(|u| time.is_some_and(|t| t < u))
            && !self
                .withheld
                .iter()
                .any(|(purpose, after)| *purpose == r.purpose && time.is_none_or(|t| t > *after))
    }
}

/// One row of [`AuditLog::tally`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tally {
    pub agency: String,
    /// Empty unless counted per operator.
    pub operator: String,
    pub action: String,
    /// A [`Decision`] as its number.
    pub decision: i32,
    pub reason: String,
    /// The start of the bucket counted, when counting in buckets.
    pub bucket_start: Option<SystemTime>,
    pub count: u64,
}

/// What [`AuditLog::tally`] counts.
#[derive(Debug, Clone, Copy, Default)]
pub struct TallyOptions {
    /// The window `[since, until)`; unset ends are open.
    pub since: Option<SystemTime>,
    pub until: Option<SystemTime>,
    /// Count allowed calls too, not only refusals.
    pub allowed: bool,
    /// One row per operator of each agency.
    pub per_operator: bool,
    /// Count in buckets of this length, aligned to the Unix epoch.
    pub bucket: Option<Duration>,
}

/// The start of the bucket of length `bucket` that holds `t`.
fn bucket_of(t: SystemTime, bucket: Duration) -> SystemTime {
    let since_epoch = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let length = bucket.as_secs().max(1);
    UNIX_EPOCH + Duration::from_secs(since_epoch - since_epoch % length)
}

/// One page of results and where to continue.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub entries: Vec<AuditEntry>,
    /// The last index looked at, when there may be more.
    pub next: Option<u64>,
}

/// Turns a stored leaf into an entry.
pub fn entry(index: u64, leaf: Vec<u8>) -> Result<AuditEntry, AuditError> {
    let r = AuditRecord::decode(leaf.as_slice()).map_err(|e| AuditError::Corrupt(format!("record {index}: {e}")))?;
    Ok(AuditEntry {
        index,
        time: r.time,
        agency: r.agency,
        operator: r.operator,
        action: r.action,
        citizen_ref: r.citizen_ref,
        scopes: r.scopes,
        purpose: r.purpose,
        consent_id: r.consent_id,
        decision: r.decision,
        reason: r.reason,
        request_id: r.request_id,
        subject: r.subject,
        note: r.note,
        related_refs: r.related_refs,
        consent_uses: r.consent_uses,
        certificate: r.certificate,
        leaf,
    })
}

impl AuditLog {
    /// Searches from just after `after` (or from the start).
    pub fn search(&self, filter: &Filter, page_size: usize, after: Option<u64>) -> Result<Page, AuditError> {
        let size = self.size();
        let start = after.map_or(0, |a| a.saturating_add(1));
        let page_size = page_size.clamp(1, MAX_PAGE);
        let indices: Box<dyn Iterator<Item = Result<u64, AuditError>> + '_> = if let Some(key) = index_key(filter) {
            // The index as far as it is filed, then every record after that.
            let indexed = self.indexed();
            let filed: Box<dyn Iterator<Item = Result<u64, AuditError>> + '_> = if start < indexed {
                Box::new(
                    self.index()
                        .indexed(&key, start)
                        .map(|i| Ok(i?))
                        .take_while(move |i| i.as_ref().map_or(true, |i| *i < indexed)),
                )
            } else {
                Box::new(std::iter::empty())
            };
            Box::new(filed.chain((start.max(indexed)..size).map(Ok)))
        } else {
            let first = match filter.since {
                Some(since) => start.max(self.first_at_or_after(since)?),
                None => start,
            };
            Box::new((first..size).map(Ok))
        };
        let mut page = Page::default();
        for (scanned, index) in indices.enumerate() {
            let index = index?;
            if index >= size {
                break;
            }
            if scanned >= SCAN_BUDGET {
                page.next = Some(index - 1);
                break;
            }
            // Below `size`, read once above: the store's own lookup.
            let Some(leaf) = self.store().leaf(index)? else { break };
            let e = entry(index, leaf)?;
            let time = e.time.as_ref().and_then(system_time);
            // Times never go backwards: past `until`, nothing later can match.
            if filter.until.is_some_and(|u| time.is_some_and(|t| t >= u)) {
                break;
            }
            if filter.matches(&e, time) {
                page.entries.push(e);
                if page.entries.len() == page_size {
                    page.next = Some(index);
                    break;
                }
            }
        }
        Ok(page)
    }

    /// Counts the records of the window by agency, operator (with
    /// `per_operator`), action, decision, reason and bucket: refusals only,
    /// or every call with `allowed`. Reads every record of the window.
    pub fn tally(&self, options: TallyOptions) -> Result<Vec<Tally>, AuditError> {
        let size = self.size();
        let first = match options.since {
            Some(since) => self.first_at_or_after(since)?,
            None => 0,
        };
        type Key = (Option<SystemTime>, String, String, String, i32, String);
        let mut counts: BTreeMap<Key, u64> = BTreeMap::new();
        for index in first..size {
            let Some(leaf) = self.store().leaf(index)? else { break };
            let e = entry(index, leaf)?;
            let time = e.time.as_ref().and_then(system_time);
            if options.until.is_some_and(|u| time.is_some_and(|t| t >= u)) {
                break;
            }
            if !options.allowed && e.decision != Decision::Deny as i32 {
                continue;
            }
            let operator = if options.per_operator {
                e.operator
            } else {
                String::new()
            };
            let bucket = options
                .bucket
                .map(|length| bucket_of(time.unwrap_or(UNIX_EPOCH), length));
            *counts
                .entry((bucket, e.agency, operator, e.action, e.decision, e.reason))
                .or_default() += 1;
        }
        Ok(counts
            .into_iter()
            .map(
                |((bucket_start, agency, operator, action, decision, reason), count)| Tally {
                    agency,
                    operator,
                    action,
                    decision,
                    reason,
                    bucket_start,
                    count,
                },
            )
            .collect())
    }

    /// The first index whose record time is at or after `t` (binary search:
    /// record times never go backwards).
    fn first_at_or_after(&self, t: SystemTime) -> Result<u64, AuditError> {
        let (mut lo, mut hi) = (0, self.size());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match record_time(self.store(), mid)? {
                Some(time) if time < t => lo = mid + 1,
                _ => hi = mid,
            }
        }
        Ok(lo)
    }
}

fn index_key(filter: &Filter) -> Option<IndexKey> {
    if let Some(c) = &filter.citizen_ref {
        return Some(IndexKey::Citizen(c.clone()));
    }
    filter.agency.clone().map(IndexKey::Agency)
}
