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

// Node-API can only reject with a status as `code`, so src/error.rs puts the
// real error in the message as JSON.
function fromNative(error, operation) {
  if (error instanceof PostgresStoreError) return error
  let envelope
  try {
    envelope = JSON.parse(error.message)
  } catch {
    envelope = null
  }
  if (envelope && CODES.has(envelope.code)) {
    return new PostgresStoreError(envelope.code, envelope.message, { ...envelope, operation })
  }
  // Not ours: a panic caught by napi or an argument napi could not convert.
  return new PostgresStoreError('database_error', `native call failed: ${error.message}`, { operation, cause: error })
}

const CONNECTION_ERRNOS = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH'])

// Errors thrown by a caller's executor (node-postgres, postgres.js, others).
function fromExecutor(error, operation) {
  if (error instanceof PostgresStoreError) return error
  const code = typeof error?.code === 'string' ? error.code : ''
  const message = error?.message || String(error)
  if (/^[0-9A-Z]{5}$/.test(code)) {
    if (code === '57014') return new PostgresStoreError('timeout', message, { operation, sqlState: code, cause: error })
    if (code.startsWith('08') || code.startsWith('57P')) {
      return new PostgresStoreError('connection_error', message, { operation, sqlState: code, cause: error })
    }
    return new PostgresStoreError('database_error', message, {
      operation,
      sqlState: code,
      detail: error.detail,
      constraint: error.constraint ?? error.constraint_name,
      table: error.table ?? error.table_name,
      schema: error.schema ?? error.schema_name,
      cause: error,
    })
  }
  if (CONNECTION_ERRNOS.has(code) || code.startsWith('CONNECT') || /connection|terminated/i.test(message)) {
    const timedOut = code === 'CONNECT_TIMEOUT' || /timeout/i.test(message)
    return new PostgresStoreError(timedOut ? 'timeout' : 'connection_error', message, { operation, cause: error })
  }
  return new PostgresStoreError('database_error', message, { operation, cause: error })
}

module.exports = { PostgresStoreError, decorate, validationError, fromNative, fromExecutor }
