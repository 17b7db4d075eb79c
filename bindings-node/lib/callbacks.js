// SPDX-License-Identifier: MIT OR Apache-2.0
// A user's own objects (saga repository, logger, metrics, ...) as the native side calls them:
// reached through WeakRefs, their failures reported, never thrown into txcoord.
'use strict'

const native = require('../native.js')

// `() => value` through a WeakRef. The functions the native side holds for as long as a
// detector (or monitor) lives reach the user's objects only this way: the JavaScript wrapper
// holds them, so an object that holds its detector is collected with it.
function weakTarget(value, what) {
  const ref = new WeakRef(value)
  return () => {
    const v = ref.deref()
    if (v === undefined) throw new Error(`txcoord: the ${what} was garbage-collected`)
    return v
  }
}

// A call into the user's logger or metrics that threw: reported, never thrown into txcoord.
function callbackFailed(what, e) {
  native.warn(`txcoord: ${what} threw: ${e && e.stack ? e.stack : e}`)
}

module.exports = { weakTarget, callbackFailed }
