// Typed usage of every export, as an ES module (.mts: the package has no
// "type": "module", so a .ts file here would be compiled as CommonJS).
// Compiled, never run, by types.test.mjs:
//   tsc --strict --noEmit --module nodenext --moduleResolution nodenext ...

import * as diagnostics_channel from 'node:diagnostics_channel'
import pg from 'pg'
import postgres from 'postgres'

import {
  DIAGNOSTICS_CHANNEL,
  PostgresProfileStoreRepository,
  PostgresStoreError,
  createPostgresProfileStoreArtifacts,
  createPostgresProfileStoreRepository,
  createPostgresQueryExecutor,
  type AuditEntry,
  type AuditPage,
  type BlameEntry,
  type DeletedUserProfiles,
  type EraseResult,
  type DocumentProfileStoreRepository,
  type JsonPatchOperation,
  type PoolStatus,
  type PostgresProfileStoreArtifacts,
  type PostgresStoreErrorCode,
  type ProfileDocument,
  type ProfileStoreAdapter,
  type PruneProgress,
  type PruneResult,
  type QueryExecutor,
  type StatementName,
  type StoredProfile,
  type StoreEvent,
  type UserProfileIndexRecord,
} from '../../index.js'
// The package name resolves to the same declarations (package.json `exports.types`),
// named, as a namespace and as the default export (index.mjs exports the CJS object).
import storeDefault, * as byName from '@pson5/postgres-store'
import { createPostgresProfileStoreRepository as byNameCreate } from '@pson5/postgres-store'

const sameFunctions: Array<typeof createPostgresProfileStoreRepository> = [
  byName.createPostgresProfileStoreRepository,
  storeDefault.createPostgresProfileStoreRepository,
  byNameCreate,
]
void sameFunctions

// ---- artifacts ----
const artifacts: PostgresProfileStoreArtifacts = createPostgresProfileStoreArtifacts()
const custom = createPostgresProfileStoreArtifacts({ schema: 'tenant_a', tablePrefix: 'app_' })
const ddl: string = artifacts.schemaSql + custom.upgradeSql
const tableNames: string[] = [custom.tables.profiles, custom.tables.profileAudit, custom.tables.domainIndex]
const statement: StatementName = 'saveProfile'
const saveSql: string = artifacts.queries[statement]
void [ddl, tableNames, saveSql]
// @ts-expect-error queries only has the statement names
void artifacts.queries.dropEverything
// @ts-expect-error schema is a string
createPostgresProfileStoreArtifacts({ schema: 5 })

// ---- the four call forms ----
const events: StoreEvent[] = []
const zero: PostgresProfileStoreRepository = createPostgresProfileStoreRepository()
const native = createPostgresProfileStoreRepository({
  connectionString: 'postgres://app@db.internal:5432/app?sslmode=verify-full',
  host: 'db.internal',
  port: 5432,
  user: 'app',
  password: 'secret',
  database: 'app',
  ssl: { rejectUnauthorized: true, ca: '-----BEGIN CERTIFICATE-----' },
  max: 10,
  connectionTimeoutMillis: 30_000,
  idleTimeoutMillis: 10_000,
  statementTimeoutMillis: 5_000,
  applicationName: 'profiles-api',
  schema: 'public',
  tablePrefix: 'pson_',
  maxDocumentBytes: 16 * 1024 * 1024,
  onEvent: (event) => {
    const ms: number = event.durationMs
    const code: PostgresStoreErrorCode | undefined = event.error?.code
    void [ms, code]
    events.push(event)
  },
})
const withSslTrue = createPostgresProfileStoreRepository({ ssl: true })

const pool = new pg.Pool({ connectionString: 'postgres://localhost/app' })
const sql = postgres('postgres://localhost/app')
const seedPg = createPostgresProfileStoreRepository({ exec: pool, schema: 'app', tablePrefix: 'p_' })
const seedPostgres = createPostgresProfileStoreRepository({ exec: sql })
const executor: QueryExecutor = createPostgresQueryExecutor(pool)
const executorFromSql: QueryExecutor = createPostgresQueryExecutor(sql)
const seedExec = createPostgresProfileStoreRepository({ exec: executor, maxDocumentBytes: 1024 })
const handRolled: QueryExecutor = async (text, params) => {
  const result = await pool.query(text, [...params])
  return { rows: result.rows }
}
const legacy = createPostgresProfileStoreRepository(handRolled, { schema: 'public', onEvent: () => {} })
const legacyPool = createPostgresProfileStoreRepository(pool)
const legacySql = createPostgresProfileStoreRepository(executorFromSql)
const repositories: PostgresProfileStoreRepository[] = [
  zero,
  native,
  withSslTrue,
  seedPg,
  seedPostgres,
  seedExec,
  legacy,
  legacyPool,
  legacySql,
]
void repositories

// @ts-expect-error max is a number
createPostgresProfileStoreRepository({ connectionString: 'postgres://localhost/app', max: '10' })
// @ts-expect-error exec must be an executor, a pg Pool/Client or a postgres.js sql
createPostgresProfileStoreRepository({ exec: 'select 1' })

