//! Wires config → components → server: `App::build(config)` (or
//! `App::builder(config)` with a clock, extra tools or a per-call chain of the
//! caller's) opens the stores, builds the whole graph (models, tools,
//! orchestrator), binds the listeners and loads TLS; `grpc_addr()`, `metrics_addr()`
//! and `health_addr()` give the bound addresses (port 0 works);
//! `run_until_stopped()` serves until the shutdown handle fires.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::server::NamedService;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;

use crate::agent::orchestrator::{Orchestrator, Parts};
use crate::agent::sessions::SessionStore;
use crate::agent::tools::search_knowledge::SearchKnowledge;
use crate::agent::tools::{Tool, ToolRegistry};
use crate::clock::Clock;
use crate::config::Config;
use crate::grpc::admin::AdminApi;
use crate::grpc::agent::AgentApi;
use crate::grpc::retrieval::RetrievalApi;
use crate::guardrails::stage::GuardStage;
use crate::health::Health;
use crate::llm::catalog::ModelCatalog;
use crate::llm::chain::{CallChain, Slot};
use crate::middleware::StageLayer;
use crate::middleware::auth::Auth;
use crate::middleware::catch_panic::CatchPanic;
use crate::middleware::deadline::Deadlines;
use crate::middleware::drain::Drain;
use crate::middleware::load_shed::LoadShed;
use crate::middleware::observe::{KnownMethods, Observe};
use crate::middleware::request_limit::RequestLimit;
use crate::pb::admin_service_server::AdminServiceServer;
use crate::pb::agent_service_server::AgentServiceServer;
use crate::pb::retrieval_service_server::RetrievalServiceServer;
use crate::retrieval::embedded::EmbeddedStore;
use crate::retrieval::store::KnowledgeStore;
use crate::status::{Dependencies, GIT_COMMIT, InstanceStatus, VERSION};
use crate::telemetry::metrics::{self, Metrics};
use crate::tls::ServerTls;

mod background;
mod open;

use background::{sweep_sessions, watch_dependencies};
use open::{bind, build_guardrails, open_cost, open_knowledge, open_sessions, prepare_data_dir};

/// Streams a connection to the health-only listener may open at once.
const HEALTH_STREAMS_PER_CONNECTION: u32 = 4;

