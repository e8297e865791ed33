//! Per-agency quotas (governor): one limiter per agency, so one agency's
//! flood uses up its own quota and nobody else's.
//!
//! # Quotas shared between gateways
//! The gateways of a shared store divide each agency's quota between them
//! by demand. Every [`PUBLISH_EVERY`] each publishes the calls it saw per
//! agency over the last [`WINDOW`] (admitted or not) and reads the
//! deployment's totals ([`LoadStore`]); its share of an agency's quota is
//! its part of that agency's calls, at least [`floor`] so that an agency
//! whose traffic moves to this gateway is not refused outright, and `1/N`
//! for an agency nobody is calling. A share is applied by the cost of a
//! call: the limiter holds [`CELLS`] cells per allowed call, and a call
//! takes `CELLS / share` of them, so the limiter keeps its state (and no
//! burst is handed out again) when the share moves.
//!
//! How approximate: with steady traffic the deployment admits the quota
//! within a few per cent (PERFORMANCE.md has the measured figure). When an
//! agency's traffic moves between gateways it gets less than its quota for
//! up to one [`WINDOW`] while the shares catch up, and a gateway that dies
//! keeps its share in the others' view for the two seconds it counts as
//! alive. It gets more only through the floors: at most `1 + (N−1)/(4N)`
//! times the quota, below 1.25×, and only while gateways it barely uses
//! receive calls at their floor's rate.

use std::{
    collections::HashMap,
    num::NonZeroU32,
    sync::{
        Arc, RwLock,
        atomic::{AtomicU32, AtomicU64, Ordering},
    },
    time::Duration,
};

use governor::{
    DefaultDirectRateLimiter, Quota, RateLimiter,
    clock::{Clock, DefaultClock},
};

use crate::{
    error::{Error, Reason},
    policy::access::{Agency, RateLimit},
    store::{Load, LoadStore},
};

/// Cells per call a gateway with the whole quota spends.
pub const CELLS: u32 = 64;
/// How often a gateway of a shared store publishes its calls.
pub const PUBLISH_EVERY: Duration = Duration::from_millis(250);
/// The calls published are those of this last stretch of time.
pub const WINDOW: Duration = Duration::from_secs(1);
const BUCKETS: usize = (WINDOW.as_millis() / PUBLISH_EVERY.as_millis()) as usize;

/// One agency's limiter on this gateway.
struct Limiter {
    rate: RateLimit,
    cells: Arc<DefaultDirectRateLimiter>,
    /// The most cells one call may take: the limiter's whole burst.
    capacity: u32,
    /// Cells a call takes now: `CELLS` over this gateway's share.
    cost: AtomicU32,
    /// Calls since the last publication.
    calls: AtomicU64,
}

/// Every agency's limiter, rebuilt when its rate changes.
pub struct RateLimiters {
    default: RateLimit,
    limiters: RwLock<HashMap<String, Arc<Limiter>>>,
    /// The shares last computed, as costs: per agency, and for an agency
    /// not among them.
    costs: RwLock<(HashMap<String, u32>, u32)>,
    clock: DefaultClock,
}

/// The least share of an agency's quota a gateway among `gateways` takes.
pub fn floor(gateways: u32) -> f64 {
    1.0 / (4.0 * f64::from(gateways.max(1)))
}

/// The cost of a call on a gateway that saw `own` of the `total` calls
/// per second an agency made on the `gateways` of the deployment.
fn cost(own: u64, total: u64, gateways: u32) -> u32 {
    let share = if total == 0 {
        1.0 / f64::from(gateways.max(1))
    } else {
        (own as f64 / total as f64).max(floor(gateways))
    };
    (f64::from(CELLS) / share.min(1.0)).round() as u32
}

impl RateLimiters {
    /// Agencies without a rate of their own get `default` (0 = unlimited).
    pub fn new(default: RateLimit) -> RateLimiters {
        RateLimiters {
            default,
            limiters: RwLock::new(HashMap::new()),
            costs: RwLock::new((HashMap::new(), CELLS)),
            clock: DefaultClock::default(),
        }
    }

