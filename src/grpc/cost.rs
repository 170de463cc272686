//! `GetUsage` and `SetBudget`: conversion and validation between the contract
//! and cost control (`crate::cost::report`). An `admin` key acts on its own
//! tenant only; an `operator` on any.

use crate::cost::ledger::{BudgetKind, Owner, UsageCounts};
use crate::cost::report::{
    BudgetReport, CostError, Grouping, Origin, Span, UsageQuery, UsageReport,
};
use crate::error::{AppError, FieldProblem};
use crate::identity::Caller;
use crate::ids::TenantId;
use crate::pb;

/// The tenant a request names (its own when empty), if the caller may act on it.
pub fn tenant(caller: &Caller, named: &str) -> Result<TenantId, AppError> {
    let tenant = if named.is_empty() {
        caller.tenant.clone()
    } else {
        TenantId::try_from(named.to_owned())
            .map_err(|reason| AppError::invalid("tenant", reason.to_string()))?
    };
    if !caller.admin_scope().covers(&tenant) {
        return Err(AppError::OutOfScope {
            tenant,
            key_name: caller.key_name.clone(),
        });
    }
    Ok(tenant)
}

fn key(named: String) -> Option<String> {
    (!named.is_empty()).then_some(named)
}

/// A GetUsage request as a query.
pub fn usage_query(caller: &Caller, request: pb::GetUsageRequest) -> Result<UsageQuery, AppError> {
    let mut problems = Vec::new();
    let span = match pb::UsagePeriod::try_from(request.period) {
        Ok(pb::UsagePeriod::Unspecified | pb::UsagePeriod::Day) => Span::Day,
        Ok(pb::UsagePeriod::Month) => Span::Month,
        Err(_) => {
            problems.push(FieldProblem::new(
                "period",
                format!("unknown value {}", request.period),
            ));
            Span::Day
        }
    };
    let grouping = match pb::UsageGrouping::try_from(request.group_by) {
        Ok(pb::UsageGrouping::Unspecified | pb::UsageGrouping::Model) => Grouping::Model,
        Ok(pb::UsageGrouping::Route) => Grouping::Route,
        Ok(pb::UsageGrouping::Day) => Grouping::Day,
        Ok(pb::UsageGrouping::Key) => Grouping::Key,
        Err(_) => {
            problems.push(FieldProblem::new(
                "group_by",
                format!("unknown value {}", request.group_by),
            ));
            Grouping::Model
        }
    };
    let date = if request.date.is_empty() {
        None
    } else {
        match request.date.parse::<jiff::civil::Date>() {
            Ok(date) => Some(date),
            Err(_) => {
                problems.push(FieldProblem::new(
                    "date",
                    format!("{:?} is not a date: expected YYYY-MM-DD", request.date),
                ));
                None
            }
        }
    };
    if !problems.is_empty() {
        return Err(AppError::InvalidArgument(problems));
    }
    Ok(UsageQuery {
        tenant: tenant(caller, &request.tenant)?,
        key: key(request.key),
        span,
        date,
        grouping,
    })
}

/// A SetBudget request: the tenant, key, kind and new limit (`None` clears).
pub fn budget_change(
    caller: &Caller,
    request: pb::SetBudgetRequest,
) -> Result<(TenantId, Option<String>, BudgetKind, Option<u64>), AppError> {
    let kind = match pb::BudgetKind::try_from(request.kind) {
        Ok(pb::BudgetKind::UsdDay) => BudgetKind::UsdDay,
        Ok(pb::BudgetKind::UsdMonth) => BudgetKind::UsdMonth,
        Ok(pb::BudgetKind::TokensDay) => BudgetKind::TokensDay,
        Ok(pb::BudgetKind::TokensMonth) => BudgetKind::TokensMonth,
        Ok(pb::BudgetKind::SessionUsd) => BudgetKind::SessionUsd,
        Ok(pb::BudgetKind::SessionTokens) => BudgetKind::SessionTokens,
        Ok(pb::BudgetKind::Unspecified) | Err(_) => {
            return Err(AppError::invalid(
                "kind",
                "must name a budget (e.g. BUDGET_KIND_USD_DAY)",
            ));
        }
    };
    let limit = match request.change {
        Some(pb::set_budget_request::Change::Limit(limit)) => Some(limit),
        Some(pb::set_budget_request::Change::Clear(true)) => None,
        Some(pb::set_budget_request::Change::Clear(false)) | None => {
            return Err(AppError::invalid(
                "change",
                "set `limit` to a new value, or `clear` to true to drop the runtime value",
            ));
        }
    };
    Ok((
        tenant(caller, &request.tenant)?,
        key(request.key),
        kind,
        limit,
    ))
}

