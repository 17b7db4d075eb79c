// SPDX-License-Identifier: MIT OR Apache-2.0
// What the seed calls `redis`, as a native Client: a `Client`, an ioredis instance (its
// settings are read here; what is supported is the core's decision: `clientFor`) or a URL (the
// core's shared client for that URL).
'use strict'

const native = require('../native.js')

const Client = native.Client

// One native client per ioredis instance (an identity question: the instance's own connection
// is shared by its users). URL strings are the core's business: one client per URL while in
// use (`clientFor`).
const ioredisClients = new WeakMap()

function looksLikeIoredis(value) {
  return (
    value !== null &&
    typeof value === 'object' &&
    typeof value.options === 'object' &&
    value.options !== null &&
    (typeof value.sendCommand === 'function' || typeof value.duplicate === 'function')
  )
}

// What an ioredis instance says about where it connects, for the core to judge.
function ioredisSettings(redis) {
  const o = redis.options
  let topology = 'standalone'
  if (redis.isCluster === true || (redis.constructor && redis.constructor.name === 'Cluster')) topology = 'cluster'
  else if (Array.isArray(o.sentinels) && o.sentinels.length > 0) topology = 'sentinel'
  else if (o.path) topology = 'unix'
  const tls = o.tls !== undefined && o.tls !== null && o.tls !== false
  const material = tls ? ['ca', 'cert', 'key', 'pfx'].find((k) => o.tls[k] !== undefined) : undefined
  return {
    className: redis.constructor ? redis.constructor.name : undefined,
    topology,
    host: o.host,
    port: o.port,
    db: o.db,
    username: o.username || undefined,
    password: o.password || undefined,
    tls,
    tlsInsecure: tls && o.tls.rejectUnauthorized === false,
    tlsMaterial: material === undefined ? undefined : `tls.${material}`,
    keyPrefix: typeof o.keyPrefix === 'string' ? o.keyPrefix : undefined,
  }
}

// The native Client for what the seed calls `redis`.
function toClient(redis) {
  if (redis instanceof Client) return redis
  if (looksLikeIoredis(redis)) {
    let client = ioredisClients.get(redis)
    if (client === undefined || client.isClosed) {
      client = native.clientFor(redis, ioredisSettings(redis))
      ioredisClients.set(redis, client)
    }
    return client
  }
  return native.clientFor(redis)
}

module.exports = { Client, toClient }
