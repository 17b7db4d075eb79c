// SPDX-License-Identifier: MIT OR Apache-2.0
// Process lifetime: a process that holds no locks exits by itself (no timer or handle keeps
// Node alive), close() releases everything, and both module systems load the package.
'use strict'

const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { spawn } = require('node:child_process')
const path = require('node:path')

const { ROOT, startRedis, rawRedis, compiledTs } = require('./helpers.js')

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

/** Runs `node args` in the checkout; resolves { code, stdout, stderr, ms } or rejects after `limitMs`. */
function run(args, limitMs = 15000) {
  return new Promise((resolve, reject) => {
    const started = Date.now()
    const child = spawn(process.execPath, args, {
      cwd: ROOT,
      env: { ...process.env, REDIS_URL: server.url },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`the child did not exit within ${limitMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`))
    }, limitMs)
    child.on('exit', (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr, ms: Date.now() - started })
    })
  })
}

test('a process that acquired and released its locks exits by itself', async () => {
  const script = `
    const { LockManager, DistributedLock, Client } = require('txcoord')
    ;(async () => {
      const client = new Client(process.env.REDIS_URL)
      const m = new LockManager(client)
      const lock = await m.acquireLock('exit:1', 30000, 1000)
      lock.on('lost', () => {})          // a lost-lock watcher
      void lock.signal                    // and a signal
      const waiter = m.acquireLock('exit:1', 30000, 200) // a wait that times out
      await waiter
      await m.releaseLock('exit:1')
      const d = new DistributedLock(client, 'lock:exit:2', 30000)
      await d.acquire()
      await d.release()
      await m.using('exit:3', async () => {})
      console.log('done', JSON.stringify(client.stats()))
    })()`
  const r = await run(['-e', script])
  assert.equal(r.code, 0, r.stderr)
  assert.match(r.stdout, /^done /)
  assert.equal(await raw.exists('lock:exit:1', 'lock:exit:2', 'lock:exit:3'), 0)
})

test('close() releases held locks, and the process exits', async () => {
  const script = `
    const { LockManager } = require('txcoord')
    ;(async () => {
      const m = new LockManager(process.env.REDIS_URL)
      for (const r of ['close:1', 'close:2']) await m.acquireLock(r, 60000, 1000)
      await m.close()
      console.log('closed')
    })()`
  const r = await run(['-e', script])
  assert.equal(r.code, 0, r.stderr)
  assert.equal(await raw.exists('lock:close:1', 'lock:close:2'), 0)
})

test('a process still holding a lock does not hang (its key expires with the ttl)', async () => {
  const script = `
    const { LockManager } = require('txcoord')
    new LockManager(process.env.REDIS_URL).acquireLock('held:1', 2000, 1000).then((l) => console.log('held', l.fencingToken))`
  const r = await run(['-e', script])
  assert.equal(r.code, 0, r.stderr)
  assert.match(r.stdout, /^held \d+/)
})

test("ESM: import { LockManager } from 'txcoord'", async () => {
  const out = compiledTs()
  const r = await run([path.join(out, 'tests', 'node', 'esm-import.mjs')])
  assert.equal(r.code, 0, r.stderr)
  assert.deepEqual(JSON.parse(r.stdout), { held: true, isLock: true, sameClass: true, client: 'function' })
  const inline = await run([
    '--input-type=module',
    '-e',
    "import { LockManager, DistributedLock, Client } from 'txcoord'; import * as all from 'txcoord'; console.log(typeof LockManager, typeof DistributedLock, typeof Client, typeof all.default)",
  ])
  assert.equal(inline.code, 0, inline.stderr)
  assert.equal(inline.stdout.trim(), 'function function function object')
})
