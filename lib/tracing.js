'use strict'

// Tracing: every public method of the repository runs inside the
// `node:diagnostics_channel` TracingChannel `pson5:postgres-store:operation`
// (start, end, asyncStart, asyncEnd, error), with one context object per
// call. As mysql2 (`mysql2:query`, `mysql2:execute`) and undici (the method
// and origin on the request object) do, the channel names the kind of work
// and the context says which operation it is: one subscription sees every
// operation, and a new method needs no new channel.
//
// The context holds what the OpenTelemetry database client conventions ask
// for (see OperationTrace) and never a document: the events are published
// here rather than with `tracePromise`, which would put each call's result
// (a document) in the context. When nobody subscribes, a call costs one
// `hasSubscribers` check.
//
// Also here: the repository's telemetry target (server, namespace, tables),
// how it is read from a pg/postgres.js queryable, and the registry of live
// native pools that metrics read poolStatus() from.

const diagnosticsChannel = require('node:diagnostics_channel')

const TRACING_CHANNEL = 'pson5:postgres-store:operation'
const channels = diagnosticsChannel.tracingChannel(TRACING_CHANNEL)

// TracingChannel#hasSubscribers is Node >= 20.13; before that, ask each channel.
const isTraced =
  typeof channels.hasSubscribers === 'boolean'
    ? () => channels.hasSubscribers
    : () =>
        channels.start.hasSubscribers ||
        channels.end.hasSubscribers ||
        channels.asyncStart.hasSubscribers ||
        channels.asyncEnd.hasSubscribers ||
        channels.error.hasSubscribers

// The table each operation is about (db.collection.name), as a key of
// `artifacts.tables`; administration has none.
const COLLECTIONS = {
  readCurrentProfile: 'profiles',
  writeCurrentProfile: 'profiles',
  writeProfileRevision: 'profileAudit',
  listProfileRevisionNumbers: 'profileAudit',
  readUserProfileIndex: 'domainIndex',
  writeUserProfileIndex: 'domainIndex',
  loadProfile: 'profiles',
  loadProfileJson: 'profiles',
  loadProfilesJson: 'profiles',
  profileExists: 'profiles',
  loadProfileByUserId: 'profiles',
  findProfilesByUserId: 'domainIndex',
  listProfileRevisions: 'profileAudit',
  saveProfile: 'profiles',
  deleteProfile: 'profiles',
  listAuditEntries: 'profileAudit',
  loadProfileRevision: 'profileAudit',
  pruneAuditEntries: 'profileAudit',
  diffRevisions: 'profileAudit',
  revertProfile: 'profiles',
  blameProfile: 'profileAudit',
  eraseFromHistory: 'profileAudit',
  deleteProfilesByUserId: 'profiles',
  // Forms of an operation that its options change (see formOf).
  loadProfileAsOf: 'profileAudit',
  mergeSave: 'profiles',
}

// The statement (of `artifacts.queries`) an operation runs alone (its
// db.query.text), then the one its call shares with others when coalesced
// (native mode). Operations that run several statements or a script
// (pruneAuditEntries, checkSchema, ensureSchema, upgradeFrom022) have no
// single query text.
const STATEMENTS = {
  readCurrentProfile: ['loadProfile', 'loadProfiles'],
  loadProfile: ['loadProfile', 'loadProfiles'],
  loadProfileJson: ['loadProfile', 'loadProfiles'],
  loadProfilesJson: ['loadProfile', 'loadProfiles'],
  findProfilesByUserId: ['findProfilesByUserId', 'findProfilesByUserIds'],
  saveProfile: ['saveProfile', 'saveProfiles'],
  writeCurrentProfile: ['writeCurrentProfile'],
  writeProfileRevision: ['writeProfileRevision'],
  listProfileRevisionNumbers: ['listRevisionNumbers'],
  listProfileRevisions: ['listRevisionNumbers'],
  readUserProfileIndex: ['readUserProfileIndex'],
  writeUserProfileIndex: ['writeUserProfileIndex'],
  profileExists: ['profileExists'],
  loadProfileByUserId: ['loadProfileByUserId'],
  deleteProfile: ['deleteProfile'],
  listAuditEntries: ['listAuditEntries'],
  loadProfileRevision: ['loadProfileRevision'],
  diffRevisions: ['loadRevisionPair'],
  revertProfile: ['revertProfile'],
  blameProfile: ['listAuditSnapshots'],
  eraseFromHistory: ['eraseFromHistory'],
  deleteProfilesByUserId: ['deleteProfilesByUserId'],
  loadProfileAsOf: ['loadProfileAsOf'],
}

