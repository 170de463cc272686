//! The per-call chain: every attempt of every model call (the router's
//! retries, fallbacks and hedges included) passes the same stages in
//! the same order (docs/architecture.md, "The order of checks"):
//!
//! ```text
//! admission.before  token-rate limit, budget reservation     (cost control)
//! guard.before      masking of what leaves for the provider   (guardrails)
//!   upstream call, bounded by the turn's deadline
//! guard.after       restore and stream filters                (guardrails)
//! admission.after
//! guard.settle, admission.settle: once the call has ended, however it ended:
//!                   completed (after `Finished`), failed (a refusal by a stage,
//!                   an upstream error, the deadline), or cancelled (dropped)
//! ```
//!
//! Each slot holds one [`CallStage`]; today both are [`PassThrough`], and later
//! work fills its own slot without reordering the chain. A [`Chained`] provider
//! is an upstream behind the chain, itself an [`LlmProvider`], so whatever
//! calls providers (the router, and through it the agent) never sees the stages.

use std::future::Future as _;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::Stream;

use super::call::CallContext;
use super::{LlmError, LlmEvent, LlmProvider, LlmRequest, LlmStream, Usage};

/// How a model call ended, as its stages are told at settlement.
#[derive(Clone, Debug, PartialEq)]
pub enum CallEnd {
    /// The stream ended after `Finished`, with the usage the provider reported.
    Completed {
        /// Token counts, when the provider reported them.
        usage: Option<Usage>,
    },
    /// A stage refused the call before it reached the upstream
    /// ([`LlmError::Refused`]), the upstream failed (before or during the
    /// stream; a stream that ends without `Finished` is
    /// [`LlmError::Truncated`]), or the deadline passed
    /// ([`LlmError::DeadlineExceeded`]).
    Failed(LlmError),
    /// The consumer dropped the stream before its end (client cancel, a turn
    /// deadline enforced elsewhere, or a hedge that lost).
    Cancelled,
}

/// One stage of the chain. Every method has a pass-through default.
#[async_trait::async_trait]
pub trait CallStage: Send + Sync + std::fmt::Debug {
    /// The stage's name, for logs and tests.
    fn name(&self) -> &str;

    /// The stage for the calls to one provider, when it differs per provider
    /// (prices are per provider and model); `None` keeps this one.
    fn for_provider(&self, _provider: &str) -> Option<Arc<dyn CallStage>> {
        None
    }

    /// On the way out: may change the request, or refuse the call (nothing then
    /// reaches the upstream, and the stages before this one are settled).
    async fn before(
        &self,
        _call: &CallContext,
        request: LlmRequest,
    ) -> Result<LlmRequest, LlmError> {
        Ok(request)
    }

    /// On the way back: may wrap the upstream's stream.
    fn after(&self, _call: &CallContext, stream: LlmStream) -> LlmStream {
        stream
    }

    /// Once the call has ended, exactly once for every stage whose `before`
    /// succeeded, innermost stage first: also when the call is dropped before
    /// its stream exists.
    fn settle(&self, _call: &CallContext, _end: &CallEnd) {}
}

/// A stage that changes nothing: the slot's occupant until its work is built.
#[derive(Debug)]
pub struct PassThrough(pub &'static str);

#[async_trait::async_trait]
impl CallStage for PassThrough {
    fn name(&self) -> &str {
        self.0
    }
}

/// The places a stage can take, outermost first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    /// Token-rate limit and budget reservation before the call; settlement
    /// after it.
    Admission,
    /// Masking of what leaves for the provider before the call; restore and
    /// stream filters after it.
    Guard,
}

/// The stages every model call passes, one per [`Slot`].
#[derive(Clone, Debug)]
pub struct CallChain {
    /// Outermost first: the order of `Slot`.
    stages: [Arc<dyn CallStage>; 2],
}

impl Default for CallChain {
    fn default() -> Self {
        Self::pass_through()
    }
}

impl CallChain {
    /// The chain with a pass-through stage in every slot.
    pub fn pass_through() -> Self {
        Self {
            stages: [
                Arc::new(PassThrough("admission")),
                Arc::new(PassThrough("guard")),
            ],
        }
    }

