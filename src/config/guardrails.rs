//! `[guardrails]`: what leaves for a model and what returns to users, per
//! tenant (docs/guardrails.md). The global tables are every tenant's policy;
//! `[guardrails.tenants.NAME.pii]` (or `.injection`, `.output`) replaces the
//! global table of the same name for that tenant, whole: a key the tenant's
//! table leaves out takes its built-in default, not the global value.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::guardrails::pii::{PiiKind, Terms};
use crate::ids::TenantId;

/// `[guardrails]`.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GuardrailsConfig {
    /// PII in what is sent to models.
    #[serde(default)]
    pub pii: PiiConfig,
    /// Prompt injection in the message, passages and tool results.
    #[serde(default)]
    pub injection: InjectionConfig,
    /// Filters on the answer.
    #[serde(default)]
    pub output: OutputConfig,
    /// Per tenant: tables that replace the global ones.
    #[serde(default)]
    pub tenants: BTreeMap<TenantId, TenantGuardrails>,
    /// External classifiers over HTTP JSON, by name.
    #[serde(default)]
    pub webhooks: BTreeMap<String, WebhookConfig>,
}

/// What to do with a PII value found in text bound for a model.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum PiiAction {
    /// Replace it with a placeholder (`<EMAIL_1>`) and restore the original in
    /// the answer and in tool-call arguments.
    #[default]
    MaskAndRestore,
    /// Replace it with its type (`<EMAIL>`); nothing is restored.
    Redact,
    /// Refuse the turn when it is in the user's message (`INVALID_ARGUMENT`,
    /// `GUARDRAIL_BLOCKED`); elsewhere, remove the passage, tool result or
    /// history message that holds it.
    Block,
    /// Send it as written.
    Allow,
}

impl PiiAction {
    /// The name in configuration and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            PiiAction::MaskAndRestore => "mask_and_restore",
            PiiAction::Redact => "redact",
            PiiAction::Block => "block",
            PiiAction::Allow => "allow",
        }
    }
}

/// `[guardrails.pii]`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PiiConfig {
    /// For every provider not marked `local = true`.
    #[serde(default)]
    pub external: PiiAction,
    /// For providers marked `local = true`.
    #[serde(default = "allow")]
    pub local: PiiAction,
    /// Per provider name: replaces `external` or `local` for that provider.
    #[serde(default)]
    pub providers: BTreeMap<String, PiiAction>,
    /// Per PII type (`EMAIL`, `CARD`...): replaces the provider's action for
    /// that type, except where the provider's action is `allow`.
    #[serde(default)]
    pub types: BTreeMap<String, PiiAction>,
    /// The tenant's own sensitive terms (customer or project names), found
    /// case-insensitively as whole words, as type `TERM`.
    #[serde(default)]
    pub terms: Vec<String>,
    /// For the embedding endpoint when it is not `local`: `redact` (with
    /// unnumbered `<EMAIL>` tokens, so queries and documents stay comparable)
    /// or `allow`. Nothing comes back to restore, so `mask_and_restore` is not
    /// offered, and neither is `block` (a refused query would fail the
    /// search rather than degrade it).
    #[serde(default = "redact")]
    pub embeddings: PiiAction,
    /// How sessions store a turn: `original` (the tenant's own data, as the
    /// user and model wrote it).
    #[serde(default)]
    pub store: StoreAs,
}

/// How a turn's text is stored in its session.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum StoreAs {
    /// As written: PII included.
    #[default]
    Original,
    /// Every PII value found (every type, the tenant's terms included)
    /// replaced by its type (`<EMAIL>`) before the write.
    Redacted,
}

fn allow() -> PiiAction {
    PiiAction::Allow
}

fn redact() -> PiiAction {
    PiiAction::Redact
}

impl Default for PiiConfig {
    fn default() -> Self {
        Self {
            external: PiiAction::MaskAndRestore,
            local: PiiAction::Allow,
            providers: BTreeMap::new(),
            types: BTreeMap::new(),
            terms: Vec::new(),
            embeddings: PiiAction::Redact,
            store: StoreAs::Original,
        }
    }
}

/// What to do about prompt injection in the user's message.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum MessageAction {
    /// Record the decision; the turn goes on.
    #[default]
    Flag,
    /// Refuse the turn (`INVALID_ARGUMENT`, `GUARDRAIL_BLOCKED`).
    Block,
}

/// What to do about prompt injection in a passage or tool result.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ContentAction {
    /// Record the decision; the content reaches the model (framed as data).
    Flag,
    /// Remove the passage or tool result from what the model sees.
    #[default]
    Strip,
}

/// `[guardrails.injection]`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct InjectionConfig {
    /// For the user's message.
    #[serde(default)]
    pub message: MessageAction,
    /// For retrieved passages and tool results.
    #[serde(default)]
    pub content: ContentAction,
    /// The score in [0, 1] from which a text is flagged (the decision is
    /// recorded and counted).
    #[serde(default = "default_threshold")]
    pub threshold: f32,
    /// The score from which `block` or `strip` applies; between `threshold`
    /// and this, the text is only flagged. At least `threshold`; unset: the
    /// same as `threshold`.
    #[serde(default)]
    pub action_threshold: Option<f32>,
}

