//! Grounded answers: with no LLM configured the agent answers from the
//! knowledge base, reports the documents it drew on as `sources` (an event
//! before `usage`, and in `completed`), searches the collections the request
//! names, and traces the search as a retrieval span under the tool call.

use agentd::pb::chat_response::Event;
use agentd::pb::retrieval_service_client::RetrievalServiceClient;
use agentd::pb::{AskRequest, ChatRequest, Document, IngestDocumentsRequest, Source, TurnOptions};
use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry::{Key, Value};
use tonic::Code;
use tonic_types::StatusExt;

use crate::helpers::{TestApp, eventually, spans_of_trace, spawn_app};

const RELEASE: &str = "Releases ship on Tuesdays. The freeze window starts 48 hours before each \
                       release; only hotfixes approved by the release manager may merge during \
                       it.";
const VACATION: &str = "Everyone gets 25 days of paid vacation a year. Unused days expire at the \
                        end of March. Book leave in the HR portal two weeks ahead.";
const LAPTOPS: &str = "Laptops are replaced every three years. A broken laptop is swapped the \
                       same day at the IT desk.";

async fn ingest(app: &TestApp, collection: &str, documents: &[(&str, &str)]) {
    RetrievalServiceClient::new(app.channel.clone())
        .ingest_documents(IngestDocumentsRequest {
            collection: collection.into(),
            documents: documents
                .iter()
                .map(|(id, text)| Document {
                    doc_id: (*id).into(),
                    text: (*text).into(),
                    metadata: Default::default(),
                    source_uri: format!("https://wiki.example/{id}"),
                })
                .collect(),
        })
        .await
        .unwrap();
}

fn chat(message: &str, collections: &[&str]) -> ChatRequest {
    ChatRequest {
        message: message.into(),
        session_id: String::new(),
        options: Some(TurnOptions {
            collections: collections.iter().map(|c| (*c).to_owned()).collect(),
            ..TurnOptions::default()
        }),
    }
}

async fn events(app: &TestApp, request: tonic::Request<ChatRequest>) -> Vec<Event> {
    let mut stream = app.agent().chat(request).await.unwrap().into_inner();
    let mut events = Vec::new();
    while let Some(response) = stream.message().await.unwrap() {
        events.push(response.event.unwrap());
    }
    events
}

fn kind(event: &Event) -> &'static str {
    match event {
        Event::Started(_) => "started",
        Event::Delta(_) => "delta",
        Event::ToolCall(_) => "tool_call",
        Event::ToolResult(_) => "tool_result",
        Event::Sources(_) => "sources",
        Event::Usage(_) => "usage",
        Event::Completed(_) => "completed",
    }
}

fn documents(sources: &[Source]) -> Vec<(&str, &str)> {
    sources
        .iter()
        .map(|s| (s.collection.as_str(), s.doc_id.as_str()))
        .collect()
}

