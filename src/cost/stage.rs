//! The admission stage of the per-call chain: before every attempt of every
//! model call (tool-loop steps, retries, fallbacks and hedges alike) it
//! reserves the call's estimate against every budget and token-rate bucket;
//! once the call has ended, however it ended, it settles the reservation to
//! what the call used.
//!
//! - **Estimate.** Input: the request's byte-length bound (a token covers at
//!   least one byte), which over-reserves but costs nothing; only when that
//!   bound does not fit a budget are the tokens counted, on a blocking thread.
//!   Output: the call's `max_output_tokens`. Priced at the full input rate.
//! - **Spent.** The provider's reported usage. A call that reached the
//!   upstream but reported none (failed, cut, cancelled, or a provider that
//!   never reports) is charged an estimate, flagged: its input and answer
//!   bytes over four (the average for English text with OpenAI's encodings),
//!   never more than the input bound. A connection that never opened is
//!   charged nothing.
//! - **Ledger down.** A call of a tenant and key with a configured budget is
//!   refused (`UNAVAILABLE`): budgets fail closed; so is one with a
//!   token-rate limit unless `cost.rate_limits_fail_open`. Others go on,
//!   counted in the metrics (and settled, should the ledger come back), but a
//!   runtime override, which lives in the ledger, cannot apply meanwhile.
//! - **Settlement** is made at once in memory (embedded) or in a detached
//!   task (Redis) that the turn's next call waits for, so a client that hangs
//!   up leaves nothing reserved; a replica that dies leaves the reservation to expire
//!   and be charged in full ([`super::ledger`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::StreamExt as _;

use super::ledger::{Owner, Reservation, Reserved, Spent};
use super::money::Usd;
use super::period::periods;
use super::prices::{Price, TokenCount};
use super::{CostControl, Limited};
use crate::llm::chain::{CallEnd, CallStage};
use crate::llm::router::report;
use crate::llm::tokens::{request_bound, request_tokens};
use crate::llm::{CallContext, LlmError, LlmEvent, LlmRequest, LlmStream};
use crate::tokenizer::Encoding;

/// A model a provider serves: its configured name and price.
#[derive(Clone, Debug)]
pub struct Priced {
    /// The configured name.
    pub model: String,
    /// Its price.
    pub price: Price,
}

/// What a turn's model calls cost so far, kept in the turn's state: every
/// attempt, failed and cancelled ones included.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TurnCost {
    /// Input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// The cost.
    pub cost: Usd,
    /// Whether any count is agentd's estimate.
    pub estimated: bool,
}

impl TurnCost {
    /// The turn's cost so far.
    pub fn of(turn: &crate::llm::TurnContext) -> TurnCost {
        turn.with_state(|state| state.get::<TurnCost>().copied())
            .unwrap_or_default()
    }
}

/// The budgets the turn's last reservation applied, with their use then.
#[derive(Clone, Debug, Default)]
pub struct LastBudgets(Vec<super::ledger::BudgetUse>);

impl LastBudgets {
    /// The turn's last reservation's budgets.
    pub fn of(turn: &crate::llm::TurnContext) -> Vec<super::ledger::BudgetUse> {
        turn.with_state(|state| state.get::<LastBudgets>().map(|last| last.0.clone()))
            .unwrap_or_default()
    }
}

/// Settles a reservation at zero if dropped before [`Unsettled::disarm`]:
/// a call dropped while the ledger was reserving for it.
struct Unsettled {
    armed: Option<(Arc<CostControl>, Reservation)>,
}

impl Unsettled {
    fn arm(control: &Arc<CostControl>, reservation: &Reservation) -> Self {
        Self {
            armed: Some((control.clone(), reservation.clone())),
        }
    }

    fn disarm(mut self) {
        self.armed = None;
    }
}

impl Drop for Unsettled {
    fn drop(&mut self) {
        let Some((control, reservation)) = self.armed.take() else {
            return;
        };
        // Settling a call that was never reserved files nothing, and makes a
        // reservation still on its way a duplicate.
        let settle = async move {
            let _ = control.ledger.settle(&reservation, &Spent::default()).await;
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(settle);
        }
    }
}

/// A reservation made for one call, until it is settled.
struct Pending {
    reservation: Reservation,
    priced: Priced,
    input_bound: u64,
    /// Bytes of answer (text and tool-call arguments) seen so far.
    output_bytes: Arc<AtomicU64>,
}

