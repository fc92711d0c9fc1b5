'use strict'

// The repository object: the 0.2.2 DocumentProfileStoreRepository methods, the
// query helpers (which make it a ProfileStoreAdapter too), events and close().
// Every method validates, runs one named statement through the driver, and
// shapes the rows; the driver decides whether Rust or the caller's executor
// runs it.

const util = require('node:util')

const { PostgresStoreError, decorate } = require('./errors.js')
const { engineErrorClass } = require('./upstream.js')
const { isObserved, publish } = require('./events.js')
const { OperationTrace, isTraced, traceOperation } = require('./tracing.js')
const { pruneAudit } = require('./retention.js')
const { abortedError, callSignal, withSignal, NOT_SENT, SENT } = require('./calls.js')
const { C, named } = require('./columns.js')
const history = require('./history.js')
const { primaryToken } = require('./replicas.js')
const v = require('./validate.js')

const kInspect = util.inspect.custom

// The methods that write: an `aborted` after their statement was sent has
// `outcomeUnknown: true`.
const WRITES = new Set([
  'writeCurrentProfile',
  'writeProfileRevision',
  'writeUserProfileIndex',
  'saveProfile',
  'deleteProfile',
  'deleteProfilesByUserId',
  'eraseFromHistory',
  'revertProfile',
  'ensureSchema',
  'upgradeFrom022',
])
// pruneAuditEntries reads its `signal` itself, between batches (lib/retention.js).
const OWN_SIGNAL = new Set(['pruneAuditEntries'])

// How long close() waits, past its timeoutMillis, for the statements it
// cancelled to answer (a cancel request opens a connection of its own; the
// server then ends the statement at once).
const CANCEL_GRACE_MS = 400

// What the calls that close() gave up on are rejected with, inside the
// driver; #op turns it into a `closed` error with the caller's stack.
const ABANDONED = Symbol('abandoned by close()')

// How many times a call is sent when PostgreSQL ends its statement as the
// victim of a deadlock (SQLSTATE 40P01): the whole statement was rolled
// back, so sending it again is safe. The package's statements lock rows in
// one order (src/store/sql.rs), but under READ COMMITTED a statement orders
// only the rows its snapshot sees, and a row committed meanwhile can still
// close a cycle (three index writes racing first saves of the profiles they
// list met about one in 20 rounds: __test__/concurrency.test.mjs); the
// caller's own transactions may lock in any order.
const DEADLOCK_TRIES = 3
const DEADLOCK_DETECTED = '40P01'
// What a retry meets in the caller's own transaction (an executor's pg Client
// in BEGIN), which the deadlock aborted: the deadlock is then the answer.
const IN_FAILED_TRANSACTION = '25P02'


class PostgresProfileStoreRepository {
  kind = 'postgres'
  #driver
  #label
  #onEvent
  #telemetry
  #maxDocumentBytes
  // serialization-engine's ProfileStoreError, when given (see upstream.js).
  #profileStoreErrorClass
  #closed = false
  // close()'s work, once it was called.
  #closing = null
  #inFlight = 0
  #idle = null

  constructor(driver, { label, onEvent, telemetry, maxDocumentBytes, profileStoreErrorClass }) {
    this.#driver = driver
    this.#label = label
    this.#onEvent = onEvent
    this.#telemetry = telemetry
    this.#maxDocumentBytes = maxDocumentBytes
    this.#profileStoreErrorClass = profileStoreErrorClass
  }

  // ---- DocumentProfileStoreRepository (0.2.2 semantics) ----

