// Public types of @pson5/postgres-store. Hand-written: this is the contract.

/** Every `code` a rejection of this package can carry. */
export type PostgresStoreErrorCode =
  | 'validation_error'
  | 'not_found'
  | 'conflict'
  | 'connection_error'
  | 'timeout'
  | 'database_error'
  | 'closed'

export declare class PostgresStoreError extends Error {
  constructor(code: PostgresStoreErrorCode, message: string, details?: Record<string, unknown>)
  readonly code: PostgresStoreErrorCode
  /** validation_error: the option, argument or document path that was rejected. */
  readonly field?: string
  /** not_found: `profile_not_found` or `revision_not_found`. */
  readonly storeCode?: 'profile_not_found' | 'revision_not_found'
  /** database_error (and server-reported timeouts): the SQLSTATE. */
  readonly sqlState?: string
  readonly detail?: string
  readonly constraint?: string
  readonly table?: string
  readonly schema?: string
  /** The repository method that failed, e.g. `saveProfile`. */
  readonly operation?: string
}

/** Any JSON-compatible value. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue | undefined }

/** A PSON5 profile document: only these fields are read by the store. */
export interface ProfileDocument {
  profile_id: string
  user_id: string
  tenant_id?: string | null
  pson_version?: string
  domains?: { active?: string[]; [key: string]: unknown }
  metadata?: { revision?: number; source_count?: number; updated_at?: string; [key: string]: unknown }
  [key: string]: unknown
}

/** Correlation data stored with audit rows and copied into events. */
export interface OperationContext {
  request_id?: string
  trace_id?: string
  [key: string]: JsonValue | undefined
}

export interface OperationOptions {
  context?: OperationContext
}

export interface SaveProfileOptions extends OperationOptions {
  /** Reject with `conflict` (and write nothing) unless the stored revision equals this; 0 = must be new. */
  expectedRevision?: number
}

export interface ListAuditEntriesOptions extends OperationOptions {
  /** Page size, 1..1000. Default 50. */
  limit?: number
  /** `nextCursor` of the previous page. */
  cursor?: string | null
}

export interface AuditEntry {
  profile_id: string
  user_id: string
  tenant_id: string | null
  revision: number
  previous_revision: number | null
  source_count: number | null
  source_count_delta: number | null
  changed_top_level_paths: string[]
  pson_version: string | null
  /** `metadata.updated_at` of the saved document, as written. */
  updated_at: string | null
  /** When the database recorded the revision (ISO-8601, UTC). */
  recorded_at: string
  context: OperationContext
}

export interface AuditPage {
  /** Newest first. */
  entries: AuditEntry[]
  /** Opaque; null on the last page. */
  nextCursor: string | null
}

export interface UserProfileIndexRecord {
  user_id: string
  latest_profile_id: string
  /** Oldest first. */
  profile_ids: string[]
  /** ISO-8601 (read back as `YYYY-MM-DDTHH:mm:ss.sssZ`). */
  updated_at: string
}

/** One event per operation (also published on the `pson5:postgres-store` diagnostics channel). */
export interface StoreEvent {
  operation: string
  durationMs: number
  rowCount: number
  context?: OperationContext
  error?: { code: PostgresStoreErrorCode; message: string; sqlState?: string }
}

export interface QueryResultLike {
  rows: Array<Record<string, unknown>> | unknown[][]
}

/** `(sql, params) => Promise<{ rows }>`, as node-postgres' `pool.query` returns. */
export type QueryExecutor = (sql: string, params: ReadonlyArray<string | null>) => Promise<QueryResultLike>

/** A node-postgres Pool/Client. */
export interface PgQueryable {
  query(text: string, params?: any[]): Promise<QueryResultLike>
  query(config: { name?: string; text: string; values?: any[] }): Promise<QueryResultLike>
}

/** A postgres.js `sql` instance. */
export interface PostgresJsSql {
  (...args: any[]): any
  unsafe(query: string, params?: any[]): PromiseLike<any>
}

export interface ArtifactOptions {
  /** Default `public`. */
  schema?: string
  /** Default `pson_`. Must match `[A-Za-z_][A-Za-z0-9_]*`. */
  tablePrefix?: string
  /**
   * The 0.2.2 tables `upgradeSql` and `upgradeFrom022()` copy from, in `schema` (0.2.2's options of the same
   * names). Any name up to 63 bytes, quoted. Defaults `pson_profiles_current`, `pson_profile_revisions`,
   * `pson_user_profile_index`. A non-string, empty or longer name throws `validation_error` naming the option.
   */
  currentProfilesTable?: string
  /** 0.2.2's revisions table, read by the upgrade. Default `pson_profile_revisions`. */
  profileRevisionsTable?: string
  /** 0.2.2's user index table, read by the upgrade. Default `pson_user_profile_index`. */
  userIndexTable?: string
}

