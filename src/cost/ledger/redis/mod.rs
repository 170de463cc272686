//! The Redis ledger: every replica's budgets in one Redis, each decision one
//! Lua script over keys of one tenant (one hash tag, one slot).
//!
//! Keys (`P` the prefix, `T` the tenant, both as in `state::redis`):
//!
//! | key | what |
//! |---|---|
//! | `P:t:{T}:b:d:DAY`, `P:t:{T}:b:m:MONTH` | a period's counters: fields `OWNER:st`, `:sn` (spent tokens, nano-USD), `:rt`, `:rn` (reserved); OWNER is `tenant` or `key:NAME` |
//! | `P:t:{T}:b:s:SESSION` | a session's lifetime counters (owner `tenant`) |
//! | `P:t:{T}:lim` | runtime overrides set by `SetBudget`: `OWNER:KIND` → limit |
//! | `P:t:{T}:tpm:OWNER` | a token-rate bucket (`cost::bucket`) |
//! | `P:t:{T}:r:TURN:CALL` | a reservation: `state` (reserved, expired, settled), what it reserved and where |
//! | `P:t:{T}:rz` | open reservations by expiry, for the sweep |
//! | `P:t:{T}:u:DAY` | a day's usage: `KEY|ROUTE|MODEL|FIELD` → count |
//!
//! Amounts cross into Lua as decimal strings and stay below 2^53 (prices,
//! budgets and token limits are bounded in config), where Lua's doubles are
//! exact. Periods are computed by agentd (`cost::period`) and are part of the
//! keys.

use std::collections::HashMap;
use std::time::Duration;

use redis::Script;

mod scripts;

use scripts::{EXPIRE, RESERVE, SETTLE};

use super::{
    BudgetKind, BudgetState, BudgetUse, Exceeded, Ledger, LedgerError, Owner, Reservation,
    Reserved, Spent, UsageCounts, UsageRow,
};
use crate::cost::bucket::{BUCKET_LUA, Limit};
use crate::cost::period::Periods;
use crate::ids::TenantId;
use crate::state::redis::{RedisPool, Retry, escape};

/// How long a settled record (its state alone) is kept, so that a duplicate
/// (a command sent again after a dropped connection, a zero settlement that
/// beat its reservation) charges nothing. Those come within seconds; a short
/// life keeps a thousand calls a second from filling Redis with records.
const RECORD_TTL_MS: i64 = 10 * 60_000;

/// An open reservation's record outlives its expiry by this much, so a sweep
/// that runs late still finds what to charge (and a settlement after it what
/// to correct).
const OPEN_RECORD_GRACE_MS: i64 = 48 * 3_600_000;

/// Counters outlive their period by this much: a call that began before
/// midnight settles into the day it reserved in.
const PERIOD_GRACE_MS: i64 = 24 * 3_600_000;

/// Reservations read per round trip of the sweep.
const SWEEP_BATCH: usize = 100;

/// The Redis ledger.
#[derive(Clone)]
pub struct RedisLedger {
    pool: RedisPool,
    reserve: Script,
    settle: Script,
    expire: Script,
}

impl std::fmt::Debug for RedisLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLedger").finish_non_exhaustive()
    }
}

/// The keys of one tenant.
struct Keys {
    base: String,
}

impl Keys {
    fn new(prefix: &str, tenant: &TenantId) -> Self {
        Self {
            base: format!("{prefix}:t:{{{}}}", escape(tenant.as_str())),
        }
    }

    fn day(&self, day: &str) -> String {
        format!("{}:b:d:{day}", self.base)
    }

    fn month(&self, month: &str) -> String {
        format!("{}:b:m:{month}", self.base)
    }

    fn session(&self, session: &str) -> String {
        format!("{}:b:s:{}", self.base, escape(session))
    }

    fn overrides(&self) -> String {
        format!("{}:lim", self.base)
    }

    fn bucket(&self, owner: &str) -> String {
        format!("{}:tpm:{owner}", self.base)
    }

    fn record(&self, member: &str) -> String {
        format!("{}:r:{member}", self.base)
    }

    fn open(&self) -> String {
        format!("{}:rz", self.base)
    }

    fn usage(&self, day: &str) -> String {
        format!("{}:u:{day}", self.base)
    }
}