fn default_threshold() -> f32 {
    crate::guardrails::injection::DEFAULT_THRESHOLD
}

impl Default for InjectionConfig {
    fn default() -> Self {
        Self {
            message: MessageAction::Flag,
            content: ContentAction::Strip,
            threshold: default_threshold(),
            action_threshold: None,
        }
    }
}

/// `[guardrails.output]`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    /// Replace PII the model writes in its answer by its type (`<EMAIL>`),
    /// values restored from the turn's own placeholders included.
    #[serde(default)]
    pub redact_pii: bool,
    /// Terms that stop the answer where they appear (whole words,
    /// case-insensitive): the text before is kept, the turn ends with
    /// `FINISH_REASON_GUARDRAIL`.
    #[serde(default)]
    pub deny: Vec<String>,
}

/// `[guardrails.tenants.NAME]`: tables that replace the global ones.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TenantGuardrails {
    /// Replaces `[guardrails.pii]`.
    #[serde(default)]
    pub pii: Option<PiiConfig>,
    /// Replaces `[guardrails.injection]`.
    #[serde(default)]
    pub injection: Option<InjectionConfig>,
    /// Replaces `[guardrails.output]`.
    #[serde(default)]
    pub output: Option<OutputConfig>,
    /// The webhooks that check this tenant's turns, by name; unset: every
    /// configured webhook.
    #[serde(default)]
    pub webhooks: Option<Vec<String>>,
}

/// Which text a webhook checks.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AppliesTo {
    /// The user's message, before any model call.
    Input,
    /// The whole answer, before any of it is released (the turn is buffered).
    Output,
    /// Both.
    Both,
}

impl AppliesTo {
    /// Whether it checks the message.
    pub fn input(self) -> bool {
        matches!(self, AppliesTo::Input | AppliesTo::Both)
    }

    /// Whether it checks the answer.
    pub fn output(self) -> bool {
        matches!(self, AppliesTo::Output | AppliesTo::Both)
    }
}

/// What a turn does when a webhook cannot answer in time.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    /// Go on as if it had not flagged the text.
    FailOpen,
    /// Input: refuse the turn (`UNAVAILABLE`, `GUARDRAIL_UNAVAILABLE`);
    /// output: withhold the answer (`FINISH_REASON_GUARDRAIL`).
    FailClosed,
}

/// `[guardrails.webhooks.NAME]`: an external classifier (docs/guardrails.md
/// has the JSON it is sent and answers).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Where to POST, `http://` or `https://`.
    pub url: String,
    /// The message, the answer, or both.
    pub applies_to: AppliesTo,
    /// The limit on one request.
    #[serde(default = "webhook_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// When it fails or times out.
    pub on_error: OnError,
    /// A `score` at or above this flags the text even without `flagged`.
    #[serde(default = "one")]
    pub threshold: f32,
}

fn webhook_timeout() -> Duration {
    Duration::from_millis(500)
}

fn one() -> f32 {
    1.0
}

impl PiiConfig {
    fn problems(&self, key: &str, providers: &BTreeSet<String>, problems: &mut Vec<String>) {
        for name in self.providers.keys() {
            if !providers.contains(name) {
                problems.push(format!(
                    "{key}.providers.{name}: no provider of that name in llm.providers"
                ));
            }
        }
        for name in self.types.keys() {
            match PiiKind::parse(name) {
                Some(kind) if kind.as_str() == name => {}
                _ => problems.push(format!(
                    "{key}.types.{name}: unknown PII type; types are {}",
                    PiiKind::ALL.map(PiiKind::as_str).join(", ")
                )),
            }
        }
        if let Err(err) = Terms::new(&self.terms) {
            problems.push(format!("{key}.terms: {err}"));
        }
        if !matches!(self.embeddings, PiiAction::Redact | PiiAction::Allow) {
            problems.push(format!(
                "{key}.embeddings: must be \"redact\" or \"allow\" (nothing comes back from an \
                 embedding endpoint to restore, and a refused query would fail the search)"
            ));
        }
    }
}

impl InjectionConfig {
    fn problems(&self, key: &str, problems: &mut Vec<String>) {
        if !(self.threshold > 0.0 && self.threshold <= 1.0) {
            problems.push(format!("{key}.threshold: must be above 0 and at most 1"));
        }
        if let Some(act_at) = self.action_threshold
            && !(act_at >= self.threshold && act_at <= 1.0)
        {
            problems.push(format!(
                "{key}.action_threshold: must be at least threshold ({}) and at most 1",
                self.threshold
            ));
        }
    }

    /// The score from which `block` or `strip` applies.
    pub fn action_at(&self) -> f32 {
        self.action_threshold.unwrap_or(self.threshold)
    }
}

impl OutputConfig {
    fn problems(&self, key: &str, problems: &mut Vec<String>) {
        if let Err(err) = crate::guardrails::output::DenyList::new(&self.deny) {
            problems.push(format!("{key}.deny: {err}"));
        }
    }
}

