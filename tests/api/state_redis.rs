//! agentd with `state.backend = "redis"` against real redis-server processes:
//! faults through the API, start-up with Redis down, and several processes
//! sharing one Redis and one Qdrant.

use std::time::Duration;

use agentd::pb::chat_response::Event;
use agentd::pb::{
    AskRequest, ChatRequest, Document, GetSessionRequest, GetStatusRequest, IngestDocumentsRequest,
    SearchRequest,
};
use agentd::retrieval::embedded::EmbeddedStore;
use agentd_mock_llm::{Completion, Gate, Hold, MockLlm, Reply};
use agentd_test_redis::RedisServer;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_types::StatusExt;

use crate::agent::{chat, completed, run_chat, session};
use crate::helpers::{
    ServerProcess, TestApp, eventually, manual_clock, mock_llm, spawn_agent_built,
};

/// An embedded Qdrant serving as the external one, in its own directory.
async fn qdrant() -> (EmbeddedStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::start(dir.path()).await.unwrap();
    (store, dir)
}

fn redis_config(redis: &RedisServer, qdrant: &EmbeddedStore) -> String {
    redis_config_with(redis, qdrant, "")
}

/// The Redis backend on `redis`, `qdrant` as the vector store, and `state`
/// (more `[state]` keys).
fn redis_config_with(redis: &RedisServer, qdrant: &EmbeddedStore, state: &str) -> String {
    format!(
        "[state]\nbackend = \"redis\"\nredis_url = {:?}\n{state}\n[retrieval]\nqdrant_url = \"http://{}\"",
        redis.url(),
        qdrant.addr()
    )
}

async fn agent_status(app: &TestApp) -> ServingStatus {
    app.serving_status("agentd.v1.AgentService").await
}

#[tokio::test]
async fn redis_stopped_mid_turn_fails_it_as_unavailable_and_a_restart_serves_the_next() {
    let mock = mock_llm().await;
    let (store, _dir) = qdrant().await;
    let mut redis = RedisServer::start().unwrap();
    let app = spawn_agent_built(&mock, &redis_config(&redis, &store), |app| app).await;
    let (events, end) = run_chat(&app, chat("first")).await;
    end.unwrap();
    let id = completed(&events).session_id.clone();
    assert!(!completed(&events).replication_unconfirmed);

    // The next turn's answer is held at the upstream while Redis dies.
    let gate = Gate::new();
    mock.script([Reply::Completion(
        Completion::text(["lost"]).held(Hold::before_headers(&gate)),
    )]);
    let request = ChatRequest {
        session_id: id.clone(),
        ..chat("second")
    };
    let stop = async {
        gate.reached(1).await;
        redis.stop();
        gate.release();
    };
    let ((events, end), ()) = tokio::join!(run_chat(&app, request), stop);
    let status = end.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(
        status.get_details_error_info().unwrap().reason,
        "STATE_STORE_UNAVAILABLE"
    );
    assert!(status.get_details_retry_info().is_some());
    assert!(!events.iter().any(|e| matches!(e, Event::Completed(_))));

    // Restarted (its append-only file replayed): the first turn is there, the
    // failed one is not, and the next turn lands.
    redis.restart().unwrap();
    assert_eq!(session(&app, &id).await.unwrap().turns, 1);
    let (_, end) = run_chat(
        &app,
        ChatRequest {
            session_id: id.clone(),
            ..chat("third")
        },
    )
    .await;
    end.unwrap();
    let stored = session(&app, &id).await.unwrap();
    assert_eq!(stored.turns, 2);
    let texts: Vec<&str> = stored.messages.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(texts[0], "first");
    assert_eq!(texts[2], "third");
    let sample = r#"agentd_session_write_seconds_count{outcome="unavailable"}"#;
    assert_eq!(app.metric(sample).await, Some(1.0));
}

#[tokio::test]
async fn a_full_redis_refuses_the_turn_with_a_clear_status() {
    let mock = mock_llm().await;
    let (store, _dir) = qdrant().await;
    let redis = RedisServer::builder()
        .arg("maxmemory-policy", "noeviction")
        .start()
        .unwrap();
    let app = spawn_agent_built(&mock, &redis_config(&redis, &store), |app| app).await;
    // Redis fills up once the model call is under way (its budget reserved):
    // the turn's write is what finds it full.
    let gate = Gate::new();
    mock.script([Reply::Completion(
        Completion::text(["no room"]).held(Hold::before_headers(&gate)),
    )]);
    let ((_, end), ()) = tokio::join!(run_chat(&app, chat("no room")), async {
        gate.reached(1).await;
        redis.command(&["CONFIG", "SET", "maxmemory", "1"]).unwrap();
        gate.release();
    });
    let status = end.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(
        status.get_details_error_info().unwrap().reason,
        "STATE_STORE_FULL"
    );
    redis.command(&["CONFIG", "SET", "maxmemory", "0"]).unwrap();
    // No session was stored (the budget ledger's keys are under `:t:`).
    let sessions: Vec<String> = redis
        .keys()
        .unwrap()
        .into_iter()
        .filter(|key| key.starts_with("agentd:s:"))
        .collect();
    assert_eq!(sessions, Vec::<String>::new());
}

