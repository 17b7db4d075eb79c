// SPDX-License-Identifier: MIT OR Apache-2.0
// Deadlocks between sagas at the JavaScript level: found on the lock registry and broken, by
// the waiting acquisitions themselves or by SagaDeadlockDetector; a user's own repository,
// logger and metrics in JavaScript; the seed's call sites; several locks taken in one global
// order. Scenario names follow tests/python/test_deadlock.py. Each file starts its own
// redis-server.
'use strict'

const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')

const { Client, LockManager, RedisSagaRepository, SagaDeadlockDetector, SagaStatus } = require('txcoord')
const { startRedis, rawRedis, compiledTs, waitFor, nodeChild } = require('./helpers.js')
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

/** The seed's logger shape, recording its calls: warn(message, fields), info(message, fields). */
function recordingLogger() {
  const calls = []
  return {
    calls,
    warn: (message, fields) => calls.push(['warn', message, fields]),
    info: (message, fields) => calls.push(['info', message, fields]),
  }
}

/**
 * A deadlock among `sagas` ({ id: priority }): each saga holds `res:<id>`, then waits for
 * `res:<holder>` along `edges` ([waiter, holder]). `close()` ends the waits and releases all.
 */
async function deadlock(sagas, edges, deadlockTimeout = 0) {
  const managers = sagaManagers(server.url, sagas, deadlockTimeout)
  for (const id of Object.keys(sagas)) await hold(managers, id, `res:${id}`)
  const waits = startWaits(
    managers,
    edges.map(([waiter, holder]) => [waiter, `res:${holder}`]),
  )
  return {
    managers,
    waits,
    /** How `saga`'s wait ended (waiting for it with a deadline). */
    outcome: (saga) => waitFor(() => waits.done.get(saga), { timeoutMs: 15000, what: `${saga}'s wait to end` }),
    async close() {
      await waits.stop()
      await releaseAll(managers)
    },
  }
}

test("the seed's false cycle graph reports only the real cycle", async () => {
  // A→B, B→C, C→B, D→A: only B–C is a deadlock; D and A are not in it (the seed's DFS, rooted
  // at A then D, reported [D, A]).
  const detector = new SagaDeadlockDetector(new RedisSagaRepository(server.url), recordingLogger())
  const dl = await deadlock({ A: 0, B: 0, C: 0, D: 0 }, [
    ['A', 'B'],
    ['B', 'C'],
    ['C', 'B'],
    ['D', 'A'],
  ])
  try {
    await graphWith(detector, 4)
    const r = await detector.detectDeadlock()
    assert.equal(r.hasDeadlock, true)
    assert.deepEqual(r.cycles, [['B', 'C', 'B']])
    assert.deepEqual(r.affectedSagas, ['B', 'C'])
    const [cycle] = r.explained
    assert.deepEqual(cycle.sagas, ['B', 'C', 'B'])
    assert.deepEqual(
      cycle.edges.map((e) => [e.waiter, e.holder, e.lockKey]).sort(),
      [
        ['B', 'C', 'lock:res:C'],
        ['C', 'B', 'lock:res:B'],
      ],
    )
    assert.ok(cycle.edges.every((e) => typeof e.holderToken === 'number' && e.waitedMs >= 0))
    assert.equal(cycle.victim, null, 'detection changes nothing')
    assert.match(String(cycle), /saga B has waited \d+ ms for lock:res:C, held by saga C/)
    const graph = await detector.waitForGraph()
    assert.deepEqual(graph.nodes.map((n) => n.id).sort(), ['A', 'B', 'C', 'D'])
    assert.deepEqual(
      graph.edges.map((e) => `${e.waiter}>${e.holder}`).sort(),
      ['A>B', 'B>C', 'C>B', 'D>A'],
    )
    assert.equal(dl.waits.done.size, 0, 'every saga still waits')
  } finally {
    await dl.close()
  }
})

