#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# The Node package's checks: dev dependencies, the addon (debug build), native.d.ts regenerated
# and diffed, tsc over the declarations, examples and the seed's call sites, then the tests in
# tests/node (node's test runner; each file starts its own redis-server on a free port).
# Needs: Rust (cargo), Node >= 20 with npm; redis-server (scripts/install-deps.sh installs it).
set -euo pipefail
cd "$(dirname "$0")/.."

# Tests start their own servers: never one named by an inherited URL.
unset REDIS_URL BENCH_REDIS_URL
# redis-server when missing (apt, without leaving Debian's service running on 6379).
scripts/install-deps.sh

# Dev dependencies (the package's own install script does not build here: see its header).
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  TXCOORD_SKIP_BUILD=1 npm ci --no-audit --no-fund
fi

# The addon (debug, with the test-only hooks `__panicForTests` and `__logForTests` that release
# builds leave out) and its generated declarations. The committed native.d.ts is the release
# surface: the generated one less the hooks' declarations, which must match it.
mkdir -p target/test-node
npx --no-install napi build --manifest-path bindings-node/Cargo.toml --output-dir bindings-node \
  --package-json-path package.json --features test-hooks --dts ../target/test-node/native.d.ts
node -e '
  const fs = require("node:fs")
  const [from, to] = process.argv.slice(1)
  const blocks = fs.readFileSync(from, "utf8").split("\n\n")
  const kept = blocks.filter((b) => !/^export declare function __\w+ForTests\(/m.test(b))
  if (kept.length !== blocks.length - 2) throw new Error(`expected 2 test-only declarations in ${from}`)
  fs.writeFileSync(to, kept.join("\n\n"))
' target/test-node/native.d.ts bindings-node/native.d.ts
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  if ! git diff --exit-code -- bindings-node/native.d.ts; then
    echo "test-node: bindings-node/native.d.ts changed when regenerated: commit the new version" >&2
    exit 1
  fi
fi

# Declarations, examples and the seed's call sites type-check (and compile for the tests).
npx --no-install tsc -p tests/node/tsconfig.json

node --test --test-timeout=120000 tests/node/
