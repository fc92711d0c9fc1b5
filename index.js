'use strict'

// @pson5/postgres-store: the public entry. The call forms, artifacts and the
// executor adapter live here; the repository is in lib/repository.js and the
// native core (pool, statements, row decoding) in Rust (src/).

const { PostgresStoreError, fromNative, validationError } = require('./lib/errors.js')
const { nativeDriver, executorDriver, createPostgresQueryExecutor } = require('./lib/drivers.js')
const { PostgresProfileStoreRepository } = require('./lib/repository.js')
const { CHANNEL_NAME } = require('./lib/events.js')
const { TRACING_CHANNEL, Telemetry, describeQueryable, registerPool } = require('./lib/tracing.js')
const {
  LEGACY_TABLE_OPTIONS,
  NATIVE_OPTIONS,
  REPLICA_INHERITED_OPTIONS,
  artifactOptions,
  isPlainObject,
  maxDocumentBytesOption,
} = require('./lib/validate.js')
const native = require('./lib/native.js')
const { ReplicaRouter, addressOf, executorAddress, replicaSettings, wantsReplicas } = require('./lib/replicas.js')

const artifactCache = new Map()

/**
 * The DDL, upgrade script, table names and statement texts for a schema and
 * table prefix. Identifiers are validated and quoted in Rust (src/store/sql.rs).
 */
function createPostgresProfileStoreArtifacts(options) {
  const { schema, tablePrefix, legacyTables } = artifactOptions(options)
  const key = JSON.stringify([schema, tablePrefix, legacyTables])
  let artifacts = artifactCache.get(key)
  if (artifacts === undefined) {
    const binding = native.binding()
    let raw
    try {
      raw = binding.artifacts(schema, tablePrefix, legacyTables)
    } catch (error) {
      throw fromNative(error, 'createPostgresProfileStoreArtifacts')
    }
    artifacts = Object.freeze({
      schemaSql: raw.schemaSql,
      upgradeSql: raw.upgradeSql,
      tables: Object.freeze({ ...raw.tables }),
      queries: Object.freeze({ ...raw.queries }),
      columns: Object.freeze(Object.fromEntries(Object.entries(raw.columns).map(([name, list]) => [name, Object.freeze(list)]))),
    })
    artifactCache.set(key, artifacts)
  }
  return artifacts
}

function isPostgresJs(value) {
  return typeof value === 'function' && typeof value.unsafe === 'function'
}

/**
 * Four call forms:
 *   ()                      native pool from DATABASE_URL, else PG* variables
 *   ({ connectionString?, host?, ..., schema?, tablePrefix? })   native pool
 *   ({ exec, schema?, tablePrefix?, ... })                        caller's executor
 *   (executor, options?)                                          0.2.2 form
 * A pg Pool/Client or postgres.js `sql` passed as `exec` or first argument is
 * adapted with createPostgresQueryExecutor.
 */
