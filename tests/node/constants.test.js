// SPDX-License-Identifier: MIT OR Apache-2.0
// The package's constants are the core's (`binding::options::constants()`), exported by name
// from CommonJS and ESM alike (the Python package exports the same names: the parity test in
// tests/cross compares their values); and the JavaScript layer keeps no copy of what the core
// decides.
'use strict'

const fs = require('node:fs')
const path = require('node:path')
const { test } = require('node:test')
const assert = require('node:assert/strict')

const txcoord = require('txcoord')
const native = require('../../bindings-node/native.js')
const { ROOT } = require('./helpers.js')

test("every constant of the core is a named export, CommonJS and ESM, with the core's value", async () => {
  const core = native.constants()
  assert.ok(Object.keys(core).length >= 8, JSON.stringify(core))
  const esm = await import('txcoord')
  for (const [name, value] of Object.entries(core)) {
    assert.equal(typeof value, 'number', name)
    assert.equal(txcoord[name], value, `require('txcoord').${name}`)
    assert.equal(esm[name], value, `import { ${name} } from 'txcoord'`)
  }
  assert.equal(txcoord.DEFAULT_TTL_MS, 30000)
  assert.equal(txcoord.MAX_MS, 2 ** 31 - 1)
  // Nothing else that looks like a constant.
  const exported = Object.keys(txcoord).filter((k) => /^[A-Z_]+$/.test(k))
  assert.deepEqual(exported.sort(), Object.keys(core).sort())
})

test("the option table's defaults and caps are the exported constants", () => {
  const core = native.constants()
  const byName = (table, name) => native.optionTable().find((o) => o.table === table && o.name === name)
  assert.equal(Number(byName('acquire', 'ttl').default), core.DEFAULT_TTL_MS)
  assert.equal(Number(byName('acquire', 'timeout').default), core.DEFAULT_TIMEOUT_MS)
  assert.equal(Number(byName('manager', 'fallback_poll').default), core.DEFAULT_FALLBACK_POLL_MS)
  assert.equal(byName('manager', 'fallback_poll').max, core.MAX_FALLBACK_POLL_MS)
  assert.equal(Number(byName('manager', 'waiter_lease').default), core.DEFAULT_WAITER_LEASE_MS)
  assert.equal(Number(byName('manager', 'deadlock_timeout').default), core.DEFAULT_DEADLOCK_TIMEOUT_MS)
  assert.equal(byName('manager', 'deadlock_timeout').js, 'deadlockTimeout')
})

// A valid value for an option of the core's table.
function sample(option) {
  const millis = option.default === 'none' ? 1000 : Number(option.default)
  return { millis, priority: 7, flag: true, owner_id: 'saga-1', text: 't-1', count: Number(option.default), choice: option.default }[
    option.kind
  ]
}

const LOCK_TABLES = ['client', 'lock', 'manager']

test("every option of the core's manager, client and lock tables is read by its JS name", () => {
  // Each row of the core's option tables is read by the binding (a new row needs no binding
  // code). Nothing connects. (The acquire table is exercised by lock.test.js, the monitor's
  // tables below.)
  const url = 'redis://127.0.0.1:1/0'
  const rows = native.optionTable().filter((o) => LOCK_TABLES.includes(o.table))
  assert.deepEqual([...new Set(rows.map((o) => o.table))].sort(), LOCK_TABLES)
  for (const o of rows) {
    const options = { [o.js]: sample(o) }
    if (o.table === 'manager') new txcoord.LockManager(url, options)
    else if (o.table === 'client') new txcoord.Client(url, options)
    else new txcoord.DistributedLock(url, 'k', 1000, options)
    // The same value of the wrong type is refused naming the option.
    const wrong = typeof options[o.js] === 'string' ? 5 : 'x'
    assert.throws(
      () => {
        const bad = { [o.js]: wrong }
        if (o.table === 'manager') new txcoord.LockManager(url, bad)
        else if (o.table === 'client') new txcoord.Client(url, bad)
        else new txcoord.DistributedLock(url, 'k', 1000, bad)
      },
      { code: 'TXCOORD_INVALID_TYPE', argument: o.js },
    )
  }
  assert.equal(new txcoord.LockManager(url, { ownerId: 'saga-1', deadlockTimeout: 0 }).ownerId, 'saga-1')
})

test("every option of the core's monitor, Alertmanager, metrics and serve tables is read by its JS name", async () => {
  // As above, for the saga monitor's tables: each row is read by the binding, and the value
  // of the wrong type refused naming the option. Nothing connects (the monitor does not start;
  // the endpoint listens on a free loopback port and is closed).
  const url = 'redis://127.0.0.1:1/0'
  const rows = native.optionTable().filter((o) => o.table !== 'acquire' && !LOCK_TABLES.includes(o.table))
  assert.deepEqual([...new Set(rows.map((o) => o.table))].sort(), ['alertmanager', 'metrics', 'monitor', 'serve'])
  const repo = new txcoord.RedisSagaRepository(url)
  const detector = new txcoord.SagaDeadlockDetector(repo, null)
  const metrics = { recordGauge() {}, recordHistogram() {} }
  const make = async (o, value) => {
    const options = { [o.js]: value }
    if (o.table === 'monitor') {
      const m = new txcoord.SagaMonitor(repo, metrics, { send() {} }, detector, { start: false, ...options })
      await m.stop()
    } else if (o.table === 'alertmanager') new txcoord.AlertmanagerSink('http://127.0.0.1:1', options)
    else if (o.table === 'metrics') new txcoord.TransactionMetricsCollector(null, options)
    else {
      const server = await txcoord.serveMetrics(new txcoord.TransactionMetricsCollector(), { host: '127.0.0.1', port: 0, ...options })
      await server.close()
    }
  }
  for (const o of rows) {
    let value = sample(o)
    if (o.js === 'start') value = false // a started monitor would try to connect
    if (o.table === 'serve') value = o.js === 'port' ? 0 : '127.0.0.1'
    await make(o, value)
    const wrong = typeof value === 'string' ? 5 : 'x'
    await assert.rejects(make(o, wrong), { code: 'TXCOORD_INVALID_TYPE', argument: o.js }, `${o.table}.${o.js}`)
  }
})

test('the JavaScript layer (index.js and lib/) keeps no copy of error codes, caps or defaults', () => {
  const dir = path.join(ROOT, 'bindings-node')
  const files = ['index.js', ...fs.readdirSync(path.join(dir, 'lib')).filter((f) => f.endsWith('.js')).map((f) => `lib/${f}`)]
  assert.ok(files.length > 5, files.join(', '))
  for (const file of files) {
    // Code only: comments may name them.
    const code = fs
      .readFileSync(path.join(dir, file), 'utf8')
      .split('\n')
      .filter((l) => !/^\s*(\/\/|\*|\/\*\*)/.test(l))
      .join('\n')
    assert.doesNotMatch(code, /TXCOORD_/, file)
    assert.doesNotMatch(code, /\b(60000|60_000|30000|10000|2147483647)\b/, file)
    assert.doesNotMatch(code, /new (Type|Range)Error\(/, file)
  }
})
