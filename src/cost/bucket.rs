//! The token bucket behind the rate limits (tokens per minute, requests per
//! period): [`Bucket`] for the embedded backend, and [`BUCKET_LUA`] for the
//! Redis scripts, with the same integer steps so both backends decide alike.
//!
//! Hand-written because it must give tokens back: the tokens-per-minute
//! reservation is an estimate, corrected once the call reports its usage, and
//! governor (the crate agentd uses for the request-rate limits) has no way to
//! return cells. Without a refund every over-estimate would throttle the tenant
//! for a whole window.
//!
//! A limit is "C per P": at most C tokens at once (the burst), refilled at C per
//! P ms. The level is counted in token·ms (tokens × P), so every step is an
//! exact integer: a full bucket holds C·P and each millisecond adds C. A take
//! of n ≤ C tokens needs a level of n·P; a take of more than C passes only when
//! the bucket is full and leaves it in debt. Debt is bounded by one bucket
//! (level ≥ −C·P). A clock that goes backwards changes nothing, and an absent
//! bucket is full. Nothing here reads a clock: `now_ms` is passed in.
//!
//! Lua 5.1 numbers are doubles, exact for integers below 2^53. No value here
//! exceeds 3·C·P in magnitude, so [`Limit::new`] requires C·P ≤ 2^51 (e.g. 37
//! billion tokens per minute); `now_ms` must also stay below 2^53 (Unix time in
//! milliseconds is about 2^41).

use std::time::Duration;

/// The largest C·P a [`Limit`] accepts: three times it stays below 2^53.
const MAX_FULL: u64 = 1 << 51;

/// A validated rate limit: `capacity` tokens per `period`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    capacity: i64,
    period_ms: i64,
}

impl Limit {
    /// `capacity` tokens per `period`: capacity ≥ 1, period a whole number of
    /// milliseconds ≥ 1, and capacity × period in ms ≤ 2^51 (Lua exactness).
    pub fn new(capacity: u64, period: Duration) -> Result<Self, String> {
        let too_large = || {
            format!(
                "{capacity} per {period:?} is too large (capacity × milliseconds must be at most 2^51)"
            )
        };
        if capacity == 0 {
            return Err("a rate limit's capacity must be at least 1".into());
        }
        if period.is_zero() || !period.subsec_nanos().is_multiple_of(1_000_000) {
            return Err(format!(
                "a rate limit's period must be a whole number of milliseconds, not {period:?}"
            ));
        }
        let period_ms = u64::try_from(period.as_millis()).map_err(|_| too_large())?;
        match capacity.checked_mul(period_ms) {
            // Both factors are at most 2^51 here, so they fit an i64.
            Some(full) if full <= MAX_FULL => Ok(Self {
                capacity: capacity as i64,
                period_ms: period_ms as i64,
            }),
            _ => Err(too_large()),
        }
    }

    /// C: the burst, and the tokens refilled per period.
    pub fn capacity(&self) -> u64 {
        self.capacity as u64
    }

    /// P in milliseconds.
    pub fn period_ms(&self) -> u64 {
        self.period_ms as u64
    }

    fn full(&self) -> i64 {
        self.capacity * self.period_ms
    }

    /// `n` tokens in level units, counting at most `max` tokens (so no overflow).
    fn units(&self, n: u64, max: i64) -> i64 {
        n.min(max as u64) as i64 * self.period_ms
    }
}

/// Whether a take may pass now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Take {
    /// It passes.
    Admitted,
    /// It would pass after this wait (counted from the latest time the bucket
    /// has seen), if nothing else touched the bucket.
    Wait(Duration),
}

impl Take {
    /// The outcome the Lua functions return as a number: 0 or the wait in ms.
    pub fn from_wait_ms(wait_ms: u64) -> Self {
        match wait_ms {
            0 => Self::Admitted,
            ms => Self::Wait(Duration::from_millis(ms)),
        }
    }
}

/// One bucket's state: its level in token·ms and the time it was last refilled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bucket {
    level: i64,
    last_ms: i64,
}

impl Bucket {
    /// A full bucket, as every new one starts.
    pub fn full(limit: &Limit, now_ms: i64) -> Self {
        Self {
            level: limit.full(),
            last_ms: now_ms,
        }
    }

