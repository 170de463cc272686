//! `agentd-bench load`: drives Chat (streamed) or Ask at a fixed offered rate
//! (open loop) or a fixed concurrency (closed loop), for a set duration, through
//! agentd and, in the same run, straight to the upstream and through a peer
//! gateway, so "added latency" is measured, not assumed.
//!
//! Targets run in turns: the duration is split into `--rounds` slices, and each
//! round runs every target once, in an order rotated each round, so machine
//! drift falls on every target. In open loop, request `n` is due at
//! `start + n / rate` and its latency counts from then (a late send is the
//! load generator's lag, and is charged, not hidden: no coordinated omission);
//! requests still running at the end of a slice are waited for and counted.
//! `--watch NAME=PID` samples the resident memory (the process and its
//! descendants) and CPU time of a process during each slice.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use agentd::pb::agent_service_client::AgentServiceClient;
use anyhow::Context;
use tokio::task::JoinSet;
use tonic::transport::Channel;

use crate::client::{Failure, Sample, agentd_ask, agentd_chat, http_chat};
use crate::stats::{PERCENTILES, percentiles, percentiles_json};

#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    /// What to drive, in turns: agentd, direct (the upstream itself), peer.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "agentd,direct"
    )]
    targets: Vec<TargetKind>,
    /// agentd's gRPC address; several, comma-separated, to drive several
    /// processes at once (the connections are spread over them in turn).
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    agentd: String,
    /// The upstream's base URL, including the version path.
    #[arg(long, default_value = "http://127.0.0.1:8089/v1")]
    upstream: String,
    /// A peer gateway's OpenAI-compatible base URL (e.g. a LiteLLM proxy).
    #[arg(long, default_value = "http://127.0.0.1:4000/v1")]
    peer: String,
    /// The peer's name in reports.
    #[arg(long, default_value = "litellm")]
    peer_name: String,
    /// The peer's API key.
    #[arg(long)]
    peer_key: Option<String>,
    /// Chat (streamed; `stream: true` over HTTP) or Ask (unary; `stream: false`).
    #[arg(long, value_enum, default_value_t = Method::Chat)]
    method: Method,
    /// Offered requests per second (open loop).
    #[arg(long, conflicts_with = "concurrency")]
    rate: Option<f64>,
    /// Requests in flight at all times (closed loop); the default is 1.
    #[arg(long)]
    concurrency: Option<u32>,
    /// Measured time per target, over all rounds.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Slices the duration is split into, alternating targets.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    rounds: u32,
    /// Unmeasured load per target before its first slice.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// Limit on one request, stream included; over it counts as an error.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Stop each slice after this many requests (even before its duration ends).
    #[arg(long)]
    requests: Option<u64>,
    /// Drop each stream after this many text pieces (the client's cancel).
    #[arg(long)]
    cancel_after: Option<u32>,
    /// Model id sent over HTTP (agentd uses its default model).
    #[arg(long, default_value = "gpt-4o-mini")]
    model: String,
    /// The model or route agentd is asked for (`options.model`); its default
    /// model when unset.
    #[arg(long)]
    agentd_model: Option<String>,
    /// API key for agentd and the upstream.
    #[arg(long)]
    api_key: Option<String>,
    /// gRPC connections to agentd (requests spread over them).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    connections: u32,
    /// Open loop: requests in flight above which a due request is not sent and
    /// counts as a `client overload` error.
    #[arg(long, default_value_t = 20_000)]
    max_in_flight: usize,
    /// Sample a process's memory and CPU during each slice: NAME=PID.
    #[arg(long)]
    watch: Vec<String>,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    json: bool,
    /// Send the text of this file as the user message of every request
    /// (default: a short fixed message).
    #[arg(long)]
    message_file: Option<std::path::PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum TargetKind {
    Agentd,
    Direct,
    Peer,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Method {
    Chat,
    Ask,
}

/// Everything needed to send one request to any target; cheap to clone.
#[derive(Clone)]
struct Senders {
    agents: Vec<AgentServiceClient<Channel>>,
    http: reqwest::Client,
    direct: String,
    peer: String,
    model: String,
    agentd_model: Option<String>,
    api_key: Option<String>,
    peer_key: Option<String>,
    method: Method,
    cancel_after: Option<u32>,
    timeout: Duration,
}

impl Senders {
    async fn send(&self, target: TargetKind, n: u64) -> Result<Sample, Failure> {
        let stream = self.method == Method::Chat;
        let request = async {
            match target {
                TargetKind::Agentd => {
                    let mut agent = self.agents[(n % self.agents.len() as u64) as usize].clone();
                    let key = self.api_key.as_deref();
                    let model = self.agentd_model.as_deref();
                    match self.method {
                        Method::Chat => {
                            agentd_chat(&mut agent, key, self.cancel_after, model).await
                        }
                        Method::Ask => agentd_ask(&mut agent, key, model).await,
                    }
                }
                TargetKind::Direct => {
                    let key = self.api_key.as_deref();
                    http_chat(
                        &self.http,
                        &self.direct,
                        &self.model,
                        key,
                        stream,
                        self.cancel_after,
                    )
                    .await
                }
                TargetKind::Peer => {
                    let key = self.peer_key.as_deref();
                    http_chat(
                        &self.http,
                        &self.peer,
                        &self.model,
                        key,
                        stream,
                        self.cancel_after,
                    )
                    .await
                }
            }
        };
        tokio::time::timeout(self.timeout, request)
            .await
            .unwrap_or_else(|_| {
                Err(Failure {
                    label: "timeout".into(),
                    detail: format!("no end within {:?}", self.timeout),
                })
            })
    }
}

/// What one target's measured slices gave.
#[derive(Debug, Default)]
struct Outcomes {
    samples: Vec<Sample>,
    errors: BTreeMap<String, usize>,
    first_error: Option<String>,
    measured: Duration,
    /// Per watched process: (rss at start, max, at end) in bytes, CPU seconds.
    resources: BTreeMap<String, Usage>,
}

impl Outcomes {
    fn record(&mut self, result: Result<Sample, Failure>) {
        match result {
            Ok(sample) => self.samples.push(sample),
            Err(failure) => {
                *self.errors.entry(failure.label.clone()).or_insert(0) += 1;
                self.first_error
                    .get_or_insert_with(|| format!("{}: {}", failure.label, failure.detail));
            }
        }
    }

    fn requests(&self) -> usize {
        self.samples.len() + self.errors.values().sum::<usize>()
    }

    fn error_count(&self) -> usize {
        self.errors.values().sum()
    }
}

/// A process's resource use over the slices of one target.
#[derive(Clone, Copy, Debug, Default)]
struct Usage {
    rss_first: u64,
    rss_max: u64,
    rss_last: u64,
    cpu_seconds: f64,
}

/// Reads a process's resident memory (with its descendants) and CPU seconds.
struct Watched {
    name: String,
    pid: u32,
}

fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(100.0)
}

