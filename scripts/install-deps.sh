#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# Installs what txcoord's tests, demo and benchmarks need beyond Rust, Python and Node with
# apt-get, and only what is missing. Idempotent.
#
#   scripts/install-deps.sh              redis-server and redis-tools (redis-cli,
#                                        redis-benchmark); then checks that cargo is there
#   scripts/install-deps.sh --apt PKG... those apt packages (the other scripts' fallbacks, e.g.
#                                        python3-venv), installed the same way
#
# The tests start their own redis-server processes on free ports and never use a system
# service. Debian's redis-server package starts one on 6379 when it is installed; here it is
# kept from starting (a temporary /usr/sbin/policy-rc.d that forbids service starts, written
# only when none exists and removed afterwards), and if it runs anyway after an install made
# here (no policy honoured, e.g. a systemd unit started by other means), it is stopped: the
# service, or the pid in its pid file if that process is a redis-server. A redis-server that
# was installed before is left as it is.
#
# Environment: TXCOORD_REDIS_SERVER (a redis-server binary to use instead of installing one).
set -euo pipefail

say() { echo "install-deps: $*" >&2; }

POLICY="${TXCOORD_POLICY_RC_D:-/usr/sbin/policy-rc.d}"
POLICY_MARK="# written by txcoord scripts/install-deps.sh for the length of one apt-get install"
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

# Our policy-rc.d, if we wrote it (also one left behind by an interrupted earlier run).
policy_is_ours() { [ -f "$POLICY" ] && grep -qxF "$POLICY_MARK" "$POLICY" 2>/dev/null; }
remove_policy() { if policy_is_ours; then $SUDO rm -f "$POLICY"; fi; }

# stop_system_redis: the Debian service, after an install made here that brought it.
stop_system_redis() {
  local pidfile=/run/redis/redis-server.pid pid=""
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ] &&
    systemctl is-active --quiet redis-server 2>/dev/null; then
    say "stopping the redis-server service the package started (systemctl stop redis-server)"
    $SUDO systemctl stop redis-server || true
  fi
  pid="$($SUDO cat "$pidfile" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 0
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = redis-server ] || return 0
  say "stopping the redis-server service the package started (pid $pid from $pidfile)"
  $SUDO service redis-server stop >/dev/null 2>&1 || true
  local i
  for i in $(seq 50); do
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = redis-server ] || return 0
    # the service script did not stop it: only that pid, and only while it is a redis-server
    [ "$i" = 10 ] && { $SUDO kill "$pid" 2>/dev/null || true; }
    [ "$i" = 40 ] && { $SUDO kill -KILL "$pid" 2>/dev/null || true; }
    sleep 0.1
  done
  say "warning: redis-server pid $pid is still running"
}

# apt_install PKG...: apt-get update + install with service starts forbidden meanwhile.
apt_install() {
  command -v apt-get >/dev/null 2>&1 || { say "apt-get not found: install $* by hand"; return 1; }
  say "installing $* with apt-get"
  if [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\n%s\nexit 101\n' "$POLICY_MARK" | $SUDO tee "$POLICY" >/dev/null
    $SUDO chmod 755 "$POLICY"
  fi
  local rc=0 had_service=1
  # Only a service this install brings is stopped; one installed before belongs to someone.
  if [[ " $* " == *" redis-server "* ]] &&
    ! dpkg-query -W -f='${Status}' redis-server 2>/dev/null | grep -q "install ok installed"; then
    had_service=0
  fi
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq || rc=$?
  if [ "$rc" = 0 ]; then
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null || rc=$?
  fi
  remove_policy
  if [ "$had_service" = 0 ]; then stop_system_redis; fi
  return "$rc"
}

trap remove_policy EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ "${1:-}" = "--apt" ]; then
  shift
  [ $# -gt 0 ] || { say "usage: scripts/install-deps.sh [--apt PKG...]"; exit 2; }
  apt_install "$@"
  exit 0
fi
[ $# = 0 ] || { say "usage: scripts/install-deps.sh [--apt PKG...]"; exit 2; }

need=()
command -v "${TXCOORD_REDIS_SERVER:-redis-server}" >/dev/null 2>&1 || need+=(redis-server)
command -v redis-benchmark >/dev/null 2>&1 || need+=(redis-tools)
if [ ${#need[@]} -gt 0 ]; then apt_install "${need[@]}"; fi
command -v cargo >/dev/null 2>&1 || { say "cargo not found: install Rust (https://rustup.rs)"; exit 1; }
echo "deps ok: $("${TXCOORD_REDIS_SERVER:-redis-server}" --version | cut -d' ' -f3), $(cargo --version)"
