//! Hedging: a first target slow to produce a first token is raced by a second
//! attempt on the next target; the first to answer wins and the loser's
//! upstream request is closed.

use std::time::Duration;

use agentd::pb::{AskRequest, TurnOptions, turn_options::ModelChoice};
use agentd_mock_llm::{Completion, Gate, Hold, Reply, StreamEnd};

use crate::helpers::{manual_clock, mock_llm, spawn_agent_with_llm};
use crate::resilience::{attempts, extra};

#[tokio::test]
async fn a_hedge_on_the_next_target_wins_over_a_slow_first_token_and_the_loser_is_closed() {
    let mock = mock_llm().await;
    let down = mock_llm().await;
    let clock = manual_clock();
    let hedge_after = Duration::from_millis(500);
    let keys =
        r#"routes = { "hedged" = { targets = ["mock-model", "twin"], hedge_after = "500ms" } }"#;
    let config = format!(
        "{}\n[llm.models.twin]\nprovider = \"mock\"\nupstream_model = \"gpt-4o\"\ncontext_window = 8000\nmax_output_tokens = 500",
        extra(&down)
    );
    let app = {
        let clock = clock.clone();
        spawn_agent_with_llm(&mock, keys, &config, |app| app.clock(clock)).await
    };
    // The first target sends its headers and role, then holds its first
    // token; the hedge answers at once.
    let gate = Gate::new();
    mock.script([
        Reply::Completion(Completion::text(["slow"]).held(Hold::after_events(1, &gate))),
        Reply::Completion(Completion::text(["fast"])),
    ]);
    let mut client = app.agent();
    let asked = client.ask(AskRequest {
        message: "Hello?".into(),
        session_id: String::new(),
        options: Some(TurnOptions {
            model_choice: Some(ModelChoice::Model("hedged".into())),
            ..TurnOptions::default()
        }),
    });
    let drive = async {
        gate.reached(1).await;
        clock.wait_for_timer(hedge_after).await;
        clock.advance(hedge_after);
        std::future::pending::<()>().await;
    };
    let answer = tokio::select! {
        answer = asked => answer.unwrap().into_inner(),
        () = drive => unreachable!(),
    };
    let outcome = answer.outcome.unwrap();
    assert_eq!(outcome.answer, "fast");
    assert_eq!(outcome.model, "twin");
    assert_eq!(attempts(&outcome), ["mock-model:cancelled", "twin:ok"]);
    let requests = mock.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].body["model"], "gpt-4o-mini");
    assert_eq!(requests[1].body["model"], "gpt-4o");
    // The loser's upstream request was closed, not left to finish.
    let ends = [
        mock.wait_for_stream_end(1).await,
        mock.wait_for_stream_end(2).await,
    ];
    assert!(
        ends.iter().any(|end| matches!(end, StreamEnd::Dropped(_))),
        "{ends:?}"
    );
    gate.release();
}
