//! Prompt-injection detector: a score in 0..=1 for text entering the model's context.
//!
//! The text is normalised (NFKC, format characters stripped, confusable Cyrillic/Greek letters
//! folded to Latin, lowercase, whitespace collapsed, JSON `\n` escapes read as spaces), then one
//! Aho-Corasick pass over the phrase stems in [`phrases`] and a few templated regexes (verb ×
//! qualifier × object) yield signals. Variants are scanned too when the text calls for them: a
//! leetspeak fold (`1gn0r3`), a de-spaced copy (`i g n o r e`), and whatever [`hidden`] decodes
//! (tag characters, reversed bidi runs, HTML comments, base64 and hex blobs). Each distinct signal
//! `i` has a weight `wᵢ`; the score is `1 − Π(1 − wᵢ)`. The same pass also reports hits of the
//! closed word classes in [`lexicon`]; [`intent`] combines them by word distance ("a dismissal
//! verb within six words of the guidance it was given"), so paraphrases score without their exact
//! wording being in the phrase table.
//!
//! Fast path: for ASCII text normalisation is a lowercase copy with whitespace collapsed (NFKC and
//! the Unicode folds only run on non-ASCII text). One automaton pass over it finds the phrases and
//! the anchor words each template needs; text with none of these, no lexicon word, no long base64/hex run and no
//! leetspeak or spaced-letter tokens returns 0 without running any regex. Templates whose anchors
//! are absent never run.

mod address;
mod framing;
mod hidden;
mod intent;
mod lexicon;
mod normalise;
mod phrases;

#[cfg(test)]
mod corpus;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use regex::Regex;

use normalise::{BLOB_MIN, Features, despace, fold_leet, normalise};
use phrases::{OVERRIDE_TEMPLATE, PHRASES, RAW_TEMPLATES, TEMPLATES};

/// The default threshold at which a tenant's action applies.
pub const DEFAULT_THRESHOLD: f32 = 0.5;

/// The kind of injection a signal points to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Category {
    /// Replacing or cancelling the instructions the model was given.
    Override,
    /// Role-play jailbreaks: "you are now an AI without rules".
    Persona,
    /// Fake system, tool or chat-template markers and transcript turns.
    FakeRole,
    /// Asking for the system prompt, secrets or other users' data.
    Extraction,
    /// Text addressed to an AI that reads a document, page or email.
    Indirect,
    /// Tool calls or exfiltration smuggled into content.
    ToolSmuggling,
    /// Instructions hidden from a human reader or encoded.
    Hidden,
}

impl Category {
    /// Every category, in declaration order.
    pub const ALL: [Category; 7] = [
        Category::Override,
        Category::Persona,
        Category::FakeRole,
        Category::Extraction,
        Category::Indirect,
        Category::ToolSmuggling,
        Category::Hidden,
    ];

    /// The snake_case name used in metrics, config and decisions.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Override => "override",
            Category::Persona => "persona",
            Category::FakeRole => "fake_role",
            Category::Extraction => "extraction",
            Category::Indirect => "indirect",
            Category::ToolSmuggling => "tool_smuggling",
            Category::Hidden => "hidden",
        }
    }
}

/// The detector's verdict on one text.
#[derive(Clone, Debug, PartialEq)]
pub struct Score {
    /// `1 − Π(1 − wᵢ)` over the distinct signals found, in 0..=1.
    pub value: f32,
    /// The categories of those signals, distinct, strongest (highest combined weight) first.
    pub categories: Vec<Category>,
}

impl Score {
    /// The strongest category, if any signal was found.
    pub fn top(&self) -> Option<Category> {
        self.categories.first().copied()
    }

    fn none() -> Self {
        Score {
            value: 0.0,
            categories: Vec::new(),
        }
    }
}

/// One piece of evidence: a phrase, a template or a hidden-text channel, by a stable id.
#[derive(Clone, Copy, Debug)]
struct Signal {
    id: u32,
    category: Category,
    weight: f32,
}

/// The signals found so far; one entry per id, keeping the highest weight.
#[derive(Default)]
struct Signals(Vec<Signal>);

impl Signals {
    fn add(&mut self, id: u32, category: Category, weight: f32) {
        match self.0.iter_mut().find(|s| s.id == id) {
            Some(s) if weight > s.weight => {
                *s = Signal {
                    id,
                    category,
                    weight,
                }
            }
            Some(_) => {}
            None => self.0.push(Signal {
                id,
                category,
                weight,
            }),
        }
    }

