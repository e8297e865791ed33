//! Changes made by the other gateways of a shared deployment: agencies
//! (suspension, rights, quotas) and revocations, which every gateway holds
//! in memory and checks on every call.
//!
//! A gateway on a shared store polls the store's change counter every
//! [`POLL_EVERY`] and reloads both when it moved. A call is answered only
//! if the last poll that succeeded started at most [`STALE_AFTER`] ago:
//! then every change answered before that is in effect here, and a change
//! made on any gateway takes effect on all within [`STALE_AFTER`] of its
//! answer. A call that finds the last poll older waits up to [`SETTLE_FOR`]
//! for the next (on a busy machine a poll is sometimes late); a gateway
//! that still cannot poll refuses every call (`AUDIT_UNAVAILABLE`) rather
//! than act on what may be stale.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use crate::{
    error::{Error, Reason},
    service::State,
    store::ChangeFeed,
};

/// How often a gateway asks the store whether anything changed.
pub const POLL_EVERY: Duration = Duration::from_millis(20);
/// How old the last successful poll may be when a call is answered.
pub const STALE_AFTER: Duration = Duration::from_millis(100);
/// How long a call waits for a late poll before it is refused.
pub const SETTLE_FOR: Duration = Duration::from_secs(1);

/// How current the gateway's agencies and revocations are.
pub struct Freshness {
    /// `None` for a store only this gateway writes: always current.
    shared: Option<Shared>,
}

struct Shared {
    base: Instant,
    /// Microseconds after `base` at which the last successful poll started.
    polled: AtomicU64,
}

impl Freshness {
    /// For a store no other gateway writes.
    pub fn local() -> Freshness {
        Freshness { shared: None }
    }

    /// For a shared store, current as of now (the gateway just loaded everything).
    pub fn shared() -> Freshness {
        Freshness {
            shared: Some(Shared {
                base: Instant::now(),
                polled: AtomicU64::new(0),
            }),
        }
    }

    /// Refuses a call if the gateway cannot vouch that it knows every change.
    pub fn check(&self) -> Result<(), Error> {
        let Some(shared) = &self.shared else { return Ok(()) };
        if shared.last_poll().elapsed() > STALE_AFTER {
            return Err(Error::new(
                Reason::AuditUnavailable,
                "the shared store cannot be reached to confirm agencies and revocations",
            ));
        }
        Ok(())
    }

    /// Returns once the last poll is fresh, or after [`SETTLE_FOR`]; then
    /// [`Freshness::check`] decides.
    pub async fn settle(&self) {
        let Some(shared) = &self.shared else { return };
        let deadline = Instant::now() + SETTLE_FOR;
        while shared.last_poll().elapsed() > STALE_AFTER / 2 && Instant::now() < deadline {
            tokio::time::sleep(POLL_EVERY / 4).await;
        }
    }

    fn polled(&self, started: Instant) {
        if let Some(shared) = &self.shared {
            let micros = started.saturating_duration_since(shared.base).as_micros() as u64;
            shared.polled.fetch_max(micros, Ordering::AcqRel);
        }
    }
}

impl Shared {
    /// When the last successful poll started.
    fn last_poll(&self) -> Instant {
        self.base + Duration::from_micros(self.polled.load(Ordering::Acquire))
    }
}

/// Follows `feed` until the task is dropped: reloads the directory and the
/// revocations whenever the counter moves.
pub async fn follow(feed: Arc<dyn ChangeFeed>, state: Arc<State>) {
    let mut known = None;
    let mut failing = false;
    let mut tick = tokio::time::interval(POLL_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let started = Instant::now();
        let outcome = async {
            let version = feed.version().await.map_err(|e| e.to_string())?;
            if known != Some(version) {
                state.directory.reload().await.map_err(|e| e.message)?;
                state.authority.reload().await.map_err(|e| e.message)?;
                known = Some(version);
            }
            Ok::<(), String>(())
        }
        .await;
        match outcome {
            Ok(()) => {
                state.freshness.polled(started);
                if std::mem::take(&mut failing) {
                    tracing::info!("shared store reachable again: agencies and revocations current");
                }
            }
            Err(e) if !failing => {
                failing = true;
                tracing::error!(cause = %e, "cannot follow the shared store's changes: refusing calls until it can");
            }
            Err(_) => {}
        }
    }
}
