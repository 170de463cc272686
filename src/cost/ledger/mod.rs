//! The ledger: budgets, their runtime overrides, reservations, token-rate
//! buckets and usage, in one state backend that every replica shares.
//!
//! A model call **reserves** its estimate (input bound plus the output cap,
//! and their price) against every budget that applies and takes the estimate
//! from the token-rate buckets, all or nothing in one atomic step (one Redis
//! script over one hash slot, or one critical section embedded): two racing
//! calls can never both take the last dollar. When the call ends it is
//! **settled** to what it really used, once: settlement is keyed by the
//! server's turn id and the turn-wide call number. A reservation nobody settles
//! (the replica crashed) is **charged in full** when it expires
//! ([`Ledger::sweep`]): an attempt that reached the upstream may have been
//! billed, so a crash never lets spend escape a budget.

mod embedded;
mod redis;
#[cfg(test)]
mod suite;

use std::fmt;
use std::time::Duration;

pub use embedded::EmbeddedLedger;
pub use redis::RedisLedger;

use super::bucket::Limit;
use super::money::Usd;
use super::period::Periods;
use crate::ids::{SessionId, TenantId, TurnId};

/// What a budget limits and over which period.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BudgetKind {
    /// USD per calendar day.
    UsdDay,
    /// USD per calendar month.
    UsdMonth,
    /// Tokens per calendar day.
    TokensDay,
    /// Tokens per calendar month.
    TokensMonth,
    /// USD over a session's lifetime.
    SessionUsd,
    /// Tokens over a session's lifetime.
    SessionTokens,
}

impl BudgetKind {
    /// Every kind.
    pub const ALL: [BudgetKind; 6] = [
        BudgetKind::UsdDay,
        BudgetKind::UsdMonth,
        BudgetKind::TokensDay,
        BudgetKind::TokensMonth,
        BudgetKind::SessionUsd,
        BudgetKind::SessionTokens,
    ];

    /// The kinds a tenant or key has per calendar period.
    pub const PERIODIC: [BudgetKind; 4] = [
        BudgetKind::UsdDay,
        BudgetKind::UsdMonth,
        BudgetKind::TokensDay,
        BudgetKind::TokensMonth,
    ];

    /// The name in config, metrics and errors (`usd_day`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            BudgetKind::UsdDay => "usd_day",
            BudgetKind::UsdMonth => "usd_month",
            BudgetKind::TokensDay => "tokens_day",
            BudgetKind::TokensMonth => "tokens_month",
            BudgetKind::SessionUsd => "session_usd",
            BudgetKind::SessionTokens => "session_tokens",
        }
    }

    /// The kind named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }

    /// Whether it counts nano-USD (else tokens).
    pub fn is_usd(self) -> bool {
        matches!(
            self,
            BudgetKind::UsdDay | BudgetKind::UsdMonth | BudgetKind::SessionUsd
        )
    }

    /// Whether it belongs to a session (else to a tenant or key).
    pub fn is_session(self) -> bool {
        matches!(self, BudgetKind::SessionUsd | BudgetKind::SessionTokens)
    }
}

/// Whose budget: the tenant's, one of its keys', or (for session budgets) the
/// tenant's limit applied to each session.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Owner {
    /// The tenant as a whole.
    Tenant,
    /// One API key, by its configured name.
    Key(String),
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Owner::Tenant => f.write_str("tenant"),
            Owner::Key(name) => write!(f, "key:{name}"),
        }
    }
}

/// The budgets of one owner from config: a limit (nano-USD or tokens) per kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Budgets {
    /// Indexed like [`BudgetKind::ALL`].
    pub limits: [Option<u64>; 6],
}

impl Budgets {
    /// The configured limit of `kind`.
    pub fn get(&self, kind: BudgetKind) -> Option<u64> {
        self.limits[kind as usize]
    }

    /// From the config's limits.
    pub fn of(limits: &crate::config::cost::Limits) -> Self {
        let usd = |value: Option<Usd>| value.map(Usd::nanos);
        Self {
            limits: [
                usd(limits.budget_usd_day),
                usd(limits.budget_usd_month),
                limits.budget_tokens_day,
                limits.budget_tokens_month,
                usd(limits.session_usd),
                limits.session_tokens,
            ],
        }
    }
}

/// One model call, identified for settlement: the server's turn id and the
/// call's number within the turn (every attempt of every model call of the
/// turn has its own), never anything a caller chose.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallId {
    /// The turn.
    pub turn: TurnId,
    /// The call's number in the turn, from 1.
    pub call: u32,
}

impl fmt::Display for CallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.turn, self.call)
    }
}

