//! `[cost]`: budgets and rate limits per tenant and per API key, the time zone
//! their calendar periods follow, and the global request rate. Prices are on
//! the models (`[llm.models.NAME.price]`) and the embedding endpoint
//! (`[retrieval.embeddings.price]`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::cost::bucket::Limit;
use crate::cost::money::Usd;
use crate::ids::TenantId;

/// `[cost]`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CostConfig {
    /// The IANA time zone in which days and months begin (e.g.
    /// "Europe/Berlin"), for every budget period.
    pub time_zone: String,
    /// Share of a budget, in percent, past which a reservation is logged and
    /// counted as over the soft limit.
    pub soft_limit_percent: u8,
    /// When the state backend cannot be asked: `true` lets requests through
    /// unlimited by rate; `false` refuses them (`UNAVAILABLE`). Budgets always
    /// fail closed.
    pub rate_limits_fail_open: bool,
    /// Requests (turns) per `rate_requests_per`, over every tenant; 0 for no
    /// global limit.
    pub rate_requests: u32,
    /// The period of `rate_requests`.
    #[serde(with = "humantime_serde")]
    pub rate_requests_per: Duration,
    /// How long a day's usage by model and route is kept for `GetUsage`.
    #[serde(with = "humantime_serde")]
    pub usage_retention: Duration,
    /// Limits per tenant.
    #[serde(default)]
    pub tenants: BTreeMap<TenantId, Limits>,
    /// Limits per API key, by the key's `name` in `auth.keys`.
    #[serde(default)]
    pub keys: BTreeMap<String, Limits>,
}

/// `[cost.tenants.NAME]` and `[cost.keys.NAME]`: what one tenant or key may
/// spend and how fast. Every limit is off when unset.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// USD per calendar day.
    #[serde(default)]
    pub budget_usd_day: Option<Usd>,
    /// USD per calendar month.
    #[serde(default)]
    pub budget_usd_month: Option<Usd>,
    /// Tokens (input and output) per calendar day.
    #[serde(default)]
    pub budget_tokens_day: Option<u64>,
    /// Tokens per calendar month.
    #[serde(default)]
    pub budget_tokens_month: Option<u64>,
    /// USD one session (conversation) may spend in its lifetime. Tenants only.
    #[serde(default)]
    pub session_usd: Option<Usd>,
    /// Tokens one session may use in its lifetime. Tenants only.
    #[serde(default)]
    pub session_tokens: Option<u64>,
    /// A route or model that answers instead when a budget refuses a model
    /// call (a cheaper one; its calls reserve against every budget too).
    /// Tenants only.
    #[serde(default)]
    pub downgrade_to: Option<String>,
    /// Requests (turns) per `rate_requests_per`; also the burst.
    #[serde(default)]
    pub rate_requests: Option<u32>,
    /// The period of `rate_requests`.
    #[serde(default = "one_second", with = "humantime_serde")]
    pub rate_requests_per: Duration,
    /// Tokens (the reservation's estimate, corrected after each call) per
    /// `rate_tokens_per`; also the burst.
    #[serde(default)]
    pub rate_tokens: Option<u64>,
    /// The period of `rate_tokens`.
    #[serde(default = "one_minute", with = "humantime_serde")]
    pub rate_tokens_per: Duration,
}

fn one_second() -> Duration {
    Duration::from_secs(1)
}

fn one_minute() -> Duration {
    Duration::from_secs(60)
}

/// The most tokens a budget may hold: amounts stay below 2^53, where Redis
/// scripts (whose numbers are doubles) still count exactly.
pub const MAX_TOKENS: u64 = 1 << 50;

impl Limits {
    /// The request-rate limit, if set and valid.
    pub fn request_limit(&self) -> Option<Limit> {
        let requests = self.rate_requests?;
        Limit::new(u64::from(requests), self.rate_requests_per).ok()
    }