    fn merge(&mut self, other: &Signals, boost: f32) {
        for s in &other.0 {
            self.add(s.id, s.category, (s.weight * boost).min(0.95));
        }
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn drop_category(&mut self, category: Category) {
        self.0.retain(|s| s.category != category);
    }

    fn into_score(self) -> Score {
        let mut keep = 1.0_f32;
        let mut per_category = [1.0_f32; 7];
        for s in &self.0 {
            let w = s.weight.clamp(0.0, 1.0);
            keep *= 1.0 - w;
            per_category[s.category as usize] *= 1.0 - w;
        }
        let mut categories: Vec<Category> = Category::ALL
            .into_iter()
            .filter(|c| per_category[*c as usize] < 1.0)
            .collect();
        // Lower "keep" means a stronger category; the sort is stable, so ties keep enum order.
        categories.sort_by(|a, b| per_category[*a as usize].total_cmp(&per_category[*b as usize]));
        Score {
            value: (1.0 - keep).clamp(0.0, 1.0),
            categories,
        }
    }
}

/// Signal ids: phrases use their index, templates and hidden channels sit above them.
const TEMPLATE_ID: u32 = 10_000;
const RAW_TEMPLATE_ID: u32 = 11_000;
const LEET_ID: u32 = 12_000;
const SPACED_ID: u32 = 12_001;

/// An Override match that is quoted or described ("telling the model to ignore…") rather than
/// addressed to the model is capped at this weight: below the threshold on its own.
const MENTION_WEIGHT: f32 = 0.45;

/// The prompt-injection detector: built once (automata and regexes), then shared.
pub struct InjectionDetector {
    /// Phrases (ids `0..PHRASES.len()`) and template anchors (ids above) in one automaton.
    automaton: AhoCorasick,
    /// For each anchor id above the phrases: the templates it gates (bit k = `TEMPLATES[k]`,
    /// bit 32 + k = `RAW_TEMPLATES[k]`).
    anchor_gates: Vec<u64>,
    /// Lexicon entries (ids after the anchors): classes, and whether the entry is a stem.
    words: Vec<(u32, bool)>,
    templates: Vec<Regex>,
    raw_templates: Vec<Regex>,
    html: hidden::HtmlPatterns,
}

impl std::fmt::Debug for InjectionDetector {
    // The automaton and regexes are large and say nothing useful; show the table sizes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InjectionDetector")
            .field("phrases", &PHRASES.len())
            .field("templates", &(TEMPLATES.len() + RAW_TEMPLATES.len()))
            .finish_non_exhaustive()
    }
}

impl Default for InjectionDetector {
    fn default() -> Self {
        Self::new()
    }
}

/// What one automaton pass over normalised text found.
struct Pass {
    /// `(phrase index, start, end)`, overlapping matches included.
    phrases: Vec<(usize, usize, usize)>,
    /// Templates whose anchors occur, as in `InjectionDetector::anchor_gates`.
    gates: u64,
    /// Lexicon hits for the intent rules.
    hits: Vec<intent::Hit>,
}

/// Bytes scored at once; longer texts are scored in windows of this size
/// plus [`OVERLAP`].
const WINDOW: usize = 4 * 1024;
/// Bytes each window shares with the next.
const OVERLAP: usize = 512;

impl InjectionDetector {
    /// Builds the automaton and regexes (tens of milliseconds; do it once).
    #[allow(clippy::expect_used)]
    pub fn new() -> Self {
        let mut anchors: Vec<(&str, u64)> = Vec::new();
        let gated = TEMPLATES
            .iter()
            .enumerate()
            .chain(RAW_TEMPLATES.iter().enumerate().map(|(k, t)| (32 + k, t)));
        for (bit, t) in gated {
            for a in t.anchors {
                match anchors.iter_mut().find(|(w, _)| w == a) {
                    Some((_, mask)) => *mask |= 1 << bit,
                    None => anchors.push((a, 1 << bit)),
                }
            }
        }
        let mut words: Vec<(&str, u32, bool)> = Vec::new();
        for &(entry, bits) in lexicon::LEXICON {
            let (word, stem) = match entry.strip_suffix('*') {
                Some(w) => (w, true),
                None => (entry, false),
            };
            match words.iter_mut().find(|(w, _, s)| *w == word && *s == stem) {
                Some((_, b, _)) => *b |= bits,
                None => words.push((word, bits, stem)),
            }
        }
        // A contiguous NFA: as fast as a DFA on 2 KB of text here (10 µs either
        // way), for about 4 MB less memory.
        let automaton = AhoCorasickBuilder::new()
            .kind(Some(AhoCorasickKind::ContiguousNFA))
            .match_kind(MatchKind::Standard)
            // Most patterns start with common letters, so a prefilter only adds work (~1 µs of 12).
            .prefilter(false)
            .build(
                PHRASES
                    .iter()
                    .map(|p| p.0)
                    .chain(anchors.iter().map(|a| a.0))
                    .chain(words.iter().map(|w| w.0)),
            )
            // Cannot fail: a fixed table of a few hundred short literals, far below any size limit.
            .expect("phrase automaton builds");
        let compile = |t: &phrases::Template| {
            // Cannot fail: fixed patterns, compiled by every test that builds a detector.
            Regex::new(t.pattern).expect("template regex compiles")
        };
        InjectionDetector {
            automaton,
            anchor_gates: anchors.into_iter().map(|a| a.1).collect(),
            words: words.into_iter().map(|(_, b, s)| (b, s)).collect(),
            templates: TEMPLATES.iter().map(compile).collect(),
            raw_templates: RAW_TEMPLATES.iter().map(compile).collect(),
            html: hidden::HtmlPatterns::new(),
        }
    }

