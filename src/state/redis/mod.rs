//! The Redis connection pool, key layout and failure classes every Redis-backed
//! store shares.
//!
//! # Key layout
//!
//! Every key starts with `state.redis_key_prefix` (default `agentd`), then the
//! kind of record, then a hash tag (`{...}`) naming what one atomic operation
//! touches, so that under a future Redis Cluster every script touches one slot:
//!
//! | key | what |
//! |---|---|
//! | `P:s:{TENANT/SESSION}:meta` | a session's hash: `turns`, `created_at_ms`, `updated_at_ms`, `format`, `last_turn` |
//! | `P:s:{TENANT/SESSION}:log`  | a session's list of message records, oldest first |
//! | `P:t:{TENANT}:...`          | reserved for per-tenant counters (budgets, rate limits) |
//!
//! Ids inside a tag are escaped ([`escape`]): every byte other than ASCII letters,
//! digits, `_`, `.` and `-` becomes `%XX`, so `/`, `:`, `{`, `}` and `*` cannot
//! occur unescaped and two different (tenant, session) pairs never share a key,
//! whatever the ids are. (agentd's id types already refuse those bytes; the
//! escaping makes the layout safe on its own.)
//!
//! # Connections
//!
//! See [`RedisPool`]: lazily connected, self-healing, multiplexed connections
//! for most commands and exclusive ones for writes that `WAIT` for replicas.

mod pool;

use redis::RedisError;

pub use pool::{Lease, Ran, RedisPool, Retry};

/// Why Redis did not do what was asked.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RedisFailure {
    /// Redis cannot be reached, broke the connection, or refused to serve
    /// (loading, a replica, busy, wrong credentials). Retry later.
    #[error("Redis is unavailable: {0}")]
    Unavailable(String),
    /// Redis did not answer within the command timeout: the command may still
    /// run (or have run).
    #[error("Redis did not answer in time: {0}")]
    TimedOut(String),
    /// Redis refuses writes because it is out of memory (`maxmemory` with
    /// `noeviction`).
    #[error("Redis refuses writes: {0}")]
    Full(String),
    /// Anything else Redis answered: a bug or a misconfigured server.
    #[error("Redis error: {0}")]
    Other(String),
}

impl From<RedisError> for RedisFailure {
    fn from(err: RedisError) -> Self {
        let text = err.to_string();
        if err.code() == Some("OOM") {
            RedisFailure::Full(text)
        } else if err.is_timeout() {
            RedisFailure::TimedOut(text)
        } else if err.is_io_error()
            || err.is_connection_dropped()
            || err.is_connection_refusal()
            || err.kind() == redis::ErrorKind::AuthenticationFailed
            || matches!(
                err.code(),
                Some(
                    "LOADING"
                        | "MASTERDOWN"
                        | "TRYAGAIN"
                        | "READONLY"
                        | "BUSY"
                        | "NOREPLICAS"
                        | "NOAUTH"
                        | "WRONGPASS"
                )
            )
        {
            RedisFailure::Unavailable(text)
        } else {
            RedisFailure::Other(text)
        }
    }
}

/// Escapes an id for use inside a key: bytes other than ASCII letters, digits,
/// `_`, `.` and `-` become `%XX`. Injective, so escaped ids never collide.
pub fn escape(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for byte in id.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'.' | b'-') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_is_injective_and_leaves_no_key_syntax() {
        let hostile = ["a:b", "*", "{x}", "a/b", "a%2Fb", "%", "ok-id_1.2"];
        let escaped: Vec<String> = hostile.iter().map(|id| escape(id)).collect();
        for (i, e) in escaped.iter().enumerate() {
            assert!(!e.contains([':', '*', '{', '}', '/']), "{e}");
            for other in &escaped[i + 1..] {
                assert_ne!(e, other);
            }
        }
        assert_eq!(escape("ok-id_1.2"), "ok-id_1.2");
        assert_eq!(escape("{x}"), "%7Bx%7D");
        let long = "x".repeat(10 * 1024);
        assert_eq!(escape(&long), long);
    }
}
