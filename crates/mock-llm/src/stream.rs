//! A completion as a server-sent-events response: the role chunk, content or
//! tool-call chunks, the finish and usage chunks and `[DONE]`, with the
//! completion's delays, faults and gate; a guard notes how the stream ended.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use tokio::time::Instant;

use crate::wire::{self, ChunkHeader};
use crate::{Completion, Fault, MAX_RECORDS, Shared, StreamEnd, pause};

/// Splits `text` into `parts` non-empty pieces at character boundaries.
fn split_fragments(text: &str, parts: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let parts = parts.clamp(1, chars.len().max(1));
    let size = chars.len().div_ceil(parts).max(1);
    chars.chunks(size).map(|c| c.iter().collect()).collect()
}

/// Records how a stream ended when it is dropped.
struct EndGuard {
    shared: Arc<Shared>,
    completed: bool,
}

impl Drop for EndGuard {
    fn drop(&mut self) {
        let now = Instant::now();
        let (end, counter) = if self.completed {
            (
                StreamEnd::Completed(now),
                &self.shared.counters.streams_completed,
            )
        } else {
            (
                StreamEnd::Dropped(now),
                &self.shared.counters.streams_dropped,
            )
        };
        let wall_us = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        self.shared
            .counters
            .last_stream_end_unix_us
            .store(wall_us, Ordering::Relaxed);
        // Release: whoever sees the new count also sees the end's time.
        counter.fetch_add(1, Ordering::Release);
        let mut ends = Shared::lock(&self.shared.stream_ends);
        if ends.len() < MAX_RECORDS {
            ends.push(end);
        }
        drop(ends);
        self.shared.changed.notify_waiters();
    }
}

pub(crate) fn stream_response(
    shared: Arc<Shared>,
    header: ChunkHeader,
    completion: Completion,
    usage_prompt_tokens: Option<u32>,
) -> Response {
    let mut events = vec![wire::sse(&header.role())];
    events.extend(
        completion
            .text
            .iter()
            .map(|t| wire::sse(&header.content(t))),
    );
    for (index, call) in completion.tool_calls.iter().enumerate() {
        events.push(wire::sse(
            &header.tool_call_start(index, &call.id, &call.name),
        ));
        for fragment in split_fragments(&call.arguments, call.fragments) {
            events.push(wire::sse(&header.tool_call_arguments(index, &fragment)));
        }
    }
    let finish = if completion.tool_calls.is_empty() {
        "stop"
    } else {
        "tool_calls"
    };
    events.push(wire::sse(&header.finish(finish)));
    if let Some(prompt_tokens) = usage_prompt_tokens {
        let (prompt, output) = completion.usage.unwrap_or((
            prompt_tokens,
            (completion.text.len() + completion.tool_calls.len()) as u32,
        ));
        events.push(wire::sse(&header.usage(prompt, output)));
    }
    let send_done = completion.fault != Some(Fault::NoDone);

    let stream = async_stream::stream! {
        shared.counters.streams_started.fetch_add(1, Ordering::Relaxed);
        let mut guard = EndGuard { shared, completed: false };
        pause(completion.first_token_delay).await;
        let held_after = completion.hold.as_ref().and_then(|hold| hold.after_events.map(|n| (n, hold.gate.clone())));
        for (i, event) in events.into_iter().enumerate() {
            if i > 0 {
                pause(completion.token_delay).await;
            }
            if let Some((n, gate)) = &held_after
                && i == *n
            {
                gate.pass().await;
            }
            match completion.fault {
                Some(Fault::StallAfter(n)) if i == n => std::future::pending::<()>().await,
                Some(Fault::ResetAfter(n)) if i == n => {
                    if i == 0 {
                        // hyper sends the response head with the first body chunk
                        // and drops it if the body fails first, so a reset before
                        // any event first sends an SSE comment (which clients
                        // ignore): the client sees a 200, then the reset, never a
                        // `Reply::Drop`.
                        yield Ok(Bytes::from_static(b": mock reset follows\n\n"));
                    }
                    // hyper buffers the chunks a body yields back to back and
                    // flushes them when the body is pending; failing straight
                    // after them would close the connection with them unsent.
                    // Pending once (yield_now wakes the task at once) makes
                    // hyper's dispatcher flush, so the client has every chunk
                    // before the connection ends.
                    tokio::task::yield_now().await;
                    yield Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "mock reset"));
                    return;
                }
                Some(Fault::MalformedAfter(n)) if i == n => {
                    yield Ok(Bytes::from_static(b"data: {\"id\": \"chatcmpl-mock\", \"choices\": [\n\n"));
                }
                _ => {}
            }
            yield Ok::<_, std::io::Error>(Bytes::from(event));
        }
        if send_done {
            yield Ok(Bytes::from_static(wire::SSE_DONE.as_bytes()));
        }
        guard.completed = true;
    };
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragments_cover_the_text() {
        let text = r#"{"timezone":"Europe/Paris"}"#;
        for parts in 1..=40 {
            let pieces = split_fragments(text, parts);
            assert_eq!(pieces.concat(), text);
            assert!(pieces.iter().all(|p| !p.is_empty()));
        }
        assert_eq!(split_fragments("", 3), Vec::<String>::new());
    }
}
