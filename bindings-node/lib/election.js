// SPDX-License-Identifier: MIT OR Apache-2.0
// `LeaderElection`: the native candidate, plus its `'elected'`/`'revoked'` events and `signal`.
'use strict'

const { EventEmitter } = require('node:events')
const native = require('../native.js')
const { toClient } = require('./client.js')
const { signalOf, cancellable } = require('./cancel.js')

// Error codes by the core's kind name, for the errors this layer raises itself.
const ERROR_CODES = native.errorCodes()

// `election.signal` → its election, so that whoever holds the signal keeps the election (and
// the watch that aborts the signal) alive.
const signalElections = new WeakMap()

function leadershipEnded(term) {
  const e = new Error(
    term === null ? 'txcoord: this candidate does not lead' : `txcoord: the leadership of term ${term} ended`,
  )
  e.code = ERROR_CODES.LockLost
  e.term = term
  return e
}

/**
 * A candidate in the leader election `name`: `campaign()` until it leads, `resign()`; `'elected'`
 * (term) and `'revoked'` (term) events, and `signal`, aborted when the current leadership ends.
 */
class LeaderElection extends EventEmitter {
  #n
  // The term the events last reported as leading, or null.
  #leading = null
  #ctl = undefined
  #ctlTerm = null

  constructor(redis, name, options) {
    super()
    this.#n = new native.LeaderElection(toClient(redis), name, options)
    LeaderElection.#watch(this.#n.nextChange(null), new WeakRef(this))
  }

  // Follows the native leadership changes for as long as the election is referenced: each
  // change wakes it, and it reconciles with the native state (so a change in between is never
  // missed). The handler reaches the election through a WeakRef, and the pending native
  // promise holds no reference to it (so an election the program dropped is collected).
  static #watch(next, ref) {
    next.then(
      (seen) => {
        if (seen === undefined) return
        const election = ref.deref()
        if (election === undefined) return
        election.#reconcile()
        LeaderElection.#watch(election.#n.nextChange(election.#leading), ref)
      },
      () => {},
    )
  }

  // Brings the events and the signal in line with the native state.
  #reconcile() {
    const now = this.#n.term
    if (this.#ctl !== undefined && this.#ctlTerm !== now && !this.#ctl.signal.aborted) {
      this.#ctl.abort(leadershipEnded(this.#ctlTerm))
    }
    const was = this.#leading
    if (now === was) return
    this.#leading = now
    if (was !== null) this.emit('revoked', was)
    if (now !== null) this.emit('elected', now)
  }

  /**
   * Waits until this candidate leads (`options.timeout` ms, default without limit; an
   * `options.signal` cancels the wait): `true` once it does, `false` on timeout.
   */
  campaign(options) {
    let signal
    try {
      signal = signalOf(options)
    } catch (e) {
      return Promise.reject(e)
    }
    return cancellable(signal, false, (token) => this.#n.campaign(options, token)).then((ok) => {
      this.#reconcile()
      return ok
    })
  }

  /** Gives up the leadership (if this candidate leads). */
  resign() {
    return this.#n.resign().then(() => {
      this.#reconcile()
    })
  }

  /** `await using election = ...` resigns at the end of the scope. */
  [Symbol.asyncDispose]() {
    return this.resign()
  }

  /** An AbortSignal aborted when the current leadership ends (already aborted when not leading). */
  get signal() {
    const term = this.#n.term
    if (term === null) return AbortSignal.abort(leadershipEnded(null))
    if (this.#ctl === undefined || this.#ctlTerm !== term) {
      this.#ctl = new AbortController()
      this.#ctlTerm = term
      signalElections.set(this.#ctl.signal, this)
    }
    return this.#ctl.signal
  }

  /** Whether this candidate leads now. */
  get isLeader() {
    return this.#n.isLeader
  }

  /** The term of this candidate's leadership, or `null`. */
  get term() {
    return this.#n.term
  }

  /** This candidate's id. */
  get candidateId() {
    return this.#n.candidateId
  }

  /** Who leads, as any observer reads it: `{ candidateId, term, remainingMs }`, or `null`. */
  leader() {
    return this.#n.leader()
  }
}

module.exports = { LeaderElection }
