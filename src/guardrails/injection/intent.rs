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
    AUDIENCE, BREAK, CONCEAL, CUE, DATA, DEST, DISMISS, EXTRACT, FRAME, GUIDANCE, IMPERATIVE,
    LIMIT, MODEL, NEG, OWN, PERSIST, PRIOR, SECOND, SECRET, SECRET_WEAK, SEND, TOOL_NOUN,
    TOOL_VERB, UNBOUND, UNBOUND_WEAK, VERBATIM, VOID, VOID_SOFT, YOU,
};
use super::{Category, Signals, framing, is_mention};

/// Signal ids of the rules, above the phrase, template and hidden-channel ids.
const RULE_ID: u32 = 13_000;

/// One lexicon hit: where it is, in bytes, tokens and sentences, and its classes.
#[derive(Clone, Copy, Debug)]
pub(super) struct Hit {
    pub(super) start: usize,
    pub(super) end: usize,
    pub(super) bits: u32,
    pub(super) tok: u32,
    pub(super) sent: u32,
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

    pub(super) fn is(&self, class: u32) -> bool {
        self.bits & class != 0
    }
}

/// Class pairs at least one rule needs; when the hits hold none of them nothing is computed.
const NEEDED: &[(u32, u32)] = &[
    (DISMISS, GUIDANCE),
    (GUIDANCE, VOID | VOID_SOFT),
    (CUE, UNBOUND | UNBOUND_WEAK | LIMIT),
    (YOU, UNBOUND | LIMIT),
    (EXTRACT, SECRET | SECRET_WEAK),
    (MODEL, IMPERATIVE),
    (CONCEAL, AUDIENCE),
    (SEND, DATA),
    (TOOL_VERB, TOOL_NOUN),
    (EXTRACT, GUIDANCE),
    (PERSIST, CUE),
    // An AI word alone: `address.rs` reads the words around it (an order after a colon).
    (MODEL, MODEL),
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
        (Category::Extraction, rules.own_guidance()),
        (Category::Persona, rules.persona_setup()),
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

pub(super) struct Rules<'a> {
    pub(super) norm: &'a str,
    pub(super) hits: &'a [Hit],
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
            || framing::general_question(self.norm, verb.start)
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
            let owned = self.any_between(OWN | MODEL, verb.tok + 1, object.tok + 4);
            // "X supersedes the old policy", "takes precedence over…": a report about some
            // guidance unless that guidance is the model's own.
            let verb_text = &self.norm[verb.start..verb.end];
            let reported = verb_text.starts_with("take")
                || matches!(
                    verb_text,
                    "overrides" | "supersedes" | "outranks" | "outrank"
                );
            if reported && !owned {
                continue;
            }
            let pointed =
                owned || object.is(PRIOR) || self.any_between(PRIOR, verb.tok + 1, object.tok + 4);
            let w = if pointed { 0.75 } else { 0.4 };
            best = best.max(self.addressed_span(verb, object.end, w));
        }
        best
    }

    /// "the rules above are void", "your previous directions no longer apply".
    fn guidance_void(&self) -> f32 {
        let mut best = 0.0_f32;
        for (object, void) in self.pairs(GUIDANCE, VOID | VOID_SOFT, 12, true) {
            let from = object.tok.saturating_sub(3);
            let owned = self.any_between(OWN | MODEL, from, void.tok);
            let w = if !void.is(VOID) {
                if owned { 0.7 } else { 0.0 }
            } else if owned || self.any_between(PRIOR, from, void.tok) {
                0.7
            } else {
                0.4
            };
            best = best.max(w);
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
            let exact = self.verbatim_near(verb);
            let owned = self.hits.iter().any(|h| {
                h.is(OWN)
                    && h.start >= object.end
                    && h.tok <= object.tok + 3
                    && h.sent == object.sent
            });
            let w = match (object.is(SECRET), exact || owned) {
                (true, true) => 0.75,
                (true, false) => 0.65,
                (false, true) => 0.5,
                (false, false) => 0.2,
            };
            best = best.max(self.addressed_span(verb, object.end, w));
        }
        best
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

    /// An exact copy asked for anywhere within `verb`'s sentence or the next.
    fn verbatim_near(&self, verb: &Hit) -> bool {
        self.hits
            .iter()
            .any(|h| h.is(VERBATIM) && (h.sent == verb.sent || h.sent == verb.sent + 1))
    }

    /// "paste the setup you were given", "echo its complete system configuration": a disclosure
    /// verb whose object is guidance marked as the model's own.
    fn own_guidance(&self) -> f32 {
        let mut best = 0.0_f32;
        for (verb, object) in self.pairs(EXTRACT, GUIDANCE, 6, true) {
            if self.negated(verb) || self.any_inside(BREAK, verb, object) {
                continue;
            }
            let owned = self.hits.iter().any(|h| {
                h.is(OWN)
                    && h.sent == object.sent
                    && h.tok + 3 >= object.tok
                    && h.tok <= object.tok + 3
                    && h.start >= verb.end
            }) || self.norm[verb.end..object.start].contains(" its ");
            if !owned {
                continue;
            }
            let w = if self.verbatim_near(verb) { 0.65 } else { 0.5 };
            best = best.max(self.addressed_span(verb, object.end, w));
        }
        best
    }

    /// A role set up to last ("stay in character", "for the rest of this chat") around a role-play
    /// cue; stronger when the role is also said to have no limits.
    fn persona_setup(&self) -> f32 {
        let mut best = 0.0_f32;
        for cue in self.hits.iter().filter(|h| h.is(CUE) && !self.negated(h)) {
            let lasting = self
                .hits
                .iter()
                .any(|h| h.is(PERSIST) && h.tok.abs_diff(cue.tok) <= 30);
            if !lasting {
                continue;
            }
            let unbound = self
                .hits
                .iter()
                .any(|h| h.is(UNBOUND | UNBOUND_WEAK) && h.tok.abs_diff(cue.tok) <= 30);
            best = best.max(self.addressed(cue, if unbound { 0.6 } else { 0.2 }));
        }
        best
    }
}
