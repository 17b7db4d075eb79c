// SPDX-License-Identifier: MIT OR Apache-2.0
// The Node examples (the README's quickstart is taken from them) run against a throwaway server.
'use strict'

const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { spawnSync } = require('node:child_process')
const path = require('node:path')

const { ROOT, startRedis, rawRedis, compiledTs } = require('./helpers.js')

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

function runExample(file) {
  const r = spawnSync(process.execPath, [file], {
    cwd: ROOT,
    env: { ...process.env, REDIS_URL: server.url },
    encoding: 'utf8',
    timeout: 30000,
  })
  assert.equal(r.status, 0, `${file}\n${r.stdout}\n${r.stderr}`)
  assert.match(r.stdout, /^holding lock:order:42, fencing token \d+\ntotal 42\n$/)
}

test('examples/node/quickstart.js', async () => {
  runExample(path.join(ROOT, 'examples', 'node', 'quickstart.js'))
  assert.equal(await raw.exists('lock:order:42'), 0)
})

test('examples/node/quickstart.ts (compiled by tsc)', async () => {
  const out = compiledTs()
  runExample(path.join(out, 'examples', 'node', 'quickstart.js'))
  assert.equal(await raw.exists('lock:order:42'), 0)
})
