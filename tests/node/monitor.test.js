// SPDX-License-Identifier: MIT OR Apache-2.0
// The saga monitor through Node: the seed's behaviours (long-running alerts with per-type
// limits, stuck sagas retried while retryCount < 3 then compensated, the user's handlers,
// deadlocks broken, the seed's gauges) and what the seed left broken (an unset retry count,
// every instance acting, no way to stop), with txcoord's and the user's own repositories,
// alert sinks and metrics objects; alerts as plain objects; a dropped monitor collected; bad
// arguments. Scenario names follow tests/python/test_monitor.py. Each file starts its own
// redis-server; each test its own key prefix.
'use strict'

const { test, before, after, afterEach } = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')

const {
  Client,
  LogAlertSink,
  RedisSagaRepository,
  SagaDeadlockDetector,
  SagaMonitor,
  SagaStatus,
  TransactionMetricsCollector,
  setLogger,
} = require('txcoord')
const { startRedis, waitFor, nodeChild, compiledTs } = require('./helpers.js')
const { sagaManagers, startWaits, hold, graphWith, releaseAll } = require('./cycles.js')

let server
let prefixes = 0

before(async () => {
  server = await startRedis()
})

after(async () => {
  await server.stop()
})

afterEach(() => setLogger(null))

/** A user's alert sink with an async send, recording every alert. */
class Alerts {
  constructor() {
    this.sent = []
  }

  async send(alert) {
    await null // a real await on the event loop
    this.sent.push(alert)
  }

  named(name) {
    return this.sent.filter((a) => a.name === name)
  }
}

/** A user's metrics object: the seed's MetricsCollector, recording every call. */
class Metrics {
  constructor() {
    this.calls = []
  }

  recordGauge(name, value) {
    this.calls.push(['gauge', name, value])
  }

  recordHistogram(name, value) {
    this.calls.push(['histogram', name, value])
  }

  last(name) {
    const values = this.calls.filter((c) => c[1] === name).map((c) => c[2])
    return values.length === 0 ? undefined : values[values.length - 1]
  }
}

/** Warnings of txcoord's log, captured (setLogger). */
function captureLog() {
  const warnings = []
  setLogger({ warn: (m) => warnings.push(m), error: (m) => warnings.push(m), info() {} })
  return warnings
}

const ago = (seconds) => new Date(Date.now() - seconds * 1000)

async function save(repo, id, type, ageS, idleS, retryCount = 0) {
  await repo.save({ id, type, createdAt: ago(ageS), updatedAt: ago(idleS), retryCount })
}

/** A repository and detector of its own (a key prefix per test): stuck after 60 s idle. */
function setup() {
  const client = new Client(server.url, { keyPrefix: `mon${++prefixes}:` })
  const repo = new RedisSagaRepository(client, { defaultStuckAfter: 60000 })
  return { client, repo, detector: new SagaDeadlockDetector(repo, null) }
}

