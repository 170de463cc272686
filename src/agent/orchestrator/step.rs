//! The model step: one model call of the loop, as a stream of text deltas and
//! then the whole reply (tool calls, finish reason, token usage). Traced as
//! `chat {model}` and measured. The call goes through the model's provider,
//! which is its upstream behind the per-call chain (`llm::chain`).

use futures::{Stream, StreamExt, TryStreamExt};
use tracing::field::Empty;

use super::prepare::Turn;
use crate::agent::context::{estimate_usage, saturate};
use crate::agent::error::TurnError;
use crate::llm::router::report;
use crate::llm::{
    CallContext, ChatMessage, FinishReason, LlmError, LlmEvent, LlmRequest, ToolCall,
};
use crate::telemetry::genai::{GenAiMetrics, OperationLabels};
use crate::telemetry::traced::{ErrorType, Traced};

/// What one model call produced.
#[derive(Clone, Debug)]
pub(super) struct StepReply {
    pub(super) text: String,
    pub(super) tool_calls: Vec<ToolCall>,
    pub(super) finish: FinishReason,
    pub(super) input_tokens: u32,
    pub(super) output_tokens: u32,
    pub(super) estimated: bool,
}

impl Default for StepReply {
    fn default() -> Self {
        Self {
            text: String::new(),
            tool_calls: Vec::new(),
            finish: FinishReason::Stop,
            input_tokens: 0,
            output_tokens: 0,
            estimated: false,
        }
    }
}

/// An event of a model step.
pub(super) enum StepEvent {
    /// Answer text, as it arrives.
    Delta(String),
    /// The call goes on with another attempt: drop the step's text so far
    /// (only for a turn delivered whole, whose text no client has seen).
    Restart,
    /// The whole reply, last.
    Done(StepReply),
}

/// One model call of `turn` over `messages`. `input_estimate` is the input's
/// token count when fitting counted it.
pub(super) fn model_step<'a>(
    turn: &'a Turn,
    metrics: &'a GenAiMetrics,
    operation: &'a OperationLabels,
    messages: Vec<ChatMessage>,
    input_estimate: Option<usize>,
) -> impl Stream<Item = Result<StepEvent, TurnError>> + Send + 'a {
    let model = &turn.model;
    // The model call; each attempt the route makes is a `chat` span inside it.
    let span = tracing::info_span!(
        parent: &turn.span,
        "model_call",
        otel.name = format!("model_call {}", model.name),
        otel.status_code = Empty,
        agentd.route = model.name.as_str(),
        error.type = Empty,
    );
    // Kept for the usage estimate if the provider reports none and the fit
    // counted nothing.
    let uncounted = input_estimate.is_none().then(|| messages.clone());
    let request = LlmRequest {
        model: model.upstream_id.clone(),
        messages,
        tools: turn.offered.clone(),
        max_output_tokens: Some(turn.max_output_tokens),
        temperature: turn.temperature,
    };
    let call = CallContext::first(&turn.context);
    let started = std::time::Instant::now();
    let provider = model.provider.clone();
    let deadline = turn.context.deadline;
    let upstream_error = move |error: LlmError| {
        tracing::warn!(provider = provider.name(), error = %error, "LLM call failed");
        match (error, deadline) {
            // The same status as a deadline that passes outside a model call.
            (LlmError::DeadlineExceeded, Some(deadline)) => {
                TurnError::DeadlineExceeded(deadline.timeout)
            }
            (error, _) => TurnError::Upstream {
                provider: provider.name().to_owned(),
                error,
            },
        }
    };
    let stream = async_stream::try_stream! {
        let mut upstream = model
            .provider
            .stream_chat(&call, request)
            .await
            .map_err(&upstream_error)?;
        let mut reply = StepReply::default();
        let mut reported = None;
        // Tokens the provider reported for attempts dropped by a restart: they
        // were spent all the same.
        let mut discarded = (0u32, 0u32);
        while let Some(event) = upstream.next().await {
            match event.map_err(&upstream_error)? {
                LlmEvent::ResponseModel(_) => {}
                // An empty delta only tells the router that the upstream is
                // answering (the guardrails hold its text): nothing to send.
                LlmEvent::TextDelta(text) if text.is_empty() => {}
                LlmEvent::TextDelta(text) => {
                    reply.text.push_str(&text);
                    yield StepEvent::Delta(text);
                }
                LlmEvent::ToolCalls(calls) => reply.tool_calls = calls,
                LlmEvent::Usage(usage) => reported = Some(usage),
                LlmEvent::Finished(reason) => reply.finish = reason,
                LlmEvent::Restart => {
                    reply = StepReply::default();
                    if let Some(usage) = reported.take() {
                        discarded.0 = discarded.0.saturating_add(usage.input_tokens);
                        discarded.1 = discarded.1.saturating_add(usage.output_tokens);
                    }
                    yield StepEvent::Restart;
                }
            }
        }
        match reported {
            Some(usage) => {
                reply.input_tokens = usage.input_tokens;
                reply.output_tokens = usage.output_tokens;
            }
            None => {
                let answer = ChatMessage::Assistant {
                    content: reply.text.clone(),
                    tool_calls: reply.tool_calls.clone(),
                };
                let (input, output) = estimate_usage(
                    model.encoding,
                    input_estimate,
                    uncounted,
                    turn.offered.clone(),
                    answer,
                )
                .await?;
                reply.estimated = true;
                reply.input_tokens = saturate(input);
                reply.output_tokens = saturate(output);
            }
        }
        reply.input_tokens = reply.input_tokens.saturating_add(discarded.0);
        reply.output_tokens = reply.output_tokens.saturating_add(discarded.1);
        // Measured under the model that answered, not the route's first.
        let answered = report::read(&turn.context, |report| report.answered_by.clone())
            .flatten()
            .map(|answered| OperationLabels {
                gen_ai_operation_name: operation.gen_ai_operation_name.clone(),
                gen_ai_provider_name: answered.provider,
                gen_ai_request_model: answered.upstream_model,
            });
        metrics.model_call(
            answered.as_ref().unwrap_or(operation),
            started.elapsed(),
            "",
            Some((reply.input_tokens, reply.output_tokens, &turn.context.tenant)),
        );
        yield StepEvent::Done(reply);
    };
    let stream = stream.inspect_err(move |err: &TurnError| {
        metrics.model_call(operation, started.elapsed(), err.error_type(), None);
    });
    Traced::new(stream, span)
}
