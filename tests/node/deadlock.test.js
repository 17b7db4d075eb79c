// SPDX-License-Identifier: MIT OR Apache-2.0
// Deadlocks between sagas at the JavaScript level: found on the lock registry and broken, by
// the waiting acquisitions themselves or by SagaDeadlockDetector; the seed's call sites; and
// acquiring several locks in one global order. Each file starts its own redis-server.
'use strict'

const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')

const { Client, LockManager, RedisSagaRepository, SagaDeadlockDetector, SagaStatus } = require('txcoord')
const { startRedis, rawRedis, compiledTs, waitFor } = require('./helpers.js')
const { sagaManagers, startWaits, hold, graphWith, releaseAll } = require('./cycles.js')

const ABORT_ERROR = 'Aborted due to deadlock resolution'

let server
let raw

before(async () => {
  server = await startRedis()
  raw = rawRedis(server)
})

after(async () => {
  raw.disconnect()
  await server.stop()
})

/** A logger that records its calls (the seed's `logger.warn(message, fields)`). */
function recordingLogger() {
  const calls = []
  return {
    calls,
    warn: (message, fields) => calls.push(['warn', message, fields]),
    info: (message, fields) => calls.push(['info', message, fields]),
  }
}

function sagaRecord(id, priority, status = SagaStatus.EXECUTING) {
  const now = new Date()
  return { id, type: 'CreateOrderSaga', status, priority, createdAt: now, updatedAt: now }
}

test("the seed's false-cycle graph (A→B, B→C, C→B, D→A) reports exactly B–C", async () => {
  const ids = { A: 'fc-A', B: 'fc-B', C: 'fc-C', D: 'fc-D' }
  const m = sagaManagers(server.url, { [ids.A]: 1, [ids.B]: 1, [ids.C]: 1, [ids.D]: 1 })
  const detector = new SagaDeadlockDetector(new RedisSagaRepository(server.url), recordingLogger())
  await hold(m, ids.A, 'fc:a')
  await hold(m, ids.B, 'fc:b')
  await hold(m, ids.C, 'fc:c')
  // A waits for B's lock, B for C's, C for B's, D for A's: the seed's DFS, rooted at A then D,
  // reports [D, A] although only B and C are deadlocked.
  const waits = startWaits(m, [
    [ids.A, 'fc:b'],
    [ids.B, 'fc:c'],
    [ids.C, 'fc:b'],
    [ids.D, 'fc:a'],
  ])
  try {
    const graph = await graphWith(detector, 4)
    assert.deepEqual(
      graph.edges.map((e) => `${e.waiter}>${e.holder}`).sort(),
      [`${ids.A}>${ids.B}`, `${ids.B}>${ids.C}`, `${ids.C}>${ids.B}`, `${ids.D}>${ids.A}`],
    )
    const r = await detector.detectDeadlock()
    assert.equal(r.hasDeadlock, true)
    assert.equal(r.cycles.length, 1, JSON.stringify(r.cycles))
    const [cycle] = r.cycles
    assert.equal(cycle.length, 3, 'two sagas, the first repeated at the end')
    assert.equal(cycle[0], cycle[2])
    assert.deepEqual([...new Set(cycle)].sort(), [ids.B, ids.C])
    assert.deepEqual(r.affectedSagas, [ids.B, ids.C])
    assert.equal(r.explained.length, 1)
    assert.deepEqual(r.explained[0].sagas, cycle)
    assert.deepEqual(r.explained[0].edges.map((e) => e.lockKey).sort(), ['lock:fc:b', 'lock:fc:c'])
    assert.equal(r.explained[0].victim, null, 'detection changes nothing')
    assert.equal(waits.done.size, 0, 'every saga still waits')
  } finally {
    await waits.stop()
    await releaseAll(m)
  }
})

