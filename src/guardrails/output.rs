//! Streaming output filters: a tenant's deny list and answer PII redaction, each on a sliding window so
//! the answer keeps streaming (no whole-answer buffering).
//!
//! Bounds, in bytes of answer held back after a `push`:
//! - deny list alone: at most the longest term ([`MAX_TERM_LEN`] at worst), and only while the unreleased
//!   suffix is the start of some term, so ordinary text is released at once;
//! - PII redaction: [`PII_WINDOW`] up to [`PII_WINDOW`] + [`PII_RELEASE_STEP`] − 1, plus the length of one
//!   finding that straddles the cut (the cut moves back to its start);
//! - both: the larger of the two, since one buffer serves both.
//!
//! A PII value longer than the window (a PEM block, a long key) can be released in two pieces before
//! the scanner ever sees it whole, and then it is **not** redacted. So can a value whose recognition
//! needs more than [`PII_WINDOW`] bytes of right context or [`LEFT_CONTEXT`] bytes of left context.

use std::collections::BTreeMap;
use std::sync::Arc;

use aho_corasick::{AhoCorasick, Input, MatchKind};

use super::mask::redact;
use super::pii::{Finding, PiiKind, PiiScanner};

/// Bytes of answer that PII redaction keeps unreleased, so a value arriving over several deltas is
/// scanned whole before any of it is released.
pub const PII_WINDOW: usize = 256;

/// PII redaction releases only once this many bytes beyond the window have arrived: every release
/// rescans the window, and token-sized deltas would otherwise rescan it once per token.
pub const PII_RELEASE_STEP: usize = 64;

/// Released answer text kept (raw) in front of the window as left context for the scanner (a card
/// word before a bare number) and for the deny list's word-boundary check.
pub const LEFT_CONTEXT: usize = 64;

/// Longest deny-list term accepted; it bounds the deny list's hold-back.
pub const MAX_TERM_LEN: usize = 128;

/// A tenant's deny list: ASCII-case-insensitive terms, leftmost-longest, matched at word boundaries
/// (aho-corasick).
///
/// A boundary is required only at an edge where the term has a word character (letter, digit or `_`,
/// Unicode-aware): `bomb` matches in `a bomb.` and `BOMB!` but not in `bombay`, `bombs` or `abomb`
/// (list plurals as terms of their own), while `$$$` matches anywhere. Letters outside ASCII match
/// only in the case written, and no Unicode normalisation is applied (`b\u{200B}omb` is not `bomb`).
///
/// A match is acted on once no other term could still match at or before its start, so the choice
/// (leftmost, then longest) does not depend on how the answer was split into deltas; the wait is
/// bounded by the longest term, and nothing from the undecided start on is released meanwhile.
#[derive(Debug, Clone)]
pub struct DenyList {
    matcher: AhoCorasick,
    /// ASCII-lowercased terms, sorted: the terms starting with some text are a contiguous run.
    sorted: Vec<Vec<u8>>,
    /// Whether some term starts with this (ASCII-lowercased) byte: a quick reject for the hold check.
    first_bytes: [bool; 256],
    /// Per term (by index): whether its first and its last character are word characters.
    word_edges: Vec<(bool, bool)>,
    max_len: usize,
}

impl DenyList {
    /// Builds the matcher. Terms are trimmed; an empty term or one longer than [`MAX_TERM_LEN`]
    /// bytes is an error naming its index. `term_index` in [`Step::Cut`] is the index in `terms`.
    pub fn new(terms: &[String]) -> Result<DenyList, String> {
        let mut patterns = Vec::with_capacity(terms.len());
        let mut first_bytes = [false; 256];
        let mut word_edges = Vec::with_capacity(terms.len());
        for (i, term) in terms.iter().enumerate() {
            let term = term.trim();
            let (Some(first), Some(last)) = (term.chars().next(), term.chars().next_back()) else {
                return Err(format!("deny-list term {i} is empty"));
            };
            if term.len() > MAX_TERM_LEN {
                return Err(format!(
                    "deny-list term {i} is longer than {MAX_TERM_LEN} bytes"
                ));
            }
            let mut lead = [0; 4];
            first.encode_utf8(&mut lead);
            first_bytes[usize::from(lead[0].to_ascii_lowercase())] = true;
            word_edges.push((is_word(first), is_word(last)));
            patterns.push(term);
        }
        let matcher = AhoCorasick::builder()
            .ascii_case_insensitive(true)
            // Standard semantics, so every overlapping match is seen and the boundary check can pick
            // the leftmost-longest one that holds (`foo` in `foo barn` for terms `foo`, `foo bar`).
            .match_kind(MatchKind::Standard)
            .build(&patterns)
            .map_err(|e| format!("deny list: {e}"))?;
        let mut sorted: Vec<Vec<u8>> = patterns
            .iter()
            .map(|t| t.as_bytes().to_ascii_lowercase())
            .collect();
        sorted.sort_unstable();
        let max_len = patterns.iter().map(|t| t.len()).max().unwrap_or(0);
        Ok(DenyList {
            matcher,
            sorted,
            first_bytes,
            word_edges,
            max_len,
        })
    }

