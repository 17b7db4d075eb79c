// SPDX-License-Identifier: MIT OR Apache-2.0
// TransactionMetricsCollector through Node: the seed's names, help texts, labels and buckets in
// its text; served beside a user's own metrics from a prom-client registry; txcoord's /metrics
// endpoint; lock metrics of a watched client; a seed-style MetricsRegistry; bad arguments.
// Test names follow tests/python/test_metrics.py.
'use strict'

const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const http = require('node:http')
const net = require('node:net')

const { Counter, Histogram, Registry } = require('prom-client')
const { Client, LockManager, TransactionMetricsCollector, serveMetrics } = require('txcoord')
const { startRedis } = require('./helpers.js')

let server

before(async () => {
  server = await startRedis()
})

after(async () => {
  await server.stop()
})

const SEED = {
  // name: [help, labels, buckets]
  distributed_transaction_duration_seconds: [
    'Duration of distributed transactions',
    ['transaction_type', 'status'],
    ['0.1', '0.5', '1', '2', '5', '10', '30', '60', '120', '300', '+Inf'],
  ],
  saga_execution_duration_seconds: [
    'Duration of saga execution',
    ['saga_type', 'status'],
    ['0.5', '1', '2', '5', '10', '20', '30', '60', '120', '300', '+Inf'],
  ],
  saga_compensations_total: ['Total number of saga compensations', ['saga_type', 'step', 'reason'], []],
  deadlocks_detected_total: ['Total number of deadlocks detected', ['resolution_method'], []],
}

/** GET `url`: `{ status, body }`. */
function fetchText(url) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { timeout: 10000 }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c) => (body += c))
      res.on('end', () => resolve({ status: res.statusCode, body }))
    })
    req.on('timeout', () => req.destroy(new Error(`GET ${url} timed out`)))
    req.on('error', reject)
  })
}

/** Whether something accepts connections on 127.0.0.1:`port`. */
function accepts(port) {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port, timeout: 2000 })
    s.once('connect', () => {
      s.destroy()
      resolve(true)
    })
    s.once('error', () => resolve(false))
    s.once('timeout', () => {
      s.destroy()
      resolve(false)
    })
  })
}

function recordTheSeedsFour(c) {
  c.recordDistributedTransaction('checkout', 'success', 750)
  c.recordSagaExecution('CreateOrderSaga', 'completed', 1500)
  c.recordCompensation('CreateOrderSaga', 'payment', 'declined')
  c.recordDeadlock('abort_saga')
}

