//! Request-rate limits: turns per period, globally, per tenant and per key,
//! checked before anything else of a turn (before its session is loaded and
//! its context fitted).
//!
//! Embedded, governor's GCRA limiters keep them in this process, on agentd's
//! clock. With Redis every replica shares one bucket per limit
//! ([`super::bucket`]'s script): the tenant's and the key's in one script over
//! the tenant's hash slot, the global one in a second call (another slot).
//! The checks are made in that order, global first; a turn refused by a later
//! one has still used a request of the earlier ones (as governor's separate
//! limiters do), which errs toward refusing.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::Clock as GovernorClock;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use redis::Script;

use super::bucket::{BUCKET_LUA, Limit};
use super::ledger::LedgerError;
use crate::clock::Clock;
use crate::config::cost::CostConfig;
use crate::ids::TenantId;
use crate::state::redis::{RedisPool, Retry, escape};

/// agentd's injectable clock as governor's: governor cannot read tokio's
/// paused or manual time, and the orphan rule wants a type of our own.
#[derive(Clone, Debug)]
pub struct GovClock(Clock);

impl GovernorClock for GovClock {
    type Instant = std::time::Instant;

    fn now(&self) -> Self::Instant {
        self.0.now().into_std()
    }
}

type Direct = RateLimiter<NotKeyed, InMemoryState, GovClock, NoOpMiddleware<std::time::Instant>>;

/// governor's quota for "capacity per period", the burst being the capacity.
fn quota(limit: &Limit) -> Option<Quota> {
    let capacity = u32::try_from(limit.capacity())
        .ok()
        .and_then(NonZeroU32::new)?;
    // A limit finer than a nanosecond per request is kept at one a nanosecond
    // (governor's resolution) rather than dropped.
    let interval =
        (Duration::from_millis(limit.period_ms()) / capacity.get()).max(Duration::from_nanos(1));
    Some(Quota::with_period(interval)?.allow_burst(capacity))
}

/// The request-rate limits of each kind from config.
#[derive(Clone, Debug, Default)]
pub struct Limits {
    global: Option<Limit>,
    tenants: HashMap<TenantId, Limit>,
    keys: HashMap<String, Limit>,
}

impl Limits {
    fn of(config: &CostConfig) -> Self {
        Self {
            global: config.global_request_limit(),
            tenants: config
                .tenants
                .iter()
                .filter_map(|(t, l)| Some((t.clone(), l.request_limit()?)))
                .collect(),
            keys: config
                .keys
                .iter()
                .filter_map(|(k, l)| Some((k.clone(), l.request_limit()?)))
                .collect(),
        }
    }

    fn is_empty(&self) -> bool {
        self.global.is_none() && self.tenants.is_empty() && self.keys.is_empty()
    }
}

/// Where request-rate limits are kept.
pub enum RequestLimiter {
    /// No limit configured: nothing to check.
    Off,
    /// In this process.
    Embedded {
        /// The global limiter.
        global: Option<Box<Direct>>,
        /// Per tenant.
        tenants: HashMap<TenantId, Direct>,
        /// Per key.
        keys: HashMap<String, Direct>,
        /// For the wait.
        clock: GovClock,
    },
    /// In Redis, shared by every replica.
    Redis {
        /// The connections.
        pool: Box<RedisPool>,
        /// The limits.
        limits: Box<Limits>,
        /// The tenant-and-key script.
        script: Script,
    },
}

impl std::fmt::Debug for RequestLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RequestLimiter::Off => "RequestLimiter::Off",
            RequestLimiter::Embedded { .. } => "RequestLimiter::Embedded",
            RequestLimiter::Redis { .. } => "RequestLimiter::Redis",
        })
    }
}

