//! The decisions the guardrails took about one turn: kept in the turn's state
//! (every model call and attempt of the turn adds to the same list), counted
//! in `agentd_guardrail_decisions_total` as they are taken, and reported on
//! `completed.guardrails` and the turn's span. A decision names what was
//! found, what was done and where, never the matched text.

use std::collections::HashSet;

use crate::llm::TurnContext;
use crate::telemetry::guardrails::GuardrailMetrics;

/// Where a guardrail found something.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Place {
    /// The user's message of this turn.
    Message,
    /// An earlier message of the session, or this turn's earlier model replies.
    History,
    /// A passage retrieved from the knowledge base.
    Passage,
    /// The result of another tool.
    ToolResult,
    /// The model's answer.
    Answer,
}

impl Place {
    /// The name in metrics and spans.
    pub fn as_str(self) -> &'static str {
        match self {
            Place::Message => "message",
            Place::History => "history",
            Place::Passage => "passage",
            Place::ToolResult => "tool_result",
            Place::Answer => "answer",
        }
    }
}

/// What a guardrail did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// Recorded only.
    Flag,
    /// Replaced by a placeholder and restored on the way back.
    Mask,
    /// Replaced by its type for good.
    Redact,
    /// The turn refused, or the answer withheld or cut.
    Block,
    /// The passage, tool result or history message removed.
    Strip,
}

impl Action {
    /// The name in metrics and spans.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Flag => "flag",
            Action::Mask => "mask",
            Action::Redact => "redact",
            Action::Block => "block",
            Action::Strip => "strip",
        }
    }
}

/// One decision about a turn.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// What was found: a PII type (`EMAIL`), `PROMPT_INJECTION`, `DENY_LIST`,
    /// `WEBHOOK` or `UNKNOWN_PLACEHOLDER`.
    pub kind: &'static str,
    /// What was done.
    pub action: Action,
    /// Where.
    pub place: Place,
    /// The highest score among the occurrences, in [0, 1].
    pub score: f32,
    /// How many occurrences.
    pub count: u32,
    /// The injection category or the webhook's name; empty otherwise.
    pub detail: String,
}

/// The turn's decisions: one entry per (kind, action, place, detail), and the
/// occurrences already counted, so that a text seen again by a later model
/// call of the turn (history is sent on every call) counts once.
#[derive(Clone, Debug, Default)]
pub struct TurnDecisions {
    decisions: Vec<Decision>,
    seen: HashSet<(u128, &'static str, Action)>,
}

/// One decision to record.
#[derive(Clone, Debug)]
pub struct Record<'a> {
    /// What was found.
    pub kind: &'static str,
    /// What was done.
    pub action: Action,
    /// Where.
    pub place: Place,
    /// The score, in [0, 1].
    pub score: f32,
    /// The injection category or webhook name.
    pub detail: &'a str,
    /// What identifies the occurrence across the turn's calls (a digest of
    /// the text it was found in and of the value); `None`: always counts.
    pub occurrence: Option<u128>,
}

impl TurnDecisions {
    /// Records `record` on `turn` and counts it in `metrics`, unless the same
    /// occurrence was recorded before.
    pub fn record(turn: &TurnContext, metrics: &GuardrailMetrics, record: Record<'_>) {
        let counted = turn.with_state(|state| {
            let decisions = state.get_or_insert_default::<TurnDecisions>();
            decisions.add(&record)
        });
        if counted {
            metrics.decision(record.kind, record.action.as_str(), record.place.as_str());
        }
    }

    /// The decisions taken about `turn` so far, in the order first taken.
    pub fn of(turn: &TurnContext) -> Vec<Decision> {
        turn.with_state(|state| {
            state
                .get::<TurnDecisions>()
                .map(|decisions| decisions.decisions.clone())
                .unwrap_or_default()
        })
    }

    /// Adds `record`; false when its occurrence was seen before.
    fn add(&mut self, record: &Record<'_>) -> bool {
        if let Some(occurrence) = record.occurrence
            && !self.seen.insert((occurrence, record.kind, record.action))
        {
            return false;
        }
        match self.decisions.iter_mut().find(|d| {
            d.kind == record.kind
                && d.action == record.action
                && d.place == record.place
                && d.detail == record.detail
        }) {
            Some(decision) => {
                decision.count += 1;
                decision.score = decision.score.max(record.score);
            }
            None => self.decisions.push(Decision {
                kind: record.kind,
                action: record.action,
                place: record.place,
                score: record.score,
                count: 1,
                detail: record.detail.to_owned(),
            }),
        }
        true
    }
}

/// The decisions as one span attribute: `kind:action:place` (and `:detail`)
/// per decision, comma-separated, e.g. `EMAIL:mask:message,PROMPT_INJECTION:strip:passage:override`.
pub fn span_value(decisions: &[Decision]) -> String {
    decisions
        .iter()
        .map(|d| {
            let mut item = format!("{}:{}:{}", d.kind, d.action.as_str(), d.place.as_str());
            if !d.detail.is_empty() {
                item.push(':');
                item.push_str(&d.detail);
            }
            item
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Clock;
    use crate::llm::CallContext;

    fn record(kind: &'static str, place: Place, occurrence: Option<u128>) -> Record<'static> {
        Record {
            kind,
            action: Action::Mask,
            place,
            score: 1.0,
            detail: "",
            occurrence,
        }
    }

    #[test]
    fn an_occurrence_seen_again_counts_once_and_kinds_merge_by_place() {
        let call = CallContext::detached(Clock::system());
        let metrics = GuardrailMetrics::default();
        TurnDecisions::record(
            &call.turn,
            &metrics,
            record("EMAIL", Place::Message, Some(1)),
        );
        TurnDecisions::record(
            &call.turn,
            &metrics,
            record("EMAIL", Place::Message, Some(1)),
        );
        TurnDecisions::record(
            &call.turn,
            &metrics,
            record("EMAIL", Place::Message, Some(2)),
        );
        TurnDecisions::record(&call.turn, &metrics, record("EMAIL", Place::History, None));
        let decisions = TurnDecisions::of(&call.turn);
        assert_eq!(decisions.len(), 2, "{decisions:?}");
        assert_eq!(
            (decisions[0].place, decisions[0].count),
            (Place::Message, 2)
        );
        assert_eq!(
            (decisions[1].place, decisions[1].count),
            (Place::History, 1)
        );
        assert_eq!(
            span_value(&decisions),
            "EMAIL:mask:message,EMAIL:mask:history"
        );
    }
}