/// A reservation to make.
#[derive(Clone, Debug)]
pub struct Reservation {
    /// The tenant.
    pub tenant: TenantId,
    /// The API key's name.
    pub key: String,
    /// The session the call belongs to.
    pub session: SessionId,
    /// The call.
    pub id: CallId,
    /// The periods at reservation: settlement charges these, even after
    /// midnight.
    pub periods: Periods,
    /// Now, on agentd's clock, in Unix milliseconds.
    pub now_ms: i64,
    /// When an unsettled reservation is charged in full.
    pub expires_ms: i64,
    /// How long a session's counters are kept after their last use.
    pub session_ttl_ms: i64,
    /// How long a day's usage is kept after the day.
    pub usage_retention_ms: i64,
    /// Tokens reserved.
    pub tokens: u64,
    /// Cost reserved.
    pub cost: Usd,
    /// The tenant's budgets from config.
    pub tenant_budgets: Budgets,
    /// The key's budgets from config.
    pub key_budgets: Budgets,
    /// Token-rate limits: the tenant's and the key's.
    pub tenant_tokens: Option<Limit>,
    /// See `tenant_tokens`.
    pub key_tokens: Option<Limit>,
}

impl Reservation {
    /// Whether config sets any budget on it.
    pub fn budgeted(&self) -> bool {
        self.tenant_budgets != Budgets::default() || self.key_budgets != Budgets::default()
    }

    /// Whether config sets a token-rate limit on it.
    pub fn rate_limited(&self) -> bool {
        self.tenant_tokens.is_some() || self.key_tokens.is_some()
    }
}

/// How full a budget is after a reservation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BudgetUse {
    /// Whose.
    pub owner: Owner,
    /// Which.
    pub kind: BudgetKind,
    /// Its limit (a runtime override if one is set).
    pub limit: u64,
    /// Spent and reserved, this reservation included.
    pub used: u64,
}

/// A budget that a reservation would exceed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exceeded {
    /// Whose.
    pub owner: Owner,
    /// Which.
    pub kind: BudgetKind,
    /// Its limit.
    pub limit: u64,
    /// Already spent or reserved.
    pub used: u64,
}

/// The answer to a reservation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reserved {
    /// Reserved; how full each applicable budget now is.
    Granted(Vec<BudgetUse>),
    /// Nothing reserved: this budget would be exceeded.
    OverBudget(Exceeded),
    /// Nothing reserved: a token bucket is short; retry after `wait`.
    RateLimited {
        /// "tokens_tenant" or "tokens_key".
        limit: &'static str,
        /// How long until the bucket holds the estimate.
        wait: Duration,
    },
}

/// What a settled call used, and what it is filed under in usage.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Spent {
    /// The route the call served.
    pub route: String,
    /// The model that was called (configured name).
    pub model: String,
    /// Input tokens, cached ones included.
    pub input_tokens: u64,
    /// Of those, read from the provider's prompt cache.
    pub cached_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// What it cost.
    pub cost: Usd,
    /// Whether the counts are agentd's estimate (the provider reported none).
    pub estimated: bool,
    /// Whether the call reached the upstream (and so counts as a call in
    /// usage); a call that never did releases its reservation and files
    /// nothing.
    pub reached: bool,
}

impl Spent {
    /// Input and output tokens.
    pub fn tokens(&self) -> u64 {
        self.input_tokens.saturating_add(self.output_tokens)
    }
}

/// Usage counts, summed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UsageCounts {
    /// Model calls (attempts) accounted.
    pub calls: u64,
    /// Of those, accounted by agentd's estimate.
    pub estimated_calls: u64,
    /// Input tokens.
    pub input_tokens: u64,
    /// Cached input tokens.
    pub cached_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Cost in nano-USD.
    pub cost_nanos: u64,
}

impl UsageCounts {
    /// The counts of one settled call.
    pub fn of(spent: &Spent) -> Self {
        Self {
            calls: u64::from(spent.reached),
            estimated_calls: u64::from(spent.estimated),
            input_tokens: spent.input_tokens,
            cached_tokens: spent.cached_tokens,
            output_tokens: spent.output_tokens,
            cost_nanos: spent.cost.nanos(),
        }
    }

    /// Adds `other`.
    pub fn add(&mut self, other: &UsageCounts) {
        self.calls = self.calls.saturating_add(other.calls);
        self.estimated_calls = self.estimated_calls.saturating_add(other.estimated_calls);
        self.input_tokens = self.input_tokens.saturating_add(other.input_tokens);
        self.cached_tokens = self.cached_tokens.saturating_add(other.cached_tokens);
        self.output_tokens = self.output_tokens.saturating_add(other.output_tokens);
        self.cost_nanos = self.cost_nanos.saturating_add(other.cost_nanos);
    }

    /// The fields in their stored order.
    pub fn to_array(self) -> [u64; 6] {
        [
            self.calls,
            self.estimated_calls,
            self.input_tokens,
            self.cached_tokens,
            self.output_tokens,
            self.cost_nanos,
        ]
    }

