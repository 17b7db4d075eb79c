// SPDX-License-Identifier: MIT OR Apache-2.0
// txcoord saga monitor (Node): alerts, recovery and the seed's metrics on /metrics.
// Run: REDIS_URL=redis://127.0.0.1:6379 node examples/node/monitor.js
const txcoord = require('txcoord')

// Any object with the seed's send(alert) is an alert manager (or use txcoord.LogAlertSink,
// txcoord.AlertmanagerSink).
const printAlerts = {
  async send(alert) {
    console.log(`alert [${alert.resolved ? 'resolved' : alert.severity}]: ${alert.summary}`)
  },
}

async function retry(saga) {
  console.log(`retrying ${saga.id} (attempt ${saga.retryCount})`)
}

async function main() {
  const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
  const repo = new txcoord.RedisSagaRepository(url, { defaultStuckAfter: 60000 })
  const longAgo = new Date(Date.now() - 10 * 60 * 1000)
  await repo.save({ id: 'order-42', type: 'PaymentSaga', createdAt: longAgo, updatedAt: longAgo })

  const collector = new txcoord.TransactionMetricsCollector()
  const detector = new txcoord.SagaDeadlockDetector(repo, null, { metrics: collector })
  const server = await txcoord.serveMetrics(collector, { host: '127.0.0.1', port: 0 })
  try {
    // Starts at once and runs a pass every `interval` ms (30 s); only the leader of all the
    // monitors sharing this Redis acts. Until stop(), it keeps the process alive.
    const monitor = new txcoord.SagaMonitor(repo, collector, printAlerts, detector, { onRetry: retry })
    try {
      const report = await monitor.tick() // one more pass now
      console.log(`leader=${report.leader}, errors=${JSON.stringify(report.errors)}`)
    } finally {
      await monitor.stop()
    }
    const text = await (await fetch(server.url)).text()
    for (const line of text.split('\n')) if (line.startsWith('sagas_active_total')) console.log(line)
  } finally {
    await server.close()
  }
  console.log('stopped')
}

main().catch((err) => {
  console.error(err)
  process.exitCode = 1
})