/// (parent pid, utime + stime ticks) from /proc/PID/stat.
fn stat(pid: u32) -> Option<(u32, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses; fields follow the last ')'.
    let fields: Vec<&str> = text.rsplit_once(')')?.1.split_whitespace().collect();
    let parent = fields.get(1)?.parse().ok()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((parent, utime + stime))
}

fn rss_bytes(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|value| {
                    value
                        .trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<u64>()
                        .ok()
                })
        })
        .map_or(0, |kb| kb * 1024)
}

impl Watched {
    /// The process and its descendants.
    fn tree(&self) -> Vec<u32> {
        let mut parents: Vec<(u32, u32)> = Vec::new();
        if let Ok(entries) = std::fs::read_dir("/proc") {
            for entry in entries.flatten() {
                if let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok())
                    && let Some((parent, _)) = stat(pid)
                {
                    parents.push((pid, parent));
                }
            }
        }
        let mut tree = vec![self.pid];
        let mut i = 0;
        while i < tree.len() {
            let parent = tree[i];
            tree.extend(
                parents
                    .iter()
                    .filter(|(_, p)| *p == parent)
                    .map(|(c, _)| *c),
            );
            i += 1;
        }
        tree
    }

    /// (resident bytes, CPU ticks) of the tree now.
    fn read(&self) -> (u64, u64) {
        self.tree().into_iter().fold((0, 0), |(rss, cpu), pid| {
            (
                rss + rss_bytes(pid),
                cpu + stat(pid).map_or(0, |(_, ticks)| ticks),
            )
        })
    }
}

