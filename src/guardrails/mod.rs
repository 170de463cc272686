//! Guardrails (docs/guardrails.md): what leaves the process for a model and
//! what returns to users, governed by per-tenant policy.
//!
//! - **PII** ([`pii`]) found in everything a model call sends (the message,
//!   history, passages, tool results, tool-call arguments) is masked with
//!   per-turn placeholders and restored in what comes back ([`mask`]),
//!   redacted, blocked or allowed, per tenant, provider and type. Embedding
//!   inputs are redacted by the embedding endpoint's own policy ([`embed`]).
//! - **Prompt injection** ([`injection`]) is scored in the user's message
//!   (flag or block) and in passages and tool results (flag or strip);
//!   passages and tool results are always framed as data ([`frame`]).
//! - **Output filters** ([`output`]): PII redaction of the answer and a deny
//!   list, on a sliding window, keep the answer streaming; webhooks
//!   ([`webhook`]) that check the whole answer make the turn buffered.
//! - Every decision is recorded ([`decisions`]) and counted.
//!
//! The model-call half lives in the per-call chain's guard slot ([`stage`]);
//! the message and tool-result half is called by the orchestrator ([`screen`]).

mod answer;
pub mod decisions;
pub mod embed;
pub mod frame;
pub mod injection;
pub mod mask;
pub mod output;
pub mod pii;
pub mod screen;
pub mod stage;
pub mod webhook;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::config::guardrails::{
    GuardrailsConfig, InjectionConfig, OutputConfig, PiiAction, PiiConfig, StoreAs,
};
use crate::ids::TenantId;
use crate::telemetry::guardrails::GuardrailMetrics;

use injection::InjectionDetector;
use output::DenyList;
use pii::{PiiKind, PiiScanner, Terms};
use webhook::Webhook;

/// Why the guardrails stopped a turn.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum GuardrailError {
    /// The user's message holds what the tenant's policy blocks: a PII type
    /// (for the provider the call was going to), prompt injection, or what a
    /// webhook flagged. Never the matched text.
    #[error("the message was blocked by the guardrails: {}", describe_block(.kind, .detail))]
    Blocked {
        /// What was found: a PII type, `PROMPT_INJECTION` or `WEBHOOK`.
        kind: &'static str,
        /// Where.
        place: decisions::Place,
        /// The injection category or the webhook's name; empty otherwise.
        detail: String,
    },
    /// A webhook that fails closed could not check the message.
    #[error("guardrail webhook {webhook:?} could not check the message, and it fails closed")]
    Unavailable {
        /// The webhook's name.
        webhook: String,
    },
}

fn describe_block(kind: &str, detail: &str) -> String {
    match kind {
        "PROMPT_INJECTION" => format!("it reads as a prompt injection ({detail})"),
        "WEBHOOK" => format!("webhook {detail:?} flagged it"),
        kind => format!(
            "it contains a value of type {kind}, which this tenant may not send to this model"
        ),
    }
}

/// The guardrails of every tenant, built once from config.
#[derive(Debug)]
pub struct Guardrails {
    scanner: Arc<PiiScanner>,
    detector: InjectionDetector,
    default: Arc<Policy>,
    tenants: HashMap<TenantId, Arc<Policy>>,
    /// Provider name → `local`.
    local: HashMap<String, bool>,
    metrics: GuardrailMetrics,
}

/// One tenant's guardrails, resolved.
#[derive(Debug)]
pub struct Policy {
    /// `[guardrails.pii]` (or the tenant's own).
    pub pii: PiiConfig,
    types: HashMap<PiiKind, PiiAction>,
    terms: Option<Terms>,
    /// `[guardrails.injection]` (or the tenant's own).
    pub injection: InjectionConfig,
    /// `[guardrails.output]` (or the tenant's own).
    pub output: OutputConfig,
    deny: Option<Arc<DenyList>>,
    /// Webhooks over the message.
    pub input_webhooks: Vec<Arc<Webhook>>,
    /// Webhooks over the whole answer.
    pub output_webhooks: Vec<Arc<Webhook>>,
}

