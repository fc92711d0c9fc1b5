// database_error details (issue 6): a constraint the application added to the
// profiles table rejects a save; the error carries sqlState, constraint,
// table, schema, detail where the server gives them, the operation name, and
// a stack that includes the caller. Native and executor (pg) modes.

import assert from 'node:assert/strict'
import diagnosticsChannel from 'node:diagnostics_channel'
import { describe, test } from 'node:test'

import { DIAGNOSTICS_CHANNEL, PostgresStoreError } from '../../index.mjs'
import { useDatabase } from '../helpers/database.mjs'
import { failOnSilentExit, outcome, uid } from './helpers.mjs'

failOnSilentExit()

const db = await useDatabase({ schemaPrefix: 'ferr' })
await db.repository('native').ensureSchema()
const profiles = `"${db.schema}".pson_profiles`
await db.sql(`alter table ${profiles} add constraint no_bad check (user_id <> 'forbidden')`)
await db.sql(`create unique index fault_unique_email on ${profiles} ((document ->> 'email'))`)

function doc(profileId, userId, extra = {}) {
  return { profile_id: profileId, user_id: userId, metadata: { source_count: 1 }, ...extra }
}

async function counts(profileId) {
  const { rows } = await db.sql(
    `select (select count(*)::int from ${profiles} where profile_id = $1) as profiles,
            (select count(*)::int from "${db.schema}".pson_profile_audit where profile_id = $1) as audit,
            (select count(*)::int from "${db.schema}".pson_domain_index where profile_id = $1) as idx`,
    [profileId],
  )
  return rows[0]
}

for (const mode of ['native', 'pg']) {
  describe(`database_error details (${mode})`, () => {
    test('a CHECK constraint: sqlState 23514, constraint, table, schema, detail, operation, caller in the stack', async () => {
      const events = []
      const published = []
      const listener = (message) => published.push(message)
      const repository = db.repository(mode, { onEvent: (event) => events.push(event) })
      const id = uid('forbidden')

      // A uniquely named caller, to find in the stack.
      async function callerSavesForbiddenProfile_7f3a() {
        return await repository.saveProfile(doc(id, 'forbidden'), { context: { request_id: 'req-check' } })
      }
      diagnosticsChannel.subscribe(DIAGNOSTICS_CHANNEL, listener)
      let error
      try {
        await callerSavesForbiddenProfile_7f3a()
        assert.fail('the save must be rejected')
      } catch (caught) {
        error = caught
      } finally {
        diagnosticsChannel.unsubscribe(DIAGNOSTICS_CHANNEL, listener)
      }
      assert.ok(error instanceof PostgresStoreError, String(error))
      assert.ok(error instanceof Error)
      assert.equal(error.code, 'database_error', error.message)
      assert.equal(error.sqlState, '23514')
      assert.equal(error.constraint, 'no_bad')
      assert.equal(error.table, 'pson_profiles')
      assert.equal(error.schema, db.schema)
      assert.equal(typeof error.detail, 'string', 'the server sends a detail ("Failing row contains ...")')
      assert.match(error.detail, /Failing row contains/)
      assert.equal(error.operation, 'saveProfile')
      assert.match(error.message, /no_bad/)
      assert.ok(
        error.stack.includes('callerSavesForbiddenProfile_7f3a'),
        `the stack includes the calling function:\n${error.stack}`,
      )

      // The event says so too (without document content).
      const event = events.find((e) => e.operation === 'saveProfile')
      assert.equal(event.error.code, 'database_error')
      assert.equal(event.error.sqlState, '23514')
      assert.deepEqual(event.context, { request_id: 'req-check' })
      assert.ok(published.some((m) => m.operation === 'saveProfile' && m.error?.sqlState === '23514'))

      // Nothing was written.
      assert.deepEqual(await counts(id), { profiles: 0, audit: 0, idx: 0 })
    })

    test('a unique index: sqlState 23505 with constraint, table and a detail naming the key', async () => {
      const repository = db.repository(mode)
      const email = `${uid('e')}@example.test`
      await repository.saveProfile(doc(uid('first'), 'u1', { email }))
      const second = uid('second')
      async function callerSavesDuplicateEmail_91bc() {
        return await repository.saveProfile(doc(second, 'u2', { email }))
      }
      const r = await outcome(callerSavesDuplicateEmail_91bc())
      assert.equal(r.code, 'database_error', r.error?.message)
      assert.equal(r.error.sqlState, '23505')
      assert.equal(r.error.constraint, 'fault_unique_email')
      assert.equal(r.error.table, 'pson_profiles')
      assert.match(r.error.detail ?? '', /already exists/)
      assert.equal(r.error.operation, 'saveProfile')
      assert.ok(r.error.stack.includes('callerSavesDuplicateEmail_91bc'), r.error.stack)
      assert.deepEqual(await counts(second), { profiles: 0, audit: 0, idx: 0 })
    })

    test('one bad save among 40 concurrent ones: only it fails, with its own details; the others are stored', async () => {
      const repository = db.repository(mode)
      const ids = Array.from({ length: 40 }, (_, i) => uid(`batch${i}`))
      const results = await Promise.all(
        ids.map((id, i) => outcome(repository.saveProfile(doc(id, i === 17 ? 'forbidden' : `user-${i}`)))),
      )
      results.forEach((r, i) => {
        if (i === 17) {
          assert.equal(r.code, 'database_error', r.error?.message)
          assert.equal(r.error.sqlState, '23514')
          assert.equal(r.error.constraint, 'no_bad')
        } else {
          assert.equal(r.ok, true, `save ${i}: ${r.code} ${r.error?.message}`)
          assert.equal(r.value.metadata.revision, 1)
        }
      })
      assert.deepEqual(await counts(ids[17]), { profiles: 0, audit: 0, idx: 0 })
      assert.deepEqual(await counts(ids[3]), { profiles: 1, audit: 1, idx: 1 })
    })

    test('a load that fails in the database (table dropped under it) is a database_error with sqlState 42P01', async () => {
      const schema = uid('ferr_gone')
      await db.sql(`create schema "${schema}"`)
      try {
        const repository = db.repository(mode, { schema })
        async function callerLoadsFromMissingTable_c0de() {
          return await repository.loadProfile('anything')
        }
        const r = await outcome(callerLoadsFromMissingTable_c0de())
        assert.equal(r.code, 'database_error', r.error?.message)
        assert.equal(r.error.sqlState, '42P01')
        assert.equal(r.error.operation, 'loadProfile')
        assert.ok(r.error.stack.includes('callerLoadsFromMissingTable_c0de'), r.error.stack)
      } finally {
        await db.sql(`drop schema "${schema}" cascade`)
      }
    })
  })
}
