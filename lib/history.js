'use strict'

// History: what the audit log's snapshots can answer besides "what is stored
// now". Every function here runs named statements (src/store/sql.rs) through
// `store.query`, so native and executor modes share it; the repository wraps
// each in its one operation path (validation of context, events, errors).
//
// `store` is `{ query(name, params), notFound(storeCode, message),
// save(profileId, text, expected, contextText), profileText(document) }`
// (lib/repository.js `#history`): the repository's statement runner, its
// not_found errors, its save, and its document checks.

const util = require('node:util')

const { binding } = require('./native.js')
const { PostgresStoreError, validationError } = require('./errors.js')
const v = require('./validate.js')
const { C, named } = require('./columns.js')

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
  // Revisions as numbers: a column widened to bigint comes from node-postgres as a string.
  const pair = rows.map((row) => named('loadRevisionPair', row))
  const text = (revision) => pair.find((row) => Number(row.revision) === revision)?.document
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
  return [JSON.parse(rows[0][C.loadProfileAsOf.document]), 1]
}

// ---- revertProfile ----

/**
 * Saves the snapshot of `revision` again as a new revision (the audit row
 * records `reverted_from`). One statement: the save statement over that
 * snapshot (src/store/sql.rs `SaveInput::Revert`). Resolves to the stored
 * document.
 */
async function revertProfile(store, profileId, revision, options, context) {
  const id = v.checkId(profileId, 'profileId')
  const number = v.revisionNumber(revision, 'revision')
  const expected = v.optionalRevision(options?.expectedRevision, 'expectedRevision')
  const rows = await store.query('revertProfile', [
    id,
    String(number),
    expected === null ? null : String(expected),
    context === undefined ? null : JSON.stringify(context),
  ])
  if (rows.length === 1) return [JSON.parse(rows[0][C.revertProfile.document]), 1]
  // Nothing written: say why (read after the fact, for the message only).
  const [exists] = await store.query('profileExists', [id])
  if (exists[C.profileExists.exists] !== true) throw await store.notFound('profile_not_found', `Profile '${id}' was not found.`)
  const snapshot = await store.query('loadProfileRevision', [id, String(number)])
  if (snapshot.length === 0) {
    throw await store.notFound('revision_not_found', `Profile '${id}' has no revision ${number}.`)
  }
  const refusal = v.saveRefusal(id, expected)
  if (refusal !== null) throw refusal
  throw new PostgresStoreError('conflict', `Profile '${id}' is not at revision ${expected}; nothing was written.`)
}

// ---- saveProfile({ merge: 'disjoint-paths' }) ----

const MERGE_MODES = new Set(['disjoint-paths'])
// Each round either saves or finds that another save got in first (which
// then succeeded), so rounds are bounded by the concurrent writers; this
// caps a pathological run.
const MAX_MERGE_ROUNDS = 100

/** saveProfile's `merge` option → the mode or null; `expectedRevision` must be given with it. */
function mergeOption(options, expected) {
  const merge = options?.merge
  if (merge === undefined || merge === null) return null
  if (!MERGE_MODES.has(merge)) throw validationError('merge', "must be 'disjoint-paths' when given")
  if (expected === null) {
    throw validationError('expectedRevision', "merge needs the revision the document was read at (expectedRevision)")
  }
  return merge
}

const isObject = (value) => value !== null && typeof value === 'object' && !Array.isArray(value)
const hasOwn = (object, key) => Object.prototype.hasOwnProperty.call(object, key)

// The paths (arrays of keys) where `after` differs from `before`: objects
// key by key, anything else (arrays included: their elements have no
// identity to merge by) as one value. A path ends at the first key that one
// side lacks.
function changedPaths(before, after, path = [], out = []) {
  if (isObject(before) && isObject(after)) {
    for (const key of new Set([...Object.keys(before), ...Object.keys(after)])) {
      if (!hasOwn(before, key) || !hasOwn(after, key)) out.push([...path, key])
      else changedPaths(before[key], after[key], [...path, key], out)
    }
  } else if (!util.isDeepStrictEqual(before, after)) {
    out.push(path)
  }
  return out
}

