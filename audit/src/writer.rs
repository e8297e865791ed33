//! The log's single writer: group commit on a thread of its own.
//!
//! It takes every waiting record, lays them out after the last durable one,
//! hands the [`LogStore`] one batch and waits for it to be durable, then
//! answers them all. After a failed write it discards the store and reopens
//! it from disk before writing again, so what it builds on is exactly what
//! is durable. Record times never go backwards, so a time range maps to an
//! index range.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
        mpsc,
    },
    time::{Duration, Instant, SystemTime},
};

use civex_proto::v1::Decision;
use prost::Message;
use tokio::sync::{oneshot, watch};

use crate::{
    AuditError, Entry, UseLedger,
    checkpoint::{self, Checkpoint},
    clock::{Clock, timestamp},
    keys::{Signer, Verifier},
    merkle::{self, Frontier},
    store::{Batch, IndexKey, LogStore, RefusalCount},
};

/// Why the writer turned an allowed call into a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overruled {
    /// The consent was withdrawn earlier in the log than this use.
    ConsentRevoked,
    /// The consent could not be re-checked.
    Unchecked,
}

impl Overruled {
    /// The refusal reason written into the record.
    pub const fn reason(self) -> &'static str {
        match self {
            Overruled::ConsentRevoked => "CONSENT_REVOKED",
            Overruled::Unchecked => "INTERNAL",
        }
    }
}

/// A record waiting for its turn in the log.
pub(crate) struct Pending {
    pub(crate) entry: Entry,
    pub(crate) reply: oneshot::Sender<Result<Appended, AuditError>>,
}

/// Where a record landed.
#[derive(Debug, Clone)]
pub struct Appended {
    pub index: u64,
    /// The record's time.
    pub time: SystemTime,
    /// Set when the writer turned an allowed use into a refusal.
    pub overruled: Option<Overruled>,
    pub checkpoint: Option<Checkpoint>,
}

pub(crate) enum Msg {
    Append(Box<Pending>),
    Close(oneshot::Sender<()>),
}

/// Tuning of the writer.
#[derive(Debug, Clone, Copy)]
pub struct WriterConfig {
    pub checkpoint_every: u64,
    pub checkpoint_interval: Duration,
    /// Flush (fsync) before answering. Off only in the benchmark's
    /// measurement of what durability costs.
    pub durable: bool,
}

/// What the writer knows of the durable log.
pub(crate) struct Tip {
    pub(crate) frontier: Frontier,
    pub(crate) last_time: SystemTime,
    pub(crate) refusals: HashMap<(String, String), u64>,
}

pub(crate) struct Writer {
    pub(crate) store: Arc<dyn LogStore>,
    pub(crate) verifier: Verifier,
    /// Set after a failed write, until the store is reopened.
    pub(crate) broken: bool,
    pub(crate) tip: Tip,
    pub(crate) committed: Arc<AtomicU64>,
    pub(crate) last_checkpoint: (u64, Instant),
    pub(crate) signer: Arc<Signer>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) ledger: Arc<dyn UseLedger>,
    /// Withdrawals that are durable in the log but that the ledger failed to
    /// take: still applied to every use, and retried with each batch.
    pub(crate) unapplied: HashMap<String, SystemTime>,
    pub(crate) healthy: watch::Sender<bool>,
    pub(crate) config: WriterConfig,
}

const MAX_BATCH: usize = 4096;
/// How often a broken store is retried when no call arrives.
const RETRY: Duration = Duration::from_secs(1);

