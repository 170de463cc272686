//! Per-request hot paths of a turn, measured with criterion (`cargo bench`):
//! counting the tokens of a 2k-token history, fitting a context window (one
//! history that fits, one that must be trimmed), and turning agent events into
//! encoded protobuf messages as tonic sends them. The test command runs each
//! benchmark once, untimed, so they cannot rot.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use agentd::agent::context::ContextWindow;
use agentd::agent::turn::{AgentEvent, TurnFinish, TurnOutcome};
use agentd::ids::{SessionId, TurnId};
use agentd::llm::router::report::AttemptRecord;
use agentd::llm::tokens::message_tokens;
use agentd::llm::{ChatMessage, ToolCall, ToolSpec};
use agentd::pb;
use agentd::tokenizer::Encoding;
use criterion::{Criterion, black_box, criterion_group, criterion_main};
use prost::Message;

const SENTENCE: &str = "The release freeze window starts 48 hours before each release, and \
                        only hotfixes approved by the release manager may merge during it. ";

/// A conversation of user, assistant (with a tool call) and tool messages with
/// about `tokens` tokens in all.
fn history(encoding: Encoding, tokens: usize) -> Vec<ChatMessage> {
    let mut messages = Vec::new();
    let mut total = 0;
    let mut turn = 0;
    while total < tokens {
        let turn_messages = [
            ChatMessage::User {
                content: format!("Question {turn}: {}", SENTENCE.repeat(2)),
            },
            ChatMessage::Assistant {
                content: String::new(),
                tool_calls: vec![ToolCall {
                    id: format!("call_{turn}"),
                    name: "search_knowledge".into(),
                    arguments: r#"{"query": "release freeze window"}"#.into(),
                }],
            },
            ChatMessage::Tool {
                call_id: format!("call_{turn}"),
                content: SENTENCE.repeat(4),
            },
            ChatMessage::Assistant {
                content: SENTENCE.repeat(2),
                tool_calls: Vec::new(),
            },
        ];
        for message in turn_messages {
            total += message_tokens(encoding, &message);
            messages.push(message);
        }
        turn += 1;
    }
    messages
}

fn tools() -> Vec<ToolSpec> {
    vec![ToolSpec {
        name: "search_knowledge".into(),
        description: "Searches the company's knowledge base.".into(),
        parameters: serde_json::json!({
            "type": "object",
            "properties": {"query": {"type": "string", "minLength": 1}},
            "required": ["query"]
        })
        .into(),
    }]
}

fn tokens(c: &mut Criterion) {
    let encoding = Encoding::O200k;
    // Load the tables before timing: they load lazily on first use.
    encoding.count("warm up");
    let history = history(encoding, 2000);
    let counted: usize = history.iter().map(|m| message_tokens(encoding, m)).sum();
    assert!((2000..2300).contains(&counted), "{counted} tokens");
    c.bench_function("count 2k-token history (o200k)", |b| {
        b.iter(|| {
            black_box(&history)
                .iter()
                .map(|m| message_tokens(encoding, m))
                .sum::<usize>()
        })
    });
}

fn fit(c: &mut Criterion) {
    let encoding = Encoding::O200k;
    // Load the tables before timing: they load lazily on first use.
    encoding.count("warm up");
    let history = history(encoding, 2000);
    let system = ChatMessage::System {
        content: "You are a helpful assistant.".into(),
    };
    let current = vec![ChatMessage::User {
        content: "When does the freeze start?".into(),
    }];
    let tools = tools();
    // Roomy: the history's bytes alone prove it fits, nothing is counted.
    let roomy = ContextWindow {
        context_tokens: 16_000,
        reserved_output: 1_000,
    };
    // Snug: the bytes exceed the budget but the tokens fit, so it is counted.
    let snug = ContextWindow {
        context_tokens: 3_500,
        reserved_output: 1_000,
    };
    let tight = ContextWindow {
        context_tokens: 2_000,
        reserved_output: 1_000,
    };
    let fitted = tight
        .fit(encoding, &system, &tools, &history, &current)
        .unwrap();
    assert!(fitted.dropped > 0);
    let snugly = snug
        .fit(encoding, &system, &tools, &history, &current)
        .unwrap();
    assert_eq!(snugly.dropped, 0);
    assert!(
        snugly.input_tokens.is_some(),
        "the snug window must be counted"
    );
    let roomily = roomy
        .fit(encoding, &system, &tools, &history, &current)
        .unwrap();
    assert!(
        roomily.input_tokens.is_none(),
        "the roomy window must not be counted"
    );
    c.bench_function("fit 2k-token history, fits by bytes", |b| {
        b.iter(|| roomy.fit(encoding, &system, &tools, black_box(&history), &current))
    });
    c.bench_function("fit 2k-token history, fits by count", |b| {
        b.iter(|| snug.fit(encoding, &system, &tools, black_box(&history), &current))
    });
    c.bench_function("fit 2k-token history, trimmed to 1k", |b| {
        b.iter(|| tight.fit(encoding, &system, &tools, black_box(&history), &current))
    });
}

