//! What operators ask of cost control: a tenant's usage and budgets
//! (`GetUsage`), and runtime budget overrides (`SetBudget`).

use std::collections::BTreeMap;

use jiff::civil::Date;

use super::CostControl;
use super::ledger::{BudgetKind, BudgetState, LedgerError, Owner, UsageCounts};
use super::money::MAX_USD;
use super::period::{days_between, periods};
use crate::config::cost::MAX_TOKENS;
use crate::ids::TenantId;

/// The span of a usage report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Span {
    /// One calendar day.
    Day,
    /// One calendar month.
    Month,
}

/// What a usage report's rows are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grouping {
    /// By model.
    Model,
    /// By route.
    Route,
    /// By day.
    Day,
    /// By API key.
    Key,
}

/// A usage question.
#[derive(Clone, Debug)]
pub struct UsageQuery {
    /// The tenant.
    pub tenant: TenantId,
    /// One key only.
    pub key: Option<String>,
    /// A day or a month.
    pub span: Span,
    /// A day in it; today when `None`.
    pub date: Option<Date>,
    /// The rows.
    pub grouping: Grouping,
}

/// Where a budget's limit comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// No limit.
    None,
    /// The configuration.
    Config,
    /// A runtime override.
    Runtime,
}

/// A budget's state for an operator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BudgetReport {
    /// Whose.
    pub owner: Owner,
    /// Which.
    pub kind: BudgetKind,
    /// Where the limit comes from.
    pub origin: Origin,
    /// The limit.
    pub limit: Option<u64>,
    /// Spent in the period.
    pub spent: u64,
    /// Reserved in flight.
    pub reserved: u64,
}

impl BudgetReport {
    /// What is left, if there is a limit.
    pub fn remaining(&self) -> Option<u64> {
        self.limit.map(|limit| {
            limit
                .saturating_sub(self.spent)
                .saturating_sub(self.reserved)
        })
    }
}

/// A usage report.
#[derive(Clone, Debug)]
pub struct UsageReport {
    /// The days covered.
    pub days: Vec<String>,
    /// The time zone.
    pub zone: String,
    /// One row per group.
    pub rows: Vec<(String, UsageCounts)>,
    /// Everything.
    pub total: UsageCounts,
    /// The budgets.
    pub budgets: Vec<BudgetReport>,
}

/// Why a cost question cannot be answered.
#[derive(Debug, thiserror::Error)]
pub enum CostError {
    /// No key acts for the tenant: it cannot spend.
    #[error("unknown tenant {0}: no API key acts for it")]
    UnknownTenant(TenantId),
    /// The key is not one of the tenant's.
    #[error("no API key named {key:?} acts for tenant {tenant}")]
    UnknownKey {
        /// The key asked about.
        key: String,
        /// The tenant.
        tenant: TenantId,
    },
    /// Session budgets are the tenant's.
    #[error("{} is a tenant budget: a session belongs to a tenant, not a key", .0.as_str())]
    SessionBudgetOfKey(BudgetKind),
    /// The limit is over what the ledger counts exactly.
    #[error("{limit} is over the largest limit, {max}")]
    TooLarge {
        /// Asked.
        limit: u64,
        /// Allowed.
        max: u64,
    },
    /// The ledger failed.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

impl CostControl {
    fn check_owner(&self, tenant: &TenantId, key: Option<&str>) -> Result<Owner, CostError> {
        if !self.known_tenants.contains(tenant) {
            return Err(CostError::UnknownTenant(tenant.clone()));
        }
        match key {
            None => Ok(Owner::Tenant),
            Some(key) if self.key_tenants.get(key) == Some(tenant) => {
                Ok(Owner::Key(key.to_owned()))
            }
            Some(key) => Err(CostError::UnknownKey {
                key: key.to_owned(),
                tenant: tenant.clone(),
            }),
        }
    }

    fn today(&self) -> Date {
        jiff::Timestamp::from_millisecond(self.clock.unix_ms())
            .map(|at| at.to_zoned_datetime(self.zone.clone()).date())
            .unwrap_or_default()
    }

