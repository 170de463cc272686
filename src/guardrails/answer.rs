//! The answer of one model call on its way back through the guard slot:
//! placeholders restored (bounded look-ahead) in the text and in tool-call
//! arguments, then the tenant's output filters: the deny list and PII
//! redaction on a sliding window (the answer keeps streaming), webhooks on
//! the whole answer (held until they pass: a buffered turn).

use std::sync::Arc;

use futures::StreamExt;

use super::decisions::{Action, Place, Record, TurnDecisions};
use super::mask::{PlaceholderMap, Restorer, restore_all};
use super::output::{OutputFilter, Step};
use super::pii::PiiKind;
use super::webhook::{Check, Direction};
use super::{Guardrails, Policy};
use crate::config::guardrails::OnError;
use crate::llm::{CallContext, FinishReason, LlmEvent, LlmStream};
use crate::telemetry::guardrails::GuardrailMetrics;

/// The answer of one call, restored (when `map` is set) and filtered.
pub(super) fn guarded(
    guardrails: Arc<Guardrails>,
    policy: Arc<Policy>,
    call: CallContext,
    map: Option<PlaceholderMap>,
    mut inner: LlmStream,
) -> LlmStream {
    async_stream::stream! {
        let scanner = guardrails.scanner().clone();
        let mut filter = OutputFilter::new(
            policy.deny().cloned(),
            policy.output.redact_pii.then_some(scanner),
        );
        let mut restorer = Restorer::new();
        // Output webhooks need the whole answer: nothing is released before.
        let buffered = !policy.output_webhooks.is_empty();
        let mut held = String::new();
        // Whether anything (text, or the empty progress delta) went out.
        let mut progressed = false;
        let mut unknown = 0;
        let metrics = guardrails.metrics();
        while let Some(event) = inner.next().await {
            let (text, finish) = match event {
                Ok(LlmEvent::TextDelta(text)) => {
                    let text = match &map {
                        Some(map) => restorer.push(&text, map),
                        None => text,
                    };
                    (filter.push(&text), None)
                }
                Ok(LlmEvent::Finished(reason)) => {
                    let rest = match &map {
                        Some(map) => restorer.finish(map),
                        None => String::new(),
                    };
                    let step = match filter.push(&rest) {
                        Step::Release(mut released) => match filter.finish() {
                            Step::Release(last) => {
                                released.push_str(&last);
                                Step::Release(released)
                            }
                            Step::Cut { text, term_index } => {
                                released.push_str(&text);
                                Step::Cut { text: released, term_index }
                            }
                        },
                        cut => cut,
                    };
                    (step, Some(reason))
                }
                Ok(LlmEvent::ToolCalls(mut calls)) => {
                    if let Some(map) = &map {
                        for tool_call in &mut calls {
                            let (restored, missing) = restore_arguments(&tool_call.arguments, map);
                            tool_call.arguments = restored;
                            unknown += missing;
                        }
                    }
                    yield Ok(LlmEvent::ToolCalls(calls));
                    continue;
                }
                Ok(LlmEvent::Restart) => {
                    restorer.reset();
                    filter.reset();
                    held.clear();
                    yield Ok(LlmEvent::Restart);
                    continue;
                }
                other => {
                    yield other;
                    continue;
                }
            };
            let (released, cut) = match text {
                Step::Release(released) => (released, false),
                Step::Cut { text, .. } => {
                    let decision = Record {
                        kind: "DENY_LIST",
                        action: Action::Block,
                        place: Place::Answer,
                        score: 1.0,
                        detail: "",
                        occurrence: None,
                    };
                    TurnDecisions::record(&call.turn, metrics, decision);
                    (text, true)
                }
            };
            if !buffered && !released.is_empty() {
                yield Ok(LlmEvent::TextDelta(released));
                progressed = true;
            } else {
                held.push_str(&released);
                // The upstream is answering, though nothing can be released
                // yet: an empty delta tells the router (its first-token
                // timeout, its hedge) that the attempt has started. The
                // orchestrator never forwards an empty delta.
                if !progressed && finish.is_none() {
                    progressed = true;
                    yield Ok(LlmEvent::TextDelta(String::new()));
                }
            }
            let finish = if cut { Some(FinishReason::Guardrail) } else { finish };
            let Some(mut reason) = finish else { continue };
            if buffered && !held.is_empty() {
                if check_answer(&policy, metrics, &call, &held).await {
                    yield Ok(LlmEvent::TextDelta(std::mem::take(&mut held)));
                } else {
                    reason = FinishReason::Guardrail;
                }
            }
            for (kind, count) in filter.redacted() {
                for _ in 0..count {
                    TurnDecisions::record(&call.turn, metrics, redacted(kind));
                }
            }
            if unknown > 0 || restorer.unknown() > 0 {
                let decision = Record {
                    kind: "UNKNOWN_PLACEHOLDER",
                    action: Action::Flag,
                    place: Place::Answer,
                    score: 1.0,
                    detail: "",
                    occurrence: None,
                };
                TurnDecisions::record(&call.turn, metrics, decision);
            }
            yield Ok(LlmEvent::Finished(reason));
            if cut {
                // A cut answer ends here: dropping the inner stream aborts
                // the upstream request.
                break;
            }
        }
    }
    .boxed()
}

