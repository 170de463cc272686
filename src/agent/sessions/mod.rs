//! Conversation sessions: the [`SessionStore`] trait and its embedded default,
//! a redb database under `storage.data_dir` ([`RedbSessionStore`]).
//!
//! A session belongs to one tenant; every operation takes the caller's tenant, so
//! another tenant's session is indistinguishable from one that does not exist. A
//! turn is written in one durable transaction when it completes, so a failed or
//! cancelled turn leaves the history as it was, and a crash (kill -9 included)
//! loses no completed turn. Two turns racing on one session cannot both land: the
//! second sees the history changed under it and gets a conflict.

mod embedded;

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::identity::TenantId;
use crate::llm::ChatMessage;

pub use embedded::RedbSessionStore;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::ToolCall;

    fn user(text: &str) -> ChatMessage {
        ChatMessage::User {
            content: text.into(),
        }
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
