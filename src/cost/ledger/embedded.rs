//! The embedded ledger: one process's budgets in memory, decided under one
//! lock, and written behind to `cost.redb` under `storage.data_dir`.
//!
//! Every reservation and settlement is decided in memory in microseconds; a
//! writer thread then persists the counters, overrides and usage each changed,
//! in one redb transaction per batch, at most one batch every 25 ms (group
//! commit: whatever changed meanwhile goes in the next). Waiting for that
//! write before each model call would add the ~3 ms of a durable commit to
//! every call, so it is not awaited: a crash (kill -9, power loss) loses what
//! changed since the last batch was committed, some 25 ms of spend. On start, reservations
//! that were open when the previous process stopped are charged in full.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::{
    BudgetKind, BudgetState, BudgetUse, CallId, Exceeded, Ledger, LedgerError, Owner, Reservation,
    Reserved, Spent, UsageCounts, UsageRow, amount, kinds_of, owners,
};
use crate::cost::bucket::{Bucket, Limit, Take};
use crate::cost::period::Periods;
use crate::ids::TenantId;
use crate::telemetry::cost::CostMetrics;

const LEDGER: TableDefinition<&str, &[u8]> = TableDefinition::new("ledger");

/// The shortest time between two batches of the writer: what a crash can lose
/// at most, beyond the batch being written.
const BATCH_INTERVAL: std::time::Duration = std::time::Duration::from_millis(25);

/// How long a settled call's id is remembered, so that a duplicate settlement
/// charges nothing. In one process the chain settles each call exactly once
/// (a drop guard), so this only backs that up; kept short, it costs little
/// memory at a thousand calls a second.
const SETTLED_MEMORY_MS: i64 = 60_000;

/// How long an expired (charged in full) reservation's id is remembered, for
/// a settlement that comes later still.
const EXPIRED_MEMORY_MS: i64 = 48 * 3_600_000;

/// Spent and reserved amounts of one counter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Counter {
    spent_tokens: u64,
    spent_nanos: u64,
    reserved_tokens: u64,
    reserved_nanos: u64,
    /// When it was last changed, for pruning session counters.
    touched_ms: i64,
}

impl Counter {
    fn used(&self, kind: BudgetKind) -> u64 {
        if kind.is_usd() {
            self.spent_nanos.saturating_add(self.reserved_nanos)
        } else {
            self.spent_tokens.saturating_add(self.reserved_tokens)
        }
    }

