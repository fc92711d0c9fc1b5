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
const { InFlight } = require('./in-flight.js')
const { pruneAudit } = require('./retention.js')
const { primaryToken } = require('./replicas.js')
const v = require('./validate.js')

const kInspect = util.inspect.custom

// The prune statements' result columns, in order (src/store/sql.rs `render_prune`).
const PRUNE_BATCH_COLUMNS = ['removed_rows', 'pruned_profiles', 'pruned_first_profile', 'next_profile_id']

class PostgresProfileStoreRepository {
  kind = 'postgres'
  #driver
  #label
  #onEvent
  #maxDocumentBytes
  // serialization-engine's ProfileStoreError, when given (see upstream.js).
  #profileStoreErrorClass
  #closed = false
  #inFlight = 0
  #idle = null
  // The calls in flight, for close() to give up on them.
  #calls = new InFlight()
  // close() cancelled running statements: their errors mean `closed`.
  #cancelling = false

  constructor(driver, { label, onEvent, maxDocumentBytes, profileStoreErrorClass }) {
    this.#driver = driver
    this.#label = label
    this.#onEvent = onEvent
    this.#maxDocumentBytes = maxDocumentBytes
    this.#profileStoreErrorClass = profileStoreErrorClass
  }

  // ---- DocumentProfileStoreRepository (0.2.2 semantics) ----