test('long-running sagas, per type limit, are alerted then resolved', async () => {
  const { repo, detector } = setup()
  // the seed's limits: UserRegistrationSaga 2 min, CreateOrderSaga 5 min; ours: QuickSaga 10 s
  await save(repo, 'u1', 'UserRegistrationSaga', 180, 1)
  await save(repo, 'o1', 'CreateOrderSaga', 180, 1)
  await save(repo, 'q1', 'QuickSaga', 30, 1)
  await save(repo, 'd1', 'OtherSaga', 200, 1) // under the default 5 min
  const alerts = new Alerts()
  const m = new SagaMonitor(repo, new Metrics(), alerts, detector, { start: false, limits: { QuickSaga: 10000 } })
  try {
    const r = await m.tick()
    assert.deepEqual(
      [r.leader, r.errors, r.longRunning],
      [true, [], 2],
      JSON.stringify(r),
    )
    const long = alerts.named('LongRunningSaga')
    assert.deepEqual(long.map((a) => a.metadata.sagaId).sort(), ['q1', 'u1'], "CreateOrderSaga's 5 min not reached")
    const a = long.find((x) => x.metadata.sagaId === 'u1')
    assert.equal(a.severity, 'warning')
    assert.equal(a.summary, 'Long-running saga detected: UserRegistrationSaga')
    assert.match(a.description, /^Saga u1 has been running for \d+ms$/)
    assert.equal(a.metadata.sagaType, 'UserRegistrationSaga')
    assert.equal(a.metadata.status, 'EXECUTING')
    assert.ok(a.metadata.runtime >= 179000 && a.metadata.runtime < 300000, a.metadata.runtime)
    assert.deepEqual(a.labels, { saga_type: 'UserRegistrationSaga', saga_id: 'u1' })
    assert.equal(a.resolved, false)
    // u1 completes: its alert is resolved at the next pass, q1's is sent again
    const done = await repo.findById('u1')
    done.status = SagaStatus.COMPLETED
    await repo.save(done)
    alerts.sent.length = 0
    await m.tick()
    assert.deepEqual(
      alerts.named('LongRunningSaga').map((x) => [x.metadata.sagaId, x.resolved]),
      [
        ['q1', false],
        ['u1', true],
      ],
    )
  } finally {
    await m.stop()
  }
})

test('stuck sagas are retried below the limit, then compensated', async () => {
  const { repo, detector } = setup()
  await save(repo, 'never-retried', 'PaymentSaga', 600, 300, 0)
  await repo.save({ id: 'unset-count', type: 'PaymentSaga', createdAt: ago(600), updatedAt: ago(300), retryCount: null })
  await save(repo, 'retried-twice', 'PaymentSaga', 600, 300, 2)
  await save(repo, 'retried-thrice', 'PaymentSaga', 600, 300, 3)
  const calls = []
  const alerts = new Alerts()
  const m = new SagaMonitor(repo, new Metrics(), alerts, detector, {
    start: false,
    onRetry: async (saga) => {
      await null
      calls.push(['retry', saga.id, saga.status, saga.retryCount])
    },
    // a plain function works too
    onCompensate: (saga) => calls.push(['compensate', saga.id, saga.status, saga.retryCount]),
  })
  try {
    const r = await m.tick()
    assert.deepEqual([r.stuck, r.retried, r.compensated, r.errors], [4, 3, 1, []], JSON.stringify(r))
    const a = await repo.findById('never-retried')
    assert.deepEqual([a.status, a.retryCount], [SagaStatus.EXECUTING, 1])
    assert.equal(a.term, m.term, "written under the leader's term")
    assert.equal(a.stuckReason, 'no-progress')
    const u = await repo.findById('unset-count')
    assert.deepEqual([u.status, u.retryCount], [SagaStatus.EXECUTING, 1], 'an unset count is 0: retried, not compensated')
    const b = await repo.findById('retried-twice')
    assert.deepEqual([b.status, b.retryCount], [SagaStatus.EXECUTING, 3])
    const c = await repo.findById('retried-thrice')
    assert.deepEqual([c.status, c.retryCount], [SagaStatus.COMPENSATING, 3])
    assert.deepEqual(calls.sort(), [
      ['compensate', 'retried-thrice', 'COMPENSATING', 3],
      ['retry', 'never-retried', 'EXECUTING', 1],
      ['retry', 'retried-twice', 'EXECUTING', 3],
      ['retry', 'unset-count', 'EXECUTING', 1],
    ])
    const stuck = alerts.named('StuckSaga')
    assert.equal(stuck.length, 4)
    const s = stuck.find((x) => x.metadata.sagaId === 'never-retried')
    assert.equal(s.severity, 'critical')
    assert.equal(s.summary, 'Stuck saga detected: PaymentSaga')
    assert.match(s.description, /^Saga never-retried appears to be stuck in EXECUTING status/)
    assert.equal(s.metadata.status, 'EXECUTING')
    assert.ok(s.metadata.stuckDuration >= 299000, s.metadata.stuckDuration)
    assert.equal(typeof s.metadata.lastUpdated, 'number')
    assert.deepEqual(s.labels, { saga_type: 'PaymentSaga', saga_id: 'never-retried', reason: 'no-progress' })
    // their updates make them no longer stuck: nothing is retried twice for one episode
    const again = await m.tick()
    assert.deepEqual([again.stuck, again.retried, again.compensated], [0, 0, 0], JSON.stringify(again))
    assert.equal(calls.length, 4)
  } finally {
    await m.stop()
  }
})

