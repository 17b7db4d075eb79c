// SPDX-License-Identifier: MIT OR Apache-2.0
// Leader election at the JavaScript level: one leader, terms that grow on every change, resign
// hands over, the 'elected'/'revoked' events and the leadership's signal. Scenario names follow
// tests/python/test_election.py. Each file starts its own redis-server.
'use strict'

const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')

const { Client, LeaderElection } = require('txcoord')
const { startRedis, rawRedis, waitFor, nextEvent, aborted, nodeChild } = require('./helpers.js')

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

let names = 0
/** A fresh election name per test. */
function electionName() {
  names += 1
  return `election-${names}`
}

/** What 'elected' and 'revoked' reported, in order. */
function recordEvents(election) {
  const seen = []
  election.on('elected', (term) => seen.push(['elected', term]))
  election.on('revoked', (term) => seen.push(['revoked', term]))
  return seen
}

test('one candidate leads and the others wait', async () => {
  const name = electionName()
  const candidates = [0, 1, 2].map((i) => new LeaderElection(new Client(server.url), name, { candidateId: `c${i}` }))
  const won = await Promise.all(candidates.map((c) => c.campaign({ timeout: 0 })))
  assert.deepEqual([...won].sort(), [false, false, true])
  const leader = candidates[won.indexOf(true)]
  assert.equal(leader.isLeader, true)
  assert.ok(Number.isSafeInteger(leader.term) && leader.term > 0)
  assert.equal(candidates.filter((c) => c.isLeader).length, 1)
  assert.ok(candidates.filter((c) => c !== leader).every((c) => c.term === null))
  for (const c of candidates) {
    const seen = await c.leader()
    assert.deepEqual([seen.candidateId, seen.term], [leader.candidateId, leader.term])
    assert.ok(seen.remainingMs > 0 && seen.remainingMs <= 10000, `remainingMs ${seen.remainingMs}`)
  }
  assert.equal(await leader.campaign({ timeout: 0 }), true, 'a leader campaigning again still leads')
  await leader.resign()
  assert.equal(leader.isLeader, false)
  assert.equal(leader.term, null)
  assert.equal(await candidates[0].leader(), null)
})

test('resigning hands over and the term grows with every change', async () => {
  const name = electionName()
  const a = new LeaderElection(server.url, name, { candidateId: 'a' })
  const bClient = new Client(server.url)
  const b = new LeaderElection(bClient, name, { candidateId: 'b' })
  const aEvents = recordEvents(a)
  const bEvents = recordEvents(b)
  assert.equal(await a.campaign({ timeout: 0 }), true)
  const termA = a.term
  assert.deepEqual(aEvents, [['elected', termA]], "'elected' by the time campaign() resolves")
  const sleeps = bClient.stats().sleeps
  let settled = false
  const waiting = b.campaign({ timeout: 20000 }).finally(() => (settled = true))
  await waitFor(() => bClient.stats().sleeps > sleeps, { what: 'b to wait' })
  assert.deepEqual(bEvents, [])
  assert.equal(settled, false)
  await a.resign()
  assert.equal(await waiting, true, "a resign wakes the next candidate")
  const termB = b.term
  assert.ok(termB > termA, `term ${termB} > ${termA}`)
  assert.deepEqual(aEvents, [['elected', termA], ['revoked', termA]])
  assert.deepEqual(bEvents, [['elected', termB]])
  assert.equal((await a.leader()).candidateId, 'b')
  // and back: every change of leader has a larger term
  const again = a.campaign({ timeout: 20000 })
  await b.resign()
  assert.equal(await again, true)
  assert.ok(a.term > termB)
  await a.resign()
})

test('a lost leadership is revoked', async () => {
  const name = electionName()
  const e = new LeaderElection(server.url, name, { ttl: 1500 })
  const seen = recordEvents(e)
  const idle = e.signal
  assert.equal(idle.aborted, true, 'not leading: an aborted signal')
  assert.equal(idle.reason.term, null)
  assert.equal(await e.campaign({ timeout: 0 }), true)
  const term = e.term
  const signal = e.signal
  assert.equal(signal.aborted, false)
  assert.equal(e.signal, signal, 'one signal per leadership')
  // someone else takes the key: the next renewal (every ttl/3) finds it taken
  const revoked = nextEvent(e, 'revoked', 15000)
  await raw.set(`txcoord:election:${name}`, '2:00000000-0000-4000-8000-000000000000:1:0:usurper')
  assert.equal(await revoked, term)
  const reason = await aborted(signal, 15000)
  assert.equal(reason.code, 'TXCOORD_LOCK_LOST')
  assert.equal(reason.term, term)
  assert.equal(e.isLeader, false)
  assert.equal(e.term, null)
  assert.deepEqual(seen, [['elected', term], ['revoked', term]])
})

