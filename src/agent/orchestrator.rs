//! The orchestrator runs agent turns. A turn is first prepared ([`prepare`]:
//! checked against the configuration, its session loaded, its message fitted),
//! then run: the agent loop below streams its events, and the turn is stored
//! when, and only when, it completes.
//!
//! The loop lives inside the returned stream: no task is spawned, so dropping
//! the stream (client cancel, deadline) drops the upstream request and every
//! tool call in flight at once.

mod prepare;
mod step;
mod tool_calls;

use std::sync::Arc;

use futures::StreamExt;
use futures::stream::BoxStream;
use sha2::{Digest, Sha256};

use super::context::{ContextWindow, fit};
use super::error::TurnError;
use super::sessions::{Appended, SessionError, SessionStore};
use super::tools::{ToolContext, ToolRegistry};
use super::turn::{
    AgentEvent, Source, TurnFinish, TurnOutcome, TurnUsage, mark_cited, merge_sources,
};
use crate::clock::Clock;
use crate::config::{AgentConfig, ToolsConfig};
use crate::llm::catalog::ModelCatalog;
use crate::llm::router::report;
use crate::llm::{ChatMessage, FinishReason};
use crate::retrieval::store::KnowledgeStore;
use crate::telemetry::genai::{GenAiMetrics, OperationLabels, SessionWriteOutcome};
use crate::telemetry::traced::Traced;

pub use prepare::Turn;
use step::{StepEvent, StepReply, model_step};
use tool_calls::{ToolRunner, result_event};

/// What an orchestrator is made of; the configs must have been validated.
#[derive(Debug)]
pub struct Parts {
    /// The models turns may use.
    pub catalog: ModelCatalog,
    /// The tools turns may offer.
    pub tools: ToolRegistry,
    /// Where conversations are kept.
    pub sessions: Arc<dyn SessionStore>,
    /// The knowledge collections turns may name.
    pub knowledge: KnowledgeStore,
    /// `[agent]`.
    pub agent: AgentConfig,
    /// `[tools]`.
    pub tool_config: ToolsConfig,
    /// Where model calls, tool calls and turns are measured.
    pub metrics: Arc<GenAiMetrics>,
    /// The clock of deadlines, timeouts and stored times.
    pub clock: Clock,
    /// Budgets and rate limits.
    pub cost: Arc<crate::cost::CostControl>,
    /// What leaves for models and returns to users.
    pub guardrails: Arc<crate::guardrails::Guardrails>,
}

/// Runs agent turns.
#[derive(Debug)]
pub struct Orchestrator {
    catalog: ModelCatalog,
    tools: ToolRegistry,
    sessions: Arc<dyn SessionStore>,
    knowledge: KnowledgeStore,
    agent: AgentConfig,
    tool_config: ToolsConfig,
    metrics: Arc<GenAiMetrics>,
    clock: Clock,
    cost: Arc<crate::cost::CostControl>,
    guardrails: Arc<crate::guardrails::Guardrails>,
    system_prompt: ChatMessage,
    system_prompt_version: String,
}

impl Orchestrator {
    /// An orchestrator over `parts`.
    pub fn new(parts: Parts) -> Self {
        let digest = Sha256::digest(parts.agent.system_prompt.as_bytes());
        Self {
            system_prompt: ChatMessage::System {
                content: parts.agent.system_prompt.clone(),
            },
            system_prompt_version: format!("sha256:{}", &hex::encode(digest)[..12]),
            catalog: parts.catalog,
            tools: parts.tools,
            sessions: parts.sessions,
            knowledge: parts.knowledge,
            agent: parts.agent,
            tool_config: parts.tool_config,
            metrics: parts.metrics,
            clock: parts.clock,
            cost: parts.cost,
            guardrails: parts.guardrails,
        }
    }

    /// Cost control.
    pub fn cost(&self) -> &Arc<crate::cost::CostControl> {
        &self.cost
    }

    /// The router behind every model and route turns may name.
    pub fn router(&self) -> &Arc<crate::llm::router::Router> {
        self.catalog.router()
    }

