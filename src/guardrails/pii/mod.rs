//! PII and secret detection: which byte ranges of a text hold an email, phone number,
//! payment card, IBAN, US SSN, UK NI number, IP address, secret or tenant-listed term.
//!
//! One `RegexSet` pass over the text says which rules have a candidate at all (a 2 KB
//! message without PII costs one pass, a few µs); only those rules then search for their
//! candidates, each candidate goes through its validator (Luhn, mod-97, range rules,
//! context words, entropy), and overlaps are settled by priority. Names and postal
//! addresses are not detected: regexes cannot tell them from ordinary words; a tenant lists
//! the ones it cares about as [`Terms`].

#[cfg(test)]
mod corpus;
mod entropy;
mod patterns;
mod terms;
mod validate;

use std::collections::BTreeMap;

use regex::{Regex, RegexSet};

use patterns::{RULES, Resume, Rule};
pub use terms::Terms;

/// The type of a detected value; its name is the placeholder stem (`<EMAIL_1>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PiiKind {
    /// An email address.
    Email,
    /// A phone number: E.164, or a US, UK, German or French national format with separators.
    Phone,
    /// A payment card number that passes its issuer range and Luhn check.
    Card,
    /// An IBAN with the right length for its country and valid check digits.
    Iban,
    /// A US Social Security number in the issued ranges.
    Ssn,
    /// A UK National Insurance number with an issued prefix.
    UkNi,
    /// An IPv4 or IPv6 address.
    Ip,
    /// A credential: vendor-prefixed keys, JWTs, PEM private keys, keyword-anchored values
    /// and high-entropy tokens.
    Secret,
    /// A term from the tenant's own list.
    Term,
}

impl PiiKind {
    /// Every kind, in declaration order.
    pub const ALL: [PiiKind; 9] = [
        PiiKind::Email,
        PiiKind::Phone,
        PiiKind::Card,
        PiiKind::Iban,
        PiiKind::Ssn,
        PiiKind::UkNi,
        PiiKind::Ip,
        PiiKind::Secret,
        PiiKind::Term,
    ];

    /// The upper-case name used in placeholders, config and metrics (`"UK_NI"`).
    pub fn as_str(self) -> &'static str {
        match self {
            PiiKind::Email => "EMAIL",
            PiiKind::Phone => "PHONE",
            PiiKind::Card => "CARD",
            PiiKind::Iban => "IBAN",
            PiiKind::Ssn => "SSN",
            PiiKind::UkNi => "UK_NI",
            PiiKind::Ip => "IP",
            PiiKind::Secret => "SECRET",
            PiiKind::Term => "TERM",
        }
    }

    /// The kind named by `s` ([`PiiKind::as_str`]), ignoring ASCII case.
    pub fn parse(s: &str) -> Option<PiiKind> {
        PiiKind::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(s))
    }
}

/// One detected value: `text[start..end]`, UTF-8 byte offsets on char boundaries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Finding {
    /// What the value is.
    pub kind: PiiKind,
    /// First byte of the value.
    pub start: usize,
    /// One past the last byte of the value.
    pub end: usize,
}

/// The detector: its regexes are compiled once in [`PiiScanner::new`] (about 4 ms) and it is
/// shared by reference across threads.
#[derive(Clone, Debug)]
pub struct PiiScanner {
    /// Every rule's pattern, to learn in one pass which rules have a candidate.
    prefilter: RegexSet,
    /// The same patterns one by one, in [`RULES`] order, to find the candidates.
    rules: Vec<(Rule, Regex)>,
}

/// A validated candidate before overlaps are settled; `rank` 0 (a term) wins over all.
struct Candidate {
    rank: usize,
    kind: PiiKind,
    start: usize,
    end: usize,
}

