#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# Installs what txcoord's tests, demo and benchmarks need beyond Rust, Python and Node with
# apt-get, and only what is missing. Idempotent.
#
#   scripts/install-deps.sh              redis-server and redis-tools (redis-cli,
#                                        redis-benchmark); prometheus (prometheus, promtool) and
#                                        prometheus-alertmanager, which the metrics and alert
#                                        tests run; then checks that cargo is there
#   scripts/install-deps.sh --apt PKG... those apt packages (the other scripts' fallbacks, e.g.
#                                        python3-venv), installed the same way
#
# The tests start their own redis-server, prometheus and alertmanager processes on free ports
# and never use a system service. Debian's packages start theirs when installed (redis-server
# on 6379, prometheus on 9090, prometheus-alertmanager on 9093); here they are kept from
# starting (a temporary /usr/sbin/policy-rc.d that forbids service starts, written only when
# none exists and removed afterwards), and if one runs anyway after an install made here (no
# policy honoured, e.g. a systemd unit started by other means), it is stopped: the service, or
# the pid in its pid file if that process is the service's program. A service that was
# installed before is left as it is. The Prometheus packages are installed without their
# recommends (prometheus-node-exporter would be one more service).
#
# Environment: TXCOORD_REDIS_SERVER, TXCOORD_PROMETHEUS, TXCOORD_PROMTOOL, TXCOORD_ALERTMANAGER
# (binaries to use instead of installing them; the tests read the same variables).
set -euo pipefail

say() { echo "install-deps: $*" >&2; }

POLICY="${TXCOORD_POLICY_RC_D:-/usr/sbin/policy-rc.d}"
POLICY_MARK="# written by txcoord scripts/install-deps.sh for the length of one apt-get install"
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

# Our policy-rc.d, if we wrote it (also one left behind by an interrupted earlier run).
policy_is_ours() { [ -f "$POLICY" ] && grep -qxF "$POLICY_MARK" "$POLICY" 2>/dev/null; }
remove_policy() { if policy_is_ours; then $SUDO rm -f "$POLICY"; fi; }

# stop_service NAME PIDFILE PROGRAM: the Debian service NAME, after an install made here that
# brought it; PROGRAM is its process name (as /proc/PID/comm shows it: at most 15 characters).
stop_service() {
  local name="$1" pidfile="$2" comm="${3:0:15}" pid=""
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ] &&
    systemctl is-active --quiet "$name" 2>/dev/null; then
    say "stopping the $name service the package started (systemctl stop $name)"
    $SUDO systemctl stop "$name" || true
  fi
  pid="$($SUDO cat "$pidfile" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 0
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$comm" ] || return 0
  say "stopping the $name service the package started (pid $pid from $pidfile)"
  $SUDO service "$name" stop >/dev/null 2>&1 || true
  local i
  for i in $(seq 50); do
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$comm" ] || return 0
    # the service script did not stop it: only that pid, and only while it is that program
    [ "$i" = 10 ] && { $SUDO kill "$pid" 2>/dev/null || true; }
    [ "$i" = 40 ] && { $SUDO kill -KILL "$pid" 2>/dev/null || true; }
    sleep 0.1
  done
  say "warning: $name pid $pid is still running"
}

# The services that packages bring: package, pid file, program.
SERVICES=(
  "redis-server /run/redis/redis-server.pid redis-server"
  "prometheus /run/prometheus/prometheus.pid prometheus"
  "prometheus-alertmanager /run/prometheus/prometheus-alertmanager.pid prometheus-alertmanager"
)

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

# apt_install [APT-OPTION...] PKG...: apt-get update + install with service starts forbidden
# meanwhile.
apt_install() {
  command -v apt-get >/dev/null 2>&1 || { say "apt-get not found: install $* by hand"; return 1; }
  local opts=()
  while [ $# -gt 0 ] && [[ "$1" == -* ]]; do opts+=("$1"); shift; done
  say "installing $* with apt-get"
  if [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\n%s\nexit 101\n' "$POLICY_MARK" | $SUDO tee "$POLICY" >/dev/null
    $SUDO chmod 755 "$POLICY"
  fi
  local rc=0 service new_services=()
  # Only a service this install brings is stopped; one installed before belongs to someone.
  for service in "${SERVICES[@]}"; do
    if [[ " $* " == *" ${service%% *} "* ]] && ! installed "${service%% *}"; then
      new_services+=("$service")
    fi
  done
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq || rc=$?
  if [ "$rc" = 0 ]; then
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${opts[@]}" "$@" >/dev/null ||
      rc=$?
  fi
  remove_policy
  for service in "${new_services[@]}"; do
    # shellcheck disable=SC2086 # three words: package, pid file, program
    stop_service $service
  done
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
need=()
{ command -v "${TXCOORD_PROMETHEUS:-prometheus}" && command -v "${TXCOORD_PROMTOOL:-promtool}"; } \
  >/dev/null 2>&1 || need+=(prometheus)
command -v "${TXCOORD_ALERTMANAGER:-prometheus-alertmanager}" >/dev/null 2>&1 ||
  need+=(prometheus-alertmanager)
if [ ${#need[@]} -gt 0 ]; then apt_install --no-install-recommends "${need[@]}"; fi
command -v cargo >/dev/null 2>&1 || { say "cargo not found: install Rust (https://rustup.rs)"; exit 1; }
echo "deps ok: $("${TXCOORD_REDIS_SERVER:-redis-server}" --version | cut -d' ' -f3)," \
  "prometheus $("${TXCOORD_PROMETHEUS:-prometheus}" --version 2>&1 | head -1 | cut -d' ' -f3)," \
  "alertmanager $("${TXCOORD_ALERTMANAGER:-prometheus-alertmanager}" --version 2>&1 | head -1 |
    cut -d' ' -f3), $(cargo --version)"
