//! The Redis session store: sessions shared by every agentd process of a
//! deployment.
//!
//! A session is two keys under one hash tag (see [`crate::state::redis`] for the
//! layout): a hash with its version (`turns`), times and record format, and a
//! list of message records, oldest first. Records are append-only: a writer
//! never rewrites one, so fields a newer agentd added survive an older one's
//! writes during a rolling upgrade.
//!
//! A turn is appended by one server-side Lua script (`redis.lua`) that checks the
//! session's version, appends the records, trims the list to
//! `sessions.max_messages` and sets both keys' expiry to `sessions.max_age`. A
//! script runs atomically, so of two turns racing from two processes exactly one
//! lands and the other sees a conflict. (WATCH/MULTI would need a dedicated
//! connection per turn: WATCH is per connection, and on a multiplexed one
//! another caller's write would be mixed into the transaction.)
//!
//! The caller hears "written" only after Redis answered the script, i.e. the
//! write is in the primary's memory (and in its append-only file, fsynced, with
//! `appendfsync always`). With `state.redis_wait_replicas` the store then sends
//! `WAIT` on the same connection; replicas that do not confirm in time leave the
//! turn standing, marked unconfirmed.
//!
//! Expiry is Redis's own (`PEXPIRE`), so there is nothing to sweep; reads also
//! hide a session older than `max_age` by agentd's clock, as the embedded store
//! does, and the script treats one as absent.

use std::collections::HashMap;

use redis::Script;
use serde::{Deserialize, Serialize};

use super::{
    Appended, Session, SessionError, SessionLimits, SessionMessage, SessionStore, trim_oldest,
};
use crate::clock::Clock;
use crate::ids::{SessionId, TenantId, TurnId};
use crate::llm::ChatMessage;
use crate::state::redis::{RedisFailure, RedisPool, Retry, escape};

/// The record format this version writes: `MAJOR.MINOR`. A reader accepts any
/// minor version of its major (a minor version only adds optional fields, which
/// older readers ignore); another major is refused with a clear error.
pub const RECORD_FORMAT: &str = "1.0";
const RECORD_MAJOR: &str = "1";

/// The append script; see `redis.lua`.
const APPEND_SCRIPT: &str = include_str!("redis.lua");

/// How Redis's replicas confirm writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplicaWait {
    /// Replicas that must confirm; 0 sends no `WAIT`.
    pub replicas: u32,
    /// How long to wait for them.
    pub timeout: std::time::Duration,
}

impl From<&crate::config::StateConfig> for ReplicaWait {
    fn from(config: &crate::config::StateConfig) -> Self {
        Self {
            replicas: config.redis_wait_replicas,
            timeout: config.redis_wait_timeout,
        }
    }
}

/// Sessions in Redis.
#[derive(Clone, Debug)]
pub struct RedisSessionStore {
    pool: RedisPool,
    limits: SessionLimits,
    clock: Clock,
    wait: ReplicaWait,
    append: Script,
}

/// One message as stored: the message, its turn and the record format.
#[derive(Serialize, Deserialize)]
struct Record {
    #[serde(rename = "v")]
    format: String,
    #[serde(flatten)]
    message: SessionMessage,
}

/// A failed read, or a write known not to have run.
fn failure(err: RedisFailure) -> SessionError {
    match err {
        RedisFailure::Unavailable(reason) | RedisFailure::TimedOut(reason) => {
            SessionError::Unavailable(reason)
        }
        RedisFailure::Full(reason) => SessionError::Full(reason),
        RedisFailure::Other(reason) => SessionError::Storage(reason),
    }
}

/// A failed write: one that timed out may still land.
fn write_failure(err: RedisFailure) -> SessionError {
    match err {
        RedisFailure::TimedOut(reason) => SessionError::WriteUnknown(reason),
        other => failure(other),
    }
}

/// Whether `format` (`MAJOR.MINOR`) is one this version reads.
fn readable(format: &str) -> bool {
    format.split_once('.').map(|(major, _)| major) == Some(RECORD_MAJOR)
}

fn unsupported(id: &SessionId, format: &str) -> SessionError {
    SessionError::UnsupportedFormat {
        id: id.clone(),
        format: format.to_owned(),
        supported: RECORD_FORMAT,
    }
}

impl RedisSessionStore {
    /// A store on `pool`. Connects lazily: Redis need not be up yet.
    pub fn new(pool: RedisPool, limits: SessionLimits, clock: Clock, wait: ReplicaWait) -> Self {
        Self {
            pool,
            limits,
            clock,
            wait,
            append: Script::new(APPEND_SCRIPT),
        }
    }

    /// The session's two keys: its meta hash and its record list.
    fn keys(&self, tenant: &TenantId, id: &SessionId) -> (String, String) {
        let tag = format!(
            "{}:s:{{{}/{}}}",
            self.pool.prefix(),
            escape(tenant.as_str()),
            escape(id.as_str())
        );
        (format!("{tag}:meta"), format!("{tag}:log"))
    }

