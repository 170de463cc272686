//! Graceful shutdown: NOT_SERVING, listener closed, in-flight calls finish within
//! the grace period and no longer. The grace period runs on a manual clock.

use std::time::Duration;

use prost::Message;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;

use crate::helpers::{HeldCall, eventually, manual_clock, spawn_app, spawn_app_built};

const GET_STATUS: &str = "/agentd.v1.AdminService/GetStatus";

#[tokio::test]
async fn shutdown_lets_an_in_flight_call_finish() {
    let mut app = spawn_app().await;
    let mut watch = app
        .health()
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        watch.message().await.unwrap().unwrap().status(),
        ServingStatus::Serving
    );

    let in_flight = HeldCall::open(app.grpc_addr, GET_STATUS, &[]).await;
    app.wait_for_in_flight(1.0).await;

    app.shutdown.shutdown();

    // Health watchers learn first, then their idle stream is ended so that it does
    // not hold the drain open.
    assert_eq!(
        watch.message().await.unwrap().unwrap().status(),
        ServingStatus::NotServing
    );
    let ended = watch.message().await.unwrap_err();
    assert_eq!(ended.code(), Code::Unavailable);

    // The listener stops accepting.
    let addr = app.grpc_addr;
    eventually(|| async move { tokio::net::TcpStream::connect(addr).await.is_err() }).await;

    // The call in flight still completes normally, and says the instance is
    // draining...
    let response = in_flight.finish(&[]).await;
    assert_eq!(response.status().code(), Code::Ok);
    let status = agentd::pb::GetStatusResponse::decode(&response.body[5..]).unwrap();
    assert!(status.draining, "{status:?}");

    // ...and then the server stops cleanly.
    let stopped = tokio::time::timeout(Duration::from_secs(10), &mut app.server).await;
    stopped.expect("server did not stop").unwrap().unwrap();
}

#[tokio::test]
async fn shutdown_cuts_calls_still_running_when_the_grace_period_ends() {
    let clock = manual_clock();
    let mut app = spawn_app_built("[server]\nshutdown_grace = \"30s\"", |app| {
        app.clock(clock.clone())
    })
    .await;
    let stuck = HeldCall::open(app.grpc_addr, GET_STATUS, &[]).await;
    app.wait_for_in_flight(1.0).await;

    app.shutdown.shutdown();
    // The drain waits for the stuck call until the grace period has passed.
    clock.wait_for_timer(Duration::from_secs(30)).await;
    assert!(!app.server.is_finished());
    clock.advance(Duration::from_secs(30));
    (&mut app.server).await.unwrap().unwrap();
    drop(stuck);
}

#[tokio::test]
async fn an_idle_server_stops_at_once() {
    // The clock never moves, so the 30 s grace period never ends: the server
    // stops only because nothing is in flight.
    let clock = manual_clock();
    let mut app = spawn_app_built("", |app| app.clock(clock)).await;
    app.shutdown.shutdown();
    (&mut app.server).await.unwrap().unwrap();
}

#[tokio::test]
async fn during_the_drain_delay_health_says_not_serving_and_calls_are_still_served() {
    let clock = manual_clock();
    let toml = "[server]\ndrain_delay = \"7s\"\nhealth_addr = \"127.0.0.1:0\"";
    let mut app = spawn_app_built(toml, |app| app.clock(clock.clone())).await;
    app.shutdown.shutdown();
    // The delay has begun: health already says NOT_SERVING, on the gRPC port
    // and on the probes' health-only port...
    clock.wait_for_timer(Duration::from_secs(7)).await;
    assert_eq!(app.serving_status("").await, ServingStatus::NotServing);
    let probe =
        tonic::transport::Channel::from_shared(format!("http://{}", app.health_addr.unwrap()))
            .unwrap()
            .connect()
            .await
            .unwrap();
    let answer = tonic_health::pb::health_client::HealthClient::new(probe)
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .unwrap();
    assert_eq!(answer.into_inner().status(), ServingStatus::NotServing);
    // ...and the listener still takes new connections and serves their calls,
    // while load balancers notice.
    let late = tonic::transport::Channel::from_shared(format!("http://{}", app.grpc_addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let status = agentd::pb::admin_service_client::AdminServiceClient::new(late)
        .get_status(agentd::pb::GetStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(status.draining);
    assert!(!app.server.is_finished());
    // After the delay the drain runs and the server stops.
    clock.advance(Duration::from_secs(7));
    let stopped = tokio::time::timeout(Duration::from_secs(10), &mut app.server).await;
    stopped.expect("server did not stop").unwrap().unwrap();
}
