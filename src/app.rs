//! Server assembly: shared state, socket options, start-up and graceful shutdown.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpServer};

use crate::access::Access;
use crate::cluster::Leases;
use crate::config::{Config, StoreChoice};
use crate::http;
use crate::http::guard::ConnectionSlot;
use crate::limits::per_ip::{IpRate, SessionCounter};
use crate::metrics::Metrics;
use crate::registry::{Rooms, RoomsConfig};
use crate::room::actor::RoomTiming;
use crate::room::link::QueueLimits;
use crate::store::Store;

/// State shared by every worker.
pub struct AppState {
    /// Flags and limits.
    pub config: Config,
    /// Host and origin rules.
    pub access: Access,
    /// All rooms.
    pub rooms: Arc<Rooms>,
    /// Counters and histograms.
    pub metrics: Arc<Metrics>,
    /// Open sessions per client IP.
    pub sessions_per_ip: SessionCounter,
    /// Open HTTP connections per client IP (not counted behind a trusted proxy).
    pub connections_per_ip: SessionCounter,
    /// WebSocket connection rate per client IP.
    pub connect_rate: IpRate,
    /// Room creation rate per client IP.
    pub room_rate: IpRate,
    /// The media library, if configured.
    pub media: Option<http::media::MediaLibrary>,
    /// Set once shutdown begins: new rooms and sockets are refused.
    shutting_down: AtomicBool,
    /// This node's name (`--node-id`, or host name and port).
    node_id: String,
}

impl AppState {
    /// State for node `node_id` of a server with `config`, with its store opened (the
    /// SQLite file created, or Redis reached).
    pub async fn new(config: Config, node_id: String) -> std::io::Result<Self> {
        let media = http::media::MediaLibrary::from_config(&config);
        let metrics = Arc::new(Metrics::new());
        let store = open_store(&config, &metrics).await?;
        tracing::info!(
            store = store.kind(),
            node = %node_id,
            "rooms are kept in the {} store",
            store.kind()
        );
        let leases = match &config.redis_url {
            Some(url) => Some(Arc::new(
                Leases::connect(url, &node_id, config.lease_ttl, REDIS_TIMEOUT)
                    .await
                    .map_err(|e| {
                        std::io::Error::other(format!(
                            "cannot reach Redis for room leases: {e} (see --redis-url)"
                        ))
                    })?,
            )),
            None => None,
        };
        let rooms = Rooms::new(RoomsConfig {
            max_rooms: config.max_rooms,
            max_per_creator: config.max_rooms_per_ip,
            settings: config.room_settings(),
            timing: room_timing(&config),
            store,
            leases,
            metrics: Arc::clone(&metrics),
        });
        Ok(AppState {
            rooms: Arc::new(rooms),
            metrics,
            access: Access::from_config(&config),
            sessions_per_ip: SessionCounter::new(config.max_sessions_per_ip),
            connections_per_ip: SessionCounter::new(config.max_connections_per_ip),
            connect_rate: IpRate::new(config.connects_per_ip_per_minute),
            room_rate: IpRate::new(config.rooms_per_ip_per_minute),
            media,
            config,
            shutting_down: AtomicBool::new(false),
            node_id,
        })
    }

    /// This node's name (`--node-id`, or host name and port).
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// Takes one event from `limiter` for `ip`, or refuses with 429 `rate_limited` (counted
    /// under `limit` in the `rejected_total` metric) and the explanation `why` gives.
    pub fn admit(
        &self,
        limiter: &IpRate,
        ip: std::net::IpAddr,
        limit: &str,
        why: impl FnOnce() -> String,
    ) -> Result<(), crate::error::ApiError> {
        if limiter.allow(ip, crate::clock::now_ms()) {
            Ok(())
        } else {
            self.metrics.reject(limit);
            Err(crate::error::ApiError::RateLimited(why()))
        }
    }

    /// Whether shutdown has begun.
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }
}

/// How long a Redis connection attempt or command for leases may take before it fails.
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);

/// Connections waiting to be accepted before the kernel refuses more: a thousand viewers
/// reconnecting at once after a restart is normal here.
const BACKLOG: i32 = 4096;

/// Timing rules for room actors.
fn room_timing(c: &Config) -> RoomTiming {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    RoomTiming {
        // The session's own heartbeat fires first; the room steps in only for a session
        // that is not being polled at all (its socket stopped draining).
        silence_evict_ms: ms(c.client_timeout + c.heartbeat_interval),
        idle_ttl_ms: ms(c.room_idle_ttl),
        unjoined_ttl_ms: ms(c.unjoined_room_ttl),
        room_ttl_ms: ms(c.room_ttl),
        queue: QueueLimits {
            max_lag_ms: ms(c.max_lag),
            max_bytes: c.outbox_bytes,
        },
    }
}

/// The store the configuration asks for; an error names the flag to fix.
async fn open_store(config: &Config, metrics: &Metrics) -> std::io::Result<Store> {
    let store_metrics = Arc::clone(&metrics.store);
    let opened = match config.store_choice() {
        StoreChoice::Memory => Ok(Store::memory()),
        StoreChoice::Sqlite(dir) => Store::sqlite(&dir, store_metrics),
        StoreChoice::Redis(url) => Store::redis(&url, store_metrics).await,
    };
    opened.map_err(|e| {
        std::io::Error::other(format!("{e} (see --data-dir, --ephemeral and --redis-url)"))
    })
}