    /// From the stored order.
    pub fn from_array(values: [u64; 6]) -> Self {
        Self {
            calls: values[0],
            estimated_calls: values[1],
            input_tokens: values[2],
            cached_tokens: values[3],
            output_tokens: values[4],
            cost_nanos: values[5],
        }
    }
}

/// One day's usage of one key, route and model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageRow {
    /// `YYYY-MM-DD`.
    pub day: String,
    /// The API key's name.
    pub key: String,
    /// The route.
    pub route: String,
    /// The model.
    pub model: String,
    /// The counts.
    pub counts: UsageCounts,
}

/// A budget's state, for `GetUsage`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BudgetState {
    /// Whose.
    pub owner: Owner,
    /// Which.
    pub kind: BudgetKind,
    /// The runtime override, if one is set (it wins over config).
    pub runtime: Option<u64>,
    /// Spent in the current period.
    pub spent: u64,
    /// Reserved by calls in flight.
    pub reserved: u64,
}

/// Why the ledger could not answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    /// The state backend cannot be reached or did not answer in time.
    #[error("the budget ledger is unavailable: {0}")]
    Unavailable(String),
    /// Anything else.
    #[error("the budget ledger failed: {0}")]
    Failed(String),
}

impl From<crate::state::redis::RedisFailure> for LedgerError {
    fn from(failure: crate::state::redis::RedisFailure) -> Self {
        use crate::state::redis::RedisFailure;
        match failure {
            RedisFailure::Unavailable(_) | RedisFailure::TimedOut(_) => {
                LedgerError::Unavailable(failure.to_string())
            }
            RedisFailure::Full(_) | RedisFailure::Other(_) => {
                LedgerError::Failed(failure.to_string())
            }
        }
    }
}

/// Where budgets, reservations, buckets and usage live.
#[async_trait::async_trait]
pub trait Ledger: Send + Sync + fmt::Debug {
    /// Reserves `reservation` against every budget and token bucket that
    /// applies, atomically; reserving the same call again returns the first
    /// answer's kind without reserving twice.
    async fn reserve(&self, reservation: &Reservation) -> Result<Reserved, LedgerError>;

    /// Settles a reservation to what the call spent: releases the reservation,
    /// charges `spent`, gives back to the token buckets what was not used (or
    /// takes what was used beyond the estimate), and files the usage. Settling
    /// twice charges once; settling an expired reservation corrects the full
    /// charge made at expiry.
    async fn settle(&self, reservation: &Reservation, spent: &Spent) -> Result<(), LedgerError>;

    /// Settles at once, without waiting, when the ledger can (in memory);
    /// `false` when it cannot and [`Ledger::settle`] must be awaited.
    fn settle_now(&self, _reservation: &Reservation, _spent: &Spent) -> bool {
        false
    }

    /// Charges in full the reservations of `tenants` that expired unsettled
    /// before `now_ms`; returns how many per tenant.
    async fn sweep(
        &self,
        tenants: &[TenantId],
        now_ms: i64,
    ) -> Result<Vec<(TenantId, usize)>, LedgerError>;

    /// Sets (`Some`) or clears (`None`) the runtime override of a budget.
    async fn set_override(
        &self,
        tenant: &TenantId,
        owner: &Owner,
        kind: BudgetKind,
        limit: Option<u64>,
    ) -> Result<(), LedgerError>;

    /// The state of `owner`'s budgets ([`kinds_of`]) in `periods`; session
    /// budgets show their override only (each session has its own counters).
    async fn budgets(
        &self,
        tenant: &TenantId,
        owner: &Owner,
        periods: &Periods,
    ) -> Result<Vec<BudgetState>, LedgerError>;

    /// Usage of `tenant` on `days` (and of key `key` only, when given).
    async fn usage(
        &self,
        tenant: &TenantId,
        key: Option<&str>,
        days: &[String],
    ) -> Result<Vec<UsageRow>, LedgerError>;

    /// Whether the backend answers.
    async fn check(&self) -> Result<(), LedgerError>;
}

/// The owners a reservation touches with their configured budgets: the
/// tenant, then the key.
fn owners(reservation: &Reservation) -> [(Owner, &Budgets); 2] {
    [
        (Owner::Tenant, &reservation.tenant_budgets),
        (
            Owner::Key(reservation.key.clone()),
            &reservation.key_budgets,
        ),
    ]
}

/// The kinds of budget `owner` can have: every kind for a tenant, the
/// periodic ones for a key.
pub fn kinds_of(owner: &Owner) -> &'static [BudgetKind] {
    match owner {
        Owner::Tenant => &BudgetKind::ALL,
        Owner::Key(_) => &BudgetKind::PERIODIC,
    }
}

/// The amount of a reservation or spend that counts toward `kind`: its cost
/// for a USD budget, its tokens for the others.
pub fn amount(kind: BudgetKind, tokens: u64, cost: Usd) -> u64 {
    if kind.is_usd() { cost.nanos() } else { tokens }
}
