//! Cost control: what every model call costs, who may spend how much, and how
//! fast (docs/cost.md).
//!
//! - [`prices`] and [`money`]: prices per model and exact integer nano-USD.
//! - [`ledger`]: budgets, reservations, token-rate buckets and usage, in the
//!   embedded store or Redis.
//! - [`requests`]: requests-per-period limits, checked first for every turn.
//! - [`stage`]: the admission stage of the per-call chain, which reserves
//!   before every attempt of every model call and settles after it.
//! - [`CostControl`]: all of it for one process, built from `[cost]`.

pub mod bucket;
pub mod ledger;
pub mod money;
pub mod period;
pub mod prices;
pub mod report;
pub mod requests;
pub mod stage;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use self::bucket::Limit;
use self::ledger::{BudgetKind, Budgets, Exceeded, Ledger, LedgerError, Owner};
use self::requests::RequestLimiter;
use crate::clock::Clock;
use crate::config::Config;
use crate::ids::TenantId;
use crate::telemetry::cost::CostMetrics;

/// Why a turn or a model call was not allowed to spend.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Limited {
    /// A budget would be exceeded.
    #[error("the {owner} budget {} is exhausted: {used} of {limit} {} used", .kind.as_str(), if .kind.is_usd() { "nano-USD" } else { "tokens" })]
    Budget {
        /// Whose: `tenant`, `key:NAME` or `session`.
        owner: String,
        /// Which.
        kind: BudgetKind,
        /// Its limit.
        limit: u64,
        /// Spent and reserved before this call.
        used: u64,
    },
    /// A rate limit is reached.
    #[error("rate limit {limit} reached; retry in {}", humantime::format_duration(*.wait))]
    Rate {
        /// `requests_global`, `requests_tenant`, `requests_key`,
        /// `tokens_tenant` or `tokens_key`.
        limit: &'static str,
        /// How long until it admits the call.
        wait: Duration,
    },
    /// The ledger could not be asked: budgets fail closed (and rate limits
    /// with `cost.rate_limits_fail_open = false`).
    #[error("{0}")]
    Unavailable(String),
}

impl Limited {
    fn over_budget(exceeded: &Exceeded) -> Self {
        let owner = if exceeded.kind.is_session() {
            "session".to_owned()
        } else {
            exceeded.owner.to_string()
        };
        Limited::Budget {
            owner,
            kind: exceeded.kind,
            limit: exceeded.limit,
            used: exceeded.used,
        }
    }
}

/// One owner's limits from config.
#[derive(Clone, Copy, Debug, Default)]
struct OwnerLimits {
    budgets: Budgets,
    tokens: Option<Limit>,
}

/// Cost control for one process.
#[derive(Debug)]
pub struct CostControl {
    ledger: Arc<dyn Ledger>,
    requests: RequestLimiter,
    tenants: HashMap<TenantId, OwnerLimits>,
    keys: HashMap<String, OwnerLimits>,
    /// Every tenant that can spend, for the sweep.
    known_tenants: Vec<TenantId>,
    /// The tenant of each key, by the key's name.
    key_tenants: HashMap<String, TenantId>,
    /// Each tenant's `downgrade_to`.
    downgrades: HashMap<TenantId, String>,
    zone: jiff::tz::TimeZone,
    soft_limit_percent: u64,
    rate_limits_fail_open: bool,
    /// How long an unsettled reservation stands before it is charged.
    reservation_ttl: Duration,
    session_ttl: Duration,
    usage_retention: Duration,
    clock: Clock,
    metrics: CostMetrics,
    /// Settlements on their way to the ledger, awaited at shutdown.
    settlements: tokio_util::task::TaskTracker,
}

