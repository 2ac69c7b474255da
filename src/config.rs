//! Command-line flags and environment variables: the address and every limit an operator can
//! tune. Fixed limits are constants beside the code they bound; docs/api.md lists both.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::room::state::RoomSettings;

/// watch-together: watch videos in sync with friends.
///
/// Every option can also be set through the environment variable named in brackets.
/// Durations take units: `500ms`, `10s`, `5m`.
#[derive(Parser, Debug, Clone)]
#[command(name = "watch-together", version, about, long_about = None)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "WT_HOST", default_value = "127.0.0.1")]
    pub host: String,

    /// Port to listen on (0 picks a free one; the chosen address is printed on stdout).
    #[arg(long, env = "WT_PORT", default_value_t = 8080)]
    pub port: u16,

    /// Worker threads (default: one per CPU core).
    #[arg(long, env = "WT_WORKERS")]
    pub workers: Option<usize>,

    /// Media library directory, served under /media/ and listed at /api/media
    /// (default: ./media when it exists).
    #[arg(long, env = "WT_MEDIA_DIR")]
    pub media_dir: Option<PathBuf>,

    /// Serve the browser app from this directory instead of the copy embedded in the binary
    /// (for frontend development).
    #[arg(long, env = "WT_FRONTEND_DIR")]
    pub frontend_dir: Option<PathBuf>,

    /// Where rooms are stored (an SQLite file in it), so a restart or a crash loses none;
    /// created if missing. `none` keeps rooms in memory only (as --ephemeral does).
    #[arg(long, env = "WT_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// This node's name among several sharing one Redis (default: host name and port): it
    /// names the node in room leases, `/api/health` and the `X-Served-By` header of every
    /// response. Must be unique among the nodes (a node takes over at once the leases an
    /// earlier process with its id left behind); letters, digits and `.:_-` only.
    #[arg(long, env = "WT_NODE_ID", value_parser = parse_node_id)]
    pub node_id: Option<String>,

    /// With --redis-url: how long a node's lease on a room lives without renewal (renewed
    /// every third of it). A dead node's rooms move to the others within about this long.
    #[arg(long, env = "WT_LEASE_TTL", value_parser = humantime::parse_duration, default_value = "3s")]
    pub lease_ttl: Duration,

    /// Keep rooms in memory only: a restart loses them (for tests and throwaway servers).
    #[arg(long, env = "WT_EPHEMERAL")]
    pub ephemeral: bool,

    /// Store rooms in Redis at this URL (`redis://HOST:PORT/DB`) instead of the data
    /// directory: the shared store several nodes need.
    #[arg(long, env = "WT_REDIS_URL")]
    pub redis_url: Option<String>,

    /// A stored room with no members for this long is deleted (its link then gives 404).
    #[arg(long, env = "WT_ROOM_TTL", value_parser = humantime::parse_duration, default_value = "24h")]
    pub room_ttl: Duration,

    /// Log as JSON lines instead of human-readable text.
    #[arg(long, env = "WT_LOG_JSON")]
    pub log_json: bool,

    /// Most rooms the server holds at once.
    #[arg(long, env = "WT_MAX_ROOMS", default_value_t = 10_000)]
    pub max_rooms: usize,

    /// Most participants in one room.
    #[arg(long, env = "WT_MAX_MEMBERS", default_value_t = 5_000)]
    pub max_members: usize,

    /// An empty room is unloaded from memory after this long (it stays stored until
    /// --room-ttl, and is loaded again when someone asks for it).
    #[arg(long, env = "WT_ROOM_IDLE_TTL", value_parser = humantime::parse_duration, default_value = "10m")]
    pub room_idle_ttl: Duration,

    /// A room nobody has joined yet is removed after this long.
    #[arg(long, env = "WT_UNJOINED_ROOM_TTL", value_parser = humantime::parse_duration, default_value = "60s")]
    pub unjoined_room_ttl: Duration,

    /// Chat messages kept per room and replayed to newcomers.
    #[arg(long, env = "WT_CHAT_HISTORY", default_value_t = 100)]
    pub chat_history: usize,

    /// Most videos in a room's queue.
    #[arg(long, env = "WT_MAX_QUEUE", default_value_t = 200)]
    pub max_queue: usize,

    /// Most bytes of chat text kept per room (the oldest messages go first beyond it), so
    /// the history every newcomer's `welcome` carries stays small.
    #[arg(long, env = "WT_CHAT_HISTORY_BYTES", default_value_t = 64 * 1024)]
    pub chat_history_bytes: usize,

    /// Chat messages a participant may send in a burst.
    #[arg(long, env = "WT_CHAT_BURST", default_value_t = 5)]
    pub chat_burst: u32,

    /// Chat messages per second a participant may sustain.
    #[arg(long, env = "WT_CHAT_RATE", default_value_t = 1.0)]
    pub chat_rate: f64,

    /// How long a participant whose connection closed keeps its identity (resume) and, if
    /// host, the host role.
    #[arg(long, env = "WT_HOST_GRACE", value_parser = humantime::parse_duration, default_value = "10s")]
    pub host_grace: Duration,

    /// Rooms with more members than this batch joins/leaves into presence and only announce
    /// significant status changes.
    #[arg(long, env = "WT_PRESENCE_THRESHOLD", default_value_t = 50)]
    pub presence_threshold: usize,

    /// Interval of the server's heartbeat: a client silent this long gets a WebSocket ping
    /// (one heard from more recently is plainly alive and gets none).
    #[arg(long, env = "WT_HEARTBEAT_INTERVAL", value_parser = humantime::parse_duration, default_value = "5s")]
    pub heartbeat_interval: Duration,

    /// A connection silent for this long is closed and its participant removed (checked at
    /// each heartbeat, so it takes effect up to one heartbeat interval later).
    #[arg(long, env = "WT_CLIENT_TIMEOUT", value_parser = humantime::parse_duration, default_value = "15s")]
    pub client_timeout: Duration,

    /// A connection that has not sent `join` within this time is closed (1008).
    #[arg(long, env = "WT_JOIN_TIMEOUT", value_parser = humantime::parse_duration, default_value = "10s")]
    pub join_timeout: Duration,

    /// Largest accepted WebSocket frame in bytes; larger frames close the connection (1009).
    #[arg(long, env = "WT_MAX_FRAME_BYTES", default_value_t = 16 * 1024)]
    pub max_frame_bytes: usize,

    /// Messages per second a session may sustain.
    #[arg(long, env = "WT_MSG_RATE", default_value_t = 20.0)]
    pub msg_rate: f64,

    /// Messages a session may send in a burst.
    #[arg(long, env = "WT_MSG_BURST", default_value_t = 40)]
    pub msg_burst: u32,

    /// A member whose oldest undelivered frame has waited this long cannot keep up and is
    /// evicted (4000). A burst that a reading client takes in does not count.
    #[arg(long, env = "WT_MAX_LAG", value_parser = humantime::parse_duration, default_value = "5s")]
    pub max_lag: Duration,

    /// Most bytes queued for one member; a member whose queue grows past this is evicted at
    /// once (4000).
    #[arg(long, env = "WT_OUTBOX_BYTES", default_value_t = 1024 * 1024)]
    pub outbox_bytes: usize,

    /// Kernel send buffer per connection in bytes (0: the kernel's autotuning). Small buffers
    /// make a stalled reader show up quickly instead of after megabytes.
    #[arg(long, env = "WT_SOCKET_SEND_BUFFER", default_value_t = 64 * 1024)]
    pub socket_send_buffer: usize,

    /// The kernel aborts a connection whose sent data stays unacknowledged (or whose peer
    /// keeps a zero window) this long, freeing sessions of readers that froze.
    #[arg(long, env = "WT_TCP_USER_TIMEOUT", value_parser = humantime::parse_duration, default_value = "30s")]
    pub tcp_user_timeout: Duration,

    /// Open WebSocket sessions allowed per client IP (0: unlimited).
    #[arg(long, env = "WT_MAX_SESSIONS_PER_IP", default_value_t = 50)]
    pub max_sessions_per_ip: usize,

    /// WebSocket connections a client IP may open per minute (0: unlimited).
    #[arg(long, env = "WT_CONNECTS_PER_IP_PER_MINUTE", default_value_t = 120)]
    pub connects_per_ip_per_minute: u32,

    /// Rooms a client IP may create per minute (0: unlimited).
    #[arg(long, env = "WT_ROOMS_PER_IP_PER_MINUTE", default_value_t = 10)]
    pub rooms_per_ip_per_minute: u32,

    /// Rooms created by one client IP that may exist at once (0: unlimited).
    #[arg(long, env = "WT_MAX_ROOMS_PER_IP", default_value_t = 20)]
    pub max_rooms_per_ip: usize,

    /// Open HTTP connections (WebSockets included) per client IP; requests on connections
    /// beyond it get 429 and the connection is closed (0: unlimited; not applied with
    /// --trust-proxy, where every connection comes from the proxy).
    #[arg(long, env = "WT_MAX_CONNECTIONS_PER_IP", default_value_t = 100)]
    pub max_connections_per_ip: usize,

    /// A request body must arrive within this time (408 otherwise).
    #[arg(long, env = "WT_BODY_TIMEOUT", value_parser = humantime::parse_duration, default_value = "5s")]
    pub body_timeout: Duration,

    /// Take the client IP from the last X-Forwarded-For entry (only behind a reverse proxy
    /// you run; otherwise clients could pick their own IP).
    #[arg(long, env = "WT_TRUST_PROXY")]
    pub trust_proxy: bool,

    /// Origins allowed to open WebSockets and create rooms, comma-separated, e.g.
    /// `https://watch.example` (default: only the server's own origin; `*` allows any).
    #[arg(long, env = "WT_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,

    /// Host names this server answers to, comma-separated, e.g. `watch.example` (IP
    /// addresses, `localhost` and the hosts of --allowed-origins always work; `*` allows
    /// any). Other names get 403: a page that points its own name at this server (DNS
    /// rebinding) cannot use a visitor's browser against it.
    #[arg(long, env = "WT_ALLOWED_HOSTS", value_delimiter = ',')]
    pub allowed_hosts: Vec<String>,

    /// Refuse `url` videos whose host is a loopback, private or link-local address or a
    /// local-only name (`localhost`, `*.local`): every viewer's browser fetches the video,
    /// and such a URL makes it probe its own network.
    #[arg(long, env = "WT_REFUSE_PRIVATE_URLS")]
    pub refuse_private_urls: bool,

    /// On shutdown, how long to wait for connections to close after telling clients.
    #[arg(long, env = "WT_SHUTDOWN_TIMEOUT", value_parser = humantime::parse_duration, default_value = "5s")]
    pub shutdown_timeout: Duration,
}

