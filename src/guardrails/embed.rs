//! PII in embedding inputs (ingested chunks and search queries) sent to an
//! embedding endpoint not marked `local = true`: redacted by the tenant's
//! `pii.embeddings` policy before the request. Nothing comes back to restore,
//! so values are replaced by unnumbered `<EMAIL>` tokens, the same in every
//! document and query, which keeps their vectors comparable. The stored
//! chunks keep their original text; only what the endpoint sees changes.

use std::sync::Arc;

use super::Guardrails;
use super::mask::redact;
use crate::config::guardrails::PiiAction;
use crate::ids::TenantId;
use crate::retrieval::embed::{EmbedError, Embedder};

/// An embedder behind the guardrails.
#[derive(Debug)]
pub struct GuardedEmbedder {
    inner: Arc<dyn Embedder>,
    guardrails: Arc<Guardrails>,
}

impl GuardedEmbedder {
    /// `inner` behind `guardrails`; a `local` endpoint is passed through.
    pub fn wrap(
        inner: Arc<dyn Embedder>,
        guardrails: Arc<Guardrails>,
        local: bool,
    ) -> Arc<dyn Embedder> {
        if local {
            return inner;
        }
        Arc::new(Self { inner, guardrails })
    }
}

#[async_trait::async_trait]
impl Embedder for GuardedEmbedder {
    fn model(&self) -> &str {
        self.inner.model()
    }

    fn dimensions(&self) -> usize {
        self.inner.dimensions()
    }

    async fn embed(
        &self,
        tenant: &TenantId,
        texts: &[String],
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        let policy = self.guardrails.policy(tenant);
        if policy.pii.embeddings == PiiAction::Allow {
            return self.inner.embed(tenant, texts).await;
        }
        let scanner = self.guardrails.scanner();
        let mut redacted: Option<Vec<String>> = None;
        for (i, text) in texts.iter().enumerate() {
            let findings = scanner.scan(text, policy.terms());
            if findings.is_empty() {
                continue;
            }
            for finding in &findings {
                self.guardrails.metrics().decision(
                    finding.kind.as_str(),
                    "redact",
                    "embedding_input",
                );
            }
            redacted.get_or_insert_with(|| texts.to_vec())[i] = redact(text, &findings);
        }
        match redacted {
            Some(texts) => self.inner.embed(tenant, &texts).await,
            None => self.inner.embed(tenant, texts).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Records what it was asked to embed.
    #[derive(Debug, Default)]
    struct Recording(Mutex<Vec<String>>);

    #[async_trait::async_trait]
    impl Embedder for Recording {
        fn model(&self) -> &str {
            "recording"
        }

        fn dimensions(&self) -> usize {
            1
        }

        async fn embed(&self, _: &TenantId, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
            self.0.lock().unwrap().extend(texts.iter().cloned());
            Ok(texts.iter().map(|_| vec![1.0]).collect())
        }
    }

    #[tokio::test]
    async fn an_external_endpoint_sees_types_where_the_values_were_and_a_local_one_the_text() {
        let guardrails = Arc::new(Guardrails::defaults());
        let texts = vec![
            "write to ana@example.com today".to_owned(),
            "nothing here".to_owned(),
        ];
        let recording = Arc::new(Recording::default());
        let external = GuardedEmbedder::wrap(recording.clone(), guardrails.clone(), false);
        let vectors = external
            .embed(&TenantId::default_tenant(), &texts)
            .await
            .unwrap();
        assert_eq!(vectors.len(), 2);
        assert_eq!(
            *recording.0.lock().unwrap(),
            ["write to <EMAIL> today", "nothing here"]
        );
        let seen = Arc::new(Recording::default());
        let local = GuardedEmbedder::wrap(seen.clone(), guardrails, true);
        local
            .embed(&TenantId::default_tenant(), &texts)
            .await
            .unwrap();
        assert_eq!(*seen.0.lock().unwrap(), texts);
    }
}
