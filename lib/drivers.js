'use strict'

// Two ways to run a named statement, with one result shape (rows as arrays of
// text/number/boolean/null):
// - native: the Rust pool (prepared, cached, pipelined by tokio-postgres);
// - executor: the caller's `(sql, params) => Promise<{ rows }>` running the
//   very same SQL text from the artifacts.

const { fromNative, fromExecutor, validationError } = require('./errors.js')

function nativeDriver(native) {
  return {
    mode: 'native',
    query: (name, params) => native.query(name, params),
    // Coalesced in Rust with concurrent loads / saves of other profiles.
    load: gatherPerTick((profileIds) => native.loadMany(profileIds)),
    save: (profileId, document, expected, context) => native.save(profileId, document, expected, context),
    ensureSchema: () => native.ensureSchema(),
    upgrade: () => native.upgrade(),
    close: () => native.close(),
    status: () => native.status(),
    convertError: fromNative,
  }
}

// Calls made in the same tick go to `callMany` together: one N-API crossing
// (and one promise) for a burst of loads, which is what a busy server sees.
function gatherPerTick(callMany) {
  let pending = null
  const flush = () => {
    const batch = pending
    pending = null
    callMany(batch.map((item) => item.arg)).then(
      (results) => {
        for (let i = 0; i < batch.length; i++) batch[i].resolve(results[i])
      },
      (error) => {
        for (const item of batch) item.reject(error)
      },
    )
  }
  return (arg) =>
    new Promise((resolve, reject) => {
      if (pending === null) {
        pending = []
        queueMicrotask(flush)
      }
      pending.push({ arg, resolve, reject })
    })
}

function executorDriver(exec, artifacts) {
  const run = async (sql, params) => {
    const result = await exec(sql, params)
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
      return rows.length === 0 ? null : rows[0][0]
    },
    save: async (profileId, document, expected, context) => {
      const rows = await query('saveProfile', [document, expected === null ? null : String(expected), context])
      return rows.length === 0 ? null : rows[0][1]
    },
    ensureSchema: () => run(artifacts.schemaSql, []),
    upgrade: () => run(artifacts.upgradeSql, []),
    // The caller owns its pool: closing the repository does not end it.
    close: () => {},
    status: () => null,
    convertError: fromExecutor,
  }
}

// Adapts a node-postgres Pool/Client or a postgres.js `sql` into an executor.
function createPostgresQueryExecutor(queryable) {
  if (typeof queryable?.unsafe === 'function') {
    return async (sql, params) => ({ rows: await queryable.unsafe(sql, params ?? []) })
  }
  if (typeof queryable?.query === 'function') {
    return (sql, params) => queryable.query(sql, params)
  }
  throw validationError(
    'queryable',
    'createPostgresQueryExecutor needs a pg Pool/Client (query) or a postgres.js sql (unsafe)',
  )
}

module.exports = { nativeDriver, executorDriver, createPostgresQueryExecutor }
