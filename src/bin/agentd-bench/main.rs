//! `agentd-bench`: benchmarks of a running agentd, each against a baseline
//! measured in the same run.
//!
//! - `ttft`: time to first token through agentd versus straight to the upstream.
//! - `load`: Chat or Ask at a fixed offered rate or concurrency for a duration,
//!   through agentd, straight to the upstream and through a peer gateway, in turns.
//! - `cancel`: how soon a client's cancel reaches the upstream, through agentd and
//!   direct.
//! - `search`: knowledge search latency at a given collection size, versus a
//!   gRPC health check (the floor of any call) and a collection 100 times smaller.
//!
//! This is a benchmark tool, not a test: nothing asserts on its numbers.

mod cancel;
mod client;
mod load;
mod search;
mod stats;
mod ttft;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "agentd-bench", about = "Latency benchmarks for agentd")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant, reason = "parsed once, at start")]
enum Command {
    /// Time to first token and total latency, through agentd and direct.
    Ttft(ttft::TtftArgs),
    /// Search latency over a synthetic collection of a given size.
    Search(search::SearchArgs),
    /// Chat or Ask at a fixed rate or concurrency, through agentd, direct and a peer.
    Load(load::LoadArgs),
    /// Time from a client's cancel to the upstream seeing it, through agentd and direct.
    Cancel(cancel::CancelArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Ttft(args) => ttft::run(args).await,
        Command::Search(args) => search::run(args).await,
        Command::Load(args) => load::run(args).await,
        Command::Cancel(args) => cancel::run(args).await,
    }
}
