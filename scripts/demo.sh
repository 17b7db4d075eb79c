#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# `make demo` and `make demo-locks`: the cross-language demo, on a throwaway redis-server or
# $REDIS_URL. The Rust binary examples/rust/src/bin/demo.rs (the stories are in
# examples/rust/src/demo/) tells one of two stories:
#
# - sagas (`make demo`): saga workers in Rust (in the demo's process), Python
#   (examples/demo/saga_worker.py, run by the project's .venv) and Node
#   (examples/demo/saga_worker.js), a stalled saga, a deadlock across languages, and two
#   `txcoord monitor` sidecars (the CLI, debug build) with a leader failover;
# - locks (`make demo-locks`): a Rust task, a Python worker (examples/demo/worker.py) and a Node
#   service (examples/demo/worker.js) contend for one lock.
#
#   scripts/demo.sh [sagas|locks]   prepare what is missing or out of date, then run a story
#   scripts/demo.sh --prepare       prepare only (what `cargo test -p txcoord-examples` needs)
#
# Prepared only when missing or older than their sources: redis-server (scripts/install-deps.sh;
# not needed with REDIS_URL), the virtualenv with redis-py and maturin (pinned in
# bindings-python/requirements-dev.txt) and a debug build of the Python package (maturin
# develop, as scripts/test-python.sh does), node_modules (npm ci) and a debug build of the Node
# addon (napi build, as scripts/test-node.sh does). The txcoord CLI (debug) is built every time
# (cargo does nothing when it is up to date).
#
# Needs: Rust (cargo), Python >= 3.9, Node >= 20 with npm. Environment: PYTHON (default
# python3), TXCOORD_VENV (default .venv), REDIS_URL, CARGO (default cargo).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
VENV="${TXCOORD_VENV:-$ROOT/.venv}"
CARGO="${CARGO:-cargo}"

prepare_only=0
story=sagas
case "${1:-}" in
  --prepare) prepare_only=1 ;;
  sagas | locks) story="$1" ;;
  "") ;;
  *) echo "usage: scripts/demo.sh [--prepare | sagas | locks]" >&2; exit 2 ;;
esac

say() { echo "demo: $*" >&2; }

# stale TARGET SOURCE...: TARGET is missing, or a file under a SOURCE is newer than it.
stale() {
  local target="$1"
  shift
  [ ! -e "$target" ] || [ -n "$(find "$@" -newer "$target" -print -quit 2>/dev/null)" ]
}

apt_install() { scripts/install-deps.sh --apt "$@"; }

# Redis and Rust.
if [ -z "${REDIS_URL:-}" ] && ! command -v "${TXCOORD_REDIS_SERVER:-redis-server}" >/dev/null 2>&1; then
  scripts/install-deps.sh
fi
if ! command -v "$CARGO" >/dev/null 2>&1; then
  echo "demo: cargo not found: install Rust (https://rustup.rs)" >&2
  exit 1
fi

# The Python worker: .venv with redis-py, and the txcoord package built from this checkout.
if [ ! -x "$VENV/bin/python" ]; then
  say "creating the virtualenv $VENV"
  if ! "$PYTHON" -m venv "$VENV" 2>/dev/null; then
    # Debian ships venv's ensurepip separately.
    rm -rf "$VENV"
    version="$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
    apt_install "python${version}-venv" || apt_install python3-venv
    "$PYTHON" -m venv "$VENV"
  fi
fi
PY="$VENV/bin/python"
if [ ! -x "$VENV/bin/maturin" ] || ! "$PY" -c 'import redis' >/dev/null 2>&1; then
  mapfile -t pins < <(grep -E '^(maturin|redis)==' bindings-python/requirements-dev.txt)
  say "installing ${pins[*]} into $VENV"
  "$PY" -m pip install -q --disable-pip-version-check "${pins[@]}"
fi
native="$("$PY" -c 'import txcoord._native as m; print(m.__file__)' 2>/dev/null || true)"
if [ -z "$native" ] || stale "$native" core/src core/Cargo.toml bindings-python/src \
  bindings-python/Cargo.toml pyproject.toml Cargo.lock; then
  say "building the Python package (debug) into $VENV"
  VIRTUAL_ENV="$VENV" PATH="$VENV/bin:$PATH" "$VENV/bin/maturin" develop --quiet
fi

# The Node service: node_modules (ioredis) and the addon built from this checkout.
if ! command -v node >/dev/null 2>&1; then
  echo "demo: node not found: install Node >= 20 with npm" >&2
  exit 1
fi
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing node_modules (npm ci)"
  # The package's own install script does not build here (see bindings-node/scripts/install.js).
  TXCOORD_SKIP_BUILD=1 npm ci --no-audit --no-fund
fi
if stale bindings-node/txcoord.node core/src core/Cargo.toml bindings-node/src bindings-node/Cargo.toml \
  bindings-node/build.rs Cargo.lock; then
  say "building the Node addon (debug)"
  # The generated declarations go to target/: bindings-node/native.d.ts is checked by
  # scripts/test-node.sh, and without --dts napi would overwrite bindings-node/index.d.ts.
  npx --no-install napi build --manifest-path bindings-node/Cargo.toml --output-dir bindings-node \
    --package-json-path package.json --dts ../target/demo/native.d.ts
fi

# The monitor sidecars of the saga story: target/debug/txcoord, beside the demo binary.
"$CARGO" build -q --locked -p txcoord-cli

if [ "$prepare_only" = 1 ]; then
  say "ready: $VENV (txcoord, redis-py), bindings-node/txcoord.node, node_modules, target/debug/txcoord"
  exit 0
fi
exec "$CARGO" run -q --locked -p txcoord-examples --bin demo -- "$story"
