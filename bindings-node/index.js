// SPDX-License-Identifier: MIT OR Apache-2.0
//
// txcoord for Node.js: the seed's `DistributedLock`, `LockManager` and `SagaDeadlockDetector`, a
// saga repository and leader election, backed by the Rust core.
//
// This file is the thin layer N-API cannot express by itself:
//   - `redis` may be a URL, a `Client` or an ioredis instance (its settings are read here; what
//     is supported, and how a URL becomes a connection, is the core's decision: `clientFor`);
//   - `lock.signal` (an AbortSignal aborted when the lock is lost) and the `'lost'` event;
//   - `options.signal` (an AbortSignal) cancelling a wait;
//   - where the core's log records go: `setLogger(logger)`, or process warnings;
//   - a user's own saga repository, logger and metrics objects, whose methods the core calls;
//   - the election's `'elected'`/`'revoked'` events and `signal`.
// Every argument is passed to the native part as it came: the core validates it. The few this
// layer judges by identity (an AbortSignal, a function, a logger) are refused with errors the
// native part builds (`wrongType`); codes, messages and constants all come from the core.
'use strict'

const { EventEmitter } = require('node:events')
const native = require('./native.js')

// Error codes by the core's kind name, for the errors this layer raises itself.
const ERROR_CODES = native.errorCodes()

const Client = native.Client

// Locks made by the native part (LockManager results) are wrapped through this key.
const WRAP = Symbol('txcoord.wrap')

// `lock.signal` → its lock: whoever still holds a lock's signal keeps the lock (and its
// renewal) alive, as holding the lock does. Weak both ways: no entry outlives its signal.
const signalLocks = new WeakMap()

// One native client per ioredis instance (an identity question: the instance's own connection
// is shared by its users). URL strings are the core's business: one client per URL while in
// use (`clientFor`).
const ioredisClients = new WeakMap()

function looksLikeIoredis(value) {
  return (
    value !== null &&
    typeof value === 'object' &&
    typeof value.options === 'object' &&
    value.options !== null &&
    (typeof value.sendCommand === 'function' || typeof value.duplicate === 'function')
  )
}

// What an ioredis instance says about where it connects, for the core to judge.
function ioredisSettings(redis) {
  const o = redis.options
  let topology = 'standalone'
  if (redis.isCluster === true || (redis.constructor && redis.constructor.name === 'Cluster')) topology = 'cluster'
  else if (Array.isArray(o.sentinels) && o.sentinels.length > 0) topology = 'sentinel'
  else if (o.path) topology = 'unix'
  const tls = o.tls !== undefined && o.tls !== null && o.tls !== false
  const material = tls ? ['ca', 'cert', 'key', 'pfx'].find((k) => o.tls[k] !== undefined) : undefined
  return {
    className: redis.constructor ? redis.constructor.name : undefined,
    topology,
    host: o.host,
    port: o.port,
    db: o.db,
    username: o.username || undefined,
    password: o.password || undefined,
    tls,
    tlsInsecure: tls && o.tls.rejectUnauthorized === false,
    tlsMaterial: material === undefined ? undefined : `tls.${material}`,
    keyPrefix: typeof o.keyPrefix === 'string' ? o.keyPrefix : undefined,
  }
}

// The native Client for what the seed calls `redis`.
function toClient(redis) {
  if (redis instanceof Client) return redis
  if (looksLikeIoredis(redis)) {
    let client = ioredisClients.get(redis)
    if (client === undefined || client.isClosed) {
      client = native.clientFor(redis, ioredisSettings(redis))
      ioredisClients.set(redis, client)
    }
    return client
  }
  return native.clientFor(redis)
}

function wrapLock(nativeLock) {
  return nativeLock === null ? null : new DistributedLock(WRAP, nativeLock)
}

