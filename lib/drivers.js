'use strict'

// Two ways to run a named statement, with one result shape (rows as arrays of
// text/number/boolean/null):
// - native: the Rust pool (prepared, cached, pipelined by tokio-postgres);
// - executor: the caller's `(sql, params) => Promise<{ rows }>` running the
//   very same SQL text from the artifacts.

const { createHash } = require('node:crypto')

const { NativeFailure, fromNative, fromExecutor, internalError, validationError } = require('./errors.js')
const { InFlight } = require('./in-flight.js')
const { abortable, currentSignal } = require('./calls.js')
const { C } = require('./columns.js')

// `perCrossing`: the most loads, finds and saves one N-API crossing carries
// (the addon's statement sizes, so a crossing is answered as soon as its
// statement is done) and about how many bytes of documents (`bytes`); all
// from the addon's src/store/limits.rs.
function nativeDriver(native, perCrossing) {
  // Loaded documents' sizes are only known once they arrive: the average so
  // far sizes the next bursts' crossings.
  const loadedBytes = new RunningAverage(1024)
  // The crossings in flight, for close() to give up on them.
  const crossings = new InFlight()
  // `counted`: the crossing carries a traced call (lib/tracing.js), so Rust
  // answers each call with how many calls its statement carried.
  const gather = (callMany, toCall, bytesOf, maxCalls) =>
    gatherPerTick((calls, counted, crossing) => crossings.track(callMany(calls, counted, crossing)), toCall, {
      bytesOf,
      maxCalls,
      maxBytes: perCrossing.bytes,
      abandon: (crossing) => native.abandon(crossing),
    })
  return {
    mode: 'native',
    // Calls of one tick cross into Rust together; loads, finds and saves are
    // then coalesced with concurrent ones into as few statements as possible.
    // The other statements run side by side, so any piece size does for them.
    query: gather(
      (calls, counted, crossing) => native.queryMany(calls, crossing),
      (name, params) => ({ name, params }),
      () => 0,
      perCrossing.saves,
    ),
    // Resolves to the parsed document or null.
    load: gather(
      (ids, counted, crossing) =>
        native.loadMany(ids, counted, crossing).then((reply) => parsedOutcomes(reply, ids.length, loadedBytes)),
      (profileId) => profileId,
      () => loadedBytes.value,
      perCrossing.loads,
    ),
    // Resolves to the document's JSON text (as stored, never parsed) or null.
    loadJson: gather(
      (ids, counted, crossing) => native.loadManyJson(ids, counted, crossing),
      (profileId) => profileId,
      () => loadedBytes.value,
      perCrossing.loads,
    ),
    // Resolves to the user's profile ids.
    find: gather(
      (userIds, counted, crossing) => native.findMany(userIds, counted, crossing).then(foundLists),
      (userId) => userId,
      () => 0,
      perCrossing.finds,
    ),
    save: gather(
      (calls, counted, crossing) => native.saveMany(calls, counted, crossing),
      // napi reads an absent optional field as undefined, never null.
      (profileId, document, expected, context) => ({
        profileId,
        document,
        expectedRevision: expected ?? undefined,
        context: context ?? undefined,
      }),
      (call) => call.document.length,
      perCrossing.saves,
    ),
    ensureSchema: () => crossings.track(native.ensureSchema()),
    upgrade: () => crossings.track(native.upgrade()),
    close: () => native.close(),
    cancelRunning: () => native.cancelRunning(),
    // Rejects every call still waiting for Rust with `reason`.
    abandonAll: (reason) => crossings.abandonAll(reason),
    status: () => native.status(),
    // Native rejections carry an envelope (src/error.rs); anything else is internal.
    convertError: fromNative,
  }
}