// What an operation runs when its options change it: loadProfile({ asOf })
// reads the audit log, saveProfile({ merge }) reads a base and saves
// (several statements, so no single query text).
function formOf(operation, options) {
  if (options === null || typeof options !== 'object') return operation
  if (operation === 'loadProfile' && options.asOf !== undefined && options.asOf !== null) return 'loadProfileAsOf'
  if (operation === 'saveProfile' && options.merge !== undefined && options.merge !== null) return 'mergeSave'
  return operation
}

/**
 * What a repository's telemetry says about where it runs: mode, server,
 * namespace and table names. `server` is a function that resolves
 * `{ address?, port?, database? }`, called once, at the first traced call.
 */
class Telemetry {
  #server
  #resolved = null
  #collections = null

  constructor({ mode, schema, artifacts, server }) {
    this.mode = mode
    this.schema = schema
    this.artifacts = artifacts
    this.#server = server
  }

  /** `{ address?, port?, database?, namespace }` (db.namespace is `{database}|{schema}`). */
  get target() {
    if (this.#resolved === null) {
      let server = {}
      try {
        server = this.#server?.() ?? {}
      } catch {
        // Telemetry never fails a call: a target it cannot tell is left out.
      }
      // The function may hold connection options (and so a password): keep only the result.
      this.#server = null
      const { address, port, database } = server
      this.#resolved = {
        address: typeof address === 'string' && address !== '' ? address : undefined,
        port: Number.isInteger(port) ? port : undefined,
        database: typeof database === 'string' && database !== '' ? database : undefined,
        namespace: typeof database === 'string' && database !== '' ? `${database}|${this.schema}` : this.schema,
      }
    }
    return this.#resolved
  }

  /** The schema-qualified table an operation (or form, see formOf) is about, unquoted (`public.pson_profiles`), or undefined. */
  collection(operation) {
    this.#collections ??= Object.fromEntries(
      Object.entries(this.artifacts.tables).map(([key, quoted]) => [key, unquote(quoted)]),
    )
    const key = COLLECTIONS[operation]
    return key === undefined ? undefined : this.#collections[key]
  }
}

// `"a"."b""c"` → `a.b"c` (the identifiers as the application configured them).
function unquote(qualified) {
  const parts = qualified.match(/"(?:[^"]|"")*"/g)
  if (parts === null) return qualified
  return parts.map((part) => part.slice(1, -1).replaceAll('""', '"')).join('.')
}

/**
 * The context object of one call on the tracing channel. Its fields, with
 * the OpenTelemetry attribute each one is (semantic conventions 1.37,
 * database client spans):
 *   operation      db.operation.name    the method name, e.g. 'saveProfile'
 *   collection     db.collection.name   'public.pson_profiles' (absent for schema administration)
 *   namespace      db.namespace         '{database}|{schema}', or the schema
 *   querySummary   db.query.summary     '{operation} {collection}'; the span name
 *   serverAddress  server.address       host, IP or socket directory, when known
 *   serverPort     server.port
 *   queryText      db.query.text        the parameterised statement (a getter)
 *   mode           'native' | 'executor'
 * and, once the call has settled:
 *   context        pson5.context.*      the call's `context` option
 *   rowCount       (as in events)
 *   batchSize      db.operation.batch.size   callers whose calls ran in the same statement (2 or more)
 *   revision       pson5.profile.revision    the revision of the profile document returned
 *   statusCode     db.response.status_code   SQLSTATE of a failed statement
 *   errorType      error.type           the SQLSTATE, else the error's `code`
 *   error          the PostgresStoreError (TracingChannel's own field)
 * Never a document, a parameter value, a password or a connection string.
 */
class OperationTrace {
  // Private fields (not defineProperty): invisible to subscribers that walk
  // the context, and cheap to set on every traced call.
  #telemetry
  #form

  constructor(operation, telemetry, options) {
    const target = telemetry.target
    const form = formOf(operation, options)
    const collection = telemetry.collection(form)
    this.operation = operation
    this.collection = collection
    this.namespace = target.namespace
    this.querySummary = collection === undefined ? operation : `${operation} ${collection}`
    this.serverAddress = target.address
    this.serverPort = target.port
    this.mode = telemetry.mode
    this.context = undefined
    this.rowCount = undefined
    this.batchSize = undefined
    this.revision = undefined
    this.statusCode = undefined
    this.errorType = undefined
    this.error = undefined
    this.#telemetry = telemetry
    this.#form = form
  }

