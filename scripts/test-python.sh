#!/usr/bin/env bash
# Builds the Python package into the project's own virtualenv (.venv, never the system Python)
# and checks it: mypy.stubtest (the hand-written stubs against the native module), mypy on the
# examples and tests, and pytest on tests/python against a throwaway redis-server.
#
#   scripts/test-python.sh [pytest arguments...]
#
# Needs: Rust (cargo), Python >= 3.9 with pip, apt (redis-server and python3-venv are installed
# with apt-get when missing, by scripts/install-deps.sh). Environment: PYTHON (default
# python3), TXCOORD_VENV (default .venv), TXCOORD_REDIS_SERVER (the redis-server binary the
# tests start). REDIS_URL and BENCH_REDIS_URL are ignored: the tests start their own server.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
VENV="${TXCOORD_VENV:-$ROOT/.venv}"

# Tests start their own servers: never one named by an inherited URL.
unset REDIS_URL BENCH_REDIS_URL
apt_install() { scripts/install-deps.sh --apt "$@"; }
# redis-server when missing (apt, without leaving Debian's service running on 6379).
scripts/install-deps.sh

if [ ! -x "$VENV/bin/python" ]; then
  if ! "$PYTHON" -m venv "$VENV" 2>/dev/null; then
    # Debian ships venv's ensurepip separately.
    rm -rf "$VENV"
    version="$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
    apt_install "python${version}-venv" || apt_install python3-venv
    "$PYTHON" -m venv "$VENV"
  fi
fi
PY="$VENV/bin/python"
"$PY" -m pip install -q --disable-pip-version-check -r bindings-python/requirements-dev.txt

# Debug build into the shared target directory (target/), installed editable into the venv,
# with the test-only hooks (`_test_panic`, `_test_log`) that release builds leave out.
VIRTUAL_ENV="$VENV" PATH="$VENV/bin:$PATH" "$VENV/bin/maturin" develop --quiet --features test-hooks

echo "test-python: stubtest"
# The stubs describe the release build (the test-only hooks are private attributes outside
# `__all__`, which stubtest leaves alone).
"$PY" -m mypy.stubtest txcoord._native

echo "test-python: mypy (examples and tests, strict)"
"$PY" -m mypy

echo "test-python: pytest"
"$PY" -m pytest tests/python "$@"