/// Samples the watched processes every 100 ms until `stop`.
async fn sample(watched: Arc<Vec<Watched>>, stop: Arc<AtomicBool>, ticks: f64) -> Vec<Usage> {
    let start: Vec<(u64, u64)> = watched.iter().map(Watched::read).collect();
    let mut usage: Vec<Usage> = start
        .iter()
        .map(|(rss, _)| Usage {
            rss_first: *rss,
            rss_max: *rss,
            rss_last: *rss,
            cpu_seconds: 0.0,
        })
        .collect();
    let mut last = start.clone();
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        for (i, w) in watched.iter().enumerate() {
            last[i] = w.read();
            usage[i].rss_max = usage[i].rss_max.max(last[i].0);
        }
    }
    for (i, w) in watched.iter().enumerate() {
        last[i] = w.read();
        usage[i].rss_last = last[i].0;
        usage[i].rss_max = usage[i].rss_max.max(last[i].0);
        usage[i].cpu_seconds = last[i].1.saturating_sub(start[i].1) as f64 / ticks;
    }
    usage
}

/// Runs `target` for `length`; every result comes back, including those of
/// requests still running at the end, which are waited for.
async fn drive(
    senders: &Senders,
    target: TargetKind,
    args: &LoadArgs,
    length: Duration,
) -> Vec<Result<Sample, Failure>> {
    let (report, mut reports) = tokio::sync::mpsc::unbounded_channel();
    let mut tasks: JoinSet<()> = JoinSet::new();
    let start = Instant::now();
    let deadline = start + length;
    let limit = args.requests.unwrap_or(u64::MAX);
    match args.rate {
        Some(rate) => {
            let mut sent: u64 = 0;
            while Instant::now() < deadline && sent < limit {
                // Timers tick by the millisecond: send every request now due.
                let due = ((start.elapsed().as_secs_f64() * rate) as u64 + 1).min(limit);
                while sent < due {
                    let scheduled = start + Duration::from_secs_f64(sent as f64 / rate);
                    if tasks.len() >= args.max_in_flight {
                        let _ = report.send(Err(Failure {
                            label: "client overload".into(),
                            detail: format!("{} requests already in flight", tasks.len()),
                        }));
                    } else {
                        let (senders, report, n) = (senders.clone(), report.clone(), sent);
                        tasks.spawn(async move {
                            let lag = scheduled.elapsed();
                            let result = senders.send(target, n).await.map(|s| Sample {
                                ttft: s.ttft + lag,
                                total: s.total + lag,
                            });
                            let _ = report.send(result);
                        });
                    }
                    sent += 1;
                }
                while tasks.try_join_next().is_some() {}
                tokio::time::sleep(Duration::from_micros(500)).await;
            }
        }
        None => {
            let issued = Arc::new(std::sync::atomic::AtomicU64::new(0));
            for _ in 0..args.concurrency.unwrap_or(1) {
                let (senders, report, issued) = (senders.clone(), report.clone(), issued.clone());
                tasks.spawn(async move {
                    while Instant::now() < deadline {
                        let n = issued.fetch_add(1, Ordering::Relaxed);
                        if n >= limit {
                            break;
                        }
                        let _ = report.send(senders.send(target, n).await);
                    }
                });
            }
        }
    }
    drop(report);
    while tasks.join_next().await.is_some() {}
    let mut results = Vec::new();
    while let Some(result) = reports.recv().await {
        results.push(result);
    }
    results
}

