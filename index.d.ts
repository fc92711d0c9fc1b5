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
  /**
   * The call's `signal` was aborted or its `timeoutMillis` passed (see `OperationOptions.signal`);
   * `pruneAuditEntries`: stopped between two batches, the batches before stay committed (`pruned`).
   */
  | 'aborted'
  /**
   * A fault of this package, not of the database or the arguments: an exception in its JS, a Rust panic, or rows from an
   * executor that do not have the statement's shape. The exception is kept as `cause`. Please report it.
   */
  | 'internal_error'

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
  /** aborted: a write aborted after its statement was sent; it may or may not have committed. */
  readonly outcomeUnknown?: true
  /**
   * pruneAuditEntries only, on any rejection: what the batches that had committed removed (they stay removed).
   */
  readonly pruned?: PruneResult
  /**
   * conflict of `saveProfile(profile, { merge: 'disjoint-paths' })` only: JSON Pointers of the paths that both this
   * save and the saves since `expectedRevision` changed.
   */
  readonly paths?: string[]
}

/** Any JSON-compatible value. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue | undefined }

/**
 * What the store needs of a profile: the fields it reads. Every other field is stored as it is. Any PSON5 profile
 * document fits, among them `PsonProfile` of `@pson5/core-types` (no index signature is asked of it).
 */
export interface ProfileFields {
  profile_id: string
  user_id: string
  tenant_id?: string | null
  pson_version?: string
  domains?: { active?: readonly string[] }
  metadata?: { revision?: number; source_count?: number; updated_at?: string }
}

/** A profile document when no type of yours is given: the fields the store reads, the rest `unknown`. */
export interface ProfileDocument extends ProfileFields {
  domains?: { active?: string[]; [key: string]: unknown }
  metadata?: { revision?: number; source_count?: number; updated_at?: string; [key: string]: unknown }
  [key: string]: unknown
}

/**
 * A document as the store gives it back (saved or loaded): your type `T` with `metadata.revision`, the stored
 * revision (1, 2, ...). `T` is not checked at run time.
 */
export type StoredProfile<T extends ProfileFields = ProfileDocument> = T & { metadata: { revision: number } }

/** Correlation data stored with audit rows and copied into events. */
export interface OperationContext {
  request_id?: string
  trace_id?: string
  [key: string]: JsonValue | undefined
}

export interface OperationOptions {
  context?: OperationContext
  /**
   * Accepted and ignored: serialization-engine and the SDK pass their `ProfileStoreOptions`
   * (`{ rootDir?, adapter? }`) on to an adapter's methods.
   */
  rootDir?: string
  /** Accepted and ignored (see `rootDir`). */
  adapter?: unknown
  /**
   * Read replicas: a token from `consistencyToken()` of any repository on the same primary (another process).
   * This read then sees every write that repository had acknowledged when it made the token (a replica that has
   * not replayed them is skipped or waited for, up to `replicaWaitMillis`, else the primary answers). Ignored by
   * writes and without replicas (the primary is always current). A string that is not such a token rejects with
   * `validation_error` (`field: 'after'`).
   */
  after?: string
  /**
   * Aborts the call (as `fetch` and undici take one). Rejects with `aborted`, `cause` = the signal's reason: before its
   * statement was sent, the call leaves its batch and writes nothing; a write aborted after its statement was sent has
   * `outcomeUnknown: true` (it may have committed; the next load tells). Native mode: a statement whose calls, and the
   * calls made in the same tick, all aborted is not sent, or, alone on its connection, is cancelled on the server (best
   * effort; a cancelled save rolls back; that connection is then closed). `pruneAuditEntries` stops between two batches instead. Not an AbortSignal: `validation_error`
   * (`field: 'signal'`).
   */
  signal?: AbortSignal
  /**
   * Aborts the call after this many ms, as `signal` does (`cause` is a `TimeoutError`). An integer from 1 to
   * 2147483647, else `validation_error` (`field: 'timeoutMillis'`). Default: none.
   */
  timeoutMillis?: number
}

