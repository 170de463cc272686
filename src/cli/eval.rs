//! `agentd eval retrieval`: runs every query of a gold set through a running
//! server's `RetrievalService.Search` and scores the ranking.
//!
//! The gold set is JSONL, one `{"query": "...", "relevant_doc_ids": ["..."]}` a
//! line. Search returns chunks; the ranking scored is of documents: the
//! distinct doc_ids of the hits in order (the first chunk of a document ranks
//! it), from the best [`FETCH_CHUNKS`] chunks. Per query, recall@k is the share
//! of its relevant documents among the first k, and the reciprocal rank is
//! 1/rank of the first relevant document within the first 10, else 0; the
//! report gives their means over all queries.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::pb::retrieval_service_client::RetrievalServiceClient;
use crate::pb::{SearchMode, SearchRequest};

/// Chunks fetched per query, so that ten distinct documents are usually there.
pub const FETCH_CHUNKS: u32 = 50;
/// Queries in flight at once.
const CONCURRENCY: usize = 8;

/// One line of a gold set.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GoldQuery {
    /// The question.
    pub query: String,
    /// The documents that answer it.
    pub relevant_doc_ids: Vec<String>,
}

/// What to evaluate, and where.
#[derive(Clone, Debug)]
pub struct EvalArgs {
    /// The gold set (JSONL).
    pub gold: PathBuf,
    /// The collection searched.
    pub collection: String,
    /// The search mode.
    pub mode: SearchMode,
    /// The server's URL.
    pub server: String,
    /// The API key, if auth is on.
    pub api_key: Option<String>,
}

/// The scores of one run; serialised as the `--json` output.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// Mean recall of the first 5 documents.
    #[serde(rename = "recall@5")]
    pub recall_at_5: f64,
    /// Mean recall of the first 10 documents.
    #[serde(rename = "recall@10")]
    pub recall_at_10: f64,
    /// Mean reciprocal rank of the first relevant document within 10.
    #[serde(rename = "MRR@10")]
    pub mrr_at_10: f64,
    /// Queries run.
    pub queries: usize,
    /// The collection searched.
    pub collection: String,
    /// The mode the server used (it may fall back from hybrid to sparse).
    pub mode: String,
}

/// Minimum scores, e.g. `{"recall@5": 0.8, "MRR@10": 0.6}`; absent keys are not checked.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    /// Minimum recall@5.
    #[serde(rename = "recall@5")]
    pub recall_at_5: Option<f64>,
    /// Minimum recall@10.
    #[serde(rename = "recall@10")]
    pub recall_at_10: Option<f64>,
    /// Minimum MRR@10.
    #[serde(rename = "MRR@10")]
    pub mrr_at_10: Option<f64>,
}

impl Thresholds {
    /// Reads a thresholds file.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{} is not valid", path.display()))
    }

    /// Every score below its minimum, described.
    pub fn failures(&self, report: &EvalReport) -> Vec<String> {
        [
            ("recall@5", self.recall_at_5, report.recall_at_5),
            ("recall@10", self.recall_at_10, report.recall_at_10),
            ("MRR@10", self.mrr_at_10, report.mrr_at_10),
        ]
        .into_iter()
        .filter_map(|(name, minimum, actual)| {
            minimum
                .filter(|minimum| actual < *minimum)
                .map(|minimum| format!("{name} is {actual:.3}, below its threshold {minimum:.3}"))
        })
        .collect()
    }
}

impl EvalReport {
    /// The report as aligned text lines.
    pub fn to_text(&self) -> String {
        format!(
            "collection  {}\nmode        {}\nqueries     {}\nrecall@5    {:.3}\nrecall@10   {:.3}\nMRR@10      {:.3}\n",
            self.collection,
            self.mode,
            self.queries,
            self.recall_at_5,
            self.recall_at_10,
            self.mrr_at_10
        )
    }
}

/// Parses a gold set; every bad line is an error naming its number.
pub fn parse_gold(text: &str) -> anyhow::Result<Vec<GoldQuery>> {
    let mut queries = Vec::new();
    for (number, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let query: GoldQuery = serde_json::from_str(line)
            .with_context(|| format!("line {}: not a gold query", number + 1))?;
        if query.query.trim().is_empty() {
            anyhow::bail!("line {}: query is empty", number + 1);
        }
        if query.relevant_doc_ids.is_empty() {
            anyhow::bail!("line {}: relevant_doc_ids is empty", number + 1);
        }
        queries.push(query);
    }
    if queries.is_empty() {
        anyhow::bail!("the gold set has no queries");
    }
    Ok(queries)
}

/// The scores of one query: (recall@5, recall@10, reciprocal rank within 10),
/// given the ranked doc_ids of its hits (chunks, so possibly repeated).
pub fn score(ranked_chunks: &[String], relevant: &[String]) -> (f64, f64, f64) {
    let mut documents: Vec<&str> = Vec::new();
    for doc_id in ranked_chunks {
        if !documents.contains(&doc_id.as_str()) {
            documents.push(doc_id);
        }
    }
    let recall = |k: usize| {
        let found = relevant
            .iter()
            .filter(|r| documents.iter().take(k).any(|d| d == r))
            .count();
        found as f64 / relevant.len() as f64
    };
    let reciprocal_rank = documents
        .iter()
        .take(10)
        .position(|d| relevant.iter().any(|r| r == d))
        .map_or(0.0, |i| 1.0 / (i + 1) as f64);
    (recall(5), recall(10), reciprocal_rank)
}

