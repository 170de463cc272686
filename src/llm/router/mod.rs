//! The model router: every model and route callers can name is a
//! [`RouteProvider`], itself an [`LlmProvider`], so the orchestrator never
//! knows about retries, breakers or fallbacks.
//!
//! A route is an ordered list of targets (configured models), optionally
//! split by weight (sticky per session, [`split`]), then a fallback chain of
//! other routes' targets, then its degraded end: the extractive answerer over
//! the request's collections, or `UNAVAILABLE`. A model call walks that chain
//! ([`call`]): each target behind its circuit breaker ([`breaker`]), retried
//! with backoff inside a per-route retry budget, until one produces its first
//! piece of answer. What happened is reported on the turn ([`report`]).

mod attempt;
pub mod breaker;
mod call;
mod hedge;
pub mod report;
pub mod retry;
pub mod split;

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tower::retry::budget::TpsBudget;

use super::{CallContext, LlmError, LlmProvider, LlmRequest, LlmStream, TurnContext};
use crate::clock::Clock;
use crate::config::{Degraded, LlmConfig, RetryConfig};
use crate::telemetry::resilience::RouterMetrics;
use crate::tokenizer::Encoding;
use breaker::{Breaker, BreakerState};

/// Outcomes kept per target for its recent success ratio.
const RECENT: usize = 100;

/// A configured model as the router calls it.
#[derive(Debug)]
pub struct Target {
    /// The model's public name.
    pub name: String,
    /// The provider's id of the model.
    pub upstream_id: String,
    /// The provider's configured name.
    pub provider_name: String,
    /// The provider, behind the per-call chain.
    pub provider: Arc<dyn LlmProvider>,
    /// Inside the cluster's trust boundary (`llm.providers.*.local`).
    pub local: bool,
    /// Tokens it accepts, input and output together.
    pub context_window: u32,
    /// Most output tokens per answer.
    pub max_output_tokens: u32,
    /// How its tokens are counted.
    pub encoding: Encoding,
    /// Limit from an attempt's start to its first piece of answer.
    pub first_token_timeout: Duration,
    /// Limit on a whole attempt.
    pub total_timeout: Duration,
    /// Its circuit breaker, shared by every route that names it.
    pub breaker: Arc<Breaker>,
    /// Its price (0 when unpriced), for the cost on its attempts' spans.
    pub price: crate::cost::prices::Price,
    stats: Mutex<TargetStats>,
}

#[derive(Debug, Default)]
struct TargetStats {
    last_error: Option<(String, SystemTime)>,
    recent: VecDeque<bool>,
}

/// A target's health, as `GetStatus` and `ListModels` show it.
#[derive(Clone, Debug, PartialEq)]
pub struct TargetHealth {
    /// The model.
    pub name: String,
    /// Its breaker's state.
    pub breaker: BreakerState,
    /// The last failure's summary and when it happened.
    pub last_error: Option<(String, SystemTime)>,
    /// The share of its last (up to 100) attempts that succeeded; `None`
    /// before the first.
    pub success_ratio: Option<f64>,
}

impl Target {
    /// A target for model `name` served by `spec`'s provider, with a closed
    /// breaker.
    pub fn new(
        name: &str,
        upstream_id: &str,
        limits: (u32, u32),
        spec: &TargetSpec,
        breaker: Breaker,
        price: crate::cost::prices::Price,
    ) -> Self {
        Self {
            name: name.to_owned(),
            encoding: Encoding::for_model(upstream_id),
            upstream_id: upstream_id.to_owned(),
            provider_name: spec.provider_name.clone(),
            provider: spec.provider.clone(),
            local: spec.local,
            context_window: limits.0,
            max_output_tokens: limits.1,
            first_token_timeout: spec.first_token_timeout,
            total_timeout: spec.total_timeout,
            breaker: Arc::new(breaker),
            price,
            stats: Mutex::new(TargetStats::default()),
        }
    }