    /// This bucket refilled up to `now_ms`; an earlier `now_ms` changes nothing.
    fn refilled(self, limit: &Limit, now_ms: i64) -> Self {
        // Two periods refill even an indebted bucket, so the cap changes no
        // result and keeps the product small.
        let elapsed = now_ms
            .saturating_sub(self.last_ms)
            .clamp(0, 2 * limit.period_ms);
        Self {
            level: (self.level + elapsed * limit.capacity).min(limit.full()),
            last_ms: self.last_ms.max(now_ms),
        }
    }

    /// Whether `n` tokens could be taken at `now_ms`, without taking them
    /// (to check several buckets before taking from any).
    pub fn check(&self, limit: &Limit, now_ms: i64, n: u64) -> Take {
        let level = self.refilled(limit, now_ms).level;
        // More than C passes once the bucket is full.
        let need = limit.units(n, limit.capacity);
        if level >= need {
            return Take::Admitted;
        }
        // Positive, and at most 2·C·P: the cast and the division are exact.
        Take::from_wait_ms(((need - level) as u64).div_ceil(limit.capacity as u64))
    }

    /// Takes `n` tokens if [`Bucket::check`] admits them; on a wait the
    /// bucket is left as it was.
    pub fn try_take(&mut self, limit: &Limit, now_ms: i64, n: u64) -> Take {
        let take = self.check(limit, now_ms, n);
        if take == Take::Admitted {
            self.force_take(limit, now_ms, n);
        }
        take
    }

    /// Gives back `n` tokens (what a call's estimate took beyond its usage);
    /// the level never passes full.
    pub fn refund(&mut self, limit: &Limit, now_ms: i64, n: u64) {
        let now = self.refilled(limit, now_ms);
        let level = (now.level + limit.units(n, 2 * limit.capacity)).min(limit.full());
        *self = Self { level, ..now };
    }

    /// Takes `n` tokens whatever the level (usage beyond the estimate), down
    /// to a debt of one full bucket, which later takes wait out.
    pub fn force_take(&mut self, limit: &Limit, now_ms: i64, n: u64) {
        let now = self.refilled(limit, now_ms);
        let level = (now.level - limit.units(n, 2 * limit.capacity)).max(-limit.full());
        *self = Self { level, ..now };
    }
}

/// Lua for Redis scripts to prepend: `local function`s only, mirroring
/// [`Bucket`] step for step on a hash with fields `level` and `last`.
///
/// `cap`, `period`, `now` and `n` are Lua numbers (`tonumber` of the decimal
/// strings in ARGV: [`Limit::capacity`], [`Limit::period_ms`]).
/// - `bucket_wait(key, cap, period, now, n)`: 0 if `n` could be taken, else the
///   wait in ms ([`Take::from_wait_ms`]); writes nothing.
/// - `bucket_take(...)`: the same, and takes `n` when it returns 0.
/// - `bucket_refund(...)`, `bucket_force(...)`: [`Bucket::refund`] and
///   [`Bucket::force_take`]; they return nothing.
/// - `bucket_ttl(cap, period, level)`: the key's expiry after a write.
///
/// Each write sets the key to expire 1 s after the bucket would be full again,
/// so idle buckets vanish (absent means full). The 1 s covers that much clock
/// skew between replicas: one lagging further may see a bucket full that early.
/// Numbers are written with `%.0f`, exact for integers below 2^53: `tostring`
/// keeps 14 digits, and how `redis.call` turns a number into a string has
/// changed between Redis versions (scientific notation, redis/redis#13115).
pub const BUCKET_LUA: &str = r#"
local function bucket_ttl(cap, period, level)
  return math.ceil((cap * period - level) / cap) + 1000
end

local function bucket_refilled(key, cap, period, now)
  local full = cap * period
  local state = redis.call('HMGET', key, 'level', 'last')
  local level, last = tonumber(state[1]), tonumber(state[2])
  if level == nil or last == nil then level, last = full, now end
  local elapsed = math.min(math.max(now - last, 0), 2 * period)
  return math.min(full, level + elapsed * cap), math.max(last, now), full
end

local function bucket_store(key, cap, period, level, last)
  redis.call('HSET', key, 'level', string.format('%.0f', level), 'last', string.format('%.0f', last))
  redis.call('PEXPIRE', key, string.format('%.0f', bucket_ttl(cap, period, level)))
end

