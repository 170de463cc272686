//! What a `/metrics` scrape (Prometheus text format) exports: its sample
//! names, its declared families and the label values of each sample name.

use std::collections::{BTreeMap, BTreeSet};

/// What a `/metrics` scrape exports.
pub struct Scrape {
    /// Sample names (`name` of `name{labels} value`).
    pub samples: BTreeSet<String>,
    /// `# TYPE` lines: family name → type.
    families: BTreeMap<String, String>,
    /// Every value each label takes, by sample name and label.
    label_values: BTreeMap<(String, String), BTreeSet<String>>,
}

impl Scrape {
    pub fn parse(text: &str) -> Self {
        let mut scrape = Scrape {
            samples: BTreeSet::new(),
            families: BTreeMap::new(),
            label_values: BTreeMap::new(),
        };
        for line in text.lines() {
            if let Some(declared) = line.strip_prefix("# TYPE ") {
                let (family, kind) = declared.split_once(' ').unwrap();
                scrape.families.insert(family.to_owned(), kind.to_owned());
                continue;
            }
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            let name = &line[..end];
            scrape.samples.insert(name.to_owned());
            if line[end..].starts_with('{') {
                let close = line.rfind('}').unwrap();
                for (label, value) in label_pairs(&line[end + 1..close]) {
                    scrape
                        .label_values
                        .entry((name.to_owned(), label))
                        .or_default()
                        .insert(value);
                }
            }
        }
        scrape
    }

    /// Whether some sample `name` has `label="value"`.
    pub fn has_label_value(&self, name: &str, label: &str, value: &str) -> bool {
        self.label_values
            .get(&(name.to_owned(), label.to_owned()))
            .is_some_and(|values| values.contains(value))
    }

    /// The declared family a sample name belongs to, with its type, when the
    /// name is the family's or the family's plus a suffix of its samples.
    pub fn family_of(&self, name: &str) -> Option<(&str, &str)> {
        [
            "", "_total", "_bucket", "_sum", "_count", "_created", "_info",
        ]
        .iter()
        .filter_map(|suffix| name.strip_suffix(suffix))
        .find_map(|family| {
            self.families
                .get_key_value(family)
                .map(|(f, k)| (f.as_str(), k.as_str()))
        })
    }
}

/// Every `label="value"` pair of an exposition line's label set.
fn label_pairs(body: &str) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    let mut rest = body;
    while let Some((label, after)) = rest.split_once("=\"") {
        let label = label.trim_start_matches(',').trim();
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((at, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        value.push(escaped);
                    }
                }
                '"' => {
                    end = at + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        pairs.push((label.to_owned(), value));
        rest = &after[end..];
    }
    pairs
}

#[test]
fn label_values_are_kept_per_sample_name() {
    let scrape = Scrape::parse(
        "# TYPE t counter\nt_total{outcome=\"ok\",note=\"a \\\"b\\\", c\"} 1\n\
         u_count{outcome=\"full\"} 2\n",
    );
    assert!(scrape.has_label_value("t_total", "outcome", "ok"));
    assert!(scrape.has_label_value("t_total", "note", "a \"b\", c"));
    assert!(scrape.has_label_value("u_count", "outcome", "full"));
    // A value of the same label on another metric does not count.
    assert!(!scrape.has_label_value("t_total", "outcome", "full"));
    assert_eq!(scrape.family_of("t_total"), Some(("t", "counter")));
    assert_eq!(scrape.family_of("u_count"), None);
}