impl CostControl {
    /// Cost control over `ledger` and `requests` as `config` sets it. A
    /// reservation stands `server.max_timeout` plus a minute: no model call
    /// outlives its turn's deadline, which is at most `server.max_timeout`.
    pub fn new(
        config: &Config,
        ledger: Arc<dyn Ledger>,
        requests: RequestLimiter,
        clock: Clock,
        metrics: CostMetrics,
    ) -> Self {
        let cost = &config.cost;
        let limits = |l: &crate::config::cost::Limits| OwnerLimits {
            budgets: Budgets::of(l),
            tokens: l.token_limit(),
        };
        let mut known: BTreeSet<TenantId> =
            config.auth.keys.iter().map(|k| k.tenant.clone()).collect();
        if !config.auth.enabled {
            known.insert(TenantId::default_tenant());
        }
        for tenant in &known {
            metrics.tenant(tenant);
        }
        Self {
            ledger,
            requests,
            tenants: cost
                .tenants
                .iter()
                .map(|(t, l)| (t.clone(), limits(l)))
                .collect(),
            downgrades: cost
                .tenants
                .iter()
                .filter_map(|(t, l)| Some((t.clone(), l.downgrade_to.clone()?)))
                .collect(),
            keys: cost
                .keys
                .iter()
                .map(|(k, l)| (k.clone(), limits(l)))
                .collect(),
            known_tenants: known.into_iter().collect(),
            key_tenants: if config.auth.enabled {
                config
                    .auth
                    .keys
                    .iter()
                    .map(|k| (k.name.clone(), k.tenant.clone()))
                    .collect()
            } else {
                HashMap::from([("anonymous".to_owned(), TenantId::default_tenant())])
            },
            zone: cost.zone(),
            soft_limit_percent: u64::from(cost.soft_limit_percent),
            rate_limits_fail_open: cost.rate_limits_fail_open,
            reservation_ttl: config.server.max_timeout + Duration::from_secs(60),
            session_ttl: config.sessions.max_age,
            usage_retention: cost.usage_retention,
            clock,
            metrics,
            settlements: tokio_util::task::TaskTracker::new(),
        }
    }

    /// Waits, at most `limit`, for the settlements still on their way to the
    /// ledger (at shutdown: one that never arrives is charged in full when
    /// its reservation expires).
    pub async fn settled(&self, limit: Duration) {
        self.settlements.close();
        if tokio::time::timeout(limit, self.settlements.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                left = self.settlements.len(),
                "settlements still unfinished at shutdown; their reservations will be charged in full when they expire"
            );
        }
    }

    /// The route `tenant`'s model calls go to when a budget refuses them.
    pub fn downgrade_for(&self, tenant: &TenantId) -> Option<String> {
        self.downgrades.get(tenant).cloned()
    }

    /// The ledger.
    pub fn ledger(&self) -> &Arc<dyn Ledger> {
        &self.ledger
    }

    /// The time zone of budget periods.
    pub fn zone(&self) -> &jiff::tz::TimeZone {
        &self.zone
    }

    /// The clock.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The configured budgets of `owner` of `tenant`.
    pub fn configured(&self, tenant: &TenantId, owner: &Owner) -> Budgets {
        match owner {
            Owner::Tenant => self.tenants.get(tenant),
            Owner::Key(name) => self.keys.get(name),
        }
        .map(|l| l.budgets)
        .unwrap_or_default()
    }

    /// Checks the request-rate limits of one turn of `key` of `tenant`: the
    /// global one, the tenant's, the key's. Called before anything else.
    pub async fn admit_request(&self, tenant: &TenantId, key: &str) -> Result<(), Limited> {
        match self.requests.check(tenant, key, self.clock.unix_ms()).await {
            Ok(None) => Ok(()),
            Ok(Some((limit, wait))) => {
                self.metrics.rate_limited(tenant, limit);
                Err(Limited::Rate { limit, wait })
            }
            Err(err) if self.rate_limits_fail_open => {
                tracing::warn!(error = %err, "request-rate limits not checked (cost.rate_limits_fail_open)");
                self.metrics.ledger_failure("requests");
                Ok(())
            }
            Err(err) => {
                self.metrics.ledger_failure("requests");
                Err(Limited::Unavailable(err.to_string()))
            }
        }
    }

    /// Charges reservations that expired unsettled (a replica crashed
    /// between reserving and settling); run every `sessions.sweep_interval`.
    pub async fn sweep(&self) -> Result<usize, LedgerError> {
        let swept = self
            .ledger
            .sweep(&self.known_tenants, self.clock.unix_ms())
            .await
            .inspect_err(|_| self.metrics.ledger_failure("sweep"))?;
        let mut total = 0;
        for (tenant, count) in swept {
            tracing::warn!(%tenant, count, "unsettled reservations expired and were charged in full");
            self.metrics.expired(&tenant, count);
            total += count;
        }
        Ok(total)
    }

    /// Sweeps every `interval` until `shutdown` fires.
    pub async fn sweep_every(
        self: Arc<Self>,
        interval: Duration,
        shutdown: tokio_util::sync::CancellationToken,
    ) {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = self.clock.sleep(interval) => {}
            }
            if let Err(err) = self.sweep().await {
                tracing::warn!(error = %err, "sweeping expired reservations failed; retrying later");
            }
        }
    }
}