    fn max_age_ms(&self) -> i64 {
        i64::try_from(self.limits.max_age.as_millis()).unwrap_or(i64::MAX)
    }

    fn decode(
        &self,
        id: &SessionId,
        meta: HashMap<String, String>,
        records: Vec<String>,
    ) -> Result<Option<Session>, SessionError> {
        if meta.is_empty() {
            return Ok(None);
        }
        let field = |name: &str| -> Result<i64, SessionError> {
            meta.get(name)
                .and_then(|value| value.parse().ok())
                .ok_or_else(|| SessionError::Storage(format!("session {id}: bad meta {name}")))
        };
        if let Some(format) = meta.get("format").filter(|f| !readable(f)) {
            return Err(unsupported(id, format));
        }
        let updated_at_ms = field("updated_at_ms")?;
        if self.clock.unix_ms().saturating_sub(updated_at_ms) > self.max_age_ms() {
            return Ok(None);
        }
        let turns = u64::try_from(field("turns")?).unwrap_or(0);
        if turns > 0 && records.is_empty() {
            // Every turn appends at least one record: the list was lost (evicted
            // by a maxmemory policy other than noeviction, or deleted by hand).
            return Err(SessionError::Storage(format!(
                "session {id}: {turns} turns but no stored messages; was its list evicted? \
                 Run Redis with maxmemory-policy noeviction"
            )));
        }
        let corrupt = |reason: String| SessionError::Storage(format!("session {id}: {reason}"));
        let mut messages = Vec::with_capacity(records.len());
        for record in &records {
            let value: serde_json::Value = serde_json::from_str(record)
                .map_err(|err| corrupt(format!("a record is not JSON: {err}")))?;
            let format = value
                .get("v")
                .and_then(serde_json::Value::as_str)
                .ok_or_else(|| corrupt("a record has no format \"v\"".to_owned()))?;
            if !readable(format) {
                return Err(unsupported(id, format));
            }
            let record: Record =
                serde_json::from_value(value).map_err(|err| corrupt(err.to_string()))?;
            messages.push(record.message);
        }
        // The script trims by count; a tool result whose call was trimmed away
        // is dropped here, as the embedded store drops it when it trims.
        trim_oldest(&mut messages, self.limits.max_messages);
        let orphans = messages
            .iter()
            .take_while(|m| matches!(m.message, ChatMessage::Tool { .. }))
            .count();
        messages.drain(..orphans);
        Ok(Some(Session {
            id: id.clone(),
            turns,
            created_at_ms: field("created_at_ms")?,
            updated_at_ms,
            messages,
        }))
    }

    /// Runs the append script and `WAIT` as one pipeline on a leased
    /// connection of its own, so `WAIT` follows exactly this write on the same
    /// connection (a reconnection in between would otherwise let it confirm a
    /// fresh connection's nothing). Returns the script's answer, how many
    /// replicas acknowledged (`None` if `WAIT` failed: the turn stands, its
    /// replication unknown), and whether the pipeline had to be resent.
    async fn write_and_wait(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> Result<(Vec<redis::Value>, Option<u32>, bool), SessionError> {
        let timeout_ms = u64::try_from(self.wait.timeout.as_millis()).unwrap_or(u64::MAX);
        let mut pipe = redis::pipe();
        pipe.ignore_errors()
            .invoke_script(invocation)
            .cmd("WAIT")
            .arg(self.wait.replicas)
            .arg(timeout_ms.max(1));
        let (pipe, script) = (&pipe, &self.append);
        let mut lease = self.pool.exclusive().await.map_err(failure)?;
        let ran = self
            .pool
            .run(&mut lease, Retry::Once, |mut connection| async move {
                let mut replies: Vec<redis::RedisResult<redis::Value>> =
                    pipe.query_async(&mut connection).await?;
                // Redis does not know the script yet (a restart flushed it):
                // nothing ran but the WAIT; load it and send again.
                if matches!(replies.first(), Some(Err(err)) if err.code() == Some("NOSCRIPT")) {
                    script.load_async(&mut connection).await?;
                    replies = pipe.query_async(&mut connection).await?;
                }
                Ok(replies)
            })
            .await
            .map_err(write_failure)?;
        let mut replies = ran.value.into_iter();
        let answer = match replies.next() {
            Some(Ok(redis::Value::Array(answer))) => answer,
            Some(Ok(other)) => vec![other],
            Some(Err(err)) => return Err(write_failure(RedisFailure::from(err))),
            None => Vec::new(),
        };
        let acked = match replies.next() {
            Some(Ok(value)) => redis::from_redis_value::<u32>(value).ok(),
            Some(Err(err)) => {
                tracing::warn!(error = %err, "WAIT for Redis replicas failed");
                None
            }
            None => None,
        };
        Ok((answer, acked, ran.retried))
    }
}

#[async_trait::async_trait]
impl SessionStore for RedisSessionStore {
    async fn load(
        &self,
        tenant: &TenantId,
        id: &SessionId,
    ) -> Result<Option<Session>, SessionError> {
        let (meta, log) = self.keys(tenant, id);
        // MULTI/EXEC: the hash and the list from the same moment.
        let mut pipe = redis::pipe();
        pipe.atomic().hgetall(&meta).lrange(&log, 0, -1);
        let pipe = &pipe;
        let mut lease = self.pool.shared();
        let read = self
            .pool
            .run(&mut lease, Retry::Once, |mut connection| async move {
                pipe.query_async::<(HashMap<String, String>, Vec<String>)>(&mut connection)
                    .await
            })
            .await
            .map_err(failure)?;
        let (meta, records) = read.value;
        self.decode(id, meta, records)
    }

