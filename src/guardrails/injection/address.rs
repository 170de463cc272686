//! Text addressed to an AI that reads a document: "note to the AI", "any LLM reading this",
//! "Assistant: …", "AI agents triaging this ticket should…", then an order. Part of the intent
//! rules in [`super::intent`], split out by concept.

use super::intent::{Hit, Rules};

/// Order verbs, checked as the first words after "…AI reader:" ("…: mark this as urgent").
const ORDER_VERBS: &[&str] = &[
    "mark",
    "move",
    "set",
    "rank",
    "score",
    "rate",
    "write",
    "describe",
    "say",
    "state",
    "tell",
    "inform",
    "report",
    "update",
    "change",
    "delete",
    "remove",
    "merge",
    "approve",
    "accept",
    "add",
    "create",
    "close",
    "drop",
    "omit",
    "leave",
    "run",
    "call",
    "send",
    "forward",
    "share",
    "grant",
    "transfer",
    "recommend",
    "refund",
    "also",
    "always",
    "do",
    "don't",
    "never",
    "using",
    "ignore",
    "include",
    "reply",
    "respond",
    "answer",
    "summarise",
    "summarize",
    "give",
    "make",
];

/// Words that, just before an AI word, make it the addressee: "for any AI…", "to the bot…".
const TOWARDS: &[&str] = &["for", "to", "when", "if", "whichever"];
use super::lexicon::{ADDRESS, IMPERATIVE, MODEL, PRIOR, READER, SECOND, YOU};

impl Rules<'_> {
    /// An AI reader addressed ("note to the AI", "any LLM reading this", "Assistant:", "AI agents
    /// triaging this ticket should…") followed by an order within twelve words.
    pub(super) fn addressed_order(&self) -> f32 {
        let mut best = 0.0_f32;
        for model in self
            .hits
            .iter()
            .filter(|h| h.is(MODEL) && !self.job_title(h))
        {
            let prefixed = self
                .hits
                .iter()
                .any(|h| h.is(ADDRESS) && h.end <= model.start && h.tok + 3 >= model.tok)
                || self.norm[..model.start]
                    .split(' ')
                    .rev()
                    .skip(1)
                    .take(3)
                    .any(|w| TOWARDS.contains(&w.trim_start_matches(['[', '('])));
            let reading = self
                .hits
                .iter()
                .any(|h| h.is(READER) && h.start >= model.end && h.tok <= model.tok + 3);
            let acting = self.participle_after(model);
            let vocative = self.vocative(model);
            if !(prefixed || reading || acting || vocative) {
                continue;
            }
            let ordered = self.after_colon(model)
                || self
                    .hits
                    .iter()
                    .any(|h| h.is(IMPERATIVE) && h.start >= model.end && h.tok <= model.tok + 12);
            // "for the model release checklist: update…", "support agents handling refunds
            // should…": a bare "model" or "agent" needs a reader clause ("reading this").
            let weak = self.weak_model(model) && !reading;
            let w = match (ordered, weak) {
                (true, false) => 0.6,
                (true, true) | (false, false) => 0.3,
                (false, true) => 0.0,
            };
            best = best.max(w);
        }
        best
    }

    /// "model"/"models"/"automated" with no AI word right before: too common in ordinary text to
    /// count as an address with only "for the …:" around it.
    fn weak_model(&self, model: &Hit) -> bool {
        let word = self.norm[model.start..model.end].trim();
        matches!(word, "model" | "models" | "automated" | "agent" | "agents")
            && !self
                .hits
                .iter()
                .any(|h| h.is(MODEL) && h.end <= model.start && h.tok + 2 >= model.tok)
    }

    /// One of the two words after `model` is a present participle: "assistants editing this",
    /// "AI coding agents working on…", "the bot writing these notes".
    fn participle_after(&self, model: &Hit) -> bool {
        let rest = self.norm.get(model.end..).unwrap_or("");
        rest.split(' ')
            .skip(1)
            .take(3)
            .map(|w| w.trim_end_matches([',', ':', '.']))
            .take_while(|w| !w.is_empty())
            .any(|w| {
                w.len() > 5
                    && w.ends_with("ing")
                    && !matches!(
                        w,
                        "nothing"
                            | "something"
                            | "anything"
                            | "everything"
                            | "morning"
                            | "evening"
                            | "pricing"
                            | "training"
                            | "meeting"
                            | "during"
                            | "building"
                            | "setting"
                            | "settings"
                            | "string"
                            | "booking"
                            | "billing"
                            | "funding"
                            | "testing"
                            | "thinking"
                            | "learning"
                            | "modeling"
                            | "modelling"
                    )
            })
    }

    /// A colon within ten words after `model` in the same sentence, and an order verb among the three words after it.
    fn after_colon(&self, model: &Hit) -> bool {
        let rest = self.norm.get(model.end..).unwrap_or("");
        let Some(colon) = rest.find(':') else {
            return false;
        };
        let gap = &rest[..colon];
        gap.split(' ').count() <= 10
            && !gap.contains(". ")
            && !gap.contains("? ")
            && !gap.contains("! ")
            && rest[colon + 1..]
                .split(' ')
                .filter(|w| !w.is_empty())
                .take(3)
                .any(|w| ORDER_VERBS.contains(&w.trim_end_matches([',', '.'])))
    }

    /// "assistant manager", "agent services": a person's title, not an AI.
    fn job_title(&self, model: &Hit) -> bool {
        let next = self.norm[model.end..].split(' ').nth(1).unwrap_or("");
        let next = next.trim_end_matches([',', '.', ':']);
        matches!(
            next,
            "manager"
                | "managers"
                | "director"
                | "professor"
                | "editor"
                | "coach"
                | "teacher"
                | "principal"
                | "secretary"
                | "engineer"
                | "to"
        )
    }

    /// "Assistant: …" or "AI, …" opening a sentence.
    fn vocative(&self, model: &Hit) -> bool {
        let opens_at = |start: usize| {
            start == 0
                || self.norm[..start]
                    .trim_end()
                    .ends_with(['.', '!', '?', ':', '-', '>', '(', '['])
        };
        // "LLM summarizers:", "AI agents:": the first of two AI words may open the sentence.
        let opens = opens_at(model.start)
            || self
                .hits
                .iter()
                .any(|h| h.is(MODEL) && h.tok + 1 == model.tok && opens_at(h.start))
            || self
                .hits
                .iter()
                .any(|h| h.is(ADDRESS | PRIOR) && h.end <= model.start && h.tok + 1 == model.tok);
        // "AI, ML and data teams should…" lists nouns; "Assistant, insert … your answer" talks to one.
        let to_you = |h: &Hit| h.is(SECOND | YOU) && h.start > model.end && h.sent == model.sent;
        // "LLM reviewers:", "AI readers:": an AI word, then one agent noun, then a colon.
        let role_noun = self.norm[model.end..]
            .strip_prefix(' ')
            .and_then(|r| r.split(' ').next())
            .and_then(|w| w.strip_suffix(':'))
            .is_some_and(|w| {
                w.len() > 4 && ["er", "ers", "or", "ors"].iter().any(|e| w.ends_with(e))
            });
        match self.norm.as_bytes().get(model.end) {
            Some(b':') => opens,
            Some(b' ') if role_noun => opens,
            Some(b',') => opens && self.hits.iter().any(to_you),
            _ => false,
        }
    }
}
