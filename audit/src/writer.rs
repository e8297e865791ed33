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
    shared::{Layout, SharedLog},
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

/// How the writer's log is shared.
pub(crate) enum Mode {
    /// This writer alone appends: it keeps the tree's right edge, signs the
    /// checkpoints and counts consent uses against the ledger.
    Local(Local),
    /// Other gateways append too: the store sequences each batch under its
    /// head lock with the consents' rows, and the tree is integrated after.
    Shared(Arc<dyn SharedLog>),
}

pub(crate) struct Local {
    pub(crate) tip: Tip,
    pub(crate) last_checkpoint: (u64, Instant),
    pub(crate) ledger: Arc<dyn UseLedger>,
    pub(crate) unapplied: Unapplied,
    /// The log size through which the ledger has taken everything.
    pub(crate) applied: u64,
}

pub(crate) struct Writer {
    pub(crate) store: Arc<dyn LogStore>,
    pub(crate) mode: Mode,
    pub(crate) verifier: Verifier,
    /// Set after a failed write, until the store is reopened.
    pub(crate) broken: bool,
    pub(crate) committed: Arc<AtomicU64>,
    pub(crate) signer: Arc<Signer>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) background: mpsc::Sender<Background>,
    pub(crate) healthy: watch::Sender<bool>,
    pub(crate) config: WriterConfig,
    pub(crate) observer: Arc<std::sync::OnceLock<BatchObserver>>,
}

/// Told of every batch made durable: its records, how long the write (and
/// its fsync, or the shared log's transaction) took, and whether a signed
/// checkpoint came with it. For metrics.
pub type BatchObserver = Box<dyn Fn(usize, Duration, bool) + Send + Sync>;

const MAX_BATCH: usize = 4096;
/// Records after which the ledger's watermark moves even if they used no
/// consent, so that a restart never replays more than this many.
const WATERMARK_EVERY: u64 = 1 << 16;
/// How often a broken store is retried when no call arrives.
const RETRY: Duration = Duration::from_secs(1);

/// Where one record landed, to be answered once its batch is durable.
struct Landed {
    reply: oneshot::Sender<Result<Appended, AuditError>>,
    index: u64,
    time: SystemTime,
    overruled: Option<Overruled>,
    wants_checkpoint: bool,
}

/// A batch laid out in log order.
struct Laid {
    leaves: Vec<Vec<u8>>,
    landed: Vec<Landed>,
    counted: Counted,
    last_time: SystemTime,
}

impl Laid {
    fn new(landed: Vec<Landed>) -> Laid {
        Laid {
            leaves: Vec::with_capacity(landed.capacity()),
            landed,
            counted: Counted::default(),
            last_time: std::time::UNIX_EPOCH,
        }
    }

    fn fail(self, e: &AuditError) {
        for landed in self.landed {
            let _ = landed.reply.send(Err(e.clone()));
        }
    }

    fn answer(self, checkpoint: Option<&Checkpoint>) {
        for l in self.landed {
            let _ = l.reply.send(Ok(Appended {
                index: l.index,
                time: l.time,
                overruled: l.overruled,
                checkpoint: checkpoint.filter(|_| l.wants_checkpoint).cloned(),
            }));
        }
    }
}

/// Lays `pending` out from index `first`, each record's time at least
/// `last_time`, deciding every consent use in log order against `usage`
/// (how a consent stands before this batch) and the batch's own count.
fn lay_out(
    clock: &dyn Clock,
    pending: Vec<Pending>,
    first: u64,
    mut last_time: SystemTime,
    usage: &mut dyn FnMut(&str) -> Result<Usage, String>,
) -> Laid {
    let mut laid = Laid::new(Vec::with_capacity(pending.len()));
    for Pending { entry: mut p, reply } in pending {
        let overruled = admit(&mut p, &mut laid.counted, usage);
        if let Some(o) = overruled {
            // A refused record says only that: what the call would have noted
            // (an outcome found under the use) did not stand.
            p.record.decision = Decision::Deny as i32;
            p.record.reason = o.reason().to_owned();
            p.record.consent_uses.clear();
            p.record.note.clear();
        }
        let now = clock.now().max(last_time);
        last_time = now;
        p.record.time = Some(timestamp(now));
        if let Some(id) = p
            .withdrawal
            .take()
            .filter(|_| p.record.decision == Decision::Allow as i32)
        {
            laid.counted.withdrawals.entry(id).or_insert(now);
        }
        laid.landed.push(Landed {
            reply,
            index: first + laid.leaves.len() as u64,
            time: now,
            overruled,
            wants_checkpoint: p.checkpoint,
        });
        laid.leaves.push(p.record.encode_to_vec());
    }
    laid.last_time = last_time;
    laid
}

