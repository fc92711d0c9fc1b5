// `npm start`: a short tour of @pson5/postgres-store against DATABASE_URL, or
// against an embedded PostgreSQL started (and removed) for the demo.

import { createPostgresProfileStoreRepository } from '@pson5/postgres-store'

import { startEmbeddedPostgres } from '../scripts/embedded-postgres.mjs'

let embedded = null
let connectionString = process.env.DATABASE_URL
if (!connectionString) {
  console.log('DATABASE_URL is not set: starting an embedded PostgreSQL for this demo...')
  try {
    embedded = await startEmbeddedPostgres()
  } catch (error) {
    console.error(`error: ${error.message}`)
    process.exit(1)
  }
  connectionString = embedded.url
}

const events = []
const repository = createPostgresProfileStoreRepository({
  connectionString,
  tablePrefix: 'demo_',
  onEvent: (event) => events.push(event),
})

try {
  await repository.ensureSchema()
  const profile = {
    pson_version: '5.0',
    profile_id: `demo_${Date.now()}`,
    user_id: 'user_42',
    tenant_id: 'acme',
    consent: { granted: true, scopes: ['core:read', 'core:write'] },
    domains: { active: ['core', 'work'], depth: 'light' },
    layers: { observed: {}, inferred: {}, simulated: {} },
    metadata: { confidence: 0, source_count: 0, updated_at: new Date().toISOString() },
  }
  const context = { request_id: 'req-1' }

  const first = await repository.saveProfile(profile, { context })
  console.log(`saved ${first.profile_id} at revision ${first.metadata.revision}`)

  profile.layers.observed.work = { facts: { role: 'engineer' } }
  profile.metadata.source_count = 1
  const second = await repository.saveProfile(profile, { expectedRevision: 1, context })
  console.log(`saved again at revision ${second.metadata.revision}`)

  try {
    await repository.saveProfile(profile, { expectedRevision: 1 })
  } catch (error) {
    console.log(`a stale write is refused: ${error.code}`)
  }

  const { entries } = await repository.listAuditEntries(profile.profile_id, { limit: 10 })
  for (const entry of entries) {
    console.log(
      `  audit r${entry.revision} (prev ${entry.previous_revision}) changed ${entry.changed_top_level_paths.join(', ')}`,
    )
  }
  console.log('profiles of user_42:', await repository.findProfilesByUserId('user_42'))
  const latest = await repository.loadProfileByUserId('user_42')
  console.log(`latest profile of user_42 is at revision ${latest.metadata.revision}`)
  console.log('deleted:', await repository.deleteProfile(profile.profile_id))
  console.log(
    `${events.length} events, e.g.`,
    events
      .slice(0, 2)
      .map(({ operation, durationMs, rowCount }) => ({ operation, durationMs: +durationMs.toFixed(2), rowCount })),
  )
} finally {
  await repository.close()
  if (embedded) await embedded.stop()
}
