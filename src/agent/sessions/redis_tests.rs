//! The Redis session store against real redis-server processes, each test with
//! its own server in its own directory (started by `agentd-test-redis`).

use agentd_test_redis::RedisServer;
use std::sync::Arc;

use super::*;
use crate::agent::sessions::suite::{self, LIMITS, Subject, append, manual_clock, tenant, user};
use crate::config::{Config, StateConfig};

fn state_config(url: &str, extra: &str) -> StateConfig {
    let toml = format!(
        "[state]\nbackend = \"redis\"\nredis_url = {url:?}\n{extra}\n[retrieval]\nqdrant_url = \"http://127.0.0.1:1\""
    );
    Config::from_toml(&toml).unwrap().state
}

fn store_on(
    server: &RedisServer,
    extra: &str,
    limits: SessionLimits,
    clock: Clock,
) -> RedisSessionStore {
    store_at(&server.url(), extra, limits, clock)
}

fn store_at(url: &str, extra: &str, limits: SessionLimits, clock: Clock) -> RedisSessionStore {
    let config = state_config(url, extra);
    let wait = ReplicaWait::from(&config);
    RedisSessionStore::new(RedisPool::new(&config).unwrap(), limits, clock, wait)
}

fn make(limits: SessionLimits, clock: Clock) -> Subject {
    let server = RedisServer::start().unwrap();
    let store = store_on(&server, "", limits, clock.clone());
    Subject {
        store: Arc::new(store),
        clock,
        _backing: Box::new(server),
    }
}

suite::session_store_suite!(super::make);

fn int(value: redis::Value) -> i64 {
    redis::from_redis_value(value).unwrap()
}

#[tokio::test]
async fn max_age_is_the_keys_redis_expiry() {
    let server = RedisServer::start().unwrap();
    let store = store_on(&server, "", LIMITS, manual_clock());
    let id = SessionId::generate();
    append(&store, "a", &id, 0, "x").await.unwrap();
    let (meta, log) = store.keys(&tenant("a"), &id);
    let max_age_ms = i64::try_from(LIMITS.max_age.as_millis()).unwrap();
    for key in [&meta, &log] {
        let ttl = int(server.command(&["PTTL", key]).unwrap());
        assert!(ttl > 0 && ttl <= max_age_ms, "{key}: {ttl}");
    }
    // Every turn renews the expiry.
    for key in [&meta, &log] {
        server.command(&["PEXPIRE", key, "5000"]).unwrap();
    }
    append(&store, "a", &id, 1, "y").await.unwrap();
    for key in [&meta, &log] {
        let ttl = int(server.command(&["PTTL", key]).unwrap());
        assert!(ttl > 5000, "{key}: {ttl}");
    }
    // What Redis expires is gone for agentd too (an expiry in the past deletes
    // at once; nothing waits).
    for key in [&meta, &log] {
        server.command(&["PEXPIREAT", key, "1"]).unwrap();
    }
    assert_eq!(server.keys().unwrap(), Vec::<String>::new());
    assert_eq!(store.load(&tenant("a"), &id).await.unwrap(), None);
}

#[tokio::test]
async fn keys_are_tagged_per_session_and_hostile_ids_cannot_collide() {
    let server = RedisServer::start().unwrap();
    let store = store_on(
        &server,
        "redis_key_prefix = \"app1\"",
        LIMITS,
        manual_clock(),
    );
    let id = SessionId::try_from("s-1".to_owned()).unwrap();
    append(&store, "acme", &id, 0, "x").await.unwrap();
    assert_eq!(
        server.keys().unwrap(),
        ["app1:s:{acme/s-1}:log", "app1:s:{acme/s-1}:meta"]
    );
    // agentd's id types refuse key syntax, so hostile ids never reach the store
    // (their requests are INVALID_ARGUMENT); the layout is safe without that.
    for hostile in ["a:b", "*", "{x}", "a/b"] {
        assert!(TenantId::try_from(hostile.to_owned()).is_err(), "{hostile}");
        assert!(
            SessionId::try_from(hostile.to_owned()).is_err(),
            "{hostile}"
        );
    }
    let long = "x".repeat(10 * 1024);
    assert!(SessionId::try_from(long).is_err());
    let (meta, _) = store.keys(&tenant("acme"), &id);
    assert_eq!(meta, "app1:s:{acme/s-1}:meta");
}

