//! Turn preparation: a request already well formed (the gRPC layer checked its
//! shape) is checked against the configuration and state (the model, the
//! tenant's tools, the collections, the session), its session is loaded and its
//! message fitted into the model's context window. Nothing is stored and no
//! model is called; a turn that passes is ready to run.

use std::sync::Arc;

use tracing::field::Empty;

use super::Orchestrator;
use crate::agent::context::{ContextWindow, fit};
use crate::agent::error::{Problem, TurnError, TurnField};
use crate::agent::turn::{TurnOrigin, TurnRequest};
use crate::ids::{CollectionName, SessionId, TenantId, TurnId};
use crate::llm::catalog::Model;
use crate::llm::{ChatMessage, ToolSpec, TurnContext};
use crate::retrieval::knowledge::SEARCH_TOOL;

/// A validated turn, ready to run.
#[derive(Debug)]
pub struct Turn {
    pub(super) context: Arc<TurnContext>,
    pub(super) request_id: String,
    pub(super) model: Model,
    pub(super) expected_turns: u64,
    pub(super) history: Vec<ChatMessage>,
    pub(super) user: ChatMessage,
    pub(super) offered: Vec<ToolSpec>,
    pub(super) collections: Vec<CollectionName>,
    pub(super) max_output_tokens: u32,
    pub(super) temperature: Option<f32>,
    pub(super) first_messages: Vec<ChatMessage>,
    pub(super) first_input_tokens: Option<usize>,
    /// When the turn arrived, on the real clock: for time-to-first-token.
    pub(super) received_at: std::time::Instant,
    pub(super) span: tracing::Span,
}