    /// Records how an attempt ended, for its health.
    fn observe(&self, outcome: Result<(), &LlmError>, at: SystemTime) {
        let mut stats = self
            .stats
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if stats.recent.len() == RECENT {
            stats.recent.pop_front();
        }
        stats.recent.push_back(outcome.is_ok());
        if let Err(error) = outcome {
            stats.last_error = Some((error.summary(), at));
        }
    }

    /// Its health now.
    pub fn health(&self) -> TargetHealth {
        let stats = self
            .stats
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let ok = stats.recent.iter().filter(|ok| **ok).count();
        TargetHealth {
            name: self.name.clone(),
            breaker: self.breaker.state(),
            last_error: stats.last_error.clone(),
            success_ratio: (!stats.recent.is_empty())
                .then(|| ok as f64 / stats.recent.len() as f64),
        }
    }
}

/// A route: its targets, split and fallback chain, flattened.
#[derive(Debug)]
pub struct Route {
    /// The route's name (a model's name for a model's own route).
    pub name: String,
    /// Its own targets, in order.
    pub targets: Vec<Arc<Target>>,
    /// One weight per target, or empty for no split.
    pub weights: Vec<u32>,
    /// The routes and models named as its fallback, in order.
    pub fallback: Vec<String>,
    /// Every target of the chain: its own, then its fallbacks' in turn, each
    /// once.
    pub chain: Vec<Arc<Target>>,
    /// The end of the chain.
    pub degraded: Degraded,
    /// Hedging's delay, if the route hedges.
    pub hedge_after: Option<Duration>,
    budget: TpsBudget,
}

impl Route {
    /// The targets a call of `turn` tries, in order: the split's arm first,
    /// then the rest of the chain.
    fn plan(&self, turn: &TurnContext) -> Vec<Arc<Target>> {
        let first = split::arm(&self.weights, &turn.tenant, &turn.session, &self.name);
        // The chain holds every target once, the route's own first: the arm
        // moves to the front.
        let mut plan = self.chain.clone();
        if let Some(at) = self
            .targets
            .get(first)
            .and_then(|arm| plan.iter().position(|t| Arc::ptr_eq(t, arm)))
        {
            let arm = plan.remove(at);
            plan.insert(0, arm);
        }
        plan
    }

    /// Whether a call can still produce an answer with every LLM target down:
    /// its chain ends in the extractive answerer.
    pub fn ends_extractive(&self) -> bool {
        self.degraded == Degraded::Extractive
    }
}

/// A route's retry budget. The config checks the window (1 to 60 s) and the
/// ratio (0 to 10), the ranges outside which `TpsBudget::new` panics.
pub(crate) fn budget(retry: &RetryConfig) -> TpsBudget {
    TpsBudget::new(
        retry.budget_window,
        retry.budget_min_per_second,
        retry.budget_ratio,
    )
}

/// Every target and route of the configuration.
#[derive(Debug)]
pub struct Router {
    targets: BTreeMap<String, Arc<Target>>,
    routes: BTreeMap<String, Arc<Route>>,
    retry: RetryConfig,
    reserve: Duration,
    clock: Clock,
    metrics: RouterMetrics,
    extractive: Arc<dyn LlmProvider>,
}

/// What a model entry needs to become a target.
#[derive(Debug)]
pub struct TargetSpec {
    /// The provider, behind the per-call chain.
    pub provider: Arc<dyn LlmProvider>,
    /// The provider's configured name.
    pub provider_name: String,
    /// `llm.providers.*.local`.
    pub local: bool,
    /// `llm.providers.*.first_token_timeout`.
    pub first_token_timeout: Duration,
    /// `llm.providers.*.total_timeout`.
    pub total_timeout: Duration,
}

