#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# The install check of `make dist`'s artifacts (it builds nothing: run scripts/dist.sh first).
# With NO cargo or rustc on PATH, in temporary directories:
#   - the abi3 wheel goes into a fresh virtualenv (pip --no-index: no sdist fallback, no network);
#   - the npm tarball goes into a fresh npm project (offline, empty npm cache), which must not
#     compile anything: its install script finds the prebuilt addon, no target/ directory
#     appears, and it finishes within TXCOORD_NPM_INSTALL_MAX_S seconds (default 30);
# then each takes and releases a lock on a throwaway redis-server (a free loopback port, never
# 6379), prints the fencing token, and takes the lock again with a larger token.
# It also checks the artifacts themselves: the wheel is cp39-abi3 with one abi3 extension, the
# sdist and the npm tarball carry the Rust sources, the tarball carries the prebuilt addon and
# no locally built one. Any problem fails the script with a message saying what.
#
# Environment: TXCOORD_DIST_DIR (default dist/), TXCOORD_DIST_PYTHONS (interpreters to check the
# wheel with, default "python3"; e.g. "python3 /opt/python3.9/bin/python3"),
# TXCOORD_REDIS_SERVER (default redis-server), TXCOORD_KEEP_TMP=1 (keep the temporary dir).
set -eEuo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIST="${TXCOORD_DIST_DIR:-$ROOT/dist}"
PYTHONS="${TXCOORD_DIST_PYTHONS:-${PYTHON:-python3}}"
REDIS_SERVER="${TXCOORD_REDIS_SERVER:-redis-server}"
NPM_MAX_S="${TXCOORD_NPM_INSTALL_MAX_S:-30}"

say() { echo "check-dist: $*"; }
die() {
  echo "check-dist: FAILED: $*" >&2
  exit 1
}
on_err() { echo "check-dist: FAILED at line $1: $2" >&2; }
trap 'on_err $LINENO "$BASH_COMMAND"' ERR
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
t_start=$(now)

# --- the artifacts --------------------------------------------------------------------------
shopt -s nullglob
wheels=("$DIST"/txcoord-*.whl)
sdists=("$DIST"/txcoord-*.tar.gz)
tgzs=("$DIST"/txcoord-*.tgz)
shopt -u nullglob
[ "${#wheels[@]}" -eq 1 ] || die "expected one wheel in $DIST, found ${#wheels[@]} (run scripts/dist.sh first)"
[ "${#sdists[@]}" -eq 1 ] || die "expected one sdist in $DIST, found ${#sdists[@]} (run scripts/dist.sh first)"
[ "${#tgzs[@]}" -eq 1 ] || die "expected one npm tarball in $DIST, found ${#tgzs[@]} (run scripts/dist.sh first)"
WHEEL="${wheels[0]}" SDIST="${sdists[0]}" TGZ="${tgzs[0]}"

# The wheel is abi3: its name and WHEEL tag say cp39-abi3, and it holds one extension module,
# named *.abi3.so.
case "$(basename "$WHEEL")" in
  txcoord-*-cp39-abi3-manylinux_*_x86_64.whl) ;;
  *) die "$(basename "$WHEEL") is not a cp39-abi3 manylinux x86_64 wheel" ;;
esac
python3 - "$WHEEL" <<'EOF' || die "$(basename "$WHEEL") is not an abi3 wheel (see above)"
import sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
names = z.namelist()
wheel = next(n for n in names if n.endswith(".dist-info/WHEEL"))
tags = [l.split(":", 1)[1].strip() for l in z.read(wheel).decode().splitlines() if l.startswith("Tag:")]
exts = [n for n in names if n.endswith(".so")]
problems = []
if not tags or any(not t.startswith("cp39-abi3-") for t in tags):
    problems.append(f"WHEEL tags {tags}")
if exts != ["txcoord/_native.abi3.so"]:
    problems.append(f"extension modules {exts}")
for f in ("txcoord/__init__.py", "txcoord/_native.pyi", "txcoord/py.typed", "txcoord/sync.py"):
    if f not in names:
        problems.append(f"{f} missing")