// Calls made in the same tick go to `callMany` together: one N-API crossing
// (and one promise) per burst, or per `maxCalls` calls or `maxBytes` of it
// (as `bytesOf` estimates each call): large documents then come back, and
// are parsed, while the server still works on the rest of the burst.
// `callMany` resolves to one `{ value }` or `{ error }` per call, so calls
// succeed and fail independently; `error` is the envelope fromNative reads.
// A call may end with a trace context (one argument more than `toCall`
// takes): its crossing then asks Rust how many calls each statement carried
// (`calls`).
//
// A call with a signal (lib/calls.js) that is aborted before the flush
// leaves the burst: it is never sent. When every call of a crossing has a
// signal, the crossing gets an id (`callMany`'s third argument), and once
// all of them were aborted after it was sent, `abandon(id)` lets Rust
// cancel what serves only them (src/store/abandon.rs).
function gatherPerTick(callMany, toCall, { bytesOf, maxCalls, maxBytes, abandon }) {
  let pending = null
  let withSignals = false
  const flush = () => {
    let burst = pending
    pending = null
    if (withSignals) {
      withSignals = false
      burst = burst.filter((item) => item.sent === null || !item.signal.aborted)
      for (const item of burst) item.sent?.()
      if (burst.length === 0) return
    }
    let start = 0
    let bytes = 0
    for (let i = 0; i < burst.length; i++) {
      const size = bytesOf(burst[i].call)
      if (i > start && (i - start === maxCalls || bytes + size > maxBytes)) {
        cross(callMany, burst.slice(start, i), abandon)
        start = i
        bytes = 0
      }
      bytes += size
    }
    cross(callMany, start === 0 ? burst : burst.slice(start), abandon)
  }
  const arity = toCall.length
  const gathered = (args, signal, sent) =>
    new Promise((resolve, reject) => {
      if (pending === null) {
        pending = []
        queueMicrotask(flush)
      }
      const trace = args.length > arity ? (args[arity] ?? null) : null
      pending.push({ call: toCall(...args), trace, resolve, reject, signal, sent })
      if (sent !== null) withSignals = true
    })
  return (...args) => {
    const signal = currentSignal()
    if (signal === undefined) return gathered(args, null, null)
    return abortable(signal, (sent) => gathered(args, signal, sent))
  }
}

// One crossing: settles each call of `batch` with its own outcome.
function cross(callMany, batch, abandon) {
  const watch = abandon !== undefined && batch.every((item) => item.signal !== null) ? watchAborts(batch, abandon) : null
  const failAll = (error) => {
    watch?.stop()
    for (const item of batch) item.reject(error)
  }
  const counted = batch.some((item) => item.trace !== null)
  const calls = batch.map((item) => item.call)
  let outcomes
  try {
    outcomes = callMany(calls, counted, watch?.crossing)
  } catch (error) {
    // napi rejects arguments it cannot convert synchronously.
    failAll(error)
    return
  }
  outcomes.then(
    (outcomes) => {
      watch?.stop()
      for (let i = 0; i < batch.length; i++) {
        const outcome = outcomes[i]
        if (counted && outcome.calls !== undefined) batch[i].trace?.sharedWith(outcome.calls)
        if (outcome.error === undefined) batch[i].resolve(outcome.value)
        // The envelope as it came, no Error (and no stack) made for it:
        // the repository builds the one error, with the caller's stack.
        else batch[i].reject(new NativeFailure(outcome.error))
      }
    },
    failAll,
  )
}

// The last crossing id given (a u32 for napi; the addon ignores an id still
// in use, should the counter wrap around a crossing that never ended).
let lastCrossing = 0

// Counts the aborts of a crossing's calls; calls `abandon(crossing)` when
// every one has aborted. One listener per call: calls may share a signal.
function watchAborts(batch, abandon) {
  lastCrossing = (lastCrossing + 1) % 2 ** 32
  const crossing = lastCrossing
  let waiting = batch.length
  const listeners = batch.map((item) => {
    const onAbort = () => {
      if (--waiting === 0) abandon(crossing)
    }
    item.signal.addEventListener('abort', onAbort, { once: true })
    return onAbort
  })
  const stop = () => {
    for (let i = 0; i < batch.length; i++) batch[i].signal.removeEventListener('abort', listeners[i])
  }
  return { crossing, stop }
}

// An exponential moving average (the last ~8 samples weigh most).
class RunningAverage {
  constructor(initial) {
    this.value = initial
  }

  add(sample) {
    this.value += (sample - this.value) / 8
  }
}

// loadMany's reply: one JSON array of every document when all loads worked
// (one string and one parse for the crossing), else one outcome per load.
function parsedOutcomes(reply, count, loadedBytes) {
  if (typeof reply === 'string') {
    loadedBytes.add(reply.length / count)
    return JSON.parse(reply).map((value) => ({ value }))
  }
  return reply.map((outcome) =>
    outcome.error === undefined
      ? { value: outcome.value === null ? null : JSON.parse(outcome.value), calls: outcome.calls }
      : outcome,
  )
}

