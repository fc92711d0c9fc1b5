// Executor mode (issue 13): every connection or timeout failure that
// node-postgres (with pg-pool) or postgres.js raises reaches the caller as
// `timeout` or `connection_error`, as in native mode, never as
// `database_error`. One table per driver; each row produces the failure for
// real (a saturated pool, a closed port, a server that never answers, a
// terminated backend, a connection cut or reset by a proxy, timeouts, an
// ended pool, an unknown database or role) and runs a call of the repository
// through it. Then the failures that cannot be produced here (too many
// connections, unreachable networks, DNS), raised by an executor as the
// drivers raise them.

import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'

import pg from 'pg'
import postgres from 'postgres'

import { createPostgresProfileStoreRepository } from '../../index.mjs'
import { useDatabase } from '../helpers/database.mjs'
import { lockRows } from '../helpers/locks.mjs'
import { closedPort, failOnSilentExit, pollUntil, tcpProxy, uid } from './helpers.mjs'

failOnSilentExit()

const db = await useDatabase({ schemaPrefix: 'fexec' })
const setup = db.repository('native')
await setup.ensureSchema()

const serverUrl = new URL(db.url)
const target = { host: serverUrl.hostname, port: Number(serverUrl.port || 5432) }
/** DATABASE_URL with another host/port, database or user. */
function urlWith({ port, host = '127.0.0.1', database, user } = {}) {
  const url = new URL(db.url)
  if (port !== undefined) {
    url.hostname = host
    url.port = String(port)
  }
  if (database !== undefined) url.pathname = `/${database}`
  if (user !== undefined) url.username = user
  return url.href
}

function doc(profileId, extra = {}) {
  return { profile_id: profileId, user_id: `user-${profileId}`, metadata: { source_count: 1 }, ...extra }
}

let proxy
let silent
before(async () => {
  proxy = await tcpProxy(target)
  silent = await tcpProxy(target)
  silent.silent = true
})
after(async () => {
  await proxy.close()
  await silent.close()
})

// Driver handles a row opened, ended after the file.
const ends = []
after(async () => {
  for (const end of ends) await end().catch(() => {})
})

function pgPool(config) {
  const pool = new pg.Pool({ max: 2, ...config })
  pool.on('error', () => {})
  ends.push(() => pool.end())
  return pool
}

function postgresJs(url, options = {}) {
  const sql = postgres(url, { max: 2, onnotice: () => {}, ...options })
  ends.push(() => sql.end({ timeout: 1 }))
  return sql
}

/** The rejection of `call(repository)` for a repository over `queryable`. */
async function failureOf(queryable, call) {
  const repository = createPostgresProfileStoreRepository({ exec: queryable, schema: db.schema })
  try {
    await call(repository)
  } catch (error) {
    return error
  } finally {
    await repository.close()
  }
  assert.fail('the call succeeded')
}

/**
 * Starts a save of a profile whose row another transaction holds, through
 * `queryable` (connections named `applicationName`), and resolves once the
 * server shows that statement waiting: `{ pending, release }`.
 */
async function blockedSave(queryable, applicationName) {
  const id = uid('blocked')
  await setup.saveProfile(doc(id))
  const lock = await lockRows(db.url, db.schema, [id])
  const pending = failureOf(queryable, (repository) => repository.saveProfile(doc(id, { payload: 'blocked' })))
  await pollUntil(
    async () => {
      const { rows } = await db.sql(
        `select count(*)::int as n from pg_stat_activity where application_name = $1 and wait_event_type = 'Lock'`,
        [applicationName],
      )
      return rows[0].n > 0
    },
    { limitMs: 20000, label: 'the save waits for the row lock' },
  )
  return {
    pending,
    async release() {
      // A statement whose client is gone would still commit once the lock goes.
      await terminate(applicationName)
      await lock.release()
    },
  }
}

async function terminate(applicationName) {
  await db.sql(`select pg_terminate_backend(pid) from pg_stat_activity where application_name = $1`, [applicationName])
}

/**
 * Opens a driver handle with `open(applicationName)`, runs `cause(applicationName,
 * handle)` while a save through it is blocked, and returns the save's rejection.
 */
async function failureDuringStatement(open, cause) {
  const name = uid('exec')
  const handle = open(name)
  const save = await blockedSave(handle, name)
  try {
    await cause(name, handle)
    return await save.pending
  } finally {
    await save.release()
  }
}

/** A pg pool (or postgres.js sql) whose connections are named for pg_stat_activity. */
const pgNamed =
  (url, config = {}) =>
  (name) =>
    pgPool({ connectionString: url, application_name: name, ...config })
const jsNamed =
  (url, connection = {}) =>
  (name) =>
    postgresJs(url, { connection: { application_name: name, ...connection } })
const viaProxy = () => urlWith({ port: proxy.port })
/** A pg.Client (not a pool), connecting; pg sends queries made meanwhile once it is connected. */
function pgClient(name) {
  const client = new pg.Client({ connectionString: db.url, application_name: name })
  client.on('error', () => {})
  client.connect().catch(() => {})
  return client
}