/// The reservations of a turn's calls in flight, by the call's number.
#[derive(Clone, Default)]
struct InFlight(Arc<std::sync::Mutex<Calls>>);

/// A turn's calls between reservation and settlement, and the settlements
/// still on their way to the ledger.
#[derive(Default)]
struct Calls {
    pending: HashMap<u32, Pending>,
    /// The next call of the turn waits for these, so that a failover does not
    /// find its failed predecessor's reservation still held.
    settling: Vec<tokio::task::JoinHandle<()>>,
}

impl InFlight {
    fn of(call: &CallContext) -> InFlight {
        call.turn.with_state(|state| {
            if state.get::<InFlight>().is_none() {
                state.insert(InFlight::default());
            }
            state.get::<InFlight>().cloned().unwrap_or_default()
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Calls> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The admission stage, before specialising to a provider.
#[derive(Debug)]
pub struct Admission {
    control: Arc<CostControl>,
    /// Per provider name: upstream model id → the model it is.
    prices: Arc<HashMap<String, HashMap<String, Priced>>>,
    /// The provider this instance admits calls for.
    provider: Option<String>,
}

impl Admission {
    /// The stage over `control`, with the models of each provider.
    pub fn new(
        control: Arc<CostControl>,
        prices: HashMap<String, HashMap<String, Priced>>,
    ) -> Self {
        Self {
            control,
            prices: Arc::new(prices),
            provider: None,
        }
    }

    fn priced(&self, upstream: &str) -> Priced {
        self.provider
            .as_ref()
            .and_then(|p| self.prices.get(p))
            .and_then(|models| models.get(upstream))
            .cloned()
            .unwrap_or_else(|| Priced {
                model: upstream.to_owned(),
                price: Price::FREE,
            })
    }

    fn reservation(&self, call: &CallContext, tokens: u64, cost: Usd) -> Reservation {
        let control = &self.control;
        let turn = &call.turn;
        let now_ms = control.clock.unix_ms();
        let owner = |owner: &Owner| control.configured(&turn.tenant, owner);
        let (tenant_tokens, key_tokens) = (
            control.tenants.get(&turn.tenant).and_then(|l| l.tokens),
            control.keys.get(&turn.key).and_then(|l| l.tokens),
        );
        let ms = |d: std::time::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Reservation {
            tenant: turn.tenant.clone(),
            key: turn.key.clone(),
            session: turn.session.clone(),
            id: super::ledger::CallId {
                turn: turn.turn.clone(),
                call: call.seq,
            },
            periods: periods(now_ms, &control.zone),
            now_ms,
            expires_ms: now_ms.saturating_add(ms(control.reservation_ttl)),
            // A session's counters outlive any call of it, whatever
            // `sessions.max_age` says.
            session_ttl_ms: ms(control.session_ttl.max(control.reservation_ttl)),
            usage_retention_ms: ms(control.usage_retention),
            tokens,
            cost,
            tenant_budgets: owner(&Owner::Tenant),
            key_budgets: owner(&Owner::Key(turn.key.clone())),
            tenant_tokens,
            key_tokens,
        }
    }

    fn granted(&self, call: &CallContext, uses: &[super::ledger::BudgetUse]) {
        let metrics = &self.control.metrics;
        for used in uses {
            if used.kind.is_session() || used.limit == 0 {
                continue;
            }
            let ratio = used.used as f64 / used.limit as f64;
            let subject = used.owner.to_string();
            metrics.used(&call.turn.tenant, &subject, used.kind.as_str(), ratio);
            let soft = u128::from(used.limit) * u128::from(self.control.soft_limit_percent);
            if u128::from(used.used) * 100 >= soft {
                metrics.soft_limit(&call.turn.tenant, used.kind.as_str());
                tracing::info!(
                    tenant = %call.turn.tenant,
                    subject,
                    budget = used.kind.as_str(),
                    used = used.used,
                    limit = used.limit,
                    "a budget is past its soft limit"
                );
            }
        }
    }

    /// Reserves once; on a budget refusal of the byte bound, counts the
    /// tokens and tries again with the count.
    async fn reserve(
        &self,
        call: &CallContext,
        request: &LlmRequest,
        priced: &Priced,
        input_bound: u64,
    ) -> Result<Reservation, LlmError> {
        let output = u64::from(request.max_output_tokens.unwrap_or(0));
        let price_of = |input: u64| {
            priced.price.cost(&TokenCount {
                input,
                cached_input: 0,
                output,
            })
        };
        let mut reservation = self.reservation(call, input_bound + output, price_of(input_bound));
        let mut counted = false;
        // Only a tokenizer that is the model's own gives a count to trust
        // (an open model's would under-count and let calls overshoot).
        let countable = Encoding::knows(&request.model);
        loop {
            // Dropped while the ledger decides (a client that hangs up), the
            // reservation may still be made: the guard settles it at zero.
            let guard = Unsettled::arm(&self.control, &reservation);
            let reserved = self.control.ledger.reserve(&reservation).await;
            let answer = match reserved {
                Ok(answer) => {
                    guard.disarm();
                    answer
                }
                Err(err) => {
                    self.control.metrics.ledger_failure("reserve");
                    let fail_closed = reservation.budgeted()
                        || (reservation.rate_limited() && !self.control.rate_limits_fail_open);
                    if fail_closed {
                        // The reservation may have landed all the same (a
                        // timeout): the guard releases it.
                        drop(guard);
                        return Err(LlmError::Limited(Limited::Unavailable(err.to_string())));
                    }
                    // Settled as usual after the call: that releases a
                    // reservation that landed, or files the spend if none did.
                    guard.disarm();
                    // Nothing configured to enforce: the call goes on, counted
                    // in the metrics but not in the ledger.
                    tracing::warn!(error = %err, tenant = %call.turn.tenant,
                        "budget ledger unavailable; a call with no configured budget goes on unrecorded");
                    return Ok(reservation);
                }
            };
            match answer {
                Reserved::Granted(uses) => {
                    self.granted(call, &uses);
                    // A repeated reservation (`uses` empty) keeps the last.
                    if !uses.is_empty() {
                        call.turn
                            .with_state(|state| state.insert(LastBudgets(uses)));
                    }
                    return Ok(reservation);
                }
                Reserved::RateLimited { limit, wait } if counted || !countable => {
                    self.control.metrics.rate_limited(&call.turn.tenant, limit);
                    return Err(LlmError::Limited(Limited::Rate { limit, wait }));
                }
                // Counting cannot help when the output cap alone does not fit.
                Reserved::OverBudget(exceeded)
                    if counted
                        || !countable
                        || exceeded.used.saturating_add(super::ledger::amount(
                            exceeded.kind,
                            output,
                            price_of(0),
                        )) > exceeded.limit =>
                {
                    self.control
                        .metrics
                        .rejected(&call.turn.tenant, exceeded.kind.as_str());
                    return Err(LlmError::Limited(Limited::over_budget(&exceeded)));
                }
                // The byte bound did not fit: count the tokens and try once
                // more with the count.
                Reserved::OverBudget(_) | Reserved::RateLimited { .. } => {
                    counted = true;
                    let (messages, tools) = (request.messages.clone(), request.tools.clone());
                    let encoding = Encoding::for_model(&request.model);
                    let exact = tokio::task::spawn_blocking(move || {
                        request_tokens(encoding, &messages, &tools)
                    })
                    .await
                    .map_err(|err| LlmError::Limited(Limited::Unavailable(err.to_string())))?;
                    let exact = u64::try_from(exact).unwrap_or(u64::MAX).min(input_bound);
                    reservation.tokens = exact + output;
                    reservation.cost = price_of(exact);
                }
            }
        }
    }

    fn spent(pending: &Pending, end: &CallEnd, route: String) -> Option<Spent> {
        let (input, cached, output, estimated) = match end {
            CallEnd::Completed { usage: Some(usage) } => (
                u64::from(usage.input_tokens),
                u64::from(usage.cached_tokens),
                u64::from(usage.output_tokens),
                false,
            ),
            // Never reached the upstream: nothing to charge. A connection
            // error before any answer is taken as one (it may have been sent:
            // a provider that billed it is the one case that escapes); after
            // some answer it is charged like any cut stream.
            CallEnd::Failed(
                LlmError::Limited(_) | LlmError::Refused { .. } | LlmError::Guardrail(_),
            ) => return None,
            CallEnd::Failed(LlmError::Connection(_))
                if pending.output_bytes.load(Ordering::Relaxed) == 0 =>
            {
                return None;
            }
            CallEnd::Completed { usage: None } | CallEnd::Failed(_) | CallEnd::Cancelled => {
                let bytes = pending.output_bytes.load(Ordering::Relaxed);
                (pending.input_bound.div_ceil(4), 0, bytes.div_ceil(4), true)
            }
        };
        let cost = pending.priced.price.cost(&TokenCount {
            input,
            cached_input: cached,
            output,
        });
        Some(Spent {
            route,
            model: pending.priced.model.clone(),
            input_tokens: input,
            cached_tokens: cached,
            output_tokens: output,
            cost,
            estimated,
            reached: true,
        })
    }
}

#[async_trait::async_trait]
impl CallStage for Admission {
    fn name(&self) -> &str {
        "admission"
    }

    fn for_provider(&self, provider: &str) -> Option<Arc<dyn CallStage>> {
        // The extractive answerer calls no upstream and costs nothing.
        if provider == crate::llm::extractive::MODEL {
            return Some(Arc::new(crate::llm::chain::PassThrough("admission")));
        }
        Some(Arc::new(Self {
            control: self.control.clone(),
            prices: self.prices.clone(),
            provider: Some(provider.to_owned()),
        }))
    }

    async fn before(
        &self,
        call: &CallContext,
        request: LlmRequest,
    ) -> Result<LlmRequest, LlmError> {
        // The turn's earlier calls settled first (a failover's predecessor).
        let settling = std::mem::take(&mut InFlight::of(call).lock().settling);
        for handle in settling {
            let _ = handle.await;
        }
        let priced = self.priced(&request.model);
        let input_bound =
            u64::try_from(request_bound(&request.messages, &request.tools)).unwrap_or(u64::MAX);
        let reservation = self.reserve(call, &request, &priced, input_bound).await?;
        InFlight::of(call).lock().pending.insert(
            call.seq,
            Pending {
                reservation,
                priced,
                input_bound,
                output_bytes: Arc::default(),
            },
        );
        Ok(request)
    }

    fn after(&self, call: &CallContext, stream: LlmStream) -> LlmStream {
        let Some(bytes) = InFlight::of(call)
            .lock()
            .pending
            .get(&call.seq)
            .map(|p| p.output_bytes.clone())
        else {
            return stream;
        };
        Box::pin(stream.inspect(move |event| {
            let len = match event {
                Ok(LlmEvent::TextDelta(text)) => text.len(),
                Ok(LlmEvent::ToolCalls(calls)) => {
                    calls.iter().map(|c| c.name.len() + c.arguments.len()).sum()
                }
                _ => 0,
            };
            if len > 0 {
                bytes.fetch_add(len as u64, Ordering::Relaxed);
            }
        }))
    }

    fn settle(&self, call: &CallContext, end: &CallEnd) {
        let in_flight = InFlight::of(call);
        let Some(pending) = in_flight.lock().pending.remove(&call.seq) else {
            return;
        };
        let route = report::read(&call.turn, |r| r.route.clone()).unwrap_or_default();
        let spent = Self::spent(&pending, end, route.clone()).unwrap_or_else(|| Spent {
            route,
            model: pending.priced.model.clone(),
            ..Spent::default()
        });
        let turn = &call.turn;
        turn.with_state(|state| {
            let mut total = state.get::<TurnCost>().copied().unwrap_or_default();
            total.input_tokens = total.input_tokens.saturating_add(spent.input_tokens);
            total.output_tokens = total.output_tokens.saturating_add(spent.output_tokens);
            total.cost = total.cost.saturating_add(spent.cost);
            total.estimated |= spent.estimated;
            state.insert(total);
        });
        if spent.tokens() > 0 {
            self.control.metrics.cost(
                &turn.tenant,
                &spent.route,
                &spent.model,
                spent.cost.to_f64_usd(),
            );
        }
        // In memory, at once; in Redis, by a task the client cannot cancel.
        if self.control.ledger.settle_now(&pending.reservation, &spent) {
            return;
        }
        let (control, reservation) = (self.control.clone(), pending.reservation);
        let settle = async move {
            if let Err(err) = control.ledger.settle(&reservation, &spent).await {
                control.metrics.ledger_failure("settle");
                tracing::warn!(call = %reservation.id, error = %err,
                    "settling a reservation failed; it will be charged in full when it expires");
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let handle = self.control.settlements.spawn_on(settle, &runtime);
                in_flight.lock().settling.push(handle);
            }
            Err(_) => tracing::warn!("no runtime to settle a reservation on; it will expire"),
        }
    }
}
