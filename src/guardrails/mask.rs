//! Placeholders for `mask_and_restore`, unnumbered redaction, and the restore of answers.
//!
//! Masking replaces each detected value with a numbered placeholder (`<EMAIL_1>`) that is stable for
//! the whole turn; restoring puts the originals back into the streamed answer and into tool-call
//! arguments. A placeholder split across deltas is held back until it is complete, and only then: the
//! hold-back starts at the last `<` and only while what follows could still grow into one of our
//! placeholders, so it never exceeds [`MAX_PLACEHOLDER_LEN`] − 1 bytes and ordinary text (`a < b`,
//! `<div>`) streams as written.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use super::pii::{Finding, PiiKind};

/// Longest placeholder recognised, `<` and `>` included; bounds the restore hold-back.
///
/// Ours are at most `<SECRET_` + the counter + `>`: 19 bytes while the counter fits 10 digits. A
/// longer well-formed token is not ours, so it is passed through as text and not counted.
pub const MAX_PLACEHOLDER_LEN: usize = 24;

/// Literal placeholders with more digits than this never raise our numbering: a turn cannot issue a
/// billion placeholders, and a user's `<EMAIL_99999999999>` must not push ours past
/// [`MAX_PLACEHOLDER_LEN`]. Such literals are still skipped if our counter ever reaches them.
const MAX_RESERVED_DIGITS: usize = 9;

/// Per-turn map between PII values and placeholders like `<EMAIL_1>`; the same value (normalised: emails
/// and terms lowercased, cards/IBANs/phones/SSN/NI reduced to their letters and digits, IPs in
/// canonical form, secrets as written) gets the same placeholder for the whole turn; restore gives back
/// the form seen first.
#[derive(Debug, Default, Clone)]
pub struct PlaceholderMap {
    by_value: HashMap<(PiiKind, String), String>,
    by_token: HashMap<String, String>,
    counters: HashMap<PiiKind, u64>,
    literals: HashSet<String>,
}

impl PlaceholderMap {
    /// The placeholder for `value`: the one already assigned to its normalised form, or the next free one.
    pub fn placeholder(&mut self, kind: PiiKind, value: &str) -> String {
        let key = (kind, normalise(kind, value));
        if let Some(token) = self.by_value.get(&key) {
            return token.clone();
        }
        let counter = self.counters.entry(kind).or_insert(0);
        // Terminates: the counter only grows and `literals` is finite.
        let token = loop {
            *counter = counter.saturating_add(1);
            let token = format!("<{}_{}>", kind.as_str(), counter);
            if !self.literals.contains(&token) {
                break token;
            }
        };
        self.by_token.insert(token.clone(), value.to_owned());
        self.by_value.insert(key, token.clone());
        token
    }

    /// The original value behind a placeholder such as `<EMAIL_1>`, if this map issued it.
    pub fn original(&self, token: &str) -> Option<&str> {
        self.by_token.get(token).map(String::as_str)
    }

    /// Number of placeholders issued.
    pub fn len(&self) -> usize {
        self.by_token.len()
    }

    /// Whether no placeholder has been issued.
    pub fn is_empty(&self) -> bool {
        self.by_token.is_empty()
    }

    /// Bump numbering of a kind above any literal `<KIND_n>` already present in `text` so a user's own
    /// literal placeholder is never confused with ours.
    ///
    /// Call it on every text of the turn before masking any of them: a literal equal to a placeholder
    /// already issued cannot be told apart afterwards. A model that echoes the literal back gets it
    /// passed through as an unknown placeholder.
    pub fn reserve_literals(&mut self, text: &str) {
        let mut rest = text;
        while let Some(lt) = rest.find('<') {
            let after = &rest[lt..];
            let Some((len, kind, digits)) = parse_token(after) else {
                rest = &after[1..];
                continue;
            };
            self.literals.insert(after[..len].to_owned());
            if digits.len() <= MAX_RESERVED_DIGITS
                && !digits.starts_with('0')
                && let Ok(n) = digits.parse::<u64>()
            {
                let counter = self.counters.entry(kind).or_insert(0);
                *counter = (*counter).max(n);
            }
            rest = &after[len..];
        }
    }
}

/// The form under which two spellings of one value share a placeholder.
fn normalise(kind: PiiKind, value: &str) -> String {
    match kind {
        PiiKind::Email | PiiKind::Term => value.to_lowercase(),
        PiiKind::Phone | PiiKind::Card | PiiKind::Iban | PiiKind::Ssn | PiiKind::UkNi => value
            .chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(char::to_uppercase)
            .collect(),
        PiiKind::Ip => match value.parse::<IpAddr>() {
            Ok(ip) => ip.to_string(),
            Err(_) => value.to_ascii_lowercase(),
        },
        PiiKind::Secret => value.to_owned(),
    }
}

/// Replaces each finding with its placeholder. Findings are sorted and non-overlapping; one that is
/// not (or not on char boundaries) is skipped rather than trusted.
pub fn mask(text: &str, findings: &[Finding], map: &mut PlaceholderMap) -> String {
    replace_findings(text, findings, |kind, value| map.placeholder(kind, value))
}