    /// Scores `text`: 0 when nothing suspicious is found, ≥ [`DEFAULT_THRESHOLD`] for likely attacks.
    pub fn score(&self, text: &str) -> Score {
        if text.len() <= WINDOW + OVERLAP {
            return self.score_inner(text, true);
        }
        // Some rules pair every hit with every other, so a long text full of
        // trigger words would cost time quadratic in its length: long texts
        // are scored in overlapping windows, and the highest score wins. An
        // attack longer than the overlap that straddles two windows is scored
        // in pieces (each piece usually still reads as one).
        let mut best = Score {
            value: 0.0,
            categories: Vec::new(),
        };
        let mut start = 0;
        while start < text.len() {
            let mut end = (start + WINDOW + OVERLAP).min(text.len());
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            let window = self.score_inner(&text[start..end], true);
            if window.value > best.value {
                best = window;
            }
            if end == text.len() {
                break;
            }
            start += WINDOW;
            while !text.is_char_boundary(start) {
                start += 1;
            }
        }
        best
    }

    fn score_inner(&self, text: &str, fast_path: bool) -> Score {
        let features = Features::of(text);
        let norm = normalise(text);
        let pass = self.pass(&norm);
        // Fast path: no phrase, no template anchor, nothing to decode or fold.
        if fast_path
            && pass.phrases.is_empty()
            && pass.gates == 0
            && !intent::could_match(&pass.hits)
            && !features.needs_full_scan()
        {
            return Score::none();
        }
        let mut signals = Signals::default();
        self.scan_with(text, &norm, &pass, &features, &mut signals);
        hidden::scan(self, text, &features, &mut signals);
        if signals.0.iter().any(|s| s.category == Category::FakeRole)
            && framing::discusses_templates(&norm)
        {
            signals.drop_category(Category::FakeRole);
        }
        let score = signals.into_score();
        // A write-up that quotes a payload: what is left once the quotes are blanked decides.
        if score.value >= DEFAULT_THRESHOLD
            && framing::may_quote(text)
            && framing::discusses_attacks(&norm)
            && let Some(unquoted) = framing::blank_quotes(text)
            && self.score_inner(&unquoted, fast_path).value < DEFAULT_THRESHOLD
        {
            return Score {
                value: score.value.min(MENTION_WEIGHT),
                categories: score.categories,
            };
        }
        score
    }

    /// [`Self::score`] without the fast path, to check that the fast path never hides a signal.
    #[cfg(test)]
    fn score_without_fast_path(&self, text: &str) -> Score {
        self.score_inner(text, false)
    }

    /// Everything except the hidden-text channels: used for the text itself and for whatever the
    /// hidden channels decode (which is not decoded again, so there is no recursion).
    fn scan_plain(&self, text: &str, features: &Features, signals: &mut Signals) {
        let norm = normalise(text);
        let pass = self.pass(&norm);
        self.scan_with(text, &norm, &pass, features, signals);
    }

    fn scan_with(
        &self,
        text: &str,
        norm: &str,
        pass: &Pass,
        features: &Features,
        signals: &mut Signals,
    ) {
        self.apply(norm, pass, signals);
        self.scan_raw(text, pass.gates, signals);
        if features.leet_tokens >= 3
            && let Some(folded) = fold_leet(norm)
        {
            let before = signals.len();
            self.apply(&folded, &self.pass(&folded), signals);
            if signals.len() > before {
                signals.add(LEET_ID, Category::Hidden, 0.3);
            }
        }
        if features.spaced_run >= 4
            && let Some(joined) = despace(text)
        {
            let before = signals.len();
            let joined = normalise(&joined);
            self.apply(&joined, &self.pass(&joined), signals);
            if signals.len() > before {
                signals.add(SPACED_ID, Category::Hidden, 0.3);
            }
        }
    }