    /// Whether the list has no terms.
    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }

    /// The leftmost (then longest) match starting at or after `from` whose boundaries are known to
    /// hold: `(start, term index)`. A match ending at the end of `text` is decided only `at_end`.
    fn first_match(&self, text: &str, from: usize, at_end: bool) -> Option<(usize, usize)> {
        let mut best: Option<(usize, usize, usize)> = None; // (start, end, term)
        for m in self
            .matcher
            .find_overlapping_iter(Input::new(text).span(from..text.len()))
        {
            let (start, end, term) = (m.start(), m.end(), m.pattern().as_usize());
            let better = best.is_none_or(|(s, e, _)| start < s || (start == s && end > e));
            if better && self.boundaries_hold(text, term, start, end, at_end) {
                best = Some((start, end, term));
            }
        }
        best.map(|(start, _, term)| (start, term))
    }

    fn boundaries_hold(
        &self,
        text: &str,
        term: usize,
        start: usize,
        end: usize,
        at_end: bool,
    ) -> bool {
        let Some(&(word_first, word_last)) = self.word_edges.get(term) else {
            return false;
        };
        if word_first
            && text
                .get(..start)
                .and_then(|b| b.chars().next_back())
                .is_some_and(is_word)
        {
            return false;
        }
        if word_last {
            return match text.get(end..).and_then(|a| a.chars().next()) {
                Some(c) => !is_word(c),
                None => at_end,
            };
        }
        true
    }

    /// The first position at or after `from` where a match could still start: the suffix from there
    /// is (case-insensitively) the start of some term, or a whole term whose end boundary is not yet
    /// known. `text.len()` when there is none.
    fn hold_from(&self, text: &str, from: usize) -> usize {
        let len = text.len();
        let mut p = len.saturating_sub(self.max_len).max(from);
        while p < len {
            if text.is_char_boundary(p) && self.could_start_at(text, p) {
                return p;
            }
            p += 1;
        }
        len
    }

    fn could_start_at(&self, text: &str, p: usize) -> bool {
        let tail = &text.as_bytes()[p..];
        let Some(&first) = tail.first() else {
            return false;
        };
        if !self.first_bytes[usize::from(first.to_ascii_lowercase())] {
            return false;
        }
        let starts_word = text
            .get(p..)
            .and_then(|t| t.chars().next())
            .is_some_and(is_word);
        if starts_word
            && text
                .get(..p)
                .and_then(|b| b.chars().next_back())
                .is_some_and(is_word)
        {
            return false;
        }
        let tail = tail.to_ascii_lowercase();
        let at = self
            .sorted
            .partition_point(|t| t.as_slice() < tail.as_slice());
        self.sorted.get(at).is_some_and(|t| t.starts_with(&tail))
    }
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// What the caller may do after feeding a delta.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send this text (possibly empty) and go on.
    Release(String),
    /// A deny-list term was found: send `text` (the answer up to, not including, the match) and end
    /// the stream. `term_index` is the term's index in the list given to [`DenyList::new`].
    Cut {
        /// The rest of the answer that may still be sent.
        text: String,
        /// Index of the term that matched.
        term_index: usize,
    },
}

/// One answer's pass through the output filters, delta by delta.
///
/// The deny list runs on the answer as written, before PII redaction. After a [`Step::Cut`] every
/// further `push` or `finish` returns an empty release.
pub struct OutputFilter {
    deny: Option<Arc<DenyList>>,
    pii: Option<Arc<PiiScanner>>,
    /// Released context (`text[..start]`, raw, at most about [`LEFT_CONTEXT`] bytes), then the
    /// unreleased answer.
    text: String,
    start: usize,
    /// No deny-list match can start before this index: positions before it were decided by an
    /// earlier step, so each step searches only the undecided tail, not the whole PII window.
    deny_from: usize,
    redacted: BTreeMap<PiiKind, u32>,
    cut: bool,
}

