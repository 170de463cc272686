use super::*;

fn finding(kind: PiiKind, text: &str, value: &str) -> Finding {
    let start = text.find(value).expect("value in text");
    Finding {
        kind,
        start,
        end: start + value.len(),
    }
}

/// A map holding EMAIL_1, CARD_1 and UK_NI_1, issued by masking a prompt.
fn turn_map() -> PlaceholderMap {
    let prompt = "Mail Jane@Example.com, card 4111 1111 1111 1111, NI AB 12 34 56 C.";
    let findings = [
        finding(PiiKind::Email, prompt, "Jane@Example.com"),
        finding(PiiKind::Card, prompt, "4111 1111 1111 1111"),
        finding(PiiKind::UkNi, prompt, "AB 12 34 56 C"),
    ];
    let mut map = PlaceholderMap::default();
    let masked = mask(prompt, &findings, &mut map);
    assert_eq!(masked, "Mail <EMAIL_1>, card <CARD_1>, NI <UK_NI_1>.");
    map
}

const ANSWER: &str = "Écris à <EMAIL_1> — carte <CARD_1>; NI <UK_NI_1>. a < b, <div>, x<y, \
                      <EMAIL_7>, <email_1>, 日本<EMAIL_1>🙂<UK_NI_1>";
const WANT: &str = "Écris à Jane@Example.com — carte 4111 1111 1111 1111; NI AB 12 34 56 C. a < b, \
                    <div>, x<y, <EMAIL_7>, <email_1>, 日本Jane@Example.com🙂AB 12 34 56 C";

fn boundaries(s: &str) -> Vec<usize> {
    (0..=s.len()).filter(|&i| s.is_char_boundary(i)).collect()
}

/// Pushes `parts` in order, checking the hold-back bound after every push.
fn stream(parts: &[&str], map: &PlaceholderMap) -> (String, u32) {
    let mut r = Restorer::new();
    let mut out = String::new();
    for part in parts {
        out += &r.push(part, map);
        assert!(r.held.len() < MAX_PLACEHOLDER_LEN, "held {:?}", r.held);
    }
    out += &r.finish(map);
    assert!(r.held.is_empty());
    (out, r.unknown())
}

#[test]
fn every_two_way_split_restores_exactly() {
    let map = turn_map();
    for i in boundaries(ANSWER) {
        let got = stream(&[&ANSWER[..i], &ANSWER[i..]], &map);
        assert_eq!(got, (WANT.to_owned(), 1), "split at {i}");
    }
}

#[test]
fn every_three_way_split_restores_exactly() {
    let map = turn_map();
    let cuts = boundaries(ANSWER);
    for (n, &i) in cuts.iter().enumerate() {
        for &j in &cuts[n..] {
            let got = stream(&[&ANSWER[..i], &ANSWER[i..j], &ANSWER[j..]], &map);
            assert_eq!(got, (WANT.to_owned(), 1), "split at {i},{j}");
        }
    }
}

#[test]
fn char_by_char_restores_exactly() {
    let map = turn_map();
    let chars: Vec<String> = ANSWER.chars().map(String::from).collect();
    let parts: Vec<&str> = chars.iter().map(String::as_str).collect();
    assert_eq!(stream(&parts, &map), (WANT.to_owned(), 1));
}

#[test]
fn ordinary_angle_brackets_stream_at_once_or_within_the_bound() {
    let map = turn_map();
    let mut r = Restorer::new();
    assert_eq!(
        r.push("if a < b then <div> x", &map),
        "if a < b then <div> x"
    );
    // A bare '<' could start a placeholder: held, then released by the next character.
    assert_eq!(r.push("<", &map), "");
    assert_eq!(r.push("y and ", &map), "<y and ");
    assert_eq!(r.push("Vec<T", &map), "Vec");
    assert_eq!(r.push("> done", &map), "<T> done");
    // Upper-case text that is no kind's prefix is not held.
    assert_eq!(r.push("<ABC", &map), "<ABC");
    assert_eq!(r.finish(&map), "");
    assert_eq!(r.unknown(), 0);
}

#[test]
fn a_placeholder_shaped_run_is_released_once_it_reaches_the_bound() {
    let map = turn_map();
    let mut r = Restorer::new();
    let mut out = String::new();
    let run = format!("<EMAIL_{}", "1".repeat(30));
    for c in run.chars() {
        out += &r.push(&c.to_string(), &map);
        assert!(r.held.len() < MAX_PLACEHOLDER_LEN);
    }
    assert_eq!(out.len() + r.held.len(), run.len());
    assert!(out.len() >= run.len() - MAX_PLACEHOLDER_LEN);
    out += &r.push(">", &map);
    out += &r.finish(&map);
    assert_eq!(out, format!("{run}>"));
    // Too long to be ours: passed through, not counted.
    assert_eq!(r.unknown(), 0);
}

#[test]
fn unknown_and_mangled_placeholders_are_emitted_as_written() {
    let map = turn_map();
    let text =
        "<EMAIL_2> <CARD_0> <CARD_01> <NAME_1> <email_1> <EMAIL 1> <EMAIL_> <EMAIL_1x> <UK_NI_1>";
    let (got, unknown) = restore_all(text, &map);
    assert_eq!(
        got,
        "<EMAIL_2> <CARD_0> <CARD_01> <NAME_1> <email_1> <EMAIL 1> <EMAIL_> <EMAIL_1x> AB 12 34 56 C"
    );
    // EMAIL_2, CARD_0 and CARD_01 are well-formed placeholders of our kinds, not in the map.
    assert_eq!(unknown, 3);
}