    async fn budget_reports(
        &self,
        tenant: &TenantId,
        owner: &Owner,
        date: Date,
    ) -> Result<Vec<BudgetReport>, CostError> {
        let start = date
            .to_zoned_datetime(self.zone.clone())
            .map(|zoned| zoned.timestamp().as_millisecond())
            .unwrap_or_else(|_| self.clock.unix_ms());
        let states = self
            .ledger
            .budgets(tenant, owner, &periods(start, &self.zone))
            .await?;
        let configured = self.configured(tenant, owner);
        let kinds: &[BudgetKind] = match owner {
            Owner::Tenant => &BudgetKind::ALL,
            Owner::Key(_) => &BudgetKind::PERIODIC,
        };
        Ok(kinds
            .iter()
            .map(|&kind| {
                let state = states.iter().find(|s| s.kind == kind);
                let runtime = state.and_then(|s| s.runtime);
                let (origin, limit) = match (runtime, configured.get(kind)) {
                    (Some(limit), _) => (Origin::Runtime, Some(limit)),
                    (None, Some(limit)) => (Origin::Config, Some(limit)),
                    (None, None) => (Origin::None, None),
                };
                let BudgetState {
                    spent, reserved, ..
                } = state.cloned().unwrap_or(BudgetState {
                    owner: owner.clone(),
                    kind,
                    runtime: None,
                    spent: 0,
                    reserved: 0,
                });
                BudgetReport {
                    owner: owner.clone(),
                    kind,
                    origin,
                    limit,
                    spent,
                    reserved,
                }
            })
            .collect())
    }

    /// A tenant's usage and budgets.
    pub async fn usage(&self, query: &UsageQuery) -> Result<UsageReport, CostError> {
        let owner = self.check_owner(&query.tenant, query.key.as_deref())?;
        let date = query.date.unwrap_or_else(|| self.today());
        let (from, to) = match query.span {
            Span::Day => (date, date),
            Span::Month => (date.first_of_month(), date.last_of_month()),
        };
        let days = days_between(&from.to_string(), &to.to_string(), 31);
        let rows = self
            .ledger
            .usage(&query.tenant, query.key.as_deref(), &days)
            .await?;
        let mut grouped: BTreeMap<String, UsageCounts> = BTreeMap::new();
        let mut total = UsageCounts::default();
        for row in rows {
            let name = match query.grouping {
                Grouping::Model => row.model,
                Grouping::Route => row.route,
                Grouping::Day => row.day,
                Grouping::Key => row.key,
            };
            grouped.entry(name).or_default().add(&row.counts);
            total.add(&row.counts);
        }
        let mut budgets = self
            .budget_reports(&query.tenant, &Owner::Tenant, date)
            .await?;
        if owner != Owner::Tenant {
            budgets.extend(self.budget_reports(&query.tenant, &owner, date).await?);
        }
        Ok(UsageReport {
            days,
            zone: self.zone.iana_name().unwrap_or("UTC").to_owned(),
            rows: grouped.into_iter().collect(),
            total,
            budgets,
        })
    }

    /// Sets (`Some`) or clears a runtime budget; the budget as it is now.
    pub async fn set_budget(
        &self,
        tenant: &TenantId,
        key: Option<&str>,
        kind: BudgetKind,
        limit: Option<u64>,
    ) -> Result<BudgetReport, CostError> {
        let owner = self.check_owner(tenant, key)?;
        if kind.is_session() && owner != Owner::Tenant {
            return Err(CostError::SessionBudgetOfKey(kind));
        }
        let max = if kind.is_usd() {
            MAX_USD * super::money::NANOS_PER_USD
        } else {
            MAX_TOKENS
        };
        if let Some(limit) = limit.filter(|&limit| limit > max) {
            return Err(CostError::TooLarge { limit, max });
        }
        self.ledger
            .set_override(tenant, &owner, kind, limit)
            .await?;
        tracing::warn!(
            %tenant,
            subject = %owner,
            budget = kind.as_str(),
            limit = limit.map(tracing::field::display),
            "runtime budget {}",
            if limit.is_some() { "set" } else { "cleared" }
        );
        let reports = self.budget_reports(tenant, &owner, self.today()).await?;
        reports
            .into_iter()
            .find(|report| report.kind == kind)
            .ok_or_else(|| CostError::Ledger(LedgerError::Failed("budget not reported".into())))
    }
}
