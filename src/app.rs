//! Wiring: connect the database, start the actors, build the HTTP server, and stop in order.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Actor;
use actix_web::body::BoxBody;
use actix_web::dev::ServerHandle;
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, App, HttpRequest, HttpServer};
use arc_swap::ArcSwap;
use gpt_load_actors::group_registry::{GroupRegistryActor, Snapshot};
use gpt_load_actors::key_pool::KeyPoolActor;
use gpt_load_actors::log_batcher::LogBatcherActor;
use gpt_load_actors::settings::{SettingKey, SETTINGS};

use crate::admin;
use crate::config::AppConfig;
use crate::crypto::KeyCodec;
use crate::db::instance_lock::{InstanceLock, LockError, LockKind, LockTiming};
use crate::db::repo::Repo;
use crate::db::{Database, DbError};
use crate::http::admission::Admission;
use crate::http::error::EdgeError;
use crate::http::middleware::{access_log, body_deadline, security_headers, track_in_flight};
use crate::key_encryption::startup::{open_codec, EncryptionMismatch};
use crate::proxy::{self, upstream::UpstreamClients};
use crate::state::AppState;
use crate::tasks::TaskRegistry;

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Database(#[from] DbError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Encryption(#[from] EncryptionMismatch),
    #[error("could not load {what}: {reason}")]
    Load { what: &'static str, reason: String },
    #[error(transparent)]
    Store(#[from] gpt_load_actors::cluster::StoreError),
    #[error("could not listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
}

/// A started service.
pub struct RunningApp {
    pub addr: SocketAddr,
    pub handle: ServerHandle,
    pub state: AppState,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    /// This server's row in `instance_locks`, removed once it has stopped.
    lock: Option<InstanceLock>,
    /// The background validator (driven only while this node leads).
    pub validator: crate::validation::background::Validator,
    /// The election actor of a cluster node.
    cluster: Option<actix::Addr<gpt_load_actors::cluster::ClusterActor>>,
}

impl RunningApp {
    /// Waits until the server stops (a signal, or [`RunningApp::stop`]), then writes every
    /// buffered request log and removes this server's lock row.
    pub async fn wait(mut self) -> std::io::Result<()> {
        let result = match (&mut self.server).await {
            Ok(result) => result,
            Err(err) => Err(std::io::Error::other(err)),
        };
        self.validator.shutdown();
        self.resign().await;
        self.state.flush_logs().await;
        if let Some(lock) = self.lock.take() {
            lock.release().await;
        }
        result
    }

    /// Stops gracefully: in-flight requests finish first, then buffered logs are written and
    /// the lock row is removed.
    pub async fn stop(mut self) {
        self.state
            .draining
            .store(true, std::sync::atomic::Ordering::SeqCst);
        // Hand leadership over first: the next leader need not wait out the TTL.
        self.resign().await;
        self.state.drain(&self.handle).await;
        self.state.tasks.shutdown();
        self.validator.shutdown();
        let _ = (&mut self.server).await;
        self.state.flush_logs().await;
        if let Some(lock) = self.lock.take() {
            lock.release().await;
        }
    }
}

impl RunningApp {
    /// Leaves the election and releases the leader lock if this node holds it.
    async fn resign(&mut self) {
        if let Some(cluster) = self.cluster.take() {
            let _ = cluster.send(gpt_load_actors::cluster::Resign).await;
        }
    }
}

/// Stops on SIGTERM (gracefully) or SIGINT/SIGQUIT (at once), as actix would, but first marks
/// the node as draining and leaves the election, so `/health` turns 503 and another node takes
/// over the singleton jobs while in-flight requests finish.
fn handle_stop_signals(
    handle: ServerHandle,
    state: AppState,
    cluster: Option<actix::Addr<gpt_load_actors::cluster::ClusterActor>>,
) {
    use tokio::signal::unix::{signal, SignalKind};
    actix_rt::spawn(async move {
        let (Ok(mut term), Ok(mut int), Ok(mut quit)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::quit()),
        ) else {
            tracing::error!("Could not listen for stop signals.");
            return;
        };
        let graceful = tokio::select! {
            _ = term.recv() => true,
            _ = int.recv() => false,
            _ = quit.recv() => false,
        };
        tracing::info!(graceful, "Stop signal received; draining.");
        state
            .draining
            .store(true, std::sync::atomic::Ordering::SeqCst);

        if let Some(cluster) = cluster {
            let _ = cluster.send(gpt_load_actors::cluster::Resign).await;
        }
        if graceful {
            state.drain(&handle).await;
        } else {
            handle.stop(false).await;
        }
    });
}

/// The cluster-wide start-up lock (`<prefix>lock:startup`), refreshed while held so a slow
/// migration keeps it and a crashed node frees it within [`StartupLock::TTL`].
struct StartupLock {
    store: Arc<dyn gpt_load_actors::cluster::Coordinator>,
    node: Arc<str>,
    keeper: Option<actix_rt::task::JoinHandle<()>>,
}

impl StartupLock {
    const NAME: &'static str = "startup";
    const TTL: Duration = Duration::from_secs(15);
    /// A start that cannot get the lock in this long gives up with an error.
    const WAIT: Duration = Duration::from_secs(600);

    async fn take(
        store: &Arc<dyn gpt_load_actors::cluster::Coordinator>,
        node: &Arc<str>,
    ) -> Result<Self, StartError> {
        let unheld = Self {
            store: Arc::clone(store),
            node: Arc::clone(node),
            keeper: None,
        };
        if store.kind() != "redis" {
            return Ok(unheld);
        }
        let deadline = Instant::now() + Self::WAIT;
        let mut logged = false;
        while !store.try_lock(Self::NAME, node, Self::TTL).await? {
            if Instant::now() >= deadline {
                return Err(StartError::Load {
                    what: "the cluster start-up lock",
                    reason: format!("another node held it for {} s", Self::WAIT.as_secs()),
                });
            }
            if !logged {
                tracing::info!("Another node is starting; waiting for it to finish.");
                logged = true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (keep_store, keep_node) = (Arc::clone(store), Arc::clone(node));
        let keeper = actix_rt::spawn(async move {
            loop {
                tokio::time::sleep(Self::TTL / 3).await;
                if let Err(err) = keep_store
                    .refresh_lock(Self::NAME, &keep_node, Self::TTL)
                    .await
                {
                    tracing::warn!(error = %err, "Could not refresh the start-up lock.");
                }
            }
        });
        Ok(Self {
            keeper: Some(keeper),
            ..unheld
        })
    }

    async fn release(mut self) {
        if let Some(keeper) = self.keeper.take() {
            keeper.abort();
            if let Err(err) = self.store.unlock(Self::NAME, &self.node).await {
                tracing::warn!(error = %err, "Could not release the start-up lock; it expires by itself.");
            }
        }
    }
}

/// Connects, loads and starts serving. `handle_signals` lets actix stop on SIGINT/SIGTERM (the
/// binary); tests stop the server themselves.
pub async fn start(config: AppConfig, handle_signals: bool) -> Result<RunningApp, StartError> {
    // awc's rustls connector needs a process-wide crypto provider; a second install is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = Arc::new(config);

    // Redis first: a cluster node that cannot reach it must not start at all.
    let coordinator = crate::store::connect(&config).await?;
    if coordinator.kind() == "redis" {
        tracing::info!(prefix = %config.redis_key_prefix, follower = config.is_slave, "Connected to Redis: cluster mode.");
    }
    let node_id: Arc<str> = uuid::Uuid::new_v4().to_string().into();
    // Nodes of a cluster start one at a time: the first on an empty database creates the schema
    // and the default settings, the others wait and find them there.
    let startup = StartupLock::take(&coordinator, &node_id).await?;
    let started = start_serialized(config, coordinator, node_id, handle_signals).await;
    startup.release().await;
    started
}

async fn start_serialized(
    config: Arc<AppConfig>,
    coordinator: Arc<dyn gpt_load_actors::cluster::Coordinator>,
    node_id: Arc<str>,
    handle_signals: bool,
) -> Result<RunningApp, StartError> {
    let db =
        Database::connect_with_timeout(&config.database, config.db_pool_size, config.db_timeout())
            .await?;
    tracing::info!(backend = db.backend(), database = ?config.database, "Connected to the database.");
    // Taken before the encryption check, so a `migrate-keys` run cannot change the data between
    // the check and serving; released on any failure so it does not block that very run.
    let lock = InstanceLock::acquire(&db, LockKind::Server, LockTiming::default()).await?;
    match start_locked(config, db, coordinator, node_id, handle_signals).await {
        Ok(mut app) => {
            app.lock = Some(lock);
            Ok(app)
        }
        Err(err) => {
            lock.release().await;
            Err(err)
        }
    }
}

async fn start_locked(
    config: Arc<AppConfig>,
    db: Database,
    coordinator: Arc<dyn gpt_load_actors::cluster::Coordinator>,
    node_id: Arc<str>,
    handle_signals: bool,
) -> Result<RunningApp, StartError> {
    let clustered = coordinator.kind() == "redis";
    let codec: KeyCodec = open_codec(&db, config.encryption_key.expose()).await?;
    tracing::info!(codec = ?codec, "Checked ENCRYPTION_KEY against the stored keys.");
    let repo = Repo::new(db, codec);
    let defaults: Vec<(String, String, String)> = SETTINGS
        .iter()
        .map(|def| {
            let value = match def.id {
                SettingKey::AppUrl => config.default_app_url(),
                SettingKey::ProxyKeys => config.auth_key.expose().to_string(),
                _ => def.default.to_string(),
            };
            (def.key.to_string(), value, def.description.to_string())
        })
        .collect();
    let inserted = repo.ensure_settings(&defaults).await?;
    if inserted > 0 {
        tracing::info!(count = inserted, "Inserted default system settings.");
    }

    let snapshot = Arc::new(ArcSwap::from_pointee(Snapshot::empty()));
    let registry = GroupRegistryActor::new(Arc::new(repo.clone()), Arc::clone(&snapshot)).start();
    let bus: Option<Arc<dyn gpt_load_actors::ports::HealthBus>> = clustered.then(|| {
        Arc::new(crate::cluster::sync::StoreHealthBus {
            store: Arc::clone(&coordinator),
            node: Arc::clone(&node_id),
        }) as Arc<dyn gpt_load_actors::ports::HealthBus>
    });
    let pool = KeyPoolActor::start(Arc::new(repo.clone()), bus);
    let load_err = |what: &'static str| move |reason: String| StartError::Load { what, reason };
    registry
        .send(gpt_load_actors::group_registry::Reload)
        .await
        .map_err(|e| load_err("groups")(e.to_string()))?
        .map_err(|e| load_err("groups")(e.to_string()))?;
    let keys = pool
        .load(None)
        .await
        .map_err(|e| load_err("keys")(e.to_string()))?;
    tracing::info!(
        groups = snapshot.load().groups.len(),
        keys,
        "Loaded groups and key pool."
    );

    let batcher = LogBatcherActor::new(
        Arc::new(repo.clone()),
        config.request_log_buffer_size,
        config.log_max_delay(&snapshot.load().settings),
    );
    let log_counters = batcher.counters();
    let log_queue = batcher.queue();
    let logs = batcher.start();
    let state = AppState {
        metrics: Arc::new(crate::metrics::Metrics::default()),
        logs,
        log_queue,
        log_counters,
        config: Arc::clone(&config),
        snapshot,
        pool,
        registry,
        repo,
        started_at: Instant::now(),
        tasks: if clustered {
            TaskRegistry::start().with_cluster(
                Arc::clone(&coordinator),
                Arc::clone(&node_id),
                config.leader_ttl(),
            )
        } else {
            TaskRegistry::start()
        },
        leadership: if clustered {
            gpt_load_actors::cluster::Leadership::new(gpt_load_actors::cluster::Role::Candidate)
        } else {
            gpt_load_actors::cluster::Leadership::single_node()
        },
        node_id: Arc::clone(&node_id),
        coordinator: Arc::clone(&coordinator),
        draining: Arc::default(),
        in_flight: Default::default(),
        admission: Admission::new(
            config.max_concurrent_requests,
            config.request_body_memory_bytes,
        ),
        stop_deadline: crate::proxy::cancel::StopDeadline::default(),
        proxy_identities: Arc::default(),
        login_throttle: Arc::new(crate::http::throttle::LoginThrottle::new(
            config.login_throttle.clone(),
        )),
    };
    // Subscribed before the election starts, so no event after this point is missed.
    crate::cluster::sync::spawn_listener(state.config_sync(), state.pool.clone());
    let cluster = clustered.then(|| {
        gpt_load_actors::cluster::ClusterActor::new(
            Arc::clone(&coordinator),
            state.leadership.clone(),
            gpt_load_actors::cluster::ElectionConfig {
                node: Arc::clone(&node_id),
                ttl: config.leader_ttl(),
                candidate: !config.is_slave,
            },
        )
        .start()
    });
    if clustered {
        crate::cluster::terms::spawn(
            Arc::clone(&coordinator),
            Arc::clone(&node_id),
            &state.leadership,
            config.leader_renew_interval(),
        );
    }
    crate::retention::spawn(
        state.repo.clone(),
        Arc::clone(&state.snapshot),
        &state.leadership,
    );
    let validator = crate::validation::background::spawn(
        state.repo.clone(),
        state.pool.clone(),
        Arc::clone(&state.snapshot),
        &state.leadership,
        config.validation_check_every,
        config.validation_minute,
    );
    let proxy_data = web::Data::new(state.proxy_state());
    let admin_data = web::Data::new(state.admin_state());
    let cors_config = Arc::clone(&config);
    let json_limit = config.max_request_body_bytes;
    let proxy_route = config.proxy_route.clone();
    let body_time = Duration::from_secs(config.server_read_timeout_secs);
    let in_flight = state.in_flight.clone();
    let mut server = HttpServer::new(move || {
        let in_flight = in_flight.clone();
        App::new()
            .app_data(proxy_data.clone())
            .app_data(admin_data.clone())
            .app_data(web::Data::new(UpstreamClients::new(proxy_route.clone())))
            .app_data(
                web::JsonConfig::default()
                    .limit(json_limit)
                    // GPT-Load binds JSON whatever the Content-Type, and scripts rely on it
                    // (`curl -d '{...}'` sends application/x-www-form-urlencoded).
                    .content_type_required(false)
                    .error_handler(json_error),
            )
            .app_data(
                web::QueryConfig::default()
                    .error_handler(|err, _| EdgeError::BadRequest(err.to_string()).into()),
            )
            .app_data(
                web::PathConfig::default()
                    .error_handler(|err, _| EdgeError::BadRequest(err.to_string()).into()),
            )
            .wrap(security_headers())
            .wrap(from_fn(move |req, next: Next<BoxBody>| {
                body_deadline(body_time, req, next)
            }))
            .wrap(from_fn(move |req, next: Next<BoxBody>| {
                track_in_flight(in_flight.clone(), req, next)
            }))
            .wrap(cors(&cors_config))
            .wrap(from_fn(access_log))
            .route("/health", web::get().to(admin::system::health))
            .route("/metrics", web::get().to(admin::prometheus::handler))
            .configure(admin::configure)
            // A static prefix: a `{group}` segment (or a `{tail:.*}` resource) compiles to a
            // regex that ran on every proxied request. The handler reads the group itself.
            .service(
                web::scope("/proxy")
                    // More specific than the proxy's catch-all, so it must come first.
                    .service(admin::routes::integration_route())
                    .default_service(web::to(proxy::proxy)),
            )
            .default_service(web::to(crate::http::spa::serve))
    })
    .keep_alive(Duration::from_secs(config.server_idle_timeout_secs))
    .client_request_timeout(Duration::from_secs(config.server_read_timeout_secs))
    .on_connect(crate::proxy::cancel::on_connect)
    // A graceful stop is `AppState::drain`, which waits for the requests in flight itself and
    // then stops at once; this only bounds a stop that comes from elsewhere.
    .shutdown_timeout(config.graceful_shutdown_timeout_secs + 1);
    if config.workers > 0 {
        server = server.workers(config.workers);
    }
    // Stop signals are ours (see `handle_stop_signals`), so draining starts before the stop.
    server = server.disable_signals();
    let bind_addr = format!("{}:{}", config.host, config.port);
    let server = server
        .bind(bind_addr.as_str())
        .map_err(|source| StartError::Bind {
            addr: bind_addr.clone(),
            source,
        })?;
    let addr = server
        .addrs()
        .first()
        .copied()
        .ok_or_else(|| StartError::Bind {
            addr: bind_addr,
            source: std::io::Error::other("no address bound"),
        })?;
    let server = server.run();
    let handle = server.handle();
    let server = actix_rt::spawn(server);
    if handle_signals {
        handle_stop_signals(handle.clone(), state.clone(), cluster.clone());
    }
    tracing::info!(%addr, node = %node_id, "Listening.");
    Ok(RunningApp {
        addr,
        handle,
        state,
        server,
        lock: None,
        validator,
        cluster,
    })
}

fn json_error(err: actix_web::error::JsonPayloadError, _req: &HttpRequest) -> actix_web::Error {
    use actix_web::error::JsonPayloadError;
    match err {
        JsonPayloadError::Overflow { limit }
        | JsonPayloadError::OverflowKnownLength { limit, .. } => {
            EdgeError::PayloadTooLarge { limit }.into()
        }
        JsonPayloadError::ContentType => {
            EdgeError::InvalidJson("Content-Type must be application/json".into()).into()
        }
        other => EdgeError::InvalidJson(format!("Invalid JSON: {other}")).into(),
    }
}

fn cors(config: &AppConfig) -> actix_cors::Cors {
    if !config.enable_cors {
        return actix_cors::Cors::default().allowed_origin_fn(|_, _| false);
    }
    let mut cors = actix_cors::Cors::default().max_age(86_400);
    if config.allowed_origins.iter().any(|o| o == "*") {
        cors = cors.allow_any_origin();
    } else {
        for origin in &config.allowed_origins {
            cors = cors.allowed_origin(origin);
        }
    }
    cors = if config.allowed_methods.iter().any(|m| m == "*") {
        cors.allow_any_method()
    } else {
        cors.allowed_methods(config.allowed_methods.iter().map(String::as_str))
    };
    cors = if config.allowed_headers.iter().any(|h| h == "*") {
        cors.allow_any_header()
    } else {
        cors.allowed_headers(config.allowed_headers.iter().map(String::as_str))
    };
    if config.allow_credentials {
        cors = cors.supports_credentials();
    }
    cors
}