export interface PostgresProfileStoreArtifacts {
  /** Idempotent DDL: `<prefix>profiles`, `<prefix>profile_audit`, `<prefix>domain_index` and their indexes. */
  schemaSql: string
  /** Idempotent copy of the 0.2.2 tables in the same schema into the new ones. */
  upgradeSql: string
  tables: { profiles: string; profileAudit: string; domainIndex: string }
  /** The SQL of every statement the repository runs, by name. */
  queries: Readonly<Record<StatementName, string>>
}

export type StatementName =
  | 'loadProfile'
  | 'loadProfiles'
  | 'profileExists'
  | 'loadProfileByUserId'
  | 'findProfilesByUserId'
  | 'findProfilesByUserIds'
  | 'listRevisionNumbers'
  | 'saveProfile'
  | 'saveProfiles'
  | 'deleteProfile'
  | 'listAuditEntries'
  | 'loadProfileRevision'
  | 'writeCurrentProfile'
  | 'writeProfileRevision'
  | 'readUserProfileIndex'
  | 'writeUserProfileIndex'
  | 'serverInfo'
  | 'checkSchema'

export interface RepositoryOptions extends ArtifactOptions {
  /** Documents larger than this (as UTF-8 JSON) are rejected. Default 16 MiB. */
  maxDocumentBytes?: number
  /** Called once per operation. */
  onEvent?: (event: StoreEvent) => void
}

export interface SslOptions {
  /** Verify the server certificate and host name. Default true. */
  rejectUnauthorized?: boolean
  /** PEM of the CA that signed the server certificate. */
  ca?: string
}

/** The native pool (names follow node-postgres; `PG*` variables fill what is missing). */
export interface NativeConnectionOptions extends RepositoryOptions {
  /** URL or `key=value` string; `sslmode=disable|prefer|require|verify-ca|verify-full` and `sslrootcert` work. */
  connectionString?: string
  host?: string
  port?: number
  user?: string
  password?: string
  database?: string
  /** `true` = verify-full; `{ rejectUnauthorized: false }` = require. */
  ssl?: boolean | SslOptions
  /** Pool size. Default 10. */
  max?: number
  /** Longest wait for a connection (acquire or connect). Default 30000. */
  connectionTimeoutMillis?: number
  /** Close connections idle this long; 0 = never. Default 10000. */
  idleTimeoutMillis?: number
  /** Server-side statement_timeout. Default: the server's. */
  statementTimeoutMillis?: number
  /** Default `pson5-postgres-store`. */
  applicationName?: string
  /**
   * Named prepared statements, cached per connection. Default true; set false behind a
   * transaction-mode pooler without prepared-statement support (pgbouncer < 1.21).
   */
  prepare?: boolean
}

export interface ExecutorOptions extends RepositoryOptions {
  exec: QueryExecutor | PgQueryable | PostgresJsSql
  /** When `exec` is a pg or postgres.js instance: prepare statements (default true). */
  prepare?: boolean
}

export interface TableCheck {
  exists: boolean
  missingColumns: string[]
}

export interface SchemaCheck {
  /** `server_version`, e.g. `17.2`. */
  serverVersion: string
  /** `server_version_num`, e.g. 170002. */
  serverVersionNum: number
  tables: { profiles: TableCheck; profileAudit: TableCheck; domainIndex: TableCheck }
  /** All three tables exist with every expected column. */
  ok: boolean
}

export interface PoolStatus {
  maxSize: number
  size: number
  available: number
  waiting: number
}

/** What serialization-engine's `createDocumentProfileStoreAdapter` calls (0.2.2 semantics). */
export interface DocumentProfileStoreRepository {
  readonly kind: string
  readCurrentProfile(profileId: string, options?: OperationOptions): Promise<ProfileDocument | null>
  writeCurrentProfile(profile: ProfileDocument, options?: OperationOptions): Promise<void>
  writeProfileRevision(profile: ProfileDocument, options?: OperationOptions): Promise<void>
  listProfileRevisionNumbers(profileId: string, options?: OperationOptions): Promise<number[]>
  readUserProfileIndex(userId: string, options?: OperationOptions): Promise<UserProfileIndexRecord | null>
  writeUserProfileIndex(record: UserProfileIndexRecord, options?: OperationOptions): Promise<void>
}

