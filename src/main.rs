//! The `agentd` command: serve, validate or print config, hash API keys,
//! ingest documents, evaluate retrieval, check a server's health.
//!
//! Exit codes: 0 success; 64 (EX_USAGE) invalid configuration or input files;
//! 2 a command line clap refuses; 1 any other failure to start or serve (and,
//! for `health`, any answer but SERVING).

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use agentd::app::App;
use agentd::config::{Config, DEFAULT_TOML, KeyHash};
use clap::{Parser, Subcommand};

const EX_USAGE: u8 = 64;

#[derive(Debug, Parser)]
#[command(
    name = "agentd",
    version,
    about = "A production AI agent service over gRPC"
)]
struct Cli {
    /// Config file (TOML), laid over the defaults and under AGENTD__* env vars.
    #[arg(long, global = true, env = "AGENTD_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve gRPC and /metrics until SIGTERM or SIGINT.
    Serve,
    /// Inspect the configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Manage API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Send .md and .txt files to a running server's knowledge base.
    Ingest {
        /// The collection to ingest into.
        #[arg(long, default_value = "default")]
        collection: String,
        /// The server's gRPC URL.
        #[arg(long, default_value = "http://127.0.0.1:50051")]
        server: String,
        /// An API key with the `ingest` role (when the server has auth on).
        #[arg(long, env = "AGENTD_API_KEY", hide_env_values = true)]
        api_key: Option<String>,
        /// Files and directories (searched recursively for .md and .txt).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Ask a running server's grpc.health.v1 service; exit 0 when SERVING,
    /// 1 otherwise (not serving, unknown service, unreachable).
    Health {
        /// The server's gRPC address: host:port, or an http:// or https:// URL.
        #[arg(long, default_value = "127.0.0.1:50051")]
        addr: String,
        /// The service to ask about ("" is the server as a whole, what a
        /// readiness probe asks; e.g. agentd.v1.AgentService).
        #[arg(long, default_value = "")]
        service: String,
        /// Time limit for the whole check, connection included.
        #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
        timeout: std::time::Duration,
        #[command(flatten)]
        tls: TlsFlags,
    },
    /// Show a tenant's spend and budgets (AdminService.GetUsage) on a
    /// running server.
    Usage {
        /// The server's gRPC URL.
        #[arg(long, default_value = "http://127.0.0.1:50051")]
        server: String,
        /// An API key with the `admin` or `operator` role (when the server has auth on).
        #[arg(long, env = "AGENTD_API_KEY", hide_env_values = true)]
        api_key: Option<String>,
        /// The tenant; the key's own when not given (`operator` keys may name any).
        #[arg(long, default_value = "")]
        tenant: String,
        /// One API key's usage only (its configured name).
        #[arg(long, default_value = "")]
        key: String,
        /// A calendar day or month, in the server's cost.time_zone.
        #[arg(long, value_enum, default_value_t = Period::Day)]
        period: Period,
        /// A day in the period (YYYY-MM-DD); today when not given.
        #[arg(long, default_value = "")]
        date: String,
        /// One row per model, route, day or key.
        #[arg(long, value_enum, default_value_t = GroupBy::Model)]
        group_by: GroupBy,
        #[command(flatten)]
        tls: TlsFlags,
    },
    /// Measure quality against a running server.
    Eval {
        #[command(subcommand)]
        command: EvalCommand,
    },
}

/// How a client command reaches a server that speaks TLS.
#[derive(Debug, clap::Args)]
struct TlsFlags {
    /// Connect with TLS (implied by an https:// address and by any other TLS flag), trusting the
    /// system's roots unless --ca-file is given.
    #[arg(long)]
    tls: bool,
    /// PEM file with the CA that signed the server's certificate.
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// The name the server's certificate must carry, when it is not the
    /// address's host (e.g. checking a pod by IP).
    #[arg(long)]
    domain: Option<String>,
    /// Client certificate (PEM), for a server that requires mutual TLS.
    #[arg(long, requires = "key_file")]
    cert_file: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, requires = "cert_file")]
    key_file: Option<PathBuf>,
}

