// SPDX-License-Identifier: MIT OR Apache-2.0
// Sagas at the JavaScript level: SagaStatus and SagaRecord as the seed uses them, the built-in
// RedisSagaRepository, and a user's own repository written in JavaScript, which the native
// detector calls. Each file starts its own redis-server.
'use strict'

const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')

const { Client, RedisSagaRepository, SagaDeadlockDetector, SagaStatus } = require('txcoord')
const { startRedis, rawRedis, waitFor } = require('./helpers.js')
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

const minutes = (n) => n * 60 * 1000

test('SagaStatus and SagaRecord as the seed uses them', async () => {
  assert.deepEqual(Object.keys(SagaStatus), ['PENDING', 'EXECUTING', 'COMPENSATING', 'COMPLETED', 'COMPENSATED', 'FAILED'])
  for (const [k, v] of Object.entries(SagaStatus)) assert.equal(k, v)
  assert.ok(Object.isFrozen(SagaStatus))

  const repo = new RedisSagaRepository(server.url)
  const createdAt = new Date(Date.now() - 1500)
  assert.equal(await repo.save({ id: 'rec-1', type: 'CreateOrderSaga', status: SagaStatus.EXECUTING, createdAt }), true)
  const saga = await repo.findById('rec-1')
  assert.deepEqual(saga, {
    id: 'rec-1',
    type: 'CreateOrderSaga',
    status: 'EXECUTING',
    priority: 0,
    createdAt,
    updatedAt: createdAt,
    retryCount: 0,
    error: null,
    stuckReason: null,
    stuckDetail: null,
    version: 1,
    term: 0,
  })
  assert.ok(saga.createdAt instanceof Date)
  assert.ok(Date.now() - saga.createdAt.getTime() >= 1500, "the seed's runtime arithmetic")
  // the seed's abortSaga, then its plain save
  saga.status = SagaStatus.FAILED
  saga.error = ABORT_ERROR
  await repo.save(saga)
  const again = await repo.findById('rec-1')
  assert.equal(again.status, 'FAILED')
  assert.equal(again.error, ABORT_ERROR)
  assert.equal(again.version, 2)
  assert.equal(await repo.findById('rec-none'), null)
  // the record is the protocol's hash (PROTOCOL.md section 8)
  const stored = await raw.hgetall('{txcoord:sagas}:saga:rec-1')
  assert.equal(stored.status, 'FAILED')
  assert.equal(stored.createdAt, String(createdAt.getTime()))
})

test('RedisSagaRepository: conditional saves, active, stuck and statistics', async () => {
  // sagas of their own (the totals are per key prefix)
  const repo = new RedisSagaRepository(new Client(server.url, { keyPrefix: 'stats:' }))
  const now = Date.now()
  const saga = {
    id: 'cs-1',
    type: 'UserRegistrationSaga',
    status: SagaStatus.EXECUTING,
    priority: 4,
    createdAt: new Date(now - minutes(10)),
    updatedAt: new Date(now - minutes(3)),
    retryCount: 1,
  }
  assert.equal(await repo.save(saga, { expectedVersion: 0 }), true, 'created')
  assert.equal(await repo.save(saga, { expectedVersion: 0 }), false, 'the version moved on')
  const v1 = await repo.findById('cs-1')
  assert.equal(v1.version, 1)
  assert.equal(await repo.save({ ...v1, term: 7 }, { expectedVersion: 1, term: 7 }), true)
  assert.equal(await repo.save({ ...v1, retryCount: 2 }, { term: 6 }), false, 'a deposed leader writes nothing')
  // UserRegistrationSaga's limit is 2 minutes: not updated for 3, it is stuck
  const fresh = { id: 'cs-2', type: 'UserRegistrationSaga', status: SagaStatus.PENDING, createdAt: new Date() }
  await repo.save(fresh)
  assert.deepEqual((await repo.findStuckSagas()).map((s) => s.id), ['cs-1'])
  assert.deepEqual((await repo.findActiveSagas()).map((s) => s.id).sort(), ['cs-1', 'cs-2'])
  // finishing: a guarded save never touches a finished saga
  const done = await repo.findById('cs-2')
  assert.equal(await repo.save({ ...done, status: SagaStatus.COMPLETED, updatedAt: new Date(done.createdAt.getTime() + 400) }), true)
  const completed = await repo.findById('cs-2')
  assert.equal(await repo.save({ ...completed, status: SagaStatus.FAILED }, { guardFinished: true }), false)
  assert.equal((await repo.findById('cs-2')).status, 'COMPLETED')
  const stats = await repo.getStatistics()
  assert.deepEqual(stats, { active: 1, completed: 1, failed: 0, compensated: 0, averageDuration: 400 })
})

