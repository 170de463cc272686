//! The embedded session store: one redb file, read from blocking threads and
//! written by one writer thread that commits the turns waiting for it together.
//!
//! Every commit is durable (redb's default: the file is synced before the commit
//! returns), and a sync costs milliseconds. With one transaction per turn, each
//! turn also waited for the syncs of the turns queued before it: at 1,000 turns/s
//! that queue showed as a 20.9 ms p99 of added total latency (3.1 ms since). So
//! writes go through a queue to a single writer thread (group commit): it takes
//! every write waiting (up to [`MAX_BATCH`]) into one transaction, applies them
//! in arrival order, each with its own check, and commits once. A caller hears
//! back only after that commit, so an acknowledged turn is on disk.
//!
//! Within a batch each write still stands alone: a turn refused by its check (a
//! conflict, including with an earlier turn of the same batch) changes nothing and
//! the others land. A storage failure fails the whole batch (the transaction is
//! aborted) and every write in it reports it.

use std::path::Path;
use std::sync::{Arc, mpsc};
use std::thread;

use redb::{Database, ReadableDatabase, ReadableTable, Table, TableDefinition};
use tokio::sync::oneshot;

use super::{
    Appended, Session, SessionError, SessionLimits, SessionMessage, SessionStore, trim_oldest,
};
use crate::clock::Clock;
use crate::ids::{SessionId, TenantId, TurnId};
use crate::llm::ChatMessage;

const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions");

/// redb's page cache. Its default (1 GiB) lets resident memory grow with the
/// number of sessions stored; a turn reads one session and writes it back, so a
/// small cache costs little (pages of recent sessions stay in the OS page cache).
/// It fills at the rate sessions are written and then stays at its size: at 200
/// new sessions/s a 16 MiB cache took 3 minutes to fill (RSS 23 → 42 MB); 4 MiB
/// fills within the first minute.
const CACHE_BYTES: usize = 4 * 1024 * 1024;

/// Most writes committed in one transaction. Bounds the time the first write of
/// a batch waits for the others to be applied.
const MAX_BATCH: usize = 256;

/// The embedded store: one redb file.
#[derive(Debug, Clone)]
pub struct RedbSessionStore {
    db: Arc<Database>,
    limits: SessionLimits,
    clock: Clock,
    writer: Arc<Writer>,
}

/// The queue to the writer thread. Dropping the last handle closes the queue;
/// the thread commits what is still queued and ends, and the drop waits for it,
/// so the file is closed when the store is gone.
#[derive(Debug)]
struct Writer {
    queue: Option<mpsc::Sender<Write>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Drop for Writer {
    fn drop(&mut self) {
        drop(self.queue.take());
        if let Some(thread) = self.thread.take() {
            // A panicked writer already failed its callers (their replies dropped).
            let _ = thread.join();
        }
    }
}

type Reply<T> = oneshot::Sender<Result<T, SessionError>>;

/// A write waiting for the writer thread.
enum Write {
    Append {
        key: String,
        id: SessionId,
        expected_turns: u64,
        messages: Vec<SessionMessage>,
        reply: Reply<Session>,
    },
    Delete {
        key: String,
        reply: Reply<bool>,
    },
    /// Deletes every session older than `max_age`.
    Sweep {
        reply: Reply<usize>,
    },
}

/// A write applied to the open transaction (or not), with its caller's reply.
enum Staged {
    Appended(Result<Session, SessionError>, Reply<Session>),
    Deleted(Result<bool, SessionError>, Reply<bool>),
    Swept(Result<usize, SessionError>, Reply<usize>),
}

fn storage(err: impl std::fmt::Display) -> SessionError {
    SessionError::Storage(err.to_string())
}

fn key(tenant: &TenantId, id: &SessionId) -> String {
    // Tenant ids and session ids cannot contain '/', so keys cannot collide.
    format!("{}/{}", tenant.as_str(), id.as_str())
}

fn expired(limits: SessionLimits, now_ms: i64, session: &Session) -> bool {
    let max_age = i64::try_from(limits.max_age.as_millis()).unwrap_or(i64::MAX);
    now_ms.saturating_sub(session.updated_at_ms) > max_age
}

fn decode(bytes: &[u8]) -> Result<Session, SessionError> {
    serde_json::from_slice(bytes).map_err(storage)
}

impl Write {
    /// Applies the write to the batch's table. A storage error is returned in the
    /// staged result; the caller aborts the batch on it.
    fn apply(self, table: &mut Table<&str, &[u8]>, limits: SessionLimits, now_ms: i64) -> Staged {
        match self {
            Write::Append {
                key,
                id,
                expected_turns,
                messages,
                reply,
            } => {
                let result = append(table, limits, now_ms, &key, id, expected_turns, messages);
                Staged::Appended(result, reply)
            }
            Write::Delete { key, reply } => {
                let result = table.remove(key.as_str()).map(|old| old.is_some());
                Staged::Deleted(result.map_err(storage), reply)
            }
            Write::Sweep { reply } => Staged::Swept(sweep(table, limits, now_ms), reply),
        }
    }

