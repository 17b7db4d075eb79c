// SPDX-License-Identifier: MIT OR Apache-2.0
// The Node soak of `make soak`: acquire+release cycles through txcoord's
// LockManager (50 concurrent promises, one Client, a new resource name each cycle), printing
// RSS every tenth of the run and, at the end, open fds and the client's counters.
//
//   BENCH_REDIS_URL=redis://127.0.0.1:PORT node --expose-gc \
//       --min-semi-space-size=16 --max-semi-space-size=16 bench/node/soak.js [cycles]
//
// The semi-space flags (as scripts/soak.sh passes them) start V8's young generation at the size
// it otherwise grows to under this allocation rate (16 MiB semi-spaces, heapTotal ≈ 36 MiB):
// without them RSS climbs by ~25 MiB somewhere between 2e5 and 4e5 cycles while heapUsed stays at
// ~3 MiB, which is V8 sizing itself, not memory the library keeps. heapTotal is printed too.
//
// Default 1,000,000 cycles; TXCOORD_NODE as in scenarios.js (scripts/soak.sh points it at the
// release addon). RSS (after a full GC when --expose-gc is given) must stay flat: at the end at
// most max(5 %, 10 MiB) above the figure at 1/5 of the cycles, else the exit status is 3 (1 on
// an error). Without BENCH_REDIS_URL (or REDIS_URL) it starts a throwaway redis-server. The last
// line is `SOAK_RESULT {json}` (bench/report.py).
'use strict'

const fs = require('node:fs')
const path = require('node:path')
const { performance } = require('node:perf_hooks')

const TASKS = 50
const TTL = 30000
const TIMEOUT = 10000
const SLACK_SHARE = 0.05
const SLACK_KIB = 10 * 1024

function rssKib() {
  if (typeof global.gc === 'function') global.gc()
  return Math.round(process.memoryUsage().rss / 1024)
}

function openFds() {
  try {
    return fs.readdirSync('/proc/self/fd').length
  } catch {
    return null
  }
}

async function main() {
  const url = process.env.BENCH_REDIS_URL || process.env.REDIS_URL
  if (!url) {
    const server = await require('./redis-server.js').startRedis()
    try {
      return await soak(server.url)
    } finally {
      await server.stop()
    }
  }
  return soak(url)
}

async function soak(url) {
  const cycles = process.argv[2] ? Math.max(Math.floor(Number(process.argv[2])), 1000) : 1_000_000
  const where = process.env.TXCOORD_NODE || 'txcoord'
  const { Client, LockManager } = require(where)
  console.log(
    `# Node soak: ${cycles.toLocaleString('en-US')} acquire+release cycles, ${TASKS} concurrent promises, one Client ` +
      `and LockManager, a new resource each cycle (txcoord from ${path.dirname(require.resolve(where))}; ${url}; ` +
      `${typeof global.gc === 'function' ? 'RSS after a full GC' : 'no --expose-gc: RSS without a forced GC'})\n`,
  )
  const client = new Client(url)
  const manager = new LockManager(client)
  for (let i = 0; i < 20; i++) {
    if (await manager.acquireLock(`soak:js:warm:${i}`, TTL, TIMEOUT)) await manager.releaseLock(`soak:js:warm:${i}`)
  }
  const step = Math.max(Math.floor(cycles / 10), 1)
  const marks = []
  const errors = []
  let next = 0
  let done = 0
  const began = performance.now()
  const worker = async () => {
    while (next < cycles && errors.length === 0) {
      const res = `soak:js:${next++}`
      try {
        if (!(await manager.acquireLock(res, TTL, TIMEOUT))) {
          errors.push(`${res}: timed out on a free key`)
          return
        }
        await manager.releaseLock(res)
      } catch (e) {
        errors.push(`${res}: ${(e && e.code) || ''} ${(e && e.message) || e}`)
        return
      }
      done++
      if (done % step === 0) {
        const rss = rssKib()
        const t = (performance.now() - began) / 1000
        const mem = process.memoryUsage()
        marks.push([done, rss])
        console.log(
          `  ${done.toLocaleString('en-US').padStart(9)} cycles  RSS ${(rss / 1024).toFixed(1).padStart(7)} MiB  ` +
            `${t.toFixed(1).padStart(6)} s  ${Math.round(done / t).toLocaleString('en-US').padStart(8)} cycles/s  ` +
            `(V8 heap total ${(mem.heapTotal / 1048576).toFixed(1)} MiB, used ${(mem.heapUsed / 1048576).toFixed(1)} MiB, ` +
            `external ${(mem.external / 1048576).toFixed(1)} MiB)`,
        )
      }
    }
  }
  await Promise.all(Array.from({ length: TASKS }, worker))
  const seconds = (performance.now() - began) / 1000
  const stats = client.stats()
  const held = manager.heldResources.length
  await manager.close()
  client.close()
  const at = (n) => {
    const later = marks.filter((m) => m[0] >= n)
    return later.length ? later[0][1] : null
  }
  const early = at(Math.floor(cycles / 5))
  const late = at(cycles)
  const flat = early === null || late === null ? null : late <= early + Math.max(early * SLACK_SHARE, SLACK_KIB)
  const fds = openFds()
  console.log(
    `\n${done.toLocaleString('en-US')} cycles in ${seconds.toFixed(1)} s (${Math.round(done / seconds).toLocaleString('en-US')} cycles/s); ` +
      `errors ${errors.length}; RSS at ${Math.floor(cycles / 5).toLocaleString('en-US')} cycles ` +
      `${early === null ? '–' : (early / 1024).toFixed(1)} MiB, at ${cycles.toLocaleString('en-US')} cycles ` +
      `${late === null ? '–' : (late / 1024).toFixed(1)} MiB → ${flat === null ? 'unknown' : flat ? 'flat' : 'GROWING'}; ` +
      `open fds ${fds}; manager still holding ${held}; client counters: ${stats.acquired} acquired, ` +
      `${stats.released} released, ${stats.renewals} renewals; V8 heap used ${(process.memoryUsage().heapUsed / 1048576).toFixed(1)} MiB`,
  )
  for (const e of errors.slice(0, 5)) console.log(`  error: ${e}`)
  const result = {
    lang: 'node',
    lib: 'txcoord',
    cycles: done,
    seconds,
    tasks: TASKS,
    rss_early_at: Math.floor(cycles / 5),
    rss_early_kib: early,
    rss_end_kib: late,
    rss_final_kib: rssKib(),
    marks,
    fds,
    scheduled_renewals: null,
    held_resources: held,
    errors: errors.slice(0, 5),
  }
  console.log(`SOAK_RESULT ${JSON.stringify(result)}`)
  if (errors.length || done < cycles) return 1
  return flat === false ? 3 : 0
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(e)
    process.exit(1)
  },
)
