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

// The deepest nesting of objects and arrays a document (or a context) may
// have; the profile itself is level 1. JSON.stringify and PostgreSQL's jsonb
// parser are both recursive: V8's gives up at about 4,000 levels on the main
// thread (fewer when the caller is deep in its own stack), PostgreSQL's at
// about 10,000 with the default max_stack_depth of 2MB (SQLSTATE 54001).
// 1,000 is far from both, and far deeper than any profile.
const MAX_DEPTH = 1000

function pathOf(stack) {
  let out = ''
  for (const part of stack) {
    out += typeof part === 'number' ? `[${part}]` : out === '' ? part : `.${part}`
  }
  return out
}

// Walks a value the way JSON.stringify does (toJSON, then the value) and
// rejects what JSON.stringify would choke on or what PostgreSQL cannot hold.
// Returns `exact`: JSON.parse(JSON.stringify(value)) is
// util.isDeepStrictEqual to `value`, so the caller's object can stand for the
// stored document. It is not when JSON changes something: toJSON, dropped
// undefined values and symbol keys, -0 (written as 0), a null prototype, an
// Array subclass, or named properties of an array. `stack` is the path so far;
// MAX_DEPTH bounds the recursion.
function checkJsonValue(value, stack, ancestors, inArray = false) {
  let exact = true
  if (value !== null && typeof value === 'object' && typeof value.toJSON === 'function') {
    exact = false
    value = value.toJSON(String(stack.length === 0 ? '' : stack[stack.length - 1]))
  }
  switch (typeof value) {
    case 'string': {
      const problem = badString(value)
      if (problem) throw validationError(pathOf(stack), problem)
      return exact
    }
    case 'number':
      if (!Number.isFinite(value)) throw validationError(pathOf(stack), `${value} cannot be stored in JSON`)
      return exact && !(value === 0 && 1 / value < 0)
    case 'boolean':
      return exact
    case 'undefined':
      // JSON.stringify drops undefined properties; so do we (optional fields).
      if (inArray) throw validationError(pathOf(stack), 'undefined cannot be stored in a JSON array')
      return false
    case 'object':
      break
    default:
      throw validationError(pathOf(stack), `a ${typeof value} cannot be stored in JSON`)
  }
  if (value === null) return exact
  if (ancestors.has(value)) throw validationError(pathOf(stack), 'is a circular reference')
  if (ancestors.size >= MAX_DEPTH) {
    throw validationError(pathOf(stack), `nests objects and arrays deeper than ${MAX_DEPTH} levels`)
  }
  ancestors.add(value)
  if (Array.isArray(value)) {
    if (Object.getPrototypeOf(value) !== Array.prototype) exact = false
    for (let i = 0; i < value.length; i++) {
      stack.push(i)
      if (!checkJsonValue(value[i], stack, ancestors, true)) exact = false
      stack.pop()
    }
    // Named properties of an array are not JSON; util.isDeepStrictEqual sees them.
    if (exact && Object.keys(value).length !== value.length) exact = false
  } else {
    const proto = Object.getPrototypeOf(value)
    if (proto !== Object.prototype) {
      if (proto !== null) {
        const kind = value.constructor?.name ?? 'object'
        throw validationError(pathOf(stack), `a ${kind} cannot be stored in JSON without losing data`)
      }
      exact = false
    } else if (exact && Object.getOwnPropertySymbols(value).length > 0) {
      exact = false
    }
    for (const key of Object.keys(value)) {
      stack.push(key)
      const keyProblem = badString(key)
      if (keyProblem) throw validationError(pathOf(stack), `key ${keyProblem}`)
      if (!checkJsonValue(value[key], stack, ancestors)) exact = false
      stack.pop()
    }
  }
  ancestors.delete(value)
  return exact
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

// A profile document → `{ text, document, exact }` after every check the
// SPEC names. `text` is what the database stores; `document` is the caller's
// object when `exact` (JSON changes nothing in it), else the parsed `text`
// (toJSON, dropped properties...), which the top-level checks then see too.
function profileText(profile, maxDocumentBytes, { requireRevision = false } = {}) {
  checkProfileFields(profile, requireRevision)
  const exact = checkJsonValue(profile, [], new Set())
  const text = JSON.stringify(profile)
  // UTF-8 needs at most 3 bytes per UTF-16 unit: skip the count when it cannot matter.
  if (text.length * 3 > maxDocumentBytes) {
    const bytes = Buffer.byteLength(text)
    if (bytes > maxDocumentBytes) {
      throw validationError('profile', `is ${bytes} bytes as JSON, over maxDocumentBytes (${maxDocumentBytes})`)
    }
  }
  if (exact) return { text, document: profile, exact }
  const document = JSON.parse(text)
  checkProfileFields(document, requireRevision)
  return { text, document, exact }
}

// The fields the store reads from a document.
function checkProfileFields(profile, requireRevision) {
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
      if (
        parsed?.v === 1 &&
        Number.isInteger(parsed.before) &&
        parsed.before > 0 &&
        parsed.before <= maxRevisionValue()
      ) {
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
  const updatedAt = instantInput(record.updated_at)
  if (updatedAt === null) {
    throw validationError(
      'updated_at',
      'must be an ISO-8601 instant with an offset, such as 2026-01-31T12:00:00.000Z, from -004713-11-24T00:00:00Z ' +
        'to +294276-12-31T23:59:59.999999Z (the range of timestamptz)',
    )
  }
  return { ...record, updated_at: updatedAt }
}

// An ISO-8601 instant as Date#toISOString writes it, or as PostgreSQL
// prints it: a 4-digit year, a signed 6-digit (expanded) year, or an
// unsigned year of 5-6 digits; minutes, seconds and 1-6 fraction digits
// (timestamptz keeps microseconds); and an offset, because without one the
// server would read the time in its session's time zone.
const ISO_INSTANT =
  /^([+-]\d{6}|\d{4}|[1-9]\d{4,5})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?(?:([Zz])|([+-])(\d{2})(?::?(\d{2}))?)$/

// Days since 1970-01-01 of a proleptic Gregorian date with astronomical year
// numbering (year 0 is 1 BC), as PostgreSQL counts them (H. Hinnant's
// days_from_civil). Date.UTC cannot do this: it maps years 0-99 to 1900-1999
// and ends at +275760, before timestamptz does.
function daysFromCivil(year, month, day) {
  const y = month <= 2 ? year - 1 : year
  const era = Math.floor(y / 400)
  const yearOfEra = y - era * 400
  const dayOfYear = Math.floor((153 * (month + (month > 2 ? -3 : 9)) + 2) / 5) + day - 1
  const dayOfEra = yearOfEra * 365 + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100) + dayOfYear
  return era * 146097 + dayOfEra - 719468
}

function civilFromDays(days) {
  const z = days + 719468
  const era = Math.floor(z / 146097)
  const dayOfEra = z - era * 146097
  const yearOfEra = Math.floor(
    (dayOfEra - Math.floor(dayOfEra / 1460) + Math.floor(dayOfEra / 36524) - Math.floor(dayOfEra / 146096)) / 365,
  )
  const dayOfYear = dayOfEra - (365 * yearOfEra + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100))
  const mp = Math.floor((5 * dayOfYear + 2) / 153)
  const day = dayOfYear - Math.floor((153 * mp + 2) / 5) + 1
  const month = mp < 10 ? mp + 3 : mp - 9
  return { year: yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day }
}

