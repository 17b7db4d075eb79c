// SPDX-License-Identifier: MIT OR Apache-2.0
// Test support: a throwaway redis-server on a free loopback port (never 6379), raw Redis access
// through ioredis, and bounded waits on conditions (no sleeps standing in for events).
'use strict'

const { spawn, spawnSync } = require('node:child_process')
const fs = require('node:fs')
const net = require('node:net')
const os = require('node:os')
const path = require('node:path')

const ROOT = path.resolve(__dirname, '..', '..')
const TSC_OUT = path.join(ROOT, 'target', 'node-tsc')

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.unref()
    srv.on('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address()
      srv.close(() => resolve(port))
    })
  })
}

// Servers started and not yet stopped: killed (and their directories removed) if this process
// exits first, so no redis-server outlives a test file that failed before its `after` hook.
const live = new Set()
function reapAll() {
  for (const server of live) server.killNow()
}
let hooked = false
function hookExit() {
  if (hooked) return
  hooked = true
  process.on('exit', reapAll)
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(sig, function onSignal() {
      reapAll()
      // alone: die of the signal as before; otherwise the other listeners decide
      if (process.listenerCount(sig) === 1) {
        process.removeListener(sig, onSignal)
        process.kill(process.pid, sig)
      }
    })
  }
}

/** The last `lines` lines of a file ('' if unreadable). */
function tail(file, lines = 20) {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').slice(-lines - 1).join('\n').trimEnd()
  } catch {
    return ''
  }
}

/** The `process_id` of the redis-server answering on `port`, or null (bounded by `timeoutMs`). */
function serverPid(port, timeoutMs = 500) {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1')
    let data = ''
    const done = (v) => {
      clearTimeout(timer)
      socket.destroy()
      resolve(v)
    }
    const timer = setTimeout(() => done(null), timeoutMs)
    socket.on('error', () => done(null))
    socket.on('connect', () => socket.write('INFO server\r\n'))
    socket.on('data', (d) => {
      data += d
      const m = /process_id:(\d+)\r\n/.exec(data)
      if (m) done(Number(m[1]))
      else if (data.startsWith('-')) done(null)
    })
  })
}

/**
 * One redis-server on `port`, in a temporary directory of its own that also holds its output
 * (redis.log). Resolves once it answers (and is the process we started); otherwise kills it,
 * removes the directory and rejects with the end of its log.
 */
async function startOnce(port) {
  const bin = process.env.TXCOORD_REDIS_SERVER || process.env.REDIS_SERVER || 'redis-server'
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'txcoord-node-redis-'))
  const log = path.join(dir, 'redis.log')
  const fd = fs.openSync(log, 'a')
  let child
  try {
    child = spawn(
      bin,
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'no',
        '--dir', dir, '--loglevel', 'warning'],
      { stdio: ['ignore', fd, fd] },
    )
  } finally {
    fs.closeSync(fd)
  }
  let exited = false
  let spawnError = null
  const exit = new Promise((resolve) => child.once('close', () => { exited = true; resolve() }))
  child.once('error', (e) => { spawnError = e })
  const server = {
    port,
    url: `redis://127.0.0.1:${port}`,
    child,
    dir,
    log,
    /** Kills the server at once (synchronously) and removes its directory. */
    killNow() {
      live.delete(server)
      if (!exited) {
        try {
          child.kill('SIGKILL')
        } catch {}
      }
      fs.rmSync(dir, { recursive: true, force: true })
    },
    /** Kills the server, waits until it is gone, removes its directory. */
    async stop() {
      live.delete(server)
      if (!exited) child.kill('SIGKILL')
      await exit
      fs.rmSync(dir, { recursive: true, force: true })
    },
  }
  hookExit()
  live.add(server)
  const deadline = Date.now() + 10_000
  while (Date.now() < deadline && !exited && !spawnError) {
    if ((await serverPid(port)) === child.pid) return server
    await new Promise((r) => setTimeout(r, 20))
  }
  const why = spawnError ? `could not run ${bin}: ${spawnError.message}` : exited ? `exited (${child.exitCode})` : 'did not answer within 10 s'
  const end = tail(log)
  await server.stop()
  throw new Error(`redis-server on port ${port} ${why}; the end of its log:\n${end}`)
}

/** Starts a redis-server; returns { port, url, child, dir, log, stop() }. */
async function startRedis() {
  let lastError
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort()
    try {
      return await startOnce(port)
    } catch (e) {
      lastError = e
    }
  }
  throw lastError
}

/** ioredis 5 or 6 (dev dependencies, installed under npm aliases). */
function ioredis(major = 5) {
  const mod = require(`ioredis${major}`)
  return mod.Redis || mod.default || mod
}

/** A raw connection for checking what is in Redis (no key prefix). */
function rawRedis(server) {
  const Redis = ioredis(5)
  return new Redis({ host: '127.0.0.1', port: server.port, lazyConnect: false, maxRetriesPerRequest: 1 })
}

/** Polls `cond` every `every` ms until it is truthy or `timeoutMs` passed; returns its value. */
async function waitFor(cond, { timeoutMs = 10000, every = 10, what = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const v = await cond()
    if (v) return v
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, every))
  }
}

