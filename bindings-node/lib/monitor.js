// SPDX-License-Identifier: MIT OR Apache-2.0
// The seed's `SagaMonitor(sagaRepository, metricsCollector, alertManager, deadlockDetector)` on
// the core's: the user's repository, metrics object, alert manager and recovery handlers are
// called by the native monitor; while it runs it keeps the process alive, as the seed's
// setInterval does, until `stop()`.
'use strict'

const native = require('../native.js')
const { toClient } = require('./client.js')
const { weakTarget, callbackFailed } = require('./callbacks.js')
const { nativeRepository } = require('./saga.js')
const { nativeDetector } = require('./deadlock.js')
const { nativeCollector } = require('./metrics.js')
const { nativeSink } = require('./alert.js')

const METRICS_EXPECTED =
  "a metrics collector (a TransactionMetricsCollector, or an object with the seed's recordGauge(name, value) and recordHistogram(name, value))"

// What the monitor records into: our collector directly, or the user's object's methods (what
// they throw is reported, never thrown into the monitor).
function monitorMetrics(metrics) {
  const own = nativeCollector(metrics)
  if (own !== undefined) return native.MonitorMetrics.collector(own)
  if (
    metrics === null ||
    (typeof metrics !== 'object' && typeof metrics !== 'function') ||
    typeof metrics.recordGauge !== 'function' ||
    typeof metrics.recordHistogram !== 'function'
  ) {
    throw native.wrongType('metricsCollector', METRICS_EXPECTED, metrics)
  }
  const target = weakTarget(metrics, 'metrics collector')
  const call = (method) => (name, value) => {
    try {
      target()[method](name, value)
    } catch (e) {
      callbackFailed(`metricsCollector.${method}()`, e)
    }
  }
  return native.MonitorMetrics.foreign(call('recordGauge'), call('recordHistogram'))
}

// A recovery handler (`onRetry`, `onCompensate`): called with the saga record as saved, its
// promise awaited; what it throws or rejects with fails the recovery (alerted, as the seed's).
function handler(name, fn) {
  if (fn === undefined || fn === null) return null
  if (typeof fn !== 'function') throw native.wrongType(name, 'a function taking the saga record', fn)
  const target = weakTarget(fn, name)
  return async (saga) => target()(saga)
}

/**
 * The seed's `SagaMonitor(sagaRepository, metricsCollector, alertManager, deadlockDetector)`:
 * starts on construction and, every `interval` ms, alerts long-running sagas (per-type
 * limits), alerts and recovers stuck ones (retry while `retryCount < maxRetries`, else
 * compensate), detects and breaks deadlocks and records the gauges. Among the monitors of one
 * `electionName` only the leader acts; every change it makes to a saga is a conditional save.
 * `options`: `redis` (the Redis of the election; default the detector's), `interval`,
 * `limits`, `defaultLimit`, `electionName`, `leaderTtl`, `candidateId`, `maxRetries`, `start`,
 * `onRetry(saga)`, `onCompensate(saga)`. While it runs, it keeps the process alive: `stop()`.
 */
class SagaMonitor {
  #n
  // The user's objects the native side calls (through WeakRefs): alive as long as the monitor.
  #callees

  constructor(sagaRepository, metricsCollector, alertManager, deadlockDetector, options) {
    if (options !== undefined && options !== null && typeof options !== 'object') {
      throw native.wrongType('options', 'an object', options)
    }
    const o = options || {}
    const repository = nativeRepository(sagaRepository)
    const metrics = monitorMetrics(metricsCollector)
    const alerts = nativeSink(alertManager)
    const detector = nativeDetector(deadlockDetector)
    if (detector === undefined) throw native.wrongType('deadlockDetector', 'a SagaDeadlockDetector', deadlockDetector)
    const redis = o.redis === undefined || o.redis === null ? null : toClient(o.redis)
    this.#n = new native.SagaMonitor(
      repository,
      metrics,
      alerts,
      detector,
      redis,
      options === null ? undefined : options,
      handler('onRetry', o.onRetry),
      handler('onCompensate', o.onCompensate),
    )
    this.#callees = [sagaRepository, metricsCollector, alertManager, deadlockDetector, o.onRetry, o.onCompensate]
    SagaMonitor.#keep(this.#n.running(), this)
  }

  // While the monitor runs, the pending native promise keeps the process alive and, through
  // its handler, the monitor itself (with the objects it calls), as the seed's setInterval
  // does; `stop()` settles it.
  static #keep(running, monitor) {
    running.then(
      () => monitor,
      () => monitor,
    )
  }

  // A call's promise keeps the user's objects alive until it settles.
  #keeping(promise) {
    const callees = this.#callees
    return promise.finally(() => callees)
  }

  /**
   * Runs one pass now (after the one in progress, if any): campaigns if this monitor does not
   * lead, then, if it leads, runs every step. Resolves to `{ leader, longRunning, stuck,
   * retried, compensated, deadlocks, errors }`; a failing step is in `errors`, never thrown.
   */
  tick() {
    return this.#keeping(this.#n.tick())
  }

  /**
   * Stops the monitor: no pass starts after this resolves, the one in progress has ended, the
   * leadership is given up, and the monitor no longer keeps the process alive.
   */
  stop() {
    return this.#keeping(this.#n.stop())
  }

  /** `await using monitor = new SagaMonitor(...)` stops it at the end of the scope. */
  [Symbol.asyncDispose]() {
    return this.stop()
  }

  /** Whether this monitor leads (and so acts). */
  get isLeader() {
    return this.#n.isLeader
  }

  /** This monitor's leader term while it leads (a fencing number), else `null`. */
  get term() {
    return this.#n.term
  }

  /** This monitor's id in the election. */
  get candidateId() {
    return this.#n.candidateId
  }

  /** The time between passes, in ms. */
  get interval() {
    return this.#n.interval
  }
}

module.exports = { SagaMonitor }
