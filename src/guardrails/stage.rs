//! The guard slot of the per-call chain (`llm::chain`), specialised per
//! provider:
//!
//! - **before** the call, every text the request carries (the message,
//!   history, tool-call arguments, passages, tool results; never the system
//!   prompt) is scanned for PII and each value masked, redacted or allowed by
//!   the tenant's policy for this provider; a blocked type in the message
//!   refuses the call (`GUARDRAIL_BLOCKED`), elsewhere it removes the text that
//!   holds it. Tool results are framed as data ([`super::frame`]).
//! - **after** it, placeholders are restored in the streamed answer (bounded
//!   look-ahead) and in tool-call arguments (tools run inside the trust
//!   boundary), and the tenant's output filters run: PII redaction and the
//!   deny list on a sliding window, webhooks on the whole answer (which is
//!   then held until they pass).
//!
//! The extractive answerer is not a model endpoint (it quotes passages in
//! process), so its calls are neither masked nor framed; output filters still
//! apply to its answers. The placeholder map, the scan cache and the framing
//! nonce live in the turn's state, shared by every call and attempt of the
//! turn, so a value keeps its placeholder across tool steps, retries and
//! hedges.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::decisions::{Action, Place, Record, TurnDecisions};
use super::mask::PlaceholderMap;
use super::pii::{Finding, PiiKind, PiiScanner, Terms};
use super::{GuardrailError, Guardrails, Policy, digest, frame};
use crate::config::guardrails::PiiAction;
use crate::llm::chain::CallStage;
use crate::llm::extractive::MODEL as EXTRACTIVE;
use crate::llm::{CallContext, ChatMessage, LlmError, LlmRequest, LlmStream};
use crate::retrieval::knowledge::SEARCH_TOOL;

/// The guard stage: one per provider once the chain is specialised.
#[derive(Debug)]
pub struct GuardStage {
    guardrails: Arc<Guardrails>,
    target: Option<Target>,
}

#[derive(Debug)]
struct Target {
    name: String,
    local: bool,
    /// A model endpoint (everything but the extractive answerer): masked
    /// and framed.
    endpoint: bool,
}

impl GuardStage {
    /// The stage before it is specialised to a provider: passes requests
    /// through, filters answers.
    pub fn new(guardrails: Arc<Guardrails>) -> Self {
        Self {
            guardrails,
            target: None,
        }
    }
}

/// What the guardrails keep for a turn.
#[derive(Clone, Debug, Default)]
pub(super) struct GuardState {
    map: PlaceholderMap,
    /// Findings by the digest of the text they were found in.
    cache: HashMap<u128, Arc<[Finding]>>,
    nonce: String,
    /// The calls (by their number in the turn) whose request was masked.
    masked: HashSet<u32>,
}

impl GuardState {
    /// The findings in `text` (whose digest is `id`), scanned once per turn.
    pub(super) fn findings(
        &mut self,
        scanner: &PiiScanner,
        terms: Option<&Terms>,
        id: u128,
        text: &str,
    ) -> Arc<[Finding]> {
        self.findings_in(scanner, terms, id, "", text)
    }

    /// The findings in `text` read after `context` (offsets in `text`; a
    /// finding reaching into the context is dropped), scanned once per turn
    /// (`id` digests both).
    pub(super) fn findings_in(
        &mut self,
        scanner: &PiiScanner,
        terms: Option<&Terms>,
        id: u128,
        context: &str,
        text: &str,
    ) -> Arc<[Finding]> {
        self.cache
            .entry(id)
            .or_insert_with(|| {
                if context.is_empty() {
                    return scanner.scan(text, terms).into();
                }
                let whole = format!("{context}{text}");
                let skip = context.len();
                scanner
                    .scan(&whole, terms)
                    .into_iter()
                    .filter(|f| f.start >= skip)
                    .map(|f| Finding {
                        kind: f.kind,
                        start: f.start - skip,
                        end: f.end - skip,
                    })
                    .collect()
            })
            .clone()
    }
}

/// One request's pass through the guard: what it decided and whether it
/// masked anything.
struct Pass<'a> {
    guardrails: &'a Guardrails,
    policy: &'a Policy,
    target: &'a Target,
    state: &'a mut GuardState,
    records: Vec<Record<'static>>,
    masked: bool,
    blocked: Option<PiiKind>,
}

