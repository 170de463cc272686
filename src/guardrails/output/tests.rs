use super::*;

/// A filter over copies of `deny` and a scanner like `pii`.
fn filter(deny: Option<&DenyList>, pii: Option<&PiiScanner>) -> OutputFilter {
    OutputFilter::new(
        deny.cloned().map(Arc::new),
        pii.map(|_| Arc::new(PiiScanner::new())),
    )
}

fn deny(terms: &[&str]) -> DenyList {
    DenyList::new(&terms.iter().map(|t| t.to_string()).collect::<Vec<_>>()).expect("valid terms")
}

fn boundaries(s: &str) -> Vec<usize> {
    (0..=s.len()).filter(|&i| s.is_char_boundary(i)).collect()
}

struct Run {
    out: String,
    cut: Option<usize>,
    redacted: Vec<(PiiKind, u32)>,
    /// Largest unreleased tail seen after a push.
    max_held: usize,
    /// Bytes released before `finish`.
    streamed: usize,
}

fn run(deny: Option<&DenyList>, pii: Option<&PiiScanner>, parts: &[&str]) -> Run {
    let mut f = filter(deny, pii);
    let mut r = Run {
        out: String::new(),
        cut: None,
        redacted: vec![],
        max_held: 0,
        streamed: 0,
    };
    for part in parts {
        match f.push(part) {
            Step::Release(t) => r.out += &t,
            Step::Cut { text, term_index } => {
                r.out += &text;
                r.cut = Some(term_index);
                assert_eq!(f.push("more"), Step::Release(String::new()));
                assert_eq!(f.finish(), Step::Release(String::new()));
                r.redacted = f.redacted();
                return r;
            }
        }
        r.max_held = r.max_held.max(f.text.len() - f.start);
        // Released context stays bounded (a char may push it a few bytes over).
        assert!(f.start < LEFT_CONTEXT + 4, "context {}", f.start);
    }
    r.streamed = r.out.len();
    match f.finish() {
        Step::Release(t) => r.out += &t,
        Step::Cut { text, term_index } => {
            r.out += &text;
            r.cut = Some(term_index);
        }
    }
    r.redacted = f.redacted();
    r
}

fn counts(findings: &[Finding]) -> Vec<(PiiKind, u32)> {
    let mut m = BTreeMap::new();
    for f in findings {
        *m.entry(f.kind).or_insert(0) += 1;
    }
    m.into_iter().collect()
}

/// Checks every two-way split and the one-char-per-delta stream of `answer`.
fn every_split(
    deny: Option<&DenyList>,
    pii: Option<&PiiScanner>,
    answer: &str,
    want: &str,
    cut: Option<usize>,
    redacted: &[(PiiKind, u32)],
) {
    for i in boundaries(answer) {
        let r = run(deny, pii, &[&answer[..i], &answer[i..]]);
        assert_eq!((r.out.as_str(), r.cut), (want, cut), "split at {i}");
        assert_eq!(r.redacted, redacted, "split at {i}");
    }
    let chars: Vec<String> = answer.chars().map(String::from).collect();
    let parts: Vec<&str> = chars.iter().map(String::as_str).collect();
    let r = run(deny, pii, &parts);
    assert_eq!((r.out.as_str(), r.cut), (want, cut), "char by char");
    assert_eq!(r.redacted, redacted, "char by char");
}

const TERMS: [&str; 4] = ["bomb", "secret plan", "forbidden fruit", "$$$"];

#[test]
fn a_term_straddling_deltas_cuts_at_its_start_for_every_split() {
    let list = deny(&TERMS);
    let answer = "Ünïcode 日本: a bombay trip, bombs away, abomb_x; the SECRET  plan? No: the SeCrEt PlAn is here.";
    let want = "Ünïcode 日本: a bombay trip, bombs away, abomb_x; the SECRET  plan? No: the ";
    every_split(Some(&list), None, answer, want, Some(1), &[]);
}

#[test]
fn leftmost_longest_is_chosen_whatever_the_split() {
    let list = deny(&["plan", "secret plan", "a b c d", "b"]);
    every_split(
        Some(&list),
        None,
        "we have a secret plan.",
        "we have a ",
        Some(1),
        &[],
    );
    every_split(Some(&list), None, "x a b c e", "x a ", Some(3), &[]);
    every_split(Some(&list), None, "x a b c d.", "x ", Some(2), &[]);
    every_split(Some(&list), None, "a bc d", "a bc d", None, &[]);
}