test('maxRetries is an option', async () => {
  const { repo, detector } = setup()
  await save(repo, 's', 'PaymentSaga', 600, 300, 1)
  const m = new SagaMonitor(repo, new Metrics(), new Alerts(), detector, { start: false, maxRetries: 1 })
  try {
    const r = await m.tick()
    assert.deepEqual([r.retried, r.compensated], [0, 1], JSON.stringify(r))
    assert.equal((await repo.findById('s')).status, SagaStatus.COMPENSATING)
  } finally {
    await m.stop()
  }
})

test('a failing handler is logged and alerted, and the monitor goes on', async () => {
  const { repo, detector } = setup()
  await save(repo, 's1', 'PaymentSaga', 600, 300)
  const warnings = captureLog()
  const alerts = new Alerts()
  const metrics = new Metrics()
  const m = new SagaMonitor(repo, metrics, alerts, detector, {
    start: false,
    onRetry: async (saga) => {
      throw new Error(`cannot retry ${saga.id}`)
    },
  })
  try {
    const r = await m.tick()
    assert.deepEqual([r.stuck, r.errors], [1, []], JSON.stringify(r))
    await waitFor(() => warnings.some((w) => w.includes('onRetry') && w.includes('cannot retry s1')), {
      what: "the handler's failure logged",
    })
    const failed = alerts.named('SagaRecoveryFailed')
    assert.equal(failed.length, 1)
    assert.equal(failed[0].summary, 'Saga recovery failed')
    assert.equal(failed[0].description, 'Failed to recover stuck saga s1')
    assert.match(failed[0].metadata.error, /cannot retry s1/)
    assert.equal(metrics.last('sagas_stuck_total'), 1, 'the metrics step ran after it')
    // the status was written before the handler ran: the saga moved on
    assert.equal((await repo.findById('s1')).retryCount, 1)
    assert.equal((await m.tick()).leader, true)
  } finally {
    await m.stop()
  }
})

test('a failing alert sink or metrics object never stops a pass', async () => {
  const { repo, detector } = setup()
  await save(repo, 's1', 'PaymentSaga', 600, 300)
  const warnings = captureLog()
  const sink = {
    send() {
      throw new Error('sink down')
    },
  }
  const rejecting = { send: async () => Promise.reject(new Error('sink rejected')) }
  const metrics = {
    recordGauge() {
      throw new Error('metrics down')
    },
    recordHistogram() {
      throw new Error('metrics down')
    },
  }
  const m = new SagaMonitor(repo, metrics, sink, detector, { start: false })
  const m2 = new SagaMonitor(repo, new Metrics(), rejecting, detector, { start: false, electionName: 'other' })
  try {
    const r = await m.tick()
    assert.deepEqual([r.stuck, r.retried, r.errors], [1, 1, []], JSON.stringify(r))
    await waitFor(() => warnings.some((w) => w.includes('sink down')) && warnings.some((w) => w.includes('metrics down')), {
      what: 'both failures logged',
    })
    await save(repo, 's2', 'PaymentSaga', 600, 300)
    const r2 = await m2.tick()
    assert.deepEqual([r2.stuck, r2.errors], [1, []], JSON.stringify(r2))
    await waitFor(() => warnings.some((w) => w.includes('sink rejected')), { what: 'the rejection logged' })
  } finally {
    await m.stop()
    await m2.stop()
  }
})

