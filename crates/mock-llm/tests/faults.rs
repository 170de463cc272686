//! The mock's fault injection as a client sees it over real HTTP: replies dropped
//! before any response, retry headers on scripted errors, waiting for requests,
//! and a port that refuses connections and then serves again.

// Helpers outside `#[test]` functions fail the test on an error too.
#![allow(clippy::expect_used, clippy::panic)]

use std::time::Duration;

use agentd_mock_llm::{Behaviour, Completion, Fault, Gate, Hold, MockLlm, Reply, ScriptedError};
use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Only a guard against a hung test: no assertion depends on it.
const HANG_GUARD: Duration = Duration::from_secs(20);

async fn start() -> MockLlm {
    MockLlm::start(
        "127.0.0.1:0".parse().expect("address"),
        Behaviour {
            tokens: 2,
            ..Behaviour::default()
        },
    )
    .await
    .expect("mock starts")
}

fn chat_body(stream: bool) -> serde_json::Value {
    json!({
        "model": "mock",
        "stream": stream,
        "messages": [{"role": "user", "content": "hi"}],
    })
}

async fn chat(client: &reqwest::Client, mock: &MockLlm) -> reqwest::Result<reqwest::Response> {
    client
        .post(format!("{}/chat/completions", mock.base_url()))
        .json(&chat_body(false))
        .send()
        .await
}

/// Sends a chat request over a new HTTP/1.1 connection and returns every byte
/// the server sends until it closes the connection (a reset counts as a close).
async fn raw_exchange(mock: &MockLlm, stream: bool) -> Vec<u8> {
    let body = chat_body(stream).to_string();
    let mut tcp = TcpStream::connect(mock.addr()).await.expect("connect");
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: mock\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    tcp.write_all(request.as_bytes()).await.expect("write");
    let mut received = Vec::new();
    let read = tokio::time::timeout(HANG_GUARD, tcp.read_to_end(&mut received))
        .await
        .expect("the server closes the connection");
    if let Err(err) = read {
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");
    }
    received
}