impl Config {
    /// The defaults, as if started with no flags (tests adjust fields from here).
    pub fn defaults() -> Self {
        Config::parse_from(["watch-together"])
    }

    /// Which store the flags ask for.
    pub fn store_choice(&self) -> StoreChoice {
        if let Some(url) = &self.redis_url {
            StoreChoice::Redis(url.clone())
        } else if self.ephemeral || self.data_dir.as_os_str() == "none" {
            StoreChoice::Memory
        } else {
            StoreChoice::Sqlite(self.data_dir.clone())
        }
    }

    /// The per-room rules derived from the flags.
    pub fn room_settings(&self) -> RoomSettings {
        RoomSettings {
            chat_history: self.chat_history,
            chat_history_bytes: self.chat_history_bytes,
            max_queue: self.max_queue,
            refuse_private_urls: self.refuse_private_urls,
            max_members: self.max_members,
            grace_ms: self.host_grace.as_secs_f64() * 1000.0,
            presence_threshold: self.presence_threshold,
            chat_burst: self.chat_burst,
            chat_per_second: self.chat_rate,
        }
    }
}

/// A node id: 1 to 64 letters, digits or `.:_-`, so that it can sit in a lease's value and
/// a header as it is.
fn parse_node_id(s: &str) -> Result<String, String> {
    let ok = (1..=64).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '_' | '-'));
    if ok {
        Ok(s.to_owned())
    } else {
        Err("a node id is 1 to 64 letters, digits or . : _ -".to_owned())
    }
}

