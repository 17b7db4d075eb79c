// SPDX-License-Identifier: MIT OR Apache-2.0
// Bad input: every case of the shared table tests/fixtures/bad_inputs.json (which
// core/tests/inputs.rs and tests/python/test_errors.py read too) is refused with the right
// class, `code` and `argument`; async methods reject (never throw synchronously), constructors
// throw, and nothing reaches Redis. Also: ioredis instances of topologies txcoord does not
// support yet.
'use strict'

const fs = require('node:fs')
const path = require('node:path')
const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')

const { Client, DistributedLock, LockManager } = require('txcoord')
const { ROOT, startRedis, rawRedis, ioredis } = require('./helpers.js')

let server
let raw

before(async () => {
  server = await startRedis()
  raw = rawRedis(server)
  await raw.config('RESETSTAT')
})

after(async () => {
  raw.disconnect()
  await server.stop()
})

const TABLE = JSON.parse(fs.readFileSync(path.join(ROOT, 'tests', 'fixtures', 'bad_inputs.json'), 'utf8'))
const CASES = TABLE.cases.filter((c) => (c.only || ['rust', 'python', 'node']).includes('node'))
const ABSENT = Symbol('absent')

// A value of the table, as JavaScript spells it.
function jsValue(v) {
  if (v === null || typeof v !== 'object') return v
  if ('float' in v) return { nan: NaN, inf: Infinity, '-inf': -Infinity, '-0': -0 }[v.float]
  if ('int' in v) {
    const [base, exp] = v.int.split('**').map(Number)
    return base ** exp
  }
  if ('repeat' in v) return v.repeat.repeat(v.times)
  if ('utf16' in v) return String.fromCharCode(...v.utf16)
  if ('list' in v) return [...v.list]
  if ('object' in v) return { ...v.object }
  if ('bigint' in v) return BigInt(v.bigint)
  if ('absent' in v) return ABSENT
  throw new Error(`no JavaScript value for ${JSON.stringify(v)}`)
}

const jsName = (core) => (TABLE.arguments[core] && TABLE.arguments[core].node) || core

// The arguments of a call, with trailing ones left off when not given (ABSENT or undefined).
function list(...xs) {
  while (xs.length > 0 && (xs[xs.length - 1] === ABSENT || xs[xs.length - 1] === undefined)) xs.pop()
  return xs.map((x) => (x === ABSENT ? undefined : x))
}

// Makes the case's call: [is it an async method, its promise or a function that throws].
function invoke(ctx, c) {
  const args = Object.fromEntries(Object.entries(c.args).map(([k, v]) => [k, jsValue(v)]))
  const positional = new Set(['resource', 'lock_key', 'url', 'redis', 'ttl', 'timeout', 'additional_time', 'options', 'fn'])
  const fields = {}
  for (const [k, v] of Object.entries(args)) if (!positional.has(k)) fields[jsName(k)] = v
  const opts = 'options' in args ? args.options : Object.keys(fields).length > 0 ? fields : undefined
  const resource = 'resource' in args ? args.resource : 'r'
  switch (c.call) {
    case 'acquire': {
      const ttl = 'ttl' in args ? args.ttl : 'timeout' in args || opts !== undefined ? 30000 : undefined
      const timeout = 'timeout' in args ? args.timeout : opts !== undefined ? 0 : undefined
      return [true, ctx.manager.acquireLock(...list(resource, ttl, timeout, opts))]
    }
    case 'scoped': {
      const fn = 'fn' in args ? args.fn : async () => 1
      const o = {}
      if ('ttl' in args) o.ttl = args.ttl
      if ('timeout' in args) o.timeout = args.timeout
      return [true, ctx.manager.using(...list(resource, fn, Object.keys(o).length > 0 ? o : undefined))]
    }
    case 'release_lock':
      return [true, ctx.manager.releaseLock(resource)]
    case 'extend':
      return [true, ctx.lock.extend(args.additional_time)]
    case 'lock': {
      const key = 'lock_key' in args ? args.lock_key : 'k'
      const ttl = 'ttl' in args ? args.ttl : opts !== undefined ? 30000 : undefined
      return [false, () => new DistributedLock(...list(ctx.url, key, ttl, opts))]
    }
    case 'manager':
      return [false, () => new LockManager(...list(ctx.url, opts))]
    case 'client':
      return [false, () => new Client(...list('url' in args ? args.url : ctx.url, opts))]
    case 'redis':
      return [false, () => new LockManager(...list(args.redis))]
    default:
      throw new Error(`no JavaScript call ${c.call}`)
  }
}

