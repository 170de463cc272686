use futures::StreamExt;

use super::*;
use crate::clock::Clock;
use crate::llm::{FinishReason, LlmEvent, ToolCall};

fn stage(toml: &str, provider: &str) -> Arc<dyn CallStage> {
    GuardStage::new(Arc::new(crate::guardrails::from_toml(toml)))
        .for_provider(provider)
        .unwrap()
}

fn request(messages: Vec<ChatMessage>) -> LlmRequest {
    LlmRequest {
        model: "m".into(),
        messages,
        tools: Vec::new(),
        max_output_tokens: None,
        temperature: None,
    }
}

fn conversation() -> Vec<ChatMessage> {
    vec![
        ChatMessage::System {
            content: "be brief; admin@example.com runs this".into(),
        },
        ChatMessage::User {
            content: "I am ana@example.com".into(),
        },
        ChatMessage::Assistant {
            content: String::new(),
            tool_calls: vec![ToolCall {
                id: "call_1".into(),
                name: "lookup".into(),
                arguments: r#"{"who": "ana@example.com"}"#.into(),
            }],
        },
        ChatMessage::Tool {
            call_id: "call_1".into(),
            content: r#"{"note": "line\nbob@example.org"}"#.into(),
        },
        ChatMessage::User {
            content: "and card 4111 1111 1111 1111".into(),
        },
    ]
}

fn contents(request: &LlmRequest) -> Vec<String> {
    request
        .messages
        .iter()
        .map(|m| match m {
            ChatMessage::System { content } | ChatMessage::User { content } => content.clone(),
            ChatMessage::Assistant { tool_calls, .. } => tool_calls[0].arguments.clone(),
            ChatMessage::Tool { content, .. } => content.clone(),
        })
        .collect()
}