test('deadlocks are detected, alerted and broken', async () => {
  // the sagas' locks on the default client (no prefix), as the detector's repository sees them
  const repo = new RedisSagaRepository(server.url, { defaultStuckAfter: 60000 })
  for (const [id, priority] of [
    ['d1', 2],
    ['d2', 1],
  ]) {
    await repo.save({ id, type: 'CreateOrderSaga', priority })
  }
  const alerts = new Alerts()
  const collector = new TransactionMetricsCollector()
  const logged = []
  const detector = new SagaDeadlockDetector(repo, { warn: (m) => logged.push(m), info: (m) => logged.push(m) }, { metrics: collector })
  const managers = sagaManagers(server.url, { d1: 2, d2: 1 })
  await hold(managers, 'd1', 'res:d1')
  await hold(managers, 'd2', 'res:d2')
  const waits = startWaits(managers, [
    ['d1', 'res:d2'],
    ['d2', 'res:d1'],
  ])
  const m = new SagaMonitor(repo, collector, alerts, detector, { start: false, electionName: 'deadlocks' })
  try {
    await graphWith(detector, 2)
    const r = await m.tick()
    assert.deepEqual([r.deadlocks, r.errors], [1, []], JSON.stringify(r))
    const [a] = alerts.named('SagaDeadlock')
    assert.equal(a.severity, 'critical')
    assert.equal(a.summary, 'Deadlock detected in saga execution')
    assert.equal(a.description, 'Detected 1 deadlock cycles involving 2 sagas')
    assert.deepEqual([...a.metadata.affectedSagas].sort(), ['d1', 'd2'])
    assert.equal(a.metadata.cycles.length, 1)
    const victim = await repo.findById('d2')
    assert.equal(victim.status, SagaStatus.FAILED)
    assert.equal(victim.error, 'Aborted due to deadlock resolution')
    assert.match(collector.metrics(), /deadlocks_detected_total\{resolution_method="abort_saga"\} 1\n/)
    assert.deepEqual(logged, ['Deadlock detected', 'Saga aborted to resolve deadlock'], "the detector's logger, as the seed's")
    const outcome = await waitFor(() => waits.done.get('d2'), { timeoutMs: 15000, what: "d2's wait to end" })
    assert.equal(outcome.error && outcome.error.code, 'TXCOORD_DEADLOCK_VICTIM')
  } finally {
    await m.stop()
    await waits.stop()
    await releaseAll(managers)
  }
})

test('metrics follow the seed, and the success rate is never NaN', async () => {
  const { repo, detector } = setup()
  await save(repo, 'a', 'T', 1, 1)
  const metrics = new Metrics()
  const m = new SagaMonitor(repo, metrics, new Alerts(), detector, { start: false })
  try {
    await m.tick()
    assert.equal(metrics.last('sagas_active_total'), 1)
    assert.equal(metrics.last('sagas_completed_total'), 0)
    assert.equal(metrics.last('sagas_failed_total'), 0)
    assert.equal(metrics.last('saga_success_rate'), 1, 'no finished saga: not NaN')
    assert.equal(metrics.last('sagas_stuck_total'), 0)
    for (const [id, status] of [
      ['c1', 'COMPLETED'],
      ['c2', 'COMPLETED'],
      ['f1', 'FAILED'],
    ]) {
      await repo.save({ id, type: 'T', status, createdAt: ago(4), updatedAt: ago(0) })
    }
    await m.tick()
    assert.ok(Math.abs(metrics.last('saga_success_rate') - 2 / 3) < 1e-9)
    assert.equal(metrics.last('sagas_completed_total'), 2)
    // each finished saga's duration observed once (about 4 s each), not the average
    const durations = metrics.calls.filter((c) => c[0] === 'histogram' && c[1] === 'saga_duration_seconds').map((c) => c[2])
    assert.equal(durations.length, 3, JSON.stringify(durations))
    assert.ok(durations.every((d) => d >= 3.5 && d < 5), JSON.stringify(durations))
    assert.deepEqual([...new Set(metrics.calls.filter((c) => c[1] !== 'saga_duration_seconds').map((c) => c[0]))], ['gauge'])
  } finally {
    await m.stop()
  }
})

