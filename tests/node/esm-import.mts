// SPDX-License-Identifier: MIT OR Apache-2.0
// ESM: `import { LockManager } from 'txcoord'` type-checks (tsc) and runs (process.test.js).
import { Client, DistributedLock, LockManager, DEFAULT_TTL_MS } from 'txcoord'
import txcoord from 'txcoord'

const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
const manager = new LockManager(url)
const lock = await manager.acquireLock('esm:1', 5000, 1000)
console.log(
  JSON.stringify({
    held: lock?.isHeld ?? false,
    isLock: lock instanceof DistributedLock,
    sameClass: txcoord.LockManager === LockManager,
    client: typeof Client,
    defaultTtl: DEFAULT_TTL_MS,
  }),
)
await manager.releaseAllLocks()