impl TlsFlags {
    /// TLS when any flag or an https:// address asks for it: a client
    /// certificate sent in plaintext would only fail with an unhelpful
    /// transport error.
    fn client(self, addr: &str) -> Option<agentd::cli::health::ClientTls> {
        (self.tls
            || self.ca_file.is_some()
            || self.domain.is_some()
            || self.cert_file.is_some()
            || addr.starts_with("https://"))
        .then(|| agentd::cli::health::ClientTls {
            ca_file: self.ca_file,
            domain: self.domain,
            identity: self.cert_file.zip(self.key_file),
        })
    }
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum Period {
    Day,
    Month,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum GroupBy {
    Model,
    Route,
    Day,
    Key,
}

#[derive(Debug, Subcommand)]
enum EvalCommand {
    /// Run a gold set of queries through Search; print recall@5, recall@10, MRR@10.
    Retrieval {
        /// The gold set: JSONL of {"query": ..., "relevant_doc_ids": [...]}.
        #[arg(long)]
        gold: PathBuf,
        /// The collection searched.
        #[arg(long, default_value = "default")]
        collection: String,
        /// The search mode.
        #[arg(long, value_enum, default_value_t = Mode::Hybrid)]
        mode: Mode,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
        /// Exit 1 when a score is below its minimum in this JSON file
        /// (e.g. {"recall@5": 0.8, "MRR@10": 0.6}).
        #[arg(long)]
        thresholds: Option<PathBuf>,
        /// The server's gRPC URL.
        #[arg(long, default_value = "http://127.0.0.1:50051")]
        server: String,
        /// An API key with the `agent` or `ingest` role (when the server has auth on).
        #[arg(long, env = "AGENTD_API_KEY", hide_env_values = true)]
        api_key: Option<String>,
    },
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum Mode {
    Sparse,
    Dense,
    Hybrid,
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Validate the configuration without starting; exit 0 if valid, 64 if not.
    Check,
    /// Print the full default configuration, with a comment on every key.
    Default,
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Read an API key from stdin and print its SHA-256 for `auth.keys[].sha256`.
    Hash,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve => serve(cli.config),
        Command::Config {
            command: ConfigCommand::Check,
        } => match Config::load(cli.config.as_deref()) {
            Ok(_) => say("configuration is valid\n", ExitCode::SUCCESS),
            Err(err) => complain(&err.to_string(), ExitCode::from(EX_USAGE)),
        },
        Command::Config {
            command: ConfigCommand::Default,
        } => say(DEFAULT_TOML, ExitCode::SUCCESS),
        Command::Keys {
            command: KeysCommand::Hash,
        } => hash_key(),
        Command::Usage {
            server,
            api_key,
            tenant,
            key,
            period,
            date,
            group_by,
            tls,
        } => usage(agentd::cli::usage::UsageArgs {
            tls: tls.client(&server),
            server,
            api_key,
            tenant,
            key,
            month: matches!(period, Period::Month),
            date,
            group_by: match group_by {
                GroupBy::Model => agentd::pb::UsageGrouping::Model,
                GroupBy::Route => agentd::pb::UsageGrouping::Route,
                GroupBy::Day => agentd::pb::UsageGrouping::Day,
                GroupBy::Key => agentd::pb::UsageGrouping::Key,
            },
        }),
        Command::Ingest {
            collection,
            server,
            api_key,
            paths,
        } => ingest(agentd::cli::ingest::IngestArgs {
            paths,
            collection,
            server,
            api_key,
        }),
        Command::Health {
            addr,
            service,
            timeout,
            tls,
        } => health(agentd::cli::health::HealthArgs {
            tls: tls.client(&addr),
            addr,
            service,
            timeout,
        }),
        Command::Eval {
            command:
                EvalCommand::Retrieval {
                    gold,
                    collection,
                    mode,
                    json,
                    thresholds,
                    server,
                    api_key,
                },
        } => eval_retrieval(
            agentd::cli::eval::EvalArgs {
                gold,
                collection,
                mode: match mode {
                    Mode::Sparse => agentd::pb::SearchMode::Sparse,
                    Mode::Dense => agentd::pb::SearchMode::Dense,
                    Mode::Hybrid => agentd::pb::SearchMode::Hybrid,
                },
                server,
                api_key,
            },
            json,
            thresholds,
        ),
    }
}

fn eval_retrieval(
    args: agentd::cli::eval::EvalArgs,
    json: bool,
    thresholds: Option<PathBuf>,
) -> ExitCode {
    let thresholds = match thresholds
        .map(|path| agentd::cli::eval::Thresholds::load(&path))
        .transpose()
    {
        Ok(thresholds) => thresholds.unwrap_or_default(),
        Err(err) => return complain(&format!("{err:#}"), ExitCode::from(EX_USAGE)),
    };
    let runtime = match runtime(&mut tokio::runtime::Builder::new_current_thread()) {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    let report = match runtime.block_on(agentd::cli::eval::run(args)) {
        Ok(report) => report,
        Err(err) => return complain(&format!("eval failed: {err:#}"), ExitCode::FAILURE),
    };
    let text = if json {
        match serde_json::to_string(&report) {
            Ok(line) => format!("{line}\n"),
            Err(err) => return complain(&err.to_string(), ExitCode::FAILURE),
        }
    } else {
        report.to_text()
    };
    let failures = thresholds.failures(&report);
    if failures.is_empty() {
        return say(&text, ExitCode::SUCCESS);
    }
    let code = say(&text, ExitCode::FAILURE);
    for failure in failures {
        complain(&failure, ExitCode::FAILURE);
    }
    code
}

fn usage(args: agentd::cli::usage::UsageArgs) -> ExitCode {
    let runtime = match runtime(&mut tokio::runtime::Builder::new_current_thread()) {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    match runtime.block_on(agentd::cli::usage::run(args)) {
        Ok(report) => say(&report, ExitCode::SUCCESS),
        Err(err) => complain(&format!("usage failed: {err:#}"), ExitCode::FAILURE),
    }
}

fn ingest(args: agentd::cli::ingest::IngestArgs) -> ExitCode {
    let runtime = match runtime(&mut tokio::runtime::Builder::new_current_thread()) {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    let collection = args.collection.clone();
    match runtime.block_on(agentd::cli::ingest::run(args)) {
        Ok(summary) => {
            for path in &summary.skipped {
                let _ = writeln!(
                    std::io::stderr().lock(),
                    "agentd: skipped {} (not valid UTF-8)",
                    path.display()
                );
            }
            say(
                &format!(
                    "ingested {} documents ({} chunks) into collection {collection}; skipped {}\n",
                    summary.documents,
                    summary.chunks,
                    summary.skipped.len()
                ),
                ExitCode::SUCCESS,
            )
        }
        Err(err) => complain(&format!("ingest failed: {err:#}"), ExitCode::FAILURE),
    }
}

fn say(text: &str, code: ExitCode) -> ExitCode {
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Ok(()) => code,
        Err(_) => ExitCode::FAILURE,
    }
}

fn complain(text: &str, code: ExitCode) -> ExitCode {
    // Nothing more can be reported if stderr itself is gone.
    let _ = writeln!(std::io::stderr().lock(), "agentd: {text}");
    code
}

fn hash_key() -> ExitCode {
    let mut key = String::new();
    if let Err(err) = std::io::stdin().read_to_string(&mut key) {
        return complain(
            &format!("cannot read the key from stdin: {err}"),
            ExitCode::FAILURE,
        );
    }
    let key = key.trim_end_matches(['\r', '\n']);
    if key.is_empty() {
        return complain("no key on stdin", ExitCode::from(EX_USAGE));
    }
    say(
        &format!("{}\n", KeyHash::of_key(key).to_hex()),
        ExitCode::SUCCESS,
    )
}

/// A tokio runtime from `builder`, or the exit code of the failure, reported.
fn health(args: agentd::cli::health::HealthArgs) -> ExitCode {
    use tonic_health::pb::health_check_response::ServingStatus;
    let runtime = match runtime(&mut tokio::runtime::Builder::new_current_thread()) {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    let service = if args.service.is_empty() {
        "the server"
    } else {
        args.service.as_str()
    };
    match runtime.block_on(agentd::cli::health::check(&args)) {
        Ok(ServingStatus::Serving) => say(&format!("{service}: SERVING\n"), ExitCode::SUCCESS),
        Ok(status) => complain(
            &format!("{service}: {}", status.as_str_name()),
            ExitCode::FAILURE,
        ),
        Err(err) => complain(&format!("health check failed: {err:#}"), ExitCode::FAILURE),
    }
}

fn runtime(builder: &mut tokio::runtime::Builder) -> Result<tokio::runtime::Runtime, ExitCode> {
    builder.enable_all().build().map_err(|err| {
        complain(
            &format!("cannot start the runtime: {err}"),
            ExitCode::FAILURE,
        )
    })
}

fn serve(config_path: Option<PathBuf>) -> ExitCode {
    let config = match Config::load(config_path.as_deref()) {
        Ok(config) => config,
        Err(err) => return complain(&err.to_string(), ExitCode::from(EX_USAGE)),
    };
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if config.server.worker_threads > 0 {
        builder.worker_threads(config.server.worker_threads);
    }
    let runtime = match runtime(&mut builder) {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    runtime.block_on(async move {
        let _telemetry = match agentd::telemetry::init(&config.log) {
            Ok(guard) => guard,
            Err(err) => {
                return complain(
                    &format!("cannot set up telemetry: {err:#}"),
                    ExitCode::FAILURE,
                );
            }
        };
        let app = match App::build(config).await {
            Ok(app) => app,
            Err(err) => {
                tracing::error!(error = %err, "cannot start");
                // TLS files that changed for the worse since the config was
                // checked are a bad input file like any other.
                let code = match err {
                    agentd::app::StartError::Tls(_) => ExitCode::from(EX_USAGE),
                    _ => ExitCode::FAILURE,
                };
                return complain(&err.to_string(), code);
            }
        };
        let handle = app.shutdown_handle();
        tokio::spawn(async move {
            match stop_signal().await {
                Ok(signal) => tracing::info!(signal, "stop signal received"),
                Err(err) => {
                    tracing::error!(error = %err, "cannot listen for stop signals; stopping")
                }
            }
            handle.shutdown();
        });
        match app.run_until_stopped().await {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                tracing::error!(error = format!("{err:#}"), "server failed");
                complain(&format!("{err:#}"), ExitCode::FAILURE)
            }
        }
    })
}

/// Waits for SIGTERM (Kubernetes) or SIGINT (Ctrl-C) and names the one received.
async fn stop_signal() -> std::io::Result<&'static str> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = term.recv() => Ok("SIGTERM"),
            result = tokio::signal::ctrl_c() => result.map(|()| "SIGINT"),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.map(|()| "SIGINT")
    }
}
