//! TLS on the gRPC listener (`[server.tls]`), with certificates that can be
//! rotated under a running server.
//!
//! [`ServerTls::load`] reads the PEM files and refuses, naming the key, what
//! would fail later: no certificate or key, a leaf certificate that is expired
//! or not yet valid, a key that does not belong to the certificate, an
//! unusable client CA. `agentd config check` and start-up run the same check.
//!
//! Rotation: Kubernetes updates a mounted Secret by swapping a symlink, up to a
//! minute or so after the Secret changed. [`ServerTls::watch`] reads the files
//! again every `server.tls.reload_interval` (on the app's clock) and, when
//! their bytes changed, loads them; new connections get the new certificate,
//! open ones keep theirs. Polling rather than inotify because the swap replaces
//! the watched path's target, which file watchers see only by watching the
//! directory, and a few small reads every few seconds cost nothing. The files
//! are read twice per round and used only when both reads agree, so a swap in
//! progress is not mistaken for a mismatched pair. A reload that fails (a
//! mismatched pair, an expired certificate) keeps the current certificate,
//! logs why once, and is tried again when the files change again; a
//! certificate that is not valid *yet* is tried every round until it is.
//! Every reload counts in `agentd_tls_reloads_total{outcome}` (unreadable files
//! count once as `error`, when they become unreadable) and logs a line.
//!
//! Handshakes run concurrently, each as a task of its own, and time out
//! (`server.tls.handshake_timeout`), through `tls-listener`, so a slow or
//! silent client cannot hold up the accept loop; failures are counted in
//! `agentd_tls_handshake_failures_total{reason}`.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use futures::{Stream, StreamExt};
use rustls::RootCertStore;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use sha2::{Digest, Sha256};
use tls_listener::SpawningHandshakes;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::config::TlsFiles;
use crate::telemetry::metrics::TlsMetrics;

/// How long accepting waits after the listener failed (e.g. out of file
/// descriptors) before it tries again.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Why the TLS files cannot be used. Each message names the config key.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("{key}: cannot read {}: {source}", path.display())]
    Read {
        /// The config key naming the file.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A certificate file holds no usable PEM certificate.
    #[error("{key}: {} holds no PEM certificate{}", path.display(), detail(reason))]
    NoCertificate {
        /// The config key naming the file.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// What the parser said, if anything.
        reason: String,
    },
    /// The key file holds no usable PEM private key.
    #[error("server.tls.key_file: {} holds no PEM private key{}", path.display(), detail(reason))]
    NoKey {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        reason: String,
    },
    /// The leaf certificate cannot be parsed as X.509.
    #[error("server.tls.cert_file: the first certificate in {} is not valid X.509: {reason}", path.display())]
    BadCertificate {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        reason: String,
    },
    /// The leaf certificate's validity period has ended.
    #[error(
        "server.tls.cert_file: the certificate in {} expired at {} (now {})",
        path.display(),
        humantime::format_rfc3339_seconds(*not_after),
        humantime::format_rfc3339_seconds(*now)
    )]
    Expired {
        /// The file.
        path: PathBuf,
        /// The end of its validity.
        not_after: SystemTime,
        /// The time it was judged at.
        now: SystemTime,
    },
    /// The leaf certificate's validity period has not begun.
    #[error(
        "server.tls.cert_file: the certificate in {} is not valid before {} (now {})",
        path.display(),
        humantime::format_rfc3339_seconds(*not_before),
        humantime::format_rfc3339_seconds(*now)
    )]
    NotYetValid {
        /// The file.
        path: PathBuf,
        /// The start of its validity.
        not_before: SystemTime,
        /// The time it was judged at.
        now: SystemTime,
    },
    /// The private key is not the certificate's.
    #[error(
        "server.tls.key_file: the private key in {} does not belong to the certificate in {} \
         (server.tls.cert_file)",
        key.display(),
        cert.display()
    )]
    KeyMismatch {
        /// The key file.
        key: PathBuf,
        /// The certificate file.
        cert: PathBuf,
    },
    /// The client CA file cannot be used to verify clients.
    #[error("server.tls.client_ca_file: {reason}")]
    ClientCa {
        /// Why.
        reason: String,
    },
    /// rustls refused the set-up for another reason.
    #[error("server.tls: {0}")]
    Rustls(rustls::Error),
}