function createPostgresProfileStoreRepository(first, second) {
  let exec
  let options
  // The pg/postgres.js object behind an adapted executor (for telemetry).
  let queryable
  if (first === undefined || first === null) {
    options = { connectionString: process.env.DATABASE_URL || undefined }
  } else if (typeof first === 'function' && !isPostgresJs(first)) {
    exec = first
    options = second ?? {}
  } else if (isPostgresJs(first) || typeof first?.query === 'function') {
    options = second ?? {}
    exec = createPostgresQueryExecutor(first, { prepare: options.prepare })
    queryable = first
  } else if (isPlainObject(first)) {
    options = first
    if (first.exec !== undefined) {
      if (typeof first.exec === 'function' && !isPostgresJs(first.exec)) {
        exec = first.exec
      } else {
        exec = createPostgresQueryExecutor(first.exec, { prepare: first.prepare })
        queryable = first.exec
      }
    }
  } else {
    throw validationError('options', 'expected nothing, an options object, or an executor function')
  }
  if (!isPlainObject(options)) throw validationError('options', 'must be an object')
  if (options.onEvent !== undefined && typeof options.onEvent !== 'function') {
    throw validationError('onEvent', 'must be a function')
  }
  const { profileStoreErrorClass } = options
  if (profileStoreErrorClass !== undefined && typeof profileStoreErrorClass !== 'function') {
    throw validationError('profileStoreErrorClass', "must be serialization-engine's ProfileStoreError class")
  }
  const settings = {
    onEvent: options.onEvent,
    maxDocumentBytes: maxDocumentBytesOption(options.maxDocumentBytes),
    profileStoreErrorClass,
  }
  const artifacts = createPostgresProfileStoreArtifacts(
    pick(options, ['schema', 'tablePrefix', ...LEGACY_TABLE_OPTIONS]),
  )
  const where = `schema ${options.schema ?? 'public'}, prefix ${options.tablePrefix ?? 'pson_'}`
  const schema = options.schema ?? 'public'

  // Read replicas (lib/replicas.js): checked before any pool is made.
  const replicas = wantsReplicas(options) ? replicaSettings(options) : null
  const label = (mode) => `${mode}, ${where}${replicas ? `, ${replicas.replicas.length} replicas` : ''}`
  if (exec !== undefined) {
    let driver = executorDriver(exec, artifacts)
    if (replicas) driver = routedDriver(driver, executorAddress(options.exec ?? first, -1), replicas, options, artifacts)
    return new PostgresProfileStoreRepository(driver, {
      ...settings,
      telemetry: new Telemetry({ mode: 'executor', schema, artifacts, server: () => describeQueryable(queryable) }),
      label: label('executor'),
    })
  }
  const nativeOptions = pick(options, NATIVE_OPTIONS)
  let driver = nativeStoreDriver(nativeOptions)
  if (replicas) {
    try {
      driver = routedDriver(driver, addressOf(nativeOptions), replicas, options, artifacts)
    } catch (error) {
      driver.close()
      throw error
    }
  }
  const telemetry = new Telemetry({
    mode: 'native',
    schema,
    artifacts,
    server: () => native.binding().serverTarget(nativeOptions),
  })
  const store = new PostgresProfileStoreRepository(driver, { ...settings, telemetry, label: label('native') })
  registerPool(store, telemetry)
  return store
}

// A native pool and its driver.
function nativeStoreDriver(nativeOptions) {
  const { NativeRepository, LOADS_PER_CROSSING, FINDS_PER_CROSSING, SAVES_PER_CROSSING, CROSSING_BYTES } = native.binding()
  let repository
  try {
    repository = new NativeRepository(nativeOptions)
  } catch (error) {
    throw fromNative(error, 'createPostgresProfileStoreRepository')
  }
  const perCrossing = {
    loads: LOADS_PER_CROSSING,
    finds: FINDS_PER_CROSSING,
    saves: SAVES_PER_CROSSING,
    bytes: CROSSING_BYTES,
  }
  return nativeDriver(repository, perCrossing)
}

// The primary's driver behind a ReplicaRouter, with one driver per replica.
function routedDriver(primary, primaryAddress, { replicas, ...settings }, options, artifacts) {
  const made = []
  try {
    replicas.forEach((replica, i) => {
      if (replica.kind === 'executor') {
        const exec =
          typeof replica.exec === 'function' && !isPostgresJs(replica.exec)
            ? replica.exec
            : createPostgresQueryExecutor(replica.exec, { prepare: options.prepare })
        made.push({ driver: executorDriver(exec, artifacts), address: executorAddress(replica.exec, i) })
      } else {
        const own = pick(replica.options, NATIVE_OPTIONS)
        for (const name of ['schema', 'tablePrefix', ...LEGACY_TABLE_OPTIONS]) {
          if (own[name] !== undefined) throw validationError(`replicas[${i}].${name}`, 'replicas use the repository\'s tables')
        }
        const replicaOptions = { ...pick(options, REPLICA_INHERITED_OPTIONS), ...own }
        made.push({ driver: nativeStoreDriver(replicaOptions), address: addressOf(replicaOptions) })
      }
    })
  } catch (error) {
    for (const { driver } of made) driver.close()
    throw error
  }
  return new ReplicaRouter(primary, primaryAddress, made, settings)
}

// The options of `names` that are set (not undefined or null).
function pick(options, names) {
  const picked = {}
  for (const name of names) {
    if (options[name] !== undefined && options[name] !== null) picked[name] = options[name]
  }
  return picked
}

module.exports = {
  createPostgresProfileStoreArtifacts,
  createPostgresProfileStoreRepository,
  createPostgresQueryExecutor,
  PostgresStoreError,
  PostgresProfileStoreRepository,
  DIAGNOSTICS_CHANNEL: CHANNEL_NAME,
  TRACING_CHANNEL,
}