    /// The chain with `stage` in `slot`.
    pub fn with(mut self, slot: Slot, stage: Arc<dyn CallStage>) -> Self {
        let index = match slot {
            Slot::Admission => 0,
            Slot::Guard => 1,
        };
        self.stages[index] = stage;
        self
    }

    /// The chain for the calls to `provider`: each stage specialised to it.
    pub fn for_provider(&self, provider: &str) -> CallChain {
        Self {
            stages: self
                .stages
                .clone()
                .map(|stage| stage.for_provider(provider).unwrap_or(stage)),
        }
    }

    /// The stages' names, outermost first.
    pub fn names(&self) -> Vec<&str> {
        self.stages.iter().map(|stage| stage.name()).collect()
    }

    /// Runs one attempt of a model call through the chain to `upstream`.
    async fn call(
        &self,
        upstream: &dyn LlmProvider,
        call: &CallContext,
        mut request: LlmRequest,
    ) -> Result<LlmStream, LlmError> {
        let call = &CallContext {
            seq: call.turn.next_call(),
            ..call.clone()
        };
        // Settles the stages admitted so far, once, however the call ends; if
        // this future is dropped part-way (a cancel before the stream exists),
        // its drop settles them as cancelled.
        let mut settlement = Settlement {
            stages: self.stages.clone(),
            admitted: 0,
            call: call.clone(),
            ended: false,
        };
        for stage in &self.stages {
            request = match stage.before(call, request).await {
                Ok(request) => request,
                Err(err) => {
                    settlement.end(&CallEnd::Failed(err.clone()));
                    return Err(err);
                }
            };
            settlement.admitted += 1;
        }
        let deadline = call.turn.deadline.map(|deadline| deadline.at);
        let started = match deadline {
            None => upstream.stream_chat(call, request).await,
            Some(at) => call
                .turn
                .clock
                .timeout_at(at, upstream.stream_chat(call, request))
                .await
                .unwrap_or(Err(LlmError::DeadlineExceeded)),
        };
        let mut stream = match started {
            Ok(stream) => stream,
            Err(err) => {
                settlement.end(&CallEnd::Failed(err.clone()));
                return Err(err);
            }
        };
        if let Some(at) = deadline {
            stream = Box::pin(UntilDeadline {
                inner: stream,
                expiry: Box::pin(call.turn.clock.sleep_until(at)),
                expired: false,
            });
        }
        for stage in self.stages.iter().rev() {
            stream = stage.after(call, stream);
        }
        Ok(Box::pin(Settling {
            inner: stream,
            settlement,
            usage: None,
            finished: false,
        }))
    }
}

/// Settles the stages a call was admitted by, innermost first, exactly once:
/// by [`Settlement::end`], or as cancelled when dropped before that.
struct Settlement {
    stages: [Arc<dyn CallStage>; 2],
    /// How many stages (outermost first) accepted the call.
    admitted: usize,
    call: CallContext,
    ended: bool,
}

impl Settlement {
    fn end(&mut self, end: &CallEnd) {
        if self.ended {
            return;
        }
        self.ended = true;
        for stage in self.stages[..self.admitted].iter().rev() {
            stage.settle(&self.call, end);
        }
    }
}

impl Drop for Settlement {
    fn drop(&mut self) {
        self.end(&CallEnd::Cancelled);
    }
}

/// A provider behind the chain.
#[derive(Debug)]
pub struct Chained {
    chain: CallChain,
    upstream: Arc<dyn LlmProvider>,
}

impl Chained {
    /// `upstream` behind `chain`.
    pub fn new(chain: CallChain, upstream: Arc<dyn LlmProvider>) -> Self {
        Self { chain, upstream }
    }
}

#[async_trait::async_trait]
impl LlmProvider for Chained {
    fn name(&self) -> &str {
        self.upstream.name()
    }

    async fn stream_chat(
        &self,
        call: &CallContext,
        request: LlmRequest,
    ) -> Result<LlmStream, LlmError> {
        self.chain.call(&*self.upstream, call, request).await
    }
}