    /// Runs a prepared turn. The stream ends after `Completed`, or with the
    /// error that stopped the turn; either way nothing is stored unless the turn
    /// completed. Dropping the stream cancels the turn.
    pub fn run(self: Arc<Self>, turn: Turn) -> BoxStream<'static, Result<AgentEvent, TurnError>> {
        let span = turn.span.clone();
        let stream = async_stream::try_stream! {
            let mut turn = turn;
            let model = turn.model.clone();
            let context = &turn.context;
            yield AgentEvent::Started {
                request_id: turn.request_id.clone(),
                turn_id: context.turn.clone(),
                model: model.provider.first_target(context).unwrap_or_else(|| model.name.clone()),
                system_prompt_version: self.system_prompt_version.clone(),
                session_id: context.session.clone(),
            };
            let tool_context = ToolContext {
                tenant: context.tenant.clone(),
                collections: turn.collections.clone(),
                clock: self.clock.clone(),
            };
            let operation = OperationLabels {
                gen_ai_operation_name: "chat".to_owned(),
                gen_ai_provider_name: model.provider.name().to_owned(),
                gen_ai_request_model: model.upstream_id.clone(),
            };
            let runner = ToolRunner {
                tools: &self.tools,
                config: &self.tool_config,
                metrics: &self.metrics,
                clock: &self.clock,
            };
            let mut new_messages = vec![turn.user.clone()];
            let mut answer = String::new();
            let mut sources: Vec<Source> = Vec::new();
            let mut usage = TurnUsage::default();
            let mut first_token = true;
            let mut steps = 0;
            let finish = loop {
                steps += 1;
                // 1. What the model sees: the turn as prepared, then refitted
                //    with the tool rounds of this turn.
                let (messages, input_estimate) = if steps == 1 {
                    (std::mem::take(&mut turn.first_messages), turn.first_input_tokens)
                } else {
                    let fitted = fit(
                        model.encoding,
                        ContextWindow::of(model.context_window, turn.max_output_tokens),
                        self.system_prompt.clone(),
                        turn.offered.clone(),
                        turn.history.clone(),
                        new_messages.clone(),
                    )
                    .await?
                    .map_err(|overflow| TurnError::ContextExhausted(overflow.to_string()))?;
                    (fitted.messages, fitted.input_tokens)
                };

                // 2. The model step: deltas go out as they arrive.
                let step = model_step(&turn, &self.metrics, &operation, messages, input_estimate);
                futures::pin_mut!(step);
                let mut reply = StepReply::default();
                let answered_before = answer.len();
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
                        StepEvent::Restart => answer.truncate(answered_before),
                        StepEvent::Done(done) => reply = done,
                    }
                }
                usage.add(reply.input_tokens, reply.output_tokens, reply.estimated);

                // 3. No tool calls, or the output guardrails stopped the
                //    answer: it is complete.
                if reply.finish == FinishReason::Guardrail {
                    new_messages.push(ChatMessage::Assistant {
                        content: reply.text,
                        tool_calls: Vec::new(),
                    });
                    break TurnFinish::Guardrail;
                }
                if reply.tool_calls.is_empty() {
                    new_messages.push(ChatMessage::Assistant {
                        content: reply.text,
                        tool_calls: Vec::new(),
                    });
                    break match reply.finish {
                        FinishReason::Length => TurnFinish::Length,
                        FinishReason::ContentFilter => TurnFinish::ContentFilter,
                        FinishReason::Stop | FinishReason::ToolCalls => TurnFinish::Stop,
                        FinishReason::Guardrail => TurnFinish::Guardrail,
                    };
                }

