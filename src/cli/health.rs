//! `agentd health`: a `grpc.health.v1` check against a running server, so that
//! probes and a `helm test` pod need nothing but the agentd binary.

use std::time::Duration;

use anyhow::Context;
use tonic::transport::Endpoint;
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
}

/// The server's answer: SERVING, NOT_SERVING, ... (an unknown service is an
/// error, NOT_FOUND, as the health protocol says).
pub async fn check(args: &HealthArgs) -> anyhow::Result<ServingStatus> {
    let url = if args.addr.contains("://") {
        args.addr.clone()
    } else {
        format!("http://{}", args.addr)
    };
    let endpoint = Endpoint::from_shared(url.clone())
        .with_context(|| format!("--addr {:?} is not an address", args.addr))?;
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
