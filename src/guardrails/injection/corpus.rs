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
// row is 2.7 points. Measured: tuned 0.997 detection / 0.000 false positives; held-out 0.444 /
// 0.027. The gap is the point of the split: the phrase tables generalise poorly to wording the
// generator's templates do not use (see the README).
const TUNED_MIN_DETECTION: f64 = 0.97;
const TUNED_MAX_FALSE_POSITIVES: f64 = 0.01;
// Looser: nothing was tuned against these rows, and there are only 36 + 37 of them.
const HELDOUT_MIN_DETECTION: f64 = 0.41;
const HELDOUT_MAX_FALSE_POSITIVES: f64 = 0.06;

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
