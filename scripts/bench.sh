#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# `make bench`: the server's cost per uncontended lock cycle and the pipelined ceiling beside the
# seed's commands, then scenarios A, B, C, C2 and D plus peak RSS, side by side, on ONE
# redis-server in ONE run, with release builds of txcoord:
#   Rust    txcoord beside rslock and the seed's commands (bench/, crate txcoord-bench: also the
#           server-cost, redis-benchmark ceiling and MONITOR capture tables)
#   Python  txcoord (asyncio) beside redis-py's redis.asyncio.lock.Lock and python-redis-lock
#           (synchronous: run in threads)                      (bench/python/scenarios.py)
#   Node    txcoord beside redlock, @sesamecare-oss/redlock, redis-semaphore's Mutex and the
#           seed's own DistributedLock/LockManager over ioredis      (bench/node/scenarios.js)
#   Sagas   the deadlock detector (cycle search on a 1M-edge graph, the registry read at 100k
#           waiters, deadlock to victim's error), one saga-monitor tick at 100k sagas with its
#           RSS, the conditional saga save beside HSET          (bench/src/sagas.rs, Rust; ~10 s
#           quick on smaller monitor data, ~1 min full)
# then the combined markdown tables (bench/report.py), also written to target/bench/summary.md.
#
#   scripts/bench.sh                 full run, about 6–7 minutes (builds not counted)
#   BENCH_QUICK=1 scripts/bench.sh   smoke run, about a minute once the builds are there
#   scripts/bench.sh --prepare-only  only the release builds and the bench virtualenv (soak.sh)
#
# Environment: BENCH_SECONDS (C, C2, D; default 5, 0.5 quick), BENCH_AB_SECONDS (A, B; default 3,
# 0.5 quick), BENCH_COST_CYCLES (server cost; default 200,000, 3,000 quick), BENCH_LANGS (default
# rust,sagas,python,node), BENCH_OUT (default target/bench), BENCH_WHEEL (a txcoord wheel to benchmark
# instead of building one, e.g. from `make dist`), BENCH_NODE_ADDON (a prebuilt txcoord.node to
# benchmark instead of building one), PYTHON, TXCOORD_REDIS_SERVER (the redis-server binary).
# An inherited BENCH_REDIS_URL or REDIS_URL is ignored: the benchmarks flush the server between
# runs, so they always run on the throwaway redis-server started here.
#
# What it builds, all under target/ (shared with every other build; nothing else is touched):
# a release wheel (maturin build --release, target/bench/wheels) installed into its own
# virtualenv target/bench/venv with bench/python/requirements.txt; a release addon
# (cargo build --release -p txcoord-node) copied with the JavaScript layer (bindings-node/index.js
# and bindings-node/lib/) into target/bench/node and loaded from there (TXCOORD_NODE), so the tests' .venv and debug addon are left alone.
#
# Exit status: 0 unless a benchmark program failed (txcoord misbehaved, a library could not run);
# targets missed are reported, not failed.
set -euo pipefail
unset REDIS_URL BENCH_REDIS_URL BENCH_REDIS_FLUSH

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
OUT="${BENCH_OUT:-$ROOT/target/bench}"
BENCH_DIR="$ROOT/target/bench"
VENV="$BENCH_DIR/venv"
NODE_PKG="$BENCH_DIR/node"
LANGS="${BENCH_LANGS:-rust,sagas,python,node}"
PREPARE_ONLY=0
[ "${1:-}" = "--prepare-only" ] && PREPARE_ONLY=1

quick=0
case "$(echo "${BENCH_QUICK:-}" | tr '[:upper:]' '[:lower:]')" in 1 | true | yes | on) quick=1 ;; esac
if [ "$quick" = 1 ]; then
  export BENCH_SECONDS="${BENCH_SECONDS:-0.5}" BENCH_AB_SECONDS="${BENCH_AB_SECONDS:-0.5}"
else
  export BENCH_QUICK=0 BENCH_SECONDS="${BENCH_SECONDS:-5}" BENCH_AB_SECONDS="${BENCH_AB_SECONDS:-3}"
fi

log() { echo "bench: $*" >&2; }
want() { [[ ",$LANGS," == *",$1,"* ]]; }
began=$SECONDS

# ------------------------------------------------------------------------------------------
# Release builds
# ------------------------------------------------------------------------------------------
for tool in cargo "$PYTHON" node npm "${TXCOORD_REDIS_SERVER:-redis-server}"; do
  command -v "$tool" >/dev/null 2>&1 || { log "$tool not found (make deps installs redis-server; Rust, Python and Node are needed)"; exit 2; }
done
mkdir -p "$BENCH_DIR" "$OUT"

prepare_rust() {
  local targets=()
  want rust && targets+=(--bench scenarios)
  want sagas && targets+=(--bench sagas)
  log "building the Rust benchmark (release): ${targets[*]}"
  cargo bench --locked -q -p txcoord-bench "${targets[@]}" --no-run >&2
}

prepare_python() {
  if [ ! -x "$VENV/bin/python" ]; then
    log "creating $VENV"
    "$PYTHON" -m venv "$VENV"
  fi
  local req="bench/python/requirements.txt" stamp="$VENV/.requirements"
  if ! cmp -s "$req" "$stamp"; then
    log "installing $req into $VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$req"
    cp "$req" "$stamp"
  fi
  local wheel
  if [ -n "${BENCH_WHEEL:-}" ]; then
    wheel="$BENCH_WHEEL"
  else
    log "building the txcoord wheel (maturin build --release)"
    rm -rf "$BENCH_DIR/wheels"
    "$VENV/bin/maturin" build --release --locked --quiet -o "$BENCH_DIR/wheels" >&2
    wheel="$(ls "$BENCH_DIR"/wheels/txcoord-*.whl | head -n 1)"
  fi
  local sum
  sum="$(sha256sum "$wheel" | cut -d' ' -f1)"
  if [ "$(cat "$VENV/.txcoord-wheel" 2>/dev/null)" != "$sum" ]; then
    log "installing $(basename "$wheel") into $VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps --force-reinstall "$wheel"
    echo "$sum" >"$VENV/.txcoord-wheel"
  fi
}

