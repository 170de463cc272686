//! The labelled corpus `tests/corpus/pii.jsonl`: precision and recall per kind, by exact
//! (kind, start, end) match, held above the thresholds the README quotes.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{PiiKind, PiiScanner};

const CORPUS: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/corpus/pii.jsonl"
));

/// Per-kind floors; a detector miss is a miss, so these are met honestly or the test fails.
const MIN_PRECISION: f64 = 0.97;
const MIN_RECALL: f64 = 0.95;
/// Share of negative rows on which the detector must report nothing.
const MIN_CLEAN_NEGATIVES: f64 = 0.97;

#[derive(Deserialize)]
struct Row {
    id: String,
    label: String,
    text: String,
    spans: Vec<Span>,
}

#[derive(Deserialize)]
struct Span {
    #[serde(rename = "type")]
    kind: String,
    start: usize,
    end: usize,
    value: String,
}

#[derive(Default)]
struct Tally {
    spans: usize,
    tp: usize,
    fp: usize,
    fn_: usize,
}

impl Tally {
    fn precision(&self) -> f64 {
        ratio(self.tp, self.tp + self.fp)
    }
    fn recall(&self) -> f64 {
        ratio(self.tp, self.tp + self.fn_)
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 1.0 } else { a as f64 / b as f64 }
}

fn rows() -> Vec<Row> {
    CORPUS
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn corpus_spans_are_exact_byte_ranges() {
    for row in rows() {
        for s in &row.spans {
            assert_eq!(
                row.text.get(s.start..s.end),
                Some(s.value.as_str()),
                "{}",
                row.id
            );
            assert!(
                PiiKind::parse(&s.kind).is_some(),
                "{}: kind {}",
                row.id,
                s.kind
            );
        }
    }
}

#[test]
fn corpus_precision_and_recall_per_kind() {
    let scanner = PiiScanner::new();
    let mut tally: BTreeMap<PiiKind, Tally> = BTreeMap::new();
    let (mut negatives, mut clean_negatives) = (0, 0);
    let mut errors = Vec::new();
    for row in rows() {
        let gold: Vec<(PiiKind, usize, usize)> = row
            .spans
            .iter()
            .map(|s| (PiiKind::parse(&s.kind).unwrap(), s.start, s.end))
            .collect();
        let found: Vec<(PiiKind, usize, usize)> = scanner
            .scan(&row.text, None)
            .into_iter()
            .map(|f| (f.kind, f.start, f.end))
            .collect();
        if row.label == "negative" {
            negatives += 1;
            clean_negatives += usize::from(found.is_empty());
        }
        for g in &gold {
            let t = tally.entry(g.0).or_default();
            t.spans += 1;
            if found.contains(g) {
                t.tp += 1;
            } else {
                t.fn_ += 1;
                errors.push(format!(
                    "miss {} {:?} {:?}",
                    row.id,
                    g.0,
                    &row.text[g.1..g.2]
                ));
            }
        }
        for f in found.iter().filter(|f| !gold.contains(f)) {
            tally.entry(f.0).or_default().fp += 1;
            errors.push(format!(
                "extra {} {:?} {:?}",
                row.id,
                f.0,
                &row.text[f.1..f.2]
            ));
        }
    }
    println!("| type | spans | precision | recall |\n|---|---|---|---|");
    for (kind, t) in &tally {
        println!(
            "| {} | {} | {:.3} | {:.3} |",
            kind.as_str(),
            t.spans,
            t.precision(),
            t.recall()
        );
    }
    let clean = ratio(clean_negatives, negatives);
    println!("\nnegative rows without findings: {clean_negatives}/{negatives} ({clean:.3})");
    for e in &errors {
        println!("{e}");
    }
    let failing: Vec<String> = tally
        .iter()
        .filter(|(_, t)| t.precision() < MIN_PRECISION || t.recall() < MIN_RECALL)
        .map(|(k, t)| format!("{} P={:.3} R={:.3}", k.as_str(), t.precision(), t.recall()))
        .collect();
    assert!(
        failing.is_empty(),
        "below P {MIN_PRECISION} / R {MIN_RECALL}: {failing:?}"
    );
    assert!(clean >= MIN_CLEAN_NEGATIVES, "clean negatives {clean:.3}");
    assert!(tally.len() >= 8, "every corpus kind is present");
}