test("'elected' and 'revoked' fire and the signal aborts when the leadership ends", async () => {
  const name = electionName()
  const e = new LeaderElection(server.url, name, { candidateId: 'ev' })
  const seen = recordEvents(e)
  assert.equal(await e.campaign({ timeout: 0 }), true)
  const t1 = e.term
  const s1 = e.signal
  await e.resign()
  assert.equal(s1.aborted, true, 'aborted when resigned')
  assert.equal(s1.reason.term, t1)
  assert.equal(await e.campaign({ timeout: 0 }), true)
  const t2 = e.term
  const s2 = e.signal
  assert.notEqual(s2, s1, 'a new leadership, a new signal')
  assert.equal(s2.aborted, false)
  await e[Symbol.asyncDispose]()
  assert.equal(e.isLeader, false, 'asyncDispose resigns')
  assert.equal(s2.aborted, true)
  assert.deepEqual(seen, [['elected', t1], ['revoked', t1], ['elected', t2], ['revoked', t2]])
  // another candidate's leadership is observed, not reported as this one's
  const other = new LeaderElection(server.url, name, { candidateId: 'other' })
  const elected = nextEvent(other, 'elected')
  assert.equal(await other.campaign({ timeout: 0 }), true)
  assert.equal(await elected, other.term)
  assert.equal(seen.length, 4)
  await other.resign()
})

test('an election referring to its owner is collected', async () => {
  // In a child with --expose-gc: a service holds an election whose listeners are its own
  // methods, and the election's signal; once the program drops the service, both are
  // collected, and the process exits by itself.
  const script = `
    'use strict'
    const { LeaderElection } = require('txcoord')
    const collected = new Set()
    const registry = new FinalizationRegistry((what) => collected.add(what))
    class Service {
      constructor() {
        this.terms = []
        this.election = new LeaderElection(process.env.REDIS_URL, 'gc-election')
        this.election.on('elected', (t) => this.terms.push(t))
        this.election.on('revoked', (t) => this.terms.push(-t))
      }
    }
    async function run() {
      const service = new Service()
      if (!(await service.election.campaign({ timeout: 0 }))) throw new Error('not elected')
      service.signal = service.election.signal
      await service.election.resign()
      if (service.terms.length !== 2 || !service.signal.aborted) throw new Error('events: ' + service.terms)
      registry.register(service, 'service')
      registry.register(service.election, 'election')
    }
    run().then(async () => {
      for (let i = 0; i < 200 && collected.size < 2; i++) {
        globalThis.gc()
        await new Promise((r) => setTimeout(r, 25))
      }
      console.log(JSON.stringify([...collected].sort()))
    })
  `
  const child = nodeChild(['--expose-gc', '-e', script], { REDIS_URL: server.url })
  try {
    const line = await child.line(30000)
    assert.deepEqual(JSON.parse(line), ['election', 'service'], child.output())
    const { code } = await child.exit(20000)
    assert.equal(code, 0, child.output())
  } finally {
    await child.stop()
  }
})

test('a cancelled campaign leaves no leadership', async () => {
  const name = electionName()
  const a = new LeaderElection(server.url, name, { candidateId: 'holder' })
  const bClient = new Client(server.url)
  const b = new LeaderElection(bClient, name, { candidateId: 'quitter' })
  assert.equal(await a.campaign({ timeout: 0 }), true)
  const sleeps = bClient.stats().sleeps
  const controller = new AbortController()
  const waiting = b.campaign({ timeout: 30000, signal: controller.signal })
  await waitFor(() => bClient.stats().sleeps > sleeps, { what: 'b to wait' })
  controller.abort(new Error('shutting down'))
  await assert.rejects(waiting, /shutting down/)
  await assert.rejects(b.campaign({ signal: controller.signal }), /shutting down/, 'an aborted signal rejects at once')
  await a.resign()
  // nobody took over: the cancelled candidate does not lead
  assert.equal(await raw.exists(`txcoord:election:${name}`), 0)
  assert.equal(b.isLeader, false)
  assert.equal(await b.leader(), null)
})

test('bad election arguments name themselves', () => {
  for (const [args, name, argument] of [
    [[''], 'RangeError', 'name'],
    [[7], 'TypeError', 'name'],
    [['n', { ttl: 0 }], 'RangeError', 'ttl'],
    [['n', { ttl: '10s' }], 'TypeError', 'ttl'],
    [['n', { candidateId: '' }], 'RangeError', 'candidateId'],
    [['n', { candidateId: 5 }], 'TypeError', 'candidateId'],
    [['n', 'options'], 'TypeError', 'options'],
  ]) {
    assert.throws(() => new LeaderElection(server.url, ...args), { name, argument }, JSON.stringify(args))
  }
  assert.throws(() => new LeaderElection({}, 'n'), { name: 'TypeError', argument: 'redis' })
  assert.match(new LeaderElection(server.url, 'n').candidateId, /.+-[0-9a-f]{8}$/, 'a generated candidate id')
})

test('bad campaign timeouts name themselves', async () => {
  const e = new LeaderElection(server.url, electionName())
  await assert.rejects(e.campaign({ timeout: -1 }), { name: 'RangeError', code: 'TXCOORD_INVALID_ARGUMENT', argument: 'timeout' })
  await assert.rejects(e.campaign({ timeout: 1.5 }), { name: 'RangeError', argument: 'timeout' })
  await assert.rejects(e.campaign({ timeout: '1s' }), { name: 'TypeError', argument: 'timeout' })
  await assert.rejects(e.campaign(5000), { name: 'TypeError', argument: 'options' })
  await assert.rejects(e.campaign({ signal: 'no' }), { name: 'TypeError', argument: 'signal' })
  assert.equal(e.isLeader, false)
})