    /// The write, not applied because its batch failed before reaching it.
    fn unapplied(self) -> Staged {
        let skipped = || storage("not applied");
        match self {
            Write::Append { reply, .. } => Staged::Appended(Err(skipped()), reply),
            Write::Delete { reply, .. } => Staged::Deleted(Err(skipped()), reply),
            Write::Sweep { reply } => Staged::Swept(Err(skipped()), reply),
        }
    }
}

impl Staged {
    fn storage_failure(&self) -> Option<&str> {
        match self {
            Staged::Appended(Err(SessionError::Storage(e)), _)
            | Staged::Deleted(Err(SessionError::Storage(e)), _)
            | Staged::Swept(Err(SessionError::Storage(e)), _) => Some(e),
            _ => None,
        }
    }

    /// Answers the caller: its own result, or the batch's failure.
    fn answer(self, batch_failure: Option<&str>) {
        // A caller that went away (its turn was cancelled) needs no answer.
        match self {
            Staged::Appended(result, reply) => {
                let _ = reply.send(batch_failure.map_or(result, |e| Err(storage(e))));
            }
            Staged::Deleted(result, reply) => {
                let _ = reply.send(batch_failure.map_or(result, |e| Err(storage(e))));
            }
            Staged::Swept(result, reply) => {
                let _ = reply.send(batch_failure.map_or(result, |e| Err(storage(e))));
            }
        }
    }
}

fn append(
    table: &mut Table<&str, &[u8]>,
    limits: SessionLimits,
    now: i64,
    key: &str,
    id: SessionId,
    expected_turns: u64,
    messages: Vec<SessionMessage>,
) -> Result<Session, SessionError> {
    let existing = match table.get(key).map_err(storage)? {
        Some(bytes) => Some(decode(bytes.value())?),
        None => None,
    };
    let mut session = match existing.filter(|s| !expired(limits, now, s)) {
        Some(session) => session,
        None => Session {
            id,
            turns: 0,
            created_at_ms: now,
            updated_at_ms: now,
            messages: Vec::new(),
        },
    };
    if session.turns != expected_turns {
        return Err(SessionError::Conflict(session.id));
    }
    session.messages.extend(messages);
    trim_oldest(&mut session.messages, limits.max_messages);
    session.turns += 1;
    session.updated_at_ms = now;
    let bytes = serde_json::to_vec(&session).map_err(storage)?;
    table.insert(key, bytes.as_slice()).map_err(storage)?;
    Ok(session)
}

/// Removes every expired session; returns how many. A record that cannot be
/// decoded is left alone (and logged): deleting what cannot be read would lose it.
fn sweep(
    table: &mut Table<&str, &[u8]>,
    limits: SessionLimits,
    now_ms: i64,
) -> Result<usize, SessionError> {
    let mut expired_keys = Vec::new();
    for entry in table.iter().map_err(storage)? {
        let (key, value) = entry.map_err(storage)?;
        match decode(value.value()) {
            Ok(session) if expired(limits, now_ms, &session) => {
                expired_keys.push(key.value().to_owned());
            }
            Ok(_) => {}
            Err(err) => tracing::warn!(key = key.value(), error = %err, "undecodable session kept"),
        }
    }
    for key in &expired_keys {
        table.remove(key.as_str()).map_err(storage)?;
    }
    Ok(expired_keys.len())
}

/// The writer thread: one transaction per batch of waiting writes, until the
/// queue closes.
fn write_loop(db: &Database, limits: SessionLimits, clock: &Clock, queue: &mpsc::Receiver<Write>) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        batch.extend(queue.try_iter().take(MAX_BATCH - 1));
        write_batch(db, limits, clock.unix_ms(), batch);
    }
}

