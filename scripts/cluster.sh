#!/usr/bin/env bash
# A local watch-together cluster: one redis-server, N nodes of the server sharing it, and
# HAProxy in front routing each room to one node (deploy/haproxy.cfg, docs/cluster.md).
#
#   scripts/cluster.sh up [N] [-- NODE_FLAG...]  start Redis, N nodes (default 3) and HAProxy,
#                                                wait until all of them serve; prints the
#                                                balancer's URL
#   scripts/cluster.sh status                    one line per process: alive or not
#   scripts/cluster.sh down                      stop what `up` started, by PID; keeps the logs
#   scripts/cluster.sh restart-node NAME         start node NAME (node1..N) again with the same
#                                                flags on the same port (stopping it first if
#                                                it still runs)
#
# Flags after `--` are added to every node's command line (e.g. `-- --host-grace 2s`).
# Everything lives in $WT_CLUSTER_DIR (default target/cluster): cluster.json (the balancer's
# URL, each process's PID and URL), the logs, PID files and Redis's data. Give each cluster
# its own directory to run several at once (the tests do). $WT_CLUSTER_BIN runs another
# build of the server (default target/release/watch-together, built when missing).
set -euo pipefail

# HAProxy and redis-server live in /usr/sbin and /usr/bin on Debian; the first is not on
# every user's PATH.
PATH=$PATH:/usr/sbin
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# Absolute, so cluster.json and the processes' command lines name it the same from anywhere.
DIR=$(realpath -m "${WT_CLUSTER_DIR:-$ROOT/target/cluster}")
DEFAULT_BIN=$ROOT/target/release/watch-together
BIN=${WT_CLUSTER_BIN:-$DEFAULT_BIN}
TEMPLATE=$ROOT/deploy/haproxy.cfg

# Seconds to wait for a process to become ready: generous because the tests start clusters
# on a busy 2-core machine, yet finite so a hang shows up.
READY_TIMEOUT=30
# Seconds a node may take over a graceful shutdown (each of its steps is bounded by
# --shutdown-timeout, 5 s) before it is killed.
STOP_TIMEOUT=20
# Attempts at a free port for Redis and HAProxy, which cannot pick their own: another
# process may take a port between our probe and their bind.
PORT_ATTEMPTS=3

# The flags every node gets besides its port, Redis and name. Behind the balancer every
# client's address comes from X-Forwarded-For (--trust-proxy); on one machine every client is
# 127.0.0.1 anyway, so the per-client limits are lifted or a test or bench would hit them.
NODE_FLAGS=(
    --trust-proxy
    --max-sessions-per-ip 0
    --connects-per-ip-per-minute 0
    --rooms-per-ip-per-minute 0
    --max-rooms-per-ip 0
    --max-connections-per-ip 0
)

say() { printf 'cluster: %s\n' "$*" >&2; }
die() {
    say "$*"
    exit 1
}

# Prints the end of a log, for a process that failed to start.
show_log() {
    local file=$1
    if [ -s "$file" ]; then
        printf -- '--- last lines of %s:\n' "$file" >&2
        tail -n 25 "$file" >&2
        printf -- '---\n' >&2
    fi
}

# Microseconds since the epoch, for deadlines.
now_us() { echo "${EPOCHREALTIME/./}"; }

# Polls `$@` every 0.1 s until it succeeds; fails after `$1` seconds, or at once when the
# process `$2` (a PID, or "" for none) has died meanwhile.
wait_for() {
    local deadline=$(($(now_us) + $1 * 1000000)) pid=$2
    shift 2
    until "$@"; do
        if [ -n "$pid" ] && ! pid_alive "$pid"; then
            return 2
        fi
        if [ "$(now_us)" -ge "$deadline" ]; then
            return 1
        fi
        sleep 0.1
    done
}

# A process is alive if it exists and is not a zombie: once `up` has exited, its children
# are orphans, and the init of some machines (this VM's among them) leaves them unreaped.
pid_alive() {
    local pid=$1 state
    [ -r "/proc/$pid/stat" ] || return 1
    state=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1) || return 1
    [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

# Whether PID is alive and is the process we started: its command line (arguments joined
# by spaces, with one after the last) contains one of the strings after the PID. This guards
# against signalling a stranger that got a recycled PID.
is_ours() {
    local pid=$1 cmdline expect
    shift
    pid_alive "$pid" || return 1
    cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) " || return 1
    for expect in "$@"; do
        [[ "$cmdline" != *"$expect"* ]] || return 0
    done
    return 1
}

