//! The orchestrator: validates a turn, loads and fits its session, then runs the
//! agent loop (model call → tool calls → model call ...) as a stream of events,
//! and stores the turn when, and only when, it completes.
//!
//! The whole loop lives inside the returned stream: no task is spawned, so
//! dropping the stream (client cancel, deadline) drops the upstream HTTP request
//! and every tool call in flight at once.

use std::sync::Arc;
use std::time::Duration;

use futures::stream::{BoxStream, FuturesUnordered};
use futures::{StreamExt, TryStreamExt};
use sha2::{Digest, Sha256};
use tokio::time::Instant;
use tracing::Instrument;
use tracing::field::Empty;

use super::context::{ContextWindow, Encoding, Fitted};
use super::models::{Model, ModelCatalog, ModelLookupError};
use super::sessions::{SessionError, SessionId, SessionStore};
use super::tools::ToolOutput;
use super::tools::{ToolContext, ToolError, ToolRegistry};
use super::turn::{
    AgentEvent, Source, ToolOutcome, TurnFinish, TurnOutcome, TurnRequest, TurnUsage, mark_cited,
    merge_sources,
};
use crate::config::{AgentConfig, ToolsConfig};
use crate::error::{AppError, FieldProblem};
use crate::identity::TenantId;
use crate::llm::extractive::SEARCH_TOOL;
use crate::llm::{ChatMessage, FinishReason, LlmEvent, LlmRequest, ToolCall, ToolSpec};
use crate::retrieval::ingest::check_collection;
use crate::retrieval::store::KnowledgeStore;
use crate::telemetry::genai::{GenAiMetrics, OperationLabels};

/// Characters of a tool result shown to the client.
const SUMMARY_CHARS: usize = 200;
/// Collections one turn may search.
const MAX_COLLECTIONS: usize = 8;

/// Runs agent turns.
#[derive(Debug)]
pub struct Orchestrator {
    catalog: ModelCatalog,
    tools: ToolRegistry,
    sessions: Arc<dyn SessionStore>,
    agent: AgentConfig,
    tool_config: ToolsConfig,
    metrics: Arc<GenAiMetrics>,
    system_prompt: ChatMessage,
    system_prompt_version: String,
    knowledge: Option<KnowledgeStore>,
}

/// A validated turn, ready to run.
#[derive(Debug)]
pub struct Turn {
    tenant: TenantId,
    request_id: String,
    model: Model,
    session_id: SessionId,
    expected_turns: u64,
    history: Vec<ChatMessage>,
    user: ChatMessage,
    offered: Vec<ToolSpec>,
    collections: Vec<String>,
    max_output_tokens: u32,
    temperature: Option<f32>,
    first_messages: Vec<ChatMessage>,
    first_input_tokens: Option<usize>,
    received_at: Instant,
    span: tracing::Span,
}

impl Turn {
    /// The session the turn belongs to.
    pub fn session_id(&self) -> &str {
        self.session_id.as_str()
    }
}

impl Orchestrator {
    /// An orchestrator over the given parts; the configs must have been validated.
    pub fn new(
        catalog: ModelCatalog,
        tools: ToolRegistry,
        sessions: Arc<dyn SessionStore>,
        agent: AgentConfig,
        tool_config: ToolsConfig,
        metrics: Arc<GenAiMetrics>,
    ) -> Self {
        let digest = Sha256::digest(agent.system_prompt.as_bytes());
        let system_prompt_version = format!("sha256:{}", &hex::encode(digest)[..12]);
        Self {
            system_prompt: ChatMessage::System {
                content: agent.system_prompt.clone(),
            },
            system_prompt_version,
            catalog,
            tools,
            sessions,
            agent,
            tool_config,
            metrics,
            knowledge: None,
        }
    }

    /// Checks that the collections a request names exist in `store`.
    pub fn with_knowledge(mut self, store: KnowledgeStore) -> Self {
        self.knowledge = Some(store);
        self
    }

    /// Whether any model is configured.
    pub fn has_models(&self) -> bool {
        !self.catalog.is_empty()
    }

