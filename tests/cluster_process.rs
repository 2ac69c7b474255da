//! A local cluster for one test: `scripts/cluster.sh up` (redis-server, N nodes of the
//! server binary, HAProxy in front) in a directory of its own, read from the `cluster.json`
//! the script writes, and taken down by the script (by PID) when dropped.
//!
//! The nodes run the binary cargo built for this test run (`CARGO_BIN_EXE_watch-together`,
//! through `WT_CLUSTER_BIN`), so the tests need no release build; they do need `haproxy`
//! and `redis-server` (scripts/test.sh installs both).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::PATIENCE;

/// Idle pooled connections to the balancer are dropped after this long: well under HAProxy's
/// keep-alive timeout (`timeout http-request`, 5 s, in deploy/haproxy.cfg). awc keeps them
/// 15 s by default, and a request sent on one HAProxy is just closing fails with
/// `Disconnected` (seen once in `tests/failover.rs`, right after a node's restart).
const BALANCER_KEEP_ALIVE: Duration = Duration::from_secs(2);

/// An HTTP client for the balancer, with a keep-alive pool like a browser's (HAProxy routes
/// each request on a connection by itself, which the tests rely on).
pub fn balancer_client() -> awc::Client {
    awc::Client::builder()
        .timeout(PATIENCE)
        .connector(awc::Connector::new().conn_keep_alive(BALANCER_KEEP_ALIVE))
        .finish()
}

/// One node as the script started it.
#[derive(Clone, Debug)]
pub struct Node {
    /// Its `--node-id` (`node1`...), also its `X-Served-By` and its server name in HAProxy.
    pub id: String,
    /// Its process id.
    pub pid: u32,
    /// `http://127.0.0.1:PORT`, the node itself (not through the balancer).
    #[allow(dead_code)] // for the ownership tests to come
    pub url: String,
}

/// How HAProxy sees one node (a row of `show stat`, backend `rooms`).
#[derive(Clone, Debug)]
pub struct NodeView {
    /// The node's id.
    pub id: String,
    /// `UP`, `DOWN`, or a transition such as `UP 1/2` (going down).
    pub status: String,
    /// How often HAProxy took the node out (UP to DOWN) since it started.
    pub times_down: u64,
}

/// A running local cluster.
pub struct Cluster {
    /// The balancer, `http://127.0.0.1:PORT`: where clients go.
    pub url: String,
    /// The Redis every node stores rooms in.
    #[allow(dead_code)] // for the ownership tests to come
    pub redis_url: String,
    /// The nodes, in order (`node1` first).
    pub nodes: Vec<Node>,
    /// HAProxy's process id.
    #[allow(dead_code)] // for the ownership tests to come
    pub haproxy_pid: u32,
    /// Redis's process id.
    #[allow(dead_code)] // for the ownership tests to come
    pub redis_pid: u32,
    /// The cluster's directory: cluster.json, logs, Redis's data, HAProxy's stats socket.
    pub dir: PathBuf,
}

/// What `cluster.json` says; a plain value, unlike [`Cluster`], which takes the cluster down
/// when dropped.
struct Layout {
    /// The balancer's URL.
    url: String,
    /// Redis's URL.
    redis_url: String,
    /// The nodes.
    nodes: Vec<Node>,
    /// HAProxy's pid.
    haproxy_pid: u32,
    /// Redis's pid.
    redis_pid: u32,
    /// The cluster's directory.
    dir: PathBuf,
}

/// Tells apart the clusters of one test process (the PID tells apart test processes).
static CLUSTERS: AtomicUsize = AtomicUsize::new(0);

/// The script, run with the cluster's directory and this build's binary.
fn script(dir: &Path, args: &[&str]) -> Output {
    Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/cluster.sh"))
        .args(args)
        .env("WT_CLUSTER_DIR", dir)
        .env("WT_CLUSTER_BIN", env!("CARGO_BIN_EXE_watch-together"))
        .output()
        .expect("run scripts/cluster.sh")
}