    fn pass(&self, norm: &str) -> Pass {
        let mut pass = Pass {
            phrases: Vec::new(),
            gates: 0,
            hits: Vec::new(),
        };
        let word_ids = PHRASES.len() + self.anchor_gates.len();
        let bytes = norm.as_bytes();
        for m in self.automaton.find_overlapping_iter(norm) {
            let id = m.pattern().as_usize();
            match PHRASES.get(id) {
                Some((phrase, _, _)) => {
                    let starts_word = phrase
                        .as_bytes()
                        .first()
                        .is_some_and(u8::is_ascii_alphanumeric);
                    if !(starts_word
                        && m.start() > 0
                        && bytes[m.start() - 1].is_ascii_alphanumeric())
                    {
                        pass.phrases.push((id, m.start(), m.end()));
                    }
                }
                None if id >= word_ids => {
                    let Some(&(bits, stem)) = self.words.get(id - word_ids) else {
                        continue;
                    };
                    let word_char = |i: usize| {
                        bytes
                            .get(i)
                            .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
                    };
                    let starts_ok =
                        !word_char(m.start()) || m.start() == 0 || !word_char(m.start() - 1);
                    let ends_ok = stem || !word_char(m.end() - 1) || !word_char(m.end());
                    if starts_ok && ends_ok {
                        pass.hits.push(intent::Hit::new(m.start(), m.end(), bits));
                    }
                }
                None => {
                    pass.gates |= self
                        .anchor_gates
                        .get(id - PHRASES.len())
                        .copied()
                        .unwrap_or(0)
                }
            }
        }
        pass
    }

    fn apply(&self, norm: &str, pass: &Pass, signals: &mut Signals) {
        if intent::could_match(&pass.hits) {
            intent::apply(norm, &mut pass.hits.clone(), signals);
        }
        // Spans where the override template matched as a mention: Override phrases inside them
        // are the same evidence and must not add up to more than the mention itself.
        let mut mentions: Vec<(usize, usize)> = Vec::new();
        for (k, (re, t)) in self.templates.iter().zip(TEMPLATES).enumerate() {
            if pass.gates & (1 << k) == 0 {
                continue;
            }
            let mut best = None::<f32>;
            for m in re.find_iter(norm) {
                if k == OVERRIDE_TEMPLATE && framing::general_question(norm, m.start()) {
                    mentions.push((m.start(), m.end()));
                    continue;
                }
                let w = if k == OVERRIDE_TEMPLATE && is_mention(norm, m.start(), m.end()) {
                    mentions.push((m.start(), m.end()));
                    MENTION_WEIGHT
                } else {
                    t.weight
                };
                best = Some(best.map_or(w, |b| b.max(w)));
            }
            if let Some(w) = best {
                signals.add(TEMPLATE_ID + k as u32, t.category, w);
            }
        }
        for &(id, start, end) in &pass.phrases {
            let (_, category, weight) = PHRASES[id];
            let weight = if !matches!(
                category,
                Category::Override | Category::Persona | Category::Extraction
            ) {
                weight
            } else if mentions.iter().any(|&(a, b)| a <= start && end <= b)
                || framing::general_question(norm, start)
            {
                continue;
            } else if is_mention(norm, start, end) {
                weight.min(MENTION_WEIGHT)
            } else {
                weight
            };
            signals.add(id as u32, category, weight);
        }
    }

    fn scan_raw(&self, text: &str, gates: u64, signals: &mut Signals) {
        for (k, (re, t)) in self.raw_templates.iter().zip(RAW_TEMPLATES).enumerate() {
            if gates & (1 << (32 + k)) == 0 {
                continue;
            }
            let id = RAW_TEMPLATE_ID + k as u32;
            if k == 0 {
                // Transcript roles: one role line is suspicious, two different roles a fake turn.
                let mut roles: Vec<String> = Vec::new();
                for c in re.captures_iter(text) {
                    let role = c.get(1).map_or("", |m| m.as_str()).to_ascii_lowercase();
                    if !roles.contains(&role) {
                        roles.push(role);
                    }
                }
                match roles.len() {
                    0 => {}
                    1 => signals.add(id, t.category, t.weight),
                    _ => signals.add(id, t.category, 0.7),
                }
            } else if re.is_match(text) {
                signals.add(id, t.category, t.weight);
            }
        }
    }
}

/// Is the match at `start..end` quoted (a quote right before it, the same quote right after), or
/// the object of "to" not addressed to "you" (a description of an attack, not an attack)?
fn is_mention(norm: &str, start: usize, end: usize) -> bool {
    let before = norm[..start].trim_end();
    if let Some(quote) = before
        .chars()
        .last()
        .filter(|c| matches!(c, '\'' | '"' | '`'))
    {
        let after = &norm[end..];
        let near = after
            .char_indices()
            .take_while(|(i, _)| *i <= 3)
            .any(|(_, c)| c == quote);
        if near {
            return true;
        }
    }
    let mut words = before.rsplit(' ');
    match words.next() {
        Some("to") => !matches!(words.next(), Some("you" | "u")),
        Some("how" | "whether" | "never") => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests;
