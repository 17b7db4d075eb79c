// SPDX-License-Identifier: MIT OR Apache-2.0
// How the seed's services use SagaDeadlockDetector, SagaRepository, SagaRecord and SagaStatus,
// written against txcoord's: the seed's own repository interface implemented in memory, its
// detector constructed with a logger, SagaMonitor.detectDeadlocks() as the seed wrote it, and
// the record updates of its abortSaga/retryLastStep. Type-checked with tsc, run by
// deadlock.test.js.
import { SagaDeadlockDetector, SagaStatus } from 'txcoord'
import type { SagaRecord, SagaRepository } from 'txcoord'

// The seed's logger: anything with warn(message, meta) and info(message, meta).
interface Logger {
  warn(message: string, meta?: any): void
  info(message: string, meta?: any): void
}

interface SagaStats {
  active: number
  completed: number
  failed: number
  averageDuration: number
}

// A service's own repository, the seed's interface: here in memory.
export class InMemorySagaRepository implements SagaRepository {
  private sagas = new Map<string, SagaRecord>()

  async findActiveSagas(): Promise<SagaRecord[]> {
    const active: string[] = [SagaStatus.PENDING, SagaStatus.EXECUTING, SagaStatus.COMPENSATING]
    return [...this.sagas.values()].filter((s) => active.includes(s.status))
  }

  async findStuckSagas(): Promise<SagaRecord[]> {
    const limit = 5 * 60 * 1000
    return (await this.findActiveSagas()).filter((s) => Date.now() - s.updatedAt.getTime() > limit)
  }

  async findById(id: string): Promise<SagaRecord | null> {
    const saga = this.sagas.get(id)
    return saga ? { ...saga } : null
  }

  async save(saga: SagaRecord): Promise<void> {
    this.sagas.set(saga.id, { ...saga })
  }

  async getStatistics(): Promise<SagaStats> {
    const all = [...this.sagas.values()]
    return {
      active: (await this.findActiveSagas()).length,
      completed: all.filter((s) => s.status === SagaStatus.COMPLETED).length,
      failed: all.filter((s) => s.status === SagaStatus.FAILED).length,
      averageDuration: 0,
    }
  }
}

export function newSaga(id: string, priority: number): SagaRecord {
  const now = new Date()
  return {
    id,
    type: 'CreateOrderSaga',
    status: SagaStatus.EXECUTING,
    priority,
    createdAt: now,
    updatedAt: now,
    retryCount: 0,
    error: null,
    stuckReason: null,
    stuckDetail: null,
    version: 0,
    term: 0,
  }
}

// The seed's constructor call, with the option a repository of its own needs.
export function makeDetector(sagaRepository: SagaRepository, logger: Logger, redis: string): SagaDeadlockDetector {
  return new SagaDeadlockDetector(sagaRepository, logger, { redis })
}

interface Alert {
  severity: string
  summary: string
  description: string
  metadata: object
}

// SagaMonitor.detectDeadlocks, as the seed wrote it (the alert manager collects into an array).
export async function detectDeadlocks(deadlockDetector: SagaDeadlockDetector, alerts: Alert[]): Promise<void> {
  const deadlockResult = await deadlockDetector.detectDeadlock()

  if (deadlockResult.hasDeadlock) {
    alerts.push({
      severity: 'critical',
      summary: 'Deadlock detected in saga execution',
      description: `Detected ${deadlockResult.cycles.length} deadlock cycles involving ${deadlockResult.affectedSagas.length} sagas`,
      metadata: {
        cycles: deadlockResult.cycles,
        affectedSagas: deadlockResult.affectedSagas,
      },
    })

    await deadlockDetector.resolveDeadlock(deadlockResult.cycles)
  }
}

// What the seed's SagaDeadlockDetector.selectSagaToAbort reads of a record.
export function selectionKey(saga: SagaRecord): { priority: number; runtime: number } {
  const runtime = Date.now() - saga.createdAt.getTime()
  const priority = saga.priority || 0
  return { priority, runtime }
}

// The seed's abortSaga and retryLastStep, on a record.
export function abortSaga(saga: SagaRecord): void {
  saga.status = SagaStatus.FAILED
  saga.error = 'Aborted due to deadlock resolution'
}

export function retryLastStep(saga: SagaRecord): void {
  saga.retryCount = (saga.retryCount || 0) + 1
  saga.status = SagaStatus.EXECUTING
  saga.updatedAt = new Date()
}