local function bucket_wait(key, cap, period, now, n)
  local level = bucket_refilled(key, cap, period, now)
  local need = math.min(n, cap) * period
  if level >= need then return 0 end
  -- Both below 2^53: the rounded quotient never crosses an integer, so ceil is exact.
  return math.ceil((need - level) / cap)
end

local function bucket_force(key, cap, period, now, n)
  local level, last, full = bucket_refilled(key, cap, period, now)
  bucket_store(key, cap, period, math.max(-full, level - math.min(n, 2 * cap) * period), last)
end

local function bucket_take(key, cap, period, now, n)
  local wait = bucket_wait(key, cap, period, now, n)
  if wait == 0 then bucket_force(key, cap, period, now, n) end
  return wait
end

local function bucket_refund(key, cap, period, now, n)
  local level, last, full = bucket_refilled(key, cap, period, now)
  bucket_store(key, cap, period, math.min(full, level + math.min(n, 2 * cap) * period), last)
end
"#;

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_700_000_000_000;

    fn limit(capacity: u64, period_ms: u64) -> Limit {
        Limit::new(capacity, Duration::from_millis(period_ms)).unwrap()
    }

    fn wait(ms: u64) -> Take {
        Take::Wait(Duration::from_millis(ms))
    }

    /// Takes one token at a time until one must wait: how many passed, and the wait.
    fn drain(bucket: &mut Bucket, limit: &Limit, now: i64) -> (u64, Take) {
        for taken in 0..1_000 {
            if let wait @ Take::Wait(_) = bucket.try_take(limit, now, 1) {
                return (taken, wait);
            }
        }
        panic!("the bucket never ran dry: {bucket:?}");
    }

    #[test]
    fn limits_are_validated() {
        let second = Duration::from_secs(1);
        assert!(Limit::new(0, second).is_err());
        assert!(Limit::new(1, Duration::ZERO).is_err());
        assert!(Limit::new(1, Duration::from_micros(1500)).is_err());
        assert!(Limit::new(MAX_FULL + 1, Duration::from_millis(1)).is_err());
        assert!(Limit::new(1, Duration::from_secs(u64::MAX)).is_err());
        assert!(Limit::new(u64::MAX, second).is_err());
        let largest = Limit::new(MAX_FULL / 1000, second).unwrap();
        assert_eq!(
            (largest.capacity(), largest.period_ms()),
            (MAX_FULL / 1000, 1000)
        );
    }

    #[test]
    fn a_fresh_bucket_is_full() {
        let l = limit(10, 1_000);
        let mut b = Bucket::full(&l, T0);
        assert_eq!(b.check(&l, T0, 10), Take::Admitted);
        b.refund(&l, T0, 5);
        assert_eq!(b, Bucket::full(&l, T0));
        assert_eq!(drain(&mut b, &l, T0), (10, wait(100)));
    }

    #[test]
    fn a_full_bucket_admits_its_capacity_then_waits_exactly() {
        // 7 per minute: a token every 8571.43 ms, so waits round up.
        let l = limit(7, 60_000);
        let mut b = Bucket::full(&l, T0);
        assert_eq!(drain(&mut b, &l, T0), (7, wait(8_572)));
        assert_eq!(b.check(&l, T0, 3), wait(25_715)); // ceil(3 · 60000 / 7)
        assert_eq!(b.check(&l, T0 + 8_571, 1), wait(1));
        assert_eq!(b.try_take(&l, T0 + 8_572, 1), Take::Admitted);
        // 8572 · 7 − 60000 = 4 left over: ceil(59996 / 7) for the next.
        assert_eq!(b.check(&l, T0 + 8_572, 1), wait(8_571));
    }

    #[test]
    fn refunds_restore_tokens_but_never_pass_full() {
        let l = limit(10, 60_000);
        let mut b = Bucket::full(&l, T0);
        assert_eq!(b.try_take(&l, T0, 8), Take::Admitted);
        b.refund(&l, T0, 6);
        assert_eq!(drain(&mut b, &l, T0).0, 8);
        b.refund(&l, T0, 11);
        assert_eq!(b, Bucket::full(&l, T0));
        b.refund(&l, T0, u64::MAX);
        assert_eq!(b, Bucket::full(&l, T0));
    }

    #[test]
    fn a_refund_after_the_refill_stays_capped() {
        let l = limit(10, 60_000);
        let mut b = Bucket::full(&l, T0);
        assert_eq!(b.try_take(&l, T0, 5), Take::Admitted);
        b.refund(&l, T0 + 30_000, 5);
        assert_eq!(b, Bucket::full(&l, T0 + 30_000));
        assert_eq!(drain(&mut b, &l, T0 + 30_000).0, 10);
    }

    #[test]
    fn debt_lengthens_the_next_wait_and_is_bounded() {
        let l = limit(10, 60_000); // a token every 6 s
        let mut b = Bucket::full(&l, T0);
        b.force_take(&l, T0, 13);
        assert_eq!(b.check(&l, T0, 1), wait(4 * 6_000));
        b.force_take(&l, T0, u64::MAX);
        assert_eq!(b.level, -l.full());
        assert_eq!(b.check(&l, T0, 1), wait(11 * 6_000));
        assert_eq!(b.check(&l, T0, 10), wait(20 * 6_000));
    }

    #[test]
    fn a_clock_going_backwards_changes_nothing() {
        let l = limit(10, 60_000);
        let mut b = Bucket::full(&l, T0);
        let (_, waiting) = drain(&mut b, &l, T0);
        let before = b;
        assert_eq!(b.try_take(&l, T0 - 30_000, 1), waiting);
        assert_eq!(b, before);
        // A refund still counts, at the bucket's own time.
        b.refund(&l, T0 - 30_000, 1);
        assert_eq!(
            b,
            Bucket {
                level: 60_000,
                last_ms: T0
            }
        );
        assert_eq!(b.check(&l, T0 + 5_999, 2), wait(1));
        assert_eq!(b.check(&l, T0 + 6_000, 2), Take::Admitted);
    }

    #[test]
    fn an_oversize_take_needs_a_full_bucket_and_leaves_debt() {
        let l = limit(10, 60_000);
        let mut b = Bucket::full(&l, T0);
        assert_eq!(b.try_take(&l, T0, 1), Take::Admitted);
        assert_eq!(b.try_take(&l, T0, 15), wait(6_000)); // until full, not 15 tokens
        assert_eq!(b.try_take(&l, T0 + 6_000, 15), Take::Admitted);
        assert_eq!(b.check(&l, T0 + 6_000, 1), wait(6 * 6_000));
        let mut b = Bucket::full(&l, T0);
        assert_eq!(b.try_take(&l, T0, u64::MAX), Take::Admitted);
        assert_eq!(b.level, -l.full());
    }

    #[test]
    fn random_operations_keep_the_bounds() {
        let mut rng = fastrand::Rng::with_seed(16);
        for _ in 0..200 {
            let l = limit(rng.u64(1..=50), rng.u64(1..=10_000));
            let (c, p, full) = (l.capacity, l.period_ms, l.full());
            let mut b = Bucket::full(&l, T0);
            let (mut now, mut latest, mut admitted, mut refunded) = (T0, T0, 0, 0);
            for _ in 0..500 {
                now += rng.i64(-p / 4..=p / 2);
                latest = latest.max(now);
                let n = rng.u64(0..=c as u64);
                match rng.u8(0..3) {
                    0 => {
                        b.refund(&l, now, n);
                        refunded += n as i64;
                    }
                    1 => b.force_take(&l, now, n / 2),
                    _ => match b.try_take(&l, now, n) {
                        Take::Admitted => admitted += n as i64,
                        Take::Wait(w) => {
                            // Exact: one millisecond less would not do.
                            let (at, w) = (now.max(b.last_ms), w.as_millis() as i64);
                            assert_eq!(b.check(&l, at + w - 1, n), wait(1));
                            assert_eq!(b.check(&l, at + w, n), Take::Admitted);
                        }
                    },
                }
                assert!((-full..=full).contains(&b.level), "{l:?} {b:?}");
                // Takes of at most C get the burst plus the refill plus what
                // came back, never more; forced takes only lower this.
                assert!((admitted - refunded) * p <= full + (latest - T0) * c);
            }
        }
    }

    /// Runs one operation on `KEYS[1]` and reports the hash afterwards.
    const DISPATCH: &str = r#"
