//! `agentd.v1.AdminService`. The auth layer lets `admin` and `operator` keys
//! in; what a call covers is the caller's admin scope: an `admin` its own
//! tenant, an `operator` every tenant.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::{caller, convert};
use crate::pb;
use crate::pb::admin_service_server::AdminService;
use crate::status::{DependencyHealth, DependencyState, InstanceStatus, StatusReport};

/// The AdminService implementation.
#[derive(Debug)]
pub struct AdminApi {
    status: Arc<InstanceStatus>,
}

impl AdminApi {
    /// The service for one instance.
    pub fn new(status: Arc<InstanceStatus>) -> Self {
        Self { status }
    }
}

#[tonic::async_trait]
impl AdminService for AdminApi {
    async fn get_status(
        &self,
        request: Request<pb::GetStatusRequest>,
    ) -> Result<Response<pb::GetStatusResponse>, Status> {
        let scope = caller(&request)?.admin_scope();
        Ok(Response::new(self.status.report(&scope).await.into()))
    }
}

impl From<StatusReport> for pb::GetStatusResponse {
    fn from(report: StatusReport) -> Self {
        let effective_config = match &report.effective_config {
            serde_json::Value::Object(map) => Some(convert::json_to_struct(map)),
            _ => None,
        };
        Self {
            version: report.version.to_owned(),
            git_commit: report.git_commit.to_owned(),
            start_time: Some(convert::timestamp(report.start_time)),
            uptime: Some(convert::duration(report.uptime)),
            effective_config,
            dependencies: report.dependencies.into_iter().map(Into::into).collect(),
            draining: report.draining,
            bound_addresses: report
                .bound_addresses
                .into_iter()
                .map(|(name, addr)| (name, addr.to_string()))
                .collect(),
        }
    }
}

impl From<DependencyHealth> for pb::DependencyHealth {
    fn from(health: DependencyHealth) -> Self {
        let state = match health.state {
            DependencyState::Healthy => pb::DependencyState::Healthy,
            DependencyState::Degraded => pb::DependencyState::Degraded,
            DependencyState::Unhealthy => pb::DependencyState::Unhealthy,
        };
        Self {
            name: health.name,
            state: state.into(),
            detail: health.detail,
            checked_at: Some(convert::timestamp(health.checked_at)),
        }
    }
}
