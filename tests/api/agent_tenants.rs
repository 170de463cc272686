//! Tenants: sessions are invisible across tenants, and per-tenant tool
//! allowlists bound what a request may offer the model.

use agentd::pb::{AskRequest, ChatRequest, DeleteSessionRequest, GetSessionRequest, TurnOptions};
use agentd_mock_llm::{Completion, Reply};
use tonic::Code;
use tonic_types::StatusExt;

use crate::agent::chat;
use crate::helpers::{TestApp, key, mock_llm, spawn_agent, with_key};

fn tenants_config() -> String {
    let (_, acme) = key("acme");
    let (_, globex) = key("globex");
    let (_, admin) = key("admin");
    format!(
        r#"[auth]
enabled = true
keys = [
  {{ name = "acme-agent", tenant = "acme", roles = ["agent"], sha256 = "{acme}" }},
  {{ name = "globex-agent", tenant = "globex", roles = ["agent"], sha256 = "{globex}" }},
  {{ name = "ops-admin", tenant = "ops", roles = ["admin"], sha256 = "{admin}" }},
]
[tools]
default = ["current_time"]
[tools.tenants]
globex = []
"#
    )
}

async fn ask(app: &TestApp, who: &str, request: AskRequest) -> Result<String, tonic::Status> {
    let (secret, _) = key(who);
    app.agent()
        .ask(with_key(request, &secret))
        .await
        .map(|r| r.into_inner().outcome.unwrap().session_id)
}

fn ask_in(session_id: &str) -> AskRequest {
    AskRequest {
        message: "what did I tell you?".into(),
        session_id: session_id.into(),
        options: None,
    }
}

#[tokio::test]
async fn no_tenant_can_read_continue_or_delete_another_tenants_session() {
    let mock = mock_llm().await;
    mock.script([Reply::Completion(Completion::text(["noted"]))]);
    let app = spawn_agent(&mock, &tenants_config()).await;
    let acme_session = ask(&app, "acme", ask_in("")).await.unwrap();
    let calls = mock.requests().len();

    let (globex, _) = key("globex");
    let read = app
        .agent()
        .get_session(with_key(
            GetSessionRequest {
                session_id: acme_session.clone(),
            },
            &globex,
        ))
        .await
        .unwrap_err();
    assert_eq!(read.code(), Code::NotFound);
    let continued = ask(&app, "globex", ask_in(&acme_session))
        .await
        .unwrap_err();
    assert_eq!(continued.code(), Code::NotFound);
    let deleted = app
        .agent()
        .delete_session(with_key(
            DeleteSessionRequest {
                session_id: acme_session.clone(),
            },
            &globex,
        ))
        .await
        .unwrap_err();
    assert_eq!(deleted.code(), Code::NotFound);
    assert_eq!(
        mock.requests().len(),
        calls,
        "globex's turn reached the model"
    );

    // acme's session is untouched.
    let (acme, _) = key("acme");
    let session = app
        .agent()
        .get_session(with_key(
            GetSessionRequest {
                session_id: acme_session,
            },
            &acme,
        ))
        .await
        .unwrap()
        .into_inner()
        .session
        .unwrap();
    assert_eq!(session.turns, 1);
    assert_eq!(session.messages.len(), 2);

    // An admin key without the agent role cannot call the AgentService at all.
    let (admin, _) = key("admin");
    let status = app
        .agent()
        .chat(with_key(chat("hi"), &admin))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn a_tenant_gets_only_the_tools_it_may_use() {
    let mock = mock_llm().await;
    mock.script([
        Reply::Completion(Completion::text(["ok"])),
        Reply::Completion(Completion::text(["ok"])),
    ]);
    let app = spawn_agent(&mock, &tenants_config()).await;

    // globex may use no tool: naming one is refused before any model call.
    let (globex, _) = key("globex");
    let request = ChatRequest {
        options: Some(TurnOptions {
            tools: vec!["current_time".into()],
            ..TurnOptions::default()
        }),
        ..chat("what time is it?")
    };
    let status = app
        .agent()
        .chat(with_key(request.clone(), &globex))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    let info = status.get_details_error_info().unwrap();
    assert_eq!(info.reason, "TOOL_NOT_ALLOWED");
    assert_eq!(info.metadata["tool"], "current_time");
    assert!(mock.requests().is_empty());

    // By default, globex's requests offer no tool; acme's offer the defaults.
    ask(&app, "globex", ask_in("")).await.unwrap();
    assert!(mock.requests()[0].body.get("tools").is_none());
    ask(&app, "acme", ask_in("")).await.unwrap();
    assert_eq!(
        mock.requests()[1].body["tools"][0]["function"]["name"],
        "current_time"
    );
}