/// Takes one request from the buckets in KEYS whose capacity is set, all or
/// none; returns `{}` or `{name, wait_ms}`.
const CHECK: &str = r#"
local now = tonumber(ARGV[1])
local taken = {}
for i = 1, #KEYS do
  local cap = ARGV[2 * i]
  if cap ~= '' then
    local period = tonumber(ARGV[2 * i + 1])
    local wait = bucket_take(KEYS[i], tonumber(cap), period, now, 1)
    if wait > 0 then
      for _, j in ipairs(taken) do
        bucket_refund(KEYS[j], tonumber(ARGV[2 * j]), tonumber(ARGV[2 * j + 1]), now, 1)
      end
      return {tostring(i), string.format('%.0f', wait)}
    end
    table.insert(taken, i)
  end
end
return {}
"#;

fn check_direct(limiter: &Direct, clock: &GovClock) -> Option<Duration> {
    limiter
        .check()
        .err()
        .map(|not_until| not_until.wait_time_from(clock.now()))
}

impl RequestLimiter {
    /// In this process, on `clock`.
    pub fn embedded(config: &CostConfig, clock: &Clock) -> Self {
        let limits = Limits::of(config);
        if limits.is_empty() {
            return RequestLimiter::Off;
        }
        let clock = GovClock(clock.clone());
        let direct =
            |limit: &Limit| quota(limit).map(|q| RateLimiter::direct_with_clock(q, clock.clone()));
        RequestLimiter::Embedded {
            global: limits.global.as_ref().and_then(direct).map(Box::new),
            tenants: limits
                .tenants
                .iter()
                .filter_map(|(t, l)| Some((t.clone(), direct(l)?)))
                .collect(),
            keys: limits
                .keys
                .iter()
                .filter_map(|(k, l)| Some((k.clone(), direct(l)?)))
                .collect(),
            clock,
        }
    }

    /// In the Redis behind `pool`.
    pub fn redis(config: &CostConfig, pool: RedisPool) -> Self {
        let limits = Limits::of(config);
        if limits.is_empty() {
            return RequestLimiter::Off;
        }
        RequestLimiter::Redis {
            pool: Box::new(pool),
            limits: Box::new(limits),
            script: Script::new(&format!("{BUCKET_LUA}\n{CHECK}")),
        }
    }

    /// Takes one request of `key` of `tenant` at `now_ms`: `None` when every
    /// limit admits it, else the limit that refused and how long to wait.
    pub async fn check(
        &self,
        tenant: &TenantId,
        key: &str,
        now_ms: i64,
    ) -> Result<Option<(&'static str, Duration)>, LedgerError> {
        match self {
            RequestLimiter::Off => Ok(None),
            RequestLimiter::Embedded {
                global,
                tenants,
                keys,
                clock,
            } => {
                let checks = [
                    ("requests_global", global.as_deref()),
                    ("requests_tenant", tenants.get(tenant)),
                    ("requests_key", keys.get(key)),
                ];
                for (name, limiter) in checks {
                    if let Some(wait) = limiter.and_then(|l| check_direct(l, clock)) {
                        return Ok(Some((name, wait)));
                    }
                }
                Ok(None)
            }
            RequestLimiter::Redis {
                pool,
                limits,
                script,
            } => {
                let prefix = pool.prefix();
                if let Some(global) = limits.global {
                    let keys = [format!("{prefix}:g:{{global}}:rps")];
                    if let Some(wait) = run(pool, script, &keys, &[Some(global)], now_ms)
                        .await?
                        .map(|(_, w)| w)
                    {
                        return Ok(Some(("requests_global", wait)));
                    }
                }
                let (tenant_limit, key_limit) = (limits.tenants.get(tenant), limits.keys.get(key));
                if tenant_limit.is_none() && key_limit.is_none() {
                    return Ok(None);
                }
                let base = format!("{prefix}:t:{{{}}}:rps", escape(tenant.as_str()));
                let keys = [
                    format!("{base}:tenant"),
                    format!("{base}:key:{}", escape(key)),
                ];
                let refused = run(
                    pool,
                    script,
                    &keys,
                    &[tenant_limit.copied(), key_limit.copied()],
                    now_ms,
                )
                .await?;
                Ok(refused.map(|(index, wait)| {
                    (
                        if index == 1 {
                            "requests_tenant"
                        } else {
                            "requests_key"
                        },
                        wait,
                    )
                }))
            }
        }
    }
}

