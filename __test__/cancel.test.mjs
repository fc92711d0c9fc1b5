// Cancellation (issue 14, items 4 and 8): every method accepts `{ signal,
// timeoutMillis }`; a call aborted before its statement is sent leaves its
// batch and writes nothing; a write aborted after it was sent rejects with
// `aborted` and `outcomeUnknown: true` (the next load tells the truth).
// Against a real PostgreSQL, in the three modes.

import assert from 'node:assert/strict'
import { describe, test } from 'node:test'

import { PostgresStoreError } from '../index.mjs'
import { rejection } from './helpers/assertions.mjs'
import { MODES, useDatabase } from './helpers/database.mjs'
import { lockRows } from './helpers/locks.mjs'

const db = await useDatabase({ schemaPrefix: 'cancel' })
await db.repository('native').ensureSchema()

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

function doc(id, n = 1) {
  return { profile_id: id, user_id: 'cancel-user', metadata: { source_count: n } }
}

async function storedRevision(id) {
  const { rows } = await db.sql(`select revision from "${db.schema}".pson_profiles where profile_id = $1`, [id])
  return rows[0]?.revision ?? null
}

function assertAborted(error, { outcomeUnknown = undefined } = {}) {
  assert.ok(error instanceof PostgresStoreError, String(error))
  assert.equal(error.code, 'aborted', `${error.code}: ${error.message}`)
  assert.equal(error.outcomeUnknown, outcomeUnknown)
  assert.ok(error.stack.includes('cancel.test.mjs'), `the stack names the caller:\n${error.stack}`)
}

for (const mode of MODES) {
  describe(`cancellation (${mode})`, () => {
    const repository = db.repository(mode)

    test('bad signal or timeoutMillis: validation_error, nothing written', async () => {
      const before = await db.snapshot()
      for (const [options, field] of [
        [{ signal: 'soon' }, 'signal'],
        [{ timeoutMillis: 0 }, 'timeoutMillis'],
        [{ timeoutMillis: 1.5 }, 'timeoutMillis'],
        [{ timeoutMillis: '100' }, 'timeoutMillis'],
      ]) {
        const error = await rejection(repository.saveProfile(doc(`cancel-bad-${mode}`), options))
        assert.equal(error.code, 'validation_error')
        assert.equal(error.field, field)
      }
      assert.deepEqual(await db.snapshot(), before)
    })

    test('an already aborted signal: aborted at once, nothing sent or written', async () => {
      const reason = new Error('the client went away')
      const signal = AbortSignal.abort(reason)
      const id = `cancel-pre-${mode}`
      const error = await rejection(repository.saveProfile(doc(id), { signal }))
      assertAborted(error)
      assert.equal(error.cause, reason)
      assertAborted(await rejection(repository.loadProfile(id, { signal })))
      assertAborted(await rejection(repository.profileExists(id, { signal })))
      assert.equal(await storedRevision(id), null)
    })

    test('aborted in the same tick as the call: it leaves its batch, the other saves of the batch are written', async () => {
      const controller = new AbortController()
      const ids = Array.from({ length: 10 }, (_, i) => `cancel-batch-${mode}-${i}`)
      const calls = ids.map((id, i) => repository.saveProfile(doc(id), i === 3 ? { signal: controller.signal } : {}))
      controller.abort()
      const outcomes = await Promise.allSettled(calls)
      assertAborted(outcomes[3].reason)
      outcomes.forEach((outcome, i) => {
        if (i !== 3) assert.equal(outcome.status, 'fulfilled', `${ids[i]}: ${outcome.reason?.message}`)
      })
      await sleep(100)
      assert.equal(await storedRevision(ids[3]), null, 'the aborted save was never sent')
      for (const [i, id] of ids.entries()) if (i !== 3) assert.equal(await storedRevision(id), 1)
    })

    test('a save blocked on a row lock past its timeoutMillis: aborted, outcome unknown; the next load tells', async () => {
      const id = `cancel-locked-${mode}`
      await repository.saveProfile(doc(id))
      const lock = await lockRows(db.url, db.schema, [id])
      let error
      try {
        error = await rejection(repository.saveProfile(doc(id, 2), { timeoutMillis: 300 }))
      } finally {
        await lock.release()
      }
      assertAborted(error, { outcomeUnknown: true })
      assert.equal(error.cause?.name, 'TimeoutError')
      // Whatever happened to it, a load gives the stored truth.
      await sleep(200)
      const loaded = await repository.loadProfile(id)
      assert.equal(loaded.metadata.revision, await storedRevision(id))
      // The repository keeps working.
      assert.equal((await repository.saveProfile(doc(id, 3))).metadata.revision, loaded.metadata.revision + 1)
    })

    test('a timeoutMillis that does not pass changes nothing', async () => {
      const id = `cancel-fast-${mode}`
      const saved = await repository.saveProfile(doc(id), { timeoutMillis: 60000, signal: new AbortController().signal })
      assert.equal(saved.metadata.revision, 1)
      const loaded = await repository.loadProfile(id, { timeoutMillis: 60000 })
      assert.equal(loaded.metadata.revision, 1)
    })
  })
}