impl PiiScanner {
    /// Compiles the detector's patterns.
    #[allow(clippy::expect_used)]
    pub fn new() -> PiiScanner {
        // Cannot fail: the patterns are string literals in `patterns::RULES`, unchanged at
        // run time; `patterns::tests::every_pattern_compiles_alone_and_as_a_set` compiles
        // each of them and the set, and the compiled size is far below regex's default limit.
        let prefilter =
            RegexSet::new(RULES.iter().map(|(_, p)| *p)).expect("PII patterns are valid regexes");
        let rules = RULES
            .iter()
            .map(|&(rule, p)| (rule, Regex::new(p).expect("PII patterns are valid regexes")))
            .collect();
        PiiScanner { prefilter, rules }
    }

    /// Every finding in `text`, sorted by start, non-overlapping (higher-priority kind wins
    /// an overlap; Term findings win over everything).
    pub fn scan(&self, text: &str, terms: Option<&Terms>) -> Vec<Finding> {
        let mut found = Vec::new();
        if let Some(terms) = terms {
            found.extend(terms.find(text).into_iter().map(|(start, end)| Candidate {
                rank: 0,
                kind: PiiKind::Term,
                start,
                end,
            }));
        }
        let present = self.prefilter.matches(text);
        for index in present.iter() {
            self.collect(index, text, &mut found);
        }
        resolve(found)
    }

    /// Validated candidates of one rule. After an accepted candidate the search goes on
    /// from its end; after a rejected one, from where the rule's [`Resume`] says.
    fn collect(&self, index: usize, text: &str, out: &mut Vec<Candidate>) {
        let (rule, re) = &self.rules[index];
        let rank = rule.rank(index) + 1;
        let mut at = 0;
        while at < text.len() {
            let (start, end, whole_start, whole_end) = if rule.uses_group() {
                let Some(caps) = re.captures_at(text, at) else {
                    break;
                };
                let (Some(whole), Some(value)) = (caps.get(0), caps.get(1)) else {
                    break;
                };
                (value.start(), value.end(), whole.start(), whole.end())
            } else {
                let Some(m) = re.find_at(text, at) else {
                    break;
                };
                (m.start(), m.end(), m.start(), m.end())
            };
            let next = next_char(text, whole_start);
            if start < end && validate::accept(*rule, text, start, end) {
                out.push(Candidate {
                    rank,
                    kind: rule.kind(),
                    start,
                    end,
                });
                at = whole_end.max(next);
            } else {
                at = match rule.resume() {
                    Resume::NextChar => next,
                    Resume::AfterMatch => whole_end.max(next),
                };
            }
        }
    }
}

impl Default for PiiScanner {
    fn default() -> Self {
        PiiScanner::new()
    }
}

/// The offset of the character after the one starting at `at`.
fn next_char(text: &str, at: usize) -> usize {
    at + text[at..].chars().next().map_or(1, char::len_utf8)
}

