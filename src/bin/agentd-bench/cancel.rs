//! `agentd-bench cancel`: how soon a client's cancel reaches the upstream.
//!
//! One stream at a time, alternately through agentd (`AgentService.Chat`) and
//! straight to the mock upstream (`POST /chat/completions`): read `--after`
//! text pieces, note the wall-clock time, drop the stream, then wait until the
//! mock's `GET /mock/stats` counts one more dropped stream and read the wall
//! time it noted for that end. The latency is the difference (both processes
//! read the same machine's clock). The mock notices a dropped connection when
//! it next writes, so a fast-streaming mock (`--token-delay-ms 1`) keeps that
//! part small; it is the same on both paths, and `added` (agentd − direct) is
//! what agentd's own cancellation costs.

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use agentd::pb::agent_service_client::AgentServiceClient;
use anyhow::Context;
use tonic::transport::Channel;

use crate::client::{Failure, agentd_chat, http_chat};
use crate::stats::{PERCENTILES, percentiles, percentiles_json};

#[derive(Debug, clap::Args)]
pub struct CancelArgs {
    /// agentd's gRPC address.
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    agentd: String,
    /// The mock upstream's base URL, including the version path; its
    /// `/mock/stats` is next to it.
    #[arg(long, default_value = "http://127.0.0.1:8089/v1")]
    upstream: String,
    /// Measured cancels per target.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..))]
    requests: u32,
    /// Text pieces read before the cancel.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..))]
    after: u32,
    /// Model id sent upstream (agentd uses its default model).
    #[arg(long, default_value = "gpt-4o-mini")]
    model: String,
    /// Limit on one request, and on waiting for the mock to see its end.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// The mock's count of dropped streams, and the wall time (µs) of the last
/// stream end it saw.
async fn mock_stats(http: &reqwest::Client, url: &str) -> anyhow::Result<(u64, u64)> {
    let stats: serde_json::Value = http.get(url).send().await?.json().await?;
    let field = |name: &str| {
        stats[name]
            .as_u64()
            .with_context(|| format!("{url} has no {name}: {stats}"))
    };
    Ok((field("streams_dropped")?, field("last_stream_end_unix_us")?))
}

pub async fn run(args: CancelArgs) -> anyhow::Result<()> {
    let channel = Channel::from_shared(args.agentd.clone())?
        .connect()
        .await
        .with_context(|| format!("cannot connect to agentd at {}", args.agentd))?;
    let mut agent = AgentServiceClient::new(channel);
    let http = reqwest::Client::builder().tcp_nodelay(true).build()?;
    let base = args.upstream.trim_end_matches('/');
    let endpoint = format!("{base}/chat/completions");
    let stats_url = format!("{}/mock/stats", base.trim_end_matches("/v1"));

    // Per target: the latencies, and the errors.
    let mut latencies: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
    let mut errors = [0_usize; 2];
    for i in 0..args.requests {
        let order = if i % 2 == 0 { [0, 1] } else { [1, 0] };
        for target in order {
            let (dropped_before, _) = mock_stats(&http, &stats_url).await?;
            let cancelled = async {
                match target {
                    0 => agentd_chat(&mut agent, None, Some(args.after), None).await,
                    _ => {
                        http_chat(&http, &endpoint, &args.model, None, true, Some(args.after)).await
                    }
                }
            };
            // Returns right after the client dropped the stream.
            let result: Result<_, Failure> = tokio::time::timeout(args.timeout, cancelled)
                .await
                .unwrap_or_else(|_| {
                    Err(Failure {
                        label: "timeout".into(),
                        detail: format!("no cancel within {:?}", args.timeout),
                    })
                });
            let dropped_at = now_us();
            if result.is_err() {
                errors[target] += 1;
                continue;
            }
            let seen = tokio::time::timeout(args.timeout, async {
                loop {
                    let (dropped, ended_at) = mock_stats(&http, &stats_url).await?;
                    if dropped > dropped_before {
                        return anyhow::Ok(ended_at);
                    }
                    tokio::time::sleep(Duration::from_micros(200)).await;
                }
            })
            .await;
            match seen {
                Ok(Ok(ended_at)) => latencies[target]
                    .push(Duration::from_micros(ended_at.saturating_sub(dropped_at))),
                _ => errors[target] += 1,
            }
        }
    }

    let of = |samples: &Vec<Duration>| percentiles(samples.iter().copied());
    let (through, direct) = (of(&latencies[0]), of(&latencies[1]));
    let added: [f64; 4] = std::array::from_fn(|i| through[i] - direct[i]);
    let rows = [("agentd", through), ("direct", direct), ("added", added)];
    let mut out = std::io::stdout().lock();
    if args.json {
        let mut json = serde_json::json!({
            "requests": args.requests,
            "after": args.after,
            "errors": {"agentd": errors[0], "direct": errors[1]},
        });
        for (name, values) in &rows {
            json[*name] = serde_json::json!({ "cancel_ms": percentiles_json(values) });
        }
        writeln!(out, "{}", serde_json::to_string_pretty(&json)?)?;
    } else {
        writeln!(
            out,
            "{} cancels per target after {} pieces; errors: agentd {}, direct {}; \
             milliseconds from the client's drop to the upstream's end",
            args.requests, args.after, errors[0], errors[1]
        )?;
        write!(out, "{:<8}", "target")?;
        for (name, _) in PERCENTILES {
            write!(out, "{name:>10}")?;
        }
        writeln!(out)?;
        for (name, values) in &rows {
            write!(out, "{name:<8}")?;
            for value in values {
                write!(out, "{value:>10.3}")?;
            }
            writeln!(out)?;
        }
    }
    Ok(())
}