                // 4. Tool calls: run them (or, at the step limit, refuse them),
                //    results fed back in the order the model made the calls.
                let calls = reply.tool_calls;
                new_messages.push(ChatMessage::Assistant {
                    content: reply.text,
                    tool_calls: calls.clone(),
                });
                for call in &calls {
                    yield AgentEvent::ToolCall(call.clone());
                }
                let last_step = steps >= self.agent.max_steps;
                let mut results = vec![String::new(); calls.len()];
                if last_step {
                    for (i, call) in calls.iter().enumerate() {
                        let ran = runner.refuse(call, self.agent.max_steps);
                        yield result_event(call, &ran);
                        results[i] = ran.output.content;
                    }
                } else {
                    let running = runner.run_all(&calls, &turn.offered, &tool_context, &turn.span);
                    futures::pin_mut!(running);
                    while let Some((i, ran)) = running.next().await {
                        yield result_event(&calls[i], &ran);
                        merge_sources(&mut sources, ran.output.sources);
                        if ran.output.knowledge_unavailable {
                            report::update(&turn.context, |r| r.vector_store_unavailable = true);
                        }
                        results[i] = ran.output.content;
                    }
                }
                for (call, content) in calls.iter().zip(results) {
                    let content = self.guardrails.screen_tool_result(&turn.context, &call.name, content);
                    new_messages.push(ChatMessage::Tool {
                        call_id: call.id.clone(),
                        content,
                    });
                }
                if last_step {
                    break TurnFinish::MaxSteps;
                }
            };

            // 5. The turn's sources and usage, then the durable write: the turn
            //    is complete only once it is stored.
            mark_cited(&mut sources, &answer);
            if !sources.is_empty() {
                yield AgentEvent::Sources(sources.clone());
            }
            turn.span.record("gen_ai.usage.input_tokens", i64::from(usage.input_tokens));
            turn.span.record("gen_ai.usage.output_tokens", i64::from(usage.output_tokens));
            let cost = crate::cost::stage::TurnCost::of(&turn.context);
            usage.cost = cost.cost;
            usage.estimated |= cost.estimated;
            usage.budgets = crate::cost::stage::LastBudgets::of(&turn.context);
            turn.span.record("agentd.cost_usd", cost.cost.to_f64_usd());
            yield AgentEvent::Usage(usage.clone());
            let appended = self.store(&turn, new_messages).await?;
            self.metrics.steps(&model.name, steps);
            self.metrics.answer(!sources.is_empty(), sources.iter().any(|s| s.cited));
            let routed = report::of(&turn.context).unwrap_or_default();
            let guardrails = crate::guardrails::decisions::TurnDecisions::of(&turn.context);
            if !guardrails.is_empty() {
                turn.span.record(
                    "agentd.guardrails",
                    crate::guardrails::decisions::span_value(&guardrails).as_str(),
                );
            }
            let degraded = routed.degradation();
            turn.span.record("agentd.attempts", routed.attempts.len() as i64);
            if let Some(answered_by) = &routed.answered_by {
                turn.span.record("gen_ai.response.model", answered_by.model.as_str());
            }
            if let Some(reason) = degraded {
                self.metrics.degraded_answer(reason.as_str());
                turn.span.record("agentd.degraded", true);
                turn.span.record("agentd.degradation_reason", reason.as_str());
            }
            yield AgentEvent::Completed(TurnOutcome {
                turn_id: turn.context.turn.clone(),
                answer,
                finish,
                session_id: turn.context.session.clone(),
                model: routed
                    .answered_by
                    .as_ref()
                    .map_or_else(|| model.name.clone(), |answered| answered.model.clone()),
                route: routed.route,
                attempts: routed.attempts,
                degraded,
                sources,
                replication_unconfirmed: appended.replication_unconfirmed,
                usage,
                guardrails,
            });
        };
        Traced::new(stream, span).boxed()
    }

    /// Appends the turn's messages to its session in one durable write.
    async fn store(&self, turn: &Turn, messages: Vec<ChatMessage>) -> Result<Appended, TurnError> {
        let writing = std::time::Instant::now();
        let context = &turn.context;
        let messages = self.guardrails.for_storage(&context.tenant, messages);
        let written = self
            .sessions
            .append_turn(
                &context.tenant,
                &context.session,
                turn.expected_turns,
                &context.turn,
                messages,
            )
            .await;
        let outcome = match &written {
            Ok(appended) if appended.replication_unconfirmed => SessionWriteOutcome::Unconfirmed,
            Ok(_) => SessionWriteOutcome::Ok,
            Err(SessionError::Conflict(_)) => SessionWriteOutcome::Conflict,
            Err(SessionError::Unavailable(_)) => SessionWriteOutcome::Unavailable,
            Err(SessionError::Full(_)) => SessionWriteOutcome::Full,
            Err(SessionError::WriteUnknown(_)) => SessionWriteOutcome::Unknown,
            Err(_) => SessionWriteOutcome::Error,
        };
        self.metrics.session_write(outcome, writing.elapsed());
        Ok(written?)
    }
}