const isLeapYear = (year) => year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0)
const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]

// timestamptz's range, in days since 1970-01-01 (UTC): 4714-11-24 BC
// (astronomical -4713) to 294276-12-31 AD.
const FIRST_DAY = daysFromCivil(-4713, 11, 24)
const LAST_DAY = daysFromCivil(294276, 12, 31)
// PostgreSQL refuses offsets from 16 hours on.
const MAX_OFFSET_MINUTES = 15 * 60 + 59

const pad = (value, width) => String(value).padStart(width, '0')

// The instant `value` names, as text PostgreSQL reads back to the same
// instant (UTC; BC years with its `BC` suffix, since it rejects year 0 and
// negative years), or null when `value` is not an ISO-8601 instant that
// timestamptz can hold exactly (leap seconds and a 7th fraction digit would be
// changed by the server, so they are refused too).
function instantInput(value) {
  const match = typeof value === 'string' ? ISO_INSTANT.exec(value) : null
  if (match === null) return null
  const [
    ,
    yearText,
    monthText,
    dayText,
    hourText,
    minuteText,
    secondText,
    fraction,
    zulu,
    sign,
    offsetHours,
    offsetMinutes,
  ] = match
  if (yearText === '-000000') return null // ISO-8601 and ECMAScript: year zero is +000000 or 0000
  const year = Number(yearText)
  const [month, day, hour, minute, second] = [monthText, dayText, hourText, minuteText, secondText ?? '0'].map(Number)
  if (month < 1 || month > 12) return null
  const monthDays = month === 2 && isLeapYear(year) ? 29 : DAYS_IN_MONTH[month - 1]
  if (day < 1 || day > monthDays || minute > 59 || second > 59) return null
  // 24:00 is the end of a day (ISO-8601), the same instant as the next 00:00.
  if (hour > 24 || (hour === 24 && (minute > 0 || second > 0 || /[1-9]/.test(fraction ?? '')))) return null
  let offset = 0
  if (zulu === undefined) {
    offset = Number(offsetHours) * 60 + Number(offsetMinutes ?? 0)
    if (Number(offsetMinutes ?? 0) > 59 || offset > MAX_OFFSET_MINUTES) return null
    if (sign === '-') offset = -offset
  }
  // Minutes since 1970-01-01T00:00Z, then back to a UTC calendar date.
  const minutes = daysFromCivil(year, month, day) * 1440 + hour * 60 + minute - offset
  const days = Math.floor(minutes / 1440)
  if (days < FIRST_DAY || days > LAST_DAY) return null
  const minuteOfDay = minutes - days * 1440
  const utc = civilFromDays(days)
  const era = utc.year <= 0 ? ' BC' : ''
  const time = `${pad(Math.floor(minuteOfDay / 60), 2)}:${pad(minuteOfDay % 60, 2)}:${pad(second, 2)}`
  const micros = (fraction ?? '').padEnd(6, '0')
  return `${pad(utc.year <= 0 ? 1 - utc.year : utc.year, 4)}-${pad(utc.month, 2)}-${pad(utc.day, 2)}T${time}.${micros}Z${era}`
}

