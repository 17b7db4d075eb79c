// SPDX-License-Identifier: MIT OR Apache-2.0
//
// txcoord for Node.js: the seed's `DistributedLock`, `LockManager`, `SagaDeadlockDetector`,
// `SagaMonitor` and `TransactionMetricsCollector`, a saga repository, leader election, alert
// sinks and a /metrics endpoint, backed by the Rust core.
//
// The native addon (native.js) does the work; the modules in lib/ are the thin layer N-API
// cannot express by itself, one per concept:
//   - client.js: `redis` may be a URL, a `Client` or an ioredis instance (its settings are read
//     there; what is supported, and how a URL becomes a connection, is the core's decision);
//   - lock.js: `lock.signal` (an AbortSignal aborted when the lock is lost) and `'lost'`;
//   - manager.js and cancel.js: the LockManager, `options.signal` (an AbortSignal) cancelling a
//     wait;
//   - saga.js, deadlock.js and callbacks.js: a user's own saga repository, logger and metrics
//     objects, whose methods the core calls;
//   - election.js: the election's `'elected'`/`'revoked'` events and `signal`;
//   - monitor.js, metrics.js and alert.js: the saga monitor with a user's metrics object,
//     alert manager and recovery handlers; the metrics collector in a prom-client or seed-style
//     registry and its /metrics endpoint; the alert sinks;
//   - logging.js: where the core's log records go (`setLogger(logger)`, or process warnings).
// Every argument is passed to the native part as it came: the core validates it. The few this
// layer judges by identity (an AbortSignal, a function, a logger) are refused with errors the
// native part builds (`wrongType`); codes, messages and constants all come from the core.
'use strict'

const native = require('./native.js')
const { Client } = require('./lib/client.js')
const { DistributedLock } = require('./lib/lock.js')
const { LockManager } = require('./lib/manager.js')
const { SagaStatus, RedisSagaRepository } = require('./lib/saga.js')
const { SagaDeadlockDetector } = require('./lib/deadlock.js')
const { LeaderElection } = require('./lib/election.js')
const { setLogger } = require('./lib/logging.js')
const { TransactionMetricsCollector, MetricsServer, serveMetrics } = require('./lib/metrics.js')
const { LogAlertSink, AlertmanagerSink } = require('./lib/alert.js')
const { SagaMonitor } = require('./lib/monitor.js')

// The core's constants (`PROTOCOL_VERSION`, `DEFAULT_TTL_MS`, `MAX_MS`, ...), by the names the
// Python package uses too.
const constants = native.constants()

module.exports = {
  ...constants,
  Client,
  DistributedLock,
  LockManager,
  setLogger,
  SagaStatus,
  RedisSagaRepository,
  SagaDeadlockDetector,
  LeaderElection,
  SagaMonitor,
  TransactionMetricsCollector,
  MetricsServer,
  serveMetrics,
  LogAlertSink,
  AlertmanagerSink,
}