  /**
   * db.query.text: the fixed, parameterised SQL of the operation's statement
   * (never parameter values). A coalesced call reports the statement it would
   * have run alone, as the conventions ask of batches whose operations share
   * one query text.
   */
  get queryText() {
    const names = STATEMENTS[this.#form]
    return names === undefined ? undefined : this.#telemetry.artifacts.queries[names[0]]
  }

  /** Records a batch of `size` callers (the largest, when one call ran several statements). */
  sharedWith(size) {
    if (size > 1 && !(this.batchSize >= size)) this.batchSize = size
  }

  /**
   * The server the read-replica router sent the call to (`host:port`, the
   * address in its events): it replaces the repository's own target.
   */
  servedBy(address) {
    const hostPort = /^(.+):(\d+)$/.exec(address)
    if (hostPort === null) return
    this.serverAddress = hostPort[1]
    this.serverPort = Number(hostPort[2])
  }

  succeeded(value, rowCount, context) {
    this.context = context
    this.rowCount = rowCount
    const revision = value !== null && typeof value === 'object' ? value.metadata?.revision : undefined
    if (Number.isInteger(revision)) this.revision = revision
  }

  failed(error, context) {
    this.context = context
    if (typeof error.sqlState === 'string') this.statusCode = error.sqlState
    this.errorType = this.statusCode ?? error.code ?? error.name
  }
}

/**
 * Runs `fn(trace)` (which returns a promise) inside the tracing channel's
 * events, as TracingChannel#tracePromise does (start around the synchronous
 * part with the subscribers' stores entered, end after it, then error,
 * asyncStart and asyncEnd when the promise settles, in the caller's async
 * context) but without putting the result in the context.
 */
function traceOperation(trace, fn) {
  const { start, end, asyncStart, asyncEnd, error } = channels
  const resolved = (value) => {
    asyncStart.publish(trace)
    asyncEnd.publish(trace)
    return value
  }
  const rejected = (failure) => {
    trace.error = failure
    error.publish(trace)
    asyncStart.publish(trace)
    asyncEnd.publish(trace)
    throw failure
  }
  return start.runStores(trace, () => {
    try {
      return fn(trace).then(resolved, rejected)
    } catch (failure) {
      trace.error = failure
      error.publish(trace)
      throw failure
    } finally {
      end.publish(trace)
    }
  })
}

/**
 * `{ address, port, database }` of a node-postgres Pool/Client or a
 * postgres.js `sql`, from its own options (never the user or password);
 * empty for an executor function.
 */
function describeQueryable(queryable) {
  if (queryable === undefined || queryable === null) return {}
  // postgres.js: host and port are lists (multi-host); the first is tried first.
  if (typeof queryable.unsafe === 'function' && queryable.options) {
    const { host, port, path: socket, database } = queryable.options
    return {
      address: socket || (Array.isArray(host) ? host[0] : host),
      port: Array.isArray(port) ? port[0] : port,
      database,
    }
  }
  // pg.Client resolves its parameters (options, URL, PG* variables) on construction.
  const parameters = queryable.connectionParameters
  if (parameters) return { address: parameters.host, port: Number(parameters.port), database: parameters.database }
  // pg.Pool keeps the options it was given.
  const options = queryable.options ?? {}
  const fromUrl = parseUrl(options.connectionString)
  return {
    address: options.host ?? fromUrl.address ?? process.env.PGHOST ?? 'localhost',
    port: Number(options.port ?? fromUrl.port ?? process.env.PGPORT ?? 5432),
    database: options.database ?? fromUrl.database ?? process.env.PGDATABASE,
  }
}

function parseUrl(connectionString) {
  if (typeof connectionString !== 'string') return {}
  try {
    const url = new URL(connectionString)
    const host = url.searchParams.get('host') ?? (url.hostname ? decodeURIComponent(url.hostname) : undefined)
    return {
      address: host || undefined,
      port: url.port ? Number(url.port) : undefined,
      database: url.pathname.length > 1 ? decodeURIComponent(url.pathname.slice(1)) : undefined,
    }
  } catch {
    return {}
  }
}

// ---- the live native pools, for pool metrics ----

const pools = new Set()
const forget = new FinalizationRegistry((ref) => pools.delete(ref))

/** Remembers a native repository (weakly) so that metrics can read its poolStatus(). */
function registerPool(repository, telemetry) {
  const ref = new WeakRef(repository)
  ref.telemetry = telemetry
  pools.add(ref)
  forget.register(repository, ref)
}

/** `[{ repository, telemetry }]` of the native repositories alive and not closed. */
function livePools() {
  const live = []
  for (const ref of pools) {
    const repository = ref.deref()
    if (repository === undefined) pools.delete(ref)
    else live.push({ repository, telemetry: ref.telemetry })
  }
  return live
}

module.exports = {
  TRACING_CHANNEL,
  OperationTrace,
  Telemetry,
  describeQueryable,
  isTraced,
  livePools,
  registerPool,
  traceOperation,
}
