//! `POST /v1/embeddings` of the mock: deterministic vectors (hashed bag of
//! words, L2-normalised), so texts sharing words are close, as with a real model.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, Version};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};

use super::{Shared, check_key, http_error, parse_request, record};

/// Dimensions of a vector when the request does not ask for a size.
pub const DEFAULT_DIMENSIONS: usize = 64;

/// The mock's embedding of `text` in `dimensions` dimensions.
pub fn embed(text: &str, dimensions: usize) -> Vec<f32> {
    let mut vector = vec![0.0_f32; dimensions.max(1)];
    for word in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let hash = word.to_lowercase().bytes().fold(0x811c_9dc5_u32, |h, b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        });
        let slot = hash as usize % vector.len();
        vector[slot] += 1.0;
    }
    let norm = vector.iter().map(|v| v * v).sum::<f32>().sqrt();
    if norm > 0.0 {
        vector.iter_mut().for_each(|v| *v /= norm);
    }
    vector
}

pub(super) async fn embeddings(
    State(shared): State<Arc<Shared>>,
    version: Version,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (body, authorization) = match parse_request(&headers, &body) {
        Ok(parsed) => parsed,
        Err(response) => return *response,
    };
    record(&shared.embedding_requests, version, &body, &authorization);
    let behaviour = Shared::lock(&shared.behaviour).clone();
    if let Err(response) = check_key(&behaviour, authorization.as_deref()) {
        return *response;
    }
    if let Some(status) = Shared::lock(&shared.embedding_failures).pop_front() {
        return http_error(status, None, "scripted embedding failure", "server_error");
    }
    let inputs: Vec<String> = match &body["input"] {
        Value::String(text) => vec![text.clone()],
        Value::Array(items) if items.iter().all(Value::is_string) && !items.is_empty() => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => {
            return http_error(
                400,
                None,
                "`input` must be a string or a non-empty array of strings",
                "invalid_request_error",
            );
        }
    };
    let Some(model) = body["model"].as_str() else {
        return http_error(400, None, "`model` is required", "invalid_request_error");
    };
    let dimensions = body["dimensions"]
        .as_u64()
        .and_then(|d| usize::try_from(d).ok())
        .unwrap_or(DEFAULT_DIMENSIONS);
    let tokens: usize = inputs.iter().map(|t| t.split_whitespace().count()).sum();
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(index, text)| json!({"object": "embedding", "index": index, "embedding": embed(text, dimensions)}))
        .collect();
    axum::Json(json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }))
    .into_response()
}
