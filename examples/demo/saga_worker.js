// SPDX-License-Identifier: MIT OR Apache-2.0
// The Node saga worker of the demo (`make demo`).
//
// It runs the sagas the demo gives it, beside a Rust and a Python worker that run theirs on the
// same Redis: each saga is a record in txcoord's built-in saga repository (created EXECUTING,
// saved after each step, COMPLETED, COMPENSATED or FAILED at the end), and each step locks a
// shared resource with the saga id as the owner id, so the lock registry knows which saga holds
// and which waits. The demo (examples/rust/src/demo/sagas/) drives it with one JSON command a
// line on stdin and reads one JSON event a line from its stdout; the Rust worker
// (examples/rust/src/demo/sagas/rust_worker.rs) lists the commands. By hand:
//
//   echo '{"cmd": "mix", "concurrency": 1, "sagas": [{"id": "js-1", "type": "PaymentSaga",
//          "steps": [{"name": "authorize", "resource": "account:1", "work_ms": 20}]}]}' |
//     REDIS_URL=redis://127.0.0.1:6379 node examples/demo/saga_worker.js
'use strict'

const readline = require('node:readline')
const { Client, LockManager, RedisSagaRepository, setLogger } = require('txcoord')

const TTL = 10000 // each lock's lease, renewed while held
const LOCK_TIMEOUT = 15000 // how long a step waits for its lock

/** Wall-clock milliseconds, with sub-millisecond precision. */
const now = () => performance.timeOrigin + performance.now()
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** One event for the demo: a JSON line, timestamped in wall-clock milliseconds. */
function emit(ev, fields = {}) {
  process.stdout.write(`${JSON.stringify({ ev, t: now(), ...fields })}\n`)
}

// txcoord's log records (a deadlock broken by this process's probe, a lost lock) as events.
setLogger({
  error: (message) => emit('log', { level: 'error', message }),
  warn: (message) => emit('log', { level: 'warn', message }),
})

if (!process.env.REDIS_URL) throw new Error('set REDIS_URL (the demo does)')
const client = new Client(process.env.REDIS_URL, { clientName: 'demo-saga-worker-js' })
const manager = new LockManager(client)
const repo = new RedisSagaRepository(client)
/** Sagas between dlHold and dlWait: id -> { record, spec, locks, started }. */
const open = new Map()

async function save(record) {
  record.updatedAt = new Date()
  await repo.save(record)
}

async function start(spec) {
  // createdAt stays on the record: a save without it would count the saga as created anew
  const record = {
    id: spec.id,
    type: spec.type,
    priority: spec.priority ?? 0,
    status: 'EXECUTING',
    createdAt: new Date(),
  }
  await save(record)
  emit('started', { id: record.id, type: record.type })
  return record
}

/** The step's lock, owned by the saga; null when it stayed busy. */
async function lock(record, resource) {
  const asked = now()
  const held = await manager.acquireLock(resource, TTL, LOCK_TIMEOUT, {
    ownerId: record.id,
    priority: record.priority,
  })
  if (held) {
    emit('locked', { id: record.id, resource, token: held.fencingToken, waited_ms: now() - asked })
  }
  return held
}

async function release(id, locks) {
  emit('released', { id, resources: locks.map((l) => l.key.replace(/^lock:/, '')) })
  for (const l of [...locks].reverse()) await l.release()
}

async function finish(record, locks, status, error, started) {
  record.status = status
  record.error = error
  await save(record)
  await release(record.id, locks)
  emit('finished', { id: record.id, type: record.type, status, error, ms: now() - started })
}

/** Undoes the steps done, in reverse, then ends COMPENSATED. */
async function compensate(record, spec, done, locks, reason, started) {
  record.status = 'COMPENSATING'
  record.error = reason
  await save(record)
  emit('compensating', { id: record.id, reason, steps: done })
  for (const step of spec.steps.slice(0, done).reverse()) await sleep(step.work_ms / 2)
  await finish(record, locks, 'COMPENSATED', reason, started)
}

async function runSaga(spec) {
  const started = now()
  const record = await start(spec)
  const locks = []
  for (const [i, step] of spec.steps.entries()) {
    if (step.resource) {
      const held = await lock(record, step.resource)
      if (!held) return finish(record, locks, 'FAILED', `${step.resource} stayed busy`, started)
      locks.push(held)
    }
    await sleep(step.work_ms)
    if (spec.decline_at === i) return compensate(record, spec, i, locks, 'payment declined', started)
    await save(record)
  }
  return finish(record, locks, 'COMPLETED', null, started)
}