// `options.signal`, checked without throwing synchronously.
function signalOf(options) {
  if (options === undefined || options === null || typeof options !== 'object') return undefined
  const signal = options.signal
  if (signal === undefined) return undefined
  if (!(signal instanceof AbortSignal)) throw native.wrongType('signal', 'an AbortSignal', signal)
  return signal
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

// -- cancellation ----------------------------------------------------------------------------

// Runs `start(token)` with a CancelToken tied to `signal` (none without one). When the signal
// aborted the wait, which then resolved with `nothing`, rejects with `signal.reason` instead.
function cancellable(signal, nothing, start) {
  if (signal === undefined) return start(undefined)
  if (signal.aborted) return Promise.reject(signal.reason)
  const token = new native.CancelToken()
  const onAbort = () => token.cancel()
  signal.addEventListener('abort', onAbort, { once: true })
  return start(token).then(
    (value) => {
      signal.removeEventListener('abort', onAbort)
      if (value === nothing && token.cancelled) throw signal.reason
      return value
    },
    (e) => {
      signal.removeEventListener('abort', onAbort)
      throw e
    },
  )
}

// -- sagas -----------------------------------------------------------------------------------

/** The saga statuses (`SagaStatus.FAILED === 'FAILED'`), from the core's list. */
const SagaStatus = Object.freeze(Object.fromEntries(native.sagaStatuses().map((s) => [s, s])))

const REPOSITORY_METHODS = ['findById', 'save', 'findActiveSagas', 'findStuckSagas', 'getStatistics']

// RedisSagaRepository → its native repository.
const redisRepositories = new WeakMap()

/**
 * The built-in saga repository: records in Redis with indexes and running totals (PROTOCOL.md,
 * section 8), so `findActiveSagas`, `findStuckSagas` and `getStatistics` do not scan.
 */
class RedisSagaRepository {
  #n

  /**
   * `options`: `stuckAfter` (saga type → ms without an update before a saga of that type is
   * stuck; the seed's limits by default), `defaultStuckAfter` (ms, other types; 300000),
   * `finishedRetention` (ms a finished saga's record is kept, `null` for ever; 7 days).
   */
  constructor(redis, options) {
    this.#n = native.SagaRepository.redis(toClient(redis), options)
    redisRepositories.set(this, this.#n)
  }

  /** The record, or `null`. */
  findById(id) {
    return this.#n.findById(id)
  }

  /**
   * The seed's `save(saga)`; with `options` (`expectedVersion`, `term`, `guardFinished`) a
   * conditional save. Resolves to whether the record was written.
   */
  save(saga, options) {
    return this.#n.save(saga, options)
  }

  findActiveSagas() {
    return this.#n.findActiveSagas()
  }

  findStuckSagas() {
    return this.#n.findStuckSagas()
  }

  /** `{ active, completed, failed, compensated, averageDuration }` (ms). */
  getStatistics() {
    return this.#n.getStatistics()
  }
}

// The native repository for what the seed calls `sagaRepository`: the built-in one, or an
// adapter calling the methods of the user's own object. The adapter's functions are held by the
// native side for as long as the detector lives, so they reach the object only through a
// WeakRef: the detector's wrapper holds it (a repository that holds its detector is collected
// with it). A `save` declared with two parameters is the conditional form: it receives the
// condition and resolves to whether it wrote; one with fewer is the seed's `save(saga)`.
function nativeRepository(repo) {
  const own = redisRepositories.get(repo)
  if (own !== undefined) return own
  if (repo === null || (typeof repo !== 'object' && typeof repo !== 'function')) {
    throw native.wrongType('sagaRepository', `a saga repository (an object with ${REPOSITORY_METHODS.join('(), ')}())`, repo)
  }
  for (const m of REPOSITORY_METHODS) {
    if (typeof repo[m] !== 'function') {
      throw native.wrongType('sagaRepository', `an object with a ${m}() method, as the seed's SagaRepository`, repo)
    }
  }
  const conditional = repo.save.length >= 2
  const target = weakTarget(repo, 'saga repository')
  return native.SagaRepository.foreign(
    async (id) => target().findById(id),
    async (saga, options) => {
      if (options !== undefined && conditional) return target().save(saga, options)
      await target().save(saga)
      return undefined
    },
    async () => target().findActiveSagas(),
    async () => target().findStuckSagas(),
    async () => target().getStatistics(),
  )
}

// `() => value` through a WeakRef (see nativeRepository).
function weakTarget(value, what) {
  const ref = new WeakRef(value)
  return () => {
    const v = ref.deref()
    if (v === undefined) throw new Error(`txcoord: the ${what} was garbage-collected`)
    return v
  }
}

// -- deadlocks -------------------------------------------------------------------------------

// A call into the user's logger or metrics that threw: reported, never thrown into txcoord.
function callbackFailed(what, e) {
  native.warn(`txcoord: ${what} threw: ${e && e.stack ? e.stack : e}`)
}

// `log(level, message, fieldsJson)` for the native detector: the seed's
// `logger.warn('Deadlock detected', { cycle })`. Weak, as the repository's functions.
function logFunction(logger) {
  if (logger === undefined || logger === null) return null
  if (typeof logger !== 'object' && typeof logger !== 'function') {
    throw native.wrongType('logger', 'an object with warn() and info() methods (console works) or null', logger)
  }
  for (const m of ['warn', 'info']) {
    if (typeof logger[m] !== 'function') throw native.wrongType('logger', `an object with a ${m}() method (console has one)`, logger)
  }
  const target = weakTarget(logger, 'logger')
  return (level, message, fields) => {
    try {
      target()[level](message, JSON.parse(fields))
    } catch (e) {
      callbackFailed(`the logger's ${level}()`, e)
    }
  }
}

function metricsFunction(metrics) {
  if (metrics === undefined || metrics === null) return null
  if (typeof metrics.recordDeadlock !== 'function') {
    throw native.wrongType('metrics', 'an object with a recordDeadlock(resolutionMethod) method (the seed\'s TransactionMetricsCollector)', metrics)
  }
  const target = weakTarget(metrics, 'metrics')
  return (method) => {
    try {
      target().recordDeadlock(method)
    } catch (e) {
      callbackFailed('metrics.recordDeadlock()', e)
    }
  }
}

/**
 * The seed's `SagaDeadlockDetector(sagaRepository, logger)`, on the lock registry (without a
 * logger, its records go where txcoord's do: see `setLogger`). `options`:
 * `redis` (the Redis of the locks: required when `sagaRepository` is not a
 * RedisSagaRepository), `metrics` (anything with `recordDeadlock(resolutionMethod)`).
 */
class SagaDeadlockDetector {
  #n
  // The user's objects the native side calls (through WeakRefs): alive as long as the detector.
  #callees

  constructor(sagaRepository, logger, options) {
    if (options !== undefined && options !== null && typeof options !== 'object') {
      throw native.wrongType('options', 'an object', options)
    }
    const o = options || {}
    const redis = o.redis === undefined || o.redis === null ? null : toClient(o.redis)
    this.#n = new native.SagaDeadlockDetector(
      nativeRepository(sagaRepository),
      logFunction(logger),
      redis,
      metricsFunction(o.metrics),
    )
    this.#callees = [sagaRepository, logger, o.metrics]
  }

  // A call's promise keeps the user's objects alive until it settles, even if the detector
  // itself is dropped meanwhile.
  #keeping(promise) {
    const callees = this.#callees
    return promise.finally(() => callees)
  }

  /** `{ hasDeadlock, cycles, affectedSagas, explained }`; changes nothing. */
  detectDeadlock() {
    return this.#keeping(this.#n.detectDeadlock())
  }

  /**
   * Breaks the deadlocks among the sagas of `cycles` (the seed's arrays of saga ids, explained
   * cycles, or `detectDeadlock()`'s result); resolves to the cycles broken.
   */
  resolveDeadlock(cycles) {
    return this.#keeping(this.#n.resolveDeadlock(cycles))
  }

  /** The wait-for graph: `{ nodes, edges }`. */
  waitForGraph() {
    return this.#n.waitForGraph()
  }
}

