// Failover: the repository names both the primary and a standby as primary
// hosts with target_session_attrs=read-write. The primary is stopped (as a
// crash would), the standby promoted: saves fail fast meanwhile (no call
// hangs), then succeed again, and every save acknowledged before or after is
// on the new primary (replication to it was synchronous).

import assert from 'node:assert/strict'
import { test } from 'node:test'

import { createPostgresProfileStoreRepository } from '../../index.mjs'
import { failIfUnfinished, uniqueId } from '../helpers/profiles.mjs'
import { profileDocument, useReplicaCluster } from './helpers.mjs'

failIfUnfinished(import.meta.url)

// standby1 is synchronous (FIRST 1 (standby1)): a commit is acknowledged once it is on standby1's disk.
const { cluster, track } = await useReplicaCluster({ standbys: 2, synchronous: [0] })
const [standby1, standby2] = cluster.standbys

// A call still unsettled after this long counts as hung (a bound, not a speed check).
const HANG_MILLIS = 60_000

function settledWithin(promise, what) {
  let timer
  const hung = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle in ${HANG_MILLIS} ms`)), HANG_MILLIS)
  })
  return Promise.race([promise, hung]).finally(() => clearTimeout(timer))
}

test('primary stopped, standby promoted: saves resume on the new primary with every acknowledged save kept', async (t) => {
  const events = []
  const repository = track(
    createPostgresProfileStoreRepository({
      connectionString: `postgres://postgres@${cluster.primary.address},${standby1.address}/postgres?target_session_attrs=read-write`,
      replicas: [standby1.url, standby2.url],
      connectionTimeoutMillis: 2000,
      maxReplicaLagMillis: 1000,
      onEvent: (event) => events.push(event),
    }),
  )
  const userId = uniqueId('user')
  const acknowledged = []
  const failures = []
  let stoppedAt = 0
  let resumedAt = 0
  let running = true
  const writer = async () => {
    for (let i = 0; running; i++) {
      const id = uniqueId('failover')
      const startedAfterStop = stoppedAt !== 0
      try {
        await settledWithin(repository.saveProfile(profileDocument(id, userId)), `save ${i}`)
        acknowledged.push(id)
        // The first save sent after the stop and acknowledged (one sent before may be acknowledged after it).
        if (startedAfterStop && resumedAt === 0) resumedAt = performance.now()
      } catch (error) {
        if (error.message.endsWith('did not settle in 60000 ms')) throw error
        failures.push(error.code)
        await new Promise((resolve) => setTimeout(resolve, 20))
      }
    }
  }
  const writing = [writer(), writer(), writer(), writer()]
  try {
    while (acknowledged.length < 100) await new Promise((resolve) => setTimeout(resolve, 10))
    await cluster.kill(cluster.primary)
    stoppedAt = performance.now()
    const before = acknowledged.length
    await cluster.promote(standby1)
    const promotedAt = performance.now()
    while (resumedAt === 0 || acknowledged.length < before + 100) await new Promise((resolve) => setTimeout(resolve, 10))
    t.diagnostic(
      `the first save sent after the stop was acknowledged ${Math.round(resumedAt - stoppedAt)} ms after it ` +
        `(pg_ctl promote -w, which polls, returned after ${Math.round(promotedAt - stoppedAt)} ms); ` +
        `${failures.length} saves failed meanwhile (${[...new Set(failures)].join(', ')})`,
    )
  } finally {
    running = false
    await Promise.all(writing)
  }
  // Failures were connection errors or timeouts, never anything else.
  assert.deepEqual(
    failures.filter((code) => code !== 'connection_error' && code !== 'timeout'),
    [],
  )
  // Every acknowledged save is on the new primary.
  const rows = await cluster.query(standby1, 'select profile_id from pson_profiles where user_id = $1', [userId])
  const stored = new Set(rows.map((row) => row.profile_id))
  assert.deepEqual(
    acknowledged.filter((id) => !stored.has(id)),
    [],
  )
  // Reads after the failover see the writes after it: the promoted standby left rotation, the other lags behind.
  const found = await repository.findProfilesByUserId(userId)
  assert.ok(acknowledged.every((id) => found.includes(id)))
  assert.equal(repository.replicaStatus()[0].promoted, true)
  const last = events.at(-1)
  assert.equal(last.server.role, 'primary')
})