test("our collector records the monitor's gauges", async () => {
  const { repo, detector } = setup()
  await save(repo, 'a', 'T', 1, 1)
  await save(repo, 'b', 'T', 600, 300)
  const collector = new TransactionMetricsCollector(null, { names: 'both' })
  const m = new SagaMonitor(repo, collector, new LogAlertSink(), detector, { start: false })
  captureLog() // the log sink's alerts
  try {
    await m.tick()
    const text = collector.metrics()
    assert.match(text, /\nsagas_active_total 2\n/)
    assert.match(text, /\ntxcoord_sagas_active 2\n/)
    assert.match(text, /\nsagas_stuck_total 1\n/)
    assert.match(text, /txcoord_sagas_stuck_by_reason\{reason="no-progress"\} 1\n/)
  } finally {
    await m.stop()
  }
})

test('among two monitors one acts, and the other takes over', async () => {
  const { repo, detector } = setup()
  await save(repo, 'stuck-1', 'PaymentSaga', 600, 300)
  const [alerts1, alerts2] = [new Alerts(), new Alerts()]
  const options = (id) => ({ start: false, candidateId: id, leaderTtl: 1500 })
  const m1 = new SagaMonitor(repo, new Metrics(), alerts1, detector, options('m1'))
  const m2 = new SagaMonitor(repo, new Metrics(), alerts2, detector, options('m2'))
  try {
    const r1 = await m1.tick()
    const r2 = await m2.tick()
    assert.deepEqual([r1.leader, r1.retried], [true, 1], JSON.stringify(r1))
    assert.deepEqual([r2.leader, r2.stuck, r2.retried, r2.longRunning], [false, 0, 0, 0], JSON.stringify(r2))
    assert.equal(m1.isLeader, true)
    assert.equal(m2.isLeader, false)
    assert.ok(alerts1.named('StuckSaga').length > 0)
    assert.deepEqual(alerts2.sent, [], 'the follower does nothing')
    const t1 = m1.term
    assert.equal(typeof t1, 'number')
    assert.equal(m2.term, null)
    await m1.stop()
    assert.equal(m1.isLeader, false, 'stop resigns')
    assert.equal(m1.term, null)
    // the next passes, as the monitor's interval would run them
    const took = await waitFor(async () => (await m2.tick()).leader, { timeoutMs: 10000, every: 100, what: 'm2 to lead' })
    assert.equal(took, true)
    assert.equal(m2.isLeader, true)
    assert.equal(m2.candidateId, 'm2')
    assert.ok(m2.term > t1, `${m2.term} > ${t1}`)
    assert.equal((await repo.findById('stuck-1')).retryCount, 1, 'not retried a second time')
  } finally {
    await m1.stop()
    await m2.stop()
  }
})

test('a started monitor runs passes until stopped', async () => {
  const { repo, detector } = setup()
  await save(repo, 'a', 'T', 1, 1)
  const metrics = new Metrics()
  const passes = () => metrics.calls.filter((c) => c[1] === 'sagas_active_total').length
  const m = new SagaMonitor(repo, metrics, new Alerts(), detector, { interval: 100 })
  try {
    assert.equal(m.interval, 100)
    await waitFor(() => passes() >= 3, { timeoutMs: 20000, what: 'three passes' })
  } finally {
    // what `await using m = ...` calls at the end of its scope
    await m[Symbol.asyncDispose]()
  }
  const atStop = passes()
  assert.equal(m.isLeader, false, 'disposing stops the monitor')
  // several intervals: no pass may run after stop
  await new Promise((r) => setTimeout(r, 500))
  assert.equal(passes(), atStop)
})

