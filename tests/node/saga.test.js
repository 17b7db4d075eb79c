// SPDX-License-Identifier: MIT OR Apache-2.0
// Sagas at the JavaScript level: SagaStatus and SagaRecord as the seed uses them, and the
// built-in RedisSagaRepository (a user's own repository is in deadlock.test.js, where the
// detector calls it). Scenario names follow tests/python/test_saga.py. Each file starts its own
// redis-server.
'use strict'

const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')

const { Client, RedisSagaRepository, SagaStatus } = require('txcoord')
const { startRedis, rawRedis } = require('./helpers.js')

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

const seconds = (n) => n * 1000
const minutes = (n) => n * 60 * 1000

/** A repository with sagas of its own (the totals and indexes are per key prefix). */
function ownRepository(prefix, options) {
  return new RedisSagaRepository(new Client(server.url, { keyPrefix: `${prefix}:` }), options)
}

test('SagaStatus is the six statuses, as strings', () => {
  assert.deepEqual(Object.keys(SagaStatus), ['PENDING', 'EXECUTING', 'COMPENSATING', 'COMPLETED', 'COMPENSATED', 'FAILED'])
  for (const [k, v] of Object.entries(SagaStatus)) assert.equal(k, v)
  assert.equal(SagaStatus.FAILED, 'FAILED')
  assert.ok(Object.isFrozen(SagaStatus))
})

test('a record is a plain object with Dates, as the seed reads it', async () => {
  const repo = ownRepository('rec')
  const before = Date.now()
  // only id and type: the rest takes the defaults of a new saga
  assert.equal(await repo.save({ id: 'r-1', type: 'CreateOrderSaga' }), true)
  const saga = await repo.findById('r-1')
  assert.ok(saga.createdAt instanceof Date && saga.updatedAt instanceof Date)
  assert.ok(saga.createdAt.getTime() >= before - 1 && saga.createdAt.getTime() <= Date.now())
  assert.deepEqual(saga, {
    id: 'r-1',
    type: 'CreateOrderSaga',
    status: 'EXECUTING',
    priority: 0,
    createdAt: saga.createdAt,
    updatedAt: saga.createdAt,
    retryCount: 0,
    error: null,
    stuckReason: null,
    stuckDetail: null,
    version: 1,
    term: 0,
  })
  const createdAt = new Date(Date.now() - 1500)
  const full = {
    id: 'r-2',
    type: 'ProcessRefundSaga',
    status: SagaStatus.COMPENSATING,
    priority: -3,
    createdAt,
    updatedAt: new Date(createdAt.getTime() + 700),
    retryCount: 2,
    error: 'card declined',
    stuckReason: 'waiting-on-lock',
    stuckDetail: 'lock:order:42 held by saga-7',
    version: 0,
    term: 5,
  }
  await repo.save(full)
  // version and term are the repository's: +1 per save, and the writer's term (none here)
  assert.deepEqual(await repo.findById('r-2'), { ...full, version: 1, term: 0 })
  assert.ok(Date.now() - (await repo.findById('r-2')).createdAt.getTime() >= 1500, "the seed's runtime arithmetic")
  // null is as good as left out
  await repo.save({ id: 'r-3', type: 'T', status: null, createdAt: null, error: null, version: null })
  assert.equal((await repo.findById('r-3')).status, 'EXECUTING')
})

test('bad record fields name the argument', async () => {
  const repo = ownRepository('bad')
  const ok = { id: 'bad-1', type: 'T' }
  const cases = [
    [{ ...ok, status: 'DONE' }, 'RangeError', 'status'],
    [{ ...ok, status: 1 }, 'TypeError', 'status'],
    [{ ...ok, createdAt: Date.now() }, 'TypeError', 'createdAt'],
    [{ ...ok, createdAt: new Date(NaN) }, 'RangeError', 'createdAt'],
    [{ ...ok, updatedAt: '2024-01-01' }, 'TypeError', 'updatedAt'],
    [{ ...ok, id: '' }, 'RangeError', 'id'],
    [{ type: 'T' }, 'TypeError', 'id'],
    [{ ...ok, id: null }, 'TypeError', 'id'],
    [{ ...ok, type: 3 }, 'TypeError', 'type'],
    [{ ...ok, priority: 1.5 }, 'RangeError', 'priority'],
    [{ ...ok, priority: 2 ** 31 }, 'RangeError', 'priority'],
    [{ ...ok, retryCount: -1 }, 'RangeError', 'retryCount'],
    [{ ...ok, version: 2 ** 53 }, 'RangeError', 'version'],
    [{ ...ok, error: 42 }, 'TypeError', 'error'],
    ['bad-1', 'TypeError', 'saga'],
    [null, 'TypeError', 'saga'],
  ]
  for (const [record, name, argument] of cases) {
    await assert.rejects(repo.save(record), { name, argument }, JSON.stringify(record))
  }
  await assert.rejects(repo.findById(''), { name: 'RangeError', argument: 'id' })
  await assert.rejects(repo.findById(7), { name: 'TypeError', argument: 'id' })
  assert.equal(await raw.exists('bad:{txcoord:sagas}:saga:bad-1'), 0, 'nothing reached Redis')
  assert.throws(() => new RedisSagaRepository(42), { name: 'TypeError', argument: 'redis' })
})