impl Pass<'_> {
    /// Applies the policy to one text found at `place`: `Some(replacement)`
    /// when it changes.
    fn text(&mut self, text: &str, place: Place) -> Option<String> {
        self.text_in("", text, place)
    }

    /// [`Pass::text`] for a text read after `context` (a JSON key and `: `):
    /// the detectors that need a word before a value (a bare card number
    /// after `card_number`, a secret after `api_key`) see it.
    fn text_in(&mut self, context: &str, text: &str, place: Place) -> Option<String> {
        // Without a context, the digest the message's early check in
        // `screen` uses, so the chain finds that scan in the cache.
        let id = if context.is_empty() {
            digest(&[text.as_bytes()])
        } else {
            digest(&[context.as_bytes(), text.as_bytes()])
        };
        let findings = self.state.findings_in(
            self.guardrails.scanner(),
            self.policy.terms(),
            id,
            context,
            text,
        );
        if findings.is_empty() {
            return None;
        }
        let action_of = |kind| {
            self.policy
                .pii_action(&self.target.name, self.target.local, kind)
        };
        if let Some(blocked) = findings
            .iter()
            .find(|f| action_of(f.kind) == PiiAction::Block)
        {
            if place == Place::Message {
                self.blocked = Some(blocked.kind);
                return None;
            }
            self.records
                .push(record(blocked.kind, Action::Strip, place, Some(id)));
            return Some(format!(
                "[removed by guardrails: it contained a value of type {}]",
                blocked.kind.as_str()
            ));
        }
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        let mut changed = false;
        for finding in findings.iter() {
            // Findings come from this very text (the digest matched): a
            // mismatch could only be a digest collision, and is skipped.
            let (Some(before), Some(value)) = (
                text.get(at..finding.start),
                text.get(finding.start..finding.end),
            ) else {
                continue;
            };
            out.push_str(before);
            // The place is part of the occurrence: the same text as the
            // message and in history is two decisions.
            let occurrence = Some(id ^ ((place as u128) << 120) ^ finding.start as u128);
            match action_of(finding.kind) {
                PiiAction::MaskAndRestore => {
                    out.push_str(&self.state.map.placeholder(finding.kind, value));
                    self.records
                        .push(record(finding.kind, Action::Mask, place, occurrence));
                    self.masked = true;
                    changed = true;
                }
                PiiAction::Redact => {
                    out.push('<');
                    out.push_str(finding.kind.as_str());
                    out.push('>');
                    self.records
                        .push(record(finding.kind, Action::Redact, place, occurrence));
                    changed = true;
                }
                PiiAction::Allow | PiiAction::Block => out.push_str(value),
            }
            at = finding.end;
        }
        if !changed {
            return None;
        }
        out.push_str(text.get(at..).unwrap_or_default());
        Some(out)
    }

    /// Applies the policy to a tool result or tool-call arguments: each
    /// string of a JSON document on its own (so JSON escapes never glue text
    /// to a value), or the whole text when it is not JSON.
    fn document(&mut self, text: &str, place: Place) -> Option<String> {
        let trimmed = text.trim_start();
        if (trimmed.starts_with('{') || trimmed.starts_with('['))
            && let Ok(mut value) = serde_json::from_str::<serde_json::Value>(text)
        {
            return self
                .json(&mut value, place, "")
                .then(|| serde_json::to_string(&value).unwrap_or_else(|_| text.to_owned()));
        }
        self.text(text, place)
    }

    /// Applies the policy to every string, number and key of `value`; each
    /// value is read after its key (`key`: the nearest one above it).
    fn json(&mut self, value: &mut serde_json::Value, place: Place, key: &str) -> bool {
        use serde_json::Value;
        let context = if key.is_empty() {
            String::new()
        } else {
            format!("{key}: ")
        };
        match value {
            Value::String(text) => match self.text_in(&context, text, place) {
                Some(replaced) => {
                    *text = replaced;
                    true
                }
                None => false,
            },
            // A number holding a value (a card, a phone) becomes the string
            // that replaces it.
            Value::Number(number) => match self.text_in(&context, &number.to_string(), place) {
                Some(replaced) => {
                    *value = Value::String(replaced);
                    true
                }
                None => false,
            },
            Value::Array(items) => items
                .iter_mut()
                .fold(false, |changed, item| self.json(item, place, key) | changed),
            Value::Object(fields) => {
                let mut changed = false;
                let rebuilt = std::mem::take(fields)
                    .into_iter()
                    .map(|(name, mut item)| {
                        changed |= self.json(&mut item, place, &name);
                        match self.text(&name, place) {
                            Some(replaced) => {
                                changed = true;
                                (replaced, item)
                            }
                            None => (name, item),
                        }
                    })
                    .collect();
                *fields = rebuilt;
                changed
            }
            Value::Bool(_) | Value::Null => false,
        }
    }
}

fn record(
    kind: PiiKind,
    action: Action,
    place: Place,
    occurrence: Option<u128>,
) -> Record<'static> {
    Record {
        kind: kind.as_str(),
        action,
        place,
        score: 1.0,
        detail: "",
        occurrence,
    }
}

/// Where each tool message of `messages` comes from: passage (the knowledge
/// search) or another tool, and the tool's name, by call id.
fn tool_names(messages: &[ChatMessage]) -> HashMap<String, String> {
    messages
        .iter()
        .flat_map(|message| match message {
            ChatMessage::Assistant { tool_calls, .. } => tool_calls.as_slice(),
            _ => &[],
        })
        .map(|call| (call.id.clone(), call.name.clone()))
        .collect()
}

#[async_trait::async_trait]
impl CallStage for GuardStage {
    fn name(&self) -> &str {
        "guard"
    }

    fn for_provider(&self, provider: &str) -> Option<Arc<dyn CallStage>> {
        Some(Arc::new(GuardStage {
            guardrails: self.guardrails.clone(),
            target: Some(Target {
                name: provider.to_owned(),
                local: self.guardrails.is_local(provider),
                endpoint: provider != EXTRACTIVE,
            }),
        }))
    }

