// The README's wiring with the real types of @pson5/serialization-engine and
// @pson5/core-types 0.2.2, from CommonJS: those packages are ES modules, so a
// CommonJS application imports their types and loads the engine with
// `await import()`. Compiled, never run, by types.test.mjs (see upstream.mts).

import type { ProfileStoreAdapter, PsonProfile } from '@pson5/core-types'
import type { DocumentProfileStoreRepository } from '@pson5/serialization-engine'
import { createPostgresProfileStoreRepository, createPostgresQueryExecutor } from '@pson5/postgres-store'
import pg = require('pg')

export async function main(): Promise<number> {
  const engine = await import('@pson5/serialization-engine')

  // README: the native pool, handed to the engine both ways.
  const repository = createPostgresProfileStoreRepository({
    connectionString: process.env.DATABASE_URL,
    profileStoreErrorClass: engine.ProfileStoreError,
  })
  const store: ProfileStoreAdapter = engine.createDocumentProfileStoreAdapter(repository)
  const created: PsonProfile = await engine.initProfile({ user_id: 'user_42' }, { adapter: repository })
  await engine.initProfile({ user_id: 'user_43' }, { adapter: store })

  // The 0.2.2 form.
  const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL })
  const legacy: DocumentProfileStoreRepository = createPostgresProfileStoreRepository(createPostgresQueryExecutor(pool))
  engine.createDocumentProfileStoreAdapter(legacy)

  // The adapter form, and the revision of a save.
  const adapter: ProfileStoreAdapter = repository
  const saved = await repository.saveProfile(created)
  const same: PsonProfile = saved
  const loaded: PsonProfile = await adapter.loadProfile(created.profile_id)
  void [same, loaded]

  await repository.close()
  await pool.end()
  return saved.metadata.revision
}