impl Writer {
    pub(crate) fn run(mut self, rx: mpsc::Receiver<Msg>) {
        loop {
            let wait = if self.broken {
                RETRY.min(self.config.checkpoint_interval)
            } else {
                self.config.checkpoint_interval
            };
            let first = match rx.recv_timeout(wait) {
                Ok(m) => m,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if self.broken {
                        self.recover();
                    } else {
                        self.commit(Vec::new(), false);
                    }
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            };
            let mut batch = Vec::new();
            let mut close = None;
            match first {
                Msg::Append(p) => batch.push(*p),
                Msg::Close(done) => close = Some(done),
            }
            while close.is_none() && batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(Msg::Append(p)) => batch.push(*p),
                    Ok(Msg::Close(done)) => close = Some(done),
                    Err(_) => break,
                }
            }
            let closing = close.is_some();
            self.commit(batch, closing);
            if let Some(done) = close {
                let _ = done.send(());
                return;
            }
        }
    }

    /// Reopens a broken store and proves it writable; health follows.
    fn recover(&mut self) {
        match self.reopen().and_then(|()| self.probe()) {
            Ok(()) => {
                tracing::info!("audit log writable again");
                self.healthy.send_if_modified(|h| !std::mem::replace(h, true));
            }
            Err(e) => {
                tracing::warn!(cause = %e, "audit log still cannot be written");
                self.break_store();
            }
        }
    }

    fn reopen(&mut self) -> Result<(), AuditError> {
        if !self.broken {
            return Ok(());
        }
        self.ledger
            .reopen()
            .map_err(|e| AuditError::Unavailable(format!("consent ledger: {e}")))?;
        self.store.reopen().map_err(AuditError::from)?;
        let (verified, tip) = crate::load(self.store.as_ref(), &self.verifier)?;
        // What the ledger had taken but not made durable is gone with it; the log still has it.
        crate::replay_withdrawals(self.store.as_ref(), self.ledger.as_ref(), verified.size)?;
        self.committed.store(verified.size, Ordering::Release);
        self.tip = Tip {
            last_time: self.tip.last_time.max(tip.last_time),
            ..tip
        };
        self.broken = false;
        Ok(())
    }

    /// A small durable write, to tell a store that reads from one that writes.
    fn probe(&self) -> Result<(), AuditError> {
        let stamp = self
            .clock
            .now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as u64;
        Ok(self.store.probe(stamp)?)
    }

    /// Drops the store after a failure: what was not made durable must not be built on.
    fn break_store(&mut self) {
        self.store.discard();
        self.ledger.discard();
        self.broken = true;
        self.healthy.send_if_modified(|h| std::mem::replace(h, false));
    }

    fn commit(&mut self, pending: Vec<Pending>, force_checkpoint: bool) {
        if let Err(e) = self.reopen() {
            tracing::error!(cause = %e, "audit log cannot be reopened");
            self.break_store();
            for p in pending {
                let _ = p.reply.send(Err(AuditError::Unavailable(e.to_string())));
            }
            return;
        }
        let mut frontier = self.tip.frontier.clone();
        let mut last_time = self.tip.last_time;
        let mut changed: HashMap<(String, String), u64> = HashMap::new();
        let mut batch = Batch {
            start: frontier.size(),
            ..Batch::default()
        };
        let mut landed = Vec::with_capacity(pending.len());
        let mut want_checkpoint = force_checkpoint;
        let mut withdrawals: Vec<(String, SystemTime)> = Vec::new();
        let mut withdrawn_here = HashSet::new();
        for Pending { entry: mut p, reply } in pending {
            let overruled = self.overrule(&p, &withdrawn_here);
            if let Some(o) = overruled {
                p.record.decision = Decision::Deny as i32;
                p.record.reason = o.reason().to_owned();
            }
            let now = self.clock.now().max(last_time);
            last_time = now;
            p.record.time = Some(timestamp(now));
            if let Some(id) = p
                .withdrawal
                .take()
                .filter(|_| p.record.decision == Decision::Allow as i32)
            {
                withdrawn_here.insert(id.clone());
                withdrawals.push((id, now));
            }
            let index = frontier.size();
            let leaf = p.record.encode_to_vec();
            frontier.push(merkle::leaf_hash(&leaf), |level, i, hash| {
                batch.nodes.push((level, i, *hash))
            });
            batch.leaves.push(leaf);
            // A related person's history shows the access too.
            for citizen in std::iter::once(&p.record.citizen_ref).chain(&p.record.related_refs) {
                if !citizen.is_empty() {
                    batch.index.push((IndexKey::Citizen(citizen.clone()), index));
                }
            }
            batch.index.push((IndexKey::Agency(p.record.agency.clone()), index));
            if p.record.decision == Decision::Deny as i32 {
                let key = (p.record.agency.clone(), p.record.reason.clone());
                let before = self.tip.refusals.get(&key).copied().unwrap_or(0);
                *changed.entry(key).or_insert(before) += 1;
            }
            want_checkpoint |= p.checkpoint;
            landed.push((reply, index, now, overruled, p.checkpoint));
        }
        let size = frontier.size();
        let (last_size, last_at) = self.last_checkpoint;
        let due = size > last_size
            && (size - last_size >= self.config.checkpoint_every
                || last_at.elapsed() >= self.config.checkpoint_interval);
        let checkpoint =
            (want_checkpoint && size > 0 || due).then(|| checkpoint::sign(&self.signer, size, &frontier.root()));
        if landed.is_empty() && (checkpoint.is_none() || size == last_size) {
            return;
        }
        batch.size = size;
        batch.checkpoint = checkpoint.as_ref().map(|cp| cp.note.clone());
        batch.refusals = changed
            .iter()
            .map(|((agency, reason), count)| RefusalCount {
                agency: agency.clone(),
                reason: reason.clone(),
                count: *count,
            })
            .collect();
        let durable = self.config.durable;
        // Consent uses and withdrawals of this batch's calls first, then the records.
        let written = if durable { self.ledger.flush() } else { Ok(()) }
            .and_then(|()| self.store.append(&batch, durable).map_err(|e| e.to_string()));
        match written {
            Ok(()) => {
                self.tip.frontier = frontier;
                self.tip.last_time = last_time;
                self.tip.refusals.extend(changed);
                self.committed.store(size, Ordering::Release);
                if let Some(cp) = &checkpoint {
                    self.last_checkpoint = (cp.size, Instant::now());
                }
                self.healthy.send_if_modified(|h| !std::mem::replace(h, true));
                self.apply_withdrawals(withdrawals, size);
                for (reply, index, time, overruled, wants) in landed {
                    let cp = if wants { checkpoint.clone() } else { None };
                    let _ = reply.send(Ok(Appended {
                        index,
                        time,
                        overruled,
                        checkpoint: cp,
                    }));
                }
            }
            Err(e) => {
                tracing::error!(cause = %e, "audit log write failed: refusing every call until it works again");
                self.break_store();
                for (reply, ..) in landed {
                    let _ = reply.send(Err(AuditError::Unavailable(e.clone())));
                }
            }
        }
    }

    /// Hands the ledger the withdrawals of a durable batch (and any it
    /// failed to take before), then moves its watermark past the batch if
    /// nothing is left over. What it fails to take stays in force here, and
    /// a restart replays it from the log.
    fn apply_withdrawals(&mut self, withdrawals: Vec<(String, SystemTime)>, size: u64) {
        // Batches without withdrawals leave the ledger alone: a restart
        // replays from an older watermark, which costs a scan, not a write.
        if withdrawals.is_empty() && self.unapplied.is_empty() {
            return;
        }
        self.unapplied.extend(withdrawals);
        self.unapplied.retain(|id, at| match self.ledger.withdraw(id, *at) {
            Ok(()) => false,
            Err(e) => {
                tracing::error!(cause = %e, "consent store did not take a recorded withdrawal; retrying");
                true
            }
        });
        if self.unapplied.is_empty()
            && let Err(e) = self.ledger.set_applied(size)
        {
            tracing::warn!(cause = %e, "consent store watermark not moved; a restart replays from the older one");
        }
    }

    /// The ordering rule for withdrawals: a use whose record lands after the
    /// consent's withdrawal is refused, whatever the handler saw.
    fn overrule(&self, p: &Entry, withdrawn_here: &HashSet<String>) -> Option<Overruled> {
        if p.record.decision != Decision::Allow as i32 {
            return None;
        }
        p.consent_uses.iter().find_map(|id| {
            if withdrawn_here.contains(id) || self.unapplied.contains_key(id) {
                return Some(Overruled::ConsentRevoked);
            }
            match self.ledger.withdrawn(id) {
                Ok(true) => Some(Overruled::ConsentRevoked),
                Ok(false) => None,
                Err(e) => {
                    tracing::error!(cause = %e, "cannot re-check a consent while logging its use");
                    Some(Overruled::Unchecked)
                }
            }
        })
    }
}