test('a started monitor keeps the process alive until stop(), then lets it exit', async () => {
  // The child does nothing but construct a monitor: only the monitor can keep it alive until
  // its third pass, where it calls stop(); then nothing may keep it alive.
  const child = nodeChild([path.join(__dirname, 'monitor-child.js')], { TXCOORD_TEST_REDIS: server.url })
  try {
    assert.match(await child.line(), /^started /, child.output())
    const lines = []
    for (let i = 0; i < 10 && lines[lines.length - 1] !== 'stopped'; i++) lines.push(await child.line())
    assert.deepEqual(lines.slice(0, 3), ['pass', 'pass', 'pass'], child.output())
    assert.equal(lines[lines.length - 1], 'stopped', child.output())
    const { code } = await child.exit(20000)
    assert.equal(code, 0, child.output())
  } finally {
    await child.stop()
  }
})

test('alerts as values', async () => {
  // a JS alert is the seed's plain object: the built-in sinks take it as it is, and judge it
  const records = []
  setLogger({ warn: (m) => records.push(['warn', m]), error: (m) => records.push(['error', m]), info: (m) => records.push(['info', m]) })
  const sink = new LogAlertSink()
  await sink.send({ severity: 'info', summary: 'hello', description: 'd', metadata: { sagaId: 'x', when: new Date(0) } })
  await sink.send({ severity: 'critical', summary: 'boom', description: 'd', metadata: {}, name: 'StuckSaga', labels: { saga_id: 'x' } })
  await waitFor(() => records.length >= 2, { what: 'both alerts logged' })
  assert.deepEqual(records[0], ['info', 'hello [info]: d {"sagaId":"x","when":"1970-01-01T00:00:00.000Z"}'])
  assert.equal(records[1][0], 'warn', 'a critical alert is a warning record')
  assert.match(records[1][1], /boom/)
  await assert.rejects(sink.send({ severity: 'urgent', summary: 's', description: 'd' }), {
    code: 'TXCOORD_INVALID_ARGUMENT',
    argument: 'severity',
  })
  await assert.rejects(sink.send({ summary: 's', description: 'd' }), { code: 'TXCOORD_INVALID_TYPE', argument: 'severity' })
})

// A service whose monitor's sink, metrics object and handler are its own: it ticks once, stops
// the monitor and drops the service, then calls gc() every 50 ms for at most 30 s. It prints
// `collected` when the service is garbage-collected; then nothing may keep the process alive.
const GC_CHILD = `
  'use strict'
  const { Client, RedisSagaRepository, SagaDeadlockDetector, SagaMonitor } = require('txcoord')
  const repo = new RedisSagaRepository(new Client(process.env.TXCOORD_TEST_REDIS, { keyPrefix: 'gc-monitor:' }))
  let collect = null
  const collected = new FinalizationRegistry(() => {
    console.log('collected')
    clearInterval(collect)
  })
  class Service {
    constructor() {
      this.alerts = []
      this.monitor = new SagaMonitor(repo, this, this, new SagaDeadlockDetector(repo, null), {
        start: false,
        onRetry: (saga) => this.retry(saga),
      })
    }
    async send(alert) { this.alerts.push(alert) }
    recordGauge() {}
    recordHistogram() {}
    async retry() {}
  }
  async function main() {
    let service = new Service()
    console.log('leader', (await service.monitor.tick()).leader)
    await service.monitor.stop()
    collected.register(service, null)
    service = null
  }
  main().then(
    () => {
      const started = Date.now()
      collect = setInterval(() => {
        globalThis.gc()
        if (Date.now() - started > 30000) clearInterval(collect)
      }, 50)
    },
    (e) => {
      console.error(e)
      process.exit(1)
    },
  )
`

test('a monitor and the objects referring to it are collected', async () => {
  const child = nodeChild(['--expose-gc', '-e', GC_CHILD], { TXCOORD_TEST_REDIS: server.url })
  try {
    assert.equal(await child.line(), 'leader true', child.output())
    assert.equal(await child.line(), 'collected', child.output())
    const { code } = await child.exit(20000)
    assert.equal(code, 0, child.output())
  } finally {
    await child.stop()
  }
})

