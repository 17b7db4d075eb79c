// SPDX-License-Identifier: MIT OR Apache-2.0
// The Node side of the side-by-side benchmark: scenarios A, B, C, C2 and D of the Rust program
// (bench/), plus peak RSS, for txcoord beside `redlock`, `@sesamecare-oss/redlock`,
// `redis-semaphore` (its Mutex) and the seed's own DistributedLock/LockManager over ioredis
// (bench/node/seed-lock.js), on one redis-server.
//
//   BENCH_REDIS_URL=redis://127.0.0.1:PORT node bench/node/scenarios.js [--json out.json]
//       [--libs txcoord,seed,redlock,sesame-redlock,redis-semaphore]
//
// scripts/bench.sh runs it beside the Rust and Python programs, with TXCOORD_NODE pointing at a
// copy of the package whose addon is a release build (target/bench/node/); without TXCOORD_NODE
// it loads `txcoord` from this checkout (the addon scripts/test-node.sh builds: debug). Without
// BENCH_REDIS_URL (or REDIS_URL) it starts a throwaway redis-server (bench/node/redis-server.js).
// Keys: bench:js:*.
//
// Each library runs in its own child process (this file with --lib), so its peak RSS
// (process.resourceUsage().maxRSS) is its own: node, the library and what it loads (ioredis for
// the others; the harness's own INFO queries use a raw socket), its connections and the
// harness's latency samples.
// Knobs as in the Rust program: BENCH_QUICK=1, BENCH_SECONDS (C, C2, D), BENCH_AB_SECONDS (A, B).
'use strict'

const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { performance } = require('node:perf_hooks')

const ROOT = path.resolve(__dirname, '..', '..')
const AB_TTL = 30000
const AB_TIMEOUT = 10000
const B_TASKS = 50
const C_TASKS = 8
const C_HOLD = 1
const C_TTL = 30000
const C2_PAUSE = 50
const D_LOCKS = 200
const D_TTL = 1000
const WARM_CYCLES = 20
const MAX_SAMPLES = 2_000_000
const HANG_GRACE = 30_000
// D is measured after this long, so every library has renewed at least once (and opened the
// connections it renews on) before the window starts (shorter in runs shorter than that).
const D_SETTLE = 1200

const LIBS = ['txcoord', 'seed', 'redlock', 'sesame-redlock', 'redis-semaphore']
const now = () => performance.now()
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)))

function envNumber(name) {
  const v = (process.env[name] || '').trim()
  if (!v) return null
  const x = Number(v)
  if (!Number.isFinite(x)) {
    console.error(`ignoring ${name}=${JSON.stringify(v)}: not a number`)
    return null
  }
  return x
}

function config() {
  const quick = ['1', 'true', 'yes', 'on'].includes((process.env.BENCH_QUICK || '').trim().toLowerCase())
  const s = envNumber('BENCH_SECONDS')
  const secs = s !== null ? Math.min(Math.max(s, 0.2), 3600) : quick ? 1 : 10
  const ab = envNumber('BENCH_AB_SECONDS')
  const abSecs = ab !== null ? Math.min(Math.max(ab, 0.2), 3600) : Math.min(quick ? 1 : 5, secs)
  return { quick, secs, abSecs }
}

// ---------------------------------------------------------------------------------------------
// Redis facts
// ---------------------------------------------------------------------------------------------

/**
 * Commands txcoord's scripts call on the paths A, B and D take: the releases and the renewal.
 * An uncontended acquisition without an owner id sends SET and TIME itself; the acquire script,
 * which also calls them, runs only for contended, fair or owned acquisitions.
 */