/// A started server.
pub struct RunningServer {
    /// The address it listens on (with the real port when started on port 0).
    pub addr: SocketAddr,
    /// Shared state, for tests and shutdown.
    pub state: web::Data<AppState>,
    /// Stops the HTTP server.
    handle: ServerHandle,
    /// The server future; resolves when the server has stopped.
    server: actix_web::dev::Server,
}

impl RunningServer {
    /// A handle that can shut the server down from elsewhere.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            state: self.state.clone(),
            handle: self.handle.clone(),
        }
    }

    /// Runs until the server stops.
    pub async fn run(self) -> std::io::Result<()> {
        self.server.await
    }
}

/// Shuts a running server down gracefully.
#[derive(Clone)]
pub struct ShutdownHandle {
    /// Shared state: flag and rooms.
    state: web::Data<AppState>,
    /// The HTTP server.
    handle: ServerHandle,
}

impl ShutdownHandle {
    /// Refuses new rooms and sockets, tells every client `server_restarting` and closes its
    /// socket with 1012, has every room write its last state and waits for the store to
    /// commit it, then stops the HTTP server; each step within the shutdown timeout.
    pub async fn shutdown(&self) {
        if self.state.shutting_down.swap(true, Ordering::AcqRel) {
            return;
        }
        let timeout = self.state.config.shutdown_timeout;
        tracing::info!(rooms = self.state.rooms.len(), "shutting down");
        self.state.rooms.shutdown_all(timeout).await;
        self.handle.stop(true).await;
    }
}

/// Binds the configured address, opens the store and starts the server (workers, rooms,
/// routes, and in many-node mode the renewal of room leases).
pub async fn start(config: Config) -> std::io::Result<RunningServer> {
    crate::clock::init();
    // Bound first: the default node id includes the port, and leases need the node id.
    let listener = listen(&config.host, config.port)?;
    let addr = listener.local_addr()?;
    let node_id = config
        .node_id
        .clone()
        .unwrap_or_else(|| format!("{}:{}", host_name(), addr.port()));
    let workers = config.workers.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    });
    let shutdown_timeout = config.shutdown_timeout;
    let send_buffer = config.socket_send_buffer;
    let user_timeout = config.tcp_user_timeout;
    let state = web::Data::new(AppState::new(config, node_id).await?);
    let app_state = state.clone();
    let connections = (!app_state.config.trust_proxy).then(|| app_state.connections_per_ip.clone());
    let server = HttpServer::new(move || {
        App::new()
            .wrap(http::guard::Guard)
            .configure(|cfg| http::routes(cfg, app_state.clone()))
    })
    .workers(workers)
    // Signals are handled by `main`, which must tell clients before the server stops.
    .disable_signals()
    .shutdown_timeout(shutdown_timeout.as_secs().max(1))
    // Thousands of idle viewers per worker are normal here.
    .max_connections(25_000)
    .on_connect(move |conn, ext| {
        tune_socket(conn, send_buffer, user_timeout);
        if let Some(slot) = connections.as_ref().and_then(|c| count_connection(conn, c)) {
            ext.insert(slot);
        }
    })
    .listen(listener)?;
    let server = server.run();
    actix_web::rt::spawn(Arc::clone(&state.rooms).keep_leases());
    Ok(RunningServer {
        addr,
        state,
        handle: server.handle(),
        server,
    })
}

/// A listening socket on `host:port` (the first address the name resolves to), with the
/// backlog a reconnect storm needs.
fn listen(host: &str, port: u16) -> std::io::Result<std::net::TcpListener> {
    use std::net::ToSocketAddrs;
    let addr = (host, port).to_socket_addrs()?.next().ok_or_else(|| {
        std::io::Error::other(format!("{host:?} does not resolve to any address"))
    })?;
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    // A restarted server must not wait for the old one's sockets to leave TIME_WAIT.
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// The machine's host name, for the default node id.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// A TCP connection's place in its client's count (holding `None` past the cap: its
/// requests are then refused by `http::guard::admit`). Given back when actix drops the
/// connection.
fn count_connection(conn: &dyn std::any::Any, counter: &SessionCounter) -> Option<ConnectionSlot> {
    let stream = conn.downcast_ref::<actix_web::rt::net::TcpStream>()?;
    let peer = stream.peer_addr().ok()?;
    Some(ConnectionSlot(counter.acquire(peer.ip())))
}

/// Socket options that bound how long a client that stopped reading can hold resources.
fn tune_socket(conn: &dyn std::any::Any, send_buffer: usize, user_timeout: Duration) {
    let Some(stream) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() else {
        return;
    };
    let sock = socket2::SockRef::from(stream);
    if send_buffer > 0 {
        if let Err(e) = sock.set_send_buffer_size(send_buffer) {
            tracing::warn!(error = %e, "could not set SO_SNDBUF");
        }
    }
    if !user_timeout.is_zero() {
        if let Err(e) = sock.set_tcp_user_timeout(Some(user_timeout)) {
            tracing::warn!(error = %e, "could not set TCP_USER_TIMEOUT");
        }
    }
    // Control messages are tiny and latency-sensitive: never hold them back (Nagle).
    let _ = sock.set_nodelay(true);
}
