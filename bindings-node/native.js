// SPDX-License-Identifier: MIT OR Apache-2.0
// Loads the native addon: the one built on this machine (bindings-node/txcoord.node, by the
// install script from the Rust sources or by `npm run build`) if there is one, else the
// prebuilt addon for this platform shipped in the npm tarball
// (bindings-node/prebuilt/txcoord.<platform>.node, see scripts/platform.js).
'use strict'

const fs = require('node:fs')
const { localAddon, prebuiltAddon, platformName } = require('./scripts/platform.js')

function load() {
  const tried = []
  let cause
  const candidates = fs.existsSync(localAddon) ? [localAddon, prebuiltAddon()] : [prebuiltAddon()]
  for (const file of candidates) {
    if (!fs.existsSync(file)) {
      tried.push(`${file}: not found`)
      continue
    }
    try {
      return require(file)
    } catch (err) {
      tried.push(`${file}: ${err && err.message}`)
      cause = cause || err
    }
  }
  const e = new Error(
    `txcoord: cannot load the native addon for ${platformName()}:\n  ${tried.join('\n  ')}\n` +
      'There is a prebuilt addon for linux-x64-gnu only; elsewhere it is built from source when ' +
      'the package is installed (this needs Rust >= 1.89 and a C linker: https://rustup.rs). ' +
      'In a checkout, run `npm run build`; to rebuild an installed copy, run `npm rebuild txcoord`.',
  )
  e.code = 'TXCOORD_NATIVE_MISSING'
  if (cause) e.cause = cause
  throw e
}

module.exports = load()