// 0.2.2's options naming its own tables: in 0.3 they name the tables
// `upgradeSql` copies from. Their values are checked and quoted in Rust.
const LEGACY_TABLE_OPTIONS = ['currentProfilesTable', 'profileRevisionsTable', 'userIndexTable']

// Where a native pool connects and as whom: a replica never takes these
// from the repository's options.
const CONNECTION_OPTIONS = ['connectionString', 'host', 'port', 'user', 'password', 'database', 'ssl']

// Pool size, timeouts, statement preparation and the tables: a native
// replica takes these from the repository's options unless it sets them.
const REPLICA_INHERITED_OPTIONS = [
  'max',
  'connectionTimeoutMillis',
  'idleTimeoutMillis',
  'statementTimeoutMillis',
  'applicationName',
  'prepare',
  'schema',
  'tablePrefix',
  ...LEGACY_TABLE_OPTIONS,
]

// The options passed to the native pool: the fields of `NativeOptions` in
// src/js_types.rs, the one source of truth (checked by __test__/options.test.mjs).
const NATIVE_OPTIONS = [...CONNECTION_OPTIONS, ...REPLICA_INHERITED_OPTIONS]

// createPostgresProfileStoreArtifacts' options → `{ schema, tablePrefix,
// legacyTables }`; strings only, because String() of anything else could
// name a table that exists.
function artifactOptions(options) {
  if (options !== undefined && options !== null && !isPlainObject(options)) {
    throw validationError('options', 'must be an object')
  }
  const schema = options?.schema ?? 'public'
  const tablePrefix = options?.tablePrefix ?? 'pson_'
  if (typeof schema !== 'string') throw validationError('schema', 'must be a string')
  if (typeof tablePrefix !== 'string') throw validationError('tablePrefix', 'must be a string')
  const legacyTables = {}
  for (const name of LEGACY_TABLE_OPTIONS) {
    const value = options?.[name]
    if (value === undefined || value === null) continue
    if (typeof value !== 'string') throw validationError(name, 'must be a string (a 0.2.2 table name)')
    legacyTables[name] = value
  }
  return { schema, tablePrefix, legacyTables }
}

