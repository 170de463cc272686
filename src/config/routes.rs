//! The resilience part of `[llm]`: routes (`[llm.routes.NAME]`), the retry
//! policy (`[llm.retry]`), the circuit breakers (`[llm.breaker]`), and what a
//! route does when every target failed (`llm.degraded_default`).
//!
//! Models and routes share one namespace: every model is also a route of one
//! target under its own name, so a name in `llm.default_model`, `llm.tiers`, a
//! route's `fallback` or a request's `options.model` may be either.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::LlmConfig;

/// How long a route's fallback chain may grow, counting routes reached
/// through fallbacks of fallbacks: deeper is a configuration mistake.
pub const MAX_FALLBACK_DEPTH: usize = 8;

/// Names no model or route may take: the router reports the extractive
/// answerer and the embeddings client's breaker under them.
pub const RESERVED_NAMES: [&str; 2] = ["extractive", "embeddings"];

/// The longest duration of a resilience setting: longer is a mistake (and
/// would overflow the clock's arithmetic).
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

/// What a route answers with once every target and fallback failed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Degraded {
    /// The extractive answerer quotes the request's collections, and the
    /// response says it is degraded.
    #[default]
    Extractive,
    /// `UNAVAILABLE` with a retry delay.
    Unavailable,
}

/// `[llm.routes.NAME]`: targets tried in order, a weighted split, a fallback.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Model names, in the order they are tried.
    pub targets: Vec<String>,
    /// One weight per target: the first target tried is drawn by weight, sticky
    /// per session; the rest follow in order. Empty: always the first.
    #[serde(default)]
    pub weights: Vec<u32>,
    /// Routes or models tried, in order, once every target failed.
    #[serde(default)]
    pub fallback: Vec<String>,
    /// The end of the chain; `llm.degraded_default` when unset.
    #[serde(default)]
    pub degraded: Option<Degraded>,
    /// Hedging: after this long without a first piece of answer from the
    /// first target, a second attempt starts on the next one; the first to
    /// produce one wins, the other is cancelled. Unset: no hedging.
    #[serde(default, with = "humantime_serde")]
    pub hedge_after: Option<Duration>,
}

fn default_max_attempts() -> u32 {
    3
}
fn default_base_delay() -> Duration {
    Duration::from_millis(200)
}
fn default_max_delay() -> Duration {
    Duration::from_secs(5)
}
fn default_budget_window() -> Duration {
    Duration::from_secs(10)
}
fn default_budget_ratio() -> f32 {
    0.2
}
fn default_budget_min_per_second() -> u32 {
    1
}

/// `[llm.retry]`: retries of one target, for every route and the embeddings
/// client.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// Attempts on one target per model call, the first included.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// The backoff before the first retry, doubled for each next one; each
    /// delay is drawn uniformly from zero to it ("full jitter").
    #[serde(default = "default_base_delay", with = "humantime_serde")]
    pub base_delay: Duration,
    /// The longest backoff.
    #[serde(default = "default_max_delay", with = "humantime_serde")]
    pub max_delay: Duration,
    /// The window of the retry budget (1 to 60 s).
    #[serde(default = "default_budget_window", with = "humantime_serde")]
    pub budget_window: Duration,
    /// Retries and hedged attempts allowed per call over the window, per
    /// route: 0.2 allows one retry for every five calls. tower's `TpsBudget`
    /// keeps it as a whole number of calls per retry, rounded down (0.3 acts
    /// as one in three), and its window runs on tokio's clock, not the
    /// injectable one.
    #[serde(default = "default_budget_ratio")]
    pub budget_ratio: f32,
    /// Retries allowed per second on top of the ratio, so a quiet route can
    /// still retry.
    #[serde(default = "default_budget_min_per_second")]
    pub budget_min_per_second: u32,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_attempts: default_max_attempts(),
            base_delay: default_base_delay(),
            max_delay: default_max_delay(),
            budget_window: default_budget_window(),
            budget_ratio: default_budget_ratio(),
            budget_min_per_second: default_budget_min_per_second(),
        }
    }
}

fn default_failure_ratio() -> f64 {
    0.5
}
fn default_breaker_window() -> Duration {
    Duration::from_secs(30)
}
fn default_min_calls() -> u32 {
    5
}
fn default_cool_down() -> Duration {
    Duration::from_secs(30)
}
fn default_probes() -> u32 {
    1
}