    async fn append_turn(
        &self,
        tenant: &TenantId,
        id: &SessionId,
        expected_turns: u64,
        turn: &TurnId,
        messages: Vec<ChatMessage>,
    ) -> Result<Appended, SessionError> {
        let (meta, log) = self.keys(tenant, id);
        let mut invocation = self.append.key(&meta);
        invocation
            .key(&log)
            .arg(expected_turns)
            .arg(self.clock.unix_ms())
            .arg(self.max_age_ms())
            .arg(self.limits.max_messages)
            .arg(RECORD_FORMAT)
            .arg(turn.as_str());
        for message in messages {
            let record = Record {
                format: RECORD_FORMAT.to_owned(),
                message: SessionMessage {
                    message,
                    turn_id: Some(turn.clone()),
                },
            };
            let json = serde_json::to_string(&record)
                .map_err(|err| SessionError::Storage(err.to_string()))?;
            invocation.arg(json);
        }
        let (answer, acked, retried) = if self.wait.replicas > 0 {
            self.write_and_wait(&invocation).await?
        } else {
            let invocation = &invocation;
            let mut lease = self.pool.shared();
            // Retried once after a dropped connection: the script recognises its
            // own turn id, so a first attempt that did land is not stored twice.
            let ran = self
                .pool
                .run(&mut lease, Retry::Once, |mut connection| async move {
                    invocation
                        .invoke_async::<Vec<redis::Value>>(&mut connection)
                        .await
                })
                .await
                .map_err(write_failure)?;
            (ran.value, None, ran.retried)
        };
        let int = |i: usize| {
            answer
                .get(i)
                .and_then(|v| redis::from_redis_value_ref::<i64>(v).ok())
        };
        let malformed = || {
            SessionError::Storage(format!(
                "unexpected answer from the append script: {answer:?}"
            ))
        };
        match int(0) {
            // 1: written now; 3: this turn was written by an earlier attempt.
            Some(status @ (1 | 3)) => {
                let turns = int(1)
                    .and_then(|t| u64::try_from(t).ok())
                    .ok_or_else(malformed)?;
                // WAIT confirms the writes of its own connection only: after a
                // resend, or for an earlier attempt's write, it proves nothing.
                let confirmed = self.wait.replicas == 0
                    || (status == 1 && !retried && acked >= Some(self.wait.replicas));
                Ok(Appended {
                    turns,
                    replication_unconfirmed: !confirmed,
                })
            }
            Some(0) => Err(SessionError::Conflict(id.clone())),
            Some(2) => {
                let format = answer
                    .get(1)
                    .and_then(|v| redis::from_redis_value_ref::<String>(v).ok())
                    .unwrap_or_default();
                Err(unsupported(id, &format))
            }
            _ => Err(malformed()),
        }
    }

    async fn delete(&self, tenant: &TenantId, id: &SessionId) -> Result<bool, SessionError> {
        let (meta, log) = self.keys(tenant, id);
        let mut command = redis::cmd("DEL");
        command.arg(&meta).arg(&log);
        let command = &command;
        let mut lease = self.pool.shared();
        // Not retried: a second DEL after a first that landed would answer
        // "there was nothing", i.e. NOT_FOUND for a session just deleted.
        let deleted = self
            .pool
            .run(&mut lease, Retry::Never, |mut connection| async move {
                command.query_async::<u64>(&mut connection).await
            })
            .await
            .map_err(failure)?;
        Ok(deleted.value > 0)
    }

    /// Redis deletes expired sessions itself (every append sets both keys'
    /// expiry to `sessions.max_age`), so there is nothing to sweep.
    async fn sweep_expired(&self) -> Result<usize, SessionError> {
        Ok(0)
    }

    async fn check(&self) -> Result<(), SessionError> {
        self.pool.ping().await.map_err(failure)
    }
}

#[cfg(test)]
#[path = "redis_tests.rs"]
mod tests;