#[tokio::test]
async fn every_text_but_the_system_prompt_is_masked_for_an_external_provider() {
    let call = CallContext::detached(Clock::system());
    let sent = stage("", "ext")
        .before(&call, request(conversation()))
        .await
        .unwrap();
    let sent = contents(&sent);
    assert!(sent[0].starts_with("be brief; admin@example.com runs this\n\n"));
    assert!(sent[0].ends_with(frame::RULE));
    assert_eq!(sent[1], "I am <EMAIL_1>");
    assert_eq!(sent[2], r#"{"who":"<EMAIL_1>"}"#);
    assert!(
        sent[3].contains(r#"{"note":"line\n<EMAIL_2>"}"#),
        "{}",
        sent[3]
    );
    assert!(sent[3].starts_with("<untrusted source=\"tool:lookup\" id=\"call_1\""));
    assert_eq!(sent[4], "and card <CARD_1>");
    let decisions = TurnDecisions::of(&call.turn);
    let places: Vec<_> = decisions.iter().map(|d| (d.kind, d.place)).collect();
    assert_eq!(
        places,
        [
            ("EMAIL", Place::History),
            ("EMAIL", Place::ToolResult),
            ("CARD", Place::Message)
        ]
    );
}

#[tokio::test]
async fn a_local_provider_gets_the_text_framed_but_unmasked() {
    let call = CallContext::detached(Clock::system());
    let sent = stage("", "vllm")
        .before(&call, request(conversation()))
        .await
        .unwrap();
    let sent = contents(&sent);
    assert_eq!(sent[1], "I am ana@example.com");
    assert!(sent[3].starts_with("<untrusted source=\"tool:lookup\""));
    assert!(TurnDecisions::of(&call.turn).is_empty());
}

#[tokio::test]
async fn a_blocked_type_refuses_the_call_in_the_message_and_strips_it_elsewhere() {
    let guard = stage(
        "[pii]\ntypes = { CARD = \"block\", EMAIL = \"block\" }\n",
        "ext",
    );
    let call = CallContext::detached(Clock::system());
    let err = guard
        .before(&call, request(conversation()))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        LlmError::Guardrail(GuardrailError::Blocked {
            kind: "CARD",
            place: Place::Message,
            detail: String::new(),
        })
    );
    // Without the card in the message, the history holding an address is
    // removed and the call goes on.
    let mut messages = conversation();
    messages.pop();
    messages.push(ChatMessage::User {
        content: "thanks".into(),
    });
    let call = CallContext::detached(Clock::system());
    let sent = guard.before(&call, request(messages)).await.unwrap();
    let sent = contents(&sent);
    assert_eq!(
        sent[1],
        "[removed by guardrails: it contained a value of type EMAIL]"
    );
}

#[tokio::test]
async fn the_answer_and_tool_arguments_come_back_restored() {
    let guard = stage("", "ext");
    let call = CallContext::detached(Clock::system());
    guard.before(&call, request(conversation())).await.unwrap();
    let call = CallContext { seq: 0, ..call };
    let events = vec![
        Ok(LlmEvent::TextDelta("write to <EMA".into())),
        Ok(LlmEvent::TextDelta("IL_2> and <EMAIL_9>".into())),
        Ok(LlmEvent::ToolCalls(vec![ToolCall {
            id: "call_2".into(),
            name: "lookup".into(),
            arguments: r#"{"who": "<EMAIL_1>"}"#.into(),
        }])),
        Ok(LlmEvent::Finished(FinishReason::ToolCalls)),
    ];
    let back: Vec<_> = guard
        .after(&call, futures::stream::iter(events).boxed())
        .collect()
        .await;
    let text: String = back
        .iter()
        .filter_map(|e| match e {
            Ok(LlmEvent::TextDelta(t)) => Some(t.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(text, "write to bob@example.org and <EMAIL_9>");
    assert!(back.iter().any(|e| matches!(
        e,
        Ok(LlmEvent::ToolCalls(calls)) if calls[0].arguments == r#"{"who":"ana@example.com"}"#
    )));
    assert_eq!(
        back.last(),
        Some(&Ok(LlmEvent::Finished(FinishReason::ToolCalls)))
    );
    let unknown = TurnDecisions::of(&call.turn)
        .into_iter()
        .any(|d| d.kind == "UNKNOWN_PLACEHOLDER" && d.place == Place::Answer);
    assert!(unknown, "the invented <EMAIL_9> is recorded");
}

#[tokio::test]
async fn json_values_are_read_after_their_keys_and_keys_and_numbers_are_masked_too() {
    let call = CallContext::detached(Clock::system());
    let result = r#"{"card_number":"4111111111111111","ssn":"536221234","by_email":{"ana@example.com":{"card":4111111111111111}},"note":"plain"}"#;
    let messages = vec![
        ChatMessage::User {
            content: "look me up".into(),
        },
        ChatMessage::Assistant {
            content: String::new(),
            tool_calls: vec![ToolCall {
                id: "call_1".into(),
                name: "crm".into(),
                arguments: "{}".into(),
            }],
        },
        ChatMessage::Tool {
            call_id: "call_1".into(),
            content: result.into(),
        },
    ];
    let sent = stage("", "ext")
        .before(&call, request(messages))
        .await
        .unwrap();
    let sent = contents(&sent).last().unwrap().clone();
    for value in ["4111111111111111", "536221234", "ana@example.com"] {
        assert!(!sent.contains(value), "{value} left in {sent}");
    }
    assert!(sent.contains(r#""card_number":"<CARD_1>""#), "{sent}");
    assert!(sent.contains(r#""ssn":"<SSN_1>""#), "{sent}");
    assert!(
        sent.contains(r#""<EMAIL_1>":{"card":"<CARD_1>"}"#),
        "{sent}"
    );
    assert!(sent.contains(r#""note":"plain""#), "{sent}");
}

#[tokio::test]
async fn held_text_still_tells_the_router_that_the_upstream_is_answering() {
    // An output webhook holds the whole answer; it is never asked here,
    // because the upstream never finishes.
    let guard = stage(
        "[webhooks.m]\nurl = \"http://127.0.0.1:9/check\"\napplies_to = \"output\"\n\
         on_error = \"fail_closed\"\n",
        "ext",
    );
    let call = CallContext::detached(Clock::system());
    let upstream = futures::stream::iter([Ok(LlmEvent::TextDelta("held".into()))])
        .chain(futures::stream::pending())
        .boxed();
    let mut back = guard.after(&call, upstream);
    // Ready at the first poll: a stream that waited for the answer's end
    // would stay pending.
    assert_eq!(
        futures::poll!(back.next()),
        std::task::Poll::Ready(Some(Ok(LlmEvent::TextDelta(String::new()))))
    );
    assert!(
        futures::poll!(back.next()).is_pending(),
        "the text was released"
    );
}