// findMany's reply: one JSON array of every list when all finds worked, else
// one outcome per find.
function foundLists(reply) {
  return typeof reply === 'string' ? JSON.parse(reply).map((value) => ({ value })) : reply
}

function executorDriver(exec, artifacts) {
  // The executor's calls in flight, for close() to give up on them.
  const calls = new InFlight()
  let abandonedWith
  // A call with a signal (lib/calls.js) is sent a microtask later, so that an
  // abort in the same tick still finds it unsent.
  const run = (sql, params) => {
    const signal = currentSignal()
    if (signal === undefined) return send(sql, params)
    return abortable(signal, async (sent) => {
      await null
      if (signal.aborted) return null
      sent()
      return send(sql, params)
    })
  }
  const send = async (sql, params) => {
    let result
    try {
      result = await calls.track(Promise.resolve(exec(sql, params)))
    } catch (error) {
      // Converted here, where it is known to come from the caller's driver.
      throw error === abandonedWith ? error : fromExecutor(error)
    }
    const rows = Array.isArray(result) ? result : result?.rows
    if (!Array.isArray(rows)) throw new TypeError('the executor must resolve to { rows: [...] }')
    return rows
  }
  const query = async (name, params) => {
    const rows = await run(artifacts.queries[name], params)
    return rows.map((row) => (Array.isArray(row) ? row : Object.values(row)))
  }
  return {
    mode: 'executor',
    query,
    load: async (profileId) => {
      const rows = await query('loadProfile', [profileId])
      return rows.length === 0 ? null : JSON.parse(rows[0][C.loadProfile.document])
    },
    loadJson: async (profileId) => {
      const rows = await query('loadProfile', [profileId])
      return rows.length === 0 ? null : rows[0][C.loadProfile.document]
    },
    find: async (userId) =>
      (await query('findProfilesByUserId', [userId])).map((row) => row[C.findProfilesByUserId.profile_id]),
    save: async (profileId, document, expected, context) => {
      const rows = await query('saveProfile', [document, expected === null ? null : String(expected), context])
      // A `bigint` revision (a widened column) comes from node-postgres as a string.
      return rows.length === 0 ? null : Number(rows[0][C.saveProfile.revision])
    },
    ensureSchema: () => run(artifacts.schemaSql, []),
    upgrade: () => run(artifacts.upgradeSql, []),
    // The caller owns its pool: closing the repository does not end it, and
    // its statements are its own to cancel.
    close: () => {},
    cancelRunning: async () => {},
    abandonAll: (reason) => {
      abandonedWith = reason
      calls.abandonAll(reason)
    },
    status: () => null,
    // The executor's own errors were converted in `run`: what is left is ours.
    convertError: internalError,
  }
}