/// The owner as it appears in fields: `tenant` or `key:NAME` with NAME escaped.
fn owner_field(owner: &Owner) -> String {
    match owner {
        Owner::Tenant => "tenant".to_owned(),
        Owner::Key(name) => format!("key:{}", escape(name)),
    }
}

fn parse_owner(field: &str) -> Option<Owner> {
    match field {
        "tenant" => Some(Owner::Tenant),
        _ => Some(Owner::Key(unescape(field.strip_prefix("key:")?)?)),
    }
}

/// The inverse of [`escape`].
fn unescape(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn limit_arg(limit: Option<u64>) -> String {
    limit.map(|l| l.to_string()).unwrap_or_default()
}

fn bucket_args(limit: Option<Limit>) -> [String; 2] {
    match limit {
        Some(limit) => [limit.capacity().to_string(), limit.period_ms().to_string()],
        None => [String::new(), String::new()],
    }
}

fn member(reservation: &Reservation) -> String {
    format!(
        "{}:{}",
        escape(reservation.id.turn.as_str()),
        reservation.id.call
    )
}

fn text(value: &redis::Value) -> String {
    redis::from_redis_value_ref::<String>(value).unwrap_or_default()
}

fn number(value: &redis::Value) -> u64 {
    text(value).parse().unwrap_or(0)
}

impl RedisLedger {
    /// A ledger in the Redis behind `pool`.
    pub fn new(pool: RedisPool) -> Self {
        let script = |body: &str| Script::new(&format!("{BUCKET_LUA}\n{body}"));
        Self {
            pool,
            reserve: script(RESERVE),
            settle: script(SETTLE),
            expire: Script::new(EXPIRE),
        }
    }

    fn keys(&self, tenant: &TenantId) -> Keys {
        Keys::new(self.pool.prefix(), tenant)
    }

    async fn invoke<T: redis::FromRedisValue>(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> Result<T, LedgerError> {
        let mut lease = self.pool.shared();
        let ran = self
            .pool
            .run(&mut lease, Retry::Once, |mut connection| async move {
                invocation.invoke_async::<T>(&mut connection).await
            })
            .await?;
        Ok(ran.value)
    }
}

fn parse_reserved(answer: &[redis::Value]) -> Result<Reserved, LedgerError> {
    let kind = answer.first().map(text).unwrap_or_default();
    let bad = || {
        LedgerError::Failed(format!(
            "unexpected answer from the reserve script: {answer:?}"
        ))
    };
    match kind.as_str() {
        "dup" => Ok(Reserved::Granted(Vec::new())),
        "ok" => {
            let mut uses = Vec::new();
            for chunk in answer[1..].chunks(4) {
                let [owner, budget, limit, used] = chunk else {
                    return Err(bad());
                };
                uses.push(BudgetUse {
                    owner: parse_owner(&text(owner)).ok_or_else(bad)?,
                    kind: BudgetKind::parse(&text(budget)).ok_or_else(bad)?,
                    limit: number(limit),
                    used: number(used),
                });
            }
            Ok(Reserved::Granted(uses))
        }
        "budget" => match answer {
            [_, owner, budget, limit, used] => Ok(Reserved::OverBudget(Exceeded {
                owner: parse_owner(&text(owner)).ok_or_else(bad)?,
                kind: BudgetKind::parse(&text(budget)).ok_or_else(bad)?,
                limit: number(limit),
                used: number(used),
            })),
            _ => Err(bad()),
        },
        "rate" => match answer {
            [_, limit, wait] => Ok(Reserved::RateLimited {
                limit: if text(limit) == "tokens_key" {
                    "tokens_key"
                } else {
                    "tokens_tenant"
                },
                wait: Duration::from_millis(number(wait)),
            }),
            _ => Err(bad()),
        },
        _ => Err(bad()),
    }
}

#[async_trait::async_trait]
impl Ledger for RedisLedger {
    async fn reserve(&self, reservation: &Reservation) -> Result<Reserved, LedgerError> {
        let keys = self.keys(&reservation.tenant);
        let key_owner = owner_field(&Owner::Key(reservation.key.clone()));
        let periods = &reservation.periods;
        let member = member(reservation);
        let mut invocation = self.reserve.prepare_invoke();
        invocation
            .key(keys.day(&periods.day))
            .key(keys.month(&periods.month))
            .key(keys.session(reservation.session.as_str()))
            .key(keys.overrides())
            .key(keys.record(&member))
            .key(keys.open())
            .key(keys.bucket("tenant"))
            .key(keys.bucket(&key_owner))
            .arg(reservation.now_ms)
            .arg(reservation.expires_ms)
            .arg(reservation.tokens)
            .arg(reservation.cost.nanos())
            .arg(&key_owner);
        for kind in BudgetKind::ALL {
            invocation.arg(limit_arg(reservation.tenant_budgets.get(kind)));
        }
        for kind in BudgetKind::PERIODIC {
            invocation.arg(limit_arg(reservation.key_budgets.get(kind)));
        }
        invocation
            .arg(&bucket_args(reservation.tenant_tokens))
            .arg(&bucket_args(reservation.key_tokens))
            .arg(periods.day_end_ms.saturating_add(PERIOD_GRACE_MS))
            .arg(periods.month_end_ms.saturating_add(PERIOD_GRACE_MS))
            .arg(reservation.session_ttl_ms.max(1))
            .arg(&periods.day)
            .arg(&periods.month)
            .arg(reservation.session.as_str())
            .arg((reservation.expires_ms - reservation.now_ms).max(0) + OPEN_RECORD_GRACE_MS)
            .arg(&member);
        let answer: Vec<redis::Value> = self.invoke(&invocation).await?;
        parse_reserved(&answer)
    }

    async fn settle(&self, reservation: &Reservation, spent: &Spent) -> Result<(), LedgerError> {
        let keys = self.keys(&reservation.tenant);
        let key_owner = owner_field(&Owner::Key(reservation.key.clone()));
        let periods = &reservation.periods;
        let member = member(reservation);
        let usage_field = format!(
            "{}|{}|{}",
            escape(&reservation.key),
            escape(&spent.route),
            escape(&spent.model)
        );
        let retention = reservation.usage_retention_ms;
        let mut invocation = self.settle.prepare_invoke();
        invocation
            .key(keys.day(&periods.day))
            .key(keys.month(&periods.month))
            .key(keys.session(reservation.session.as_str()))
            .key(keys.record(&member))
            .key(keys.open())
            .key(keys.bucket("tenant"))
            .key(keys.bucket(&key_owner))
            .key(keys.usage(&periods.day))
            .arg(reservation.now_ms)
            .arg(reservation.tokens)
            .arg(reservation.cost.nanos())
            .arg(spent.tokens())
            .arg(spent.cost.nanos())
            .arg(&key_owner)
            .arg(&bucket_args(reservation.tenant_tokens))
            .arg(&bucket_args(reservation.key_tokens))
            .arg(&usage_field);
        for count in UsageCounts::of(spent).to_array() {
            invocation.arg(count);
        }
        invocation
            .arg(RECORD_TTL_MS)
            .arg(&member)
            .arg(periods.day_end_ms.saturating_add(retention))
            .arg(periods.day_end_ms.saturating_add(PERIOD_GRACE_MS))
            .arg(periods.month_end_ms.saturating_add(PERIOD_GRACE_MS))
            .arg(reservation.session_ttl_ms.max(1));
        let _: i64 = self.invoke(&invocation).await?;
        Ok(())
    }

    async fn sweep(
        &self,
        tenants: &[TenantId],
        now_ms: i64,
    ) -> Result<Vec<(TenantId, usize)>, LedgerError> {
        let mut expired = Vec::new();
        for tenant in tenants {
            let keys = self.keys(tenant);
            let open = keys.open();
            let mut lease = self.pool.shared();
            let mut count = 0;
            // Batch after batch until none is left: each member taken is
            // removed from the index, charged or not.
            loop {
                let members: Vec<String> = self
                    .pool
                    .run(&mut lease, Retry::Once, |mut connection| {
                        let open = open.clone();
                        async move {
                            redis::cmd("ZRANGEBYSCORE")
                                .arg(&open)
                                .arg("-inf")
                                .arg(now_ms)
                                .arg("LIMIT")
                                .arg(0)
                                .arg(SWEEP_BATCH)
                                .query_async(&mut connection)
                                .await
                        }
                    })
                    .await?
                    .value;
                let members_taken = members.len();
                for member in members {
                    let record_key = keys.record(&member);
                    let record: HashMap<String, String> = self
                        .pool
                        .run(&mut lease, Retry::Once, |mut connection| {
                            let record_key = record_key.clone();
                            async move {
                                redis::cmd("HGETALL")
                                    .arg(&record_key)
                                    .query_async(&mut connection)
                                    .await
                            }
                        })
                        .await?
                        .value;
                    let field = |name: &str| record.get(name).cloned().unwrap_or_default();
                    let mut invocation = self.expire.prepare_invoke();
                    invocation
                        .key(keys.day(&field("day")))
                        .key(keys.month(&field("month")))
                        .key(keys.session(&field("session")))
                        .key(&record_key)
                        .key(&open)
                        .arg(field("key"))
                        .arg(field("tok"))
                        .arg(field("nusd"))
                        .arg(&member);
                    let charged: i64 = self.invoke(&invocation).await?;
                    if charged == 1 {
                        count += 1;
                    }
                }
                if members_taken < SWEEP_BATCH {
                    break;
                }
            }
            if count > 0 {
                expired.push((tenant.clone(), count));
            }
        }
        Ok(expired)
    }

    async fn set_override(
        &self,
        tenant: &TenantId,
        owner: &Owner,
        kind: BudgetKind,
        limit: Option<u64>,
    ) -> Result<(), LedgerError> {
        let key = self.keys(tenant).overrides();
        let field = format!("{}:{}", owner_field(owner), kind.as_str());
        let mut command = match limit {
            Some(limit) => {
                let mut command = redis::cmd("HSET");
                command.arg(&key).arg(&field).arg(limit);
                command
            }
            None => {
                let mut command = redis::cmd("HDEL");
                command.arg(&key).arg(&field);
                command
            }
        };
        let command = &mut command;
        let command = &*command;
        let mut lease = self.pool.shared();
        self.pool
            .run(&mut lease, Retry::Once, |mut connection| async move {
                command.query_async::<i64>(&mut connection).await
            })
            .await?;
        Ok(())
    }

    async fn budgets(
        &self,
        tenant: &TenantId,
        owner: &Owner,
        periods: &Periods,
    ) -> Result<Vec<BudgetState>, LedgerError> {
        let keys = self.keys(tenant);
        let owner_name = owner_field(owner);
        let mut pipe = redis::pipe();
        pipe.hgetall(keys.day(&periods.day))
            .hgetall(keys.month(&periods.month))
            .hgetall(keys.overrides());
        let pipe = &pipe;
        let mut lease = self.pool.shared();
        // Signed: a counter can dip below zero for a moment if its key
        // expired under a call; it reads as 0.
        type Hash = HashMap<String, i64>;
        let (day, month, overrides): (Hash, Hash, Hash) = self
            .pool
            .run(&mut lease, Retry::Once, |mut connection| async move {
                pipe.query_async(&mut connection).await
            })
            .await?
            .value;
        let none = HashMap::new();
        Ok(super::kinds_of(owner)
            .iter()
            .map(|&kind| {
                let counters = match kind {
                    BudgetKind::UsdDay | BudgetKind::TokensDay => &day,
                    BudgetKind::UsdMonth | BudgetKind::TokensMonth => &month,
                    BudgetKind::SessionUsd | BudgetKind::SessionTokens => &none,
                };
                let (s, r) = if kind.is_usd() {
                    ("sn", "rn")
                } else {
                    ("st", "rt")
                };
                let get = |field: &str| {
                    counters
                        .get(&format!("{owner_name}:{field}"))
                        .copied()
                        .unwrap_or(0)
                        .max(0)
                        .unsigned_abs()
                };
                BudgetState {
                    owner: owner.clone(),
                    kind,
                    runtime: overrides
                        .get(&format!("{owner_name}:{}", kind.as_str()))
                        .map(|&limit| limit.max(0).unsigned_abs()),
                    spent: get(s),
                    reserved: get(r),
                }
            })
            .collect())
    }

    async fn usage(
        &self,
        tenant: &TenantId,
        key: Option<&str>,
        days: &[String],
    ) -> Result<Vec<UsageRow>, LedgerError> {
        let keys = self.keys(tenant);
        let mut pipe = redis::pipe();
        for day in days {
            pipe.hgetall(keys.usage(day));
        }
        let pipe = &pipe;
        let mut lease = self.pool.shared();
        let hashes: Vec<HashMap<String, u64>> = self
            .pool
            .run(&mut lease, Retry::Once, |mut connection| async move {
                pipe.query_async(&mut connection).await
            })
            .await?
            .value;
        let names = ["calls", "estimated", "input", "cached", "output", "nusd"];
        let mut rows = Vec::new();
        for (day, hash) in days.iter().zip(hashes) {
            let mut grouped: std::collections::BTreeMap<(String, String, String), [u64; 6]> =
                Default::default();
            for (field, value) in hash {
                let parts: Vec<&str> = field.split('|').collect();
                let [k, route, model, name] = parts.as_slice() else {
                    continue;
                };
                let (Some(k), Some(route), Some(model)) =
                    (unescape(k), unescape(route), unescape(model))
                else {
                    continue;
                };
                if key.is_some_and(|key| key != k) {
                    continue;
                }
                if let Some(index) = names.iter().position(|n| n == name) {
                    grouped.entry((k, route, model)).or_default()[index] = value;
                }
            }
            rows.extend(
                grouped
                    .into_iter()
                    .map(|((k, route, model), values)| UsageRow {
                        day: day.clone(),
                        key: k,
                        route,
                        model,
                        counts: UsageCounts::from_array(values),
                    }),
            );
        }
        Ok(rows)
    }

    async fn check(&self) -> Result<(), LedgerError> {
        self.pool.ping().await.map_err(LedgerError::from)
    }
}

#[cfg(test)]
mod tests {
    use super::super::suite;
    use super::*;

    fn make() -> suite::Subject {
        let server = agentd_test_redis::RedisServer::start().unwrap();
        let mut config = crate::config::Config::from_toml("").unwrap().state;
        config.redis_url = server.url();
        let pool = RedisPool::new(&config).unwrap();
        suite::Subject {
            ledger: std::sync::Arc::new(RedisLedger::new(pool)),
            _backing: Box::new(server),
        }
    }

    crate::ledger_suite!(make);

    #[tokio::test]
    async fn every_key_the_scripts_write_expires() {
        let server = agentd_test_redis::RedisServer::start().unwrap();
        let mut config = crate::config::Config::from_toml("").unwrap().state;
        config.redis_url = server.url();
        let ledger = RedisLedger::new(RedisPool::new(&config).unwrap());
        let session = crate::ids::SessionId::generate();
        let mut limited = suite::reservation(&session, 1, 100, 600);
        limited.tenant_tokens = Some(Limit::new(1_000, Duration::from_secs(60)).unwrap());
        // Reserved and settled; reserved and expired, then settled late; a
        // settlement that beats its reservation.
        ledger.reserve(&limited).await.unwrap();
        ledger
            .settle(&limited, &suite::spent(10, 5, 100))
            .await
            .unwrap();
        let expiring = suite::reservation(&session, 2, 100, 600);
        ledger.reserve(&expiring).await.unwrap();
        let acme = [suite::tenant("acme")];
        ledger.sweep(&acme, expiring.expires_ms).await.unwrap();
        ledger
            .settle(&expiring, &suite::spent(10, 5, 100))
            .await
            .unwrap();
        let early = suite::reservation(&session, 3, 100, 600);
        ledger.settle(&early, &Spent::default()).await.unwrap();
        ledger.reserve(&early).await.unwrap();
        let keys = server.keys().unwrap();
        assert!(keys.len() >= 6, "{keys:?}");
        for key in keys {
            let ttl = server.command(&["PTTL", &key]).unwrap();
            assert!(
                matches!(ttl, redis::Value::Int(ms) if ms > 0),
                "{key} has no expiry: {ttl:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_sweep_charges_every_expired_reservation_in_batches() {
        let server = agentd_test_redis::RedisServer::start().unwrap();
        let mut config = crate::config::Config::from_toml("").unwrap().state;
        config.redis_url = server.url();
        let ledger = RedisLedger::new(RedisPool::new(&config).unwrap());
        let session = crate::ids::SessionId::generate();
        let calls: Vec<Reservation> = (1..=250)
            .map(|call| suite::reservation(&session, call, 1, 1))
            .collect();
        for call in &calls {
            ledger.reserve(call).await.unwrap();
        }
        let acme = [suite::tenant("acme")];
        assert_eq!(
            ledger.sweep(&acme, calls[0].expires_ms).await.unwrap(),
            vec![(suite::tenant("acme"), 250)]
        );
        assert!(
            ledger
                .sweep(&acme, calls[0].expires_ms)
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn unescape_inverts_escape() {
        for id in ["plain", "a:b|c", "{x}%", "ünï"] {
            assert_eq!(unescape(&escape(id)).as_deref(), Some(id));
        }
    }
}
