// SPDX-License-Identifier: MIT OR Apache-2.0
// Garbage collection of a standalone DistributedLock: once the program drops every reference
// to a held lock, it is collected and its renewal stops, whether or not its `signal` was read
// or a 'lost' listener added. Each case runs in a child `node --expose-gc` that calls gc()
// in a bounded loop; this process watches the lock key through a raw connection.
'use strict'

const { describe, test, before, after } = require('node:test')
const assert = require('node:assert/strict')

const { startRedis, rawRedis, nodeChild } = require('./helpers.js')

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

// Renewed every ttl/3, so a renewal may be up to 2/3 ttl late before the lock is lost: room for
// a loaded machine. A collected lock is released at once (its key does not wait for the ttl).
const TTL = 2000
// How long the key of a dropped lock may take to disappear: 3 x ttl, widened for a loaded
// machine. Renewals every ttl/3 would keep it forever.
const GONE_WITHIN = Math.max(3 * TTL, 10000)

// Acquires a lock (GC_MAKER: `new DistributedLock`, or a LockManager's acquireLock), reads its
// signal and/or adds a 'lost' listener as GC_MODE says, keeps a reference to the lock, to its
// signal or to nothing (GC_KEEP), prints `{ key }`, then calls gc() every 50 ms for at most
// 30 s. It prints 'collected' when the lock object is garbage-collected, 'lost <reason>' and
// 'aborted <reason>' when those fire, and `stats <client.stats()>` every 500 ms.
const CHILD = `
  'use strict'
  const { Client, DistributedLock, LockManager } = require('txcoord')
  const { GC_MAKER: maker, GC_MODE: mode, GC_KEEP: keep } = process.env
  const ttl = Number(process.env.GC_TTL)
  const client = new Client(process.env.REDIS_URL)
  const manager = new LockManager(client)
  const collected = new FinalizationRegistry(() => console.log('collected'))
  let kept = null
  async function hold() {
    let lock
    if (maker === 'manager') {
      lock = await manager.acquireLock(process.env.GC_NAME, ttl, 0)
      if (lock === null) throw new Error('not acquired')
    } else {
      lock = new DistributedLock(client, process.env.GC_NAME, ttl)
      if (!(await lock.acquire())) throw new Error('not acquired')
    }
    collected.register(lock, null)
    if (mode === 'signal' || mode === 'both') {
      const signal = lock.signal
      if (signal.aborted) throw new Error('aborted at once')
      signal.addEventListener('abort', (e) => console.log('aborted', e.target.reason.reason))
      if (keep === 'signal') kept = signal
    }
    if (mode === 'lost' || mode === 'both') lock.on('lost', (e) => console.log('lost', e.reason))
    const key = lock.key
    if (keep === 'lock') kept = lock
    lock = null
    return key
  }
  hold().then(
    (key) => {
      console.log(JSON.stringify({ key }))
      const started = Date.now()
      const collect = setInterval(() => {
        globalThis.gc()
        if (Date.now() - started > 30000) clearInterval(collect)
      }, 50)
      const report = setInterval(() => {
        console.log('stats', JSON.stringify(client.stats()))
        if (Date.now() - started > 30000) clearInterval(report)
      }, 500)
    },
    (e) => {
      console.error(e)
      process.exit(1)
    },
  )
`

async function withChild({ maker = 'lock', mode, keep }, fn) {
  const child = nodeChild(['--expose-gc', '-e', CHILD], {
    REDIS_URL: server.url,
    GC_MAKER: maker,
    GC_MODE: mode,
    GC_KEEP: keep,
    GC_NAME: `gc:${maker}:${mode}:${keep}`,
    GC_TTL: String(TTL),
  })
  try {
    const { key } = JSON.parse(await child.line())
    const value = await raw.get(key)
    assert.ok(value, `the child holds ${key}`)
    await fn(key, value, child)
  } finally {
    await child.stop()
  }
}

// The child's next line other than its stats; with `stats`, its next stats line instead.
async function nextLine(child, { stats = false } = {}) {
  for (let i = 0; i < 100; i++) {
    const line = await child.line()
    const isStats = line.startsWith('stats ')
    if (stats && isStats) return JSON.parse(line.slice('stats '.length))
    if (!stats && !isStats) return line
  }
  throw new Error(`no such line from the child\n${child.output()}`)
}

// Asserts that `key` keeps `value` for more than 3 x ttl (renewed all along).
async function assertRenewed(key, value, child) {
  const started = Date.now()
  while (Date.now() - started < 3 * TTL + 500) {
    await new Promise((r) => setTimeout(r, 100))
    assert.equal(await raw.get(key), value, `${key} lost while referenced\n${child.output()}`)
  }
  assert.ok((await raw.pttl(key)) > 0)
  assert.doesNotMatch(child.output(), /^collected$/m)
}

const USES = {
  plain: 'neither signal nor lost',
  signal: 'signal read',
  lost: "a 'lost' listener",
  both: "signal and 'lost'",
}

// Each case has a child of its own; a few run at once.
describe('garbage collection of locks', { concurrency: 3 }, () => {
  for (const mode of Object.keys(USES)) {
    test(`a dropped lock (${USES[mode]}) is collected: renewal stops and its key goes`, async () => {
      await withChild({ mode, keep: 'none' }, async (key, value, child) => {
        const deadline = Date.now() + GONE_WITHIN
        let now = value
        while (now !== null && Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, 50))
          now = await raw.get(key)
        }
        assert.equal(now, null, `${key} still held ${GONE_WITHIN} ms after the lock was dropped\n${child.output()}`)
        // Gone because the lock was collected (and released), not because it was lost.
        assert.equal(await nextLine(child), 'collected')
        const stats = await nextLine(child, { stats: true })
        assert.equal(stats.lost, 0, child.output())
      })
    })

    test(`a referenced lock (${USES[mode]}) keeps being renewed past 3 x ttl`, async () => {
      await withChild({ mode, keep: 'lock' }, assertRenewed)
    })
  }

  test('a lock whose signal is still referenced stays held, and the signal reports its loss', async () => {
    await withChild({ mode: 'signal', keep: 'signal' }, async (key, value, child) => {
      await assertRenewed(key, value, child)
      await raw.set(key, 'intruder')
      assert.equal(await nextLine(child), 'aborted taken')
    })
  })

  test("a LockManager's lock stays held by the manager when its handle is dropped; signal and 'lost' still fire", async () => {
    await withChild({ maker: 'manager', mode: 'both', keep: 'none' }, async (key, value, child) => {
      await assertRenewed(key, value, child)
      await raw.set(key, 'intruder')
      assert.equal(await nextLine(child), 'aborted taken')
      assert.equal(await nextLine(child), 'lost taken')
    })
  })
})