// Bookkeeping fields that every save moves: not conflicts. The store sets
// `metadata.revision`; `metadata.updated_at` takes the later instant of the
// two saves; `metadata.source_count` adds both saves' increments.
const BOOKKEEPING = {
  revision: { applies: () => true, merge: (base, theirs) => theirs },
  updated_at: {
    applies: (...values) => values.every((value) => typeof value === 'string' && !Number.isNaN(Date.parse(value))),
    merge: (base, theirs, mine) => (Date.parse(mine) > Date.parse(theirs) ? mine : theirs),
  },
  source_count: {
    applies: (...values) => values.every((value) => Number.isFinite(value)),
    merge: (base, theirs, mine) => theirs + mine - base,
  },
}

function bookkeepingField(path, base, theirs, mine) {
  if (path.length !== 2 || path[0] !== 'metadata' || !hasOwn(BOOKKEEPING, path[1])) return null
  const field = BOOKKEEPING[path[1]]
  const values = [base, theirs, mine].map((doc) => doc.metadata?.[path[1]])
  return field.applies(...values) ? field.merge(...values) : null
}

// A JSON Pointer (as eraseFromHistory recorded it) → its keys.
const keysOf = (jsonPointer) =>
  jsonPointer
    .slice(1)
    .split('/')
    .map((segment) => segment.replaceAll('~1', '/').replaceAll('~0', '~'))

const isPrefix = (shorter, longer) => shorter.length <= longer.length && shorter.every((key, i) => longer[i] === key)
const pointer = (path) => path.map((key) => `/${String(key).replaceAll('~', '~0').replaceAll('/', '~1')}`).join('')

/**
 * Merges the changes `mine` made to `base` onto `theirs` (the stored
 * document). Returns `{ merged }`, or `{ overlapping }`: JSON Pointers of the
 * paths both changed.
 */
function mergeDisjoint(base, theirs, mine, erased = []) {
  const bookkeeping = []
  const plain = (doc) =>
    changedPaths(base, doc).filter((path) => {
      const value = bookkeepingField(path, base, theirs, mine)
      if (value === null) return true
      if (doc === mine) bookkeeping.push([path, value])
      return false
    })
  const ours = plain(mine)
  // A path erased since the base counts as changed by them: the erasure
  // scrubbed the base as well, so the caller's copy (read before it) would
  // otherwise bring the erased value back.
  const others = [...plain(theirs), ...erased]
  const overlapping = ours.filter((path) => others.some((other) => isPrefix(path, other) || isPrefix(other, path)))
  if (overlapping.length > 0) return { overlapping: overlapping.map(pointer).sort() }
  const merged = structuredClone(theirs)
  for (const [path, value] of [...ours.map((path) => [path, valueAt(mine, path)]), ...bookkeeping]) {
    setAt(merged, path, value)
  }
  return { merged }
}

const ABSENT = Symbol('absent')

function valueAt(doc, path) {
  let node = doc
  for (const key of path) {
    if (!isObject(node) || !hasOwn(node, key)) return ABSENT
    node = node[key]
  }
  return structuredClone(node)
}

// The parent of every path exists in `doc`: a path ends at the first key one
// side lacks, and a change of an ancestor would have overlapped.
function setAt(doc, path, value) {
  const parent = path.slice(0, -1).reduce((node, key) => node[key], doc)
  const key = path[path.length - 1]
  if (value === ABSENT) delete parent[key]
  else parent[key] = value
}

/**
 * A save with `merge: 'disjoint-paths'` whose expected revision was not the
 * stored one: merges the caller's changes since `expected` onto the stored
 * document and saves that with the stored revision expected, again until
 * one save wins or the paths overlap. Resolves to `[saved document, 1]`.
 */
