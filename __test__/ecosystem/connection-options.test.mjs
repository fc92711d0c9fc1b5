// The connection string's libpq parameters next to the explicit options of
// the native pool, observed on the server: `options` (`-c name=value`
// settings) are kept when statementTimeoutMillis is given (a save waiting on
// a row lock shows which of lock_timeout and statement_timeout applied), an
// explicit option wins over the URL (pg_stat_activity shows the session's
// application_name, user and database), and a cancelled statement is a
// `timeout` with SQLSTATE 57014 in every mode.

import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'

import pg from 'pg'
import postgres from 'postgres'

import { createPostgresProfileStoreRepository } from '../../index.mjs'
import { lockRows } from '../helpers/locks.mjs'
import { cleanEnv, rejection, runNode, unique, useSchema, useServer, ROOT } from './helpers.mjs'

const server = await useServer()
const schema = await useSchema(server, 'connopts')
const target = new URL(server.url)
const HOST = target.hostname
const PORT = Number(target.port || 5432)
const USER = decodeURIComponent(target.username)
const DATABASE = target.pathname.slice(1)
/**
 * The server's URL with `params` added to its query string, percent-encoded as libpq reads them (not
 * URLSearchParams, whose `+` for a space libpq keeps as a `+`).
 */
function urlWith(params) {
  const query = Object.entries(params).map(([key, value]) => `${key}=${encodeURIComponent(value)}`)
  return `${server.url}${server.url.includes('?') ? '&' : '?'}${query.join('&')}`
}
const options = (settings) => settings.map(([name, value]) => `-c ${name}=${value}`).join(' ')

const LOCKED = 'locked-profile'
const doc = (profileId, extra = {}) => ({ profile_id: profileId, user_id: 'conn-user', metadata: {}, ...extra })

before(async () => {
  const setup = createPostgresProfileStoreRepository({ connectionString: server.url, schema })
  await setup.ensureSchema()
  await setup.saveProfile(doc(LOCKED))
  await setup.close()
})

/** A save of the locked profile through `repository` rejects with timeout/57014 (then the repository is closed). */
async function expectStatementTimeout(repository) {
  try {
    const error = await saveBehindLock(repository)
    assert.equal(error.code, 'timeout', error.message)
    assert.equal(error.sqlState, '57014')
  } finally {
    await repository.close()
  }
}

/** The rejection of a save of the locked profile through `repository`. */
async function saveBehindLock(repository) {
  await repository.profileExists(LOCKED) // the pool's connection is open before the lock is taken
  const lock = await lockRows(server.url, schema, [LOCKED])
  try {
    return await rejection(repository.saveProfile(doc(LOCKED, { note: 'blocked' })))
  } finally {
    await lock.release()
  }
}

/** pg_stat_activity rows of the sessions named `applicationName` (other than ours). */
async function sessions(applicationName) {
  const { rows } = await server.sql(
    `select application_name, usename, datname from pg_stat_activity
      where application_name = $1 and pid <> pg_backend_pid()`,
    [applicationName],
  )
  return rows
}

