// close(), secrets in strings and errors, connection failures, the two module
// systems, and the zero-argument call form.

import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import util from 'node:util'
import { after, before, describe, test } from 'node:test'

import pg from 'pg'

import * as esm from '../index.mjs'
import { useDatabase } from './helpers/database.mjs'
import { rejection } from './helpers/assertions.mjs'

const { createPostgresProfileStoreRepository, createPostgresQueryExecutor, PostgresStoreError } = esm
const require = createRequire(import.meta.url)

const db = await useDatabase({ schemaPrefix: 'life' })
await db.repository('native').ensureSchema()

const SECRET = 'SuperSecret123'
const SECRET_URL = `postgres://postgres:${SECRET}@127.0.0.1:1/x`


function doc(id, user = 'life-user') {
  return { profile_id: id, user_id: user, metadata: { revision: 1, updated_at: '2026-01-01T00:00:00.000Z' } }
}

// Every method of the repository with valid arguments.
function everyCall(repository) {
  return {
    readCurrentProfile: () => repository.readCurrentProfile('p'),
    writeCurrentProfile: () => repository.writeCurrentProfile(doc('p')),
    writeProfileRevision: () => repository.writeProfileRevision(doc('p')),
    listProfileRevisionNumbers: () => repository.listProfileRevisionNumbers('p'),
    readUserProfileIndex: () => repository.readUserProfileIndex('u'),
    writeUserProfileIndex: () =>
      repository.writeUserProfileIndex({
        user_id: 'u',
        latest_profile_id: 'p',
        profile_ids: ['p'],
        updated_at: '2026-01-01T00:00:00.000Z',
      }),
    loadProfile: () => repository.loadProfile('p'),
    profileExists: () => repository.profileExists('p'),
    loadProfileByUserId: () => repository.loadProfileByUserId('u'),
    findProfilesByUserId: () => repository.findProfilesByUserId('u'),
    listProfileRevisions: () => repository.listProfileRevisions('p'),
    saveProfile: () => repository.saveProfile(doc('p')),
    deleteProfile: () => repository.deleteProfile('p'),
    listAuditEntries: () => repository.listAuditEntries('p'),
    loadProfileRevision: () => repository.loadProfileRevision('p', 1),
    ensureSchema: () => repository.ensureSchema(),
    upgradeFrom022: () => repository.upgradeFrom022(),
  }
}

for (const mode of ['native', 'pg']) {
  describe(`close() (${mode})`, () => {
    test('close resolves, and every later call rejects with closed', async () => {
      const repository = db.repository(mode)
      await repository.saveProfile(doc(`before-close-${mode}`))
      assert.equal(await repository.close(), undefined)
      for (const [name, call] of Object.entries(everyCall(repository))) {
        const error = await rejection(call())
        assert.ok(error instanceof PostgresStoreError, name)
        assert.equal(error.code, 'closed', `${name}: ${error.code} ${error.message}`)
        assert.equal(error.operation, name)
      }
      // Arguments are not even looked at once closed.
      assert.equal((await rejection(repository.loadProfile(42))).code, 'closed')
      assert.equal(repository.poolStatus(), null)
      // Nothing was written after close.
      const { rows } = await db.sql(`select count(*)::int as n from "${db.schema}".pson_profiles where profile_id = 'p'`)
      assert.equal(rows[0].n, 0)
    })

    test('close twice is fine, also concurrently', async () => {
      const repository = db.repository(mode)
      await repository.profileExists('x')
      await Promise.all([repository.close(), repository.close()])
      assert.equal(await repository.close(), undefined)
      assert.equal((await rejection(repository.profileExists('x'))).code, 'closed')
    })

    test('close waits for the calls in flight', async () => {
      const repository = db.repository(mode)
      await repository.ensureSchema()
      let settled = false
      const inFlight = repository.saveProfile(doc(`in-flight-${mode}`)).then(
        (value) => {
          settled = true
          return value
        },
        (error) => {
          settled = true
          throw error
        },
      )
      await repository.close({ timeoutMillis: 10000 })
      assert.equal(settled, true, 'close resolved before the call in flight settled')
      await inFlight.catch((error) => assert.equal(error.code, 'closed'))
    })

    test('a repository that never ran a statement closes', async () => {
      const repository = db.repository(mode)
      await repository.close()
      assert.equal((await rejection(repository.readCurrentProfile('x'))).code, 'closed')
    })
  })
}