async function mergeSave(store, document, expected, contextText) {
  const id = document.profile_id
  for (let round = 0; round < MAX_MERGE_ROUNDS; round++) {
    const rows = await store.query('loadMergeBase', [id, String(expected)])
    if (rows.length === 0) {
      throw new PostgresStoreError('conflict', `Profile '${id}' no longer exists; nothing was written.`)
    }
    const {
      base: baseText,
      document: currentText,
      revision: current,
      erased_paths: erasedText,
    } = named('loadMergeBase', rows[0])
    if (baseText === null) {
      throw new PostgresStoreError(
        'conflict',
        `Profile '${id}' has no revision ${expected} in its audit log to merge from (pruned?); nothing was written.`,
      )
    }
    const erased = JSON.parse(erasedText).map(keysOf)
    const outcome = mergeDisjoint(JSON.parse(baseText), JSON.parse(currentText), document, erased)
    if (outcome.overlapping) {
      const error = new PostgresStoreError(
        'conflict',
        `Profile '${id}' changed since revision ${expected} at paths this save changes too: ` +
          `${outcome.overlapping.join(', ')}; nothing was written.`,
      )
      error.paths = outcome.overlapping
      throw error
    }
    const { text, document: merged } = store.profileText(outcome.merged)
    const revision = await store.save(id, text, current, contextText)
    if (revision !== null) {
      merged.metadata = { ...merged.metadata, revision }
      return [merged, 1]
    }
    if (current === v.maxRevisionValue()) throw v.saveRefusal(id, null)
  }
  throw new PostgresStoreError('conflict', `Profile '${id}': no merge won in ${MAX_MERGE_ROUNDS} rounds; nothing was written.`)
}

// ---- blameProfile ----

const DEFAULT_BLAME_DEPTH = 1
const MAX_BLAME_DEPTH = 100
// Snapshots read per statement while walking back.
const BLAME_PAGE = 20

function blameDepth(options) {
  const depth = options?.depth ?? DEFAULT_BLAME_DEPTH
  if (!Number.isInteger(depth) || depth < 1 || depth > MAX_BLAME_DEPTH) {
    throw validationError('depth', `must be an integer from 1 to ${MAX_BLAME_DEPTH}`)
  }
  return depth
}

// The paths of `doc` down to `depth` keys: objects are opened until then;
// any other value (and an empty object) ends its path sooner.
function pathsTo(doc, depth, path = [], out = []) {
  if (path.length < depth && isObject(doc) && Object.keys(doc).length > 0) {
    for (const key of Object.keys(doc)) pathsTo(doc[key], depth, [...path, key], out)
  } else if (path.length > 0) {
    out.push(path)
  }
  return out
}

/**
 * For each path of the newest snapshot down to `depth`, the revision that
 * last changed its value, walking the log back from the newest row until
 * every path is placed. A path unchanged since the oldest row in the log is
 * placed there. Resolves to `[entries, snapshots read]`, entries in document
 * order: `{ path, revision, recorded_at, context }`.
 */
async function blameProfile(store, profileId, options) {
  const id = v.checkId(profileId, 'profileId')
  const depth = blameDepth(options)
  let newer = null
  // The paths of the newest snapshot (in its order), and those not placed yet.
  let paths = []
  let open = null
  const placed = new Map()
  let read = 0
  let cursor = null
  const place = (path, row) => {
    placed.set(path, { path: pointer(path), revision: row.revision, recorded_at: row.recordedAt, context: row.context })
  }
  while (open === null || open.length > 0) {
    const rows = await store.query('listAuditSnapshots', [id, cursor === null ? null : String(cursor), String(BLAME_PAGE)])
    read += rows.length
    for (const { revision, recorded_at: recordedAt, context, document } of rows.map((r) => named('listAuditSnapshots', r))) {
      const row = { revision, recordedAt, context: JSON.parse(context), document: JSON.parse(document) }
      if (newer === null) {
        paths = pathsTo(row.document, depth)
        open = paths
      } else {
        open = open.filter((path) => {
          if (util.isDeepStrictEqual(valueAt(row.document, path), valueAt(newer.document, path))) return true
          place(path, newer)
          return false
        })
      }
      newer = row
      if (open.length === 0) break
    }
    if (rows.length < BLAME_PAGE) break
    cursor = rows[rows.length - 1][C.listAuditSnapshots.revision]
  }
  if (newer === null) throw await store.notFound('profile_not_found', `Profile '${id}' has no stored revisions.`)
  // Unchanged since the oldest row the log has.
  for (const path of open) place(path, newer)
  return [paths.map((path) => placed.get(path)), read]
}

