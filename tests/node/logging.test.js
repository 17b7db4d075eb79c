// SPDX-License-Identifier: MIT OR Apache-2.0
// The Rust core's log records reach JavaScript: process warnings by default, or the logger given
// to setLogger; from any thread, without keeping the process alive. (Python: test_logging.py.)
'use strict'

const { test, before, after, afterEach } = require('node:test')
const assert = require('node:assert/strict')

const { Client, DistributedLock, LockManager, setLogger } = require('txcoord')
const native = require('../../bindings-node/native.js')
const { startRedis, rawRedis, waitFor, nodeChild } = require('./helpers.js')

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

afterEach(() => setLogger(null))

let seq = 0
function uniqueName(what) {
  seq += 1
  return `log-${what}-${process.pid}-${seq}`
}

/** A logger that records `[level, message]` pairs. */
function capture(levels = ['error', 'warn', 'info', 'debug']) {
  const records = []
  const logger = {}
  for (const level of levels) logger[level] = (message) => records.push([level, message])
  return { logger, records }
}

/** Process warnings of type TxcoordWarning, while `fn` runs. */
async function withWarnings(fn) {
  const warnings = []
  const listener = (w) => {
    if (w.name === 'TxcoordWarning') warnings.push(w)
  }
  process.on('warning', listener)
  try {
    return await fn(warnings)
  } finally {
    process.removeListener('warning', listener)
  }
}

test('events are forwarded with their level', async () => {
  const { logger, records } = capture()
  setLogger(logger, { level: 'debug' })
  for (const level of ['error', 'warn', 'info', 'debug']) native.__logForTests(level, `hello ${level} %s`)
  await waitFor(() => records.length >= 4, { what: 'four records' })
  assert.deepEqual(records, [
    ['error', 'hello error %s'],
    ['warn', 'hello warn %s'],
    ['info', 'hello info %s'],
    ['debug', 'hello debug %s'],
  ])

  // The default level of a logger is 'info': a debug record is not delivered. Records arrive
  // in order, so once the marker is there, the debug record would have been too.
  records.length = 0
  setLogger(logger)
  native.__logForTests('debug', 'not delivered')
  native.__logForTests('info', 'marker')
  await waitFor(() => records.some(([, m]) => m === 'marker'), { what: 'the marker' })
  assert.deepEqual(records, [['info', 'marker']])

  // A logger without debug()/info() skips those records.
  const partial = capture(['error', 'warn'])
  setLogger(partial.logger, { level: 'debug' })
  native.__logForTests('info', 'skipped')
  native.__logForTests('error', 'kept')
  await waitFor(() => partial.records.length > 0, { what: 'the error record' })
  assert.deepEqual(partial.records, [['error', 'kept']])
})

test('by default, warnings and errors are process warnings of type TxcoordWarning', async () => {
  await withWarnings(async (warnings) => {
    native.__logForTests('info', 'not a warning')
    native.__logForTests('warn', 'a warning')
    native.__logForTests('error', 'an error')
    await waitFor(() => warnings.length >= 2, { what: 'two process warnings' })
    assert.deepEqual(
      warnings.map((w) => [w.code, w.message]),
      [
        ['TXCOORD_WARNING', 'a warning'],
        ['TXCOORD_ERROR', 'an error'],
      ],
    )
  })
})

test('a lost lock is logged as a warning, with its key and reason', async () => {
  const { logger, records } = capture()
  setLogger(logger)
  const key = `lock:${uniqueName('user')}`
  const lock = new DistributedLock(server.url, key, 3000)
  assert.equal(await lock.acquire(), true)
  await raw.set(key, 'intruder')
  await waitFor(() => records.some(([level, m]) => level === 'warn' && m.includes(`${key} lost (taken)`)), {
    what: 'the warning through the logger',
  })

  // The default path: a process warning.
  setLogger(null)
  await withWarnings(async (warnings) => {
    const key2 = `lock:${uniqueName('default')}`
    const lock2 = new DistributedLock(server.url, key2, 3000)
    assert.equal(await lock2.acquire(), true)
    await raw.set(key2, 'intruder')
    const w = await waitFor(() => warnings.find((w) => w.message.includes(key2)), { what: 'the process warning' })
    assert.equal(w.code, 'TXCOORD_WARNING')
    assert.match(w.message, new RegExp(`^txcoord: lock ${key2} lost \\(taken\\)$`))
  })
})

