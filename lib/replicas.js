'use strict'

// Read replicas: a driver (the shape of lib/drivers.js) over a primary driver
// and one driver per hot standby, used only when `replicas` (or `readExec`)
// is configured; without them nothing here runs.
//
// - Writes, deletes and administration go to the primary, with no extra
//   round trip: the write is only counted (an "event").
// - Loads of one profile go to a replica and are checked: an answer older
//   than a revision this repository saved or saw (or that a token names) is
//   read again from the primary (monotonic per profile, no LSN wait).
// - Reads over sets (find by user, audit pages, revision lists, the user
//   index, exists, load by user; loadProfileJson, whose text is not parsed)
//   go to a replica whose replay position has reached a position of the
//   primary read after this repository's last write (and the token's
//   position), waiting up to replicaWaitMillis for one; else the primary.
//   That position (pg_current_wal_insert_lsn(), at or past every commit
//   acknowledged before it is read) comes from the periodic check of the
//   primary, or is read then, once for all the reads that need it.
// - Replicas are checked every replicaCheckMillis (pg_is_in_recovery and the
//   replay position; the primary's insert position is sampled at the same
//   time). Lag is the time since the primary was first seen past a replica's
//   replay position. A replica that fails, lags beyond maxReplicaLagMillis or
//   was promoted is out of rotation until a later check finds it well; a
//   read that failed on a replica runs again on the primary (reads change
//   nothing, so running one twice is safe).
// - Every call's event says which server answered and why (`server`,
//   `reason`): the repository runs each call's body through its CallRoute,
//   and the driver method the body calls (synchronously, before its first
//   await) takes that route along. (An AsyncLocalStorage did the same at a
//   quarter of the throughput on Node 20, whose promise hooks it turns on.)

const { PostgresStoreError, validationError } = require('./errors.js')
const { isPlainObject } = require('./validate.js')
const { C, EFFECTS, named } = require('./columns.js')

// Why a call went where it went (the event's `reason`).
const REASONS = Object.freeze({
  replica: 'replica',
  write: 'primary',
  readYourWrites: 'primary-read-your-writes',
  lag: 'primary-lag',
  fallback: 'fallback',
})

// Defaults, in milliseconds.
const DEFAULTS = { maxReplicaLagMillis: 5000, replicaWaitMillis: 50, replicaCheckMillis: 250 }
// Profiles whose last saved or seen revision is remembered; beyond it the oldest are forgotten (see #forget).
const KNOWN_PROFILES = 100_000
// Out of rotation after a failure for this long at first, doubling to the most.
const RETRY_MIN_MILLIS = 250
const RETRY_MAX_MILLIS = 5000

/** `'16/B374D848'` → a number of bytes (exact below 2^53, which is 8 PiB of WAL). */
function parseLsn(text) {
  const slash = text.indexOf('/')
  return Number.parseInt(text.slice(0, slash), 16) * 2 ** 32 + Number.parseInt(text.slice(slash + 1), 16)
}

function formatLsn(lsn) {
  const high = Math.floor(lsn / 2 ** 32)
  return `${high.toString(16).toUpperCase()}/${(lsn - high * 2 ** 32).toString(16).toUpperCase()}`
}

// ---- consistency tokens ----

const TOKEN_PREFIX = 'pson5c1.'

/** An opaque string: the commit LSN and, when known, a profile's revision. */
function encodeToken(lsn, profileId, revision) {
  const body = { l: formatLsn(lsn) }
  if (profileId !== undefined && revision !== undefined) {
    body.p = profileId
    body.r = revision
  }
  return TOKEN_PREFIX + Buffer.from(JSON.stringify(body)).toString('base64url')
}

function decodeToken(token) {
  if (token === undefined || token === null) return null
  const bad = () => validationError('after', 'must be a consistency token from consistencyToken()')
  if (typeof token !== 'string' || !token.startsWith(TOKEN_PREFIX)) throw bad()
  let body
  try {
    body = JSON.parse(Buffer.from(token.slice(TOKEN_PREFIX.length), 'base64url').toString())
  } catch {
    throw bad()
  }
  if (!isPlainObject(body) || typeof body.l !== 'string' || !/^[0-9A-F]{1,8}\/[0-9A-F]{1,8}$/.test(body.l)) throw bad()
  const decoded = { lsn: parseLsn(body.l), profileId: undefined, revision: 0 }
  if (body.p !== undefined) {
    if (typeof body.p !== 'string' || !Number.isInteger(body.r) || body.r < 0) throw bad()
    decoded.profileId = body.p
    decoded.revision = body.r
  }
  return decoded
}