test('a user repository is called with the right arguments', async () => {
  const old = new Date(Date.now() - 10 * 60 * 1000)
  const records = new Map([['u1', { id: 'u1', type: 'PaymentSaga', status: 'EXECUTING', version: 7, createdAt: old, updatedAt: old }]])
  const calls = []
  const repo = {
    async findById(id) {
      calls.push(['findById', id])
      const r = records.get(id)
      return r === undefined ? null : { ...r }
    },
    async save(saga, options) {
      calls.push(['save', saga, options])
      const current = records.get(saga.id)
      if (options !== undefined && options.expectedVersion !== null && current.version !== options.expectedVersion) return false
      records.set(saga.id, { ...saga, version: saga.version + 1 })
      return true
    },
    async findActiveSagas() {
      calls.push(['findActiveSagas'])
      return [...records.values()].filter((r) => r.status === 'EXECUTING')
    },
    async findStuckSagas() {
      calls.push(['findStuckSagas'])
      return [...records.values()].filter((r) => r.status === 'EXECUTING' && r.version === 7)
    },
    async getStatistics() {
      calls.push(['getStatistics'])
      return { active: 1, completed: 0, failed: 0, averageDuration: 0 }
    },
  }
  const detector = new SagaDeadlockDetector(repo, null, { redis: new Client(server.url, { keyPrefix: 'userrepo:' }) })
  const alerts = new Alerts()
  const m = new SagaMonitor(repo, new Metrics(), alerts, detector, { start: false })
  try {
    const r = await m.tick()
    assert.deepEqual([r.longRunning, r.stuck, r.retried, r.errors], [1, 1, 1, []], JSON.stringify(r))
    assert.deepEqual(
      calls.map((c) => c[0]),
      ['findActiveSagas', 'findStuckSagas', 'findById', 'save', 'getStatistics'],
    )
    assert.deepEqual(calls[2], ['findById', 'u1'])
    const [, saga, condition] = calls[3]
    assert.deepEqual([saga.id, saga.status, saga.retryCount, saga.stuckReason], ['u1', 'EXECUTING', 1, 'no-progress'])
    assert.ok(saga.createdAt instanceof Date && saga.createdAt.getTime() === old.getTime())
    assert.ok(saga.updatedAt instanceof Date && saga.updatedAt.getTime() > old.getTime())
    assert.deepEqual(condition, { expectedVersion: 7, term: m.term, guardFinished: true })
    assert.equal(records.get('u1').version, 8)
  } finally {
    await m.stop()
  }
})

test("a user alert sink gets the seed's alert", async () => {
  const { repo, detector } = setup()
  await save(repo, 's1', 'CreateOrderSaga', 600, 300)
  const received = []
  // a plain send (no promise), and its `this`
  const sink = {
    received,
    send(alert) {
      this.received.push(alert)
    },
  }
  const m = new SagaMonitor(repo, new Metrics(), sink, detector, { start: false })
  try {
    await m.tick()
    const stuck = received.filter((a) => a.name === 'StuckSaga')
    assert.equal(stuck.length, 1)
    const [a] = stuck
    assert.deepEqual(Object.keys(a).sort(), ['description', 'labels', 'metadata', 'name', 'resolved', 'severity', 'summary'])
    assert.equal(a.severity, 'critical')
    assert.equal(a.resolved, false)
    assert.equal(a.metadata.sagaId, 's1')
    assert.equal(a.metadata.sagaType, 'CreateOrderSaga')
    assert.ok(Number.isInteger(a.metadata.lastUpdated))
  } finally {
    await m.stop()
  }
})