test('the Redis repository saves, finds and counts', async () => {
  const repo = ownRepository('count')
  assert.equal(await repo.findById('nope'), null)
  const start = new Date(Date.now() - seconds(10))
  assert.equal(await repo.save({ id: 'a', type: 'CreateOrderSaga', priority: 2, createdAt: start }), true)
  await repo.save({ id: 'b', type: 'ProcessRefundSaga', createdAt: start, status: SagaStatus.PENDING })
  const got = await repo.findById('a')
  assert.deepEqual(
    [got.id, got.type, got.status, got.priority, got.createdAt.getTime(), got.version],
    ['a', 'CreateOrderSaga', 'EXECUTING', 2, start.getTime(), 1],
  )
  assert.deepEqual((await repo.findActiveSagas()).map((s) => s.id).sort(), ['a', 'b'])
  assert.deepEqual(await repo.getStatistics(), { active: 2, completed: 0, failed: 0, compensated: 0, averageDuration: 0 })

  // the seed's way: change the record, save it
  got.status = SagaStatus.COMPLETED
  got.updatedAt = new Date(start.getTime() + seconds(4))
  await repo.save(got)
  const b = await repo.findById('b')
  b.status = 'FAILED'
  b.error = 'payment declined'
  b.updatedAt = new Date(start.getTime() + seconds(6))
  await repo.save(b)
  assert.deepEqual(await repo.findActiveSagas(), [])
  assert.deepEqual(await repo.getStatistics(), {
    active: 0,
    completed: 1,
    failed: 1,
    compensated: 0,
    averageDuration: 5000, // the mean of 4 s and 6 s, in ms
  })
  const failed = await repo.findById('b')
  assert.equal(failed.error, 'payment declined')
  assert.equal(failed.version, 2)
  // records live in the protocol's keys, all in one slot
  assert.equal(await raw.hget('count:{txcoord:sagas}:saga:b', 'status'), 'FAILED')
})

test('a conditional save refuses a stale version, a deposed term and a finished saga', async () => {
  const repo = ownRepository('cond')
  const s = { id: 'c', type: 'CreateOrderSaga' }
  assert.equal(await repo.save(s, { expectedVersion: 0 }), true)
  assert.equal(await repo.save(s, { expectedVersion: 0 }), false, 'the stored version is 1 now')
  const current = await repo.findById('c')
  assert.equal(current.version, 1)
  current.retryCount = 1
  assert.equal(await repo.save(current, { expectedVersion: 1, term: 7 }), true)
  const stale = await repo.findById('c')
  assert.equal(stale.term, 7)
  assert.equal(await repo.save(stale, { term: 6 }), false, "a deposed leader's term")
  stale.status = SagaStatus.COMPLETED
  assert.equal(await repo.save(stale, { expectedVersion: 2, guardFinished: true }), true)
  const done = await repo.findById('c')
  done.status = SagaStatus.FAILED
  assert.equal(await repo.save(done, { guardFinished: true }), false, 'a finished saga stays finished')
  assert.equal((await repo.findById('c')).status, 'COMPLETED')
  await assert.rejects(repo.save(done, { expectedVersion: -1 }), { name: 'RangeError', argument: 'expectedVersion' })
  await assert.rejects(repo.save(done, { guardFinished: 1 }), { name: 'TypeError', argument: 'guardFinished' })
  await assert.rejects(repo.save(done, 'x'), { name: 'TypeError', argument: 'options' })
  await assert.rejects(repo.save(42), { name: 'TypeError', argument: 'saga' })
})

test('stuck sagas follow the per-type limits', async () => {
  const repo = ownRepository('stuck', { stuckAfter: { QuickSaga: 1000 }, defaultStuckAfter: minutes(1) })
  const now = Date.now()
  for (const [id, type, age] of [
    ['old-order', 'CreateOrderSaga', minutes(6)], // the seed's 5 min
    ['new-order', 'CreateOrderSaga', minutes(4)],
    ['quick', 'QuickSaga', seconds(5)],
    ['other', 'OtherSaga', minutes(2)], // the default given here
    ['fresh', 'OtherSaga', seconds(1)],
  ]) {
    await repo.save({ id, type, createdAt: new Date(now - age), updatedAt: new Date(now - age) })
  }
  await repo.save({ id: 'done', type: 'QuickSaga', createdAt: new Date(now - minutes(60)), status: SagaStatus.COMPLETED })
  assert.deepEqual((await repo.findStuckSagas()).map((s) => s.id).sort(), ['old-order', 'other', 'quick'])
  for (const [options, name, argument] of [
    [{ stuckAfter: { T: 0 } }, 'RangeError', 'stuckAfter'],
    [{ stuckAfter: { T: '1s' } }, 'TypeError', 'stuckAfter'],
    [{ stuckAfter: [1] }, 'TypeError', 'stuckAfter'],
    [{ defaultStuckAfter: -5 }, 'RangeError', 'defaultStuckAfter'],
    [{ finishedRetention: '1d' }, 'TypeError', 'finishedRetention'],
    ['x', 'TypeError', 'options'],
  ]) {
    assert.throws(() => new RedisSagaRepository(server.url, options), { name, argument }, JSON.stringify(options))
  }
})

test('finished records expire after the retention', async () => {
  const kept = new RedisSagaRepository(server.url, { finishedRetention: null })
  const short = new RedisSagaRepository(server.url, { finishedRetention: 60000 })
  await kept.save({ id: 'forever', type: 'T', status: SagaStatus.COMPLETED })
  await short.save({ id: 'minute', type: 'T', status: SagaStatus.COMPLETED })
  assert.equal(await raw.pttl('{txcoord:sagas}:saga:forever'), -1)
  const pttl = await raw.pttl('{txcoord:sagas}:saga:minute')
  assert.ok(pttl > 0 && pttl <= 60000, `pttl ${pttl}`)
})
