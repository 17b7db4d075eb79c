// SPDX-License-Identifier: MIT OR Apache-2.0
// txcoord's promise bridge (bindings-node/src/bridge.rs: one threadsafe function per thread,
// promises settled in batches) against napi-rs' own `async fn` path (one threadsafe function and
// one event-loop wake-up per promise), switched with `__usePlainBridge` for the very same calls,
// in one run: acquire+release cycles per second with 1 and 50 concurrent promise chains, CPU
// time per cycle, and the latency of single acquire and release calls. Uncontended (each chain
// has its own key), on a throwaway redis-server. Rounds alternate between the two paths; every
// loop is bounded by a count. Not part of the test run:
//
//   node bindings-node/benchmark/bridge.js [rounds]
//
// BENCH_NODE_ADDON: the txcoord.node to measure (for figures, a release build:
// `cargo build --release -p txcoord-node`, copied to a file ending in .node); default: the one
// bindings-node/native.js loads (scripts/test-node.sh builds a debug one there).
'use strict'

const path = require('node:path')
const { startRedis } = require('../../tests/node/helpers.js')

const native = process.env.BENCH_NODE_ADDON
  ? require(path.resolve(process.env.BENCH_NODE_ADDON))
  : require('../native.js')

const ROUNDS = Number(process.argv[2] || 9)
const CYCLES = { 1: 4000, 50: 20000 } // per round and path
const PATHS = [
  ['txcoord bridge', false],
  ['napi async fn', true],
]

function quantile(sorted, q) {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]
}

function median(values) {
  return quantile([...values].sort((a, b) => a - b), 0.5)
}

// `total` acquire+release cycles, one concurrent chain per lock; with `latencies`, the
// duration of every call (µs) is recorded.
async function round(locks, total, latencies) {
  const per = Math.ceil(total / locks.length)
  const cpu = process.cpuUsage()
  const started = process.hrtime.bigint()
  await Promise.all(
    locks.map(async (lock) => {
      for (let i = 0; i < per; i++) {
        const t0 = process.hrtime.bigint()
        if (!(await lock.acquire())) throw new Error(`${lock.key} is busy`)
        const t1 = process.hrtime.bigint()
        await lock.release()
        if (latencies) {
          latencies.acquire.push(Number(t1 - t0) / 1e3)
          latencies.release.push(Number(process.hrtime.bigint() - t1) / 1e3)
        }
      }
    }),
  )
  const seconds = Number(process.hrtime.bigint() - started) / 1e9
  const used = process.cpuUsage(cpu)
  const cycles = per * locks.length
  return { rate: cycles / seconds, cpuUs: (used.user + used.system) / cycles }
}

async function main() {
  const server = await startRedis()
  try {
    const client = new native.Client(server.url)
    await client.ping()
    console.log(`${ROUNDS} rounds per case, alternating paths; addon ${process.env.BENCH_NODE_ADDON || 'bindings-node/native.js'}`)
    const rows = []
    for (const chains of [1, 50]) {
      const locks = Array.from({ length: chains }, (_, i) => native.DistributedLock.create(client, `bench:bridge:${chains}:${i}`, 30000))
      const results = new Map(PATHS.map(([name]) => [name, { rates: [], cpu: [], acquire: [], release: [] }]))
      const ratios = [] // per round: bridge / napi, measured back to back
      for (const [, plain] of PATHS) {
        native.__usePlainBridge(plain)
        await round(locks, Math.min(2000, CYCLES[chains])) // warm-up
      }
      for (let r = 0; r < ROUNDS; r++) {
        // Alternate which path goes first, so drift on this shared machine hits both alike.
        const order = r % 2 === 0 ? PATHS : [...PATHS].reverse()
        for (const [name, plain] of order) {
          native.__usePlainBridge(plain)
          const res = results.get(name)
          const { rate, cpuUs } = await round(locks, CYCLES[chains], chains === 1 ? res : null)
          res.rates.push(rate)
          res.cpu.push(cpuUs)
        }
        ratios.push(results.get(PATHS[0][0]).rates[r] / results.get(PATHS[1][0]).rates[r])
      }
      native.__usePlainBridge(false)
      rows.push({ chains, results, ratios })
    }

    console.log('\n| promise chains | path | cycles/s (median) | min – max | CPU µs per cycle |')
    console.log('|---:|---|---:|---:|---:|')
    for (const { chains, results, ratios } of rows) {
      for (const [name] of PATHS) {
        const r = results.get(name)
        const sorted = [...r.rates].sort((a, b) => a - b)
        console.log(
          `| ${chains} | ${name} | ${Math.round(median(r.rates))} | ${Math.round(sorted[0])} – ${Math.round(sorted[sorted.length - 1])} | ${median(r.cpu).toFixed(0)} |`,
        )
      }
      const sorted = [...ratios].sort((a, b) => a - b)
      const cpu = median(results.get(PATHS[1][0]).cpu) / median(results.get(PATHS[0][0]).cpu)
      console.log(
        `| ${chains} | bridge / napi, per round | ${median(ratios).toFixed(2)}x | ${sorted[0].toFixed(2)} – ${sorted[sorted.length - 1].toFixed(2)} | napi ${cpu.toFixed(2)}x |`,
      )
    }

    const single = rows.find((r) => r.chains === 1).results
    console.log('\nLatency of one call, 1 chain (µs):\n')
    console.log('| path | acquire p50 | acquire p99 | release p50 | release p99 |')
    console.log('|---|---:|---:|---:|---:|')
    for (const [name] of PATHS) {
      const a = [...single.get(name).acquire].sort((x, y) => x - y)
      const b = [...single.get(name).release].sort((x, y) => x - y)
      const f = (v) => v.toFixed(0)
      console.log(`| ${name} | ${f(quantile(a, 0.5))} | ${f(quantile(a, 0.99))} | ${f(quantile(b, 0.5))} | ${f(quantile(b, 0.99))} |`)
    }
    client.close()
  } finally {
    await server.stop()
  }
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
