//! `agentd.v1.AdminService`. The auth layer lets `admin` and `operator` keys
//! in (`ResetBreaker`: `operator` only); what a call covers is the caller's
//! admin scope: an `admin` its own tenant, an `operator` every tenant. Models,
//! routes and breakers are the instance's, the same for every tenant.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::{caller, convert, cost};
use crate::config::Degraded;
use crate::cost::CostControl;
use crate::error::{AppError, FieldProblem};
use crate::llm::router::breaker::BreakerState;
use crate::llm::router::{Router, TargetHealth};
use crate::pb;
use crate::pb::admin_service_server::AdminService;
use crate::status::{DependencyHealth, DependencyState, InstanceStatus, StatusReport};

/// The AdminService implementation.
#[derive(Debug)]
pub struct AdminApi {
    status: Arc<InstanceStatus>,
    router: Arc<Router>,
    cost: Arc<CostControl>,
    instance: String,
}

impl AdminApi {
    /// The service for one instance, its router and its cost control.
    pub fn new(status: Arc<InstanceStatus>, router: Arc<Router>, cost: Arc<CostControl>) -> Self {
        Self {
            status,
            router,
            cost,
            instance: crate::status::instance_name(),
        }
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

    async fn list_models(
        &self,
        request: Request<pb::ListModelsRequest>,
    ) -> Result<Response<pb::ListModelsResponse>, Status> {
        caller(&request)?;
        let routes = self
            .router
            .routes()
            .map(|route| pb::Route {
                name: route.name.clone(),
                targets: route.targets.iter().map(|t| t.name.clone()).collect(),
                weights: route.weights.clone(),
                fallback: route.fallback.clone(),
                chain: route.chain.iter().map(|t| t.name.clone()).collect(),
                degraded: match route.degraded {
                    Degraded::Extractive => pb::DegradedEnd::Extractive,
                    Degraded::Unavailable => pb::DegradedEnd::Unavailable,
                }
                .into(),
                context_window: route
                    .chain
                    .iter()
                    .map(|t| t.context_window)
                    .min()
                    .unwrap_or(0),
                hedge_after: route.hedge_after.map(convert::duration),
            })
            .collect();
        let models = self
            .router
            .targets()
            .map(|target| pb::Model {
                name: target.name.clone(),
                provider: target.provider_name.clone(),
                upstream_model: target.upstream_id.clone(),
                local: target.local,
                context_window: target.context_window,
                max_output_tokens: target.max_output_tokens,
                health: Some(target.health().into()),
            })
            .collect();
        Ok(Response::new(pb::ListModelsResponse {
            routes,
            models,
            instance: self.instance.clone(),
        }))
    }

    async fn reset_breaker(
        &self,
        request: Request<pb::ResetBreakerRequest>,
    ) -> Result<Response<pb::ResetBreakerResponse>, Status> {
        caller(&request)?;
        let model = request.into_inner().model;
        if model.trim().is_empty() {
            return Err(AppError::InvalidArgument(vec![FieldProblem::new(
                "model",
                "must name a configured model",
            )])
            .into());
        }
        let Some(previous) = self.router.reset_breaker(&model) else {
            return Err(AppError::ModelNotFound {
                known: self
                    .router
                    .targets()
                    .map(|t| t.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                name: model,
            }
            .into());
        };
        Ok(Response::new(pb::ResetBreakerResponse {
            previous_state: breaker_state(previous).into(),
            instance: self.instance.clone(),
        }))
    }

    async fn get_usage(
        &self,
        request: Request<pb::GetUsageRequest>,
    ) -> Result<Response<pb::GetUsageResponse>, Status> {
        let caller = caller(&request)?;
        let query = cost::usage_query(&caller, request.into_inner())?;
        let report = self.cost.usage(&query).await.map_err(AppError::from)?;
        Ok(Response::new(cost::usage_response(&query.tenant, report)))
    }

    async fn set_budget(
        &self,
        request: Request<pb::SetBudgetRequest>,
    ) -> Result<Response<pb::SetBudgetResponse>, Status> {
        let caller = caller(&request)?;
        let (tenant, key, kind, limit) = cost::budget_change(&caller, request.into_inner())?;
        let budget = self
            .cost
            .set_budget(&tenant, key.as_deref(), kind, limit)
            .await
            .map_err(AppError::from)?;
        Ok(Response::new(pb::SetBudgetResponse {
            budget: Some(budget.into()),
        }))
    }
}

fn breaker_state(state: BreakerState) -> pb::BreakerState {
    match state {
        BreakerState::Closed => pb::BreakerState::Closed,
        BreakerState::Open => pb::BreakerState::Open,
        BreakerState::HalfOpen => pb::BreakerState::HalfOpen,
    }
}

impl From<TargetHealth> for pb::ModelHealth {
    fn from(health: TargetHealth) -> Self {
        let (last_error, last_error_time) = match health.last_error {
            Some((error, at)) => (error, Some(convert::timestamp(at))),
            None => (String::new(), None),
        };
        Self {
            model: health.name,
            breaker_state: breaker_state(health.breaker).into(),
            last_error,
            last_error_time,
            recent_success_ratio: health.success_ratio,
        }
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
            models: report.models.into_iter().map(Into::into).collect(),
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