test('a two-saga deadlock is broken by the waiters themselves', async () => {
  // No detector object: saga-b (the lower priority) is aborted by the waits' own probes, after
  // the default deadlockTimeout (1000 ms).
  const a = new LockManager(new Client(server.url), { ownerId: 'saga-a', priority: 5 })
  const b = new LockManager(new Client(server.url), { ownerId: 'saga-b', priority: 1 })
  try {
    assert.ok(await a.acquireLock('x', 60000, 0))
    assert.ok(await b.acquireLock('y', 60000, 0))
    const started = Date.now()
    let aDone = false
    const waitA = a.acquireLock('y', 60000, 20000).finally(() => (aDone = true))
    const err = await b.acquireLock('x', 60000, 20000).then(
      () => assert.fail('the lower-priority saga should be the victim'),
      (e) => e,
    )
    const brokenAfter = Date.now() - started
    assert.equal(err.code, 'TXCOORD_DEADLOCK_VICTIM', String(err))
    assert.equal(err.key, 'lock:x')
    assert.ok(err.cycle, 'the error carries the cycle')
    assert.equal(err.cycle.victim, 'saga-b')
    assert.deepEqual([...new Set(err.cycle.sagas)].sort(), ['saga-a', 'saga-b'])
    const hop = err.cycle.edges.find((e) => e.waiter === 'saga-b')
    assert.deepEqual([hop.holder, hop.lockKey], ['saga-a', 'lock:x'])
    assert.equal(typeof hop.holderToken, 'number')
    assert.match(err.cycle.id, /^[0-9a-f]{16}$/)
    assert.equal(String(err.cycle), err.cycle.message)
    assert.match(err.cycle.message, /saga saga-b has waited \d+ ms for lock:x, held by saga saga-a/)
    assert.match(err.message, /held by saga saga-a/)
    assert.ok(!Object.keys(err.cycle).includes('toString'), 'toString is not enumerable')
    assert.ok(brokenAfter < 10000, `broken after ${brokenAfter} ms`)
    assert.equal(aDone, false, 'the other saga still waits')
    // the victim gives up what it holds (as an aborted saga does); the other goes on
    await b.releaseAllLocks()
    const got = await waitA
    assert.ok(got && got.isHeld, 'saga-a gets y')
  } finally {
    await a.close()
    await b.close()
  }
})

test("the detector resolves a deadlock and fails the victim's saga", async () => {
  const repo = new RedisSagaRepository(server.url)
  for (const [id, priority] of [['d1', 2], ['d2', 1], ['d3', 3]]) {
    await repo.save({ id, type: 'CreateOrderSaga', priority })
  }
  const logger = recordingLogger()
  const recorded = []
  const metrics = { recordDeadlock: (method) => recorded.push(method) }
  const detector = new SagaDeadlockDetector(repo, logger, { metrics })
  const dl = await deadlock({ d1: 2, d2: 1, d3: 3 }, [
    ['d1', 'd2'],
    ['d2', 'd3'],
    ['d3', 'd1'],
  ])
  try {
    await graphWith(detector, 3)
    const r = await detector.detectDeadlock()
    assert.deepEqual(r.cycles, [['d1', 'd2', 'd3', 'd1']])
    assert.deepEqual(r.affectedSagas, ['d1', 'd2', 'd3'])
    const again = await detector.detectDeadlock()
    assert.equal(again.explained[0].id, r.explained[0].id, 'a stable cycle id')
    assert.deepEqual(recorded, [], 'detection counts nothing')

    // the whole result, as well as its cycles, names what to resolve
    const broken = await detector.resolveDeadlock(r)
    assert.deepEqual(broken.map((c) => c.victim), ['d2'], 'the lowest priority')
    assert.match(broken[0].message, /saga d2 was aborted to break it/)
    assert.deepEqual(recorded, ['abort_saga'], 'counted once per cycle')
    const victim = await repo.findById('d2')
    assert.equal(victim.status, SagaStatus.FAILED)
    assert.equal(victim.error, ABORT_ERROR)
    for (const other of ['d1', 'd3']) {
      const rec = await repo.findById(other)
      assert.equal(rec.status, SagaStatus.EXECUTING)
      assert.equal(rec.error, null)
    }
    const { error } = await dl.outcome('d2')
    assert.equal(error.code, 'TXCOORD_DEADLOCK_VICTIM')
    assert.equal(error.key, 'lock:res:d3')
    assert.equal(error.cycle.id, broken[0].id, 'the victim is told which cycle it broke')
    assert.equal(error.cycle.victim, 'd2')
    assert.ok(!dl.waits.done.has('d1') && !dl.waits.done.has('d3'), 'the others still wait')
    assert.equal((await detector.detectDeadlock()).hasDeadlock, false)
  } finally {
    await dl.close()
  }
})

