// SPDX-License-Identifier: MIT OR Apache-2.0
// How the seed's services construct and use SagaMonitor and TransactionMetricsCollector, written
// against txcoord's: the seed's MetricsCollector, AlertManager and MetricsRegistry interfaces as
// its code uses them (the registry built on prom-client), its constructor calls, its record
// calls and the body of its collectMetrics. Type-checked with tsc, run by monitor.test.js.
import { SagaDeadlockDetector, SagaMonitor, TransactionMetricsCollector } from 'txcoord'
import type { SagaRepository, TickReport } from 'txcoord'
import { Counter, Histogram, Registry } from 'prom-client'

// The seed's interfaces, as its saga-monitor.ts and transaction-metrics.ts use them.
interface MetricsCollector {
  recordGauge(name: string, value: number): void
  recordHistogram(name: string, value: number): void
}

interface Alert {
  severity: 'info' | 'warning' | 'critical'
  summary: string
  description: string
  metadata: Record<string, any>
}

interface AlertManager {
  send(alert: Alert): Promise<void>
}

interface MetricsRegistry {
  createHistogram(config: { name: string; help: string; labelNames: string[]; buckets: number[] }): Histogram<string>
  createCounter(config: { name: string; help: string; labelNames: string[] }): Counter<string>
}

interface SagaMetrics {
  activeCount: number
  completedCount: number
  failedCount: number
  stuckCount: number
  averageDuration: number
  successRate: number
}

// SagaMonitor.collectMetrics, as the seed wrote it, recording into any MetricsCollector.
function collectMetrics(metricsCollector: MetricsCollector, metrics: SagaMetrics): void {
  metricsCollector.recordGauge('sagas_active_total', metrics.activeCount)
  metricsCollector.recordGauge('sagas_completed_total', metrics.completedCount)
  metricsCollector.recordGauge('sagas_failed_total', metrics.failedCount)
  metricsCollector.recordHistogram('saga_duration_seconds', metrics.averageDuration)
  metricsCollector.recordGauge('saga_success_rate', metrics.successRate)
  metricsCollector.recordGauge('sagas_stuck_total', metrics.stuckCount)
}

export interface Outcome {
  report: TickReport
  alerts: Alert[]
  gauges: Record<string, number>
  /** What the prom-client registry serves: the seed's four metrics, and ours beside them. */
  text: string
}

export async function run(sagaRepository: SagaRepository, deadlockDetector: SagaDeadlockDetector): Promise<Outcome> {
  const alerts: Alert[] = []
  const gauges: Record<string, number> = {}
  // A service's own metrics collector and alert manager, the seed's interfaces.
  const metricsCollector: MetricsCollector = {
    recordGauge(name: string, value: number): void {
      gauges[name] = value
    },
    recordHistogram(): void {},
  }
  const alertManager: AlertManager = {
    async send(alert: Alert): Promise<void> {
      alerts.push(alert)
    },
  }

  // The seed's constructor call: the monitor starts at once (every 30 s).
  const monitor = new SagaMonitor(sagaRepository, metricsCollector, alertManager, deadlockDetector)
  let report: TickReport
  try {
    // after the pass in progress (the one started on construction), one more
    report = await monitor.tick()
  } finally {
    await monitor.stop()
  }

  // The seed's TransactionMetricsCollector over its MetricsRegistry (here on prom-client).
  const registry = new Registry()
  const metricsRegistry: MetricsRegistry = {
    createHistogram: (config) => new Histogram({ ...config, registers: [registry] }),
    createCounter: (config) => new Counter({ ...config, registers: [registry] }),
  }
  const transactionMetrics = new TransactionMetricsCollector(metricsRegistry)
  transactionMetrics.recordDistributedTransaction('order', 'success', 250)
  transactionMetrics.recordSagaExecution('CreateOrderSaga', 'completed', 1500)
  transactionMetrics.recordCompensation('CreateOrderSaga', 'payment', 'declined')
  transactionMetrics.recordDeadlock('abort_saga')
  // The collector is also a MetricsCollector for the seed's monitor, served from prom-client.
  collectMetrics(transactionMetrics, {
    activeCount: 1,
    completedCount: 2,
    failedCount: 0,
    stuckCount: 0,
    averageDuration: 1.5,
    successRate: 1,
  })
  transactionMetrics.register(registry)
  const text = await registry.metrics()
  return { report, alerts, gauges, text }
}
