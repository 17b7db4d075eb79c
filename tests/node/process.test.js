// SPDX-License-Identifier: MIT OR Apache-2.0
// Process lifetime: a process that holds no locks exits by itself (no timer or handle keeps
// Node alive), close() releases everything, a process that exits holding a lock leaves its key
// to expire with the ttl, and both module systems load the package.
'use strict'

const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')

const { startRedis, rawRedis, compiledTs, nodeChild, keysOf } = require('./helpers.js')

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

/**
 * Runs `node args` in the checkout until it exits (killed after `limitMs`); resolves
 * { code, stdout, stderr, ms }.
 */
async function run(args, limitMs = 20000) {
  const started = Date.now()
  const child = nodeChild(args, { REDIS_URL: server.url })
  try {
    const { code } = await child.exit(limitMs)
    return { code, stdout: child.stdout(), stderr: child.stderr(), ms: Date.now() - started }
  } finally {
    await child.stop()
  }
}

// The keys the child printed as `keys <json array>`.
function printedKeys(stdout) {
  const m = /^keys (.*)$/m.exec(stdout)
  assert.ok(m, `no keys printed:\n${stdout}`)
  return JSON.parse(m[1])
}

test('a process that acquired and released its locks exits by itself', async () => {
  const script = `
    const { LockManager, DistributedLock, Client } = require('txcoord')
    ;(async () => {
      const client = new Client(process.env.REDIS_URL)
      const m = new LockManager(client)
      const keys = []
      const lock = await m.acquireLock('exit:1', 30000, 1000)
      keys.push(lock.key)
      lock.on('lost', () => {})          // a lost-lock watcher
      void lock.signal                    // and a signal
      const waiter = m.acquireLock('exit:1', 30000, 200) // a wait that times out
      if ((await waiter) !== null) throw new Error('the waiter got a held lock')
      await m.releaseLock('exit:1')
      const d = new DistributedLock(client, 'lock:exit:2', 30000)
      if (!(await d.acquire())) throw new Error('not acquired')
      keys.push(d.key)
      await d.release()
      await m.using('exit:3', async (l) => keys.push(l.key))
      console.log('keys', JSON.stringify(keys))
      console.log('done', JSON.stringify(client.stats()))
    })()`
  const r = await run(['-e', script])
  assert.equal(r.code, 0, r.stderr)
  assert.match(r.stdout, /^done /m)
  const keys = printedKeys(r.stdout)
  assert.equal(keys.length, 3)
  // Nothing is left of each lock: no lock key, no waiter, no fence state.
  for (const key of keys) assert.deepEqual(await keysOf(raw, key), [], key)
})

test('close() releases held locks, and the process exits', async () => {
  const script = `
    const { LockManager } = require('txcoord')
    ;(async () => {
      const m = new LockManager(process.env.REDIS_URL)
      const keys = []
      for (const r of ['close:1', 'close:2']) keys.push((await m.acquireLock(r, 60000, 1000)).key)
      await m.close()
      console.log('keys', JSON.stringify(keys))
    })()`
  const r = await run(['-e', script])
  assert.equal(r.code, 0, r.stderr)
  const keys = printedKeys(r.stdout)
  assert.equal(keys.length, 2)
  for (const key of keys) assert.deepEqual(await keysOf(raw, key), [], key)
})

test('a process still holding a lock exits, and its key expires with the ttl', async () => {
  const ttl = 5000
  const script = `
    const { LockManager } = require('txcoord')
    // referenced until the exit (an unreferenced lock may be collected, and so released, first)
    globalThis.manager = new LockManager(process.env.REDIS_URL)
    globalThis.manager.acquireLock('held:1', ${ttl}, 1000).then((l) => {
      globalThis.held = l
      console.log('held', JSON.stringify({ key: l.key, token: l.fencingToken }))
    })`
  const r = await run(['-e', script])
  assert.equal(r.code, 0, r.stderr)
  const m = /^held (.*)$/m.exec(r.stdout)
  assert.ok(m, r.stdout)
  const { key, token } = JSON.parse(m[1])
  // The child is gone and did not release: the key is still there, with the child's hold.
  const checked = Date.now()
  const [value, pttl, [secs, micros]] = await Promise.all([raw.get(key), raw.pttl(key), raw.time()])
  assert.match(String(value), /^2:[0-9a-f-]{36}$/, `${key} is held after the exit`)
  assert.ok(pttl > 0 && pttl <= ttl, `pttl ${pttl}`)
  // the token is the Redis clock (µs) at the grant: before now, after the ttl began
  const now = Number(secs) * 1e6 + Number(micros)
  assert.ok(token <= now && token > now - (ttl - pttl + 10000) * 1000, `token ${token}, Redis time ${now}`)
  // It disappears by expiry: not before its pttl ran out, and without anyone deleting it.
  let gone = null
  while (gone === null && Date.now() - checked < pttl + 10000) {
    await new Promise((res) => setTimeout(res, 50))
    if ((await raw.exists(key)) === 0) gone = Date.now()
  }
  assert.ok(gone !== null, `${key} still there ${pttl + 10000} ms after the check`)
  assert.ok(gone - checked >= pttl - 100, `gone ${gone - checked} ms after the check, pttl was ${pttl}`)
})

test("ESM: import { LockManager } from 'txcoord'", async () => {
  const out = compiledTs()
  const r = await run([path.join(out, 'tests', 'node', 'esm-import.mjs')])
  assert.equal(r.code, 0, r.stderr)
  assert.deepEqual(JSON.parse(r.stdout), { held: true, isLock: true, sameClass: true, client: 'function', defaultTtl: 30000 })
  const inline = await run([
    '--input-type=module',
    '-e',
    "import { LockManager, DistributedLock, Client, setLogger } from 'txcoord'; import * as all from 'txcoord'; console.log(typeof LockManager, typeof DistributedLock, typeof Client, typeof setLogger, typeof all.default)",
  ])
  assert.equal(inline.code, 0, inline.stderr)
  assert.equal(inline.stdout.trim(), 'function function function function object')
})