// ---- every method, with its options ----
interface MyProfile extends ProfileDocument {
  layers: { observed: Record<string, string> }
}

const context = { request_id: 'req-1', trace_id: 'trace-1', tenant: 'acme' }

export async function everyMethod(repository: PostgresProfileStoreRepository): Promise<void> {
  const kind: 'postgres' = repository.kind
  void kind

  const profile: MyProfile = {
    profile_id: 'p1',
    user_id: 'u1',
    tenant_id: null,
    pson_version: '5.0',
    domains: { active: ['core'] },
    layers: { observed: { likes: 'tea' } },
    metadata: { revision: 1, source_count: 0, updated_at: new Date().toISOString() },
  }

  // DocumentProfileStoreRepository
  const current: ProfileDocument | null = await repository.readCurrentProfile('p1', { context })
  const nothing: void = await repository.writeCurrentProfile(profile, { context })
  await repository.writeProfileRevision(profile)
  const numbers: number[] = await repository.listProfileRevisionNumbers('p1', {})
  const record: UserProfileIndexRecord | null = await repository.readUserProfileIndex('u1')
  if (record !== null) {
    const ids: string[] = record.profile_ids
    const latest: string = record.latest_profile_id
    await repository.writeUserProfileIndex({ ...record, profile_ids: [...ids, 'p2'], latest_profile_id: latest })
  }
  void [current, nothing, numbers]

  // query helpers / ProfileStoreAdapter
  const loaded: ProfileDocument = await repository.loadProfile('p1', { context })
  const revision: number | undefined = loaded.metadata?.revision
  const exists: boolean = await repository.profileExists('p1')
  const byUser: ProfileDocument = await repository.loadProfileByUserId('u1', { context })
  const ids: string[] = await repository.findProfilesByUserId('u1')
  const revisions: number[] = await repository.listProfileRevisions('p1')
  const saved: StoredProfile<MyProfile> = await repository.saveProfile(profile, { expectedRevision: 0, context })
  const likes: string | undefined = saved.layers.observed.likes
  // The stored revision is always there on what a save returns.
  const savedRevision: number = saved.metadata.revision
  const loadedRevision: number = (await repository.loadProfile<MyProfile>('p1')).metadata.revision
  void [savedRevision, loadedRevision]
  await repository.saveProfile(saved, { expectedRevision: saved.metadata?.revision })
  const deleted: boolean = await repository.deleteProfile('p1', { context })
  const page: AuditPage = await repository.listAuditEntries('p1', { limit: 10, context })
  const next: AuditPage = await repository.listAuditEntries('p1', { limit: 10, cursor: page.nextCursor })
  const entry: AuditEntry | undefined = next.entries[0]
  const paths: string[] | undefined = entry?.changed_top_level_paths
  const recordedAt: string | undefined = entry?.recorded_at
  const snapshot: ProfileDocument = await repository.loadProfileRevision('p1', 2, { context })
  void [revision, exists, byUser, ids, revisions, likes, deleted, paths, recordedAt, snapshot]

  // pass-through reads and retention
  const text: string = await repository.loadProfileJson('p1', { context })
  const texts: Array<string | null> = await repository.loadProfilesJson(['p1', 'p2'])
  const pruned: PruneResult = await repository.pruneAuditEntries({
    keepLast: 10,
    olderThan: new Date(),
    profileId: 'p1',
    batchSize: 500,
    signal: AbortSignal.timeout(60_000),
    onProgress: (progress: PruneProgress) => void [progress.removedRows, progress.nextProfileId],
    context,
  })
  await repository.pruneAuditEntries({ olderThan: '2026-01-31T00:00:00Z' })
  void [text, texts, pruned.removedRows, pruned.prunedProfiles, pruned.batches]

  // history
  const patch: JsonPatchOperation[] = await repository.diffRevisions('p1', 1, 2, { context })
  const firstOp: 'add' | 'remove' | 'replace' | 'move' | 'copy' | 'test' | undefined = patch[0]?.op
  const asOf: StoredProfile<MyProfile> = await repository.loadProfile<MyProfile>('p1', { asOf: new Date(), context })
  await repository.loadProfile('p1', { asOf: '2026-01-31T00:00:00Z' })
  const windowed: AuditPage = await repository.listAuditEntries('p1', { since: new Date(0), until: '2026-02-01T00:00Z' })
  const restored: StoredProfile<MyProfile> = await repository.revertProfile<MyProfile>('p1', 3, { expectedRevision: 5, context })
  const revertedFrom: number | null | undefined = windowed.entries[0]?.reverted_from
  const merged = await repository.saveProfile(profile, { expectedRevision: 4, merge: 'disjoint-paths' })
  try {
    await repository.saveProfile(merged, { expectedRevision: 1, merge: 'disjoint-paths' })
  } catch (error) {
    if (error instanceof PostgresStoreError && error.code === 'conflict') void (error.paths satisfies string[] | undefined)
  }
  void [firstOp, asOf.metadata.revision, windowed, restored.metadata.revision, revertedFrom]
  const blame: BlameEntry[] = await repository.blameProfile('p1', { depth: 2, context })
  const who: [string, number, string] | undefined = blame[0] && [blame[0].path, blame[0].revision, blame[0].recorded_at]
  void [who, (await repository.blameProfile('p1'))[0]?.context.request_id]
  const erasure: EraseResult = await repository.eraseFromHistory('p1', '/layers/observed/core.email', { context })
  const gone: DeletedUserProfiles = await repository.deleteProfilesByUserId('u1', { context })
  void [erasure.revision, erasure.erasedSnapshots, erasure.erasedFromCurrent, gone.profileIds, gone.auditRows]
  void windowed.entries[0]?.erased_path?.startsWith('/')
  // @ts-expect-error the path is a JSON Pointer string
  await repository.eraseFromHistory('p1', ['layers'])
  // @ts-expect-error the only merge mode is 'disjoint-paths'
  await repository.saveProfile(profile, { expectedRevision: 1, merge: 'ours' })
  // @ts-expect-error asOf is a Date or a string
  await repository.loadProfile('p1', { asOf: 1234 })
  // @ts-expect-error revisions are numbers
  await repository.diffRevisions('p1', '1', 2)

  // administration
  await repository.ensureSchema({ context })
  await repository.upgradeFrom022()
  const status: PoolStatus | null = repository.poolStatus()
  if (status !== null) {
    const busy: number = status.size - status.available
    void [busy, status.maxSize, status.waiting]
  }
  await repository.close({ timeoutMillis: 1000 })
  await repository.close()

  // read replicas
  const replicated = createPostgresProfileStoreRepository({
    connectionString: 'postgres://app@primary/app',
    replicas: ['postgres://app@replica-1/app', { host: 'replica-2', port: 5433 }, new pg.Pool()],
    readExec: postgres(),
    maxReplicaLagMillis: 2000,
    replicaWaitMillis: 20,
    replicaCheckMillis: 100,
    onEvent: (event) => {
      if (event.server?.role === 'replica' && event.reason === 'replica') void event.server.address.split(':')
    },
  })
  const token: string = await replicated.consistencyToken('p1')
  await replicated.loadProfile('p1', { after: token })
  await replicated.findProfilesByUserId('u1', { after: await replicated.consistencyToken() })
  for (const replica of replicated.replicaStatus() ?? []) {
    const lag: number = replica.lagMillis
    void [lag, replica.inRotation, replica.down, replica.promoted, replica.replayLsn?.length, replica.address]
  }
  // @ts-expect-error replicas is an array
  createPostgresProfileStoreRepository({ replicas: 'postgres://app@replica-1/app' })
  // @ts-expect-error a token is a string
  await replicated.loadProfile('p1', { after: 42 })

  // @ts-expect-error profile ids are strings
  await repository.loadProfile(42)
  // @ts-expect-error a profile needs a user_id
  await repository.saveProfile({ profile_id: 'p1' })
  // @ts-expect-error expectedRevision is a number
  await repository.saveProfile(profile, { expectedRevision: '1' })
  // @ts-expect-error the revision is a number
  await repository.loadProfileRevision('p1', '2')
  // @ts-expect-error a prune needs its options
  await repository.pruneAuditEntries()
  // @ts-expect-error keepLast is a number
  await repository.pruneAuditEntries({ keepLast: '3' })
}