  readCurrentProfile(profileId, options) {
    return this.#op('readCurrentProfile', options, async (_, trace) => {
      const profile = await this.#driver.load(v.checkId(profileId, 'profileId'), trace)
      return profile === null ? [null, 0] : [profile, 1]
    })
  }

  writeCurrentProfile(profile, options) {
    return this.#op('writeCurrentProfile', options, async () => {
      const { text } = v.profileText(profile, this.#maxDocumentBytes, { requireRevision: true })
      await this.#query('writeCurrentProfile', [text])
      return [undefined, 1]
    })
  }

  writeProfileRevision(profile, options) {
    return this.#op('writeProfileRevision', options, async (context) => {
      const { text } = v.profileText(profile, this.#maxDocumentBytes, { requireRevision: true })
      await this.#query('writeProfileRevision', [text, context === undefined ? null : JSON.stringify(context)])
      return [undefined, 1]
    })
  }

  listProfileRevisionNumbers(profileId, options) {
    return this.#op('listProfileRevisionNumbers', options, async () => {
      const rows = await this.#query('listRevisionNumbers', [v.checkId(profileId, 'profileId')])
      return [rows.map((row) => revisionOf(row[C.listRevisionNumbers.revision])), rows.length]
    })
  }

  readUserProfileIndex(userId, options) {
    return this.#op('readUserProfileIndex', options, async () => {
      const rows = await this.#query('readUserProfileIndex', [v.checkId(userId, 'userId')])
      return [rows.length ? JSON.parse(rows[0][C.readUserProfileIndex.record]) : null, rows.length]
    })
  }

  writeUserProfileIndex(record, options) {
    return this.#op('writeUserProfileIndex', options, async () => {
      const r = v.userIndexRecord(record)
      const rows = await this.#query('writeUserProfileIndex', [
        r.user_id,
        r.latest_profile_id,
        JSON.stringify(r.profile_ids),
        r.updated_at,
      ])
      return [undefined, rows[0][C.writeUserProfileIndex.written]]
    })
  }

  // ---- query helpers / ProfileStoreAdapter ----

  loadProfile(profileId, options) {
    return this.#op('loadProfile', options, async (_, trace) => {
      if (options?.asOf !== undefined && options.asOf !== null) {
        return history.loadProfileAsOf(this.#history, profileId, options.asOf)
      }
      const id = v.checkId(profileId, 'profileId')
      const profile = await this.#driver.load(id, trace)
      if (profile === null) throw await this.#notFound('profile_not_found', `Profile '${id}' was not found.`)
      return [profile, 1]
    })
  }

  // The stored document's JSON text, unparsed (PostgreSQL's jsonb text form),
  // for handlers that only forward it. Coalesced with concurrent loads.
  loadProfileJson(profileId, options) {
    return this.#op('loadProfileJson', options, async (_, trace) => {
      const id = v.checkId(profileId, 'profileId')
      const text = await this.#driver.loadJson(id, trace)
      if (text === null) throw await this.#notFound('profile_not_found', `Profile '${id}' was not found.`)
      return [text, 1]
    })
  }

  // loadProfileJson for several profiles in one call: texts in the order of
  // `profileIds`, null for a profile that does not exist.
  loadProfilesJson(profileIds, options) {
    return this.#op('loadProfilesJson', options, async (_, trace) => {
      const ids = v.idList(profileIds, 'profileIds')
      const texts = await Promise.all(ids.map((id) => this.#driver.loadJson(id, trace)))
      return [texts, texts.filter((text) => text !== null).length]
    })
  }

  profileExists(profileId, options) {
    return this.#op('profileExists', options, async () => {
      const rows = await this.#query('profileExists', [v.checkId(profileId, 'profileId')])
      const exists = rows[0][C.profileExists.exists] === true
      return [exists, exists ? 1 : 0]
    })
  }

  loadProfileByUserId(userId, options) {
    return this.#op('loadProfileByUserId', options, async () => {
      const id = v.checkId(userId, 'userId')
      const rows = await this.#query('loadProfileByUserId', [id])
      if (rows.length === 0) throw await this.#notFound('profile_not_found', `No profile was found for user '${id}'.`)
      return [JSON.parse(rows[0][C.loadProfileByUserId.document]), 1]
    })
  }

  findProfilesByUserId(userId, options) {
    return this.#op('findProfilesByUserId', options, async (_, trace) => {
      const profileIds = await this.#driver.find(v.checkId(userId, 'userId'), trace)
      return [profileIds, profileIds.length]
    })
  }

  listProfileRevisions(profileId, options) {
    return this.#op('listProfileRevisions', options, async () => {
      const id = v.checkId(profileId, 'profileId')
      const rows = await this.#query('listRevisionNumbers', [id])
      if (rows.length === 0) throw await this.#notFound('profile_not_found', `Profile '${id}' has no stored revisions.`)
      return [rows.map((row) => revisionOf(row[C.listRevisionNumbers.revision])), rows.length]
    })
  }

  saveProfile(profile, options) {
    return this.#op('saveProfile', options, async (context, trace) => {
      const { text, document, exact } = v.profileText(profile, this.#maxDocumentBytes)
      const expected = v.optionalRevision(options?.expectedRevision, 'expectedRevision')
      const merge = history.mergeOption(options, expected)
      const contextText = context === undefined ? null : JSON.stringify(context)
      const revision = await this.#driver.save(document.profile_id, text, expected, contextText, trace)
      // The stored revision moved on: merge onto it (lib/history.js).
      if (revision === null && merge !== null && expected > 0 && expected !== v.maxRevisionValue()) {
        return history.mergeSave(this.#history, document, expected, contextText)
      }
      if (revision === null) {
        const refusal = v.saveRefusal(document.profile_id, expected)
        if (refusal !== null) throw refusal
        throw new PostgresStoreError(
          'conflict',
          `Profile '${document.profile_id}' is not at revision ${expected}; nothing was written.`,
        )
      }
      // The returned document is the stored one: a copy of the caller's object
      // with the new revision, or the parsed JSON when JSON changed something.
      const saved = exact ? { ...document } : document
      saved.metadata = { ...saved.metadata, revision }
      return [saved, 1]
    })
  }

  deleteProfile(profileId, options) {
    return this.#op('deleteProfile', options, async () => {
      const rows = await this.#query('deleteProfile', [v.checkId(profileId, 'profileId')])
      const deleted = rows[0][C.deleteProfile.deleted] === true
      return [deleted, deleted ? 1 : 0]
    })
  }

  listAuditEntries(profileId, options) {
    return this.#op('listAuditEntries', options, async () => {
      const id = v.checkId(profileId, 'profileId')
      const limit = v.auditLimit(options?.limit)
      const before = v.decodeCursor(options?.cursor)
      const [since, until] = history.auditWindow(options)
      // One row more than asked tells whether another page exists.
      const rows = await this.#query('listAuditEntries', [
        id,
        before === null ? null : String(before),
        String(limit + 1),
        since,
        until,
      ])
      const page = rows.length > limit ? rows.slice(0, limit) : rows
      const entries = page.map((row) => JSON.parse(row[C.listAuditEntries.entry]))
      const nextCursor =
        rows.length > limit ? v.encodeCursor(revisionOf(page[page.length - 1][C.listAuditEntries.revision])) : null
      return [{ entries, nextCursor }, entries.length]
    })
  }

  loadProfileRevision(profileId, revision, options) {
    return this.#op('loadProfileRevision', options, async () => {
      const id = v.checkId(profileId, 'profileId')
      const number = v.revisionNumber(revision, 'revision')
      const rows = await this.#query('loadProfileRevision', [id, String(number)])
      if (rows.length === 0) {
        throw await this.#notFound('revision_not_found', `Profile '${id}' has no revision ${number}.`)
      }
      return [JSON.parse(rows[0][C.loadProfileRevision.document]), 1]
    })
  }

  // ---- history (lib/history.js) ----

  /** The RFC 6902 JSON Patch that turns revision `fromRevision`'s snapshot into `toRevision`'s. */
  diffRevisions(profileId, fromRevision, toRevision, options) {
    return this.#op('diffRevisions', options, () =>
      history.diffRevisions(this.#history, profileId, fromRevision, toRevision),
    )
  }

  /**
   * Saves the snapshot of `revision` again as a new revision; its audit row
   * records `reverted_from`. Resolves to the stored document.
   */
  revertProfile(profileId, revision, options) {
    return this.#op('revertProfile', options, (context) =>
      history.revertProfile(this.#history, profileId, revision, options, context),
    )
  }

  /** For each path of the newest snapshot down to `depth`, the revision, time and context of the save that last changed it. */
  blameProfile(profileId, options) {
    return this.#op('blameProfile', options, () => history.blameProfile(this.#history, profileId, options))
  }

  /**
   * Removes one path from the current document and every snapshot, in one
   * transaction, recorded as a new revision (`erased_path`, never the value).
   */
  eraseFromHistory(profileId, jsonPointer, options) {
    return this.#op('eraseFromHistory', options, (context) =>
      history.eraseFromHistory(this.#history, profileId, jsonPointer, context),
    )
  }

  /** Removes every profile of a user with all its history; resolves to what was removed. */
  deleteProfilesByUserId(userId, options) {
    return this.#op('deleteProfilesByUserId', options, () => history.deleteProfilesByUserId(this.#history, userId))
  }

  // ---- retention ----

  /**
   * Removes old audit rows in batches of short transactions (lib/retention.js).
   * Resolves to `{ removedRows, prunedProfiles, batches }`.
   */
  pruneAuditEntries(options) {
    return this.#op('pruneAuditEntries', options, async () => {
      const settings = v.pruneOptions(options)
      const runBatch = async (statement, params) => {
        let rows
        try {
          rows = await this.#query(statement, params)
        } catch (raw) {
          throw this.#storeError(raw)
        }
        return named(statement, rows[0])
      }
      const pruned = await pruneAudit(runBatch, settings)
      return [pruned, pruned.removedRows]
    })
  }

  // ---- administration ----

  /** Runs `schemaSql` (idempotent). For development and tests; production uses migrations. */
  ensureSchema(options) {
    return this.#op('ensureSchema', options, async () => [await this.#driver.ensureSchema(), 0])
  }

  /** Runs `upgradeSql`: copies a 0.2.2 deployment into the new tables (idempotent). */
  upgradeFrom022(options) {
    return this.#op('upgradeFrom022', options, async () => [await this.#driver.upgrade(), 0])
  }

  /**
   * Server version and, per table, whether it exists and which columns it
   * lacks. `ok` is true when all three tables are complete.
   */
  checkSchema(options) {
    return this.#op('checkSchema', options, async () => {
      const [server] = await this.#query('serverInfo', [])
      const rows = await this.#query('checkSchema', [])
      const tables = {}
      const checks = rows.map((row) => named('checkSchema', row))
      for (const { key, exists, missing_columns } of checks) tables[key] = { exists, missingColumns: JSON.parse(missing_columns) }
      const ok = checks.every(({ exists, missing_columns }) => exists && missing_columns === '[]')
      const { version, version_num } = named('serverInfo', server)
      return [{ serverVersion: version, serverVersionNum: version_num, tables, ok }, rows.length]
    })
  }

  // ---- read replicas (lib/replicas.js) ----

  /**
   * An opaque token for `{ after: token }` on reads of another repository
   * (another process): those reads see every write this repository had
   * acknowledged, and `profileId` at least at its revision saved or seen here.
   */
  consistencyToken(profileId, options) {
    return this.#op('consistencyToken', options, async () => {
      const id = profileId === undefined || profileId === null ? undefined : v.checkId(profileId, 'profileId')
      const token =
        this.#driver.consistencyToken === undefined
          ? await primaryToken(this.#driver)
          : await this.#driver.consistencyToken(id)
      return [token, 0]
    })
  }

  /** Each replica: address, whether in rotation, lag (ms) and replay position; null without replicas. */
  replicaStatus() {
    return this.#driver.replicaStatus === undefined ? null : this.#driver.replicaStatus()
  }

  /** Pool counters of the native pool; null in executor mode. */
  poolStatus() {
    return this.#closed ? null : this.#driver.status()
  }

  /**
   * Stops new calls (they reject with `closed`). The calls accepted before
   * close() run to completion for up to `timeoutMillis`; only then are the
   * statements still running cancelled on the server (native mode: they
   * write nothing) and their calls rejected with `closed`, after at most
   * CANCEL_GRACE_MS more. Then the native pool closes. close() never hangs
   * and leaves no call pending; every close() resolves when the first one's
   * work is done.
   */
  close({ timeoutMillis = 5000 } = {}) {
    if (this.#closing === null) {
      this.#closed = true
      this.#closing = this.#drain(timeoutMillis)
    }
    return this.#closing
  }

  async #drain(timeoutMillis) {
    try {
      if (this.#inFlight > 0 && !(await this.#settledWithin(timeoutMillis))) {
        const graceEnds = performance.now() + CANCEL_GRACE_MS
        await Promise.race([this.#driver.cancelRunning().catch(() => {}), delay(CANCEL_GRACE_MS)])
        if (!(await this.#settledWithin(Math.max(0, graceEnds - performance.now())))) {
          this.#driver.abandonAll(ABANDONED)
        }
      }
    } finally {
      this.#driver.close()
    }
  }

  async #settledWithin(millis) {
    if (this.#inFlight === 0) return true
    this.#idle ??= withResolvers()
    let timer
    const timeout = new Promise((resolve) => {
      timer = setTimeout(resolve, millis, false)
    })
    const settled = await Promise.race([this.#idle.promise.then(() => true), timeout])
    clearTimeout(timer)
    return settled
  }

  toString() {
    return `PostgresProfileStoreRepository(${this.#label})`
  }

  [kInspect]() {
    return `PostgresProfileStoreRepository { ${this.#label}${this.#closed ? ', closed' : ''} }`
  }

  // ---- internals ----

  // What lib/history.js runs its statements through.
  #history = {
    query: (name, params) => this.#query(name, params),
    notFound: (storeCode, message) => this.#notFound(storeCode, message),
    save: (profileId, text, expected, contextText) => this.#driver.save(profileId, text, expected, contextText),
    profileText: (document) => v.profileText(document, this.#maxDocumentBytes),
  }

  #notFound(storeCode, message) {
    return notFound(storeCode, message, this.#profileStoreErrorClass)
  }

  #query(name, params) {
    return this.#driver.query(name, params)
  }

  // Runs one operation, inside the tracing channel's events when it has
  // subscribers (lib/tracing.js). `body(context, trace)` gets the trace
  // context (or null) for the driver to record what only it knows.
  #op(operation, options, body) {
    if (this.#telemetry === undefined || !isTraced()) return this.#run(operation, options, body, null)
    return traceOperation(new OperationTrace(operation, this.#telemetry, options), (trace) =>
      this.#run(operation, options, body, trace),
    )
  }

  // Closed check, context validation, timing, event, and error conversion, in
  // one place for every method. `body` is awaited directly (no wrapper
  // promise), so V8's async stack traces reach from the error back to the
  // caller's frames.
  async #run(operation, options, body, trace) {
    const observed = isObserved(this.#onEvent)
    const started = observed ? performance.now() : 0
    let context
    // With read replicas (lib/replicas.js): where the call went and why.
    let route
    // The call's `{ signal, timeoutMillis }` as one AbortSignal (lib/calls.js).
    let signal = null
    this.#inFlight++
    try {
      if (this.#closed) throw new PostgresStoreError('closed', 'The repository is closed.')
      context = v.contextOf(options)
      if (!OWN_SIGNAL.has(operation)) signal = callSignal(options)
      if (this.#driver.route !== undefined) route = this.#driver.route(options)
      const call = route === undefined ? () => body(context, trace) : () => route.run(() => body(context, trace))
      const send = () => {
        if (signal === null) return call()
        return signal.aborted ? Promise.reject(NOT_SENT) : withSignal(signal, call)
      }
      let value
      let rowCount
      let deadlock
      for (let tries = 1; ; tries++) {
        try {
          ;[value, rowCount] = await send()
          break
        } catch (raw) {
          // Converted once, here; the abort markers stay for abortedError below.
          const failure = raw === NOT_SENT || raw === SENT ? raw : this.#storeError(raw)
          if (deadlock !== undefined && failure.sqlState === IN_FAILED_TRANSACTION) throw deadlock
          if (tries === DEADLOCK_TRIES || failure.sqlState !== DEADLOCK_DETECTED) throw failure
          deadlock = failure
        }
      }
      if (trace !== null && route?.server !== undefined) trace.servedBy(route.server.address)
      if (trace !== null) trace.succeeded(value, rowCount, context)
      if (observed) {
        const event = { operation, durationMs: performance.now() - started, rowCount, context }
        if (route?.server !== undefined) Object.assign(event, { server: route.server, reason: route.reason })
        publish(this.#onEvent, event)
      }
      return value
    } catch (raw) {
      const error = abortedError(raw, signal, WRITES.has(operation)) ?? this.#storeError(raw)
      if (error.operation === undefined) error.operation = operation
      if (trace !== null && route?.server !== undefined) trace.servedBy(route.server.address)
      if (trace !== null) trace.failed(error, context)
      if (observed) {
        const failure = { code: error.code, message: error.message }
        if (error.sqlState) failure.sqlState = error.sqlState
        const event = { operation, durationMs: performance.now() - started, rowCount: 0, context, error: failure }
        if (route?.server !== undefined) Object.assign(event, { server: route.server, reason: route.reason })
        publish(this.#onEvent, event)
      }
      throw error
    } finally {
      if (--this.#inFlight === 0 && this.#idle) this.#idle.resolve()
    }
  }

  // Any failure as a PostgresStoreError. Errors of the driver (a native
  // envelope, the caller's executor) keep their codes; anything else is a
  // fault of this package: `internal_error`, never `database_error`.
  #storeError(raw) {
    if (raw === ABANDONED) return new PostgresStoreError('closed', 'The repository was closed before this call finished.')
    // (A statement that close() had cancelled comes back from Rust as
    // `closed` already: src/store/mod.rs `cancelled_by_close`.)
    return raw instanceof PostgresStoreError ? raw : this.#driver.convertError(raw)
  }
}

// A revision column as a number. Revisions are `integer`s, but a column
// widened to `bigint` comes back from node-postgres as a string; every
// revision fits in a double (MAX_REVISION).
function revisionOf(cell) {
  return typeof cell === 'number' ? cell : Number(cell)
}

function withResolvers() {
  let resolve
  let reject
  const promise = new Promise((res, rej) => {
    resolve = res
    reject = rej
  })
  return { promise, resolve, reject }
}

function delay(millis) {
  return new Promise((resolve) => setTimeout(resolve, millis))
}

// `not_found` as an instance of serialization-engine's ProfileStoreError when
// the application has that package (see upstream.js), else as our own error.
async function notFound(storeCode, message, explicitClass) {
  const EngineError = await engineErrorClass(explicitClass)
  if (EngineError === null) return new PostgresStoreError('not_found', message, { storeCode })
  return decorate(new EngineError(storeCode, message), 'not_found', { storeCode })
}

module.exports = { PostgresProfileStoreRepository }
