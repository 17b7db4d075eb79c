#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# Cross-language tests (tests/cross): Python, Node and Rust processes contend for the same locks
# on one throwaway redis-server (handoff in all 6 directions, one fencing-token sequence, a
# lost-lock signal after a pause), and the API parity check between the Python stubs and
# index.d.ts.
#
#   scripts/test-cross.sh [pytest arguments...]
#
# Runs after scripts/test-python.sh and scripts/test-node.sh (as `make test` orders them): it
# uses the .venv they leave with the txcoord package (debug build) and the Node addon
# (bindings-node/*.node) with node_modules, and stops with a message if one is missing. It
# builds the Rust agent itself (`cargo build -p txcoord-examples --bin lock_agent`, debug, in
# the shared target directory). Environment: TXCOORD_VENV (default .venv),
# TXCOORD_REDIS_SERVER (the redis-server binary the tests start). REDIS_URL and BENCH_REDIS_URL
# are ignored: the tests start their own server.
set -euo pipefail
unset REDIS_URL BENCH_REDIS_URL

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${TXCOORD_VENV:-$ROOT/.venv}"
PY="$VENV/bin/python"
started=$SECONDS

missing() {
  echo "test-cross: $1" >&2
  echo "test-cross: run scripts/test-python.sh and scripts/test-node.sh first (make test does)" >&2
  exit 1
}

command -v "${TXCOORD_REDIS_SERVER:-redis-server}" >/dev/null 2>&1 || missing "redis-server not found (make deps installs it)"
[ -x "$PY" ] || missing "no virtualenv at $VENV"
"$PY" -c 'import txcoord, pytest, pytest_timeout, redis' 2>/dev/null || missing "the txcoord package, pytest, pytest-timeout or redis-py is not installed in $VENV"
command -v node >/dev/null 2>&1 || missing "node not found on PATH"
node -e "require('$ROOT'); require('ioredis5'); require('typescript')" 2>/dev/null \
  || missing "the Node package does not load (addon not built?) or node_modules is incomplete"

echo "test-cross: building the Rust lock agent"
cargo build --locked --quiet -p txcoord-examples --bin lock_agent
export TXCOORD_LOCK_AGENT="${CARGO_TARGET_DIR:-$ROOT/target}/debug/lock_agent"
[ -x "$TXCOORD_LOCK_AGENT" ] || missing "the lock agent was not built at $TXCOORD_LOCK_AGENT"

echo "test-cross: mypy (tests/cross, strict)"
"$PY" -m mypy --strict tests/cross

echo "test-cross: pytest tests/cross"
"$PY" -m pytest tests/cross -p no:cacheprovider "$@"
echo "test-cross: passed in $((SECONDS - started)) s"
