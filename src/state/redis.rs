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
//! | `P:s:{TENANT/SESSION}:meta` | a session's hash: `turns`, `created_at_ms`, `updated_at_ms`, `format` |
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
//! A pool of `state.redis_pool_size` multiplexed connections (redis-rs's
//! `ConnectionManager`, which reconnects by itself), used round-robin. They
//! connect lazily, so agentd starts while Redis is down and recovers when it
//! comes back; each command is bounded by `state.redis_command_timeout`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, IntoConnectionInfo, RedisError, TlsCertificates};

use crate::config::StateConfig;

/// Why Redis did not do what was asked.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RedisFailure {
    /// Redis cannot be reached, or did not answer in time: retry later.
    #[error("Redis is unavailable: {0}")]
    Unavailable(String),
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
        } else if err.is_io_error()
            || err.is_timeout()
            || err.is_connection_dropped()
            || err.is_connection_refusal()
            || matches!(
                err.code(),
                Some("LOADING" | "MASTERDOWN" | "TRYAGAIN" | "READONLY")
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

/// A pool of multiplexed Redis connections.
#[derive(Clone)]
pub struct RedisPool {
    connections: Arc<[ConnectionManager]>,
    next: Arc<AtomicUsize>,
    prefix: Arc<str>,
    command_timeout: Duration,
}

impl std::fmt::Debug for RedisPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisPool")
            .field("connections", &self.connections.len())
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl RedisPool {
    /// The pool `config` describes. Connects lazily: an unreachable Redis is not
    /// an error here. Fails only on settings the client refuses (checked by
    /// config validation first) or an unreadable CA file.
    pub fn new(config: &StateConfig) -> Result<Self, String> {
        let mut info = config
            .redis_url
            .as_str()
            .into_connection_info()
            .map_err(|err| format!("state.redis_url: {err}"))?;
        if let Some(password) = &config.redis_password {
            let settings = info
                .redis_settings()
                .clone()
                .set_password(password.expose());
            info = info.set_redis_settings(settings);
        }
        let client = match &config.redis_ca_file {
            Some(path) => {
                let root_cert = std::fs::read(path).map_err(|err| {
                    format!("state.redis_ca_file: cannot read {}: {err}", path.display())
                })?;
                install_crypto_provider();
                let certificates = TlsCertificates {
                    client_tls: None,
                    root_cert: Some(root_cert),
                };
                Client::build_with_tls(info, certificates)
                    .map_err(|err| format!("state.redis_ca_file: {err}"))?
            }
            None => {
                if config.redis_url.starts_with("rediss:") {
                    install_crypto_provider();
                }
                Client::open(info).map_err(|err| format!("state.redis_url: {err}"))?
            }
        };
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.redis_connect_timeout))
            .set_response_timeout(Some(config.redis_command_timeout))
            // One quick reconnection attempt per failure: the next command (or the
            // health watcher) tries again, so a caller never waits out a backoff.
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(10))
            .set_max_delay(Duration::from_millis(100));
        let connections = (0..config.redis_pool_size)
            .map(|_| {
                ConnectionManager::new_lazy_with_config(client.clone(), manager_config.clone())
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| format!("state.redis_url: {err}"))?;
        Ok(Self {
            connections: connections.into(),
            next: Arc::new(AtomicUsize::new(0)),
            prefix: config.redis_key_prefix.as_str().into(),
            command_timeout: config.redis_command_timeout,
        })
    }

    /// One connection of the pool (round-robin). Commands that must share a
    /// connection (a write and its `WAIT`) take one and use it for both.
    pub fn connection(&self) -> ConnectionManager {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.connections.len();
        self.connections[i].clone()
    }

    /// The configured key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Runs `operation` on one connection of the pool, bounded by the command
    /// timeout (also while the connection is being re-established), and returns
    /// the connection too, for a command that must follow on it (`WAIT`).
    ///
    /// A connection Redis dropped (a restart, a failover) fails the command
    /// sent on it; the manager then reconnects, and the operation is retried
    /// once on the new connection, so the first call after Redis comes back
    /// does not fail. Retrying must be safe: every write agentd sends is
    /// idempotent (a session append recognises its own turn id). A timeout is
    /// not retried: Redis may still be running the first attempt.
    pub async fn run<T, F, Fut>(&self, operation: F) -> Result<(T, ConnectionManager), RedisFailure>
    where
        F: Fn(ConnectionManager) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        let connection = self.connection();
        match self.bounded(operation(connection.clone())).await? {
            Ok(value) => Ok((value, connection)),
            Err(err) if err.is_connection_dropped() || (err.is_io_error() && !err.is_timeout()) => {
                tracing::debug!(error = %err, "Redis connection dropped; retrying once");
                let value = self
                    .bounded(operation(connection.clone()))
                    .await?
                    .map_err(RedisFailure::from)?;
                Ok((value, connection))
            }
            Err(err) => Err(err.into()),
        }
    }

    /// `operation`, or Unavailable if it has not finished in twice the command
    /// timeout. The client's own timeout fires first on a slow answer; this one
    /// catches a connection attempt stuck in between.
    async fn bounded<T>(
        &self,
        operation: impl Future<Output = Result<T, RedisError>>,
    ) -> Result<Result<T, RedisError>, RedisFailure> {
        let limit = self.command_timeout * 2;
        tokio::time::timeout(limit, operation).await.map_err(|_| {
            RedisFailure::Unavailable(format!(
                "no answer within {}",
                humantime::format_duration(limit)
            ))
        })
    }

    /// `PING` on every connection: whether Redis answers. Pinging each one
    /// also re-establishes any that Redis dropped, before a turn needs it.
    pub async fn ping(&self) -> Result<(), RedisFailure> {
        for _ in 0..self.connections.len() {
            self.run(|mut connection| async move {
                redis::cmd("PING").query_async::<()>(&mut connection).await
            })
            .await?;
        }
        Ok(())
    }
}

/// rustls needs one process-wide crypto provider; two are compiled in (reqwest's
/// and tonic's dependencies enable both), so none is chosen by default. The first
/// install wins; a later one is a no-op.
fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
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
