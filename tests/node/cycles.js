// SPDX-License-Identifier: MIT OR Apache-2.0
// Test support for the deadlock scenarios: sagas (LockManagers with an owner id) that hold
// locks and wait for each other's, and the graph they form, waited for with a deadline.
'use strict'

const { Client, LockManager } = require('txcoord')
const { waitFor } = require('./helpers.js')

/**
 * Sagas on `url`: `{ id: priority }` → `{ id: LockManager }`, each on its own client. With
 * `deadlockTimeout: 0` their waits never probe, so only a detector breaks their deadlocks.
 */
function sagaManagers(url, priorities, deadlockTimeout = 0) {
  const managers = {}
  for (const [id, priority] of Object.entries(priorities)) {
    managers[id] = new LockManager(new Client(url), { ownerId: id, priority, deadlockTimeout })
  }
  return managers
}

/**
 * Waits: `[[saga, resource], ...]` → the pending acquisitions (60 s ttl, 30 s timeout), each
 * cancellable by `stop()`. `settled` tells which have settled, `results()` awaits them all.
 */
function startWaits(managers, waits) {
  const controller = new AbortController()
  const done = new Map()
  const pending = waits.map(([saga, resource]) => {
    const p = managers[saga].acquireLock(resource, 60000, 30000, { signal: controller.signal })
    p.then(
      (lock) => done.set(saga, { lock }),
      (error) => done.set(saga, { error }),
    )
    return p
  })
  return {
    done,
    /** Cancels the waits still pending; resolves once every wait settled. */
    async stop() {
      controller.abort(new Error('test over'))
      await Promise.allSettled(pending)
    },
  }
}

/** Takes `resource` for `saga` at once (it must be free). */
async function hold(managers, saga, resource) {
  const lock = await managers[saga].acquireLock(resource, 60000, 0)
  if (lock === null) throw new Error(`${saga} could not take ${resource}`)
  return lock
}

/** Waits until the detector's graph has at least `edges` edges. */
async function graphWith(detector, edges) {
  return waitFor(
    async () => {
      const g = await detector.waitForGraph()
      return g.edges.length >= edges ? g : null
    },
    { timeoutMs: 20000, every: 25, what: `a wait-for graph with ${edges} edges` },
  )
}

/** Releases everything the sagas hold. */
async function releaseAll(managers) {
  await Promise.all(Object.values(managers).map((m) => m.releaseAllLocks()))
}

module.exports = { sagaManagers, startWaits, hold, graphWith, releaseAll }
