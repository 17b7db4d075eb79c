// SPDX-License-Identifier: MIT OR Apache-2.0
// The seed's `TransactionMetricsCollector(metricsRegistry)` on the core's collector: its text
// exposition, its metrics served from a prom-client registry beside the user's own, and the
// core's `/metrics` endpoint (`serveMetrics`).
'use strict'

const native = require('../native.js')
const { toClient } = require('./client.js')
const { callbackFailed } = require('./callbacks.js')

// TransactionMetricsCollector → its native collector (for the monitor, the detector and the
// Alertmanager sink, which record into it directly).
const nativeCollectors = new WeakMap()
// TransactionMetricsCollector → what registers families that appeared natively (an
// Alertmanager sink counting into it) in its prom-client registries.
const resyncs = new WeakMap()

// The seed's `MetricsRegistry`: createHistogram/createCounter.
function isSeedRegistry(value) {
  return (
    value !== null &&
    typeof value === 'object' &&
    typeof value.createHistogram === 'function' &&
    typeof value.createCounter === 'function'
  )
}

function isPromClientRegistry(value) {
  return (
    value !== null &&
    typeof value === 'object' &&
    typeof value.registerMetric === 'function' &&
    typeof value.getSingleMetric === 'function'
  )
}

const REGISTRY_KINDS =
  "the seed's MetricsRegistry (createHistogram() and createCounter()) or a prom-client Registry (registerMetric() and getSingleMetric())"

/**
 * The seed's `TransactionMetricsCollector`: its four metrics (names, help texts, labels and
 * buckets exactly as the seed defines them), the monitor's gauges, lock metrics of the clients
 * it watches, alert deliveries. `metricsRegistry`: the seed's `MetricsRegistry` (an object with
 * `createHistogram` and `createCounter`: the seed's four metrics are created and recorded
 * there, as the seed does); a prom-client `Registry` (every metric served from it, see
 * `register`); or nothing. `options.names`: `'legacy'` (default), `'convention'` or `'both'`.
 */
class TransactionMetricsCollector {
  #n
  // prom-client registries it was registered in → the names of the families registered there.
  #registries = new Map()
  // One snapshot of the families per scrape: every metric of a registry reads the same one.
  #snapshot = null
  // The recording calls (a method, or a name given to recordGauge/recordHistogram) whose
  // family every registry has: later calls of the same kind add series, never families.
  #synced = new Set()