impl Orchestrator {
    /// Checks `request` of `origin` against the configuration and state, loads
    /// its session and fits its message into the model's context window.
    /// Nothing is stored.
    pub async fn prepare(
        &self,
        origin: TurnOrigin,
        request: TurnRequest,
    ) -> Result<Turn, TurnError> {
        let received_at = std::time::Instant::now();
        // Request-rate limits first: a refused turn costs no session read.
        self.cost
            .admit_request(&origin.tenant, &origin.key)
            .await
            .map_err(TurnError::Limited)?;
        let mut problems = Vec::new();
        if request.message.len() > self.agent.max_message_bytes {
            problems.push(Problem::new(
                TurnField::Message,
                format!(
                    "is {} bytes; the limit is {} bytes (agent.max_message_bytes)",
                    request.message.len(),
                    self.agent.max_message_bytes
                ),
            ));
        }
        let model = match self.catalog.choose(&request.model) {
            Ok(model) => Some(model),
            Err(unknown) => {
                problems.push(Problem::new(TurnField::Model, unknown.to_string()));
                None
            }
        };
        if let (Some(model), Some(max)) = (model, request.max_output_tokens)
            && !(1..=model.max_output_tokens).contains(&max)
        {
            problems.push(Problem::new(
                TurnField::MaxOutputTokens,
                format!(
                    "must be between 1 and {} for model {}",
                    model.max_output_tokens, model.name
                ),
            ));
        }
        let (offered, denied) = self.offered_tools(&origin.tenant, &request.tools, &mut problems);
        if !request.collections.is_empty() && !offered.iter().any(|spec| spec.name == SEARCH_TOOL) {
            problems.push(Problem::new(
                TurnField::Collections,
                format!("{SEARCH_TOOL} is not offered for this turn, so no collection is searched"),
            ));
        }
        let Some(model) = model.filter(|_| problems.is_empty()) else {
            return Err(TurnError::Invalid(problems));
        };
        // Permission comes after validity: a request with invalid fields hears
        // about them, not about a tool it may not use.
        if let Some((field, tool)) = denied {
            return Err(TurnError::ToolNotAllowed {
                field,
                tool,
                tenant: origin.tenant,
            });
        }
        // A store that cannot be reached cannot say a collection is missing:
        // the check is skipped (no false NOT_FOUND) and the turn goes on,
        // degraded, its searches telling the model the knowledge base is
        // unavailable.
        let mut store_unavailable = false;
        for name in &request.collections {
            match self.knowledge.exists(name).await {
                Ok(true) => {}
                Ok(false) => return Err(TurnError::CollectionNotFound(name.clone())),
                Err(err) if err.is_unavailable() => {
                    tracing::warn!(collection = %name, error = %err, "collection check skipped: the vector store is unavailable");
                    store_unavailable = true;
                    break;
                }
                Err(err) => return Err(err.into()),
            }
        }

        let (session, expected_turns, history) = match request.session {
            None => (SessionId::generate(), 0, Vec::new()),
            Some(id) => {
                let session = self.sessions.get(&origin.tenant, &id).await?;
                (id, session.turns, session.history())
            }
        };
        let user = ChatMessage::User {
            content: request.message,
        };
        let max_output_tokens = request.max_output_tokens.unwrap_or(model.max_output_tokens);
        let fitted = fit(
            model.encoding,
            ContextWindow::of(model.context_window, max_output_tokens),
            self.system_prompt.clone(),
            offered.clone(),
            history.clone(),
            vec![user.clone()],
        )
        .await?
        .map_err(|overflow| TurnError::invalid(TurnField::Message, overflow.to_string()))?;

        let turn = TurnId::generate();
        let span = tracing::info_span!(
            "invoke_agent",
            otel.name = "invoke_agent agentd",
            otel.status_code = Empty,
            gen_ai.operation.name = "invoke_agent",
            gen_ai.agent.name = "agentd",
            gen_ai.provider.name = model.provider.name(),
            gen_ai.request.model = model.upstream_id.as_str(),
            gen_ai.conversation.id = session.as_str(),
            agentd.turn.id = turn.as_str(),
            agentd.route = model.name.as_str(),
            agentd.cost_usd = Empty,
            agentd.attempts = Empty,
            agentd.degraded = Empty,
            agentd.degradation_reason = Empty,
            agentd.guardrails = Empty,
            gen_ai.response.model = Empty,
            gen_ai.usage.input_tokens = Empty,
            gen_ai.usage.output_tokens = Empty,
            error.type = Empty,
        );
        let downgrade_to = self.cost.downgrade_for(&origin.tenant);
        let context = TurnContext::new(
            origin.tenant,
            session,
            turn,
            origin.deadline,
            self.clock.clone(),
        )
        .delivered(origin.delivery)
        .downgrading_to(downgrade_to)
        .keyed(origin.key);
        // The input guardrails, before any model call: PII the tenant blocks
        // for the route's first target, prompt injection in the message, and
        // the tenant's input webhooks.
        let first_provider = model
            .provider
            .first_target(&context)
            .and_then(|target| self.catalog.provider_of(&target));
        self.guardrails
            .screen_message(&context, user_text(&user), first_provider.as_deref())
            .await
            .map_err(TurnError::Guardrail)?;
        if store_unavailable {
            crate::llm::router::report::update(&context, |report| {
                report.vector_store_unavailable = true;
            });
        }
        Ok(Turn {
            context: Arc::new(context),
            request_id: origin.request_id,
            model: model.clone(),
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

    /// The tools offered for a turn: the request's list (each unknown one a
    /// problem), or else the configured defaults the tenant may use; and the
    /// first requested tool the tenant may not use, if any.
    fn offered_tools(
        &self,
        tenant: &TenantId,
        requested: &[String],
        problems: &mut Vec<Problem>,
    ) -> (Vec<ToolSpec>, Option<(TurnField, String)>) {
        if requested.is_empty() {
            let defaults = self
                .tool_config
                .default
                .iter()
                .filter(|name| self.tool_config.allows(tenant, name))
                .filter_map(|name| self.tools.spec(name).cloned())
                .collect();
            return (defaults, None);
        }
        let mut offered: Vec<ToolSpec> = Vec::new();
        let mut denied = None;
        for (i, name) in requested.iter().enumerate() {
            match self.tools.spec(name) {
                None => problems.push(Problem::new(
                    TurnField::Tool(i),
                    format!(
                        "no tool {name:?}; tools are: {}",
                        self.tools.names().collect::<Vec<_>>().join(", ")
                    ),
                )),
                Some(spec) => {
                    if !self.tool_config.allows(tenant, name) && denied.is_none() {
                        denied = Some((TurnField::Tool(i), name.clone()));
                    }
                    offered.push(spec.clone());
                }
            }
        }
        (offered, denied)
    }
}

/// The text of the user's message.
fn user_text(message: &ChatMessage) -> &str {
    match message {
        ChatMessage::User { content } => content,
        _ => "",
    }
}