if problems:
    sys.exit("wheel: " + "; ".join(problems))
print(f"check-dist: wheel tags {', '.join(tags)}; extension {exts[0]}")
EOF

# The sdist and the npm tarball carry what a build from source needs.
listing="$(tar -tzf "$SDIST")"
for f in Cargo.toml Cargo.lock pyproject.toml core/src/lib.rs bindings-python/src/lib.rs \
  bindings-python/python/txcoord/_native.pyi; do
  grep -q "^[^/]*/$f\$" <<<"$listing" || die "$(basename "$SDIST") lacks $f"
done
listing="$(tar -tzf "$TGZ")"
PREBUILT_REL="bindings-node/prebuilt/txcoord.linux-x64-gnu.node"
for f in package.json Cargo.toml Cargo.lock core/src/lib.rs bindings-node/src/lib.rs bindings-node/Cargo.toml \
  bindings-node/scripts/install.js bindings-node/native.js "$PREBUILT_REL"; do
  grep -qx "package/$f" <<<"$listing" || die "$(basename "$TGZ") lacks $f"
done
if grep -qx 'package/bindings-node/txcoord.node' <<<"$listing"; then
  die "$(basename "$TGZ") contains a locally built bindings-node/txcoord.node"
fi
say "artifacts: $(basename "$WHEEL"), $(basename "$SDIST"), $(basename "$TGZ")"