#[tokio::test]
async fn records_of_a_newer_minor_version_are_read_and_kept() {
    let server = RedisServer::start().unwrap();
    let store = store_on(&server, "", LIMITS, manual_clock());
    let id = SessionId::generate();
    append(&store, "a", &id, 0, "old pod").await.unwrap();
    let (meta, log) = store.keys(&tenant("a"), &id);
    // A newer pod (format 1.1) appended a record with a field this one does not
    // know, and added a field to the meta hash.
    let newer = r#"{"v":"1.1","role":"user","content":"new pod","mood":"curious"}"#;
    server.command(&["RPUSH", &log, newer]).unwrap();
    server
        .command(&["HSET", &meta, "turns", "2", "shard", "7"])
        .unwrap();
    let session = store.get(&tenant("a"), &id).await.unwrap();
    assert_eq!(session.history(), [user("old pod"), user("new pod")]);
    // This pod's next turn leaves both untouched.
    append(&store, "a", &id, 2, "old pod again").await.unwrap();
    let records: Vec<String> =
        redis::from_redis_value(server.command(&["LRANGE", &log, "0", "-1"]).unwrap()).unwrap();
    assert_eq!(records[1], newer);
    let shard: String =
        redis::from_redis_value(server.command(&["HGET", &meta, "shard"]).unwrap()).unwrap();
    assert_eq!(shard, "7");
}