/// Replaces each finding with an unnumbered `<KIND>` token (for embedding inputs and answer redaction).
pub fn redact(text: &str, findings: &[Finding]) -> String {
    replace_findings(text, findings, |kind, _| format!("<{}>", kind.as_str()))
}

fn replace_findings(
    text: &str,
    findings: &[Finding],
    mut token: impl FnMut(PiiKind, &str) -> String,
) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for f in findings {
        if f.start >= f.end {
            continue;
        }
        // `get` is None for an overlap (f.start < at) or a non-boundary offset.
        let (Some(before), Some(value)) = (text.get(at..f.start), text.get(f.start..f.end)) else {
            continue;
        };
        out.push_str(before);
        out.push_str(&token(f.kind, value));
        at = f.end;
    }
    out.push_str(text.get(at..).unwrap_or_default());
    out
}

/// Restores placeholders in a streamed answer, delta by delta, holding back at most a bounded suffix
/// that could still become a placeholder (from the last `<` if what follows could grow into
/// `KIND_n` and the suffix is shorter than [`MAX_PLACEHOLDER_LEN`]).
#[derive(Debug, Default)]
pub struct Restorer {
    held: String,
    unknown: u32,
}

impl Restorer {
    /// A restorer with nothing held.
    pub fn new() -> Self {
        Self::default()
    }

    /// Text safe to release now, restored.
    pub fn push(&mut self, delta: &str, map: &PlaceholderMap) -> String {
        self.held.push_str(delta);
        let cut = hold_from(&self.held);
        let mut out = String::with_capacity(cut);
        restore_into(&self.held[..cut], map, &mut out, &mut self.unknown);
        self.held.drain(..cut);
        out
    }

    /// Flushes the held suffix (end of the answer).
    pub fn finish(&mut self, map: &PlaceholderMap) -> String {
        let held = std::mem::take(&mut self.held);
        let mut out = String::with_capacity(held.len());
        restore_into(&held, map, &mut out, &mut self.unknown);
        out
    }

    /// Drops the held suffix on an upstream restart. The unknown count is kept: that text was released.
    pub fn reset(&mut self) {
        self.held.clear();
    }

    /// Count of well-formed placeholders (`<KIND_n>` with one of our kinds) not in the map; they are
    /// emitted as written, never guessed. Mangled ones (`<email_1>`, `<EMAIL 1>`) are ordinary text
    /// and not counted.
    pub fn unknown(&self) -> u32 {
        self.unknown
    }
}

/// Restores every placeholder in a complete text (tool-call arguments). Returns the text and the count
/// of unknown placeholders.
pub fn restore_all(text: &str, map: &PlaceholderMap) -> (String, u32) {
    let mut out = String::with_capacity(text.len());
    let mut unknown = 0;
    restore_into(text, map, &mut out, &mut unknown);
    (out, unknown)
}

fn restore_into(text: &str, map: &PlaceholderMap, out: &mut String, unknown: &mut u32) {
    let mut rest = text;
    while let Some(lt) = rest.find('<') {
        out.push_str(&rest[..lt]);
        let after = &rest[lt..];
        match parse_token(after) {
            Some((len, _, _)) => {
                let token = &after[..len];
                match map.original(token) {
                    Some(original) => out.push_str(original),
                    None => {
                        *unknown = unknown.saturating_add(1);
                        out.push_str(token);
                    }
                }
                rest = &after[len..];
            }
            None => {
                out.push('<');
                rest = &after[1..];
            }
        }
    }
    out.push_str(rest);
}

/// If `s` starts with a well-formed placeholder `<KIND_digits>` of at most [`MAX_PLACEHOLDER_LEN`]
/// bytes: its length, kind and digits.
fn parse_token(s: &str) -> Option<(usize, PiiKind, &str)> {
    let window = s
        .as_bytes()
        .get(..MAX_PLACEHOLDER_LEN)
        .unwrap_or(s.as_bytes());
    let gt = window.iter().position(|&b| b == b'>')?;
    // '<' and '>' are ASCII, so 1..gt is on char boundaries.
    let inner = s.get(1..gt)?;
    let (name, digits) = inner.rsplit_once('_')?;
    // Ours are upper case: `<email_1>` is not one.
    let kind = PiiKind::parse(name).filter(|kind| kind.as_str() == name)?;
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())).then_some((
        gt + 1,
        kind,
        digits,
    ))
}

/// Where the held suffix starts: the last `<`, if what follows it could still grow into a placeholder
/// of at most [`MAX_PLACEHOLDER_LEN`] bytes; otherwise the end (hold nothing).
fn hold_from(held: &str) -> usize {
    let Some(lt) = held.rfind('<') else {
        return held.len();
    };
    // One more byte ('>') must still fit.
    if held.len() - lt >= MAX_PLACEHOLDER_LEN {
        return held.len();
    }
    let inner = &held[lt + 1..];
    let could_grow = PiiKind::ALL.iter().any(|kind| {
        let name = kind.as_str();
        name.starts_with(inner)
            || inner
                .strip_prefix(name)
                .and_then(|r| r.strip_prefix('_'))
                .is_some_and(|digits| digits.bytes().all(|b| b.is_ascii_digit()))
    });
    if could_grow { lt } else { held.len() }
}

#[cfg(test)]
mod tests;