// ---- eraseFromHistory / deleteProfilesByUserId ----

// What the store itself reads from a document: erasing it would break the
// profile (ids), or the bookkeeping of every revision (metadata).
const NOT_ERASABLE = new Set(['profile_id', 'user_id', 'tenant_id', 'pson_version', 'metadata'])

/** An RFC 6901 JSON Pointer → its keys; validation_error when it is not one or names what cannot be erased. */
function erasablePath(jsonPointer) {
  if (typeof jsonPointer !== 'string' || !jsonPointer.startsWith('/')) {
    throw validationError('jsonPointer', "must be a JSON Pointer (RFC 6901) such as '/layers/observed/core.email'")
  }
  // No \u0000, no lone surrogate, at most 512 characters.
  v.checkId(jsonPointer, 'jsonPointer')
  const keys = jsonPointer
    .slice(1)
    .split('/')
    .map((segment) => {
      if (/~([^01]|$)/.test(segment)) {
        throw validationError('jsonPointer', `has an escape other than ~0 and ~1 in '${segment}'`)
      }
      return segment.replaceAll('~1', '/').replaceAll('~0', '~')
    })
  if (NOT_ERASABLE.has(keys[0])) {
    throw validationError(
      'jsonPointer',
      `/${keys[0]} is read by the store itself and cannot be erased; erase the paths that hold personal data`,
    )
  }
  return keys
}

/**
 * Removes `jsonPointer` from the current document and from every snapshot
 * in one transaction (src/store/sql.rs `render_erase_function`), recorded as
 * a new revision whose audit row has `erased_path`. Resolves to
 * `[{ revision, erasedSnapshots, erasedFromCurrent }, rows changed]`.
 */
async function eraseFromHistory(store, profileId, jsonPointer, context) {
  const id = v.checkId(profileId, 'profileId')
  const keys = erasablePath(jsonPointer)
  const rows = await store.query('eraseFromHistory', [
    id,
    JSON.stringify(keys),
    jsonPointer,
    context === undefined ? null : JSON.stringify(context),
  ])
  if (rows.length === 0) throw await store.notFound('profile_not_found', `Profile '${id}' was not found.`)
  const {
    erased_revision: revision,
    erased_snapshots: erasedSnapshots,
    erased_from_current: erasedFromCurrent,
  } = named('eraseFromHistory', rows[0])
  if (revision === null) throw v.saveRefusal(id, null)
  return [{ revision, erasedSnapshots, erasedFromCurrent }, erasedSnapshots + 1]
}

/** Removes every profile of `userId` with all its history. Resolves to `[{ profileIds, auditRows }, profiles]`. */
async function deleteProfilesByUserId(store, userId) {
  const id = v.checkId(userId, 'userId')
  const rows = await store.query('deleteProfilesByUserId', [id])
  const { profile_ids, audit_rows } = named('deleteProfilesByUserId', rows[0])
  const profileIds = JSON.parse(profile_ids)
  return [{ profileIds, auditRows: audit_rows }, profileIds.length]
}

module.exports = {
  auditWindow,
  deleteProfilesByUserId,
  eraseFromHistory,
  blameProfile,
  diffRevisions,
  instantOption,
  loadProfileAsOf,
  mergeDisjoint,
  mergeOption,
  mergeSave,
  revertProfile,
}
