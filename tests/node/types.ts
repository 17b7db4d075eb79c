// SPDX-License-Identifier: MIT OR Apache-2.0
// Compile-time checks of index.d.ts (tsc --noEmit fails if an expectation breaks).
import { Client, DistributedLock, LockManager, setLogger } from 'txcoord'
import type { ClientStats, LockLostError, Logger, LogLevel, LossReason, TxcoordError } from 'txcoord'
import { Redis as Redis5 } from 'ioredis5'
import { Redis as Redis6 } from 'ioredis6'

export async function typeChecks(url: string): Promise<void> {
  const client = new Client(url, { keyPrefix: 'app:', clientName: 'svc', connectTimeout: 500 })
  const stats: ClientStats = client.stats()
  const n: number = stats.wakeNotified + stats.wakeTimer
  void n
  const fromUrl = new LockManager(url, { ownerId: 'saga-1', priority: 3, fair: true })
  const fromClient = new LockManager(client)
  const fromIoredis5 = new LockManager(new Redis5({ lazyConnect: true }))
  const fromIoredis6 = new LockManager(new Redis6({ lazyConnect: true }))
  void fromClient
  void fromIoredis5
  void fromIoredis6

  const ac = new AbortController()
  const lock = await fromUrl.acquireLock('order:1', 1000, 0, { signal: ac.signal, ownerId: 'x', fair: false })
  if (lock !== null) {
    const token: number | null = lock.fencingToken
    const held: boolean = lock.isHeld
    const left: number = lock.remainingValidity
    const signal: AbortSignal = lock.signal
    const reason: LossReason | null = lock.lossReason
    void [token, held, left, signal, reason]
    lock.on('lost', (err: LockLostError) => {
      const r: 'taken' | 'expired' | 'renewal-failed' | 'deadline' = err.reason
      const code: 'TXCOORD_LOCK_LOST' = err.code
      void [r, code]
    })
    await lock.release()
  }
  const value: number = await fromUrl.using('order:2', async (l) => l.fencingToken ?? 0, { ttl: 1000, timeout: 10 })
  void value
  const direct = new DistributedLock(client, 'lock:k', 1000, { ownerId: 'a' })
  const ok: boolean = await direct.acquire()
  void ok
  try {
    await fromUrl.acquireLock('x')
  } catch (e) {
    const err = e as TxcoordError
    const arg: string | undefined = err.argument
    void arg
  }

  // @ts-expect-error resource must be a string
  await fromUrl.acquireLock(42)
  // @ts-expect-error ttl is a number of milliseconds
  await fromUrl.acquireLock('x', '1000')
  // @ts-expect-error unknown option
  await fromUrl.acquireLock('x', 1, 1, { owner: 'x' })
  // @ts-expect-error fencingToken may be null
  const strict: number = direct.fencingToken
  void strict
  // @ts-expect-error redis must be a URL, a Client or an ioredis instance
  new LockManager(6379)
  // @ts-expect-error acquire takes no arguments
  await direct.acquire(1000)

  setLogger(console)
  setLogger(console, { level: 'debug' })
  setLogger({ warn: (m: string) => void m, error: (m: string) => void m })
  setLogger(null)
  const custom: Logger = { warn() {}, error() {}, debug(message: string) { void message } }
  const level: LogLevel = 'silent'
  setLogger(custom, { level })
  // @ts-expect-error a logger needs warn() and error()
  setLogger({ info() {} })
  // @ts-expect-error unknown level
  setLogger(console, { level: 'verbose' })
}
