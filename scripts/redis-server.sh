# SPDX-License-Identifier: MIT OR Apache-2.0
# A throwaway redis-server for scripts/bench.sh and scripts/soak.sh (sourced, not run): a free
# loopback port (never 6379), no persistence, its own temporary directory with its log. The
# binary is $TXCOORD_REDIS_SERVER, or redis-server from PATH.
#
#   source scripts/redis-server.sh
#   redis_start || exit 2          # sets REDIS_PID, REDIS_PORT, REDIS_SERVER_URL, REDIS_DIR
#   redis_cmd "$REDIS_PORT" PING   # one command over /dev/tcp, prints the first reply line
#   redis_stop                     # kills it, removes its directory (also set as the EXIT trap)

REDIS_SERVER_BIN="${TXCOORD_REDIS_SERVER:-redis-server}"
REDIS_PID=""
REDIS_PORT=""
REDIS_SERVER_URL=""
REDIS_DIR=""

# One command to the server over bash's /dev/tcp; prints the first line of the reply.
redis_cmd() {
  local port="$1" reply
  shift
  exec 9<>"/dev/tcp/127.0.0.1/$port" || return 1
  printf '%s\r\n' "$*" >&9
  IFS= read -r -t 30 reply <&9 || reply=""
  exec 9>&-
  printf '%s\n' "${reply%$'\r'}"
}

redis_stop() {
  if [ -n "$REDIS_PID" ]; then
    kill "$REDIS_PID" 2>/dev/null || true
    wait "$REDIS_PID" 2>/dev/null || true
    REDIS_PID=""
  fi
  if [ -n "$REDIS_DIR" ]; then
    rm -rf "$REDIS_DIR"
    REDIS_DIR=""
  fi
}

redis_start() {
  local attempt port
  command -v "$REDIS_SERVER_BIN" >/dev/null 2>&1 || {
    echo "$REDIS_SERVER_BIN not found (make deps installs redis-server; TXCOORD_REDIS_SERVER names another binary)" >&2
    return 2
  }
  REDIS_DIR="$(mktemp -d "${TMPDIR:-/tmp}/txcoord-bench-redis.XXXXXX")"
  trap redis_stop EXIT
  for attempt in 1 2 3 4 5; do
    port="$("${PYTHON:-python3}" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    "$REDIS_SERVER_BIN" --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$REDIS_DIR" \
      --loglevel warning --logfile "$REDIS_DIR/redis.log" &
    REDIS_PID=$!
    for _ in $(seq 200); do
      if [ "$(redis_cmd "$port" PING 2>/dev/null)" = "+PONG" ]; then
        REDIS_PORT="$port"
        REDIS_SERVER_URL="redis://127.0.0.1:$port"
        return 0
      fi
      kill -0 "$REDIS_PID" 2>/dev/null || break
      sleep 0.05
    done
    kill "$REDIS_PID" 2>/dev/null || true
    wait "$REDIS_PID" 2>/dev/null || true
    REDIS_PID=""
  done
  echo "could not start redis-server: $(tail -n 20 "$REDIS_DIR/redis.log" 2>/dev/null)" >&2
  return 2
}