# A loopback port free right now (the kernel's pick for port 0).
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Prints the "status" of a node's /api/health ("" when it does not answer within 1 s).
# Proxies from the environment are ignored: these are loopback addresses.
health_status() {
    python3 - "$1" <<'PY'
import json, sys, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
try:
    with opener.open(sys.argv[1] + "/api/health", timeout=1) as response:
        print(json.load(response).get("status", ""))
except Exception:
    print("")
PY
}

health_is_ok() { [ "$(health_status "$1")" = ok ]; }

# HAProxy's view of each node, from its stats socket: tab-separated "NAME STATUS CHECK"
# lines, e.g. "node1 UP L7OK" or "node2 DOWN 1/2 L7OK" (nothing when HAProxy does not
# answer).
haproxy_servers() {
    python3 - "$DIR/haproxy.sock" <<'PY'
import csv, io, socket, sys
try:
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(1)
    s.connect(sys.argv[1])
    s.sendall(b"show stat\n")
    data = b""
    while chunk := s.recv(65536):
        data += chunk
except OSError:
    sys.exit(0)
for row in csv.DictReader(io.StringIO(data.decode().lstrip("# "))):
    if row["pxname"] == "rooms" and row["svname"] not in ("FRONTEND", "BACKEND"):
        print(row["svname"], row["status"], row["check_status"] or "-", sep="\t")
PY
}

# True once HAProxy has checked every node of the cluster and found it up.
haproxy_sees_all_up() {
    local up
    up=$(haproxy_servers | awk -F'\t' '$2 == "UP" && $3 == "L7OK"' | wc -l)
    [ "$up" -eq "$(node_count)" ]
}

haproxy_sees_up() {
    haproxy_servers | awk -F'\t' -v n="$1" '$1 == n && $2 == "UP" && $3 == "L7OK" {found = 1} END {exit !found}'
}

node_count() { cat "$DIR/nodes"; }
redis_url() { printf 'redis://127.0.0.1:%s/0' "$(cat "$DIR/redis.port")"; }

# Whether a PID is the cluster's Redis, node or HAProxy (see is_ours). Redis rewrites its
# command line to "redis-server ADDRESS" once started.
is_our_redis() {
    local port
    port=$(cat "$DIR/redis.port")
    is_ours "$1" "redis-server 127.0.0.1:$port " "--port $port "
}
is_our_node() { is_ours "$1" "--redis-url $(redis_url) --node-id $2 "; }
is_our_haproxy() { is_ours "$1" "-f $DIR/haproxy.cfg "; }

# Prints the lines of `$2` that start with `$1` (none is not an error).
pick() { grep "^$1" <<<"$2" || true; }

# Writes cluster.json from the state files, atomically (a reader never sees half of it).
write_json() {
    python3 - "$DIR" <<'PY'
import json, os, sys
d = sys.argv[1]
def read(name):
    with open(os.path.join(d, name)) as f:
        return f.read().strip()
nodes = []
for i in range(1, int(read("nodes")) + 1):
    name = f"node{i}"
    nodes.append({"id": name, "pid": int(read(f"{name}.pid")),
                  "url": f"http://127.0.0.1:{read(name + '.port')}"})
cluster = {
    "url": f"http://127.0.0.1:{read('haproxy.port')}",
    "redis_url": f"redis://127.0.0.1:{read('redis.port')}/0",
    "nodes": nodes,
    "haproxy_pid": int(read("haproxy.pid")),
    "redis_pid": int(read("redis.pid")),
    "dir": d,
}
tmp = os.path.join(d, "cluster.json.tmp")
with open(tmp, "w") as f:
    json.dump(cluster, f, indent=2)
    f.write("\n")
os.replace(tmp, os.path.join(d, "cluster.json"))
PY
}

# Every process the state files name as ours and still running, as "NAME PID" lines.
running() {
    local pid i
    if [ -f "$DIR/haproxy.pid" ]; then
        pid=$(cat "$DIR/haproxy.pid")
        if is_our_haproxy "$pid"; then echo "haproxy $pid"; fi
    fi
    if [ -f "$DIR/nodes" ] && [ -f "$DIR/redis.port" ]; then
        for i in $(seq 1 "$(node_count)"); do
            [ -f "$DIR/node$i.pid" ] || continue
            pid=$(cat "$DIR/node$i.pid")
            if is_our_node "$pid" "node$i"; then echo "node$i $pid"; fi
        done
    fi
    if [ -f "$DIR/redis.pid" ] && [ -f "$DIR/redis.port" ]; then
        pid=$(cat "$DIR/redis.pid")
        if is_our_redis "$pid"; then echo "redis $pid"; fi
    fi
}

