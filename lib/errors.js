'use strict'

// The one place where failures become `PostgresStoreError`s with a stable `code`:
// native rejections (a JSON envelope written by src/error.rs), executor errors
// (node-postgres / postgres.js), and the checks of validate.js.

const kStoreError = Symbol.for('pson5.postgres-store.error')

const CODES = new Set([
  'validation_error',
  'not_found',
  'conflict',
  'connection_error',
  'timeout',
  'database_error',
  'closed',
  'aborted',
  'internal_error',
])

const DETAIL_FIELDS = ['field', 'storeCode', 'sqlState', 'detail', 'constraint', 'table', 'schema']

class PostgresStoreError extends Error {
  constructor(code, message, details = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause })
    this.name = 'PostgresStoreError'
    this.code = code
    decorate(this, code, details)
  }

  // Errors that must be an instance of serialization-engine's class (see
  // upstream.js) still count as ours.
  static [Symbol.hasInstance](value) {
    return value instanceof Error && value[kStoreError] === true
  }
}

function decorate(error, code, details) {
  Object.defineProperty(error, kStoreError, { value: true })
  error.code = code
  for (const key of DETAIL_FIELDS) {
    if (details[key] !== undefined && details[key] !== null) error[key] = details[key]
  }
  if (details.operation) error.operation = details.operation
  return error
}

function validationError(field, message) {
  return new PostgresStoreError('validation_error', `${field}: ${message}`, { field })
}

// One call's failure inside a crossing's answer: the envelope text only
// (src/error.rs), parsed once by fromNative into the caller's error.
class NativeFailure {
  constructor(envelope) {
    this.envelope = envelope
  }

  get message() {
    return this.envelope
  }

  toString() {
    return this.envelope
  }
}

// Node-API can only reject with a status as `code`, so src/error.rs puts the
// real error in the message as JSON.
function fromNative(error, operation) {
  if (error instanceof PostgresStoreError) return error
  let envelope
  try {
    envelope = JSON.parse(error instanceof NativeFailure ? error.envelope : error.message)
  } catch {
    envelope = null
  }
  if (envelope && CODES.has(envelope.code)) {
    return new PostgresStoreError(envelope.code, envelope.message, { ...envelope, operation })
  }
  // No envelope: a panic caught by napi, an argument napi could not convert,
  // or an exception of this package's JS.
  return internalError(error, operation)
}

// A fault of this package (a JS exception, a Rust panic), never the
// database's: `internal_error`, with the exception as `cause`.
function internalError(error, operation) {
  if (error instanceof PostgresStoreError) return error
  const message = error instanceof Error ? error.message : String(error)
  return new PostgresStoreError('internal_error', `internal error in @pson5/postgres-store: ${message}`, {
    operation,
    cause: error,
  })
}

// How executor failures map to our codes: the one table. Server errors by
// SQLSTATE (class or full code); driver failures by the driver's own code
// (postgres.js, and Node's socket and DNS errno, which both drivers pass on);
// node-postgres and pg-pool give no code, so theirs go by their fixed
// messages (pg 8 lib/client.js, pg-pool 3 index.js). A connect that times out
// is a connection_error and a wait for a free pooled connection a timeout,
// as in native mode.
const EXECUTOR_FAILURES = {
  sqlStates: [
    ['57014', 'timeout'], // query_canceled: statement_timeout
    ['08', 'connection_error'], // connection_exception
    ['57P', 'connection_error'], // admin or crash shutdown, cannot connect now, database dropped
    ['28', 'connection_error'], // invalid_authorization_specification (unknown role, bad password): at connect only
    ['3D000', 'connection_error'], // invalid_catalog_name (unknown database): at connect only
    ['53300', 'connection_error'], // too_many_connections: at connect only
  ],
  codes: new Map([
    // postgres.js
    ['CONNECT_TIMEOUT', 'connection_error'],
    ['CONNECTION_CLOSED', 'connection_error'],
    ['CONNECTION_DESTROYED', 'connection_error'],
    ['CONNECTION_ENDED', 'connection_error'],
    // Node sockets and DNS
    ['ECONNREFUSED', 'connection_error'],
    ['ECONNRESET', 'connection_error'],
    ['ECONNABORTED', 'connection_error'],
    ['EPIPE', 'connection_error'],
    ['ETIMEDOUT', 'connection_error'],
    ['EHOSTUNREACH', 'connection_error'],
    ['ENETUNREACH', 'connection_error'],
    ['EADDRNOTAVAIL', 'connection_error'],
    ['ENOTFOUND', 'connection_error'],
    ['EAI_AGAIN', 'connection_error'],
  ]),
  messages: new Map([
    // pg-pool: no client became free within connectionTimeoutMillis
    ['timeout exceeded when trying to connect', 'timeout'],
    // pg-pool: a new client did not connect within connectionTimeoutMillis
    ['Connection terminated due to connection timeout', 'connection_error'],
    // pg: a Client's own connectionTimeoutMillis
    ['timeout expired', 'connection_error'],
    // pg: query_timeout
    ['Query read timeout', 'timeout'],
    ['Connection terminated unexpectedly', 'connection_error'],
    ['Connection terminated', 'connection_error'],
    ['Client has encountered a connection error and is not queryable', 'connection_error'],
    ['Client was closed and is not queryable', 'connection_error'],
    ['Cannot use a pool after calling end on the pool', 'connection_error'],
  ]),
}

const SQLSTATE = /^[0-9A-Z]{5}$/

function sqlStateCode(sqlState) {
  for (const [prefix, code] of EXECUTOR_FAILURES.sqlStates) if (sqlState.startsWith(prefix)) return code
  return 'database_error'
}

// Errors thrown by a caller's executor (node-postgres, postgres.js, others).
function fromExecutor(error, operation) {
  if (error instanceof PostgresStoreError) return error
  const driverCode = typeof error?.code === 'string' ? error.code : ''
  const message = error?.message || String(error)
  const known = EXECUTOR_FAILURES.codes.get(driverCode) ?? EXECUTOR_FAILURES.messages.get(message)
  if (known !== undefined) return new PostgresStoreError(known, message, { operation, cause: error })
  if (SQLSTATE.test(driverCode)) {
    const code = sqlStateCode(driverCode)
    const details = { operation, sqlState: driverCode, cause: error }
    if (code !== 'database_error') return new PostgresStoreError(code, message, details)
    return new PostgresStoreError('database_error', message, {
      ...details,
      detail: error.detail,
      constraint: error.constraint ?? error.constraint_name,
      table: error.table ?? error.table_name,
      schema: error.schema ?? error.schema_name,
    })
  }
  return new PostgresStoreError('database_error', message, { operation, cause: error })
}

module.exports = { NativeFailure, PostgresStoreError, decorate, validationError, internalError, fromNative, fromExecutor }