// The repository is both shapes the engine knows.
const asAdapter: ProfileStoreAdapter = native
const asDocumentRepository: DocumentProfileStoreRepository = native
void [asAdapter, asDocumentRepository]

// ---- errors: narrowing on the code ----
export function describeError(error: unknown): string {
  if (!(error instanceof PostgresStoreError)) return 'unknown'
  const code: PostgresStoreErrorCode = error.code
  switch (code) {
    case 'validation_error':
      return `bad ${error.field ?? '?'}`
    case 'not_found': {
      const storeCode: 'profile_not_found' | 'revision_not_found' | undefined = error.storeCode
      return `missing (${storeCode})`
    }
    case 'conflict':
      return 'retry'
    case 'connection_error':
    case 'timeout':
      return 'unavailable'
    case 'database_error': {
      const sqlState: string | undefined = error.sqlState
      return `database ${sqlState} ${error.constraint ?? ''} ${error.table ?? ''} ${error.operation ?? ''}`
    }
    case 'closed':
      return 'closed'
    case 'internal_error':
      return 'a fault in this package: report it'
    case 'aborted': {
      const removed: number | undefined = error.pruned?.removedRows
      return `aborted after removing ${removed ?? 0} rows`
    }
    default: {
      const exhaustive: never = code
      return exhaustive
    }
  }
}

const made = new PostgresStoreError('conflict', 'stale', { expected: 1 })
const asError: Error = made
void asError
// @ts-expect-error not a code of this package
if (made.code === 'profile_not_found') throw made
// @ts-expect-error not a code of this package
new PostgresStoreError('oops', 'message')

// ---- diagnostics channel ----
const channelName: 'pson5:postgres-store' = DIAGNOSTICS_CHANNEL
diagnostics_channel.subscribe(channelName, (message) => {
  const event = message as StoreEvent
  void event.operation
})