/// Whether the tenant's output webhooks let `answer` through; each flag or
/// closed failure is recorded.
async fn check_answer(
    policy: &Policy,
    metrics: &GuardrailMetrics,
    call: &CallContext,
    answer: &str,
) -> bool {
    let turn = &call.turn;
    for webhook in &policy.output_webhooks {
        let check = Check {
            direction: Direction::Output,
            place: Place::Answer.as_str(),
            tenant: turn.tenant.as_str(),
            turn_id: turn.turn.as_str(),
            text: answer,
        };
        let (withheld, score) = match webhook.check(check).await {
            Ok(verdict) => (verdict.flagged, verdict.score),
            Err(_) => (webhook.on_error() == OnError::FailClosed, 1.0),
        };
        if withheld {
            let decision = Record {
                kind: "WEBHOOK",
                action: Action::Block,
                place: Place::Answer,
                score,
                detail: webhook.name(),
                occurrence: None,
            };
            TurnDecisions::record(turn, metrics, decision);
            return false;
        }
    }
    true
}

fn redacted(kind: PiiKind) -> Record<'static> {
    Record {
        kind: kind.as_str(),
        action: Action::Redact,
        place: Place::Answer,
        score: 1.0,
        detail: "",
        occurrence: None,
    }
}

/// Tool-call `arguments` with their placeholders restored: inside each string
/// and key of the JSON document (so a restored value is escaped as JSON, and
/// a placeholder the model wrote as `\u003cEMAIL_1\u003e` is found), or in
/// the raw text when the arguments are not JSON. Also the count of unknown
/// placeholders.
fn restore_arguments(arguments: &str, map: &PlaceholderMap) -> (String, u32) {
    use serde_json::Value;
    fn walk(value: &mut Value, map: &PlaceholderMap, unknown: &mut u32) {
        match value {
            Value::String(text) => {
                let (restored, missing) = restore_all(text, map);
                *text = restored;
                *unknown += missing;
            }
            Value::Array(items) => items.iter_mut().for_each(|v| walk(v, map, unknown)),
            Value::Object(fields) => {
                *fields = std::mem::take(fields)
                    .into_iter()
                    .map(|(name, mut item)| {
                        walk(&mut item, map, unknown);
                        let (name, missing) = restore_all(&name, map);
                        *unknown += missing;
                        (name, item)
                    })
                    .collect();
            }
            Value::Number(_) | Value::Bool(_) | Value::Null => {}
        }
    }
    let Ok(mut value) = serde_json::from_str::<Value>(arguments) else {
        return restore_all(arguments, map);
    };
    let mut unknown = 0;
    walk(&mut value, map, &mut unknown);
    match serde_json::to_string(&value) {
        Ok(restored) => (restored, unknown),
        Err(_) => restore_all(arguments, map),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guardrails::pii::PiiKind;

    #[test]
    fn arguments_are_restored_as_json_escaped_values() {
        let mut map = PlaceholderMap::default();
        let term = map.placeholder(PiiKind::Term, "Acme \"Blue\"");
        let email = map.placeholder(PiiKind::Email, "ana@example.com");
        let arguments = format!(
            r#"{{"q": "{term}", "to": "\u003c{}\u003e", "{email}": 1}}"#,
            &email[1..email.len() - 1]
        );
        let (restored, unknown) = restore_arguments(&arguments, &map);
        assert_eq!(unknown, 0);
        let parsed: serde_json::Value = serde_json::from_str(&restored).unwrap();
        assert_eq!(parsed["q"], "Acme \"Blue\"");
        assert_eq!(parsed["to"], "ana@example.com");
        assert_eq!(parsed["ana@example.com"], 1);
        // Not JSON: restored as text.
        assert_eq!(
            restore_arguments(&format!("to {email}"), &map),
            ("to ana@example.com".to_owned(), 0)
        );
    }
}