fn write_batch(db: &Database, limits: SessionLimits, now_ms: i64, batch: Vec<Write>) {
    let mut staged = Vec::with_capacity(batch.len());
    let failure = apply_and_commit(db, limits, now_ms, batch, &mut staged).err();
    if let Some(failure) = &failure {
        tracing::error!(error = %failure, writes = staged.len(), "session batch not written");
    }
    for write in staged {
        write.answer(failure.as_deref());
    }
}

/// Applies the batch in one transaction and commits it. On a storage failure
/// the transaction is dropped (aborted) and the rest of the batch is staged as
/// not applied.
fn apply_and_commit(
    db: &Database,
    limits: SessionLimits,
    now_ms: i64,
    batch: Vec<Write>,
    staged: &mut Vec<Staged>,
) -> Result<(), String> {
    let mut writes = batch.into_iter();
    let result = apply_each(db, limits, now_ms, &mut writes, staged);
    staged.extend(writes.map(Write::unapplied));
    result
}

fn apply_each(
    db: &Database,
    limits: SessionLimits,
    now_ms: i64,
    writes: &mut impl Iterator<Item = Write>,
    staged: &mut Vec<Staged>,
) -> Result<(), String> {
    let txn = db.begin_write().map_err(|e| e.to_string())?;
    {
        let mut table = txn.open_table(SESSIONS).map_err(|e| e.to_string())?;
        for write in writes {
            let write = write.apply(&mut table, limits, now_ms);
            let failure = write.storage_failure().map(str::to_owned);
            staged.push(write);
            if let Some(failure) = failure {
                return Err(failure);
            }
        }
    }
    txn.commit().map_err(|e| e.to_string())
}

impl RedbSessionStore {
    /// Opens (or creates) the database at `path` and starts its writer thread.
    /// Session ages are read from `clock`. Blocking: call from a blocking thread
    /// or at start.
    pub fn open(path: &Path, limits: SessionLimits, clock: Clock) -> Result<Self, SessionError> {
        let db = redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(storage)?;
        let txn = db.begin_write().map_err(storage)?;
        txn.open_table(SESSIONS).map_err(storage)?;
        txn.commit().map_err(storage)?;
        let db = Arc::new(db);
        let (queue, writes) = mpsc::channel();
        let thread = thread::Builder::new()
            .name("agentd-sessions".into())
            .spawn({
                let (db, clock) = (Arc::clone(&db), clock.clone());
                move || write_loop(&db, limits, &clock, &writes)
            })
            .map_err(storage)?;
        Ok(Self {
            db,
            limits,
            clock,
            writer: Arc::new(Writer {
                queue: Some(queue),
                thread: Some(thread),
            }),
        })
    }

