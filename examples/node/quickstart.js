// SPDX-License-Identifier: MIT OR Apache-2.0
// txcoord quickstart (Node, CommonJS). Run: REDIS_URL=redis://127.0.0.1:6379 node examples/node/quickstart.js
const { LockManager } = require('txcoord')

async function main() {
  const manager = new LockManager(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379')

  // The seed's API: the lock, or null after `timeout` ms (here 30 s ttl, 10 s timeout).
  const lock = await manager.acquireLock('order:42', 30000, 10000)
  if (!lock) throw new Error('order:42 is busy')
  try {
    console.log(`holding ${lock.key}, fencing token ${lock.fencingToken}`)
    lock.signal.throwIfAborted() // throws if the lock was lost meanwhile
  } finally {
    await manager.releaseLock('order:42')
  }

  // The scoped form releases the lock however the function ends.
  const total = await manager.using('order:42', async (lock) => (lock.isHeld ? 42 : 0))
  console.log(`total ${total}`)
}

main().catch((err) => {
  console.error(err)
  process.exitCode = 1
})
