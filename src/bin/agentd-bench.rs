//! `agentd-bench`: measures what agentd adds on top of the LLM it calls.
//!
//! `ttft` sends streamed chats one at a time, alternately through agentd
//! (`AgentService.Chat`) and straight to the same OpenAI-compatible upstream
//! (`POST /chat/completions`, streamed), and reports time to first token and
//! total latency for each, and agentd − direct at each percentile. Alternating
//! (agentd then direct, then direct then agentd) spreads machine drift over both
//! sides. This is a benchmark tool, not a test: nothing asserts on its numbers.

use std::io::Write;
use std::time::{Duration, Instant};

use agentd::pb::agent_service_client::AgentServiceClient;
use agentd::pb::chat_response::Event;
use agentd::pb::{ChatRequest, TurnOptions};
use anyhow::Context;
use clap::{Parser, Subcommand};
use futures::StreamExt;
use tonic::transport::Channel;

#[derive(Debug, Parser)]
#[command(name = "agentd-bench", about = "Latency benchmarks for agentd")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Time to first token and total latency, through agentd and direct.
    Ttft(TtftArgs),
}

#[derive(Debug, clap::Args)]
struct TtftArgs {
    /// agentd's gRPC address.
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    agentd: String,
    /// The upstream's base URL, including the version path.
    #[arg(long, default_value = "http://127.0.0.1:8089/v1")]
    upstream: String,
    /// Measured requests per target.
    #[arg(long, default_value_t = 200)]
    requests: usize,
    /// Unmeasured requests per target first.
    #[arg(long, default_value_t = 20)]
    warmup: usize,
    /// Model id sent upstream (agentd uses its default model).
    #[arg(long, default_value = "gpt-4o-mini")]
    model: String,
    /// API key for agentd and the upstream.
    #[arg(long)]
    api_key: Option<String>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

const MESSAGE: &str = "Say something.";

/// One streamed request's timings.
#[derive(Clone, Copy, Debug)]
struct Sample {
    ttft: Duration,
    total: Duration,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Ttft(args) => ttft(args).await,
    }
}

async fn ttft(args: TtftArgs) -> anyhow::Result<()> {
    let channel = Channel::from_shared(args.agentd.clone())?
        .connect()
        .await
        .with_context(|| format!("cannot connect to agentd at {}", args.agentd))?;
    let mut agent = AgentServiceClient::new(channel);
    let http = reqwest::Client::builder().tcp_nodelay(true).build()?;
    let endpoint = format!("{}/chat/completions", args.upstream.trim_end_matches('/'));

    let (mut through, mut direct, mut errors) = (Vec::new(), Vec::new(), (0usize, 0usize));
    for i in 0..args.warmup + args.requests {
        let measured = i >= args.warmup;
        let order = if i % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        };
        for via_agentd in order {
            let sample = if via_agentd {
                chat_agentd(&mut agent, args.api_key.as_deref()).await
            } else {
                chat_direct(&http, &endpoint, &args.model, args.api_key.as_deref()).await
            };
            match (sample, via_agentd) {
                (Ok(sample), true) if measured => through.push(sample),
                (Ok(sample), false) if measured => direct.push(sample),
                (Ok(_), _) => {}
                (Err(_), true) => errors.0 += 1,
                (Err(_), false) => errors.1 += 1,
            }
        }
    }
    let report = Report::new(&through, &direct, errors);
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report.json())?)?;
    } else {
        report.table(&mut out)?;
    }
    Ok(())
}

async fn chat_agentd(
    agent: &mut AgentServiceClient<Channel>,
    api_key: Option<&str>,
) -> anyhow::Result<Sample> {
    let mut request = tonic::Request::new(ChatRequest {
        message: MESSAGE.into(),
        session_id: String::new(),
        options: Some(TurnOptions::default()),
    });
    if let Some(key) = api_key {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {key}").parse()?);
    }
    let started = Instant::now();
    let mut stream = agent.chat(request).await?.into_inner();
    let mut ttft = None;
    let mut completed = false;
    while let Some(response) = stream.message().await? {
        match response.event {
            Some(Event::Delta(_)) if ttft.is_none() => ttft = Some(started.elapsed()),
            Some(Event::Completed(_)) => completed = true,
            _ => {}
        }
    }
    let total = started.elapsed();
    match (ttft, completed) {
        (Some(ttft), true) => Ok(Sample { ttft, total }),
        _ => anyhow::bail!("the stream ended without a token or without completed"),
    }
}

