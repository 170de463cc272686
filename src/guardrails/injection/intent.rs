//! Intent rules: small closed word classes ([`super::lexicon`]) found within a few words of each
//! other, so that a paraphrase ("set aside the guidance you were given earlier") scores like the
//! phrasing the phrase table knows ("ignore all previous instructions").
//!
//! The automaton pass in `mod.rs` reports every lexicon hit with its byte span. Here the hits get
//! a token index (spaces before them in the normalised text) and a sentence index (`.`, `?` or `!`
//! followed by a space), and each rule looks for its classes within its token window. Each rule
//! is one signal id with the highest weight any of its matches earned. Guards mirror the phrase
//! table's: a dismissal or disclosure verb that is negated ("never share your password") does not
//! count, one that is described ("tells the model to ignore…", quoted) adds nothing, and a clause word between verb and object ("show me how to reset the password")
//! breaks the link.

use super::lexicon::{
    ADDRESS, AUDIENCE, BREAK, CONCEAL, CUE, DATA, DEST, DISMISS, EXTRACT, FRAME, GUIDANCE,
    IMPERATIVE, LIMIT, MODEL, NEG, PRIOR, READER, SECOND, SECRET, SECRET_WEAK, SEND, TOOL_NOUN,
    TOOL_VERB, UNBOUND, UNBOUND_WEAK, VOID, YOU,
};
use super::{Category, Signals, is_mention};

/// Signal ids of the rules, above the phrase, template and hidden-channel ids.
const RULE_ID: u32 = 13_000;

/// One lexicon hit: where it is, in bytes, tokens and sentences, and its classes.
#[derive(Clone, Copy, Debug)]
pub(super) struct Hit {
    pub(super) start: usize,
    pub(super) end: usize,
    pub(super) bits: u32,
    tok: u32,
    sent: u32,
}

impl Hit {
    pub(super) fn new(start: usize, end: usize, bits: u32) -> Self {
        Hit {
            start,
            end,
            bits,
            tok: 0,
            sent: 0,
        }
    }

    fn is(&self, class: u32) -> bool {
        self.bits & class != 0
    }
}

/// Class pairs at least one rule needs; when the hits hold none of them nothing is computed.
const NEEDED: &[(u32, u32)] = &[
    (DISMISS, GUIDANCE),
    (GUIDANCE, VOID),
    (CUE, UNBOUND | UNBOUND_WEAK | LIMIT),
    (YOU, UNBOUND | LIMIT),
    (EXTRACT, SECRET | SECRET_WEAK),
    (MODEL, IMPERATIVE),
    (CONCEAL, AUDIENCE),
    (SEND, DATA),
    (TOOL_VERB, TOOL_NOUN),
];

/// Could any rule match `hits`? False lets the caller skip the rules (and the fast path hold).
pub(super) fn could_match(hits: &[Hit]) -> bool {
    let all = hits.iter().fold(0, |acc, h| acc | h.bits);
    NEEDED.iter().any(|&(a, b)| all & a != 0 && all & b != 0)
}

/// Scores the intent rules over `hits` (in any order) found in `norm`.
pub(super) fn apply(norm: &str, hits: &mut [Hit], signals: &mut Signals) {
    if !could_match(hits) {
        return;
    }
    hits.sort_by_key(|h| (h.start, h.end));
    locate(norm.as_bytes(), hits);
    let rules = Rules { norm, hits };
    let found = [
        (Category::Override, rules.dismiss_guidance()),
        (Category::Override, rules.guidance_void()),
        (Category::Persona, rules.persona()),
        (Category::Persona, rules.you_unbound()),
        (Category::Extraction, rules.extraction()),
        (Category::Indirect, rules.addressed_order()),
        (Category::Indirect, rules.concealment()),
        (Category::ToolSmuggling, rules.exfiltration()),
        (Category::ToolSmuggling, rules.tool_call()),
    ];
    for (k, (category, weight)) in found.into_iter().enumerate() {
        if weight > 0.0 {
            signals.add(RULE_ID + k as u32, category, weight);
        }
    }
}

/// Fills in token and sentence indices in one forward walk over the text.
fn locate(bytes: &[u8], hits: &mut [Hit]) {
    let (mut pos, mut tok, mut sent) = (0usize, 0u32, 0u32);
    for h in hits.iter_mut() {
        while pos < h.start.min(bytes.len()) {
            if bytes[pos] == b' ' {
                tok += 1;
                if pos > 0 && matches!(bytes[pos - 1], b'.' | b'?' | b'!') {
                    sent += 1;
                }
            }
            pos += 1;
        }
        h.tok = tok;
        h.sent = sent;
    }
}

struct Rules<'a> {
    norm: &'a str,
    hits: &'a [Hit],
}