/** Resolves with the first event of `name` on `emitter`, or rejects after `timeoutMs`. */
function nextEvent(emitter, name, timeoutMs = 10000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no '${name}' event within ${timeoutMs} ms`)), timeoutMs)
    emitter.once(name, (v) => {
      clearTimeout(timer)
      resolve(v)
    })
  })
}

/** Resolves when `signal` aborts, or rejects after `timeoutMs`. */
function aborted(signal, timeoutMs = 10000) {
  if (signal.aborted) return Promise.resolve(signal.reason)
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`signal not aborted within ${timeoutMs} ms`)), timeoutMs)
    signal.addEventListener(
      'abort',
      () => {
        clearTimeout(timer)
        resolve(signal.reason)
      },
      { once: true },
    )
  })
}

/** All keys of the server (SCAN, bounded). */
async function allKeys(raw) {
  const keys = []
  let cursor = '0'
  for (let i = 0; i < 10_000; i++) {
    const [next, batch] = await raw.scan(cursor, 'COUNT', 1000)
    keys.push(...batch)
    cursor = next
    if (cursor === '0') break
  }
  return keys.sort()
}

/**
 * An auxiliary key of lock key `key` (PROTOCOL.md, "The hash-tag rule"): `aux(K, '~h')` is the
 * holder hash, `~q` the queue, `~w` the waiters.
 */
function aux(key, suffix) {
  const open = key.indexOf('{')
  const close = open < 0 ? -1 : key.indexOf('}', open + 1)
  if (close > open + 1) return `${key}:${suffix}`
  if (key.includes('}')) throw new Error(`no auxiliary key can share the slot of ${key}`)
  return `{${key}}:${suffix}`
}

/** The keys of the server that belong to lock key `key`: itself and its auxiliary keys. */
async function keysOf(raw, key) {
  const auxPrefix = aux(key, '')
  return (await allKeys(raw)).filter((k) => k === key || k.startsWith(auxPrefix))
}

/**
 * Starts `node ...args` in the checkout, with `env` added to this process' environment. Returns
 * `{ child, stdout(), stderr(), output(), line(timeoutMs), exit(timeoutMs), stop() }`:
 * `output` is both streams so far (for failure messages), `line` resolves with the next line of
 * its stdout, `exit` with `{ code, signal }` once it exited (killing it after `timeoutMs`), and
 * `stop` kills it (if still running) and waits for the exit: call it in a `finally`, so that no
 * child outlives its test.
 */
function nodeChild(args, env = {}) {
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  let consumed = 0
  let lineWaiter = null
  const exited = new Promise((resolve) => {
    // 'close', not 'exit': its output is complete by then.
    child.once('close', (code, signal) => resolve({ code, signal }))
    child.once('error', (error) => resolve({ code: null, signal: null, error }))
  })
  const output = () => `stdout: ${stdout}\nstderr: ${stderr}`
  const takeLine = () => {
    const end = stdout.indexOf('\n', consumed)
    if (end < 0) return undefined
    const line = stdout.slice(consumed, end)
    consumed = end + 1
    return line
  }
  child.stdout.on('data', (d) => {
    stdout += d
    if (lineWaiter !== null) lineWaiter()
  })
  child.stderr.on('data', (d) => (stderr += d))
  const running = () => child.exitCode === null && child.signalCode === null
  return {
    child,
    stdout: () => stdout,
    stderr: () => stderr,
    output,
    line(timeoutMs = 20000) {
      return new Promise((resolve, reject) => {
        let done = false
        const finish = (err, line) => {
          done = true
          clearTimeout(timer)
          lineWaiter = null
          if (err) reject(err)
          else resolve(line)
        }
        const check = () => {
          if (done) return
          const line = takeLine()
          if (line !== undefined) finish(null, line)
        }
        const timer = setTimeout(
          () => finish(new Error(`no line from the child within ${timeoutMs} ms\n${output()}`)),
          timeoutMs,
        )
        lineWaiter = check
        exited.then(({ code, signal }) => {
          check()
          if (!done) finish(new Error(`the child exited (${code ?? signal}) without a line\n${output()}`))
        })
        check()
      })
    },
    async exit(timeoutMs = 20000) {
      let timer
      const limit = new Promise((resolve) => {
        timer = setTimeout(() => resolve('timeout'), timeoutMs)
      })
      const r = await Promise.race([exited, limit])
      clearTimeout(timer)
      if (r === 'timeout') {
        await this.stop()
        throw new Error(`the child did not exit within ${timeoutMs} ms\n${output()}`)
      }
      if (r.error) throw r.error
      return r
    },
    async stop() {
      if (running()) child.kill('SIGKILL')
      await exited
    },
  }
}

/**
 * Compiles the TypeScript tests and examples (tests/node/tsconfig.json) into target/node-tsc
 * unless scripts/test-node.sh already did; returns the output folder.
 */
function compiledTs() {
  const marker = path.join(TSC_OUT, 'tests', 'node', 'seed-callsites.js')
  if (!fs.existsSync(marker) || process.env.TXCOORD_TSC_ALWAYS) {
    const tsc = path.join(ROOT, 'node_modules', '.bin', 'tsc')
    const r = spawnSync(tsc, ['-p', path.join(ROOT, 'tests', 'node', 'tsconfig.json')], {
      cwd: ROOT,
      encoding: 'utf8',
    })
    if (r.status !== 0) throw new Error(`tsc failed:\n${r.stdout}\n${r.stderr}`)
  }
  return TSC_OUT
}

module.exports = {
  ROOT,
  freePort,
  startRedis,
  ioredis,
  rawRedis,
  waitFor,
  nextEvent,
  aborted,
  allKeys,
  aux,
  keysOf,
  nodeChild,
  compiledTs,
}