fn detail(reason: &str) -> String {
    if reason.is_empty() {
        String::new()
    } else {
        format!(" ({reason})")
    }
}

/// A loaded TLS set-up, and the bytes it was loaded from.
struct Loaded {
    config: Arc<ServerConfig>,
    not_after: SystemTime,
    digest: [u8; 32],
}

/// The files' contents, read in one go so a reload compares and loads the same bytes.
struct Contents {
    cert: Vec<u8>,
    key: Vec<u8>,
    client_ca: Option<Vec<u8>>,
}

impl Contents {
    fn read(files: &TlsFiles) -> Result<Self, TlsError> {
        let read = |key: &'static str, path: &Path| {
            std::fs::read(path).map_err(|source| TlsError::Read {
                key,
                path: path.to_owned(),
                source,
            })
        };
        Ok(Self {
            cert: read("server.tls.cert_file", &files.cert)?,
            key: read("server.tls.key_file", &files.key)?,
            client_ca: files
                .client_ca
                .as_deref()
                .map(|path| read("server.tls.client_ca_file", path))
                .transpose()?,
        })
    }

    /// The files read twice: `None` when they differ, i.e. a rotation is
    /// replacing them right now (a certificate from before the swap with a key
    /// from after it would be refused as a mismatch though nothing is wrong).
    fn read_settled(files: &TlsFiles) -> Result<Option<Self>, TlsError> {
        let first = Self::read(files)?;
        let second = Self::read(files)?;
        Ok((first.digest() == second.digest()).then_some(second))
    }

    fn digest(&self) -> [u8; 32] {
        let mut hash = Sha256::new();
        for part in [Some(&self.cert), Some(&self.key), self.client_ca.as_ref()] {
            // Length-prefixed, so moving bytes between files changes the digest.
            let bytes = part.map_or(&[][..], Vec::as_slice);
            hash.update((bytes.len() as u64).to_be_bytes());
            hash.update(bytes);
        }
        hash.finalize().into()
    }
}

fn certificates(
    key: &'static str,
    path: &Path,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let no_certificate = |reason: String| TlsError::NoCertificate {
        key,
        path: path.to_owned(),
        reason,
    };
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| no_certificate(err.to_string()))?;
    if certs.is_empty() {
        return Err(no_certificate(String::new()));
    }
    Ok(certs)
}

fn validity(path: &Path, leaf: &CertificateDer<'_>) -> Result<(SystemTime, SystemTime), TlsError> {
    let (_, parsed) =
        x509_parser::parse_x509_certificate(leaf).map_err(|err| TlsError::BadCertificate {
            path: path.to_owned(),
            reason: err.to_string(),
        })?;
    let at = |seconds: i64| {
        let magnitude = Duration::from_secs(seconds.unsigned_abs());
        if seconds >= 0 {
            SystemTime::UNIX_EPOCH + magnitude
        } else {
            SystemTime::UNIX_EPOCH - magnitude
        }
    };
    let validity = parsed.validity();
    Ok((
        at(validity.not_before.timestamp()),
        at(validity.not_after.timestamp()),
    ))
}