#[tokio::test]
async fn a_grounded_answer_reports_its_sources_before_completing() {
    let app = spawn_app().await;
    ingest(
        &app,
        "",
        &[
            ("eng/release.md", RELEASE),
            ("people/vacation.md", VACATION),
        ],
    )
    .await;

    let events = events(
        &app,
        tonic::Request::new(chat(
            "When does the freeze window start before a release?",
            &[],
        )),
    )
    .await;
    let mut kinds: Vec<&str> = events.iter().map(kind).collect();
    // The extractive answer streams, word by word.
    assert!(
        kinds.iter().filter(|k| **k == "delta").count() > 5,
        "{kinds:?}"
    );
    kinds.dedup();
    assert_eq!(
        kinds,
        [
            "started",
            "tool_call",
            "tool_result",
            "delta",
            "sources",
            "usage",
            "completed"
        ]
    );
    let Some(Event::Sources(sent)) = events.iter().find(|e| kind(e) == "sources") else {
        unreachable!()
    };
    let Some(Event::Completed(outcome)) = events.last() else {
        unreachable!()
    };
    assert_eq!(sent.sources, outcome.sources);
    let release = &outcome.sources[0];
    assert_eq!(
        (release.collection.as_str(), release.doc_id.as_str()),
        ("default", "eng/release.md")
    );
    assert_eq!(release.source_uri, "https://wiki.example/eng/release.md");
    assert!(release.cited, "{outcome:?}");
    assert_eq!(release.chunks[0].chunk_index, 0);
    assert!(release.chunks[0].text.contains("48 hours"));
    assert!(release.chunks[0].score > 0.0);
    // Every source is a passage the model was given, and `cited` says whether
    // the answer names it.
    for source in &outcome.sources {
        assert_eq!(source.cited, outcome.answer.contains(&source.doc_id));
    }

    let asked = app
        .agent()
        .ask(AskRequest {
            message: "When does the freeze window start before a release?".into(),
            ..AskRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(asked.outcome.unwrap().sources, outcome.sources);
    // Both answers drew on the documents and cite one.
    let answers = |labels: &str| format!("agentd_answers_total{{{labels}}}");
    let grounded = answers(r#"grounded="true",cited="true""#);
    assert_eq!(app.metric(&grounded).await, Some(2.0));
    assert_eq!(
        app.metric(&answers(r#"grounded="false",cited="false""#))
            .await,
        None
    );
}

#[tokio::test]
async fn the_collections_option_chooses_what_is_searched() {
    let app = spawn_app().await;
    ingest(&app, "engineering", &[("release.md", RELEASE)]).await;
    ingest(&app, "people", &[("vacation.md", VACATION)]).await;
    ingest(&app, "it", &[("laptops.md", LAPTOPS)]).await;

    // Matches a passage in each collection.
    let question = "Can I take vacation days during the release freeze?";
    let sources = |events: Vec<Event>| match events.into_iter().last() {
        Some(Event::Completed(outcome)) => outcome.sources,
        other => panic!("{other:?}"),
    };
    // Only the named collection is searched...
    let only_people = sources(events(&app, tonic::Request::new(chat(question, &["people"]))).await);
    assert_eq!(documents(&only_people), [("people", "vacation.md")]);
    // ...and several are merged, best passage first.
    let both = sources(
        events(
            &app,
            tonic::Request::new(chat(question, &["people", "engineering"])),
        )
        .await,
    );
    assert_eq!(documents(&both)[0], ("engineering", "release.md"));
    assert!(documents(&both).contains(&("people", "vacation.md")));
    assert!(!documents(&both).iter().any(|(c, _)| *c == "it"));
    // With none named, the default collection (empty here) is searched.
    let none = events(&app, tonic::Request::new(chat(question, &[]))).await;
    assert!(!none.iter().any(|e| kind(e) == "sources"));
    assert!(sources(none).is_empty());
}

#[tokio::test]
async fn bad_collections_are_refused_before_anything_runs() {
    let app = spawn_app().await;
    ingest(&app, "engineering", &[("release.md", RELEASE)]).await;
    let refuse = |request: ChatRequest| {
        let app = &app;
        async move { app.agent().chat(request).await.map(|_| ()).unwrap_err() }
    };

    let missing = refuse(chat("freeze?", &["engineering", "nope"])).await;
    assert_eq!(missing.code(), Code::NotFound, "{missing:?}");
    assert_eq!(
        missing.get_details_error_info().unwrap().reason,
        "COLLECTION_NOT_FOUND"
    );
    assert!(missing.message().contains("nope"), "{missing:?}");

    let nine: Vec<String> = (0..9).map(|i| format!("c{i}")).collect();
    let nine: Vec<&str> = nine.iter().map(String::as_str).collect();
    let mut without_search = chat("freeze?", &["engineering"]);
    without_search.options.as_mut().unwrap().tools = vec!["current_time".into()];
    let cases = [
        (chat("freeze?", &["bad name!"]), "options.collections[0]"),
        (
            chat("freeze?", &["engineering", ""]),
            "options.collections[1]",
        ),
        (
            chat("freeze?", &["engineering", "engineering"]),
            "options.collections[1]",
        ),
        (chat("freeze?", &nine), "options.collections"),
        (without_search, "options.collections"),
    ];
    for (request, field) in cases {
        let status = refuse(request.clone()).await;
        assert_eq!(status.code(), Code::InvalidArgument, "{request:?}");
        let violations = status.get_details_bad_request().unwrap().field_violations;
        assert!(
            violations.iter().any(|v| v.field == field),
            "{field}: {violations:?}"
        );
    }
}

#[tokio::test]
async fn the_knowledge_search_is_traced_under_its_tool_call() {
    let app = spawn_app().await;
    ingest(&app, "engineering", &[("release.md", RELEASE)]).await;
    let trace_id = TraceId::from_hex("7a1e3f2b9c8d4e5f6a7b8c9d0e1f2a3b").unwrap();
    let parent_id = SpanId::from_hex("00f067aa0ba902b7").unwrap();
    let mut request = tonic::Request::new(chat("freeze window?", &["engineering"]));
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-{parent_id}-01").parse().unwrap(),
    );
    events(&app, request).await;

    eventually(|| async {
        spans_of_trace(trace_id)
            .iter()
            .any(|s| s.name == "invoke_agent agentd")
    })
    .await;
    let spans = spans_of_trace(trace_id);
    let tool = spans
        .iter()
        .find(|s| s.name == "execute_tool search_knowledge")
        .unwrap_or_else(|| panic!("{spans:#?}"));
    let retrieval = spans
        .iter()
        .find(|s| s.name == "retrieval engineering")
        .unwrap_or_else(|| panic!("{spans:#?}"));
    assert_eq!(retrieval.parent_span_id, tool.span_context.span_id());
    let attribute = |key: &str| {
        retrieval
            .attributes
            .iter()
            .find(|kv| kv.key == Key::new(key.to_owned()))
            .map(|kv| kv.value.clone())
    };
    assert_eq!(
        attribute("gen_ai.data_source.id"),
        Some(Value::from("engineering"))
    );
    assert_eq!(
        attribute("gen_ai.operation.name"),
        Some(Value::from("retrieval"))
    );
}
