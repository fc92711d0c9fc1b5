'use strict'

// History: what the audit log's snapshots can answer besides "what is stored
// now". Every function here runs named statements (src/store/sql.rs) through
// `store.query`, so native and executor modes share it; the repository wraps
// each in its one operation path (validation of context, events, errors).
//
// `store` is `{ query(name, params), notFound(storeCode, message) }`.

const { binding } = require('./native.js')
const { validationError } = require('./errors.js')
const v = require('./validate.js')

// ---- options ----

// A Date or an ISO-8601 instant with an offset → timestamptz text, or null
// when the option is absent.
function instantOption(value, field) {
  if (value === undefined || value === null) return null
  const iso = value instanceof Date && !Number.isNaN(value.getTime()) ? value.toISOString() : value
  const text = v.instantInput(iso)
  if (text === null) {
    throw validationError(field, 'must be a Date or an ISO-8601 instant with an offset, such as 2026-01-31T00:00:00Z')
  }
  return text
}

/** listAuditEntries' `{ since, until }` → `[sinceText|null, untilText|null]`. */
function auditWindow(options) {
  const since = instantOption(options?.since, 'since')
  const until = instantOption(options?.until, 'until')
  return [since, until]
}

// ---- diffRevisions ----

/**
 * The RFC 6902 patch that turns revision `fromRevision`'s snapshot into
 * `toRevision`'s (either may be the newer). Resolves to `[patch, rows]`.
 */
async function diffRevisions(store, profileId, fromRevision, toRevision) {
  const id = v.checkId(profileId, 'profileId')
  const from = v.revisionNumber(fromRevision, 'fromRevision')
  const to = v.revisionNumber(toRevision, 'toRevision')
  const rows = await store.query('loadRevisionPair', [id, String(from), String(to)])
  const text = (revision) => rows.find((row) => row[0] === revision)?.[1]
  for (const revision of [from, to]) {
    if (text(revision) === undefined) {
      throw await store.notFound('revision_not_found', `Profile '${id}' has no revision ${revision}.`)
    }
  }
  return [JSON.parse(binding().jsonPatchDiff(text(from), text(to))), rows.length]
}

// ---- loadProfile({ asOf }) ----

/** The snapshot current at `asOf` (the newest audit row recorded at or before it). */
async function loadProfileAsOf(store, profileId, asOf) {
  const id = v.checkId(profileId, 'profileId')
  const instant = instantOption(asOf, 'asOf')
  const rows = await store.query('loadProfileAsOf', [id, instant])
  if (rows.length === 0) {
    throw await store.notFound('profile_not_found', `Profile '${id}' has no revision recorded at or before ${instant}.`)
  }
  return [JSON.parse(rows[0][0]), 1]
}

module.exports = { auditWindow, diffRevisions, instantOption, loadProfileAsOf }