impl Router {
    /// A router over the validated `config`: `providers` maps each provider
    /// name to its built provider; `extractive` is the degraded end.
    pub fn new(
        config: &LlmConfig,
        providers: &BTreeMap<String, TargetSpec>,
        extractive: Arc<dyn LlmProvider>,
        clock: &Clock,
        metrics: RouterMetrics,
    ) -> anyhow::Result<Self> {
        let mut targets = BTreeMap::new();
        for (name, model) in &config.models {
            let spec = providers
                .get(&model.provider)
                .ok_or_else(|| anyhow::anyhow!("llm.models.{name}.provider: unknown provider"))?;
            targets.insert(
                name.clone(),
                Arc::new(Target::new(
                    name,
                    model.upstream_id(name),
                    (model.context_window, model.max_output_tokens),
                    spec,
                    Breaker::new(name, config.breaker.clone(), clock.clone(), metrics.clone()),
                    crate::cost::prices::for_model(model.price.as_ref(), model.upstream_id(name))
                        .unwrap_or(crate::cost::prices::Price::FREE),
                )),
            );
        }
        let mut routes = BTreeMap::new();
        let named = config
            .models
            .keys()
            .map(|name| (name.clone(), crate::config::implicit_route(name)))
            .chain(config.routes.clone());
        for (name, route) in named {
            let find = |model: &String| {
                targets
                    .get(model)
                    .cloned()
                    .ok_or_else(|| anyhow::anyhow!("llm.routes.{name}: no model {model:?}"))
            };
            let own = route
                .targets
                .iter()
                .map(find)
                .collect::<Result<Vec<_>, _>>()?;
            let chain = config
                .chain_models(&name)
                .iter()
                .map(find)
                .collect::<Result<Vec<_>, _>>()?;
            routes.insert(
                name.clone(),
                Arc::new(Route {
                    name: name.clone(),
                    targets: own,
                    weights: route.weights.clone(),
                    fallback: route.fallback.clone(),
                    chain,
                    degraded: route.degraded.unwrap_or(config.degraded_default),
                    hedge_after: route.hedge_after,
                    budget: budget(&config.retry),
                }),
            );
        }
        Ok(Self {
            targets,
            routes,
            retry: config.retry.clone(),
            reserve: config.fallback_reserve,
            clock: clock.clone(),
            metrics,
            extractive,
        })
    }

    /// The router of an instance with no model configured: the extractive
    /// answerer `spec` as its only target and route, ending in
    /// `UNAVAILABLE` (it is the answer, not a degraded one).
    pub fn extractive_only(
        spec: &TargetSpec,
        config: &LlmConfig,
        clock: &Clock,
        metrics: RouterMetrics,
    ) -> Self {
        let name = super::extractive::MODEL;
        let target = Arc::new(Target::new(
            name,
            name,
            (128_000, 4_096),
            spec,
            Breaker::new(name, config.breaker.clone(), clock.clone(), metrics.clone()),
            crate::cost::prices::Price::FREE,
        ));
        let route = Arc::new(Route {
            name: name.to_owned(),
            targets: vec![target.clone()],
            weights: Vec::new(),
            fallback: Vec::new(),
            chain: vec![target.clone()],
            degraded: Degraded::Unavailable,
            hedge_after: None,
            budget: budget(&config.retry),
        });
        Self {
            targets: BTreeMap::from([(name.to_owned(), target)]),
            routes: BTreeMap::from([(name.to_owned(), route)]),
            retry: config.retry.clone(),
            reserve: config.fallback_reserve,
            clock: clock.clone(),
            metrics,
            extractive: spec.provider.clone(),
        }
    }

    /// Every route, by name (each model's own route included).
    pub fn routes(&self) -> impl Iterator<Item = &Arc<Route>> {
        self.routes.values()
    }

    /// Every target, by name.
    pub fn targets(&self) -> impl Iterator<Item = &Arc<Target>> {
        self.targets.values()
    }

    /// The route or model called `name`.
    pub fn route(&self, name: &str) -> Option<&Arc<Route>> {
        self.routes.get(name)
    }

    /// Closes `target`'s breaker; its state before, or `None` for no such
    /// target.
    pub fn reset_breaker(&self, target: &str) -> Option<BreakerState> {
        self.targets.get(target).map(|t| {
            let before = t.breaker.reset();
            tracing::warn!(
                target_model = target,
                from = before.as_str(),
                "circuit breaker reset by an operator"
            );
            before
        })
    }