local key, op = KEYS[1], ARGV[1]
local cap, period, now, n = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local wait = 0
if op == 'check' then wait = bucket_wait(key, cap, period, now, n)
elseif op == 'take' then wait = bucket_take(key, cap, period, now, n)
elseif op == 'refund' then bucket_refund(key, cap, period, now, n)
else bucket_force(key, cap, period, now, n) end
local state = redis.call('HMGET', key, 'level', 'last')
local pttl = redis.call('PTTL', key)
-- The test's clock is not Redis's: keep the key however slowly the test runs.
redis.call('PERSIST', key)
return {wait, state[1], state[2], pttl, state[1] and bucket_ttl(cap, period, tonumber(state[1])) or -1}
"#;

    #[tokio::test]
    async fn the_lua_functions_match_the_rust_steps() {
        // Durability is not under test here: no fsync per write.
        let server = agentd_test_redis::RedisServer::builder()
            .arg("appendonly", "no")
            .start()
            .unwrap();
        let client = redis::Client::open(server.url()).unwrap();
        let mut con = client.get_multiplexed_async_connection().await.unwrap();
        let script = redis::Script::new(&format!("{BUCKET_LUA}{DISPATCH}"));
        let mut rng = fastrand::Rng::with_seed(16);
        // Awkward ratios, a token per ms, many per ms, and the largest
        // buckets allowed (levels far above 2^31, as the times are).
        let limits = [
            limit(7, 60_000),
            limit(3, 1_000),
            limit(1, 1),
            limit(1_000, 1),
            limit(5, 86_400_000),
            limit(MAX_FULL / 60_000, 60_000),
            limit(MAX_FULL, 1),
        ];
        for (i, l) in limits.iter().enumerate() {
            let key = format!("bucket:{i}");
            let (c, p) = (l.capacity(), l.period_ms() as i64);
            let mut b = Bucket::full(l, T0);
            let mut now = T0;
            for step in 0..400 {
                let (op, n) = match (step, rng.u8(0..10)) {
                    (0, _) => ("check", c), // a fresh (absent) bucket is full
                    (1, _) => ("take", 1),
                    (_, 0) => (
                        "take",
                        if rng.bool() {
                            u64::MAX
                        } else {
                            rng.u64(0..=3 * c)
                        },
                    ),
                    (_, 1..=4) => ("take", rng.u64(0..=c)),
                    (_, 5) => ("check", rng.u64(0..=c)),
                    (_, 6..=7) => ("refund", rng.u64(0..=c)),
                    _ => ("force", rng.u64(0..=c)),
                };
                let (take, wrote) = match op {
                    "check" => (b.check(l, now, n), false),
                    "take" => {
                        let take = b.try_take(l, now, n);
                        (take, take == Take::Admitted)
                    }
                    "refund" => {
                        b.refund(l, now, n);
                        (Take::Admitted, true)
                    }
                    _ => {
                        b.force_take(l, now, n);
                        (Take::Admitted, true)
                    }
                };
                type Reply = (u64, Option<String>, Option<String>, i64, i64);
                let (lua_wait, level, last, pttl, ttl): Reply = script
                    .key(&key)
                    .arg(op)
                    .arg(c)
                    .arg(p)
                    .arg(now)
                    .arg(n)
                    .invoke_async(&mut con)
                    .await
                    .unwrap();
                let at = format!("{l:?} step {step}: {op} {n} at {now}");
                assert_eq!(Take::from_wait_ms(lua_wait), take, "{at}");
                let (Some(level), Some(last)) = (level, last) else {
                    assert_eq!(b, Bucket::full(l, T0), "{at}: absent");
                    continue;
                };
                let stored = Bucket {
                    level: level.parse().unwrap(),
                    last_ms: last.parse().unwrap(),
                };
                assert_eq!(stored, b, "{at}");
                let expected_ttl = ((l.full() - b.level) as u64).div_ceil(c) as i64 + 1_000;
                assert_eq!(ttl, expected_ttl, "{at}");
                if wrote {
                    assert!(0 < pttl && pttl <= expected_ttl, "{at}: {pttl}");
                } else {
                    assert_eq!(pttl, -1, "{at}: a check or a wait writes nothing");
                }
                // Mostly forward, sometimes back, sometimes idle for periods.
                now += match rng.u8(0..10) {
                    0 => -rng.i64(0..=p),
                    1 => rng.i64(0..=3 * p),
                    _ => rng.i64(0..=p / 4),
                };
            }
        }
    }
}
