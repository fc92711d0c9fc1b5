// Shared by the replica tests: a cluster made for the test file (a primary and
// two hot standbys, scripts/replica-cluster.mjs), the store's schema on it,
// repositories over it that record their events, and per-server counts.

import { after } from 'node:test'

import { startReplicaCluster } from '../../scripts/replica-cluster.mjs'
import { createPostgresProfileStoreRepository } from '../../index.mjs'
import { buildProfile } from '../helpers/profiles.mjs'

/** Starts the cluster for this file (stopped after it) with the schema in place and replayed. */
export async function useReplicaCluster(options) {
  const cluster = await startReplicaCluster(options)
  const repositories = []
  after(async () => {
    for (const repository of repositories) await repository.close().catch(() => {})
    await cluster.stop()
  })
  const setup = createPostgresProfileStoreRepository({ connectionString: cluster.primary.url })
  await setup.ensureSchema()
  await setup.close()
  await cluster.waitForReplay()
  return {
    cluster,
    /** A native repository on the primary with the standbys as replicas; `events` holds its events. */
    repository(options = {}) {
      const events = []
      const repository = createPostgresProfileStoreRepository({
        connectionString: cluster.primary.url,
        replicas: cluster.standbys.map((standby) => standby.url),
        onEvent: (event) => events.push(event),
        ...options,
      })
      repositories.push(repository)
      return { repository, events }
    },
    /** Any other repository (closed after the file). */
    track(repository) {
      repositories.push(repository)
      return repository
    },
  }
}

/** `{ 'replica 127.0.0.1:5433': n, ... }` over `events`, by role and address. */
export function servedBy(events) {
  const counts = {}
  for (const event of events) {
    if (event.server === undefined) continue
    const key = `${event.server.role} ${event.server.address}`
    counts[key] = (counts[key] ?? 0) + 1
  }
  return counts
}

/** Resolves once `condition()` is true; rejects after `timeoutMillis` (a bound for a hang, not a speed check). */
export async function until(condition, what, timeoutMillis = 30_000) {
  const deadline = Date.now() + timeoutMillis
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

export const profileDocument = (profileId, userId, revision = 0) =>
  buildProfile({ profileId, userId, revision, tenantId: 'tenant-replicas', observed: { note: { value: 'x', confidence: 0.9 } } })
