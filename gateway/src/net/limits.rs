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
//! alive. It gets more through the floors, at most `1 + (N−1)/(4N)` times
//! the quota (below 1.25×) while gateways it barely uses receive calls at
//! their floor's rate, and by a little while traffic shifts, as each
//! gateway combines its own fresh count with the others' of up to 250 ms
//! before. Each gateway's burst is its share of the agency's burst, and at
//! least one call. A gateway that cannot publish for [`LIVE`] falls back
//! to the floor, as the others stop counting it.

use std::{
    collections::HashMap,
    num::NonZeroU32,
    sync::{
        Arc, RwLock,
        atomic::{AtomicU32, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
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
/// A gateway counts as alive while its last publication is this recent
/// (the database's clock decides: [`LoadStore`]).
pub const LIVE: Duration = Duration::from_secs(2);

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
    // Rounded up: never more than the share.
    (f64::from(CELLS) / share.min(1.0)).ceil() as u32
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

    /// The rate in force for `agency`: its own, or the default (0 = unlimited).
    pub fn rate_of(&self, agency: &Agency) -> RateLimit {
        if agency.rate.per_second == 0 {
            self.default
        } else {
            agency.rate
        }
    }

    /// Takes one call from `agency`'s quota, or refuses with `RATE_LIMITED`
    /// and how long to wait.
    pub fn check(&self, agency: &Agency) -> Result<(), Error> {
        let rate = self.rate_of(agency);
        let Some(per_second) = NonZeroU32::new(rate.per_second) else {
            return Ok(());
        };
        let limiter = self.limiter(&agency.code, rate, per_second);
        limiter.calls.fetch_add(1, Ordering::Relaxed);
        let cost = limiter.cost.load(Ordering::Relaxed).clamp(1, limiter.capacity);
        let cost = NonZeroU32::new(cost).unwrap_or(NonZeroU32::MIN);
        // `limiter` holds at least one call at its cost; rebuilt when the cost outgrows it.
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

    /// `code`'s limiter, built again when its rate changed or a call's
    /// cost outgrew it (a share of a small burst: the burst is then one call).
    fn limiter(&self, code: &str, rate: RateLimit, per_second: NonZeroU32) -> Arc<Limiter> {
        let fits = |l: &Limiter| l.rate == rate && l.cost.load(Ordering::Relaxed) <= l.capacity;
        if let Some(l) = self.limiters.read().unwrap_or_else(|p| p.into_inner()).get(code)
            && fits(l)
        {
            return l.clone();
        }
        let cost = {
            let costs = self.costs.read().unwrap_or_else(|p| p.into_inner());
            costs.0.get(code).copied().unwrap_or(costs.1)
        };
        let cells = |calls: NonZeroU32| calls.saturating_mul(NonZeroU32::new(CELLS).unwrap_or(NonZeroU32::MIN));
        let burst = cells(NonZeroU32::new(rate.burst).unwrap_or(per_second));
        let capacity = burst.max(NonZeroU32::new(cost).unwrap_or(NonZeroU32::MIN));
        let limiter = Arc::new(Limiter {
            rate,
            cells: Arc::new(RateLimiter::direct(
                Quota::per_second(cells(per_second)).allow_burst(capacity),
            )),
            capacity: capacity.get(),
            cost: AtomicU32::new(cost),
            calls: AtomicU64::new(0),
        });
        let mut all = self.limiters.write().unwrap_or_else(|p| p.into_inner());
        let entry = all.entry(code.to_owned()).or_insert_with(|| limiter.clone());
        if !fits(entry) {
            limiter
                .calls
                .fetch_add(entry.calls.load(Ordering::Relaxed), Ordering::Relaxed);
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

    /// Takes the floor of every quota, for a gateway the others no longer count.
    fn apply_floor(&self, gateways: u32) {
        let floor = cost(0, 1, gateways);
        for limiter in self.limiters.read().unwrap_or_else(|p| p.into_inner()).values() {
            limiter.cost.store(floor, Ordering::Relaxed);
        }
        *self.costs.write().unwrap_or_else(|p| p.into_inner()) = (HashMap::new(), floor);
    }
}

/// Publishes this gateway's calls to `store` as `gateway` every
/// [`PUBLISH_EVERY`] and takes its share of every quota from the
/// deployment's, until the task is dropped. A gateway that cannot publish
/// for [`LIVE`] takes only the floor of each quota, as the others no longer
/// count it (and while the store is away it refuses every call anyway:
/// [`crate::changes`]).
pub async fn share(store: Arc<dyn LoadStore>, gateway: String, limiters: Arc<RateLimiters>) {
    // Each stretch since the last publication, with the calls counted in it.
    let mut stretches: std::collections::VecDeque<(Instant, HashMap<String, u64>)> = Default::default();
    let mut published = Instant::now();
    let mut gateways = 1;
    let mut failing = false;
    let mut tick = tokio::time::interval(PUBLISH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut since = Instant::now();
    loop {
        tick.tick().await;
        let now = Instant::now();
        stretches.push_back((since, limiters.take_calls()));
        since = now;
        while stretches.len() > 1 && stretches.front().is_some_and(|(start, _)| now - *start > WINDOW) {
            stretches.pop_front();
        }
        // Calls per second over the stretches kept, however long each took.
        let span = stretches
            .front()
            .map_or(WINDOW, |(start, _)| now - *start)
            .max(PUBLISH_EVERY);
        let mut own: HashMap<String, u64> = HashMap::new();
        for (_, calls) in &stretches {
            for (code, n) in calls {
                *own.entry(code.clone()).or_default() += n;
            }
        }
        own.retain(|_, n| *n > 0);
        for n in own.values_mut() {
            *n = (*n as f64 / span.as_secs_f64()).ceil() as u64;
        }
        let calls: Vec<(String, u64)> = own.iter().map(|(c, n)| (c.clone(), *n)).collect();
        match store.publish(&gateway, &calls).await {
            Ok(load) => {
                published = Instant::now();
                gateways = load.gateways;
                limiters.apply(&own, &load);
                if std::mem::take(&mut failing) {
                    tracing::info!("publishing this gateway's calls again: quotas shared");
                }
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(cause = %e, "cannot publish this gateway's calls for shared quotas");
                    failing = true;
                }
                if published.elapsed() > LIVE {
                    limiters.apply_floor(gateways);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agency(per_second: u32, burst: u32) -> Agency {
        let mut agency: Agency = (&crate::config::demo_agencies()[0]).into();
        agency.rate = RateLimit { per_second, burst };
        agency
    }

    #[test]
    fn alone_a_gateway_admits_the_burst_and_then_the_rate() {
        let limiters = RateLimiters::new(RateLimit::default());
        let a = agency(2, 5);
        for _ in 0..5 {
            limiters.check(&a).expect("within the burst");
        }
        let refused = limiters.check(&a).expect_err("over the burst");
        assert_eq!(refused.reason, Reason::RateLimited);
        let wait = refused.retry_after.unwrap();
        assert!(
            wait > Duration::from_millis(400) && wait <= Duration::from_millis(500),
            "{wait:?}"
        );
    }

    #[test]
    fn a_share_of_a_burst_of_one_is_one_call_at_the_share_of_the_rate() {
        let limiters = RateLimiters::new(RateLimit::default());
        let a = agency(1, 1);
        limiters.check(&a).expect("the first call");
        let load = Load {
            gateways: 2,
            calls: [(a.code.clone(), 10)].into(),
        };
        limiters.apply(&[(a.code.clone(), 5)].into(), &load);
        limiters
            .check(&a)
            .expect("a limiter of one call at half the rate, fresh");
        let wait = limiters
            .check(&a)
            .expect_err("half of one call per second")
            .retry_after
            .unwrap();
        assert!(
            wait > Duration::from_millis(1900) && wait <= Duration::from_secs(2),
            "{wait:?}"
        );
    }

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
