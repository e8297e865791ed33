//! The log's single writer: group commit on a thread of its own.
//!
//! It takes every waiting record, lays them out after the last durable one,
//! hands the [`LogStore`] one batch and waits for it to be durable, then
//! answers them all. After a failed write it discards the store and reopens
//! it from disk before writing again, so what it builds on is exactly what
//! is durable. Record times never go backwards, so a time range maps to an
//! index range.

use std::{
    collections::HashMap,
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
    AuditError, Background, Entry, Usage, UseLedger,
    checkpoint::{self, Checkpoint},
    clock::{Clock, timestamp},
    keys::{Signer, Verifier},
    merkle::{self, Frontier},
    store::{Batch, LogStore},
};

/// Why the writer turned an allowed call into a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Overruled {
    /// The consent was withdrawn earlier in the log than this use.
    ConsentRevoked,
    /// The consent's uses ran out earlier in the log than this use.
    ConsentExhausted,
    /// The consent could not be re-checked.
    Unchecked,
}

impl Overruled {
    /// The refusal reason written into the record.
    pub const fn reason(self) -> &'static str {
        match self {
            Overruled::ConsentRevoked => "CONSENT_REVOKED",
            Overruled::ConsentExhausted => "CONSENT_EXHAUSTED",
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
}

/// Uses and withdrawals that are durable in the log but that the ledger
/// failed to take: still counted for every use, and retried with each batch.
#[derive(Default)]
pub(crate) struct Unapplied {
    uses: HashMap<String, u64>,
    withdrawals: HashMap<String, SystemTime>,
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
    pub(crate) unapplied: Unapplied,
    /// The log size through which the ledger has taken everything.
    pub(crate) applied: u64,
    pub(crate) background: mpsc::Sender<Background>,
    pub(crate) healthy: watch::Sender<bool>,
    pub(crate) config: WriterConfig,
}

const MAX_BATCH: usize = 4096;
/// Records after which the ledger's watermark moves even if they used no
/// consent, so that a restart never replays more than this many.
const WATERMARK_EVERY: u64 = 1 << 16;
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
                if let Err(e) = self.ledger.flush() {
                    tracing::warn!(cause = %e, "consent store not flushed at close; the log replays it at start");
                }
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
        let (opened, tip) = crate::load(self.store.as_ref(), &self.verifier)?;
        // What the ledger had taken but not made durable is gone with it; the log still has it.
        crate::replay(self.store.as_ref(), self.ledger.as_ref(), opened.size)?;
        self.unapplied = Unapplied::default();
        self.applied = opened.size;
        self.committed.store(opened.size, Ordering::Release);
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
        let mut batch = Batch {
            start: frontier.size(),
            ..Batch::default()
        };
        let mut landed = Vec::with_capacity(pending.len());
        let mut want_checkpoint = force_checkpoint;
        let mut counted = Counted::default();
        for Pending { entry: mut p, reply } in pending {
            let overruled = self.admit(&mut p, &mut counted);
            if let Some(o) = overruled {
                p.record.decision = Decision::Deny as i32;
                p.record.reason = o.reason().to_owned();
                p.record.consent_uses.clear();
            }
            let now = self.clock.now().max(last_time);
            last_time = now;
            p.record.time = Some(timestamp(now));
            if let Some(id) = p
                .withdrawal
                .take()
                .filter(|_| p.record.decision == Decision::Allow as i32)
            {
                counted.withdrawals.entry(id).or_insert(now);
            }
            let index = frontier.size();
            let leaf = p.record.encode_to_vec();
            frontier.push(merkle::leaf_hash(&leaf), |level, i, hash| {
                batch.nodes.push((level, i, *hash))
            });
            batch.leaves.push(leaf);
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
        // One write and one fsync: the records carry their consents' uses and withdrawals.
        match self.store.append(&batch, self.config.durable) {
            Ok(()) => {
                self.tip.frontier = frontier;
                self.tip.last_time = last_time;
                self.committed.store(size, Ordering::Release);
                if let Some(cp) = &checkpoint {
                    self.last_checkpoint = (cp.size, Instant::now());
                }
                self.healthy.send_if_modified(|h| !std::mem::replace(h, true));
                self.apply(counted, size);
                for (reply, index, time, overruled, wants) in landed {
                    let cp = if wants { checkpoint.clone() } else { None };
                    let _ = reply.send(Ok(Appended {
                        index,
                        time,
                        overruled,
                        checkpoint: cp,
                    }));
                }
                let _ = self.background.send(Background::Committed {
                    size,
                    checkpoint: checkpoint.is_some(),
                });
            }
            Err(e) => {
                let e = e.to_string();
                tracing::error!(cause = %e, "audit log write failed: refusing every call until it works again");
                self.break_store();
                for (reply, ..) in landed {
                    let _ = reply.send(Err(AuditError::Unavailable(e.clone())));
                }
            }
        }
    }