function check(e, kind, argument, label) {
  const [Cls, code] =
    kind === 'InvalidArgument' ? [RangeError, 'TXCOORD_INVALID_ARGUMENT'] : [TypeError, 'TXCOORD_INVALID_TYPE']
  assert.ok(e instanceof Cls, `${label}: ${e && e.constructor && e.constructor.name} is not ${Cls.name}: ${e}`)
  assert.equal(e.code, code, `${label}: code`)
  assert.equal(e.argument, argument, `${label}: argument`)
  assert.ok(e.message.includes(`\`${argument}\``), `${label}: message names the argument: ${e.message}`)
}

test(`the cases of the shared bad-input table are refused, and nothing reaches Redis`, async () => {
  assert.ok(CASES.length >= 25, `${CASES.length} cases`)
  const ctx = {
    url: server.url,
    manager: new LockManager(server.url),
    lock: new DistributedLock(server.url, 'lock:never'),
  }
  let asyncCases = 0
  for (const c of CASES) {
    const kind = (c.kinds && c.kinds.node) || c.kind
    const argument = jsName(c.argument)
    let result
    assert.doesNotThrow(() => {
      result = invoke(ctx, c)
    }, `${c.id}: threw synchronously`)
    const [isAsync, outcome] = result
    if (isAsync) {
      asyncCases++
      assert.ok(outcome instanceof Promise, `${c.id}: returns a promise`)
      await assert.rejects(outcome, (e) => {
        check(e, kind, argument, c.id)
        return true
      })
    } else {
      assert.throws(outcome, (e) => {
        check(e, kind, argument, c.id)
        return true
      })
    }
  }
  assert.ok(asyncCases >= 25, `${asyncCases} async cases`)
  const stats = await raw.info('commandstats')
  assert.doesNotMatch(stats, /cmdstat_(evalsha|eval|set|client)/, 'nothing reached Redis')
  assert.equal(await raw.dbsize(), 0)
})

// ioredis instances of topologies txcoord does not support yet are refused by the core's one
// rule (binding::target): a RangeError with code TXCOORD_INVALID_ARGUMENT naming `redis`, as
// Python's InvalidArgumentError (tests/python/test_errors.py has a test of the same name for
// each).
function refused(make, what) {
  assert.throws(make, (e) => {
    check(e, 'InvalidArgument', 'redis', what)
    assert.ok(e.message.includes(what), e.message)
    return true
  })
}

test('a Redis Cluster client is refused as an invalid argument', () => {
  const { Cluster } = require('ioredis5')
  const cluster = new Cluster([{ host: '127.0.0.1', port: server.port }], { lazyConnect: true })
  try {
    refused(() => new LockManager(cluster), 'Redis Cluster')
    refused(() => new DistributedLock(cluster, 'lock:c'), 'Redis Cluster')
  } finally {
    cluster.disconnect()
  }
})

test('a Sentinel client is refused as an invalid argument', () => {
  const Redis = ioredis(5)
  const sentinel = new Redis({ sentinels: [{ host: '127.0.0.1', port: 26379 }], name: 'mymaster', lazyConnect: true })
  try {
    refused(() => new DistributedLock(sentinel, 'lock:s'), 'Sentinel mode')
    refused(() => new LockManager(sentinel), 'Sentinel mode')
  } finally {
    sentinel.disconnect()
  }
})

test('a unix socket client is refused as an invalid argument', () => {
  const Redis = ioredis(6)
  const unix = new Redis({ path: '/tmp/redis.sock', lazyConnect: true })
  try {
    refused(() => new LockManager(unix), 'unix socket')
  } finally {
    unix.disconnect()
  }
})

test('a client with custom TLS material is refused as an invalid argument', () => {
  const Redis = ioredis(5)
  const tls = new Redis({ host: '127.0.0.1', port: 1, tls: { ca: 'not a real CA' }, lazyConnect: true })
  try {
    refused(() => new LockManager(tls), 'custom TLS material (tls.ca)')
  } finally {
    tls.disconnect()
  }
})

test('the codes are the core kinds, and unknown-kind errors still carry a code', async () => {
  const m = new LockManager(server.url)
  await m.close()
  await assert.rejects(m.acquireLock('x'), (e) => {
    assert.equal(e.constructor, Error)
    assert.equal(e.code, 'TXCOORD_CLOSED')
    assert.match(e.message, /closed/)
    return true
  })
})