/// Why the server could not start. Each names the config key to look at.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener could not be bound.
    #[error("{key}: cannot listen on {addr}: {source}")]
    Bind {
        /// Config key of the address.
        key: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The data directory cannot be created or written.
    #[error("storage.data_dir: {path} is not a writable directory: {source}")]
    DataDir {
        /// The configured path.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The TLS files cannot be used (they changed since the config was checked).
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// Anything else that stops the server from starting.
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// Stops a running [`App`]: health turns NOT_SERVING, calls are still served
/// for `server.drain_delay` (on the app's clock), then the listener closes and
/// in-flight calls get `server.shutdown_grace` to finish.
#[derive(Clone, Debug)]
pub struct ShutdownHandle(CancellationToken);

impl ShutdownHandle {
    /// Begins the shutdown; calling it again has no further effect.
    pub fn shutdown(&self) {
        self.0.cancel();
    }
}

/// A bound, not yet serving, agentd instance.
#[derive(Debug)]
pub struct App {
    config: Config,
    clock: Clock,
    grpc_listener: TcpListener,
    metrics_listener: TcpListener,
    health_listener: Option<TcpListener>,
    grpc_addr: SocketAddr,
    metrics_addr: SocketAddr,
    health_addr: Option<SocketAddr>,
    tls: Option<ServerTls>,
    shutdown: CancellationToken,
    metrics: Arc<Metrics>,
    orchestrator: Arc<Orchestrator>,
    sessions: Arc<dyn SessionStore>,
    knowledge: KnowledgeStore,
    embedded: Option<EmbeddedStore>,
}

/// What an [`App`] is built from besides its config: the seams tests and later
/// work plug into. The defaults are production's.
#[derive(Debug)]
pub struct AppBuilder {
    config: Config,
    clock: Clock,
    tools: Vec<Arc<dyn Tool>>,
    chain: Option<CallChain>,
}

impl AppBuilder {
    /// Time is read from `clock` (a manual clock in tests).
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Registers `tool` beside the built-in ones.
    pub fn tool(mut self, tool: Arc<dyn Tool>) -> Self {
        self.tools.push(tool);
        self
    }

    /// Every model call passes `chain` instead of the production one (whose
    /// admission slot holds cost control): a seam for tests.
    pub fn call_chain(mut self, chain: CallChain) -> Self {
        self.chain = Some(chain);
        self
    }

    /// Prepares local state, builds every component and binds the listeners and loads TLS.
    pub async fn build(self) -> Result<App, StartError> {
        App::assemble(self).await
    }
}

impl App {
    /// An instance of `config` with production's seams. The config must have
    /// been validated (every `Config` constructor does).
    pub async fn build(config: Config) -> Result<Self, StartError> {
        Self::builder(config).build().await
    }

    /// A builder for an instance of `config`, to change its seams.
    pub fn builder(config: Config) -> AppBuilder {
        AppBuilder {
            config,
            clock: Clock::system(),
            tools: Vec::new(),
            chain: None,
        }
    }

    async fn assemble(parts: AppBuilder) -> Result<Self, StartError> {
        let AppBuilder {
            config,
            clock,
            tools: extra_tools,
            chain,
        } = parts;
        prepare_data_dir(&config).await?;
        let sessions = open_sessions(&config, &clock).await?;
        let metrics = Arc::new(Metrics::new(VERSION, GIT_COMMIT));
        let (cost, admission) = open_cost(&config, &clock, metrics.cost.clone()).await?;
        let guardrails = Arc::new(build_guardrails(&config, metrics.guardrails.clone())?);
        let chain = chain.unwrap_or_else(|| {
            CallChain::default()
                .with(Slot::Admission, admission)
                .with(Slot::Guard, Arc::new(GuardStage::new(guardrails.clone())))
        });
        let catalog =
            ModelCatalog::from_config(&config.llm, &clock, &chain, metrics.router.clone())?;
        let (knowledge, embedded) = open_knowledge(
            &config,
            &clock,
            metrics.router.clone(),
            metrics.cost.clone(),
            &guardrails,
        )
        .await?;
        let mut tools = ToolRegistry::with_builtins().map_err(anyhow::Error::from)?;
        tools
            .register(Arc::new(SearchKnowledge::new(
                knowledge.clone(),
                config.retrieval.default_collection.clone(),
            )))
            .map_err(anyhow::Error::from)?;
        for tool in extra_tools {
            tools.register(tool).map_err(anyhow::Error::from)?;
        }
        let orchestrator = Arc::new(Orchestrator::new(Parts {
            catalog,
            tools,
            sessions: sessions.clone(),
            knowledge: knowledge.clone(),
            agent: config.agent.clone(),
            tool_config: config.tools.clone(),
            metrics: metrics.genai.clone(),
            clock: clock.clone(),
            cost: cost.clone(),
            guardrails,
        }));
        let (grpc_listener, grpc_addr) = bind("server.grpc_addr", config.server.grpc_addr).await?;
        let (metrics_listener, metrics_addr) =
            bind("server.metrics_addr", config.server.metrics_addr).await?;
        let (health_listener, health_addr) = match config.server.health_addr {
            Some(addr) => {
                let (listener, bound) = bind("server.health_addr", addr).await?;
                (Some(listener), Some(bound))
            }
            None => (None, None),
        };
        let tls = match config.server.tls.files() {
            Some(files) => Some(ServerTls::load(&files, clock.wall())?),
            None => None,
        };
        let workers = tokio::runtime::Handle::current().metrics().num_workers();
        tracing::info!(
            %grpc_addr,
            %metrics_addr,
            health_addr = health_addr.map(tracing::field::display),
            tls = tls.is_some(),
            mutual_tls = config.server.tls.client_ca_file.is_some(),
            auth = config.auth.enabled,
            workers,
            "listening"
        );
        Ok(Self {
            config,
            clock,
            grpc_listener,
            metrics_listener,
            health_listener,
            grpc_addr,
            metrics_addr,
            health_addr,
            tls,
            shutdown: CancellationToken::new(),
            metrics,
            orchestrator,
            sessions,
            knowledge,
            embedded,
        })
    }

    /// The bound gRPC address.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    /// The bound metrics address.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics_addr
    }

    /// The bound address of the health-only listener, if configured.
    pub fn health_addr(&self) -> Option<SocketAddr> {
        self.health_addr
    }

    /// A handle that stops this instance.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle(self.shutdown.clone())
    }

    /// Serves until the shutdown handle fires, then drains: see [`ShutdownHandle`].
    /// Returns once every call has finished or the grace period has run out.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let server = &self.config.server;
        let metrics = self.metrics;
        let (reporter, health_service) = tonic_health::server::health_reporter();
        let health = Arc::new(Health::new(reporter));
        health.publish().await;
        let router = self.orchestrator.router().clone();
        let cost = self.orchestrator.cost().clone();
        let dependencies = Dependencies {
            sessions: self.sessions.clone(),
            knowledge: self.knowledge.clone(),
            router: router.clone(),
        };
        let mut bound = std::collections::BTreeMap::from([
            ("grpc".to_owned(), self.grpc_addr),
            ("metrics".to_owned(), self.metrics_addr),
        ]);
        if let Some(embedded) = &self.embedded {
            bound.insert("embedded_qdrant".to_owned(), embedded.addr());
        }
        if let Some(addr) = self.health_addr {
            bound.insert("health".to_owned(), addr);
        }
        let status = Arc::new(InstanceStatus::new(
            &self.config,
            bound,
            dependencies.clone(),
            health.clone(),
            self.clock.clone(),
        ));

        let admin = AdminServiceServer::new(AdminApi::new(
            status,
            router,
            self.orchestrator.cost().clone(),
        ))
        .max_decoding_message_size(server.max_request_bytes)
        .max_encoding_message_size(server.max_response_bytes);
        let retrieval = RetrievalServiceServer::new(RetrievalApi::new(
            self.knowledge.clone(),
            self.config.retrieval.default_collection.clone(),
        ))
        .max_decoding_message_size(server.max_request_bytes)
        .max_encoding_message_size(server.max_response_bytes);
        let agent = AgentServiceServer::new(AgentApi::new(
            self.orchestrator.clone(),
            self.sessions.clone(),
        ))
        .max_decoding_message_size(server.max_request_bytes)
        .max_encoding_message_size(server.max_response_bytes);

        let watch_stop = CancellationToken::new();
        let watcher = tokio::spawn(watch_dependencies(
            dependencies,
            health.clone(),
            metrics.dependencies.clone(),
            self.clock.clone(),
            watch_stop.clone(),
        ));
        let sweeper = tokio::spawn(sweep_sessions(
            self.sessions.clone(),
            self.config.sessions.sweep_interval,
            metrics.genai.clone(),
            self.clock.clone(),
            watch_stop.clone(),
        ));
        // Reservations stand at least `server.max_timeout` plus a minute, so
        // the session sweeper's interval is often enough to charge them.
        let reservations = tokio::spawn(
            self.orchestrator
                .cost()
                .clone()
                .sweep_every(self.config.sessions.sweep_interval, watch_stop.clone()),
        );

        // Reflection serves agentd's contract, the standard services, and the
        // google.rpc error details (so grpcurl can decode ErrorInfo & co.).
        let descriptor_sets = [
            crate::pb::FILE_DESCRIPTOR_SET,
            tonic_health::pb::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
            tonic_types::pb::FILE_DESCRIPTOR_SET,
        ];
        let reflection_v1 = reflection(&descriptor_sets).build_v1()?;
        let reflection_v1alpha = reflection(&descriptor_sets).build_v1alpha()?;

        // Phases of shutdown: `self.shutdown` is the request; health turns
        // NOT_SERVING; `drain` then ends the idle open streams; `stop_accepting`
        // closes the listener and lets tonic drain connections; the grace timeout
        // below bounds the whole drain.
        let drain = CancellationToken::new();
        let stop_accepting = CancellationToken::new();

        let served = Arc::new(KnownMethods::from_descriptor_sets(&descriptor_sets)?);
        // agentd's own methods start at zero malformed requests: the P1 alert
        // subtracts their rate, and a series that appears with its first
        // request would hide that request from rate().
        metrics.grpc.start_malformed(
            KnownMethods::from_descriptor_sets(&[crate::pb::FILE_DESCRIPTOR_SET])?.all_labels(),
        );

        // Outer to inner; each layer's reason is in its module docs.
        let layers = tower::ServiceBuilder::new()
            // request id, span, metrics, access log, error details on every status
            .layer(StageLayer::new(Observe::new(
                metrics.clone(),
                served.clone(),
            )))
            // a panicking handler fails its own call with INTERNAL, nothing more
            .layer(StageLayer::new(CatchPanic))
            // who is calling, and may they call this method
            .layer(StageLayer::new(Auth::new(&self.config.auth, served)))
            // shed load past the concurrency limit instead of queueing it
            .layer(StageLayer::new(LoadShed::new(server.max_concurrent_calls)))
            // every call has a deadline, the client's or the default
            .layer(StageLayer::new(Deadlines::new(
                server.default_timeout,
                server.max_timeout,
                self.clock.clone(),
            )))
            // refuse oversized request messages before buffering them
            .layer(StageLayer::new(RequestLimit::new(server.max_request_bytes)))
            // end idle health/reflection streams when the drain starts
            .layer(StageLayer::new(Drain::new(drain.clone())))
            .into_inner();

        let router = Server::builder()
            .layer(layers)
            .add_service(health_service.clone())
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(admin)
            .add_service(agent)
            .add_service(retrieval);
        let closed = stop_accepting.clone().cancelled_owned();
        let mut grpc = match &self.tls {
            Some(tls) => {
                let incoming = tls.incoming(
                    self.grpc_listener,
                    server.tls.handshake_timeout,
                    metrics.tls.clone(),
                );
                tokio::spawn(router.serve_with_incoming_shutdown(incoming, closed))
            }
            None => {
                let incoming = TcpIncoming::from(self.grpc_listener).with_nodelay(Some(true));
                tokio::spawn(router.serve_with_incoming_shutdown(incoming, closed))
            }
        };
        let tls_watcher = self.tls.map(|tls| {
            tokio::spawn(tls.watch(
                server.tls.reload_interval,
                metrics.tls.clone(),
                self.clock.clone(),
                watch_stop.clone(),
            ))
        });
        // Probes only: grpc.health.v1 in plaintext, no auth (health never needs
        // it), and no call metrics (probes every few seconds would swamp them).
        // A probe needs one stream, so a connection gets a few at most. It
        // answers NOT_SERVING through the drain and stops after the main server;
        // its Watch streams end at the drain.
        let mut health_only = self.health_listener.map(|listener| {
            let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
            tokio::spawn(
                Server::builder()
                    .max_concurrent_streams(Some(HEALTH_STREAMS_PER_CONNECTION))
                    .layer(StageLayer::new(Drain::new(drain.clone())))
                    .add_service(health_service)
                    .serve_with_incoming_shutdown(
                        incoming,
                        stop_accepting.clone().cancelled_owned(),
                    ),
            )
        });

        let metrics_stop = CancellationToken::new();
        let metrics_server = tokio::spawn(metrics::serve(
            self.metrics_listener,
            metrics,
            metrics_stop.clone(),
        ));

        let health_only_ended = async {
            match health_only.as_mut() {
                Some(handle) => handle.await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = self.shutdown.cancelled() => {}
            finished = &mut grpc => {
                metrics_stop.cancel();
                if let Some(health_only) = &health_only {
                    health_only.abort();
                }
                finished??;
                anyhow::bail!("the gRPC server stopped without a shutdown request");
            }
            finished = health_only_ended => {
                // Probes would fail with no word why: stop, and say it.
                metrics_stop.cancel();
                grpc.abort();
                finished??;
                anyhow::bail!("the health-only listener (server.health_addr) stopped without a shutdown request");
            }
        }

        tracing::info!(
            delay = ?server.drain_delay,
            grace = ?server.shutdown_grace,
            "shutdown requested: NOT_SERVING, then draining"
        );
        // NOT_SERVING first, so load balancers stop sending at once; then the
        // watcher stops (mid-check, if it is checking: it must not flip the
        // statuses back).
        health.update(|conditions| conditions.draining = true).await;
        watch_stop.cancel();
        if let Err(err) = watcher.await {
            tracing::warn!(error = %err, "the dependency watcher failed");
        }
        if let Err(err) = reservations.await {
            tracing::warn!(error = %err, "the reservation sweeper failed");
        }
        // The calls have ended; their settlements may still be on their way.
        // Each is one Redis command, bounded by twice the command timeout.
        cost.settled(self.config.state.redis_command_timeout * 2)
            .await;
        if let Err(err) = sweeper.await {
            tracing::warn!(error = %err, "the session sweeper failed");
        }
        if let Some(watcher) = tls_watcher
            && let Err(err) = watcher.await
        {
            tracing::warn!(error = %err, "the TLS file watcher failed");
        }
        // The listener stays open and calls are served while load balancers
        // and Kubernetes endpoints notice NOT_SERVING and stop sending.
        if !server.drain_delay.is_zero() {
            tracing::info!(delay = ?server.drain_delay, "draining after the drain delay");
            self.clock.sleep(server.drain_delay).await;
        }
        drain.cancel();
        stop_accepting.cancel();
        match self.clock.timeout(server.shutdown_grace, &mut grpc).await {
            Ok(finished) => finished??,
            Err(_) => {
                tracing::warn!("shutdown grace expired: cutting the calls still in flight");
                grpc.abort();
            }
        }
        // Probes were answered NOT_SERVING until now; nothing is left to serve.
        if let Some(health_only) = health_only {
            health_only.abort();
        }
        metrics_stop.cancel();
        metrics_server.await??;
        if let Some(embedded) = self.embedded {
            embedded.stop().await;
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// The services listed by reflection and given a health status.
fn public_services() -> [&'static str; 6] {
    [
        AgentServiceServer::<AgentApi>::NAME,
        RetrievalServiceServer::<RetrievalApi>::NAME,
        AdminServiceServer::<AdminApi>::NAME,
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    ]
}

/// Reflection over `descriptor_sets`, listing only the public services.
fn reflection<'a>(descriptor_sets: &[&'a [u8]]) -> tonic_reflection::server::Builder<'a> {
    let mut builder = tonic_reflection::server::Builder::configure();
    for set in descriptor_sets {
        builder = builder.register_encoded_file_descriptor_set(set);
    }
    for name in public_services() {
        builder = builder.with_service_name(name);
    }
    builder
}