/// `[llm.breaker]`: one circuit breaker per target (and one for the
/// embeddings client), per process.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BreakerConfig {
    /// The failed share of the window's calls that opens the breaker.
    #[serde(default = "default_failure_ratio")]
    pub failure_ratio: f64,
    /// The sliding window the ratio is taken over.
    #[serde(default = "default_breaker_window", with = "humantime_serde")]
    pub window: Duration,
    /// Fewer calls than this in the window never open the breaker.
    #[serde(default = "default_min_calls")]
    pub min_calls: u32,
    /// How long an open breaker refuses calls before letting probes through.
    #[serde(default = "default_cool_down", with = "humantime_serde")]
    pub cool_down: Duration,
    /// Probe calls let through at once while half-open; all must succeed to
    /// close the breaker, one failure opens it again.
    #[serde(default = "default_probes")]
    pub half_open_probes: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_ratio: default_failure_ratio(),
            window: default_breaker_window(),
            min_calls: default_min_calls(),
            cool_down: default_cool_down(),
            half_open_probes: default_probes(),
        }
    }
}

impl RetryConfig {
    /// Problems, each naming its key under `key`.
    pub fn problems(&self, key: &str) -> Vec<String> {
        let mut problems = Vec::new();
        if self.max_attempts == 0 {
            problems.push(format!("{key}.max_attempts: must be at least 1"));
        }
        if self.base_delay.is_zero() || self.max_delay < self.base_delay {
            problems.push(format!(
                "{key}.max_delay: must be at least base_delay, and base_delay longer than 0s"
            ));
        }
        if self.max_delay > MAX_DURATION {
            problems.push(format!("{key}.max_delay: must be at most 24h"));
        }
        if !(Duration::from_secs(1)..=Duration::from_secs(60)).contains(&self.budget_window) {
            problems.push(format!("{key}.budget_window: must be from 1s to 60s"));
        }
        if !(0.0..=10.0).contains(&self.budget_ratio) {
            problems.push(format!(
                "{key}.budget_ratio: must be from 0 to 10 (retries per call)"
            ));
        }
        if self.budget_min_per_second > 1000 {
            problems.push(format!("{key}.budget_min_per_second: must be at most 1000"));
        }
        problems
    }
}

impl BreakerConfig {
    /// Problems, each naming its key under `key`.
    pub fn problems(&self, key: &str) -> Vec<String> {
        let mut problems = Vec::new();
        if !(self.failure_ratio > 0.0 && self.failure_ratio <= 1.0) {
            problems.push(format!(
                "{key}.failure_ratio: must be above 0 and at most 1"
            ));
        }
        let usable = |d: Duration| !d.is_zero() && d <= MAX_DURATION;
        if !usable(self.window) || !usable(self.cool_down) {
            problems.push(format!(
                "{key}: window and cool_down must be longer than 0s and at most 24h"
            ));
        }
        if self.min_calls == 0 {
            problems.push(format!("{key}.min_calls: must be at least 1"));
        }
        if self.half_open_probes == 0 {
            problems.push(format!("{key}.half_open_probes: must be at least 1"));
        }
        problems
    }
}

impl LlmConfig {
    /// Whether `name` is a model or a route.
    pub fn is_routable(&self, name: &str) -> bool {
        self.models.contains_key(name) || self.routes.contains_key(name)
    }

