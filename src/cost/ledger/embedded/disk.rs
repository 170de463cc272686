//! The embedded ledger on disk: `cost.redb`, one table of counters, overrides
//! and usage, written behind by a thread in batches.

use std::sync::Mutex;
use std::sync::mpsc;
use std::thread;

use redb::{Database, TableDefinition};

use super::super::{BudgetKind, UsageCounts};
use super::book::{Counter, State, decode_u64s};
use super::lock;
use crate::ids::TenantId;
use crate::telemetry::cost::CostMetrics;

pub(super) const LEDGER: TableDefinition<&str, &[u8]> = TableDefinition::new("ledger");

/// The shortest time between two batches of the writer: what a crash can lose
/// at most, beyond the batch being written.
pub(super) const BATCH_INTERVAL: std::time::Duration = std::time::Duration::from_millis(25);

pub(super) fn load(state: &mut State, key: &str, value: &[u8]) {
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
pub(super) fn stored_value(state: &State, key: &str) -> Option<Vec<u8>> {
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
pub(super) fn write_loop(
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

pub(super) fn write_batch(
    db: &Database,
    batch: &[(String, Option<Vec<u8>>)],
) -> Result<(), String> {
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
