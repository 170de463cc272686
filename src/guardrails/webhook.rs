//! `[guardrails.webhooks.NAME]`: an external classifier over HTTP JSON, for
//! teams that run their own moderation model. agentd POSTs
//!
//! ```json
//! {"version": 1, "direction": "input", "place": "message", "tenant": "acme",
//!  "turn_id": "…", "text": "…"}
//! ```
//!
//! and reads `{"flagged": bool, "score": 0.0–1.0, "categories": ["…"]}`
//! (`score` and `categories` optional; the shape of OpenAI's moderation
//! answer, flattened). The text is flagged when `flagged` is true or `score`
//! reaches the webhook's `threshold`. A request is not retried: the turn waits
//! for it, bounded by `timeout`, and a failure is decided by `on_error`.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::config::guardrails::{AppliesTo, OnError, WebhookConfig};
use crate::telemetry::guardrails::{GuardrailMetrics, WebhookOutcome};

/// Which text is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// The user's message, before any model call.
    Input,
    /// The whole answer, before any of it is released.
    Output,
}

/// What a webhook said.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    /// Whether the text is flagged (by `flagged` or by the score).
    pub flagged: bool,
    /// The score, when the webhook gave one; 1 when it flagged without one.
    pub score: f32,
}

/// Why a webhook gave no verdict.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum WebhookError {
    /// No answer within the timeout.
    #[error("webhook {name} did not answer within {timeout:?}")]
    Timeout {
        /// The webhook.
        name: String,
        /// Its timeout.
        timeout: Duration,
    },
    /// The request failed or the answer was not a verdict.
    #[error("webhook {name} failed: {reason}")]
    Failed {
        /// The webhook.
        name: String,
        /// What went wrong.
        reason: String,
    },
}

#[derive(Serialize)]
struct CheckRequest<'a> {
    version: u32,
    direction: Direction,
    place: &'a str,
    tenant: &'a str,
    turn_id: &'a str,
    text: &'a str,
}

#[derive(Deserialize)]
struct CheckResponse {
    flagged: bool,
    #[serde(default)]
    score: Option<f32>,
}

/// One configured webhook.
#[derive(Debug)]
pub struct Webhook {
    name: String,
    url: String,
    applies_to: AppliesTo,
    timeout: Duration,
    on_error: OnError,
    threshold: f32,
    http: reqwest::Client,
    metrics: GuardrailMetrics,
}

/// The text to check and whose it is.
#[derive(Clone, Copy, Debug)]
pub struct Check<'a> {
    /// Message or answer.
    pub direction: Direction,
    /// `message` or `answer`.
    pub place: &'a str,
    /// The tenant.
    pub tenant: &'a str,
    /// The turn.
    pub turn_id: &'a str,
    /// The text.
    pub text: &'a str,
}