pub async fn run(args: LoadArgs) -> anyhow::Result<()> {
    if args.targets.is_empty() {
        anyhow::bail!("--targets names no target");
    }
    if let Some(rate) = args.rate
        && !(rate > 0.0 && rate.is_finite())
    {
        anyhow::bail!("--rate must be a positive number");
    }
    if let Some(path) = &args.message_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("--message-file {}", path.display()))?;
        crate::client::choose_message(text);
    }
    let mut agents = Vec::new();
    if args.targets.contains(&TargetKind::Agentd) {
        let addresses: Vec<&str> = args.agentd.split(',').map(str::trim).collect();
        for (_, address) in (0..args.connections).zip(addresses.iter().cycle()) {
            let channel = Channel::from_shared(address.to_string())?
                .connect()
                .await
                .with_context(|| format!("cannot connect to agentd at {address}"))?;
            agents.push(AgentServiceClient::new(channel));
        }
    }
    let http = reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(usize::MAX)
        .build()?;
    let endpoint = |base: &str| format!("{}/chat/completions", base.trim_end_matches('/'));
    let senders = Senders {
        agents,
        http,
        direct: endpoint(&args.upstream),
        peer: endpoint(&args.peer),
        model: args.model.clone(),
        agentd_model: args.agentd_model.clone(),
        api_key: args.api_key.clone(),
        peer_key: args.peer_key.clone(),
        method: args.method,
        cancel_after: args.cancel_after,
        timeout: args.timeout,
    };
    let watched: Arc<Vec<Watched>> = Arc::new(
        args.watch
            .iter()
            .map(|spec| {
                let (name, pid) = spec
                    .split_once('=')
                    .with_context(|| format!("--watch {spec:?}: expected NAME=PID"))?;
                let pid = pid
                    .parse()
                    .with_context(|| format!("--watch {spec:?}: {pid:?} is not a pid"))?;
                anyhow::Ok(Watched {
                    name: name.to_owned(),
                    pid,
                })
            })
            .collect::<anyhow::Result<_>>()?,
    );
    let ticks = clock_ticks();

    let slice = args.duration / args.rounds;
    let mut outcomes: Vec<Outcomes> = args.targets.iter().map(|_| Outcomes::default()).collect();
    for round in 0..args.rounds as usize {
        for k in 0..args.targets.len() {
            let index = (k + round) % args.targets.len();
            let target = args.targets[index];
            if round == 0 && !args.warmup.is_zero() {
                drive(&senders, target, &args, args.warmup).await;
            }
            let stop = Arc::new(AtomicBool::new(false));
            let sampler = tokio::spawn(sample(watched.clone(), stop.clone(), ticks));
            let started = Instant::now();
            let results = drive(&senders, target, &args, slice).await;
            let elapsed = started.elapsed();
            stop.store(true, Ordering::Relaxed);
            let usage = sampler.await.unwrap_or_default();
            let outcome = &mut outcomes[index];
            outcome.measured += elapsed;
            for result in results {
                outcome.record(result);
            }
            for (w, u) in watched.iter().zip(usage) {
                let total = outcome.resources.entry(w.name.clone()).or_insert(Usage {
                    rss_first: u.rss_first,
                    ..Usage::default()
                });
                total.rss_max = total.rss_max.max(u.rss_max);
                total.rss_last = u.rss_last;
                total.cpu_seconds += u.cpu_seconds;
            }
        }
    }

    let names: Vec<String> = args
        .targets
        .iter()
        .map(|t| match t {
            TargetKind::Agentd => "agentd".to_owned(),
            TargetKind::Direct => "direct".to_owned(),
            TargetKind::Peer => args.peer_name.clone(),
        })
        .collect();
    let report = Report::new(&args, &names, &outcomes);
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report.json())?)?;
    } else {
        report.table(&mut out)?;
    }
    Ok(())
}

/// One row: a target, or the difference of two.
struct Row {
    name: String,
    ttft: [f64; 4],
    total: [f64; 4],
}

struct Report<'a> {
    mode: String,
    names: &'a [String],
    outcomes: &'a [Outcomes],
    rows: Vec<Row>,
}