export interface SaveProfileOptions extends OperationOptions {
  /** Reject with `conflict` (and write nothing) unless the stored revision equals this; 0 = must be new. */
  expectedRevision?: number
  /**
   * `'disjoint-paths'`: when the stored revision moved on since `expectedRevision` (required with it, from 1), merge
   * instead of rejecting: if the paths this document changed since that revision's snapshot do not overlap the paths
   * the saves since then changed, this document's changes are applied onto the stored document and saved as one new
   * revision (the resolved document is that merge). Paths go key by key through objects; an array is one value.
   * `metadata.revision`, `metadata.updated_at` (the later instant wins) and `metadata.source_count` (both increments
   * add up) never conflict. Overlapping paths reject with `conflict` and `error.paths` (JSON Pointers), nothing
   * written; so does a base revision no longer in the audit log. A path erased (`eraseFromHistory`) since
   * `expectedRevision` counts as changed, so a copy read before the erasure cannot bring the value back. Other values: `validation_error` (`field: 'merge'`).
   */
  merge?: 'disjoint-paths'
}

export interface BlameProfileOptions extends OperationOptions {
  /** How many keys deep the paths go: 1 (default, the top-level keys) to 100. */
  depth?: number
}

/** Who last changed one path of a profile: the save (audit row) whose snapshot first has the current value. */
export interface BlameEntry {
  /** A JSON Pointer (RFC 6901), e.g. `/layers/observed/core.timezone`. */
  path: string
  revision: number
  /** When the database recorded that revision (ISO-8601, UTC). */
  recorded_at: string
  /** The context that save was given (`{}` when none). */
  context: OperationContext
}

/** What `eraseFromHistory` did. */
export interface EraseResult {
  /** The new revision that records the erasure (its audit entry has `erased_path`). */
  revision: number
  /** Snapshots of earlier revisions that held the path (each now without it). */
  erasedSnapshots: number
  /** Whether the current document held the path. */
  erasedFromCurrent: boolean
}

/** What `deleteProfilesByUserId` removed. */
export interface DeletedUserProfiles {
  /** The profiles removed, sorted. */
  profileIds: string[]
  /** Audit rows (revisions) removed with them. */
  auditRows: number
}

export interface RevertProfileOptions extends OperationOptions {
  /** Reject with `conflict` (and write nothing) unless the stored revision equals this. */
  expectedRevision?: number
}

export interface ListAuditEntriesOptions extends OperationOptions {
  /** Page size, 1..1000. Default 50. */
  limit?: number
  /** `nextCursor` of the previous page. */
  cursor?: string | null
  /**
   * Only entries recorded (`recorded_at`) at or after this instant: a `Date` or an ISO-8601 instant with an offset
   * (`2026-01-31T00:00:00Z`). Otherwise `validation_error` (`field: 'since'`).
   */
  since?: Date | string
  /** Only entries recorded before this instant (exclusive); as `since` (`field: 'until'`). */
  until?: Date | string
}

export interface LoadProfileOptions extends OperationOptions {
  /**
   * Load the snapshot current at this instant instead of the stored document: the revision of the newest audit row
   * recorded (`recorded_at`) at or before it. A `Date` or an ISO-8601 instant with an offset; otherwise
   * `validation_error` (`field: 'asOf'`). `not_found` (`profile_not_found`) before the first revision, and before
   * the oldest row a prune or deleteProfile left. Event `loadProfile`.
   */
  asOf?: Date | string
}

/** One operation of an RFC 6902 JSON Patch; `path` and `from` are JSON Pointers (RFC 6901). */
export type JsonPatchOperation =
  | { op: 'add'; path: string; value: JsonValue }
  | { op: 'remove'; path: string }
  | { op: 'replace'; path: string; value: JsonValue }
  | { op: 'move'; from: string; path: string }
  | { op: 'copy'; from: string; path: string }
  | { op: 'test'; path: string; value: JsonValue }

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
  /** `revertProfile`: the revision whose snapshot this revision restored; else null. */
  reverted_from: number | null
  /** `eraseFromHistory`: the JSON Pointer erased from every snapshot by this revision; else null. */
  erased_path: string | null
}