    /// Whether some route can produce an answer now: one of its targets'
    /// breakers lets calls through, or its chain ends in the extractive
    /// answerer and the vector store it quotes is up. Reading every breaker
    /// also moves those whose cool-down has passed to half-open, so their
    /// exported state is current.
    pub fn can_answer(&self, vector_store_up: bool) -> bool {
        let open: std::collections::BTreeSet<&str> = self
            .targets
            .values()
            .filter(|t| t.breaker.state() == BreakerState::Open)
            .map(|t| t.name.as_str())
            .collect();
        self.routes.values().any(|route| {
            (route.ends_extractive() && vector_store_up)
                || route.chain.iter().any(|t| !open.contains(t.name.as_str()))
        })
    }
}

/// One route as a provider: what the catalog hands the orchestrator.
#[derive(Debug)]
pub struct RouteProvider {
    router: Arc<Router>,
    route: Arc<Route>,
    /// The provider name of the route's first target, for the call's span.
    provider_name: String,
}

impl RouteProvider {
    /// The provider for `route` of `router`.
    pub fn new(router: Arc<Router>, route: Arc<Route>) -> Self {
        let provider_name = route
            .targets
            .first()
            .map(|t| t.provider_name.clone())
            .unwrap_or_default();
        Self {
            router,
            route,
            provider_name,
        }
    }
}

#[async_trait::async_trait]
impl LlmProvider for RouteProvider {
    /// The provider of the route's first target (each attempt's span names
    /// its own).
    fn name(&self) -> &str {
        &self.provider_name
    }

    fn first_target(&self, turn: &TurnContext) -> Option<String> {
        self.route.plan(turn).first().map(|t| t.name.clone())
    }

    /// With a downgrade route for the turn (the tenant's `downgrade_to`), a
    /// call a budget refuses before any output goes to that route instead
    /// (its output cap lowered to the route's), and the turn is flagged
    /// `BUDGET_DOWNGRADE`; a refusal there ends it. The conversation was
    /// fitted to the route asked for: a downgrade route with a smaller
    /// context window may refuse it.
    async fn stream_chat(
        &self,
        call: &CallContext,
        request: LlmRequest,
    ) -> Result<LlmStream, LlmError> {
        let cheaper = call
            .turn
            .downgrade_to
            .as_deref()
            .filter(|name| *name != self.route.name)
            .and_then(|name| self.router.route(name))
            .cloned();
        let Some(cheaper) = cheaper else {
            return Ok(call::route_call(
                self.router.clone(),
                self.route.clone(),
                call.clone(),
                request,
            ));
        };
        // Kept for the cheaper route: a copy only for tenants with a
        // downgrade route, its output cap within the cheaper route's.
        let mut spare = request.clone();
        if let Some(cap) = cheaper.chain.iter().map(|t| t.max_output_tokens).min() {
            spare.max_output_tokens =
                Some(spare.max_output_tokens.map_or(cap, |asked| asked.min(cap)));
        }
        let mut asked = call::route_call(
            self.router.clone(),
            self.route.clone(),
            call.clone(),
            request,
        );
        let (router, call) = (self.router.clone(), call.clone());
        Ok(Box::pin(async_stream::stream! {
            use futures::StreamExt as _;
            let first = asked.next().await;
            if let Some(Err(LlmError::Limited(crate::cost::Limited::Budget { .. }))) = &first {
                tracing::info!(
                    tenant = %call.turn.tenant,
                    route = cheaper.name.as_str(),
                    "a budget is exhausted: the call goes to the tenant's downgrade route"
                );
                report::update(&call.turn, |report| report.downgraded = true);
                drop(asked);
                let mut downgraded = call::route_call(router, cheaper, call, spare);
                while let Some(item) = downgraded.next().await {
                    yield item;
                }
                return;
            }
            if let Some(item) = first {
                yield item;
            }
            while let Some(item) = asked.next().await {
                yield item;
            }
        }))
    }
}
