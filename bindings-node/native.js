// SPDX-License-Identifier: MIT OR Apache-2.0
// Loads the native addon built from bindings-node/src (by `npm install` or `npm run build`).
'use strict'

const path = require('node:path')

const file = path.join(__dirname, 'txcoord.node')
let binding
try {
  binding = require(file)
} catch (err) {
  const e = new Error(
    `txcoord: cannot load the native addon ${file}: ${err && err.message}\n` +
      'It is built from source when the package is installed (this needs a Rust toolchain: ' +
      'https://rustup.rs). In a checkout, run `npm run build`; ' +
      'to rebuild an installed copy, run `npm rebuild txcoord`.',
  )
  e.code = 'TXCOORD_NATIVE_MISSING'
  e.cause = err
  throw e
}

module.exports = binding
