// SPDX-License-Identifier: MIT OR Apache-2.0
// Run by monitor.test.js: a process that only constructs a saga monitor (on
// $TXCOORD_TEST_REDIS), prints `pass` after each of its passes and stops it after the third.
// Nothing else keeps the process alive: it must live until then, and exit after `stopped`.
'use strict'

const { Client, RedisSagaRepository, SagaDeadlockDetector, SagaMonitor } = require('txcoord')

const repo = new RedisSagaRepository(new Client(process.env.TXCOORD_TEST_REDIS, { keyPrefix: 'child:' }))
const detector = new SagaDeadlockDetector(repo, null)
let passes = 0
const metrics = {
  recordGauge(name) {
    if (name !== 'sagas_active_total') return
    console.log('pass')
    if (++passes === 3) monitor.stop().then(() => console.log('stopped'))
  },
  recordHistogram() {},
}
const monitor = new SagaMonitor(repo, metrics, { send() {} }, detector, { interval: 200 })
console.log(`started ${monitor.candidateId}`)