/// The ordering rule for consents: a use is refused if, at its place in
/// the log, the consent is withdrawn or its uses have run out, whatever
/// the handler saw. An allowed use is counted in `counted`.
fn admit(
    p: &mut Entry,
    counted: &mut Counted,
    usage: &mut dyn FnMut(&str) -> Result<Usage, String>,
) -> Option<Overruled> {
    p.record.consent_uses.clear();
    if p.record.decision != Decision::Allow as i32 || p.consent_uses.is_empty() {
        return None;
    }
    let mut ids = p.consent_uses.clone();
    ids.sort();
    ids.dedup();
    for id in &ids {
        if counted.withdrawals.contains_key(id) {
            return Some(Overruled::ConsentRevoked);
        }
        let usage = match counted.usage.get(id) {
            Some(usage) => *usage,
            None => match usage(id) {
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
        let used = usage.uses + counted.uses.get(id).copied().unwrap_or(0);
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
                if let Mode::Local(local) = &self.mode
                    && let Err(e) = local.ledger.flush()
                {
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
        let Mode::Local(local) = &mut self.mode else {
            self.store.reopen()?;
            self.committed.fetch_max(self.store.size()?, Ordering::AcqRel);
            self.broken = false;
            return Ok(());
        };
        local
            .ledger
            .reopen()
            .map_err(|e| AuditError::Unavailable(format!("consent ledger: {e}")))?;
        self.store.reopen().map_err(AuditError::from)?;
        let (opened, tip) = crate::load(self.store.as_ref(), &self.verifier)?;
        // What the ledger had taken but not made durable is gone with it; the log still has it.
        crate::replay(self.store.as_ref(), local.ledger.as_ref(), opened.size)?;
        local.unapplied = Unapplied::default();
        local.applied = opened.size;
        self.committed.store(opened.size, Ordering::Release);
        local.tip = Tip {
            last_time: local.tip.last_time.max(tip.last_time),
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
        if let Mode::Local(local) = &self.mode {
            local.ledger.discard();
        }
        self.broken = true;
        self.healthy.send_if_modified(|h| std::mem::replace(h, false));
    }

    /// A write failed: every call of the batch is refused until the store works again.
    fn failed(&mut self, e: &AuditError, laid: Laid) {
        tracing::error!(cause = %e, "audit log write failed: refusing every call until it works again");
        self.break_store();
        laid.fail(&AuditError::Unavailable(e.to_string()));
    }

    fn observe(&self, records: usize, took: Duration, checkpointed: bool) {
        if let Some(observe) = self.observer.get() {
            observe(records, took, checkpointed);
        }
    }

    /// The log is durable up to `size`: readers and health see it before any call is answered.
    fn durable(&self, size: u64, checkpoint: bool) {
        self.committed.fetch_max(size, Ordering::AcqRel);
        self.healthy.send_if_modified(|h| !std::mem::replace(h, true));
        let _ = self.background.send(Background::Committed { size, checkpoint });
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
        match &self.mode {
            Mode::Local(_) => self.commit_local(pending, force_checkpoint),
            Mode::Shared(shared) => {
                let shared = shared.clone();
                self.commit_shared(shared.as_ref(), pending, force_checkpoint)
            }
        }
    }

    fn commit_local(&mut self, pending: Vec<Pending>, force_checkpoint: bool) {
        let Mode::Local(local) = &self.mode else { return };
        let want_checkpoint = force_checkpoint || pending.iter().any(|p| p.entry.checkpoint);
        let mut frontier = local.tip.frontier.clone();
        let (ledger, unapplied) = (&local.ledger, &local.unapplied);
        let mut laid = lay_out(
            self.clock.as_ref(),
            pending,
            frontier.size(),
            local.tip.last_time,
            &mut |id| {
                let mut usage = ledger.usage(id)?;
                usage.uses += unapplied.uses.get(id).copied().unwrap_or(0);
                usage.withdrawn |= unapplied.withdrawals.contains_key(id);
                Ok(usage)
            },
        );
        let mut batch = Batch {
            start: frontier.size(),
            ..Batch::default()
        };
        for leaf in &laid.leaves {
            frontier.push(merkle::leaf_hash(leaf), |level, i, hash| {
                batch.nodes.push((level, i, *hash))
            });
        }
        let size = frontier.size();
        let (last_size, last_at) = local.last_checkpoint;
        let due = size > last_size
            && (size - last_size >= self.config.checkpoint_every
                || last_at.elapsed() >= self.config.checkpoint_interval);
        let checkpoint =
            (want_checkpoint && size > 0 || due).then(|| checkpoint::sign(&self.signer, size, &frontier.root()));
        if laid.landed.is_empty() && (checkpoint.is_none() || size == last_size) {
            return;
        }
        batch.size = size;
        batch.checkpoint = checkpoint.as_ref().map(|cp| cp.note.clone());
        batch.leaves = std::mem::take(&mut laid.leaves);
        // One write and one fsync: the records carry their consents' uses and withdrawals.
        let started = Instant::now();
        if let Err(e) = self.store.append(&batch, self.config.durable) {
            return self.failed(&e.into(), laid);
        }
        self.observe(batch.leaves.len(), started.elapsed(), checkpoint.is_some());
        let Mode::Local(local) = &mut self.mode else { return };
        local.tip = Tip {
            frontier,
            last_time: laid.last_time,
        };
        if let Some(cp) = &checkpoint {
            local.last_checkpoint = (cp.size, Instant::now());
        }
        let counted = std::mem::take(&mut laid.counted);
        self.apply(counted, size);
        self.durable(size, checkpoint.is_some());
        laid.answer(checkpoint.as_ref());
    }

    /// One transaction under the shared log's head lock; then, for a call
    /// that asked for a checkpoint, the tree integrated through it.
    fn commit_shared(&mut self, shared: &dyn SharedLog, pending: Vec<Pending>, force_checkpoint: bool) {
        let want_checkpoint = force_checkpoint || pending.iter().any(|p| p.entry.checkpoint);
        if pending.is_empty() {
            if want_checkpoint && let Err(e) = crate::shared::integrate(shared, &self.signer, true) {
                tracing::warn!(cause = %e, "no final checkpoint: the tree could not be integrated");
            }
            return;
        }
        let mut consents: Vec<String> = pending
            .iter()
            .filter(|p| p.entry.record.decision == Decision::Allow as i32)
            .flat_map(|p| p.entry.consent_uses.iter().chain(&p.entry.withdrawal))
            .cloned()
            .collect();
        consents.sort();
        consents.dedup();
        let mut pending = Some(pending);
        let mut laid = None;
        let clock = self.clock.clone();
        let started = Instant::now();
        let sequenced = shared.sequence(&consents, &mut |head, usage| {
            let mut l = lay_out(
                clock.as_ref(),
                pending.take().unwrap_or_default(),
                head.next,
                head.last_time,
                &mut |id| {
                    usage
                        .get(id)
                        .copied()
                        .ok_or_else(|| "a consent used in this batch is not stored".to_owned())
                },
            );
            let layout = Layout {
                leaves: std::mem::take(&mut l.leaves),
                last_time: l.landed.last().map(|_| l.last_time),
                uses: l.counted.uses.iter().map(|(k, v)| (k.clone(), *v)).collect(),
                withdrawals: l.counted.withdrawals.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            };
            laid = Some(l);
            layout
        });
        // Not laid out if the transaction failed before it could be.
        let laid = laid.unwrap_or_else(|| {
            Laid::new(
                pending
                    .take()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|p| Landed {
                        reply: p.reply,
                        index: 0,
                        time: std::time::UNIX_EPOCH,
                        overruled: None,
                        wants_checkpoint: false,
                    })
                    .collect(),
            )
        });
        let head = match sequenced {
            Ok(head) => head,
            Err(e) => return self.failed(&e.into(), laid),
        };
        let took = started.elapsed();
        let size = head.next + laid.landed.len() as u64;
        let checkpoint = if want_checkpoint {
            match crate::shared::integrate(shared, &self.signer, true) {
                Ok(cp) => cp,
                Err(e) => {
                    tracing::error!(cause = %e, "no checkpoint signed: the tree could not be integrated");
                    None
                }
            }
        } else {
            None
        };
        self.observe(laid.landed.len(), took, checkpoint.is_some());
        self.durable(size, false);
        laid.answer(checkpoint.as_ref());
    }

    /// Tells the ledger the uses and withdrawals of a durable batch (and any
    /// it failed to take before). What it fails to take stays counted here,
    /// and a restart replays it from the log.
    fn apply(&mut self, counted: Counted, size: u64) {
        let Mode::Local(local) = &mut self.mode else { return };
        let nothing = counted.uses.is_empty()
            && counted.withdrawals.is_empty()
            && local.unapplied.uses.is_empty()
            && local.unapplied.withdrawals.is_empty();
        // A batch that used no consent leaves the ledger alone, for a while:
        // a restart replays from an older watermark, which costs a scan, not a write.
        if nothing && size - local.applied < WATERMARK_EVERY {
            return;
        }
        for (id, n) in counted.uses {
            *local.unapplied.uses.entry(id).or_default() += n;
        }
        for (id, at) in counted.withdrawals {
            local.unapplied.withdrawals.entry(id).or_insert(at);
        }
        match local
            .ledger
            .apply(&local.unapplied.uses, &local.unapplied.withdrawals, size)
        {
            Ok(()) => {
                local.unapplied = Unapplied::default();
                local.applied = size;
            }
            Err(e) => tracing::error!(cause = %e, "consent store did not take the log's uses; retrying"),
        }
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