test('a lost lock is printed to stderr by default, can be silenced, and logging keeps no process alive', async (t) => {
  if (!process.allowedNodeEnvironmentFlags.has('--disable-warning')) {
    t.skip('this Node has no --disable-warning')
    return
  }
  // The child ends by itself once it saw its warning: nothing it leaves (the log sink, a lost
  // lock, its client) keeps it alive. Node prints a warning (or, silenced, does not) before it
  // calls the 'warning' listeners a program adds.
  const script = `
    const { DistributedLock } = require('txcoord')
    const keepAlive = setInterval(() => {}, 1000)
    process.on('warning', (w) => {
      if (w.name !== 'TxcoordWarning') return
      console.log(JSON.stringify({ ev: 'warning', code: w.code, message: w.message }))
      clearInterval(keepAlive)
    })
    const lock = new DistributedLock(process.env.REDIS_URL, process.env.KEY, 3000)
    lock.acquire().then((ok) => console.log(JSON.stringify({ ev: 'acquired', ok })))`
  for (const silenced of [false, true]) {
    const key = `lock:${uniqueName(silenced ? 'silenced' : 'stderr')}`
    const args = silenced ? ['--disable-warning=TxcoordWarning', '-e', script] : ['-e', script]
    const child = nodeChild(args, { REDIS_URL: server.url, KEY: key })
    try {
      assert.deepEqual(JSON.parse(await child.line()), { ev: 'acquired', ok: true })
      await raw.set(key, 'intruder')
      assert.deepEqual(JSON.parse(await child.line()), {
        ev: 'warning',
        code: 'TXCOORD_WARNING',
        message: `txcoord: lock ${key} lost (taken)`,
      })
      const { code } = await child.exit(20000)
      assert.equal(code, 0, child.output())
      const printed = `[TXCOORD_WARNING] TxcoordWarning: txcoord: lock ${key} lost (taken)`
      assert.equal(child.stderr().includes(printed), !silenced, child.output())
    } finally {
      await child.stop()
    }
  }
})

test('logging never waits for the JavaScript thread', async () => {
  // The lock is lost (and logged, on a tokio thread) while this thread is busy: the record
  // waits in the queue, the core does not wait for JavaScript.
  const { logger, records } = capture()
  setLogger(logger)
  const client = new Client(server.url)
  const key = `lock:${uniqueName('busy')}`
  const lock = new DistributedLock(client, key, 3000)
  assert.equal(await lock.acquire(), true)
  const lostBefore = client.stats().lost
  await raw.set(key, 'intruder')
  const deadline = Date.now() + 20000
  while (client.stats().lost === lostBefore && Date.now() < deadline) {
    // busy: no event loop turn until the core has seen the loss
  }
  assert.equal(client.stats().lost, lostBefore + 1, 'the core saw the loss while JavaScript was busy')
  assert.equal(records.length, 0, 'nothing is delivered while the thread is busy')
  await waitFor(() => records.some(([level, m]) => level === 'warn' && m.includes(`${key} lost (taken)`)), {
    what: 'the warning, once the thread is free',
  })
})

test('a failed release in releaseAllLocks is logged as an error', async () => {
  const { logger, records } = capture()
  setLogger(logger)
  const client = new Client(server.url)
  const m = new LockManager(client)
  const resource = uniqueName('fail')
  const held = await m.acquireLock(resource, 30000, 0)
  assert.ok(held)
  client.close() // every later command fails
  const failures = await m.releaseAllLocks()
  assert.equal(failures.length, 1)
  await waitFor(() => records.some(([level, msg]) => level === 'error' && msg.includes(`failed to release lock for ${resource}`)), {
    what: 'the error record',
  })
  assert.equal(await raw.del(held.key), 1, 'the failed release left the key')
})

test('a logger that throws: the record becomes a process warning', async () => {
  setLogger({
    warn() {
      throw new Error('broken logger')
    },
    error() {},
  })
  await withWarnings(async (warnings) => {
    native.__logForTests('warn', 'through the default path')
    const w = await waitFor(() => warnings.find((w) => w.message === 'through the default path'), { what: 'the warning' })
    assert.equal(w.code, 'TXCOORD_WARNING')
    assert.match(w.detail, /the logger's warn\(\) threw: Error: broken logger/)
  })
})

test('setLogger validates its arguments', () => {
  for (const bad of [42, 'console', true]) {
    assert.throws(() => setLogger(bad), { name: 'TypeError', code: 'TXCOORD_INVALID_TYPE', argument: 'logger' })
  }
  assert.throws(() => setLogger({ warn() {} }), { code: 'TXCOORD_INVALID_TYPE', message: /error\(\)/ })
  assert.throws(() => setLogger({ error() {} }), { code: 'TXCOORD_INVALID_TYPE', message: /warn\(\)/ })
  assert.throws(() => setLogger(console, 'debug'), { code: 'TXCOORD_INVALID_TYPE', argument: 'options' })
  assert.throws(() => setLogger(console, { level: 'verbose' }), {
    name: 'RangeError',
    code: 'TXCOORD_INVALID_ARGUMENT',
    argument: 'level',
  })
  setLogger(console, { level: 'silent' })
  setLogger(undefined)
})