/// Ends the stream with [`LlmError::DeadlineExceeded`] when the turn's deadline
/// passes first; dropping it then drops the upstream request.
struct UntilDeadline {
    inner: LlmStream,
    expiry: Pin<Box<crate::clock::Sleep>>,
    expired: bool,
}

impl Stream for UntilDeadline {
    type Item = Result<LlmEvent, LlmError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.expired {
            return Poll::Ready(None);
        }
        if let Poll::Ready(item) = self.inner.as_mut().poll_next(cx) {
            return Poll::Ready(item);
        }
        match self.expiry.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.expired = true;
                Poll::Ready(Some(Err(LlmError::DeadlineExceeded)))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Settles the call when its stream ends (completed only after `Finished`;
/// an end without it is a truncated stream), fails, or is dropped.
struct Settling {
    inner: LlmStream,
    settlement: Settlement,
    usage: Option<Usage>,
    finished: bool,
}

impl Stream for Settling {
    type Item = Result<LlmEvent, LlmError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.inner.as_mut().poll_next(cx);
        match &polled {
            Poll::Ready(Some(Ok(LlmEvent::Usage(usage)))) => self.usage = Some(*usage),
            Poll::Ready(Some(Ok(LlmEvent::Finished(_)))) => self.finished = true,
            Poll::Ready(Some(Err(err))) => {
                let end = CallEnd::Failed(err.clone());
                self.settlement.end(&end);
            }
            Poll::Ready(None) => {
                let end = if self.finished {
                    CallEnd::Completed { usage: self.usage }
                } else {
                    CallEnd::Failed(LlmError::Truncated)
                };
                self.settlement.end(&end);
            }
            Poll::Ready(Some(Ok(_))) | Poll::Pending => {}
        }
        polled
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::{Duration, SystemTime};

    use futures::StreamExt;

    use super::*;
    use crate::clock::Clock;
    use crate::llm::call::TurnContext;
    use crate::llm::{ChatMessage, FinishReason};

    /// Records every stage event into a shared log.
    #[derive(Debug)]
    struct Recorder {
        name: &'static str,
        log: Arc<Mutex<Vec<String>>>,
        refuse: bool,
    }

    impl Recorder {
        fn push(&self, event: String) {
            self.log.lock().unwrap().push(event);
        }
    }

    #[async_trait::async_trait]
    impl CallStage for Recorder {
        fn name(&self) -> &str {
            self.name
        }

        async fn before(
            &self,
            call: &CallContext,
            mut request: LlmRequest,
        ) -> Result<LlmRequest, LlmError> {
            self.push(format!("{} before (attempt {})", self.name, call.attempt));
            if self.refuse {
                return Err(LlmError::Refused {
                    stage: self.name.to_owned(),
                    reason: "over budget".into(),
                });
            }
            request.model.push_str(&format!("+{}", self.name));
            Ok(request)
        }

        fn after(&self, _: &CallContext, stream: LlmStream) -> LlmStream {
            self.push(format!("{} after", self.name));
            let (name, log) = (self.name, self.log.clone());
            stream
                .map(move |event| {
                    if let Ok(LlmEvent::TextDelta(text)) = &event {
                        log.lock().unwrap().push(format!("{name} sees {text}"));
                    }
                    event
                })
                .boxed()
        }

        fn settle(&self, _: &CallContext, end: &CallEnd) {
            self.push(format!("{} settle {end:?}", self.name));
        }
    }

    /// Answers "hi" (or fails, or never answers), logging what it was sent.
    #[derive(Debug)]
    struct Upstream {
        log: Arc<Mutex<Vec<String>>>,
        behaviour: &'static str,
    }

    #[async_trait::async_trait]
    impl LlmProvider for Upstream {
        fn name(&self) -> &str {
            "upstream"
        }

        async fn stream_chat(
            &self,
            _: &CallContext,
            request: LlmRequest,
        ) -> Result<LlmStream, LlmError> {
            self.log
                .lock()
                .unwrap()
                .push(format!("upstream called with {}", request.model));
            match self.behaviour {
                "fail" => Err(LlmError::Unavailable {
                    status: 503,
                    message: "down".into(),
                }),
                "hang" => Ok(futures::stream::pending().boxed()),
                "never answers" => std::future::pending().await,
                "unfinished" => {
                    Ok(futures::stream::iter([Ok(LlmEvent::TextDelta("hi".into()))]).boxed())
                }
                _ => Ok(futures::stream::iter([
                    Ok(LlmEvent::TextDelta("hi".into())),
                    Ok(LlmEvent::Usage(Usage {
                        input_tokens: 3,
                        output_tokens: 1,
                        cached_tokens: 0,
                    })),
                    Ok(LlmEvent::Finished(FinishReason::Stop)),
                ])
                .boxed()),
            }
        }
    }

    fn request() -> LlmRequest {
        LlmRequest {
            model: "m".into(),
            messages: vec![ChatMessage::User {
                content: "hello".into(),
            }],
            tools: Vec::new(),
            max_output_tokens: None,
            temperature: None,
        }
    }

    fn chained(behaviour: &'static str, refuse_guard: bool) -> (Chained, Arc<Mutex<Vec<String>>>) {
        let log = Arc::new(Mutex::new(Vec::new()));
        let stage = |name, refuse| {
            Arc::new(Recorder {
                name,
                log: log.clone(),
                refuse,
            })
        };
        let chain = CallChain::pass_through()
            .with(Slot::Guard, stage("guard", refuse_guard))
            .with(Slot::Admission, stage("admission", false));
        let upstream = Arc::new(Upstream {
            log: log.clone(),
            behaviour,
        });
        (Chained::new(chain, upstream), log)
    }

    fn log_of(log: &Arc<Mutex<Vec<String>>>) -> Vec<String> {
        log.lock().unwrap().clone()
    }

    /// Every event of one call outside any turn.
    async fn events_of(provider: &Chained) -> Vec<Result<LlmEvent, LlmError>> {
        let call = CallContext::detached(Clock::system());
        provider
            .stream_chat(&call, request())
            .await
            .unwrap()
            .collect()
            .await
    }

    #[test]
    fn the_default_chain_passes_everything_through() {
        assert_eq!(CallChain::default().names(), ["admission", "guard"]);
    }

    #[tokio::test]
    async fn a_completed_call_passes_every_stage_in_order() {
        let (provider, log) = chained("ok", false);
        assert_eq!(events_of(&provider).await.len(), 3);
        let usage = Some(Usage {
            input_tokens: 3,
            output_tokens: 1,
            cached_tokens: 0,
        });
        assert_eq!(
            log_of(&log),
            [
                "admission before (attempt 1)".to_owned(),
                "guard before (attempt 1)".to_owned(),
                "upstream called with m+admission+guard".to_owned(),
                "guard after".to_owned(),
                "admission after".to_owned(),
                "guard sees hi".to_owned(),
                "admission sees hi".to_owned(),
                format!("guard settle {:?}", CallEnd::Completed { usage }),
                format!("admission settle {:?}", CallEnd::Completed { usage }),
            ]
        );
    }

    #[tokio::test]
    async fn a_failed_upstream_call_is_settled_by_every_stage() {
        let (provider, log) = chained("fail", false);
        let call = CallContext::detached(Clock::system());
        let Err(err) = provider.stream_chat(&call, request()).await else {
            panic!("the call succeeded")
        };
        assert!(matches!(err, LlmError::Unavailable { .. }), "{err:?}");
        let log = log_of(&log);
        assert_eq!(log.len(), 5, "{log:?}");
        assert!(log[3].starts_with("guard settle Failed"), "{log:?}");
        assert!(log[4].starts_with("admission settle Failed"), "{log:?}");
    }

    #[tokio::test]
    async fn a_refused_call_never_reaches_the_upstream_and_settles_the_stages_before() {
        let (provider, log) = chained("ok", true);
        let call = CallContext::detached(Clock::system());
        assert!(provider.stream_chat(&call, request()).await.is_err());
        let log = log_of(&log);
        assert_eq!(log.len(), 3, "{log:?}");
        assert_eq!(log[0], "admission before (attempt 1)");
        assert_eq!(log[1], "guard before (attempt 1)");
        assert!(log[2].starts_with("admission settle Failed"), "{log:?}");
    }

    #[tokio::test]
    async fn a_dropped_stream_is_settled_as_cancelled() {
        let (provider, log) = chained("hang", false);
        let call = CallContext::detached(Clock::system());
        let stream = provider.stream_chat(&call, request()).await.unwrap();
        drop(stream);
        let log = log_of(&log);
        assert_eq!(log[5], "guard settle Cancelled", "{log:?}");
        assert_eq!(log[6], "admission settle Cancelled", "{log:?}");
    }

    #[tokio::test]
    async fn the_turn_deadline_ends_a_silent_stream() {
        let (provider, log) = chained("hang", false);
        let clock = Clock::manual(SystemTime::UNIX_EPOCH);
        let turn = turn_with_deadline(&clock, Duration::from_secs(10));
        let call = CallContext::first(&turn);
        let mut stream = provider.stream_chat(&call, request()).await.unwrap();
        let next = stream.next();
        tokio::pin!(next);
        assert!(futures::poll!(next.as_mut()).is_pending());
        clock.advance(Duration::from_secs(10));
        let end = next.await.unwrap();
        assert!(matches!(end, Err(LlmError::DeadlineExceeded)), "{end:?}");
        assert!(stream.next().await.is_none());
        let log = log_of(&log);
        assert_eq!(
            log[log.len() - 2..],
            [
                "guard settle Failed(DeadlineExceeded)",
                "admission settle Failed(DeadlineExceeded)"
            ],
            "{log:?}"
        );
    }

    fn turn_with_deadline(clock: &Clock, after: Duration) -> Arc<TurnContext> {
        Arc::new(TurnContext::new(
            crate::ids::TenantId::default_tenant(),
            crate::ids::SessionId::generate(),
            crate::ids::TurnId::generate(),
            Some(crate::llm::CallDeadline {
                at: clock.now() + after,
                timeout: after,
            }),
            clock.clone(),
        ))
    }

    #[tokio::test]
    async fn a_call_dropped_before_its_stream_exists_is_settled_as_cancelled() {
        let (provider, log) = chained("never answers", false);
        let call = CallContext::detached(Clock::system());
        // async-trait's future is boxed: dropping it drops the call.
        let mut started = provider.stream_chat(&call, request());
        assert!(futures::poll!(started.as_mut()).is_pending());
        drop(started);
        let log = log_of(&log);
        assert_eq!(
            log[3..],
            ["guard settle Cancelled", "admission settle Cancelled"],
            "{log:?}"
        );
    }

    #[tokio::test]
    async fn the_turn_deadline_ends_a_call_that_never_starts_streaming() {
        let (provider, log) = chained("never answers", false);
        let clock = Clock::manual(SystemTime::UNIX_EPOCH);
        let call = CallContext::first(&turn_with_deadline(&clock, Duration::from_secs(10)));
        let started = provider.stream_chat(&call, request());
        tokio::pin!(started);
        assert!(futures::poll!(started.as_mut()).is_pending());
        clock.advance(Duration::from_secs(10));
        let Err(err) = started.await else {
            panic!("the call started")
        };
        assert_eq!(err, LlmError::DeadlineExceeded);
        let log = log_of(&log);
        assert_eq!(
            log[3..],
            [
                "guard settle Failed(DeadlineExceeded)",
                "admission settle Failed(DeadlineExceeded)"
            ],
            "{log:?}"
        );
    }

    #[tokio::test]
    async fn a_stream_that_ends_without_finished_is_settled_as_truncated() {
        let (provider, log) = chained("unfinished", false);
        assert_eq!(events_of(&provider).await.len(), 1);
        let log = log_of(&log);
        assert_eq!(log.last().unwrap(), "admission settle Failed(Truncated)");
    }
}