    async fn before(
        &self,
        call: &CallContext,
        mut request: LlmRequest,
    ) -> Result<LlmRequest, LlmError> {
        let Some(target) = self.target.as_ref().filter(|t| t.endpoint) else {
            return Ok(request);
        };
        let policy = self.guardrails.policy(&call.turn.tenant).clone();
        let scan = !policy.allows_all(&target.name, target.local);
        let tools = tool_names(&request.messages);
        let last_user = request
            .messages
            .iter()
            .rposition(|m| matches!(m, ChatMessage::User { .. }));
        let (records, blocked) = call.turn.with_state(|state| {
            let state = state.get_or_insert_default::<GuardState>();
            if state.nonce.is_empty() {
                state.nonce = frame::nonce(call.turn.session.as_str());
            }
            let nonce = state.nonce.clone();
            // Placeholders the texts already hold literally are never issued
            // (restore would then replace the user's own literal text).
            if scan {
                for message in &request.messages {
                    for_each_text(message, |text| state.map.reserve_literals(text));
                }
            }
            let mut pass = Pass {
                guardrails: &self.guardrails,
                policy: &policy,
                target,
                state,
                records: Vec::new(),
                masked: false,
                blocked: None,
            };
            let mut framed = false;
            for (i, message) in request.messages.iter_mut().enumerate() {
                match message {
                    ChatMessage::System { .. } => {}
                    ChatMessage::User { content } if scan => {
                        let place = if Some(i) == last_user {
                            Place::Message
                        } else {
                            Place::History
                        };
                        if let Some(masked) = pass.text(content, place) {
                            *content = masked;
                        }
                    }
                    ChatMessage::Assistant {
                        content,
                        tool_calls,
                    } if scan => {
                        if let Some(masked) = pass.text(content, Place::History) {
                            *content = masked;
                        }
                        for tool_call in tool_calls {
                            if let Some(masked) =
                                pass.document(&tool_call.arguments, Place::History)
                            {
                                tool_call.arguments = masked;
                            }
                        }
                    }
                    ChatMessage::Tool { call_id, content } => {
                        let tool = tools
                            .get(call_id.as_str())
                            .map_or("unknown", String::as_str);
                        let place = if tool == SEARCH_TOOL {
                            Place::Passage
                        } else {
                            Place::ToolResult
                        };
                        if scan && let Some(masked) = pass.document(content, place) {
                            *content = masked;
                        }
                        *content = frame::frame(tool, call_id, &nonce, content);
                        framed = true;
                    }
                    ChatMessage::User { .. } | ChatMessage::Assistant { .. } => {}
                }
                if pass.blocked.is_some() {
                    break;
                }
            }
            if pass.masked {
                pass.state.masked.insert(call.seq);
            }
            // Whenever tools are offered, not only once results come back: the
            // system prompt stays the same bytes across the turn's steps.
            if framed || !request.tools.is_empty() {
                add_rule(&mut request.messages);
            }
            (pass.records, pass.blocked)
        });
        let metrics = self.guardrails.metrics();
        for record in records {
            TurnDecisions::record(&call.turn, metrics, record);
        }
        if let Some(kind) = blocked {
            TurnDecisions::record(
                &call.turn,
                metrics,
                record(kind, Action::Block, Place::Message, None),
            );
            return Err(LlmError::Guardrail(GuardrailError::Blocked {
                kind: kind.as_str(),
                place: Place::Message,
                detail: String::new(),
            }));
        }
        Ok(request)
    }

    fn after(&self, call: &CallContext, stream: LlmStream) -> LlmStream {
        let Some(target) = &self.target else {
            return stream;
        };
        let policy = self.guardrails.policy(&call.turn.tenant).clone();
        let map = call.turn.with_state(|state| {
            state
                .get::<GuardState>()
                .filter(|s| target.endpoint && s.masked.contains(&call.seq))
                .map(|s| s.map.clone())
        });
        if map.is_none() && !policy.filters_output() {
            return stream;
        }
        super::answer::guarded(self.guardrails.clone(), policy, call.clone(), map, stream)
    }
}

/// Calls `f` on every text of `message` the guard scans.
fn for_each_text(message: &ChatMessage, mut f: impl FnMut(&str)) {
    match message {
        ChatMessage::System { .. } => {}
        ChatMessage::User { content } | ChatMessage::Tool { content, .. } => f(content),
        ChatMessage::Assistant {
            content,
            tool_calls,
        } => {
            f(content);
            for call in tool_calls {
                f(&call.arguments);
            }
        }
    }
}

/// Adds the framing rule to the system prompt (or as one when there is none).
fn add_rule(messages: &mut Vec<ChatMessage>) {
    match messages.first_mut() {
        Some(ChatMessage::System { content }) => {
            content.push_str("\n\n");
            content.push_str(frame::RULE);
        }
        _ => messages.insert(
            0,
            ChatMessage::System {
                content: frame::RULE.to_owned(),
            },
        ),
    }
}

#[cfg(test)]
mod tests;
