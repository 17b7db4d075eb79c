// SPDX-License-Identifier: MIT OR Apache-2.0
// Sagas: `SagaStatus`, the built-in `RedisSagaRepository`, and the adapter through which the
// core calls a user's own repository object.
'use strict'

const native = require('../native.js')
const { toClient } = require('./client.js')
const { weakTarget } = require('./callbacks.js')

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

module.exports = { SagaStatus, RedisSagaRepository, nativeRepository }