fn build(files: &TlsFiles, contents: &Contents, now: SystemTime) -> Result<Loaded, TlsError> {
    let certs = certificates("server.tls.cert_file", &files.cert, &contents.cert)?;
    let key = PrivateKeyDer::from_pem_slice(&contents.key).map_err(|err| TlsError::NoKey {
        path: files.key.clone(),
        reason: err.to_string(),
    })?;
    let (not_before, not_after) = validity(&files.cert, &certs[0])?;
    if now > not_after {
        return Err(TlsError::Expired {
            path: files.cert.clone(),
            not_after,
            now,
        });
    }
    if now < not_before {
        return Err(TlsError::NotYetValid {
            path: files.cert.clone(),
            not_before,
            now,
        });
    }

    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Rustls)?;
    let builder = match (&files.client_ca, &contents.client_ca) {
        (Some(path), Some(pem)) => {
            let mut roots = RootCertStore::empty();
            for ca in certificates("server.tls.client_ca_file", path, pem)? {
                roots.add(ca).map_err(|err| TlsError::ClientCa {
                    reason: format!("{}: {err}", path.display()),
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|err| TlsError::ClientCa {
                    reason: format!("{}: {err}", path.display()),
                })?;
            builder.with_client_cert_verifier(verifier)
        }
        _ => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|err| match err {
            rustls::Error::InconsistentKeys(_) => TlsError::KeyMismatch {
                key: files.key.clone(),
                cert: files.cert.clone(),
            },
            other => TlsError::Rustls(other),
        })?;
    // gRPC runs over HTTP/2, and its clients insist on negotiating it.
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Loaded {
        config: Arc::new(config),
        not_after,
        digest: contents.digest(),
    })
}

/// TLS for the gRPC listener: the current server config, swapped on reload.
#[derive(Clone)]
pub struct ServerTls {
    files: TlsFiles,
    current: Arc<ArcSwap<ServerConfig>>,
    not_after: SystemTime,
    served: [u8; 32],
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

/// Files the watcher refused, so the same bytes are not refused (and logged)
/// every round.
struct Refused {
    digest: [u8; 32],
    /// Whether time may make them good: a certificate not yet valid is tried
    /// again every round until it is.
    retry: bool,
}

/// What the watcher remembers between rounds.
struct WatchState {
    refused: Option<Refused>,
    readable: bool,
}

impl ServerTls {
    /// Reads and checks `files`, judging the certificate's validity at `now`.
    pub fn load(files: &TlsFiles, now: SystemTime) -> Result<Self, TlsError> {
        let loaded = build(files, &Contents::read(files)?, now)?;
        Ok(Self {
            files: files.clone(),
            current: Arc::new(ArcSwap::new(loaded.config)),
            not_after: loaded.not_after,
            served: loaded.digest,
        })
    }

    /// The TLS connections accepted on `listener`. Each handshake runs as a task
    /// of its own (so they use every core) and times out after `handshake_timeout`;
    /// failed ones are counted, logged at debug level and skipped. Handshakes in
    /// progress are not bounded in number: each holds one connection for at most
    /// the timeout.
    pub fn incoming(
        &self,
        listener: TcpListener,
        handshake_timeout: Duration,
        metrics: TlsMetrics,
    ) -> impl Stream<Item = Result<TlsStream<TcpStream>, io::Error>> + use<> {
        let acceptor = SpawningHandshakes(Acceptor(self.current.clone()));
        let mut builder = tls_listener::builder(acceptor);
        builder.handshake_timeout(handshake_timeout);
        builder.listen(listener).filter_map(move |accepted| {
            let metrics = metrics.clone();
            async move {
                match accepted {
                    Ok((stream, _peer)) => {
                        // As on the plaintext listener: small gRPC frames go out at once.
                        if let Err(err) = stream.get_ref().0.set_nodelay(true) {
                            tracing::debug!(error = %err, "cannot set TCP_NODELAY");
                        }
                        Some(Ok(stream))
                    }
                    Err(tls_listener::Error::TlsAcceptError {
                        error, peer_addr, ..
                    }) => {
                        metrics.handshake_failed(false);
                        tracing::debug!(error = %error, peer = %peer_addr, "TLS handshake refused");
                        None
                    }
                    Err(tls_listener::Error::HandshakeTimeout { peer_addr, .. }) => {
                        metrics.handshake_failed(true);
                        tracing::debug!(peer = %peer_addr, "TLS handshake timed out");
                        None
                    }
                    Err(tls_listener::Error::ListenerError(err)) => {
                        // Out of file descriptors, typically: accepting again at
                        // once would spin, so pause as hyper does.
                        tracing::warn!(error = %err, "cannot accept a connection");
                        tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                        None
                    }
                    Err(other) => {
                        tracing::warn!(error = %other, "TLS connection failed");
                        None
                    }
                }
            }
        })
    }