impl<'a> Report<'a> {
    fn new(args: &LoadArgs, names: &'a [String], outcomes: &'a [Outcomes]) -> Self {
        let mut rows: Vec<Row> = names
            .iter()
            .zip(outcomes)
            .map(|(name, o)| Row {
                name: name.clone(),
                ttft: percentiles(o.samples.iter().map(|s| s.ttft)),
                total: percentiles(o.samples.iter().map(|s| s.total)),
            })
            .collect();
        if let Some(direct) = names.iter().position(|n| n == "direct") {
            let base = (rows[direct].ttft, rows[direct].total);
            let minus = |x: [f64; 4], y: [f64; 4]| std::array::from_fn(|i| x[i] - y[i]);
            let added: Vec<Row> = rows
                .iter()
                .filter(|r| r.name != "direct")
                .map(|r| Row {
                    name: format!("{} added", r.name),
                    ttft: minus(r.ttft, base.0),
                    total: minus(r.total, base.1),
                })
                .collect();
            rows.extend(added);
        }
        let mode = match (args.rate, args.concurrency) {
            (Some(rate), _) => format!("open loop at {rate} req/s"),
            (None, c) => format!("closed loop, {} in flight", c.unwrap_or(1)),
        };
        let mode = format!(
            "{mode}, {:?}, {} per target in {} slices{}",
            args.method,
            humantime::format_duration(args.duration),
            args.rounds,
            args.cancel_after
                .map(|n| format!(", cancelled after {n} pieces"))
                .unwrap_or_default()
        );
        Self {
            mode,
            names,
            outcomes,
            rows,
        }
    }

    fn table(&self, out: &mut impl Write) -> std::io::Result<()> {
        writeln!(out, "{}", self.mode)?;
        writeln!(
            out,
            "{:<16}{:>10}{:>8}{:>10}",
            "target", "requests", "errors", "ok/s"
        )?;
        for (name, o) in self.names.iter().zip(self.outcomes) {
            writeln!(
                out,
                "{name:<16}{:>10}{:>8}{:>10.1}",
                o.requests(),
                o.error_count(),
                o.samples.len() as f64 / o.measured.as_secs_f64().max(1e-9)
            )?;
        }
        writeln!(out, "milliseconds")?;
        write!(out, "{:<16}", "")?;
        for measure in ["ttft", "total"] {
            for (name, _) in PERCENTILES {
                write!(out, "{:>11}", format!("{measure} {name}"))?;
            }
        }
        writeln!(out)?;
        for row in &self.rows {
            write!(out, "{:<16}", row.name)?;
            for value in row.ttft.iter().chain(&row.total) {
                write!(out, "{value:>11.3}")?;
            }
            writeln!(out)?;
        }
        for (name, o) in self.names.iter().zip(self.outcomes) {
            if !o.errors.is_empty() {
                writeln!(out, "{name} errors: {:?}", o.errors)?;
            }
            if let Some(first) = &o.first_error {
                writeln!(out, "{name} first error: {first}")?;
            }
            for (watched, u) in &o.resources {
                writeln!(
                    out,
                    "while {name} ran, {watched}: RSS {:.1} MB at start, {:.1} MB max, {:.1} MB at end; CPU {:.0}%",
                    mb(u.rss_first),
                    mb(u.rss_max),
                    mb(u.rss_last),
                    100.0 * u.cpu_seconds / o.measured.as_secs_f64().max(1e-9)
                )?;
            }
        }
        Ok(())
    }

    fn json(&self) -> serde_json::Value {
        let mut targets = serde_json::Map::new();
        for (name, o) in self.names.iter().zip(self.outcomes) {
            let resources: serde_json::Map<_, _> = o
                .resources
                .iter()
                .map(|(watched, u)| {
                    (
                        watched.clone(),
                        serde_json::json!({
                            "rss_start_mb": mb(u.rss_first),
                            "rss_max_mb": mb(u.rss_max),
                            "rss_end_mb": mb(u.rss_last),
                            "cpu_percent": 100.0 * u.cpu_seconds / o.measured.as_secs_f64().max(1e-9),
                        }),
                    )
                })
                .collect();
            targets.insert(
                name.clone(),
                serde_json::json!({
                    "requests": o.requests(),
                    "ok": o.samples.len(),
                    "errors": o.errors,
                    "first_error": o.first_error,
                    "seconds": o.measured.as_secs_f64(),
                    "ok_per_second": o.samples.len() as f64 / o.measured.as_secs_f64().max(1e-9),
                    "resources": resources,
                }),
            );
        }
        let latency: serde_json::Map<_, _> = self
            .rows
            .iter()
            .map(|row| {
                (
                    row.name.clone(),
                    serde_json::json!({
                        "ttft_ms": percentiles_json(&row.ttft),
                        "total_ms": percentiles_json(&row.total),
                    }),
                )
            })
            .collect();
        serde_json::json!({"mode": self.mode, "targets": targets, "latency": latency})
    }
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}