#[tokio::test]
async fn a_slow_redis_fails_the_turn_within_its_deadline() {
    let mock = mock_llm().await;
    let (store, _dir) = qdrant().await;
    let redis = RedisServer::start().unwrap();
    let config = redis_config_with(&redis, &store, "redis_command_timeout = \"100ms\"");
    let app = spawn_agent_built(&mock, &config, |app| app).await;
    // Redis stalls once the model call is under way (its budget reserved):
    // the turn's write is what waits.
    let gate = Gate::new();
    mock.script([Reply::Completion(
        Completion::text(["slow"]).held(Hold::before_headers(&gate)),
    )]);
    let mut request = tonic::Request::new(AskRequest {
        message: "slow".into(),
        ..AskRequest::default()
    });
    request.set_timeout(Duration::from_secs(10));
    let mut agent = app.agent();
    let (asked, ()) = tokio::join!(agent.ask(request), async {
        gate.reached(1).await;
        redis
            .command(&["CLIENT", "PAUSE", "60000", "WRITE"])
            .unwrap();
        gate.release();
    });
    let status = asked.unwrap_err();
    redis.command(&["CLIENT", "UNPAUSE"]).unwrap();
    // The write was sent and not answered: it may still land, so the status
    // says so and invites no blind retry.
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert_eq!(
        status.get_details_error_info().unwrap().reason,
        "STATE_STORE_WRITE_UNKNOWN"
    );
    assert!(status.get_details_retry_info().is_none());
}

#[tokio::test]
async fn agentd_starts_while_redis_is_down_reports_it_and_recovers_by_itself() {
    let mock = mock_llm().await;
    let (store, _dir) = qdrant().await;
    let mut redis = RedisServer::start().unwrap();
    redis.stop();
    let clock = manual_clock();
    let app = spawn_agent_built(&mock, &redis_config(&redis, &store), |app| {
        app.clock(clock.clone())
    })
    .await;
    let status = app.status().await;
    let sessions = &status.dependencies[0];
    assert_eq!(sessions.name, "session_store");
    assert_eq!(sessions.state(), agentd::pb::DependencyState::Unhealthy);
    assert!(!sessions.detail.is_empty());
    eventually(|| async { agent_status(&app).await == ServingStatus::NotServing }).await;
    let up = r#"agentd_dependency_up{dependency="session_store"}"#;
    assert_eq!(app.metric(up).await, Some(0.0));

    redis.restart().unwrap();
    // The watcher checks again on its next tick of the clock.
    clock.wait_for_timer(Duration::from_secs(5)).await;
    clock.advance(Duration::from_secs(5));
    eventually(|| async { agent_status(&app).await == ServingStatus::Serving }).await;
    assert_eq!(app.metric(up).await, Some(1.0));
    let (_, end) = run_chat(&app, chat("hello")).await;
    end.unwrap();
}

#[tokio::test]
async fn replicas_that_do_not_confirm_mark_the_turn_and_it_stands() {
    let mock = mock_llm().await;
    let (store, _dir) = qdrant().await;
    let redis = RedisServer::start().unwrap();
    let state = "redis_wait_replicas = 1\nredis_wait_timeout = \"20ms\"";
    let config = redis_config_with(&redis, &store, state);
    let app = spawn_agent_built(&mock, &config, |app| app).await;
    let (events, end) = run_chat(&app, chat("no replica")).await;
    end.unwrap();
    let outcome = completed(&events);
    assert!(outcome.replication_unconfirmed);
    assert_eq!(session(&app, &outcome.session_id).await.unwrap().turns, 1);
    let sample = r#"agentd_session_write_seconds_count{outcome="unconfirmed"}"#;
    assert_eq!(app.metric(sample).await, Some(1.0));
}

