//! The embedded ledger's book: the counters, overrides, token buckets, open
//! reservations and usage in memory, and every decision made on them.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::super::{
    BudgetKind, BudgetUse, CallId, Exceeded, Owner, Reservation, Spent, UsageCounts, amount, owners,
};
use crate::cost::bucket::{Bucket, Limit, Take};
use crate::cost::period::Periods;
use crate::ids::TenantId;

/// How long a settled call's id is remembered, so that a duplicate settlement
/// charges nothing. In one process the chain settles each call exactly once
/// (a drop guard), so this only backs that up; kept short, it costs little
/// memory at a thousand calls a second.
pub(super) const SETTLED_MEMORY_MS: i64 = 60_000;

/// How long an expired (charged in full) reservation's id is remembered, for
/// a settlement that comes later still.
pub(super) const EXPIRED_MEMORY_MS: i64 = 48 * 3_600_000;

/// Spent and reserved amounts of one counter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Counter {
    pub(super) spent_tokens: u64,
    pub(super) spent_nanos: u64,
    pub(super) reserved_tokens: u64,
    pub(super) reserved_nanos: u64,
    /// When it was last changed, for pruning session counters.
    pub(super) touched_ms: i64,
}

impl Counter {
    pub(super) fn used(&self, kind: BudgetKind) -> u64 {
        if kind.is_usd() {
            self.spent_nanos.saturating_add(self.reserved_nanos)
        } else {
            self.spent_tokens.saturating_add(self.reserved_tokens)
        }
    }

