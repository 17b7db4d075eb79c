// SPDX-License-Identifier: MIT OR Apache-2.0
// The seed's own call sites (compiled from tests/node/seed-callsites.ts and seed-usage.ts, where
// only the imports differ from the seed) on ioredis 5 and 6 instances, with and without
// keyPrefix; and wire compatibility with the seed's original DistributedLock.
'use strict'

const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')

const txcoord = require('txcoord')
const { startRedis, rawRedis, ioredis, compiledTs, waitFor, allKeys, aux, keysOf } = require('./helpers.js')

let server
let raw
let out

before(async () => {
  out = compiledTs()
  server = await startRedis()
  raw = rawRedis(server)
})

after(async () => {
  raw.disconnect()
  await server.stop()
})

// A lock value of protocol 2: the version, then a UUID v4 like the seed's values.
const LOCK_VALUE = /^2:[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/

function load(rel) {
  return require(path.join(out, 'tests', 'node', rel))
}

for (const major of [5, 6]) {
  for (const keyPrefix of ['', 'svc:']) {
    const label = `ioredis ${major}${keyPrefix ? ` with keyPrefix '${keyPrefix}'` : ''}`

    test(`the seed's LockManager on txcoord's DistributedLock, ${label}`, async () => {
      const { LockManager: SeedLockManager } = load('seed-callsites.js')
      // a server of its own, so that only this test's connections are counted
      const own = await startRedis()
      const ownRaw = rawRedis(own)
      const Redis = ioredis(major)
      const redis = new Redis({ host: '127.0.0.1', port: own.port, keyPrefix })
      const redis2 = new Redis({ host: '127.0.0.1', port: own.port, keyPrefix })
      try {
        const manager = new SeedLockManager(redis)
        const resource = `order:${major}:${keyPrefix.length}`
        const lock = await manager.acquireLock(resource, 5000, 1000)
        assert.ok(lock instanceof txcoord.DistributedLock)
        // the key is where the seed puts it: ioredis' prefix + `lock:<resource>`
        const value = await ownRaw.get(`${keyPrefix}lock:${resource}`)
        assert.match(value, LOCK_VALUE)
        assert.equal(await redis.get(`lock:${resource}`), value, 'ioredis sees it under its own prefix')
        assert.equal(lock.key, `${keyPrefix}lock:${resource}`)
        // exclusion, as the seed expects (its loop polls until its timeout)
        const other = new SeedLockManager(redis2)
        assert.equal(await other.acquireLock(resource, 5000, 300), null)
        await manager.releaseLock(resource)
        assert.equal(await ownRaw.exists(`${keyPrefix}lock:${resource}`), 0)
        const again = await other.acquireLock(resource, 5000, 1000)
        assert.ok(again)
        // many locks on one ioredis instance share one native connection
        for (let i = 0; i < 10; i++) assert.ok(await manager.acquireLock(`${resource}:${i}`, 5000, 1000))
        await manager.releaseAllLocks()
        await other.releaseAllLocks()
        const list = await ownRaw.client('LIST')
        const ours = list.split('\n').filter((l) => / name=txcoord-/.test(l))
        assert.equal(ours.length, 2, `one connection per ioredis instance:\n${list}`)
        // Nothing on this server but the waiting index (the seed's other manager waited): the
        // 12 locks left no lock key, no waiter entry, no fence state.
        const left = (await allKeys(ownRaw)).filter((k) => k !== `${keyPrefix}txcoord:waiting`)
        assert.deepEqual(left, [])
      } finally {
        redis.disconnect()
        redis2.disconnect()
        ownRaw.disconnect()
        await own.stop()
      }
    })

    test(`the seed's call sites on txcoord's classes, ${label}`, async () => {
      const { seedUsage } = load('seed-usage.js')
      const Redis = ioredis(major)
      const redis = new Redis({ host: '127.0.0.1', port: server.port, keyPrefix })
      try {
        const resource = `usage:${major}:${keyPrefix.length}`
        const r = await seedUsage(redis, resource)
        assert.equal(typeof r.token, 'number')
        assert.equal(r.extended, true)
        assert.equal(r.extendedBy, true)
        assert.equal(r.second, null)
        assert.equal(r.direct, true)
        assert.equal(r.directAgain, false)
        // The locks were where the seed puts them and are released: nothing is left of them,
        // and the token was the Redis clock (µs) at the grant.
        const key = `${keyPrefix}lock:${resource}`
        assert.deepEqual(await keysOf(raw, key), [])
        const direct = `${keyPrefix}lock:${resource}:direct`
        assert.deepEqual(await keysOf(raw, direct), [])
        const [secs, micros] = await raw.time()
        const now = Number(secs) * 1e6 + Number(micros)
        assert.ok(r.token <= now && r.token > now - 60e6, `token ${r.token}, Redis time ${now}`)
      } finally {
        redis.disconnect()
      }
    })
  }
}

test("wire compatibility with the seed's original DistributedLock, both ways", async () => {
  const { DistributedLock: SeedLock } = load('seed/distributed-lock.js')
  const Redis = ioredis(5)
  const redis = new Redis({ host: '127.0.0.1', port: server.port })
  try {
    const manager = new txcoord.LockManager(redis)
    // the seed holds: txcoord waits, polling (the seed announces nothing), then gets it
    const seedLock = new SeedLock(redis, 'lock:compat', 5000)
    assert.equal(await seedLock.acquire(), true)
    assert.equal(await manager.acquireLock('compat', 5000, 200), null)
    const pending = manager.acquireLock('compat', 5000, 10000)
    await waitFor(async () => (await raw.hlen(aux('lock:compat', '~w'))) === 1, { what: 'txcoord to queue' })
    await seedLock.release()
    const lock = await pending
    assert.ok(lock)
    // txcoord holds: the seed's SET NX fails, its extend of a foreign value fails
    const seedLock2 = new SeedLock(redis, 'lock:compat', 5000)
    assert.equal(await seedLock2.acquire(), false)
    assert.equal(await seedLock2.extend(), false)
    await manager.releaseLock('compat')
    assert.equal(await seedLock2.acquire(), true)
    await seedLock2.release()
  } finally {
    redis.disconnect()
  }
})

test('the ioredis options reach the same server and database (db, username/password)', async () => {
  const Redis = ioredis(6)
  await raw.call('ACL', 'SETUSER', 'svc', 'on', '>s3cr:t@x', '~*', '&*', '+@all')
  const redis = new Redis({ host: '127.0.0.1', port: server.port, db: 3, username: 'svc', password: 's3cr:t@x' })
  const db3 = new (ioredis(5))({ host: '127.0.0.1', port: server.port, db: 3 })
  try {
    const manager = new txcoord.LockManager(redis)
    const lock = await manager.acquireLock('db3', 5000, 0)
    assert.ok(lock)
    assert.match(await db3.get('lock:db3'), LOCK_VALUE)
    assert.equal(await raw.exists('lock:db3'), 0, 'not in db 0')
    const list = await raw.client('LIST')
    assert.match(list, /name=txcoord-\S+ .*db=3 .*user=svc/)
    await manager.releaseAllLocks()
    assert.equal(await db3.exists('lock:db3'), 0)
  } finally {
    redis.disconnect()
    db3.disconnect()
  }
})
