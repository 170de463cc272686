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

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;

use redb::{Database, ReadableDatabase, ReadableTable};

use super::{
    BudgetKind, BudgetState, CallId, Ledger, LedgerError, Owner, Reservation, Reserved, Spent,
    UsageRow, kinds_of,
};
use crate::cost::period::Periods;
use crate::ids::TenantId;
use crate::telemetry::cost::CostMetrics;

mod book;
mod disk;

use book::{Counter, State, counter_keys, period_name, stored_counter_key, stored_override_key};
use disk::{LEDGER, load, write_loop};

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
        self.settle_now(reservation, spent);
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
