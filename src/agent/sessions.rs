//! Conversation sessions: the [`SessionStore`] trait and its embedded default,
//! a redb database under `storage.data_dir`.
//!
//! A session belongs to one tenant; every operation takes the caller's tenant, so
//! another tenant's session is indistinguishable from one that does not exist. A
//! turn is written in one durable transaction when it completes, so a failed or
//! cancelled turn leaves the history as it was, and a crash (kill -9 included)
//! loses no completed turn. Two turns racing on one session cannot both land: the
//! second sees the history changed under it and gets a conflict.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::identity::TenantId;
use crate::llm::ChatMessage;

const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions");

/// A session id: 1 to 128 characters from `[A-Za-z0-9_.-]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SessionId(String);

impl SessionId {
    /// A new random (time-ordered) id.
    pub fn generate() -> Self {
        Self(uuid::Uuid::now_v7().to_string())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for SessionId {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        let valid = (1..=128).contains(&value.len())
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if valid {
            Ok(Self(value))
        } else {
            Err("must be 1 to 128 characters from [A-Za-z0-9_.-]".to_owned())
        }
    }
}

/// A stored conversation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// The session's id.
    pub id: SessionId,
    /// Completed turns so far; the version that guards concurrent writes.
    pub turns: u64,
    /// Unix milliseconds of creation.
    pub created_at_ms: i64,
    /// Unix milliseconds of the last completed turn.
    pub updated_at_ms: i64,
    /// The conversation, oldest first (no system prompt).
    pub messages: Vec<ChatMessage>,
}

/// Bounds on stored sessions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionLimits {
    /// A session untouched for longer is gone.
    pub max_age: Duration,
    /// Messages kept per session; the oldest go first, a tool call with its results.
    pub max_messages: usize,
}

/// Why a session operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Another turn completed on this session since this one started.
    #[error("session {0} changed while this turn ran; retry with the new history")]
    Conflict(String),
    /// The store failed.
    #[error("session store failure: {0}")]
    Storage(String),
}

/// Where sessions live.
#[async_trait::async_trait]
pub trait SessionStore: Send + Sync + std::fmt::Debug {
    /// The tenant's session, if it exists and has not expired.
    async fn load(
        &self,
        tenant: &TenantId,
        id: &SessionId,
    ) -> Result<Option<Session>, SessionError>;

    /// Appends one completed turn. `expected_turns` is the session's `turns` when
    /// the turn started (0 for a new session); if it changed, nothing is written.
    async fn append_turn(
        &self,
        tenant: &TenantId,
        id: &SessionId,
        expected_turns: u64,
        messages: Vec<ChatMessage>,
    ) -> Result<Session, SessionError>;

    /// Deletes the tenant's session; false when there was none.
    async fn delete(&self, tenant: &TenantId, id: &SessionId) -> Result<bool, SessionError>;
}

/// The embedded store: one redb file.
#[derive(Debug, Clone)]
pub struct RedbSessionStore {
    db: Arc<Database>,
    limits: SessionLimits,
}

fn storage(err: impl std::fmt::Display) -> SessionError {
    SessionError::Storage(err.to_string())
}

fn key(tenant: &TenantId, id: &SessionId) -> String {
    // Tenant ids and session ids cannot contain '/', so keys cannot collide.
    format!("{}/{}", tenant.as_str(), id.as_str())
}

/// redb's page cache. Its default (1 GiB) lets resident memory grow with the
/// number of sessions stored; a turn reads one session and writes it back, so a
/// small cache costs little (pages of recent sessions stay in the OS page cache).
const CACHE_BYTES: usize = 16 * 1024 * 1024;

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

impl RedbSessionStore {
    /// Opens (or creates) the database at `path`. Blocking: call from a blocking
    /// thread or at start.
    pub fn open(path: &Path, limits: SessionLimits) -> Result<Self, SessionError> {
        let db = redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(storage)?;
        let txn = db.begin_write().map_err(storage)?;
        txn.open_table(SESSIONS).map_err(storage)?;
        txn.commit().map_err(storage)?;
        Ok(Self {
            db: Arc::new(db),
            limits,
        })
    }