test('resolution never fails a completed saga', async () => {
  const repo = new RedisSagaRepository(server.url)
  await repo.save({ id: 'c1', type: 'CreateOrderSaga', priority: 5 })
  await repo.save({ id: 'c2', type: 'CreateOrderSaga', priority: 1, status: SagaStatus.COMPLETED })
  const detector = new SagaDeadlockDetector(repo, recordingLogger())
  const dl = await deadlock({ c1: 5, c2: 1 }, [
    ['c1', 'c2'],
    ['c2', 'c1'],
  ])
  try {
    await graphWith(detector, 2)
    const broken = await detector.resolveDeadlock((await detector.detectDeadlock()).explained)
    assert.deepEqual(broken.map((c) => c.victim), ['c2'])
    const done = await repo.findById('c2')
    assert.equal(done.status, SagaStatus.COMPLETED, 'a finished saga is never turned FAILED')
    assert.equal(done.error, null)
    assert.equal((await repo.findById('c1')).status, SagaStatus.EXECUTING)
  } finally {
    await dl.close()
  }
})

/** A user's own repository, in memory, recording every call. `save` is the seed's. */
class MemoryRepository {
  constructor(records) {
    this.records = new Map(Object.entries(records))
    this.calls = []
  }

  async findById(id) {
    this.calls.push(['findById', id])
    await null // a real await on the event loop
    const r = this.records.get(id)
    return r === undefined ? null : { ...r }
  }

  async save(saga) {
    this.calls.push(['save', ...arguments])
    this.records.set(saga.id, { ...saga, version: (saga.version || 0) + 1 })
  }

  async findActiveSagas() {
    this.calls.push(['findActiveSagas'])
    return [...this.records.values()].filter((r) => ['PENDING', 'EXECUTING', 'COMPENSATING'].includes(r.status))
  }

  async findStuckSagas() {
    this.calls.push(['findStuckSagas'])
    return []
  }

  async getStatistics() {
    this.calls.push(['getStatistics'])
    return { active: this.records.size, completed: 0, failed: 0, averageDuration: 0 }
  }
}

/** Its `save` also takes the condition (two parameters), so conditional saves are honoured. */
class ConditionalRepository extends MemoryRepository {
  async save(saga, options) {
    this.calls.push(['save', ...arguments])
    const current = this.records.get(saga.id)
    if (options !== undefined && options.expectedVersion !== null && ((current && current.version) || 0) !== options.expectedVersion) {
      return false
    }
    this.records.set(saga.id, { ...saga, version: (saga.version || 0) + 1 })
    return true
  }
}

const CREATED = new Date('2024-05-01T12:00:00.123Z')

