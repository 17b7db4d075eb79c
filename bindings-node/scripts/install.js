// SPDX-License-Identifier: MIT OR Apache-2.0
// npm `install` script. When the package carries a prebuilt addon for the running platform
// (bindings-node/prebuilt/txcoord.<platform>.node, put in the tarball by `make dist`) and it
// loads, it does nothing: native.js uses that file and no Rust is needed. Otherwise (another
// platform, a prebuilt that does not load here, e.g. an older glibc, or a git checkout) it
// builds the addon from the Rust sources shipped in the package (core/ and bindings-node/)
// into bindings-node/txcoord.node. Building needs a Rust toolchain (cargo) and a C linker.
// Environment:
//   TXCOORD_SKIP_BUILD=1    do nothing (the addon is provided otherwise)
//   TXCOORD_FORCE_BUILD=1   build even when an addon (prebuilt or not) is already present
//   CARGO_TARGET_DIR        where cargo builds (default: target/ in a checkout, else a temporary
//                           folder removed afterwards, so node_modules does not keep ~200 MB)
'use strict'

const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const { localAddon: addon, prebuiltAddon, platformName } = require('./platform.js')

const root = path.resolve(__dirname, '..', '..')
const env = process.env

function log(msg) {
  console.log(`txcoord: ${msg}`)
}

if (env.TXCOORD_SKIP_BUILD) {
  log('TXCOORD_SKIP_BUILD is set; not building the native addon')
  process.exit(0)
}
// `npm install` / `npm ci` inside the checkout itself installs the dev dependencies; the addon
// is built by `npm run build` (debug) or scripts/test-node.sh there.
if (env.INIT_CWD && path.resolve(env.INIT_CWD) === root) {
  log('installing in the txcoord checkout itself; build the addon with `npm run build`')
  process.exit(0)
}
// In a git checkout the addon is always built from its sources (a prebuilt file left there by
// `make dist` may be older than them).
const checkout = fs.existsSync(path.join(root, '.git'))
let prebuiltProblem = ''
if (!checkout && !env.TXCOORD_FORCE_BUILD) {
  const prebuilt = prebuiltAddon()
  if (fs.existsSync(prebuilt)) {
    // Load it in a child process: a prebuilt that does not load here (e.g. it needs a newer
    // glibc) must not stop the build from source.
    const check = spawnSync(process.execPath, ['-e', 'require(process.argv[1])', prebuilt], { encoding: 'utf8' })
    if (check.status === 0) {
      log(`using the prebuilt native addon ${path.relative(root, prebuilt)} (nothing to build)`)
      process.exit(0)
    }
    prebuiltProblem = `the prebuilt addon ${path.relative(root, prebuilt)} does not load here: ${
      (check.stderr || '').trim().split('\n').find((l) => /Error/.test(l)) || `exit ${check.status}`
    }`
    log(`${prebuiltProblem}; building from source`)
  } else if (fs.existsSync(addon)) {
    log('using the native addon already present')
    process.exit(0)
  } else {
    log(`no prebuilt native addon for ${platformName()}; building it from source`)
  }
}

const cargo = env.CARGO || 'cargo'
const probe = spawnSync(cargo, ['--version'], { encoding: 'utf8' })
if (probe.status !== 0) {
  console.error(
    `txcoord: ${
      checkout
        ? 'installed from a git checkout, the native addon is built from source'
        : prebuiltProblem || `there is no prebuilt native addon for ${platformName()}`
    }, and building it needs a Rust toolchain (cargo was not found).\n` +
      'Install Rust >= 1.89 from https://rustup.rs (and a C linker), then run `npm rebuild txcoord`.',
  )
  process.exit(1)
}

const tempTarget = !env.CARGO_TARGET_DIR && !checkout
const targetDir =
  env.CARGO_TARGET_DIR || (checkout ? path.join(root, 'target') : fs.mkdtempSync(path.join(os.tmpdir(), 'txcoord-build-')))
log(`building the native addon with ${probe.stdout.trim()} (release; this takes a few minutes)`)
const args = ['build', '--release', '--locked', '-p', 'txcoord-node', '--manifest-path', path.join(root, 'Cargo.toml')]
const build = spawnSync(cargo, args, {
  cwd: root,
  stdio: 'inherit',
  env: { ...env, CARGO_TARGET_DIR: targetDir },
})
try {
  if (build.status !== 0) {
    console.error(`txcoord: \`cargo ${args.join(' ')}\` failed (exit ${build.status})`)
    process.exit(1)
  }
  const lib = { darwin: 'libtxcoord_node.dylib', win32: 'txcoord_node.dll' }[process.platform] || 'libtxcoord_node.so'
  const built = path.join(targetDir, 'release', lib)
  // Copy to a temporary name, then rename: a running process may have the old addon mapped.
  const tmp = `${addon}.${process.pid}.tmp`
  fs.copyFileSync(built, tmp)
  fs.renameSync(tmp, addon)
  log(`built ${path.relative(root, addon)}`)
} finally {
  if (tempTarget) fs.rmSync(targetDir, { recursive: true, force: true })
}