/** Lets a timeout of the driver or the server fire on its own. */
const nothing = async () => {}

// The driver decides whether it reports the server's SQLSTATE.
const ANY = Symbol('any sqlState')

// [failure, code, sqlState (undefined: none; ANY), produce(): the rejection]
const PG_FAILURES = [
  [
    'pg-pool: no client became free within connectionTimeoutMillis',
    'timeout',
    undefined,
    async () => {
      const pool = pgPool({ connectionString: db.url, max: 1, connectionTimeoutMillis: 300 })
      const held = await pool.connect()
      try {
        return await failureOf(pool, (r) => r.loadProfile('p'))
      } finally {
        held.release()
      }
    },
  ],
  [
    'pg-pool: connecting took longer than connectionTimeoutMillis (a server that never answers)',
    'connection_error',
    undefined,
    () =>
      failureOf(pgPool({ connectionString: urlWith({ port: silent.port }), connectionTimeoutMillis: 300 }), (r) =>
        r.loadProfile('p'),
      ),
  ],
  [
    'a closed port (ECONNREFUSED)',
    'connection_error',
    undefined,
    async () =>
      failureOf(pgPool({ connectionString: urlWith({ port: await closedPort() }) }), (r) => r.loadProfile('p')),
  ],
  [
    'an unknown database (3D000)',
    'connection_error',
    '3D000',
    () => failureOf(pgPool({ connectionString: urlWith({ database: uid('nodb') }) }), (r) => r.loadProfile('p')),
  ],
  [
    'an unknown role (28000)',
    'connection_error',
    '28000',
    () => failureOf(pgPool({ connectionString: urlWith({ user: uid('norole') }) }), (r) => r.loadProfile('p')),
  ],
  [
    'the backend is terminated during a statement (57P01)',
    'connection_error',
    '57P01',
    () => failureDuringStatement(pgNamed(db.url), terminate),
  ],
  [
    'the connection is cut during a statement (Connection terminated unexpectedly)',
    'connection_error',
    undefined,
    () => failureDuringStatement(pgNamed(viaProxy()), () => proxy.cut()),
  ],
  [
    'the connection is reset during a statement (ECONNRESET)',
    'connection_error',
    undefined,
    () => failureDuringStatement(pgNamed(viaProxy()), () => proxy.reset()),
  ],
  [
    "pg's query_timeout (Query read timeout)",
    'timeout',
    undefined,
    () => failureDuringStatement(pgNamed(db.url, { query_timeout: 300 }), nothing),
  ],
  [
    'statement_timeout (57014)',
    'timeout',
    '57014',
    () => failureDuringStatement(pgNamed(db.url, { statement_timeout: 300 }), nothing),
  ],
  [
    'a pool that was ended',
    'connection_error',
    undefined,
    async () => {
      const pool = new pg.Pool({ connectionString: db.url })
      await pool.end()
      return failureOf(pool, (r) => r.loadProfile('p'))
    },
  ],
  [
    'a pg.Client ended during a statement (Connection terminated)',
    'connection_error',
    undefined,
    () => failureDuringStatement(pgClient, (name, client) => client.end()),
  ],
  [
    'a pg.Client whose connection broke (not queryable)',
    'connection_error',
    undefined,
    async () => {
      const name = uid('pg_broken')
      const client = pgClient(name)
      ends.push(() => client.end())
      await client.query('select 1') // connected
      const ended = new Promise((resolve) => client.once('end', resolve))
      await terminate(name)
      await ended
      return failureOf(client, (r) => r.loadProfile('p'))
    },
  ],
]