    /// Validates `request` for `tenant`, loads its session and checks that the
    /// message fits the model's context window. Nothing is stored.
    pub async fn prepare(
        &self,
        tenant: &TenantId,
        request_id: String,
        request: TurnRequest,
    ) -> Result<Turn, AppError> {
        let received_at = Instant::now();
        let mut problems = Vec::new();
        if request.message.trim().is_empty() {
            problems.push(FieldProblem::new("message", "must not be empty"));
        } else if request.message.len() > self.agent.max_message_bytes {
            problems.push(FieldProblem::new(
                "message",
                format!(
                    "is {} bytes; the limit is {} bytes (agent.max_message_bytes)",
                    request.message.len(),
                    self.agent.max_message_bytes
                ),
            ));
        }
        let session_id = if request.session_id.is_empty() {
            None
        } else {
            match SessionId::try_from(request.session_id.clone()) {
                Ok(id) => Some(id),
                Err(reason) => {
                    problems.push(FieldProblem::new("session_id", reason));
                    None
                }
            }
        };
        let model = match self.catalog.choose(&request.model) {
            Ok(model) => Some(model),
            Err(ModelLookupError::NoneConfigured) => return Err(AppError::NoModel),
            Err(ModelLookupError::Unknown(known)) => {
                problems.push(FieldProblem::new(
                    "options.model",
                    format!("unknown model; configured models: {known}"),
                ));
                None
            }
        };
        if let (Some(model), Some(max)) = (model, request.max_output_tokens)
            && !(1..=model.max_output_tokens).contains(&max)
        {
            problems.push(FieldProblem::new(
                "options.max_output_tokens",
                format!(
                    "must be between 1 and {} for model {}",
                    model.max_output_tokens, model.name
                ),
            ));
        }
        if let Some(temperature) = request.temperature
            && !(0.0..=2.0).contains(&temperature)
        {
            problems.push(FieldProblem::new(
                "options.temperature",
                "must be between 0 and 2",
            ));
        }
        let offered = self.offered_tools(tenant, &request.tools, &mut problems)?;
        check_collections(&request.collections, &offered, &mut problems);
        let Some(model) = model.filter(|_| problems.is_empty()) else {
            return Err(AppError::InvalidArgument(problems));
        };
        if let Some(store) = &self.knowledge {
            for name in &request.collections {
                let exists = store
                    .exists(name)
                    .await
                    .map_err(|err| AppError::VectorStore(err.to_string()))?;
                if !exists {
                    return Err(AppError::CollectionNotFound(name.clone()));
                }
            }
        }

        let (session_id, expected_turns, history) = match session_id {
            None => (SessionId::generate(), 0, Vec::new()),
            Some(id) => match self.sessions.load(tenant, &id).await {
                Ok(Some(session)) => (id, session.turns, session.messages),
                Ok(None) => return Err(AppError::SessionNotFound(id.as_str().to_owned())),
                Err(err) => return Err(AppError::Internal(err.into())),
            },
        };
        let user = ChatMessage::User {
            content: request.message,
        };
        let max_output_tokens = request.max_output_tokens.unwrap_or(model.max_output_tokens);
        let fitted = fit(
            model.encoding,
            model.window(max_output_tokens),
            self.system_prompt.clone(),
            offered.clone(),
            history.clone(),
            vec![user.clone()],
        )
        .await?
        .map_err(|overflow| AppError::invalid("message", overflow.to_string()))?;

        let span = tracing::info_span!(
            "invoke_agent",
            otel.name = "invoke_agent agentd",
            otel.status_code = Empty,
            gen_ai.operation.name = "invoke_agent",
            gen_ai.agent.name = "agentd",
            gen_ai.provider.name = model.provider.name(),
            gen_ai.request.model = model.upstream_id.as_str(),
            gen_ai.conversation.id = session_id.as_str(),
            gen_ai.usage.input_tokens = Empty,
            gen_ai.usage.output_tokens = Empty,
            error.type = Empty,
        );
        Ok(Turn {
            tenant: tenant.clone(),
            request_id,
            model: model.clone(),
            session_id,
            expected_turns,
            history,
            user,
            offered,
            collections: request.collections,
            max_output_tokens,
            temperature: request.temperature,
            first_messages: fitted.messages,
            first_input_tokens: fitted.input_tokens,
            received_at,
            span,
        })
    }