    /// Takes one call from `agency`'s quota, or refuses with `RATE_LIMITED`
    /// and how long to wait.
    pub fn check(&self, agency: &Agency) -> Result<(), Error> {
        let rate = if agency.rate.per_second == 0 {
            self.default
        } else {
            agency.rate
        };
        let Some(per_second) = NonZeroU32::new(rate.per_second) else {
            return Ok(());
        };
        let limiter = self.limiter(&agency.code, rate, per_second);
        limiter.calls.fetch_add(1, Ordering::Relaxed);
        let cost = limiter.cost.load(Ordering::Relaxed).clamp(1, limiter.capacity);
        let cost = NonZeroU32::new(cost).unwrap_or(NonZeroU32::MIN);
        match limiter.cells.check_n(cost) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => {
                let mut e = Error::new(
                    Reason::RateLimited,
                    format!(
                        "agency {} is over its quota of {} calls per second",
                        agency.code, rate.per_second
                    ),
                );
                e.retry_after = Some(not_until.wait_time_from(self.clock.now()));
                Err(e)
            }
            // The cost is clamped to the capacity: never more than the burst.
            Err(_) => unreachable!("a call's cost is at most the limiter's capacity"),
        }
    }

    fn limiter(&self, code: &str, rate: RateLimit, per_second: NonZeroU32) -> Arc<Limiter> {
        if let Some(l) = self.limiters.read().unwrap_or_else(|p| p.into_inner()).get(code)
            && l.rate == rate
        {
            return l.clone();
        }
        let burst = NonZeroU32::new(rate.burst).unwrap_or(per_second);
        let cells_per_second = per_second.saturating_mul(NonZeroU32::new(CELLS).unwrap_or(NonZeroU32::MIN));
        let capacity = burst.saturating_mul(NonZeroU32::new(CELLS).unwrap_or(NonZeroU32::MIN));
        let costs = self.costs.read().unwrap_or_else(|p| p.into_inner());
        let limiter = Arc::new(Limiter {
            rate,
            cells: Arc::new(RateLimiter::direct(
                Quota::per_second(cells_per_second).allow_burst(capacity),
            )),
            capacity: capacity.get(),
            cost: AtomicU32::new(costs.0.get(code).copied().unwrap_or(costs.1)),
            calls: AtomicU64::new(0),
        });
        drop(costs);
        let mut all = self.limiters.write().unwrap_or_else(|p| p.into_inner());
        let entry = all.entry(code.to_owned()).or_insert_with(|| limiter.clone());
        if entry.rate != rate {
            *entry = limiter;
        }
        entry.clone()
    }

    /// The calls each agency made here since the last call of this, which resets them.
    fn take_calls(&self) -> HashMap<String, u64> {
        let all = self.limiters.read().unwrap_or_else(|p| p.into_inner());
        all.iter()
            .map(|(code, l)| (code.clone(), l.calls.swap(0, Ordering::Relaxed)))
            .collect()
    }

    /// Sets each agency's share from this gateway's calls per second `own` and the deployment's `load`.
    fn apply(&self, own: &HashMap<String, u64>, load: &Load) {
        let costs: HashMap<String, u32> = load
            .calls
            .iter()
            .map(|(code, total)| {
                let mine = own.get(code).copied().unwrap_or(0);
                (code.clone(), cost(mine, *total, load.gateways))
            })
            .collect();
        let idle = cost(0, 0, load.gateways);
        for (code, limiter) in self.limiters.read().unwrap_or_else(|p| p.into_inner()).iter() {
            limiter
                .cost
                .store(costs.get(code).copied().unwrap_or(idle), Ordering::Relaxed);
        }
        *self.costs.write().unwrap_or_else(|p| p.into_inner()) = (costs, idle);
    }
}

/// Publishes this gateway's calls to `store` as `gateway` every
/// [`PUBLISH_EVERY`] and takes its share of every quota from the
/// deployment's, until the task is dropped. While the store cannot be
/// reached the last shares stay (and the gateway refuses calls anyway:
/// [`crate::changes`]).
pub async fn share(store: Arc<dyn LoadStore>, gateway: String, limiters: Arc<RateLimiters>) {
    let mut buckets: Vec<HashMap<String, u64>> = vec![HashMap::new(); BUCKETS];
    let mut tick = tokio::time::interval(PUBLISH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for turn in 0.. {
        tick.tick().await;
        buckets[turn % BUCKETS] = limiters.take_calls();
        let mut own: HashMap<String, u64> = HashMap::new();
        for bucket in &buckets {
            for (code, n) in bucket {
                *own.entry(code.clone()).or_default() += n;
            }
        }
        own.retain(|_, n| *n > 0);
        let published: Vec<(String, u64)> = own.iter().map(|(c, n)| (c.clone(), *n)).collect();
        match store.publish(&gateway, &published).await {
            Ok(load) => limiters.apply(&own, &load),
            Err(e) => tracing::debug!(cause = %e, "cannot publish this gateway's calls"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_share_follows_demand_within_its_floor() {
        assert_eq!(cost(10, 10, 1), CELLS, "the only gateway has the whole quota");
        assert_eq!(cost(0, 0, 2), 2 * CELLS, "nobody calling: an equal split");
        assert_eq!(cost(50, 100, 2), 2 * CELLS);
        assert_eq!(cost(25, 100, 2), 4 * CELLS);
        assert_eq!(cost(0, 100, 2), 8 * CELLS, "no calls here: the floor of 1/(4N)");
        assert_eq!(cost(0, 100, 3), 12 * CELLS);
        assert_eq!(cost(200, 100, 2), CELLS, "never more than the whole quota");
    }
}
