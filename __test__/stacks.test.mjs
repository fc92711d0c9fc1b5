// Every rejection's stack names the caller's file, for every error code and
// in every mode (issue 13, item 17); internal faults are `internal_error`,
// never `database_error` (item 10).

import assert from 'node:assert/strict'
import { describe, test } from 'node:test'

import pg from 'pg'
import postgres from 'postgres'

import { createPostgresProfileStoreRepository, PostgresStoreError } from '../index.mjs'
import { MODES, useDatabase } from './helpers/database.mjs'
import { lockRows } from './helpers/locks.mjs'
import { rejection } from './helpers/assertions.mjs'

const db = await useDatabase({ schemaPrefix: 'stacks' })
await db.repository('native').ensureSchema()

const THIS_FILE = 'stacks.test.mjs'


/** A repository in `mode` on `url`, with pg's or postgres.js' own settings in `driver`. */
function repositoryOn(mode, url, options = {}, driver = {}) {
  const closers = []
  let repository
  if (mode === 'native') {
    repository = createPostgresProfileStoreRepository({ connectionString: url, ...options })
  } else if (mode === 'pg') {
    const pool = new pg.Pool({ connectionString: url, max: 2, ...driver })
    pool.on('error', () => {})
    closers.push(() => pool.end())
    repository = createPostgresProfileStoreRepository({ exec: pool, ...options })
  } else {
    const sql = postgres(url, { max: 2, onnotice: () => {}, ...driver })
    closers.push(() => sql.end({ timeout: 1 }))
    repository = createPostgresProfileStoreRepository({ exec: sql, ...options })
  }
  return {
    repository,
    async close() {
      await repository.close()
      for (const close of closers) await close().catch(() => {})
    },
  }
}

function assertNamesCaller(error, code) {
  assert.ok(error instanceof PostgresStoreError, `${code}: ${error}`)
  assert.equal(error.code, code, `${error.code}: ${error.message}`)
  assert.ok(error.stack.includes(THIS_FILE), `the ${code} stack names the calling file:\n${error.stack}`)
}

for (const mode of MODES) {
  describe(`error stacks name the caller (${mode})`, () => {
    const id = `stacks-${mode}`

    test('validation_error, not_found, conflict, closed', async () => {
      const { repository, close } = repositoryOn(mode, db.url, { schema: db.schema })
      await repository.saveProfile({ profile_id: id, user_id: 'u', metadata: {} })
      assertNamesCaller(await rejection(repository.loadProfile(42)), 'validation_error')
      assertNamesCaller(await rejection(repository.loadProfile('stacks-nobody')), 'not_found')
      assertNamesCaller(await rejection(repository.loadProfileByUserId('stacks-nobody')), 'not_found')
      assertNamesCaller(await rejection(repository.loadProfileRevision(id, 9)), 'not_found')
      assertNamesCaller(
        await rejection(repository.saveProfile({ profile_id: id, user_id: 'u', metadata: {} }, { expectedRevision: 7 })),
        'conflict',
      )
      await close()
      assertNamesCaller(await rejection(repository.loadProfile(id)), 'closed')
    })

    test('database_error', async () => {
      // Tables that do not exist: SQLSTATE 42P01.
      const { repository, close } = repositoryOn(mode, db.url, { schema: db.schema, tablePrefix: 'nothing_here_' })
      try {
        assertNamesCaller(await rejection(repository.loadProfile(id)), 'database_error')
        assertNamesCaller(await rejection(repository.profileExists(id)), 'database_error')
      } finally {
        await close()
      }
    })

    test('timeout', async () => {
      const { repository, close } = repositoryOn(
        mode,
        db.url,
        { schema: db.schema, statementTimeoutMillis: 200 },
        mode === 'pg' ? { statement_timeout: 200 } : { connection: { statement_timeout: 200 } },
      )
      const lock = await lockRows(db.url, db.schema, [id])
      try {
        assertNamesCaller(await rejection(repository.saveProfile({ profile_id: id, user_id: 'u', metadata: {} })), 'timeout')
      } finally {
        await lock.release()
        await close()
      }
    })

    test('connection_error', async () => {
      const { repository, close } = repositoryOn(
        mode,
        'postgres://postgres@127.0.0.1:1/none',
        { schema: db.schema, connectionTimeoutMillis: 2000 },
        { connectionTimeoutMillis: 2000, connect_timeout: 2 },
      )
      try {
        assertNamesCaller(await rejection(repository.loadProfile(id)), 'connection_error')
        assertNamesCaller(await rejection(repository.saveProfile({ profile_id: id, user_id: 'u', metadata: {} })), 'connection_error')
      } finally {
        await close()
      }
    })
  })
}

describe('internal faults are internal_error (executor mode)', () => {
  test('rows of the wrong shape from an executor: internal_error naming the caller, not database_error', async () => {
    // An executor that answers every statement with one empty row: the
    // repository's own code then fails reading it.
    const repository = createPostgresProfileStoreRepository({ exec: async () => ({ rows: [{}] }), schema: db.schema })
    const error = await rejection(repository.loadProfileByUserId('anyone'))
    assertNamesCaller(error, 'internal_error')
    assert.ok(error.cause instanceof Error, 'the internal exception is kept as cause')
    await repository.close()
  })
})