#[test]
fn word_boundaries_apply_only_at_word_edges_of_a_term() {
    let list = deny(&TERMS);
    every_split(
        Some(&list),
        None,
        "bombay, bombs, abomb, bomb_",
        "bombay, bombs, abomb, bomb_",
        None,
        &[],
    );
    every_split(Some(&list), None, "a BOMB!", "a ", Some(0), &[]);
    // At the very end of the answer the end boundary holds.
    every_split(Some(&list), None, "so: bomb", "so: ", Some(0), &[]);
    // `$$$` has no word edge: it matches inside a word.
    every_split(Some(&list), None, "pay x$$$y", "pay x", Some(3), &[]);
}

#[test]
fn only_ascii_letters_are_case_folded() {
    let list = deny(&["straße"]);
    every_split(Some(&list), None, "die STRAßE.", "die ", Some(0), &[]);
    every_split(Some(&list), None, "die STRASSE.", "die STRASSE.", None, &[]);
}

#[test]
fn ordinary_text_streams_at_once_and_only_a_term_prefix_is_held() {
    let list = deny(&TERMS);
    let mut f = filter(Some(&list), None);
    assert_eq!(
        f.push("hello there, a few words"),
        Step::Release("hello there, a few words".into())
    );
    assert_eq!(f.push(" abo"), Step::Release(" abo".into()));
    assert_eq!(f.push(" the bo"), Step::Release(" the ".into()));
    assert_eq!(f.push("mbe"), Step::Release("bombe".into()));
    assert_eq!(f.push(" the Secret pla"), Step::Release(" the ".into()));
    assert_eq!(f.push("ne"), Step::Release("Secret plane".into()));
    assert_eq!(f.finish(), Step::Release(String::new()));
}

#[test]
fn the_deny_hold_back_never_exceeds_the_longest_term() {
    let list = deny(&TERMS);
    let longest = TERMS.iter().map(|t| t.len()).max().unwrap_or(0);
    let answer = "the forbidden frui the forbidden fru the secret pla bo bom $$ forbidden";
    let chars: Vec<String> = answer.chars().map(String::from).collect();
    let parts: Vec<&str> = chars.iter().map(String::as_str).collect();
    let r = run(Some(&list), None, &parts);
    assert_eq!(r.out, answer);
    assert!(r.max_held <= longest, "held {}", r.max_held);
    assert_eq!(r.streamed, answer.len() - "forbidden".len());
}

/// About 900 bytes with emails and cards scattered across window boundaries, multibyte text between.
fn pii_answer() -> String {
    let mut s = String::new();
    for i in 0..12 {
        s += &format!("Étape {i} — naïve café 日本語 🙂; ");
        if i % 3 == 0 {
            s += &format!("write to user{i}@example.com, ");
        }
        if i % 4 == 1 {
            s += "card 4111 1111 1111 1111 or 5500-0000-0000-0004; ";
        }
    }
    s
}

#[test]
fn pii_is_redacted_like_a_one_shot_scan_for_every_split() {
    let scanner = PiiScanner::new();
    let answer = pii_answer();
    assert!(answer.len() > 2 * (PII_WINDOW + PII_RELEASE_STEP));
    let findings = scanner.scan(&answer, None);
    assert!(findings.len() >= 9);
    let want = redact(&answer, &findings);
    every_split(
        None,
        Some(&scanner),
        &answer,
        &want,
        None,
        &counts(&findings),
    );
}

#[test]
fn pii_hold_back_is_the_window_and_text_keeps_streaming() {
    let scanner = PiiScanner::new();
    let plain: String = "Ordinary words, ß and 日本語 🙂. ".repeat(40);
    let chars: Vec<String> = plain.chars().map(String::from).collect();
    let parts: Vec<&str> = chars.iter().map(String::as_str).collect();
    let r = run(None, Some(&scanner), &parts);
    assert_eq!(r.out, plain);
    assert!(
        r.max_held < PII_WINDOW + PII_RELEASE_STEP,
        "held {}",
        r.max_held
    );
    assert!(r.streamed >= plain.len() - (PII_WINDOW + PII_RELEASE_STEP));

    // With findings the cut can move back to a finding's start: at most one finding longer.
    let answer = pii_answer();
    let chars: Vec<String> = answer.chars().map(String::from).collect();
    let parts: Vec<&str> = chars.iter().map(String::as_str).collect();
    let r = run(None, Some(&scanner), &parts);
    let findings = scanner.scan(&answer, None);
    let longest = findings.iter().map(|f| f.end - f.start).max().unwrap_or(0);
    assert!(
        r.max_held < PII_WINDOW + PII_RELEASE_STEP + longest,
        "held {}",
        r.max_held
    );
    // What is left after the last push is the redacted held tail, no longer than the raw one.
    let want = redact(&answer, &findings);
    assert!(r.streamed >= want.len() - (PII_WINDOW + PII_RELEASE_STEP + longest));
}

