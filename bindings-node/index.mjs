// SPDX-License-Identifier: MIT OR Apache-2.0
// ESM entry point: the same classes and functions as the CommonJS one (one native addon per
// process).
import txcoord from './index.js'

export const {
  Client,
  DistributedLock,
  LockManager,
  setLogger,
  SagaStatus,
  RedisSagaRepository,
  SagaDeadlockDetector,
  LeaderElection,
} = txcoord
export default txcoord