# --- a PATH without Rust --------------------------------------------------------------------
cargo_bin="$(cd "${CARGO_HOME:-$HOME/.cargo}" 2>/dev/null && pwd -P)/bin" || cargo_bin="$HOME/.cargo/bin"
NORUST_PATH=""
IFS=: read -r -a path_dirs <<<"$PATH"
for d in "${path_dirs[@]}"; do
  [ -n "$d" ] || continue
  real="$(cd "$d" 2>/dev/null && pwd -P)" || continue
  case "$real" in "$cargo_bin" | "$HOME/.cargo/bin" | */.cargo/bin | */.rustup/*) continue ;; esac
  NORUST_PATH="${NORUST_PATH:+$NORUST_PATH:}$d"
done
# Everything the installs run goes through here: no Rust on PATH, no Rust variables.
norust() {
  env -u CARGO -u RUSTC -u RUSTUP_TOOLCHAIN -u CARGO_TARGET_DIR -u CARGO_BUILD_TARGET_DIR \
    -u RUSTFLAGS -u VIRTUAL_ENV -u PYTHONPATH PATH="$NORUST_PATH" "$@"
}
for tool in cargo rustc; do
  if found="$(norust bash -c "command -v $tool")"; then
    die "$tool is still on the reduced PATH ($found); cannot check an install without Rust"
  fi
done
say "PATH without Rust: command -v cargo fails, as it should"

# --- temporary directory and a throwaway redis-server ---------------------------------------
WORK="$(mktemp -d "${TMPDIR:-/tmp}/txcoord-check-dist.XXXXXX")"
REDIS_PID=""
cleanup() {
  local rc=$?
  if [ -n "$REDIS_PID" ]; then
    kill "$REDIS_PID" 2>/dev/null || true
    wait "$REDIS_PID" 2>/dev/null || true
  fi
  if [ "$rc" -ne 0 ] && [ -s "$WORK/redis/log" ]; then
    echo "check-dist: the end of the redis-server log:" >&2
    tail -n 20 "$WORK/redis/log" | sed 's/^/    /' >&2
  fi
  if [ "${TXCOORD_KEEP_TMP:-}" = 1 ]; then
    say "temporary files kept in $WORK"
  else
    rm -rf "$WORK"
    [ "$rc" -eq 0 ] || say "temporary files removed (TXCOORD_KEEP_TMP=1 keeps them)"
  fi
}
trap cleanup EXIT

command -v "$REDIS_SERVER" >/dev/null 2>&1 || die "$REDIS_SERVER not found (make deps installs it)"
redis_ping() {
  (
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf 'PING\r\n' >&3
    IFS= read -r -t 2 reply <&3 && [[ "$reply" == +PONG* ]]
  ) 2>/dev/null
}
mkdir -p "$WORK/redis"
for attempt in 1 2 3 4 5; do
  PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  [ "$PORT" != 6379 ] || continue
  "$REDIS_SERVER" --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$WORK/redis" \
    >"$WORK/redis/log" 2>&1 &
  REDIS_PID=$!
  for _ in $(seq 100); do
    if redis_ping "$PORT"; then break 2; fi
    kill -0 "$REDIS_PID" 2>/dev/null || break
    sleep 0.1
  done
  kill "$REDIS_PID" 2>/dev/null || true
  wait "$REDIS_PID" 2>/dev/null || true
  REDIS_PID=""
done
[ -n "$REDIS_PID" ] || die "could not start $REDIS_SERVER on a free port"
export REDIS_URL="redis://127.0.0.1:$PORT"
say "redis-server (pid $REDIS_PID) on $REDIS_URL"

# --- Python: the wheel in a fresh virtualenv ------------------------------------------------
n=0
for py in $PYTHONS; do
  n=$((n + 1))
  t=$(now)
  venv="$WORK/venv$n"
  norust "$py" -m venv "$venv" || die "'$py -m venv' failed (Debian: apt-get install python3-venv)"
  norust "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-index --no-deps "$WHEEL" ||
    die "pip could not install $(basename "$WHEEL") with $py"
  norust timeout -k 10 60 "$venv/bin/python" -I - "$venv" <<'EOF' || die "the Python check failed with $py (see above)"
import asyncio, os, sys
venv = sys.argv[1]
import txcoord, txcoord._native

def check(ok, what):
    if not ok:
        sys.exit(f"python: {what}")

check(txcoord.__file__.startswith(venv + os.sep), f"txcoord imported from {txcoord.__file__}, not from the venv")
check(txcoord._native.__file__.endswith(".abi3.so"), f"extension {txcoord._native.__file__} is not abi3")
hooks = [n for n in ("_test_panic", "_test_log") if hasattr(txcoord._native, n)]
check(not hooks, f"the release wheel carries test-only hooks {hooks}")

async def main():
    resource = "check-dist:python"
    async with txcoord.LockManager(os.environ["REDIS_URL"]) as manager:
        lock = await manager.acquire_lock(resource, ttl_ms=10_000, timeout_ms=5_000)
        check(lock is not None and lock.is_held, "acquire_lock returned no held lock")
        token = lock.fencing_token
        check(isinstance(token, int) and token > 0, f"fencing token {token!r}")
        print(f"python {sys.version.split()[0]}: took {lock.key} with fencing token {token}")
        await manager.release_lock(resource)
        check(not lock.is_held, "the lock is still held after release_lock")
        again = await manager.acquire_lock(resource, ttl_ms=10_000, timeout_ms=0)
        check(again is not None, "the lock could not be taken again after release (not released?)")
        check(again.fencing_token > token, f"second token {again.fencing_token} <= {token}")
        await manager.release_lock(resource)
        print(f"python {sys.version.split()[0]}: released; taken again with token {again.fencing_token}, released")

asyncio.run(main())
EOF
  say "python ($py): wheel installed and used in $(since "$t") s"
done

# --- Node: the tarball in a fresh npm project -----------------------------------------------
t=$(now)
PROJ="$WORK/npm-project"
mkdir -p "$PROJ" "$WORK/npm-cache" "$WORK/tmp"
printf '{ "name": "txcoord-dist-check", "version": "1.0.0", "private": true }\n' >"$PROJ/package.json"
trap - ERR
set +e
install_log="$(cd "$PROJ" && norust TMPDIR="$WORK/tmp" npm_config_cache="$WORK/npm-cache" \
  npm_config_update_notifier=false timeout -k 10 300 npm install --offline --no-audit --no-fund \
  --foreground-scripts "$TGZ" 2>&1)"
rc=$?
set -e
trap 'on_err $LINENO "$BASH_COMMAND"' ERR
install_s="$(since "$t")"
echo "$install_log" | sed 's/^/  npm: /'
[ "$rc" -eq 0 ] || die "npm install $(basename "$TGZ") failed (exit $rc)"
PKG="$PROJ/node_modules/txcoord"
[ -f "$PKG/package.json" ] && [ ! -L "$PKG" ] || die "$PKG is not an installed copy of the package"
# Nothing was compiled: no target/ anywhere, no build folder of the install script, no
# locally built addon, and quick.
if found="$(find "$PROJ" "$WORK/tmp" -name target -type d -print -quit)" && [ -n "$found" ]; then
  die "npm install compiled something: $found exists"
fi
if found="$(find "$WORK/tmp" -maxdepth 1 -name 'txcoord-build-*' -print -quit)" && [ -n "$found" ]; then
  die "the install script started a build ($found)"
fi
[ ! -e "$PKG/bindings-node/txcoord.node" ] || die "npm install built bindings-node/txcoord.node"
[ -f "$PKG/$PREBUILT_REL" ] || die "$PKG/$PREBUILT_REL is missing"
awk -v s="$install_s" -v m="$NPM_MAX_S" 'BEGIN { exit !(s <= m) }' ||
  die "npm install took $install_s s (more than $NPM_MAX_S s): did it build?"
if grep -q '^txcoord: ' <<<"$install_log"; then
  grep -q '^txcoord: using the prebuilt native addon' <<<"$install_log" ||
    die "the install script did not use the prebuilt addon"
else
  say "note: npm did not run the package's install script (not needed with the prebuilt addon)"
fi
say "node: npm install took $install_s s, compiled nothing"

cat >"$PROJ/check.js" <<'EOF'
'use strict'
const path = require('node:path')

function check(ok, what) {
  if (!ok) {
    console.error(`node: ${what}`)
    process.exit(1)
  }
}

const pkgDir = path.dirname(require.resolve('txcoord/package.json'))
check(pkgDir === path.join(__dirname, 'node_modules', 'txcoord'), `txcoord resolved to ${pkgDir}`)
const { LockManager } = require('txcoord')
const addons = Object.keys(require.cache).filter((f) => f.endsWith('.node'))
const prebuilt = path.join(pkgDir, 'bindings-node', 'prebuilt', 'txcoord.linux-x64-gnu.node')
check(addons.length === 1 && addons[0] === prebuilt, `loaded addons ${JSON.stringify(addons)}, expected ${prebuilt}`)
const native = require(prebuilt)
const hooks = ['__panicForTests', '__logForTests'].filter((n) => n in native)
check(hooks.length === 0, `the release addon carries test-only hooks ${hooks}`)

async function main() {
  const resource = 'check-dist:node'
  const manager = new LockManager(process.env.REDIS_URL)
  const lock = await manager.acquireLock(resource, 10000, 5000)
  check(lock !== null && lock.isHeld, 'acquireLock returned no held lock')
  const token = lock.fencingToken
  check(Number.isInteger(token) && token > 0, `fencing token ${token}`)
  console.log(`node ${process.version}: took ${lock.key} with fencing token ${token}`)
  await manager.releaseLock(resource)
  check(!lock.isHeld, 'the lock is still held after releaseLock')
  const again = await manager.acquireLock(resource, 10000, 0)
  check(again !== null, 'the lock could not be taken again after release (not released?)')
  check(again.fencingToken > token, `second token ${again.fencingToken} <= ${token}`)
  await manager.releaseLock(resource)
  await manager.close()
  console.log(`node ${process.version}: released; taken again with token ${again.fencingToken}, released`)
}

main().catch((err) => {
  console.error('node:', err)
  process.exit(1)
})
EOF
t=$(now)
(cd "$PROJ" && norust timeout -k 10 60 node check.js) || die "the Node check failed (see above)"
(cd "$PROJ" && norust timeout -k 10 60 node --input-type=module \
  -e "import { LockManager } from 'txcoord'; if (typeof LockManager !== 'function') process.exit(1)") ||
  die "import { LockManager } from 'txcoord' (ESM) failed"
say "node: tarball used (CommonJS and ESM) in $(since "$t") s"

say "all checks passed in $(since "$t_start") s"
