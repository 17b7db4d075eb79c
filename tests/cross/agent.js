// SPDX-License-Identifier: MIT OR Apache-2.0
// The Node lock agent of the cross-language tests: commands on stdin, one per line, one JSON
// object per line on stdout. The Rust agent (examples/rust/src/bin/lock_agent.rs) and the Python
// agent (agent.py) speak the same protocol (README.md in this folder).
//
//   node agent.js <redis-url> <name>        # TXCOORD_WITNESS_LUA = path of the witness script
//
// TXCOORD_FALLBACK_POLL_MS, if set, is the manager's fallback poll (its waiter lease is four
// times that).
'use strict'

const fs = require('node:fs')
const path = require('node:path')
const readline = require('node:readline')

const ROOT = path.resolve(__dirname, '..', '..')
// The package as an application requires it (package.json "main": bindings-node/index.js).
const { Client, LeaderElection, LockManager } = require(ROOT)
const ioredis = require('ioredis5')
const Redis = ioredis.Redis || ioredis.default || ioredis

/** Wall-clock microseconds: every agent reports the same clock. */
function nowUs() {
  return Math.round((performance.timeOrigin + performance.now()) * 1000)
}

function emit(fields) {
  process.stdout.write(JSON.stringify(fields) + '\n')
}

// The core's counters under the names every agent reports (snake_case).
function snakeStats(s) {
  const out = {}
  for (const [k, v] of Object.entries(s)) out[k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)] = v
  return out
}

class Agent {
  constructor(url, name, witnessSrc) {
    this.name = name
    this.client = new Client(url, { clientName: `cross-node-${name}` })
    const poll = process.env.TXCOORD_FALLBACK_POLL_MS
    this.manager =
      poll === undefined
        ? new LockManager(this.client)
        : new LockManager(this.client, { fallbackPoll: Number(poll), waiterLease: 4 * Number(poll) })
    this.locks = new Map()
    // name -> { election, ttl } (ttl undefined: the default)
    this.elections = new Map()
    // The term each election was last won with (kept after the leadership ends: a deposed
    // leader that writes anyway writes with it).
    this.terms = new Map()
    // What the events said last: the term this candidate leads with, per 'elected' and
    // 'revoked' (what an application following them believes).
    this.notified = new Map()
    // Cancels the campaigns still waiting when the agent quits.
    this.quitting = new AbortController()
    this.store = new Redis(url, { maxRetriesPerRequest: 1 })
    this.store.defineCommand('witness', { numberOfKeys: 1, lua: witnessSrc })
  }

  lock(resource) {
    const lock = this.locks.get(resource)
    if (lock === undefined) throw new Error(`no lock on ${resource} was acquired`)
    return lock
  }

  async acquire(resource, ttl, timeout, fair, ownerId, priority) {
    const options = { fair }
    if (ownerId !== undefined) options.ownerId = ownerId
    if (priority !== undefined) options.priority = priority
    const lock = await this.manager.acquireLock(resource, ttl, timeout, options)
    if (lock !== null) {
      lock.on('lost', (err) => {
        emit({
          ev: 'lost',
          resource,
          reason: err.reason,
          code: err.code,
          is_held: lock.isHeld,
          status: lock.status,
          token: lock.fencingToken,
          t_us: nowUs(),
        })
      })
      this.locks.set(resource, lock)
    }
    return lock
  }

  // This agent's candidate in the election `name` (candidate id: the agent's name), created by
  // its first command on `name` (with the default ttl unless a campaign).
  election(name, ttl) {
    const known = this.elections.get(name)
    if (known !== undefined) {
      if (ttl !== undefined && ttl !== known.ttl) {
        throw new Error(`the election ${name} was joined with ttl ${known.ttl}, not ${ttl}`)
      }
      return known.election
    }
    const options = { candidateId: this.name }
    if (ttl !== undefined) options.ttl = ttl
    const election = new LeaderElection(this.client, name, options)
    election.on('elected', (term) => {
      this.terms.set(name, term)
      this.notified.set(name, term)
      emit({ ev: 'elected', name, term, t_us: nowUs() })
    })
    election.on('revoked', (term) => {
      if (this.notified.get(name) === term) this.notified.set(name, null)
      emit({ ev: 'revoked', name, term, t_us: nowUs() })
    })
    this.elections.set(name, { election, ttl })
    return election
  }

  async fencedWrite(witnessKey, token) {
    if (token === null) throw new Error('no fencing token')
    const accepted = await this.store.witness(witnessKey, String(token), this.name)
    return accepted === 1
  }