impl Webhook {
    /// The webhook `name` as `config` describes it, over `http`.
    pub fn new(
        name: &str,
        config: &WebhookConfig,
        http: reqwest::Client,
        metrics: GuardrailMetrics,
    ) -> Self {
        Self {
            name: name.to_owned(),
            url: config.url.clone(),
            applies_to: config.applies_to,
            timeout: config.timeout,
            on_error: config.on_error,
            threshold: config.threshold,
            http,
            metrics,
        }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Which text it checks.
    pub fn applies_to(&self) -> AppliesTo {
        self.applies_to
    }

    /// What a failure means.
    pub fn on_error(&self) -> OnError {
        self.on_error
    }

    /// Asks the webhook about `check`, counted and timed.
    pub async fn check(&self, check: Check<'_>) -> Result<Verdict, WebhookError> {
        let started = Instant::now();
        let verdict = self.ask(check).await;
        let outcome = match &verdict {
            Ok(v) if v.flagged => WebhookOutcome::Flagged,
            Ok(_) => WebhookOutcome::Passed,
            Err(_) => WebhookOutcome::Error,
        };
        self.metrics
            .webhook(&self.name, outcome, started.elapsed().as_secs_f64());
        if let Err(err) = &verdict {
            tracing::warn!(webhook = %self.name, error = %err, "guardrail webhook failed");
        }
        verdict
    }

    async fn ask(&self, check: Check<'_>) -> Result<Verdict, WebhookError> {
        let failed = |reason: String| WebhookError::Failed {
            name: self.name.clone(),
            reason,
        };
        let body = CheckRequest {
            version: 1,
            direction: check.direction,
            place: check.place,
            tenant: check.tenant,
            turn_id: check.turn_id,
            text: check.text,
        };
        let sent = self
            .http
            .post(&self.url)
            .timeout(self.timeout)
            .json(&body)
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(err) if err.is_timeout() => {
                return Err(WebhookError::Timeout {
                    name: self.name.clone(),
                    timeout: self.timeout,
                });
            }
            Err(err) => return Err(failed(err.to_string())),
        };
        let status = response.status();
        if !status.is_success() {
            return Err(failed(format!("HTTP {status}")));
        }
        let answer: CheckResponse = match response.json().await {
            Ok(answer) => answer,
            Err(err) if err.is_timeout() => {
                return Err(WebhookError::Timeout {
                    name: self.name.clone(),
                    timeout: self.timeout,
                });
            }
            Err(err) => return Err(failed(format!("unreadable answer: {err}"))),
        };
        let score = answer
            .score
            .filter(|s| s.is_finite())
            .map(|s| s.clamp(0.0, 1.0));
        Ok(Verdict {
            flagged: answer.flagged || score.is_some_and(|s| s >= self.threshold),
            score: score.unwrap_or(if answer.flagged { 1.0 } else { 0.0 }),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::routing::post;

    use super::*;

    /// A webhook at a server that answers every check with `status` and `body`.
    async fn webhook(status: u16, body: &'static str) -> Webhook {
        let app = axum::Router::new().route(
            "/check",
            post(move || async move {
                (
                    axum::http::StatusCode::from_u16(status).unwrap(),
                    [("content-type", "application/json")],
                    body,
                )
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let config = WebhookConfig {
            url: format!("http://{addr}/check"),
            applies_to: AppliesTo::Both,
            timeout: Duration::from_secs(5),
            on_error: OnError::FailClosed,
            threshold: 0.8,
        };
        Webhook::new(
            "m",
            &config,
            reqwest::Client::new(),
            GuardrailMetrics::default(),
        )
    }

    fn check(text: &str) -> Check<'_> {
        Check {
            direction: Direction::Input,
            place: "message",
            tenant: "acme",
            turn_id: "t",
            text,
        }
    }

    #[tokio::test]
    async fn a_score_at_the_threshold_flags_and_bad_answers_are_failures_with_a_reason() {
        let scored = webhook(200, r#"{"flagged": false, "score": 0.85}"#).await;
        let verdict = scored.check(check("x")).await.unwrap();
        assert_eq!(
            verdict,
            Verdict {
                flagged: true,
                score: 0.85
            }
        );
        let out_of_range = webhook(200, r#"{"flagged": false, "score": 7}"#).await;
        let verdict = out_of_range.check(check("x")).await.unwrap();
        assert_eq!(
            verdict,
            Verdict {
                flagged: true,
                score: 1.0
            }
        );
        for (status, body, reason) in [
            (503, r#"{"flagged": false}"#, "HTTP 503"),
            (200, "not json", "unreadable answer"),
            (200, r#"{"score": 0.1}"#, "unreadable answer"),
        ] {
            let err = webhook(status, body)
                .await
                .check(check("x"))
                .await
                .unwrap_err();
            let WebhookError::Failed { name, reason: said } = &err else {
                panic!("{err:?}")
            };
            assert_eq!(name, "m");
            assert!(said.contains(reason), "{status} {body}: {said}");
        }
    }
}
