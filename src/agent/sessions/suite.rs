//! The behaviour every [`SessionStore`] must have, run against each
//! implementation by [`session_store_suite!`]: the embedded store in
//! `embedded.rs`, the Redis store (against a real redis-server) in
//! `redis_tests.rs`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::{SessionError, SessionLimits, SessionStore};
use crate::clock::Clock;
use crate::ids::{SessionId, TenantId, TurnId};
use crate::llm::{ChatMessage, ToolCall};

/// A store under test, on a manual clock, with whatever keeps its backing
/// (a directory, a redis-server) alive.
pub struct Subject {
    pub store: Arc<dyn SessionStore>,
    pub clock: Clock,
    pub _backing: Box<dyn std::any::Any + Send>,
}

/// Makes a fresh, empty store with these limits on this clock.
pub type Make = fn(SessionLimits, Clock) -> Subject;

pub const LIMITS: SessionLimits = SessionLimits {
    max_age: Duration::from_secs(3600),
    max_messages: 100,
};

pub fn manual_clock() -> Clock {
    Clock::manual(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000))
}

pub fn user(text: &str) -> ChatMessage {
    ChatMessage::User {
        content: text.into(),
    }
}

pub fn tenant(name: &str) -> TenantId {
    TenantId::try_from(name.to_owned()).unwrap()
}

/// One turn of `messages` on `tenant`'s session `id`; the session's turns after it.
pub async fn append_messages(
    store: &dyn SessionStore,
    tenant_name: &str,
    id: &SessionId,
    expected_turns: u64,
    messages: Vec<ChatMessage>,
) -> Result<u64, SessionError> {
    store
        .append_turn(
            &tenant(tenant_name),
            id,
            expected_turns,
            &TurnId::generate(),
            messages,
        )
        .await
        .map(|appended| appended.turns)
}

/// One turn of `text`.
pub async fn append(
    store: &dyn SessionStore,
    tenant_name: &str,
    id: &SessionId,
    expected_turns: u64,
    text: &str,
) -> Result<u64, SessionError> {
    append_messages(store, tenant_name, id, expected_turns, vec![user(text)]).await
}

fn subject(make: Make) -> Subject {
    make(LIMITS, manual_clock())
}

pub async fn turns_land_in_order_with_their_turn_ids(make: Make) {
    let Subject {
        store, _backing, ..
    } = subject(make);
    let id = SessionId::generate();
    assert_eq!(append(&*store, "a", &id, 0, "one").await.unwrap(), 1);
    assert_eq!(append(&*store, "a", &id, 1, "two").await.unwrap(), 2);
    let session = store.get(&tenant("a"), &id).await.unwrap();
    assert_eq!(session.id, id);
    assert_eq!(session.turns, 2);
    assert_eq!(session.history(), [user("one"), user("two")]);
    let turns: Vec<_> = session.messages.iter().map(|m| m.turn_id.clone()).collect();
    assert!(turns[0].is_some() && turns[1].is_some() && turns[0] != turns[1]);
    assert_eq!(session.created_at_ms, 1_000_000);
    store.check().await.unwrap();
}

pub async fn tenants_cannot_see_or_delete_each_others_sessions(make: Make) {
    let Subject {
        store, _backing, ..
    } = subject(make);
    let id = SessionId::generate();
    append(&*store, "a", &id, 0, "secret").await.unwrap();
    assert_eq!(store.load(&tenant("b"), &id).await.unwrap(), None);
    assert!(!store.delete(&tenant("b"), &id).await.unwrap());
    // The other tenant's first turn on the same id starts its own session.
    assert_eq!(append(&*store, "b", &id, 0, "mine").await.unwrap(), 1);
    let a = store.get(&tenant("a"), &id).await.unwrap();
    assert_eq!(a.history(), [user("secret")]);
    let b = store.get(&tenant("b"), &id).await.unwrap();
    assert_eq!(b.history(), [user("mine")]);
    store.remove(&tenant("a"), &id).await.unwrap();
    let err = store.get(&tenant("a"), &id).await.unwrap_err();
    assert!(matches!(err, SessionError::NotFound(_)), "{err}");
    let err = store.remove(&tenant("a"), &id).await.unwrap_err();
    assert!(matches!(err, SessionError::NotFound(_)), "{err}");
    assert!(store.load(&tenant("b"), &id).await.unwrap().is_some());
}

pub async fn a_racing_turn_is_a_conflict_and_writes_nothing(make: Make) {
    let Subject {
        store, _backing, ..
    } = subject(make);
    let id = SessionId::generate();
    append(&*store, "a", &id, 0, "first").await.unwrap();
    let err = append(&*store, "a", &id, 0, "late").await.unwrap_err();
    assert!(matches!(err, SessionError::Conflict(_)), "{err}");
    let err = append(&*store, "a", &id, 5, "ahead").await.unwrap_err();
    assert!(matches!(err, SessionError::Conflict(_)), "{err}");
    let session = store.get(&tenant("a"), &id).await.unwrap();
    assert_eq!(session.history(), [user("first")]);
    assert_eq!(session.turns, 1);
}