#[test]
fn tool_arguments_are_restored_whole() {
    let map = turn_map();
    let args = r#"{"to":"<EMAIL_1>","cc":"<EMAIL_1>","card":"<CARD_1>"}"#;
    let (got, unknown) = restore_all(args, &map);
    assert_eq!(
        got,
        r#"{"to":"Jane@Example.com","cc":"Jane@Example.com","card":"4111 1111 1111 1111"}"#
    );
    assert_eq!(unknown, 0);
}

#[test]
fn the_same_value_gets_the_same_placeholder_and_restores_to_the_first_form() {
    let mut map = PlaceholderMap::default();
    let a = map.placeholder(PiiKind::Email, "Jane@Example.com");
    assert_eq!(a, "<EMAIL_1>");
    assert_eq!(map.placeholder(PiiKind::Email, "jane@example.COM"), a);
    assert_eq!(
        map.placeholder(PiiKind::Email, "john@example.com"),
        "<EMAIL_2>"
    );
    assert_eq!(
        map.placeholder(PiiKind::Card, "4111-1111-1111-1111"),
        "<CARD_1>"
    );
    assert_eq!(
        map.placeholder(PiiKind::Card, "4111 1111 1111 1111"),
        "<CARD_1>"
    );
    assert_eq!(
        map.placeholder(PiiKind::Iban, "gb82 west 1234 5698 7654 32"),
        "<IBAN_1>"
    );
    assert_eq!(
        map.placeholder(PiiKind::Iban, "GB82WEST12345698765432"),
        "<IBAN_1>"
    );
    assert_eq!(map.placeholder(PiiKind::Ip, "2001:DB8::1"), "<IP_1>");
    assert_eq!(map.placeholder(PiiKind::Ip, "2001:db8:0::1"), "<IP_1>");
    assert_eq!(map.placeholder(PiiKind::Secret, "AbC"), "<SECRET_1>");
    assert_eq!(map.placeholder(PiiKind::Secret, "abc"), "<SECRET_2>");
    assert_eq!(map.original("<EMAIL_1>"), Some("Jane@Example.com"));
    assert_eq!(map.original("<CARD_1>"), Some("4111-1111-1111-1111"));
    assert_eq!(map.original("<EMAIL_3>"), None);
    assert_eq!(map.len(), 7);
    assert!(!map.is_empty());
    assert!(PlaceholderMap::default().is_empty());
}

#[test]
fn reserve_literals_numbers_above_the_users_own_placeholders() {
    let mut map = PlaceholderMap::default();
    map.reserve_literals(
        "I typed <EMAIL_3> and <EMAIL_01>, <UK_NI_2>, <IP_1234567890> and <CARD_1>.",
    );
    assert_eq!(
        map.placeholder(PiiKind::Email, "a@example.com"),
        "<EMAIL_4>"
    );
    assert_eq!(map.placeholder(PiiKind::UkNi, "AB123456C"), "<UK_NI_3>");
    // Ten digits do not move the counter (it would outgrow the hold-back bound) ...
    assert_eq!(map.placeholder(PiiKind::Ip, "10.0.0.1"), "<IP_1>");
    // ... and a reserved literal is skipped when the counter reaches it.
    assert_eq!(
        map.placeholder(PiiKind::Card, "4111111111111111"),
        "<CARD_2>"
    );
    assert_eq!(
        map.placeholder(PiiKind::Phone, "+44 20 7946 0958"),
        "<PHONE_1>"
    );
    // The user's literal comes back as written and is counted as unknown.
    assert_eq!(
        restore_all("<EMAIL_3> <EMAIL_4>", &map),
        ("<EMAIL_3> a@example.com".to_owned(), 1)
    );
}

#[test]
fn redact_uses_unnumbered_tokens_and_mask_skips_bad_findings() {
    let text = "to a@x.io and b@y.io";
    let findings = [
        finding(PiiKind::Email, text, "a@x.io"),
        finding(PiiKind::Email, text, "b@y.io"),
    ];
    assert_eq!(redact(text, &findings), "to <EMAIL> and <EMAIL>");
    let overlapping = [
        Finding {
            kind: PiiKind::Email,
            start: 3,
            end: 9,
        },
        Finding {
            kind: PiiKind::Email,
            start: 5,
            end: 12,
        },
        Finding {
            kind: PiiKind::Term,
            start: 14,
            end: 14,
        },
    ];
    let mut map = PlaceholderMap::default();
    assert_eq!(
        mask(text, &overlapping, &mut map),
        "to <EMAIL_1> and b@y.io"
    );
    let multibyte = "é€";
    let off_boundary = [Finding {
        kind: PiiKind::Term,
        start: 1,
        end: 3,
    }];
    assert_eq!(redact(multibyte, &off_boundary), multibyte);
}

#[test]
fn reset_drops_the_held_suffix() {
    let map = turn_map();
    let mut r = Restorer::new();
    assert_eq!(r.push("first try <EMA", &map), "first try ");
    r.reset();
    assert_eq!(r.push("IL_1>", &map), "IL_1>");
    assert_eq!(r.finish(&map), "");
}
