// SPDX-License-Identifier: MIT OR Apache-2.0
// Alerts: the seed's `alertManager.send({ severity, summary, description, metadata })`. The
// built-in sinks (the log, Prometheus Alertmanager) and a user's own object with `send(alert)`,
// as the native monitor calls them; alerts cross to and from the native part as JSON.
'use strict'

const native = require('../native.js')
const { weakTarget } = require('./callbacks.js')
const { nativeCollector, familiesChanged } = require('./metrics.js')

// LogAlertSink / AlertmanagerSink → its native sink.
const nativeSinks = new WeakMap()

// The JSON of an alert given to `send`, or a rejection naming `alert`.
function alertJson(alert) {
  if (alert === null || typeof alert !== 'object') throw native.wrongType('alert', 'an alert object ({ severity, summary, description, metadata })', alert)
  try {
    return JSON.stringify(alert)
  } catch (e) {
    throw native.wrongType('alert', `an object JSON.stringify() can write (${e && e.message})`, alert)
  }
}

class NativeSink {
  #n

  constructor(n) {
    this.#n = n
    nativeSinks.set(this, n)
  }

  /** The seed's `send(alert)`: `{ severity, summary, description, metadata }`, and optionally `name`, `labels`, `resolved`. */
  send(alert) {
    let json
    try {
      json = alertJson(alert)
    } catch (e) {
      return Promise.reject(e)
    }
    return this.#n.send(json)
  }
}

/**
 * Alerts to txcoord's log (see `setLogger`): warnings and criticals as `warn` records, the
 * rest as `info`.
 */
class LogAlertSink extends NativeSink {
  constructor() {
    super(native.AlertSink.log())
  }
}

/**
 * Alerts posted to Prometheus Alertmanager (API v2) at every base URL of `urls`, the replicas
 * of one cluster. `options`: `timeout` (ms per post, default 5000), `endsAfter` (ms: active
 * alerts are sent with `endsAt` this far ahead), `generatorUrl`, `labels` (added to every
 * alert), `metrics` (a TransactionMetricsCollector counting deliveries per Alertmanager).
 */
class AlertmanagerSink extends NativeSink {
  #n

  constructor(urls, options) {
    if (options !== undefined && options !== null && typeof options !== 'object') {
      throw native.wrongType('options', 'an object', options)
    }
    const metrics = options ? options.metrics : undefined
    let collector = null
    if (metrics !== undefined && metrics !== null) {
      collector = nativeCollector(metrics)
      if (collector === undefined) throw native.wrongType('metrics', 'a TransactionMetricsCollector', metrics)
    }
    const n = native.AlertSink.alertmanager(urls, options === null ? undefined : options, collector)
    super(n)
    this.#n = n
    if (collector !== null) familiesChanged(metrics)
  }

  /** The Alertmanagers posted to (their URLs without credentials). */
  get alertmanagers() {
    return this.#n.alertmanagers
  }

  /** Deliveries each Alertmanager accepted: `{ url: count }`. */
  sent() {
    return this.#n.sent()
  }

  /** Deliveries that failed, per Alertmanager: `{ url: count }`. */
  sendFailures() {
    return this.#n.sendFailures()
  }
}

const SINK_METHODS = 'an alert manager (an object with a send(alert) method, or LogAlertSink / AlertmanagerSink)'

// The native sink for what the seed calls `alertManager`: a built-in one, or an adapter calling
// the user's `send(alert)` (reached through a WeakRef: the monitor's wrapper holds it).
function nativeSink(sink) {
  const own = nativeSinks.get(sink)
  if (own !== undefined) return own
  if (sink === null || (typeof sink !== 'object' && typeof sink !== 'function') || typeof sink.send !== 'function') {
    throw native.wrongType('alertManager', SINK_METHODS, sink)
  }
  const target = weakTarget(sink, 'alert manager')
  return native.AlertSink.foreign(async (json) => target().send(JSON.parse(json)))
}

module.exports = { LogAlertSink, AlertmanagerSink, nativeSink }