const commands = {
  /** Runs the sagas, `concurrency` at a time. */
  async mix({ sagas, concurrency }) {
    const queue = [...sagas]
    const lane = async () => {
      for (let spec = queue.shift(); spec; spec = queue.shift()) await runSaga(spec)
    }
    await Promise.all(Array.from({ length: Math.max(1, concurrency) }, lane))
  },

  /**
   * Runs the steps before `hang_at`, then hangs: the record stops moving. Watches what the
   * monitor writes into it, and compensates once it says COMPENSATING.
   */
  async stall({ saga, hang_at: hangAt, poll_ms: poll, give_up_ms: giveUp }) {
    const started = now()
    const record = await start(saga)
    const locks = []
    for (const step of saga.steps.slice(0, hangAt)) {
      if (step.resource) {
        const held = await lock(record, step.resource)
        if (!held) throw new Error(`${step.resource} stayed busy`)
        locks.push(held)
      }
      await sleep(step.work_ms)
      await save(record)
    }
    const stepName = saga.steps[hangAt].name
    emit('stalled', { id: record.id, step: stepName })
    let seen = null
    let current
    for (;;) {
      current = await repo.findById(record.id)
      if (!current) throw new Error(`${record.id}: the record is gone`)
      const key = `${current.status}/${current.retryCount}`
      if (key !== seen) {
        seen = key
        emit('record', {
          id: current.id,
          status: current.status,
          retry_count: current.retryCount,
          stuck_reason: current.stuckReason,
          stuck_detail: current.stuckDetail,
          version: current.version,
        })
      }
      if (current.status === 'COMPENSATING') break
      if (['COMPLETED', 'COMPENSATED', 'FAILED'].includes(current.status)) {
        throw new Error(`${current.id} ended ${current.status} under it`)
      }
      if (now() - started > giveUp) {
        throw new Error(`${current.id}: never marked COMPENSATING (${current.retryCount} retries)`)
      }
      await sleep(poll)
    }
    emit('compensating', {
      id: current.id,
      reason: current.stuckReason,
      steps: hangAt,
      retries: current.retryCount,
    })
    await release(current.id, locks)
    for (let i = 0; i < 5; i++) {
      // conditional: the monitor's record, one version on (it may write meanwhile)
      const error = `stalled at ${stepName}; compensated after ${current.retryCount} retries`
      const done = { ...current, status: 'COMPENSATED', error, updatedAt: new Date() }
      if (await repo.save(done, { expectedVersion: current.version })) {
        emit('finished', { id: done.id, type: done.type, status: 'COMPENSATED', error, ms: now() - started })
        return
      }
      current = await repo.findById(current.id)
      if (!current) throw new Error('the record is gone')
    }
    throw new Error(`${current.id}: could not save COMPENSATED`)
  },

  /** Takes the first step's lock and keeps it (the deadlock scene). */
  async dl_hold({ saga }) {
    const started = now()
    const record = await start(saga)
    const held = await lock(record, saga.steps[0].resource)
    if (!held) throw new Error(`${saga.steps[0].resource} stayed busy`)
    open.set(record.id, { record, spec: saga, locks: [held], started })
  },

  /** Waits for the second step's lock: completes, or is the deadlock victim and fails. */
  async dl_wait({ id }) {
    const { record, spec, locks, started } = open.get(id)
    open.delete(id)
    const second = spec.steps[1]
    emit('waiting', { id, resource: second.resource })
    let held
    try {
      held = await lock(record, second.resource)
    } catch (err) {
      if (err.code !== 'TXCOORD_DEADLOCK_VICTIM') throw err
      const cycle = err.cycle
      emit('victim', {
        id,
        code: err.code,
        cycle: cycle ? cycle.message : err.message,
        sagas: cycle?.sagas ?? null,
        victim: cycle?.victim ?? null,
      })
      return finish(record, locks, 'FAILED', `deadlock victim (${cycle?.id ?? ''})`, started)
    }
    if (!held) return finish(record, locks, 'FAILED', `${second.resource} stayed busy`, started)
    locks.push(held)
    await sleep(second.work_ms)
    await save(record)
    return finish(record, locks, 'COMPLETED', null, started)
  },
}

async function main() {
  await client.ping()
  emit('ready', { pid: process.pid, version: process.version })
  for await (const line of readline.createInterface({ input: process.stdin })) {
    const { cmd, ...args } = JSON.parse(line)
    if (cmd === 'exit') break
    // commands run side by side; each reports its end
    commands[cmd](args).then(
      () => emit('done', { cmd }),
      (err) => emit('error', { cmd, message: String(err?.stack ?? err) }),
    )
  }
  process.stdin.destroy() // the demo may keep its end open
  await manager.close()
  client.close()
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
