// SPDX-License-Identifier: MIT OR Apache-2.0
// ESM entry point: the same classes, functions and constants as the CommonJS one (one native
// addon per process). The constants are the core's (tests/node/constants.test.js checks that
// this list is index.js's).
import txcoord from './index.js'

export const {
  Client,
  DistributedLock,
  LockManager,
  setLogger,
  PROTOCOL_VERSION,
  DEFAULT_TTL_MS,
  DEFAULT_TIMEOUT_MS,
  DEFAULT_FALLBACK_POLL_MS,
  DEFAULT_WAITER_LEASE_MS,
  DEFAULT_DEADLOCK_TIMEOUT_MS,
  MAX_FALLBACK_POLL_MS,
  DEFAULT_LEADER_TTL_MS,
  MAX_MS,
  SagaStatus,
  RedisSagaRepository,
  SagaDeadlockDetector,
  LeaderElection,
} = txcoord
export default txcoord