test('a user repository in JavaScript is called with the right arguments', async () => {
  const repo = new ConditionalRepository({
    u1: { id: 'u1', type: 'CreateOrderSaga', status: 'EXECUTING', priority: 4, version: 7, createdAt: CREATED },
    u2: { id: 'u2', type: 'CreateOrderSaga', status: 'EXECUTING', priority: 1, version: 3, createdAt: CREATED },
  })
  const detector = new SagaDeadlockDetector(repo, recordingLogger(), { redis: server.url })
  const dl = await deadlock({ u1: 4, u2: 1 }, [
    ['u1', 'u2'],
    ['u2', 'u1'],
  ])
  try {
    await graphWith(detector, 2)
    const result = await detector.detectDeadlock()
    assert.deepEqual(repo.calls, [], 'detection reads the registry, not the repository')
    const broken = await detector.resolveDeadlock(result.explained)
    assert.deepEqual(broken.map((c) => c.victim), ['u2'])
    assert.deepEqual(repo.calls.map((c) => c[0]), ['findById', 'save'], JSON.stringify(repo.calls))
    assert.deepEqual(repo.calls[0], ['findById', 'u2'])
    assert.equal(repo.calls[1].length, 3, 'the record and the condition')
    const [, saga, condition] = repo.calls[1]
    assert.deepEqual(
      [saga.id, saga.type, saga.priority, saga.version, saga.term],
      ['u2', 'CreateOrderSaga', 1, 3, 0],
    )
    assert.equal(saga.status, SagaStatus.FAILED)
    assert.equal(saga.error, ABORT_ERROR)
    assert.ok(saga.createdAt instanceof Date)
    assert.equal(saga.createdAt.getTime(), CREATED.getTime())
    assert.ok(saga.updatedAt instanceof Date && saga.updatedAt.getTime() > CREATED.getTime())
    assert.deepEqual(condition, { expectedVersion: 3, term: null, guardFinished: true })
    assert.equal(repo.records.get('u2').status, 'FAILED')
    assert.equal(repo.records.get('u1').status, 'EXECUTING')
  } finally {
    await dl.close()
  }
})

test('a user repository without a conditional save is saved plainly', async () => {
  // the seed's records, as a store gives them back: the optional fields left out
  const repo = new MemoryRepository({
    p1: { id: 'p1', type: 'ProcessRefundSaga', status: 'EXECUTING', priority: 2, createdAt: CREATED },
    p2: { id: 'p2', type: 'ProcessRefundSaga', status: 'EXECUTING', priority: 1, createdAt: CREATED },
  })
  const detector = new SagaDeadlockDetector(repo, recordingLogger(), { redis: new Client(server.url) })
  const dl = await deadlock({ p1: 2, p2: 1 }, [
    ['p1', 'p2'],
    ['p2', 'p1'],
  ])
  try {
    await graphWith(detector, 2)
    await detector.resolveDeadlock([['p1', 'p2', 'p1']])
    assert.deepEqual(repo.calls.map((c) => c[0]), ['findById', 'save'])
    assert.equal(repo.calls[1].length, 2, "the seed's save(saga): no condition")
    const saved = repo.calls[1][1]
    assert.deepEqual([saved.id, saved.type, saved.status, saved.error], ['p2', 'ProcessRefundSaga', 'FAILED', ABORT_ERROR])
    assert.equal(saved.version, 0)
  } finally {
    await dl.close()
  }
})

test('a refused conditional save is tried again on the record read anew', async () => {
  const repo = new ConditionalRepository({
    r1: { id: 'r1', type: 'T', priority: 2 },
    r2: { id: 'r2', type: 'T', priority: 1, version: 5 },
  })
  repo.save = async function save(saga, options) {
    this.calls.push(['save', saga, options])
    return false // someone else always wrote first
  }
  const detector = new SagaDeadlockDetector(repo, recordingLogger(), { redis: server.url })
  const dl = await deadlock({ r1: 2, r2: 1 }, [
    ['r1', 'r2'],
    ['r2', 'r1'],
  ])
  try {
    await graphWith(detector, 2)
    const [broken] = await detector.resolveDeadlock([['r1', 'r2', 'r1']])
    assert.equal(broken.victim, 'r2', 'the deadlock is broken all the same')
    assert.deepEqual(
      repo.calls.map((c) => c[0]),
      ['findById', 'save', 'findById', 'save', 'findById', 'save'],
      'a few attempts, each on the record read again',
    )
    assert.ok(repo.calls.filter((c) => c[0] === 'save').every((c) => c[2].expectedVersion === 5))
  } finally {
    await dl.close()
  }
})

