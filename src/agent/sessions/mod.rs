//! Conversation sessions: the [`SessionStore`] trait, its embedded default (a
//! redb database under `storage.data_dir`, [`RedbSessionStore`]) and the Redis
//! store several processes share ([`RedisSessionStore`]). Both pass the same
//! behaviour suite (`suite.rs`).
//!
//! A session belongs to one tenant; every operation takes the caller's tenant, so
//! another tenant's session is indistinguishable from one that does not exist. A
//! turn is written in one durable transaction when it completes, so a failed or
//! cancelled turn leaves the history as it was, and a crash (kill -9 included)
//! loses no completed turn. Two turns racing on one session cannot both land: the
//! second sees the history changed under it and gets a conflict.

mod embedded;
mod redis;
#[cfg(test)]
mod suite;

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ids::{SessionId, TenantId, TurnId};
use crate::llm::ChatMessage;

pub use embedded::RedbSessionStore;
pub use redis::{RECORD_FORMAT, RedisSessionStore, ReplicaWait};

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
    pub messages: Vec<SessionMessage>,
}

impl Session {
    /// The conversation as the model sees it.
    pub fn history(&self) -> Vec<ChatMessage> {
        self.messages.iter().map(|m| m.message.clone()).collect()
    }
}

/// One stored message and the turn that added it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionMessage {
    /// The message.
    #[serde(flatten)]
    pub message: ChatMessage,
    /// The turn that added it; `None` in sessions stored before turns had ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turn_id: Option<TurnId>,
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
    /// The tenant has no such session (or it has expired).
    #[error("session {0} not found")]
    NotFound(SessionId),
    /// Another turn completed on this session since this one started.
    #[error("session {0} changed while this turn ran; retry with the new history")]
    Conflict(SessionId),
    /// The store cannot be reached or did not answer a read in time. Nothing
    /// was written (a write whose connection broke after it was sent, and that
    /// could not be resent, may have landed, whole). Retrying later may succeed.
    #[error("session store unavailable: {0}")]
    Unavailable(String),
    /// A write was sent but not answered in time: it may still land, whole, or
    /// never. Retrying the turn could store it twice.
    #[error(
        "the session store did not confirm the write in time: {0}; the turn may or may not \
         be stored (read the session before retrying it)"
    )]
    WriteUnknown(String),
    /// The store refuses writes because it is full; nothing was written.
    #[error("session store full: {0}")]
    Full(String),
    /// The session was written by an agentd whose record format this one cannot
    /// read (another major version).
    #[error(
        "session {id} is stored in record format {format:?}, which this agentd cannot read \
         (it reads {supported} and its minor versions)"
    )]
    UnsupportedFormat {
        /// The session.
        id: SessionId,
        /// The format found.
        format: String,
        /// The format this version writes.
        supported: &'static str,
    },
    /// The store failed.
    #[error("session store failure: {0}")]
    Storage(String),
}

/// A turn appended to its session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Appended {
    /// The session's completed turns, this one included.
    pub turns: u64,
    /// The write is on the primary but the configured replicas did not confirm
    /// it in time. The turn stands; only its replication is unknown.
    pub replication_unconfirmed: bool,
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

    /// Appends one completed turn, its messages marked with `turn`.
    /// `expected_turns` is the session's `turns` when the turn started (0 for a
    /// new session); if it changed, nothing is written.
    async fn append_turn(
        &self,
        tenant: &TenantId,
        id: &SessionId,
        expected_turns: u64,
        turn: &TurnId,
        messages: Vec<ChatMessage>,
    ) -> Result<Appended, SessionError>;

    /// Whether the store answers: a cheap read.
    async fn check(&self) -> Result<(), SessionError>;

    /// Deletes the sessions past `sessions.max_age` (expired sessions are
    /// already invisible; this frees their space); returns how many.
    async fn sweep_expired(&self) -> Result<usize, SessionError>;

    /// Deletes the tenant's session; false when there was none.
    async fn delete(&self, tenant: &TenantId, id: &SessionId) -> Result<bool, SessionError>;

    /// The tenant's session, which must exist.
    async fn get(&self, tenant: &TenantId, id: &SessionId) -> Result<Session, SessionError> {
        self.load(tenant, id)
            .await?
            .ok_or_else(|| SessionError::NotFound(id.clone()))
    }

    /// Deletes the tenant's session, which must exist.
    async fn remove(&self, tenant: &TenantId, id: &SessionId) -> Result<(), SessionError> {
        if self.delete(tenant, id).await? {
            Ok(())
        } else {
            Err(SessionError::NotFound(id.clone()))
        }
    }
}

/// Drops the oldest messages until at most `max` remain, never leaving a tool
/// result without the call before it.
fn trim_oldest(messages: &mut Vec<SessionMessage>, max: usize) {
    if messages.len() <= max {
        return;
    }
    let mut start = messages.len() - max;
    while matches!(
        messages.get(start),
        Some(SessionMessage {
            message: ChatMessage::Tool { .. },
            ..
        })
    ) {
        start += 1;
    }
    messages.drain(..start);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::ToolCall;

    fn user(text: &str) -> SessionMessage {
        stored(ChatMessage::User {
            content: text.into(),
        })
    }

    fn stored(message: ChatMessage) -> SessionMessage {
        SessionMessage {
            message,
            turn_id: None,
        }
    }

    #[test]
    fn trimming_never_orphans_a_tool_result() {
        let call = stored(ChatMessage::Assistant {
            content: String::new(),
            tool_calls: vec![ToolCall {
                id: "c".into(),
                name: "t".into(),
                arguments: "{}".into(),
            }],
        });
        let result = stored(ChatMessage::Tool {
            call_id: "c".into(),
            content: "r".into(),
        });
        let mut messages = vec![user("a"), call, result.clone(), user("b")];
        trim_oldest(&mut messages, 2);
        assert_eq!(messages, [user("b")]);
        let mut messages = vec![user("a"), user("b"), user("c")];
        trim_oldest(&mut messages, 2);
        assert_eq!(messages, [user("b"), user("c")]);
    }

    #[test]
    fn stored_messages_carry_their_turn_and_older_records_still_read() {
        let turn = TurnId::generate();
        let message = SessionMessage {
            message: ChatMessage::User {
                content: "hi".into(),
            },
            turn_id: Some(turn.clone()),
        };
        let json = serde_json::to_value(&message).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"role": "user", "content": "hi", "turn_id": turn.as_str()})
        );
        assert_eq!(
            serde_json::from_value::<SessionMessage>(json).unwrap(),
            message
        );
        let older: SessionMessage =
            serde_json::from_value(serde_json::json!({"role": "user", "content": "hi"})).unwrap();
        assert_eq!(older.turn_id, None);
    }
}