test('a two-saga deadlock is broken by the waiters themselves', async () => {
  // default deadlockTimeout (1000 ms); no detector object anywhere
  const a = new LockManager(new Client(server.url), { ownerId: 'tw-a', priority: 5 })
  const b = new LockManager(new Client(server.url), { ownerId: 'tw-b', priority: 1 })
  assert.ok(await a.acquireLock('tw:x', 60000, 0))
  assert.ok(await b.acquireLock('tw:y', 60000, 0))
  const started = Date.now()
  const waitA = a.acquireLock('tw:y', 60000, 20000)
  const waitB = b.acquireLock('tw:x', 60000, 20000)
  // tw-b has the lower priority: its wait fails, explained
  const err = await waitB.then(
    () => assert.fail('the lower-priority saga should be the victim'),
    (e) => e,
  )
  const brokenAfter = Date.now() - started
  assert.equal(err.code, 'TXCOORD_DEADLOCK_VICTIM', String(err))
  assert.equal(err.key, 'lock:tw:x')
  assert.ok(err.cycle, 'the error carries the cycle')
  assert.equal(err.cycle.victim, 'tw-b')
  assert.deepEqual([...new Set(err.cycle.sagas)].sort(), ['tw-a', 'tw-b'])
  const hop = err.cycle.edges.find((e) => e.waiter === 'tw-b')
  assert.deepEqual([hop.holder, hop.lockKey], ['tw-a', 'lock:tw:x'])
  assert.equal(typeof hop.holderToken, 'number')
  assert.ok(hop.waitedMs >= 0)
  assert.match(err.cycle.id, /^[0-9a-f]{16}$/)
  assert.equal(String(err.cycle), err.cycle.message)
  assert.match(err.cycle.message, /saga tw-b has waited \d+ ms for lock:tw:x, held by saga tw-a/)
  assert.ok(!Object.keys(err.cycle).includes('toString'), 'toString is not enumerable')
  assert.ok(brokenAfter < 15000, `broken after ${brokenAfter} ms`)
  // the victim gives up what it holds, as an aborted saga does; the other goes on
  await b.releaseAllLocks()
  const got = await waitA
  assert.ok(got && got.isHeld, 'tw-a gets tw:y')
  await a.releaseAllLocks()
})

test('the detector marks the victim FAILED and never a COMPLETED saga', async () => {
  const repo = new RedisSagaRepository(server.url)
  const priorities = { 'mv-p1': 2, 'mv-p2': 1, 'mv-q1': 2, 'mv-q2': 1 }
  for (const [id, p] of Object.entries(priorities)) await repo.save(sagaRecord(id, p))
  // mv-q2 finished meanwhile (its waits are still registered)
  const q2 = await repo.findById('mv-q2')
  assert.equal(await repo.save({ ...q2, status: SagaStatus.COMPLETED }), true)
  const m = sagaManagers(server.url, priorities)
  const detector = new SagaDeadlockDetector(repo, recordingLogger())
  await hold(m, 'mv-p1', 'mv:p1')
  await hold(m, 'mv-p2', 'mv:p2')
  await hold(m, 'mv-q1', 'mv:q1')
  await hold(m, 'mv-q2', 'mv:q2')
  const waits = startWaits(m, [
    ['mv-p1', 'mv:p2'],
    ['mv-p2', 'mv:p1'],
    ['mv-q1', 'mv:q2'],
    ['mv-q2', 'mv:q1'],
  ])
  try {
    await graphWith(detector, 4)
    const r = await detector.detectDeadlock()
    assert.equal(r.cycles.length, 2)
    assert.deepEqual(r.affectedSagas, ['mv-p1', 'mv-p2', 'mv-q1', 'mv-q2'])
    const broken = await detector.resolveDeadlock(r.cycles)
    assert.deepEqual(broken.map((c) => c.victim).sort(), ['mv-p2', 'mv-q2'], 'the lowest priorities')
    for (const c of broken) assert.match(c.message, /was aborted to break it/)
    // the victims' waits fail at once; the others still wait
    for (const victim of ['mv-p2', 'mv-q2']) {
      const err = await waitsOf(waits, victim)
      assert.equal(err.code, 'TXCOORD_DEADLOCK_VICTIM')
    }
    assert.ok(!waits.done.has('mv-p1') && !waits.done.has('mv-q1'))
    const p2 = await repo.findById('mv-p2')
    assert.equal(p2.status, SagaStatus.FAILED)
    assert.equal(p2.error, ABORT_ERROR)
    const q2After = await repo.findById('mv-q2')
    assert.equal(q2After.status, SagaStatus.COMPLETED, 'a finished saga is never turned FAILED')
    assert.equal(q2After.error, null)
    for (const id of ['mv-p1', 'mv-q1']) assert.equal((await repo.findById(id)).status, SagaStatus.EXECUTING)
    assert.equal((await detector.detectDeadlock()).hasDeadlock, false, 'no cycle is left')
  } finally {
    await waits.stop()
    await releaseAll(m)
  }
})

/** The error a saga's wait was rejected with (waiting for it with a deadline). */
async function waitsOf(waits, saga) {
  const outcome = await waitFor(() => waits.done.get(saga), { timeoutMs: 10000, what: `${saga}'s wait to end` })
  assert.ok(outcome.error, `${saga}'s wait should have failed`)
  return outcome.error
}