test('bad records and arguments are refused naming the field, before Redis', async () => {
  const repo = new RedisSagaRepository(server.url)
  const ok = { id: 'bad-1', type: 'T', status: SagaStatus.EXECUTING, createdAt: new Date() }
  const cases = [
    [{ ...ok, status: 'DONE' }, 'RangeError', 'status'],
    [{ ...ok, status: undefined }, 'TypeError', 'status'],
    [{ ...ok, createdAt: Date.now() }, 'TypeError', 'createdAt'],
    [{ ...ok, createdAt: new Date(NaN) }, 'RangeError', 'createdAt'],
    [{ ...ok, updatedAt: '2024-01-01' }, 'TypeError', 'updatedAt'],
    [{ ...ok, id: '' }, 'RangeError', 'id'],
    [{ ...ok, type: 3 }, 'TypeError', 'type'],
    [{ ...ok, priority: 1.5 }, 'RangeError', 'priority'],
    [{ ...ok, retryCount: -1 }, 'RangeError', 'retryCount'],
    [{ ...ok, error: 42 }, 'TypeError', 'error'],
    ['bad-1', 'TypeError', 'saga'],
  ]
  for (const [record, name, argument] of cases) {
    await assert.rejects(repo.save(record), { name, argument }, JSON.stringify(record))
  }
  await assert.rejects(repo.save(ok, { expectedVersion: -1 }), { name: 'RangeError', argument: 'expectedVersion' })
  await assert.rejects(repo.save(ok, { guardFinished: 1 }), { name: 'TypeError', argument: 'guardFinished' })
  await assert.rejects(repo.findById(''), { name: 'RangeError', argument: 'id' })
  assert.equal(await raw.exists('{txcoord:sagas}:saga:bad-1'), 0, 'nothing reached Redis')
  assert.throws(() => new RedisSagaRepository(42), { name: 'TypeError', argument: 'redis' })
})

/** A user's repository in memory, recording every call. */
function memoryRepository(records, { savedReply } = {}) {
  const calls = []
  const sagas = new Map(records.map((r) => [r.id, r]))
  return {
    calls,
    sagas,
    async findById(id) {
      calls.push(['findById', id])
      const saga = sagas.get(id)
      return saga === undefined ? null : { ...saga }
    },
    async save(...args) {
      calls.push(['save', ...args])
      const [saga] = args
      if (savedReply !== undefined) return savedReply(saga, args[1])
      sagas.set(saga.id, saga)
    },
    async findActiveSagas() {
      calls.push(['findActiveSagas'])
      return [...sagas.values()]
    },
    async findStuckSagas() {
      calls.push(['findStuckSagas'])
      return []
    },
    async getStatistics() {
      calls.push(['getStatistics'])
      return { active: sagas.size, completed: 0, failed: 0, averageDuration: 0 }
    },
  }
}

test('a user repository written in JS is called with the right arguments', async () => {
  const createdAt = new Date(Date.now() - 5000)
  // records as a service's own store gives them: the optional fields left out
  const repo = memoryRepository([
    { id: 'ur-1', type: 'CreateOrderSaga', status: 'EXECUTING', createdAt },
    { id: 'ur-2', type: 'CreateOrderSaga', status: 'EXECUTING', createdAt, priority: 1, version: 4 },
  ])
  const logger = { warnings: [], warn(m, f) { this.warnings.push([m, f]) }, info() {} }
  // a repository of its own: the detector must be told where the locks are
  assert.throws(() => new SagaDeadlockDetector(repo, logger), {
    name: 'RangeError',
    code: 'TXCOORD_INVALID_ARGUMENT',
    argument: 'redis',
  })
  const detector = new SagaDeadlockDetector(repo, logger, { redis: server.url })
  const m = sagaManagers(server.url, { 'ur-1': 2, 'ur-2': 1 })
  await hold(m, 'ur-1', 'ur:1')
  await hold(m, 'ur-2', 'ur:2')
  const waits = startWaits(m, [
    ['ur-1', 'ur:2'],
    ['ur-2', 'ur:1'],
  ])
  try {
    await graphWith(detector, 2)
    const r = await detector.detectDeadlock()
    assert.deepEqual(repo.calls, [], 'detection reads the lock registry, not the repository')
    const broken = await detector.resolveDeadlock(r.cycles)
    assert.equal(broken[0].victim, 'ur-2')
    // the victim's record, read, then saved FAILED with the condition of the core's
    // conditional save (the seed's save ignores it: saved unconditionally)
    assert.deepEqual(
      repo.calls.map((c) => c[0]),
      ['findById', 'save'],
      JSON.stringify(repo.calls),
    )
    assert.deepEqual(repo.calls[0], ['findById', 'ur-2'])
    const [, saved, condition] = repo.calls[1]
    assert.equal(repo.calls[1].length, 3)
    assert.equal(saved.id, 'ur-2')
    assert.equal(saved.type, 'CreateOrderSaga')
    assert.equal(saved.status, SagaStatus.FAILED)
    assert.equal(saved.error, ABORT_ERROR)
    assert.equal(saved.priority, 1)
    assert.ok(saved.createdAt instanceof Date)
    assert.equal(saved.createdAt.getTime(), createdAt.getTime())
    assert.ok(saved.updatedAt instanceof Date && saved.updatedAt.getTime() >= createdAt.getTime())
    assert.equal(saved.version, 4)
    assert.deepEqual(condition, { expectedVersion: 4, term: null, guardFinished: true })
    assert.equal(repo.sagas.get('ur-2').status, 'FAILED')
    assert.equal(repo.sagas.get('ur-1').status, 'EXECUTING')
    assert.deepEqual(logger.warnings.filter(([msg]) => msg.startsWith('Could not')), [])
  } finally {
    await waits.stop()
    await releaseAll(m)
  }
})