  async handle(id, verb, args) {
    switch (verb) {
      case 'acquire': {
        const [resource, ttl, timeout] = [args[0], Number(args[1]), Number(args[2])]
        const fair = args.slice(3).includes('fair')
        const owner = args.slice(3).find((a) => a.startsWith('owner='))
        const priority = args.slice(3).find((a) => a.startsWith('priority='))
        const before = this.client.stats()
        const t0 = nowUs()
        const lock = await this.acquire(
          resource,
          ttl,
          timeout,
          fair,
          owner?.slice('owner='.length),
          priority === undefined ? undefined : Number(priority.slice('priority='.length)),
        )
        const t = nowUs()
        const after = this.client.stats()
        emit({
          id,
          ev: 'acquire',
          ok: lock !== null,
          token: lock === null ? null : lock.fencingToken,
          hold_count: lock === null ? null : lock.holdCount,
          t0_us: t0,
          t_us: t,
          attempts: after.attempts - before.attempts,
          wake_notified: after.wakeNotified - before.wakeNotified,
          wake_timer: after.wakeTimer - before.wakeTimer,
        })
        break
      }
      case 'release': {
        const lock = this.lock(args[0])
        const t0 = nowUs()
        await lock.release()
        emit({ id, ev: 'release', t0_us: t0, t_us: nowUs() })
        break
      }
      case 'status': {
        const lock = this.lock(args[0])
        emit({
          id,
          ev: 'status',
          is_held: lock.isHeld,
          status: lock.status,
          loss_reason: lock.lossReason,
          token: lock.fencingToken,
          remaining_validity_ms: lock.remainingValidity,
        })
        break
      }
      case 'write': {
        const lock = this.lock(args[0])
        const witnessKey = args[1]
        const force = args[2] === 'force'
        // The protected operation: a holder that is not sure to hold the lock stops here.
        const isHeld = lock.isHeld
        const done = isHeld || force
        const accepted = done ? await this.fencedWrite(witnessKey, lock.fencingToken) : null
        emit({
          id,
          ev: 'write',
          done,
          accepted,
          is_held: isHeld,
          token: lock.fencingToken,
          loss_reason: lock.lossReason,
        })
        break
      }
      case 'cycle': {
        const [resource, rounds, ttl, timeout, witnessKey] = [
          args[0],
          Number(args[1]),
          Number(args[2]),
          Number(args[3]),
          args[4],
        ]
        const fair = args[5] === 'fair'
        let acquired = 0
        for (let i = 0; i < rounds; i++) {
          const lock = await this.acquire(resource, ttl, timeout, fair)
          if (lock === null) {
            emit({ id, ev: 'round', i, ok: false })
            continue
          }
          acquired++
          const tAcq = nowUs()
          const accepted = await this.fencedWrite(witnessKey, lock.fencingToken)
          const tRel = nowUs()
          await lock.release()
          emit({ id, ev: 'round', i, ok: true, token: lock.fencingToken, accepted, t_acq_us: tAcq, t_rel_us: tRel })
        }
        emit({ id, ev: 'cycle', rounds, acquired })
        break
      }
      case 'campaign': {
        const [name, ttl, timeout] = [args[0], Number(args[1]), Number(args[2])]
        const election = this.election(name, ttl)
        const before = this.client.stats()
        const t0 = nowUs()
        const ok = await election.campaign({ timeout, signal: this.quitting.signal })
        const t = nowUs()
        const after = this.client.stats()
        const term = election.term
        if (ok && term !== null) this.terms.set(name, term)
        emit({
          id,
          ev: 'campaign',
          ok,
          term,
          t0_us: t0,
          t_us: t,
          wake_notified: after.wakeNotified - before.wakeNotified,
          wake_timer: after.wakeTimer - before.wakeTimer,
        })
        break
      }
      case 'resign': {
        const election = this.election(args[0])
        const t0 = nowUs()
        await election.resign()
        emit({ id, ev: 'resign', t0_us: t0, t_us: nowUs(), is_leader: election.isLeader })
        break
      }
      case 'leader': {
        const election = this.election(args[0])
        const leader = await election.leader()
        emit({
          id,
          ev: 'leader',
          candidate_id: leader === null ? null : leader.candidateId,
          term: leader === null ? null : leader.term,
          remaining_ms: leader === null ? null : leader.remainingMs,
          is_leader: election.isLeader,
          own_term: election.term,
        })
        break
      }
      case 'lead': {
        const [name, witnessKey] = args
        const force = args[2] === 'force'
        const election = this.election(name)
        // The leader's protected action: a candidate that does not believe it leads stops here.
        const isLeader = election.isLeader
        const current = isLeader ? election.term : null
        const term = current !== null ? current : (this.terms.get(name) ?? null)
        const done = isLeader || force
        const notified = this.notified.get(name) ?? null
        const accepted = done ? await this.fencedWrite(witnessKey, term) : null
        emit({ id, ev: 'lead', done, accepted, is_leader: isLeader, term, current_term: current, notified_term: notified })
        break
      }
      case 'stats':
      case 'ping': {
        // `ping`: the counters first, then a PING on the client's connection, so every attempt
        // counted has been answered by Redis when the reply arrives.
        const stats = snakeStats(this.client.stats())
        if (verb === 'ping') await this.client.ping()
        emit({ id, ev: verb, ...stats })
        break
      }
      default:
        throw new Error(`unknown command ${JSON.stringify(verb)}`)
    }
  }

  async close() {
    this.quitting.abort(new Error('the agent quits'))
    await this.manager.close()
    for (const { election } of this.elections.values()) {
      await election.resign().catch(() => {})
    }
    this.store.disconnect()
    this.client.close()
  }
}

async function main() {
  const [url, name] = process.argv.slice(2)
  const witnessSrc = fs.readFileSync(process.env.TXCOORD_WITNESS_LUA, 'utf8')
  const agent = new Agent(url, name, witnessSrc)
  const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity })
  emit({ ev: 'ready', lang: 'node', name, pid: process.pid })
  let quitId
  for await (const line of rl) {
    const words = line.trim().split(/\s+/)
    if (words.length < 2) continue
    const [id, verb, ...rest] = words
    if (verb === 'quit') {
      quitId = id
      break
    }
    // Every command runs on its own: a `ping` is answered while an `acquire` waits.
    agent.handle(id, verb, rest).catch((e) => emit({ id, ev: 'error', message: `${e.name}: ${e.message}`, code: e.code }))
  }
  rl.close()
  await agent.close()
  if (quitId !== undefined) emit({ id: quitId, ev: 'quit' })
  process.exit(0)
}

main().catch((e) => {
  process.stderr.write(`agent.js: ${e.stack}\n`)
  process.exit(1)
})