// -- leader election -------------------------------------------------------------------------

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

// -- logging ---------------------------------------------------------------------------------

let logger = null

// The default destination: warnings and errors as process warnings (each record carries its
// code), which Node prints unless silenced (`--disable-warning=TxcoordWarning`,
// `--no-warnings`) and `process.on('warning')` observes.
function emitWarning(record, detail) {
  if (record.code) process.emitWarning(record.message, { type: 'TxcoordWarning', code: record.code, detail })
}

// Called by the native part, on this thread, with the records queued since its last call.
function deliver(records) {
  const target = logger
  for (const record of records) {
    if (target === null) {
      emitWarning(record)
      continue
    }
    const method = target[record.level]
    if (typeof method !== 'function') continue
    try {
      method.call(target, record.message)
    } catch (e) {
      emitWarning(record, `the logger's ${record.level}() threw: ${e && e.stack ? e.stack : e}`)
    }
  }
}

native.setLogSink(deliver)

/**
 * Where txcoord's log records go (a lock lost is a `warn` record, a failed release in
 * `releaseAllLocks` an `error`). `logger`: anything with `error` and `warn` methods, and
 * optionally `info` and `debug` (console, pino, winston, ...), each called with one string; or
 * `null` for the default: warnings and errors as process warnings (`process.emitWarning`,
 * type `TxcoordWarning`, code `TXCOORD_WARNING` or `TXCOORD_ERROR`). `options.level`: the
 * most verbose level delivered, `'silent'`, `'error'`, `'warn'`, `'info'` or `'debug'`
 * (default `'info'` with a logger, `'warn'` without; process warnings are never more verbose
 * than `'warn'`).
 */
function setLogger(newLogger, options) {
  if (newLogger === undefined) newLogger = null
  if (newLogger !== null) {
    if (typeof newLogger !== 'object' && typeof newLogger !== 'function') {
      throw native.wrongType('logger', 'an object with error() and warn() methods, or null', newLogger)
    }
    for (const m of ['error', 'warn']) {
      if (typeof newLogger[m] !== 'function') {
        throw native.wrongType('logger', `an object with an ${m}() method (console, pino and winston loggers have one)`, newLogger)
      }
    }
  }
  if (options !== undefined && options !== null && typeof options !== 'object') {
    throw native.wrongType('options', 'an object', options)
  }
  native.setLogLevel(options ? options.level : undefined, newLogger !== null)
  logger = newLogger
}

// The core's constants (`PROTOCOL_VERSION`, `DEFAULT_TTL_MS`, `MAX_MS`, ...), by the names the
// Python package uses too.
const constants = native.constants()


module.exports = {
  ...constants,
  Client,
  DistributedLock,
  LockManager,
  setLogger,
  SagaStatus,
  RedisSagaRepository,
  SagaDeadlockDetector,
  LeaderElection,
}
