//! `agentd usage`: a tenant's spend and budgets from a running server's
//! `AdminService.GetUsage`, as a table.

use std::fmt::Write as _;

use anyhow::Context as _;

use crate::cost::money::Usd;
use crate::pb::admin_service_client::AdminServiceClient;
use crate::pb::{
    BudgetKind, BudgetOrigin, BudgetStatus, GetUsageRequest, GetUsageResponse, UsageGrouping,
    UsagePeriod, UsageTotals,
};

/// What to ask.
#[derive(Debug, Clone)]
pub struct UsageArgs {
    /// The server's gRPC URL.
    pub server: String,
    /// An API key with the `admin` or `operator` role.
    pub api_key: Option<String>,
    /// The tenant; the key's own when empty.
    pub tenant: String,
    /// One key only; the whole tenant when empty.
    pub key: String,
    /// `day` or `month`.
    pub month: bool,
    /// A day in the period (`YYYY-MM-DD`); today when empty.
    pub date: String,
    /// `model`, `route`, `day` or `key`.
    pub group_by: UsageGrouping,
    /// TLS, when the server speaks it.
    pub tls: Option<super::health::ClientTls>,
}

/// Asks the server; the report as text.
pub async fn run(args: UsageArgs) -> anyhow::Result<String> {
    let (endpoint, url) = super::health::endpoint("--server", &args.server, args.tls.as_ref())?;
    let channel = endpoint
        .connect()
        .await
        .with_context(|| format!("cannot connect to {url}"))?;
    let mut client = AdminServiceClient::new(channel);
    let mut request = tonic::Request::new(GetUsageRequest {
        tenant: args.tenant.clone(),
        key: args.key.clone(),
        period: if args.month {
            UsagePeriod::Month
        } else {
            UsagePeriod::Day
        }
        .into(),
        date: args.date.clone(),
        group_by: args.group_by.into(),
    });
    if let Some(key) = &args.api_key {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {key}").parse()?);
    }
    let reply = client
        .get_usage(request)
        .await
        .map_err(|status| anyhow::anyhow!("{:?}: {}", status.code(), status.message()))?
        .into_inner();
    Ok(render(&reply))
}

fn usd(nanos: i64) -> String {
    format!("${}", Usd::from_nanos(nanos.max(0).unsigned_abs()))
}

fn row(out: &mut String, name: &str, totals: &UsageTotals) {
    let _ = writeln!(
        out,
        "{name:<24} {:>8} {:>12} {:>12} {:>12} {:>16}",
        totals.calls,
        totals.input_tokens,
        totals.cached_input_tokens,
        totals.output_tokens,
        usd(totals.cost_nano_usd)
    );
}

fn amount(kind: BudgetKind, value: u64) -> String {
    match kind {
        BudgetKind::UsdDay | BudgetKind::UsdMonth | BudgetKind::SessionUsd => {
            format!("${}", Usd::from_nanos(value))
        }
        _ => format!("{value} tokens"),
    }
}

fn budget(out: &mut String, status: &BudgetStatus) {
    let kind = status.kind();
    let Some(limit) = status.limit else {
        return;
    };
    let origin = match status.origin() {
        BudgetOrigin::Runtime => "runtime",
        BudgetOrigin::Config => "config",
        BudgetOrigin::Unspecified => "none",
    };
    let name = kind
        .as_str_name()
        .trim_start_matches("BUDGET_KIND_")
        .to_lowercase();
    let _ = writeln!(
        out,
        "{:<12} {name:<16} limit {} ({origin}), spent {}, reserved {}, left {}",
        status.subject,
        amount(kind, limit),
        amount(kind, status.spent),
        amount(kind, status.reserved),
        amount(kind, status.remaining.unwrap_or(0)),
    );
}

/// The report as a table.
pub fn render(reply: &GetUsageResponse) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "tenant {}, {} to {} ({})",
        reply.tenant, reply.from, reply.to, reply.time_zone
    );
    let _ = writeln!(
        out,
        "{:<24} {:>8} {:>12} {:>12} {:>12} {:>16}",
        "", "calls", "input", "cached", "output", "cost"
    );
    for group in &reply.rows {
        row(&mut out, &group.name, &group.totals.unwrap_or_default());
    }
    row(&mut out, "total", &reply.total.unwrap_or_default());
    if reply.budgets.iter().any(|b| b.limit.is_some()) {
        let _ = writeln!(out, "\nbudgets:");
        for status in &reply.budgets {
            budget(&mut out, status);
        }
    } else {
        let _ = writeln!(out, "\nno budgets");
    }
    out
}
