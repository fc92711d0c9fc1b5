// A replica killed under 32 concurrent loads: no call fails (reads that were
// on it run again on another server, later ones skip it), and it rejoins
// rotation after it is started again.

import assert from 'node:assert/strict'
import { test } from 'node:test'

import { failIfUnfinished, uniqueId } from '../helpers/profiles.mjs'
import { profileDocument, servedBy, until, useReplicaCluster } from './helpers.mjs'

failIfUnfinished(import.meta.url)

const { cluster, repository: replicated } = await useReplicaCluster({ standbys: 2 })
const [standby1] = cluster.standbys
const killedKey = `replica ${standby1.address}`

test('a replica killed under 32 concurrent loads: no failed call; it rejoins after a restart', async (t) => {
  const { repository, events } = replicated({ connectionTimeoutMillis: 5000 })
  const ids = []
  for (let i = 0; i < 64; i++) {
    const id = uniqueId('health')
    await repository.saveProfile(profileDocument(id, uniqueId('user')))
    ids.push(id)
  }
  await cluster.waitForReplay()
  await until(() => repository.replicaStatus().every((s) => s.inRotation && s.lagMillis === 0), 'both replicas in rotation')

  let phase = 'before'
  const failures = []
  const served = { before: 0, killed: 0, restarted: 0 }
  let running = true
  const worker = async (w) => {
    for (let i = 0; running; i++) {
      const id = ids[(w * 7 + i) % ids.length]
      const at = phase
      try {
        const profile = await repository.loadProfile(id)
        assert.equal(profile.profile_id, id)
        served[at]++
      } catch (error) {
        failures.push({ phase: at, code: error.code, message: error.message })
      }
    }
  }
  const workers = Array.from({ length: 32 }, (_, w) => worker(w))
  try {
    await until(() => served.before >= 500, '500 loads before the kill')
    const killedAtEvent = events.length
    await cluster.kill(standby1)
    phase = 'killed'
    await until(() => repository.replicaStatus()[0].down, 'the killed replica out of rotation')
    await until(() => served.killed >= 1000, '1000 loads with the replica down')
    t.diagnostic(`served before the kill ${JSON.stringify(servedBy(events.slice(64, killedAtEvent)))}`)
    t.diagnostic(`served with the replica down ${JSON.stringify(servedBy(events.slice(killedAtEvent)))}`)
    await cluster.start(standby1)
    phase = 'restarted'
    await until(() => repository.replicaStatus()[0].inRotation, 'the restarted replica back in rotation')
    const rejoinedAt = events.length
    await until(() => servedBy(events.slice(rejoinedAt))[killedKey] >= 50, 'loads served by the restarted replica')
  } finally {
    running = false
    await Promise.all(workers)
  }
  assert.deepEqual(failures, [])
  const reasons = new Set(events.map((e) => e.reason))
  assert.ok(reasons.has('replica'))
  t.diagnostic(`reasons ${JSON.stringify([...reasons])}`)
})
