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
async function waitFor(cond, { timeoutMs = 5000, every = 10, what = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const v = await cond()
    if (v) return v
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, every))
  }
}

/** Resolves with the first event of `name` on `emitter`, or rejects after `timeoutMs`. */
function nextEvent(emitter, name, timeoutMs = 5000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no '${name}' event within ${timeoutMs} ms`)), timeoutMs)
    emitter.once(name, (v) => {
      clearTimeout(timer)
      resolve(v)
    })
  })
}

/** Resolves when `signal` aborts, or rejects after `timeoutMs`. */
function aborted(signal, timeoutMs = 5000) {
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

module.exports = { ROOT, startRedis, ioredis, rawRedis, waitFor, nextEvent, aborted, allKeys, compiledTs }