/** serialization-engine's ProfileStoreAdapter. */
export interface ProfileStoreAdapter {
  readonly kind: string
  saveProfile(profile: ProfileDocument, options?: SaveProfileOptions): Promise<ProfileDocument>
  loadProfile(profileId: string, options?: OperationOptions): Promise<ProfileDocument>
  profileExists(profileId: string, options?: OperationOptions): Promise<boolean>
  listProfileRevisions(profileId: string, options?: OperationOptions): Promise<number[]>
  findProfilesByUserId(userId: string, options?: OperationOptions): Promise<string[]>
  loadProfileByUserId(userId: string, options?: OperationOptions): Promise<ProfileDocument>
}

export declare class PostgresProfileStoreRepository implements DocumentProfileStoreRepository, ProfileStoreAdapter {
  readonly kind: 'postgres'
  readCurrentProfile(profileId: string, options?: OperationOptions): Promise<ProfileDocument | null>
  writeCurrentProfile(profile: ProfileDocument, options?: OperationOptions): Promise<void>
  writeProfileRevision(profile: ProfileDocument, options?: OperationOptions): Promise<void>
  listProfileRevisionNumbers(profileId: string, options?: OperationOptions): Promise<number[]>
  readUserProfileIndex(userId: string, options?: OperationOptions): Promise<UserProfileIndexRecord | null>
  writeUserProfileIndex(record: UserProfileIndexRecord, options?: OperationOptions): Promise<void>

  /** Rejects with `not_found` (`storeCode: 'profile_not_found'`) when missing. */
  loadProfile(profileId: string, options?: OperationOptions): Promise<ProfileDocument>
  profileExists(profileId: string, options?: OperationOptions): Promise<boolean>
  /** The profile of that user saved most recently. */
  loadProfileByUserId(userId: string, options?: OperationOptions): Promise<ProfileDocument>
  /** Profile ids of a user, oldest first. */
  findProfilesByUserId(userId: string, options?: OperationOptions): Promise<string[]>
  /** Revision numbers, ascending; `not_found` when there are none. */
  listProfileRevisions(profileId: string, options?: OperationOptions): Promise<number[]>
  /** One atomic statement: revision = stored + 1, audit row, index upsert. Returns the stored document. */
  saveProfile<T extends ProfileDocument>(profile: T, options?: SaveProfileOptions): Promise<T>
  /** Removes the profile, its audit rows and index rows; true when anything was removed. */
  deleteProfile(profileId: string, options?: OperationOptions): Promise<boolean>
  listAuditEntries(profileId: string, options?: ListAuditEntriesOptions): Promise<AuditPage>
  /** The snapshot saved as that revision; `not_found` (`revision_not_found`) otherwise. */
  loadProfileRevision(profileId: string, revision: number, options?: OperationOptions): Promise<ProfileDocument>

  /** Runs `schemaSql` (idempotent); for development and tests. */
  ensureSchema(options?: OperationOptions): Promise<void>
  /** Runs `upgradeSql` (idempotent). */
  upgradeFrom022(options?: OperationOptions): Promise<void>
  /** Server version and, per table, whether it exists and which expected columns it lacks. */
  checkSchema(options?: OperationOptions): Promise<SchemaCheck>
  /** Native pool counters; null in executor mode or once closed. */
  poolStatus(): PoolStatus | null
  /** Later calls reject with `closed`; resolves when calls in flight settle (at most `timeoutMillis`, default 5000). */
  close(options?: { timeoutMillis?: number }): Promise<void>
}

export declare function createPostgresProfileStoreArtifacts(options?: ArtifactOptions): PostgresProfileStoreArtifacts

/** Native pool from `DATABASE_URL`, else the `PG*` variables. */
export declare function createPostgresProfileStoreRepository(): PostgresProfileStoreRepository
/** Native pool. */
export declare function createPostgresProfileStoreRepository(options: NativeConnectionOptions): PostgresProfileStoreRepository
/** Statements run through the caller's executor (or pg/postgres.js instance). */
export declare function createPostgresProfileStoreRepository(options: ExecutorOptions): PostgresProfileStoreRepository
/** The 0.2.2 call form. */
export declare function createPostgresProfileStoreRepository(
  executor: QueryExecutor | PgQueryable | PostgresJsSql,
  options?: RepositoryOptions,
): PostgresProfileStoreRepository

/**
 * Adapts a pg Pool/Client or a postgres.js `sql`. Statements are prepared per connection unless
 * `prepare: false` (for poolers that cannot keep prepared statements).
 */
export declare function createPostgresQueryExecutor(
  queryable: PgQueryable | PostgresJsSql,
  options?: { prepare?: boolean },
): QueryExecutor

/** Name of the diagnostics channel: `pson5:postgres-store`. */
export declare const DIAGNOSTICS_CHANNEL: 'pson5:postgres-store'
