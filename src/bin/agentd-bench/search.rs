//! `agentd-bench search`: knowledge search latency at a given collection size.
//!
//! It fills two collections with synthetic documents (deterministic pseudo-words
//! drawn from a Zipf-like distribution, in sentences and paragraphs, so BM25 sees
//! realistic term statistics): `{prefix}-{chunks}` with at least `--chunks`
//! chunks and `{prefix}-{chunks/100}` with a hundredth of them; a collection
//! that already holds enough chunks is reused. Then each iteration times, in a
//! rotating order, one `grpc.health.v1.Health/Check` (the floor of any call on
//! the same connection), one Search of the small collection and one of the large,
//! with a fresh random query of 3 words. Errors are counted, never timed.

use std::io::Write;
use std::time::{Duration, Instant};

use agentd::pb::retrieval_service_client::RetrievalServiceClient;
use agentd::pb::{
    Document, IngestDocumentsRequest, ListCollectionsRequest, SearchMode, SearchRequest,
};
use anyhow::Context;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use crate::stats::{PERCENTILES, percentiles, percentiles_json};

#[derive(Debug, clap::Args)]
pub struct SearchArgs {
    /// agentd's gRPC address.
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    agentd: String,
    /// Chunks in the large collection, at least.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(100..))]
    chunks: u64,
    /// Measured iterations (each: a health check and a search of each collection).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    queries: u32,
    /// Unmeasured iterations first.
    #[arg(long, default_value_t = 50)]
    warmup: u32,
    /// Search mode.
    #[arg(long, value_enum, default_value_t = Mode::Sparse)]
    mode: Mode,
    /// Hits per search.
    #[arg(long, default_value_t = 10)]
    top_k: u32,
    /// Collection name prefix.
    #[arg(long, default_value = "bench")]
    prefix: String,
    /// Seed of the documents and queries.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// API key with the `ingest` role (`authorization: Bearer KEY`).
    #[arg(long)]
    api_key: Option<String>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum Mode {
    Sparse,
    Dense,
    Hybrid,
}

/// Distinct pseudo-words.
const VOCABULARY: u64 = 4000;
/// Words per synthetic document (about five 256-token chunks).
const WORDS_PER_DOCUMENT: usize = 600;
/// Documents per IngestDocuments call.
const BATCH: usize = 32;
const SYLLABLES: [&str; 16] = [
    "ka", "lo", "mi", "ren", "tos", "vel", "dar", "qui", "ne", "sol", "bra", "fen", "gu", "hal",
    "jor", "pin",
];

/// xorshift64*: deterministic, good enough for test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A word rank, log-uniform over the vocabulary (Zipf with exponent ~1).
    fn word(&mut self) -> String {
        let rank = ((VOCABULARY as f64).powf(self.unit()) as u64).saturating_sub(1);
        let mut word = String::new();
        let mut n = rank + 16;
        while n > 0 {
            word.push_str(SYLLABLES[(n % 16) as usize]);
            n /= 16;
        }
        word
    }
}

fn document(rng: &mut Rng) -> String {
    let mut text = String::new();
    for i in 1..=WORDS_PER_DOCUMENT {
        text.push_str(&rng.word());
        text.push_str(match i {
            i if i % 80 == 0 => ".\n\n",
            i if i % 12 == 0 => ". ",
            _ => " ",
        });
    }
    text
}

fn with_key<T>(message: T, api_key: Option<&str>) -> anyhow::Result<tonic::Request<T>> {
    let mut request = tonic::Request::new(message);
    if let Some(key) = api_key {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {key}").parse()?);
    }
    Ok(request)
}

/// Fills `collection` to at least `chunks` chunks; returns the chunk count and
/// the ingest time (zero when it was full already).
async fn fill(
    client: &mut RetrievalServiceClient<Channel>,
    collection: &str,
    chunks: u64,
    rng: &mut Rng,
    api_key: Option<&str>,
) -> anyhow::Result<(u64, Duration)> {
    let listed = client
        .list_collections(with_key(ListCollectionsRequest {}, api_key)?)
        .await?
        .into_inner();
    if let Some(existing) = listed.collections.iter().find(|c| c.name == collection)
        && existing.chunks >= chunks
    {
        return Ok((existing.chunks, Duration::ZERO));
    }
    let started = Instant::now();
    let (mut stored, mut next_id) = (0u64, 0u64);
    while stored < chunks {
        let documents = (0..BATCH)
            .map(|_| {
                next_id += 1;
                Document {
                    doc_id: format!("doc-{next_id:06}"),
                    text: document(rng),
                    ..Document::default()
                }
            })
            .collect();
        let reply = client
            .ingest_documents(with_key(
                IngestDocumentsRequest {
                    collection: collection.to_owned(),
                    documents,
                },
                api_key,
            )?)
            .await
            .with_context(|| format!("ingesting into {collection}"))?
            .into_inner();
        stored += reply
            .documents
            .iter()
            .map(|d| u64::from(d.chunks))
            .sum::<u64>();
    }
    Ok((stored, started.elapsed()))
}

#[derive(Default)]
struct Series {
    samples: Vec<Duration>,
    errors: usize,
    hits: u64,
    first_error: Option<String>,
}

impl Series {
    fn record(&mut self, result: anyhow::Result<(Duration, u64)>, measured: bool) {
        match result {
            Ok((elapsed, hits)) if measured => {
                self.samples.push(elapsed);
                self.hits += hits;
            }
            Ok(_) => {}
            Err(err) => {
                self.errors += usize::from(measured);
                self.first_error.get_or_insert_with(|| format!("{err:#}"));
            }
        }
    }
}

