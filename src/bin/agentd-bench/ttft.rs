//! `agentd-bench ttft`: what agentd adds on top of the LLM it calls.
//!
//! It sends streamed chats one at a time, alternately through agentd
//! (`AgentService.Chat`) and straight to the same OpenAI-compatible upstream
//! (`POST /chat/completions`, streamed), and reports time to first token and
//! total latency for each, and agentd − direct at each percentile. Time to first
//! token runs from just before the request is sent to the first `delta` event
//! (agentd) or the first SSE chunk with non-empty `choices[0].delta.content`
//! (direct); total runs to the end of the gRPC stream after `completed` (agentd)
//! or to `data: [DONE]` (direct). Each iteration alternates the order (agentd
//! then direct, then direct then agentd) so machine drift falls on both sides, and
//! both sides reuse one connection (a tonic `Channel`, a `reqwest::Client`).
//! Failed or timed-out requests are counted, never timed.

use std::io::Write;
use std::time::Duration;

use agentd::pb::agent_service_client::AgentServiceClient;
use anyhow::Context;
use tonic::transport::Channel;

use crate::client::{Failure, Sample, agentd_chat, http_chat};
use crate::stats::{PERCENTILES, percentiles, percentiles_json};

#[derive(Debug, clap::Args)]
pub struct TtftArgs {
    /// agentd's gRPC address.
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    agentd: String,
    /// The upstream's base URL, including the version path.
    #[arg(long, default_value = "http://127.0.0.1:8089/v1")]
    upstream: String,
    /// Measured requests per target.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..))]
    requests: u32,
    /// Unmeasured requests per target first.
    #[arg(long, default_value_t = 20)]
    warmup: u32,
    /// Model id sent upstream (agentd uses its default model).
    #[arg(long, default_value = "gpt-4o-mini")]
    model: String,
    /// API key for agentd and the upstream (`authorization: Bearer KEY`).
    #[arg(long)]
    api_key: Option<String>,
    /// Limit on one request, stream included; a request over it counts as an error.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

/// Where a request goes.
#[derive(Clone, Copy, Debug)]
enum Target {
    Agentd,
    Direct,
}

/// What one target's measured requests gave.
#[derive(Debug, Default)]
struct Outcomes {
    samples: Vec<Sample>,
    errors: usize,
    first_error: Option<String>,
}

impl Outcomes {
    fn record(&mut self, result: Result<Sample, Failure>, measured: bool) {
        match result {
            Ok(sample) if measured => self.samples.push(sample),
            Ok(_) => {}
            Err(err) => {
                if measured {
                    self.errors += 1;
                }
                self.first_error
                    .get_or_insert_with(|| format!("{}: {}", err.label, err.detail));
            }
        }
    }
}

pub async fn run(args: TtftArgs) -> anyhow::Result<()> {
    let channel = Channel::from_shared(args.agentd.clone())?
        .connect_timeout(args.timeout)
        .connect()
        .await
        .with_context(|| format!("cannot connect to agentd at {}", args.agentd))?;
    let mut agent = AgentServiceClient::new(channel);
    let http = reqwest::Client::builder()
        .tcp_nodelay(true)
        .connect_timeout(args.timeout)
        .build()?;
    let endpoint = format!("{}/chat/completions", args.upstream.trim_end_matches('/'));
    let api_key = args.api_key.as_deref();

    let (mut through, mut direct) = (Outcomes::default(), Outcomes::default());
    for i in 0..args.warmup + args.requests {
        let measured = i >= args.warmup;
        let order = if i % 2 == 0 {
            [Target::Agentd, Target::Direct]
        } else {
            [Target::Direct, Target::Agentd]
        };
        for target in order {
            let request = async {
                match target {
                    Target::Agentd => agentd_chat(&mut agent, api_key, None, None).await,
                    Target::Direct => {
                        http_chat(&http, &endpoint, &args.model, api_key, true, None).await
                    }
                }
            };
            // On timeout the request future is dropped, which resets the stream.
            let result = tokio::time::timeout(args.timeout, request)
                .await
                .unwrap_or_else(|_| {
                    Err(Failure {
                        label: "timeout".into(),
                        detail: format!("no end within {:?}", args.timeout),
                    })
                });
            match target {
                Target::Agentd => through.record(result, measured),
                Target::Direct => direct.record(result, measured),
            }
        }
    }

    for (name, outcomes) in [("agentd", &through), ("direct", &direct)] {
        if let Some(err) = &outcomes.first_error {
            if outcomes.samples.is_empty() {
                anyhow::bail!("every measured request to {name} failed; the first: {err}");
            }
            writeln!(std::io::stderr().lock(), "first {name} error: {err}")?;
        }
    }
    let report = Report::new(args.requests, &through, &direct);
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report.json())?)?;
    } else {
        report.table(&mut out)?;
    }
    Ok(())
}

/// The percentiles of each target and of their difference.
struct Report {
    requests: u32,
    errors: (usize, usize),
    /// (name, ttft percentiles, total percentiles), in milliseconds.
    rows: [(&'static str, [f64; 4], [f64; 4]); 3],
}

impl Report {
    fn new(requests: u32, through: &Outcomes, direct: &Outcomes) -> Self {
        let of = |outcomes: &Outcomes| {
            (
                percentiles(outcomes.samples.iter().map(|s| s.ttft)),
                percentiles(outcomes.samples.iter().map(|s| s.total)),
            )
        };
        let (a, d) = (of(through), of(direct));
        let minus = |x: [f64; 4], y: [f64; 4]| std::array::from_fn(|i| x[i] - y[i]);
        Self {
            requests,
            errors: (through.errors, direct.errors),
            rows: [
                ("agentd", a.0, a.1),
                ("direct", d.0, d.1),
                ("added", minus(a.0, d.0), minus(a.1, d.1)),
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
                write!(out, "{:>11}", format!("{measure} {name}"))?;
            }
        }
        writeln!(out)?;
        for (name, ttft, total) in &self.rows {
            write!(out, "{name:<8}")?;
            for value in ttft.iter().chain(total) {
                write!(out, "{value:>11.2}")?;
            }
            writeln!(out)?;
        }
        Ok(())
    }

    fn json(&self) -> serde_json::Value {
        let mut json = serde_json::json!({
            "requests": self.requests,
            "errors": {"agentd": self.errors.0, "direct": self.errors.1},
        });
        for (name, ttft, total) in &self.rows {
            json[*name] = serde_json::json!({
                "ttft_ms": percentiles_json(ttft),
                "total_ms": percentiles_json(total),
            });
        }
        json
    }
}
