//! The candidate patterns, one per detection rule, in priority order.
//!
//! Patterns only propose candidates; `validate.rs` decides. They share four habits:
//! - ASCII word boundaries `(?-u:\b)`, or `(?i-u)` (ASCII boundaries and case folding) for a
//!   whole pattern: a Unicode `\b` makes the lazy DFA give up on non-ASCII text and fall
//!   back to a slower engine (measured in the issue-17 prototype).
//! - `[0-9]`, never `\d`, which in Unicode mode also matches Arabic-Indic and full-width
//!   digits that the validators do not read.
//! - Open-ended repetitions (`{24,}`) rather than wide bounded ones (`{24,512}`), which
//!   multiply DFA states; the validators bound the length.
//! - No negated classes and no capture groups except where a rule needs one (the
//!   keyword-anchored secrets): the context around a candidate is checked in code.

use super::PiiKind;

/// One detection rule: a pattern, the kind it reports and how it is validated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Rule {
    /// `-----BEGIN … PRIVATE KEY-----` through the matching END line.
    Pem,
    /// Three base64url segments, the first two starting with `eyJ` (`{"`).
    Jwt,
    /// Vendor key prefixes, as in gitleaks' rules (AWS, GitHub, Slack tokens and webhook
    /// URLs, Stripe, OpenAI, Anthropic, Google).
    KeyPrefix,
    /// A value after `api_key=`, `token:`, `AWS_SECRET_ACCESS_KEY=` and the like (group 1).
    KeywordSecret,
    /// A value after `password:`, `pwd=`, `my password is` (group 1): shorter than a key,
    /// so it needs a letter and a digit instead of entropy.
    Password,
    Iban,
    /// Grouped card numbers (4-4-4-x, 4-6-5, 4-6-4) and bare 13–19 digit runs.
    Card,
    /// `AAA-GG-SSSS` or `AAA GG SSSS`.
    Ssn,
    /// Nine bare digits: an SSN only with `ssn` / `social security` just before it.
    SsnBare,
    Nino,
    Email,
    Ipv6,
    Ipv4,
    PhoneE164,
    PhoneNanp,
    PhoneUk,
    PhoneDe,
    PhoneFr,
    /// A long token from the base64/base64url alphabet, judged by its entropy.
    Entropy,
}

/// Where to search again after a candidate fails validation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Resume {
    /// One character after the candidate's start, so a wrong window over a digit run
    /// ("…5699 6011 6454 2841 0365…") does not hide the valid one starting inside it.
    NextChar,
    /// After the candidate: used where every later start inside the candidate would be
    /// rejected anyway (tokens need a clean left edge), so retrying would only cost time.
    AfterMatch,
}

