// SPDX-License-Identifier: MIT OR Apache-2.0
// Acquire+release cycles per second: the seed's own DistributedLock (its TypeScript, compiled,
// over one ioredis connection) against txcoord (LockManager.acquireLock + release, and
// new DistributedLock + acquire + release, as the seed's callers do), 1 and 50 concurrent
// promises, on a throwaway redis-server. Not part of the test run:
//   node bench/node/cycles.js            (REDIS_URL=... to use another server)
// The addon must be built first (scripts/test-node.sh builds a debug one; TXCOORD_NODE=path/index.js
// loads another copy, as scripts/bench.sh does; for numbers use
// `npx napi build --release --manifest-path bindings-node/Cargo.toml --output-dir bindings-node --package-json-path package.json --dts native.d.ts`).
'use strict'

const path = require('node:path')
const { LockManager, DistributedLock, Client } = require(process.env.TXCOORD_NODE || 'txcoord')
const { ioredis, compiledTs } = require('../../tests/node/helpers.js')
const { startRedis } = require('./redis-server.js')

const ROUNDS = Number(process.env.ROUNDS || 3)
const TOTAL = { 1: Number(process.env.N1 || 10000), 50: Number(process.env.N50 || 50000) }

async function measure(concurrency, total, cycle) {
  const per = Math.ceil(total / concurrency)
  const started = process.hrtime.bigint()
  await Promise.all(
    Array.from({ length: concurrency }, async (_, k) => {
      for (let i = 0; i < per; i++) await cycle(k)
    }),
  )
  const seconds = Number(process.hrtime.bigint() - started) / 1e9
  return (per * concurrency) / seconds
}

async function main() {
  const out = compiledTs()
  const { DistributedLock: SeedLock } = require(path.join(out, 'tests', 'node', 'seed', 'distributed-lock.js'))
  const server = process.env.REDIS_URL ? null : await startRedis()
  const url = process.env.REDIS_URL || server.url
  const { port, hostname } = new URL(url)
  const Redis = ioredis(Number(process.env.IOREDIS || 5))
  const redis = new Redis({ host: hostname, port: Number(port) })
  const client = new Client(url)
  const manager = new LockManager(client)

  const cases = [
    ['seed DistributedLock (ioredis)', async (k) => {
      const lock = new SeedLock(redis, `lock:seed:${k}`, 30000)
      if (await lock.acquire()) await lock.release()
    }],
    ['txcoord LockManager.acquireLock', async (k) => {
      const lock = await manager.acquireLock(`tx:${k}`, 30000, 0)
      await lock.release()
    }],
    ['txcoord DistributedLock (ioredis)', async (k) => {
      const lock = new DistributedLock(redis, `lock:txd:${k}`, 30000)
      if (await lock.acquire()) await lock.release()
    }],
  ]
  const rows = []
  for (const concurrency of [1, 50]) {
    for (const [name, cycle] of cases) {
      await measure(concurrency, Math.min(2000, TOTAL[concurrency]), cycle) // warm-up
      const rates = []
      for (let r = 0; r < ROUNDS; r++) rates.push(await measure(concurrency, TOTAL[concurrency], cycle))
      rates.sort((a, b) => a - b)
      rows.push({ name, concurrency, median: Math.round(rates[Math.floor(rates.length / 2)]), best: Math.round(rates[rates.length - 1]) })
    }
  }
  const seed = {}
  for (const r of rows) if (r.name.startsWith('seed')) seed[r.concurrency] = r.median
  console.log('| case | promises | cycles/s (median) | best | vs seed |')
  console.log('|---|---:|---:|---:|---:|')
  for (const r of rows) {
    console.log(`| ${r.name} | ${r.concurrency} | ${r.median} | ${r.best} | ${(r.median / seed[r.concurrency]).toFixed(2)}x |`)
  }
  redis.disconnect()
  await manager.close()
  if (server) await server.stop()
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
