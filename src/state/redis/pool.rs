//! The connections to Redis.
//!
//! Two sets, both of `state.redis_pool_size` redis-rs `ConnectionManager`s
//! (each reconnects by itself after a drop), connected lazily so that agentd
//! starts while Redis is down and recovers when it comes back:
//!
//! - **shared** connections, multiplexed: many calls' commands in flight on
//!   each at once, taken round-robin. Everything but a replicated write.
//! - **exclusive** connections, made only when `state.redis_wait_replicas` > 0:
//!   a write that must `WAIT` for replicas leases one for its write and its
//!   `WAIT`, alone. Redis serves nothing else from a connection while it is
//!   blocked in `WAIT`, so on a shared connection every other call would queue
//!   behind a slow replica; on an exclusive one only writes wait, for a lease.
//!
//! A connection that answers `READONLY` is talking to a replica (a failover
//! happened and the old primary was demoted); redis-rs keeps such a connection,
//! so the pool replaces it with a fresh one, which resolves the URL's host again.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, IntoConnectionInfo, RedisError, TlsCertificates};
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

use super::RedisFailure;
use crate::config::StateConfig;

/// Whether an operation may be sent again after Redis dropped its connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    /// Sending it twice is harmless (a read, a write that recognises itself):
    /// retried once on the re-established connection, so the first call after
    /// a Redis restart does not fail.
    Once,
    /// Sent once only.
    Never,
}

/// A connection leased for one operation (and any command that must follow it
/// on the same connection).
pub enum Lease {
    /// One of the multiplexed connections.
    Shared {
        /// Its slot in the pool.
        slot: usize,
        /// The connection.
        connection: ConnectionManager,
    },
    /// An exclusive connection, held until the lease is dropped.
    Exclusive(OwnedMutexGuard<ConnectionManager>),
}

impl Lease {
    /// The leased connection (a cheap handle to it).
    pub fn connection(&self) -> ConnectionManager {
        match self {
            Lease::Shared { connection, .. } => connection.clone(),
            Lease::Exclusive(guard) => (**guard).clone(),
        }
    }
}

/// An operation's result and whether it had to be sent twice.
#[derive(Debug)]
pub struct Ran<T> {
    /// What Redis answered.
    pub value: T,
    /// The operation was sent again after a dropped connection (so a command
    /// that must follow it on the same connection, like `WAIT`, would not see
    /// the first attempt).
    pub retried: bool,
}

/// The Redis connections of one agentd process.
#[derive(Clone)]
pub struct RedisPool {
    client: Client,
    manager_config: ConnectionManagerConfig,
    shared: Arc<[Mutex<ConnectionManager>]>,
    exclusive: Arc<[Arc<AsyncMutex<ConnectionManager>>]>,
    next: Arc<AtomicUsize>,
    prefix: Arc<str>,
    command_timeout: Duration,
}

impl std::fmt::Debug for RedisPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisPool")
            .field("shared", &self.shared.len())
            .field("exclusive", &self.exclusive.len())
            .field("prefix", &self.prefix)
            .finish()
    }
}

/// The client `config` describes: URL, password, private CA.
fn client(config: &StateConfig) -> Result<Client, String> {
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
    if config.redis_url.starts_with("rediss:") {
        install_crypto_provider();
    }
    match &config.redis_ca_file {
        Some(path) => {
            let root_cert = std::fs::read(path).map_err(|err| {
                format!("state.redis_ca_file: cannot read {}: {err}", path.display())
            })?;
            let certificates = TlsCertificates {
                client_tls: None,
                root_cert: Some(root_cert),
            };
            Client::build_with_tls(info, certificates)
                .map_err(|err| format!("state.redis_ca_file: {err}"))
        }
        None => Client::open(info).map_err(|err| format!("state.redis_url: {err}")),
    }
}