    /// The tools offered for a turn: the request's list, each existing and
    /// allowed for the tenant, or else the configured defaults the tenant may use.
    fn offered_tools(
        &self,
        tenant: &TenantId,
        requested: &[String],
        problems: &mut Vec<FieldProblem>,
    ) -> Result<Vec<ToolSpec>, AppError> {
        if requested.is_empty() {
            return Ok(self
                .tool_config
                .default
                .iter()
                .filter(|name| self.tool_config.allows(tenant, name))
                .filter_map(|name| self.tools.spec(name).cloned())
                .collect());
        }
        let mut offered: Vec<ToolSpec> = Vec::new();
        let mut denied = None;
        for (i, name) in requested.iter().enumerate() {
            let field = format!("options.tools[{i}]");
            match self.tools.spec(name) {
                None => problems.push(FieldProblem::new(
                    field,
                    format!(
                        "no tool {name:?}; tools are: {}",
                        self.tools.names().collect::<Vec<_>>().join(", ")
                    ),
                )),
                Some(_) if requested[..i].contains(name) => {
                    problems.push(FieldProblem::new(
                        field,
                        format!("{name:?} is listed twice"),
                    ));
                }
                Some(spec) => {
                    if !self.tool_config.allows(tenant, name) && denied.is_none() {
                        denied = Some((field, name.clone()));
                    }
                    offered.push(spec.clone());
                }
            }
        }
        match denied {
            Some((field, tool)) if problems.is_empty() => Err(AppError::ToolNotAllowed {
                field,
                tool,
                tenant: tenant.clone(),
            }),
            _ => Ok(offered),
        }
    }

