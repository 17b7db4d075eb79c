#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# `make soak`: 1e6 acquire+release cycles per language through txcoord's LockManager (50
# concurrent tasks, one client, a new resource name each cycle), on one throwaway redis-server,
# with the release builds scripts/bench.sh makes:
#   Rust    BENCH_SOAK=cycles, the txcoord-bench program (also prints Client::scheduled_renewals())
#   Python  bench/python/soak.py
#   Node    bench/node/soak.js (--expose-gc: RSS after a full GC; V8's young generation pinned at
#           its full size, so V8 growing it mid-run is not mistaken for a leak)
# Each prints RSS every tenth of its run; then one table: RSS at 2e5 and at 1e6 cycles, open
# fds, scheduled renewals, Redis keys left. Exit status 1 when a soak failed or RSS was not flat
# (the end more than max(5 %, 10 MiB) above the figure at 2e5 cycles).
#
#   scripts/soak.sh                    1,000,000 cycles per language, about 3 minutes
#   SOAK_CYCLES=100000 scripts/soak.sh a shorter run
# Environment: SOAK_CYCLES, SOAK_LANGS (default rust,python,node), BENCH_OUT (target/bench),
# TXCOORD_REDIS_SERVER (the redis-server binary).
# An inherited BENCH_REDIS_URL or REDIS_URL is ignored: the soaks run on the throwaway
# redis-server started here, flushed between languages.
set -euo pipefail
unset REDIS_URL BENCH_REDIS_URL BENCH_REDIS_FLUSH

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
OUT="${BENCH_OUT:-$ROOT/target/bench}"
CYCLES="${SOAK_CYCLES:-1000000}"
LANGS="${SOAK_LANGS:-rust,python,node}"
log() { echo "soak: $*" >&2; }
want() { [[ ",$LANGS," == *",$1,"* ]]; }
began=$SECONDS

BENCH_LANGS="$LANGS" scripts/bench.sh --prepare-only
mkdir -p "$OUT"

# shellcheck source=scripts/redis-server.sh
source "$ROOT/scripts/redis-server.sh"
redis_start || exit 2
port="$REDIS_PORT"
export BENCH_REDIS_URL="$REDIS_SERVER_URL"
log "redis-server $BENCH_REDIS_URL (pid $REDIS_PID), $CYCLES cycles per language"

results=()
failed=()
soak_lang() { # name, command...
  local name="$1" logf="$OUT/soak-$1.txt" json="$OUT/soak-$1.json" t0=$SECONDS rc=0
  shift
  rm -f "$json"
  redis_cmd "$port" FLUSHALL >/dev/null # the server started above, nobody else's
  echo
  set +e
  "$@" 2>&1 | tee "$logf"
  rc="${PIPESTATUS[0]}"
  set -e
  sed -n 's/^SOAK_RESULT //p' "$logf" | tail -n 1 >"$json"
  if [ -s "$json" ]; then results+=("$json"); else failed+=("$name: no SOAK_RESULT line"); fi
  [ "$rc" = 0 ] || log "$name: exit status $rc"
  log "$name: $((SECONDS - t0)) s"
}

want rust && soak_lang rust env BENCH_SOAK="$CYCLES" cargo bench --locked -q -p txcoord-bench --bench scenarios
want python && soak_lang python env PYTHONUNBUFFERED=1 target/bench/venv/bin/python bench/python/soak.py "$CYCLES"
# V8's young generation starts at the size it grows to anyway (see bench/node/soak.js).
want node && soak_lang node env TXCOORD_NODE="$ROOT/target/bench/node/index.js" \
  node --expose-gc --min-semi-space-size=16 --max-semi-space-size=16 bench/node/soak.js "$CYCLES"

echo
set +e
"$PYTHON" bench/report.py soak "${results[@]}" | tee "$OUT/soak.md"
rc="${PIPESTATUS[0]}"
set -e
for f in "${failed[@]}"; do log "FAILED: $f"; rc=1; done
log "$((SECONDS - began)) s in all"
exit "$rc"