#[tokio::test]
async fn a_record_of_another_major_version_is_a_clear_error() {
    let server = RedisServer::start().unwrap();
    let store = store_on(&server, "", LIMITS, manual_clock());
    let (id, other) = (SessionId::generate(), SessionId::generate());
    append(&store, "a", &id, 0, "x").await.unwrap();
    let (_, log) = store.keys(&tenant("a"), &id);
    server
        .command(&["RPUSH", &log, r#"{"v":"2.0","parts":[]}"#])
        .unwrap();
    let err = store.get(&tenant("a"), &id).await.unwrap_err();
    assert!(
        matches!(&err, SessionError::UnsupportedFormat { format, .. } if format == "2.0"),
        "{err}"
    );
    // A session whose meta says another major version is not written to.
    append(&store, "a", &other, 0, "x").await.unwrap();
    let (meta, log) = store.keys(&tenant("a"), &other);
    server.command(&["HSET", &meta, "format", "2.0"]).unwrap();
    let err = append(&store, "a", &other, 1, "y").await.unwrap_err();
    assert!(
        matches!(err, SessionError::UnsupportedFormat { .. }),
        "{err}"
    );
    assert_eq!(int(server.command(&["LLEN", &log]).unwrap()), 1);
}

#[tokio::test]
async fn a_stopped_redis_is_unavailable_and_a_restarted_one_serves_again() {
    let mut server = RedisServer::start().unwrap();
    let store = store_on(&server, "", LIMITS, manual_clock());
    let id = SessionId::generate();
    append(&store, "a", &id, 0, "before").await.unwrap();
    server.stop();
    let err = append(&store, "a", &id, 1, "while down").await.unwrap_err();
    assert!(matches!(err, SessionError::Unavailable(_)), "{err}");
    let err = store.check().await.unwrap_err();
    assert!(matches!(err, SessionError::Unavailable(_)), "{err}");
    server.restart().unwrap();
    // appendfsync always: the acknowledged turn survived the kill.
    append(&store, "a", &id, 1, "after").await.unwrap();
    let session = store.get(&tenant("a"), &id).await.unwrap();
    assert_eq!(session.history(), [user("before"), user("after")]);
}

#[tokio::test]
async fn a_store_made_while_redis_is_down_serves_once_it_is_up() {
    let mut server = RedisServer::start().unwrap();
    server.stop();
    let store = store_on(&server, "", LIMITS, manual_clock());
    let err = store.check().await.unwrap_err();
    assert!(matches!(err, SessionError::Unavailable(_)), "{err}");
    server.restart().unwrap();
    store.check().await.unwrap();
    append(&store, "a", &SessionId::generate(), 0, "x")
        .await
        .unwrap();
}

#[tokio::test]
async fn a_full_redis_refuses_the_turn_and_writes_nothing() {
    let server = RedisServer::builder()
        .arg("maxmemory-policy", "noeviction")
        .start()
        .unwrap();
    let store = store_on(&server, "", LIMITS, manual_clock());
    let id = SessionId::generate();
    append(&store, "a", &id, 0, "kept").await.unwrap();
    server
        .command(&["CONFIG", "SET", "maxmemory", "1"])
        .unwrap();
    let err = append(&store, "a", &id, 1, "refused").await.unwrap_err();
    assert!(matches!(err, SessionError::Full(_)), "{err}");
    server
        .command(&["CONFIG", "SET", "maxmemory", "0"])
        .unwrap();
    let session = store.get(&tenant("a"), &id).await.unwrap();
    assert_eq!(session.history(), [user("kept")]);
    assert_eq!(session.turns, 1);
}

#[tokio::test]
async fn a_slow_redis_makes_a_write_of_unknown_fate_and_never_half_of_one() {
    let server = RedisServer::start().unwrap();
    let store = store_on(
        &server,
        "redis_command_timeout = \"100ms\"",
        LIMITS,
        manual_clock(),
    );
    let id = SessionId::generate();
    append(&store, "a", &id, 0, "kept").await.unwrap();
    // Writes (scripts included) wait until unpaused: Redis is "slow".
    server
        .command(&["CLIENT", "PAUSE", "60000", "WRITE"])
        .unwrap();
    let err = append(&store, "a", &id, 1, "late").await.unwrap_err();
    assert!(matches!(err, SessionError::WriteUnknown(_)), "{err}");
    // Reads still answer; a read that times out is plainly unavailable.
    assert_eq!(store.get(&tenant("a"), &id).await.unwrap().turns, 1);
    // Once Redis can, the script may still run: the turn lands whole or not at
    // all (which one depends on whether the client had closed its connection).
    server.command(&["CLIENT", "UNPAUSE"]).unwrap();
    let session = store.get(&tenant("a"), &id).await.unwrap();
    match session.turns {
        1 => assert_eq!(session.history(), [user("kept")]),
        2 => assert_eq!(session.history(), [user("kept"), user("late")]),
        turns => panic!("{turns} turns"),
    }
}

#[tokio::test]
async fn a_turn_sent_twice_is_stored_once() {
    let server = RedisServer::start().unwrap();
    let store = store_on(&server, "", LIMITS, manual_clock());
    let id = SessionId::generate();
    let (turn, acme) = (TurnId::generate(), tenant("a"));
    let send = || store.append_turn(&acme, &id, 0, &turn, vec![user("once")]);
    assert_eq!(send().await.unwrap().turns, 1);
    // The same turn again (what a retry after a dropped connection sends).
    assert_eq!(send().await.unwrap().turns, 1);
    let session = store.get(&tenant("a"), &id).await.unwrap();
    assert_eq!(session.history(), [user("once")]);
    // Another turn with the same expectation is a conflict, as ever.
    let err = append(&store, "a", &id, 0, "other").await.unwrap_err();
    assert!(matches!(err, SessionError::Conflict(_)), "{err}");
}

#[tokio::test]
async fn leftovers_never_become_a_new_sessions_history_and_lost_records_are_an_error() {
    let server = RedisServer::start().unwrap();
    let store = store_on(&server, "", LIMITS, manual_clock());
    let (id, other) = (SessionId::generate(), SessionId::generate());
    // A list whose hash is gone (deleted by hand): the next first turn starts clean.
    append(&store, "a", &id, 0, "old").await.unwrap();
    let (meta, log) = store.keys(&tenant("a"), &id);
    server.command(&["DEL", &meta]).unwrap();
    append(&store, "a", &id, 0, "new").await.unwrap();
    let session = store.get(&tenant("a"), &id).await.unwrap();
    assert_eq!(session.history(), [user("new")]);
    // A hash whose list is gone (evicted): an error, not an empty history.
    append(&store, "a", &other, 0, "x").await.unwrap();
    let (_, other_log) = store.keys(&tenant("a"), &other);
    server.command(&["DEL", &other_log]).unwrap();
    let err = store.get(&tenant("a"), &other).await.unwrap_err();
    assert!(
        matches!(&err, SessionError::Storage(m) if m.contains("noeviction")),
        "{err}"
    );
    // A record that is not one is corruption, not a format question.
    server.command(&["RPUSH", &log, "not json"]).unwrap();
    let err = store.get(&tenant("a"), &id).await.unwrap_err();
    assert!(matches!(err, SessionError::Storage(_)), "{err}");
}

#[tokio::test]
async fn replicas_that_do_not_confirm_leave_the_turn_standing_and_marked() {
    let server = RedisServer::start().unwrap();
    let extra = "redis_wait_replicas = 1\nredis_wait_timeout = \"20ms\"";
    let store = store_on(&server, extra, LIMITS, manual_clock());
    let id = SessionId::generate();
    let appended = store
        .append_turn(&tenant("a"), &id, 0, &TurnId::generate(), vec![user("x")])
        .await
        .unwrap();
    assert_eq!(
        appended,
        Appended {
            turns: 1,
            replication_unconfirmed: true
        }
    );
    assert_eq!(store.get(&tenant("a"), &id).await.unwrap().turns, 1);
}

#[tokio::test]
async fn a_confirming_replica_marks_the_turn_confirmed() {
    let primary = RedisServer::builder()
        .tcp()
        .arg("repl-diskless-sync-delay", "0")
        .start()
        .unwrap();
    let port = primary
        .tcp_url()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .to_owned();
    let replica = RedisServer::builder()
        .arg("replicaof", &format!("127.0.0.1 {port}"))
        .start()
        .unwrap();
    // WAIT 1 returns as soon as the replica is attached and caught up.
    primary.command(&["SET", "warm", "1"]).unwrap();
    let attached = int(primary.command(&["WAIT", "1", "30000"]).unwrap());
    assert_eq!(attached, 1, "the replica did not attach");
    // Generous: WAIT answers as soon as the replica acknowledges.
    let extra =
        "redis_wait_replicas = 1\nredis_wait_timeout = \"5s\"\nredis_command_timeout = \"10s\"";
    // Over TCP (redis://), where the other tests use the unix socket.
    let store = store_at(&primary.tcp_url().unwrap(), extra, LIMITS, manual_clock());
    let id = SessionId::generate();
    let appended = store
        .append_turn(&tenant("a"), &id, 0, &TurnId::generate(), vec![user("x")])
        .await
        .unwrap();
    assert!(!appended.replication_unconfirmed);
    let (meta, _) = store.keys(&tenant("a"), &id);
    assert_eq!(int(replica.command(&["HGET", &meta, "turns"]).unwrap()), 1);
}

#[tokio::test]
async fn rediss_with_a_private_ca_works() {
    let server = RedisServer::builder().tls().start().unwrap();
    let (url, tls) = server.tls_url().unwrap();
    let extra = format!("redis_ca_file = {:?}", tls.ca_cert.display().to_string());
    let config = state_config(&url, &extra);
    let wait = ReplicaWait::from(&config);
    let store = RedisSessionStore::new(
        RedisPool::new(&config).unwrap(),
        LIMITS,
        manual_clock(),
        wait,
    );
    let id = SessionId::generate();
    append(&store, "a", &id, 0, "over tls").await.unwrap();
    assert_eq!(
        store.get(&tenant("a"), &id).await.unwrap().history(),
        [user("over tls")]
    );
    // Without the CA the server's certificate is not trusted.
    let config = state_config(&url, "");
    let untrusting = RedisSessionStore::new(
        RedisPool::new(&config).unwrap(),
        LIMITS,
        manual_clock(),
        wait,
    );
    let err = untrusting.check().await.unwrap_err();
    assert!(matches!(err, SessionError::Unavailable(_)), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicated_writes_take_turns_on_their_own_connections() {
    let server = RedisServer::start().unwrap();
    // One connection for replicated writes, and no replica to answer WAIT. (Redis
    // ends a WAIT on its own clock tick, every 100 ms at the default hz, so
    // five queued writes may take half a second: a generous command timeout
    // bounds the wait for the connection.)
    let extra = "redis_pool_size = 1\nredis_wait_replicas = 1\nredis_wait_timeout = \"20ms\"\n\
                 redis_command_timeout = \"10s\"";
    let store = Arc::new(store_on(&server, extra, LIMITS, manual_clock()));
    let writes = (0..5).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            let id = SessionId::generate();
            let turn = TurnId::generate();
            let text = format!("write {i}");
            let appended = store
                .append_turn(&tenant("a"), &id, 0, &turn, vec![user(&text)])
                .await
                .unwrap();
            assert!(appended.replication_unconfirmed);
            id
        })
    });
    let ids = futures::future::join_all(writes).await;
    for id in ids {
        // Reads use the shared connections: never queued behind a WAIT.
        assert_eq!(
            store.get(&tenant("a"), &id.unwrap()).await.unwrap().turns,
            1
        );
    }
}