  readCurrentProfile(profileId, options) {
    return this.#op('readCurrentProfile', options, async () => {
      const profile = await this.#driver.load(v.checkId(profileId, 'profileId'))
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
      return [rows.map((row) => row[0]), rows.length]
    })
  }

  readUserProfileIndex(userId, options) {
    return this.#op('readUserProfileIndex', options, async () => {
      const rows = await this.#query('readUserProfileIndex', [v.checkId(userId, 'userId')])
      return [rows.length ? JSON.parse(rows[0][0]) : null, rows.length]
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
      return [undefined, rows[0][0]]
    })
  }

  // ---- query helpers / ProfileStoreAdapter ----

  loadProfile(profileId, options) {
    return this.#op('loadProfile', options, async () => {
      const id = v.checkId(profileId, 'profileId')
      const profile = await this.#driver.load(id)
      if (profile === null) throw await this.#notFound('profile_not_found', `Profile '${id}' was not found.`)
      return [profile, 1]
    })
  }

  // The stored document's JSON text, unparsed (PostgreSQL's jsonb text form),
  // for handlers that only forward it. Coalesced with concurrent loads.
  loadProfileJson(profileId, options) {
    return this.#op('loadProfileJson', options, async () => {
      const id = v.checkId(profileId, 'profileId')
      const text = await this.#driver.loadJson(id)
      if (text === null) throw await this.#notFound('profile_not_found', `Profile '${id}' was not found.`)
      return [text, 1]
    })
  }

  // loadProfileJson for several profiles in one call: texts in the order of
  // `profileIds`, null for a profile that does not exist.
  loadProfilesJson(profileIds, options) {
    return this.#op('loadProfilesJson', options, async () => {
      const ids = v.idList(profileIds, 'profileIds')
      const texts = await Promise.all(ids.map((id) => this.#driver.loadJson(id)))
      return [texts, texts.filter((text) => text !== null).length]
    })
  }

  profileExists(profileId, options) {
    return this.#op('profileExists', options, async () => {
      const rows = await this.#query('profileExists', [v.checkId(profileId, 'profileId')])
      return [rows[0][0] === true, rows[0][0] === true ? 1 : 0]
    })
  }

  loadProfileByUserId(userId, options) {
    return this.#op('loadProfileByUserId', options, async () => {
      const id = v.checkId(userId, 'userId')
      const rows = await this.#query('loadProfileByUserId', [id])
      if (rows.length === 0) throw await this.#notFound('profile_not_found', `No profile was found for user '${id}'.`)
      return [JSON.parse(rows[0][0]), 1]
    })
  }

  findProfilesByUserId(userId, options) {
    return this.#op('findProfilesByUserId', options, async () => {
      const profileIds = await this.#driver.find(v.checkId(userId, 'userId'))
      return [profileIds, profileIds.length]
    })
  }

  listProfileRevisions(profileId, options) {
    return this.#op('listProfileRevisions', options, async () => {
      const id = v.checkId(profileId, 'profileId')
      const rows = await this.#query('listRevisionNumbers', [id])
      if (rows.length === 0) throw await this.#notFound('profile_not_found', `Profile '${id}' has no stored revisions.`)
      return [rows.map((row) => row[0]), rows.length]
    })
  }

  saveProfile(profile, options) {
    return this.#op('saveProfile', options, async (context) => {
      const { text, document, exact } = v.profileText(profile, this.#maxDocumentBytes)
      const expected = v.optionalRevision(options?.expectedRevision, 'expectedRevision')
      const revision = await this.#driver.save(
        document.profile_id,
        text,
        expected,
        context === undefined ? null : JSON.stringify(context),
      )
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
      return [rows[0][0] === true, rows[0][0] === true ? 1 : 0]
    })
  }

  listAuditEntries(profileId, options) {
    return this.#op('listAuditEntries', options, async () => {
      const id = v.checkId(profileId, 'profileId')
      const limit = v.auditLimit(options?.limit)
      const before = v.decodeCursor(options?.cursor)
      // One row more than asked tells whether another page exists.
      const rows = await this.#query('listAuditEntries', [id, before === null ? null : String(before), String(limit + 1)])
      const page = rows.length > limit ? rows.slice(0, limit) : rows
      const entries = page.map((row) => JSON.parse(row[0]))
      const nextCursor = rows.length > limit ? v.encodeCursor(page[page.length - 1][1]) : null
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
      return [JSON.parse(rows[0][0]), 1]
    })
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
          throw this.#driver.convertError(raw, 'pruneAuditEntries')
        }
        return Object.fromEntries(PRUNE_BATCH_COLUMNS.map((column, i) => [column, rows[0][i]]))
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
      for (const [key, exists, missing] of rows) tables[key] = { exists, missingColumns: JSON.parse(missing) }
      const ok = rows.every(([, exists, missing]) => exists && missing === '[]')
      return [{ serverVersion: server[1], serverVersionNum: server[0], tables, ok }, rows.length]
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
   * Stops new calls (they reject with `closed`) and closes the native pool.
   * Calls in flight may finish until one second before `timeoutMillis`; then
   * the statements still running are cancelled on the server (so they write
   * nothing) and, at `timeoutMillis`, whatever has not settled rejects with
   * `closed`. close() never hangs and leaves no call pending.
   */
  async close({ timeoutMillis = 5000 } = {}) {
    if (!this.#closed) {
      this.#closed = true
      this.#driver.close()
    }
    if (this.#inFlight === 0) return
    const deadline = performance.now() + timeoutMillis
    if (await this.#settledWithin(Math.max(0, timeoutMillis - 1000))) return
    this.#cancelling = true
    await Promise.race([this.#driver.cancelRunning().catch(() => {}), delay(500)])
    if (await this.#settledWithin(Math.max(0, deadline - performance.now()))) return
    const error = new PostgresStoreError('closed', 'The repository was closed before this call finished.')
    this.#calls.abandonAll(error)
  }

  async #settledWithin(millis) {
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

  #notFound(storeCode, message) {
    return notFound(storeCode, message, this.#profileStoreErrorClass)
  }

  #query(name, params) {
    return this.#driver.query(name, params)
  }

  // Runs one operation: closed check, context validation, timing, event, and
  // error conversion, in one place for every method.
  async #op(operation, options, body) {
    const observed = isObserved(this.#onEvent)
    const started = observed ? performance.now() : 0
    let context
    // With read replicas (lib/replicas.js): where the call went and why.
    let route
    this.#inFlight++
    try {
      if (this.#closed) throw new PostgresStoreError('closed', 'The repository is closed.')
      context = v.contextOf(options)
      if (this.#driver.route !== undefined) route = this.#driver.route(options)
      const [value, rowCount] = await this.#calls.track(route === undefined ? body(context) : route.run(() => body(context)))
      if (observed) {
        const event = { operation, durationMs: performance.now() - started, rowCount, context }
        if (route?.server !== undefined) Object.assign(event, { server: route.server, reason: route.reason })
        publish(this.#onEvent, event)
      }
      return value
    } catch (raw) {
      let error = this.#driver.convertError(raw, operation)
      if (this.#cancelling && error.code === 'timeout') {
        error = new PostgresStoreError('closed', 'The repository was closed; this call was cancelled.', { cause: error })
      }
      if (error.operation === undefined) error.operation = operation
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