/// Every rule with its pattern. The order is the priority order for overlaps (first wins);
/// `PiiScanner` compiles them in this order and indexes them by position.
pub(super) const RULES: [(Rule, &str); 19] = [
    (
        Rule::Pem,
        r"-----BEGIN[ A-Z0-9_-]{0,40}PRIVATE KEY(?: BLOCK)?-----(?s:.){16,}?-----END[ A-Z0-9_-]{0,40}PRIVATE KEY(?: BLOCK)?-----",
    ),
    (
        Rule::Jwt,
        r"(?-u:\b)eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
    ),
    (
        Rule::KeyPrefix,
        concat!(
            r"(?-u:\b)(?:",
            r"(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16}",
            r"|gh[pousr]_[0-9A-Za-z]{36}",
            r"|github_pat_[0-9A-Za-z_]{82}",
            r"|xox[abposr]-[0-9A-Za-z-]{10,}",
            r"|(?:sk|rk)_(?:live|test|prod)_[0-9A-Za-z]{10,99}",
            r"|sk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{20,}",
            r"|sk-[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20}",
            r"|sk-ant-(?:api|admin)[0-9]{2}-[A-Za-z0-9_-]{80,}",
            r"|AIza[0-9A-Za-z_-]{35}",
            r"|hooks\.slack\.com/services/T[A-Z0-9]{8,12}/B[A-Z0-9]{8,12}/[A-Za-z0-9]{24}",
            r")",
        ),
    ),
    (
        Rule::KeywordSecret,
        concat!(
            r"(?i-u)\b(?:[a-z0-9]{1,20}[_.-]){0,3}(?:api[_-]?key|apikey|access[_-]?key|secret|token|credentials?|authorization|auth)",
            r"[a-z0-9_-]{0,20}[\x22']?[ \t]{0,3}(?::|=|:=|=>)[ \t]{0,3}[\x22']?",
            r"(?:(?:bearer|basic|token)[ \t]+)?",
            r"([A-Za-z0-9+/_~-]{16,}={0,2})",
        ),
    ),
    (
        // Printable ASCII except space, quotes, `<>` and backtick; a value may not end in
        // `.,;:?)` so a sentence's punctuation stays outside the finding.
        Rule::Password,
        concat!(
            r"(?i-u)\b(?:[a-z0-9]{1,20}[_.-]){0,3}(?:passw(?:or)?d|passwd|pwd|passphrase|passwort|kennwort)[a-z_-]{0,10}",
            r"[\x22']?(?:[ \t]{0,3}(?::|=|:=|=>)|[ \t]+is)[ \t]{0,3}[\x22']?",
            r"([\x21\x23-\x26\x28-\x3B\x3D\x3F-\x5F\x61-\x7E]{5,63}[A-Za-z0-9!#$%&*+@^~/=_-])",
        ),
    ),
    (
        // Case-insensitive: people type IBANs in lower case; the validator upper-cases.
        Rule::Iban,
        r"(?i-u)\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b",
    ),
    (
        Rule::Card,
        concat!(
            r"(?-u:\b)(?:",
            r"[0-9]{4}(?: [0-9]{4}){2} [0-9]{1,7}",
            r"|[0-9]{4}(?:-[0-9]{4}){2}-[0-9]{1,7}",
            r"|[0-9]{4}[ -][0-9]{6}[ -][0-9]{4,5}",
            r"|[0-9]{13,19}",
            r")(?-u:\b)",
        ),
    ),
    (
        Rule::Ssn,
        r"(?-u:\b)[0-9]{3}[- ][0-9]{2}[- ][0-9]{4}(?-u:\b)",
    ),
    (Rule::SsnBare, r"(?-u:\b)[0-9]{9}(?-u:\b)"),
    (
        Rule::Nino,
        r"(?i-u)\b[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?[0-9]{2} ?[0-9]{2} ?[0-9]{2} ?[A-D]\b",
    ),
    (
        Rule::Email,
        r"(?i-u)\b[a-z0-9._%+-]{1,64}@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,24}\b",
    ),
    (
        // Eight full groups, or groups around one `::`: every address written without an
        // embedded IPv4 part has one of the two shapes, and clock times (`09:21:07`) have
        // neither, so log lines do not wake this rule.
        Rule::Ipv6,
        r"(?i-u)(?:(?:[0-9a-f]{1,4}:){7}[0-9a-f]{1,4}|(?:[0-9a-f]{1,4}:){1,7}:(?:[0-9a-f]{1,4}(?::[0-9a-f]{1,4}){0,6})?)(?:%[0-9a-z]{1,16})?",
    ),
    (
        Rule::Ipv4,
        r"(?-u:\b)(?:(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(?-u:\b)",
    ),
    (
        // `+CC`, an optional `(0)` or `(area)`, then up to six groups; 8–15 digits in all.
        Rule::PhoneE164,
        r"\+[1-9][0-9]{0,2}(?:[ .-]?\([0-9]{1,4}\))?(?:[ .-]?[0-9]{1,5}){1,6}",
    ),
    (
        Rule::PhoneNanp,
        r"(?:\([2-9][0-9]{2}\) ?|(?-u:\b)[2-9][0-9]{2}[-.])[2-9][0-9]{2}[-. ][0-9]{4}(?-u:\b)",
    ),
    (
        Rule::PhoneUk,
        r"(?-u:\b)0[1-9][0-9]{1,3} ?[0-9]{3,4} ?[0-9]{3,4}(?-u:\b)",
    ),
    (
        Rule::PhoneDe,
        r"(?-u:\b)0[1-9][0-9]{1,4}[ /-][0-9]{3,8}(?-u:\b)",
    ),
    (Rule::PhoneFr, r"(?-u:\b)0[1-9](?:[ .-][0-9]{2}){4}(?-u:\b)"),
    (Rule::Entropy, r"(?-u:\b)[A-Za-z0-9+/_-]{24,}={0,2}"),
];

