//! Secrets without a vendor prefix: Shannon entropy against a floor that grows with length,
//! plus the checks that keep hashes, UUIDs, identifiers, placeholders and base64 of prose out.

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

/// Shannon entropy of the bytes of `s`, in bits per byte.
pub(super) fn shannon(s: &str) -> f64 {
    let mut counts = [0u32; 256];
    for b in s.bytes() {
        counts[usize::from(b)] += 1;
    }
    let n = s.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

/// The entropy a random base62 token of this length reaches 95% of the time (measured on
/// seeded samples in the issue-17 prototype: p5 is 3.97 at 24, 4.32 at 32, 4.55 at 40,
/// 4.98 at 64), rounded down; linear between the points. A flat 4.5 would miss half of the
/// 32-character keys, and sha256 hex (3.82), UUIDs (3.73) and CamelCase identifiers (p95
/// 4.04) stay under it.
pub(super) fn floor_for_len(len: usize) -> f64 {
    const TABLE: [(usize, f64); 5] = [(24, 3.9), (32, 4.3), (40, 4.5), (48, 4.7), (64, 4.95)];
    let mut prev = TABLE[0];
    if len <= prev.0 {
        return prev.1;
    }
    for &(l, h) in &TABLE[1..] {
        if len <= l {
            let t = (len - prev.0) as f64 / (l - prev.0) as f64;
            return prev.1 + t * (h - prev.1);
        }
        prev = (l, h);
    }
    prev.1
}

/// Words that mark a documentation value or a template, not a live secret.
const PLACEHOLDER_WORDS: [&str; 8] = [
    "xxxx",
    "example",
    "your_",
    "your-",
    "placeholder",
    "redacted",
    "dummy",
    "changeme",
];

/// Placeholders and sample values: one character dominating, a repeated unit
/// (`test-token-test-token`), an ascending run (`abcdef…123456`), or a placeholder word.
pub(super) fn looks_placeholder(s: &str) -> bool {
    let b = s.as_bytes();
    let n = b.len();
    if n == 0 {
        return true;
    }
    let mut counts = [0usize; 256];
    for &c in b {
        counts[usize::from(c)] += 1;
    }
    if counts.iter().max().is_some_and(|&m| m * 5 > n * 2) {
        return true;
    }
    let ascending = b
        .windows(2)
        .filter(|w| w[1] == w[0].wrapping_add(1))
        .count();
    if ascending * 2 >= n {
        return true;
    }
    let periodic = (1..=n / 2).any(|p| {
        let same = (p..n).filter(|&i| b[i] == b[i - p]).count();
        same * 10 >= (n - p) * 9
    });
    if periodic {
        return true;
    }
    let lower = s.to_ascii_lowercase();
    PLACEHOLDER_WORDS.iter().any(|w| lower.contains(w))
}

/// A vendor-prefixed key whose body is random: at least ten distinct characters and no
/// placeholder shape (`AKIAXXXXXXXXXXXXXXXX`, `sk_live_XXXX…` are templates).
pub(super) fn random_enough_body(token: &str) -> bool {
    let mut seen = [false; 256];
    for b in token.bytes() {
        seen[usize::from(b)] = true;
    }
    seen.iter().filter(|&&s| s).count() >= 10 && !looks_placeholder(token)
}

/// The value after `api_key=` and the like: 16–128 characters, letters and digits, entropy above gitleaks'
/// generic-key floor of 3.5, and no placeholder shape.
pub(super) fn keyword_value_ok(value: &str) -> bool {
    let v = value.trim_end_matches('=');
    (16..=128).contains(&v.len())
        && v.bytes().any(|b| b.is_ascii_alphabetic())
        && v.bytes().any(|b| b.is_ascii_digit())
        && shannon(v) >= 3.5
        && !looks_placeholder(v)
}

/// Values that follow `password:` in configs and docs without being one.
const NOT_PASSWORDS: [&str; 6] = ["${", "{{", "%(", "<", "env:", "secret:"];

/// A password value: 6–64 characters with a letter and a digit (so "incorrect", "reset_link"
/// and "required" are not passwords), not a template or a placeholder.
pub(super) fn password_ok(value: &str) -> bool {
    let lower = value.to_ascii_lowercase();
    (6..=64).contains(&value.len())
        && value.bytes().any(|b| b.is_ascii_alphabetic())
        && value.bytes().any(|b| b.is_ascii_digit())
        && !NOT_PASSWORDS.iter().any(|p| lower.starts_with(p))
        && !looks_placeholder(value)
}

/// The decoder for base64 candidates: either padding, trailing bits tolerated.
fn lenient(alphabet: &base64::alphabet::Alphabet) -> GeneralPurpose {
    GeneralPurpose::new(
        alphabet,
        GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    )
}

/// Base64 of ordinary text has the entropy of a random token; it decodes to printable
/// UTF-8, a random token does not (24 random bytes are all printable with odds ~1e-10).
fn is_base64_of_text(token: &str) -> bool {
    let url_safe = token.bytes().any(|b| b == b'-' || b == b'_');
    let engine = if url_safe {
        lenient(&base64::alphabet::URL_SAFE)
    } else {
        lenient(&base64::alphabet::STANDARD)
    };
    let Ok(bytes) = engine.decode(token) else {
        return false;
    };
    bytes.len() >= 12
        && std::str::from_utf8(&bytes).is_ok_and(|s| {
            s.chars()
                .all(|c| !c.is_control() || matches!(c, '\n' | '\r' | '\t'))
        })
}

/// Whether the candidate `text[start..end]` of the entropy rule is a secret.
pub(super) fn high_entropy_token(text: &str, start: usize, end: usize) -> bool {
    let b = text.as_bytes();
    // Part of a path, a URL, a dotted name or an address: not a standalone token.
    let left = start.checked_sub(1).map(|i| b[i]);
    if left.is_some_and(|c| c.is_ascii_alphanumeric() || b"+/_.-@".contains(&c)) {
        return false;
    }
    let right_joins = matches!(b.get(end), Some(b'.' | b'@'))
        && b.get(end + 1).is_some_and(u8::is_ascii_alphanumeric);
    if right_joins || text[..start].ends_with("base64,") {
        return false;
    }
    let token = text[start..end].trim_end_matches('=');
    let has = |f: fn(&u8) -> bool| token.as_bytes().iter().any(f);
    if token.len() < 24 || token.len() > 256 {
        return false;
    }
    if !(has(u8::is_ascii_uppercase) && has(u8::is_ascii_lowercase) && has(u8::is_ascii_digit)) {
        return false;
    }
    // Hex with or without dashes: hashes and UUIDs.
    if token.bytes().all(|c| c.is_ascii_hexdigit() || c == b'-') {
        return false;
    }
    // SSH public keys (wire format starts with a zero length byte: `AAAA…`) are public.
    if token.starts_with("AAAA") {
        return false;
    }
    shannon(token) >= floor_for_len(token.len())
        && !looks_placeholder(token)
        && !is_base64_of_text(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(t: &str) -> bool {
        high_entropy_token(t, 0, t.len())
    }

    #[test]
    fn shannon_of_simple_strings() {
        assert_eq!(shannon("aaaa"), 0.0);
        assert!((shannon("abcd") - 2.0).abs() < 1e-9);
        assert!((shannon("0123456789abcdef") - 4.0).abs() < 1e-9);
    }

    #[test]
    fn floor_grows_with_length() {
        assert_eq!(floor_for_len(10), 3.9);
        assert_eq!(floor_for_len(32), 4.3);
        assert!((floor_for_len(36) - 4.4).abs() < 1e-9);
        assert_eq!(floor_for_len(64), 4.95);
        assert_eq!(floor_for_len(200), 4.95);
    }

    #[test]
    fn random_tokens_pass() {
        assert!(token("Zf3D0LXCM3EIMbgJpUNnkRtOfOueHznB"));
        assert!(token(
            "fri3TaeYQKWgsXZOxCtJfKzjVPnOeOX0NGPps0GmLmFjEo3jNpSU90EZvohjkZRz"
        ));
    }

    #[test]
    fn hashes_uuids_identifiers_and_prose_fail() {
        assert!(!token(
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        ));
        assert!(!token("550E8400-E29B-41D4-A716-446655440000"));
        assert!(!token("AbstractSingletonProxyFactoryBean2"));
        // base64 of "The quick brown fox jumps over the lazy dog."
        assert!(!token(
            "VGhlIHF1aWNrIGJyb3duIGZveCBqdW1wcyBvdmVyIHRoZSBsYXp5IGRvZy4="
        ));
        assert!(!token("AAAAB3NzaC1yc2EAAAADAQABAAABAQC7vbqajDhA"));
    }

    #[test]
    fn tokens_inside_paths_and_data_uris_fail() {
        let t = "/srv/Zf3D0LXCM3EIMbgJpUNnkRtOfOueHznB";
        assert!(!high_entropy_token(t, 5, t.len()));
        let t = "data:image/png;base64,Zf3D0LXCM3EIMbgJpUNnkRtOfOueHznB";
        assert!(!high_entropy_token(t, 22, t.len()));
    }

    #[test]
    fn placeholders() {
        for p in [
            "xxxxxxxxxxxxxxxxxxxxxxxx",
            "test-token-test-token-test-token",
            "abcdefghijklmnopqrstuvwxyz123456",
            "1234567890abcdef1234567890abcdef",
            "AKIAIOSFODNN7EXAMPLE",
            "dummy_secret_dummy_secret_dummy",
        ] {
            assert!(looks_placeholder(p), "{p}");
        }
        assert!(!looks_placeholder("Zf3D0LXCM3EIMbgJpUNnkRtOfOueHznB"));
        assert!(!random_enough_body("sk_live_XXXXXXXXXXXXXXXXXXXXXXXX"));
        assert!(random_enough_body("AKIAC6DYSCPG5IFQZDGW"));
    }

    #[test]
    fn password_values() {
        assert!(password_ok("hunter2"));
        assert!(password_ok("S3cr3tP4ssw0rd!"));
        for bad in [
            "incorrect",
            "reset_link",
            "${DB_PASSWORD}",
            "12345678",
            "abc123abc123abc123",
            "pass1",
        ] {
            assert!(!password_ok(bad), "{bad}");
        }
    }

    #[test]
    fn keyword_values() {
        assert!(keyword_value_ok("3f9a1c07b2e84d6a9e51c0d7f2b8a463"));
        assert!(!keyword_value_ok("1234567890abcdef1234567890abcdef"));
        assert!(!keyword_value_ok("REPLACE_ME_WITH_REAL_KEY"));
        assert!(!keyword_value_ok("short1"));
    }
}