    pub(super) fn encode(&self) -> Vec<u8> {
        let values = [
            self.spent_tokens,
            self.spent_nanos,
            self.reserved_tokens,
            self.reserved_nanos,
            self.touched_ms.max(0).unsigned_abs(),
        ];
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    pub(super) fn decode(bytes: &[u8]) -> Option<Self> {
        let values = decode_u64s::<5>(bytes)?;
        Some(Self {
            spent_tokens: values[0],
            spent_nanos: values[1],
            reserved_tokens: values[2],
            reserved_nanos: values[3],
            touched_ms: i64::try_from(values[4]).unwrap_or(i64::MAX),
        })
    }
}

pub(super) fn decode_u64s<const N: usize>(bytes: &[u8]) -> Option<[u64; N]> {
    if bytes.len() != N * 8 {
        return None;
    }
    let mut values = [0u64; N];
    for (value, chunk) in values.iter_mut().zip(bytes.chunks_exact(8)) {
        *value = u64::from_le_bytes(chunk.try_into().ok()?);
    }
    Some(values)
}

/// Where a counter lives: tenant, owner (`tenant`, `key:NAME`) and period
/// (`d:DAY`, `m:MONTH`, `s:SESSION`).
pub(super) type CounterKey = (TenantId, String, String);

/// A usage row's key: tenant, day, key, route, model.
pub(super) type UsageKey = (TenantId, String, String, String, String);

#[derive(Default)]
pub(super) struct State {
    pub(super) counters: HashMap<CounterKey, Counter>,
    pub(super) overrides: HashMap<(TenantId, String, BudgetKind), u64>,
    pub(super) buckets: HashMap<(TenantId, String), Bucket>,
    /// Open reservations, with what they reserved: the sweep charges an
    /// expired one.
    pub(super) open: HashMap<CallId, Reservation>,
    /// Charged in full at expiry; a late settlement corrects the charge.
    pub(super) expired: HashMap<CallId, i64>,
    pub(super) settled: HashSet<CallId>,
    /// The settled ids in the order they were settled, with when: the oldest
    /// are forgotten as new ones come.
    pub(super) settled_order: std::collections::VecDeque<(i64, CallId)>,
    pub(super) usage: BTreeMap<UsageKey, UsageCounts>,
    /// What changed since the writer last ran, as stored keys.
    pub(super) dirty: HashSet<String>,
    /// How long idle session counters and daily usage are kept (config).
    pub(super) session_ttl_ms: i64,
    pub(super) usage_retention_ms: i64,
}

/// How long a day's and a month's counters are kept after their last change:
/// past their period (a call that began before midnight settles into the day
/// it reserved in), as Redis keeps them.
pub(super) const DAY_COUNTER_MS: i64 = 2 * 86_400_000;
pub(super) const MONTH_COUNTER_MS: i64 = 62 * 86_400_000;

impl State {
    /// Forgets settled ids, idle session counters, past periods' counters
    /// and usage older than its retention.
    pub(super) fn prune(&mut self, now_ms: i64) {
        let fresh = |at: i64, keep: i64| now_ms.saturating_sub(at) < keep;
        self.expired.retain(|_, at| fresh(*at, EXPIRED_MEMORY_MS));
        let session_ttl = self.session_ttl_ms;
        let mut gone = Vec::new();
        self.counters.retain(|key, counter| {
            let keep = match key.2.as_bytes().first() {
                Some(b's') => session_ttl,
                Some(b'd') => DAY_COUNTER_MS,
                _ => MONTH_COUNTER_MS,
            };
            let busy = counter.reserved_tokens > 0 || counter.reserved_nanos > 0;
            let kept = busy || fresh(counter.touched_ms, keep);
            if !kept {
                gone.push(stored_counter_key(key));
            }
            kept
        });
        if self.usage_retention_ms > 0 {
            let cutoff = crate::cost::period::periods(
                now_ms.saturating_sub(self.usage_retention_ms),
                &jiff::tz::TimeZone::UTC,
            )
            .day;
            self.usage.retain(|key, _| {
                let kept = key.1 >= cutoff;
                if !kept {
                    gone.push(stored_usage_key(key));
                }
                kept
            });
        }
        self.dirty.extend(gone);
    }
}

pub(super) fn period_of(kind: BudgetKind, reservation: &Reservation) -> String {
    period_name(kind, &reservation.periods, reservation.session.as_str())
}

pub(super) fn period_name(kind: BudgetKind, periods: &Periods, session: &str) -> String {
    match kind {
        BudgetKind::UsdDay | BudgetKind::TokensDay => format!("d:{}", periods.day),
        BudgetKind::UsdMonth | BudgetKind::TokensMonth => format!("m:{}", periods.month),
        BudgetKind::SessionUsd | BudgetKind::SessionTokens => format!("s:{session}"),
    }
}

/// The counters one reservation touches: the tenant's day, month and
/// session, the key's day and month.
pub(super) fn counter_keys(reservation: &Reservation) -> Vec<CounterKey> {
    let tenant = &reservation.tenant;
    let key = Owner::Key(reservation.key.clone()).to_string();
    let mut keys = Vec::with_capacity(5);
    for kind in [
        BudgetKind::UsdDay,
        BudgetKind::UsdMonth,
        BudgetKind::SessionUsd,
    ] {
        keys.push((
            tenant.clone(),
            "tenant".to_owned(),
            period_of(kind, reservation),
        ));
    }
    for kind in [BudgetKind::UsdDay, BudgetKind::UsdMonth] {
        keys.push((tenant.clone(), key.clone(), period_of(kind, reservation)));
    }
    keys
}

pub(super) fn stored_counter_key((tenant, owner, period): &CounterKey) -> String {
    format!("c\u{0}{tenant}\u{0}{owner}\u{0}{period}")
}

pub(super) fn stored_override_key(tenant: &TenantId, owner: &str, kind: BudgetKind) -> String {
    format!("o\u{0}{tenant}\u{0}{owner}\u{0}{}", kind.as_str())
}

pub(super) fn stored_usage_key((tenant, day, key, route, model): &UsageKey) -> String {
    format!("u\u{0}{tenant}\u{0}{day}\u{0}{key}\u{0}{route}\u{0}{model}")
}

impl State {
    fn limit(
        &self,
        tenant: &TenantId,
        owner: &Owner,
        kind: BudgetKind,
        config: Option<u64>,
    ) -> Option<u64> {
        self.overrides
            .get(&(tenant.clone(), owner.to_string(), kind))
            .copied()
            .or(config)
    }

    pub(super) fn check_budgets(
        &self,
        reservation: &Reservation,
    ) -> Result<Vec<BudgetUse>, Exceeded> {
        let mut uses = Vec::new();
        for (owner, budgets) in owners(reservation) {
            for kind in BudgetKind::ALL {
                if kind.is_session() && owner != Owner::Tenant {
                    continue;
                }
                let Some(limit) = self.limit(&reservation.tenant, &owner, kind, budgets.get(kind))
                else {
                    continue;
                };
                let key = (
                    reservation.tenant.clone(),
                    owner.to_string(),
                    period_of(kind, reservation),
                );
                let used = self.counters.get(&key).map_or(0, |c| c.used(kind));
                let ask = amount(kind, reservation.tokens, reservation.cost);
                if used.saturating_add(ask) > limit {
                    return Err(Exceeded {
                        owner,
                        kind,
                        limit,
                        used,
                    });
                }
                uses.push(BudgetUse {
                    owner: owner.clone(),
                    kind,
                    limit,
                    used: used.saturating_add(ask),
                });
            }
        }
        Ok(uses)
    }

