// SPDX-License-Identifier: MIT OR Apache-2.0
// Where the core's log records go: `setLogger(logger)`, or process warnings.
'use strict'

const native = require('../native.js')

let logger = null

// The default destination: warnings and errors as process warnings (each record carries its
// code), which Node prints unless silenced (`--disable-warning=TxcoordWarning`,
// `--no-warnings`) and `process.on('warning')` observes.
function emitWarning(record, detail) {
  if (record.code) process.emitWarning(record.message, { type: 'TxcoordWarning', code: record.code, detail })
}

// Called by the native part, on this thread, with the records queued since its last call.
function deliver(records) {
  const target = logger
  for (const record of records) {
    if (target === null) {
      emitWarning(record)
      continue
    }
    const method = target[record.level]
    if (typeof method !== 'function') continue
    try {
      method.call(target, record.message)
    } catch (e) {
      emitWarning(record, `the logger's ${record.level}() threw: ${e && e.stack ? e.stack : e}`)
    }
  }
}

native.setLogSink(deliver)

/**
 * Where txcoord's log records go (a lock lost is a `warn` record, a failed release in
 * `releaseAllLocks` an `error`). `logger`: anything with `error` and `warn` methods, and
 * optionally `info` and `debug` (console, pino, winston, ...), each called with one string; or
 * `null` for the default: warnings and errors as process warnings (`process.emitWarning`,
 * type `TxcoordWarning`, code `TXCOORD_WARNING` or `TXCOORD_ERROR`). `options.level`: the
 * most verbose level delivered, `'silent'`, `'error'`, `'warn'`, `'info'` or `'debug'`
 * (default `'info'` with a logger, `'warn'` without; process warnings are never more verbose
 * than `'warn'`).
 */
function setLogger(newLogger, options) {
  if (newLogger === undefined) newLogger = null
  if (newLogger !== null) {
    if (typeof newLogger !== 'object' && typeof newLogger !== 'function') {
      throw native.wrongType('logger', 'an object with error() and warn() methods, or null', newLogger)
    }
    for (const m of ['error', 'warn']) {
      if (typeof newLogger[m] !== 'function') {
        throw native.wrongType('logger', `an object with an ${m}() method (console, pino and winston loggers have one)`, newLogger)
      }
    }
  }
  if (options !== undefined && options !== null && typeof options !== 'object') {
    throw native.wrongType('options', 'an object', options)
  }
  native.setLogLevel(options ? options.level : undefined, newLogger !== null)
  logger = newLogger
}

module.exports = { setLogger }