/// Runs every query of the gold set and scores the rankings.
pub async fn run(args: EvalArgs) -> anyhow::Result<EvalReport> {
    let text = std::fs::read_to_string(&args.gold)
        .with_context(|| format!("cannot read {}", args.gold.display()))?;
    let gold = parse_gold(&text).with_context(|| format!("{}", args.gold.display()))?;
    let channel = tonic::transport::Channel::from_shared(args.server.clone())
        .with_context(|| format!("--server {:?} is not a URL", args.server))?
        .connect()
        .await
        .with_context(|| format!("cannot connect to {}", args.server))?;
    let client = RetrievalServiceClient::new(channel);
    let progress = ProgressBar::new(gold.len() as u64);
    progress.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} queries")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );

    let searches = gold.iter().map(|query| {
        let mut client = client.clone();
        let args = &args;
        async move {
            let mut request = tonic::Request::new(SearchRequest {
                collection: args.collection.clone(),
                query: query.query.clone(),
                top_k: FETCH_CHUNKS,
                filter: Default::default(),
                mode: args.mode.into(),
            });
            if let Some(key) = &args.api_key {
                request
                    .metadata_mut()
                    .insert("authorization", format!("Bearer {key}").parse()?);
            }
            let reply = client.search(request).await.map_err(|status| {
                anyhow::anyhow!(
                    "search for {:?} failed: {:?}: {}",
                    query.query,
                    status.code(),
                    status.message()
                )
            })?;
            anyhow::Ok((query, reply.into_inner()))
        }
    });
    let mut replies = futures::stream::iter(searches).buffer_unordered(CONCURRENCY);
    let (mut r5, mut r10, mut rr) = (0.0, 0.0, 0.0);
    let mut modes = BTreeMap::new();
    while let Some(reply) = replies.next().await {
        let (query, reply) = reply?;
        progress.inc(1);
        let ranked: Vec<String> = reply.hits.into_iter().map(|hit| hit.doc_id).collect();
        let (a, b, c) = score(&ranked, &query.relevant_doc_ids);
        r5 += a;
        r10 += b;
        rr += c;
        let mode = SearchMode::try_from(reply.mode).unwrap_or(SearchMode::Unspecified);
        *modes.entry(mode_name(mode)).or_insert(0usize) += 1;
    }
    drop(replies);
    progress.finish_and_clear();
    let n = gold.len() as f64;
    Ok(EvalReport {
        recall_at_5: r5 / n,
        recall_at_10: r10 / n,
        mrr_at_10: rr / n,
        queries: gold.len(),
        collection: args.collection,
        mode: modes.into_keys().collect::<Vec<_>>().join("+"),
    })
}

/// A mode's command-line name.
pub fn mode_name(mode: SearchMode) -> &'static str {
    match mode {
        SearchMode::Sparse => "sparse",
        SearchMode::Dense => "dense",
        SearchMode::Hybrid | SearchMode::Unspecified => "hybrid",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn documents_are_ranked_by_their_first_chunk() {
        // Chunks of a.md twice, then b, c, d, e, f: a is rank 1, f rank 6.
        let ranked = ids(&["a", "a", "b", "c", "d", "e", "f"]);
        assert_eq!(score(&ranked, &ids(&["f"])), (0.0, 1.0, 1.0 / 6.0));
        assert_eq!(score(&ranked, &ids(&["a"])), (1.0, 1.0, 1.0));
        assert_eq!(score(&ranked, &ids(&["c", "z"])), (0.5, 0.5, 1.0 / 3.0));
        assert_eq!(score(&ranked, &ids(&["z"])), (0.0, 0.0, 0.0));
        assert_eq!(score(&[], &ids(&["z"])), (0.0, 0.0, 0.0));
    }

    #[test]
    fn gold_lines_are_checked() {
        let good = "{\"query\": \"q\", \"relevant_doc_ids\": [\"a.md\"]}\n\n";
        assert_eq!(parse_gold(good).unwrap().len(), 1);
        for (text, problem) in [
            ("{\"query\": \"q\"}", "line 1"),
            (
                "{\"query\": \"q\", \"relevant_doc_ids\": []}",
                "relevant_doc_ids is empty",
            ),
            (
                "{\"query\": \" \", \"relevant_doc_ids\": [\"a\"]}",
                "query is empty",
            ),
            ("not json", "line 1"),
            ("", "no queries"),
        ] {
            let err = format!("{:#}", parse_gold(text).unwrap_err());
            assert!(err.contains(problem), "{text}: {err}");
        }
    }

    #[test]
    fn thresholds_name_every_score_below_them() {
        let report = EvalReport {
            recall_at_5: 0.8,
            recall_at_10: 0.9,
            mrr_at_10: 0.6,
            queries: 10,
            collection: "default".into(),
            mode: "sparse".into(),
        };
        let thresholds: Thresholds =
            serde_json::from_str(r#"{"recall@5": 0.85, "MRR@10": 0.5}"#).unwrap();
        let failures = thresholds.failures(&report);
        assert_eq!(failures.len(), 1, "{failures:?}");
        assert!(failures[0].starts_with("recall@5 is 0.800"), "{failures:?}");
        assert!(serde_json::from_str::<Thresholds>(r#"{"recall@50": 1}"#).is_err());
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["recall@5"], 0.8);
        assert_eq!(json["MRR@10"], 0.6);
    }
}
