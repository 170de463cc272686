//! Validators: a candidate becomes a finding only if its checksum, range rules and
//! surrounding text agree.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::entropy;
use super::patterns::Rule;

/// How far before a bare digit run a context word (`card`, `ssn`) may sit, in bytes.
const CONTEXT_WINDOW: usize = 40;

/// Whether the candidate `text[start..end]` found by `rule` is a real finding.
pub(super) fn accept(rule: Rule, text: &str, start: usize, end: usize) -> bool {
    let m = &text[start..end];
    match rule {
        Rule::Pem | Rule::Jwt => true,
        Rule::KeyPrefix => !is_token_byte(byte_after(text, end)) && entropy::random_enough_body(m),
        Rule::KeywordSecret => {
            !is_token_byte(byte_after(text, end)) && entropy::keyword_value_ok(m)
        }
        Rule::Password => entropy::password_ok(m),
        Rule::Entropy => entropy::high_entropy_token(text, start, end),
        Rule::Iban => iban_ok(m),
        Rule::Card => card_ok(text, start, end),
        Rule::Ssn => !glued_to_digits(text, start, end, b"-.") && ssn_ok(m, true),
        Rule::SsnBare => {
            !glued_to_digits(text, start, end, b" -./")
                && ssn_ok(m, false)
                && word_before(text, start, &["ssn", "social security", "social sec"])
        }
        Rule::Nino => nino_ok(m),
        Rule::Email => email_ok(m),
        Rule::Ipv4 => ipv4_ok(text, start, end),
        Rule::Ipv6 => ipv6_ok(text, start, end),
        Rule::PhoneE164 => e164_ok(text, start, end),
        Rule::PhoneNanp => {
            !glued_to_digits(text, start, end, b"-./") && (10..=10).contains(&digit_count(m))
        }
        Rule::PhoneUk => {
            m.contains(' ')
                && !glued_to_digits(text, start, end, b" -./")
                && (10..=11).contains(&digit_count(m))
        }
        Rule::PhoneDe => {
            !glued_to_digits(text, start, end, b" -./") && (9..=12).contains(&digit_count(m))
        }
        Rule::PhoneFr => one_separator(m) && !glued_to_digits(text, start, end, b" -./"),
    }
}

fn byte_before(text: &str, start: usize) -> Option<u8> {
    start.checked_sub(1).map(|i| text.as_bytes()[i])
}

fn byte_after(text: &str, end: usize) -> Option<u8> {
    text.as_bytes().get(end).copied()
}