/// Where rooms are kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreChoice {
    /// Nowhere: memory only.
    Memory,
    /// An SQLite file in this directory.
    Sqlite(PathBuf),
    /// Redis at this URL.
    Redis(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_documentation() {
        let c = Config::defaults();
        assert_eq!((c.host.as_str(), c.port), ("127.0.0.1", 8080));
        assert_eq!(c.host_grace, Duration::from_secs(10));
        assert_eq!(c.max_frame_bytes, 16_384);
        assert_eq!(c.chat_history, 100);
        assert_eq!(c.heartbeat_interval, Duration::from_secs(5));
        assert_eq!(c.client_timeout, Duration::from_secs(15));
        assert!(c.allowed_origins.is_empty());
        assert_eq!(c.store_choice(), StoreChoice::Sqlite("./data".into()));
        assert_eq!(c.room_ttl, Duration::from_secs(24 * 3600));
    }

    #[test]
    fn the_store_is_redis_when_given_else_sqlite_unless_ephemeral() {
        let parse = |args: &[&str]| {
            Config::parse_from(std::iter::once("watch-together").chain(args.iter().copied()))
                .store_choice()
        };
        assert_eq!(parse(&["--ephemeral"]), StoreChoice::Memory);
        assert_eq!(parse(&["--data-dir", "none"]), StoreChoice::Memory);
        assert_eq!(
            parse(&["--data-dir", "/var/lib/wt"]),
            StoreChoice::Sqlite("/var/lib/wt".into())
        );
        assert_eq!(
            parse(&["--redis-url", "redis://127.0.0.1:6379/0", "--ephemeral"]),
            StoreChoice::Redis("redis://127.0.0.1:6379/0".into())
        );
    }

    #[test]
    fn a_node_id_is_one_word_that_fits_a_lease() {
        let parse = |id: &str| Config::try_parse_from(["watch-together", "--node-id", id]);
        assert_eq!(
            parse("node-1.eu:8080").unwrap().node_id.as_deref(),
            Some("node-1.eu:8080")
        );
        for bad in ["", "two words", "a\nb", &"x".repeat(65)] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn flags_parse_durations_and_lists() {
        let c = Config::parse_from([
            "watch-together",
            "--host-grace",
            "250ms",
            "--allowed-origins",
            "http://a.test,http://b.test",
        ]);
        assert_eq!(c.host_grace, Duration::from_millis(250));
        assert_eq!(c.allowed_origins, ["http://a.test", "http://b.test"]);
    }
}