export interface AuditPage {
  /** Newest first. */
  entries: AuditEntry[]
  /** Opaque; null on the last page. */
  nextCursor: string | null
}

/**
 * What `pruneAuditEntries` removes. A profile's audit rows older than a cut-off go: everything below the lowest of
 * its current revision, its `keepLast`-th newest row and (with `olderThan`) its oldest row recorded since then. So
 * the rows kept are always the newest ones, without gaps, and the current revision's row and the newest row are
 * never removed. With both options a row goes only when both say it is old.
 */
export interface PruneAuditOptions extends OperationOptions {
  /** Keep each profile's newest `keepLast` audit rows (an integer from 1). */
  keepLast?: number
  /**
   * Remove only rows recorded (`recorded_at`) before this instant: a `Date` or an ISO-8601 instant with an offset
   * (`2026-01-31T00:00:00Z`).
   */
  olderThan?: Date | string
  /** Only this profile's rows. Default: every profile, walked in `profile_id` order. */
  profileId?: string
  /**
   * The most rows one batch (one statement, one transaction) removes, and the most profiles it examines: 1 to
   * 10000, default 1000.
   */
  batchSize?: number
  /** Called after each batch with the running totals; what it throws is ignored. */
  onProgress?: (progress: PruneProgress) => void
  /** Stops the prune between two batches: it rejects with `aborted` (the error's `pruned` says what was removed). */
  signal?: AbortSignal
}

export interface PruneResult {
  /** Audit rows removed. */
  removedRows: number
  /** Profiles that lost at least one row. */
  prunedProfiles: number
  /** Batches run (statements, transactions). */
  batches: number
}

