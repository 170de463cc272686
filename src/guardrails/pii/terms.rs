//! A tenant's own sensitive terms, matched with one Aho-Corasick automaton.

use aho_corasick::{AhoCorasick, MatchKind};

/// The longest term accepted, in bytes: a term is a name, not a paragraph.
const MAX_TERM_BYTES: usize = 200;

/// A tenant's list of sensitive terms (customer names, project code names), matched
/// ASCII-case-insensitively (non-ASCII letters must match exactly) at word boundaries,
/// leftmost-longest among the whole-word matches. Findings have kind [`super::PiiKind::Term`].
#[derive(Clone, Debug)]
pub struct Terms {
    /// `None` for an empty list, so scanning it costs nothing.
    automaton: Option<AhoCorasick>,
}

impl Terms {
    /// Builds the matcher. Each term is trimmed; the error names the first term that is
    /// empty or longer than 200 bytes.
    pub fn new(terms: &[String]) -> Result<Terms, String> {
        let mut cleaned = Vec::with_capacity(terms.len());
        for (i, term) in terms.iter().enumerate() {
            let t = term.trim();
            if t.is_empty() {
                return Err(format!("term #{} {term:?} is empty", i + 1));
            }
            if t.len() > MAX_TERM_BYTES {
                return Err(format!(
                    "term #{} {:?}… is {} bytes, over the {MAX_TERM_BYTES}-byte limit",
                    i + 1,
                    preview(t),
                    t.len()
                ));
            }
            cleaned.push(t);
        }
        if cleaned.is_empty() {
            return Ok(Terms { automaton: None });
        }
        let automaton = AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .build(&cleaned)
            .map_err(|e| format!("the term list cannot be compiled: {e}"))?;
        Ok(Terms {
            automaton: Some(automaton),
        })
    }

    /// Whether the list holds no terms.
    pub fn is_empty(&self) -> bool {
        self.automaton.is_none()
    }

    /// Byte ranges of the terms that stand as whole words, leftmost-longest among those,
    /// non-overlapping and in order.
    pub(super) fn find(&self, text: &str) -> Vec<(usize, usize)> {
        let Some(ac) = &self.automaton else {
            return Vec::new();
        };
        // Overlapping search, then leftmost-longest over the whole-word matches: a plain
        // leftmost-longest search would let `blue moonx` in "blue moonxy" (no word edge)
        // hide `blue`.
        let mut found: Vec<(usize, usize)> = ac
            .find_overlapping_iter(text)
            .map(|m| (m.start(), m.end()))
            .filter(|&(s, e)| is_word_edge(text, s, e))
            .collect();
        found.sort_by_key(|&(s, e)| (s, std::cmp::Reverse(e)));
        let mut out: Vec<(usize, usize)> = Vec::with_capacity(found.len());
        for (s, e) in found {
            if out.last().is_none_or(|&(_, last_end)| s >= last_end) {
                out.push((s, e));
            }
        }
        out
    }
}

/// The first 40 bytes of a term, cut on a character boundary.
fn preview(t: &str) -> &str {
    let mut end = t.len().min(40);
    while !t.is_char_boundary(end) {
        end -= 1;
    }
    &t[..end]
}

/// No letter, digit or `_` on either side (Unicode-aware, so `Müllerin` does not match `Müller`).
fn is_word_edge(text: &str, start: usize, end: usize) -> bool {
    let word = |c: char| c.is_alphanumeric() || c == '_';
    let before = text[..start].chars().next_back();
    let after = text[end..].chars().next();
    !before.is_some_and(word) && !after.is_some_and(word)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(list: &[&str]) -> Terms {
        Terms::new(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn rejects_empty_and_overlong_terms_by_name() {
        let err = Terms::new(&["ok".into(), "  ".into()]).unwrap_err();
        assert!(err.contains("#2"), "{err}");
        let long = "x".repeat(201);
        let err = Terms::new(&[long]).unwrap_err();
        assert!(err.contains("201 bytes"), "{err}");
        assert!(Terms::new(&["y".repeat(200)]).is_ok());
    }

    #[test]
    fn empty_list_is_empty_and_finds_nothing() {
        let t = Terms::new(&[]).unwrap();
        assert!(t.is_empty());
        assert!(t.find("anything").is_empty());
    }

    #[test]
    fn whole_words_ascii_case_insensitive_longest() {
        let t = terms(&["Acme", "Acme Corp", "Projekt Müller"]);
        let text = "ACME CORP and acme, not acmes; projekt Müller but not Projekt Müllerin";
        let found: Vec<&str> = t.find(text).into_iter().map(|(s, e)| &text[s..e]).collect();
        assert_eq!(found, ["ACME CORP", "acme", "projekt Müller"]);
    }

    #[test]
    fn a_failed_longer_match_does_not_hide_a_shorter_one() {
        let t = terms(&["blue", "blue moonx"]);
        let text = "blue moonxy";
        assert_eq!(t.find(text), [(0, 4)]);
    }
}
