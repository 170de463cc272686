//! Tool execution: the calls of one model reply run concurrently on the turn's
//! own task (so dropping the turn drops them), each refused unless offered,
//! its arguments validated against the tool's schema, bounded by
//! `tools.timeout` on the turn's clock, and traced as `execute_tool {tool}`.
//! Every failure becomes the tool's result for the model, never the turn's.

use std::time::Duration;

use futures::Stream;
use futures::stream::FuturesUnordered;
use tracing::Instrument;
use tracing::field::Empty;

use crate::agent::tools::{ToolContext, ToolError, ToolOutput, ToolRegistry};
use crate::agent::turn::{AgentEvent, ToolOutcome};
use crate::clock::Clock;
use crate::config::ToolsConfig;
use crate::llm::{ToolCall, ToolSpec};
use crate::telemetry::genai::GenAiMetrics;

/// Characters of a tool result shown to the client.
const SUMMARY_CHARS: usize = 200;

/// How one call ended, what it produced and how long it took.
pub(super) struct Ran {
    pub(super) outcome: ToolOutcome,
    pub(super) output: ToolOutput,
    pub(super) latency: Duration,
}

/// Runs the tool calls of one model reply.
pub(super) struct ToolRunner<'a> {
    pub(super) tools: &'a ToolRegistry,
    pub(super) config: &'a ToolsConfig,
    pub(super) metrics: &'a GenAiMetrics,
    pub(super) clock: &'a Clock,
}

impl ToolRunner<'_> {
    /// Every call of `calls`, run concurrently; each result (with the call's
    /// index) as soon as it is ready.
    pub(super) fn run_all<'s>(
        &'s self,
        calls: &'s [ToolCall],
        offered: &'s [ToolSpec],
        context: &'s ToolContext,
        parent: &'s tracing::Span,
    ) -> impl Stream<Item = (usize, Ran)> + Send + 's {
        calls
            .iter()
            .enumerate()
            .map(|(i, call)| async move { (i, self.execute(call, offered, context, parent).await) })
            .collect::<FuturesUnordered<_>>()
    }

    /// The result of a call that is not run because the turn reached
    /// `agent.max_steps`.
    pub(super) fn refuse(&self, call: &ToolCall, max_steps: u32) -> Ran {
        self.metrics
            .tool_call(&call.name, ToolOutcome::Refused.as_str(), Duration::ZERO);
        Ran {
            outcome: ToolOutcome::Refused,
            output: format!(
                "not run: the turn reached its limit of {max_steps} model calls (agent.max_steps)"
            )
            .into(),
            latency: Duration::ZERO,
        }
    }

    /// Runs one call: refused unless offered, arguments validated against its
    /// schema, bounded by `tools.timeout`.
    async fn execute(
        &self,
        call: &ToolCall,
        offered: &[ToolSpec],
        context: &ToolContext,
        parent: &tracing::Span,
    ) -> Ran {
        let span = tracing::info_span!(
            parent: parent,
            "execute_tool",
            otel.name = format!("execute_tool {}", call.name),
            otel.status_code = Empty,
            gen_ai.operation.name = "execute_tool",
            gen_ai.tool.name = call.name.as_str(),
            gen_ai.tool.call.id = call.id.as_str(),
            gen_ai.tool.type = "function",
            error.type = Empty,
        );
        let started = std::time::Instant::now();
        let run = async {
            if !offered.iter().any(|spec| spec.name == call.name) {
                return Err(ToolError::Unavailable(call.name.clone()));
            }
            let Some(tool) = self.tools.tool(&call.name) else {
                return Err(ToolError::Unavailable(call.name.clone()));
            };
            let arguments = self.tools.parse_arguments(&call.name, &call.arguments)?;
            tool.execute(context, arguments).await
        };
        let result = self
            .clock
            .timeout(self.config.timeout, run)
            .instrument(span.clone())
            .await;
        let latency = started.elapsed();
        let (outcome, output) = match result {
            Ok(Ok(output)) => (ToolOutcome::Ok, output),
            Ok(Err(err @ ToolError::Unavailable(_))) => {
                (ToolOutcome::Refused, err.to_string().into())
            }
            Ok(Err(err @ ToolError::InvalidArguments(_))) => {
                (ToolOutcome::InvalidArguments, err.to_string().into())
            }
            Ok(Err(err @ ToolError::Failed(_))) => {
                (ToolOutcome::Error, format!("error: {err}").into())
            }
            Err(_) => (
                ToolOutcome::Timeout,
                format!(
                    "error: the tool did not finish within {} (tools.timeout)",
                    humantime::format_duration(self.config.timeout)
                )
                .into(),
            ),
        };
        if outcome != ToolOutcome::Ok {
            span.record("error.type", outcome.as_str());
            span.record("otel.status_code", "ERROR");
        }
        self.metrics
            .tool_call(&call.name, outcome.as_str(), latency);
        let output = ToolOutput {
            content: cut(output.content, self.config.max_result_bytes),
            sources: output.sources,
            knowledge_unavailable: output.knowledge_unavailable,
        };
        Ran {
            outcome,
            output,
            latency,
        }
    }
}

/// The client's view of a finished call: its outcome, a summary, its latency.
pub(super) fn result_event(call: &ToolCall, ran: &Ran) -> AgentEvent {
    AgentEvent::ToolResult {
        call_id: call.id.clone(),
        outcome: ran.outcome,
        summary: ran.output.content.chars().take(SUMMARY_CHARS).collect(),
        latency: ran.latency,
    }
}

/// `text` cut to at most `max` bytes at a character boundary, marked when cut.
fn cut(mut text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push_str(" [truncated]");
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_are_cut_at_a_character_boundary() {
        assert_eq!(cut("short".into(), 10), "short");
        assert_eq!(cut("héllo".into(), 2), "h [truncated]");
        assert_eq!(cut("abcdef".into(), 3), "abc [truncated]");
    }
}