    fn read(&self, key: &str) -> Result<Option<Session>, SessionError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let table = txn.open_table(SESSIONS).map_err(storage)?;
        let Some(bytes) = table.get(key).map_err(storage)? else {
            return Ok(None);
        };
        let session = decode(bytes.value())?;
        Ok((!expired(self.limits, self.clock.unix_ms(), &session)).then_some(session))
    }

    /// Queues a write and waits for the commit of its batch.
    async fn submit<T>(&self, write: impl FnOnce(Reply<T>) -> Write) -> Result<T, SessionError> {
        let stopped = || storage("the session writer has stopped");
        let (reply, answer) = oneshot::channel();
        let queue = self.writer.queue.as_ref().ok_or_else(stopped)?;
        queue.send(write(reply)).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

#[async_trait::async_trait]
impl SessionStore for RedbSessionStore {
    async fn load(
        &self,
        tenant: &TenantId,
        id: &SessionId,
    ) -> Result<Option<Session>, SessionError> {
        let (store, key) = (self.clone(), key(tenant, id));
        tokio::task::spawn_blocking(move || store.read(&key))
            .await
            .map_err(storage)?
    }

    async fn append_turn(
        &self,
        tenant: &TenantId,
        id: &SessionId,
        expected_turns: u64,
        turn: &TurnId,
        messages: Vec<ChatMessage>,
    ) -> Result<Appended, SessionError> {
        let (key, id) = (key(tenant, id), id.clone());
        let messages = messages
            .into_iter()
            .map(|message| SessionMessage {
                message,
                turn_id: Some(turn.clone()),
            })
            .collect();
        let session = self
            .submit(|reply| Write::Append {
                key,
                id,
                expected_turns,
                messages,
                reply,
            })
            .await?;
        Ok(Appended {
            turns: session.turns,
            replication_unconfirmed: false,
        })
    }

    async fn delete(&self, tenant: &TenantId, id: &SessionId) -> Result<bool, SessionError> {
        let key = key(tenant, id);
        self.submit(|reply| Write::Delete { key, reply }).await
    }

    async fn sweep_expired(&self) -> Result<usize, SessionError> {
        self.submit(|reply| Write::Sweep { reply }).await
    }

    async fn check(&self) -> Result<(), SessionError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || {
            let txn = store.db.begin_read().map_err(storage)?;
            txn.open_table(SESSIONS).map_err(storage)?;
            Ok(())
        })
        .await
        .map_err(storage)?
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::agent::sessions::suite::{
        self, LIMITS, Subject, append, manual_clock, tenant, user,
    };

    /// A store in a fresh directory, on `clock`.
    fn make(limits: SessionLimits, clock: Clock) -> Subject {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbSessionStore::open(&dir.path().join("s.redb"), limits, clock.clone());
        Subject {
            store: Arc::new(store.unwrap()),
            clock,
            _backing: Box::new(dir),
        }
    }

    suite::session_store_suite!(super::make);

    /// A store in a fresh directory, which lives as long as the returned guard.
    fn store(limits: SessionLimits) -> (tempfile::TempDir, RedbSessionStore) {
        let dir = tempfile::tempdir().unwrap();
        let store =
            RedbSessionStore::open(&dir.path().join("s.redb"), limits, Clock::system()).unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn turns_persist_across_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sessions.redb");
        let id = SessionId::generate();
        {
            let store = RedbSessionStore::open(&path, LIMITS, Clock::system()).unwrap();
            append(&store, "a", &id, 0, "one").await.unwrap();
            append(&store, "a", &id, 1, "two").await.unwrap();
        }
        let store = RedbSessionStore::open(&path, LIMITS, Clock::system()).unwrap();
        let session = store.load(&tenant("a"), &id).await.unwrap().unwrap();
        assert_eq!(session.turns, 2);
        assert_eq!(session.history(), [user("one"), user("two")]);
        let turns: Vec<_> = session.messages.iter().map(|m| m.turn_id.clone()).collect();
        assert!(turns[0].is_some() && turns[1].is_some() && turns[0] != turns[1]);
    }

    #[tokio::test]
    async fn a_sweep_deletes_expired_sessions_and_keeps_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let clock = manual_clock();
        let store =
            RedbSessionStore::open(&dir.path().join("s.redb"), LIMITS, clock.clone()).unwrap();
        let (old, older, recent) = (
            SessionId::generate(),
            SessionId::generate(),
            SessionId::generate(),
        );
        for id in [&old, &older] {
            append(&store, "a", id, 0, "x").await.unwrap();
        }
        clock.advance(Duration::from_secs(600));
        append(&store, "b", &recent, 0, "y").await.unwrap();
        assert_eq!(store.sweep_expired().await.unwrap(), 0);
        clock.advance(LIMITS.max_age - Duration::from_secs(599));
        assert_eq!(store.sweep_expired().await.unwrap(), 2);
        let txn = store.db.begin_read().unwrap();
        let table = txn.open_table(SESSIONS).unwrap();
        let keys: Vec<String> = table
            .iter()
            .unwrap()
            .map(|entry| entry.unwrap().0.value().to_owned())
            .collect();
        assert_eq!(keys, [key(&tenant("b"), &recent)]);
        assert!(store.load(&tenant("b"), &recent).await.unwrap().is_some());
    }

    fn append_write(key: &str, expected_turns: u64, text: &str) -> (Write, AnswerOf<Session>) {
        let (reply, answer) = oneshot::channel();
        let write = Write::Append {
            key: key.into(),
            id: SessionId::try_from(key.rsplit('/').next().unwrap().to_owned()).unwrap(),
            expected_turns,
            messages: vec![SessionMessage {
                message: user(text),
                turn_id: None,
            }],
            reply,
        };
        (write, answer)
    }

    type AnswerOf<T> = oneshot::Receiver<Result<T, SessionError>>;

    #[tokio::test]
    async fn a_batch_checks_each_write_against_the_ones_before_it() {
        let (_dir, store) = store(LIMITS);
        let (first, first_answer) = append_write("a/s1", 0, "first");
        let (racing, racing_answer) = append_write("a/s1", 0, "racing");
        let (next, next_answer) = append_write("a/s1", 1, "next");
        let (other, other_answer) = append_write("a/s2", 0, "other");
        write_batch(
            &store.db,
            LIMITS,
            store.clock.unix_ms(),
            vec![first, racing, next, other],
        );
        assert_eq!(first_answer.await.unwrap().unwrap().turns, 1);
        let err = racing_answer.await.unwrap().unwrap_err();
        assert!(matches!(err, SessionError::Conflict(_)), "{err}");
        assert_eq!(next_answer.await.unwrap().unwrap().turns, 2);
        assert_eq!(other_answer.await.unwrap().unwrap().turns, 1);
        let s1 = SessionId::try_from("s1".to_owned()).unwrap();
        let stored = store.load(&tenant("a"), &s1).await.unwrap().unwrap();
        assert_eq!(stored.history(), [user("first"), user("next")]);
    }

    #[tokio::test]
    async fn a_storage_failure_fails_the_whole_batch_and_writes_none_of_it() {
        let (_dir, store) = store(LIMITS);
        let kept = SessionId::try_from("kept".to_owned()).unwrap();
        append(&store, "a", &kept, 0, "stored before")
            .await
            .unwrap();
        // A record that cannot be decoded: appending to it is a storage failure.
        let txn = store.db.begin_write().unwrap();
        txn.open_table(SESSIONS)
            .unwrap()
            .insert("a/broken", b"not json".as_slice())
            .unwrap();
        txn.commit().unwrap();

        let (fresh, fresh_answer) = append_write("a/fresh", 0, "lost");
        let (broken, broken_answer) = append_write("a/broken", 0, "x");
        let (after, after_answer) = append_write("a/kept", 1, "lost too");
        write_batch(
            &store.db,
            LIMITS,
            store.clock.unix_ms(),
            vec![fresh, broken, after],
        );
        for answer in [fresh_answer, broken_answer, after_answer] {
            let err = answer.await.unwrap().unwrap_err();
            assert!(matches!(err, SessionError::Storage(_)), "{err}");
        }
        let fresh = SessionId::try_from("fresh".to_owned()).unwrap();
        assert_eq!(store.load(&tenant("a"), &fresh).await.unwrap(), None);
        let stored = store.load(&tenant("a"), &kept).await.unwrap().unwrap();
        assert_eq!(stored.history(), [user("stored before")]);
    }
}