impl Rule {
    /// The kind a finding of this rule reports.
    pub(super) fn kind(self) -> PiiKind {
        match self {
            Rule::Pem
            | Rule::Jwt
            | Rule::KeyPrefix
            | Rule::KeywordSecret
            | Rule::Password
            | Rule::Entropy => PiiKind::Secret,
            Rule::Iban => PiiKind::Iban,
            Rule::Card => PiiKind::Card,
            Rule::Ssn | Rule::SsnBare => PiiKind::Ssn,
            Rule::Nino => PiiKind::UkNi,
            Rule::Email => PiiKind::Email,
            Rule::Ipv6 | Rule::Ipv4 => PiiKind::Ip,
            Rule::PhoneE164 | Rule::PhoneNanp | Rule::PhoneUk | Rule::PhoneDe | Rule::PhoneFr => {
                PiiKind::Phone
            }
        }
    }

    /// Overlap priority, lower wins. Phone formats share one rank, so among overlapping phone
    /// candidates the leftmost, then the longest, wins; everything else follows the table order.
    pub(super) fn rank(self, index: usize) -> usize {
        match self {
            Rule::PhoneNanp | Rule::PhoneUk | Rule::PhoneDe | Rule::PhoneFr => {
                rule_index(Rule::PhoneE164)
            }
            _ => index,
        }
    }

    /// Whether the finding is capture group 1 rather than the whole match.
    pub(super) fn uses_group(self) -> bool {
        matches!(self, Rule::KeywordSecret | Rule::Password)
    }

    /// Where the search resumes after a rejected candidate.
    pub(super) fn resume(self) -> Resume {
        match self {
            Rule::Pem | Rule::Jwt | Rule::KeyPrefix | Rule::Entropy => Resume::AfterMatch,
            _ => Resume::NextChar,
        }
    }
}

/// The position of `rule` in [`RULES`].
const fn rule_index(rule: Rule) -> usize {
    let mut i = 0;
    while i < RULES.len() {
        if RULES[i].0 as u8 == rule as u8 {
            return i;
        }
        i += 1;
    }
    RULES.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pattern_compiles_alone_and_as_a_set() {
        for (rule, pattern) in RULES {
            assert!(regex::Regex::new(pattern).is_ok(), "{rule:?}");
        }
        assert!(regex::RegexSet::new(RULES.iter().map(|(_, p)| *p)).is_ok());
    }

    #[test]
    fn only_the_keyword_rules_have_a_group() {
        for (rule, pattern) in RULES {
            let re = regex::Regex::new(pattern).unwrap();
            assert_eq!(re.captures_len() == 2, rule.uses_group(), "{rule:?}");
        }
    }

    #[test]
    fn phone_formats_share_one_rank() {
        let ranks: Vec<usize> = RULES
            .iter()
            .enumerate()
            .filter(|(_, (r, _))| r.kind() == PiiKind::Phone)
            .map(|(i, (r, _))| r.rank(i))
            .collect();
        assert!(ranks.windows(2).all(|w| w[0] == w[1]), "{ranks:?}");
    }
}
