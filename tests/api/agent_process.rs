//! The agent in the `agentd` binary: configured from the OpenAI environment
//! variables alone, refusing to start with a provider that has no key, and
//! keeping every completed turn through a kill -9.

use agentd::pb::{AskRequest, GetSessionRequest};
use agentd_mock_llm::{Behaviour, Completion, MockLlm, Reply};

use crate::helpers::{ServerProcess, agentd_command};

#[tokio::test]
async fn a_provider_without_a_key_stops_the_start_with_an_error_naming_it() {
    let output = agentd_command()
        .arg("serve")
        .env("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(64));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("llm.providers.openai.api_key"), "{stderr}");
    assert!(stderr.contains("OPENAI_API_KEY"), "{stderr}");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agentd.toml");
    let config = |extra: &str| {
        format!(
            "[llm.providers.local]\nbase_url = \"http://127.0.0.1:11434/v1\"\n{extra}\n\
             [llm.models.llama]\nprovider = \"local\"\ncontext_window = 8192\nmax_output_tokens = 1024\n"
        )
    };
    let check = |toml: String| {
        std::fs::write(&path, toml).unwrap();
        agentd_command()
            .args(["config", "check", "--config"])
            .arg(&path)
            .output()
    };
    let output = check(config("")).await.unwrap();
    assert_eq!(output.status.code(), Some(64));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("provider \"local\" has no API key"),
        "{stderr}"
    );

    // A local server marked keyless needs none.
    let output = check(config("keyless = true")).await.unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
}

fn ask(message: &str, session_id: &str) -> AskRequest {
    AskRequest {
        message: message.into(),
        session_id: session_id.into(),
        options: None,
    }
}

#[tokio::test]
async fn openai_env_vars_alone_serve_gpt_4o_mini_and_completed_turns_survive_kill_9() {
    let mock = MockLlm::start(
        "127.0.0.1:0".parse().unwrap(),
        Behaviour {
            api_key: Some("sk-from-env".into()),
            ..Behaviour::default()
        },
    )
    .await
    .unwrap();
    mock.script([
        Reply::Completion(Completion::text(["one"])),
        Reply::Completion(Completion::text(["two"])),
    ]);
    let base_url = mock.base_url();
    let env = [
        ("OPENAI_BASE_URL", base_url.as_str()),
        ("OPENAI_API_KEY", "sk-from-env"),
    ];
    let server = ServerProcess::start(&env).await;
    let mut agent = server.agent().await;
    let first = agent.ask(ask("first", "")).await.unwrap().into_inner();
    let outcome = first.outcome.unwrap();
    assert_eq!(outcome.model, "gpt-4o-mini");
    let session_id = outcome.session_id;
    agent.ask(ask("second", &session_id)).await.unwrap();
    assert_eq!(mock.requests()[0].body["model"], "gpt-4o-mini");

    let data_dir = server.kill().await;
    let server = ServerProcess::start_in(data_dir, &env).await;
    let session = server
        .agent()
        .await
        .get_session(GetSessionRequest { session_id })
        .await
        .unwrap()
        .into_inner()
        .session
        .unwrap();
    assert_eq!(session.turns, 2);
    let texts: Vec<_> = session
        .messages
        .iter()
        .map(|m| m.content.as_str())
        .collect();
    assert_eq!(texts, ["first", "one", "second", "two"]);
}