describe('close() gives up on calls that never settle', () => {
  test('after timeoutMillis they reject with closed; the calls around them keep their own results', async () => {
    const pool = new pg.Pool({ connectionString: db.url, max: 2 })
    const exec = createPostgresQueryExecutor(pool)
    const never = new Promise(() => {})
    const repository = createPostgresProfileStoreRepository({
      exec: (sql, params) => (params?.[0] === 'hangs' ? never : exec(sql, params)),
      schema: db.schema,
    })
    try {
      const saved = await repository.saveProfile(doc('close-around-hung'))
      const hung = [repository.loadProfile('hangs'), repository.profileExists('hangs')]
      // Calls that settle before and after the hung ones, reusing their places.
      const answered = []
      for (let round = 0; round < 3; round++) {
        answered.push(
          ...(await Promise.all([
            repository.profileExists('close-around-hung'),
            repository.profileExists('close-nobody'),
            repository.loadProfile('close-around-hung').then((profile) => profile.metadata.revision),
          ])),
        )
      }
      const late = repository.profileExists('close-around-hung')
      const started = performance.now()
      await repository.close({ timeoutMillis: 300 })
      const ms = performance.now() - started
      assert.ok(ms < 2000, `close() resolved after ${Math.round(ms)} ms`)
      for (const call of hung) {
        const stillPending = new Promise((_, reject) => setTimeout(reject, 1000, new Error('still pending 1 s after close()')))
        assert.equal((await rejection(Promise.race([call, stillPending]))).code, 'closed')
      }
      assert.deepEqual(answered, [true, false, saved.metadata.revision, true, false, saved.metadata.revision, true, false, saved.metadata.revision])
      assert.equal(await late, true, 'a call that settled before the deadline keeps its result')
    } finally {
      await pool.end()
    }
  })
})

describe('the password stays secret', () => {
  test('String() and util.inspect() of a repository hide the password', async () => {
    for (const options of [
      { connectionString: SECRET_URL },
      { host: '127.0.0.1', port: 1, user: 'postgres', password: SECRET, database: 'x' },
      { connectionString: `host=127.0.0.1 port=1 user=postgres password=${SECRET} dbname=x` },
    ]) {
      const repository = createPostgresProfileStoreRepository(options)
      try {
        for (const text of [
          String(repository),
          `${repository}`,
          util.inspect(repository),
          util.inspect(repository, { showHidden: true, depth: Infinity }),
          JSON.stringify(repository),
          util.format('%o', repository),
        ]) {
          assert.equal(typeof text, 'string')
          assert.ok(!text.includes(SECRET), `password in ${text}`)
        }
      } finally {
        await repository.close()
      }
    }
  })

  test('a closed port rejects with connection_error, without the password', async () => {
    const events = []
    const repository = createPostgresProfileStoreRepository({
      connectionString: SECRET_URL,
      connectionTimeoutMillis: 2000,
      onEvent: (event) => events.push(event),
    })
    try {
      const error = await rejection(repository.loadProfile('p'))
      assert.ok(error instanceof PostgresStoreError)
      assert.equal(error.code, 'connection_error')
      assert.equal(error.operation, 'loadProfile')
      for (const text of [error.message, String(error), error.stack, util.inspect(error, { depth: Infinity })]) {
        assert.ok(!text.includes(SECRET), `password in ${text}`)
      }
      assert.equal(events.length, 1)
      assert.equal(events[0].error.code, 'connection_error')
      assert.ok(!JSON.stringify(events).includes(SECRET))
    } finally {
      await repository.close()
    }
  })

  test('with separate options too', async () => {
    const repository = createPostgresProfileStoreRepository({
      host: '127.0.0.1',
      port: 1,
      user: 'postgres',
      password: SECRET,
      database: 'x',
      connectionTimeoutMillis: 2000,
    })
    try {
      const error = await rejection(repository.saveProfile(doc('p')))
      assert.equal(error.code, 'connection_error')
      assert.ok(!util.inspect(error, { depth: Infinity }).includes(SECRET))
    } finally {
      await repository.close()
    }
  })

  test('executor mode over pg: a closed port is a connection_error', async () => {
    const pool = new pg.Pool({ connectionString: SECRET_URL, connectionTimeoutMillis: 2000 })
    const repository = createPostgresProfileStoreRepository({ exec: pool })
    try {
      const error = await rejection(repository.loadProfile('p'))
      assert.equal(error.code, 'connection_error')
      assert.ok(!error.message.includes(SECRET))
      assert.ok(!String(repository).includes(SECRET))
    } finally {
      await repository.close()
      await pool.end()
    }
  })
})

