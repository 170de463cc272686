//! The labelled corpus (`tests/corpus/injection.jsonl`): detection and false-positive rates.
//!
//! Rows carry `split`: `tuned` rows come from the generator's templates and were looked at while
//! the phrase tables were written; `heldout` rows were written by hand, in another style, and are
//! not tuned against (no phrase or template exists because of a held-out row). Each split has its
//! own thresholds, set just below the measured figures.

use std::collections::BTreeMap;

use super::{DEFAULT_THRESHOLD, InjectionDetector};

const CORPUS: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/corpus/injection.jsonl"
));

// Thresholds sit just below the measured figures so a regression fails the test; one held-out
// row is 2.7 points. Measured now: tuned 0.980 detection / 0.007 false positives (357 / 283 rows,
// 80 of them the "gen2-" and 47 the "gen3-" paraphrases and look-alikes; 350 of 357, 2 of 283);
// held-out 0.750 / 0.027 (27 of 36, 1 of 37), never tuned against. History: with the first
// intent rules tuned 0.994 / 0.008 (328 / 266 rows) and held-out 0.611 / 0.027; before them
// tuned 0.997 / 0.000 (288 / 226 rows) and held-out 0.444 / 0.027.
const TUNED_MIN_DETECTION: f64 = 0.97;
const TUNED_MAX_FALSE_POSITIVES: f64 = 0.01;
// Looser: nothing was tuned against these rows, and there are only 36 + 37 of them.
const HELDOUT_MIN_DETECTION: f64 = 0.72;
const HELDOUT_MAX_FALSE_POSITIVES: f64 = 0.03;

struct Row {
    id: String,
    text: String,
    attack: bool,
    category: String,
    heldout: bool,
}

fn rows() -> Vec<Row> {
    CORPUS
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).expect("corpus line is JSON");
            let field = |k: &str| {
                v[k].as_str()
                    .unwrap_or_else(|| panic!("{k} in {line}"))
                    .to_owned()
            };
            Row {
                id: field("id"),
                text: field("text"),
                attack: field("label") == "attack",
                category: field("category"),
                heldout: field("split") == "heldout",
            }
        })
        .collect()
}

#[derive(Default)]
struct Tally {
    hit: usize,
    total: usize,
}

impl Tally {
    fn rate(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.hit as f64 / self.total as f64
        }
    }
}

#[test]
fn corpus_detection_and_false_positive_rates() {
    let det = InjectionDetector::new();
    let rows = rows();
    assert!(
        rows.iter().filter(|r| r.attack).count() >= 200,
        "the issue asks for ≥ 200 attacks"
    );
    assert!(
        rows.iter().filter(|r| !r.attack).count() >= 200,
        "the issue asks for ≥ 200 benign rows"
    );

    // (split, label, category) -> tally of rows at or above the threshold.
    let mut table: BTreeMap<(bool, bool, String), Tally> = BTreeMap::new();
    let mut split_totals: BTreeMap<(bool, bool), Tally> = BTreeMap::new();
    let mut misses = Vec::new();
    for r in &rows {
        let s = det.score(&r.text);
        let flagged = s.value >= DEFAULT_THRESHOLD;
        for tally in [
            table
                .entry((r.heldout, r.attack, r.category.clone()))
                .or_default(),
            split_totals.entry((r.heldout, r.attack)).or_default(),
        ] {
            tally.total += 1;
            tally.hit += usize::from(flagged);
        }
        if flagged != r.attack {
            misses.push(format!("{} {:.2} {:?}", r.id, s.value, s.categories));
        }
    }

    println!("| split | label | category | rows | flagged | rate |\n|---|---|---|---|---|---|");
    for ((heldout, attack, category), t) in &table {
        let split = if *heldout { "held-out" } else { "tuned" };
        let label = if *attack { "attack" } else { "benign" };
        println!(
            "| {split} | {label} | {category} | {} | {} | {:.3} |",
            t.total,
            t.hit,
            t.rate()
        );
    }
    for ((heldout, attack), t) in &split_totals {
        let split = if *heldout { "held-out" } else { "tuned" };
        let what = if *attack {
            "**detection**"
        } else {
            "**false positives**"
        };
        println!(
            "| {split} | {what} | all | {} | {} | **{:.3}** |",
            t.total,
            t.hit,
            t.rate()
        );
    }
    println!("\nwrong side of the threshold:\n{}", misses.join("\n"));

    let rate = |heldout: bool, attack: bool| {
        split_totals
            .get(&(heldout, attack))
            .map_or(0.0, Tally::rate)
    };
    assert!(
        rate(false, true) >= TUNED_MIN_DETECTION,
        "tuned detection {:.3}",
        rate(false, true)
    );
    assert!(
        rate(false, false) <= TUNED_MAX_FALSE_POSITIVES,
        "tuned FP {:.3}",
        rate(false, false)
    );
    assert!(
        rate(true, true) >= HELDOUT_MIN_DETECTION,
        "held-out detection {:.3}",
        rate(true, true)
    );
    assert!(
        rate(true, false) <= HELDOUT_MAX_FALSE_POSITIVES,
        "held-out FP {:.3}",
        rate(true, false)
    );
}

#[test]
fn fast_path_agrees_with_full_scan() {
    let det = InjectionDetector::new();
    for r in rows() {
        assert_eq!(
            det.score(&r.text),
            det.score_without_fast_path(&r.text),
            "{}",
            r.id
        );
    }
}