pub async fn run(args: SearchArgs) -> anyhow::Result<()> {
    let channel = Channel::from_shared(args.agentd.clone())?
        .connect()
        .await
        .with_context(|| format!("cannot connect to agentd at {}", args.agentd))?;
    let mut retrieval = RetrievalServiceClient::new(channel.clone());
    let mut health = HealthClient::new(channel);
    let api_key = args.api_key.as_deref();
    let mut rng = Rng(args.seed.max(1));

    let small_name = format!("{}-{}", args.prefix, args.chunks / 100);
    let large_name = format!("{}-{}", args.prefix, args.chunks);
    let small = fill(
        &mut retrieval,
        &small_name,
        args.chunks / 100,
        &mut rng,
        api_key,
    )
    .await?;
    let large = fill(&mut retrieval, &large_name, args.chunks, &mut rng, api_key).await?;

    let mode = match args.mode {
        Mode::Sparse => SearchMode::Sparse,
        Mode::Dense => SearchMode::Dense,
        Mode::Hybrid => SearchMode::Hybrid,
    };
    let mut series: [Series; 3] = Default::default();
    for i in 0..args.warmup + args.queries {
        let measured = i >= args.warmup;
        let query = format!("{} {} {}", rng.word(), rng.word(), rng.word());
        for step in 0..3 {
            let which = (i as usize + step) % 3;
            let started = Instant::now();
            let result = match which {
                0 => health
                    .check(with_key(HealthCheckRequest::default(), api_key)?)
                    .await
                    .map(|_| (started.elapsed(), 0))
                    .map_err(anyhow::Error::from),
                _ => {
                    let collection = if which == 1 { &small_name } else { &large_name };
                    retrieval
                        .search(with_key(
                            SearchRequest {
                                collection: collection.clone(),
                                query: query.clone(),
                                top_k: args.top_k,
                                mode: mode.into(),
                                ..SearchRequest::default()
                            },
                            api_key,
                        )?)
                        .await
                        .map(|reply| (started.elapsed(), reply.into_inner().hits.len() as u64))
                        .map_err(anyhow::Error::from)
                }
            };
            series[which].record(result, measured);
        }
    }

    let names = ["health check", &small_name, &large_name];
    for (name, s) in names.iter().zip(&series) {
        if let Some(err) = &s.first_error {
            if s.samples.is_empty() {
                anyhow::bail!("every measured call to {name} failed; the first: {err}");
            }
            writeln!(std::io::stderr().lock(), "first {name} error: {err}")?;
        }
    }
    let p: Vec<[f64; 4]> = series
        .iter()
        .map(|s| percentiles(s.samples.iter().copied()))
        .collect();
    let ratio = |a: &[f64; 4], b: &[f64; 4]| [a[0] / b[0], a[2] / b[2]];
    let (over_health, over_small) = (ratio(&p[2], &p[0]), ratio(&p[2], &p[1]));
    let mean_hits = |s: &Series| s.hits as f64 / s.samples.len().max(1) as f64;

    let mut out = std::io::stdout().lock();
    if args.json {
        let row = |name: &str, chunks: Option<(u64, Duration)>, s: &Series, p: &[f64; 4]| {
            serde_json::json!({
                "name": name,
                "chunks": chunks.map(|c| c.0),
                "ingest_seconds": chunks.map(|c| c.1.as_secs_f64()),
                "latency_ms": percentiles_json(p),
                "errors": s.errors,
                "mean_hits": mean_hits(s),
            })
        };
        let report = serde_json::json!({
            "queries": args.queries,
            "mode": format!("{:?}", args.mode).to_lowercase(),
            "top_k": args.top_k,
            "health": row("health check", None, &series[0], &p[0]),
            "small": row(&small_name, Some(small), &series[1], &p[1]),
            "large": row(&large_name, Some(large), &series[2], &p[2]),
            "large_over_health": {"p50": over_health[0], "p99": over_health[1]},
            "large_over_small": {"p50": over_small[0], "p99": over_small[1]},
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
        return Ok(());
    }
    for (name, (chunks, took)) in [(&small_name, small), (&large_name, large)] {
        if took.is_zero() {
            writeln!(out, "{name}: {chunks} chunks (already there)")?;
        } else {
            writeln!(
                out,
                "{name}: {chunks} chunks ingested in {:.1} s ({:.0} chunks/s)",
                took.as_secs_f64(),
                chunks as f64 / took.as_secs_f64()
            )?;
        }
    }
    writeln!(
        out,
        "{} iterations, mode {:?}, top_k {}; milliseconds",
        args.queries, args.mode, args.top_k
    )?;
    write!(out, "{:<16}", "call")?;
    for (name, _) in PERCENTILES {
        write!(out, "{name:>9}")?;
    }
    writeln!(out, "{:>8}{:>11}", "errors", "mean hits")?;
    for ((name, s), p) in names.iter().zip(&series).zip(&p) {
        write!(out, "{name:<16}")?;
        for value in p {
            write!(out, "{value:>9.3}")?;
        }
        writeln!(out, "{:>8}{:>11.1}", s.errors, mean_hits(s))?;
    }
    writeln!(
        out,
        "{large_name} / health check: p50 {:.2}x, p99 {:.2}x",
        over_health[0], over_health[1]
    )?;
    writeln!(
        out,
        "{large_name} / {small_name}: p50 {:.2}x, p99 {:.2}x",
        over_small[0], over_small[1]
    )?;
    Ok(())
}