// Adapts a node-postgres Pool/Client or a postgres.js `sql` into an executor.
// Statements are prepared once per connection (named in pg, `prepare` in
// postgres.js): planning the save costs more than running it. Poolers in
// transaction mode without prepared-statement support answer 26000/42P05;
// the statement did not run then, so the executor retries it unprepared and
// stays unprepared. `{ prepare: false }` starts that way.
// The call's signal (lib/calls.js, read where the statement goes out, not
// passed: an executor such as `pool.query.bind(pool)` would take a third
// argument for its callback) cancels the statement when it aborts (see
// cancelledOnAbort and queryOnOwnClient).
function createPostgresQueryExecutor(queryable, { prepare = true } = {}) {
  let prepared = prepare
  // Every call that failed this way retries, not only the first to notice.
  const lostPreparedStatement = (error) => {
    if (error?.code !== '26000' && error?.code !== '42P05') return false
    prepared = false
    return true
  }
  if (typeof queryable?.unsafe === 'function') {
    // Scripts (the DDL) have no parameters and several statements: never prepared.
    const run = (sql, params, usePrepared, signal) =>
      cancelledOnAbort(queryable.unsafe(sql, params, { prepare: usePrepared && params.length > 0 }), signal)
    return async (sql, params = []) => {
      const signal = currentSignal()
      const usePrepared = prepared
      try {
        return { rows: await run(sql, params, usePrepared, signal) }
      } catch (error) {
        if (!usePrepared || !lostPreparedStatement(error) || signal?.aborted) throw error
        return { rows: await run(sql, params, false, signal) }
      }
    }
  }
  if (typeof queryable?.query === 'function') {
    const names = new Map()
    // Bumped when the server refuses a cached plan (0A000): every connection
    // then prepares the statement afresh under a new name.
    let generation = 0
    const nameOf = (sql) => {
      let name = names.get(sql)
      if (name === undefined) {
        name = `pson5_${createHash('sha1').update(`${generation}:${sql}`).digest('hex').slice(0, 16)}`
        names.set(sql, name)
      }
      return name
    }
    // A Pool's query() hides the client that runs the statement, and only
    // that client can cancel it: with a signal, the statement runs on a
    // client of its own checkout. A single Client runs it to its end.
    const isPool = typeof queryable.connect === 'function' && typeof queryable.totalCount === 'number'
    const send = (config, signal) => (signal !== undefined && isPool ? queryOnOwnClient(queryable, config, signal) : queryable.query(config))
    return async (sql, params = []) => {
      const signal = currentSignal()
      // No values: the simple query protocol, which runs scripts of several statements.
      if (params.length === 0) return send({ text: sql }, signal)
      if (!prepared) return send({ text: sql, values: params }, signal)
      const runNamed = (name) => send({ name, text: sql, values: params }, signal)
      const name = nameOf(sql)
      try {
        return await runNamed(name)
      } catch (error) {
        // A cached plan made stale by a schema change (0A000, "cached plan
        // must not change result type"): the statement did not run; prepare
        // it again under a new name (once for all the calls that met it)
        // and retry once.
        if (signal?.aborted) throw error
        if (error?.code === '0A000') {
          if (names.get(sql) === name) {
            generation++
            names.clear()
          }
          return runNamed(nameOf(sql))
        }
        if (!lostPreparedStatement(error)) throw error
        return send({ text: sql, values: params }, signal)
      }
    }
  }
  throw validationError(
    'queryable',
    'createPostgresQueryExecutor needs a pg Pool/Client (query) or a postgres.js sql (unsafe)',
  )
}

// postgres.js: a query still waiting for a connection is dropped
// (`query.cancel()`, no request sent). One already on a connection runs to
// its end: postgres.js pipelines queries on a connection, so a cancel
// request, which stops whatever the backend runs when it arrives, could stop
// another caller's statement.
function cancelledOnAbort(query, signal) {
  if (signal === undefined) return query
  const onAbort = () => {
    if (query.state === undefined) query.cancel()
  }
  signal.addEventListener('abort', onAbort, { once: true })
  return query.finally(() => signal.removeEventListener('abort', onAbort))
}

// node-postgres: runs `config` on a client checked out of `pool` for it
// alone; when `signal` aborts, PostgreSQL's cancel request goes to that
// client's backend. Such a client is then destroyed, not returned to the
// pool: the request may reach the server after the statement ended and
// would stop the next one. As in pg-pool's own `pool.query`, a client
// whose query failed is destroyed too (its connection may be lost, and
// would otherwise report that as the pool's 'error' once idle).
async function queryOnOwnClient(pool, config, signal) {
  const client = await pool.connect()
  if (signal.aborted) {
    client.release()
    throw signal.reason
  }
  // A checked-out client has no 'error' listener of the pool's; a
  // connection lost meanwhile rejects the query, and must not also throw.
  const ignore = () => {}
  client.on('error', ignore)
  let cancelSent = false
  const onAbort = () => {
    cancelSent = sendCancelRequest(pool, client)
  }
  let failed = false
  try {
    signal.addEventListener('abort', onAbort, { once: true })
    return await client.query(config)
  } catch (error) {
    failed = true
    throw error
  } finally {
    signal.removeEventListener('abort', onAbort)
    client.removeListener('error', ignore)
    client.release(failed || cancelSent)
  }
}

// pg's own Client#cancel, less its look at the deprecated `activeQuery`
// (which prints a warning): the client runs nothing but this statement.
// Returns whether a request was sent; pg-native clients have no connection
// to send it on, and their statement runs to its end.
function sendCancelRequest(pool, client) {
  const { connection } = new pool.Client(pool.options)
  if (connection === undefined) return false
  // A refused or cut cancel connection is not the call's error: the call
  // has already rejected with `aborted`.
  connection.on('error', () => {})
  connection.on('connect', () => connection.cancel(client.processID, client.secretKey))
  if (client.host?.startsWith('/')) connection.connect(`${client.host}/.s.PGSQL.${client.port}`)
  else connection.connect(client.port, client.host)
  return true
}

module.exports = { nativeDriver, executorDriver, createPostgresQueryExecutor, gatherPerTick }
