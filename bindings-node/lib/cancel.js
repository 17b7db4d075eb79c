// SPDX-License-Identifier: MIT OR Apache-2.0
// `options.signal` (an AbortSignal) cancelling a wait, through the native CancelToken.
'use strict'

const native = require('../native.js')

// `options.signal`, checked without throwing synchronously.
function signalOf(options) {
  if (options === undefined || options === null || typeof options !== 'object') return undefined
  const signal = options.signal
  if (signal === undefined) return undefined
  if (!(signal instanceof AbortSignal)) throw native.wrongType('signal', 'an AbortSignal', signal)
  return signal
}

// Runs `start(token)` with a CancelToken tied to `signal` (none without one). When the signal
// aborted the wait, which then resolved with `nothing`, rejects with `signal.reason` instead.
function cancellable(signal, nothing, start) {
  if (signal === undefined) return start(undefined)
  if (signal.aborted) return Promise.reject(signal.reason)
  const token = new native.CancelToken()
  const onAbort = () => token.cancel()
  signal.addEventListener('abort', onAbort, { once: true })
  return start(token).then(
    (value) => {
      signal.removeEventListener('abort', onAbort)
      if (value === nothing && token.cancelled) throw signal.reason
      return value
    },
    (e) => {
      signal.removeEventListener('abort', onAbort)
      throw e
    },
  )
}

module.exports = { signalOf, cancellable }
