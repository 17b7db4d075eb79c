// SPDX-License-Identifier: MIT OR Apache-2.0
// The core lock scenarios at the JavaScript level, against a throwaway redis-server.
'use strict'

const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { spawn } = require('node:child_process')

const { Client, DistributedLock, LockManager } = require('txcoord')
const { ROOT, startRedis, rawRedis, waitFor, nextEvent, aborted } = require('./helpers.js')

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

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/

test('mutual exclusion with strictly increasing fencing tokens', async () => {
  const managers = [new LockManager(new Client(server.url)), new LockManager(new Client(server.url))]
  let inside = 0
  let maxInside = 0
  const tokens = []
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
      await raw.incr('mx:counter') // a round trip while holding
      inside--
      await lock.release()
    }
  })
  await Promise.all(workers)
  assert.equal(maxInside, 1)
  assert.equal(tokens.length, 36)
  for (let i = 1; i < tokens.length; i++) assert.ok(tokens[i] > tokens[i - 1], `token ${i} increases`)
  assert.equal(await raw.exists('lock:mx'), 0)
})

test('a vanished holder: its lock expires and the next token is larger', async () => {
  const script = `
    const { LockManager } = require('txcoord')
    const m = new LockManager(process.env.REDIS_URL)
    m.acquireLock('vanish', 800, 1000).then((lock) => {
      console.log(JSON.stringify({ token: lock.fencingToken }))
      setInterval(() => {}, 1000)
    })`
  const child = spawn(process.execPath, ['-e', script], {
    cwd: ROOT,
    env: { ...process.env, REDIS_URL: server.url },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const line = await new Promise((resolve, reject) => {
    let out = ''
    const timer = setTimeout(() => reject(new Error('child did not report')), 10000)
    child.stdout.on('data', (d) => {
      out += d
      if (out.includes('\n')) {
        clearTimeout(timer)
        resolve(out.split('\n')[0])
      }
    })
  })
  const { token } = JSON.parse(line)
  child.kill('SIGKILL')
  await new Promise((r) => child.once('exit', r))
  assert.equal(await raw.exists('lock:vanish'), 1, 'the dead holder still holds the key')
  const m = new LockManager(server.url)
  const started = Date.now()
  const lock = await m.acquireLock('vanish', 5000, 10000)
  assert.ok(lock, 'acquired after the expiry')
  assert.ok(Date.now() - started < 8000)
  assert.ok(lock.fencingToken > token)
  await m.releaseAllLocks()
})

test('Symbol.asyncDispose releases a lock and closes a manager (for `await using`)', async () => {
  const m = new LockManager(new Client(server.url))
  const lock = await m.acquireLock('disposed', 30000, 0)
  assert.ok(lock)
  assert.equal(await raw.exists('lock:disposed'), 1)
  await lock[Symbol.asyncDispose]()
  assert.equal(await raw.exists('lock:disposed'), 0)
  assert.equal(lock.isHeld, false)
  assert.ok(await m.acquireLock('disposed', 30000, 0))
  await m[Symbol.asyncDispose]()
  assert.equal(await raw.exists('lock:disposed'), 0)
  await assert.rejects(m.acquireLock('disposed', 30000, 0), { code: 'TXCOORD_CLOSED' })
})

test('lost lock: signal aborts with code and reason `taken`, and `lost` is emitted', async () => {
  const m = new LockManager(server.url)
  const lock = await m.acquireLock('lost-taken', 600, 0)
  assert.ok(lock)
  const signal = lock.signal
  assert.equal(signal.aborted, false)
  const event = nextEvent(lock, 'lost')
  await raw.set('lock:lost-taken', 'intruder', 'PX', 60000)
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
  assert.equal(await raw.get('lock:lost-taken'), 'intruder')
  assert.throws(() => signal.throwIfAborted(), { code: 'TXCOORD_LOCK_LOST' })
})

test('lost lock: reason `expired` when the key disappears, on a DistributedLock', async () => {
  const lock = new DistributedLock(server.url, 'lock:lost-expired', 600)
  const event = nextEvent(lock, 'lost')
  assert.equal(await lock.acquire(), true)
  await raw.del('lock:lost-expired')
  const err = await event
  assert.equal(err.code, 'TXCOORD_LOCK_LOST')
  assert.equal(err.reason, 'expired')
  assert.equal(lock.signal.aborted, true)
  assert.equal(lock.signal.reason, err)
  assert.equal(await lock.extend(), false)
  await lock.release()
})

test('renewal keeps a lock alive well past its ttl', async () => {
  const client = new Client(server.url)
  const m = new LockManager(client)
  const lock = await m.acquireLock('renew', 600, 0)
  assert.ok(lock)
  const value = await raw.get('lock:renew')
  assert.match(value, UUID)
  const before = client.stats().renewals
  await waitFor(() => client.stats().renewals >= before + 4, { what: '4 renewals', timeoutMs: 10000 })
  assert.equal(await raw.get('lock:renew'), value)
  assert.ok((await raw.pttl('lock:renew')) > 0)
  assert.equal(lock.isHeld, true)
  assert.ok(lock.remainingValidity > 0 && lock.remainingValidity <= 600)
  await m.releaseLock('renew')
  assert.equal(await raw.exists('lock:renew'), 0)
  assert.equal(lock.isHeld, false)
  assert.equal(lock.remainingValidity, 0)
})

test('extend sets the expiry now; extend() defaults to the ttl', async () => {
  const lock = new DistributedLock(server.url, 'lock:extend', 2000)
  assert.equal(lock.ttl, 2000)
  assert.equal(await lock.acquire(), true)
  assert.equal(await lock.extend(60000), true)
  assert.ok((await raw.pttl('lock:extend')) > 50000)
  assert.ok(lock.remainingValidity > 50000)
  assert.equal(await lock.extend(), true)
  assert.ok((await raw.pttl('lock:extend')) <= 2000)
  await lock.release()
  assert.equal(await lock.extend(), false)
})

test('defaults are the core defaults (ttl 30000 ms)', async () => {
  const lock = new DistributedLock(server.url, 'lock:defaults')
  assert.equal(lock.ttl, 30000)
  const m = new LockManager(server.url)
  const held = await m.acquireLock('defaults2')
  assert.equal(held.ttl, 30000)
  const pttl = await raw.pttl('lock:defaults2')
  assert.ok(pttl > 29000 && pttl <= 30000, `pttl ${pttl}`)
  await m.releaseAllLocks()
})

test('timeout resolves null and leaves no waiter entry in Redis', async () => {
  const holder = new LockManager(server.url)
  const waiter = new LockManager(new Client(server.url))
  assert.ok(await holder.acquireLock('busy', 10000, 0))
  const started = Date.now()
  const lock = await waiter.acquireLock('busy', 10000, 300)
  const waited = Date.now() - started
  assert.equal(lock, null)
  assert.ok(waited >= 280, `waited ${waited} ms`)
  assert.equal(await raw.exists('{lock:busy}:~q'), 0)
  assert.equal(await raw.exists('{lock:busy}:~w'), 0)
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
  const pending = waiter.acquireLock('wake', 60000, 30000)
  // The waiter queues (attempt 1), subscribes, tries again (attempt 2), then notes itself in
  // the waiting index and sleeps: once the index holds the lock, only a wake-up can end the wait.
  await waitFor(
    async () =>
      waiterClient.stats().subscribes >= 1 && (await raw.zscore('txcoord:waiting', 'lock:wake')) !== null,
    { what: 'the waiter to queue, subscribe and sleep' },
  )
  const released = Date.now()
  await holder.releaseLock('wake')
  const lock = await pending
  assert.ok(lock)
  const handoff = Date.now() - released
  const stats = waiterClient.stats()
  assert.ok(stats.wakeNotified >= 1, JSON.stringify(stats))
  assert.equal(stats.wakeTimer, 0)
  assert.ok(handoff < 5000, `handoff ${handoff} ms`)
  await waiter.releaseAllLocks()
})

test('fair mode serves waiters in arrival order', async () => {
  const holder = new LockManager(server.url)
  assert.ok(await holder.acquireLock('fair', 30000, 0))
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
    await waitFor(async () => (await raw.zcard('{lock:fair}:~q')) === i + 1, { what: `waiter ${i} queued` })
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
  assert.equal(await raw.exists('lock:reent'), 1, 'still held once')
  await saga.releaseLock('reent')
  assert.equal(await raw.exists('lock:reent'), 0)

  // without an owner, even one manager excludes itself
  const plain = new LockManager(server.url)
  assert.ok(await plain.acquireLock('excl', 10000, 0))
  assert.equal(await plain.acquireLock('excl', 10000, 200), null)
  // per-call owner
  const a = await plain.acquireLock('excl2', 10000, 0, { ownerId: 'o' })
  const b = await plain.acquireLock('excl2', 10000, 0, { ownerId: 'o' })
  assert.equal(b.holdCount, 2)
  assert.equal(a.fencingToken, b.fencingToken)
  await plain.releaseAllLocks()
  assert.equal(await raw.exists('lock:excl'), 0)
  assert.equal(await raw.exists('lock:excl2'), 0)
})

test('an AbortSignal cancels the wait and removes the waiter entry', async () => {
  const holder = new LockManager(server.url)
  const waiter = new LockManager(new Client(server.url))
  assert.ok(await holder.acquireLock('abort', 30000, 0))
  const ac = new AbortController()
  const pending = waiter.acquireLock('abort', 30000, 30000, { signal: ac.signal })
  await waitFor(async () => (await raw.hlen('{lock:abort}:~w')) === 1, { what: 'the waiter to queue' })
  ac.abort()
  await assert.rejects(pending, { name: 'AbortError' })
  await waitFor(async () => (await raw.exists('{lock:abort}:~w', '{lock:abort}:~q')) === 0, {
    what: 'the waiter entry to be removed',
  })
  // a custom reason is the rejection
  const ac2 = new AbortController()
  const p2 = waiter.acquireLock('abort', 30000, 30000, { signal: ac2.signal })
  await waitFor(async () => (await raw.hlen('{lock:abort}:~w')) === 1, { what: 'the second waiter' })
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
  await waitFor(async () => (await raw.exists('{lock:abort}:~w', '{lock:abort}:~q')) === 0, {
    what: 'no waiter left',
  })
  // a signal that never fires does not disturb a normal acquisition
  await holder.releaseLock('abort')
  const lock = await waiter.acquireLock('abort', 30000, 1000, { signal: new AbortController().signal })
  assert.ok(lock)
  await waiter.releaseAllLocks()
})

test('using: returns the result, releases always, rejects with TXCOORD_TIMEOUT when busy', async () => {
  const m = new LockManager(server.url)
  const value = await m.using('scoped', async (lock) => {
    assert.equal(lock.isHeld, true)
    assert.equal(await raw.exists('lock:scoped'), 1)
    return 42
  })
  assert.equal(value, 42)
  assert.equal(await raw.exists('lock:scoped'), 0)

  const boom = new Error('boom')
  await assert.rejects(
    m.using('scoped', async () => {
      throw boom
    }),
    (e) => e === boom,
  )
  await waitFor(async () => (await raw.exists('lock:scoped')) === 0, { what: 'release after a throw' })

  assert.equal(await m.using('scoped', () => 'sync', { ttl: 1000 }), 'sync')

  const holder = new LockManager(server.url)
  assert.ok(await holder.acquireLock('scoped', 30000, 0))
  await assert.rejects(m.using('scoped', async () => 1, { timeout: 50 }), {
    code: 'TXCOORD_TIMEOUT',
    key: 'lock:scoped',
  })
  const ac = new AbortController()
  const p = m.using('scoped', async () => 1, { timeout: 30000, signal: ac.signal })
  await waitFor(async () => (await raw.hlen('{lock:scoped}:~w')) === 1, { what: 'using to queue' })
  ac.abort()
  await assert.rejects(p, { name: 'AbortError' })
  await holder.releaseAllLocks()
})

test('close() releases everything and refuses later acquisitions', async () => {
  const m = new LockManager(server.url)
  for (const r of ['c1', 'c2', 'c3']) assert.ok(await m.acquireLock(r, 30000, 0))
  assert.deepEqual(m.heldResources, ['c1', 'c2', 'c3'])
  await m.close()
  assert.equal(await raw.exists('lock:c1', 'lock:c2', 'lock:c3'), 0)
  await assert.rejects(m.acquireLock('c4'), { code: 'TXCOORD_CLOSED' })
})

test('releaseAllLocks logs failures and never rejects', async () => {
  const client = new Client(server.url)
  const m = new LockManager(client)
  assert.ok(await m.acquireLock('fail1', 30000, 0))
  client.close() // every later command fails
  const logged = []
  const original = console.error
  console.error = (...args) => logged.push(args)
  let failures
  try {
    failures = await m.releaseAllLocks()
  } finally {
    console.error = original
  }
  assert.equal(failures.length, 1)
  assert.equal(failures[0].resource, 'fail1')
  assert.equal(failures[0].code, 'TXCOORD_CLOSED')
  assert.deepEqual(await new LockManager(new Client(server.url)).releaseAllLocks(), [])
  assert.equal(logged.length, 1)
  assert.match(String(logged[0][0]), /Failed to release lock for fail1/)
  assert.equal(logged[0][1].code, 'TXCOORD_CLOSED')
  await raw.del('lock:fail1')
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
  assert.match(await raw.get('lock:handle'), UUID)
  await a.release()
  await a.release() // twice is fine
  assert.equal(await b.acquire(), true)
  assert.ok(b.fencingToken > a.fencingToken)
  await b.release()
  assert.equal(a.status, 'released')
})

test('a signal read before acquiring follows the next hold', async () => {
  const lock = new DistributedLock(server.url, 'lock:early', 600)
  const signal = lock.signal
  assert.equal(await lock.acquire(), true)
  await raw.set('lock:early', 'x')
  const reason = await aborted(signal)
  assert.equal(reason.reason, 'taken')
  await raw.del('lock:early')
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