impl OutputFilter {
    /// A pass with the given filters; an empty deny list counts as none.
    pub fn new(deny: Option<Arc<DenyList>>, redact_pii: Option<Arc<PiiScanner>>) -> Self {
        Self {
            deny: deny.filter(|d| !d.is_empty()),
            pii: redact_pii,
            text: String::new(),
            start: 0,
            deny_from: 0,
            redacted: BTreeMap::new(),
            cut: false,
        }
    }

    /// Feed a delta; returns what may be released now. `Step::Cut` means a deny-list term was found:
    /// `text` is the answer up to (not including) the match and the stream must end.
    pub fn push(&mut self, delta: &str) -> Step {
        if self.cut {
            return Step::Release(String::new());
        }
        self.text.push_str(delta);
        self.step(false)
    }

    /// Flushes the held tail at the end of the answer, still filtered (a term at the very end cuts).
    pub fn finish(&mut self) -> Step {
        if self.cut {
            return Step::Release(String::new());
        }
        self.step(true)
    }

    /// Drops the held tail and context on an upstream restart. Redaction counts are kept: that text
    /// was released.
    pub fn reset(&mut self) {
        self.text.clear();
        self.start = 0;
        self.deny_from = 0;
        self.cut = false;
    }

    /// Counts of answer PII redacted so far, per kind.
    pub fn redacted(&self) -> Vec<(PiiKind, u32)> {
        self.redacted.iter().map(|(&k, &n)| (k, n)).collect()
    }

    fn step(&mut self, at_end: bool) -> Step {
        let len = self.text.len();
        let from = self.deny_from.max(self.start);
        let deny_hold = match &self.deny {
            Some(deny) if !at_end => deny.hold_from(&self.text, from),
            _ => len,
        };
        self.deny_from = deny_hold;
        if let Some(deny) = &self.deny {
            // Cut only once no undecided match starts at or before this one (leftmost-longest);
            // until then nothing from `deny_hold` on is released, so waiting leaks nothing.
            if let Some((start, term_index)) = deny.first_match(&self.text, from, at_end)
                && deny_hold > start
            {
                let text = self.release(start, true);
                self.cut = true;
                return Step::Cut { text, term_index };
            }
        }
        let pii_cut = match self.pii {
            Some(_) if !at_end => {
                if len - self.start >= PII_WINDOW + PII_RELEASE_STEP {
                    self.text.floor_char_boundary(len - PII_WINDOW)
                } else {
                    self.start
                }
            }
            _ => len,
        };
        Step::Release(self.release(deny_hold.min(pii_cut), false))
    }

    /// Releases `text[start..cut]`, PII redacted. At a deny-list cut (`clip`) a finding straddling the
    /// cut is redacted up to it; otherwise the cut moves back to the finding's start.
    fn release(&mut self, cut: usize, clip: bool) -> String {
        if cut <= self.start {
            return String::new();
        }
        let mut cut = cut;
        let released = match &self.pii {
            None => self
                .text
                .get(self.start..cut)
                .map(str::to_owned)
                .unwrap_or_default(),
            Some(scanner) => {
                let findings = scanner.scan(&self.text, None);
                if !clip && let Some(f) = findings.iter().find(|f| f.start < cut && cut < f.end) {
                    cut = f.start.max(self.start);
                }
                // A finding reaching back into released context was missed before; what is left of
                // it is redacted.
                let local: Vec<Finding> = findings
                    .iter()
                    .filter(|f| f.start.max(self.start) < f.end.min(cut))
                    .map(|f| Finding {
                        kind: f.kind,
                        start: f.start.max(self.start) - self.start,
                        end: f.end.min(cut) - self.start,
                    })
                    .collect();
                for f in &local {
                    let n = self.redacted.entry(f.kind).or_insert(0);
                    *n = n.saturating_add(1);
                }
                self.text
                    .get(self.start..cut)
                    .map(|w| redact(w, &local))
                    .unwrap_or_default()
            }
        };
        self.start = cut;
        if self.start > LEFT_CONTEXT {
            let drop = self.text.floor_char_boundary(self.start - LEFT_CONTEXT);
            self.text.drain(..drop);
            self.start -= drop;
            self.deny_from = self.deny_from.saturating_sub(drop);
        }
        released
    }
}

#[cfg(test)]
mod tests;
