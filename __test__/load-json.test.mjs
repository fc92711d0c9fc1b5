// loadProfileJson / loadProfilesJson in every mode: the stored document as
// JSON text (what JSON.parse turns into loadProfile's result), the same
// errors and events as loadProfile, and loads side by side with loadProfile.

import assert from 'node:assert/strict'
import { before, describe, test } from 'node:test'

import { MODES, useDatabase } from './helpers/database.mjs'
import { buildProfile, expectStoreError, failIfUnfinished, uniqueId } from './helpers/profiles.mjs'

failIfUnfinished(import.meta.url)
const db = await useDatabase({ schemaPrefix: 'json' })

for (const mode of MODES) {
  describe(`loadProfileJson (${mode})`, () => {
    let repository
    const events = []
    const ids = []

    before(async () => {
      repository = db.repository(mode, { onEvent: (event) => events.push(event) })
      await repository.ensureSchema()
      for (let i = 0; i < 12; i++) {
        const id = uniqueId(`${mode}-json`)
        ids.push(id)
        const profile = buildProfile({
          profileId: id,
          userId: `${mode}-json-user`,
          note: `note ${i} "quoted" \u00e9\u{1f600}`,
        })
        await repository.saveProfile(profile)
        if (i % 3 === 0) await repository.saveProfile(profile)
      }
    })

    test('the stored text, which parses to what loadProfile returns', async () => {
      for (const id of ids) {
        const text = await repository.loadProfileJson(id)
        assert.equal(typeof text, 'string')
        assert.deepEqual(JSON.parse(text), await repository.loadProfile(id))
      }
      // PostgreSQL's jsonb text, as stored: the very string the server sends.
      const { rows } = await db.sql(
        `select document::text as text from "${db.schema}".pson_profiles where profile_id = $1`,
        [ids[0]],
      )
      assert.equal(await repository.loadProfileJson(ids[0]), rows[0].text)
    })

    test('many at once, mixed with parsed loads, each gets its own document', async () => {
      const texts = await Promise.all(ids.map((id) => repository.loadProfileJson(id)))
      const parsed = await Promise.all(ids.map((id) => repository.loadProfile(id)))
      const both = await Promise.all(ids.flatMap((id) => [repository.loadProfileJson(id), repository.loadProfile(id)]))
      ids.forEach((id, i) => {
        assert.equal(JSON.parse(texts[i]).profile_id, id)
        assert.deepEqual(JSON.parse(texts[i]), parsed[i])
        assert.equal(both[2 * i], texts[i])
        assert.deepEqual(both[2 * i + 1], parsed[i])
      })
    })

    test('loadProfilesJson: texts in the order asked, null for a missing profile', async () => {
      const missing = uniqueId(`${mode}-missing`)
      const asked = [ids[3], missing, ids[0], ids[3]]
      const texts = await repository.loadProfilesJson(asked)
      assert.equal(texts.length, 4)
      assert.equal(texts[1], null)
      assert.equal(texts[0], texts[3])
      assert.equal(JSON.parse(texts[2]).profile_id, ids[0])
      assert.deepEqual(await repository.loadProfilesJson([]), [])
    })

    test('the errors of loadProfile', async () => {
      const missing = uniqueId(`${mode}-missing`)
      await expectStoreError(repository.loadProfileJson(missing), { code: 'not_found', storeCode: 'profile_not_found' })
      for (const bad of [undefined, '', 42, 'a\u0000b', 'x'.repeat(513)]) {
        await expectStoreError(repository.loadProfileJson(bad), { code: 'validation_error', field: 'profileId' })
      }
      await expectStoreError(repository.loadProfilesJson('id'), { code: 'validation_error', field: 'profileIds' })
      await expectStoreError(repository.loadProfilesJson([ids[0], 7]), {
        code: 'validation_error',
        field: 'profileIds[1]',
      })
      await expectStoreError(repository.loadProfileJson(ids[0], { context: 'x' }), {
        code: 'validation_error',
        field: 'context',
      })
    })

    test('one event per call, like loadProfile', async () => {
      events.length = 0
      await repository.loadProfileJson(ids[1], { context: { request_id: 'r-json' } })
      await repository.loadProfileJson(uniqueId('gone')).catch(() => {})
      await repository.loadProfilesJson([ids[1], uniqueId('gone')])
      assert.deepEqual(
        events.map(({ operation, rowCount, context, error }) => ({ operation, rowCount, context, code: error?.code })),
        [
          { operation: 'loadProfileJson', rowCount: 1, context: { request_id: 'r-json' }, code: undefined },
          { operation: 'loadProfileJson', rowCount: 0, context: undefined, code: 'not_found' },
          { operation: 'loadProfilesJson', rowCount: 1, context: undefined, code: undefined },
        ],
      )
      assert.ok(
        events.every((event) => !JSON.stringify(event).includes('note 1')),
        'no document content in events',
      )
    })
  })
}