describe("the URL's options and statementTimeoutMillis", () => {
  test('both apply: lock_timeout from the URL ends the wait (55P03), not the explicit statement_timeout', async () => {
    const repository = createPostgresProfileStoreRepository({
      connectionString: urlWith({ options: options([['lock_timeout', '250']]) }),
      statementTimeoutMillis: 8000,
      schema,
    })
    try {
      const error = await saveBehindLock(repository)
      assert.equal(error.sqlState, '55P03', `${error.code}: ${error.message}`) // lock_not_available
    } finally {
      await repository.close()
    }
  })

  test('statementTimeoutMillis wins over a statement_timeout in the URL, whose other settings stay', async () => {
    const repository = createPostgresProfileStoreRepository({
      connectionString: urlWith({
        options: options([
          ['statement_timeout', '60000'],
          ['lock_timeout', '60000'],
        ]),
      }),
      statementTimeoutMillis: 300,
      schema,
    })
    await expectStatementTimeout(repository)
  })

  test('PGOPTIONS fills in when the URL has no options, and combines with statementTimeoutMillis', async () => {
    // The PG* variables are read by the native code from the process environment: a child process.
    const lock = await lockRows(server.url, schema, [LOCKED])
    try {
      const entry = new URL('index.mjs', `file://${ROOT}/`).href
      const result = await runNode(
        `import { createPostgresProfileStoreRepository } from ${JSON.stringify(entry)}
         const repository = createPostgresProfileStoreRepository({ statementTimeoutMillis: 8000, schema: ${JSON.stringify(schema)} })
         try {
           await repository.saveProfile({ profile_id: ${JSON.stringify(LOCKED)}, user_id: 'conn-user', metadata: {} })
           console.log(JSON.stringify({ saved: true }))
         } catch (error) {
           console.log(JSON.stringify({ code: error.code, sqlState: error.sqlState }))
         } finally {
           await repository.close()
         }`,
        {
          env: cleanEnv({
            PGHOST: HOST,
            PGPORT: String(PORT),
            PGUSER: USER,
            PGDATABASE: DATABASE,
            PGSSLMODE: 'disable',
            PGOPTIONS: options([['lock_timeout', '250']]),
          }),
        },
      )
      assert.equal(result.code, 0, result.stderr)
      assert.equal(JSON.parse(result.stdout).sqlState, '55P03', result.stdout)
    } finally {
      await lock.release()
    }
  })
})

describe('a statement cancelled by statement_timeout is a timeout with SQLSTATE 57014 in every mode', () => {
  const closers = []
  after(async () => {
    for (const close of closers) await close()
  })
  const modes = {
    native: () =>
      createPostgresProfileStoreRepository({ connectionString: server.url, statementTimeoutMillis: 300, schema }),
    pg: () => {
      const pool = new pg.Pool({ connectionString: server.url, max: 2, statement_timeout: 300 })
      closers.push(() => pool.end())
      return createPostgresProfileStoreRepository({ exec: pool, schema })
    },
    postgres: () => {
      const sql = postgres(server.url, { max: 2, connection: { statement_timeout: 300 }, onnotice: () => {} })
      closers.push(() => sql.end({ timeout: 5 }))
      return createPostgresProfileStoreRepository({ exec: sql, schema })
    },
  }
  for (const [mode, make] of Object.entries(modes)) {
    test(mode, () => expectStatementTimeout(make()))
  }
})

describe('an explicit option wins over the URL', () => {
  test('applicationName over application_name', async () => {
    const applicationName = unique('explicit-app')
    const repository = createPostgresProfileStoreRepository({
      connectionString: urlWith({ application_name: unique('url-app') }),
      applicationName,
      schema,
    })
    try {
      await repository.profileExists(LOCKED)
      assert.ok((await sessions(applicationName)).length > 0, 'the session shows the explicit name')
    } finally {
      await repository.close()
    }
  })

  test('every URL parameter the README lists, next to every explicit option', async () => {
    // Host, port, user and database in the URL are all wrong: the explicit options must replace them,
    // while the URL's sslmode, connect_timeout, target_session_attrs and options stay in force.
    const applicationName = unique('all-explicit')
    const url =
      `postgres://nobody@198.51.100.1:1/nowhere` +
      `?sslmode=disable&application_name=url-app&connect_timeout=1&target_session_attrs=read-write` +
      `&options=${encodeURIComponent(options([['lock_timeout', '250']]))}`
    const repository = createPostgresProfileStoreRepository({
      connectionString: url,
      host: HOST,
      port: PORT,
      user: USER,
      database: DATABASE,
      applicationName,
      statementTimeoutMillis: 8000,
      connectionTimeoutMillis: 10000,
      schema,
    })
    try {
      const error = await saveBehindLock(repository)
      assert.equal(error.sqlState, '55P03', `${error.code}: ${error.message}`)
      const seen = await sessions(applicationName)
      assert.ok(seen.length > 0, 'a session of the repository is open')
      for (const row of seen)
        assert.deepEqual(row, { application_name: applicationName, usename: USER, datname: DATABASE })
      assert.equal((await repository.saveProfile(doc(unique('after')))).metadata.revision, 1)
    } finally {
      await repository.close()
    }
  })
})