test('bad monitor arguments name themselves', () => {
  const { repo, detector } = setup()
  const make = (over = {}, options = {}) => {
    const args = { repo, metrics: new Metrics(), alerts: new Alerts(), detector, ...over }
    return new SagaMonitor(args.repo, args.metrics, args.alerts, args.detector, { start: false, ...options })
  }
  const cases = [
    [{}, { maxRetries: -1 }, 'TXCOORD_INVALID_ARGUMENT', 'maxRetries'],
    [{}, { maxRetries: true }, 'TXCOORD_INVALID_TYPE', 'maxRetries'],
    [{}, { interval: 0 }, 'TXCOORD_INVALID_ARGUMENT', 'interval'],
    [{}, { interval: '30s' }, 'TXCOORD_INVALID_TYPE', 'interval'],
    [{}, { leaderTtl: 1.5 }, 'TXCOORD_INVALID_ARGUMENT', 'leaderTtl'],
    [{}, { limits: { T: 0 } }, 'TXCOORD_INVALID_ARGUMENT', 'limits'],
    [{}, { limits: { '': 1000 } }, 'TXCOORD_INVALID_ARGUMENT', 'limits'],
    [{}, { limits: [1000] }, 'TXCOORD_INVALID_TYPE', 'limits'],
    [{}, { electionName: '' }, 'TXCOORD_INVALID_ARGUMENT', 'electionName'],
    [{}, { candidateId: '' }, 'TXCOORD_INVALID_ARGUMENT', 'candidateId'],
    [{}, { start: 'yes' }, 'TXCOORD_INVALID_TYPE', 'start'],
    [{}, { onRetry: 42 }, 'TXCOORD_INVALID_TYPE', 'onRetry'],
    [{}, { onCompensate: 'x' }, 'TXCOORD_INVALID_TYPE', 'onCompensate'],
    [{ metrics: {} }, {}, 'TXCOORD_INVALID_TYPE', 'metricsCollector'],
    [{ alerts: {} }, {}, 'TXCOORD_INVALID_TYPE', 'alertManager'],
    [{ detector: {} }, {}, 'TXCOORD_INVALID_TYPE', 'deadlockDetector'],
    [{ repo: {} }, {}, 'TXCOORD_INVALID_TYPE', 'sagaRepository'],
  ]
  for (const [over, options, code, argument] of cases) {
    assert.throws(() => make(over, options), { code, argument }, JSON.stringify([Object.keys(over), options]))
  }
  assert.throws(() => new SagaMonitor(repo, new Metrics(), new Alerts(), detector, 5), {
    code: 'TXCOORD_INVALID_TYPE',
    argument: 'options',
  })
})

test("the seed's SagaMonitor and TransactionMetricsCollector call sites, in TypeScript", async () => {
  const out = compiledTs()
  const seed = require(path.join(out, 'tests', 'node', 'seed-monitor.js'))
  const { repo, detector } = setup()
  await save(repo, 'seed-1', 'CreateOrderSaga', 600, 300)
  const r = await seed.run(repo, detector)
  assert.equal(r.report.leader, true, JSON.stringify(r.report))
  assert.ok(r.alerts.some((a) => a.summary === 'Stuck saga detected: CreateOrderSaga'), JSON.stringify(r.alerts))
  assert.equal((await repo.findById('seed-1')).retryCount, 1)
  assert.equal(r.gauges.sagas_active_total, 1)
  assert.equal(r.gauges.saga_success_rate, 1)
  // the seed's four, created in its registry, beside our gauges registered there
  assert.match(r.text, /\nsaga_execution_duration_seconds_bucket\{le="2",saga_type="CreateOrderSaga",status="completed"\} 1\n/)
  assert.match(r.text, /\ndistributed_transaction_duration_seconds_count\{transaction_type="order",status="success"\} 1\n/)
  assert.match(r.text, /\nsaga_compensations_total\{saga_type="CreateOrderSaga",step="payment",reason="declined"\} 1\n/)
  assert.match(r.text, /\ndeadlocks_detected_total\{resolution_method="abort_saga"\} 1\n/)
  assert.match(r.text, /\nsagas_completed_total 2\n/)
})