/// Keeps, by rank and then leftmost-longest, each candidate that overlaps none kept so far.
fn resolve(mut found: Vec<Candidate>) -> Vec<Finding> {
    found.sort_by_key(|c| (c.rank, c.start, std::cmp::Reverse(c.end)));
    // start -> (end, kind); the kept ranges are disjoint, so only the last one starting
    // before a candidate's end can overlap it.
    let mut kept: BTreeMap<usize, (usize, PiiKind)> = BTreeMap::new();
    for c in found {
        let overlaps = kept
            .range(..c.end)
            .next_back()
            .is_some_and(|(_, &(end, _))| end > c.start);
        if !overlaps {
            kept.insert(c.start, (c.end, c.kind));
        }
    }
    kept.into_iter()
        .map(|(start, (end, kind))| Finding { kind, start, end })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hits(text: &str) -> Vec<(PiiKind, &str)> {
        PiiScanner::new()
            .scan(text, None)
            .into_iter()
            .map(|f| (f.kind, &text[f.start..f.end]))
            .collect()
    }

    #[test]
    fn kinds_round_trip_through_their_names() {
        for k in PiiKind::ALL {
            assert_eq!(PiiKind::parse(k.as_str()), Some(k));
            assert_eq!(PiiKind::parse(&k.as_str().to_ascii_lowercase()), Some(k));
        }
        assert_eq!(PiiKind::parse("uk_ni"), Some(PiiKind::UkNi));
        assert_eq!(PiiKind::parse("NAME"), None);
    }

    #[test]
    fn scanner_is_shareable() {
        fn shareable<T: Send + Sync>() {}
        shareable::<PiiScanner>();
        shareable::<Terms>();
    }

    #[test]
    fn one_value_of_each_kind() {
        use PiiKind::*;
        let cases = [
            (
                "write to jane.doe+tag@example.co.uk today",
                Email,
                "jane.doe+tag@example.co.uk",
            ),
            ("call +44 20 7946 0958 soon", Phone, "+44 20 7946 0958"),
            ("call +14155550132 soon", Phone, "+14155550132"),
            ("office (212) 555-0100 ext", Phone, "(212) 555-0100"),
            ("mobile 06 12 34 56 78", Phone, "06 12 34 56 78"),
            ("Tel. 030 12345678", Phone, "030 12345678"),
            ("Tel. 069/90009608", Phone, "069/90009608"),
            (
                "card 4111 1111 1111 1111 exp 12/29",
                Card,
                "4111 1111 1111 1111",
            ),
            ("amex 3782 822463 10005", Card, "3782 822463 10005"),
            ("visa 4111111111111111", Card, "4111111111111111"),
            (
                "IBAN DE89 3704 0044 0532 0130 00 please",
                Iban,
                "DE89 3704 0044 0532 0130 00",
            ),
            ("GB82WEST12345698765432", Iban, "GB82WEST12345698765432"),
            ("SSN 536-22-1234", Ssn, "536-22-1234"),
            ("{\"ssn\":\"536221234\"}", Ssn, "536221234"),
            ("NI number AB123456C", UkNi, "AB123456C"),
            ("server at 203.0.113.7.", Ip, "203.0.113.7"),
            (
                "addr 2001:db8::8a2e:370:7334 done",
                Ip,
                "2001:db8::8a2e:370:7334",
            ),
            ("addr 2001:db8::1.", Ip, "2001:db8::1"),
            ("key AKIAC6DYSCPG5IFQZDGW", Secret, "AKIAC6DYSCPG5IFQZDGW"),
            (
                "api_key = \"3f9a1c07b2e84d6a9e51c0d7f2b8a463\"",
                Secret,
                "3f9a1c07b2e84d6a9e51c0d7f2b8a463",
            ),
            (
                "secret: Zf3D0LXCM3EIMbgJpUNnkRtOfOueHznB",
                Secret,
                "Zf3D0LXCM3EIMbgJpUNnkRtOfOueHznB",
            ),
            ("my password is hunter2.", Secret, "hunter2"),
            (
                "hook https://hooks.slack.com/services/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",
                Secret,
                "hooks.slack.com/services/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",
            ),
            ("DB_PASSWORD=Tr0ub4dor&3 ./run", Secret, "Tr0ub4dor&3"),
            (
                "iban de89 3704 0044 0532 0130 00",
                Iban,
                "de89 3704 0044 0532 0130 00",
            ),
        ];
        for (text, kind, value) in cases {
            assert_eq!(hits(text), [(kind, value)], "{text}");
        }
    }

    #[test]
    fn pem_block_is_one_finding() {
        let text = "key:\n-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEAx9f3k2\nq7ZpL0+/w==\n-----END RSA PRIVATE KEY-----\nthanks";
        let found = hits(text);
        assert_eq!(found.len(), 1);
        assert!(found[0].1.starts_with("-----BEGIN") && found[0].1.ends_with("KEY-----"));
    }

    #[test]
    fn hard_negatives_find_nothing() {
        for text in [
            "order #1234567890123456 shipped",
            "ISBN 978-3-16-148410-0 and 0-306-40615-2",
            "upgrade to v1.2.3.4 or version 10.0.19041.1 or 1.2.3.4.5",
            "on 2024-01-15T12:30:45Z and 15/01/2024 12:30",
            "md5 d41d8cd98f00b204e9800998ecf8427e",
            "id 550e8400-e29b-41d4-a716-446655440000",
            "ts 1700000000000 and 1700000000",
            "mac 00:1A:2B:3C:4D:5E at 12:30:45",
            "use std::collections::HashMap; a::b::c",
            "AbstractSingletonProxyFactoryBean2",
            "lodash@4.17.21 and icon@2x.png",
            "987-65-4321 is the SSA's ad number, QQ 12 34 56 C is HMRC's",
            "tracking 1234 5678 9012 3456 7890 12",
            "API_KEY=1234567890abcdef1234567890abcdef and sk_live_XXXXXXXXXXXXXXXXXXXXXXXX",
            "payload: VGhlIHF1aWNrIGJyb3duIGZveCBqdW1wcyBvdmVyIHRoZSBsYXp5IGRvZy4=",
            "your password is incorrect; password: ${DB_PASSWORD}; reset_password=true",
        ] {
            assert_eq!(hits(text), [], "{text}");
        }
    }

    #[test]
    fn a_failed_candidate_does_not_hide_the_value_inside_it() {
        // `ZZ00 GB82 … 32` is one IBAN-shaped candidate that fails (no country ZZ); the
        // search resumes one character after its start, not after its end.
        let text = "ref ZZ00 GB82 WEST 1234 5698 7654 32 end";
        assert_eq!(hits(text), [(PiiKind::Iban, "GB82 WEST 1234 5698 7654 32")]);
    }

    #[test]
    fn digit_groups_glued_to_a_longer_number_are_not_values() {
        // Any 4-4-4-4 window of a 22-digit tracking code may pass IIN and Luhn.
        assert_eq!(hits("tracking 6011 6454 2841 0365 7890 12"), []);
        assert_eq!(hits("order 045-1234567-1234567"), []);
        assert_eq!(
            hits("ssn 676-40-5699, card 6011 6454 2841 0365"),
            [
                (PiiKind::Ssn, "676-40-5699"),
                (PiiKind::Card, "6011 6454 2841 0365")
            ]
        );
    }

    #[test]
    fn findings_are_sorted_disjoint_and_on_char_boundaries() {
        let text = "Grüße – jane@example.com, Tel. +49 30 23125 172, IP 192.0.2.1 ✓";
        let found = PiiScanner::new().scan(text, None);
        let kinds: Vec<PiiKind> = found.iter().map(|f| f.kind).collect();
        assert_eq!(kinds, [PiiKind::Email, PiiKind::Phone, PiiKind::Ip]);
        for w in found.windows(2) {
            assert!(w[0].end <= w[1].start);
        }
        for f in &found {
            assert!(text.is_char_boundary(f.start) && text.is_char_boundary(f.end));
        }
    }

    #[test]
    fn terms_win_over_every_other_kind() {
        let terms = Terms::new(&["jane@example.com".into(), "Project Nightjar".into()]).unwrap();
        let text = "mail jane@example.com about project nightjar";
        let found = PiiScanner::new().scan(text, Some(&terms));
        let got: Vec<(PiiKind, &str)> = found
            .iter()
            .map(|f| (f.kind, &text[f.start..f.end]))
            .collect();
        assert_eq!(
            got,
            [
                (PiiKind::Term, "jane@example.com"),
                (PiiKind::Term, "project nightjar")
            ]
        );
    }

    #[test]
    fn higher_priority_wins_an_overlap() {
        let mk = |rank, kind, start, end| Candidate {
            rank,
            kind,
            start,
            end,
        };
        let out = resolve(vec![
            mk(9, PiiKind::Phone, 0, 10),
            mk(3, PiiKind::Card, 5, 20),
            mk(9, PiiKind::Phone, 20, 25),
        ]);
        assert_eq!(
            out,
            [
                Finding {
                    kind: PiiKind::Card,
                    start: 5,
                    end: 20
                },
                Finding {
                    kind: PiiKind::Phone,
                    start: 20,
                    end: 25
                },
            ]
        );
    }

    #[test]
    fn empty_and_non_ascii_text() {
        assert_eq!(hits(""), []);
        assert_eq!(
            hits("日本語のテキスト、個人情報なし。Ünïcödé ½ ٣٤٥٦٧٨٩٠١٢٣٤٥٦"),
            []
        );
    }
}