const POSTGRES_JS_FAILURES = [
  [
    'a closed port (ECONNREFUSED)',
    'connection_error',
    undefined,
    async () => failureOf(postgresJs(urlWith({ port: await closedPort() })), (r) => r.loadProfile('p')),
  ],
  [
    'connect_timeout against a server that never answers (CONNECT_TIMEOUT)',
    'connection_error',
    undefined,
    () => failureOf(postgresJs(urlWith({ port: silent.port }), { connect_timeout: 0.3 }), (r) => r.loadProfile('p')),
  ],
  [
    'an unknown database (3D000)',
    'connection_error',
    '3D000',
    () => failureOf(postgresJs(urlWith({ database: uid('nodb') })), (r) => r.loadProfile('p')),
  ],
  [
    'an unknown role (28000)',
    'connection_error',
    '28000',
    () => failureOf(postgresJs(urlWith({ user: uid('norole') })), (r) => r.loadProfile('p')),
  ],
  [
    'the backend is terminated during a statement (57P01, or CONNECTION_CLOSED as postgres.js 3 reports it)',
    'connection_error',
    ANY,
    () => failureDuringStatement(jsNamed(db.url), terminate),
  ],
  [
    'the connection is cut during a statement (CONNECTION_CLOSED)',
    'connection_error',
    undefined,
    () => failureDuringStatement(jsNamed(viaProxy()), () => proxy.cut()),
  ],
  [
    'the connection is reset during a statement (ECONNRESET)',
    'connection_error',
    undefined,
    () => failureDuringStatement(jsNamed(viaProxy()), () => proxy.reset()),
  ],
  [
    'statement_timeout (57014)',
    'timeout',
    '57014',
    () => failureDuringStatement(jsNamed(db.url, { statement_timeout: 300 }), nothing),
  ],
  [
    'sql.end() before the call (CONNECTION_ENDED)',
    'connection_error',
    undefined,
    async () => {
      const sql = postgres(db.url, { onnotice: () => {} })
      await sql.end()
      return failureOf(sql, (r) => r.loadProfile('p'))
    },
  ],
  [
    'sql.end({ timeout: 0 }) during a statement (CONNECTION_DESTROYED)',
    'connection_error',
    undefined,
    () =>
      failureDuringStatement(
        (name) => postgres(db.url, { onnotice: () => {}, connection: { application_name: name } }),
        (name, sql) => sql.end({ timeout: 0 }),
      ),
  ],
]

for (const [driver, failures] of [
  ['pg', PG_FAILURES],
  ['postgres.js', POSTGRES_JS_FAILURES],
]) {
  test(`${driver}: every connection and timeout failure is a timeout or a connection_error`, async (t) => {
    for (const [failure, code, sqlState, produce] of failures) {
      await t.test(failure, async () => {
        const error = await produce()
        assert.equal(error.code, code, `${failure}: got ${error.code} (${error.message})`)
        if (sqlState !== ANY) assert.equal(error.sqlState, sqlState, `${failure}: sqlState`)
        assert.ok(error.cause, 'the driver error is kept as cause')
      })
    }
  })
}

// Raised as the drivers raise them (error code or message), for failures
// this machine cannot produce on demand.
const RAISED = [
  [
    'too many connections (53300)',
    Object.assign(new Error('sorry, too many clients already'), { code: '53300' }),
    'connection_error',
  ],
  [
    'the server is starting up (57P03)',
    Object.assign(new Error('the database system is starting up'), { code: '57P03' }),
    'connection_error',
  ],
  [
    'a broken connection (08006)',
    Object.assign(new Error('connection failure'), { code: '08006' }),
    'connection_error',
  ],
  [
    'bad password (28P01)',
    Object.assign(new Error('password authentication failed'), { code: '28P01' }),
    'connection_error',
  ],
  [
    'an unreachable host (EHOSTUNREACH)',
    Object.assign(new Error('connect EHOSTUNREACH'), { code: 'EHOSTUNREACH' }),
    'connection_error',
  ],
  [
    'an unreachable network (ENETUNREACH)',
    Object.assign(new Error('connect ENETUNREACH'), { code: 'ENETUNREACH' }),
    'connection_error',
  ],
  [
    'a TCP connect timeout (ETIMEDOUT)',
    Object.assign(new Error('connect ETIMEDOUT'), { code: 'ETIMEDOUT' }),
    'connection_error',
  ],
  [
    'an unknown host (ENOTFOUND)',
    Object.assign(new Error('getaddrinfo ENOTFOUND db'), { code: 'ENOTFOUND' }),
    'connection_error',
  ],
  [
    'DNS unavailable (EAI_AGAIN)',
    Object.assign(new Error('getaddrinfo EAI_AGAIN db'), { code: 'EAI_AGAIN' }),
    'connection_error',
  ],
  [
    'a write to a closed socket (EPIPE)',
    Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }),
    'connection_error',
  ],
  [
    'every address refused (AggregateError, Node happy eyeballs)',
    Object.assign(new AggregateError([new Error('connect ECONNREFUSED ::1:5432')], ''), { code: 'ECONNREFUSED' }),
    'connection_error',
  ],
  ["pg Client's connectionTimeoutMillis (timeout expired)", new Error('timeout expired'), 'connection_error'],
  ['a pg.Client closed by its owner', new Error('Client was closed and is not queryable'), 'connection_error'],
]

describe('failures raised by an executor as the drivers raise them', () => {
  for (const [failure, raised, code] of RAISED) {
    test(`${failure} is ${code}`, async () => {
      const error = await failureOf(
        async () => {
          throw raised
        },
        (r) => r.loadProfile('p'),
      )
      assert.equal(error.code, code, error.message)
      assert.equal(error.cause, raised)
    })
  }

  test('a server error that is not about the connection stays a database_error', async () => {
    const raised = Object.assign(new Error('duplicate key'), { code: '23505', constraint: 'c' })
    const error = await failureOf(
      async () => {
        throw raised
      },
      (r) => r.loadProfile('p'),
    )
    assert.equal(error.code, 'database_error')
    assert.equal(error.sqlState, '23505')
  })
})
