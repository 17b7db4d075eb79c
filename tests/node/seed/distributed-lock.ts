// SPDX-License-Identifier: MIT OR Apache-2.0
// The seed's original distributed-lock.ts (seed/000_8dbcbe7f41eb163d.txt), verbatim below the
// imports, which the seed leaves implicit. Used by the tests as the reference implementation:
// wire compatibility (a lock held by this code excludes txcoord and the reverse) and the
// benchmark baseline.
import * as crypto from 'node:crypto'
import type { Redis } from 'ioredis5'

// shared/infrastructure/distributed-lock.ts
export class DistributedLock {
  private lockId: string;
  private renewalInterval?: NodeJS.Timeout;
  
  constructor(
    private redis: Redis,
    private lockKey: string,
    private ttl: number = 30000 // 30秒
  ) {
    this.lockId = crypto.randomUUID();
  }

  async acquire(): Promise<boolean> {
    const result = await this.redis.set(
      this.lockKey,
      this.lockId,
      'PX', // TTLをミリ秒で設定
      this.ttl,
      'NX' // キーが存在しない場合のみ設定
    );

    if (result === 'OK') {
      // ロック取得成功
      this.scheduleRenewal();
      return true;
    }

    return false;
  }

  async release(): Promise<void> {
    if (this.renewalInterval) {
      clearInterval(this.renewalInterval);
      this.renewalInterval = undefined;
    }

    const script = `
      if redis.call("get", KEYS[1]) == ARGV[1] then
        return redis.call("del", KEYS[1])
      else
        return 0
      end
    `;

    await this.redis.eval(script, 1, this.lockKey, this.lockId);
  }

  async extend(additionalTime: number = this.ttl): Promise<boolean> {
    const script = `
      if redis.call("get", KEYS[1]) == ARGV[1] then
        return redis.call("pexpire", KEYS[1], ARGV[2])
      else
        return 0
      end
    `;

    const result = await this.redis.eval(
      script, 
      1, 
      this.lockKey, 
      this.lockId, 
      additionalTime
    );
    
    return result === 1;
  }

  private scheduleRenewal(): void {
    const renewInterval = this.ttl / 3; // TTLの1/3間隔で更新

    this.renewalInterval = setInterval(async () => {
      try {
        const extended = await this.extend();
        
        if (!extended) {
          // ロックが失われた
          console.warn(`Lock lost for key: ${this.lockKey}`);
          if (this.renewalInterval) {
            clearInterval(this.renewalInterval);
            this.renewalInterval = undefined;
          }
        }
      } catch (error) {
        console.error('Lock renewal failed:', error);
        if (this.renewalInterval) {
          clearInterval(this.renewalInterval);
          this.renewalInterval = undefined;
        }
      }
    }, renewInterval);
  }
}

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