test("a user repository's conditional form and bad records", async () => {
  const createdAt = new Date()
  // honours the condition: refuses every write, so the detector re-reads and tries again
  const refusing = memoryRepository(
    [{ id: 'uc-2', type: 'T', status: 'EXECUTING', createdAt }],
    { savedReply: () => false },
  )
  // returns a record the core cannot take
  const broken = memoryRepository([{ id: 'uc-4', type: 'T', status: 'EXECUTING', createdAt: 'yesterday' }])
  const logs = []
  const logger = { warn: (m, f) => logs.push([m, f]), info: () => {} }
  const m = sagaManagers(server.url, { 'uc-1': 2, 'uc-2': 1, 'uc-3': 2, 'uc-4': 1 })
  for (const s of ['uc-1', 'uc-2', 'uc-3', 'uc-4']) await hold(m, s, s)
  const waits = startWaits(m, [
    ['uc-1', 'uc-2'],
    ['uc-2', 'uc-1'],
    ['uc-3', 'uc-4'],
    ['uc-4', 'uc-3'],
  ])
  try {
    const d1 = new SagaDeadlockDetector(refusing, logger, { redis: server.url })
    const d2 = new SagaDeadlockDetector(broken, logger, { redis: server.url })
    await graphWith(d1, 4)
    const [b1] = await d1.resolveDeadlock([['uc-1', 'uc-2', 'uc-1']])
    assert.equal(b1.victim, 'uc-2')
    const kinds = refusing.calls.map((c) => c[0])
    assert.deepEqual(kinds, ['findById', 'save', 'findById', 'save', 'findById', 'save'], 'a refused save is tried again, a few times')
    assert.equal(refusing.sagas.get('uc-2').status, 'EXECUTING')

    const [b2] = await d2.resolveDeadlock([['uc-3', 'uc-4', 'uc-3']])
    assert.equal(b2.victim, 'uc-4', 'the deadlock is broken all the same')
    const failed = logs.find(([msg]) => msg === "Could not mark the deadlock victim's saga FAILED")
    assert.ok(failed, JSON.stringify(logs))
    assert.equal(failed[1].sagaId, 'uc-4')
    assert.match(failed[1].error, /createdAt/)
    assert.match(failed[1].error, /findById\(\)/)
    assert.deepEqual(broken.calls.map((c) => c[0]), ['findById'])
  } finally {
    await waits.stop()
    await releaseAll(m)
  }
})

test("a user repository's failure reaches the logger, with its message", async () => {
  const repo = memoryRepository([])
  repo.findById = async () => {
    throw new Error('database unreachable')
  }
  const logs = []
  const detector = new SagaDeadlockDetector(repo, { warn: (msg, f) => logs.push([msg, f]), info() {} }, { redis: server.url })
  const m = sagaManagers(server.url, { 'uf-1': 2, 'uf-2': 1 })
  await hold(m, 'uf-1', 'uf:1')
  await hold(m, 'uf-2', 'uf:2')
  const waits = startWaits(m, [
    ['uf-1', 'uf:2'],
    ['uf-2', 'uf:1'],
  ])
  try {
    await graphWith(detector, 2)
    const [b] = await detector.resolveDeadlock([['uf-1', 'uf-2', 'uf-1']])
    assert.equal(b.victim, 'uf-2')
    const failed = await waitFor(() => logs.find(([msg]) => msg.startsWith('Could not mark')), { what: 'the failure logged' })
    assert.match(failed[1].error, /findById\(\) failed: database unreachable/)
  } finally {
    await waits.stop()
    await releaseAll(m)
  }
})