    /// Takes the estimate from the token buckets, both or neither.
    pub(super) fn take_tokens(
        &mut self,
        reservation: &Reservation,
    ) -> Option<(&'static str, std::time::Duration)> {
        let now = reservation.now_ms;
        let mut taken = Vec::new();
        for (name, owner, limit) in token_limits(reservation) {
            let key = (reservation.tenant.clone(), owner);
            let mut bucket = self
                .buckets
                .get(&key)
                .copied()
                .unwrap_or_else(|| Bucket::full(&limit, now));
            match bucket.try_take(&limit, now, reservation.tokens) {
                Take::Admitted => taken.push((key, bucket)),
                Take::Wait(wait) => return Some((name, wait)),
            }
        }
        self.buckets.extend(taken);
        None
    }

    pub(super) fn add(&mut self, key: CounterKey, now_ms: i64, change: impl FnOnce(&mut Counter)) {
        self.dirty.insert(stored_counter_key(&key));
        let counter = self.counters.entry(key).or_default();
        change(counter);
        counter.touched_ms = now_ms;
    }

    pub(super) fn settle(&mut self, reservation: &Reservation, spent: &Spent) {
        let id = &reservation.id;
        if self.settled.contains(id) {
            return;
        }
        let now = reservation.now_ms;
        let (r_tok, r_nanos) = (reservation.tokens, reservation.cost.nanos());
        let (a_tok, a_nanos) = (spent.tokens(), spent.cost.nanos());
        let was_open = self.open.remove(id).is_some();
        let was_expired = self.expired.remove(id).is_some();
        for key in counter_keys(reservation) {
            self.add(key, now, |c| {
                if was_open {
                    c.reserved_tokens = c.reserved_tokens.saturating_sub(r_tok);
                    c.reserved_nanos = c.reserved_nanos.saturating_sub(r_nanos);
                    c.spent_tokens = c.spent_tokens.saturating_add(a_tok);
                    c.spent_nanos = c.spent_nanos.saturating_add(a_nanos);
                } else if was_expired {
                    // The sweep charged the whole reservation: correct it.
                    c.spent_tokens = c.spent_tokens.saturating_sub(r_tok).saturating_add(a_tok);
                    c.spent_nanos = c
                        .spent_nanos
                        .saturating_sub(r_nanos)
                        .saturating_add(a_nanos);
                } else {
                    // Never reserved here (a restart lost it): charge the spend.
                    c.spent_tokens = c.spent_tokens.saturating_add(a_tok);
                    c.spent_nanos = c.spent_nanos.saturating_add(a_nanos);
                }
            });
        }
        if was_open {
            for (_, owner, limit) in token_limits(reservation) {
                let bucket = self
                    .buckets
                    .entry((reservation.tenant.clone(), owner))
                    .or_insert_with(|| Bucket::full(&limit, now));
                if a_tok <= r_tok {
                    bucket.refund(&limit, now, r_tok - a_tok);
                } else {
                    bucket.force_take(&limit, now, a_tok - r_tok);
                }
            }
        }
        if spent.reached {
            let usage_key = (
                reservation.tenant.clone(),
                reservation.periods.day.clone(),
                reservation.key.clone(),
                spent.route.clone(),
                spent.model.clone(),
            );
            self.dirty.insert(stored_usage_key(&usage_key));
            self.usage
                .entry(usage_key)
                .or_default()
                .add(&UsageCounts::of(spent));
        }
        self.settled.insert(id.clone());
        self.settled_order.push_back((now, id.clone()));
        while let Some((at, _)) = self.settled_order.front() {
            if now.saturating_sub(*at) < SETTLED_MEMORY_MS {
                break;
            }
            if let Some((_, old)) = self.settled_order.pop_front() {
                self.settled.remove(&old);
            }
        }
    }
}

pub(super) fn token_limits(reservation: &Reservation) -> Vec<(&'static str, String, Limit)> {
    let mut limits = Vec::with_capacity(2);
    if let Some(limit) = reservation.tenant_tokens {
        limits.push(("tokens_tenant", "tenant".to_owned(), limit));
    }
    if let Some(limit) = reservation.key_tokens {
        limits.push((
            "tokens_key",
            Owner::Key(reservation.key.clone()).to_string(),
            limit,
        ));
    }
    limits
}