/// Runs the check script over `keys` with their `limits`: the 1-based index
/// of the bucket that refused and the wait, if one did.
async fn run(
    pool: &RedisPool,
    script: &Script,
    keys: &[String],
    limits: &[Option<Limit>],
    now_ms: i64,
) -> Result<Option<(usize, Duration)>, LedgerError> {
    let mut invocation = script.prepare_invoke();
    invocation.arg(now_ms);
    for (key, limit) in keys.iter().zip(limits) {
        invocation.key(key);
        match limit {
            Some(limit) => invocation.arg(limit.capacity()).arg(limit.period_ms()),
            None => invocation.arg("").arg(""),
        };
    }
    let invocation = &invocation;
    let mut lease = pool.shared();
    let answer: Vec<String> = pool
        .run(&mut lease, Retry::Never, |mut connection| async move {
            invocation.invoke_async(&mut connection).await
        })
        .await?
        .value;
    Ok(match answer.as_slice() {
        [index, wait] => Some((
            index.parse().unwrap_or(1),
            Duration::from_millis(wait.parse().unwrap_or(0)),
        )),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use figment::providers::Format as _;

    use super::*;

    fn config(toml: &str) -> CostConfig {
        let base = "time_zone = \"UTC\"\nsoft_limit_percent = 80\nrate_limits_fail_open = false\n\
                    usage_retention = \"90d\"\n";
        figment::Figment::from(figment::providers::Toml::string(&format!("{base}{toml}")))
            .extract()
            .unwrap()
    }

    fn acme() -> TenantId {
        TenantId::try_from("acme").unwrap()
    }

    async fn limited_then_refilled(limiter: &RequestLimiter, clock: &Clock) {
        let now = || clock.unix_ms();
        for _ in 0..3 {
            assert_eq!(limiter.check(&acme(), "k", now()).await.unwrap(), None);
        }
        let (name, wait) = limiter.check(&acme(), "k", now()).await.unwrap().unwrap();
        assert_eq!(name, "requests_tenant");
        // 3 an hour: one every 20 minutes.
        assert!(
            wait > Duration::from_secs(19 * 60) && wait <= Duration::from_secs(20 * 60),
            "{wait:?}"
        );
        clock.advance(wait);
        assert_eq!(limiter.check(&acme(), "k", now()).await.unwrap(), None);
        // Another tenant has its own limit (none).
        let other = TenantId::try_from("other").unwrap();
        assert_eq!(limiter.check(&other, "k", now()).await.unwrap(), None);
    }

    const HOURLY: &str = "rate_requests = 0\nrate_requests_per = \"1s\"\n\
                          [tenants.acme]\nrate_requests = 3\nrate_requests_per = \"1h\"\n";

    #[tokio::test]
    async fn embedded_limits_follow_the_injectable_clock() {
        let clock = Clock::manual(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000));
        let limiter = RequestLimiter::embedded(&config(HOURLY), &clock);
        limited_then_refilled(&limiter, &clock).await;
    }

    #[tokio::test]
    async fn redis_limits_follow_the_injectable_clock() {
        let server = agentd_test_redis::RedisServer::start().unwrap();
        let mut state = crate::config::Config::from_toml("").unwrap().state;
        state.redis_url = server.url();
        let clock = Clock::manual(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000));
        let limiter = RequestLimiter::redis(&config(HOURLY), RedisPool::new(&state).unwrap());
        limited_then_refilled(&limiter, &clock).await;
    }

    #[tokio::test]
    async fn the_global_limit_applies_to_every_tenant() {
        let clock = Clock::manual(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000));
        let limiter = RequestLimiter::embedded(
            &config("rate_requests = 2\nrate_requests_per = \"1m\"\n"),
            &clock,
        );
        let other = TenantId::try_from("other").unwrap();
        assert_eq!(limiter.check(&acme(), "a", 0).await.unwrap(), None);
        assert_eq!(limiter.check(&other, "b", 0).await.unwrap(), None);
        let refused = limiter.check(&other, "b", 0).await.unwrap().unwrap();
        assert_eq!(refused.0, "requests_global");
    }
}