/// Panics with the script's output unless it succeeded.
fn check(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "scripts/cluster.sh {what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Cluster {
    /// Starts Redis, `nodes` nodes and HAProxy; returns once every node is healthy and
    /// HAProxy has seen each of them up (the script waits for that).
    pub fn up(nodes: usize) -> Cluster {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "cluster-{}-{}",
            std::process::id(),
            CLUSTERS.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let out = script(&dir, &["up", &nodes.to_string()]);
        check("up", &out);
        let l = Cluster::read(&dir);
        Cluster {
            url: l.url,
            redis_url: l.redis_url,
            nodes: l.nodes,
            haproxy_pid: l.haproxy_pid,
            redis_pid: l.redis_pid,
            dir: l.dir,
        }
    }

    /// Reads `cluster.json` from `dir`.
    fn read(dir: &Path) -> Layout {
        let text = std::fs::read_to_string(dir.join("cluster.json")).expect("cluster.json");
        let v: Value = serde_json::from_str(&text).expect("cluster.json is JSON");
        let text_of = |v: &Value| v.as_str().expect("a string").to_owned();
        let pid_of = |v: &Value| u32::try_from(v.as_u64().expect("a pid")).expect("pid fits");
        Layout {
            url: text_of(&v["url"]),
            redis_url: text_of(&v["redis_url"]),
            nodes: v["nodes"]
                .as_array()
                .expect("nodes")
                .iter()
                .map(|n| Node {
                    id: text_of(&n["id"]),
                    pid: pid_of(&n["pid"]),
                    url: text_of(&n["url"]),
                })
                .collect(),
            haproxy_pid: pid_of(&v["haproxy_pid"]),
            redis_pid: pid_of(&v["redis_pid"]),
            dir: PathBuf::from(text_of(&v["dir"])),
        }
    }

    /// The node named `id`.
    pub fn node(&self, id: &str) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .unwrap_or_else(|| panic!("no node {id}"))
    }

    /// Sends `signal` to node `id` by its PID.
    #[allow(dead_code)] // for the ownership tests to come
    pub fn signal(&self, id: &str, signal: libc::c_int) {
        let pid = libc::pid_t::try_from(self.node(id).pid).expect("pid fits pid_t");
        // SAFETY: `kill` has no memory effects. The pid is a node the script started and
        // checked; it is not our child, so a node that already died could in principle have
        // had its pid reused, which is why tests signal only nodes they know to be running.
        let rc = unsafe { libc::kill(pid, signal) };
        assert_eq!(rc, 0, "kill({pid}, {signal}) failed");
    }

    /// Kills node `id` (SIGKILL: a crash, nothing flushed).
    #[allow(dead_code)] // for the ownership tests to come
    pub fn kill_node(&self, id: &str) {
        self.signal(id, libc::SIGKILL);
    }

    /// Freezes node `id` (SIGSTOP): its sockets stay open but nothing answers.
    #[allow(dead_code)] // for the ownership tests to come
    pub fn freeze_node(&self, id: &str) {
        self.signal(id, libc::SIGSTOP);
    }

    /// Lets a frozen node `id` run again (SIGCONT).
    #[allow(dead_code)] // for the ownership tests to come
    pub fn thaw_node(&self, id: &str) {
        self.signal(id, libc::SIGCONT);
    }

    /// Starts node `id` again with the same flags on the same port (stopping it first if it
    /// still runs); returns once it is healthy and back in HAProxy's rotation.
    #[allow(dead_code)] // for the ownership tests to come
    pub fn restart_node(&mut self, id: &str) {
        let out = script(&self.dir, &["restart-node", id]);
        check(&format!("restart-node {id}"), &out);
        // Only the node's pid changed.
        self.nodes = Cluster::read(&self.dir).nodes;
    }

    /// HAProxy's view of every node, from its stats socket.
    pub fn haproxy_view(&self) -> Vec<NodeView> {
        let mut socket =
            UnixStream::connect(self.dir.join("haproxy.sock")).expect("HAProxy's stats socket");
        socket.write_all(b"show stat\n").expect("ask for stats");
        let mut csv = String::new();
        socket.read_to_string(&mut csv).expect("read stats");
        // The first line names the columns: "# pxname,svname,...".
        let mut lines = csv.lines();
        let header: Vec<&str> = lines
            .next()
            .expect("a header")
            .trim_start_matches("# ")
            .split(',')
            .collect();
        let column = |name: &str| {
            header
                .iter()
                .position(|h| *h == name)
                .unwrap_or_else(|| panic!("no column {name}"))
        };
        let (px, sv, status, chkdown) = (
            column("pxname"),
            column("svname"),
            column("status"),
            column("chkdown"),
        );
        lines
            .map(|l| l.split(',').collect::<Vec<_>>())
            .filter(|f| f.len() > chkdown && f[px] == "rooms")
            .filter(|f| f[sv] != "FRONTEND" && f[sv] != "BACKEND")
            .map(|f| NodeView {
                id: f[sv].to_owned(),
                status: f[status].to_owned(),
                times_down: f[chkdown].parse().unwrap_or(0),
            })
            .collect()
    }

    /// Waits (blocking) until HAProxy reports node `id` with a status starting with
    /// `status` (`"UP"`, `"DOWN"`); returns how long that took. Panics after PATIENCE.
    #[allow(dead_code)] // for the ownership tests to come
    pub fn wait_for_haproxy(&self, id: &str, status: &str) -> Duration {
        let began = Instant::now();
        loop {
            let view = self.haproxy_view();
            if view
                .iter()
                .any(|v| v.id == id && v.status.starts_with(status))
            {
                return began.elapsed();
            }
            assert!(
                began.elapsed() < PATIENCE,
                "HAProxy did not report {id} {status}: {view:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// A log of the cluster: `node1`..., `haproxy` or `redis`.
    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("{name}.log"))).unwrap_or_default()
    }

    /// Stops every process by PID (the script's `down`); dropping the cluster does it too.
    pub fn down(&self) {
        check("down", &script(&self.dir, &["down"]));
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // The logs say why a node or the balancer misbehaved; keep them and show the end.
            let names = self.nodes.iter().map(|n| n.id.clone());
            for name in names.chain(["haproxy".to_owned()]) {
                let log = self.log(&name);
                let tail: Vec<&str> = log.lines().rev().take(20).collect();
                eprintln!(
                    "--- {name}.log (last lines; all in {}):",
                    self.dir.display()
                );
                for line in tail.iter().rev() {
                    eprintln!("{line}");
                }
            }
            let _ = script(&self.dir, &["down"]);
        } else {
            let out = script(&self.dir, &["down"]);
            if out.status.success() {
                let _ = std::fs::remove_dir_all(&self.dir);
            } else {
                eprintln!(
                    "scripts/cluster.sh down failed; files kept in {}:\n{}",
                    self.dir.display(),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }
}
