// SPDX-License-Identifier: MIT OR Apache-2.0
// A throwaway redis-server for the Node benchmark programs: a free loopback port (never 6379),
// no persistence, its own temporary directory (with its log), killed and removed by stop() and
// when this process exits. The binary is $TXCOORD_REDIS_SERVER, or redis-server from PATH.
'use strict'

const { spawn } = require('node:child_process')
const fs = require('node:fs')
const net = require('node:net')
const os = require('node:os')
const path = require('node:path')

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

/** Whether a server answers PING on `port` (bounded by `timeoutMs`). */
function answers(port, timeoutMs = 200) {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1')
    const done = (v) => {
      clearTimeout(timer)
      socket.destroy()
      resolve(v)
    }
    const timer = setTimeout(() => done(false), timeoutMs)
    socket.on('error', () => done(false))
    socket.on('connect', () => socket.write('PING\r\n'))
    socket.on('data', (d) => done(d.toString().startsWith('+PONG')))
  })
}

function tail(file, lines = 20) {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').slice(-lines - 1).join('\n').trimEnd()
  } catch {
    return ''
  }
}

/** Starts a redis-server; returns { port, url, stop() }. */
async function startRedis({ attempts = 5, timeoutMs = 10_000 } = {}) {
  const bin = process.env.TXCOORD_REDIS_SERVER || 'redis-server'
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'txcoord-bench-redis-'))
  const log = path.join(dir, 'redis.log')
  let why = ''
  for (let attempt = 0; attempt < attempts; attempt++) {
    const port = await freePort()
    const child = spawn(
      bin,
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--logfile', log, '--loglevel', 'warning'],
      { stdio: 'ignore' },
    )
    let exited = false
    child.on('exit', () => (exited = true))
    const spawnError = new Promise((resolve) => child.on('error', resolve))
    const until = Date.now() + timeoutMs
    let up = false
    while (!up && !exited && Date.now() < until) {
      up = await answers(port)
      if (!up) await new Promise((resolve) => setTimeout(resolve, 20))
    }
    if (up) {
      const kill = () => {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
        fs.rmSync(dir, { recursive: true, force: true })
      }
      process.once('exit', kill)
      return {
        port,
        url: `redis://127.0.0.1:${port}`,
        stop() {
          process.removeListener('exit', kill)
          return new Promise((resolve) => {
            const gone = () => {
              fs.rmSync(dir, { recursive: true, force: true })
              resolve()
            }
            if (child.exitCode !== null || child.signalCode !== null) return gone()
            child.once('exit', gone)
            child.kill('SIGKILL')
          })
        },
      }
    }
    child.kill('SIGKILL')
    const err = await Promise.race([spawnError, new Promise((resolve) => setTimeout(() => resolve(null), 50))])
    why = err ? `${bin}: ${err.message}` : tail(log)
  }
  fs.rmSync(dir, { recursive: true, force: true })
  throw new Error(`could not start redis-server (TXCOORD_REDIS_SERVER names another binary):\n${why}`)
}

module.exports = { startRedis }