    fn encode(&self) -> Vec<u8> {
        let values = [
            self.spent_tokens,
            self.spent_nanos,
            self.reserved_tokens,
            self.reserved_nanos,
            self.touched_ms.max(0).unsigned_abs(),
        ];
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
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

fn decode_u64s<const N: usize>(bytes: &[u8]) -> Option<[u64; N]> {
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
type CounterKey = (TenantId, String, String);

/// A usage row's key: tenant, day, key, route, model.
type UsageKey = (TenantId, String, String, String, String);

#[derive(Default)]
struct State {
    counters: HashMap<CounterKey, Counter>,
    overrides: HashMap<(TenantId, String, BudgetKind), u64>,
    buckets: HashMap<(TenantId, String), Bucket>,
    /// Open reservations, with what they reserved: the sweep charges an
    /// expired one.
    open: HashMap<CallId, Reservation>,
    /// Charged in full at expiry; a late settlement corrects the charge.
    expired: HashMap<CallId, i64>,
    settled: HashSet<CallId>,
    /// The settled ids in the order they were settled, with when: the oldest
    /// are forgotten as new ones come.
    settled_order: std::collections::VecDeque<(i64, CallId)>,
    usage: BTreeMap<UsageKey, UsageCounts>,
    /// What changed since the writer last ran, as stored keys.
    dirty: HashSet<String>,
    /// How long idle session counters and daily usage are kept (config).
    session_ttl_ms: i64,
    usage_retention_ms: i64,
}

/// How long a day's and a month's counters are kept after their last change:
/// past their period (a call that began before midnight settles into the day
/// it reserved in), as Redis keeps them.
const DAY_COUNTER_MS: i64 = 2 * 86_400_000;
const MONTH_COUNTER_MS: i64 = 62 * 86_400_000;

impl State {
    /// Forgets settled ids, idle session counters, past periods' counters
    /// and usage older than its retention.
    fn prune(&mut self, now_ms: i64) {
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
            let cutoff = super::super::period::periods(
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

fn period_of(kind: BudgetKind, reservation: &Reservation) -> String {
    period_name(kind, &reservation.periods, reservation.session.as_str())
}

fn period_name(kind: BudgetKind, periods: &Periods, session: &str) -> String {
    match kind {
        BudgetKind::UsdDay | BudgetKind::TokensDay => format!("d:{}", periods.day),
        BudgetKind::UsdMonth | BudgetKind::TokensMonth => format!("m:{}", periods.month),
        BudgetKind::SessionUsd | BudgetKind::SessionTokens => format!("s:{session}"),
    }
}

/// The counters one reservation touches: the tenant's day, month and
/// session, the key's day and month.
fn counter_keys(reservation: &Reservation) -> Vec<CounterKey> {
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

fn stored_counter_key((tenant, owner, period): &CounterKey) -> String {
    format!("c\u{0}{tenant}\u{0}{owner}\u{0}{period}")
}

fn stored_override_key(tenant: &TenantId, owner: &str, kind: BudgetKind) -> String {
    format!("o\u{0}{tenant}\u{0}{owner}\u{0}{}", kind.as_str())
}

fn stored_usage_key((tenant, day, key, route, model): &UsageKey) -> String {
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

    fn check_budgets(&self, reservation: &Reservation) -> Result<Vec<BudgetUse>, Exceeded> {
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
    fn take_tokens(
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

    fn add(&mut self, key: CounterKey, now_ms: i64, change: impl FnOnce(&mut Counter)) {
        self.dirty.insert(stored_counter_key(&key));
        let counter = self.counters.entry(key).or_default();
        change(counter);
        counter.touched_ms = now_ms;
    }

    fn settle(&mut self, reservation: &Reservation, spent: &Spent) {
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

fn token_limits(reservation: &Reservation) -> Vec<(&'static str, String, Limit)> {
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

/// The embedded ledger.
pub struct EmbeddedLedger {
    state: Arc<Mutex<State>>,
    wake: Mutex<Option<mpsc::Sender<Option<tokio::sync::oneshot::Sender<()>>>>>,
    writer: Option<thread::JoinHandle<()>>,
}

impl std::fmt::Debug for EmbeddedLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedLedger").finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl EmbeddedLedger {
    /// Opens (or creates) `path` and loads it; reservations left open by the
    /// previous process are charged in full. Blocking: call at start.
    /// `session_ttl` and `usage_retention` bound how long idle session
    /// counters and daily usage are kept.
    pub fn open(
        path: &Path,
        metrics: CostMetrics,
        session_ttl: std::time::Duration,
        usage_retention: std::time::Duration,
    ) -> Result<Self, LedgerError> {
        let failed =
            |err: &dyn std::fmt::Display| LedgerError::Failed(format!("{}: {err}", path.display()));
        let db = Database::create(path).map_err(|e| failed(&e))?;
        let txn = db.begin_write().map_err(|e| failed(&e))?;
        txn.open_table(LEDGER).map_err(|e| failed(&e))?;
        txn.commit().map_err(|e| failed(&e))?;
        let ms = |d: std::time::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let mut state = State {
            session_ttl_ms: ms(session_ttl),
            usage_retention_ms: ms(usage_retention),
            ..State::default()
        };
        {
            let read = db.begin_read().map_err(|e| failed(&e))?;
            let table = read.open_table(LEDGER).map_err(|e| failed(&e))?;
            for entry in table.iter().map_err(|e| failed(&e))? {
                let (key, value) = entry.map_err(|e| failed(&e))?;
                load(&mut state, key.value(), value.value());
            }
        }
        // A crash left these reserved: charge them, as the sweep would have.
        for (key, counter) in &mut state.counters {
            if counter.reserved_tokens > 0 || counter.reserved_nanos > 0 {
                counter.spent_tokens = counter.spent_tokens.saturating_add(counter.reserved_tokens);
                counter.spent_nanos = counter.spent_nanos.saturating_add(counter.reserved_nanos);
                counter.reserved_tokens = 0;
                counter.reserved_nanos = 0;
                state.dirty.insert(stored_counter_key(key));
            }
        }
        let state = Arc::new(Mutex::new(state));
        let (wake, woken) = mpsc::channel();
        let writer = thread::Builder::new()
            .name("agentd-ledger".into())
            .spawn({
                let state = Arc::clone(&state);
                move || write_loop(&db, &state, &woken, &metrics)
            })
            .map_err(|e| failed(&e))?;
        let ledger = Self {
            state,
            wake: Mutex::new(Some(wake)),
            writer: Some(writer),
        };
        ledger.wake(None);
        Ok(ledger)
    }

    fn wake(&self, done: Option<tokio::sync::oneshot::Sender<()>>) {
        if let Some(wake) = lock(&self.wake).as_ref() {
            let _ = wake.send(done);
        }
    }

    /// Waits until everything changed so far is on disk.
    pub async fn flush(&self) {
        let (done, written) = tokio::sync::oneshot::channel();
        self.wake(Some(done));
        let _ = written.await;
    }
}

impl Drop for EmbeddedLedger {
    fn drop(&mut self) {
        // Closing the channel ends the writer after a last batch.
        lock(&self.wake).take();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

fn load(state: &mut State, key: &str, value: &[u8]) {
    let parts: Vec<&str> = key.split('\u{0}').collect();
    let tenant = |name: &str| TenantId::try_from(name.to_owned()).ok();
    match parts.as_slice() {
        ["c", t, owner, period] => {
            if let (Some(t), Some(counter)) = (tenant(t), Counter::decode(value)) {
                state
                    .counters
                    .insert((t, (*owner).to_owned(), (*period).to_owned()), counter);
            }
        }
        ["o", t, owner, kind] => {
            if let (Some(t), Some(kind), Some([limit])) =
                (tenant(t), BudgetKind::parse(kind), decode_u64s::<1>(value))
            {
                state
                    .overrides
                    .insert((t, (*owner).to_owned(), kind), limit);
            }
        }
        ["u", t, day, key, route, model] => {
            if let (Some(t), Some(values)) = (tenant(t), decode_u64s::<6>(value)) {
                state.usage.insert(
                    (
                        t,
                        (*day).to_owned(),
                        (*key).to_owned(),
                        (*route).to_owned(),
                        (*model).to_owned(),
                    ),
                    UsageCounts::from_array(values),
                );
            }
        }
        _ => tracing::warn!(key, "unknown record in the ledger; ignored"),
    }
}

/// The stored value of `key` now, or `None` when it is gone.
fn stored_value(state: &State, key: &str) -> Option<Vec<u8>> {
    let parts: Vec<&str> = key.split('\u{0}').collect();
    let tenant = TenantId::try_from((*parts.get(1)?).to_owned()).ok()?;
    match parts.as_slice() {
        ["c", _, owner, period] => state
            .counters
            .get(&(tenant, (*owner).to_owned(), (*period).to_owned()))
            .map(Counter::encode),
        ["o", _, owner, kind] => state
            .overrides
            .get(&(tenant, (*owner).to_owned(), BudgetKind::parse(kind)?))
            .map(|limit| limit.to_le_bytes().to_vec()),
        ["u", _, day, key, route, model] => state
            .usage
            .get(&(
                tenant,
                (*day).to_owned(),
                (*key).to_owned(),
                (*route).to_owned(),
                (*model).to_owned(),
            ))
            .map(|counts| {
                counts
                    .to_array()
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect()
            }),
        _ => None,
    }
}

/// The writer thread: on each wake-up, writes everything changed since the
/// last batch in one transaction; ends when the ledger is dropped.
fn write_loop(
    db: &Database,
    state: &Mutex<State>,
    woken: &mpsc::Receiver<Option<tokio::sync::oneshot::Sender<()>>>,
    metrics: &CostMetrics,
) {
    let mut closing = false;
    let mut last_batch: Option<std::time::Instant> = None;
    while !closing {
        let mut waiting = Vec::new();
        match woken.recv() {
            Ok(done) => waiting.extend(done),
            Err(_) => closing = true,
        }
        // At most one batch per BATCH_INTERVAL: what changes meanwhile joins
        // the next, so a busy ledger costs a commit (and its fsync) every
        // 25 ms, not one per call. Not when closing.
        if let Some(last) = last_batch
            && !closing
        {
            let since = last.elapsed();
            if since < BATCH_INTERVAL {
                thread::sleep(BATCH_INTERVAL - since);
            }
        }
        last_batch = Some(std::time::Instant::now());
        loop {
            match woken.try_recv() {
                Ok(done) => waiting.extend(done),
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => {
                    closing = true;
                    break;
                }
            }
        }
        let batch: Vec<(String, Option<Vec<u8>>)> = {
            let mut state = lock(state);
            let dirty = std::mem::take(&mut state.dirty);
            dirty
                .into_iter()
                .map(|key| {
                    let value = stored_value(&state, &key);
                    (key, value)
                })
                .collect()
        };
        if !batch.is_empty()
            && let Err(err) = write_batch(db, &batch)
        {
            tracing::error!(error = %err, "cannot write the budget ledger; retrying with the next batch");
            metrics.ledger_failure("persist");
            let mut state = lock(state);
            state.dirty.extend(batch.into_iter().map(|(key, _)| key));
        }
        for done in waiting {
            let _ = done.send(());
        }
    }
}

fn write_batch(db: &Database, batch: &[(String, Option<Vec<u8>>)]) -> Result<(), String> {
    let txn = db.begin_write().map_err(|e| e.to_string())?;
    {
        let mut table = txn.open_table(LEDGER).map_err(|e| e.to_string())?;
        for (key, value) in batch {
            match value {
                Some(value) => table.insert(key.as_str(), value.as_slice()),
                None => table.remove(key.as_str()).map(|_| None),
            }
            .map_err(|e| e.to_string())?;
        }
    }
    txn.commit().map_err(|e| e.to_string())
}

#[async_trait::async_trait]
impl Ledger for EmbeddedLedger {
    async fn reserve(&self, reservation: &Reservation) -> Result<Reserved, LedgerError> {
        let id = &reservation.id;
        let answer = {
            let mut state = lock(&self.state);
            if state.open.contains_key(id)
                || state.settled.contains(id)
                || state.expired.contains_key(id)
            {
                return Ok(Reserved::Granted(Vec::new()));
            }
            let uses = match state.check_budgets(reservation) {
                Ok(uses) => uses,
                Err(exceeded) => return Ok(Reserved::OverBudget(exceeded)),
            };
            if let Some((limit, wait)) = state.take_tokens(reservation) {
                return Ok(Reserved::RateLimited { limit, wait });
            }
            let (tokens, nanos) = (reservation.tokens, reservation.cost.nanos());
            for key in counter_keys(reservation) {
                state.add(key, reservation.now_ms, |c| {
                    c.reserved_tokens = c.reserved_tokens.saturating_add(tokens);
                    c.reserved_nanos = c.reserved_nanos.saturating_add(nanos);
                });
            }
            state.open.insert(id.clone(), reservation.clone());
            Reserved::Granted(uses)
        };
        self.wake(None);
        Ok(answer)
    }

    fn settle_now(&self, reservation: &Reservation, spent: &Spent) -> bool {
        lock(&self.state).settle(reservation, spent);
        self.wake(None);
        true
    }

    async fn settle(&self, reservation: &Reservation, spent: &Spent) -> Result<(), LedgerError> {
        lock(&self.state).settle(reservation, spent);
        self.wake(None);
        Ok(())
    }

    async fn sweep(
        &self,
        tenants: &[TenantId],
        now_ms: i64,
    ) -> Result<Vec<(TenantId, usize)>, LedgerError> {
        let mut counts: BTreeMap<TenantId, usize> = BTreeMap::new();
        {
            let mut state = lock(&self.state);
            let expired: Vec<CallId> = state
                .open
                .iter()
                .filter(|(_, r)| r.expires_ms <= now_ms)
                .map(|(id, _)| id.clone())
                .collect();
            for id in expired {
                let Some(reservation) = state.open.remove(&id) else {
                    continue;
                };
                let (tokens, nanos) = (reservation.tokens, reservation.cost.nanos());
                for key in counter_keys(&reservation) {
                    state.add(key, now_ms, |c| {
                        c.reserved_tokens = c.reserved_tokens.saturating_sub(tokens);
                        c.reserved_nanos = c.reserved_nanos.saturating_sub(nanos);
                        c.spent_tokens = c.spent_tokens.saturating_add(tokens);
                        c.spent_nanos = c.spent_nanos.saturating_add(nanos);
                    });
                }
                state.expired.insert(id, now_ms);
                *counts.entry(reservation.tenant.clone()).or_default() += 1;
            }
            state.prune(now_ms);
        }
        self.wake(None);
        Ok(tenants
            .iter()
            .filter_map(|t| counts.get(t).map(|n| (t.clone(), *n)))
            .collect())
    }

    async fn set_override(
        &self,
        tenant: &TenantId,
        owner: &Owner,
        kind: BudgetKind,
        limit: Option<u64>,
    ) -> Result<(), LedgerError> {
        {
            let mut state = lock(&self.state);
            let key = (tenant.clone(), owner.to_string(), kind);
            match limit {
                Some(limit) => state.overrides.insert(key, limit),
                None => state.overrides.remove(&key),
            };
            state
                .dirty
                .insert(stored_override_key(tenant, &owner.to_string(), kind));
        }
        self.flush().await;
        Ok(())
    }

    async fn budgets(
        &self,
        tenant: &TenantId,
        owner: &Owner,
        periods: &Periods,
    ) -> Result<Vec<BudgetState>, LedgerError> {
        let state = lock(&self.state);
        Ok(kinds_of(owner)
            .iter()
            .map(|&kind| {
                let counter = if kind.is_session() {
                    Counter::default()
                } else {
                    state
                        .counters
                        .get(&(
                            tenant.clone(),
                            owner.to_string(),
                            period_name(kind, periods, ""),
                        ))
                        .copied()
                        .unwrap_or_default()
                };
                let (spent, reserved) = if kind.is_usd() {
                    (counter.spent_nanos, counter.reserved_nanos)
                } else {
                    (counter.spent_tokens, counter.reserved_tokens)
                };
                BudgetState {
                    owner: owner.clone(),
                    kind,
                    runtime: state
                        .overrides
                        .get(&(tenant.clone(), owner.to_string(), kind))
                        .copied(),
                    spent,
                    reserved,
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
        let state = lock(&self.state);
        let mut rows = Vec::new();
        for day in days {
            let from = (
                tenant.clone(),
                day.clone(),
                String::new(),
                String::new(),
                String::new(),
            );
            for ((t, d, k, route, model), counts) in state.usage.range(from..) {
                if t != tenant || d != day {
                    break;
                }
                if key.is_some_and(|key| key != k) {
                    continue;
                }
                rows.push(UsageRow {
                    day: d.clone(),
                    key: k.clone(),
                    route: route.clone(),
                    model: model.clone(),
                    counts: *counts,
                });
            }
        }
        Ok(rows)
    }

    async fn check(&self) -> Result<(), LedgerError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::suite;

    fn make() -> suite::Subject {
        let dir = tempfile::tempdir().unwrap();
        let ledger = super::EmbeddedLedger::open(
            &dir.path().join("cost.redb"),
            crate::telemetry::cost::CostMetrics::default(),
            std::time::Duration::from_secs(3600),
            std::time::Duration::from_secs(90 * 86_400),
        )
        .unwrap();
        suite::Subject {
            ledger: std::sync::Arc::new(ledger),
            _backing: Box::new(dir),
        }
    }

    crate::ledger_suite!(make);

    use super::super::{BudgetKind, Ledger, Owner};
    use super::EmbeddedLedger;
    use crate::ids::SessionId;

    fn open(dir: &tempfile::TempDir) -> EmbeddedLedger {
        EmbeddedLedger::open(
            &dir.path().join("cost.redb"),
            crate::telemetry::cost::CostMetrics::default(),
            std::time::Duration::from_secs(3600),
            std::time::Duration::from_secs(90 * 86_400),
        )
        .unwrap()
    }

    async fn spent_and_reserved(ledger: &EmbeddedLedger) -> (u64, u64) {
        let states = ledger
            .budgets(
                &suite::tenant("acme"),
                &Owner::Tenant,
                &suite::day_periods(suite::NOON),
            )
            .await
            .unwrap();
        let day = states
            .iter()
            .find(|s| s.kind == BudgetKind::TokensDay)
            .unwrap();
        (day.spent, day.reserved)
    }

    #[tokio::test]
    async fn spend_survives_a_restart_and_a_crash_charges_what_was_reserved() {
        let dir = tempfile::tempdir().unwrap();
        let session = SessionId::generate();
        let settled = suite::reservation(&session, 1, 100, 10);
        let open_at_crash = suite::reservation(&session, 2, 70, 10);
        {
            let ledger = open(&dir);
            ledger.reserve(&settled).await.unwrap();
            ledger
                .settle(&settled, &suite::spent(20, 5, 3))
                .await
                .unwrap();
            ledger.reserve(&open_at_crash).await.unwrap();
            ledger.flush().await;
            assert_eq!(spent_and_reserved(&ledger).await, (25, 70));
        }
        // The reservation left open is charged in full on start.
        let ledger = open(&dir);
        assert_eq!(spent_and_reserved(&ledger).await, (95, 0));
        let rows = ledger
            .usage(
                &suite::tenant("acme"),
                None,
                &[suite::day_periods(suite::NOON).day],
            )
            .await
            .unwrap();
        assert_eq!(rows[0].counts.output_tokens, 5);
    }

    #[tokio::test]
    async fn old_counters_and_usage_are_pruned_on_disk_too() {
        let dir = tempfile::tempdir().unwrap();
        let call = suite::reservation(&SessionId::generate(), 1, 100, 10);
        {
            let ledger = open(&dir);
            ledger.reserve(&call).await.unwrap();
            ledger.settle(&call, &suite::spent(20, 5, 3)).await.unwrap();
            // Three days on: the day's counters go; the month's stay. 91 days
            // on, past the usage retention of 90 days, the usage goes too.
            ledger
                .sweep(&[], suite::NOON + 3 * 86_400_000)
                .await
                .unwrap();
            assert_eq!(spent_and_reserved(&ledger).await, (0, 0));
            let month = ledger
                .budgets(
                    &suite::tenant("acme"),
                    &Owner::Tenant,
                    &suite::day_periods(suite::NOON),
                )
                .await
                .unwrap()
                .into_iter()
                .find(|s| s.kind == BudgetKind::TokensMonth)
                .unwrap();
            assert_eq!(month.spent, 25);
            ledger
                .sweep(&[], suite::NOON + 91 * 86_400_000)
                .await
                .unwrap();
            ledger.flush().await;
        }
        let ledger = open(&dir);
        let rows = ledger
            .usage(
                &suite::tenant("acme"),
                None,
                &[suite::day_periods(suite::NOON).day],
            )
            .await
            .unwrap();
        assert!(rows.is_empty(), "{rows:?}");
    }
}
