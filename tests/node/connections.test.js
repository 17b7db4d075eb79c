// SPDX-License-Identifier: MIT OR Apache-2.0
// How a `redis` argument given as a URL string becomes a connection: the core's policy
// (`binding::target::url_client`, `Client::shared` in Rust) of one client per URL while in use,
// closed once nobody uses it. tests/python/test_connections.py has the same tests.
'use strict'

const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')

const { Client, DistributedLock, LockManager } = require('txcoord')
const { startRedis, rawRedis, waitFor, nodeChild } = require('./helpers.js')

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

// A database only this test uses: other tests' connections to the server do not count.
const urlOfDb = (db) => `${server.url.replace(/\/\d+$/, '')}/${db}`

async function txcoordConnections(db) {
  const list = await raw.client('LIST')
  return list.split('\n').filter((l) => / name=txcoord-/.test(l) && new RegExp(` db=${db} `).test(l)).length
}

test('two managers built from the same URL string share one connection', async () => {
  const db = 7
  const url = urlOfDb(db)
  const a = new LockManager(url)
  const b = new LockManager(url)
  assert.ok(await a.acquireLock('shared-a', 5000, 0))
  assert.ok(await b.acquireLock('shared-b', 5000, 0))
  // The seed builds a DistributedLock per call on its `redis`: no connection per lock either.
  const direct = new DistributedLock(url, 'lock:shared-c', 5000)
  assert.equal(await direct.acquire(), true)
  assert.equal(await txcoordConnections(db), 1, await raw.client('LIST'))
  await direct.release()
  assert.deepEqual(await a.releaseAllLocks(), [])
  assert.deepEqual(await b.releaseAllLocks(), [])
  // An explicit Client is a connection of its own.
  const own = new LockManager(new Client(url))
  assert.ok(await own.acquireLock('shared-d', 5000, 0))
  assert.equal(await txcoordConnections(db), 2)
  await own.close()
})

// In a child `node --expose-gc`: three managers built from one URL string take and release a
// lock each and it prints 'used'; once the key `drop` appears (in database 0, through a plain
// ioredis connection, which is not txcoord's), it drops them, prints 'dropped', and calls gc()
// every 50 ms (for at most 30 s).
const CHILD = `
  'use strict'
  const { LockManager } = require('txcoord')
  const Redis = require('ioredis5')
  const control = new Redis(process.env.CONTROL_URL)
  let managers = [0, 1, 2].map(() => new LockManager(process.env.REDIS_URL))
  async function use() {
    for (const [i, m] of managers.entries()) {
      const lock = await m.acquireLock('gone-' + i, 5000, 0)
      if (lock === null) throw new Error('not acquired')
      await lock.release()
    }
  }
  use().then(
    () => {
      console.log('used')
      const started = Date.now()
      const wait = setInterval(async () => {
        if (Date.now() - started > 30000) clearInterval(wait)
        if ((await control.exists('drop')) !== 1 || managers === null) return
        clearInterval(wait)
        managers = null
        console.log('dropped')
        const collect = setInterval(() => {
          globalThis.gc()
          if (Date.now() - started > 30000) {
            clearInterval(collect)
            control.disconnect()
          }
        }, 50)
      }, 50)
    },
    (e) => {
      console.error(e)
      process.exit(1)
    },
  )
`

test('a client nobody uses any more is closed', async () => {
  const db = 8
  await raw.del('drop')
  const child = nodeChild(['--expose-gc', '-e', CHILD], { REDIS_URL: urlOfDb(db), CONTROL_URL: server.url })
  try {
    assert.equal(await child.line(), 'used')
    assert.equal(await txcoordConnections(db), 1, 'one connection for the three managers')
    await raw.set('drop', '1')
    assert.equal(await child.line(), 'dropped')
    await waitFor(async () => (await txcoordConnections(db)) === 0, {
      timeoutMs: 20000,
      what: `the unused client's connection to close\n${child.output()}`,
    })
  } finally {
    await child.stop()
    await raw.del('drop')
  }
})