    /// Tells the ledger the uses and withdrawals of a durable batch (and any
    /// it failed to take before). What it fails to take stays counted here,
    /// and a restart replays it from the log.
    fn apply(&mut self, counted: Counted, size: u64) {
        let nothing = counted.uses.is_empty()
            && counted.withdrawals.is_empty()
            && self.unapplied.uses.is_empty()
            && self.unapplied.withdrawals.is_empty();
        // A batch that used no consent leaves the ledger alone, for a while:
        // a restart replays from an older watermark, which costs a scan, not a write.
        if nothing && size - self.applied < WATERMARK_EVERY {
            return;
        }
        for (id, n) in counted.uses {
            *self.unapplied.uses.entry(id).or_default() += n;
        }
        for (id, at) in counted.withdrawals {
            self.unapplied.withdrawals.entry(id).or_insert(at);
        }
        match self
            .ledger
            .apply(&self.unapplied.uses, &self.unapplied.withdrawals, size)
        {
            Ok(()) => {
                self.unapplied = Unapplied::default();
                self.applied = size;
            }
            Err(e) => tracing::error!(cause = %e, "consent store did not take the log's uses; retrying"),
        }
    }

    /// The ordering rule for consents: a use is refused if, at its place in
    /// the log, the consent is withdrawn or its uses have run out, whatever
    /// the handler saw. An allowed use is counted in `counted`.
    fn admit(&self, p: &mut Entry, counted: &mut Counted) -> Option<Overruled> {
        p.record.consent_uses.clear();
        if p.record.decision != Decision::Allow as i32 || p.consent_uses.is_empty() {
            return None;
        }
        let mut ids = p.consent_uses.clone();
        ids.sort();
        ids.dedup();
        for id in &ids {
            if counted.withdrawals.contains_key(id) || self.unapplied.withdrawals.contains_key(id) {
                return Some(Overruled::ConsentRevoked);
            }
            let usage = match counted.usage.get(id) {
                Some(usage) => *usage,
                None => match self.ledger.usage(id) {
                    Ok(usage) => *counted.usage.entry(id.clone()).or_insert(usage),
                    Err(e) => {
                        tracing::error!(cause = %e, "cannot re-check a consent while logging its use");
                        return Some(Overruled::Unchecked);
                    }
                },
            };
            if usage.withdrawn {
                return Some(Overruled::ConsentRevoked);
            }
            let used = usage.uses
                + self.unapplied.uses.get(id).copied().unwrap_or(0)
                + counted.uses.get(id).copied().unwrap_or(0);
            if usage.max_uses != 0 && used >= usage.max_uses {
                return Some(Overruled::ConsentExhausted);
            }
        }
        for id in &ids {
            *counted.uses.entry(id.clone()).or_default() += 1;
        }
        p.record.consent_uses = ids;
        None
    }
}

/// What one batch counts toward the ledger.
#[derive(Default)]
struct Counted {
    uses: HashMap<String, u64>,
    withdrawals: HashMap<String, SystemTime>,
    /// The ledger's answers, read once per batch.
    usage: HashMap<String, Usage>,
}
