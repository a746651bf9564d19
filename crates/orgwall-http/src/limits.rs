//! In-process rate limits (governor). Login and signup are limited per client IP and per
//! account; a limited request is answered 429 `rate_limited` with `Retry-After`.

use crate::problem::Problem;
use axum::http::StatusCode;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use std::num::NonZeroU32;

/// The limiters.
pub struct Limits {
    /// Login/signup attempts per client IP.
    pub auth_per_ip: DefaultKeyedRateLimiter<String>,
    /// Login attempts per account (email).
    pub auth_per_account: DefaultKeyedRateLimiter<String>,
}

fn per_minute(n: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(n.max(1)).unwrap_or(NonZeroU32::MIN))
}

impl Limits {
    /// Limits with the given per-minute quotas.
    pub fn new(per_ip: u32, per_account: u32) -> Self {
        Limits {
            auth_per_ip: DefaultKeyedRateLimiter::keyed(per_minute(per_ip)),
            auth_per_account: DefaultKeyedRateLimiter::keyed(per_minute(per_account)),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::new(60, 10)
    }
}

/// Checks one keyed limiter.
pub fn check(limiter: &DefaultKeyedRateLimiter<String>, key: &str) -> Result<(), Problem> {
    limiter.check_key(&key.to_owned()).map_err(|not_until| {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "Too many attempts; try again later.",
        )
        .with_header("retry-after", secs.max(1).to_string())
    })
}
