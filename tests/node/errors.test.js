// SPDX-License-Identifier: MIT OR Apache-2.0
// Bad input: every case is refused with the right class, `code` and `argument`, async methods
// reject (never throw synchronously), and nothing reaches Redis.
'use strict'

const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')

const { Client, DistributedLock, LockManager } = require('txcoord')
const { startRedis, rawRedis, ioredis } = require('./helpers.js')

let server
let raw

before(async () => {
  server = await startRedis()
  raw = rawRedis(server)
  await raw.config('RESETSTAT')
})

after(async () => {
  raw.disconnect()
  await server.stop()
})

const ARG = 'TXCOORD_INVALID_ARGUMENT'
const TYPE = 'TXCOORD_INVALID_TYPE'

// [label, call(manager, lock), expected class, code, argument]
const asyncCases = [
  ['ttl -1', (m) => m.acquireLock('r', -1), RangeError, ARG, 'ttl'],
  ['ttl 0', (m) => m.acquireLock('r', 0), RangeError, ARG, 'ttl'],
  ['ttl NaN', (m) => m.acquireLock('r', NaN), RangeError, ARG, 'ttl'],
  ['ttl 1.5', (m) => m.acquireLock('r', 1.5), RangeError, ARG, 'ttl'],
  ['ttl 2**40', (m) => m.acquireLock('r', 2 ** 40), RangeError, ARG, 'ttl'],
  ['ttl 2**31', (m) => m.acquireLock('r', 2 ** 31), RangeError, ARG, 'ttl'],
  ['ttl Infinity', (m) => m.acquireLock('r', Infinity), RangeError, ARG, 'ttl'],
  ['ttl -0', (m) => m.acquireLock('r', -0), RangeError, ARG, 'ttl'],
  ["ttl '1000'", (m) => m.acquireLock('r', '1000'), TypeError, TYPE, 'ttl'],
  ['ttl null', (m) => m.acquireLock('r', null), TypeError, TYPE, 'ttl'],
  ['ttl true', (m) => m.acquireLock('r', true), TypeError, TYPE, 'ttl'],
  ['ttl {}', (m) => m.acquireLock('r', {}), TypeError, TYPE, 'ttl'],
  ['ttl 1000n', (m) => m.acquireLock('r', 1000n), TypeError, TYPE, 'ttl'],
  ['timeout -1', (m) => m.acquireLock('r', 1000, -1), RangeError, ARG, 'timeout'],
  ['timeout NaN', (m) => m.acquireLock('r', 1000, NaN), RangeError, ARG, 'timeout'],
  ["timeout '10'", (m) => m.acquireLock('r', 1000, '10'), TypeError, TYPE, 'timeout'],
  ["resource ''", (m) => m.acquireLock(''), RangeError, ARG, 'resource'],
  ['resource 42', (m) => m.acquireLock(42), TypeError, TYPE, 'resource'],
  ['resource missing', (m) => m.acquireLock(), TypeError, TYPE, 'resource'],
  ['resource with NUL', (m) => m.acquireLock('a\0b'), RangeError, ARG, 'resource'],
  ['resource of 1025 bytes', (m) => m.acquireLock('x'.repeat(1025)), RangeError, ARG, 'resource'],
  ['resource with a lone surrogate', (m) => m.acquireLock('order:\ud800'), RangeError, ARG, 'resource'],
  ['resource with a lone low surrogate', (m) => m.acquireLock('\udc00'), RangeError, ARG, 'resource'],
  ["resource 'a}b' (no slot-sharing key)", (m) => m.acquireLock('a}b'), RangeError, ARG, 'resource'],
  ['options 5', (m) => m.acquireLock('r', 1000, 0, 5), TypeError, TYPE, 'options'],
  ["ownerId ''", (m) => m.acquireLock('r', 1000, 0, { ownerId: '' }), RangeError, ARG, 'ownerId'],
  ['ownerId 42', (m) => m.acquireLock('r', 1000, 0, { ownerId: 42 }), TypeError, TYPE, 'ownerId'],
  ['ownerId lone surrogate', (m) => m.acquireLock('r', 1000, 0, { ownerId: '\ud83d' }), RangeError, ARG, 'ownerId'],
  ['priority 1.5', (m) => m.acquireLock('r', 1000, 0, { priority: 1.5 }), RangeError, ARG, 'priority'],
  ['priority 2**31', (m) => m.acquireLock('r', 1000, 0, { priority: 2 ** 31 }), RangeError, ARG, 'priority'],
  ["priority '1'", (m) => m.acquireLock('r', 1000, 0, { priority: '1' }), TypeError, TYPE, 'priority'],
  ["fair 'yes'", (m) => m.acquireLock('r', 1000, 0, { fair: 'yes' }), TypeError, TYPE, 'fair'],
  ['fair 1', (m) => m.acquireLock('r', 1000, 0, { fair: 1 }), TypeError, TYPE, 'fair'],
  ["signal 'x'", (m) => m.acquireLock('r', 1000, 0, { signal: 'x' }), TypeError, TYPE, 'signal'],
  ['releaseLock(5)', (m) => m.releaseLock(5), TypeError, TYPE, 'resource'],
  ['extend(-5)', (m, l) => l.extend(-5), RangeError, ARG, 'additionalTime'],
  ["extend('x')", (m, l) => l.extend('x'), TypeError, TYPE, 'additionalTime'],
  ['extend(0.5)', (m, l) => l.extend(0.5), RangeError, ARG, 'additionalTime'],
  ['using without fn', (m) => m.using('r'), TypeError, TYPE, 'fn'],
  ['using ttl -1', (m) => m.using('r', async () => 1, { ttl: -1 }), RangeError, ARG, 'ttl'],
  ["using timeout '1'", (m) => m.using('r', async () => 1, { timeout: '1' }), TypeError, TYPE, 'timeout'],
  ['using resource null', (m) => m.using(null, async () => 1), TypeError, TYPE, 'resource'],
]