    fn expired(&self, session: &Session) -> bool {
        let max_age = i64::try_from(self.limits.max_age.as_millis()).unwrap_or(i64::MAX);
        now_ms().saturating_sub(session.updated_at_ms) > max_age
    }

    fn read(&self, key: &str) -> Result<Option<Session>, SessionError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let table = txn.open_table(SESSIONS).map_err(storage)?;
        let Some(bytes) = table.get(key).map_err(storage)? else {
            return Ok(None);
        };
        let session: Session = serde_json::from_slice(bytes.value()).map_err(storage)?;
        Ok((!self.expired(&session)).then_some(session))
    }

    fn write_turn(
        &self,
        key: &str,
        id: &SessionId,
        expected_turns: u64,
        messages: Vec<ChatMessage>,
    ) -> Result<Session, SessionError> {
        let txn = self.db.begin_write().map_err(storage)?;
        let session = {
            let mut table = txn.open_table(SESSIONS).map_err(storage)?;
            let existing: Option<Session> = match table.get(key).map_err(storage)? {
                Some(bytes) => Some(serde_json::from_slice(bytes.value()).map_err(storage)?),
                None => None,
            };
            let now = now_ms();
            let mut session = match existing.filter(|s| !self.expired(s)) {
                Some(session) => session,
                None => Session {
                    id: id.clone(),
                    turns: 0,
                    created_at_ms: now,
                    updated_at_ms: now,
                    messages: Vec::new(),
                },
            };
            if session.turns != expected_turns {
                return Err(SessionError::Conflict(id.as_str().to_owned()));
            }
            session.messages.extend(messages);
            trim_oldest(&mut session.messages, self.limits.max_messages);
            session.turns += 1;
            session.updated_at_ms = now;
            let bytes = serde_json::to_vec(&session).map_err(storage)?;
            table.insert(key, bytes.as_slice()).map_err(storage)?;
            session
        };
        txn.commit().map_err(storage)?;
        Ok(session)
    }

    fn remove(&self, key: &str) -> Result<bool, SessionError> {
        let txn = self.db.begin_write().map_err(storage)?;
        let existed = {
            let mut table = txn.open_table(SESSIONS).map_err(storage)?;
            let removed = table.remove(key).map_err(storage)?;
            removed.is_some()
        };
        txn.commit().map_err(storage)?;
        Ok(existed)
    }
}

/// Drops the oldest messages until at most `max` remain, never leaving a tool
/// result without the call before it.
fn trim_oldest(messages: &mut Vec<ChatMessage>, max: usize) {
    if messages.len() <= max {
        return;
    }
    let mut start = messages.len() - max;
    while matches!(messages.get(start), Some(ChatMessage::Tool { .. })) {
        start += 1;
    }
    messages.drain(..start);
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, SessionError> + Send + 'static,
) -> Result<T, SessionError> {
    tokio::task::spawn_blocking(work).await.map_err(storage)?
}

#[async_trait::async_trait]
impl SessionStore for RedbSessionStore {
    async fn load(
        &self,
        tenant: &TenantId,
        id: &SessionId,
    ) -> Result<Option<Session>, SessionError> {
        let (store, key) = (self.clone(), key(tenant, id));
        blocking(move || store.read(&key)).await
    }

    async fn append_turn(
        &self,
        tenant: &TenantId,
        id: &SessionId,
        expected_turns: u64,
        messages: Vec<ChatMessage>,
    ) -> Result<Session, SessionError> {
        let (store, key, id) = (self.clone(), key(tenant, id), id.clone());
        blocking(move || store.write_turn(&key, &id, expected_turns, messages)).await
    }