    /// Runs a prepared turn. The stream ends after `Completed`, or with the
    /// error that stopped the turn; either way nothing is stored unless the turn
    /// completed. Dropping the stream cancels the turn.
    pub fn run(self: Arc<Self>, turn: Turn) -> BoxStream<'static, Result<AgentEvent, AppError>> {
        let span = turn.span.clone();
        let record_span = span.clone();
        let stream = async_stream::try_stream! {
            let mut turn = turn;
            let model = turn.model.clone();
            yield AgentEvent::Started {
                request_id: turn.request_id.clone(),
                model: model.name.clone(),
                system_prompt_version: self.system_prompt_version.clone(),
                session_id: turn.session_id.as_str().to_owned(),
            };
            let context = ToolContext {
                tenant: turn.tenant.clone(),
                collections: turn.collections.clone(),
            };
            let operation = OperationLabels {
                gen_ai_operation_name: "chat".to_owned(),
                gen_ai_provider_name: model.provider.name().to_owned(),
                gen_ai_request_model: model.upstream_id.clone(),
            };
            let mut new_messages = vec![turn.user.clone()];
            let mut answer = String::new();
            let mut sources: Vec<Source> = Vec::new();
            let mut usage = TurnUsage::default();
            let mut first_token = true;
            let mut steps = 0;
            let finish = loop {
                steps += 1;
                let (messages, input_estimate) = if steps == 1 {
                    (std::mem::take(&mut turn.first_messages), turn.first_input_tokens)
                } else {
                    let fitted = fit(
                        model.encoding,
                        model.window(turn.max_output_tokens),
                        self.system_prompt.clone(),
                        turn.offered.clone(),
                        turn.history.clone(),
                        new_messages.clone(),
                    )
                    .await?
                    .map_err(|overflow| AppError::Internal(anyhow::anyhow!(
                        "tool results outgrew the context window: {overflow}"
                    )))?;
                    (fitted.messages, fitted.input_tokens)
                };
                let step = self.model_call(&turn, messages, &operation, input_estimate);
                futures::pin_mut!(step);
                let mut reply = StepReply::default();
                while let Some(event) = step.next().await {
                    match event? {
                        StepEvent::Delta(text) => {
                            if first_token {
                                first_token = false;
                                self.metrics.first_token(&model.name, turn.received_at.elapsed());
                            }
                            answer.push_str(&text);
                            yield AgentEvent::Delta(text);
                        }
                        StepEvent::Done(done) => reply = done,
                    }
                }
                usage.input_tokens = usage.input_tokens.saturating_add(reply.input_tokens);
                usage.output_tokens = usage.output_tokens.saturating_add(reply.output_tokens);
                usage.estimated |= reply.estimated;
                if reply.tool_calls.is_empty() {
                    new_messages.push(ChatMessage::Assistant {
                        content: reply.text,
                        tool_calls: Vec::new(),
                    });
                    break match reply.finish {
                        FinishReason::Length => TurnFinish::Length,
                        FinishReason::ContentFilter => TurnFinish::ContentFilter,
                        FinishReason::Stop | FinishReason::ToolCalls => TurnFinish::Stop,
                    };
                }
                new_messages.push(ChatMessage::Assistant {
                    content: reply.text,
                    tool_calls: reply.tool_calls.clone(),
                });
                for call in &reply.tool_calls {
                    yield AgentEvent::ToolCall(call.clone());
                }
                let last_step = steps >= self.agent.max_steps;
                let mut results = vec![None; reply.tool_calls.len()];
                if last_step {
                    for (i, call) in reply.tool_calls.iter().enumerate() {
                        let reason = format!(
                            "not run: the turn reached its limit of {} model calls (agent.max_steps)",
                            self.agent.max_steps
                        );
                        self.metrics
                            .tool_call(&call.name, ToolOutcome::Refused.as_str(), Duration::ZERO);
                        yield tool_result_event(call, ToolOutcome::Refused, &reason, Duration::ZERO);
                        results[i] = Some(reason);
                    }
                } else {
                    let mut running: FuturesUnordered<_> = reply
                        .tool_calls
                        .iter()
                        .enumerate()
                        .map(|(i, call)| {
                            let run = self.execute_tool(call, &turn.offered, &context, &turn.span);
                            async move { (i, run.await) }
                        })
                        .collect();
                    while let Some((i, (outcome, output, latency))) = running.next().await {
                        yield tool_result_event(&reply.tool_calls[i], outcome, &output.content, latency);
                        merge_sources(&mut sources, output.sources);
                        results[i] = Some(output.content);
                    }
                }
                for (call, content) in reply.tool_calls.iter().zip(results) {
                    new_messages.push(ChatMessage::Tool {
                        call_id: call.id.clone(),
                        content: content.unwrap_or_default(),
                    });
                }
                if last_step {
                    break TurnFinish::MaxSteps;
                }
            };
            mark_cited(&mut sources, &answer);
            if !sources.is_empty() {
                yield AgentEvent::Sources(sources.clone());
            }
            record_span.record("gen_ai.usage.input_tokens", i64::from(usage.input_tokens));
            record_span.record("gen_ai.usage.output_tokens", i64::from(usage.output_tokens));
            yield AgentEvent::Usage(usage);
            let writing = Instant::now();
            let written = self
                .sessions
                .append_turn(&turn.tenant, &turn.session_id, turn.expected_turns, new_messages)
                .await;
            let outcome = match &written {
                Ok(_) => "ok",
                Err(SessionError::Conflict(_)) => "conflict",
                Err(SessionError::Storage(_)) => "error",
            };
            self.metrics.session_write(outcome, writing.elapsed());
            written.map_err(|err| match err {
                SessionError::Conflict(id) => AppError::SessionConflict(id),
                SessionError::Storage(_) => AppError::Internal(err.into()),
            })?;
            self.metrics.steps(&model.name, steps);
            yield AgentEvent::Completed(TurnOutcome {
                answer,
                finish,
                session_id: turn.session_id.as_str().to_owned(),
                model: model.name.clone(),
                sources,
            });
        };
        Traced::new(stream, span).boxed()
    }

    /// One model call as a stream: text deltas as they arrive, then the whole
    /// reply. Traced as `chat {model}` and measured.
    fn model_call<'a>(
        &'a self,
        turn: &'a Turn,
        messages: Vec<ChatMessage>,
        operation: &'a OperationLabels,
        input_estimate: Option<usize>,
    ) -> impl futures::Stream<Item = Result<StepEvent, AppError>> + Send + 'a {
        let model = &turn.model;
        let span = tracing::info_span!(
            parent: &turn.span,
            "chat",
            otel.name = format!("chat {}", model.upstream_id),
            otel.kind = "client",
            otel.status_code = Empty,
            gen_ai.operation.name = "chat",
            gen_ai.provider.name = model.provider.name(),
            gen_ai.request.model = model.upstream_id.as_str(),
            gen_ai.request.max_tokens = i64::from(turn.max_output_tokens),
            gen_ai.response.model = Empty,
            gen_ai.response.finish_reasons = Empty,
            gen_ai.usage.input_tokens = Empty,
            gen_ai.usage.output_tokens = Empty,
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
        let started = Instant::now();
        let provider = model.provider.clone();
        let call_span = span.clone();
        let stream = async_stream::try_stream! {
            let mut upstream = provider
                .stream_chat(request)
                .await
                .map_err(|error| upstream_error(provider.name(), error))?;
            let mut reply = StepReply::default();
            let mut reported = None;
            while let Some(event) = upstream.next().await {
                match event.map_err(|error| upstream_error(provider.name(), error))? {
                    LlmEvent::ResponseModel(name) => {
                        call_span.record("gen_ai.response.model", name.as_str());
                    }
                    LlmEvent::TextDelta(text) => {
                        reply.text.push_str(&text);
                        yield StepEvent::Delta(text);
                    }
                    LlmEvent::ToolCalls(calls) => reply.tool_calls = calls,
                    LlmEvent::Usage(usage) => reported = Some(usage),
                    LlmEvent::Finished(reason) => reply.finish = reason,
                }
            }
            match reported {
                Some(usage) => {
                    reply.input_tokens = usage.input_tokens;
                    reply.output_tokens = usage.output_tokens;
                }
                None => {
                    let (input, output) = estimate_usage(
                        model.encoding,
                        input_estimate,
                        uncounted,
                        turn.offered.clone(),
                        &reply,
                    )
                    .await?;
                    reply.estimated = true;
                    reply.input_tokens = saturate(input);
                    reply.output_tokens = saturate(output);
                }
            }
            call_span.record("gen_ai.usage.input_tokens", i64::from(reply.input_tokens));
            call_span.record("gen_ai.usage.output_tokens", i64::from(reply.output_tokens));
            call_span.record(
                "gen_ai.response.finish_reasons",
                format!("[\"{}\"]", finish_reason_name(&reply.finish)),
            );
            self.metrics.model_call(
                operation,
                started.elapsed(),
                "",
                Some((reply.input_tokens, reply.output_tokens)),
            );
            yield StepEvent::Done(reply);
        };
        let stream = stream.inspect_err(move |err: &AppError| {
            self.metrics
                .model_call(operation, started.elapsed(), err.reason(), None);
        });
        Traced::new(stream, span)
    }

    /// Runs one tool call: refused unless offered, arguments validated against
    /// its schema, bounded by `tools.timeout`. Returns the outcome, the output
    /// (content for the model, sources for the caller), and the latency. Traced
    /// as `execute_tool {tool}`.
    async fn execute_tool(
        &self,
        call: &ToolCall,
        offered: &[ToolSpec],
        context: &ToolContext,
        parent: &tracing::Span,
    ) -> (ToolOutcome, ToolOutput, Duration) {
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
        let started = Instant::now();
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
        let result = tokio::time::timeout(self.tool_config.timeout, run)
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
                    humantime::format_duration(self.tool_config.timeout)
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
            content: cut(output.content, self.tool_config.max_result_bytes),
            sources: output.sources,
        };
        (outcome, output, latency)
    }
}