impl Policy {
    fn new(
        pii: &PiiConfig,
        injection: &InjectionConfig,
        output: &OutputConfig,
        webhooks: &[Arc<Webhook>],
    ) -> Self {
        Self {
            types: pii
                .types
                .iter()
                .filter_map(|(name, action)| Some((PiiKind::parse(name)?, *action)))
                .collect(),
            // A bad term list is a config problem reported at start.
            terms: Terms::new(&pii.terms)
                .ok()
                .filter(|terms| !terms.is_empty()),
            pii: pii.clone(),
            injection: injection.clone(),
            deny: DenyList::new(&output.deny)
                .ok()
                .filter(|deny| !deny.is_empty())
                .map(Arc::new),
            output: output.clone(),
            input_webhooks: webhooks
                .iter()
                .filter(|w| w.applies_to().input())
                .cloned()
                .collect(),
            output_webhooks: webhooks
                .iter()
                .filter(|w| w.applies_to().output())
                .cloned()
                .collect(),
        }
    }

    /// The action for PII of `kind` sent to `provider`.
    pub fn pii_action(&self, provider: &str, local: bool, kind: PiiKind) -> PiiAction {
        let base = self
            .pii
            .providers
            .get(provider)
            .copied()
            .unwrap_or(if local {
                self.pii.local
            } else {
                self.pii.external
            });
        if base == PiiAction::Allow {
            return base;
        }
        self.types.get(&kind).copied().unwrap_or(base)
    }

    /// Whether every type is allowed for `provider`: nothing to scan for.
    pub fn allows_all(&self, provider: &str, local: bool) -> bool {
        PiiKind::ALL
            .iter()
            .all(|kind| self.pii_action(provider, local, *kind) == PiiAction::Allow)
    }

    /// The tenant's own sensitive terms.
    pub fn terms(&self) -> Option<&Terms> {
        self.terms.as_ref()
    }

    /// The deny list on the answer, when it has terms.
    pub fn deny(&self) -> Option<&Arc<DenyList>> {
        self.deny.as_ref()
    }

    /// Whether sessions store the turn with its PII redacted.
    pub fn stores_redacted(&self) -> bool {
        self.pii.store == StoreAs::Redacted
    }

    /// Whether the answer passes any output filter.
    pub fn filters_output(&self) -> bool {
        self.output.redact_pii || self.deny.is_some() || !self.output_webhooks.is_empty()
    }
}

impl Guardrails {
    /// The guardrails `config` describes; `providers` maps each provider name
    /// to its `local` flag. The config must have been validated.
    pub fn new(
        config: &GuardrailsConfig,
        providers: impl IntoIterator<Item = (String, bool)>,
        http: reqwest::Client,
        metrics: GuardrailMetrics,
    ) -> Self {
        let webhooks: BTreeMap<&str, Arc<Webhook>> = config
            .webhooks
            .iter()
            .map(|(name, webhook)| {
                metrics.webhook_known(name);
                (
                    name.as_str(),
                    Arc::new(Webhook::new(name, webhook, http.clone(), metrics.clone())),
                )
            })
            .collect();
        let every: Vec<Arc<Webhook>> = webhooks.values().cloned().collect();
        let default = Arc::new(Policy::new(
            &config.pii,
            &config.injection,
            &config.output,
            &every,
        ));
        let tenants = config
            .tenants
            .iter()
            .map(|(tenant, own)| {
                let chosen: Vec<Arc<Webhook>> = match &own.webhooks {
                    None => every.clone(),
                    Some(names) => names
                        .iter()
                        .filter_map(|name| webhooks.get(name.as_str()).cloned())
                        .collect(),
                };
                let policy = Policy::new(
                    own.pii.as_ref().unwrap_or(&config.pii),
                    own.injection.as_ref().unwrap_or(&config.injection),
                    own.output.as_ref().unwrap_or(&config.output),
                    &chosen,
                );
                (tenant.clone(), Arc::new(policy))
            })
            .collect();
        Self {
            scanner: Arc::new(PiiScanner::new()),
            detector: InjectionDetector::new(),
            default,
            tenants,
            local: providers.into_iter().collect(),
            metrics,
        }
    }