#[test]
fn with_both_filters_the_deny_list_sees_the_answer_before_redaction() {
    let scanner = PiiScanner::new();
    // `email` never matches our own `<EMAIL>` tokens ...
    let list = deny(&["email", "jane"]);
    let answer = "write to bob@example.com now";
    every_split(
        Some(&list),
        Some(&scanner),
        answer,
        "write to <EMAIL> now",
        None,
        &[(PiiKind::Email, 1)],
    );
    // ... and `jane` matches inside a raw address.
    let answer = "card 4111 1111 1111 1111, then mail jane@example.com";
    every_split(
        Some(&list),
        Some(&scanner),
        answer,
        "card <CARD>, then mail ",
        Some(1),
        &[(PiiKind::Card, 1)],
    );
}

#[test]
fn a_cut_after_long_text_redacts_what_it_releases() {
    let scanner = PiiScanner::new();
    let list = deny(&TERMS);
    let answer = format!("{} and now the forbidden fruit, then a@b.io", pii_answer());
    let prefix = &answer[..answer.find("forbidden").unwrap_or(0)];
    let findings = scanner.scan(prefix, None);
    every_split(
        Some(&list),
        Some(&scanner),
        &answer,
        &redact(prefix, &findings),
        Some(2),
        &counts(&findings),
    );
}

#[test]
fn reset_drops_the_held_tail_and_a_cut() {
    let list = deny(&TERMS);
    let mut f = filter(Some(&list), None);
    assert_eq!(f.push("a bo"), Step::Release("a ".into()));
    f.reset();
    assert_eq!(f.push("mb."), Step::Release("mb.".into()));
    assert_eq!(
        f.push(" bomb "),
        Step::Cut {
            text: " ".into(),
            term_index: 0
        }
    );
    f.reset();
    assert_eq!(f.push("fine"), Step::Release("fine".into()));
}

#[test]
fn bad_terms_are_rejected_by_index_and_an_empty_list_filters_nothing() {
    let long = "a".repeat(MAX_TERM_LEN + 1);
    assert_eq!(
        DenyList::new(&["ok".into(), "  ".into()]).err(),
        Some("deny-list term 1 is empty".into())
    );
    assert!(
        DenyList::new(&[long])
            .err()
            .is_some_and(|e| e.contains("term 0"))
    );
    let empty = DenyList::new(&[]).expect("empty list");
    assert!(empty.is_empty());
    assert!(!deny(&TERMS).is_empty());
    let mut f = filter(Some(&empty), None);
    assert_eq!(f.push("bomb"), Step::Release("bomb".into()));
}

#[test]
fn the_boundary_check_sees_released_text_in_a_long_answer() {
    let list = deny(&TERMS);
    let preamble = "A long preamble that is released well before the term shows up, ".repeat(3);
    let answer = format!("{preamble}abomb, xbomb. Then bomb.");
    let want = format!("{preamble}abomb, xbomb. Then ");
    every_split(Some(&list), None, &answer, &want, Some(0), &[]);
    let scanner = PiiScanner::new();
    every_split(Some(&list), Some(&scanner), &answer, &want, Some(0), &[]);
}

#[test]
fn a_match_at_the_end_of_the_text_is_decided_only_at_the_end_of_the_answer() {
    let list = deny(&TERMS);
    assert_eq!(list.first_match("a bomb", 0, false), None);
    assert_eq!(list.first_match("a bomb", 0, true), Some((2, 0)));
    assert_eq!(list.first_match("a bomb ", 0, false), Some((2, 0)));
    assert_eq!(list.first_match("a bomb ", 3, false), None);
}