impl RedisPool {
    /// The pool `config` describes. Connects lazily: an unreachable Redis is not
    /// an error here. Fails only on settings the client refuses (checked by
    /// config validation first) or an unreadable CA file.
    pub fn new(config: &StateConfig) -> Result<Self, String> {
        let client = client(config)?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.redis_connect_timeout))
            .set_response_timeout(Some(config.redis_command_timeout))
            // One quick reconnection attempt per failure: the next command (or the
            // health watcher) tries again, so a caller never waits out a backoff.
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(10))
            .set_max_delay(Duration::from_millis(100));
        let fresh = || {
            ConnectionManager::new_lazy_with_config(client.clone(), manager_config.clone())
                .map_err(|err| format!("state.redis_url: {err}"))
        };
        let size = config.redis_pool_size;
        let shared = (0..size)
            .map(|_| fresh().map(Mutex::new))
            .collect::<Result<Vec<_>, _>>()?;
        let exclusive_size = if config.redis_wait_replicas > 0 {
            size
        } else {
            0
        };
        let exclusive = (0..exclusive_size)
            .map(|_| fresh().map(|c| Arc::new(AsyncMutex::new(c))))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            client,
            manager_config,
            shared: shared.into(),
            exclusive: exclusive.into(),
            next: Arc::new(AtomicUsize::new(0)),
            prefix: config.redis_key_prefix.as_str().into(),
            command_timeout: config.redis_command_timeout,
        })
    }

    /// The configured key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn next(&self, len: usize) -> usize {
        self.next.fetch_add(1, Ordering::Relaxed) % len
    }

    fn shared_at(&self, slot: usize) -> ConnectionManager {
        // A poisoned lock only means a panic elsewhere while swapping in a
        // connection; the connection inside is still a valid handle.
        match self.shared[slot].lock() {
            Ok(connection) => connection.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// One of the multiplexed connections, round-robin.
    pub fn shared(&self) -> Lease {
        let slot = self.next(self.shared.len());
        Lease::Shared {
            slot,
            connection: self.shared_at(slot),
        }
    }

    /// An exclusive connection (a free one if any, else the next to come
    /// free, waiting at most the command timeout); a shared one when the pool
    /// has none (no replicas to wait for).
    pub async fn exclusive(&self) -> Result<Lease, RedisFailure> {
        if self.exclusive.is_empty() {
            return Ok(self.shared());
        }
        let start = self.next(self.exclusive.len());
        for i in 0..self.exclusive.len() {
            let slot = &self.exclusive[(start + i) % self.exclusive.len()];
            if let Ok(guard) = Arc::clone(slot).try_lock_owned() {
                return Ok(Lease::Exclusive(guard));
            }
        }
        let next_free = Arc::clone(&self.exclusive[start]).lock_owned();
        match tokio::time::timeout(self.command_timeout, next_free).await {
            Ok(guard) => Ok(Lease::Exclusive(guard)),
            Err(_) => Err(RedisFailure::Unavailable(format!(
                "all {} connections for replicated writes stayed busy for {}",
                self.exclusive.len(),
                humantime::format_duration(self.command_timeout)
            ))),
        }
    }

    /// Replaces the lease's connection with a new one (see the module docs on
    /// `READONLY`).
    fn renew(&self, lease: &mut Lease) {
        let Ok(fresh) = ConnectionManager::new_lazy_with_config(
            self.client.clone(),
            self.manager_config.clone(),
        ) else {
            return;
        };
        match lease {
            Lease::Shared { slot, connection } => {
                match self.shared[*slot].lock() {
                    Ok(mut held) => *held = fresh.clone(),
                    Err(poisoned) => *poisoned.into_inner() = fresh.clone(),
                }
                *connection = fresh;
            }
            Lease::Exclusive(guard) => **guard = fresh,
        }
    }

    /// Runs `operation` on the lease's connection, bounded by twice the command
    /// timeout (the client's own timeout fires first on a slow answer; this one
    /// catches a connection attempt stuck in between). With [`Retry::Once`] it
    /// is sent once more after Redis dropped the connection (the manager has
    /// reconnected by then) or answered `READONLY` (the lease gets a new
    /// connection). A timeout is never retried: Redis may still run the first
    /// attempt.
    pub async fn run<T, F, Fut>(
        &self,
        lease: &mut Lease,
        retry: Retry,
        operation: F,
    ) -> Result<Ran<T>, RedisFailure>
    where
        F: Fn(ConnectionManager) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        let first = self.bounded(operation(lease.connection())).await?;
        let err = match first {
            Ok(value) => {
                return Ok(Ran {
                    value,
                    retried: false,
                });
            }
            Err(err) => err,
        };
        let read_only = err.code() == Some("READONLY");
        if read_only {
            tracing::warn!("Redis answered READONLY (a replica): reconnecting");
            self.renew(lease);
        }
        let dropped = err.is_connection_dropped() || (err.is_io_error() && !err.is_timeout());
        if retry == Retry::Never || !(dropped || read_only) {
            return Err(err.into());
        }
        tracing::debug!(error = %err, "Redis connection lost; retrying once");
        let value = self
            .bounded(operation(lease.connection()))
            .await?
            .map_err(RedisFailure::from)?;
        Ok(Ran {
            value,
            retried: true,
        })
    }

    async fn bounded<T>(
        &self,
        operation: impl Future<Output = Result<T, RedisError>>,
    ) -> Result<Result<T, RedisError>, RedisFailure> {
        let limit = self.command_timeout * 2;
        tokio::time::timeout(limit, operation).await.map_err(|_| {
            RedisFailure::TimedOut(format!(
                "no answer within {}",
                humantime::format_duration(limit)
            ))
        })
    }

    /// `PING` on every connection, shared and exclusive (those in use are
    /// skipped): whether Redis answers. Pinging each also re-establishes any
    /// that Redis dropped before a call needs it.
    pub async fn ping(&self) -> Result<(), RedisFailure> {
        let mut leases: Vec<Lease> = (0..self.shared.len())
            .map(|slot| Lease::Shared {
                slot,
                connection: self.shared_at(slot),
            })
            .collect();
        leases.extend(
            self.exclusive
                .iter()
                .filter_map(|slot| Arc::clone(slot).try_lock_owned().ok())
                .map(Lease::Exclusive),
        );
        for mut lease in leases {
            self.run(&mut lease, Retry::Once, |mut connection| async move {
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