// [label, construct, expected class, code, argument]
const syncCases = [
  ['DistributedLock ttl 0', () => new DistributedLock(server.url, 'lock:k', 0), RangeError, ARG, 'ttl'],
  ['DistributedLock ttl NaN', () => new DistributedLock(server.url, 'lock:k', NaN), RangeError, ARG, 'ttl'],
  ["DistributedLock lockKey ''", () => new DistributedLock(server.url, ''), RangeError, ARG, 'lockKey'],
  ['DistributedLock lockKey 7', () => new DistributedLock(server.url, 7), TypeError, TYPE, 'lockKey'],
  ["DistributedLock lockKey ending in ':~h'", () => new DistributedLock(server.url, 'x:~h'), RangeError, ARG, 'lockKey'],
  ['DistributedLock ownerId true', () => new DistributedLock(server.url, 'k', 1000, { ownerId: true }), TypeError, TYPE, 'ownerId'],
  ['redis 6379', () => new LockManager(6379), TypeError, TYPE, 'redis'],
  ['redis undefined', () => new LockManager(), TypeError, TYPE, 'redis'],
  ['redis a plain object', () => new DistributedLock({ host: 'x' }, 'k'), TypeError, TYPE, 'redis'],
  ["redis 'http://x'", () => new LockManager('http://x'), RangeError, ARG, 'url'],
  ["Client ''", () => new Client(''), RangeError, ARG, 'url'],
  ['Client url 5', () => new Client(5), TypeError, TYPE, 'url'],
  ['Client keyPrefix 5', () => new Client(server.url, { keyPrefix: 5 }), TypeError, TYPE, 'keyPrefix'],
  ["Client clientName 'a b'", () => new Client(server.url, { clientName: 'a b' }), RangeError, ARG, 'clientName'],
  ['Client connectTimeout 0', () => new Client(server.url, { connectTimeout: 0 }), RangeError, ARG, 'connectTimeout'],
  ['LockManager fair 1', () => new LockManager(server.url, { fair: 1 }), TypeError, TYPE, 'fair'],
  ['LockManager fallbackPoll 0', () => new LockManager(server.url, { fallbackPoll: 0 }), RangeError, ARG, 'fallbackPoll'],
  [
    'LockManager waiterLease < 2 x fallbackPoll',
    () => new LockManager(server.url, { fallbackPoll: 1000, waiterLease: 1500 }),
    RangeError,
    ARG,
    'waiterLease',
  ],
  ["LockManager ownerId ''", () => new LockManager(server.url, { ownerId: '' }), RangeError, ARG, 'ownerId'],
  ["LockManager options 'x'", () => new LockManager(server.url, 'x'), TypeError, TYPE, 'options'],
]

function check(e, Cls, code, argument, label) {
  assert.ok(e instanceof Cls, `${label}: ${e && e.constructor && e.constructor.name} is not ${Cls.name}: ${e}`)
  assert.equal(e.code, code, `${label}: code`)
  assert.equal(e.argument, argument, `${label}: argument`)
  assert.ok(e.message.includes(`\`${argument}\``), `${label}: message names the argument: ${e.message}`)
}

test(`${asyncCases.length} bad arguments reject the promise (never throw) and send nothing`, async () => {
  const manager = new LockManager(server.url)
  const lock = new DistributedLock(server.url, 'lock:never')
  for (const [label, call, Cls, code, argument] of asyncCases) {
    let p
    assert.doesNotThrow(() => {
      p = call(manager, lock)
    }, `${label}: threw synchronously`)
    assert.ok(p instanceof Promise, `${label}: returns a promise`)
    await assert.rejects(p, (e) => {
      check(e, Cls, code, argument, label)
      return true
    })
  }
  const stats = await raw.info('commandstats')
  assert.doesNotMatch(stats, /cmdstat_(evalsha|eval|set|client)/, 'nothing reached Redis')
  assert.equal(await raw.dbsize(), 0)
})

test(`${syncCases.length} bad constructor arguments throw with the same classes and codes`, async () => {
  for (const [label, construct, Cls, code, argument] of syncCases) {
    assert.throws(construct, (e) => {
      check(e, Cls, code, argument, label)
      return true
    })
  }
  assert.equal(await raw.dbsize(), 0)
})

test('ioredis Cluster and Sentinel instances are refused with a clear message', () => {
  const { Cluster } = require('ioredis5')
  const cluster = new Cluster([{ host: '127.0.0.1', port: server.port }], { lazyConnect: true })
  assert.throws(() => new LockManager(cluster), (e) => {
    check(e, TypeError, TYPE, 'redis', 'cluster')
    assert.match(e.message, /Cluster is not supported yet/)
    return true
  })
  const Redis = ioredis(5)
  const sentinel = new Redis({ sentinels: [{ host: '127.0.0.1', port: 26379 }], name: 'mymaster', lazyConnect: true })
  assert.throws(() => new DistributedLock(sentinel, 'lock:s'), /Sentinel is not supported yet/)
  cluster.disconnect()
  sentinel.disconnect()
})

test('the codes are the core kinds, and unknown-kind errors still carry a code', async () => {
  const m = new LockManager(server.url)
  await m.close()
  await assert.rejects(m.acquireLock('x'), (e) => {
    assert.equal(e.constructor, Error)
    assert.equal(e.code, 'TXCOORD_CLOSED')
    assert.match(e.message, /closed/)
    return true
  })
})