test("the text carries the seed's names, labels and buckets", () => {
  const c = new TransactionMetricsCollector()
  assert.equal(c.names, 'legacy')
  recordTheSeedsFour(c)
  const text = c.metrics()
  for (const [name, [help, labels, buckets]] of Object.entries(SEED)) {
    assert.ok(text.includes(`# HELP ${name} ${help}\n`), name)
    assert.ok(text.includes(`# TYPE ${name} ${buckets.length > 0 ? 'histogram' : 'counter'}\n`), name)
    const sample = name + (buckets.length > 0 ? '_bucket' : '')
    const lines = text.split('\n').filter((l) => l.startsWith(`${sample}{`))
    assert.ok(lines.length > 0, name)
    const names = [...lines[0].matchAll(/(\w+)="/g)].map((m) => m[1]).filter((n) => n !== 'le')
    assert.deepEqual(names.sort(), [...labels].sort(), lines[0])
    if (buckets.length > 0) assert.deepEqual([...lines.join('\n').matchAll(/le="([^"]+)"/g)].map((m) => m[1]), buckets)
  }
  // label names sorted, as the Rust encoder writes them
  assert.ok(text.includes('distributed_transaction_duration_seconds_bucket{status="success",transaction_type="checkout",le="0.5"} 0\n'))
  assert.ok(text.includes('distributed_transaction_duration_seconds_bucket{status="success",transaction_type="checkout",le="1"} 1\n'))
  assert.ok(text.includes('saga_execution_duration_seconds_sum{saga_type="CreateOrderSaga",status="completed"} 1.5\n'))
  assert.ok(text.includes('saga_compensations_total{reason="declined",saga_type="CreateOrderSaga",step="payment"} 1\n'))
  assert.ok(text.includes('deadlocks_detected_total{resolution_method="abort_saga"} 1\n'))
})

test("the monitor's gauges under the chosen names", () => {
  const [legacy, convention, both] = ['legacy', 'convention', 'both'].map((names) => new TransactionMetricsCollector(null, { names }))
  for (const c of [legacy, convention, both]) {
    c.recordGauge('sagas_active_total', 4)
    c.recordHistogram('saga_duration_seconds', 2.5)
  }
  assert.match(legacy.metrics(), /\nsagas_active_total 4\n/)
  assert.doesNotMatch(legacy.metrics(), /txcoord_sagas_active/)
  assert.match(convention.metrics(), /\ntxcoord_sagas_active 4\n/)
  assert.doesNotMatch(convention.metrics(), /sagas_active_total/)
  assert.match(both.metrics(), /\nsagas_active_total 4\n/)
  assert.match(both.metrics(), /\ntxcoord_sagas_active 4\n/)
  assert.ok(legacy.metrics().includes('saga_duration_seconds_bucket{le="5"} 1\n'))
})

test("prom-client serves ours beside the user's own", async () => {
  const registry = new Registry()
  const mine = new Counter({ name: 'orders_placed_total', help: 'Orders placed', labelNames: ['shop'], registers: [registry] })
  mine.labels('berlin').inc(3)
  const ours = new TransactionMetricsCollector()
  ours.register(registry)
  recordTheSeedsFour(ours)
  const value = async (name, sample, labels) => {
    const m = await registry.getSingleMetric(name).get()
    const found = m.values.find(
      (v) => (v.metricName || name) === sample && Object.entries(labels).every(([k, x]) => String(v.labels[k]) === x),
    )
    return found === undefined ? undefined : found.value
  }
  assert.equal(await value('orders_placed_total', 'orders_placed_total', { shop: 'berlin' }), 3)
  assert.equal(
    await value('saga_compensations_total', 'saga_compensations_total', {
      saga_type: 'CreateOrderSaga',
      step: 'payment',
      reason: 'declined',
    }),
    1,
  )
  const text = await registry.metrics()
  assert.ok(text.includes('# TYPE saga_compensations_total counter\n'), text)
  assert.ok(text.includes('# TYPE saga_execution_duration_seconds histogram\n'), text)
  assert.ok(text.includes('orders_placed_total{shop="berlin"} 3\n'), text)
  assert.match(text, /\nsaga_execution_duration_seconds_bucket\{[^}]*le="2"[^}]*\} 1\n/)
  // recorded after registration: read at each scrape
  ours.recordDeadlock('manual')
  assert.match(await registry.metrics(), /\ndeadlocks_detected_total\{resolution_method="manual"\} 1\n/)
  // a registry refuses a second collector with the same names, as for its own metrics
  assert.throws(() => new TransactionMetricsCollector().register(registry), /already been registered/)
})

test('a registry given at construction takes the collector', async () => {
  const registry = new Registry()
  const c = new TransactionMetricsCollector(registry)
  c.recordSagaExecution('RefundSaga', 'failed', 100)
  assert.match(
    await registry.metrics(),
    /\nsaga_execution_duration_seconds_count\{saga_type="RefundSaga",status="failed"\} 1\n/,
  )
})

test('serveMetrics answers until closed', async () => {
  const c = new TransactionMetricsCollector()
  recordTheSeedsFour(c)
  const s = await serveMetrics(c, { host: '127.0.0.1', port: 0 })
  let port
  try {
    port = s.port
    assert.equal(s.host, '127.0.0.1')
    assert.ok(port > 0, String(port))
    assert.equal(s.url, `http://127.0.0.1:${port}/metrics`)
    const r = await fetchText(s.url)
    assert.equal(r.status, 200)
    assert.ok(r.body.includes('deadlocks_detected_total{resolution_method="abort_saga"} 1\n'), r.body)
    assert.equal((await fetchText(`http://127.0.0.1:${port}/other`)).status, 404)
  } finally {
    await s[Symbol.asyncDispose]()
  }
  // closed: the port is released
  assert.equal(await accepts(port), false)
})

test("a watched client's lock metrics appear", async () => {
  const c = new TransactionMetricsCollector()
  assert.doesNotMatch(c.metrics(), /txcoord_lock_acquired_total/)
  const client = new Client(server.url, { keyPrefix: 'watched:' })
  c.watchClient(client)
  const manager = new LockManager(client)
  try {
    await manager.using('watched-lock', async () => {})
  } finally {
    await manager.close()
  }
  assert.match(c.metrics(), /^txcoord_lock_acquired_total 1$/m, c.metrics())
})

test('bad metrics arguments name themselves', async () => {
  const c = new TransactionMetricsCollector()
  const cases = [
    [() => c.recordSagaExecution('T', 'done', 1), 'TXCOORD_INVALID_ARGUMENT', 'status'],
    [() => c.recordDistributedTransaction('T', 'success', -1), 'TXCOORD_INVALID_ARGUMENT', 'duration'],
    [() => c.recordDistributedTransaction('T', 'success', '1s'), 'TXCOORD_INVALID_TYPE', 'duration'],
    [() => c.recordCompensation('', 'step', 'r'), 'TXCOORD_INVALID_ARGUMENT', 'sagaType'],
    [() => c.recordDeadlock('retry'), 'TXCOORD_INVALID_ARGUMENT', 'resolutionMethod'],
    [() => c.recordGauge('g', true), 'TXCOORD_INVALID_TYPE', 'value'],
    [() => new TransactionMetricsCollector(null, { names: 'dashboards' }), 'TXCOORD_INVALID_ARGUMENT', 'names'],
    [() => new TransactionMetricsCollector({}), 'TXCOORD_INVALID_TYPE', 'metricsRegistry'],
    [() => c.register({}), 'TXCOORD_INVALID_TYPE', 'registry'],
  ]
  for (const [call, code, argument] of cases) {
    assert.throws(call, { code, argument }, `${code} ${argument}`)
  }
  const served = [
    [{ port: 65536 }, 'TXCOORD_INVALID_ARGUMENT', 'port'],
    [{ port: true }, 'TXCOORD_INVALID_TYPE', 'port'],
    [{ host: 1 }, 'TXCOORD_INVALID_TYPE', 'host'],
    [{ host: '' }, 'TXCOORD_INVALID_ARGUMENT', 'host'],
  ]
  for (const [options, code, argument] of served) {
    await assert.rejects(serveMetrics(c, options), { code, argument }, JSON.stringify(options))
  }
  await assert.rejects(serveMetrics({}, { port: 0 }), { code: 'TXCOORD_INVALID_TYPE', argument: 'collector' })
  assert.doesNotMatch(c.metrics(), /distributed_transaction_duration_seconds_bucket/, 'nothing recorded')
})

/** The seed's MetricsRegistry over prom-client's own metrics, recording what it was asked. */
function seedRegistry() {
  const registry = new Registry()
  const created = []
  return {
    registry,
    created,
    createHistogram(config) {
      created.push(['histogram', config])
      return new Histogram({ ...config, registers: [registry] })
    },
    createCounter(config) {
      created.push(['counter', config])
      return new Counter({ ...config, registers: [registry] })
    },
  }
}

const SEED_CREATED = [
  [
    'histogram',
    {
      name: 'distributed_transaction_duration_seconds',
      help: 'Duration of distributed transactions',
      labelNames: ['transaction_type', 'status'],
      buckets: [0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300],
    },
  ],
  [
    'histogram',
    {
      name: 'saga_execution_duration_seconds',
      help: 'Duration of saga execution',
      labelNames: ['saga_type', 'status'],
      buckets: [0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300],
    },
  ],
  [
    'counter',
    {
      name: 'saga_compensations_total',
      help: 'Total number of saga compensations',
      labelNames: ['saga_type', 'step', 'reason'],
    },
  ],
  ['counter', { name: 'deadlocks_detected_total', help: 'Total number of deadlocks detected', labelNames: ['resolution_method'] }],
]

test("a seed-style registry gets the seed's four metrics", async () => {
  const seed = seedRegistry()
  const c = new TransactionMetricsCollector(seed)
  assert.deepEqual(seed.created, SEED_CREATED, "created in the seed's order, with its names, help, labels and buckets")
  recordTheSeedsFour(c)
  const text = await seed.registry.metrics()
  assert.match(text, /\ndistributed_transaction_duration_seconds_sum\{transaction_type="checkout",status="success"\} 0.75\n/)
  assert.match(text, /\nsaga_execution_duration_seconds_bucket\{le="1",saga_type="CreateOrderSaga",status="completed"\} 0\n/)
  assert.match(text, /\nsaga_execution_duration_seconds_bucket\{le="2",saga_type="CreateOrderSaga",status="completed"\} 1\n/)
  assert.match(text, /\nsaga_compensations_total\{saga_type="CreateOrderSaga",step="payment",reason="declined"\} 1\n/)
  assert.match(text, /\ndeadlocks_detected_total\{resolution_method="abort_saga"\} 1\n/)
  // served from the user's registry; the collector keeps the rest and does not export them twice
  const own = c.metrics()
  for (const name of Object.keys(SEED)) assert.ok(!own.includes(name), name)
  c.recordGauge('sagas_active_total', 2)
  assert.match(c.metrics(), /\nsagas_active_total 2\n/)
  // values are judged before the registry sees them
  assert.throws(() => c.recordSagaExecution('T', 'done', 1), { code: 'TXCOORD_INVALID_ARGUMENT' })
  assert.doesNotMatch(await seed.registry.metrics(), /saga_type="T"/)
})

test("a seed registry's exceptions reach the caller as themselves", () => {
  const refusing = seedRegistry()
  const refusal = new RangeError('no room for saga_compensations_total')
  refusing.createCounter = () => {
    throw refusal
  }
  assert.throws(() => new TransactionMetricsCollector(refusing), (e) => e === refusal)

  const down = new Error('statsd down')
  const broken = {
    labels() {
      return this
    },
    observe() {
      throw down
    },
    inc() {
      throw down
    },
  }
  const c = new TransactionMetricsCollector({ createHistogram: () => broken, createCounter: () => broken })
  assert.throws(() => c.recordDistributedTransaction('checkout', 'failure', 10), (e) => e === down)
  assert.throws(() => c.recordDeadlock('manual'), (e) => e === down)
})
