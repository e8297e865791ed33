//! Per-agency quotas (governor): one limiter per agency, so one agency's
//! flood uses up its own quota and nobody else's.

use std::{
    collections::HashMap,
    num::NonZeroU32,
    sync::{Arc, RwLock},
};

use governor::{
    DefaultDirectRateLimiter, Quota, RateLimiter,
    clock::{Clock, DefaultClock},
};

use crate::{
    error::{Error, Reason},
    policy::access::{Agency, RateLimit},
};

/// Every agency's limiter, rebuilt when its rate changes.
pub struct RateLimiters {
    default: RateLimit,
    limiters: RwLock<HashMap<String, (RateLimit, Arc<DefaultDirectRateLimiter>)>>,
    clock: DefaultClock,
}

impl RateLimiters {
    /// Agencies without a rate of their own get `default` (0 = unlimited).
    pub fn new(default: RateLimit) -> RateLimiters {
        RateLimiters {
            default,
            limiters: RwLock::new(HashMap::new()),
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
        limiter.check().map_err(|not_until| {
            let mut e = Error::new(
                Reason::RateLimited,
                format!(
                    "agency {} is over its quota of {} calls per second",
                    agency.code, rate.per_second
                ),
            );
            e.retry_after = Some(not_until.wait_time_from(self.clock.now()));
            e
        })
    }

    fn limiter(&self, code: &str, rate: RateLimit, per_second: NonZeroU32) -> Arc<DefaultDirectRateLimiter> {
        if let Some((r, l)) = self.limiters.read().unwrap_or_else(|p| p.into_inner()).get(code)
            && *r == rate
        {
            return l.clone();
        }
        let burst = NonZeroU32::new(rate.burst).unwrap_or(per_second);
        let limiter = Arc::new(RateLimiter::direct(Quota::per_second(per_second).allow_burst(burst)));
        let mut all = self.limiters.write().unwrap_or_else(|p| p.into_inner());
        let entry = all.entry(code.to_owned()).or_insert_with(|| (rate, limiter.clone()));
        if entry.0 != rate {
            *entry = (rate, limiter);
        }
        entry.1.clone()
    }
}
