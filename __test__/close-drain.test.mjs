// close() lets the calls accepted before it run to completion within
// `timeoutMillis`, in every mode alike; only then are the stragglers cancelled
// (native) and rejected with `closed` (issue 13, item 14).

import assert from 'node:assert/strict'
import { describe, test } from 'node:test'

import { MODES, useDatabase } from './helpers/database.mjs'
import { lockRows } from './helpers/locks.mjs'

const db = await useDatabase({ schemaPrefix: 'drain' })
await db.repository('native').ensureSchema()

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

function doc(id) {
  return { profile_id: id, user_id: 'drain-user', metadata: { source_count: 1 } }
}

async function settle(promise) {
  try {
    return { ok: true, value: await promise }
  } catch (error) {
    return { ok: false, code: error.code, error }
  }
}

for (const mode of MODES) {
  describe(`close() drains the calls accepted before it (${mode})`, () => {
    test('a load started just before close() resolves with its profile', async () => {
      const seed = db.repository(mode)
      await seed.saveProfile(doc(`drain-one-${mode}`))
      const repository = db.repository(mode)
      const pending = repository.loadProfile(`drain-one-${mode}`)
      await repository.close()
      const profile = await pending
      assert.equal(profile.profile_id, `drain-one-${mode}`)
      assert.equal((await settle(repository.loadProfile(`drain-one-${mode}`))).code, 'closed')
    })

    test('20 loads and 20 saves started one turn of the event loop before close() all succeed', async () => {
      const seed = db.repository(mode)
      await seed.saveProfile(doc(`drain-many-${mode}`))
      const repository = db.repository(mode)
      const loads = Array.from({ length: 20 }, () => repository.loadProfile(`drain-many-${mode}`))
      const saves = Array.from({ length: 20 }, (_, i) => repository.saveProfile(doc(`drain-new-${mode}-${i}`)))
      await new Promise((resolve) => setImmediate(resolve))
      await repository.close()
      const outcomes = await Promise.all([...loads, ...saves].map(settle))
      assert.deepEqual(
        outcomes.filter((o) => !o.ok).map((o) => `${o.code}: ${o.error.message}`),
        [],
        'every call accepted before close() succeeded',
      )
      const { rows } = await db.sql(
        `select count(*)::int as n from "${db.schema}".pson_profiles where profile_id like $1`,
        [`drain-new-${mode}-%`],
      )
      assert.equal(rows[0].n, 20)
    })

    test('a save blocked on a row lock that is released before timeoutMillis is saved, not cancelled', async () => {
      const seed = db.repository(mode)
      const id = `drain-locked-${mode}`
      await seed.saveProfile(doc(id))
      const lock = await lockRows(db.url, db.schema, [id])
      const repository = db.repository(mode)
      const blocked = settle(repository.saveProfile(doc(id)))
      await sleep(100)
      // Released well inside the close() window, after the point where the
      // old close() cancelled (timeoutMillis - 1000 ms).
      const release = sleep(1200).then(() => lock.release())
      await repository.close({ timeoutMillis: 2000 })
      await release
      const outcome = await blocked
      assert.equal(outcome.ok, true, `the blocked save was ${outcome.code}: ${outcome.error?.message}`)
      assert.equal(outcome.value.metadata.revision, 2)
    })
  })
}

describe('close() and the stragglers (native)', () => {
  test('a save still blocked at timeoutMillis is cancelled on the server, rejects with closed and writes nothing', async () => {
    const seed = db.repository('native')
    const id = 'drain-straggler'
    await seed.saveProfile(doc(id))
    const lock = await lockRows(db.url, db.schema, [id])
    try {
      const repository = db.repository('native')
      const blocked = settle(repository.saveProfile(doc(id)))
      await sleep(100)
      await repository.close({ timeoutMillis: 300 })
      const outcome = await blocked
      assert.equal(outcome.ok, false)
      assert.equal(outcome.code, 'closed', outcome.error?.message)
      assert.ok(outcome.error.stack.includes('close-drain.test.mjs'), `the stack names the caller:\n${outcome.error.stack}`)
    } finally {
      await lock.release()
    }
    // The cancelled statement left nothing behind once the lock is gone.
    await sleep(200)
    const { rows } = await db.sql(`select revision from "${db.schema}".pson_profiles where profile_id = $1`, [id])
    assert.equal(rows[0].revision, 1)
  })
})
