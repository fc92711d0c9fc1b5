// Least-privilege roles, as production databases have them: the DBA owns the
// schema and applies the DDL; the application role gets what it needs and
// no more.

import assert from 'node:assert/strict'
import { after, describe, test } from 'node:test'

import { startPostgres } from '../../scripts/ecosystem/servers.mjs'
import { createPostgresProfileStoreArtifacts, createPostgresProfileStoreRepository } from '../../index.mjs'
import { profile } from './helpers.mjs'

const DB = 'priv_db'
const server = await startPostgres({ database: DB })
after(() => server.stop())
const sql = (text) => server.sql(text, [], DB)
const urlAs = (role) => `postgres://${role}@127.0.0.1:${server.port}/${DB}?sslmode=disable`

await sql('create role migrator login; create role app_rw login')
// The DBA's schemas: the migrator may create tables in `app_ddl`, nothing on the database.
await sql('create schema app_ddl; grant usage, create on schema app_ddl to migrator')
await sql('create schema app_dml')

describe('schemaSql', () => {
  test('runs for a role with CREATE on its (existing) schema only', async () => {
    const repository = createPostgresProfileStoreRepository({ connectionString: urlAs('migrator'), schema: 'app_ddl' })
    try {
      // `create schema if not exists` is checked against the database's CREATE
      // privilege before PostgreSQL looks whether the schema exists.
      await repository.ensureSchema()
      assert.equal((await repository.checkSchema()).ok, true)
    } finally {
      await repository.close()
    }
  })
})

describe('a role with DML privileges only (the DDL applied by the DBA)', () => {
  test('saves, loads, lists, pages and deletes', async () => {
    const artifacts = createPostgresProfileStoreArtifacts({ schema: 'app_dml' })
    await sql(artifacts.schemaSql)
    await sql(`grant usage on schema app_dml to app_rw;
      grant select, insert, update, delete on all tables in schema app_dml to app_rw;
      grant usage on all sequences in schema app_dml to app_rw`)
    const repository = createPostgresProfileStoreRepository({ connectionString: urlAs('app_rw'), schema: 'app_dml' })
    try {
      for (let i = 0; i < 3; i++) await repository.saveProfile(profile('dml-1', 'dml-user'))
      await repository.saveProfile(profile('dml-2', 'dml-user'))
      assert.equal((await repository.loadProfile('dml-1')).metadata.revision, 3)
      assert.deepEqual(await repository.listProfileRevisions('dml-1'), [1, 2, 3])
      assert.deepEqual(await repository.findProfilesByUserId('dml-user'), ['dml-1', 'dml-2'])
      assert.deepEqual((await repository.listAuditEntries('dml-1', { limit: 2 })).entries.map((e) => e.revision), [3, 2])
      assert.equal((await repository.loadProfileRevision('dml-1', 2)).metadata.revision, 2)
      assert.equal(await repository.deleteProfile('dml-2'), true)
      assert.equal((await repository.checkSchema()).ok, true)
      // and it cannot change the schema: ensureSchema is refused, nothing else breaks
      const error = await repository.ensureSchema().then(() => null, (e) => e)
      assert.equal(error?.code, 'database_error')
      assert.equal(error.sqlState, '42501')
      assert.equal((await repository.loadProfile('dml-1')).profile_id, 'dml-1')
    } finally {
      await repository.close()
    }
  })
})
