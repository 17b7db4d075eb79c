// SPDX-License-Identifier: MIT OR Apache-2.0
// The core lock scenarios at the JavaScript level, against a throwaway redis-server.
'use strict'

const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')

const { Client, DistributedLock, LockManager, setLogger } = require('txcoord')
const { startRedis, rawRedis, waitFor, nextEvent, aborted, aux, keysOf, nodeChild } = require('./helpers.js')

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

// A lock value of protocol 2: the version, then a UUID v4 like the seed's values.
const LOCK_VALUE = /^2:[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/

test('mutual exclusion with strictly increasing fencing tokens', async () => {
  const managers = [new LockManager(new Client(server.url)), new LockManager(new Client(server.url))]
  let inside = 0
  let maxInside = 0
  const tokens = []
  const keys = new Set()
  const workers = Array.from({ length: 12 }, async (_, i) => {
    const m = managers[i % 2]
    for (let round = 0; round < 3; round++) {
      const lock = await m.acquireLock('mx', 5000, 20000)
      assert.ok(lock, 'acquired within the timeout')
      inside++
      maxInside = Math.max(maxInside, inside)
      tokens.push(lock.fencingToken)
      assert.equal(typeof lock.fencingToken, 'number')
      assert.ok(Number.isSafeInteger(lock.fencingToken))
      keys.add(lock.key)
      assert.equal(await raw.exists(lock.key), 1) // a round trip while holding
      inside--
      await lock.release()
    }
  })
  await Promise.all(workers)
  assert.equal(maxInside, 1)
  assert.equal(tokens.length, 36)
  for (let i = 1; i < tokens.length; i++) assert.ok(tokens[i] > tokens[i - 1], `token ${i} increases`)
  assert.deepEqual([...keys], ['lock:mx'])
  assert.equal(await raw.exists('lock:mx'), 0)
})

test('a vanished holder: its lock expires and the next token is larger', async () => {
  const ttl = 3000
  const script = `
    const { LockManager } = require('txcoord')
    const m = new LockManager(process.env.REDIS_URL)
    m.acquireLock('vanish', ${ttl}, 1000).then((lock) => {
      console.log(JSON.stringify({ key: lock.key, token: lock.fencingToken }))
      setInterval(() => {}, 1000)
    })`
  const child = nodeChild(['-e', script], { REDIS_URL: server.url })
  let key
  let token
  try {
    ;({ key, token } = JSON.parse(await child.line()))
  } finally {
    await child.stop() // SIGKILL: no release, no more renewals
  }
  assert.equal(await raw.exists(key), 1, 'the dead holder still holds the key')
  const m = new LockManager(server.url)
  const started = Date.now()
  const lock = await m.acquireLock('vanish', 5000, 30000)
  assert.ok(lock, 'acquired after the expiry')
  assert.equal(lock.key, key)
  // woken at the holder's expiry, not at the end of its own timeout
  assert.ok(Date.now() - started < ttl + 10000, `waited ${Date.now() - started} ms`)
  assert.ok(lock.fencingToken > token)
  await m.releaseAllLocks()
})

test('Symbol.asyncDispose releases a lock and closes a manager (for `await using`)', async () => {
  const m = new LockManager(new Client(server.url))
  const lock = await m.acquireLock('disposed', 30000, 0)
  assert.ok(lock)
  assert.equal(await raw.exists(lock.key), 1)
  await lock[Symbol.asyncDispose]()
  assert.equal(await raw.exists(lock.key), 0)
  assert.equal(lock.isHeld, false)
  const again = await m.acquireLock('disposed', 30000, 0)
  assert.ok(again)
  assert.equal(await raw.exists(again.key), 1)
  await m[Symbol.asyncDispose]()
  assert.equal(await raw.exists(again.key), 0)
  await assert.rejects(m.acquireLock('disposed', 30000, 0), { code: 'TXCOORD_CLOSED' })
})

test('lost lock: signal aborts with code and reason `taken`, and `lost` is emitted', async () => {
  const m = new LockManager(server.url)
  // Loss is seen at the next renewal (every ttl/3); the ttl leaves late renewals room.
  const lock = await m.acquireLock('lost-taken', 3000, 0)
  assert.ok(lock)
  assert.equal(lock.key, 'lock:lost-taken')
  const signal = lock.signal
  assert.equal(signal.aborted, false)
  const event = nextEvent(lock, 'lost')
  await raw.set(lock.key, 'intruder', 'PX', 60000)
  const reason = await aborted(signal)
  assert.ok(reason instanceof Error)
  assert.equal(reason.code, 'TXCOORD_LOCK_LOST')
  assert.equal(reason.reason, 'taken')
  assert.equal(reason.key, 'lock:lost-taken')
  const err = await event
  assert.equal(err, reason)
  assert.equal(lock.isHeld, false)
  assert.equal(lock.lossReason, 'taken')
  assert.equal(lock.status, 'lost')
  await lock.release() // does not throw, and does not delete the intruder's key
  assert.equal(await raw.get(lock.key), 'intruder')
  assert.throws(() => signal.throwIfAborted(), { code: 'TXCOORD_LOCK_LOST' })
})

test('lost lock: reason `expired` when the key disappears, on a DistributedLock', async () => {
  const lock = new DistributedLock(server.url, 'lock:lost-expired', 3000)
  const event = nextEvent(lock, 'lost')
  assert.equal(await lock.acquire(), true)
  assert.equal(await raw.del(lock.key), 1)
  const err = await event
  assert.equal(err.code, 'TXCOORD_LOCK_LOST')
  assert.equal(err.reason, 'expired')
  assert.equal(lock.signal.aborted, true)
  assert.equal(lock.signal.reason, err)
  assert.equal(await lock.extend(), false)
  await lock.release()
})

test('renewal keeps a lock alive well past its ttl', async () => {
  const ttl = 2000
  const client = new Client(server.url)
  const m = new LockManager(client)
  const started = Date.now()
  const lock = await m.acquireLock('renew', ttl, 0)
  assert.ok(lock)
  const value = await raw.get(lock.key)
  assert.match(value, LOCK_VALUE)
  const before = client.stats().renewals
  await waitFor(() => Date.now() - started > 2 * ttl && client.stats().renewals >= before + 4, {
    what: 'twice the ttl and 4 renewals',
    timeoutMs: 30000,
  })
  assert.equal(await raw.get(lock.key), value)
  assert.ok((await raw.pttl(lock.key)) > 0)
  assert.equal(lock.isHeld, true)
  assert.ok(lock.remainingValidity > 0 && lock.remainingValidity <= ttl)
  await m.releaseLock('renew')
  assert.equal(await raw.exists(lock.key), 0)
  assert.equal(lock.isHeld, false)
  assert.equal(lock.remainingValidity, 0)
})

test('extend sets the expiry now; extend() defaults to the ttl', async () => {
  const lock = new DistributedLock(server.url, 'lock:extend', 2000)
  assert.equal(lock.ttl, 2000)
  assert.equal(await lock.acquire(), true)
  assert.equal(await lock.extend(60000), true)
  assert.ok((await raw.pttl(lock.key)) > 50000)
  assert.ok(lock.remainingValidity > 50000)
  assert.equal(await lock.extend(), true)
  const pttl = await raw.pttl(lock.key)
  assert.ok(pttl > 0 && pttl <= 2000, `pttl ${pttl}`)
  await lock.release()
  assert.equal(await lock.extend(), false)
})

test('defaults are the core defaults (ttl 30000 ms)', async () => {
  const lock = new DistributedLock(server.url, 'lock:defaults')
  assert.equal(lock.ttl, 30000)
  const m = new LockManager(server.url)
  const held = await m.acquireLock('defaults2')
  assert.equal(held.ttl, 30000)
  const pttl = await raw.pttl(held.key)
  // 30 s, not some other default, with seconds for a slow round trip
  assert.ok(pttl > 20000 && pttl <= 30000, `pttl ${pttl}`)
  await m.releaseAllLocks()
})

test('timeout resolves null and leaves no waiter entry in Redis', async () => {
  const holder = new LockManager(server.url)
  const waiter = new LockManager(new Client(server.url))
  const held = await holder.acquireLock('busy', 30000, 0)
  assert.ok(held)
  const key = held.key
  assert.deepEqual(await keysOf(raw, key), [key])
  const started = Date.now()
  const pending = waiter.acquireLock('busy', 10000, 3000)
  // while it waits, its entries are there (queue and waiters)
  await waitFor(async () => (await keysOf(raw, key)).length === 3, { what: 'the waiter to queue' })
  const lock = await pending
  const waited = Date.now() - started
  assert.equal(lock, null)
  assert.ok(waited >= 2980, `waited ${waited} ms`)
  // and none is left once it gave up
  assert.deepEqual(await keysOf(raw, key), [key])
  // timeout 0 tries once
  assert.equal(await waiter.acquireLock('busy', 10000, 0), null)
  await holder.releaseAllLocks()
})

test('a waiter is woken by the release notification, not by a timer', async () => {
  const holderClient = new Client(server.url)
  const waiterClient = new Client(server.url)
  const holder = new LockManager(holderClient)
  const waiter = new LockManager(waiterClient, { fallbackPoll: 60000, waiterLease: 120000 })
  assert.ok(await holder.acquireLock('wake', 60000, 0))
  const sleeps = waiterClient.stats().sleeps
  const pending = waiter.acquireLock('wake', 60000, 30000)
  // Released only once the waiter is asleep: then only a wake-up (or a 60 s timer) ends the wait.
  await waitFor(() => waiterClient.stats().sleeps > sleeps, { what: 'the waiter to go to sleep' })
  const released = Date.now()
  await holder.releaseLock('wake')
  const lock = await pending
  assert.ok(lock)
  const handoff = Date.now() - released
  const stats = waiterClient.stats()
  assert.ok(stats.wakeNotified >= 1, JSON.stringify(stats))
  assert.equal(stats.wakeTimer, 0)
  assert.ok(handoff < 10000, `handoff ${handoff} ms`)
  await waiter.releaseAllLocks()
})

test('fair mode serves waiters in arrival order', async () => {
  const holder = new LockManager(server.url)
  const held = await holder.acquireLock('fair', 30000, 0)
  assert.ok(held)
  const queue = aux(held.key, '~q')
  const order = []
  const waiters = []
  for (let i = 0; i < 4; i++) {
    const m = new LockManager(new Client(server.url), { fair: true })
    waiters.push(
      m.acquireLock('fair', 30000, 30000).then(async (lock) => {
        assert.ok(lock)
        order.push(i)
        await lock.release()
      }),
    )
    await waitFor(async () => (await raw.zcard(queue)) === i + 1, { what: `waiter ${i} queued` })
  }
  await holder.releaseLock('fair')
  await Promise.all(waiters)
  assert.deepEqual(order, [0, 1, 2, 3])
})

test('re-entrant for one explicit owner; exclusive without an owner', async () => {
  const saga = new LockManager(server.url, { ownerId: 'saga-7' })
  assert.equal(saga.ownerId, 'saga-7')
  const first = await saga.acquireLock('reent', 10000, 0)
  const second = await saga.acquireLock('reent', 10000, 1000)
  assert.ok(first && second)
  assert.equal(second.fencingToken, first.fencingToken)
  assert.equal(second.holdCount, 2)
  assert.equal(second.ownerId, 'saga-7')
  // another owner waits
  const other = new LockManager(server.url, { ownerId: 'saga-8' })
  assert.equal(await other.acquireLock('reent', 10000, 0), null)
  await saga.releaseLock('reent')
  assert.equal(await raw.exists(first.key), 1, 'still held once')
  await saga.releaseLock('reent')
  assert.equal(await raw.exists(first.key), 0)

  // without an owner, even one manager excludes itself
  const plain = new LockManager(server.url)
  const excl = await plain.acquireLock('excl', 10000, 0)
  assert.ok(excl)
  assert.equal(await plain.acquireLock('excl', 10000, 200), null)
  // per-call owner
  const a = await plain.acquireLock('excl2', 10000, 0, { ownerId: 'o' })
  const b = await plain.acquireLock('excl2', 10000, 0, { ownerId: 'o' })
  assert.equal(b.holdCount, 2)
  assert.equal(a.fencingToken, b.fencingToken)
  assert.equal(await raw.exists(excl.key, a.key), 2)
  await plain.releaseAllLocks()
  assert.equal(await raw.exists(excl.key, a.key), 0)
})

test('an AbortSignal cancels the wait and removes the waiter entry', async () => {
  const holder = new LockManager(server.url)
  const waiter = new LockManager(new Client(server.url))
  const held = await holder.acquireLock('abort', 30000, 0)
  assert.ok(held)
  const key = held.key
  const waiters = aux(key, '~w')
  // what is there when no waiter is: the lock key alone
  const idle = [key]
  assert.deepEqual(await keysOf(raw, key), idle)
  const ac = new AbortController()
  const pending = waiter.acquireLock('abort', 30000, 30000, { signal: ac.signal })
  await waitFor(async () => (await raw.hlen(waiters)) === 1, { what: 'the waiter to queue' })
  ac.abort()
  await assert.rejects(pending, { name: 'AbortError' })
  await waitFor(async () => (await keysOf(raw, key)).length === 1, { what: 'the waiter entry to be removed' })
  assert.deepEqual(await keysOf(raw, key), idle)
  // a custom reason is the rejection
  const ac2 = new AbortController()
  const p2 = waiter.acquireLock('abort', 30000, 30000, { signal: ac2.signal })
  await waitFor(async () => (await raw.hlen(waiters)) === 1, { what: 'the second waiter' })
  const why = new Error('shutting down')
  ac2.abort(why)
  await assert.rejects(p2, (e) => e === why)
  // already aborted: rejects at once, nothing queued
  await assert.rejects(waiter.acquireLock('abort', 30000, 30000, { signal: AbortSignal.abort() }), {
    name: 'AbortError',
  })
  // AbortSignal.timeout
  await assert.rejects(waiter.acquireLock('abort', 30000, 30000, { signal: AbortSignal.timeout(100) }), {
    name: 'TimeoutError',
  })
  await waitFor(async () => (await keysOf(raw, key)).length === 1, { what: 'no waiter left' })
  assert.deepEqual(await keysOf(raw, key), idle)
  // a signal that never fires does not disturb a normal acquisition
  await holder.releaseLock('abort')
  const lock = await waiter.acquireLock('abort', 30000, 1000, { signal: new AbortController().signal })
  assert.ok(lock)
  await waiter.releaseAllLocks()
})

test('a scoped lock is in heldResources during its scope only', async () => {
  const m = new LockManager(server.url)
  assert.deepEqual(m.heldResources, [])
  await m.using('scoped-held', async (lock) => {
    assert.deepEqual(m.heldResources, ['scoped-held'], "the core's table lists a scoped lock")
    assert.ok(lock.isHeld)
    assert.equal(await raw.exists('lock:scoped-held'), 1)
  })
  assert.deepEqual(m.heldResources, [])
  assert.equal(await raw.exists('lock:scoped-held'), 0)
  // Also when the scope ends with an exception.
  await assert.rejects(
    m.using('scoped-held', async () => {
      assert.deepEqual(m.heldResources, ['scoped-held'])
      throw new Error('boom')
    }),
    /boom/,
  )
  assert.deepEqual(m.heldResources, [])
  // A scope that cannot acquire fails with the core's timeout error and lists nothing.
  const other = new LockManager(server.url)
  assert.ok(await other.acquireLock('scoped-held', 5000, 0))
  await assert.rejects(m.using('scoped-held', async () => 1, { ttl: 5000, timeout: 100 }), {
    code: 'TXCOORD_TIMEOUT',
    key: 'lock:scoped-held',
  })
  assert.deepEqual(m.heldResources, [])
  await other.close()
})

test('using: returns the result, releases always, rejects with TXCOORD_TIMEOUT when busy', async () => {
  const m = new LockManager(server.url)
  let key
  const value = await m.using('scoped', async (lock) => {
    assert.equal(lock.isHeld, true)
    key = lock.key
    assert.equal(await raw.exists(key), 1)
    return 42
  })
  assert.equal(value, 42)
  assert.equal(await raw.exists(key), 0)

  const boom = new Error('boom')
  await assert.rejects(
    m.using('scoped', async () => {
      throw boom
    }),
    (e) => e === boom,
  )
  await waitFor(async () => (await raw.exists(key)) === 0, { what: 'release after a throw' })

  assert.equal(await m.using('scoped', () => 'sync', { ttl: 1000 }), 'sync')

  const holder = new LockManager(server.url)
  assert.ok(await holder.acquireLock('scoped', 30000, 0))
  await assert.rejects(m.using('scoped', async () => 1, { timeout: 50 }), {
    code: 'TXCOORD_TIMEOUT',
    key: 'lock:scoped',
  })
  const ac = new AbortController()
  const p = m.using('scoped', async () => 1, { timeout: 30000, signal: ac.signal })
  await waitFor(async () => (await raw.hlen(aux(key, '~w'))) === 1, { what: 'using to queue' })
  ac.abort()
  await assert.rejects(p, { name: 'AbortError' })
  await holder.releaseAllLocks()
})

test('close() releases everything and refuses later acquisitions', async () => {
  const m = new LockManager(server.url)
  const keys = []
  for (const r of ['c1', 'c2', 'c3']) keys.push((await m.acquireLock(r, 30000, 0)).key)
  assert.deepEqual(m.heldResources, ['c1', 'c2', 'c3'])
  assert.equal(await raw.exists(...keys), 3)
  await m.close()
  assert.equal(await raw.exists(...keys), 0)
  await assert.rejects(m.acquireLock('c4'), { code: 'TXCOORD_CLOSED' })
})

test('releaseAllLocks logs failures and never rejects', async () => {
  // The log record (an `error`) is checked in logging.test.js.
  const logged = []
  setLogger({ warn() {}, error: (message) => logged.push(message) })
  try {
    const client = new Client(server.url)
    const m = new LockManager(client)
    const held = await m.acquireLock('fail1', 30000, 0)
    assert.ok(held)
    client.close() // every later command fails
    const failures = await m.releaseAllLocks()
    assert.equal(failures.length, 1)
    assert.equal(failures[0].resource, 'fail1')
    assert.equal(failures[0].code, 'TXCOORD_CLOSED')
    assert.deepEqual(await new LockManager(new Client(server.url)).releaseAllLocks(), [])
    await waitFor(() => logged.length > 0, { what: 'the error record' })
    assert.match(logged[0], /failed to release lock for fail1/)
    assert.equal(await raw.del(held.key), 1, 'the failed release left the key')
  } finally {
    setLogger(null)
  }
})

test('Redis unreachable: a connection error, not null', async () => {
  const m = new LockManager(new Client('redis://127.0.0.1:1', { connectTimeout: 200, responseTimeout: 200 }))
  await assert.rejects(m.acquireLock('down', 1000, 100), { code: 'TXCOORD_CONNECTION' })
})

test('a DistributedLock handle: one hold at a time, and the seed value format', async () => {
  const a = new DistributedLock(server.url, 'lock:handle', 5000)
  const b = new DistributedLock(server.url, 'lock:handle', 5000)
  assert.equal(a.fencingToken, null)
  assert.equal(a.status, 'idle')
  assert.equal(await a.acquire(), true)
  assert.equal(await a.acquire(), false, 'no second hold on one handle')
  assert.equal(await b.acquire(), false)
  assert.match(await raw.get(a.key), LOCK_VALUE)
  await a.release()
  await a.release() // twice is fine
  assert.equal(await b.acquire(), true)
  assert.ok(b.fencingToken > a.fencingToken)
  await b.release()
  assert.equal(a.status, 'released')
})

test('a signal read before acquiring follows the next hold', async () => {
  const lock = new DistributedLock(server.url, 'lock:early', 3000)
  const signal = lock.signal
  assert.equal(await lock.acquire(), true)
  await raw.set(lock.key, 'x')
  const reason = await aborted(signal)
  assert.equal(reason.reason, 'taken')
  await raw.del(lock.key)
  // a new hold gets a fresh signal
  assert.equal(await lock.acquire(), true)
  assert.equal(lock.signal.aborted, false)
  await lock.release()
})

test('a panic never aborts the process', async () => {
  const native = require('../../bindings-node/native.js')
  assert.throws(() => native.__panicForTests(true), /panic/)
  await assert.rejects(native.__panicForTests(false), { code: 'TXCOORD_INTERNAL', message: /panic/ })
})

test("napi-rs' plain async path (the benchmark's comparison) settles as the bridge does", async () => {
  // bindings-node/benchmark/bridge.js compares the two paths on the same calls: both must give
  // the same results, rejections (with their codes and classes) and panics.
  const native = require('../../bindings-node/native.js')
  const outcomes = async () => {
    const client = new Client(server.url)
    const m = new LockManager(client)
    const lock = await m.acquireLock('plain-path', 5000, 0)
    const out = [lock.key, lock.fencingToken > 0, await lock.extend(5000), await m.acquireLock('plain-path', 5000, 0)]
    await m.releaseLock('plain-path')
    out.push(await raw.exists(lock.key))
    await assert.rejects(native.__panicForTests(false), { code: 'TXCOORD_INTERNAL', message: /panic/ })
    client.close()
    const e = await m.acquireLock('plain-path', 5000, 0).catch((err) => err)
    out.push(e.constructor.name, e.code)
    return out
  }
  const bridged = await outcomes()
  native.__usePlainBridge(true)
  let plain
  try {
    plain = await outcomes()
  } finally {
    native.__usePlainBridge(false)
  }
  assert.deepEqual(bridged, ['lock:plain-path', true, true, null, 0, 'Error', 'TXCOORD_CLOSED'])
  assert.deepEqual(plain, bridged)
})