export interface PruneProgress extends PruneResult {
  /** Where the next batch starts (a profile id); null when the prune is done. */
  nextProfileId: string | null
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
  /** With read replicas only: the server that served the call (the last one, when a read was retried). */
  server?: { role: 'primary' | 'replica'; address: string }
  /**
   * With read replicas only: why that server. `primary` (writes, deletes, administration), `replica`,
   * `primary-read-your-writes` (no replica had this repository's or the token's writes, or a replica's answer
   * was older than a revision saved or seen here), `primary-lag` (every replica in rotation lags beyond
   * `maxReplicaLagMillis`), `fallback` (no replica in rotation, or the replica failed and the read ran again here).
   */
  reason?: 'primary' | 'replica' | 'primary-read-your-writes' | 'primary-lag' | 'fallback'
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
  /** The columns each statement returns, in order (the names its rows' fields have in executor mode). */
  columns: Readonly<Record<StatementName, readonly string[]>>
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
  | 'pruneAuditEntries'
  | 'pruneProfileAuditEntries'
  | 'loadRevisionPair'
  | 'loadProfileAsOf'
  | 'revertProfile'
  | 'loadMergeBase'
  | 'listAuditSnapshots'
  | 'eraseFromHistory'
  | 'deleteProfilesByUserId'
  | 'walPosition'

/** Read replicas (README "Read replicas"). All times in milliseconds. */
export interface ReplicaOptions {
  /**
   * Hot standbys of the primary that reads may use: connection strings or native connection options (native
   * pools with this repository's pool size, timeouts and tables; a replica's own `schema` or `tablePrefix` is a
   * `validation_error`), or executors (a `QueryExecutor`, pg Pool/Client, postgres.js `sql`), in either mode.
   * Not an array, empty, or an entry of another kind: `validation_error` (`field: 'replicas'` or `'replicas[i]'`).
   */
  replicas?: ReadonlyArray<string | NativeConnectionOptions | QueryExecutor | PgQueryable | PostgresJsSql>
  /** One more replica, as an executor (the name other executor-mode libraries use). */
  readExec?: QueryExecutor | PgQueryable | PostgresJsSql
  /** A replica whose replay is further behind the primary than this leaves rotation until it catches up. Default 5000. */
  maxReplicaLagMillis?: number
  /** The longest a read waits for a replica to replay a write it must see before the primary answers. Default 50. */
  replicaWaitMillis?: number
  /** How often each replica's state and replay position (and the primary's position) are checked. Default 250. */
  replicaCheckMillis?: number
}

/** One replica, from `replicaStatus()`. */
export interface ReplicaStatus {
  /** `host:port` (no user, no password), or `executor n`. */
  address: string
  /** Reads may go to it now: reachable, in recovery, lag within `maxReplicaLagMillis`. */
  inRotation: boolean
  /** Its last check or call failed; checked again after a backoff (250 ms doubling to 5 s). */
  down: boolean
  /** It is out of recovery (promoted): no longer a replica of this primary. */
  promoted: boolean
  /** How far behind the primary it was at its last check, in ms (Infinity before the first check). */
  lagMillis: number
  /** `pg_last_wal_replay_lsn()` at its last check, e.g. `0/3000148`; null before the first. */
  replayLsn: string | null
}

export interface RepositoryOptions extends ArtifactOptions, ReplicaOptions {
  /** Documents larger than this (as UTF-8 JSON) are rejected. Default 16 MiB. */
  maxDocumentBytes?: number
  /** Called once per operation. */
  onEvent?: (event: StoreEvent) => void
  /**
   * serialization-engine's `ProfileStoreError` class (`import { ProfileStoreError } from
   * '@pson5/serialization-engine'`). `not_found` errors are made from it, so that the engine's `saveProfile` and
   * `initProfile` see a missing profile as new. Default: the class is looked up from the application (its entry
   * script, the working directory, then this package, which declares the engine as an optional peer dependency).
   */
  profileStoreErrorClass?: new (storeCode: 'profile_not_found', message: string) => Error
}

export interface SslOptions {
  /** Verify the server certificate and host name. Default true. */
  rejectUnauthorized?: boolean
  /** PEM of the CA that signed the server certificate. */
  ca?: string
}

/** The native pool (names follow node-postgres; `PG*` variables fill what is missing). */
export interface NativeConnectionOptions extends RepositoryOptions {
  /**
   * URL or `key=value` string; `sslmode=disable|prefer|require|verify-ca|verify-full`, `sslrootcert`,
   * `application_name`, `connect_timeout`, `options` and `target_session_attrs` work. Each explicit option below
   * replaces only its own parameter.
   */
  connectionString?: string
  /** Default: the connection string's, else `PGHOST`, else `localhost`. */
  host?: string
  /** Default: the connection string's, else `PGPORT`, else 5432. */
  port?: number
  /** Default: the connection string's, else `PGUSER`, else the OS account of the process (as libpq; not `$USER`). */
  user?: string
  /** Default: the connection string's, else `PGPASSWORD`. */
  password?: string
  /** Default: the connection string's, else `PGDATABASE`, else the user name. */
  database?: string
  /**
   * `true` = verify-full; `{ rejectUnauthorized: false }` = require. Default: the connection string's `sslmode`, else
   * `PGSSLMODE`, else `prefer`.
   */
  ssl?: boolean | SslOptions
  /** Pool size. Default 10. */
  max?: number
  /** Longest wait for a connection (acquire or connect). Default 30000. */
  connectionTimeoutMillis?: number
  /** Close connections idle this long; 0 = never. Default 10000. */
  idleTimeoutMillis?: number
  /**
   * Server-side `statement_timeout`, in ms, sent as a startup option after the connection string's `options` (or
   * `PGOPTIONS`), which stay in force. A statement it cancels rejects with `timeout`, `sqlState: '57014'`.
   * Default: the server's.
   */
  statementTimeoutMillis?: number
  /**
   * Shown in `pg_stat_activity`. Default: the connection string's `application_name`, else `PGAPPNAME`, else
   * `pson5-postgres-store`.
   */
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
  /** `max`. */
  maxSize: number
  /** Open connections. */
  size: number
  /** Open connections with no call in flight. */
  available: number
  /** Calls getting a connection: waiting for a busy one to free up or for one to open. */
  waiting: number
}

/**
 * What serialization-engine's `createDocumentProfileStoreAdapter` calls (0.2.2 semantics). Assignable to the
 * engine's own `DocumentProfileStoreRepository`.
 */
export interface DocumentProfileStoreRepository {
  readonly kind: string
  /** The current document, or null. */
  readCurrentProfile<T extends ProfileFields = ProfileDocument>(
    profileId: string,
    options?: OperationOptions,
  ): Promise<StoredProfile<T> | null>
  /** Upserts the document at its `metadata.revision` (required: `validation_error` without it). */
  writeCurrentProfile(profile: ProfileFields, options?: OperationOptions): Promise<void>
  /** Upserts the snapshot of `metadata.revision` (required) in the audit table. */
  writeProfileRevision(profile: ProfileFields, options?: OperationOptions): Promise<void>
  /** Revision numbers, ascending; `[]` when there are none. */
  listProfileRevisionNumbers(profileId: string, options?: OperationOptions): Promise<number[]>
  readUserProfileIndex(userId: string, options?: OperationOptions): Promise<UserProfileIndexRecord | null>
  /** Replaces the user's index rows; reading them back gives the same record. */
  writeUserProfileIndex(record: UserProfileIndexRecord, options?: OperationOptions): Promise<void>
}

/**
 * serialization-engine's `ProfileStoreAdapter` (what `{ adapter }` takes). Assignable to the type of
 * `@pson5/core-types`: the loads are generic in the document type, so they return its `PsonProfile` there.
 */
export interface ProfileStoreAdapter {
  readonly kind: string
  /**
   * One atomic statement: revision = stored + 1, audit row, index upsert. Returns the stored document: your object
   * with `metadata.revision` set. `conflict` when `expectedRevision` is not the stored revision.
   */
  saveProfile<T extends ProfileFields>(profile: T, options?: SaveProfileOptions): Promise<StoredProfile<T>>
  /**
   * Rejects with `not_found` (`storeCode: 'profile_not_found'`) when missing. With `asOf`, the snapshot current at
   * that instant (see `LoadProfileOptions`).
   */
  loadProfile<T extends ProfileFields = ProfileDocument>(
    profileId: string,
    options?: LoadProfileOptions,
  ): Promise<StoredProfile<T>>
  profileExists(profileId: string, options?: OperationOptions): Promise<boolean>
  /** Revision numbers, ascending; `not_found` when there are none. */
  listProfileRevisions(profileId: string, options?: OperationOptions): Promise<number[]>
  /** Profile ids of a user, oldest first. */
  findProfilesByUserId(userId: string, options?: OperationOptions): Promise<string[]>
  /** The profile of that user saved most recently; `not_found` when the user has none. */
  loadProfileByUserId<T extends ProfileFields = ProfileDocument>(
    userId: string,
    options?: OperationOptions,
  ): Promise<StoredProfile<T>>
}

/**
 * The repository: a `DocumentProfileStoreRepository` and a `ProfileStoreAdapter` (those methods are declared with
 * them), plus the methods below. Methods that return documents are generic in the document type
 * (`loadProfile<PsonProfile>(id)`, or inferred from where the result goes); the type is not checked at run time.
 */
export declare class PostgresProfileStoreRepository {
  readonly kind: 'postgres'
  /** Removes the profile, its audit rows and index rows; true when anything was removed. */
  deleteProfile(profileId: string, options?: OperationOptions): Promise<boolean>
  /**
   * The profile's audit entries, newest first, a page at a time; `since`/`until` keep those recorded in that
   * window. `validation_error` (`field: 'limit' | 'cursor' | 'since' | 'until' | 'profileId'`).
   */
  listAuditEntries(profileId: string, options?: ListAuditEntriesOptions): Promise<AuditPage>
  /**
   * The RFC 6902 JSON Patch that turns the snapshot of `fromRevision` into that of `toRevision` (either may be the
   * newer; the same revision gives `[]`). Applying it to the one gives the other, `metadata.revision` included.
   * Computed by the `json-patch` crate; arrays are patched element by element. Rejects with `not_found`
   * (`storeCode: 'revision_not_found'`) when either snapshot is not in the audit log, `validation_error`
   * (`field: 'profileId' | 'fromRevision' | 'toRevision'`). Event `diffRevisions` (`rowCount`: snapshots read).
   */
  diffRevisions(
    profileId: string,
    fromRevision: number,
    toRevision: number,
    options?: OperationOptions,
  ): Promise<JsonPatchOperation[]>
  /**
   * Saves the snapshot of `revision` again, as a new revision (the log only grows): one statement, atomic like
   * `saveProfile`, whose audit row records `reverted_from: revision` and the `context`. Resolves to the stored
   * document. Rejects with `not_found` (`profile_not_found` when the profile does not exist, `revision_not_found`
   * when that snapshot is not in the log), `conflict` when `expectedRevision` is not the stored revision,
   * `validation_error` (`field: 'profileId' | 'revision' | 'expectedRevision' | 'context'`); nothing written then.
   * Event `revertProfile`.
   */
  /**
   * For each path of the newest snapshot down to `depth` keys (objects are opened, any other value, arrays included,
   * ends its path), the revision, `recorded_at` and `context` of the save that last changed its value, in the order
   * of the snapshot's keys (jsonb order). Walks the log back from the newest row, 20 snapshots per statement, until
   * every path is placed: the cost grows with how far back the oldest value was set. A value unchanged since the
   * oldest row in the log (the first revision, or the oldest a prune kept) is placed there. Rejects with `not_found`
   * (`profile_not_found`) when the profile has no audit rows, `validation_error` (`field: 'profileId' | 'depth'`).
   * Event `blameProfile` (`rowCount`: snapshots read).
   */
  blameProfile(profileId: string, options?: BlameProfileOptions): Promise<BlameEntry[]>
  /**
   * Removes the path `jsonPointer` (RFC 6901, e.g. `/layers/observed/core.email`) from the current document and from
   * every snapshot in the audit log, in one transaction, and records the erasure as a new revision whose audit entry
   * has `erased_path` (the pointer), `recorded_at` and the `context`, never the value. The transaction first takes
   * the profile's row lock, so a save in flight is erased too and later saves wait for it (a later save that sends
   * the value again stores it again). Positions in arrays are erased by position in every snapshot. Contexts of
   * earlier audit rows are not touched. PostgreSQL keeps the old row versions until `VACUUM` (autovacuum) reclaims
   * them. Rejects with `validation_error` (`field: 'jsonPointer'`: not a JSON Pointer, an escape other than `~0`/`~1`,
   * or a path under `/profile_id`, `/user_id`, `/tenant_id`, `/pson_version` or `/metadata`, which the store reads;
   * `field: 'profileId' | 'context'`), `not_found` (`profile_not_found`). Event `eraseFromHistory` (`rowCount`:
   * snapshots changed + 1).
   */
  eraseFromHistory(profileId: string, jsonPointer: string, options?: OperationOptions): Promise<EraseResult>
  /**
   * Removes every profile of `userId` (profile rows whose `user_id` it is) with all their audit rows and index
   * rows, and the user's index rows of profiles already gone, in one transaction that waits for saves in flight.
   * Resolves to what it removed. A profile saved for the user after it ran is a new profile. `validation_error`
   * (`field: 'userId' | 'context'`). Event `deleteProfilesByUserId` (`rowCount`: profiles removed).
   */
  deleteProfilesByUserId(userId: string, options?: OperationOptions): Promise<DeletedUserProfiles>
  revertProfile<T extends ProfileFields = ProfileDocument>(
    profileId: string,
    revision: number,
    options?: RevertProfileOptions,
  ): Promise<StoredProfile<T>>
  /** The snapshot saved as that revision; `not_found` (`revision_not_found`) otherwise. */
  loadProfileRevision<T extends ProfileFields = ProfileDocument>(
    profileId: string,
    revision: number,
    options?: OperationOptions,
  ): Promise<StoredProfile<T>>
  /**
   * The stored document as JSON text, never parsed: PostgreSQL's jsonb text form (keys in jsonb order, `": "` and
   * `", "` separators), which `JSON.parse` turns into what `loadProfile` returns. For handlers that forward the
   * document. Coalesced with concurrent loads like `loadProfile`; rejects like it: `not_found`
   * (`storeCode: 'profile_not_found'`), `validation_error` (`field: 'profileId'`). Event `loadProfileJson`.
   */
  loadProfileJson(profileId: string, options?: OperationOptions): Promise<string>
  /**
   * `loadProfileJson` of several profiles in one call: the texts in the order of `profileIds`, null for a profile
   * that does not exist. `validation_error` (`field: 'profileIds'` or `'profileIds[i]'`). One event
   * `loadProfilesJson` whose `rowCount` is the number found.
   */
  loadProfilesJson(profileIds: readonly string[], options?: OperationOptions): Promise<Array<string | null>>
  /**
   * Removes old audit rows in batches: each batch is one statement and one short transaction that removes at most
   * `batchSize` rows and never waits for a row lock (rows a save or delete holds are skipped, left for a later
   * prune). `listAuditEntries` cursors stay valid: pages after a prune simply end sooner. In a pruned history the
   * oldest kept row's `previous_revision` names a revision that is gone (`loadProfileRevision` of it is
   * `not_found`). Rejects with `validation_error` (nothing removed) when neither `keepLast` nor `olderThan` is
   * given or an option is out of range (`field` names it), `aborted` on `signal`, and the usual connection and
   * database codes; `error.pruned` then says what the committed batches removed. Event `pruneAuditEntries` whose
   * `rowCount` is `removedRows`. Needs DELETE and UPDATE (row locks) on the audit table.
   */
  pruneAuditEntries(options: PruneAuditOptions): Promise<PruneResult>

