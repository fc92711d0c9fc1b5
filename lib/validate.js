'use strict'

// Input checks shared by every mode. They run before anything reaches Rust or
// the database: napi would silently turn a lone surrogate into U+FFFD, and a
// rejected call must leave every table as it was.

const { validationError } = require('./errors.js')
const native = require('./native.js')

const DEFAULT_MAX_DOCUMENT_BYTES = 16 * 1024 * 1024
const MAX_AUDIT_PAGE = 1000

const hasWellFormed = typeof String.prototype.isWellFormed === 'function'
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/

function badString(value) {
  if (value.includes('\u0000')) return 'contains \\u0000, which PostgreSQL text and jsonb cannot hold'
  if (hasWellFormed ? !value.isWellFormed() : LONE_SURROGATE.test(value)) {
    return 'contains a lone UTF-16 surrogate, which is not valid Unicode'
  }
  return null
}

function isPlainObject(value) {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false
  const proto = Object.getPrototypeOf(value)
  return proto === Object.prototype || proto === null
}

function pathOf(stack) {
  let out = ''
  for (const part of stack) {
    out += typeof part === 'number' ? `[${part}]` : out === '' ? part : `.${part}`
  }
  return out
}

// Walks a value the way JSON.stringify would and rejects whatever it would
// drop, change or choke on.
function checkJsonValue(value, stack, ancestors, seen = { transformed: false }) {
  switch (typeof value) {
    case 'string': {
      const problem = badString(value)
      if (problem) throw validationError(pathOf(stack), problem)
      return
    }
    case 'number':
      if (!Number.isFinite(value)) throw validationError(pathOf(stack), `${value} cannot be stored in JSON`)
      return
    case 'boolean':
      return
    case 'object':
      break
    default:
      throw validationError(pathOf(stack), `a ${typeof value} cannot be stored in JSON`)
  }
  if (value === null) return
  if (typeof value.toJSON === 'function') {
    seen.transformed = true
    checkJsonValue(value.toJSON(String(stack[stack.length - 1] ?? '')), stack, ancestors, seen)
    return
  }
  if (ancestors.has(value)) throw validationError(pathOf(stack), 'is a circular reference')
  ancestors.add(value)
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      stack.push(i)
      if (value[i] === undefined) throw validationError(pathOf(stack), 'undefined cannot be stored in a JSON array')
      checkJsonValue(value[i], stack, ancestors, seen)
      stack.pop()
    }
  } else if (isPlainObject(value)) {
    for (const key in value) {
      const item = value[key]
      stack.push(key)
      const keyProblem = badString(key)
      if (keyProblem) throw validationError(pathOf(stack), `key ${keyProblem}`)
      // JSON.stringify drops undefined properties; so do we (optional fields).
      if (item === undefined) seen.transformed = true
      else checkJsonValue(item, stack, ancestors, seen)
      stack.pop()
    }
  } else {
    const kind = value.constructor?.name ?? 'object'
    throw validationError(pathOf(stack), `a ${kind} cannot be stored in JSON without losing data`)
  }
  ancestors.delete(value)
}

// Ids are primary-key columns: a btree entry holds at most ~2.7 KB.
const MAX_ID_LENGTH = 512

// The largest revision (PostgreSQL `integer`), as src/store/sql.rs decides it.
let maxRevision
function maxRevisionValue() {
  maxRevision ??= native.binding().MAX_REVISION
  return maxRevision
}

function checkId(value, field) {
  if (typeof value !== 'string' || value.length === 0) throw validationError(field, 'must be a non-empty string')
  if (value.length > MAX_ID_LENGTH) throw validationError(field, `must be at most ${MAX_ID_LENGTH} characters`)
  const problem = badString(value)
  if (problem) throw validationError(field, problem)
  return value
}

// A profile document → `{ text, plain }` after every check the SPEC names;
// `plain`: JSON.stringify changed nothing (no toJSON, no undefined dropped),
// so the object itself is what the database will hold.
function profileText(profile, maxDocumentBytes, { requireRevision = false } = {}) {
  if (!isPlainObject(profile)) throw validationError('profile', 'must be a plain object')
  checkId(profile.profile_id, 'profile_id')
  checkId(profile.user_id, 'user_id')
  if (profile.tenant_id != null && typeof profile.tenant_id !== 'string') {
    throw validationError('tenant_id', 'must be a string when present')
  }
  if (profile.metadata !== undefined && !isPlainObject(profile.metadata)) {
    throw validationError('metadata', 'must be an object when present')
  }
  if (requireRevision) revisionNumber(profile.metadata?.revision, 'metadata.revision')
  const seen = { transformed: false }
  checkJsonValue(profile, [], new Set(), seen)
  const text = JSON.stringify(profile)
  // UTF-8 needs at most 3 bytes per UTF-16 unit: skip the count when it cannot matter.
  if (text.length * 3 > maxDocumentBytes) {
    const bytes = Buffer.byteLength(text)
    if (bytes > maxDocumentBytes) {
      throw validationError('profile', `is ${bytes} bytes as JSON, over maxDocumentBytes (${maxDocumentBytes})`)
    }
  }
  return { text, plain: !seen.transformed }
}

