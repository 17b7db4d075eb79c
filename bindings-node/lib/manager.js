// SPDX-License-Identifier: MIT OR Apache-2.0
// The seed's `LockManager`: locks by resource name, several at once in one global order, the
// scoped `using`, and `options.signal` cancelling a wait.
'use strict'

const native = require('../native.js')
const { toClient } = require('./client.js')
const { signalOf, cancellable } = require('./cancel.js')
const { wrapLock } = require('./lock.js')

/**
 * The seed's `LockManager`: locks by resource name (key `lock:<resource>`), waits woken by
 * release notifications, owner ids, fair mode, and the scoped `using`.
 */
class LockManager {
  #n

  constructor(redis, options) {
    this.#n = new native.LockManager(toClient(redis), options)
  }

  /** The lock, or `null` when `timeout` ms passed first. */
  acquireLock(resource, ttl, timeout, options) {
    let signal
    try {
      signal = signalOf(options)
    } catch (e) {
      return Promise.reject(e)
    }
    if (signal === undefined) return this.#n.acquireLock(resource, ttl, timeout, options).then(wrapLock)
    if (signal.aborted) return Promise.reject(signal.reason)
    const token = new native.CancelToken()
    const onAbort = () => token.cancel()
    signal.addEventListener('abort', onAbort, { once: true })
    return this.#n.acquireLock(resource, ttl, timeout, options, token).then(
      (n) => {
        signal.removeEventListener('abort', onAbort)
        if (n === null && token.cancelled) throw signal.reason
        return wrapLock(n)
      },
      (e) => {
        signal.removeEventListener('abort', onAbort)
        throw e
      },
    )
  }

  /** Releases the most recent lock this manager acquired on `resource`. */
  releaseLock(resource) {
    return this.#n.releaseLock(resource)
  }

  /**
   * Every lock of `resources` or none, taken in one global order (sorted, duplicates dropped):
   * the locks in that order, or `null` when `timeout` ms (for the whole set) passed first.
   */
  acquireLocks(resources, ttl, timeout, options) {
    let signal
    try {
      signal = signalOf(options)
    } catch (e) {
      return Promise.reject(e)
    }
    return cancellable(signal, null, (token) => this.#n.acquireLocks(resources, ttl, timeout, options, token)).then(
      (locks) => (locks === null ? null : locks.map(wrapLock)),
    )
  }

  /** Releases the locks this manager holds on `resources`; resolves with the failures. */
  releaseLocks(resources) {
    return this.#n.releaseLocks(resources)
  }

  /**
   * Attempts every release. As the seed, a failed one is logged (an `error` record: see
   * `setLogger`), never thrown; the failures are also returned.
   */
  releaseAllLocks() {
    return this.#n.releaseAllLocks()
  }

  /** Releases everything and refuses further acquisitions. */
  close() {
    return this.#n.close()
  }

  /** `await using manager = ...` closes the manager (releasing what it holds). */
  [Symbol.asyncDispose]() {
    return this.close().then(() => undefined)
  }

  /**
   * Runs `fn(lock)` holding `resource` and releases it however `fn` ends. Rejects with code
   * `TXCOORD_TIMEOUT` when the lock cannot be acquired within `options.timeout`.
   */
  async using(resource, fn, options) {
    if (typeof fn !== 'function') throw native.wrongType('fn', 'a function', fn)
    const signal = signalOf(options)
    if (signal !== undefined && signal.aborted) throw signal.reason
    let token
    let onAbort
    let started = false
    if (signal !== undefined) {
      token = new native.CancelToken()
      // Only the wait is cancelled: once `fn` runs, it owns the lock until it settles.
      onAbort = () => {
        if (!started) token.cancel()
      }
      signal.addEventListener('abort', onAbort, { once: true })
    }
    let result
    let failed = false
    let error
    try {
      await this.#n.using(resource, options, token, async (n) => {
        if (signal !== undefined && signal.aborted) return
        started = true
        try {
          result = await fn(wrapLock(n))
        } catch (e) {
          failed = true
          error = e
        }
      })
    } finally {
      if (signal !== undefined) signal.removeEventListener('abort', onAbort)
    }
    if (!started) throw signal !== undefined ? signal.reason : new Error('txcoord: the scoped function did not run')
    if (failed) throw error
    return result
  }

  /** Resources this manager currently holds locks on. */
  get heldResources() {
    return this.#n.heldResources
  }

  /** The manager's owner id, or `null`. */
  get ownerId() {
    return this.#n.ownerId
  }
}

module.exports = { LockManager }