    /// Problems of `[llm.routes]`, `[llm.retry]` and `[llm.breaker]`, each
    /// naming its key.
    pub fn route_problems(&self) -> Vec<String> {
        let mut problems = self.retry.problems("llm.retry");
        problems.extend(self.breaker.problems("llm.breaker"));
        for (kind, names) in [
            ("models", self.models.keys().collect::<Vec<_>>()),
            ("routes", self.routes.keys().collect()),
        ] {
            for name in names {
                if RESERVED_NAMES.contains(&name.as_str()) {
                    problems.push(format!(
                        "llm.{kind}.{name}: the name is reserved ({}); choose another",
                        RESERVED_NAMES.join(", ")
                    ));
                }
            }
        }
        if self.fallback_reserve > MAX_DURATION {
            problems.push("llm.fallback_reserve: must be at most 24h".to_owned());
        }
        for (name, provider) in &self.providers {
            if provider.first_token_timeout > MAX_DURATION || provider.total_timeout > MAX_DURATION
            {
                problems.push(format!(
                    "llm.providers.{name}: first_token_timeout and total_timeout must be at most 24h"
                ));
            }
        }
        for (name, route) in &self.routes {
            let key = format!("llm.routes.{name}");
            if self.models.contains_key(name) {
                problems.push(format!(
                    "{key}: a model has the same name; models and routes share one namespace \
                     (every model is already a route of one target)"
                ));
            }
            if route.targets.is_empty() {
                problems.push(format!("{key}.targets: name at least one model"));
            }
            for target in &route.targets {
                if !self.models.contains_key(target) {
                    problems.push(format!("{key}.targets: no model {target:?} in llm.models"));
                }
            }
            if let Some(after) = route.hedge_after {
                if after.is_zero() || after > MAX_DURATION {
                    problems.push(format!(
                        "{key}.hedge_after: must be longer than 0s and at most 24h"
                    ));
                }
                if self.fallback_depth(name).is_ok() && self.chain_models(name).len() < 2 {
                    problems.push(format!(
                        "{key}.hedge_after: hedging needs a second model in the chain \
                         (targets, then fallbacks)"
                    ));
                }
                let first_token = route
                    .targets
                    .first()
                    .and_then(|model| self.models.get(model))
                    .and_then(|model| self.providers.get(&model.provider))
                    .map(|provider| provider.first_token_timeout);
                if first_token.is_some_and(|limit| after >= limit) {
                    problems.push(format!(
                        "{key}.hedge_after: the first target's first_token_timeout ends its \
                         attempt first, so the hedge would never start; make it shorter"
                    ));
                }
            }
            let mut seen = std::collections::BTreeSet::new();
            if let Some(again) = route.targets.iter().find(|t| !seen.insert(*t)) {
                problems.push(format!("{key}.targets: {again:?} is listed twice"));
            }
            if !route.weights.is_empty() {
                if route.weights.len() != route.targets.len() {
                    problems.push(format!(
                        "{key}.weights: {} weights for {} targets; give one per target",
                        route.weights.len(),
                        route.targets.len()
                    ));
                } else if route.weights.iter().all(|w| *w == 0) {
                    problems.push(format!("{key}.weights: at least one must be above 0"));
                }
            }
            for next in &route.fallback {
                if !self.is_routable(next) {
                    problems.push(format!("{key}.fallback: no route or model {next:?}"));
                }
            }
            if let Err(problem) = self.fallback_depth(name) {
                problems.push(format!("{key}.fallback: {problem}"));
            }
        }
        problems
    }

    /// Checks that following fallbacks from `route` ends: no cycle, at most
    /// [`MAX_FALLBACK_DEPTH`] routes deep.
    fn fallback_depth(&self, route: &str) -> Result<(), String> {
        fn walk(config: &LlmConfig, name: &str, path: &mut Vec<String>) -> Result<(), String> {
            if path.iter().any(|seen| seen == name) {
                path.push(name.to_owned());
                return Err(format!("the chain loops: {}", path.join(" -> ")));
            }
            if path.len() >= MAX_FALLBACK_DEPTH {
                return Err(format!(
                    "the chain is deeper than {MAX_FALLBACK_DEPTH} routes"
                ));
            }
            let Some(route) = config.routes.get(name) else {
                return Ok(());
            };
            path.push(name.to_owned());
            for next in &route.fallback {
                walk(config, next, path)?;
            }
            path.pop();
            Ok(())
        }
        walk(self, route, &mut Vec::new())
    }

    /// The models `name` tries, in chain order (its targets, then its
    /// fallbacks' in turn), each once; for a model, itself. The config must
    /// have been validated.
    pub fn chain_models(&self, name: &str) -> Vec<String> {
        fn walk(config: &LlmConfig, name: &str, out: &mut Vec<String>, depth: usize) {
            if depth > MAX_FALLBACK_DEPTH {
                return;
            }
            match config.routes.get(name) {
                Some(route) => {
                    for target in &route.targets {
                        if !out.contains(target) {
                            out.push(target.clone());
                        }
                    }
                    for next in &route.fallback {
                        walk(config, next, out, depth + 1);
                    }
                }
                None => {
                    if config.models.contains_key(name) && !out.iter().any(|m| m == name) {
                        out.push(name.to_owned());
                    }
                }
            }
        }
        let mut out = Vec::new();
        walk(self, name, &mut out, 0);
        out
    }
}

/// The routes that always exist: one per model, of that model alone.
pub fn implicit_route(model: &str) -> RouteConfig {
    RouteConfig {
        targets: vec![model.to_owned()],
        weights: Vec::new(),
        fallback: Vec::new(),
        degraded: None,
        hedge_after: None,
    }
}

/// The map type of `[llm.routes]`.
pub type Routes = BTreeMap<String, RouteConfig>;

#[cfg(test)]
mod tests {
    use crate::config::Config;

    const MODELS: &str = r#"
[llm.providers.p]
base_url = "http://127.0.0.1:1/v1"
keyless = true
[llm.models.a]
provider = "p"
context_window = 1000
max_output_tokens = 100
[llm.models.b]
provider = "p"
context_window = 1000
max_output_tokens = 100
"#;

    fn problems(llm: &str, extra: &str) -> String {
        let toml = format!("[llm]\ndefault_model = \"a\"\n{llm}\n{MODELS}\n{extra}");
        match Config::from_toml(&toml) {
            Ok(_) => String::new(),
            Err(err) => err.to_string(),
        }
    }