    /// Reads the files every `interval` (on `clock`) until `stop`, loading them
    /// when their bytes changed. See the module docs.
    pub async fn watch(
        self,
        interval: Duration,
        metrics: TlsMetrics,
        clock: Clock,
        stop: CancellationToken,
    ) {
        metrics.start(self.not_after);
        let mut state = WatchState {
            refused: None,
            readable: true,
        };
        let mut tls = self;
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = clock.sleep(interval) => {}
            }
            let now = clock.wall();
            let metrics = metrics.clone();
            // File reads and certificate parsing: off the async workers.
            let round = tokio::task::spawn_blocking(move || {
                tls.round(&mut state, &metrics, now);
                (tls, state)
            });
            match round.await {
                Ok(after) => (tls, state) = after,
                Err(err) => {
                    tracing::error!(error = %err, "the TLS reload failed; certificates are no longer reloaded");
                    return;
                }
            }
        }
    }

    /// One round of the watcher: read, compare, load.
    fn round(&mut self, state: &mut WatchState, metrics: &TlsMetrics, now: SystemTime) {
        let contents = match Contents::read_settled(&self.files) {
            Ok(Some(contents)) => contents,
            Ok(None) => {
                tracing::debug!("TLS files changed while being read; reading them next round");
                return;
            }
            Err(err) => {
                // Mid-rotation a file can be briefly missing; reported once, not
                // every round, and the next rounds retry.
                if state.readable {
                    state.readable = false;
                    metrics.reloaded(false);
                    tracing::warn!(error = %err, "TLS files unreadable; keeping the current certificate");
                }
                return;
            }
        };
        if !state.readable {
            state.readable = true;
            tracing::info!("TLS files readable again");
        }
        let digest = contents.digest();
        if digest == self.served {
            state.refused = None;
            return;
        }
        if let Some(refused) = &state.refused
            && refused.digest == digest
            && !refused.retry
        {
            return;
        }
        match build(&self.files, &contents, now) {
            Ok(loaded) => {
                self.current.store(loaded.config);
                self.not_after = loaded.not_after;
                self.served = digest;
                state.refused = None;
                metrics.reloaded(true);
                metrics.set_not_after(loaded.not_after);
                tracing::info!(
                    cert_file = %self.files.cert.display(),
                    not_after = %humantime::format_rfc3339_seconds(loaded.not_after),
                    "TLS certificate reloaded"
                );
            }
            Err(err) => {
                let new = state
                    .refused
                    .as_ref()
                    .is_none_or(|refused| refused.digest != digest);
                if new {
                    metrics.reloaded(false);
                    tracing::warn!(
                        error = %err,
                        "TLS files changed but cannot be used; keeping the current certificate"
                    );
                }
                state.refused = Some(Refused {
                    digest,
                    retry: matches!(err, TlsError::NotYetValid { .. }),
                });
            }
        }
    }
}

/// Accepts each connection with the server config current at that moment.
#[derive(Clone)]
struct Acceptor(Arc<ArcSwap<ServerConfig>>);

impl<C: AsyncRead + AsyncWrite + Unpin> tls_listener::AsyncTls<C> for Acceptor {
    type Stream = TlsStream<C>;
    type Error = io::Error;
    type AcceptFuture = tokio_rustls::Accept<C>;

    fn accept(&self, stream: C) -> Self::AcceptFuture {
        tokio_rustls::TlsAcceptor::from(self.0.load_full()).accept(stream)
    }
}
