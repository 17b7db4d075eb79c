// SPDX-License-Identifier: MIT OR Apache-2.0
// The Node examples (the READMEs' quickstarts are taken from them) run against a throwaway server.
'use strict'

const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

const { ROOT, startRedis, rawRedis, compiledTs, keysOf } = require('./helpers.js')

let server
let raw

before(async () => {
  server = await startRedis()
  raw = rawRedis(server)
})

after(async () => {
  raw.disconnect()
  await server.stop()
})

// Runs an example; checks its output and what it left in Redis: nothing (PROTOCOL.md: once a
// lock is released, its keys are gone), and a token read from the Redis clock at the grant.
async function runExample(file) {
  const r = spawnSync(process.execPath, [file], {
    cwd: ROOT,
    env: { ...process.env, REDIS_URL: server.url },
    encoding: 'utf8',
    timeout: 30000,
    killSignal: 'SIGKILL',
  })
  assert.equal(r.status, 0, `${file}\n${r.stdout}\n${r.stderr}`)
  const m = /^holding (\S+), fencing token (\d+)\ntotal 42\n$/.exec(r.stdout)
  assert.ok(m, r.stdout)
  const [, key, token] = m
  assert.equal(key, 'lock:order:42')
  assert.deepEqual(await keysOf(raw, key), [])
  const [secs, micros] = await raw.time()
  const now = Number(secs) * 1e6 + Number(micros)
  assert.ok(Number(token) <= now && Number(token) > now - 60e6, `token ${token}, Redis time ${now}`)
}

test('examples/node/quickstart.js', async () => {
  await runExample(path.join(ROOT, 'examples', 'node', 'quickstart.js'))
})

test('examples/node/quickstart.ts (compiled by tsc)', async () => {
  const out = compiledTs()
  await runExample(path.join(out, 'examples', 'node', 'quickstart.js'))
})

test('examples/node/monitor.js', () => {
  const file = path.join(ROOT, 'examples', 'node', 'monitor.js')
  const r = spawnSync(process.execPath, [file], {
    cwd: ROOT,
    env: { ...process.env, REDIS_URL: server.url },
    encoding: 'utf8',
    timeout: 60000,
    killSignal: 'SIGKILL',
  })
  assert.equal(r.status, 0, `${file}\n${r.stdout}\n${r.stderr}`)
  const lines = r.stdout.split('\n')
  for (const expected of [
    'alert [critical]: Stuck saga detected: PaymentSaga',
    'alert [warning]: Long-running saga detected: PaymentSaga',
    'retrying order-42 (attempt 1)',
    'leader=true, errors=[]',
    'sagas_active_total 1',
  ]) {
    assert.ok(lines.includes(expected), `${expected}\n${r.stdout}`)
  }
  assert.equal(lines[lines.length - 2], 'stopped', r.stdout)
})

test('bindings-node/README.md shows examples/node/quickstart.js verbatim', () => {
  // (The root README's quickstarts are checked by examples/rust/tests/examples.rs.)
  const readme = fs.readFileSync(path.join(ROOT, 'bindings-node', 'README.md'), 'utf8')
  const example = fs
    .readFileSync(path.join(ROOT, 'examples', 'node', 'quickstart.js'), 'utf8')
    .split('\n')
    .filter((line) => !line.startsWith('// SPDX'))
    .join('\n')
    .trim()
  assert.ok(readme.includes(`\`\`\`js\n${example}\n\`\`\``), 'the README quotes the example in a js block')
})