pub async fn sessions_expire_after_max_age_on_the_stores_clock(make: Make) {
    let Subject {
        store,
        clock,
        _backing,
    } = subject(make);
    let id = SessionId::generate();
    append(&*store, "a", &id, 0, "x").await.unwrap();
    clock.advance(LIMITS.max_age);
    let kept = store.get(&tenant("a"), &id).await.unwrap();
    assert_eq!(kept.created_at_ms, 1_000_000);
    clock.advance(Duration::from_millis(1));
    assert_eq!(store.load(&tenant("a"), &id).await.unwrap(), None);
    // A turn that still expects the old history conflicts with the empty one.
    let err = append(&*store, "a", &id, 1, "stale").await.unwrap_err();
    assert!(matches!(err, SessionError::Conflict(_)), "{err}");
    // Continuing an expired session starts it afresh.
    assert_eq!(append(&*store, "a", &id, 0, "y").await.unwrap(), 1);
    let session = store.get(&tenant("a"), &id).await.unwrap();
    assert_eq!(session.history(), [user("y")]);
    assert_eq!(session.created_at_ms, clock.unix_ms());
}

pub async fn the_oldest_messages_go_first_never_orphaning_a_tool_result(make: Make) {
    let limits = SessionLimits {
        max_messages: 2,
        ..LIMITS
    };
    let Subject {
        store, _backing, ..
    } = make(limits, manual_clock());
    let id = SessionId::generate();
    let call = ChatMessage::Assistant {
        content: String::new(),
        tool_calls: vec![ToolCall {
            id: "c".into(),
            name: "t".into(),
            arguments: "{}".into(),
        }],
    };
    let result = ChatMessage::Tool {
        call_id: "c".into(),
        content: "r".into(),
    };
    let answer = ChatMessage::Assistant {
        content: "done".into(),
        tool_calls: Vec::new(),
    };
    let turn = vec![user("q"), call, result, answer.clone()];
    append_messages(&*store, "a", &id, 0, turn).await.unwrap();
    // Two kept would start with the tool result, whose call is gone: it goes too.
    let session = store.get(&tenant("a"), &id).await.unwrap();
    assert_eq!(session.history(), std::slice::from_ref(&answer));
    append(&*store, "a", &id, 1, "next").await.unwrap();
    let session = store.get(&tenant("a"), &id).await.unwrap();
    assert_eq!(session.history(), [answer, user("next")]);
}

pub async fn concurrent_turns_on_many_sessions_all_land(make: Make) {
    let Subject {
        store, _backing, ..
    } = subject(make);
    let ids: Vec<SessionId> = (0..100).map(|_| SessionId::generate()).collect();
    let turns = ids.iter().map(|id| {
        let (store, id) = (store.clone(), id.clone());
        tokio::spawn(async move {
            for turn in 0..3 {
                let text = format!("{} {turn}", id.as_str());
                append(&*store, "a", &id, turn, &text).await.unwrap();
            }
        })
    });
    for turn in futures::future::join_all(turns).await {
        turn.unwrap();
    }
    for id in &ids {
        let session = store.get(&tenant("a"), id).await.unwrap();
        assert_eq!(session.turns, 3);
        let expected: Vec<ChatMessage> = (0..3)
            .map(|t| user(&format!("{} {t}", id.as_str())))
            .collect();
        assert_eq!(session.history(), expected);
    }
}

pub async fn of_many_racing_turns_on_one_session_exactly_one_lands(make: Make) {
    let Subject {
        store, _backing, ..
    } = subject(make);
    let id = SessionId::generate();
    let racers = (0..20).map(|i| {
        let (store, id) = (store.clone(), id.clone());
        tokio::spawn(async move { append(&*store, "a", &id, 0, &format!("racer {i}")).await })
    });
    let results: Vec<_> = futures::future::join_all(racers)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let landed = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(landed, 1, "{results:?}");
    for result in &results {
        if let Err(err) = result {
            assert!(matches!(err, SessionError::Conflict(_)), "{err}");
        }
    }
    let session = store.get(&tenant("a"), &id).await.unwrap();
    assert_eq!(session.turns, 1);
    assert_eq!(session.messages.len(), 1);
}

/// One test per behaviour above, for the store `$make` builds.
macro_rules! session_store_suite {
    ($make:path) => {
        mod behaviour {
            use crate::agent::sessions::suite;

            #[tokio::test]
            async fn turns_land_in_order_with_their_turn_ids() {
                suite::turns_land_in_order_with_their_turn_ids($make).await;
            }

            #[tokio::test]
            async fn tenants_cannot_see_or_delete_each_others_sessions() {
                suite::tenants_cannot_see_or_delete_each_others_sessions($make).await;
            }

            #[tokio::test]
            async fn a_racing_turn_is_a_conflict_and_writes_nothing() {
                suite::a_racing_turn_is_a_conflict_and_writes_nothing($make).await;
            }

            #[tokio::test]
            async fn sessions_expire_after_max_age_on_the_stores_clock() {
                suite::sessions_expire_after_max_age_on_the_stores_clock($make).await;
            }

            #[tokio::test]
            async fn the_oldest_messages_go_first_never_orphaning_a_tool_result() {
                suite::the_oldest_messages_go_first_never_orphaning_a_tool_result($make).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn concurrent_turns_on_many_sessions_all_land() {
                suite::concurrent_turns_on_many_sessions_all_land($make).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn of_many_racing_turns_on_one_session_exactly_one_lands() {
                suite::of_many_racing_turns_on_one_session_exactly_one_lands($make).await;
            }
        }
    };
}

pub(crate) use session_store_suite;