# Stops processes given as "NAME PID" lines: SIGTERM to all of them at once (a node's
# graceful shutdown writes its rooms to Redis and tells its clients), SIGKILL to any still
# there after the bound.
stop_processes() {
    local name pid left deadline
    local -a pids=()
    while read -r name pid; do
        [ -n "$pid" ] || continue
        say "stopping $name (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        pids+=("$pid")
    done
    [ "${#pids[@]}" -gt 0 ] || return 0
    deadline=$(($(now_us) + STOP_TIMEOUT * 1000000))
    while :; do
        left=()
        for pid in "${pids[@]}"; do
            if pid_alive "$pid"; then left+=("$pid"); fi
        done
        [ "${#left[@]}" -gt 0 ] || return 0
        if [ "$(now_us)" -ge "$deadline" ]; then
            say "still running after $STOP_TIMEOUT s, killing: ${left[*]}"
            kill -KILL "${left[@]}" 2>/dev/null || true
            return 0
        fi
        sleep 0.1
    done
}

# Stops everything in order: the balancer (no new traffic), the nodes (they flush their
# rooms to Redis), then Redis (it writes its AOF on SIGTERM).
stop_all() {
    local all
    all=$(running)
    pick 'haproxy ' "$all" | stop_processes
    pick node "$all" | stop_processes
    pick 'redis ' "$all" | stop_processes
    rm -f "$DIR"/*.pid "$DIR/cluster.json" "$DIR/haproxy.sock"
}

start_redis() {
    local attempt port pid
    mkdir -p "$DIR/redis"
    for attempt in $(seq 1 "$PORT_ATTEMPTS"); do
        port=$(free_port)
        echo "$port" >"$DIR/redis.port"
        # AOF with fsync every second, the Redis default: a Redis crash loses about the
        # last second (docs/architecture.md, Durability). No RDB snapshots.
        redis-server --port "$port" --bind 127.0.0.1 --dir "$DIR/redis" \
            --appendonly yes --appendfsync everysec --save "" --daemonize no \
            </dev/null >>"$DIR/redis.log" 2>&1 &
        pid=$!
        echo "$pid" >"$DIR/redis.pid"
        if wait_for "$READY_TIMEOUT" "$pid" redis_answers "$port"; then
            say "redis on port $port (pid $pid)"
            return 0
        fi
        if ! pid_alive "$pid" && grep -q 'Address already in use' "$DIR/redis.log"; then
            say "port $port was taken meanwhile; trying another (attempt $attempt)"
            continue
        fi
        show_log "$DIR/redis.log"
        die "redis-server did not answer PING on port $port"
    done
    die "no free port for redis-server after $PORT_ATTEMPTS attempts"
}

redis_answers() { [ "$(redis-cli -p "$1" ping 2>/dev/null)" = PONG ]; }

# Starts node NAME with its saved flags on PORT (0: a free one, read from its stdout line).
start_node() {
    local name=$1 port=$2 pid line url
    local -a flags
    mapfile -t flags <"$DIR/$name.args"
    printf -- '--- %s: %s starting\n' "$(date -u +%FT%TZ)" "$name" >>"$DIR/$name.log"
    RUST_LOG=${RUST_LOG:-info} "$BIN" --host 127.0.0.1 --port "$port" "${flags[@]}" \
        </dev/null >"$DIR/$name.out" 2>>"$DIR/$name.log" &
    pid=$!
    echo "$pid" >"$DIR/$name.pid"
    # The binary's one stdout line gives its address: with port 0 no probe can race it.
    if ! wait_for "$READY_TIMEOUT" "$pid" grep -q '^watch-together listening on ' "$DIR/$name.out"; then
        show_log "$DIR/$name.log"
        die "$name (pid $pid) did not start; its log is $DIR/$name.log"
    fi
    line=$(head -n 1 "$DIR/$name.out")
    url=${line#watch-together listening on }
    echo "${url##*:}" >"$DIR/$name.port"
    if ! wait_for "$READY_TIMEOUT" "$pid" health_is_ok "$url"; then
        show_log "$DIR/$name.log"
        die "$name at $url did not report \"ok\" on /api/health (last: \"$(health_status "$url")\")"
    fi
    say "$name at $url (pid $pid)"
}

# Writes the HAProxy configuration from the template and the local extras (stats socket).
write_haproxy_config() {
    local port=$1 i line
    [ -f "$TEMPLATE" ] || die "missing $TEMPLATE"
    while IFS= read -r line; do
        # The placeholder line alone, not the comments that name it.
        case ${line#"${line%%[! ]*}"} in
        @NODES@)
            for i in $(seq 1 "$(node_count)"); do
                printf '    server node%s 127.0.0.1:%s id %s check\n' \
                    "$i" "$(cat "$DIR/node$i.port")" "$i"
            done
            ;;
        @NODES_TRACKING@)
            for i in $(seq 1 "$(node_count)"); do
                printf '    server node%s 127.0.0.1:%s track rooms/node%s\n' \
                    "$i" "$(cat "$DIR/node$i.port")" "$i"
            done
            ;;
        *) printf '%s\n' "${line//@BIND@/127.0.0.1:$port}" ;;
        esac
    done <"$TEMPLATE" >"$DIR/haproxy.cfg"
    # Only for this local cluster: the stats socket that `status`, the tests and an
    # operator (`echo 'show stat' | socat - UNIX:...`) read the nodes' states from.
    printf 'global\n    stats socket %s mode 600 level admin\n' "$DIR/haproxy.sock" \
        >"$DIR/haproxy-local.cfg"
}

balancer_serves() { health_is_ok "http://127.0.0.1:$1"; }

start_haproxy() {
    local attempt port pid
    # A Unix socket path must fit in 108 bytes.
    [ "${#DIR}" -lt 90 ] || die "WT_CLUSTER_DIR is too long for HAProxy's stats socket: $DIR"
    for attempt in $(seq 1 "$PORT_ATTEMPTS"); do
        port=$(free_port)
        echo "$port" >"$DIR/haproxy.port"
        write_haproxy_config "$port"
        if ! haproxy -c -f "$DIR/haproxy.cfg" -f "$DIR/haproxy-local.cfg" >>"$DIR/haproxy.log" 2>&1; then
            show_log "$DIR/haproxy.log"
            die "HAProxy refuses the configuration $DIR/haproxy.cfg"
        fi
        # -db: in the foreground, so $! is HAProxy itself and its log is its stdout.
        haproxy -db -f "$DIR/haproxy.cfg" -f "$DIR/haproxy-local.cfg" \
            </dev/null >>"$DIR/haproxy.log" 2>&1 &
        pid=$!
        echo "$pid" >"$DIR/haproxy.pid"
        # Ready when its checks found every node up and a request through it is answered.
        if wait_for "$READY_TIMEOUT" "$pid" haproxy_sees_all_up &&
            wait_for "$READY_TIMEOUT" "$pid" balancer_serves "$port"; then
            say "haproxy on port $port (pid $pid)"
            return 0
        fi
        if ! pid_alive "$pid" && grep -q 'cannot bind socket' "$DIR/haproxy.log"; then
            say "port $port was taken meanwhile; trying another (attempt $attempt)"
            continue
        fi
        show_log "$DIR/haproxy.log"
        haproxy_servers >&2 || true
        die "HAProxy on port $port did not see every node up"
    done
    die "no free port for HAProxy after $PORT_ATTEMPTS attempts"
}

require_tools() {
    local tool missing=()
    for tool in redis-server redis-cli haproxy python3; do
        command -v "$tool" >/dev/null || missing+=("$tool")
    done
    [ "${#missing[@]}" -eq 0 ] ||
        die "missing ${missing[*]} (Debian: apt-get install redis-server haproxy python3)"
    if [ ! -x "$BIN" ]; then
        [ "$BIN" = "$DEFAULT_BIN" ] || die "WT_CLUSTER_BIN=$BIN is not an executable"
        say "$BIN is missing: building it (cargo build --release, a few minutes)"
        (cd "$ROOT" && cargo build --release) || die "cargo build --release failed"
    fi
}

cmd_up() {
    local count=3 i
    if [ $# -gt 0 ] && [ "$1" != -- ]; then
        count=$1
        shift
    fi
    [[ "$count" =~ ^[1-9][0-9]?$ ]] || die "up: N must be a number from 1 to 99, not '$count'"
    if [ $# -gt 0 ]; then
        [ "$1" = -- ] || die "up: unexpected '$1' (node flags go after --)"
        shift
    fi
    local existing
    existing=$(running)
    if [ -n "$existing" ]; then
        say "a cluster is already up in $DIR:"
        sed 's/^/  /' <<<"$existing" >&2
        die "stop it first (scripts/cluster.sh down)"
    fi
    require_tools
    mkdir -p "$DIR"
    # Only the files this script makes: WT_CLUSTER_DIR may name a directory with others.
    rm -rf "$DIR/redis"
    rm -f "$DIR"/node*.{pid,port,args,log,out} "$DIR"/haproxy*.{cfg,log,pid,port,sock} \
        "$DIR"/redis.{log,pid,port} "$DIR/nodes" "$DIR/cluster.json"
    echo "$count" >"$DIR/nodes"

    # From here a failure stops whatever was started, leaving the logs to read.
    trap 'say "up failed; stopping what was started (logs stay in $DIR)"; stop_all' EXIT
    trap 'exit 130' INT TERM

    start_redis
    for i in $(seq 1 "$count"); do
        printf '%s\n' --redis-url "$(redis_url)" --node-id "node$i" "${NODE_FLAGS[@]}" "$@" \
            >"$DIR/node$i.args"
        start_node "node$i" 0
    done
    start_haproxy
    write_json
    trap - EXIT INT TERM
    say "up: $count nodes behind http://127.0.0.1:$(cat "$DIR/haproxy.port") ($DIR/cluster.json)"
    printf 'http://127.0.0.1:%s\n' "$(cat "$DIR/haproxy.port")"
}

cmd_down() {
    if [ -z "$(running)" ]; then
        say "nothing running in $DIR"
        rm -f "$DIR"/*.pid "$DIR/cluster.json" "$DIR/haproxy.sock"
        return 0
    fi
    stop_all
    say "down (logs in $DIR)"
}

# One line of `status`; marks the cluster bad (the caller's $bad) unless the process is alive.
status_line() {
    local name=$1 pid=$2 state=$3 detail=$4
    printf '%-8s pid %-8s %-5s %s\n' "$name" "$pid" "$state" "$detail"
    [ "$state" = alive ] || bad=1
}

cmd_status() {
    [ -f "$DIR/nodes" ] && [ -f "$DIR/redis.pid" ] || die "no cluster in $DIR"
    local all name pid state health view bad=0 i views=""
    all=$(running)
    if grep -q '^haproxy ' <<<"$all"; then views=$(haproxy_servers); fi
    pid=$(cat "$DIR/redis.pid" 2>/dev/null || echo -)
    state=dead
    if grep -q '^redis ' <<<"$all"; then state=alive; fi
    status_line redis "$pid" "$state" "$(redis_url)"
    for i in $(seq 1 "$(node_count)"); do
        name=node$i
        pid=$(cat "$DIR/$name.pid" 2>/dev/null || echo -)
        state=dead health=""
        if grep -q "^$name " <<<"$all"; then
            state=alive
            health="health: $(health_status "http://127.0.0.1:$(cat "$DIR/$name.port")")"
        fi
        view=$(awk -F'\t' -v n="$name" '$1 == n {print "haproxy: " $2 " (" $3 ")"}' <<<"$views")
        status_line "$name" "$pid" "$state" "http://127.0.0.1:$(cat "$DIR/$name.port" 2>/dev/null) $health ${view}"
    done
    pid=$(cat "$DIR/haproxy.pid" 2>/dev/null || echo -)
    state=dead
    if grep -q '^haproxy ' <<<"$all"; then state=alive; fi
    status_line haproxy "$pid" "$state" "http://127.0.0.1:$(cat "$DIR/haproxy.port" 2>/dev/null)"
    return "$bad"
}

cmd_restart_node() {
    local name=${1:-}
    [ -f "$DIR/nodes" ] && [ -f "$DIR/redis.pid" ] || die "no cluster in $DIR"
    [[ "$name" =~ ^node[0-9]+$ ]] && [ -f "$DIR/$name.args" ] ||
        die "restart-node: no node '$name' (node1..node$(node_count))"
    require_tools
    local pid
    pid=$(cat "$DIR/$name.pid" 2>/dev/null || true)
    if [ -n "$pid" ] && is_our_node "$pid" "$name"; then
        echo "$name $pid" | stop_processes
    fi
    start_node "$name" "$(cat "$DIR/$name.port")"
    write_json
    # Back in rotation once HAProxy's checks say so (rise 2), if the balancer runs.
    if [ -n "$(pick 'haproxy ' "$(running)")" ]; then
        wait_for "$READY_TIMEOUT" "" haproxy_sees_up "$name" ||
            die "HAProxy did not take $name back"
        say "$name is back in HAProxy's rotation"
    fi
}

main() {
    local cmd=${1:-}
    [ $# -eq 0 ] || shift
    case $cmd in
    up) cmd_up "$@" ;;
    down) cmd_down ;;
    status) cmd_status ;;
    restart-node) cmd_restart_node "$@" ;;
    *)
        sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
        exit 2
        ;;
    esac
}

main "$@"