/// Bytes that continue an API token, so a match next to one is only part of a longer token.
fn is_token_byte(b: Option<u8>) -> bool {
    b.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// True when a digit touches the candidate, directly or across one of `seps`: then the
/// candidate is a window over a longer number (a tracking code, an order id) and not a
/// value of its own.
fn glued_to_digits(text: &str, start: usize, end: usize, seps: &[u8]) -> bool {
    let b = text.as_bytes();
    let digit = |i: Option<usize>| i.and_then(|i| b.get(i)).is_some_and(u8::is_ascii_digit);
    let sep = |i: Option<usize>| i.and_then(|i| b.get(i)).is_some_and(|c| seps.contains(c));
    let left =
        digit(start.checked_sub(1)) || (sep(start.checked_sub(1)) && digit(start.checked_sub(2)));
    let right = digit(Some(end)) || (sep(Some(end)) && digit(Some(end + 1)));
    left || right
}

fn digits(s: &str) -> Vec<u8> {
    s.bytes()
        .filter(u8::is_ascii_digit)
        .map(|b| b - b'0')
        .collect()
}

fn digit_count(s: &str) -> usize {
    s.bytes().filter(u8::is_ascii_digit).count()
}

/// At most one kind of separator between the digit groups (`4111-1111 1111` is not a card).
fn one_separator(s: &str) -> bool {
    let mut seps = s.bytes().filter(|b| !b.is_ascii_alphanumeric());
    match seps.next() {
        None => true,
        Some(first) => seps.all(|b| b == first),
    }
}

/// Whether one of `words` (lower case) occurs in the [`CONTEXT_WINDOW`] bytes before `start`.
fn word_before(text: &str, start: usize, words: &[&str]) -> bool {
    let mut from = start.saturating_sub(CONTEXT_WINDOW);
    while !text.is_char_boundary(from) {
        from += 1;
    }
    let window = text[from..start].to_ascii_lowercase();
    words.iter().any(|w| window.contains(w))
}

/// Card words for bare digit runs: random 16-digit numbers with a card IIN pass Luhn one
/// time in ten, so a bare run needs one of these just before it (as presidio does).
fn card_word_before(text: &str, start: usize) -> bool {
    const WORDS: [&str; 10] = [
        "card",
        "karte",
        "carte",
        "tarjeta",
        "visa",
        "mastercard",
        "amex",
        "discover",
        "pan=",
        "pan:",
    ];
    word_before(text, start, &WORDS) || word_before(text, start, &[" pan ", "\"pan\""])
}

fn card_ok(text: &str, start: usize, end: usize) -> bool {
    let m = &text[start..end];
    let d = digits(m);
    if !(13..=19).contains(&d.len())
        || !one_separator(m)
        || glued_to_digits(text, start, end, b" -")
    {
        return false;
    }
    if d.iter().all(|&x| x == d[0]) || !iin_ok(&d) || !luhn(&d) {
        return false;
    }
    d.len() != m.len() || card_word_before(text, start)
}

/// The Luhn checksum over decimal digits.
pub(super) fn luhn(d: &[u8]) -> bool {
    let sum: u32 = d
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &x)| {
            let v = u32::from(x) * if i % 2 == 1 { 2 } else { 1 };
            if v > 9 { v - 9 } else { v }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// Issuer ranges and lengths: Visa, Mastercard (51–55, 2221–2720), Amex, Discover,
/// UnionPay, JCB, Diners.
pub(super) fn iin_ok(d: &[u8]) -> bool {
    let len = d.len();
    if len < 13 {
        return false;
    }
    let n = |k: usize| d[..k].iter().fold(0u32, |a, &x| a * 10 + u32::from(x));
    match d[0] {
        4 => matches!(len, 13 | 16 | 19),
        5 => (51..=55).contains(&n(2)) && len == 16,
        2 => (2221..=2720).contains(&n(4)) && len == 16,
        3 => {
            (matches!(n(2), 34 | 37) && len == 15)
                || ((3528..=3589).contains(&n(4)) && (16..=19).contains(&len))
                || (matches!(n(2), 30 | 36 | 38 | 39) && (14..=19).contains(&len))
        }
        6 => {
            (n(4) == 6011 || n(2) == 65 || (644..=649).contains(&n(3)) || n(2) == 62)
                && (16..=19).contains(&len)
        }
        _ => false,
    }
}

/// IBAN lengths per country (SWIFT IBAN registry).
#[rustfmt::skip]
const IBAN_LENGTHS: [(&str, usize); 89] = [
    ("AD", 24), ("AE", 23), ("AL", 28), ("AT", 20), ("AZ", 28), ("BA", 20), ("BE", 16),
    ("BG", 22), ("BH", 22), ("BI", 27), ("BR", 29), ("BY", 28), ("CH", 21), ("CR", 22),
    ("CY", 28), ("CZ", 24), ("DE", 22), ("DJ", 27), ("DK", 18), ("DO", 28), ("EE", 20),
    ("EG", 29), ("ES", 24), ("FI", 18), ("FK", 18), ("FO", 18), ("FR", 27), ("GB", 22),
    ("GE", 22), ("GI", 23), ("GL", 18), ("GR", 27), ("GT", 28), ("HN", 28), ("HR", 21),
    ("HU", 28), ("IE", 22), ("IL", 23), ("IQ", 23), ("IS", 26), ("IT", 27), ("JO", 30),
    ("KW", 30), ("KZ", 20), ("LB", 28), ("LC", 32), ("LI", 21), ("LT", 20), ("LU", 20),
    ("LV", 21), ("LY", 25), ("MC", 27), ("MD", 24), ("ME", 22), ("MK", 19), ("MN", 20),
    ("MR", 27), ("MT", 31), ("MU", 30), ("NI", 28), ("NL", 18), ("NO", 15), ("OM", 23),
    ("PK", 24), ("PL", 28), ("PS", 29), ("PT", 25), ("QA", 29), ("RO", 24), ("RS", 22),
    ("RU", 33), ("SA", 24), ("SC", 31), ("SD", 18), ("SE", 24), ("SI", 19), ("SK", 24),
    ("SM", 27), ("SO", 23), ("ST", 25), ("SV", 28), ("TL", 23), ("TN", 24), ("TR", 26),
    ("UA", 29), ("VA", 22), ("VG", 24), ("XK", 20), ("YE", 30),
];

/// Country length, then mod-97 == 1 (ISO 13616), folded digit by digit so no bignum is
/// needed. Letters of either case.
pub(super) fn iban_ok(s: &str) -> bool {
    let compact: Vec<u8> = s
        .bytes()
        .filter(|&b| b != b' ')
        .map(|b| b.to_ascii_uppercase())
        .collect();
    let Some(country) = compact.get(..2) else {
        return false;
    };
    let expected = IBAN_LENGTHS
        .iter()
        .find(|(cc, _)| cc.as_bytes() == country)
        .map(|&(_, n)| n);
    if expected != Some(compact.len()) {
        return false;
    }
    let (head, tail) = compact.split_at(4);
    let mut rem: u32 = 0;
    for &b in tail.iter().chain(head) {
        rem = match b {
            b'0'..=b'9' => (rem * 10 + u32::from(b - b'0')) % 97,
            b'A'..=b'Z' => (rem * 100 + u32::from(b - b'A') + 10) % 97,
            _ => return false,
        };
    }
    rem == 1
}

/// US SSN range rules: area not 000, 666 or 900–999 (ITINs and the SSA's advertising
/// numbers), group not 00, serial not 0000, not one repeated digit, not a published sample.
/// `separated` also requires the same separator twice.
pub(super) fn ssn_ok(s: &str, separated: bool) -> bool {
    if separated && s.as_bytes().get(3) != s.as_bytes().get(6) {
        return false;
    }
    let d = digits(s);
    if d.len() != 9 {
        return false;
    }
    let n = |a: usize, b: usize| d[a..b].iter().fold(0u32, |x, &y| x * 10 + u32::from(y));
    let (area, group, serial) = (n(0, 3), n(3, 5), n(5, 9));
    !(area == 0
        || area == 666
        || area >= 900
        || group == 0
        || serial == 0
        || d.iter().all(|&x| x == d[0])
        || matches!(n(0, 9), 78_051_120 | 123_456_789 | 219_099_999))
}

/// UK National Insurance number: the pattern already excludes D F I Q U V (and O second);
/// here the prefixes HMRC never issues, and one letter case throughout.
pub(super) fn nino_ok(s: &str) -> bool {
    let letters: Vec<u8> = s.bytes().filter(u8::is_ascii_alphabetic).collect();
    let same_case =
        letters.iter().all(u8::is_ascii_uppercase) || letters.iter().all(u8::is_ascii_lowercase);
    let prefix = s.get(..2).map(str::to_ascii_uppercase);
    same_case
        && !matches!(
            prefix.as_deref(),
            Some("BG" | "GB" | "KN" | "NK" | "NT" | "TN" | "ZZ") | None
        )
}

/// Image names such as `icon@2x.png` look like addresses; their "TLD" gives them away.
fn email_ok(s: &str) -> bool {
    let tld = s
        .rsplit('.')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let local = s.split('@').next().unwrap_or_default();
    !matches!(
        tld.as_str(),
        "png" | "jpg" | "jpeg" | "gif" | "svg" | "webp" | "bmp" | "ico"
    ) && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
}

/// The word before a dotted quad that makes it a version, not an address.
fn version_word_before(text: &str, start: usize) -> bool {
    let before = text[..start].trim_end_matches([' ', ':', '=', '\t']);
    let word = before
        .rsplit(|c: char| !c.is_ascii_alphanumeric())
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    matches!(
        word.as_str(),
        "v" | "ver"
            | "version"
            | "release"
            | "build"
            | "oid"
            | "rev"
            | "revision"
            | "firmware"
            | "fw"
            | "kernel"
            | "patch"
    )
}

/// `.` followed by a digit: the candidate continues as a longer dotted number.
fn dot_digit(text: &str, at: usize) -> bool {
    let b = text.as_bytes();
    b.get(at) == Some(&b'.') && b.get(at + 1).is_some_and(u8::is_ascii_digit)
}

fn ipv4_ok(text: &str, start: usize, end: usize) -> bool {
    let before_dot = byte_before(text, start) == Some(b'.');
    !before_dot
        && !dot_digit(text, end)
        && !version_word_before(text, start)
        && text[start..end].parse::<Ipv4Addr>().is_ok()
}

/// Parses as IPv6 with at least three non-empty groups: `a::b` (C++ and Rust paths), MAC
/// addresses and `12:30:45` are not addresses.
fn ipv6_ok(text: &str, start: usize, end: usize) -> bool {
    let edge =
        |b: Option<u8>| b.is_some_and(|b| b.is_ascii_alphanumeric() || b == b':' || b == b'.');
    if edge(byte_before(text, start))
        || byte_after(text, end).is_some_and(|b| b.is_ascii_alphanumeric() || b == b':')
        || dot_digit(text, end)
    {
        return false;
    }
    let m = &text[start..end];
    let addr = m.split('%').next().unwrap_or_default();
    addr.parse::<Ipv6Addr>().is_ok() && addr.split(':').filter(|g| !g.is_empty()).count() >= 3
}

/// `+CC…` with 8–15 digits, not glued to a word or a longer number.
fn e164_ok(text: &str, start: usize, end: usize) -> bool {
    let before = byte_before(text, start);
    !before.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'+')
        && !byte_after(text, end).is_some_and(|b| b.is_ascii_digit())
        && (8..=15).contains(&digit_count(&text[start..end]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Vec<u8> {
        digits(s)
    }

    #[test]
    fn luhn_accepts_test_cards_and_rejects_one_digit_off() {
        for ok in [
            "4111111111111111",
            "378282246310005",
            "6011111111111117",
            "5555555555554444",
        ] {
            assert!(luhn(&d(ok)), "{ok}");
        }
        for bad in ["4111111111111112", "378282246310006", "1234567812345678"] {
            assert!(!luhn(&d(bad)), "{bad}");
        }
    }

    #[test]
    fn iin_ranges_and_lengths() {
        assert!(iin_ok(&d("4111111111111111")));
        assert!(iin_ok(&d("2221000000000009")));
        assert!(
            !iin_ok(&d("2220990000000000")),
            "2220 is below the 2-series range"
        );
        assert!(!iin_ok(&d("3782822463100050")), "Amex has 15 digits");
        assert!(!iin_ok(&d("9781234567897")), "ISBN-13 prefixes are no IIN");
        assert!(!iin_ok(&d("4111")));
    }

    #[test]
    fn iban_mod97_and_country_lengths() {
        for ok in [
            "DE89370400440532013000",
            "GB82WEST12345698765432",
            "GB82 WEST 1234 5698 7654 32",
            "NL91ABNA0417164300",
            "FR1420041010050500013M02606",
            "NO9386011117947",
        ] {
            assert!(iban_ok(ok), "{ok}");
        }
        assert!(iban_ok("de89 3704 0044 0532 0130 00"), "lower case");
        assert!(
            !iban_ok("DE88370400440532013000"),
            "check digits off by one"
        );
        assert!(
            !iban_ok("DE8937040044053201300"),
            "one character short for DE"
        );
        assert!(!iban_ok("XX89370400440532013000"), "unknown country");
        assert!(!iban_ok("D"));
    }

    #[test]
    fn ssn_range_rules() {
        assert!(ssn_ok("536-22-1234", true));
        assert!(ssn_ok("536 22 1234", true));
        assert!(ssn_ok("536221234", false));
        for bad in [
            "000-12-3456",
            "666-12-3456",
            "900-12-3456",
            "987-65-4321",
            "536-00-1234",
            "536-22-0000",
            "111-11-1111",
            "078-05-1120",
            "123-45-6789",
            "219-09-9999",
        ] {
            assert!(!ssn_ok(bad, true), "{bad}");
        }
        assert!(!ssn_ok("536-22 1234", true), "mixed separators");
    }

    #[test]
    fn nino_prefixes_and_case() {
        assert!(nino_ok("AB123456C"));
        assert!(nino_ok("ab 12 34 56 c"));
        for bad in [
            "BG123456A",
            "GB123456A",
            "KN123456A",
            "NK123456A",
            "NT123456A",
            "TN123456A",
            "ZZ123456A",
            "Ab123456C",
        ] {
            assert!(!nino_ok(bad), "{bad}");
        }
    }

    #[test]
    fn ipv4_version_guards() {
        let ok = |t: &str, v: &str| {
            let s = t.find(v).unwrap();
            ipv4_ok(t, s, s + v.len())
        };
        assert!(ok("peer 203.0.113.7 closed", "203.0.113.7"));
        assert!(
            ok("from 10.0.0.1.", "10.0.0.1"),
            "a full stop ends the sentence"
        );
        assert!(!ok("version 1.2.3.4", "1.2.3.4"));
        assert!(!ok("Version: 4.18.0.305", "4.18.0.305"));
        assert!(!ok("OID 1.3.6.1.4.1.99.1", "1.3.6.1"), "continues with .4");
        assert!(!ok("x 1.3.6.1.4.1", "6.1.4.1"), "follows a dot");
    }

    #[test]
    fn ipv6_needs_three_groups_and_clean_edges() {
        let ok = |t: &str, v: &str| {
            let s = t.find(v).unwrap();
            ipv6_ok(t, s, s + v.len())
        };
        assert!(ok(
            "addr 2001:db8::8a2e:370:7334 done",
            "2001:db8::8a2e:370:7334"
        ));
        assert!(ok("[2001:DB8:1::AB]", "2001:DB8:1::AB"));
        assert!(ok("fe80::1:2:3%eth0 up", "fe80::1:2:3%eth0"));
        assert!(!ok("a::b", "a::b"));
        assert!(!ok("mac 00:1A:2B:3C:4D:5E", "00:1A:2B:3C:4D:5E"));
        assert!(!ok("at 12:30:45", "12:30:45"));
        assert!(!ok("x2001:db8::1", "2001:db8::1"));
    }

    #[test]
    fn glued_digits_mean_a_longer_number() {
        let t = "1234 5678 9012 3456 7890 12";
        assert!(glued_to_digits(t, 0, 19, b" -"));
        assert!(!glued_to_digits(
            "card 4111 1111 1111 1111 exp",
            5,
            24,
            b" -"
        ));
    }

    #[test]
    fn phone_digit_counts() {
        let t = "call 020 7946 0958 now";
        assert!(accept(Rule::PhoneUk, t, 5, 18));
        assert!(
            !accept(Rule::PhoneUk, "ref 02079460958 x", 4, 15),
            "a bare run is never a phone"
        );
        assert!(accept(Rule::PhoneE164, "tel +442079460958.", 4, 17));
        assert!(
            !accept(Rule::PhoneE164, "v1.0+20130313144700", 4, 19),
            "glued to a version"
        );
    }
}