// ---- options ----

function millisOption(options, name) {
  const value = options[name]
  if (value === undefined || value === null) return DEFAULTS[name]
  if (!Number.isInteger(value) || value < 0 || value > 2 ** 31 - 1) {
    throw validationError(name, 'must be a whole number of milliseconds from 0 to 2147483647')
  }
  return value
}

/** Whether `options` asks for replicas (so the factory builds a router). */
function wantsReplicas(options) {
  return (options.replicas !== undefined && options.replicas !== null) || (options.readExec !== undefined && options.readExec !== null)
}

/**
 * The router's settings and the replicas as `[{ kind: 'native', options } |
 * { kind: 'executor', exec }]`, checked before any pool is made.
 */
function replicaSettings(options) {
  const entries = []
  if (options.replicas !== undefined && options.replicas !== null) {
    if (!Array.isArray(options.replicas)) {
      throw validationError('replicas', 'must be an array of connection strings, connection options or executors')
    }
    entries.push(...options.replicas)
  }
  if (options.readExec !== undefined && options.readExec !== null) entries.push(options.readExec)
  if (entries.length === 0) throw validationError('replicas', 'must name at least one replica')
  const replicas = entries.map((entry, i) => {
    if (typeof entry === 'string' && entry.length > 0) return { kind: 'native', options: { connectionString: entry } }
    if (isPlainObject(entry) && entry.exec === undefined) return { kind: 'native', options: entry }
    if (typeof entry === 'function' || typeof entry?.query === 'function') return { kind: 'executor', exec: entry }
    if (isPlainObject(entry) && entry.exec !== undefined) return { kind: 'executor', exec: entry.exec }
    throw validationError(`replicas[${i}]`, 'must be a connection string, connection options or an executor')
  })
  return {
    replicas,
    maxReplicaLagMillis: millisOption(options, 'maxReplicaLagMillis'),
    replicaWaitMillis: millisOption(options, 'replicaWaitMillis'),
    replicaCheckMillis: Math.max(10, millisOption(options, 'replicaCheckMillis')),
  }
}

/**
 * `host:port` of connection options (no user, no password): the URL's hosts,
 * else `host`/`port`, else PGHOST/PGPORT. Several hosts are joined with ','.
 */
