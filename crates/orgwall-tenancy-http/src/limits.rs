//! Rate limits: per org and per user (or API key) within an org on every org route, per
//! client IP and per account on login and signup.
//!
//! The algorithm is GCRA (a leaky bucket kept as one "theoretical arrival time" per key),
//! run in process by default and in Redis (one Lua script, atomic, clocked by Redis) when
//! `REDIS_URL` is set, so several server instances enforce one limit. The two
//! implementations are the same arithmetic. If Redis fails or is slow, the request is
//! decided by the in-process limiter and a warning is logged (at most once a minute):
//! an outage degrades the limit to per instance, never to an outage.
//!
//! A limited request is 429 `rate_limited` with `Retry-After`; every limited route also
//! answers `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset`.

use crate::problem::Problem;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The limits in force.
#[derive(Debug, Clone)]
pub struct LimitConfig {
    /// Login and signup attempts per client IP per minute.
    pub login_per_ip: u32,
    /// Login attempts per account per minute.
    pub login_per_account: u32,
    /// Requests per user (or API key) within one org per minute.
    pub user_per_minute: u32,
    /// Requests per org per minute when neither the org nor its plan says.
    pub org_default_per_minute: u32,
}

impl Default for LimitConfig {
    fn default() -> Self {
        LimitConfig {
            login_per_ip: 60,
            login_per_account: 10,
            user_per_minute: 600,
            org_default_per_minute: 1200,
        }
    }
}

/// One decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// The limit per minute.
    pub limit: u32,
    /// Requests left in the current burst.
    pub remaining: u64,
    /// Seconds until the bucket is full again (allowed) or until a retry may pass (denied).
    pub reset_secs: u64,
}

/// GCRA parameters: one request every `interval`, bursts up to `limit`.
fn params(limit_per_minute: u32) -> (u64, u64) {
    // Microsecond resolution: above 60 million a minute the interval would be zero.
    let limit = u64::from(limit_per_minute.clamp(1, 60_000_000));
    let interval = 60_000_000 / limit; // microseconds, >= 1
    (interval, interval * limit)
}

/// The in-process limiter.
#[derive(Default)]
struct Local {
    tat: Mutex<HashMap<String, u64>>,
    calls: AtomicU64,
}

fn now_micros(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX)
}

impl Local {
    fn check(&self, key: &str, limit: u32, now: u64) -> Decision {
        let (interval, tolerance) = params(limit);
        let Ok(mut map) = self.tat.lock() else {
            return Decision {
                allowed: true,
                limit,
                remaining: 0,
                reset_secs: 0,
            };
        };
        // Forget idle keys now and then, so the map stays the size of the active set.
        if self.calls.fetch_add(1, Ordering::Relaxed) % 10_000 == 9_999 {
            map.retain(|_, t| *t > now);
        }
        let tat = map.get(key).copied().unwrap_or(now).max(now);
        let new_tat = tat + interval;
        let allow_at = new_tat.saturating_sub(tolerance);
        if allow_at > now {
            return Decision {
                allowed: false,
                limit,
                remaining: 0,
                reset_secs: (allow_at - now).div_ceil(1_000_000),
            };
        }
        map.insert(key.to_owned(), new_tat);
        Decision {
            allowed: true,
            limit,
            remaining: (tolerance - (new_tat - now)) / interval,
            reset_secs: (new_tat - now).div_ceil(1_000_000),
        }
    }
}

const GCRA_LUA: &str = r"
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - tolerance
if allow_at > now then
  return {0, 0, allow_at - now}
end
redis.call('SET', KEYS[1], new_tat, 'PX', math.floor((new_tat - now) / 1000) + 1000)
return {1, math.floor((tolerance - (new_tat - now)) / interval), new_tat - now}
";

/// The limiters.
pub struct Limits {
    /// What is in force.
    pub config: LimitConfig,
    local: Local,
    start: Instant,
    redis: Option<redis::aio::ConnectionManager>,
    script: redis::Script,
    last_warning: AtomicU64,
}

impl Limits {
    /// In-process limits.
    pub fn new(config: LimitConfig) -> Self {
        Limits {
            config,
            local: Local::default(),
            start: Instant::now(),
            redis: None,
            script: redis::Script::new(GCRA_LUA),
            last_warning: AtomicU64::new(0),
        }
    }

