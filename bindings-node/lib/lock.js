// SPDX-License-Identifier: MIT OR Apache-2.0
// The seed's `DistributedLock`: the native lock, plus what N-API cannot express by itself —
// `lock.signal` (an AbortSignal aborted when the lock is lost) and the `'lost'` event.
'use strict'

const { EventEmitter } = require('node:events')
const native = require('../native.js')
const { toClient } = require('./client.js')

// Locks made by the native part (LockManager results) are wrapped through this key.
const WRAP = Symbol('txcoord.wrap')

// `lock.signal` → its lock: whoever still holds a lock's signal keeps the lock (and its
// renewal) alive, as holding the lock does. Weak both ways: no entry outlives its signal.
const signalLocks = new WeakMap()

// A lock the native LockManager handed over, wrapped (null stays null).
function wrapLock(nativeLock) {
  return nativeLock === null ? null : new DistributedLock(WRAP, nativeLock)
}

/**
 * The seed's `DistributedLock`: a lock on one key (after the client's key prefix), renewed
 * every ttl/3 while held, with a fencing token, `signal` and a `'lost'` event.
 */
class DistributedLock extends EventEmitter {
  #n
  // Holds handed over by a LockManager, which keeps the native lock (and its renewal) alive by
  // itself; false once this wrapper acquired a hold of its own.
  #managed = false
  #ctl = undefined
  #abortedFor = undefined
  #armedFor = undefined
  #lostFor = undefined
  #lostError = undefined

  constructor(redis, lockKey, ttl, options) {
    super()
    if (redis === WRAP) {
      this.#n = lockKey
      this.#managed = true
      return
    }
    this.#n = native.DistributedLock.create(toClient(redis), lockKey, ttl, options)
  }

  /** One attempt; `true` if the lock is now held. */
  acquire() {
    const p = this.#n.acquire()
    const watched = this.#ctl !== undefined || this.listenerCount('lost') > 0
    if (!watched && !this.#managed) return p
    return p.then((ok) => {
      if (ok) {
        this.#managed = false
        if (watched) {
          if (this.#ctl !== undefined && this.#ctl.signal.aborted) this.#newController()
          this.#arm()
        }
      }
      return ok
    })
  }

  /** Stops renewal and releases; never fails for a lock that was lost. */
  release() {
    return this.#n.release()
  }

  /** `await using lock = ...` (TypeScript 5.2+, or a runtime with explicit resource management) releases. */
  [Symbol.asyncDispose]() {
    return this.release()
  }

  /** Sets the expiry to `additionalTime` ms (default: ttl) from now; `false` if not held. */
  extend(additionalTime) {
    return this.#n.extend(additionalTime)
  }

  /** An AbortSignal aborted when this hold is lost; `reason` has `code` and `reason`. */
  get signal() {
    const n = this.#n
    const token = n.fencingToken
    let ctl = this.#ctl
    if (ctl === undefined || (ctl.signal.aborted && this.#abortedFor !== token)) {
      ctl = this.#newController()
      const lost = n.lossError // the current hold may be lost already
      if (lost !== null) {
        this.#abortedFor = token
        ctl.abort(this.#lossOf(token, lost))
      }
    }
    this.#arm()
    return ctl.signal
  }

  #newController() {
    const ctl = (this.#ctl = new AbortController())
    signalLocks.set(ctl.signal, this)
    return ctl
  }

  // The one error object reported for the loss of the hold with fencing token `token`.
  #lossOf(token, fresh) {
    if (this.#lostFor !== token) {
      this.#lostFor = token
      this.#lostError = fresh
    }
    return this.#lostError
  }

  // Watches the current hold (once per hold) and reports its loss.
  //
  // The native `lost()` promise stays pending, rooted by the native side, until the hold ends,
  // and so does whatever its handler holds. A hold this wrapper acquired ends when the wrapper
  // is collected (the native lock's finaliser releases it), so for such a hold the handler
  // reaches the wrapper only through a WeakRef and never holds the native lock: a lock the
  // program dropped (with its signal) is collected instead of being renewed forever. A hold
  // handed over by a LockManager lives on in the manager, so the handler keeps the wrapper
  // (its listeners and signal) for as long as that hold lasts.
  #arm() {
    const n = this.#n
    const token = n.fencingToken
    if (this.#armedFor === token) return
    this.#armedFor = token
    DistributedLock.#watch(n.lost(), this.#managed ? this : new WeakRef(this), token)
  }

  // A static method, so that the handler's scope holds nothing but its arguments.
  static #watch(lost, target, token) {
    lost.then((fresh) => {
      const lock = target instanceof WeakRef ? target.deref() : target
      if (lock !== undefined) lock.#report(fresh, token)
    })
  }

  #report(fresh, token) {
    if (fresh === null || this.#n.fencingToken !== token) return
    const err = this.#lossOf(token, fresh)
    const ctl = this.#ctl
    if (ctl !== undefined && !ctl.signal.aborted) {
      this.#abortedFor = token
      ctl.abort(err)
    }
    this.emit('lost', err)
  }

  on(event, listener) {
    super.on(event, listener)
    if (event === 'lost') this.#arm()
    return this
  }

  addListener(event, listener) {
    return this.on(event, listener)
  }

  once(event, listener) {
    super.once(event, listener)
    if (event === 'lost') this.#arm()
    return this
  }

  prependListener(event, listener) {
    super.prependListener(event, listener)
    if (event === 'lost') this.#arm()
    return this
  }

  prependOnceListener(event, listener) {
    super.prependOnceListener(event, listener)
    if (event === 'lost') this.#arm()
    return this
  }

  get isHeld() {
    return this.#n.isHeld
  }

  get remainingValidity() {
    return this.#n.remainingValidity
  }

  get fencingToken() {
    return this.#n.fencingToken
  }

  get holdCount() {
    return this.#n.holdCount
  }

  get key() {
    return this.#n.key
  }

  get ttl() {
    return this.#n.ttl
  }

  get ownerId() {
    return this.#n.ownerId
  }

  get priority() {
    return this.#n.priority
  }

  get status() {
    return this.#n.status
  }

  get lossReason() {
    return this.#n.lossReason
  }
}

module.exports = { DistributedLock, wrapLock }
