#!/usr/bin/env bash
# Runs every check and test of the project on a fresh Debian machine with the Rust toolchain
# and Node.js. Installs what it needs first (Chromium, redis-server and HAProxy from apt,
# playwright-core from npm).
# The load bench's smoke mode runs inside cargo test (tests/bench_smoke.rs).
# Used by .ci/run; run it yourself the same way:
#   scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "system packages (Debian: chromium, redis-server, haproxy)"
# Installed only when missing: the browser for the end-to-end tests; redis-server, which
# the store and durability tests start on a free port of their own; and HAProxy, which the
# cluster test (tests/cluster.rs, through scripts/cluster.sh and its python3 helpers) puts
# in front of several nodes.
missing=()
[ -x "${CHROMIUM_PATH:-/usr/bin/chromium}" ] || missing+=(chromium)
command -v redis-server >/dev/null || missing+=(redis-server)
# /usr/sbin is not on every user's PATH.
[ -x /usr/sbin/haproxy ] || command -v haproxy >/dev/null || missing+=(haproxy)
command -v python3 >/dev/null || missing+=(python3)
if [ "${#missing[@]}" -gt 0 ]; then
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

step "formatting (cargo fmt --check)"
cargo fmt --all -- --check

step "lints (cargo clippy --all-targets -D warnings)"
cargo clippy --all-targets --quiet -- -D warnings

step "unit and integration tests (cargo test; the cluster test runs this build's binary)"
cargo test --quiet

step "JavaScript dependencies (npm ci)"
npm ci --no-audit --no-fund

step "sync engine unit tests (node --test)"
npm test

step "release build (the server the browser tests run)"
cargo build --release --quiet

step "browser end-to-end tests (headless Chromium against the real server)"
npm run e2e
