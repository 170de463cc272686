//! `agentd health`: a `grpc.health.v1` check against a running server, so that
//! probes and a `helm test` pod need nothing but the agentd binary.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// What to check.
#[derive(Debug, Clone)]
pub struct HealthArgs {
    /// `host:port` or an `http://` URL.
    pub addr: String,
    /// The service asked about; empty for the server as a whole.
    pub service: String,
    /// The whole check's time limit, connection included.
    pub timeout: Duration,
    /// TLS, when the server speaks it.
    pub tls: Option<ClientTls>,
}

/// How to verify the server, and how to prove who we are.
#[derive(Debug, Clone, Default)]
pub struct ClientTls {
    /// The CA that signed the server's certificate; the system's roots when unset.
    pub ca_file: Option<PathBuf>,
    /// The name the certificate must carry; the address's host when unset.
    pub domain: Option<String>,
    /// A client certificate and its key (PEM files), for mutual TLS.
    pub identity: Option<(PathBuf, PathBuf)>,
}

impl ClientTls {
    /// tonic's TLS settings for these flags.
    pub fn config(&self) -> anyhow::Result<ClientTlsConfig> {
        let read = |flag: &str, path: &PathBuf| {
            std::fs::read(path).with_context(|| format!("{flag}: cannot read {}", path.display()))
        };
        let mut config = ClientTlsConfig::new();
        config = match &self.ca_file {
            Some(path) => config.ca_certificate(Certificate::from_pem(read("--ca-file", path)?)),
            None => config.with_native_roots(),
        };
        if let Some(domain) = &self.domain {
            config = config.domain_name(domain.clone());
        }
        if let Some((cert, key)) = &self.identity {
            config = config.identity(Identity::from_pem(
                read("--cert-file", cert)?,
                read("--key-file", key)?,
            ));
        }
        Ok(config)
    }
}

/// The endpoint of `addr` (`host:port` or a URL), over TLS when `tls` is set;
/// `flag` names the address's flag in errors.
pub fn endpoint(
    flag: &str,
    addr: &str,
    tls: Option<&ClientTls>,
) -> anyhow::Result<(Endpoint, String)> {
    let url = match (addr.split_once("://"), tls) {
        (Some(("http", rest)), Some(_)) => format!("https://{rest}"),
        (Some(_), _) => addr.to_owned(),
        (None, Some(_)) => format!("https://{addr}"),
        (None, None) => format!("http://{addr}"),
    };
    let mut endpoint = Endpoint::from_shared(url.clone())
        .with_context(|| format!("{flag} {addr:?} is not an address"))?;
    if let Some(tls) = tls {
        endpoint = endpoint
            .tls_config(tls.config()?)
            .with_context(|| format!("cannot set up TLS for {url}"))?;
    }
    Ok((endpoint, url))
}

/// The server's answer: SERVING, NOT_SERVING, ... (an unknown service is an
/// error, NOT_FOUND, as the health protocol says).
pub async fn check(args: &HealthArgs) -> anyhow::Result<ServingStatus> {
    let (endpoint, url) = endpoint("--addr", &args.addr, args.tls.as_ref())?;
    let ask = async {
        let channel = endpoint
            .connect()
            .await
            .with_context(|| format!("cannot connect to {url}"))?;
        let request = HealthCheckRequest {
            service: args.service.clone(),
        };
        let response = HealthClient::new(channel)
            .check(request)
            .await
            .map_err(|status| anyhow::anyhow!("{:?}: {}", status.code(), status.message()))?;
        Ok(response.into_inner().status())
    };
    // One limit for the whole check: connecting and the answer.
    tokio::time::timeout(args.timeout, ask)
        .await
        .map_err(|_| anyhow::anyhow!("no answer from {url} within {:?}", args.timeout))?
}