async fn chat_direct(
    http: &reqwest::Client,
    endpoint: &str,
    model: &str,
    api_key: Option<&str>,
) -> anyhow::Result<Sample> {
    let body = serde_json::json!({
        "model": model,
        "stream": true,
        "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": MESSAGE}],
    });
    let mut request = http.post(endpoint).json(&body);
    if let Some(key) = api_key {
        request = request.bearer_auth(key);
    }
    let started = Instant::now();
    let response = request.send().await?.error_for_status()?;
    let mut bytes = response.bytes_stream();
    let (mut buffer, mut ttft, mut done) = (String::new(), None, false);
    while let Some(chunk) = bytes.next().await {
        buffer.push_str(std::str::from_utf8(&chunk?)?);
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            let Some(data) = event.trim().strip_prefix("data:").map(str::trim) else {
                continue;
            };
            if data == "[DONE]" {
                done = true;
            } else if ttft.is_none() {
                let chunk: serde_json::Value = serde_json::from_str(data)?;
                let content = &chunk["choices"][0]["delta"]["content"];
                if content.as_str().is_some_and(|text| !text.is_empty()) {
                    ttft = Some(started.elapsed());
                }
            }
        }
    }
    let total = started.elapsed();
    match (ttft, done) {
        (Some(ttft), true) => Ok(Sample { ttft, total }),
        _ => anyhow::bail!("the stream ended without a token or without [DONE]"),
    }
}

const PERCENTILES: [(&str, f64); 4] = [("p50", 0.50), ("p90", 0.90), ("p99", 0.99), ("max", 1.0)];

/// Percentiles in milliseconds of one measure.
fn percentiles(samples: &[Sample], measure: fn(&Sample) -> Duration) -> [f64; 4] {
    let mut values: Vec<f64> = samples
        .iter()
        .map(|s| measure(s).as_secs_f64() * 1e3)
        .collect();
    values.sort_by(f64::total_cmp);
    PERCENTILES.map(|(_, q)| {
        if values.is_empty() {
            return f64::NAN;
        }
        // Nearest rank: the smallest value with at least q of the samples at or below it.
        let rank = (q * values.len() as f64).ceil().max(1.0) as usize;
        values[rank.min(values.len()) - 1]
    })
}

struct Report {
    requests: usize,
    errors: (usize, usize),
    rows: Vec<(&'static str, [f64; 4], [f64; 4])>,
}

impl Report {
    fn new(through: &[Sample], direct: &[Sample], errors: (usize, usize)) -> Self {
        let ttft = |s: &Sample| s.ttft;
        let total = |s: &Sample| s.total;
        let agentd = (percentiles(through, ttft), percentiles(through, total));
        let upstream = (percentiles(direct, ttft), percentiles(direct, total));
        let minus = |a: [f64; 4], b: [f64; 4]| [a[0] - b[0], a[1] - b[1], a[2] - b[2], a[3] - b[3]];
        Self {
            requests: through.len().min(direct.len()),
            errors,
            rows: vec![
                ("agentd", agentd.0, agentd.1),
                ("direct", upstream.0, upstream.1),
                (
                    "added",
                    minus(agentd.0, upstream.0),
                    minus(agentd.1, upstream.1),
                ),
            ],
        }
    }

    fn table(&self, out: &mut impl Write) -> std::io::Result<()> {
        writeln!(
            out,
            "{} requests per target; errors: agentd {}, direct {}; milliseconds",
            self.requests, self.errors.0, self.errors.1
        )?;
        write!(out, "{:<8}", "target")?;
        for measure in ["ttft", "total"] {
            for (name, _) in PERCENTILES {
                write!(out, "{:>12}", format!("{measure} {name}"))?;
            }
        }
        writeln!(out)?;
        for (name, ttft, total) in &self.rows {
            write!(out, "{name:<8}")?;
            for value in ttft.iter().chain(total) {
                write!(out, "{value:>12.3}")?;
            }
            writeln!(out)?;
        }
        Ok(())
    }

    fn json(&self) -> serde_json::Value {
        let object = |values: &[f64; 4]| {
            let map: serde_json::Map<_, _> = PERCENTILES
                .iter()
                .zip(values)
                .map(|((name, _), v)| ((*name).to_owned(), serde_json::json!(v)))
                .collect();
            serde_json::Value::Object(map)
        };
        let mut json = serde_json::json!({
            "requests": self.requests,
            "errors": {"agentd": self.errors.0, "direct": self.errors.1},
        });
        for (name, ttft, total) in &self.rows {
            json[*name] = serde_json::json!({"ttft_ms": object(ttft), "total_ms": object(total)});
        }
        json
    }
}