test('a user repository needs the redis option', () => {
  assert.throws(() => new SagaDeadlockDetector(new MemoryRepository({}), recordingLogger()), {
    name: 'RangeError',
    code: 'TXCOORD_INVALID_ARGUMENT',
    argument: 'redis',
  })
  assert.throws(() => new SagaDeadlockDetector({}, recordingLogger(), { redis: server.url }), (e) => {
    assert.equal(e.name, 'TypeError')
    assert.equal(e.argument, 'sagaRepository')
    assert.match(e.message, /findById/)
    return true
  })
})

test('an exception in a user repository is logged and the deadlock still broken', async () => {
  class Broken extends ConditionalRepository {
    async findById(id) {
      throw new Error(`no saga ${id} here`)
    }
  }
  class Unreadable extends ConditionalRepository {
    async findById(id) {
      return { id, type: 'T', status: 'DONE' }
    }
  }
  for (const [repo, expected] of [
    [new Broken({}), "findById() failed: no saga e2 here"],
    [new Unreadable({}), '`status`'],
  ]) {
    const logger = recordingLogger()
    const detector = new SagaDeadlockDetector(repo, logger, { redis: server.url })
    const dl = await deadlock({ e1: 2, e2: 1 }, [
      ['e1', 'e2'],
      ['e2', 'e1'],
    ])
    try {
      await graphWith(detector, 2)
      const broken = await detector.resolveDeadlock([['e1', 'e2', 'e1']])
      assert.deepEqual(broken.map((c) => c.victim), ['e2'])
      const warned = logger.calls.filter((c) => c[0] === 'warn')
      assert.equal(warned.length, 1, JSON.stringify(logger.calls))
      assert.equal(warned[0][1], "Could not mark the deadlock victim's saga FAILED")
      assert.equal(warned[0][2].sagaId, 'e2')
      assert.ok(warned[0][2].error.includes(expected), warned[0][2].error)
    } finally {
      await dl.close()
    }
  }
})

test('a detector and a repository referring to each other are collected', async () => {
  // In a child with --expose-gc: the repository, the logger and the metrics hold the detector;
  // once the program drops them all, every one is collected (the native side holds the user's
  // objects only weakly), and the process exits by itself (nothing keeps its event loop).
  const script = `
    'use strict'
    const { SagaDeadlockDetector } = require('txcoord')
    const collected = new Set()
    const registry = new FinalizationRegistry((what) => collected.add(what))
    async function make() {
      const repo = {
        async findById() { return null }, async save() {}, async findActiveSagas() { return [] },
        async findStuckSagas() { return [] }, async getStatistics() { return { active: 0, completed: 0, failed: 0, averageDuration: 0 } },
      }
      const logger = { warn() {}, info() {} }
      const metrics = { recordDeadlock() {} }
      const detector = new SagaDeadlockDetector(repo, logger, { redis: process.env.REDIS_URL, metrics })
      repo.detector = logger.detector = metrics.detector = detector
      const r = await detector.detectDeadlock()
      if (r.hasDeadlock) throw new Error('no deadlock expected')
      registry.register(repo, 'repository')
      registry.register(logger, 'logger')
      registry.register(detector, 'detector')
    }
    make().then(async () => {
      for (let i = 0; i < 200 && collected.size < 3; i++) {
        globalThis.gc()
        await new Promise((r) => setTimeout(r, 25))
      }
      console.log(JSON.stringify([...collected].sort()))
    })
  `
  const child = nodeChild(['--expose-gc', '-e', script], { REDIS_URL: server.url })
  try {
    const line = await child.line(30000)
    assert.deepEqual(JSON.parse(line), ['detector', 'logger', 'repository'], child.output())
    const { code } = await child.exit(20000)
    assert.equal(code, 0, child.output())
  } finally {
    await child.stop()
  }
})

