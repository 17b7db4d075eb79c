// SPDX-License-Identifier: MIT OR Apache-2.0
// The seed's distributed-lock.ts call sites (seed/000_8dbcbe7f41eb163d.txt), unchanged except
// for the imports: its `LockManager` is kept verbatim and now builds txcoord's
// `DistributedLock` (`new DistributedLock(this.redis, lockKey, ttl)`, `acquire()`,
// `release()`) on an ioredis instance. Type-checked with tsc and run by seed.test.js against
// ioredis 5 and 6, with and without keyPrefix.
import type { Redis } from 'ioredis5'
import { DistributedLock } from 'txcoord'

// ロックマネージャー
export class LockManager {
  private locks = new Map<string, DistributedLock>();

  constructor(private redis: Redis) {}

  async acquireLock(
    resource: string, 
    ttl: number = 30000,
    timeout: number = 10000
  ): Promise<DistributedLock | null> {
    const lockKey = `lock:${resource}`;
    const lock = new DistributedLock(this.redis, lockKey, ttl);
    
    const startTime = Date.now();
    
    while (Date.now() - startTime < timeout) {
      if (await lock.acquire()) {
        this.locks.set(resource, lock);
        return lock;
      }
      
      // 指数バックオフで再試行
      const backoff = Math.min(1000, 100 * Math.pow(2, Math.random()));
      await new Promise(resolve => setTimeout(resolve, backoff));
    }
    
    return null; // タイムアウト
  }

  async releaseLock(resource: string): Promise<void> {
    const lock = this.locks.get(resource);
    if (lock) {
      await lock.release();
      this.locks.delete(resource);
    }
  }

  async releaseAllLocks(): Promise<void> {
    const releasePromises = Array.from(this.locks.entries()).map(
      async ([resource, lock]) => {
        try {
          await lock.release();
        } catch (error) {
          console.error(`Failed to release lock for ${resource}:`, error);
        }
      }
    );
    
    await Promise.all(releasePromises);
    this.locks.clear();
  }
}