test("the logger receives 'Deadlock detected' and 'Saga aborted to resolve deadlock'", async () => {
  const repo = new RedisSagaRepository(server.url)
  await repo.save(sagaRecord('lg-1', 3))
  await repo.save(sagaRecord('lg-2', 2))
  const logger = recordingLogger()
  const recorded = []
  const metrics = { recordDeadlock: (method) => recorded.push(method) }
  const detector = new SagaDeadlockDetector(repo, logger, { metrics })
  const m = sagaManagers(server.url, { 'lg-1': 3, 'lg-2': 2 })
  await hold(m, 'lg-1', 'lg:1')
  await hold(m, 'lg-2', 'lg:2')
  const waits = startWaits(m, [
    ['lg-1', 'lg:2'],
    ['lg-2', 'lg:1'],
  ])
  try {
    await graphWith(detector, 2)
    const r = await detector.detectDeadlock()
    // delivered by the time the promise settles, as the seed's synchronous calls were
    assert.equal(logger.calls.length, 1, JSON.stringify(logger.calls))
    const [level, message, fields] = logger.calls[0]
    assert.equal(level, 'warn')
    assert.equal(message, 'Deadlock detected')
    assert.deepEqual(fields.cycle, r.cycles[0])
    assert.equal(fields.cycleId, r.explained[0].id)
    assert.deepEqual(recorded, [], 'detection counts nothing')

    await detector.resolveDeadlock(r.cycles)
    const info = logger.calls.filter(([l]) => l === 'info')
    assert.equal(info.length, 1, JSON.stringify(logger.calls))
    assert.equal(info[0][1], 'Saga aborted to resolve deadlock')
    assert.equal(info[0][2].abortedSaga, 'lg-2')
    assert.deepEqual([...new Set(info[0][2].cycle)].sort(), ['lg-1', 'lg-2'])
    assert.deepEqual(recorded, ['abort_saga'], 'counted once per cycle')
  } finally {
    await waits.stop()
    await releaseAll(m)
  }
})