function contextOf(options) {
  const context = options?.context
  if (context === undefined || context === null) return undefined
  if (!isPlainObject(context)) throw validationError('context', 'must be a plain object')
  checkJsonValue(context, ['context'], new Set())
  return context
}

function optionalRevision(value, field) {
  if (value === undefined || value === null) return null
  if (!Number.isInteger(value) || value < 0 || value > maxRevisionValue()) {
    throw validationError(field, `must be an integer from 0 to ${maxRevisionValue()}`)
  }
  return value
}

function revisionNumber(value, field) {
  if (!Number.isInteger(value) || value < 1 || value > maxRevisionValue()) {
    throw validationError(field, `must be an integer from 1 to ${maxRevisionValue()}`)
  }
  return value
}

// A save statement returned no row: a conflict, unless the caller's expected
// revision (none, or the largest) matched a profile that is at the largest
// revision, which the statement refuses to go past (src/store/sql.rs).
function saveRefusal(profileId, expected) {
  if (expected === null || expected === maxRevisionValue()) {
    return validationError(
      'metadata.revision',
      `profile '${profileId}' is at revision ${maxRevisionValue()}, the largest a revision can be; nothing was written`,
    )
  }
  return null
}

function auditLimit(value) {
  if (value === undefined) return 50
  if (!Number.isInteger(value) || value < 1 || value > MAX_AUDIT_PAGE) {
    throw validationError('limit', `must be an integer from 1 to ${MAX_AUDIT_PAGE}`)
  }
  return value
}

// Cursors are opaque to callers: base64url of a versioned JSON position.
function encodeCursor(revision) {
  return Buffer.from(JSON.stringify({ v: 1, before: revision })).toString('base64url')
}

function decodeCursor(cursor) {
  if (cursor === undefined || cursor === null) return null
  if (typeof cursor === 'string') {
    try {
      const parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'))
      if (parsed?.v === 1 && Number.isInteger(parsed.before) && parsed.before > 0 && parsed.before <= maxRevisionValue()) {
        return parsed.before
      }
    } catch {
      // fall through to the validation error
    }
  }
  throw validationError('cursor', 'is not a cursor returned by listAuditEntries')
}

function userIndexRecord(record) {
  if (!isPlainObject(record)) throw validationError('record', 'must be a plain object')
  checkId(record.user_id, 'user_id')
  checkId(record.latest_profile_id, 'latest_profile_id')
  if (!Array.isArray(record.profile_ids)) throw validationError('profile_ids', 'must be an array of profile ids')
  const seen = new Set()
  record.profile_ids.forEach((id, i) => {
    checkId(id, `profile_ids[${i}]`)
    if (seen.has(id)) throw validationError(`profile_ids[${i}]`, `'${id}' is listed twice`)
    seen.add(id)
  })
  if (!seen.has(record.latest_profile_id)) {
    throw validationError('latest_profile_id', 'must be one of profile_ids')
  }
  if (!isIsoTimestamp(record.updated_at)) {
    throw validationError('updated_at', 'must be an ISO-8601 timestamp such as 2026-01-31T12:00:00.000Z')
  }
  return record
}

const ISO_TIMESTAMP = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,6})?)?(?:Z|[+-]\d{2}:?\d{2})$/

// Stricter than Date.parse, which accepts '2026', '2026-02-30' or '1', none
// of which PostgreSQL takes as a timestamptz.
function isIsoTimestamp(value) {
  const match = typeof value === 'string' ? ISO_TIMESTAMP.exec(value) : null
  if (!match) return false
  const [year, month, day, hour, minute, second] = match.slice(1, 7).map((part) => Number(part ?? 0))
  const date = new Date(Date.UTC(year, month - 1, day))
  return (
    year >= 1 &&
    date.getUTCFullYear() === year &&
    date.getUTCMonth() === month - 1 &&
    date.getUTCDate() === day &&
    hour < 24 &&
    minute < 60 &&
    second < 60
  )
}

function maxDocumentBytesOption(value) {
  if (value === undefined) return DEFAULT_MAX_DOCUMENT_BYTES
  if (!Number.isInteger(value) || value < 1) throw validationError('maxDocumentBytes', 'must be a positive integer')
  return value
}

module.exports = {
  isPlainObject,
  checkId,
  profileText,
  contextOf,
  optionalRevision,
  revisionNumber,
  saveRefusal,
  auditLimit,
  encodeCursor,
  decodeCursor,
  userIndexRecord,
  maxDocumentBytesOption,
}