test('a logger gets warn and info with the fields', async () => {
  // console's shape: warn(message, fields) and info(message, fields)
  const repo = new RedisSagaRepository(server.url)
  await repo.save({ id: 'l1', type: 'CreateOrderSaga', priority: 2 })
  await repo.save({ id: 'l2', type: 'CreateOrderSaga', priority: 1 })
  const logger = recordingLogger()
  const detector = new SagaDeadlockDetector(repo, logger)
  const dl = await deadlock({ l1: 2, l2: 1 }, [
    ['l1', 'l2'],
    ['l2', 'l1'],
  ])
  try {
    await graphWith(detector, 2)
    const r = await detector.detectDeadlock()
    // delivered by the time the promise settles, as the seed's synchronous calls were
    assert.deepEqual(logger.calls.map((c) => [c[0], c[1]]), [['warn', 'Deadlock detected']])
    assert.deepEqual(logger.calls[0][2].cycle, ['l1', 'l2', 'l1'])
    assert.equal(logger.calls[0][2].cycleId, r.explained[0].id)
    assert.equal(logger.calls[0][2].explanation, r.explained[0].message)
    await detector.resolveDeadlock(r.cycles)
    assert.deepEqual(logger.calls.map((c) => [c[0], c[1]]), [
      ['warn', 'Deadlock detected'],
      ['info', 'Saga aborted to resolve deadlock'],
    ])
    assert.equal(logger.calls[1][2].abortedSaga, 'l2')
    assert.deepEqual(logger.calls[1][2].cycle, ['l1', 'l2', 'l1'])
  } finally {
    await dl.close()
  }
})