test('a logger or metrics that throw never break the detector', async () => {
  const repo = new RedisSagaRepository(server.url)
  const warnings = []
  const onWarning = (w) => warnings.push(w)
  process.on('warning', onWarning)
  const throwing = {
    warn() {
      throw new Error('logger down')
    },
    info() {
      throw new Error('logger down')
    },
  }
  const detector = new SagaDeadlockDetector(repo, throwing, {
    metrics: {
      recordDeadlock() {
        throw new Error('metrics down')
      },
    },
  })
  const m = sagaManagers(server.url, { 'th-1': 1, 'th-2': 0 })
  await hold(m, 'th-1', 'th:1')
  await hold(m, 'th-2', 'th:2')
  const waits = startWaits(m, [
    ['th-1', 'th:2'],
    ['th-2', 'th:1'],
  ])
  try {
    await graphWith(detector, 2)
    const r = await detector.detectDeadlock()
    const broken = await detector.resolveDeadlock(r.cycles)
    assert.equal(broken[0].victim, 'th-2')
      await waitFor(() => warnings.length >= 3, { what: 'three process warnings' })
    assert.ok(warnings.some((w) => /logger's warn\(\) threw/.test(w.message)))
    assert.ok(warnings.some((w) => /recordDeadlock\(\) threw/.test(w.message)))
  } finally {
    process.off('warning', onWarning)
    await waits.stop()
    await releaseAll(m)
  }
})

test('bad detector arguments are refused naming them', async () => {
  const repo = new RedisSagaRepository(server.url)
  assert.throws(() => new SagaDeadlockDetector(repo, null), { name: 'TypeError', code: 'TXCOORD_INVALID_TYPE', argument: 'logger' })
  assert.throws(() => new SagaDeadlockDetector(repo, { warn() {} }), { argument: 'logger' })
  assert.throws(() => new SagaDeadlockDetector({ findById() {} }, console, { redis: server.url }), {
    name: 'TypeError',
    argument: 'sagaRepository',
  })
  assert.throws(() => new SagaDeadlockDetector(repo, console, { metrics: {} }), { argument: 'metrics' })
  assert.throws(() => new SagaDeadlockDetector(repo, console, 'x'), { argument: 'options' })
  const detector = new SagaDeadlockDetector(repo, console)
  await assert.rejects(detector.resolveDeadlock('a'), { name: 'TypeError', code: 'TXCOORD_INVALID_TYPE', argument: 'cycles' })
  await assert.rejects(detector.resolveDeadlock([[1]]), { argument: 'cycles' })
  assert.deepEqual(await detector.resolveDeadlock([]), [])
})

test("the seed's SagaDeadlockDetector call sites (compiled TypeScript) run on txcoord", async () => {
  const out = compiledTs()
  const seed = require(path.join(out, 'tests', 'node', 'seed-deadlock.js'))
  const repo = new seed.InMemorySagaRepository()
  for (const [id, p] of [['sd-1', 2], ['sd-2', 1]]) await repo.save(seed.newSaga(id, p))
  const logger = recordingLogger()
  const detector = seed.makeDetector(repo, logger, server.url)
  const m = sagaManagers(server.url, { 'sd-1': 2, 'sd-2': 1 })
  await hold(m, 'sd-1', 'sd:1')
  await hold(m, 'sd-2', 'sd:2')
  const waits = startWaits(m, [
    ['sd-1', 'sd:2'],
    ['sd-2', 'sd:1'],
  ])
  try {
    await graphWith(detector, 2)
    const alerts = []
    await seed.detectDeadlocks(detector, alerts)
    assert.equal(alerts.length, 1)
    assert.equal(alerts[0].description, 'Detected 1 deadlock cycles involving 2 sagas')
    const victim = await repo.findById('sd-2')
    assert.equal(victim.status, 'FAILED')
    assert.equal(victim.error, ABORT_ERROR)
    assert.ok(victim.createdAt instanceof Date)
    assert.equal((await repo.findById('sd-1')).status, 'EXECUTING')
    assert.deepEqual(seed.selectionKey(victim).priority, 1)
    assert.ok(seed.selectionKey(victim).runtime >= 0)
  } finally {
    await waits.stop()
    await releaseAll(m)
  }
})

test('acquireLocks: all or none, in one global order', async () => {
  const m1 = new LockManager(new Client(server.url))
  const m2 = new LockManager(new Client(server.url))
  assert.ok(await m1.acquireLock('ao:c', 30000, 0))
  // one of the set is busy: none is taken
  assert.equal(await m2.acquireLocks(['ao:c', 'ao:a', 'ao:b'], 30000, 300), null)
  assert.deepEqual(m2.heldResources, [])
  assert.equal(await raw.exists('lock:ao:a', 'lock:ao:b'), 0, 'what was taken meanwhile is released')
  await m1.releaseLock('ao:c')
  const locks = await m2.acquireLocks(['ao:c', 'ao:a', 'ao:b', 'ao:a'], 30000, 5000)
  assert.deepEqual(
    locks.map((l) => l.key),
    ['lock:ao:a', 'lock:ao:b', 'lock:ao:c'],
    'sorted, duplicates dropped',
  )
  assert.ok(locks.every((l) => l.isHeld))
  assert.deepEqual([...m2.heldResources].sort(), ['ao:a', 'ao:b', 'ao:c'])
  assert.deepEqual(await m2.releaseLocks(['ao:a', 'ao:b', 'ao:c']), [])
  assert.equal(await raw.exists('lock:ao:a', 'lock:ao:b', 'lock:ao:c'), 0)

  // sets asked for in opposite orders never deadlock each other
  const workers = [
    [new LockManager(new Client(server.url)), ['ao:x', 'ao:y']],
    [new LockManager(new Client(server.url)), ['ao:y', 'ao:x']],
  ].map(async ([m, set]) => {
    for (let round = 0; round < 5; round++) {
      const held = await m.acquireLocks(set, 30000, 20000)
      assert.ok(held, `round ${round}: both locks within the timeout`)
      assert.equal(held.length, 2)
      assert.deepEqual(await m.releaseLocks(set), [])
    }
  })
  await Promise.all(workers)

  // an AbortSignal cancels the wait
  assert.ok(await m1.acquireLock('ao:z', 30000, 0))
  const controller = new AbortController()
  const wait = m2.acquireLocks(['ao:z'], 30000, 20000, { signal: controller.signal })
  controller.abort(new Error('stop'))
  await assert.rejects(wait, /stop/)
  await m1.releaseAllLocks()

  await assert.rejects(m2.acquireLocks('ao:a'), { name: 'TypeError', code: 'TXCOORD_INVALID_TYPE', argument: 'resources' })
  await assert.rejects(m2.acquireLocks(['ao:a', '']), { name: 'RangeError', argument: 'resources' })
  await assert.rejects(m2.acquireLocks(['ao:a'], 0), { name: 'RangeError', argument: 'ttl' })
  await assert.rejects(m2.releaseLocks([1]), { name: 'TypeError', argument: 'resources' })
})