/// Where the process's embedded Qdrant listens, as GetStatus reports it.
async fn embedded_qdrant_addr(process: &ServerProcess) -> String {
    let status = process
        .admin()
        .await
        .get_status(GetStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    status.bound_addresses["embedded_qdrant"].clone()
}

async fn stored_session(process: &ServerProcess, id: &str) -> agentd::pb::Session {
    let request = GetSessionRequest {
        session_id: id.to_owned(),
    };
    let response = process.agent().await.get_session(request).await.unwrap();
    response.into_inner().session.unwrap()
}

fn llm_env(mock: &MockLlm) -> Vec<(&'static str, String)> {
    vec![
        ("OPENAI_BASE_URL", mock.base_url()),
        ("OPENAI_API_KEY", "sk-test".to_owned()),
    ]
}

#[tokio::test]
async fn two_processes_on_one_redis_and_one_qdrant_act_as_one_service() {
    let mock = mock_llm().await;
    let redis = RedisServer::start().unwrap();
    // The third process: the embedded store, its Qdrant endpoint on a free port.
    let vectors =
        ServerProcess::start(&[("AGENTD__RETRIEVAL__EMBEDDED_ADDR", "127.0.0.1:0")]).await;
    let qdrant_url = format!("http://{}", embedded_qdrant_addr(&vectors).await);
    let mut env: Vec<(&str, String)> = llm_env(&mock);
    env.extend([
        ("AGENTD__STATE__BACKEND", "redis".to_owned()),
        ("AGENTD__STATE__REDIS_URL", redis.url()),
        ("AGENTD__RETRIEVAL__QDRANT_URL", qdrant_url),
    ]);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (a, b) = tokio::join!(ServerProcess::start(&env), ServerProcess::start(&env));

    // A session begun on A continues on B; both see both turns.
    let ask = |message: &str, session_id: &str| AskRequest {
        message: message.into(),
        session_id: session_id.into(),
        ..AskRequest::default()
    };
    let first = a
        .agent()
        .await
        .ask(ask("on a", ""))
        .await
        .unwrap()
        .into_inner();
    let id = first.outcome.unwrap().session_id;
    b.agent().await.ask(ask("on b", &id)).await.unwrap();
    for process in [&a, &b] {
        let stored = stored_session(process, &id).await;
        assert_eq!(stored.turns, 2);
        let users: Vec<&str> = stored
            .messages
            .iter()
            .filter(|m| m.role() == agentd::pb::MessageRole::User)
            .map(|m| m.content.as_str())
            .collect();
        assert_eq!(users, ["on a", "on b"]);
    }

    // A turn racing on A and B lands once: both answers are held at the
    // upstream until both turns have loaded the session.
    let gate = Gate::new();
    let held =
        |word: &str| Reply::Completion(Completion::text([word]).held(Hold::before_headers(&gate)));
    mock.script([held("x"), held("y")]);
    let (mut agent_a, mut agent_b) = (a.agent().await, b.agent().await);
    let release = async {
        gate.reached(2).await;
        gate.release();
    };
    let (on_a, on_b, ()) = tokio::join!(
        agent_a.ask(ask("race", &id)),
        agent_b.ask(ask("race", &id)),
        release
    );
    let ends = [on_a.map(|_| ()), on_b.map(|_| ())];
    assert_eq!(ends.iter().filter(|e| e.is_ok()).count(), 1, "{ends:?}");
    let lost = ends.into_iter().find_map(Result::err).unwrap();
    assert_eq!(lost.code(), Code::Aborted, "{lost:?}");
    assert_eq!(
        lost.get_details_error_info().unwrap().reason,
        "SESSION_CONFLICT"
    );
    assert_eq!(stored_session(&b, &id).await.turns, 3);

    // A document ingested through A is found by a search through B.
    let mut retrieval_a = agentd::pb::retrieval_service_client::RetrievalServiceClient::connect(
        format!("http://{}", a.grpc_addr),
    )
    .await
    .unwrap();
    retrieval_a
        .ingest_documents(IngestDocumentsRequest {
            collection: String::new(),
            documents: vec![Document {
                doc_id: "freeze.md".into(),
                text: "The release freeze starts 48 hours before each release.".into(),
                ..Document::default()
            }],
        })
        .await
        .unwrap();
    let mut retrieval_b = agentd::pb::retrieval_service_client::RetrievalServiceClient::connect(
        format!("http://{}", b.grpc_addr),
    )
    .await
    .unwrap();
    let found = retrieval_b
        .search(SearchRequest {
            query: "when does the freeze start".into(),
            ..SearchRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(found.hits[0].doc_id, "freeze.md");
    drop(vectors);
}

#[tokio::test]
async fn hostile_session_ids_are_refused_before_they_reach_redis() {
    let mock = mock_llm().await;
    let (store, _dir) = qdrant().await;
    let redis = RedisServer::start().unwrap();
    let app = spawn_agent_built(&mock, &redis_config(&redis, &store), |app| app).await;
    for hostile in [
        "a:b".to_owned(),
        "*".to_owned(),
        "{x}".to_owned(),
        "x".repeat(10 * 1024),
    ] {
        let (_, end) = run_chat(
            &app,
            ChatRequest {
                session_id: hostile.clone(),
                ..chat("hi")
            },
        )
        .await;
        let status = end.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{hostile:.20}");
        let violations = status.get_details_bad_request().unwrap().field_violations;
        assert_eq!(violations[0].field, "session_id");
        let status = app
            .agent()
            .get_session(GetSessionRequest {
                session_id: hostile.clone(),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{hostile:.20}");
    }
    assert_eq!(redis.keys().unwrap(), Vec::<String>::new());
}