// A list of ids (loadProfilesJson): each checked as one id, named by position.
function idList(value, field) {
  if (!Array.isArray(value)) throw validationError(field, 'must be an array of ids')
  return value.map((id, i) => checkId(id, `${field}[${i}]`))
}

const DEFAULT_PRUNE_BATCH = 1000
// A batch is one transaction: 10,000 rows of ~20 KB documents is ~200 MB of
// deletes, about what a short transaction should hold.
const MAX_PRUNE_BATCH = 10_000

// pruneAuditEntries' options → `{ keepLast, olderThan, profileId, batchSize,
// onProgress, signal }`, with `olderThan` as timestamptz text (null: any age)
// and `keepLast` null when not given (the statement then keeps the newest row).
function pruneOptions(options) {
  if (!isPlainObject(options)) throw validationError('options', 'must be an object with keepLast and/or olderThan')
  const { keepLast, olderThan, profileId, batchSize, onProgress, signal } = options
  if ((keepLast === undefined || keepLast === null) && (olderThan === undefined || olderThan === null)) {
    throw validationError('keepLast', 'give keepLast, olderThan or both: without either nothing says what is old')
  }
  if (keepLast !== undefined && keepLast !== null) revisionNumber(keepLast, 'keepLast')
  let olderThanText = null
  if (olderThan !== undefined && olderThan !== null) {
    const iso = olderThan instanceof Date && !Number.isNaN(olderThan.getTime()) ? olderThan.toISOString() : olderThan
    olderThanText = instantInput(iso)
    if (olderThanText === null) {
      throw validationError('olderThan', 'must be a Date or an ISO-8601 instant with an offset, such as 2026-01-31T00:00:00Z')
    }
  }
  const size = batchSize ?? DEFAULT_PRUNE_BATCH
  if (!Number.isInteger(size) || size < 1 || size > MAX_PRUNE_BATCH) {
    throw validationError('batchSize', `must be an integer from 1 to ${MAX_PRUNE_BATCH}`)
  }
  if (onProgress !== undefined && onProgress !== null && typeof onProgress !== 'function') {
    throw validationError('onProgress', 'must be a function')
  }
  if (signal !== undefined && signal !== null && !(signal instanceof AbortSignal)) {
    throw validationError('signal', 'must be an AbortSignal')
  }
  return {
    keepLast: keepLast ?? null,
    olderThan: olderThanText,
    profileId: profileId === undefined || profileId === null ? null : checkId(profileId, 'profileId'),
    batchSize: size,
    onProgress: onProgress ?? null,
    signal: signal ?? null,
  }
}

function maxDocumentBytesOption(value) {
  if (value === undefined) return DEFAULT_MAX_DOCUMENT_BYTES
  if (!Number.isInteger(value) || value < 1) throw validationError('maxDocumentBytes', 'must be a positive integer')
  return value
}

module.exports = {
  NATIVE_OPTIONS,
  REPLICA_INHERITED_OPTIONS,
  LEGACY_TABLE_OPTIONS,
  artifactOptions,
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
  idList,
  pruneOptions,
  instantInput,
  maxRevisionValue,
}