    async fn delete(&self, tenant: &TenantId, id: &SessionId) -> Result<bool, SessionError> {
        let (store, key) = (self.clone(), key(tenant, id));
        blocking(move || store.remove(&key)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::ToolCall;

    const LIMITS: SessionLimits = SessionLimits {
        max_age: Duration::from_secs(3600),
        max_messages: 100,
    };

    fn user(text: &str) -> ChatMessage {
        ChatMessage::User {
            content: text.into(),
        }
    }

    fn tenant(name: &str) -> TenantId {
        TenantId::try_from(name.to_owned()).unwrap()
    }

    /// A store in a fresh directory, which lives as long as the returned guard.
    fn store(limits: SessionLimits) -> (tempfile::TempDir, RedbSessionStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbSessionStore::open(&dir.path().join("s.redb"), limits).unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn turns_persist_across_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sessions.redb");
        let id = SessionId::generate();
        {
            let store = RedbSessionStore::open(&path, LIMITS).unwrap();
            store
                .append_turn(&tenant("a"), &id, 0, vec![user("one")])
                .await
                .unwrap();
            store
                .append_turn(&tenant("a"), &id, 1, vec![user("two")])
                .await
                .unwrap();
        }
        let store = RedbSessionStore::open(&path, LIMITS).unwrap();
        let session = store.load(&tenant("a"), &id).await.unwrap().unwrap();
        assert_eq!(session.turns, 2);
        assert_eq!(session.messages, [user("one"), user("two")]);
    }

    #[tokio::test]
    async fn tenants_cannot_see_or_delete_each_others_sessions() {
        let (_dir, store) = store(LIMITS);
        let id = SessionId::generate();
        store
            .append_turn(&tenant("a"), &id, 0, vec![user("secret")])
            .await
            .unwrap();
        assert_eq!(store.load(&tenant("b"), &id).await.unwrap(), None);
        assert!(!store.delete(&tenant("b"), &id).await.unwrap());
        assert!(store.load(&tenant("a"), &id).await.unwrap().is_some());
        assert!(store.delete(&tenant("a"), &id).await.unwrap());
        assert_eq!(store.load(&tenant("a"), &id).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_racing_turn_is_a_conflict_and_writes_nothing() {
        let (_dir, store) = store(LIMITS);
        let id = SessionId::generate();
        store
            .append_turn(&tenant("a"), &id, 0, vec![user("first")])
            .await
            .unwrap();
        let err = store
            .append_turn(&tenant("a"), &id, 0, vec![user("late")])
            .await
            .unwrap_err();
        assert!(matches!(err, SessionError::Conflict(_)), "{err}");
        let session = store.load(&tenant("a"), &id).await.unwrap().unwrap();
        assert_eq!(session.messages, [user("first")]);
    }

    #[tokio::test]
    async fn expired_sessions_are_gone() {
        let dir = tempfile::tempdir().unwrap();
        let limits = SessionLimits {
            max_age: Duration::ZERO,
            ..LIMITS
        };
        let store = RedbSessionStore::open(&dir.path().join("s.redb"), limits).unwrap();
        let id = SessionId::generate();
        store
            .append_turn(&tenant("a"), &id, 0, vec![user("x")])
            .await
            .unwrap();
        // Age is measured in whole milliseconds; wait for the clock to pass one.
        let written = now_ms();
        while now_ms() <= written {
            tokio::task::yield_now().await;
        }
        assert_eq!(store.load(&tenant("a"), &id).await.unwrap(), None);
        // Continuing an expired session starts it afresh.
        let session = store
            .append_turn(&tenant("a"), &id, 0, vec![user("y")])
            .await
            .unwrap();
        assert_eq!(session.messages, [user("y")]);
    }

    #[test]
    fn trimming_never_orphans_a_tool_result() {
        let call = ChatMessage::Assistant {
            content: String::new(),
            tool_calls: vec![ToolCall {
                id: "c".into(),
                name: "t".into(),
                arguments: "{}".into(),
            }],
        };
        let result = ChatMessage::Tool {
            call_id: "c".into(),
            content: "r".into(),
        };
        let mut messages = vec![user("a"), call, result.clone(), user("b")];
        trim_oldest(&mut messages, 2);
        assert_eq!(messages, [user("b")]);
        let mut messages = vec![user("a"), user("b"), user("c")];
        trim_oldest(&mut messages, 2);
        assert_eq!(messages, [user("b"), user("c")]);
    }

    #[test]
    fn session_ids_are_validated() {
        assert!(SessionId::try_from("abc-123_X.y".to_owned()).is_ok());
        for bad in ["", "a/b", "a b", &"x".repeat(129)] {
            assert!(SessionId::try_from(bad.to_owned()).is_err(), "{bad:?}");
        }
    }
}