prepare_node() {
  # Dev dependencies (the libraries compared with), as scripts/test-node.sh installs them.
  if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ] ||
    [ ! -d node_modules/redis-semaphore ]; then
    log "npm ci (dev dependencies)"
    TXCOORD_SKIP_BUILD=1 npm ci --no-audit --no-fund >&2
  fi
  local addon
  if [ -n "${BENCH_NODE_ADDON:-}" ]; then
    addon="$BENCH_NODE_ADDON"
  else
    log "building the Node addon (cargo build --release -p txcoord-node)"
    cargo build --locked --release -q -p txcoord-node >&2
    addon="$(cargo metadata --format-version 1 --no-deps | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/libtxcoord_node.so"
  fi
  # The JavaScript layer (bindings-node/index.js and lib/*.js) beside a loader of our own, so the
  # package's loader (which prefers bindings-node/txcoord.node, the tests' debug build) is not
  # involved. It may require only ./native.js, ./lib/*.js and (from lib/) ../native.js and ./*.js.
  if grep -nE "require\(['\"]\.\.?/" bindings-node/index.js bindings-node/lib/*.js |
    grep -vE "bindings-node/index\.js:[0-9]+:.*require\('\./(native|lib/[a-z-]+)\.js'\)" |
    grep -vE "bindings-node/lib/[a-z-]+\.js:[0-9]+:.*require\('(\.\./native|\./[a-z-]+)\.js'\)" >&2; then
    log "the JavaScript layer requires local files other than native.js and lib/*.js: update scripts/bench.sh"
    exit 2
  fi
  rm -rf "$NODE_PKG/lib"
  mkdir -p "$NODE_PKG/lib"
  cp bindings-node/index.js "$NODE_PKG/index.js"
  cp bindings-node/lib/*.js "$NODE_PKG/lib/"
  cp "$addon" "$NODE_PKG/txcoord.node.tmp" && mv -f "$NODE_PKG/txcoord.node.tmp" "$NODE_PKG/txcoord.node"
  printf "'use strict'\n// Written by scripts/bench.sh: the release addon beside it.\nmodule.exports = require('./txcoord.node')\n" \
    >"$NODE_PKG/native.js"
}

if want rust || want sagas; then prepare_rust; fi
want python && prepare_python
want node && prepare_node
[ "$PREPARE_ONLY" = 1 ] && exit 0
log "builds ready ($((SECONDS - began)) s)"

# ------------------------------------------------------------------------------------------
# One redis-server for everything
# ------------------------------------------------------------------------------------------
# shellcheck source=scripts/redis-server.sh
source "$ROOT/scripts/redis-server.sh"
redis_start || exit 2
# Ours, so the Rust program may flush it (it refuses to flush a server nobody vouched for).
export BENCH_REDIS_URL="$REDIS_SERVER_URL" BENCH_REDIS_FLUSH=1
log "redis-server $REDIS_SERVER_URL (pid $REDIS_PID); mode: $([ "$quick" = 1 ] && echo quick || echo full), A/B ${BENCH_AB_SECONDS} s, C/C2/D ${BENCH_SECONDS} s"

failed=()
jsons=()
run_lang() { # name, json, log, command...
  local name="$1" json="$2" logf="$3" t0=$SECONDS rc=0
  shift 3
  rm -f "$json"
  redis_cmd "$REDIS_PORT" FLUSHALL >/dev/null # the server started above, nobody else's
  log "$name: running ($logf)"
  "$@" >"$logf" 2>&1 || rc=$?
  if [ "$rc" != 0 ]; then
    failed+=("$name (exit status $rc, see $logf)")
    log "$name: FAILED with exit status $rc after $((SECONDS - t0)) s; the end of $logf:"
    tail -n 15 "$logf" | sed 's/^/    /' >&2
  else
    log "$name: done in $((SECONDS - t0)) s"
  fi
  [ -f "$json" ] && jsons+=("$json")
  return 0
}

if want rust; then
  run_lang rust "$OUT/rust.json" "$OUT/rust.txt" \
    env BENCH_JSON="$OUT/rust.json" cargo bench --locked -q -p txcoord-bench --bench scenarios
fi
if want sagas; then
  run_lang sagas "$OUT/sagas.json" "$OUT/sagas.txt" \
    env BENCH_JSON="$OUT/sagas.json" cargo bench --locked -q -p txcoord-bench --bench sagas
fi
if want python; then
  run_lang python "$OUT/python.json" "$OUT/python.txt" \
    env PYTHONUNBUFFERED=1 "$VENV/bin/python" bench/python/scenarios.py --json "$OUT/python.json"
fi
if want node; then
  run_lang node "$OUT/node.json" "$OUT/node.txt" \
    env TXCOORD_NODE="$NODE_PKG/index.js" node bench/node/scenarios.js --json "$OUT/node.json"
fi

echo
"$PYTHON" bench/report.py bench "${jsons[@]}" | tee "$OUT/summary.md"
echo "Each language's own output (every table, the redis-benchmark runs, per-scenario notes):"
for f in rust sagas python node; do want "$f" && echo "  $OUT/$f.txt"; done
echo "bench: $((SECONDS - began)) s in all"
if [ "${#failed[@]}" != 0 ]; then
  printf 'bench: FAILED: %s\n' "${failed[@]}" >&2
  exit 1
fi
