// SPDX-License-Identifier: MIT OR Apache-2.0
// Alert sinks through Node: the saga monitor alerting to a real Prometheus Alertmanager (started
// by the test on a free loopback port, as core/tests/alertmanager.rs does) and resolving the
// alert when its condition clears; delivery failures counted; bad arguments. Test names follow
// tests/python/test_alerts.py.
'use strict'

const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { spawn, spawnSync } = require('node:child_process')
const fs = require('node:fs')
const http = require('node:http')
const os = require('node:os')
const path = require('node:path')

const {
  AlertmanagerSink,
  RedisSagaRepository,
  SagaDeadlockDetector,
  SagaMonitor,
  SagaStatus,
  TransactionMetricsCollector,
} = require('txcoord')
const { startRedis, waitFor, freePort } = require('./helpers.js')

let server

before(async () => {
  server = await startRedis()
})

after(async () => {
  await server.stop()
})

/** GET `url` as JSON. */
function getJson(url) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { timeout: 5000 }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c) => (body += c))
      res.on('end', () => {
        try {
          resolve(JSON.parse(body))
        } catch (e) {
          reject(e)
        }
      })
    })
    req.on('timeout', () => req.destroy(new Error(`GET ${url} timed out`)))
    req.on('error', reject)
  })
}

/** A prometheus-alertmanager on a free loopback port (its own directory and config). */
async function startAlertmanager() {
  const binary = process.env.TXCOORD_ALERTMANAGER || 'prometheus-alertmanager'
  if (spawnSync('which', [binary]).status !== 0) {
    throw new Error(`${binary} not found: scripts/install-deps.sh installs it with apt`)
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'txcoord-node-alertmanager-'))
  const config = path.join(dir, 'alertmanager.yml')
  fs.writeFileSync(config, 'route:\n  receiver: "null"\n  group_wait: 1s\nreceivers:\n  - name: "null"\n')
  const port = await freePort()
  const log = fs.openSync(path.join(dir, 'alertmanager.log'), 'w')
  const proc = spawn(
    binary,
    [
      `--config.file=${config}`,
      `--storage.path=${dir}/data`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--cluster.listen-address=',
      '--log.level=warn',
    ],
    { stdio: ['ignore', log, log] },
  )
  let exited = null
  proc.once('exit', (code) => (exited = code))
  const url = `http://127.0.0.1:${port}`
  const stop = async () => {
    if (exited === null) {
      const gone = new Promise((r) => proc.once('exit', r))
      proc.kill('SIGKILL')
      await gone
    }
    fs.closeSync(log)
    fs.rmSync(dir, { recursive: true, force: true })
  }
  try {
    await waitFor(
      async () => {
        if (exited !== null) throw new Error(`alertmanager exited with ${exited}; see ${dir}`)
        return getJson(`${url}/api/v2/status`).then(
          () => true,
          () => false,
        )
      },
      { timeoutMs: 30000, every: 50, what: 'alertmanager to answer' },
    )
  } catch (e) {
    await stop()
    throw e
  }
  return { url, stop }
}

const ago = (seconds) => new Date(Date.now() - seconds * 1000)

test('a monitor alerts a real Alertmanager and resolves', async () => {
  const am = await startAlertmanager()
  const repo = new RedisSagaRepository(server.url, { defaultStuckAfter: 60000 })
  await repo.save({ id: 'am-1', type: 'CreateOrderSaga', createdAt: ago(30), updatedAt: ago(300), retryCount: 3 })
  const collector = new TransactionMetricsCollector()
  const sink = new AlertmanagerSink([am.url], { labels: { env: 'test' }, metrics: collector })
  assert.deepEqual(sink.alertmanagers, [am.url])
  const m = new SagaMonitor(repo, collector, sink, new SagaDeadlockDetector(repo, null), { start: false })
  try {
    const r = await m.tick()
    assert.deepEqual([r.stuck, r.compensated, r.errors], [1, 1, []], JSON.stringify(r))
    let listed = []
    const oneListed = async () => {
      listed = await getJson(`${am.url}/api/v2/alerts`)
      return listed.length === 1
    }
    await waitFor(oneListed, { timeoutMs: 30000, every: 100, what: "the stuck saga's alert listed" })
    const [a] = listed
    assert.deepEqual(a.labels, {
      alertname: 'StuckSaga',
      severity: 'critical',
      saga_type: 'CreateOrderSaga',
      saga_id: 'am-1',
      reason: 'retrying',
      env: 'test',
    })
    assert.equal(a.annotations.summary, 'Stuck saga detected: CreateOrderSaga')
    assert.match(a.annotations.description, /^Saga am-1 appears to be stuck in EXECUTING status/)
    assert.equal(a.status.state, 'active')
    assert.deepEqual(sink.sent(), { [am.url]: 1 })
    assert.deepEqual(sink.sendFailures(), { [am.url]: 0 })
    assert.ok(collector.metrics().includes(`txcoord_alerts_sent_total{alertmanager="${am.url}"} 1\n`), collector.metrics())

    // compensated, the saga is no longer stuck: the next pass resolves its alert
    assert.equal((await repo.findById('am-1')).status, SagaStatus.COMPENSATING)
    await m.tick()
    await waitFor(async () => !(await oneListed()) && listed.length === 0, {
      timeoutMs: 30000,
      every: 100,
      what: 'the alert resolved',
    })
    assert.deepEqual(sink.sent(), { [am.url]: 2 })
  } finally {
    await m.stop()
    await am.stop()
  }
})

test('failed deliveries are counted', async () => {
  const dead = `http://127.0.0.1:${await freePort()}` // nothing listens there
  const sink = new AlertmanagerSink(dead, { timeout: 2000 })
  await assert.rejects(sink.send({ severity: 'warning', summary: 's', description: 'd', metadata: {} }), (e) => {
    assert.match(e.code, /^TXCOORD_/)
    return true
  })
  assert.deepEqual(sink.sendFailures(), { [dead]: 1 })
  assert.deepEqual(sink.sent(), { [dead]: 0 })
})

test('bad sink arguments name themselves', () => {
  const cases = [
    ['ftp://am:9093', {}, 'TXCOORD_INVALID_ARGUMENT', 'urls'],
    ['not a url', {}, 'TXCOORD_INVALID_ARGUMENT', 'urls'],
    [42, {}, 'TXCOORD_INVALID_TYPE', 'urls'],
    ['http://am:9093', { timeout: 0 }, 'TXCOORD_INVALID_ARGUMENT', 'timeout'],
    ['http://am:9093', { timeout: '5s' }, 'TXCOORD_INVALID_TYPE', 'timeout'],
    ['http://am:9093', { labels: { env: 1 } }, 'TXCOORD_INVALID_TYPE', 'labels'],
    ['http://am:9093', { labels: { '': 'x' } }, 'TXCOORD_INVALID_ARGUMENT', 'labels'],
    ['http://am:9093', { metrics: {} }, 'TXCOORD_INVALID_TYPE', 'metrics'],
  ]
  for (const [urls, options, code, argument] of cases) {
    assert.throws(() => new AlertmanagerSink(urls, options), { code, argument }, JSON.stringify([urls, options]))
  }
  assert.throws(() => new AlertmanagerSink('http://am:9093', 5), { code: 'TXCOORD_INVALID_TYPE', argument: 'options' })
  const sink = new AlertmanagerSink('http://am:9093')
  return assert.rejects(sink.send('down'), { code: 'TXCOORD_INVALID_TYPE', argument: 'alert' })
})