function addressOf(options) {
  let hosts = options.host
  let port = options.port
  if (typeof options.connectionString === 'string' && !/^[a-z]+:\/\//i.test(options.connectionString)) {
    // libpq's key=value form.
    const value = (key) => new RegExp(`(?:^|\\s)${key}\\s*=\\s*'?([^'\\s]+)`).exec(options.connectionString)?.[1]
    hosts ??= value('host') ?? value('hostaddr')
    port ??= value('port')
  } else if (typeof options.connectionString === 'string') {
    const match = /^[a-z]+:\/\/(?:[^@/?#]*@)?([^/?#]*)/i.exec(options.connectionString)
    if (match && match[1] && hosts === undefined) {
      return match[1]
        .split(',')
        .map((hostPort) => (port !== undefined ? `${hostPort.replace(/:\d+$/, '')}:${port}` : /:\d+$/.test(hostPort) ? hostPort : `${hostPort}:5432`))
        .join(',')
    }
  }
  hosts ??= process.env.PGHOST || 'localhost'
  port ??= process.env.PGPORT || 5432
  return String(hosts)
    .split(',')
    .map((host) => `${host}:${port}`)
    .join(',')
}

/** `host:port` of an executor's pool where it says (pg Pool/Client, postgres.js), else `executor <n>`. */
function executorAddress(exec, index) {
  const pgOptions = exec?.options ?? exec?.connectionParameters
  if (typeof pgOptions?.connectionString === 'string') return addressOf({ connectionString: pgOptions.connectionString })
  if (pgOptions && typeof pgOptions.host === 'string') return `${pgOptions.host}:${pgOptions.port ?? 5432}`
  if (Array.isArray(pgOptions?.host)) return `${pgOptions.host[0]}:${pgOptions.port?.[0] ?? 5432}`
  return index < 0 ? 'executor' : `executor ${index + 1}`
}

// ---- servers ----

class Server {
  constructor(driver, role, address) {
    this.driver = driver
    this.role = role
    this.address = address
    // For events: the same object every time (events never hold more).
    this.label = Object.freeze({ role, address })
    // Replay (standby) or insert (primary) position at the last check, -1 before the first.
    this.lsn = -1
    this.checkedAt = 0
    this.inRecovery = role === 'replica'
    this.down = false
    this.retryAt = 0
    this.backoff = 0
    this.checking = null
  }
}

function isConnectionFailure(error) {
  const code = error?.code
  if (code === 'connection_error' || code === 'timeout') return true
  const state = error?.sqlState
  return typeof state === 'string' && (state.startsWith('08') || state.startsWith('57P') || state === '53300')
}

// ---- the router ----

class ReplicaRouter {
  mode
  #primary
  #replicas
  #settings
  #next = 0
  #turnTaken = false
  #timer = null
  #closed = false
  // Events (writes acknowledged here, newer revisions seen here) are counted;
  // a read of the primary's insert position sent after event e covers it: a
  // replica replayed that far shows it. #coveredLsn covers every event up to
  // #coveredEpoch. Positions are read when a read needs them (not after each
  // write: saves cost no extra round trip) and by the periodic checks.
  #epoch = 0
  // The event of the newest write here: reads over sets must cover it (not
  // the sightings, which only concern loads of that profile).
  #lastWriteEpoch = 0
  #coveredEpoch = 0
  #coveredLsn = -1
  // The pending position read; calls made before it is sent share it.
  #positionRequest = null
  // profileId → { revision, epoch (of the write or sighting), deleted }
  #known = new Map()
  // The newest event of forgotten profiles: loads of profiles not in #known
  // need a replica that covers it (see #forget).
  #forgottenEpoch = 0
  // The newest write that may have changed current documents not tracked one
  // by one: every load needs a replica that covers it.
  #untrackedEpoch = 0
  // The primary's position over time: [{ lsn, at }], oldest first.
  #samples = []
  // The route of the call whose body is running (synchronously) now.
  #current = undefined

  constructor(primaryDriver, primaryAddress, replicaDrivers, settings) {
    this.mode = primaryDriver.mode
    this.#primary = new Server(primaryDriver, 'primary', primaryAddress)
    this.#replicas = replicaDrivers.map(({ driver, address }) => new Server(driver, 'replica', address))
    this.#settings = settings
    this.convertError = primaryDriver.convertError
    this.#checkAll()
    this.#timer = setInterval(() => this.#checkAll(), settings.replicaCheckMillis)
    this.#timer.unref()
  }

  // ---- per call ----

  /** The call's route: `after` (a token) in, `server` and `reason` out (for its event). */
  route(options) {
    return new CallRoute(this, decodeToken(options?.after))
  }

  /** Runs `body` with `route` as the current call's (CallRoute#run). */
  enter(route, body) {
    const outer = this.#current
    this.#current = route
    try {
      return body()
    } finally {
      this.#current = outer
    }
  }

  // ---- driver interface ----

  query(name, params) {
    const call = this.#current
    if (EFFECTS[name] === 'read') return this.#setRead(call, (driver) => driver.query(name, params))
    return this.#write(call, name, params)
  }

  // `trace` (lib/tracing.js, or undefined) goes to the driver that serves
  // the call, which records how many calls shared its statement.
  load(profileId, trace) {
    return this.#loadParsed(this.#current, profileId, trace)
  }

  // The text is not parsed, so its revision is not checked: a profile
  // written or seen here needs a replica that covers that event.
  loadJson(profileId, trace) {
    const call = this.#current
    const entry = this.#known.get(profileId)
    const epoch = Math.max(entry === undefined ? this.#forgottenEpoch : entry.epoch, this.#untrackedEpoch)
    return this.#readCovering(call, epoch, (driver) => driver.loadJson(profileId, trace))
  }

  find(userId, trace) {
    return this.#setRead(this.#current, (driver) => driver.find(userId, trace))
  }

  async save(profileId, document, expected, context, trace) {
    this.#served(this.#current, this.#primary, REASONS.write)
    const revision = await this.#primary.driver.save(profileId, document, expected, context, trace)
    if (revision !== null) this.#remember(profileId, revision, false)
    return revision
  }

  async ensureSchema() {
    this.#served(this.#current, this.#primary, REASONS.write)
    const result = await this.#primary.driver.ensureSchema()
    this.#wrote()
    return result
  }

  async upgrade() {
    this.#served(this.#current, this.#primary, REASONS.write)
    const result = await this.#primary.driver.upgrade()
    this.#untrackedEpoch = this.#wrote()
    return result
  }

  close() {
    this.#closed = true
    clearInterval(this.#timer)
    for (const server of this.#servers()) server.driver.close()
  }

  async cancelRunning() {
    await Promise.all(this.#servers().map((server) => server.driver.cancelRunning()))
  }

  abandonAll(reason) {
    for (const server of this.#servers()) server.driver.abandonAll(reason)
  }

  status() {
    return this.#primary.driver.status()
  }

  /** A token for reads elsewhere: everything this repository wrote so far (and `profileId`'s revision). */
  async consistencyToken(profileId) {
    // A position read now covers every write acknowledged so far.
    const lsn = await this.#primaryPosition()
    const entry = profileId === undefined ? undefined : this.#known.get(profileId)
    return entry === undefined || entry.deleted ? encodeToken(lsn) : encodeToken(lsn, profileId, entry.revision)
  }

  /** Per server: role, address, whether in rotation, lag (ms) and position, for diagnostics. */
  replicaStatus() {
    const now = performance.now()
    return this.#replicas.map((server) => ({
      address: server.address,
      inRotation: this.#usable(server, now),
      down: server.down,
      promoted: !server.inRecovery,
      lagMillis: this.#lagMillis(server),
      replayLsn: server.lsn < 0 ? null : formatLsn(server.lsn),
    }))
  }

  // ---- routing ----

  #servers() {
    return [this.#primary, ...this.#replicas]
  }

  #served(call, server, reason) {
    if (call !== undefined) {
      call.server = server.label
      call.reason = reason
    }
  }

  async #write(call, name, params) {
    this.#served(call, this.#primary, REASONS.write)
    const rows = await this.#primary.driver.query(name, params)
    if (name === 'deleteProfile') {
      this.#remember(params[0], this.#known.get(params[0])?.revision ?? 0, true)
    } else if (name === 'revertProfile' || name === 'eraseFromHistory') {
      // A new current revision of the profile, like a save (none when nothing was written).
      const revision = rows[0]?.[name === 'revertProfile' ? C.revertProfile.revision : C.eraseFromHistory.erased_revision]
      if (revision === undefined || revision === null) this.#wrote()
      else this.#remember(params[0], revision, false)
    } else if (name === 'deleteProfilesByUserId') {
      // The user's profiles, deleted by one write.
      const epoch = this.#wrote()
      for (const profileId of rows.length === 0 ? [] : JSON.parse(rows[0][C.deleteProfilesByUserId.profile_ids])) {
        this.#known.delete(profileId)
        this.#known.set(profileId, { revision: 0, epoch, deleted: true })
        if (this.#known.size > KNOWN_PROFILES) this.#forget()
      }
    } else if (name === 'writeCurrentProfile') {
      const document = JSON.parse(params[0])
      this.#remember(document.profile_id, document.metadata.revision, false)
    } else if (EFFECTS[name] === 'keepsCurrent') {
      // The audit log, the user index: loads need not cover it.
      this.#wrote()
    } else if (EFFECTS[name] !== 'primaryRead') {
      // Profiles this repository does not track one by one may have
      // changed, so loads after it need a replica that covers it.
      this.#untrackedEpoch = this.#wrote()
    }
    return rows
  }

  // A write acknowledged here: a new event, which reads over sets must cover.
  #wrote() {
    this.#lastWriteEpoch = ++this.#epoch
    return this.#lastWriteEpoch
  }

  // A profile written (or, `seen`, a newer revision loaded): a new event.
  #remember(profileId, revision, deleted, seen = false) {
    const epoch = seen ? ++this.#epoch : this.#wrote()
    this.#known.delete(profileId)
    this.#known.set(profileId, { revision, epoch, deleted })
    if (this.#known.size > KNOWN_PROFILES) this.#forget()
  }

  // Forgets the oldest remembered profile (the map is bounded); loads of
  // profiles not remembered then need a replica covering its last event.
  #forget() {
    const [profileId, entry] = this.#known.entries().next().value
    this.#known.delete(profileId)
    this.#forgottenEpoch = Math.max(this.#forgottenEpoch, entry.epoch)
  }

  // The primary's insert position, read once for every call made before the
  // request is sent; it covers every event up to then.
  #primaryPosition() {
    if (this.#positionRequest !== null) return this.#positionRequest
    const epoch = this.#epoch
    const request = this.#primary.driver.query('walPosition', []).then((rows) => {
      const { in_recovery, lsn: text } = named('walPosition', rows[0])
      if (in_recovery === true) throw new PostgresStoreError('connection_error', 'The primary is in recovery.')
      const lsn = parseLsn(text)
      this.#covered(epoch, lsn)
      return lsn
    })
    this.#positionRequest = request
    // Drivers send within the microtasks already queued: later calls ask anew.
    queueMicrotask(() => {
      if (this.#positionRequest === request) this.#positionRequest = null
    })
    return request
  }

  #covered(epoch, lsn) {
    this.#sample(lsn)
    if (epoch > this.#coveredEpoch) this.#coveredEpoch = epoch
    if (lsn > this.#coveredLsn) this.#coveredLsn = lsn
  }

  // The position a replica needs to show every event up to `epoch`: a number
  // when known, else a promise (one position read).
  #lsnFor(epoch) {
    if (epoch === 0) return -1
    if (epoch <= this.#coveredEpoch) return this.#coveredLsn
    return this.#primaryPosition()
  }

  #sample(lsn) {
    const at = performance.now()
    const samples = this.#samples
    const last = samples[samples.length - 1]
    if (last !== undefined && at - last.at < 5) last.lsn = Math.max(last.lsn, lsn)
    else if (last === undefined || lsn > last.lsn) samples.push({ lsn, at })
    // Kept: enough to tell a lag up to maxReplicaLagMillis (and one older sample).
    const horizon = at - this.#settings.maxReplicaLagMillis - 2 * this.#settings.replicaCheckMillis - 1000
    let drop = 0
    while (drop < samples.length - 1 && samples[drop + 1].at < horizon) drop++
    if (drop > 0) samples.splice(0, drop)
  }

  // How far behind a replica was at its last check: from when the primary
  // was first seen past the replica's replay position to that check (0 when
  // the replica had replayed every position seen on the primary).
  #lagMillis(server) {
    if (server.lsn < 0) return Infinity
    for (const sample of this.#samples) {
      if (sample.lsn > server.lsn) return Math.max(0, server.checkedAt - sample.at)
    }
    return 0
  }

  #usable(server, now = performance.now()) {
    if (server.down || !server.inRecovery || server.lsn < 0) return false
    if (this.#lagMillis(server) > this.#settings.maxReplicaLagMillis) return false
    return now >= server.retryAt
  }

  // A usable replica at `need` or past it; else null. Calls of one
  // event-loop turn go to the same replica (they are coalesced into shared
  // statements there), the next turn's to the next one.
  #pick(need) {
    const replicas = this.#replicas
    const now = performance.now()
    if (!this.#turnTaken) {
      this.#turnTaken = true
      this.#next = (this.#next + 1) % replicas.length
      setImmediate(() => {
        this.#turnTaken = false
      })
    }
    for (let i = 0; i < replicas.length; i++) {
      const server = replicas[(this.#next + i) % replicas.length]
      if (server.lsn >= need && this.#usable(server, now)) return server
    }
    return null
  }

  // Why no replica serves a read that needs `need`.
  #primaryReason(need) {
    const now = performance.now()
    const healthy = this.#replicas.filter((s) => !s.down && s.inRecovery && s.lsn >= 0 && now >= s.retryAt)
    if (healthy.length === 0) return REASONS.fallback
    if (healthy.every((s) => this.#lagMillis(s) > this.#settings.maxReplicaLagMillis)) return REASONS.lag
    return need > -1 ? REASONS.readYourWrites : REASONS.lag
  }

  // After checking the replicas again until replicaWaitMillis have passed:
  // a replica at `need`, or null when none got there.
  async #waitForReplica(need) {
    const now = performance.now()
    // Only replicas in rotation (healthy, not lagging) are worth waiting for.
    if (!this.#replicas.some((s) => this.#usable(s, now))) return null
    const deadline = now + this.#settings.replicaWaitMillis
    while (performance.now() < deadline && !this.#closed) {
      await Promise.all(this.#replicas.map((s) => (s.down || !s.inRecovery ? null : this.#check(s).catch(() => {}))))
      const server = this.#pick(need)
      if (server !== null) return server
      await delay(Math.min(2, Math.max(0, deadline - performance.now())))
    }
    return null
  }

  // Reads over sets: every write here (and the token's writes).
  #setRead(call, run) {
    return this.#readCovering(call, this.#lastWriteEpoch, run)
  }

  // A read that must show every event up to `epoch` and the token's writes.
  #readCovering(call, epoch, run) {
    const after = call?.after?.lsn ?? -1
    const need = this.#lsnFor(epoch)
    if (typeof need === 'number') return this.#readAt(call, Math.max(need, after), run)
    return need.then(
      (lsn) => this.#readAt(call, Math.max(lsn, after), run),
      // The primary's position could not be read: the primary answers (or fails as the read would).
      () => this.#onPrimary(call, run, REASONS.readYourWrites),
    )
  }

  // A read on a replica at `need` (now, or after a wait), else on the primary.
  #readAt(call, need, run) {
    const server = this.#pick(need)
    if (server !== null) return this.#onReplica(call, server, run)
    return this.#waitForReplica(need).then((waited) =>
      waited === null ? this.#onPrimary(call, run, this.#primaryReason(need)) : this.#onReplica(call, waited, run),
    )
  }

  #onPrimary(call, run, reason) {
    this.#served(call, this.#primary, reason)
    return run(this.#primary.driver)
  }

  // Runs a read on a replica; if it fails there, on the primary.
  #onReplica(call, server, run) {
    this.#served(call, server, REASONS.replica)
    return run(server.driver).catch((raw) => {
      if (this.#closed) throw raw
      const error = server.driver.convertError(raw)
      if (error.code === 'closed') throw error
      if (isConnectionFailure(error)) this.#markDown(server)
      return this.#onPrimary(call, run, REASONS.fallback)
    })
  }

  // loadProfile/readCurrentProfile: a replica, then the revision check.
  #loadParsed(call, profileId, trace) {
    const after = call?.after
    const entry = this.#known.get(profileId)
    let needRevision = entry !== undefined && !entry.deleted ? entry.revision : 0
    if (after?.profileId === profileId) needRevision = Math.max(needRevision, after.revision)
    // What a revision cannot tell: a token about other writes, a delete, a forgotten profile.
    let need = -1
    if (after != null && after.profileId !== profileId) need = after.lsn
    const epoch = Math.max(entry === undefined ? this.#forgottenEpoch : entry.deleted ? entry.epoch : 0, this.#untrackedEpoch)
    const load = (driver) => driver.load(profileId, trace)
    const fromPrimary = (reason) => this.#onPrimary(call, load, reason).then((profile) => this.#seen(profileId, profile))
    const fromReplica = (server) => {
      const replayed = server.lsn
      return this.#onReplica(call, server, load).then((profile) => {
        if (call?.server?.role === 'primary') return this.#seen(profileId, profile)
        // The replica had replayed past a position read after this profile's last event here.
        const current = entry !== undefined && entry.epoch <= this.#coveredEpoch && replayed >= this.#coveredLsn
        if (!current && needRevision > 0 && (profile === null || (profile.metadata?.revision ?? 0) < needRevision)) {
          return fromPrimary(REASONS.readYourWrites)
        }
        return entry === undefined ? profile : this.#seen(profileId, profile)
      })
    }
    const read = (lsn) => {
      const server = this.#pick(lsn)
      if (server !== null) return fromReplica(server)
      return this.#waitForReplica(lsn).then((waited) =>
        waited === null ? fromPrimary(this.#primaryReason(lsn)) : fromReplica(waited),
      )
    }
    const covering = this.#lsnFor(epoch)
    if (typeof covering === 'number') return read(Math.max(need, covering))
    return covering.then(
      (lsn) => read(Math.max(need, lsn)),
      () => fromPrimary(REASONS.readYourWrites),
    )
  }

  // Remembers a loaded revision newer than the one known (only for profiles
  // already remembered: reads alone must not fill the map with every profile
  // a busy reader loads).
  #seen(profileId, profile) {
    const entry = this.#known.get(profileId)
    if (entry === undefined || profile === null) return profile
    const revision = profile?.metadata?.revision
    // After a delete, a document was only accepted from a server covering the delete: the profile was made again.
    if (Number.isInteger(revision) && (entry.deleted || revision > entry.revision)) {
      this.#remember(profileId, revision, false, true)
    }
    return profile
  }

  // ---- health ----

  #markDown(server) {
    server.down = true
    server.backoff = Math.min(RETRY_MAX_MILLIS, server.backoff === 0 ? RETRY_MIN_MILLIS : server.backoff * 2)
    server.retryAt = performance.now() + server.backoff
  }

  #checkAll() {
    if (this.#closed) return
    const now = performance.now()
    this.#check(this.#primary).catch(() => {})
    for (const server of this.#replicas) {
      if (!server.down || now >= server.retryAt) this.#check(server).catch(() => {})
    }
  }

  // One position check of a server (at most one at a time per server).
  #check(server) {
    if (server.checking !== null) return server.checking
    const epoch = this.#epoch
    server.checking = server.driver
      .query('walPosition', [])
      .then(
        (rows) => {
          const [inRecovery, lsnText] = rows[0]
          if (server === this.#primary) {
            // Covers every event before it was sent (the primary is the one
            // that acknowledged them, unless a failover happened between).
            if (!inRecovery && lsnText !== null) this.#covered(epoch, parseLsn(lsnText))
            return
          }
          server.inRecovery = inRecovery === true
          server.lsn = lsnText === null ? -1 : parseLsn(lsnText)
          server.checkedAt = performance.now()
          server.down = false
          server.backoff = 0
          server.retryAt = 0
        },
        (error) => {
          if (server !== this.#primary && !this.#closed) this.#markDown(server)
          throw error
        },
      )
      .finally(() => {
        server.checking = null
      })
    return server.checking
  }
}

/** What one call learned about its route; the repository adds it to the call's event. */
class CallRoute {
  #router

  constructor(router, after) {
    this.#router = router
    this.after = after
    this.server = undefined
    this.reason = undefined
  }

  /** Runs the call's body; the driver methods it calls before its first await belong to this call. */
  run(body) {
    return this.#router.enter(this, body)
  }
}

function delay(millis) {
  return new Promise((resolve) => setTimeout(resolve, millis))
}

/**
 * A token for `{ after }` from a repository without replicas: the primary's
 * position now, which is past every write this repository acknowledged.
 */
async function primaryToken(driver) {
  const { in_recovery, lsn } = named('walPosition', (await driver.query('walPosition', []))[0])
  if (in_recovery === true) {
    throw new PostgresStoreError('database_error', 'consistencyToken needs the primary; this server is a standby.')
  }
  return encodeToken(parseLsn(lsn))
}

module.exports = {
  ReplicaRouter,
  wantsReplicas,
  replicaSettings,
  addressOf,
  executorAddress,
  primaryToken,
  decodeToken,
  encodeToken,
  parseLsn,
  formatLsn,
}