function txcoordInner() {
  const out = new Set(['publish', 'spublish'])
  for (const f of ['release.lua', 'release_hold.lua', 'extend.lua']) {
    const src = fs.readFileSync(path.join(ROOT, 'core', 'src', 'lock', 'lua', f), 'utf8')
    for (const m of src.matchAll(/redis\.p?call\(\s*['"](\w+)['"]/g)) out.add(m[1].toLowerCase())
  }
  return out
}

/** Commands each library's Lua scripts run inside Redis (counted by commandstats, not sent). */
const INNER = {
  txcoord: txcoordInner(),
  seed: new Set(['get', 'del', 'pexpire']),
  redlock: new Set(['exists', 'set', 'get', 'del']),
  'sesame-redlock': new Set(['select', 'exists', 'set', 'get', 'del']),
  'redis-semaphore': new Set(['get', 'del', 'pexpire']),
}

/**
 * A minimal RESP connection for the harness's own queries (INFO), so that the child process
 * measuring txcoord's peak RSS does not load ioredis. One command at a time.
 */
class Admin {
  constructor(url) {
    const { hostname, port } = new URL(url)
    this.socket = require('node:net').connect(Number(port || 6379), hostname.replace(/^\[|\]$/g, ''))
    this.buf = Buffer.alloc(0)
    this.waiting = null
    this.socket.on('data', (d) => {
      this.buf = Buffer.concat([this.buf, d])
      this.parse()
    })
    this.socket.on('error', (e) => this.waiting && this.waiting.reject(e))
  }

  parse() {
    if (!this.waiting) return
    const eol = this.buf.indexOf('\r\n')
    if (eol < 0) return
    const kind = String.fromCharCode(this.buf[0])
    const head = this.buf.subarray(1, eol).toString()
    let value
    let used
    if (kind === '$') {
      const n = Number(head)
      if (n < 0) [value, used] = [null, eol + 2]
      else {
        if (this.buf.length < eol + 2 + n + 2) return
        value = this.buf.subarray(eol + 2, eol + 2 + n).toString()
        used = eol + 2 + n + 2
      }
    } else if (kind === '+' || kind === ':' || kind === '-') [value, used] = [head, eol + 2]
    else {
      this.waiting.reject(new Error(`unexpected reply ${JSON.stringify(this.buf.subarray(0, 40).toString())}`))
      return
    }
    this.buf = this.buf.subarray(used)
    const w = this.waiting
    this.waiting = null
    if (kind === '-') w.reject(new Error(value))
    else w.resolve(value)
  }

  command(...args) {
    return new Promise((resolve, reject) => {
      this.waiting = { resolve, reject }
      this.socket.write(`*${args.length}\r\n` + args.map((a) => `$${Buffer.byteLength(String(a))}\r\n${a}\r\n`).join(''))
    })
  }

  info(section) {
    return this.command('INFO', section)
  }

  disconnect() {
    this.socket.destroy()
  }
}

async function commandstats(admin) {
  const info = await admin.info('commandstats')
  const out = new Map()
  for (const line of info.split(/\r?\n/)) {
    const m = /^cmdstat_([^:]+):(.*)$/.exec(line)
    if (!m) continue
    const calls = /(?:^|,)calls=(\d+)/.exec(m[2])
    if (calls) out.set(m[1].toLowerCase(), Number(calls[1]))
  }
  return out
}

function sentBetween(s0, s1, inner) {
  let sent = 0
  let total = 0
  for (const [name, calls] of s1) {
    if (name === 'info') continue
    const d = calls - (s0.get(name) || 0)
    if (d <= 0) continue
    total += d
    if (!inner.has(name)) sent += d
  }
  return { sent, total }
}

function cpuSeconds() {
  const u = process.cpuUsage()
  return (u.user + u.system) / 1e6
}

// ---------------------------------------------------------------------------------------------
// Results
// ---------------------------------------------------------------------------------------------

function pct(sorted, p) {
  const n = sorted.length
  if (n === 0) return null
  return sorted[Math.min(Math.max(Math.ceil(p * n), 1), n) - 1]
}

function withTimeout(promise, ms, what) {
  let timer
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: still running ${ms / 1000} s after the end (hang)`)), ms)
    }),
  ])
}

const errText = (e) => `${(e && e.name) || 'Error'}: ${(e && e.message) || e}`

async function runCycles(cycle, tasks, secs, how) {
  for (let i = 0; i < WARM_CYCLES; i++) await cycle(i % tasks)
  const start = now()
  const deadline = start + secs * 1000
  const lat = []
  const errors = []
  let n = 0
  const worker = async (i) => {
    try {
      for (;;) {
        const t0 = now()
        if (t0 >= deadline) return
        await cycle(i)
        n++
        if (lat.length < MAX_SAMPLES) lat.push(now() - t0)
      }
    } catch (e) {
      errors.push(`task ${i}: ${errText(e)}`)
    }
  }
  try {
    await withTimeout(Promise.all(Array.from({ length: tasks }, (_, i) => worker(i))), secs * 1000 + HANG_GRACE, 'cycles')
  } catch (e) {
    errors.push(errText(e))
  }
  const elapsed = (now() - start) / 1000
  lat.sort((a, b) => a - b)
  return {
    rate: elapsed > 0 ? n / elapsed : 0,
    cycles: n,
    tasks,
    p50_ms: pct(lat, 0.5),
    p99_ms: pct(lat, 0.99),
    cmds_per_cycle: null,
    how,
    errors: errors.slice(0, 5),
  }
}

function contentionStats(recs, cuts, secs, errors, how) {
  recs.sort((a, b) => a[2] - b[2])
  const waits = recs.map((r) => r[2] - r[1]).sort((a, b) => a - b)
  const longestDone = waits.length ? waits[waits.length - 1] : null
  const longestCut = cuts.length ? Math.max(...cuts) : null
  let waitMax = longestDone
  let waitMaxCut = false
  if (longestCut !== null && (longestDone === null || longestCut > longestDone)) {
    waitMax = longestCut
    waitMaxCut = true
  }
  const handoffs = []
  let back = 0
  let overlaps = 0
  let regressions = 0
  for (let i = 1; i < recs.length; i++) {
    const prev = recs[i - 1]
    const cur = recs[i]
    if (cur[2] < prev[3]) overlaps++
    if (typeof prev[4] === 'number' && typeof cur[4] === 'number' && cur[4] <= prev[4]) regressions++
    if (cur[0] === prev[0]) back++
    else if (cur[1] <= prev[3]) handoffs.push(Math.max(cur[2] - prev[3], 0))
  }
  handoffs.sort((a, b) => a - b)
  const perTask = new Array(C_TASKS).fill(0)
  for (const r of recs) perTask[r[0]]++
  const holds = recs.map((r) => r[3] - r[2])
  if (regressions) errors = errors.concat([`${regressions} fencing tokens did not increase`])
  return {
    acq_per_s: recs.length / secs,
    acquisitions: recs.length,
    wait_p50_ms: pct(waits, 0.5),
    wait_p99_ms: pct(waits, 0.99),
    wait_max_ms: waitMax,
    wait_max_cut: waitMaxCut,
    handoffs: handoffs.length,
    handoff_p50_ms: pct(handoffs, 0.5),
    handoff_p99_ms: pct(handoffs, 0.99),
    back_share: recs.length > 1 ? back / (recs.length - 1) : null,
    per_task_min: Math.min(...perTask),
    per_task_max: Math.max(...perTask),
    hold_mean_ms: holds.length ? holds.reduce((a, b) => a + b, 0) / holds.length : null,
    hold_max_ms: holds.length ? Math.max(...holds) : null,
    overlaps,
    how,
    errors: errors.slice(0, 5),
  }
}

/** C and C2: 8 contenders (each with its own connection) on one key, hold 1 ms. */
async function contend(make, key, pause, secs, how) {
  const cs = []
  for (let i = 0; i < C_TASKS; i++) {
    const c = make()
    await c.setup(`${key}:warm:${i}`)
    cs.push(c)
  }
  const start = now() + 20
  const deadline = start + secs * 1000
  const recs = []
  const cuts = []
  const errors = []
  const run = async (c, task) => {
    await sleep(start - now())
    for (;;) {
      const t0 = now()
      if (t0 >= deadline) return
      let got
      try {
        got = await c.acquire(key, deadline - t0)
      } catch (e) {
        errors.push(`task ${task} acquire: ${errText(e)}`)
        return
      }
      if (!got.ok) {
        cuts.push(now() - t0)
        return
      }
      const acq = now()
      if (acq > deadline) {
        // a retry loop that outlived the run: not counted
        cuts.push(acq - t0)
        await c.release(key).catch(() => {})
        return
      }
      await sleep(C_HOLD)
      const rel = now()
      try {
        await c.release(key)
      } catch (e) {
        errors.push(`task ${task} release: ${errText(e)}`)
        return
      }
      if (recs.length < MAX_SAMPLES) recs.push([task, t0, acq, rel, got.token])
      if (pause) await sleep(Math.min(pause, deadline - now()))
    }
  }
  try {
    await withTimeout(Promise.all(cs.map(run)), secs * 1000 + 20 + HANG_GRACE, 'contention')
  } catch (e) {
    errors.push(errText(e))
  }
  for (const c of cs) await c.close().catch(() => {})
  return contentionStats(recs, cuts, secs, errors, how)
}

async function holdScenario(admin, lib, secs, renewal, start) {
  const h = await start()
  const errors = h.errors || []
  await sleep(Math.min(D_SETTLE, Math.max(secs * 1000, 300)))
  const s0 = await commandstats(admin)
  const c0 = cpuSeconds()
  const t0 = now()
  await sleep(secs * 1000)
  const s1 = await commandstats(admin)
  const c1 = cpuSeconds()
  const window = (now() - t0) / 1000
  const held = await h.held()
  const more = await h.stop()
  if (more) errors.push(...more)
  const { sent, total } = sentBetween(s0, s1, INNER[lib])
  return {
    locks: D_LOCKS,
    held,
    cpu_pct: ((c1 - c0) / window) * 100,
    cmds_per_s: sent / window,
    cmds_incl_scripts_per_s: total / window,
    renewal,
    errors: errors.slice(0, 5),
  }
}

// ---------------------------------------------------------------------------------------------
// The libraries
// ---------------------------------------------------------------------------------------------

function ioredis() {
  const mod = require('ioredis5')
  return mod.Redis || mod.default || mod
}

function connect(url) {
  const Redis = ioredis()
  const { hostname, port } = new URL(url)
  return new Redis({ host: hostname, port: Number(port || 6379), maxRetriesPerRequest: 2 })
}

function loadTxcoord() {
  const where = process.env.TXCOORD_NODE || 'txcoord'
  const mod = require(where)
  return { mod, where: require.resolve(where) }
}

function version(pkg) {
  try {
    return require(`${pkg}/package.json`).version
  } catch {
    return '?'
  }
}

/** Retries `attempt` (which throws `isBusy` errors) until the deadline: the libraries' own retry loops. */
async function untilDeadline(attempt, isBusy, leftMs) {
  const deadline = now() + leftMs
  for (;;) {
    try {
      return await attempt()
    } catch (e) {
      if (!isBusy(e)) throw e
      if (now() >= deadline) return null
    }
  }
}

const ADAPTERS = {
  txcoord(url) {
    const { mod, where } = loadTxcoord()
    const addon = path.join(path.dirname(where), 'txcoord.node')
    const size = fs.existsSync(addon) ? `, ${(fs.statSync(addon).size / 1e6).toFixed(1)} MB` : ''
    return {
      label: `txcoord ${version('txcoord')}`,
      fairMode: true,
      notes: [`loaded from ${path.dirname(where)}${size}`],
      ab(tasks) {
        const client = new mod.Client(url)
        const mgr = new mod.LockManager(client)
        return {
          how: 'LockManager.acquireLock(r, 30000, 10000) + releaseLock(r)' + (tasks > 1 ? ', one Client' : ''),
          cycle: async (res) => {
            if (!(await mgr.acquireLock(res, AB_TTL, AB_TIMEOUT))) throw new Error(`${res}: timed out on a free key`)
            await mgr.releaseLock(res)
          },
          close: async () => {
            await mgr.close()
            client.close()
          },
        }
      },
      contenderHow: 'LockManager.acquireLock(key, 30000, time left): waits for a release notification',
      contender(fair) {
        let client, mgr
        return {
          async setup(warm) {
            client = new mod.Client(url)
            mgr = new mod.LockManager(client, { fair })
            if (!(await mgr.acquireLock(warm, C_TTL, AB_TIMEOUT))) throw new Error('warm-up timed out')
            await mgr.releaseLock(warm)
          },
          async acquire(key, left) {
            const lock = await mgr.acquireLock(key, C_TTL, Math.max(1, Math.floor(left)))
            return { ok: !!lock, token: lock ? lock.fencingToken : null }
          },
          release: (key) => mgr.releaseLock(key),
          async close() {
            await mgr.close()
            client.close()
          },
        }
      },
      renewal: 'ttl/3 = 333 ms (built in, one scheduler per client)',
      async hold(tag) {
        const client = new mod.Client(url)
        const mgr = new mod.LockManager(client)
        await client.ping()
        const locks = await Promise.all(Array.from({ length: D_LOCKS }, (_, i) => mgr.acquireLock(`${tag}:D:${i}`, D_TTL, 5000)))
        return {
          errors: locks.every(Boolean) ? [] : ['a free lock timed out'],
          held: async () => locks.filter((l) => l && l.isHeld).length,
          stop: async () => {
            await mgr.close()
            client.close()
          },
        }
      },
    }
  },

  seed(url) {
    const { LockManager } = require('./seed-lock.js')
    return {
      label: `the seed's LockManager (ioredis ${version('ioredis5')})`,
      fairMode: false,
      notes: ["the seed's DistributedLock/LockManager, transcribed to JS (bench/node/seed-lock.js)"],
      ab(tasks) {
        const redis = connect(url)
        const mgr = new LockManager(redis)
        return {
          how: 'LockManager.acquireLock(r, 30000, 10000) + releaseLock(r)' + (tasks > 1 ? ', one ioredis connection' : ''),
          cycle: async (res) => {
            if (!(await mgr.acquireLock(res, AB_TTL, AB_TIMEOUT))) throw new Error(`${res}: timed out on a free key`)
            await mgr.releaseLock(res)
          },
          close: async () => redis.disconnect(),
        }
      },
      contenderHow: 'LockManager.acquireLock(key, 30000, time left): SET NX, then sleeps 100–200 ms (its backoff) between attempts',
      contender() {
        let redis, mgr
        return {
          async setup(warm) {
            redis = connect(url)
            mgr = new LockManager(redis)
            await mgr.acquireLock(warm, C_TTL, AB_TIMEOUT)
            await mgr.releaseLock(warm)
          },
          async acquire(key, left) {
            return { ok: !!(await mgr.acquireLock(key, C_TTL, left)), token: null }
          },
          release: (key) => mgr.releaseLock(key),
          close: async () => redis.disconnect(),
        }
      },
      renewal: 'ttl/3 = 333 ms (built in: setInterval per lock, EVAL)',
      async hold(tag) {
        const redis = connect(url)
        const mgr = new LockManager(redis)
        const locks = await Promise.all(Array.from({ length: D_LOCKS }, (_, i) => mgr.acquireLock(`${tag}:D:${i}`, D_TTL, 5000)))
        return {
          errors: locks.every(Boolean) ? [] : ['a free lock timed out'],
          held: async () => {
            const values = await Promise.all(locks.map((l) => (l ? redis.get(l.lockKey) : null)))
            return values.filter((v, i) => v !== null && locks[i] && v === locks[i].lockId).length
          },
          stop: async () => {
            await mgr.releaseAllLocks()
            redis.disconnect()
          },
        }
      },
    }
  },

  redlock(url) {
    const Redlock = require('redlock')
    const busy = (e) => e instanceof Redlock.LockError
    return {
      label: `redlock ${version('redlock')}`,
      fairMode: false,
      notes: ['redlock@latest (4.x); its defaults: retryCount 10, retryDelay 200 ms, retryJitter 100 ms'],
      ab(tasks) {
        const redis = connect(url)
        const redlock = new Redlock([redis])
        return {
          how: 'redlock.lock(r, 30000) + lock.unlock()' + (tasks > 1 ? ', one ioredis connection' : ''),
          cycle: async (res) => {
            const lock = await redlock.lock(res, AB_TTL)
            await lock.unlock()
          },
          close: async () => redis.disconnect(),
        }
      },
      contenderHow: 'redlock.lock(key, 30000), again until the deadline: its defaults retry 10 times, 200 ± 100 ms apart',
      contender() {
        let redis, redlock, lock
        return {
          async setup(warm) {
            redis = connect(url)
            redlock = new Redlock([redis])
            await (await redlock.lock(warm, C_TTL)).unlock()
          },
          async acquire(key, left) {
            lock = await untilDeadline(() => redlock.lock(key, C_TTL), busy, left)
            return { ok: !!lock, token: null }
          },
          release: async () => {
            await lock.unlock()
          },
          close: async () => redis.disconnect(),
        }
      },
      renewal: 'none built in: a timer per lock calls lock.extend(1000) every 333 ms',
      async hold(tag) {
        const redis = connect(url)
        const redlock = new Redlock([redis])
        const locks = await Promise.all(Array.from({ length: D_LOCKS }, (_, i) => redlock.lock(`${tag}:D:${i}`, D_TTL)))
        let lost = 0
        const timers = locks.map((_, i) =>
          setInterval(async () => {
            try {
              locks[i] = await locks[i].extend(D_TTL)
            } catch {
              lost++
            }
          }, D_TTL / 3),
        )
        return {
          errors: [],
          held: async () => D_LOCKS - lost,
          stop: async () => {
            timers.forEach(clearInterval)
            await Promise.all(locks.map((l) => l.unlock().catch(() => {})))
            redis.disconnect()
            return lost ? [`${lost} extensions failed`] : []
          },
        }
      },
    }
  },

  'sesame-redlock'(url) {
    const { Redlock, ExecutionError } = require('@sesamecare-oss/redlock')
    const busy = (e) => e instanceof ExecutionError
    return {
      label: `@sesamecare-oss/redlock ${version('@sesamecare-oss/redlock')}`,
      fairMode: false,
      notes: ['its defaults: retryCount 10, retryDelay 200 ms, retryJitter 100 ms, automaticExtensionThreshold 500 ms'],
      ab(tasks) {
        const redis = connect(url)
        const redlock = new Redlock([redis])
        return {
          how: 'redlock.acquire([r], 30000) + lock.release()' + (tasks > 1 ? ', one ioredis connection' : ''),
          cycle: async (res) => {
            const lock = await redlock.acquire([res], AB_TTL)
            await lock.release()
          },
          close: async () => redis.disconnect(),
        }
      },
      contenderHow: 'redlock.acquire([key], 30000), again until the deadline: its defaults retry 10 times, 200 ± 100 ms apart',
      contender() {
        let redis, redlock, lock
        return {
          async setup(warm) {
            redis = connect(url)
            redlock = new Redlock([redis])
            await (await redlock.acquire([warm], C_TTL)).release()
          },
          async acquire(key, left) {
            lock = await untilDeadline(() => redlock.acquire([key], C_TTL), busy, left)
            return { ok: !!lock, token: null }
          },
          release: async () => {
            await lock.release()
          },
          close: async () => redis.disconnect(),
        }
      },
      renewal: 'built in: using() extends when 500 ms are left (≈ every 500 ms)',
      async hold(tag) {
        const redis = connect(url)
        const redlock = new Redlock([redis])
        let release
        const stopped = new Promise((resolve) => (release = resolve))
        let acquired = 0
        const signals = []
        const runs = Array.from({ length: D_LOCKS }, (_, i) =>
          redlock.using([`${tag}:D:${i}`], D_TTL, async (signal) => {
            signals.push(signal)
            acquired++
            await stopped
          }),
        )
        const until = now() + 20000
        while (acquired < D_LOCKS && now() < until) await sleep(5)
        return {
          errors: acquired < D_LOCKS ? [`only ${acquired} locks acquired`] : [],
          held: async () => signals.filter((s) => !s.aborted).length,
          stop: async () => {
            release()
            const results = await Promise.allSettled(runs)
            redis.disconnect()
            const failed = results.filter((r) => r.status === 'rejected').length
            return failed ? [`${failed} using() calls failed`] : []
          },
        }
      },
    }
  },

  'redis-semaphore'(url) {
    const { Mutex } = require('redis-semaphore')
    return {
      label: `redis-semaphore ${version('redis-semaphore')} Mutex`,
      fairMode: false,
      notes: ['its defaults: retryInterval 10 ms, refreshInterval 0.8 × lockTimeout'],
      ab(tasks) {
        const redis = connect(url)
        return {
          how: 'new Mutex(redis, r, {lockTimeout: 30000, acquireTimeout: 10000}): acquire + release' + (tasks > 1 ? ', one ioredis connection' : ''),
          cycle: async (res) => {
            const m = new Mutex(redis, res, { lockTimeout: AB_TTL, acquireTimeout: AB_TIMEOUT })
            await m.acquire()
            await m.release()
          },
          close: async () => redis.disconnect(),
        }
      },
      contenderHow: 'new Mutex(redis, key, {lockTimeout: 30000, acquireTimeout: time left}).tryAcquire(): SET NX every 10 ms (its retryInterval)',
      contender() {
        let redis, m
        return {
          async setup(warm) {
            redis = connect(url)
            const w = new Mutex(redis, warm, { lockTimeout: C_TTL })
            await w.acquire()
            await w.release()
          },
          async acquire(key, left) {
            m = new Mutex(redis, key, { lockTimeout: C_TTL, acquireTimeout: Math.max(1, Math.floor(left)) })
            return { ok: await m.tryAcquire(), token: null }
          },
          release: () => m.release(),
          close: async () => redis.disconnect(),
        }
      },
      renewal: 'built in: refresh every 0.8 × lockTimeout = 800 ms (setInterval per lock)',
      async hold(tag) {
        const redis = connect(url)
        let lost = 0
        const ms = Array.from(
          { length: D_LOCKS },
          (_, i) => new Mutex(redis, `${tag}:D:${i}`, { lockTimeout: D_TTL, acquireTimeout: 5000, onLockLost: () => lost++ }),
        )
        await Promise.all(ms.map((m) => m.acquire()))
        return {
          errors: [],
          held: async () => ms.filter((m) => m.isAcquired).length,
          stop: async () => {
            await Promise.all(ms.map((m) => m.release().catch(() => {})))
            redis.disconnect()
            return lost ? [`${lost} locks lost`] : []
          },
        }
      },
    }
  },
}

// ---------------------------------------------------------------------------------------------
// One library (--lib), or all of them in child processes
// ---------------------------------------------------------------------------------------------

const fmt = (v, d = 2) => (v === null || v === undefined ? '–' : v.toFixed(d))

function sayCycles(name, r) {
  console.log(
    `  ${name}: ${Math.round(r.rate).toLocaleString('en-US')} cycles/s, p50 ${fmt(r.p50_ms, 3)} ms, p99 ${fmt(r.p99_ms, 3)} ms, ` +
      `${fmt(r.cmds_per_cycle)} cmds/cycle${r.errors.length ? `; errors: ${r.errors.join('; ')}` : ''}`,
  )
}

function sayContention(name, s) {
  console.log(
    `  ${name}: ${s.acq_per_s.toFixed(1)} acq/s, wait p50/p99/max ${fmt(s.wait_p50_ms)}/${fmt(s.wait_p99_ms)}/` +
      `${s.wait_max_cut ? '≥' : ''}${fmt(s.wait_max_ms, 1)} ms, handoff p50/p99 ${fmt(s.handoff_p50_ms)}/${fmt(s.handoff_p99_ms)} ms ` +
      `(${s.handoffs}), back to releaser ${s.back_share === null ? '–' : (s.back_share * 100).toFixed(0) + '%'}, per task ` +
      `${s.per_task_min}/${s.per_task_max}, hold mean/max ${fmt(s.hold_mean_ms)}/${fmt(s.hold_max_ms)} ms` +
      (s.overlaps ? `; overlaps ${s.overlaps}` : '') +
      (s.errors.length ? `; errors: ${s.errors.join('; ')}` : ''),
  )
}

function sayHold(r) {
  console.log(
    `  D: ${r.held}/${r.locks} held at the end, client CPU ${fmt(r.cpu_pct)}% of one core, ` +
      `${Math.round(r.cmds_per_s)} Redis cmds/s sent (${Math.round(r.cmds_incl_scripts_per_s)} incl. in scripts); ` +
      `renewal: ${r.renewal}${r.errors.length ? `; errors: ${r.errors.join('; ')}` : ''}`,
  )
}

async function runLib(lib, url, outPath) {
  const cfg = config()
  const make = ADAPTERS[lib]
  if (!make) throw new Error(`unknown library ${lib}; one of ${LIBS.join(', ')}`)
  const a = make(url)
  const admin = new Admin(url)
  const tag = `bench:js:${lib}:${process.pid}`
  const began = now()
  const out = { id: lib, label: a.label, fair_mode: a.fairMode, notes: a.notes }
  for (const n of a.notes) console.log(`  ${n}`)
  for (const [scen, tasks] of [
    ['A', 1],
    ['B', B_TASKS],
  ]) {
    const ab = a.ab(tasks)
    const s0 = await commandstats(admin)
    const r = await runCycles((i) => ab.cycle(`${tag}:${scen}:${i}`), tasks, cfg.abSecs, ab.how)
    const { sent } = sentBetween(s0, await commandstats(admin), INNER[lib])
    r.cmds_per_cycle = sent / Math.max(r.cycles + WARM_CYCLES, 1)
    out[scen] = r
    sayCycles(scen, r)
    await ab.close()
  }
  for (const [scen, pause] of [
    ['C', 0],
    ['C2', C2_PAUSE],
  ]) {
    out[scen] = {}
    for (const mode of a.fairMode ? ['default', 'fair'] : ['default']) {
      const s = await contend(() => a.contender(mode === 'fair'), `${tag}:${scen}:${mode}`, pause, cfg.secs, a.contenderHow)
      out[scen][mode] = s
      sayContention(a.fairMode ? `${scen} ${mode}` : scen, s)
    }
  }
  out.D = await holdScenario(admin, lib, cfg.secs, a.renewal, () => a.hold(tag))
  sayHold(out.D)
  out.peak_rss_kib = process.resourceUsage().maxRSS
  out.seconds = (now() - began) / 1000
  console.log(`  peak RSS ${(out.peak_rss_kib / 1024).toFixed(1)} MiB; ${out.seconds.toFixed(0)} s`)
  admin.disconnect()
  fs.writeFileSync(outPath, JSON.stringify(out))
}

function startRedis() {
  return require('./redis-server.js').startRedis()
}

function allErrors(lib) {
  const out = []
  for (const scen of ['A', 'B', 'D']) for (const e of (lib[scen] && lib[scen].errors) || []) out.push(`${scen}: ${e}`)
  for (const scen of ['C', 'C2']) {
    for (const [mode, s] of Object.entries(lib[scen] || {})) {
      if (!s) continue
      for (const e of s.errors || []) out.push(`${scen} ${mode}: ${e}`)
      if (s.overlaps) out.push(`${scen} ${mode}: ${s.overlaps} acquisitions overlapped the previous holder`)
    }
  }
  return out
}

async function main() {
  const args = process.argv.slice(2)
  const opt = (name) => {
    const i = args.indexOf(name)
    return i >= 0 ? args[i + 1] : undefined
  }
  let url = process.env.BENCH_REDIS_URL || process.env.REDIS_URL
  if (opt('--lib')) {
    if (!url || !opt('--out')) throw new Error('--lib needs BENCH_REDIS_URL and --out')
    await runLib(opt('--lib'), url, opt('--out'))
    return 0
  }
  let server = null
  if (!url) {
    server = await startRedis()
    url = server.url
  }
  const cfg = config()
  const admin = new Admin(url)
  const info = await admin.info('server')
  admin.disconnect()
  const redisVersion = (/redis_version:(\S+)/.exec(info) || [])[1] || '?'
  console.log(
    `# Node scenarios: Node ${process.version}, Redis ${redisVersion} at ${url}; A, B ${cfg.abSecs} s each; C, C2, D ${cfg.secs} s each\n`,
  )
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'txcoord-jsbench-'))
  const libs = []
  const failed = []
  const wanted = (opt('--libs') || LIBS.join(',')).split(',').map((s) => s.trim()).filter(Boolean)
  for (const lib of wanted) {
    console.log(`## ${lib}`)
    const out = path.join(tmp, `${lib}.json`)
    const budget = (2 * cfg.abSecs + 5 * cfg.secs) * 1000 + 4 * HANG_GRACE + 120_000
    const r = spawnSync(process.execPath, [__filename, '--lib', lib, '--out', out], {
      stdio: 'inherit',
      env: { ...process.env, BENCH_REDIS_URL: url },
      timeout: budget,
      killSignal: 'SIGKILL',
    })
    if (r.status === 0 && fs.existsSync(out)) libs.push(JSON.parse(fs.readFileSync(out, 'utf8')))
    else {
      failed.push(lib)
      console.log(`  ${lib}: failed (${r.error ? r.error.message : `exit status ${r.status}, signal ${r.signal}`})`)
    }
    console.log()
  }
  fs.rmSync(tmp, { recursive: true, force: true })
  const doc = {
    lang: 'node',
    runtime: `Node ${process.version}`,
    server: url,
    redis_version: redisVersion,
    ab_secs: cfg.abSecs,
    secs: cfg.secs,
    rss_note: "peak RSS (process.resourceUsage().maxRSS) of the child process that ran that library's scenarios",
    libs,
    notes: failed.map((l) => `${l}: failed`),
  }
  const jsonPath = opt('--json')
  if (jsonPath) fs.writeFileSync(jsonPath, JSON.stringify(doc))
  else {
    const f = path.join(os.tmpdir(), `txcoord-node-bench-${process.pid}.json`)
    fs.writeFileSync(f, JSON.stringify(doc))
    const r = spawnSync('python3', [path.join(ROOT, 'bench', 'report.py'), 'bench', f], { stdio: 'inherit' })
    if (r.status !== 0) console.log(JSON.stringify(doc, null, 2))
    fs.rmSync(f, { force: true })
  }
  if (server) await server.stop()
  const txErrors = libs.filter((l) => l.id === 'txcoord').flatMap(allErrors)
  for (const e of txErrors) console.log(`  !! txcoord problem: ${e}`)
  return failed.length || txErrors.length ? 1 : 0
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(e)
    process.exit(1)
  },
)
