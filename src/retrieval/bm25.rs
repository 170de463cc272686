//! Sparse BM25 vectors, computed without a model. Ingest and query tokenise the
//! same way: Unicode words, lowercased, English stop words dropped, Snowball
//! (Porter 2) stems, each term hashed to a stable 32-bit index.
//!
//! A document vector carries BM25's term-frequency part, saturated by `k1` and
//! normalised by length with `b`; the inverse document frequency is applied by
//! Qdrant at query time (the collection's sparse vector has the IDF modifier), so
//! ingest needs no corpus statistics. A query vector weighs each distinct term 1.

use std::collections::BTreeMap;

use rust_stemmers::{Algorithm, Stemmer};

/// A sparse vector: sorted, distinct indices and their weights.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SparseVector {
    /// Term indices, ascending.
    pub indices: Vec<u32>,
    /// Weights, one per index.
    pub values: Vec<f32>,
}

impl SparseVector {
    /// Whether the vector has no term.
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }
}

/// BM25's parameters and the tokeniser.
pub struct Bm25 {
    stemmer: Stemmer,
    k1: f32,
    b: f32,
    average_length: f32,
}

impl std::fmt::Debug for Bm25 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bm25")
            .field("k1", &self.k1)
            .field("b", &self.b)
            .field("average_length", &self.average_length)
            .finish()
    }
}

impl Default for Bm25 {
    /// The usual parameters (k1 = 1.2, b = 0.75), with an average chunk length of
    /// 256 terms (the chunker's default size, less stop words).
    fn default() -> Self {
        Self::new(1.2, 0.75, 256.0)
    }
}

/// Words too common to tell documents apart.
const STOP_WORDS: &[&str] = &[
    "a", "about", "after", "all", "also", "am", "an", "and", "any", "are", "as", "at", "be",
    "been", "before", "being", "but", "by", "can", "could", "did", "do", "does", "doing", "for",
    "from", "had", "has", "have", "having", "he", "her", "here", "hers", "him", "his", "how", "i",
    "if", "in", "into", "is", "it", "its", "just", "me", "more", "most", "my", "no", "nor", "not",
    "of", "on", "once", "only", "or", "other", "our", "ours", "out", "over", "own", "same", "she",
    "should", "so", "some", "such", "than", "that", "the", "their", "them", "then", "there",
    "these", "they", "this", "those", "through", "to", "too", "under", "until", "up", "very",
    "was", "we", "were", "what", "when", "where", "which", "while", "who", "whom", "why", "will",
    "with", "would", "you", "your", "yours",
];

impl Bm25 {
    /// BM25 with saturation `k1`, length normalisation `b` and the expected
    /// average document length in terms.
    pub fn new(k1: f32, b: f32, average_length: f32) -> Self {
        Self {
            stemmer: Stemmer::create(Algorithm::English),
            k1,
            b,
            average_length: average_length.max(1.0),
        }
    }

    /// The terms of `text`, in order.
    pub fn terms(&self, text: &str) -> Vec<String> {
        text.split(|c: char| !c.is_alphanumeric())
            .filter(|word| !word.is_empty())
            .map(str::to_lowercase)
            .filter(|word| !STOP_WORDS.contains(&word.as_str()))
            .map(|word| self.stemmer.stem(&word).into_owned())
            .collect()
    }

    /// The vector of a document (a chunk).
    pub fn document(&self, text: &str) -> SparseVector {
        let terms = self.terms(text);
        let length = terms.len() as f32;
        let mut frequencies: BTreeMap<u32, f32> = BTreeMap::new();
        for term in &terms {
            *frequencies.entry(term_index(term)).or_default() += 1.0;
        }
        let norm = self.k1 * (1.0 - self.b + self.b * length / self.average_length);
        let (indices, values) = frequencies
            .into_iter()
            .map(|(index, tf)| (index, tf * (self.k1 + 1.0) / (tf + norm)))
            .unzip();
        SparseVector { indices, values }
    }

    /// The vector of a query: each distinct term weighs 1.
    pub fn query(&self, text: &str) -> SparseVector {
        let mut indices: Vec<u32> = self.terms(text).iter().map(|t| term_index(t)).collect();
        indices.sort_unstable();
        indices.dedup();
        let values = vec![1.0; indices.len()];
        SparseVector { indices, values }
    }
}

/// A term's index: 32-bit FNV-1a of its UTF-8 bytes, stable across builds and
/// platforms (std's hasher is not).
fn term_index(term: &str) -> u32 {
    term.bytes().fold(0x811c_9dc5_u32, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ingest_and_query_tokenise_the_same_way() {
        let bm25 = Bm25::default();
        assert_eq!(
            bm25.terms("The Deployments were FROZEN!"),
            ["deploy", "frozen"]
        );
        let doc = bm25.document("Deployments are frozen during the freeze window.");
        let query = bm25.query("When are deployments frozen?");
        for index in &query.indices {
            assert!(doc.indices.contains(index), "{query:?} vs {doc:?}");
        }
    }

    #[test]
    fn vectors_are_sorted_and_distinct_and_frequency_saturates() {
        let bm25 = Bm25::default();
        let doc = bm25.document("error budget error budget error budget policy");
        assert!(doc.indices.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(doc.indices.len(), 3);
        let weight = |term: &str| {
            let i = doc
                .indices
                .iter()
                .position(|&x| x == term_index(term))
                .unwrap();
            doc.values[i]
        };
        assert!(weight("error") > weight("polici"));
        assert!(weight("error") < 3.0 * weight("polici"));
        assert!(bm25.query("the and of").is_empty());
    }

    #[test]
    fn term_indices_are_stable() {
        // FNV-1a reference values.
        assert_eq!(term_index(""), 0x811c_9dc5);
        assert_eq!(term_index("a"), 0xe40c_292c);
        assert_eq!(term_index("foobar"), 0xbf9c_f968);
    }
}