    /// Guardrails with the built-in defaults, for tests and tools.
    pub fn defaults() -> Self {
        Self::new(
            &GuardrailsConfig::default(),
            [],
            reqwest::Client::new(),
            GuardrailMetrics::default(),
        )
    }

    /// `tenant`'s policy.
    pub fn policy(&self, tenant: &TenantId) -> &Arc<Policy> {
        self.tenants.get(tenant).unwrap_or(&self.default)
    }

    /// Whether `provider` is marked `local = true` (unknown providers are
    /// external: the safe side).
    pub fn is_local(&self, provider: &str) -> bool {
        self.local.get(provider).copied().unwrap_or(false)
    }

    /// The PII scanner.
    pub fn scanner(&self) -> &Arc<PiiScanner> {
        &self.scanner
    }

    /// The prompt-injection detector.
    pub fn detector(&self) -> &InjectionDetector {
        &self.detector
    }

    /// Where decisions are counted.
    pub fn metrics(&self) -> &GuardrailMetrics {
        &self.metrics
    }
}

/// A 128-bit digest of `parts`, to know a text again within a turn (scan
/// cache, occurrences already counted). Not a security boundary: a collision
/// (odds about 2⁻¹²⁸ per pair) would reuse another text's findings, and
/// every use checks the findings' offsets against the text.
pub fn digest(parts: &[&[u8]]) -> u128 {
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    for part in parts {
        hasher.update(&(part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    hasher.digest128()
}

/// Guardrails from a `[guardrails]` table in TOML, for tests: providers
/// `openai` and `ext` are external, `vllm` is local.
#[cfg(test)]
pub(crate) fn from_toml(toml: &str) -> Guardrails {
    use figment::providers::Format as _;
    let config: GuardrailsConfig = figment::Figment::from(figment::providers::Toml::string(toml))
        .extract()
        .unwrap_or_else(|err| panic!("test config: {err}"));
    Guardrails::new(
        &config,
        [
            ("openai".to_owned(), false),
            ("ext".to_owned(), false),
            ("vllm".to_owned(), true),
        ],
        reqwest::Client::new(),
        GuardrailMetrics::default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guardrails(toml: &str) -> Guardrails {
        from_toml(toml)
    }

    #[test]
    fn actions_resolve_by_provider_then_type_and_local_providers_are_allowed() {
        let g = guardrails(
            "[pii]\ntypes = { CARD = \"block\", IP = \"allow\" }\nproviders = { azure = \"redact\" }\n\
             [tenants.acme.pii]\nexternal = \"redact\"\n",
        );
        let policy = g.policy(&TenantId::default_tenant());
        let external = g.is_local("openai");
        assert!(!external);
        assert_eq!(
            policy.pii_action("openai", false, PiiKind::Email),
            PiiAction::MaskAndRestore
        );
        assert_eq!(
            policy.pii_action("openai", false, PiiKind::Card),
            PiiAction::Block
        );
        assert_eq!(
            policy.pii_action("openai", false, PiiKind::Ip),
            PiiAction::Allow
        );
        assert_eq!(
            policy.pii_action("azure", false, PiiKind::Email),
            PiiAction::Redact
        );
        assert_eq!(
            policy.pii_action("vllm", true, PiiKind::Card),
            PiiAction::Allow
        );
        assert!(policy.allows_all("vllm", true));
        assert!(!g.is_local("unknown"), "an unknown provider is external");
        let acme = g.policy(&TenantId::try_from("acme").unwrap());
        assert_eq!(
            acme.pii_action("openai", false, PiiKind::Email),
            PiiAction::Redact
        );
        assert_eq!(
            acme.pii_action("openai", false, PiiKind::Card),
            PiiAction::Redact,
            "a tenant's table replaces the global one whole"
        );
    }

    #[test]
    fn digests_tell_texts_apart_by_their_parts() {
        assert_ne!(digest(&[b"ab", b"c"]), digest(&[b"a", b"bc"]));
        assert_eq!(digest(&[b"ab"]), digest(&[b"ab"]));
    }
}