    /// The token-rate limit, if set and valid.
    pub fn token_limit(&self) -> Option<Limit> {
        Limit::new(self.rate_tokens?, self.rate_tokens_per).ok()
    }

    fn problems(&self, key: &str, tenant: bool, problems: &mut Vec<String>) {
        if !tenant {
            for (name, set) in [
                ("session_usd", self.session_usd.is_some()),
                ("session_tokens", self.session_tokens.is_some()),
            ] {
                if set {
                    problems.push(format!(
                        "{key}.{name}: only a tenant can have it (a session belongs to a tenant, not a key)"
                    ));
                }
            }
            if self.downgrade_to.is_some() {
                problems.push(format!(
                    "{key}.downgrade_to: only a tenant has a downgrade route"
                ));
            }
        }
        for (name, value) in [
            ("budget_tokens_day", self.budget_tokens_day),
            ("budget_tokens_month", self.budget_tokens_month),
            ("session_tokens", self.session_tokens),
        ] {
            if value.is_some_and(|tokens| tokens > MAX_TOKENS) {
                problems.push(format!("{key}.{name}: at most {MAX_TOKENS} tokens"));
            }
        }
        if let Some(requests) = self.rate_requests
            && let Err(err) = Limit::new(u64::from(requests), self.rate_requests_per)
        {
            problems.push(format!("{key}.rate_requests: {err}"));
        }
        if let Some(tokens) = self.rate_tokens
            && let Err(err) = Limit::new(tokens, self.rate_tokens_per)
        {
            problems.push(format!("{key}.rate_tokens: {err}"));
        }
    }
}

impl CostConfig {
    /// The global request-rate limit, if set.
    pub fn global_request_limit(&self) -> Option<Limit> {
        (self.rate_requests > 0)
            .then(|| Limit::new(u64::from(self.rate_requests), self.rate_requests_per).ok())
            .flatten()
    }

    /// The configured time zone (UTC if it does not parse; `problems` reports
    /// that).
    pub fn zone(&self) -> jiff::tz::TimeZone {
        jiff::tz::TimeZone::get(&self.time_zone).unwrap_or(jiff::tz::TimeZone::UTC)
    }