impl GuardrailsConfig {
    /// Problems, each naming its key. `tenants` are those some key acts for,
    /// `providers` the names in `llm.providers`.
    pub fn problems(
        &self,
        tenants: &BTreeSet<TenantId>,
        providers: &BTreeSet<String>,
    ) -> Vec<String> {
        let mut problems = Vec::new();
        self.pii
            .problems("guardrails.pii", providers, &mut problems);
        self.injection
            .problems("guardrails.injection", &mut problems);
        self.output.problems("guardrails.output", &mut problems);
        for (tenant, own) in &self.tenants {
            let key = format!("guardrails.tenants.{tenant}");
            if !tenants.contains(tenant) {
                problems.push(format!(
                    "{key}: unknown tenant: no key in auth.keys acts for it"
                ));
            }
            if let Some(pii) = &own.pii {
                pii.problems(&format!("{key}.pii"), providers, &mut problems);
            }
            if let Some(injection) = &own.injection {
                injection.problems(&format!("{key}.injection"), &mut problems);
            }
            if let Some(output) = &own.output {
                output.problems(&format!("{key}.output"), &mut problems);
            }
            for name in own.webhooks.iter().flatten() {
                if !self.webhooks.contains_key(name) {
                    problems.push(format!(
                        "{key}.webhooks: no webhook {name:?} in guardrails.webhooks"
                    ));
                }
            }
        }
        for (name, webhook) in &self.webhooks {
            let key = format!("guardrails.webhooks.{name}");
            match reqwest::Url::parse(&webhook.url) {
                Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => {}
                _ => problems.push(format!(
                    "{key}.url: {:?} is not an http:// or https:// URL",
                    webhook.url
                )),
            }
            if webhook.timeout.is_zero() || webhook.timeout > Duration::from_secs(30) {
                problems.push(format!("{key}.timeout: must be above 0 and at most 30s"));
            }
            if !(webhook.threshold > 0.0 && webhook.threshold <= 1.0) {
                problems.push(format!("{key}.threshold: must be above 0 and at most 1"));
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use figment::providers::Format as _;

    use super::*;

    fn config(toml: &str) -> GuardrailsConfig {
        figment::Figment::from(figment::providers::Toml::string(toml))
            .extract()
            .unwrap()
    }

    fn problems(config: &GuardrailsConfig) -> String {
        let tenants = [TenantId::try_from("acme").unwrap()].into_iter().collect();
        let providers = ["openai".to_owned(), "vllm".to_owned()]
            .into_iter()
            .collect();
        config.problems(&tenants, &providers).join("\n")
    }

    #[test]
    fn zero_configuration_masks_for_external_providers_only() {
        let empty = config("");
        assert_eq!(empty.pii.external, PiiAction::MaskAndRestore);
        assert_eq!(empty.pii.local, PiiAction::Allow);
        assert_eq!(empty.pii.embeddings, PiiAction::Redact);
        assert_eq!(empty.injection.content, ContentAction::Strip);
        assert_eq!(problems(&empty), "");
    }

    #[test]
    fn every_mistake_names_its_key() {
        let found = problems(&config(
            "[pii]\nproviders = { nowhere = \"allow\" }\ntypes = { NAME = \"block\" }\n\
             terms = [\"\"]\nembeddings = \"mask_and_restore\"\n\
             [injection]\nthreshold = 0\naction_threshold = 2\n[output]\ndeny = [\"\"]\n\
             [tenants.ghost]\n[tenants.acme]\nwebhooks = [\"nope\"]\n\
             [webhooks.mod]\nurl = \"ftp://x\"\napplies_to = \"both\"\non_error = \"fail_open\"\n\
             timeout = \"0s\"\nthreshold = 2\n",
        ));
        for expected in [
            "guardrails.pii.providers.nowhere:",
            "guardrails.pii.types.NAME: unknown PII type",
            "guardrails.pii.terms:",
            "guardrails.pii.embeddings:",
            "guardrails.injection.threshold:",
            "guardrails.injection.action_threshold:",
            "guardrails.output.deny:",
            "guardrails.tenants.ghost: unknown tenant",
            "guardrails.tenants.acme.webhooks: no webhook \"nope\"",
            "guardrails.webhooks.mod.url:",
            "guardrails.webhooks.mod.timeout:",
            "guardrails.webhooks.mod.threshold:",
        ] {
            assert!(
                found.contains(expected),
                "{expected} missing from:\n{found}"
            );
        }
    }

    #[test]
    fn an_unknown_action_or_key_is_refused_by_name() {
        for (bad, key) in [
            ("[pii]\nexternal = \"hide\"\n", "external"),
            ("[injection]\nmessage = \"strip\"\n", "message"),
            ("[output]\nfilter = true\n", "filter"),
        ] {
            let err = figment::Figment::from(figment::providers::Toml::string(bad))
                .extract::<GuardrailsConfig>()
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{bad}: {err}");
        }
    }
}
