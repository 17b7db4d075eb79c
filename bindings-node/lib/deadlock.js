// SPDX-License-Identifier: MIT OR Apache-2.0
// The seed's `SagaDeadlockDetector(sagaRepository, logger)`, with the seed's logger and
// metrics objects called by the native detector.
'use strict'

const native = require('../native.js')
const { toClient } = require('./client.js')
const { weakTarget, callbackFailed } = require('./callbacks.js')
const { nativeRepository } = require('./saga.js')

// SagaDeadlockDetector → its native detector (for the monitor).
const nativeDetectors = new WeakMap()

// `log(level, message, fieldsJson)` for the native detector: the seed's
// `logger.warn('Deadlock detected', { cycle })`. Weak, as the repository's functions.
function logFunction(logger) {
  if (logger === undefined || logger === null) return null
  if (typeof logger !== 'object' && typeof logger !== 'function') {
    throw native.wrongType('logger', 'an object with warn() and info() methods (console works) or null', logger)
  }
  for (const m of ['warn', 'info']) {
    if (typeof logger[m] !== 'function') throw native.wrongType('logger', `an object with a ${m}() method (console has one)`, logger)
  }
  const target = weakTarget(logger, 'logger')
  return (level, message, fields) => {
    try {
      target()[level](message, JSON.parse(fields))
    } catch (e) {
      callbackFailed(`the logger's ${level}()`, e)
    }
  }
}

function metricsFunction(metrics) {
  if (metrics === undefined || metrics === null) return null
  if (typeof metrics.recordDeadlock !== 'function') {
    throw native.wrongType('metrics', 'an object with a recordDeadlock(resolutionMethod) method (the seed\'s TransactionMetricsCollector)', metrics)
  }
  const target = weakTarget(metrics, 'metrics')
  return (method) => {
    try {
      target().recordDeadlock(method)
    } catch (e) {
      callbackFailed('metrics.recordDeadlock()', e)
    }
  }
}

/**
 * The seed's `SagaDeadlockDetector(sagaRepository, logger)`, on the lock registry (without a
 * logger, its records go where txcoord's do: see `setLogger`). `options`:
 * `redis` (the Redis of the locks: required when `sagaRepository` is not a
 * RedisSagaRepository), `metrics` (anything with `recordDeadlock(resolutionMethod)`).
 */
class SagaDeadlockDetector {
  #n
  // The user's objects the native side calls (through WeakRefs): alive as long as the detector.
  #callees

  constructor(sagaRepository, logger, options) {
    if (options !== undefined && options !== null && typeof options !== 'object') {
      throw native.wrongType('options', 'an object', options)
    }
    const o = options || {}
    const redis = o.redis === undefined || o.redis === null ? null : toClient(o.redis)
    this.#n = new native.SagaDeadlockDetector(
      nativeRepository(sagaRepository),
      logFunction(logger),
      redis,
      metricsFunction(o.metrics),
    )
    this.#callees = [sagaRepository, logger, o.metrics]
    nativeDetectors.set(this, this.#n)
  }

  // A call's promise keeps the user's objects alive until it settles, even if the detector
  // itself is dropped meanwhile.
  #keeping(promise) {
    const callees = this.#callees
    return promise.finally(() => callees)
  }

  /** `{ hasDeadlock, cycles, affectedSagas, explained }`; changes nothing. */
  detectDeadlock() {
    return this.#keeping(this.#n.detectDeadlock())
  }

  /**
   * Breaks the deadlocks among the sagas of `cycles` (the seed's arrays of saga ids, explained
   * cycles, or `detectDeadlock()`'s result); resolves to the cycles broken.
   */
  resolveDeadlock(cycles) {
    return this.#keeping(this.#n.resolveDeadlock(cycles))
  }

  /** The wait-for graph: `{ nodes, edges }`. */
  waitForGraph() {
    return this.#n.waitForGraph()
  }
}

/** The native detector of a SagaDeadlockDetector, or undefined. */
function nativeDetector(value) {
  return nativeDetectors.get(value)
}

module.exports = { SagaDeadlockDetector, nativeDetector }
