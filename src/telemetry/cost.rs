//! Metrics of cost control: spend, budgets, rate limits and the ledger.
//! Tenants and keys come from config, so every label stays bounded.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

use crate::ids::TenantId;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CostLabels {
    tenant: String,
    route: String,
    model: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BudgetLabels {
    tenant: String,
    budget: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UsedLabels {
    tenant: String,
    subject: String,
    budget: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabels {
    tenant: String,
    limit: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TenantLabels {
    tenant: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModelLabels {
    model: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    operation: String,
}

/// Cost metrics; cheap to clone (clones share the series).
#[derive(Clone, Debug, Default)]
pub struct CostMetrics {
    cost: Family<CostLabels, Counter<f64, AtomicU64>>,
    unpriced: Family<ModelLabels, Gauge>,
    rejections: Family<BudgetLabels, Counter>,
    soft_limit: Family<BudgetLabels, Counter>,
    used_ratio: Family<UsedLabels, Gauge<f64, AtomicU64>>,
    rate_limited: Family<LimitLabels, Counter>,
    expired: Family<TenantLabels, Counter>,
    ledger_failures: Family<OperationLabels, Counter>,
}

impl CostMetrics {
    /// Registers the metrics in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        for operation in ["reserve", "settle", "sweep", "requests", "persist"] {
            metrics
                .ledger_failures
                .get_or_create(&OperationLabels {
                    operation: operation.to_owned(),
                })
                .inc_by(0);
        }
        registry.register(
            "agentd_cost_usd",
            "What model calls cost, in USD, by tenant, route and model: every attempt that \
             reached an upstream, priced from the provider's usage or agentd's estimate",
            metrics.cost.clone(),
        );
        registry.register(
            "agentd_unpriced_models",
            "1 for each configured model (or `embeddings`) with no price: its calls are \
             accounted at 0 USD",
            metrics.unpriced.clone(),
        );
        registry.register(
            "agentd_budget_rejections",
            "Model calls refused because a budget would be exceeded, by tenant and budget \
             (usd_day, usd_month, tokens_day, tokens_month, session_usd, session_tokens)",
            metrics.rejections.clone(),
        );
        registry.register(
            "agentd_budget_soft_limit",
            "Reservations that took a budget past cost.soft_limit_percent, by tenant and budget",
            metrics.soft_limit.clone(),
        );
        registry.register(
            "agentd_budget_used_ratio",
            "Spent and reserved over the limit, after the last reservation, by tenant, subject \
             (tenant or key:NAME) and budget; sessions are not exported",
            metrics.used_ratio.clone(),
        );
        registry.register(
            "agentd_rate_limited",
            "Turns and model calls refused by a rate limit, by tenant and limit \
             (requests_global, requests_tenant, requests_key, tokens_tenant, tokens_key)",
            metrics.rate_limited.clone(),
        );
        registry.register(
            "agentd_budget_reservations_expired",
            "Reservations charged in full because nobody settled them in time (a replica \
             stopped between reserving and settling), by tenant",
            metrics.expired.clone(),
        );
        registry.register(
            "agentd_cost_ledger_failures",
            "Failures of the budget ledger's state backend by operation (reserve, settle, \
             sweep, requests; persist: the embedded ledger's writes to disk); budgets then \
             fail closed",
            metrics.ledger_failures.clone(),
        );
        metrics
    }

    /// A settled call's cost.
    pub fn cost(&self, tenant: &TenantId, route: &str, model: &str, usd: f64) {
        self.cost
            .get_or_create(&CostLabels {
                tenant: tenant.to_string(),
                route: route.to_owned(),
                model: model.to_owned(),
            })
            .inc_by(usd);
    }

    /// Starts `tenant`'s counters at zero, so rates and alerts see them
    /// before the first event.
    pub fn tenant(&self, tenant: &TenantId) {
        let budgets = [
            "usd_day",
            "usd_month",
            "tokens_day",
            "tokens_month",
            "session_usd",
            "session_tokens",
        ];
        for budget in budgets {
            let labels = BudgetLabels {
                tenant: tenant.to_string(),
                budget: budget.to_owned(),
            };
            self.rejections.get_or_create(&labels).inc_by(0);
            self.soft_limit.get_or_create(&labels).inc_by(0);
        }
        for limit in [
            "requests_global",
            "requests_tenant",
            "requests_key",
            "tokens_tenant",
            "tokens_key",
        ] {
            self.rate_limited
                .get_or_create(&LimitLabels {
                    tenant: tenant.to_string(),
                    limit: limit.to_owned(),
                })
                .inc_by(0);
        }
        self.expired
            .get_or_create(&TenantLabels {
                tenant: tenant.to_string(),
            })
            .inc_by(0);
    }

    /// Marks `model` as priced (0) or not (1).
    pub fn priced(&self, model: &str, priced: bool) {
        self.unpriced
            .get_or_create(&ModelLabels {
                model: model.to_owned(),
            })
            .set(i64::from(!priced));
    }

    /// Marks `model` as having no price.
    pub fn unpriced(&self, model: &str) {
        self.unpriced
            .get_or_create(&ModelLabels {
                model: model.to_owned(),
            })
            .set(1);
    }

    /// A call refused by `budget`.
    pub fn rejected(&self, tenant: &TenantId, budget: &str) {
        self.rejections
            .get_or_create(&BudgetLabels {
                tenant: tenant.to_string(),
                budget: budget.to_owned(),
            })
            .inc();
    }

    /// A reservation past the soft limit of `budget`.
    pub fn soft_limit(&self, tenant: &TenantId, budget: &str) {
        self.soft_limit
            .get_or_create(&BudgetLabels {
                tenant: tenant.to_string(),
                budget: budget.to_owned(),
            })
            .inc();
    }

    /// How full `budget` of `subject` is.
    pub fn used(&self, tenant: &TenantId, subject: &str, budget: &str, ratio: f64) {
        self.used_ratio
            .get_or_create(&UsedLabels {
                tenant: tenant.to_string(),
                subject: subject.to_owned(),
                budget: budget.to_owned(),
            })
            .set(ratio);
    }

    /// A turn or call refused by rate limit `limit`.
    pub fn rate_limited(&self, tenant: &TenantId, limit: &str) {
        self.rate_limited
            .get_or_create(&LimitLabels {
                tenant: tenant.to_string(),
                limit: limit.to_owned(),
            })
            .inc();
    }

    /// `count` reservations charged at expiry.
    pub fn expired(&self, tenant: &TenantId, count: usize) {
        self.expired
            .get_or_create(&TenantLabels {
                tenant: tenant.to_string(),
            })
            .inc_by(u64::try_from(count).unwrap_or(u64::MAX));
    }

    /// A ledger `operation` failed.
    pub fn ledger_failure(&self, operation: &str) {
        self.ledger_failures
            .get_or_create(&OperationLabels {
                operation: operation.to_owned(),
            })
            .inc();
    }
}
