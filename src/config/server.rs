//! `[server]`: listeners, TLS, limits and shutdown.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

/// Most runtime threads `server.worker_threads` may ask for: far more than the
/// cores of any machine agentd runs on, so a larger value is a mistake (each
/// thread reserves its own stack).
pub const MAX_WORKER_THREADS: usize = 1024;

/// `[server]`: listeners, limits and shutdown.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// gRPC listen address.
    pub grpc_addr: SocketAddr,
    /// Prometheus `/metrics` listen address.
    pub metrics_addr: SocketAddr,
    /// A plaintext listener serving `grpc.health.v1` and nothing else, for
    /// probes that speak no TLS (Kubernetes' gRPC probes); none when unset.
    pub health_addr: Option<SocketAddr>,
    /// TLS on the gRPC listener.
    pub tls: TlsConfig,
    /// After a stop signal: how long health says NOT_SERVING while calls are
    /// still accepted, before the drain.
    #[serde(with = "humantime_serde")]
    pub drain_delay: Duration,
    /// Time in-flight calls get to finish after a stop signal.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// Deadline of a call whose client sent none.
    #[serde(with = "humantime_serde")]
    pub default_timeout: Duration,
    /// Upper bound on any call's deadline.
    #[serde(with = "humantime_serde")]
    pub max_timeout: Duration,
    /// Largest request message, in bytes.
    pub max_request_bytes: usize,
    /// Largest response message, in bytes.
    pub max_response_bytes: usize,
    /// Calls served at once before new ones are shed.
    pub max_concurrent_calls: usize,
    /// Threads that run the async work; 0 means one per available core, at most
    /// [`MAX_WORKER_THREADS`].
    pub worker_threads: usize,
}

/// `[server.tls]`: TLS on the gRPC listener, on when `cert_file` is set.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file with the server's certificate chain, leaf first.
    pub cert_file: Option<PathBuf>,
    /// PEM file with the certificate's private key.
    pub key_file: Option<PathBuf>,
    /// PEM file with the CAs whose client certificates are accepted; when set,
    /// every client must present one (mutual TLS).
    pub client_ca_file: Option<PathBuf>,
    /// How often the files are read again to pick up a rotated certificate.
    #[serde(with = "humantime_serde")]
    pub reload_interval: Duration,
    /// How long a client has to complete its handshake.
    #[serde(with = "humantime_serde")]
    pub handshake_timeout: Duration,
}

/// The files of a TLS set-up that is on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain.
    pub cert: PathBuf,
    /// The private key.
    pub key: PathBuf,
    /// The client CAs, for mutual TLS.
    pub client_ca: Option<PathBuf>,
}

impl TlsConfig {
    /// The files, when TLS is on and configured consistently.
    pub fn files(&self) -> Option<TlsFiles> {
        match (&self.cert_file, &self.key_file) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: self.client_ca_file.clone(),
            }),
            _ => None,
        }
    }

    fn problems(&self, now: SystemTime) -> Vec<String> {
        let mut problems = Vec::new();
        for (key, value) in [
            ("server.tls.reload_interval", self.reload_interval),
            ("server.tls.handshake_timeout", self.handshake_timeout),
        ] {
            if value.is_zero() {
                problems.push(format!("{key}: must be longer than 0s"));
            }
        }
        match (&self.cert_file, &self.key_file) {
            (Some(_), None) => problems.push(
                "server.tls.key_file: server.tls.cert_file is set, so its private key must be too"
                    .to_owned(),
            ),
            (None, Some(_)) => problems.push(
                "server.tls.cert_file: server.tls.key_file is set, so the certificate must be too"
                    .to_owned(),
            ),
            (None, None) if self.client_ca_file.is_some() => problems.push(
                "server.tls.client_ca_file: client certificates need TLS; set \
                 server.tls.cert_file and server.tls.key_file"
                    .to_owned(),
            ),
            _ => {}
        }
        // The same loading the server does at start, so `agentd config check`
        // catches an expired or mismatched certificate before a rollout does.
        // What it loads is dropped: the server loads the files again when it
        // starts, judging validity on its own clock (a test's manual one).
        if let Some(files) = self.files()
            && let Err(err) = crate::tls::ServerTls::load(&files, now)
        {
            problems.push(err.to_string());
        }
        problems
    }
}

impl ServerConfig {
    /// Problems, each naming its key; certificates are judged valid or not at `now`.
    pub fn problems(&self, now: SystemTime) -> Vec<String> {
        let mut problems = Vec::new();
        let positive = [
            ("server.max_request_bytes", self.max_request_bytes),
            ("server.max_response_bytes", self.max_response_bytes),
            ("server.max_concurrent_calls", self.max_concurrent_calls),
        ];
        for (key, value) in positive {
            if value == 0 {
                problems.push(format!("{key}: must be at least 1"));
            }
        }
        if self.worker_threads > MAX_WORKER_THREADS {
            problems.push(format!(
                "server.worker_threads: {} is more than {MAX_WORKER_THREADS} (0 means one per core)",
                self.worker_threads
            ));
        }
        if self.default_timeout.is_zero() {
            problems.push("server.default_timeout: must be longer than 0s".to_owned());
        }
        if self.max_timeout < self.default_timeout {
            problems.push(format!(
                "server.max_timeout: {} is shorter than server.default_timeout ({})",
                humantime::format_duration(self.max_timeout),
                humantime::format_duration(self.default_timeout)
            ));
        }
        if let Some(health) = self.health_addr {
            for (key, addr) in [
                ("server.grpc_addr", self.grpc_addr),
                ("server.metrics_addr", self.metrics_addr),
            ] {
                if overlaps(health, addr) {
                    problems.push(format!(
                        "server.health_addr: {health} overlaps {key} ({addr}); the health-only \
                         listener needs a port of its own (or leave it unset: the gRPC port \
                         serves health too)"
                    ));
                }
            }
        }
        problems.extend(self.tls.problems(now));
        problems
    }
}

/// Whether two listeners would fight over one port: the same port (not 0, which
/// picks a free one) on the same IP, or on any IP when one is unspecified.
fn overlaps(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port()
        && a.port() != 0
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}