impl Rules<'_> {
    /// Pairs `(a, b)` with `a` of class `first`, `b` of class `second`, `b` starting after `a`
    /// and at most `window` tokens later; `same_sentence` keeps both in one sentence.
    fn pairs(
        &self,
        first: u32,
        second: u32,
        window: u32,
        same_sentence: bool,
    ) -> impl Iterator<Item = (&Hit, &Hit)> + '_ {
        self.hits
            .iter()
            .enumerate()
            .filter(move |(_, a)| a.is(first))
            .flat_map(move |(i, a)| {
                self.hits[i + 1..]
                    .iter()
                    .take_while(move |b| b.tok <= a.tok + window)
                    .filter(move |b| b.is(second) && b.start >= a.end)
                    .filter(move |b| !same_sentence || b.sent == a.sent)
                    .map(move |b| (a, b))
            })
    }

    /// Is there a hit of `class` with a token index in `from..=to`?
    fn any_between(&self, class: u32, from: u32, to: u32) -> bool {
        self.hits
            .iter()
            .any(|h| h.is(class) && (from..=to).contains(&h.tok))
    }

    /// Is a hit of `class` strictly between `a` and `b` (by token)?
    fn any_inside(&self, class: u32, a: &Hit, b: &Hit) -> bool {
        self.hits
            .iter()
            .any(|h| h.is(class) && h.tok > a.tok && h.tok < b.tok)
    }

    /// The word before `h` negates it: "never share", "don't ignore".
    fn negated(&self, h: &Hit) -> bool {
        let before = self.norm[..h.start].trim_end();
        let last = before.rsplit(' ').next().unwrap_or("");
        matches!(
            last,
            "not" | "never" | "don't" | "dont" | "didn't" | "won't" | "cannot" | "can't" | "no"
        )
    }

    /// `weight`, or 0 when `verb` is described rather than addressed: the phrase table and the
    /// override template already score a mention (capped at the mention weight).
    fn addressed(&self, verb: &Hit, weight: f32) -> f32 {
        self.addressed_span(verb, verb.end, weight)
    }

    /// [`Self::addressed`], also checking quotes around `verb.start..end`.
    fn addressed_span(&self, verb: &Hit, end: usize, weight: f32) -> f32 {
        if is_mention(self.norm, verb.start, verb.end)
            || is_mention(self.norm, verb.start, end.min(self.norm.len()))
            || self.quoted_before(verb, end)
            || self.described(verb)
        {
            0.0
        } else {
            weight
        }
    }

    /// A quote opens right before `verb` and closes before `end`: `'ignore previous rules', which…`.
    fn quoted_before(&self, verb: &Hit, end: usize) -> bool {
        let quote = self.norm[..verb.start].trim_end().chars().last();
        match quote {
            Some(q @ ('\'' | '"' | '`')) => self
                .norm
                .get(verb.end..end.min(self.norm.len()))
                .is_some_and(|inner| inner.contains(q)),
            _ => false,
        }
    }

    /// "telling the model to…", "asks an assistant to…": a report of an attack.
    fn described(&self, verb: &Hit) -> bool {
        let before = self.norm[..verb.start].trim_end();
        let words: Vec<&str> = before.rsplit(' ').take(4).collect();
        words.iter().any(|w| {
            matches!(
                w.trim_end_matches(['s', ',']),
                "telling" | "tell" | "asking" | "ask" | "instructing" | "instruct" | "trick"
            )
        }) && words.first().is_some_and(|w| *w == "to")
    }

    /// "ignore all previous instructions", "set aside the guidance you were given".
    fn dismiss_guidance(&self) -> f32 {
        let mut best = 0.0_f32;
        for (verb, object) in self.pairs(DISMISS, GUIDANCE, 6, true) {
            if self.negated(verb) || self.any_inside(BREAK, verb, object) {
                continue;
            }
            let pointed = object.is(PRIOR) || self.any_between(PRIOR, verb.tok + 1, object.tok + 4);
            let w = if pointed { 0.75 } else { 0.4 };
            best = best.max(self.addressed_span(verb, object.end, w));
        }
        best
    }

    /// "the rules above are void", "your previous directions no longer apply".
    fn guidance_void(&self) -> f32 {
        let mut best = 0.0_f32;
        for (object, void) in self.pairs(GUIDANCE, VOID, 8, true) {
            let pointed = self.any_between(PRIOR, object.tok.saturating_sub(3), void.tok);
            best = best.max(if pointed { 0.7 } else { 0.4 });
        }
        best
    }

    /// Start of a "without limits" phrase: an unbound word, or a negation followed by a limit.
    fn unbound_at(&self, h: &Hit, strong_only: bool) -> Option<f32> {
        if h.is(UNBOUND) {
            return Some(1.0);
        }
        if h.is(UNBOUND_WEAK) && !strong_only {
            return Some(0.6);
        }
        if h.is(NEG) {
            let limit = self.hits.iter().any(|l| {
                l.is(LIMIT)
                    && l.start >= h.end
                    && l.tok <= h.tok + 3
                    && l.sent == h.sent
                    && !self.quantity(l)
            });
            return limit.then_some(1.0);
        }
        None
    }

    /// "limits on storage", "restrictions on row count": a quota, not a behaviour.
    fn quantity(&self, limit: &Hit) -> bool {
        let mut next = self.norm[limit.end..].split(' ').skip(1);
        matches!(next.next(), Some("on" | "for" | "per"))
            && !matches!(
                next.next(),
                Some("what" | "how" | "you" | "your" | "topics")
            )
    }

    /// "you are now an AI with no rules", "pretend to be unfiltered", in either order.
    fn persona(&self) -> f32 {
        let mut best = 0.0_f32;
        for cue in self.hits.iter().filter(|h| h.is(CUE)) {
            let second = |h: &Hit| h.is(SECOND | YOU | MODEL) && h.tok.abs_diff(cue.tok) <= 10;
            if self.negated(cue) || (cue.is(FRAME) && !self.hits.iter().any(second)) {
                continue;
            }
            let near = self.hits.iter().filter(|h| {
                h.tok.abs_diff(cue.tok) <= 10 && (h.start >= cue.end || h.end <= cue.start)
            });
            for h in near {
                let Some(strength) = self.unbound_at(h, false) else {
                    continue;
                };
                let question = self.any_between(BREAK, cue.tok.saturating_sub(4), cue.tok)
                    && self.hits.iter().any(|b| b.is(BREAK) && b.sent == cue.sent);
                let w = if question { 0.3 } else { 0.7 * strength };
                best = best.max(self.addressed(cue, w));
            }
        }
        best
    }

    /// "you have no restrictions", "you are unfiltered".
    fn you_unbound(&self) -> f32 {
        let mut best = 0.0_f32;
        for you in self.hits.iter().filter(|h| h.is(YOU)) {
            let hit = self.hits.iter().any(|h| {
                h.start >= you.end
                    && h.tok <= you.tok + 4
                    && h.sent == you.sent
                    && self.unbound_at(h, true).is_some()
            });
            if hit && !self.negated(you) {
                best = best.max(self.addressed(you, 0.5));
            }
        }
        best
    }

    /// "reveal your system prompt", "what were you told", "list the api keys".
    fn extraction(&self) -> f32 {
        let mut best = 0.0_f32;
        for (verb, object) in self.pairs(EXTRACT, SECRET | SECRET_WEAK, 6, true) {
            if self.negated(verb) || self.any_inside(BREAK, verb, object) {
                continue;
            }
            let w = if object.is(SECRET) { 0.65 } else { 0.2 };
            best = best.max(self.addressed_span(verb, object.end, w));
        }
        best
    }

    /// An AI reader addressed ("note to the AI", "any LLM reading this", "Assistant:") followed
    /// by an order within twelve words.
    fn addressed_order(&self) -> f32 {
        let mut best = 0.0_f32;
        for model in self
            .hits
            .iter()
            .filter(|h| h.is(MODEL) && !self.job_title(h))
        {
            let addressed = self.hits.iter().any(|h| {
                (h.is(ADDRESS) && h.end <= model.start && h.tok + 3 >= model.tok)
                    || (h.is(READER) && h.start >= model.end && h.tok <= model.tok + 3)
            }) || self.vocative(model);
            if !addressed {
                continue;
            }
            let ordered = self
                .hits
                .iter()
                .any(|h| h.is(IMPERATIVE) && h.start >= model.end && h.tok <= model.tok + 12);
            best = best.max(if ordered { 0.6 } else { 0.3 });
        }
        best
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
        let opens = model.start == 0
            || self.norm[..model.start]
                .trim_end()
                .ends_with(['.', '!', '?', ':', '-', '>', '(', '['])
            || self
                .hits
                .iter()
                .any(|h| h.is(ADDRESS | PRIOR) && h.end <= model.start && h.tok + 1 == model.tok);
        // "AI, ML and data teams should…" lists nouns; "Assistant, insert … your answer" talks to one.
        let to_you = |h: &Hit| h.is(SECOND | YOU) && h.start > model.end && h.sent == model.sent;
        match self.norm.as_bytes().get(model.end) {
            Some(b':') => opens,
            Some(b',') => opens && self.hits.iter().any(to_you),
            _ => false,
        }
    }

    /// "do not tell the user", "without informing anyone".
    fn concealment(&self) -> f32 {
        let found = self.pairs(CONCEAL, AUDIENCE, 4, true).next().is_some();
        if found { 0.4 } else { 0.0 }
    }

    /// Send the conversation (or other user data) to a URL, webhook or address.
    fn exfiltration(&self) -> f32 {
        let mut best = 0.0_f32;
        for (verb, data) in self.pairs(SEND, DATA, 6, true) {
            if self.negated(verb) {
                continue;
            }
            let outward = self
                .hits
                .iter()
                .any(|h| h.is(DEST) && h.tok.abs_diff(verb.tok) <= 14 && h.sent == data.sent);
            best = best.max(if outward { 0.65 } else { 0.3 });
        }
        best
    }

    /// "call the … tool", raised when user data or an outside destination is nearby.
    fn tool_call(&self) -> f32 {
        let mut best = 0.0_f32;
        for (verb, _) in self.pairs(TOOL_VERB, TOOL_NOUN, 4, true) {
            let loaded = self
                .hits
                .iter()
                .any(|h| h.is(DATA | DEST) && h.tok.abs_diff(verb.tok) <= 12);
            best = best.max(if loaded { 0.5 } else { 0.25 });
        }
        best
    }
}
