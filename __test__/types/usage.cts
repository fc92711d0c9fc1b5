// Typed usage from CommonJS (.cts: `import x = require()` and `import {} from`
// both compile to require()). Compiled, never run, by types.test.mjs.

import store = require('../../index.js')
import byName = require('@pson5/postgres-store')
import { PostgresStoreError, createPostgresProfileStoreRepository } from '@pson5/postgres-store'
import type {
  AuditPage,
  PostgresStoreErrorCode,
  ProfileDocument,
  QueryExecutor,
  StoreEvent,
  UserProfileIndexRecord,
} from '@pson5/postgres-store'
import pg = require('pg')
import postgres = require('postgres')

const same: typeof store.createPostgresProfileStoreRepository[] = [
  byName.createPostgresProfileStoreRepository,
  createPostgresProfileStoreRepository,
]
void same
const channel: 'pson5:postgres-store' = store.DIAGNOSTICS_CHANNEL
void channel

const artifacts = store.createPostgresProfileStoreArtifacts({ schema: 'public', tablePrefix: 'pson_' })
const loadSql: string = artifacts.queries.loadProfile
void loadSql

// The four call forms.
const pool = new pg.Pool()
const sql = postgres()
const executor: QueryExecutor = store.createPostgresQueryExecutor(pool)
const forms: store.PostgresProfileStoreRepository[] = [
  createPostgresProfileStoreRepository(),
  createPostgresProfileStoreRepository({
    connectionString: 'postgres://localhost/app',
    max: 4,
    ssl: { rejectUnauthorized: false },
    onEvent: (event: StoreEvent) => void event.rowCount,
  }),
  createPostgresProfileStoreRepository({ exec: pool, tablePrefix: 'app_' }),
  createPostgresProfileStoreRepository({ exec: sql }),
  createPostgresProfileStoreRepository(executor, { schema: 'app' }),
  createPostgresProfileStoreRepository(pool),
]

async function useAll(repository: store.PostgresProfileStoreRepository): Promise<number> {
  const options = { context: { request_id: 'r1' } }
  const doc: ProfileDocument = { profile_id: 'p', user_id: 'u', metadata: { revision: 1 } }
  await repository.writeCurrentProfile(doc, options)
  await repository.writeProfileRevision(doc, options)
  const current: ProfileDocument | null = await repository.readCurrentProfile('p', options)
  const numbers: number[] = await repository.listProfileRevisionNumbers('p', options)
  const index: UserProfileIndexRecord | null = await repository.readUserProfileIndex('u', options)
  await repository.writeUserProfileIndex(
    { user_id: 'u', latest_profile_id: 'p', profile_ids: ['p'], updated_at: new Date().toISOString() },
    options,
  )
  const saved = await repository.saveProfile(doc, { expectedRevision: 1, context: { trace_id: 't' } })
  const loaded: ProfileDocument = await repository.loadProfile(saved.profile_id, options)
  const exists: boolean = await repository.profileExists('p', options)
  const latest: ProfileDocument = await repository.loadProfileByUserId('u', options)
  const ids: string[] = await repository.findProfilesByUserId('u', options)
  const revisions: number[] = await repository.listProfileRevisions('p', options)
  const page: AuditPage = await repository.listAuditEntries('p', { limit: 5, cursor: null, ...options })
  const snapshot: ProfileDocument = await repository.loadProfileRevision('p', 1, options)
  const deleted: boolean = await repository.deleteProfile('p', options)
  await repository.ensureSchema(options)
  await repository.upgradeFrom022(options)
  const size: number = repository.poolStatus()?.size ?? 0
  await repository.close({ timeoutMillis: 100 })
  void [current, numbers, index, loaded, exists, latest, ids, revisions, page, snapshot, deleted]
  // @ts-expect-error user ids are strings
  await repository.findProfilesByUserId(7)
  return size
}

async function main(): Promise<void> {
  for (const repository of forms) {
    try {
      await useAll(repository)
    } catch (error) {
      if (error instanceof PostgresStoreError) {
        const code: PostgresStoreErrorCode = error.code
        if (code === 'not_found') {
          const storeCode: 'profile_not_found' | 'revision_not_found' | undefined = error.storeCode
          void storeCode
        } else if (code === 'database_error') {
          const state: string | undefined = error.sqlState
          void state
        }
        // @ts-expect-error 'missing' is not a PostgresStoreErrorCode
        if (code === 'missing') return
      }
    }
  }
}

export = main