#[tokio::test]
async fn a_dropped_reply_closes_the_connection_before_any_status_line() {
    let mock = start().await;
    mock.script([Reply::Drop]);

    let received = raw_exchange(&mock, true).await;

    assert!(
        received.is_empty(),
        "expected no bytes, got {:?}",
        String::from_utf8_lossy(&received)
    );
    assert_eq!(mock.requests().len(), 1, "the dropped request still counts");
    // The script is used up and the mock still serves.
    let answer = chat(&reqwest::Client::new(), &mock).await.expect("answer");
    assert_eq!(answer.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_reset_after_no_chunks_ends_the_exchange_without_any_event() {
    let mock = start().await;
    mock.script([Reply::Completion(Completion {
        fault: Some(Fault::ResetAfter(0)),
        ..Completion::text(["never"])
    })]);

    // Whether the client sees the 200 head before the reset is up to TCP (a
    // reset may overtake data the client has not read yet); either way no
    // event and no `[DONE]` reaches it.
    let client = reqwest::Client::new();
    let sent = client
        .post(format!("{}/chat/completions", mock.base_url()))
        .json(&chat_body(true))
        .send()
        .await;
    if let Ok(mut response) = sent {
        assert_eq!(response.status(), StatusCode::OK);
        let mut received = Vec::new();
        let failed = loop {
            match response.chunk().await {
                Ok(Some(bytes)) => received.extend_from_slice(&bytes),
                Ok(None) => break false,
                Err(_) => break true,
            }
        };
        assert!(failed, "the body ends in an error, not cleanly");
        let text = String::from_utf8_lossy(&received);
        assert!(
            !text.contains("data:"),
            "no event before the reset: {text:?}"
        );
    }
    assert_eq!(mock.requests().len(), 1);
}

#[tokio::test]
async fn a_dropped_reply_is_a_request_error_without_a_status_for_a_client() {
    let mock = start().await;
    mock.script([Reply::Drop]);

    let err = chat(&reqwest::Client::new(), &mock)
        .await
        .expect_err("no response");

    assert!(err.status().is_none(), "{err:?}");
    assert!(err.is_request(), "{err:?}");
}

#[tokio::test]
async fn scripted_errors_carry_retry_after_and_retry_after_ms_when_asked() {
    let mock = start().await;
    mock.script([
        ScriptedError::new(429, "slow down")
            .retry_after(2)
            .retry_after_ms(1500)
            .into(),
        Reply::Error(ScriptedError::new(503, "overloaded")),
    ]);
    let client = reqwest::Client::new();

    let limited = chat(&client, &mock).await.expect("response");
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.headers()["retry-after"], "2");
    assert_eq!(limited.headers()["retry-after-ms"], "1500");
    let body: serde_json::Value = limited.json().await.expect("json body");
    assert_eq!(body["error"]["message"], "slow down");

    let overloaded = chat(&client, &mock).await.expect("response");
    assert_eq!(overloaded.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(overloaded.headers().get("retry-after").is_none());
    assert!(overloaded.headers().get("retry-after-ms").is_none());
}

#[tokio::test]
async fn wait_for_requests_resolves_once_the_nth_request_has_arrived() {
    let mock = start().await;
    let gate = Gate::new();
    let held = || Reply::Completion(Completion::text(["ok"]).held(Hold::before_headers(&gate)));
    mock.script([held(), held(), held()]);
    let client = reqwest::Client::new();
    let url = format!("{}/chat/completions", mock.base_url());
    let calls: Vec<_> = (0..3)
        .map(|_| {
            let request = client.post(&url).json(&chat_body(false));
            tokio::spawn(async move { request.send().await })
        })
        .collect();

    mock.wait_for_requests(3).await;

    assert_eq!(mock.requests().len(), 3);
    // A fourth has not arrived: polled once, the wait is still pending.
    tokio::select! {
        biased;
        () = mock.wait_for_requests(4) => panic!("resolved before the fourth request"),
        () = std::future::ready(()) => {}
    }
    gate.release();
    for call in calls {
        let response = call.await.expect("task").expect("response");
        assert_eq!(response.status(), StatusCode::OK);
    }
}

#[tokio::test]
async fn the_port_refuses_connections_until_the_mock_accepts_them_again() {
    let mock = start().await;
    let addr = mock.addr();
    let client = reqwest::Client::new();
    assert_eq!(
        chat(&client, &mock).await.expect("answer").status(),
        StatusCode::OK
    );

    mock.refuse_connections().await;

    let refused = TcpStream::connect(addr).await.expect_err("refused");
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    let err = chat(&reqwest::Client::new(), &mock)
        .await
        .expect_err("refused");
    assert!(err.is_connect(), "{err:?}");

    mock.accept_connections().await.expect("re-bind");

    assert_eq!(mock.addr(), addr);
    let answer = chat(&reqwest::Client::new(), &mock).await.expect("answer");
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(
        mock.requests().len(),
        2,
        "the refused attempt never arrived"
    );
}

#[tokio::test]
async fn a_reply_under_way_finishes_after_the_port_closes() {
    let mock = start().await;
    let gate = Gate::new();
    mock.script([Reply::Completion(
        Completion::text(["late"]).held(Hold::before_headers(&gate)),
    )]);
    let request = reqwest::Client::new()
        .post(format!("{}/chat/completions", mock.base_url()))
        .json(&chat_body(false));
    let call = tokio::spawn(async move { request.send().await });
    gate.reached(1).await;

    mock.refuse_connections().await;
    gate.release();

    let response = call.await.expect("task").expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    let body: serde_json::Value = response.json().await.expect("json body");
    assert_eq!(body["choices"][0]["message"]["content"], "late");
}

#[tokio::test]
async fn refusing_closes_idle_keep_alive_connections() {
    let mock = start().await;
    let body = chat_body(false).to_string();
    let mut tcp = TcpStream::connect(mock.addr()).await.expect("connect");
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: mock\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n{body}",
        body.len()
    );
    tcp.write_all(request.as_bytes()).await.expect("write");
    mock.wait_for_requests(1).await;

    mock.refuse_connections().await;

    // Keep-alive was asked for: the connection ends only because the mock closes it.
    let mut received = Vec::new();
    tokio::time::timeout(HANG_GUARD, tcp.read_to_end(&mut received))
        .await
        .expect("the mock closes the idle connection")
        .expect("read");
    assert!(received.starts_with(b"HTTP/1.1 200"));
}

#[tokio::test]
async fn accepting_while_serving_changes_nothing() {
    let mock = start().await;

    mock.accept_connections().await.expect("already serving");

    let answer = chat(&reqwest::Client::new(), &mock).await.expect("answer");
    assert_eq!(answer.status(), StatusCode::OK);
}
