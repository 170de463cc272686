//! TLS on the gRPC listener: verified clients, mutual TLS, the plaintext
//! health-only listener, certificate rotation, and certificates refused at start.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use tokio::process::Command;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::helpers::{TestApp, eventually, spawn_app_built, spawn_app_with};

/// A certificate authority made for one test.
pub(crate) struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate and its key, as PEM.
pub(crate) struct Pair {
    cert: String,
    key: String,
}

impl TestCa {
    pub(crate) fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Self { issuer }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A certificate for `localhost` and 127.0.0.1 (server or client alike).
    pub(crate) fn issue(&self) -> Pair {
        self.issue_with(|_| {})
    }

    fn issue_with(&self, adjust: impl FnOnce(&mut CertificateParams)) -> Pair {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        adjust(&mut params);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Pair {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }
}

/// The server's TLS files in a directory of their own.
pub(crate) struct ServerFiles {
    _dir: tempfile::TempDir,
    cert: PathBuf,
    key: PathBuf,
    client_ca: PathBuf,
}

impl ServerFiles {
    pub(crate) fn write(pair: &Pair, client_ca: Option<&TestCa>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let files = Self {
            cert: dir.path().join("tls.crt"),
            key: dir.path().join("tls.key"),
            client_ca: dir.path().join("ca.crt"),
            _dir: dir,
        };
        files.replace(pair);
        if let Some(ca) = client_ca {
            std::fs::write(&files.client_ca, ca.pem()).unwrap();
        }
        files
    }

    pub(crate) fn replace(&self, pair: &Pair) {
        std::fs::write(&self.cert, &pair.cert).unwrap();
        std::fs::write(&self.key, &pair.key).unwrap();
    }

    pub(crate) fn toml(&self, mutual: bool) -> String {
        let mut toml = format!(
            "[server]\nhealth_addr = \"127.0.0.1:0\"\n[server.tls]\ncert_file = {:?}\nkey_file = {:?}\n",
            self.cert.display().to_string(),
            self.key.display().to_string(),
        );
        if mutual {
            toml += &format!(
                "client_ca_file = {:?}\n",
                self.client_ca.display().to_string()
            );
        }
        toml
    }
}

/// A fresh TLS connection to `app` trusting `ca`, optionally with a client certificate.
async fn connect(app: &TestApp, ca: &TestCa, client: Option<&Pair>) -> Result<Channel, String> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca.pem()))
        .domain_name("localhost");
    if let Some(pair) = client {
        tls = tls.identity(Identity::from_pem(&pair.cert, &pair.key));
    }
    let endpoint = Channel::from_shared(format!("https://{}", app.grpc_addr))
        .unwrap()
        .tls_config(tls)
        .unwrap();
    // The handshake happens on connect; a refused one ends here.
    let channel = endpoint.connect().await.map_err(|err| format!("{err:?}"))?;
    // With TLS 1.3 a refused client certificate shows only on the first call.
    let mut health = HealthClient::new(channel.clone());
    health
        .check(HealthCheckRequest::default())
        .await
        .map_err(|status| format!("{status:?}"))?;
    Ok(channel)
}

