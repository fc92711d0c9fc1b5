// The README's wiring with the real types of @pson5/serialization-engine and
// @pson5/core-types 0.2.2, as an ES module. types.test.mjs copies this file
// into an application folder whose node_modules holds those packages (from
// the 0.2.2 tarball) and this one, and compiles it (never runs it) with and
// without --strict.

import pg from 'pg'
import type { ProfileStoreAdapter, PsonProfile } from '@pson5/core-types'
import {
  ProfileStoreError,
  createDocumentProfileStoreAdapter,
  initProfile,
  loadProfile,
  observeFact,
  saveProfile,
  type DocumentProfileStoreRepository,
} from '@pson5/serialization-engine'
import { createPostgresProfileStoreRepository, createPostgresQueryExecutor } from '@pson5/postgres-store'

// ---- README: the native pool, handed to the engine both ways ----
const repository = createPostgresProfileStoreRepository({ connectionString: process.env.DATABASE_URL })
const store: ProfileStoreAdapter = createDocumentProfileStoreAdapter(repository)
const created: PsonProfile = await initProfile({ user_id: 'user_42' }, { adapter: repository })
const viaStore: PsonProfile = await initProfile({ user_id: 'user_43' }, { adapter: store })
await observeFact({ profile_id: created.profile_id, domain: 'core', key: 'likes', value: 'tea' }, { adapter: repository })
const reloaded: PsonProfile = await loadProfile(created.profile_id, { adapter: repository })
void [viaStore, reloaded]

// ---- the 0.2.2 form: an executor over a pg pool ----
const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL })
const legacy = createPostgresProfileStoreRepository(createPostgresQueryExecutor(pool), { schema: 'app' })
const asDocumentRepository: DocumentProfileStoreRepository = legacy
const legacyStore: ProfileStoreAdapter = createDocumentProfileStoreAdapter(legacy)
await saveProfile(created, { adapter: legacyStore })
void asDocumentRepository

// ---- the adapter form: the repository is a ProfileStoreAdapter ----
const adapter: ProfileStoreAdapter = repository
const fromAdapter: PsonProfile = await adapter.loadProfile(created.profile_id)
void fromAdapter

// A PsonProfile in, a PsonProfile out, the revision a number.
export async function bump(profile: PsonProfile): Promise<number> {
  const saved = await repository.saveProfile(profile, { expectedRevision: profile.metadata.revision })
  const same: PsonProfile = saved
  const loaded: PsonProfile = await repository.loadProfile(profile.profile_id)
  const byUser: PsonProfile = await repository.loadProfileByUserId(profile.user_id)
  const snapshot: PsonProfile = await repository.loadProfileRevision(profile.profile_id, 1)
  const current = await repository.readCurrentProfile<PsonProfile>(profile.profile_id)
  const domains: string[] | undefined = current?.domains.active
  void [same, loaded, byUser, snapshot, domains]
  await repository.writeCurrentProfile(profile)
  await repository.writeProfileRevision(profile)
  return saved.metadata.revision
}

// The engine's class, passed explicitly (for layouts where it cannot be found).
const explicit = createPostgresProfileStoreRepository({
  connectionString: process.env.DATABASE_URL,
  profileStoreErrorClass: ProfileStoreError,
})
const explicitLegacy = createPostgresProfileStoreRepository(createPostgresQueryExecutor(pool), {
  profileStoreErrorClass: ProfileStoreError,
})
void [explicit, explicitLegacy]

// @ts-expect-error the class must be constructible as (storeCode, message)
createPostgresProfileStoreRepository({ profileStoreErrorClass: 'ProfileStoreError' })

await repository.close()
await pool.end()