    /// Limits shared through Redis at `url`. Fails if the URL is invalid; an unreachable
    /// server at start is only a warning (the local limiter stands in until it answers).
    pub async fn with_redis(config: LimitConfig, url: &str) -> Result<Self, String> {
        let client = redis::Client::open(url).map_err(|e| format!("invalid REDIS_URL: {e}"))?;
        let cfg = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Duration::from_millis(500))
            .set_response_timeout(Duration::from_millis(250))
            .set_number_of_retries(1);
        let mut me = Limits::new(config);
        match tokio::time::timeout(
            Duration::from_secs(2),
            redis::aio::ConnectionManager::new_with_config(client, cfg),
        )
        .await
        {
            Ok(Ok(conn)) => me.redis = Some(conn),
            Ok(Err(e)) => return Err(format!("cannot connect to Redis at {url}: {e}")),
            Err(_) => return Err(format!("cannot connect to Redis at {url}: timed out")),
        }
        Ok(me)
    }

    /// Whether limits are shared through Redis.
    pub fn shared(&self) -> bool {
        self.redis.is_some()
    }

    fn warn(&self, e: &str) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let last = self.last_warning.load(Ordering::Relaxed);
        if now >= last + 60
            && self
                .last_warning
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                error = e,
                "Redis rate limiter unavailable; using the in-process limiter"
            );
        }
    }

    /// Decides one request for `key` at `limit` per minute.
    pub async fn check(&self, key: &str, limit: u32) -> Decision {
        if let Some(conn) = &self.redis {
            let (interval, tolerance) = params(limit);
            let mut conn = conn.clone();
            let mut invocation = self.script.key(format!("orgwall:rl:{key}"));
            invocation.arg(interval).arg(tolerance);
            let call = invocation.invoke_async::<Vec<i64>>(&mut conn);
            match tokio::time::timeout(Duration::from_millis(300), call).await {
                Ok(Ok(v)) if v.len() == 3 => {
                    let get = |i: usize| v.get(i).copied().unwrap_or(0).max(0).unsigned_abs();
                    return Decision {
                        allowed: get(0) == 1,
                        limit,
                        remaining: get(1),
                        reset_secs: get(2).div_ceil(1_000_000),
                    };
                }
                Ok(Ok(v)) => self.warn(&format!("unexpected reply {v:?}")),
                Ok(Err(e)) => self.warn(&e.to_string()),
                Err(_) => self.warn("timed out"),
            }
        }
        self.local.check(key, limit, now_micros(self.start))
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::new(LimitConfig::default())
    }
}

/// The standard headers for a decision.
pub fn headers(d: &Decision, h: &mut HeaderMap) {
    for (name, v) in [
        ("ratelimit-limit", u64::from(d.limit)),
        ("ratelimit-remaining", d.remaining),
        ("ratelimit-reset", d.reset_secs),
    ] {
        if let Ok(v) = HeaderValue::from_str(&v.to_string()) {
            h.insert(name, v);
        }
    }
}

/// 429 for a denied decision.
pub fn refuse(d: &Decision) -> Problem {
    Problem::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        "Too many requests; try again later.",
    )
    .with_header("retry-after", d.reset_secs.max(1).to_string())
    .with_header("ratelimit-limit", d.limit.to_string())
    .with_header("ratelimit-remaining", "0".to_string())
    .with_header("ratelimit-reset", d.reset_secs.max(1).to_string())
}

/// Checks one key; `Err` is the 429 to answer.
pub async fn check(limits: &Limits, key: &str, limit: u32) -> Result<Decision, Problem> {
    let d = limits.check(key, limit).await;
    if d.allowed {
        Ok(d)
    } else {
        Err(refuse(&d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcra_allows_the_limit_then_refuses_then_refills() {
        let l = Local::default();
        let mut t = 0;
        for i in 0..10 {
            let d = l.check("k", 10, t);
            assert!(d.allowed, "request {i}");
            assert_eq!(d.remaining, 9 - i);
        }
        let d = l.check("k", 10, t);
        assert!(!d.allowed);
        assert_eq!(d.reset_secs, 6, "one request every 6 s at 10/min");
        t += 6_000_000;
        assert!(l.check("k", 10, t).allowed);
        assert!(!l.check("k", 10, t).allowed);
        // Keys are independent.
        assert!(l.check("other", 10, t).allowed);
    }

    // Regression: a limit above 60 million a minute made the interval zero and the
    // remaining-count division panic.
    #[test]
    fn huge_limits_do_not_divide_by_zero() {
        let l = Local::default();
        for limit in [60_000_000, 100_000_000, u32::MAX] {
            assert!(l.check(&format!("k{limit}"), limit, 0).allowed);
        }
    }
}