impl From<CostError> for AppError {
    fn from(err: CostError) -> Self {
        match &err {
            CostError::UnknownTenant(_) => AppError::invalid("tenant", err.to_string()),
            CostError::UnknownKey { .. } => AppError::invalid("key", err.to_string()),
            CostError::SessionBudgetOfKey(_) => AppError::invalid("kind", err.to_string()),
            CostError::TooLarge { .. } => AppError::invalid("limit", err.to_string()),
            CostError::Ledger(crate::cost::ledger::LedgerError::Unavailable(reason)) => {
                AppError::Limited(crate::cost::Limited::Unavailable(reason.clone()))
            }
            CostError::Ledger(_) => AppError::Internal(err.into()),
        }
    }
}

fn kind(kind: BudgetKind) -> pb::BudgetKind {
    match kind {
        BudgetKind::UsdDay => pb::BudgetKind::UsdDay,
        BudgetKind::UsdMonth => pb::BudgetKind::UsdMonth,
        BudgetKind::TokensDay => pb::BudgetKind::TokensDay,
        BudgetKind::TokensMonth => pb::BudgetKind::TokensMonth,
        BudgetKind::SessionUsd => pb::BudgetKind::SessionUsd,
        BudgetKind::SessionTokens => pb::BudgetKind::SessionTokens,
    }
}

impl From<BudgetReport> for pb::BudgetStatus {
    fn from(report: BudgetReport) -> Self {
        Self {
            subject: match &report.owner {
                Owner::Tenant => "tenant".to_owned(),
                Owner::Key(name) => format!("key:{name}"),
            },
            kind: kind(report.kind).into(),
            origin: match report.origin {
                Origin::None => pb::BudgetOrigin::Unspecified,
                Origin::Config => pb::BudgetOrigin::Config,
                Origin::Runtime => pb::BudgetOrigin::Runtime,
            }
            .into(),
            limit: report.limit,
            spent: report.spent,
            reserved: report.reserved,
            remaining: report.remaining(),
        }
    }
}

impl From<UsageCounts> for pb::UsageTotals {
    fn from(counts: UsageCounts) -> Self {
        Self {
            calls: counts.calls,
            estimated_calls: counts.estimated_calls,
            input_tokens: counts.input_tokens,
            cached_input_tokens: counts.cached_tokens,
            output_tokens: counts.output_tokens,
            cost_nano_usd: i64::try_from(counts.cost_nanos).unwrap_or(i64::MAX),
        }
    }
}

/// The response for `tenant`.
pub fn usage_response(tenant: &TenantId, report: UsageReport) -> pb::GetUsageResponse {
    pb::GetUsageResponse {
        tenant: tenant.to_string(),
        from: report.days.first().cloned().unwrap_or_default(),
        to: report.days.last().cloned().unwrap_or_default(),
        time_zone: report.zone,
        rows: report
            .rows
            .into_iter()
            .map(|(name, counts)| pb::UsageRow {
                name,
                totals: Some(counts.into()),
            })
            .collect(),
        total: Some(report.total.into()),
        budgets: report.budgets.into_iter().map(Into::into).collect(),
    }
}
