// SPDX-License-Identifier: MIT OR Apache-2.0
// How the seed's services call its classes, written against txcoord's: the same constructors,
// methods, defaults and return types (`Promise<DistributedLock | null>`, `Promise<boolean>`,
// `Promise<void>`), on an ioredis instance. Type-checked with tsc, run by seed.test.js.
import type { Redis } from 'ioredis5'
import { DistributedLock, LockManager } from 'txcoord'

export interface UsageResult {
  token: number | null
  extended: boolean
  extendedBy: boolean
  second: DistributedLock | null
  direct: boolean
  directAgain: boolean
}

export async function seedUsage(redis: Redis, resource: string): Promise<UsageResult> {
  const lockManager = new LockManager(redis)
  const lock: DistributedLock | null = await lockManager.acquireLock(resource, 30000, 10000)
  if (!lock) throw new Error(`${resource} is busy`)
  const token = lock.fencingToken
  const extended: boolean = await lock.extend()
  const extendedBy: boolean = await lock.extend(15000)
  const other = new LockManager(redis)
  const second = await other.acquireLock(resource, 30000, 0)
  await lockManager.releaseLock(resource)

  const direct = new DistributedLock(redis, `lock:${resource}:direct`)
  const ok: boolean = await direct.acquire()
  const again = await new DistributedLock(redis, `lock:${resource}:direct`, 30000).acquire()
  const released: Promise<void> = direct.release()
  await released
  await lockManager.releaseAllLocks()
  await other.releaseAllLocks()
  return { token, extended, extendedBy, second, direct: ok, directAgain: again }
}
