// SPDX-License-Identifier: MIT OR Apache-2.0
// Leader election at the JavaScript level: one leader at a time, terms that grow on every
// change, handover on resign, the 'elected'/'revoked' events and the leadership's signal.
// Each file starts its own redis-server.
'use strict'

const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')

const { Client, LeaderElection } = require('txcoord')
const { startRedis, rawRedis, waitFor, nextEvent, aborted } = require('./helpers.js')

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

/** A candidate on a client of its own; returns the election and its client. */
function candidate(name, id, ttl = 5000) {
  const client = new Client(server.url)
  return { election: new LeaderElection(client, name, { candidateId: id, ttl }), client }
}

test('one leader; the term grows on every change; resign hands over', async () => {
  const name = 'el-handover'
  const all = ['c-1', 'c-2', 'c-3', 'c-4'].map((id) => candidate(name, id).election)
  // candidates racing for a free election: exactly one wins
  const won = await Promise.all(all.map((e) => e.campaign({ timeout: 0 })))
  assert.equal(won.filter(Boolean).length, 1, `one winner: ${won}`)
  const first = all[won.indexOf(true)]
  const others = all.filter((e) => e !== first)
  assert.equal(first.isLeader, true)
  assert.ok(others.every((e) => !e.isLeader && e.term === null))
  const t1 = first.term
  assert.ok(Number.isSafeInteger(t1) && t1 > 0)
  const seen = await others[0].leader()
  assert.deepEqual([seen.candidateId, seen.term], [first.candidateId, t1], 'every candidate sees the leader')
  assert.equal(await first.campaign({ timeout: 0 }), true, 'the leader campaigning again leads at once')
  assert.equal(first.term, t1)

  // a waiting candidate takes over when the leader resigns (woken by its release notice)
  const { election: next, client: nextClient } = candidate(name, 'c-next')
  const sleeps = nextClient.stats().sleeps
  const takeover = next.campaign({ timeout: 20000 })
  await waitFor(() => nextClient.stats().sleeps > sleeps, { what: 'the candidate asleep' })
  await first.resign()
  assert.equal(first.isLeader, false)
  assert.equal(first.term, null)
  assert.equal(await takeover, true)
  const t2 = next.term
  assert.ok(t2 > t1, `term ${t2} > ${t1}`)
  const leader = await first.leader()
  assert.equal(leader.candidateId, 'c-next')
  assert.equal(leader.term, t2)
  assert.ok(leader.remainingMs > 0 && leader.remainingMs <= 5000)

  // and again: every change of leader has a larger term
  await next.resign()
  assert.equal(await first.campaign({ timeout: 5000 }), true)
  assert.ok(first.term > t2)
  await first.resign()
  assert.equal(await first.leader(), null, 'nobody leads')
  assert.equal(await others[1].campaign({ timeout: 0 }), true)
  await others[1][Symbol.asyncDispose]()
  assert.equal(others[1].isLeader, false, 'asyncDispose resigns')
})

test("'elected' and 'revoked' fire and the signal aborts when the leadership ends", async () => {
  const name = 'el-events'
  const { election } = candidate(name, 'ev-1', 3000)
  const events = []
  election.on('elected', (term) => events.push(['elected', term]))
  election.on('revoked', (term) => events.push(['revoked', term]))
  const idle = election.signal
  assert.equal(idle.aborted, true, 'not leading: an aborted signal')
  assert.equal(idle.reason.term, null)

  assert.equal(await election.campaign({ timeout: 5000 }), true)
  const t1 = election.term
  assert.deepEqual(events, [['elected', t1]], 'elected by the time campaign() resolves')
  const s1 = election.signal
  assert.equal(s1.aborted, false)
  assert.equal(election.signal, s1, 'one signal per leadership')

  await election.resign()
  assert.equal(s1.aborted, true)
  assert.equal(s1.reason.code, 'TXCOORD_LOCK_LOST')
  assert.equal(s1.reason.term, t1)
  assert.deepEqual(events, [['elected', t1], ['revoked', t1]])

  // a leadership lost behind the leader's back (its key deleted): revoked at its next renewal
  assert.equal(await election.campaign({ timeout: 5000 }), true)
  const t2 = election.term
  assert.ok(t2 > t1)
  const s2 = election.signal
  assert.notEqual(s2, s1)
  const revoked = nextEvent(election, 'revoked', 20000)
  assert.equal(await raw.del(`txcoord:election:${name}`), 1)
  assert.equal(await revoked, t2)
  const reason = await aborted(s2, 20000)
  assert.equal(reason.term, t2)
  assert.equal(election.isLeader, false)
  assert.deepEqual(events, [['elected', t1], ['revoked', t1], ['elected', t2], ['revoked', t2]])

  // another candidate's leadership is observed, not reported as this one's
  const { election: other } = candidate(name, 'ev-2', 3000)
  const elected = nextEvent(other, 'elected')
  assert.equal(await other.campaign({ timeout: 5000 }), true)
  assert.equal(await elected, other.term)
  assert.equal(events.length, 4)
  await other.resign()
})

test('an AbortSignal cancels a campaign', async () => {
  const name = 'el-abort'
  const { election: leader } = candidate(name, 'ab-1')
  const { election: waiting, client } = candidate(name, 'ab-2')
  assert.equal(await leader.campaign({ timeout: 5000 }), true)
  const sleeps = client.stats().sleeps
  const controller = new AbortController()
  const campaign = waiting.campaign({ signal: controller.signal })
  await waitFor(() => client.stats().sleeps > sleeps, { what: 'the candidate asleep' })
  controller.abort(new Error('shutting down'))
  await assert.rejects(campaign, /shutting down/)
  assert.equal(waiting.isLeader, false)
  await assert.rejects(waiting.campaign({ signal: controller.signal }), /shutting down/, 'an aborted signal rejects at once')
  // nobody waits any more: after the leader resigns, nobody leads
  await leader.resign()
  assert.equal(await leader.leader(), null)
  assert.equal(waiting.isLeader, false)
})

test('bad election arguments are refused naming them', async () => {
  assert.throws(() => new LeaderElection(server.url, ''), { name: 'RangeError', code: 'TXCOORD_INVALID_ARGUMENT', argument: 'name' })
  assert.throws(() => new LeaderElection(server.url, 7), { name: 'TypeError', argument: 'name' })
  assert.throws(() => new LeaderElection(server.url, 'x', { ttl: 0 }), { name: 'RangeError', argument: 'ttl' })
  assert.throws(() => new LeaderElection(server.url, 'x', { candidateId: 5 }), { name: 'TypeError', argument: 'candidateId' })
  assert.throws(() => new LeaderElection(server.url, 'x', 'opts'), { name: 'TypeError', argument: 'options' })
  assert.throws(() => new LeaderElection({}, 'x'), { name: 'TypeError', argument: 'redis' })
  const e = new LeaderElection(server.url, 'x')
  assert.match(e.candidateId, /.+-[0-9a-f]{8}$/, 'a generated candidate id')
  await assert.rejects(e.campaign({ timeout: -1 }), { name: 'RangeError', argument: 'timeout' })
  await assert.rejects(e.campaign({ timeout: 1.5 }), { name: 'RangeError', argument: 'timeout' })
  await assert.rejects(e.campaign({ signal: 'no' }), { name: 'TypeError', argument: 'signal' })
  assert.equal(e.isLeader, false)
})
