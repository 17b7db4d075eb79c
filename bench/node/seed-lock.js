// SPDX-License-Identifier: MIT OR Apache-2.0
// The seed's own DistributedLock and LockManager (seed/000_8dbcbe7f41eb163d.txt,
// shared/infrastructure/distributed-lock.ts; the same code as tests/node/seed/distributed-lock.ts),
// transcribed to plain JavaScript for the benchmark: type annotations removed, nothing else
// changed (the same commands, the same timers, the same backoff). `redis` is an ioredis client.
'use strict'

const crypto = require('node:crypto')

class DistributedLock {
  constructor(redis, lockKey, ttl = 30000) {
    this.redis = redis
    this.lockKey = lockKey
    this.ttl = ttl
    this.renewalInterval = undefined
    this.lockId = crypto.randomUUID()
  }

  async acquire() {
    const result = await this.redis.set(this.lockKey, this.lockId, 'PX', this.ttl, 'NX')

    if (result === 'OK') {
      this.scheduleRenewal()
      return true
    }

    return false
  }

  async release() {
    if (this.renewalInterval) {
      clearInterval(this.renewalInterval)
      this.renewalInterval = undefined
    }

    const script = `
      if redis.call("get", KEYS[1]) == ARGV[1] then
        return redis.call("del", KEYS[1])
      else
        return 0
      end
    `

    await this.redis.eval(script, 1, this.lockKey, this.lockId)
  }

  async extend(additionalTime = this.ttl) {
    const script = `
      if redis.call("get", KEYS[1]) == ARGV[1] then
        return redis.call("pexpire", KEYS[1], ARGV[2])
      else
        return 0
      end
    `

    const result = await this.redis.eval(script, 1, this.lockKey, this.lockId, additionalTime)

    return result === 1
  }

  scheduleRenewal() {
    const renewInterval = this.ttl / 3

    this.renewalInterval = setInterval(async () => {
      try {
        const extended = await this.extend()

        if (!extended) {
          console.warn(`Lock lost for key: ${this.lockKey}`)
          if (this.renewalInterval) {
            clearInterval(this.renewalInterval)
            this.renewalInterval = undefined
          }
        }
      } catch (error) {
        console.error('Lock renewal failed:', error)
        if (this.renewalInterval) {
          clearInterval(this.renewalInterval)
          this.renewalInterval = undefined
        }
      }
    }, renewInterval)
  }
}

class LockManager {
  constructor(redis) {
    this.redis = redis
    this.locks = new Map()
  }

  async acquireLock(resource, ttl = 30000, timeout = 10000) {
    const lockKey = `lock:${resource}`
    const lock = new DistributedLock(this.redis, lockKey, ttl)

    const startTime = Date.now()

    while (Date.now() - startTime < timeout) {
      if (await lock.acquire()) {
        this.locks.set(resource, lock)
        return lock
      }

      // exponential backoff, as the seed has it
      const backoff = Math.min(1000, 100 * Math.pow(2, Math.random()))
      await new Promise((resolve) => setTimeout(resolve, backoff))
    }

    return null
  }

  async releaseLock(resource) {
    const lock = this.locks.get(resource)
    if (lock) {
      await lock.release()
      this.locks.delete(resource)
    }
  }

  async releaseAllLocks() {
    const releasePromises = Array.from(this.locks.entries()).map(async ([resource, lock]) => {
      try {
        await lock.release()
      } catch (error) {
        console.error(`Failed to release lock for ${resource}:`, error)
      }
    })

    await Promise.all(releasePromises)
    this.locks.clear()
  }
}

module.exports = { DistributedLock, LockManager }