  /** Runs `schemaSql` (idempotent); for development and tests. */
  ensureSchema(options?: OperationOptions): Promise<void>
  /** Runs `upgradeSql` (idempotent). */
  upgradeFrom022(options?: OperationOptions): Promise<void>
  /** Server version and, per table, whether it exists and which expected columns it lacks. */
  checkSchema(options?: OperationOptions): Promise<SchemaCheck>
  /**
   * Native pool counters; null in executor mode or once closed. `available` counts open connections with no call
   * in flight.
   */
  poolStatus(): PoolStatus | null
  /**
   * An opaque token for `{ after: token }` on reads in another repository or process: they see every write this
   * repository had acknowledged, and `profileId` (when given) at least at the revision saved or seen here. Costs
   * one statement on the primary unless replicas are configured (then it is known). Rejects with
   * `validation_error` for a bad `profileId`, `connection_error`/`timeout` when the primary cannot be reached.
   */
  consistencyToken(profileId?: string, options?: OperationOptions): Promise<string>
  /** Each replica's state, in the order configured; null without replicas. */
  replicaStatus(): ReplicaStatus[] | null
  /**
   * Later calls reject with `closed`. Calls made before close() run to completion for up to `timeoutMillis` (ms, default
   * 5000); then the statements still running are cancelled (native mode) and their calls reject with `closed`, at most
   * 400 ms later. Resolves once every call has settled; never rejects.
   */
  close(options?: { timeoutMillis?: number }): Promise<void>
}
// Declaration merging: the class has every method of both interfaces, declared once, there.
export interface PostgresProfileStoreRepository extends DocumentProfileStoreRepository, ProfileStoreAdapter {}

export declare function createPostgresProfileStoreArtifacts(options?: ArtifactOptions): PostgresProfileStoreArtifacts

/** Native pool from `DATABASE_URL`, else the `PG*` variables. */
export declare function createPostgresProfileStoreRepository(): PostgresProfileStoreRepository
/** Native pool. */
export declare function createPostgresProfileStoreRepository(
  options: NativeConnectionOptions,
): PostgresProfileStoreRepository
/** Statements run through the caller's executor (or pg/postgres.js instance). */
export declare function createPostgresProfileStoreRepository(options: ExecutorOptions): PostgresProfileStoreRepository
/** The 0.2.2 call form. */
export declare function createPostgresProfileStoreRepository(
  executor: QueryExecutor | PgQueryable | PostgresJsSql,
  options?: RepositoryOptions,
): PostgresProfileStoreRepository

/**
 * Adapts a pg Pool/Client or a postgres.js `sql`. Statements are prepared per connection unless
 * `prepare: false` (for poolers that cannot keep prepared statements). When the repository call's `signal` or
 * `timeoutMillis` aborts it: with a pg Pool, the statement (run on a client checked out for it alone) is cancelled on
 * the server and that client is destroyed; with postgres.js, a query still waiting for a connection is dropped;
 * otherwise (a pg Client, a query postgres.js has sent) the statement runs to its end.
 */
export declare function createPostgresQueryExecutor(
  queryable: PgQueryable | PostgresJsSql,
  options?: { prepare?: boolean },
): QueryExecutor

/** Name of the diagnostics channel: `pson5:postgres-store`. */
export declare const DIAGNOSTICS_CHANNEL: 'pson5:postgres-store'

// ---- Tracing (README "Tracing and metrics") ----

/**
 * Name of the `node:diagnostics_channel` TracingChannel every public method runs in:
 * `diagnostics_channel.tracingChannel(TRACING_CHANNEL)` has start, end, asyncStart, asyncEnd and error events,
 * each with one `OperationTraceContext` per call, published in the caller's async context.
 */
export declare const TRACING_CHANNEL: 'pson5:postgres-store:operation'

/**
 * The context object of one call on `TRACING_CHANNEL`. Attribute names are the OpenTelemetry semantic
 * conventions 1.37.0 for database client spans. Never holds a document, a parameter value, a password or a
 * connection string.
 */
export interface OperationTraceContext {
  /** `db.operation.name`: the method called, e.g. `'saveProfile'`. */
  readonly operation: string
  /** `db.collection.name`: the schema-qualified table, e.g. `'public.pson_profiles'`; absent for `ensureSchema`, `upgradeFrom022`, `checkSchema`, `consistencyToken`. */
  readonly collection: string | undefined
  /** `db.namespace`: `'{database}|{schema}'`, or the schema when the database is unknown (a bare executor function). */
  readonly namespace: string
  /** `db.query.summary` and the span name: `'{operation} {collection}'`, or the operation alone. */
  readonly querySummary: string
  /** `server.address`: first configured host, IP or socket directory; absent for a bare executor function. */
  readonly serverAddress: string | undefined
  /** `server.port`. */
  readonly serverPort: number | undefined
  /**
   * `db.query.text`: the fixed, parameterised SQL of the operation's statement (no values; a coalesced call gives the
   * single-call statement); absent for operations that run several statements or a script.
   */
  readonly queryText: string | undefined
  /** Native pool or the caller's executor. */
  readonly mode: 'native' | 'executor'
  /** The call's `context` option (`pson5.context.*`); set when the call settles. */
  context: Record<string, unknown> | undefined
  /** Rows read or written, as in events; set on success. */
  rowCount: number | undefined
  /** `db.operation.batch.size`: how many callers' calls ran in the same statement (2 or more); absent when alone. */
  batchSize: number | undefined
  /** `pson5.profile.revision`: `metadata.revision` of the profile document the call returned. */
  revision: number | undefined
  /** `db.response.status_code`: SQLSTATE of a failed statement. */
  statusCode: string | undefined
  /** `error.type`: the SQLSTATE, else the error's `code` (e.g. `'conflict'`, `'timeout'`). */
  errorType: string | undefined
  /** The error the call rejected with (TracingChannel's own field, set before the `error` event). */
  error: PostgresStoreError | undefined
}