/// What one model call produced.
#[derive(Clone, Debug)]
struct StepReply {
    text: String,
    tool_calls: Vec<ToolCall>,
    finish: FinishReason,
    input_tokens: u32,
    output_tokens: u32,
    estimated: bool,
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

enum StepEvent {
    Delta(String),
    Done(StepReply),
}

/// The request's collections must be valid names, distinct, at most
/// [`MAX_COLLECTIONS`], and only named when `search_knowledge` is offered.
fn check_collections(names: &[String], offered: &[ToolSpec], problems: &mut Vec<FieldProblem>) {
    if names.is_empty() {
        return;
    }
    if names.len() > MAX_COLLECTIONS {
        problems.push(FieldProblem::new(
            "options.collections",
            format!(
                "names {} collections; at most {MAX_COLLECTIONS}",
                names.len()
            ),
        ));
    }
    if !offered.iter().any(|spec| spec.name == SEARCH_TOOL) {
        problems.push(FieldProblem::new(
            "options.collections",
            format!("{SEARCH_TOOL} is not offered for this turn, so no collection is searched"),
        ));
    }
    for (i, name) in names.iter().enumerate() {
        let field = format!("options.collections[{i}]");
        if let Err(problem) = check_collection(name) {
            problems.push(FieldProblem::new(field, problem.description));
        } else if names[..i].contains(name) {
            problems.push(FieldProblem::new(
                field,
                format!("{name:?} is listed twice"),
            ));
        }
    }
}

/// Fits the conversation: by its byte length when that proves the fit (cheap,
/// no table needed), else by counting tokens on a blocking thread, since that is
/// CPU work and the first count loads the encoding's tables.
async fn fit(
    encoding: Encoding,
    window: ContextWindow,
    system: ChatMessage,
    tools: Vec<ToolSpec>,
    history: Vec<ChatMessage>,
    current: Vec<ChatMessage>,
) -> Result<Result<Fitted, super::context::ContextOverflow>, AppError> {
    if let Some(fitted) = window.fit_by_bytes(&system, &tools, &history, &current) {
        return Ok(Ok(fitted));
    }
    blocking(move || window.fit(encoding, &system, &tools, &history, &current)).await
}

/// Token usage of a model call whose provider reported none: the input counted
/// at fit time or now, the output counted from the reply. On a blocking thread.
async fn estimate_usage(
    encoding: Encoding,
    counted_input: Option<usize>,
    uncounted: Option<Vec<ChatMessage>>,
    tools: Vec<ToolSpec>,
    reply: &StepReply,
) -> Result<(usize, usize), AppError> {
    let answer = ChatMessage::Assistant {
        content: reply.text.clone(),
        tool_calls: reply.tool_calls.clone(),
    };
    blocking(move || {
        let input = counted_input.unwrap_or_else(|| {
            super::context::request_tokens(encoding, uncounted.as_deref().unwrap_or(&[]), &tools)
        });
        (input, encoding.message_tokens(&answer))
    })
    .await
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, AppError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| AppError::Internal(err.into()))
}

