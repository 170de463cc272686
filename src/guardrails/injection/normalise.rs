//! Text normalisation and the byte-level features that decide which variants get scanned.

use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfkc_quick};

use super::hidden;

/// Byte-level features of the raw text, from one pass: which slow paths it needs.
#[derive(Default)]
pub(super) struct Features {
    pub(super) non_ascii: bool,
    /// Tokens mixing ASCII letters with digits that leetspeak uses (0 1 3 4 5 7).
    pub(super) leet_tokens: usize,
    /// The longest run of one-character tokens ("i g n o r e").
    pub(super) spaced_run: usize,
    /// The longest run of base64/hex alphabet bytes.
    pub(super) blob_run: usize,
}

/// Runs of base64 or hex at least this long are decoded and rescored.
pub(super) const BLOB_MIN: usize = 40;

const ALNUM: u8 = 1;
const ALPHA: u8 = 2;
const LEET: u8 = 4;
const BLOB: u8 = 8;

/// Byte classes for [`Features::of`]: one table lookup per byte instead of several range tests.
const CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        let mut k = 0;
        if c.is_ascii_alphanumeric() {
            k |= ALNUM | BLOB;
        }
        if c.is_ascii_alphabetic() {
            k |= ALPHA;
        }
        if matches!(c, b'0' | b'1' | b'3' | b'4' | b'5' | b'7') {
            k |= LEET;
        }
        if matches!(c, b'+' | b'/' | b'=') {
            k |= BLOB;
        }
        t[b] = k;
        b += 1;
    }
    t
};

impl Features {
    pub(super) fn of(text: &str) -> Self {
        let mut f = Features {
            non_ascii: !text.is_ascii(),
            ..Features::default()
        };
        let (mut tok_len, mut tok_class) = (0usize, 0u8);
        let (mut single_run, mut blob) = (0usize, 0usize);
        for &b in text.as_bytes() {
            let class = CLASS[b as usize];
            if class & BLOB != 0 {
                blob += 1;
            } else {
                f.blob_run = f.blob_run.max(blob);
                blob = 0;
            }
            if class & ALNUM != 0 {
                tok_len += 1;
                tok_class |= class;
                continue;
            }
            if tok_len > 0 {
                f.leet_tokens += usize::from(tok_class & (ALPHA | LEET) == ALPHA | LEET);
                single_run = if tok_len == 1 { single_run + 1 } else { 0 };
                f.spaced_run = f.spaced_run.max(single_run);
            }
            (tok_len, tok_class) = (0, 0);
        }
        f.blob_run = f.blob_run.max(blob);
        if tok_len == 1 {
            f.spaced_run = f.spaced_run.max(single_run + 1);
        }
        f.leet_tokens += usize::from(tok_class & (ALPHA | LEET) == ALPHA | LEET);
        f
    }

    pub(super) fn needs_full_scan(&self) -> bool {
        self.non_ascii || self.leet_tokens >= 3 || self.spaced_run >= 4 || self.blob_run >= BLOB_MIN
    }
}

/// NFKC, format characters dropped, confusables folded, lowercase, whitespace runs (and JSON
/// `\n`, `\r`, `\t` escapes) collapsed to one space, curly quotes made straight.
pub(super) fn normalise(text: &str) -> String {
    if text.is_ascii() {
        let mut out = Vec::with_capacity(text.len());
        let mut pending_space = false;
        let bytes = text.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let mut b = bytes[i];
            if b == b'\\' && matches!(bytes.get(i + 1), Some(b'n' | b'r' | b't')) {
                b = b' ';
                i += 1;
            }
            i += 1;
            if b.is_ascii_whitespace() {
                pending_space = !out.is_empty();
                continue;
            }
            if pending_space {
                out.push(b' ');
                pending_space = false;
            }
            out.push(b.to_ascii_lowercase());
        }
        // Only ASCII bytes were pushed, so this cannot fail; an empty string is a safe fallback.
        return String::from_utf8(out).unwrap_or_default();
    }
    let mut out = String::with_capacity(text.len());
    if is_nfkc_quick(text.chars()) == IsNormalized::Yes {
        fold_chars(text.chars(), &mut out);
    } else {
        fold_chars(text.nfkc(), &mut out);
    }
    out
}

fn fold_chars(chars: impl Iterator<Item = char>, out: &mut String) {
    let mut chars = chars.peekable();
    let mut pending_space = false;
    while let Some(mut c) = chars.next() {
        if c == '\\' && matches!(chars.peek(), Some('n' | 'r' | 't')) {
            chars.next();
            c = ' ';
        }
        if c.is_whitespace() {
            pending_space = !out.is_empty();
            continue;
        }
        if hidden::is_invisible(c) {
            continue;
        }
        if pending_space {
            out.push(' ');
            pending_space = false;
        }
        if c.is_ascii() {
            out.push(c.to_ascii_lowercase());
        } else if let Some(latin) = hidden::fold_confusable(c) {
            out.push(latin);
        } else {
            out.extend(c.to_lowercase());
        }
    }
}

/// Leetspeak digits read as letters in every token that holds one (only scanned when the text has
/// several letter-and-digit tokens, so "70" may stand for "to"); `None` if nothing changed.
pub(super) fn fold_leet(norm: &str) -> Option<String> {
    let mut out = String::with_capacity(norm.len());
    let mut changed = false;
    for (i, token) in norm.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        if token
            .bytes()
            .any(|b| matches!(b, b'0' | b'1' | b'3' | b'4' | b'5' | b'7' | b'@' | b'$'))
        {
            changed = true;
            out.extend(token.chars().map(|c| match c {
                '0' => 'o',
                '1' => 'i',
                '3' => 'e',
                '4' => 'a',
                '5' => 's',
                '7' => 't',
                '@' => 'a',
                '$' => 's',
                other => other,
            }));
        } else {
            out.push_str(token);
        }
    }
    changed.then_some(out)
}

/// Joins one-character tokens separated by single spaces ("i g n o r e" → "ignore"); a longer
/// gap stays a word break. `None` if nothing changed.
pub(super) fn despace(text: &str) -> Option<String> {
    let b = text.as_bytes();
    let single = |j: usize| {
        b[j].is_ascii_alphanumeric()
            && (j == 0 || !b[j - 1].is_ascii_alphanumeric())
            && (j + 1 == b.len() || !b[j + 1].is_ascii_alphanumeric())
    };
    let mut out = Vec::with_capacity(b.len());
    let mut changed = false;
    for i in 0..b.len() {
        if b[i] == b' ' && i > 0 && i + 1 < b.len() && single(i - 1) && single(i + 1) {
            changed = true;
            continue;
        }
        out.push(b[i]);
    }
    // Only ASCII spaces were removed, so the bytes stay valid UTF-8.
    changed.then(|| String::from_utf8(out).ok()).flatten()
}