describe('module systems', () => {
  const NAMES = [
    'createPostgresProfileStoreArtifacts',
    'createPostgresProfileStoreRepository',
    'createPostgresQueryExecutor',
    'PostgresStoreError',
    'PostgresProfileStoreRepository',
    'DIAGNOSTICS_CHANNEL',
    'TRACING_CHANNEL',
  ]

  test('require and import export the same things', async () => {
    const cjs = require('../index.js')
    const imported = await import('../index.mjs')
    for (const name of NAMES) {
      assert.ok(name in cjs, `require lacks ${name}`)
      assert.equal(imported[name], cjs[name], name)
      assert.equal(imported.default[name], cjs[name], name)
    }
    for (const name of NAMES.slice(0, 5)) assert.equal(typeof cjs[name], 'function', name)
    assert.equal(cjs.DIAGNOSTICS_CHANNEL, 'pson5:postgres-store')
    assert.equal(cjs.TRACING_CHANNEL, 'pson5:postgres-store:operation')
    assert.deepEqual(Object.keys(imported).filter((k) => k !== 'default').sort(), [...NAMES].sort())
  })

  test('the package name resolves to the same module in both systems', async () => {
    const self = createRequire(new URL('../package.json', import.meta.url))
    const cjs = self('@pson5/postgres-store')
    const imported = await import('@pson5/postgres-store')
    assert.equal(imported.createPostgresProfileStoreRepository, cjs.createPostgresProfileStoreRepository)
    assert.equal(imported.PostgresStoreError, cjs.PostgresStoreError)
    assert.equal(cjs.createPostgresProfileStoreRepository, esm.createPostgresProfileStoreRepository)
  })

  test('an error made by one is an instance for the other', async () => {
    const cjs = require('../index.js')
    const repository = cjs.createPostgresProfileStoreRepository({ exec: db.admin })
    const error = await rejection(repository.loadProfile(''))
    assert.ok(error instanceof esm.PostgresStoreError)
    assert.equal(error.code, 'validation_error')
    assert.equal(error.field, 'profileId')
  })
})

describe('zero-argument form', () => {
  let saved
  before(() => {
    saved = process.env.DATABASE_URL
  })
  after(() => {
    if (saved === undefined) delete process.env.DATABASE_URL
    else process.env.DATABASE_URL = saved
  })

  test('uses DATABASE_URL', async () => {
    process.env.DATABASE_URL = db.url
    const repository = createPostgresProfileStoreRepository()
    try {
      assert.equal(String(repository).includes('schema public, prefix pson_'), true)
      const { rows } = await db.sql(`select to_regclass('public.pson_profiles') is not null as present`)
      if (rows[0].present) {
        const expected = await db.sql(`select document from public.pson_profiles where profile_id = $1`, [
          'zero-arg-x',
        ])
        assert.deepEqual(await repository.readCurrentProfile('zero-arg-x'), expected.rows[0]?.document ?? null)
      } else {
        const error = await rejection(repository.readCurrentProfile('zero-arg-x'))
        assert.ok(error instanceof PostgresStoreError)
        assert.equal(error.code, 'database_error')
        assert.equal(error.sqlState, '42P01')
        assert.equal(error.operation, 'readCurrentProfile')
      }
      const status = repository.poolStatus()
      assert.equal(status.maxSize, 10)
      assert.ok(status.size >= 1, 'a connection was opened')
      assert.equal(status.waiting, 0)
    } finally {
      await repository.close()
    }
  })

  test('reads DATABASE_URL at call time, not the fixture', async () => {
    process.env.DATABASE_URL = SECRET_URL
    const repository = createPostgresProfileStoreRepository()
    try {
      const error = await rejection(repository.profileExists('x'))
      assert.equal(error.code, 'connection_error')
      assert.ok(!error.message.includes(SECRET))
      assert.ok(!String(repository).includes(SECRET))
    } finally {
      await repository.close()
    }
  })
})