test('a logger or metrics that throw never break the detector', async () => {
  const warnings = []
  const onWarning = (w) => warnings.push(w)
  process.on('warning', onWarning)
  const down = () => {
    throw new Error('down')
  }
  const detector = new SagaDeadlockDetector(new RedisSagaRepository(server.url), { warn: down, info: down }, {
    metrics: { recordDeadlock: down },
  })
  const dl = await deadlock({ t1: 1, t2: 0 }, [
    ['t1', 't2'],
    ['t2', 't1'],
  ])
  try {
    await graphWith(detector, 2)
    const broken = await detector.resolveDeadlock(await detector.detectDeadlock())
    assert.equal(broken[0].victim, 't2')
    await waitFor(() => warnings.length >= 3, { what: 'three process warnings' })
    assert.ok(warnings.some((w) => /the logger's warn\(\) threw/.test(w.message)))
    assert.ok(warnings.some((w) => /the logger's info\(\) threw/.test(w.message)))
    assert.ok(warnings.some((w) => /recordDeadlock\(\) threw/.test(w.message)))
  } finally {
    process.off('warning', onWarning)
    await dl.close()
  }
})

test('bad detector arguments name themselves', async () => {
  const repo = new RedisSagaRepository(server.url)
  assert.throws(() => new SagaDeadlockDetector(repo, 'console'), { name: 'TypeError', code: 'TXCOORD_INVALID_TYPE', argument: 'logger' })
  assert.throws(() => new SagaDeadlockDetector(repo, { warn() {} }), { argument: 'logger' })
  assert.throws(() => new SagaDeadlockDetector(repo, console, { metrics: {} }), { argument: 'metrics' })
  assert.throws(() => new SagaDeadlockDetector(repo, console, 'x'), { argument: 'options' })
  assert.throws(() => new SagaDeadlockDetector(repo, console, { redis: 5 }), { argument: 'redis' })
  const detector = new SagaDeadlockDetector(repo) // without a logger: txcoord's own records
  for (const bad of ['abc', 3, [['ok', 7]], [['']], [null]]) {
    await assert.rejects(detector.resolveDeadlock(bad), { argument: 'cycles' }, JSON.stringify(bad))
  }
  assert.deepEqual(await detector.resolveDeadlock([]), [])
})

test("the seed's SagaDeadlockDetector call sites (compiled TypeScript) run on txcoord", async () => {
  const out = compiledTs()
  const seed = require(path.join(out, 'tests', 'node', 'seed-deadlock.js'))
  const repo = new seed.InMemorySagaRepository()
  for (const [id, p] of [['sd1', 2], ['sd2', 1]]) await repo.save(seed.newSaga(id, p))
  const detector = seed.makeDetector(repo, recordingLogger(), server.url)
  const dl = await deadlock({ sd1: 2, sd2: 1 }, [
    ['sd1', 'sd2'],
    ['sd2', 'sd1'],
  ])
  try {
    await graphWith(detector, 2)
    const alerts = []
    await seed.detectDeadlocks(detector, alerts)
    assert.equal(alerts.length, 1)
    assert.equal(alerts[0].description, 'Detected 1 deadlock cycles involving 2 sagas')
    const victim = await repo.findById('sd2')
    assert.equal(victim.status, 'FAILED')
    assert.equal(victim.error, ABORT_ERROR)
    assert.equal((await repo.findById('sd1')).status, 'EXECUTING')
    assert.equal(seed.selectionKey(victim).priority, 1)
    assert.ok(seed.selectionKey(victim).runtime >= 0)
  } finally {
    await dl.close()
  }
})

test('acquireLocks takes all or none in one global order', async () => {
  const holder = new LockManager(new Client(server.url))
  const taker = new LockManager(new Client(server.url))
  try {
    assert.ok(await holder.acquireLock('set:b', 60000, 0))
    assert.equal(await taker.acquireLocks(['set:c', 'set:b', 'set:a'], 30000, 1500), null)
    assert.equal(await raw.exists('lock:set:a', 'lock:set:c'), 0, 'none of the set is held after a timeout')
    assert.deepEqual(taker.heldResources, [])
    await holder.releaseLock('set:b')
    const locks = await taker.acquireLocks(['set:c', 'set:b', 'set:a', 'set:a'], 30000, 5000)
    assert.deepEqual(
      locks.map((l) => l.key),
      ['lock:set:a', 'lock:set:b', 'lock:set:c'],
      'sorted, duplicates dropped',
    )
    assert.ok(locks.every((l) => l.isHeld))
    assert.deepEqual([...taker.heldResources].sort(), ['set:a', 'set:b', 'set:c'])
    assert.deepEqual(await taker.releaseLocks(['set:a', 'set:b', 'set:c']), [])
    assert.equal(await raw.exists('lock:set:a', 'lock:set:b', 'lock:set:c'), 0)

    // sets asked for in opposite orders never deadlock each other
    const workers = [
      [new LockManager(new Client(server.url)), ['set:x', 'set:y']],
      [new LockManager(new Client(server.url)), ['set:y', 'set:x']],
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
    assert.ok(await holder.acquireLock('set:z', 30000, 0))
    const controller = new AbortController()
    const wait = taker.acquireLocks(['set:z'], 30000, 20000, { signal: controller.signal })
    controller.abort(new Error('stop'))
    await assert.rejects(wait, /stop/)

    await assert.rejects(taker.acquireLocks('set:a'), { name: 'TypeError', code: 'TXCOORD_INVALID_TYPE', argument: 'resources' })
    await assert.rejects(taker.acquireLocks(['set:a', '']), { name: 'RangeError', argument: 'resources' })
    await assert.rejects(taker.acquireLocks(['set:a'], 0), { name: 'RangeError', argument: 'ttl' })
    await assert.rejects(taker.acquireLocks(['set:a'], 1000, 1000, { priority: 0.5 }), { name: 'RangeError', argument: 'priority' })
    await assert.rejects(taker.releaseLocks([1]), { name: 'TypeError', argument: 'resources' })
  } finally {
    await holder.close()
    await taker.close()
  }
})