    /// Problems, each naming its key. `tenants` are those some key acts for
    /// (or the default tenant with auth off), `keys` the configured key names,
    /// `routes` every name `options.model` accepts.
    pub fn problems(
        &self,
        tenants: &BTreeSet<TenantId>,
        keys: &BTreeSet<String>,
        routes: &BTreeSet<String>,
    ) -> Vec<String> {
        let mut problems = Vec::new();
        if jiff::tz::TimeZone::get(&self.time_zone).is_err() {
            problems.push(format!(
                "cost.time_zone: {:?} is not an IANA time zone (e.g. \"UTC\", \"Europe/Berlin\")",
                self.time_zone
            ));
        }
        if !(1..=100).contains(&self.soft_limit_percent) {
            problems.push("cost.soft_limit_percent: must be between 1 and 100".to_owned());
        }
        if self.rate_requests > 0
            && let Err(err) = Limit::new(u64::from(self.rate_requests), self.rate_requests_per)
        {
            problems.push(format!("cost.rate_requests: {err}"));
        }
        if self.usage_retention < Duration::from_secs(86_400) {
            problems.push("cost.usage_retention: must be at least 1 day".to_owned());
        }
        for (tenant, limits) in &self.tenants {
            let key = format!("cost.tenants.{tenant}");
            if !tenants.contains(tenant) {
                problems.push(format!(
                    "{key}: unknown tenant: no key in auth.keys acts for it{}",
                    if tenants.len() == 1 && tenants.contains(&TenantId::default_tenant()) {
                        " (with auth disabled every call acts for tenant \"default\")"
                    } else {
                        ""
                    }
                ));
            }
            if let Some(route) = &limits.downgrade_to
                && !routes.contains(route)
            {
                problems.push(format!(
                    "{key}.downgrade_to: {route:?} is neither a model nor a route"
                ));
            }
            limits.problems(&key, true, &mut problems);
        }
        for (name, limits) in &self.keys {
            let key = format!("cost.keys.{name}");
            if !keys.contains(name) {
                problems.push(format!(
                    "{key}: unknown key: no entry of auth.keys has this name"
                ));
            }
            limits.problems(&key, false, &mut problems);
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use figment::providers::Format as _;

    use super::*;

    fn config(toml: &str) -> CostConfig {
        let base = "time_zone = \"UTC\"\nsoft_limit_percent = 80\nrate_limits_fail_open = false\n\
                    rate_requests = 0\nrate_requests_per = \"1s\"\nusage_retention = \"90d\"\n";
        figment::Figment::from(figment::providers::Toml::string(&format!("{base}{toml}")))
            .extract()
            .unwrap()
    }

    fn problems(cost: &CostConfig) -> Vec<String> {
        let tenants = ["acme", "default"]
            .into_iter()
            .map(|t| TenantId::try_from(t).unwrap())
            .collect();
        let keys = ["ci".to_owned()].into_iter().collect();
        let routes = ["cheap".to_owned()].into_iter().collect();
        cost.problems(&tenants, &keys, &routes)
    }

    #[test]
    fn limits_parse_with_their_default_periods() {
        let cost = config(
            "[tenants.acme]\nbudget_usd_day = 1.5\nbudget_usd_month = \"20\"\nrate_requests = 5\n\
             rate_tokens = 1000\nsession_tokens = 100\ndowngrade_to = \"cheap\"\n",
        );
        let acme = &cost.tenants[&TenantId::try_from("acme").unwrap()];
        assert_eq!(acme.budget_usd_day, Some(Usd::from_nanos(1_500_000_000)));
        assert_eq!(acme.budget_usd_month, Some(Usd::from_nanos(20_000_000_000)));
        assert_eq!(acme.rate_requests_per, Duration::from_secs(1));
        assert_eq!(acme.rate_tokens_per, Duration::from_secs(60));
        assert!(acme.request_limit().is_some());
        assert!(problems(&cost).is_empty(), "{:?}", problems(&cost));
    }

    #[test]
    fn every_mistake_names_its_key() {
        let mut cost = config(
            "[tenants.nobody]\nbudget_usd_day = 1\n[tenants.acme]\nrate_requests = 0\n\
             downgrade_to = \"gone\"\n[keys.ci]\nsession_usd = 1\n[keys.stranger]\nrate_tokens = 5\n",
        );
        cost.time_zone = "Mars/Olympus".to_owned();
        cost.soft_limit_percent = 0;
        let found = problems(&cost).join("\n");
        for expected in [
            "cost.time_zone:",
            "cost.soft_limit_percent:",
            "cost.tenants.nobody: unknown tenant",
            "cost.tenants.acme.rate_requests:",
            "cost.tenants.acme.downgrade_to: \"gone\"",
            "cost.keys.ci.session_usd: only a tenant",
            "cost.keys.stranger: unknown key",
        ] {
            assert!(
                found.contains(expected),
                "{expected} missing from:\n{found}"
            );
        }
    }

    #[test]
    fn a_negative_or_non_numeric_budget_is_refused_by_its_key() {
        for bad in ["-1", "\"ten\"", "1e400"] {
            let base = "time_zone = \"UTC\"\nsoft_limit_percent = 80\nrate_limits_fail_open = false\n\
                        rate_requests = 0\nrate_requests_per = \"1s\"\nusage_retention = \"90d\"\n";
            let err = figment::Figment::from(figment::providers::Toml::string(&format!(
                "{base}[tenants.acme]\nbudget_usd_day = {bad}\n"
            )))
            .extract::<CostConfig>()
            .unwrap_err()
            .to_string();
            assert!(err.contains("budget_usd_day"), "{bad}: {err}");
        }
    }
}