  constructor(metricsRegistry, options) {
    const seedStyle = isSeedRegistry(metricsRegistry)
    if (!seedStyle && metricsRegistry !== undefined && metricsRegistry !== null && !isPromClientRegistry(metricsRegistry)) {
      throw native.wrongType('metricsRegistry', REGISTRY_KINDS, metricsRegistry)
    }
    this.#n = seedStyle
      ? native.TransactionMetricsCollector.withRegistry(metricsRegistry, options)
      : new native.TransactionMetricsCollector(options)
    nativeCollectors.set(this, this.#n)
    resyncs.set(this, () => {
      this.#snapshot = null
      if (this.#registries.size > 0) this.#sync()
    })
    if (!seedStyle && metricsRegistry !== undefined && metricsRegistry !== null) this.register(metricsRegistry)
  }

  /** `'legacy'`, `'convention'` or `'both'`: the names the monitor's gauges are exported under. */
  get names() {
    return this.#n.names
  }

  /** The seed's `recordDistributedTransaction(transactionType, status, duration)` (ms). */
  recordDistributedTransaction(transactionType, status, duration) {
    this.#n.recordDistributedTransaction(transactionType, status, duration)
    this.#recorded('recordDistributedTransaction')
  }

  /** The seed's `recordSagaExecution(sagaType, status, duration)` (ms). */
  recordSagaExecution(sagaType, status, duration) {
    this.#n.recordSagaExecution(sagaType, status, duration)
    this.#recorded('recordSagaExecution')
  }

  /** The seed's `recordCompensation(sagaType, step, reason)`. */
  recordCompensation(sagaType, step, reason) {
    this.#n.recordCompensation(sagaType, step, reason)
    this.#recorded('recordCompensation')
  }

  /** The seed's `recordDeadlock(resolutionMethod)`. */
  recordDeadlock(resolutionMethod) {
    this.#n.recordDeadlock(resolutionMethod)
    this.#recorded('recordDeadlock')
  }

  /** The seed's `MetricsCollector.recordGauge(name, value)`, as its monitor calls it. */
  recordGauge(name, value) {
    this.#n.recordGauge(name, value)
    this.#recorded(`gauge ${name}`)
  }

  /** The seed's `MetricsCollector.recordHistogram(name, value)`. */
  recordHistogram(name, value) {
    this.#n.recordHistogram(name, value)
    this.#recorded(`histogram ${name}`)
  }

  /** Exports the lock metrics (`txcoord_lock_*`) of `client` (a URL, `Client` or ioredis). */
  watchClient(client) {
    this.#n.watchClient(toClient(client))
    this.#snapshot = null
    if (this.#registries.size > 0) this.#sync()
  }

  /** The Prometheus text exposition (format 0.0.4) of every metric. */
  metrics() {
    return this.#n.metrics()
  }

  /**
   * Registers the collector's metrics into a prom-client `Registry`, one metric per family,
   * so that `registry.metrics()` serves them beside the user's own. A family that appears
   * later (a client watched, a name first recorded) is registered when it does. Throws what
   * the registry throws for a name it already has.
   */
  register(registry) {
    if (!isPromClientRegistry(registry)) {
      throw native.wrongType('registry', "a prom-client Registry (with registerMetric() and getSingleMetric())", registry)
    }
    if (!this.#registries.has(registry)) this.#registries.set(registry, new Set())
    this.#snapshot = null
    // every family it exports, also those without a series yet, then any other it has now
    this.#register(new Map(this.#n.descriptions().map((f) => [f.name, f])), true)
    this.#sync(true)
  }

  // After a recording call of kind `key`: the next scrape reads afresh, and the family the
  // call touched is registered if it is new.
  #recorded(key) {
    this.#snapshot = null
    if (this.#registries.size === 0 || this.#synced.has(key)) return
    this.#sync()
    this.#synced.add(key)
  }

  // The families as prom-client's `metric.get()` gives them, by name: read once per scrape
  // (until the end of the current task), then registered where they are missing.
  #families() {
    if (this.#snapshot === null) {
      const snapshot = new Map(this.#n.families().map((f) => [f.name, f]))
      this.#snapshot = snapshot
      queueMicrotask(() => {
        if (this.#snapshot === snapshot) this.#snapshot = null
        this.#register(snapshot)
      })
    }
    return this.#snapshot
  }

  // Registers, in every registry, the families it does not have yet. Only `register()` throws
  // what a registry throws (a name it already has); later, such a family is reported and left
  // out of that registry.
  #sync(strict = false) {
    this.#register(this.#families(), strict)
  }

  #register(families, strict = false) {
    for (const [registry, names] of this.#registries) {
      for (const [name, family] of families) {
        if (names.has(name)) continue
        names.add(name)
        try {
          registry.registerMetric(this.#promMetric(family))
        } catch (e) {
          if (strict) {
            names.delete(name)
            throw e
          }
          callbackFailed(`registering ${name} in a prom-client registry`, e)
        }
      }
    }
  }

  // One family as a prom-client metric: its values read from the collector at each scrape.
  #promMetric({ name, help, type }) {
    // A family that appeared since the last registration is registered after this scrape
    // (#families), for the next one.
    const read = () => {
      const f = this.#families().get(name)
      return { name, help, type, aggregator: 'sum', values: f === undefined ? [] : f.values }
    }
    return {
      name,
      help,
      type,
      aggregator: 'sum',
      get: async () => read(),
      // prom-client's resetMetrics(): the collector's values are its own, never reset
      reset() {},
    }
  }
}

/** The native collector of a TransactionMetricsCollector, or undefined. */
function nativeCollector(value) {
  return nativeCollectors.get(value)
}

/** After a change the native side made to `collector`'s families (new ones registered). */
function familiesChanged(collector) {
  const resync = resyncs.get(collector)
  if (resync !== undefined) resync()
}

/**
 * Serves `collector`'s metrics at `http://HOST:PORT/metrics` (the core's endpoint):
 * `options.host` (default `127.0.0.1`; `0.0.0.0` to be scraped from other hosts) and
 * `options.port` (default 9464; 0 for a free port). Resolves to the running server (`url`,
 * `host`, `port`, `close()`).
 */
function serveMetrics(collector, options) {
  const n = nativeCollectors.get(collector)
  if (n === undefined) {
    return Promise.reject(native.wrongType('collector', 'a TransactionMetricsCollector', collector))
  }
  return native.serveMetrics(n, options).then((server) => new MetricsServer(server))
}

/** A running `/metrics` endpoint (see `serveMetrics`). */
class MetricsServer {
  #n

  constructor(server) {
    this.#n = server
  }

  /** `http://HOST:PORT/metrics`. */
  get url() {
    return this.#n.url
  }

  /** The address it listens on. */
  get host() {
    return this.#n.host
  }

  /** The port it listens on (the one the system chose for port 0). */
  get port() {
    return this.#n.port
  }

  /** Stops accepting connections, lets requests in progress finish (at most 5 s), frees the port. */
  close() {
    return this.#n.close()
  }

  /** `await using server = await serveMetrics(...)` closes it. */
  [Symbol.asyncDispose]() {
    return this.close()
  }
}

module.exports = { TransactionMetricsCollector, MetricsServer, serveMetrics, nativeCollector, familiesChanged }