async fn run(command: &mut Command) -> (i32, String, String) {
    let output = command.output().await.unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

fn path(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[tokio::test]
async fn tls_serves_clients_that_verify_it_and_probes_use_the_plaintext_health_port() {
    let ca = TestCa::new("agentd test CA");
    let files = ServerFiles::write(&ca.issue(), None);
    let app = spawn_app_with(&files.toml(false)).await;

    // A client verifying the server against the CA is served.
    let channel = connect(&app, &ca, None).await.unwrap();
    let status = agentd::pb::admin_service_client::AdminServiceClient::new(channel)
        .get_status(agentd::pb::GetStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    let health_addr = app.health_addr.unwrap();
    assert_eq!(
        status.bound_addresses.get("health"),
        Some(&health_addr.to_string())
    );

    // A client trusting another CA refuses the server; plaintext gets nothing.
    let stranger = TestCa::new("someone else's CA");
    let refused = connect(&app, &stranger, None).await.unwrap_err();
    assert!(refused.contains("UnknownIssuer"), "{refused}");
    let plaintext = Channel::from_shared(format!("http://{}", app.grpc_addr))
        .unwrap()
        .connect_lazy();
    let plaintext = HealthClient::new(plaintext)
        .check(HealthCheckRequest::default())
        .await;
    // The server answers a TLS alert, which an HTTP/2 client reads as garbage.
    assert!(
        plaintext.is_err(),
        "a plaintext call must fail: {plaintext:?}"
    );

    // The health-only port speaks plaintext grpc.health.v1 and nothing else.
    let probe = Channel::from_shared(format!("http://{health_addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let answer = HealthClient::new(probe.clone())
        .check(HealthCheckRequest::default())
        .await
        .unwrap();
    assert_eq!(answer.into_inner().status(), ServingStatus::Serving);
    let other = agentd::pb::admin_service_client::AdminServiceClient::new(probe)
        .get_status(agentd::pb::GetStatusRequest {})
        .await
        .unwrap_err();
    assert_eq!(other.code(), tonic::Code::Unimplemented);

    // `agentd health` checks both ways, as a probe or a `helm test` pod would.
    let (code, stdout, stderr) = run(crate::helpers::agentd_command().args([
        "health",
        "--addr",
        &app.grpc_addr.to_string(),
        "--tls",
        "--ca-file",
        path(&files.write_ca_file(&ca)),
        "--domain",
        "localhost",
    ]))
    .await;
    assert_eq!(code, 0, "{stdout}{stderr}");
    // Without --ca-file the system's roots are trusted (rustls-native-certs
    // reads SSL_CERT_FILE, standing in for the system store here).
    let (code, stdout, stderr) = run(crate::helpers::agentd_command()
        .env("SSL_CERT_FILE", files.write_ca_file(&ca))
        .args([
            "health",
            "--addr",
            &format!("https://localhost:{}", app.grpc_addr.port()),
        ]))
    .await;
    assert_eq!(code, 0, "{stdout}{stderr}");
    let (code, _, _) = run(crate::helpers::agentd_command().args([
        "health",
        "--addr",
        &app.grpc_addr.to_string(),
        "--timeout",
        "2s",
    ]))
    .await;
    assert_eq!(code, 1, "plaintext against the TLS port fails");
    let (code, stdout, _) =
        run(crate::helpers::agentd_command().args(["health", "--addr", &health_addr.to_string()]))
            .await;
    assert_eq!(code, 0, "{stdout}");

    // The certificate's expiry is exported for an alert.
    let expiry = app
        .metric(r#"agentd_tls_certificate_expiry_timestamp_seconds{listener="grpc"}"#)
        .await;
    assert!(
        expiry.is_some_and(|at| at > 4.0e9),
        "rcgen's default validity ends in 4096: {expiry:?}"
    );
}

impl ServerFiles {
    /// A file with `ca`'s certificate beside the server's, for a client to trust.
    fn write_ca_file(&self, ca: &TestCa) -> PathBuf {
        let path = self.cert.with_file_name("server-ca.crt");
        std::fs::write(&path, ca.pem()).unwrap();
        path
    }
}

#[tokio::test]
async fn mutual_tls_serves_only_clients_with_a_certificate_from_the_client_ca() {
    let server_ca = TestCa::new("server CA");
    let client_ca = TestCa::new("client CA");
    let files = ServerFiles::write(&server_ca.issue(), Some(&client_ca));
    let app = spawn_app_with(&files.toml(true)).await;

    let client = client_ca.issue();
    connect(&app, &server_ca, Some(&client)).await.unwrap();
    let anonymous = connect(&app, &server_ca, None).await.unwrap_err();
    assert!(
        anonymous.contains("CertificateRequired") || anonymous.contains("HandshakeFailure"),
        "{anonymous}"
    );
    // A certificate from the wrong CA is refused like none.
    let forged = server_ca.issue();
    assert!(connect(&app, &server_ca, Some(&forged)).await.is_err());

    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let file = dir.path().join(name);
        std::fs::write(&file, text).unwrap();
        file
    };
    let ca_file = write("ca.crt", &server_ca.pem());
    let cert_file = write("client.crt", &client.cert);
    let key_file = write("client.key", &client.key);
    let health = |with_identity: bool| {
        let mut command = crate::helpers::agentd_command();
        command.args([
            "health",
            "--addr",
            &format!("https://{}", app.grpc_addr),
            "--ca-file",
            path(&ca_file),
            "--domain",
            "localhost",
            "--timeout",
            "5s",
        ]);
        if with_identity {
            command.args([
                "--cert-file",
                path(&cert_file),
                "--key-file",
                path(&key_file),
            ]);
        }
        command
    };
    let (code, stdout, stderr) = run(&mut health(true)).await;
    assert_eq!(code, 0, "{stdout}{stderr}");
    let (code, _, stderr) = run(&mut health(false)).await;
    assert_eq!(code, 1, "{stderr}");
}

/// Advances `clock` by one reload interval, once the watcher waits on it.
async fn next_reload_round(clock: &agentd::clock::Clock) {
    clock.wait_for_timer(Duration::from_secs(10)).await;
    clock.advance(Duration::from_secs(10));
}

async fn wait_for_reloads(app: &TestApp, outcome: &str, n: f64) {
    let sample = format!(r#"agentd_tls_reloads_total{{outcome="{outcome}"}}"#);
    eventually(|| async { app.metric(&sample).await == Some(n) }).await;
}

#[tokio::test]
async fn rotated_certificates_reach_new_connections_and_a_bad_rotation_is_refused() {
    // The app's clock stands 20 s before 2030: the watcher judges validity on it.
    let year_2030 = std::time::UNIX_EPOCH + Duration::from_secs(1_893_456_000);
    let clock = agentd::clock::Clock::manual(year_2030 - Duration::from_secs(20));
    let old_ca = TestCa::new("old CA");
    let files = ServerFiles::write(&old_ca.issue(), None);
    let app = spawn_app_built(&files.toml(false), |builder| builder.clock(clock.clone())).await;
    let before = connect(&app, &old_ca, None).await.unwrap();
    // Every series exists from the start, so the first failure is an increase.
    wait_for_reloads(&app, "error", 0.0).await;
    assert_eq!(
        app.metric(r#"agentd_tls_handshake_failures_total{reason="timeout"}"#)
            .await,
        Some(0.0)
    );

    // The Secret is rotated to a certificate valid from 2030 on, ten seconds
    // away: refused once, then loaded when the app's clock gets there (the
    // expiry gauge shows it: the test's clients judge time by the real clock,
    // so they cannot verify a certificate from 2030 themselves).
    let future_ca = TestCa::new("future CA");
    files.replace(&future_ca.issue_with(|params| {
        params.not_before = rcgen::date_time_ymd(2030, 1, 1);
        params.not_after = rcgen::date_time_ymd(2031, 1, 1);
    }));
    next_reload_round(&clock).await;
    wait_for_reloads(&app, "error", 1.0).await;
    connect(&app, &old_ca, None).await.unwrap();
    next_reload_round(&clock).await;
    wait_for_reloads(&app, "ok", 1.0).await;
    assert_eq!(
        app.metric(r#"agentd_tls_certificate_expiry_timestamp_seconds{listener="grpc"}"#)
            .await,
        Some(1_924_992_000.0),
        "2031-01-01, the served certificate's end"
    );

    // Rotated again, to a certificate from a new CA: new connections get it.
    let new_ca = TestCa::new("new CA");
    files.replace(&new_ca.issue());
    next_reload_round(&clock).await;
    wait_for_reloads(&app, "ok", 2.0).await;
    assert_eq!(
        app.metric(r#"agentd_tls_reloads_total{outcome="error"}"#)
            .await,
        Some(1.0)
    );
    connect(&app, &new_ca, None).await.unwrap();
    let stale = connect(&app, &old_ca, None).await.unwrap_err();
    assert!(stale.contains("UnknownIssuer"), "{stale}");
    // The refused client is counted.
    eventually(|| async {
        app.metric(r#"agentd_tls_handshake_failures_total{reason="handshake"}"#)
            .await
            == Some(1.0)
    })
    .await;
    // An open connection keeps the certificate it was made with.
    HealthClient::new(before)
        .check(HealthCheckRequest::default())
        .await
        .unwrap();

    // Half a rotation: a certificate whose key is not the one beside it. Refused
    // once (the same bytes are not tried again), the last good one still served.
    let third_ca = TestCa::new("third CA");
    files.replace(&Pair {
        cert: third_ca.issue().cert,
        key: new_ca.issue().key,
    });
    next_reload_round(&clock).await;
    wait_for_reloads(&app, "error", 2.0).await;
    next_reload_round(&clock).await;
    connect(&app, &new_ca, None).await.unwrap();
    assert_eq!(
        app.metric(r#"agentd_tls_reloads_total{outcome="error"}"#)
            .await,
        Some(2.0)
    );

    // The rotation completes: loaded.
    files.replace(&third_ca.issue());
    next_reload_round(&clock).await;
    wait_for_reloads(&app, "ok", 3.0).await;
    connect(&app, &third_ca, None).await.unwrap();
}

/// A `[server.tls]` TOML naming `pair`'s files, written into `dir`.
fn tls_toml(dir: &Path, pair: &Pair) -> String {
    let cert = dir.join("tls.crt");
    let key = dir.join("tls.key");
    std::fs::write(&cert, &pair.cert).unwrap();
    std::fs::write(&key, &pair.key).unwrap();
    format!("[server.tls]\ncert_file = {cert:?}\nkey_file = {key:?}\n")
}

#[tokio::test]
async fn unusable_certificates_are_config_errors_naming_the_key() {
    let ca = TestCa::new("agentd test CA");
    let dir = tempfile::tempdir().unwrap();
    let problems = |toml: &str| match agentd::config::Config::from_toml(toml) {
        Ok(_) => panic!("accepted:\n{toml}"),
        Err(err) => err.to_string(),
    };

    let expired = ca.issue_with(|params| {
        params.not_before = rcgen::date_time_ymd(2000, 1, 1);
        params.not_after = rcgen::date_time_ymd(2001, 1, 1);
    });
    let message = problems(&tls_toml(dir.path(), &expired));
    assert!(
        message.contains("server.tls.cert_file") && message.contains("expired at 2001-01-01"),
        "{message}"
    );

    let early = ca.issue_with(|params| {
        params.not_before = rcgen::date_time_ymd(4000, 1, 1);
    });
    let message = problems(&tls_toml(dir.path(), &early));
    assert!(
        message.contains("is not valid before 4000-01-01"),
        "{message}"
    );

    let mismatched = Pair {
        cert: ca.issue().cert,
        key: ca.issue().key,
    };
    let message = problems(&tls_toml(dir.path(), &mismatched));
    assert!(
        message.contains("server.tls.key_file") && message.contains("does not belong"),
        "{message}"
    );

    let garbage = Pair {
        cert: "not a certificate".to_owned(),
        key: ca.issue().key,
    };
    let message = problems(&tls_toml(dir.path(), &garbage));
    assert!(
        message.contains("server.tls.cert_file") && message.contains("holds no PEM certificate"),
        "{message}"
    );
    let keyless = Pair {
        cert: ca.issue().cert,
        key: String::new(),
    };
    let message = problems(&tls_toml(dir.path(), &keyless));
    assert!(
        message.contains("server.tls.key_file") && message.contains("holds no PEM private key"),
        "{message}"
    );

    let message = problems("[server.tls]\ncert_file = \"/nonexistent/tls.crt\"\n");
    assert!(
        message.contains("server.tls.key_file: server.tls.cert_file is set"),
        "{message}"
    );
    let message = problems(
        "[server.tls]\ncert_file = \"/nonexistent/tls.crt\"\nkey_file = \"/nonexistent/tls.key\"\n",
    );
    assert!(
        message.contains("server.tls.cert_file: cannot read /nonexistent/tls.crt"),
        "{message}"
    );
    let message = problems("[server.tls]\nclient_ca_file = \"/etc/ca.crt\"\n");
    assert!(message.contains("server.tls.client_ca_file"), "{message}");
    let good = tls_toml(dir.path(), &ca.issue());
    let message = problems(&format!(
        "{good}client_ca_file = {:?}\n",
        path(&dir.path().join("tls.key"))
    ));
    assert!(
        message.contains("server.tls.client_ca_file")
            && message.contains("holds no PEM certificate"),
        "{message}"
    );
    let message = problems("[server.tls]\nreload_interval = \"0s\"\n");
    assert!(message.contains("server.tls.reload_interval"), "{message}");
    let message =
        problems("[server]\ngrpc_addr = \"127.0.0.1:50051\"\nhealth_addr = \"127.0.0.1:50051\"\n");
    assert!(
        message.contains("server.health_addr") && message.contains("overlaps server.grpc_addr"),
        "{message}"
    );
    let message = problems("[server]\nhealth_addr = \"0.0.0.0:9464\"\n");
    assert!(
        message.contains("overlaps server.metrics_addr (127.0.0.1:9464)"),
        "{message}"
    );
    let message = problems("[server.tls]\nhandshake_timeout = \"0s\"\n");
    assert!(
        message.contains("server.tls.handshake_timeout"),
        "{message}"
    );

    // `agentd serve` refuses to start on an expired certificate: exit 64.
    let toml = dir.path().join("agentd.toml");
    std::fs::write(&toml, tls_toml(dir.path(), &expired)).unwrap();
    let (code, _, stderr) =
        run(crate::helpers::agentd_command().args(["serve", "--config", path(&toml)])).await;
    assert_eq!(code, 64, "{stderr}");
    assert!(stderr.contains("expired at"), "{stderr}");
}

#[tokio::test]
async fn agentd_health_refuses_unusable_tls_flags_clearly() {
    // An unreadable CA file is named before anything is dialled.
    let (code, _, stderr) = run(crate::helpers::agentd_command().args([
        "health",
        "--addr",
        "127.0.0.1:9",
        "--ca-file",
        "/nonexistent/ca.crt",
    ]))
    .await;
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("--ca-file: cannot read /nonexistent/ca.crt"),
        "{stderr}"
    );
    // A client certificate needs its key: the command line is refused (exit 2).
    let (code, _, stderr) =
        run(crate::helpers::agentd_command().args(["health", "--cert-file", "/tmp/client.crt"]))
            .await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--key-file"), "{stderr}");
}
