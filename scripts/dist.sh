#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# `make dist`: the release artifacts, in dist/ (TXCOORD_DIST_DIR):
#   txcoord-<v>-cp39-abi3-<linux tag>_x86_64.whl   one wheel for every CPython >= 3.9 (abi3)
#   txcoord-<v>.tar.gz                              the Python sdist (builds with Rust anywhere)
#   txcoord-<v>.tgz                                 the npm package: the prebuilt addon for this
#                                                   platform (linux-x64-gnu here) and the Rust
#                                                   sources, so other platforms build at install
# Each artifact is built once, in release mode, in the workspace's one target directory
# (target/, or $CARGO_TARGET_DIR): an unchanged tree rebuilds nothing. scripts/check-dist.sh
# installs these files without Rust.
#
# Needs: Rust (cargo), Python >= 3.9 with venv (maturin is installed into .venv, pinned as in
# bindings-python/requirements-dev.txt, unless $MATURIN names one), Node >= 20 with npm.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
DIST="${TXCOORD_DIST_DIR:-$ROOT/dist}"
PYTHON="${PYTHON:-python3}"
VENV="${TXCOORD_VENV:-$ROOT/.venv}"
CARGO="${CARGO:-cargo}"

say() { echo "dist: $*"; }
die() { echo "dist: FAILED: $*" >&2; exit 1; }
# seconds since start, one decimal
t0=$(date +%s.%N)
elapsed() { awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

command -v "$CARGO" >/dev/null 2>&1 || die "cargo not found: install Rust >= 1.89 (https://rustup.rs)"
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || die "node and npm are needed (Node >= 20)"

# maturin: $MATURIN, else the project's .venv (what scripts/test-python.sh uses), made if missing.
MATURIN="${MATURIN:-}"
if [ -z "$MATURIN" ]; then
  if [ ! -x "$VENV/bin/python" ]; then
    say "creating $VENV for maturin"
    "$PYTHON" -m venv "$VENV" || die "'$PYTHON -m venv' failed (Debian: apt-get install python3-venv)"
  fi
  MATURIN="$VENV/bin/maturin"
  if [ ! -x "$MATURIN" ]; then
    pin="$(grep -E '^maturin==' bindings-python/requirements-dev.txt || echo maturin)"
    say "installing $pin into $VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check "$pin"
  fi
fi

# The one target directory every build of this workspace uses.
TARGET_DIR="$("$CARGO" metadata --format-version 1 --no-deps --locked |
  node -e 'let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => console.log(JSON.parse(s).target_directory))')"
say "cargo target directory: $TARGET_DIR"

mkdir -p "$DIST"
rm -f "$DIST"/txcoord-*.whl "$DIST"/txcoord-*.tar.gz "$DIST"/txcoord-*.tgz

# 1. Python: the abi3 wheel and the sdist (no compilation). Plain `maturin build --release`
#    flags (no --strip, which changes the final rustc call): any other release build of the
#    Python package in this target directory then shares cargo's fingerprints with this one.
say "building the abi3 wheel (maturin build --release)"
VIRTUAL_ENV="$VENV" "$MATURIN" build --release --locked --interpreter "$VENV/bin/python" --out "$DIST" --quiet
sdist_log="$("$MATURIN" sdist --out "$DIST" 2>&1)" || { echo "$sdist_log" >&2; die "maturin sdist failed"; }
wheels=("$DIST"/txcoord-*-cp39-abi3-*.whl)
[ "${#wheels[@]}" -eq 1 ] && [ -f "${wheels[0]}" ] || die "expected one cp39-abi3 wheel in $DIST, found: $(ls "$DIST")"
say "wheel done ($(elapsed) s)"

# 2. Node: the addon (release), exactly as the install script builds it from a checkout, so the
#    two share cargo's fingerprints; copied (stripped) to bindings-node/prebuilt/, which
#    package.json `files` packs and .gitignore ignores.
say "building the Node addon (cargo build --release -p txcoord-node)"
"$CARGO" build --release --locked -p txcoord-node --quiet
platform="$(node -p 'require("./bindings-node/scripts/platform.js").platformName()')"
case "$platform" in
  darwin-*) lib=libtxcoord_node.dylib ;;
  win32-*) lib=txcoord_node.dll ;;
  *) lib=libtxcoord_node.so ;;
esac
prebuilt="bindings-node/prebuilt/txcoord.$platform.node"
rm -rf bindings-node/prebuilt
mkdir -p bindings-node/prebuilt
cp "$TARGET_DIR/release/$lib" "$prebuilt.tmp"
if command -v strip >/dev/null 2>&1 && [ "${platform%%-*}" = linux ]; then strip --strip-unneeded "$prebuilt.tmp"; fi
mv "$prebuilt.tmp" "$prebuilt"
node -e 'require(process.argv[1])' "$ROOT/$prebuilt" || die "$prebuilt does not load"

say "packing the npm tarball (npm pack)"
tgz="$(npm pack --ignore-scripts --silent --pack-destination "$DIST" | tail -n 1)"
[ -f "$DIST/$tgz" ] || die "npm pack made no $DIST/$tgz"
listing="$(tar -tzf "$DIST/$tgz")"
grep -qx "package/$prebuilt" <<<"$listing" || die "$tgz does not contain $prebuilt"

say "done in $(elapsed) s:"
(cd "$DIST" && ls -l txcoord-*)