fn upstream_error(provider: &str, error: crate::llm::LlmError) -> AppError {
    tracing::warn!(provider, error = %error, "LLM call failed");
    AppError::Upstream {
        provider: provider.to_owned(),
        error,
    }
}

fn saturate(count: usize) -> u32 {
    u32::try_from(count).unwrap_or(u32::MAX)
}

fn finish_reason_name(reason: &FinishReason) -> &'static str {
    match reason {
        FinishReason::Stop => "stop",
        FinishReason::Length => "length",
        FinishReason::ToolCalls => "tool_calls",
        FinishReason::ContentFilter => "content_filter",
    }
}

fn tool_result_event(
    call: &ToolCall,
    outcome: ToolOutcome,
    content: &str,
    latency: Duration,
) -> AgentEvent {
    AgentEvent::ToolResult {
        call_id: call.id.clone(),
        outcome,
        summary: content.chars().take(SUMMARY_CHARS).collect(),
        latency,
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

pin_project_lite::pin_project! {
    /// A stream of results run inside `span`: the span is entered on every poll,
    /// an error marks it failed (`error.type` = the error's reason), and a drop
    /// before the end marks it `cancelled`.
    struct Traced<S> {
        #[pin]
        inner: S,
        mark: EndMark,
    }
}

struct EndMark {
    span: tracing::Span,
    ended: bool,
}

impl Drop for EndMark {
    fn drop(&mut self) {
        if !self.ended {
            self.span.record("error.type", "cancelled");
        }
    }
}

impl<S> Traced<S> {
    fn new(inner: S, span: tracing::Span) -> Self {
        Self {
            inner,
            mark: EndMark { span, ended: false },
        }
    }
}

impl<S, T> futures::Stream for Traced<S>
where
    S: futures::Stream<Item = Result<T, AppError>>,
{
    type Item = S::Item;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let this = self.project();
        let polled = {
            let _entered = this.mark.span.enter();
            this.inner.poll_next(cx)
        };
        match &polled {
            std::task::Poll::Ready(None) => this.mark.ended = true,
            std::task::Poll::Ready(Some(Err(err))) => {
                this.mark.ended = true;
                this.mark.span.record("error.type", err.reason());
                this.mark.span.record("otel.status_code", "ERROR");
            }
            _ => {}
        }
        polled
    }
}
