// SPDX-License-Identifier: MIT OR Apache-2.0
// Where the addon for the running platform lives, shared by native.js (the loader) and
// scripts/install.js. Two places, tried in this order:
//   bindings-node/txcoord.node                         built on this machine (the install script
//                                                      from the Rust sources, `npm run build`)
//   bindings-node/prebuilt/txcoord.<platform>.node     shipped in the npm tarball (`make dist`);
//                                                      platform names as napi-rs spells them:
//                                                      linux-x64-gnu, linux-arm64-musl,
//                                                      darwin-arm64, win32-x64-msvc, ...
'use strict'

const fs = require('node:fs')
const path = require('node:path')

const dir = path.resolve(__dirname, '..')

function isMusl() {
  // The cheap test first (napi-rs does the same): glibc's ldd is a script naming GNU libc.
  try {
    const ldd = fs.readFileSync('/usr/bin/ldd', 'latin1')
    if (ldd.includes('musl')) return true
    if (ldd.includes('GNU C Library') || ldd.includes('glibc')) return false
  } catch {
    // no /usr/bin/ldd: ask Node itself
  }
  try {
    const report = process.report && process.report.getReport()
    const header = report && (typeof report === 'string' ? JSON.parse(report) : report).header
    if (header) return !header.glibcVersionRuntime
  } catch {
    // fall through
  }
  return false
}

/** `linux-x64-gnu`, `darwin-arm64`, `win32-x64-msvc`, ... for the running process. */
function platformName() {
  const { platform, arch } = process
  if (platform === 'linux') return `linux-${arch}-${isMusl() ? 'musl' : 'gnu'}`
  if (platform === 'win32') return `win32-${arch}-msvc`
  return `${platform}-${arch}`
}

module.exports = {
  /** The addon built on this machine. */
  localAddon: path.join(dir, 'txcoord.node'),
  /** The prebuilt addon for the running platform (it may not exist). */
  prebuiltAddon: () => path.join(dir, 'prebuilt', `txcoord.${platformName()}.node`),
  platformName,
}