#[test]
fn scores_are_deterministic_and_in_range() {
    let (a, b) = (InjectionDetector::new(), InjectionDetector::default());
    for r in rows() {
        let s = a.score(&r.text);
        assert!((0.0..=1.0).contains(&s.value), "{}", r.id);
        assert_eq!(s, b.score(&r.text), "{}", r.id);
    }
}

/// The sealed set (`tests/corpus/injection_sealed.jsonl`): written by someone who never saw the
/// detector or its corpus. It was sealed only until its first measurement; since then it is a
/// dev set (its misses were read to find the kinds of wording the rules lacked, though no phrase
/// was copied from it, and each new rule was checked on "gen3-" paraphrases of our own). Its
/// figures are therefore no longer an unseen-data estimate; the held-out split and the final set
/// are. The thresholds sit just below the figures so that a regression fails here.
const SEALED: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/corpus/injection_sealed.jsonl"
));
// First measurement, while still sealed (after the first intent rules): 42 of 100 attacks, 13 of
// 100 benign rows (7 of 12 security documents, 4 of 8 chat-template questions). After it became a
// dev set (documents addressed to an AI reader, own-guidance extraction, lasting role-play
// set-ups, quoted or questioned attacks treated as mentions): 66 of 100 attacks, 1 of 100 benign.
const SEALED_MIN_DETECTION: f64 = 0.64;
const SEALED_MAX_FALSE_POSITIVES: f64 = 0.02;

/// Detection and false positives on a JSONL set at `threshold`, printed as a table.
fn measure(set: &str, threshold: f32) -> (Tally, Tally) {
    let det = InjectionDetector::new();
    let mut by_category: BTreeMap<(bool, String), Tally> = BTreeMap::new();
    let (mut attacks, mut benign) = (Tally::default(), Tally::default());
    for line in set.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).expect("set line is JSON");
        let text = v["text"].as_str().expect("text");
        let attack = v["label"] == "attack";
        let category = v["category"].as_str().expect("category").to_owned();
        let flagged = det.score(text).value >= threshold;
        for tally in [
            by_category.entry((attack, category)).or_default(),
            if attack { &mut attacks } else { &mut benign },
        ] {
            tally.total += 1;
            tally.hit += usize::from(flagged);
        }
    }
    println!(
        "\nat {threshold}:\n| label | category | rows | flagged | rate |\n|---|---|---|---|---|"
    );
    for ((attack, category), t) in &by_category {
        let label = if *attack { "attack" } else { "benign" };
        println!(
            "| {label} | {category} | {} | {} | {:.3} |",
            t.total,
            t.hit,
            t.rate()
        );
    }
    println!(
        "| attack | **detection** | {} | {} | **{:.3}** |\n| benign | **false positives** | {} | {} | **{:.3}** |",
        attacks.total,
        attacks.hit,
        attacks.rate(),
        benign.total,
        benign.hit,
        benign.rate()
    );
    (attacks, benign)
}

#[test]
fn sealed_set_detection_and_false_positive_rates() {
    let (attacks, benign) = measure(SEALED, DEFAULT_THRESHOLD);
    assert!(attacks.total >= 100 && benign.total >= 100);
    assert!(
        attacks.rate() >= SEALED_MIN_DETECTION,
        "sealed detection {:.3}",
        attacks.rate()
    );
    assert!(
        benign.rate() <= SEALED_MAX_FALSE_POSITIVES,
        "sealed FP {:.3}",
        benign.rate()
    );
}

/// The final set (`tests/corpus/injection_final.jsonl`): written by a third
/// author who saw neither the detector nor the other sets, measured once,
/// after the detector's last change, and never tuned against. Its figures are
/// the ones quoted. The thresholds sit just below them, at the default
/// thresholds (0.5: flag, and strip or block) and at 0.8 (for an operator who
/// raises `action_threshold`).
const FINAL: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/corpus/injection_final.jsonl"
));
// Measured once: at 0.5, 66 of 105 attacks (hidden 14/15, override 11, extraction 9, fake
// role 10, indirect 10, tool smuggling 7, persona 5 of 15) and 4 of 105 benign rows (2 of 15
// prompt-engineering questions, 1 security document, 1 template question); at 0.8, 40 of 105
// attacks (indirect 0 of 15) and 1 of 105 benign rows.
const FINAL_MIN_DETECTION: f64 = 0.60;
const FINAL_MAX_FALSE_POSITIVES: f64 = 0.05;
const FINAL_MIN_DETECTION_AT_ACTION: f64 = 0.36;
const FINAL_MAX_FALSE_POSITIVES_AT_ACTION: f64 = 0.02;

#[test]
fn final_set_detection_and_false_positive_rates() {
    let (attacks, benign) = measure(FINAL, DEFAULT_THRESHOLD);
    assert!(attacks.total >= 100 && benign.total >= 100);
    assert!(
        attacks.rate() >= FINAL_MIN_DETECTION,
        "final detection {:.3}",
        attacks.rate()
    );
    assert!(
        benign.rate() <= FINAL_MAX_FALSE_POSITIVES,
        "final FP {:.3}",
        benign.rate()
    );
    let (attacks, benign) = measure(FINAL, 0.8);
    // 0.8 misses every indirect injection: why the default action threshold is 0.5.
    assert!(
        attacks.rate() >= FINAL_MIN_DETECTION_AT_ACTION,
        "final detection at 0.8 {:.3}",
        attacks.rate()
    );
    assert!(
        benign.rate() <= FINAL_MAX_FALSE_POSITIVES_AT_ACTION,
        "final FP at 0.8 {:.3}",
        benign.rate()
    );
}