fn encode(event: AgentEvent, buffer: &mut Vec<u8>) -> usize {
    let response = pb::ChatResponse {
        event: Some(event.into()),
    };
    buffer.clear();
    response.encode(buffer).unwrap();
    buffer.len()
}

fn events(c: &mut Criterion) {
    let mut buffer = Vec::with_capacity(4096);
    let answer = "word ".repeat(200);
    let completed = AgentEvent::Completed(TurnOutcome {
        turn_id: TurnId::generate(),
        answer: answer.clone(),
        finish: TurnFinish::Stop,
        session_id: SessionId::try_from("01a20ef6-28a0-707f-8782-6da06f7dfae0").unwrap(),
        model: "gpt-4o-mini".into(),
        route: "gpt-4o-mini".into(),
        attempts: vec![AttemptRecord {
            target: "gpt-4o-mini".into(),
            outcome: "ok".into(),
            latency: std::time::Duration::from_millis(420),
        }],
        degraded: None,
        sources: Vec::new(),
        replication_unconfirmed: false,
        usage: Default::default(),
        guardrails: Vec::new(),
    });
    c.bench_function("encode one delta event", |b| {
        b.iter(|| {
            encode(
                AgentEvent::Delta(black_box("quick ").to_owned()),
                &mut buffer,
            )
        })
    });
    c.bench_function("encode a completed event (200 words)", |b| {
        b.iter(|| encode(black_box(completed.clone()), &mut buffer))
    });
    c.bench_function("encode a 32-delta stream with usage and completed", |b| {
        b.iter(|| {
            let mut bytes = 0;
            for _ in 0..32 {
                bytes += encode(AgentEvent::Delta("quick ".to_owned()), &mut buffer);
            }
            bytes += encode(completed.clone(), &mut buffer);
            bytes
        })
    });
}

/// A 2 KB support message: prose, a log line, an order number, an email,
/// a phone number and an IBAN.
fn message_2k() -> String {
    let mut text = String::from(
        "Hello team, I am writing about order 2024-118-55731 which has not arrived yet. \
         Please reach me at ana.lima@example.com or +44 20 7946 0958; refunds can go to \
         DE89 3704 0044 0532 0130 00. ",
    );
    let filler = "The release notes for version 4.12.1 say the sync job retries every 30 \
                  seconds, but the dashboard showed 12:30:45 as the last run and nothing \
                  since. Could you check what happened and tell me when it will be fixed? ";
    while text.len() < 2048 {
        text.push_str(filler);
    }
    text.truncate(2048);
    text
}

fn guardrails(c: &mut Criterion) {
    use agentd::guardrails::injection::InjectionDetector;
    use agentd::guardrails::mask::{PlaceholderMap, Restorer, mask};
    use agentd::guardrails::pii::PiiScanner;
    let message = message_2k();
    let scanner = PiiScanner::new();
    let detector = InjectionDetector::new();
    c.bench_function("guardrails: PII scan of a 2 KB message (3 values)", |b| {
        b.iter(|| black_box(scanner.scan(black_box(&message), None)))
    });
    c.bench_function("guardrails: injection score of a 2 KB message", |b| {
        b.iter(|| black_box(detector.score(black_box(&message))))
    });
    let findings = scanner.scan(&message, None);
    c.bench_function("guardrails: mask a 2 KB message", |b| {
        b.iter(|| {
            let mut map = PlaceholderMap::default();
            black_box(mask(black_box(&message), &findings, &mut map))
        })
    });
    let mut map = PlaceholderMap::default();
    let masked = mask(&message, &findings, &mut map);
    let deltas: Vec<&str> = masked
        .as_bytes()
        .chunks(8)
        .map(|chunk| std::str::from_utf8(chunk).unwrap_or(""))
        .collect();
    c.bench_function("guardrails: restore a 2 KB answer in 8-byte deltas", |b| {
        b.iter(|| {
            let mut restorer = Restorer::new();
            let mut out = 0;
            for delta in &deltas {
                out += restorer.push(delta, &map).len();
            }
            black_box(out + restorer.finish(&map).len())
        })
    });
}

criterion_group!(benches, tokens, fit, events, guardrails);
criterion_main!(benches);
