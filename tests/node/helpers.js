// SPDX-License-Identifier: MIT OR Apache-2.0
// Test support: a throwaway redis-server on a free loopback port (never 6379), raw Redis access
// through ioredis, and bounded waits on conditions (no sleeps standing in for events).
'use strict'

const { spawn, spawnSync } = require('node:child_process')
const fs = require('node:fs')
const net = require('node:net')
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

function startOnce(port) {
  const bin = process.env.REDIS_SERVER || 'redis-server'
  return new Promise((resolve, reject) => {
    const child = spawn(
      bin,
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'no'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    )
    let out = ''
    let settled = false
    const timer = setTimeout(() => finish(new Error(`redis-server did not start within 10 s:\n${out}`)), 10_000)
    function finish(err) {
      if (settled) return
      settled = true
      clearTimeout(timer)
      if (err) {
        child.kill('SIGKILL')
        reject(err)
      } else {
        resolve(child)
      }
    }
    child.on('error', finish)
    child.on('exit', (code) => finish(new Error(`redis-server exited (${code}):\n${out}`)))
    const onData = (d) => {
      out += d
      if (/ready to accept connections/i.test(out)) finish()
    }
    child.stdout.on('data', onData)
    child.stderr.on('data', onData)
  })
}

/** Starts a redis-server; returns { port, url, child, stop() }. */
async function startRedis() {
  let lastError
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort()
    try {
      const child = await startOnce(port)
      child.stdout.removeAllListeners('data')
      child.stderr.removeAllListeners('data')
      child.stdout.resume()
      child.stderr.resume()
      return {
        port,
        url: `redis://127.0.0.1:${port}`,
        child,
        stop() {
          return new Promise((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve()
            child.once('exit', () => resolve())
            child.kill('SIGKILL')
          })
        },
      }
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
