// SPDX-License-Identifier: MIT OR Apache-2.0
// The Node service of the cross-language demo (`make demo`).
//
// It contends for the same locks as a Rust task and a Python worker, passes each lock's fencing
// token to its storage (a fenced write on Redis, examples/demo/fenced_write.lua), and hears when
// it has lost a lock. The demo (examples/rust/src/bin/demo.rs) drives it with one JSON command a
// line on stdin and reads one JSON event a line from its stdout. By hand:
//
//   echo '{"cmd": "contend", "resource": "inventory:sku-42", "rounds": 3}' |
//     REDIS_URL=redis://127.0.0.1:6379 node examples/demo/worker.js
'use strict'

const { once } = require('node:events')
const fs = require('node:fs')
const path = require('node:path')
const readline = require('node:readline')
// The application's own Redis client: ioredis 5 (installed here as the dev dependency
// `ioredis5`; in your project, require('ioredis')).
const Redis = require('ioredis5')
const { LockManager } = require('txcoord')

const FENCED_WRITE = fs.readFileSync(path.join(__dirname, 'fenced_write.lua'), 'utf8')

/** Wall-clock milliseconds, with sub-millisecond precision. */
const now = () => performance.timeOrigin + performance.now()
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const between = (lo, hi) => lo + Math.random() * (hi - lo)

/** One event for the demo: a JSON line, timestamped in wall-clock milliseconds. */
function emit(ev, fields = {}) {
  process.stdout.write(`${JSON.stringify({ ev, t: now(), ...fields })}\n`)
}

if (!process.env.REDIS_URL) throw new Error('set REDIS_URL (the demo orchestrator does)')
const redis = new Redis(process.env.REDIS_URL)
redis.defineCommand('fencedWrite', { numberOfKeys: 2, lua: FENCED_WRITE })
// txcoord reads the ioredis instance's options (host, db, credentials, TLS, keyPrefix).
const manager = new LockManager(redis)

/** The protected write: refused by the storage if a newer token has written since. */
async function write(resource, token) {
  const fence = `demo:${resource}:fence`
  const data = `demo:${resource}:log`
  const accepted = (await redis.fencedWrite(fence, data, token, `node ${token}`)) === 1
  emit('write', { resource, token, accepted })
  return accepted
}

const commands = {
  /** `rounds` times: take the lock, write under its token, work a little, let go, idle. */
  async contend({ resource, rounds, ttl_ms: ttl, work_ms: work, idle_ms: idle }) {
    for (let i = 0; i < rounds; i++) {
      const asked = now()
      await manager.using(
        resource,
        async (lock) => {
          emit('acquired', { resource, token: lock.fencingToken, asked })
          await write(resource, lock.fencingToken)
          await sleep(between(...work))
          emit('release', { resource })
        },
        { ttl, timeout: 10000 },
      )
      await sleep(between(...idle))
    }
  },

  /**
   * Holds a short-TTL lock, checks it, and is frozen before it writes (a stop-the-world pause:
   * GC, swap, a VM migration). Renewals stop with the process, the lock expires and another
   * service takes it: on waking up, the write is refused and the loss reported.
   */
  async hold({ resource, ttl_ms: ttl }) {
    const lock = await manager.acquireLock(resource, ttl, 10000)
    if (!lock) throw new Error(`${resource} is busy`)
    lock.on('lost', (err) => emit('lost', { resource, reason: err.reason }))
    const token = lock.fencingToken
    emit('acquired', { resource, token, ttl_ms: ttl })
    if (lock.isHeld) {
      // still ours, so write...
      emit('paused', { resource, pid: process.pid })
      process.kill(process.pid, 'SIGSTOP') // ...but the whole process freezes first
      emit('resumed', { resource, is_held: lock.isHeld })
      await write(resource, token)
    }
    // The 'lost' listener reported the loss the moment it was known; wait for it here.
    if (!lock.signal.aborted) await once(lock.signal, 'abort')
    await lock.release() // a lost lock's release is a no-op: the new holder keeps its lock
  },

  /** Takes the lock (waiting up to 10 s), writes, and keeps it until `release`. */
  async take({ resource, ttl_ms: ttl }) {
    const asked = now()
    const lock = await manager.acquireLock(resource, ttl, 10000)
    if (!lock) throw new Error(`${resource} stayed busy for 10 s`)
    emit('acquired', { resource, token: lock.fencingToken, asked })
    await write(resource, lock.fencingToken)
  },

  async release({ resource }) {
    emit('release', { resource })
    await manager.releaseLock(resource)
  },
}

async function main() {
  await redis.ping()
  emit('ready', { pid: process.pid, version: process.version })
  for await (const line of readline.createInterface({ input: process.stdin })) {
    const { cmd, ...args } = JSON.parse(line)
    if (cmd === 'exit') break
    await commands[cmd](args)
    emit('done', { cmd })
  }
  process.stdin.destroy() // the demo may keep its end open
  await manager.close()
  redis.disconnect()
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
