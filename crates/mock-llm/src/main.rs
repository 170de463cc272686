//! `agentd-mock-llm`: the OpenAI-compatible mock LLM server as a standalone
//! process, for benchmarks, local runs and demos. See the library of this crate.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use agentd_mock_llm::{Behaviour, Fault, MockLlm};
use clap::{Parser, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "agentd-mock-llm",
    about = "OpenAI-compatible mock chat-completions server"
)]
struct Args {
    /// Listen address; port 0 picks a free port (printed at start).
    #[arg(long, default_value = "127.0.0.1:8089")]
    addr: SocketAddr,
    /// Content chunks per answer.
    #[arg(long, default_value_t = 32)]
    tokens: usize,
    /// Delay before the response headers, in milliseconds.
    #[arg(long, default_value_t = 0)]
    first_byte_delay_ms: u64,
    /// Delay before the first chunk, in milliseconds.
    #[arg(long, default_value_t = 0)]
    first_token_delay_ms: u64,
    /// Delay between chunks, in milliseconds.
    #[arg(long, default_value_t = 0)]
    token_delay_ms: u64,
    /// Call this tool when a request offers it (and the conversation does not
    /// already end with a tool result); answer with text otherwise.
    #[arg(long)]
    tool_call: Option<String>,
    /// Arguments JSON for --tool-call.
    #[arg(long, default_value = "{}")]
    tool_arguments: String,
    /// Fault to inject into every reply.
    #[arg(long, value_enum)]
    fault: Option<FaultArg>,
    /// For stall, reset and malformed: how many chunks to send first.
    #[arg(long, default_value_t = 2)]
    fault_after: usize,
    /// Require `authorization: Bearer <KEY>`; others get 401.
    #[arg(long)]
    api_key: Option<String>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum FaultArg {
    /// HTTP 500.
    Http500,
    /// HTTP 503.
    Http503,
    /// HTTP 429 with retry-after: 1.
    Http429,
    /// HTTP 401.
    Http401,
    /// Stop sending mid-stream and never end.
    Stall,
    /// Abort the connection mid-stream.
    Reset,
    /// Send a chunk that is not JSON.
    Malformed,
    /// End the stream without `data: [DONE]`.
    NoDone,
}

fn behaviour(args: &Args) -> Behaviour {
    let (http_error, fault) = match args.fault {
        None => (None, None),
        Some(FaultArg::Http500) => (Some(500), None),
        Some(FaultArg::Http503) => (Some(503), None),
        Some(FaultArg::Http429) => (Some(429), None),
        Some(FaultArg::Http401) => (Some(401), None),
        Some(FaultArg::Stall) => (None, Some(Fault::StallAfter(args.fault_after))),
        Some(FaultArg::Reset) => (None, Some(Fault::ResetAfter(args.fault_after))),
        Some(FaultArg::Malformed) => (None, Some(Fault::MalformedAfter(args.fault_after))),
        Some(FaultArg::NoDone) => (None, Some(Fault::NoDone)),
    };
    Behaviour {
        tokens: args.tokens,
        first_byte_delay: Duration::from_millis(args.first_byte_delay_ms),
        first_token_delay: Duration::from_millis(args.first_token_delay_ms),
        token_delay: Duration::from_millis(args.token_delay_ms),
        tool_call: args
            .tool_call
            .clone()
            .map(|name| (name, args.tool_arguments.clone())),
        http_error,
        fault,
        api_key: args.api_key.clone(),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let mock = match MockLlm::start(args.addr, behaviour(&args)).await {
        Ok(mock) => mock,
        Err(err) => {
            tracing::error!(addr = %args.addr, error = %err, "cannot listen");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(base_url = %mock.base_url(), "mock LLM listening");
    match tokio::signal::ctrl_c().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %err, "cannot wait for Ctrl-C");
            ExitCode::FAILURE
        }
    }
}