    #[test]
    fn a_sound_route_set_is_accepted_and_models_are_routes_too() {
        let routes = r#"routes = { chat = { targets = ["a", "b"], weights = [3, 1], fallback = ["b"], hedge_after = "1s" }, strong = { targets = ["b"], fallback = ["chat"], degraded = "unavailable" } }"#;
        assert_eq!(problems(routes, ""), "");
        let config = Config::from_toml(&format!(
            "[llm]\ndefault_model = \"chat\"\n{routes}\n{MODELS}"
        ))
        .unwrap();
        assert_eq!(config.llm.chain_models("strong"), ["b", "a"]);
        assert_eq!(config.llm.chain_models("a"), ["a"]);
    }

    #[test]
    fn every_route_mistake_is_named_with_its_key() {
        let cases = [
            (
                r#"routes = { c = { targets = [] } }"#,
                "llm.routes.c.targets: name at least one model",
            ),
            (
                r#"routes = { c = { targets = ["x"] } }"#,
                r#"llm.routes.c.targets: no model "x""#,
            ),
            (
                r#"routes = { c = { targets = ["a", "a"] } }"#,
                "listed twice",
            ),
            (
                r#"routes = { c = { targets = ["a", "b"], weights = [1] } }"#,
                "1 weights for 2 targets",
            ),
            (
                r#"routes = { c = { targets = ["a"], weights = [0] } }"#,
                "at least one must be above 0",
            ),
            (
                r#"routes = { c = { targets = ["a"], fallback = ["x"] } }"#,
                r#"no route or model "x""#,
            ),
            (
                r#"routes = { a = { targets = ["b"] } }"#,
                "llm.routes.a: a model has the same name",
            ),
            (
                r#"routes = { c = { targets = ["a"], fallback = ["d"] }, d = { targets = ["b"], fallback = ["c"] } }"#,
                "the chain loops: c -> d -> c",
            ),
            (
                r#"routes = { c = { targets = ["a"], fallback = ["c"] } }"#,
                "the chain loops: c -> c",
            ),
            (
                r#"routes = { c = { targets = ["a"], hedge_after = "1s" } }"#,
                "hedging needs a second model",
            ),
            (
                r#"routes = { c = { targets = ["a"], fallback = ["a"], hedge_after = "1s" } }"#,
                "hedging needs a second model",
            ),
            (
                r#"routes = { c = { targets = ["a", "b"], hedge_after = "2m" } }"#,
                "the hedge would never start",
            ),
            (
                r#"routes = { extractive = { targets = ["a"] } }"#,
                "llm.routes.extractive: the name is reserved",
            ),
            ("fallback_reserve = \"0s\"", "llm.fallback_reserve"),
            (
                "fallback_reserve = \"48h\"",
                "llm.fallback_reserve: must be at most 24h",
            ),
        ];
        for (llm, expected) in cases {
            let got = problems(llm, "");
            assert!(got.contains(expected), "{llm}: {got}");
        }
        let deep: Vec<String> = (0..10)
            .map(|i| {
                format!(
                    "r{i} = {{ targets = [\"a\"], fallback = [\"r{}\"] }}",
                    i + 1
                )
            })
            .chain(["r10 = { targets = [\"b\"] }".to_owned()])
            .collect();
        let got = problems(&format!("routes = {{ {} }}", deep.join(", ")), "");
        assert!(got.contains("deeper than 8 routes"), "{got}");
    }

    #[test]
    fn retry_and_breaker_settings_out_of_range_are_named() {
        let cases = [
            ("[llm.retry]\nmax_attempts = 0", "llm.retry.max_attempts"),
            (
                "[llm.retry]\nbudget_window = \"90s\"",
                "llm.retry.budget_window",
            ),
            ("[llm.retry]\nbudget_ratio = 11.0", "llm.retry.budget_ratio"),
            ("[llm.retry]\nbudget_ratio = nan", "llm.retry.budget_ratio"),
            (
                "[llm.retry]\nbase_delay = \"2s\"\nmax_delay = \"1s\"",
                "llm.retry.max_delay",
            ),
            (
                "[llm.breaker]\nfailure_ratio = 0.0",
                "llm.breaker.failure_ratio",
            ),
            ("[llm.breaker]\nmin_calls = 0", "llm.breaker.min_calls"),
            (
                "[llm.breaker]\nhalf_open_probes = 0",
                "llm.breaker.half_open_probes",
            ),
            ("[llm.breaker]\ncool_down = \"2d\"", "at most 24h"),
        ];
        for (extra, key) in cases {
            let got = problems("", extra);
            assert!(got.contains(key), "{extra}: {got}");
        }
    }
}
