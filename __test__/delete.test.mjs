// deleteProfile: the profile, its audit rows and its index rows go together;
// other profiles (of the same user, or saved concurrently) stay as they were.

import assert from 'node:assert/strict'
import { before, describe, test } from 'node:test'

import { MODES, useDatabase } from './helpers/database.mjs'
import { buildProfile, expectStoreError, failIfUnfinished, profileRowCounts, uniqueId } from './helpers/profiles.mjs'

failIfUnfinished(import.meta.url)
const db = await useDatabase({ schemaPrefix: 'del' })

const range = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => from + i)

/** Every row of the given profiles in the three tables, as text, for before/after comparison. */
async function rowsOf(profileIds) {
  const out = {}
  for (const table of ['profiles', 'profile_audit', 'domain_index']) {
    const { rows } = await db.sql(
      `select t::text as row from "${db.schema}"."pson_${table}" t where profile_id = any($1) order by t::text`,
      [profileIds],
    )
    out[table] = rows.map((row) => row.row)
  }
  return out
}

for (const mode of MODES) {
  describe(`deleteProfile (${mode})`, () => {
    let repository

    before(async () => {
      repository = db.repository(mode)
      await repository.ensureSchema()
    })

    test('removes the profile, its audit rows and its index rows; other profiles of the user stay', async () => {
      const userId = uniqueId(`${mode}-owner`)
      const [doomed, keepA, keepB] = ['doomed', 'keep-a', 'keep-b'].map((name) => uniqueId(`${mode}-${name}`))
      await repository.saveProfile(buildProfile({ profileId: keepA, userId }))
      for (let i = 0; i < 3; i++) await repository.saveProfile(buildProfile({ profileId: doomed, userId, sourceCount: i }))
      await repository.saveProfile(buildProfile({ profileId: keepB, userId }))
      await repository.saveProfile(buildProfile({ profileId: keepB, userId, sourceCount: 9 }))
      assert.deepEqual(await profileRowCounts(db, doomed), { profiles: 1, profile_audit: 3, domain_index: 1 })
      const othersBefore = await rowsOf([keepA, keepB])

      assert.equal(await repository.deleteProfile(doomed, { context: { request_id: 'delete-1' } }), true)

      assert.deepEqual(await profileRowCounts(db, doomed), { profiles: 0, profile_audit: 0, domain_index: 0 })
      assert.deepEqual(await rowsOf([keepA, keepB]), othersBefore)

      assert.equal(await repository.profileExists(doomed), false)
      await expectStoreError(repository.loadProfile(doomed), { code: 'not_found', storeCode: 'profile_not_found' })
      await expectStoreError(repository.loadProfileRevision(doomed, 1), {
        code: 'not_found',
        storeCode: 'revision_not_found',
      })
      await expectStoreError(repository.listProfileRevisions(doomed), { code: 'not_found' })
      assert.deepEqual(await repository.listAuditEntries(doomed), { entries: [], nextCursor: null })
      assert.deepEqual(await repository.findProfilesByUserId(userId), [keepA, keepB])
      assert.equal((await repository.loadProfileByUserId(userId)).profile_id, keepB)

      // The second delete finds nothing.
      const snapshot = await db.snapshot()
      assert.equal(await repository.deleteProfile(doomed), false)
      assert.deepEqual(await db.snapshot(), snapshot)
    })

    test('deleting the latest profile of a user makes the previous one the latest', async () => {
      const userId = uniqueId(`${mode}-owner`)
      const [older, newer] = ['older', 'newer'].map((name) => uniqueId(`${mode}-${name}`))
      await repository.saveProfile(buildProfile({ profileId: older, userId }))
      await repository.saveProfile(buildProfile({ profileId: newer, userId }))
      assert.equal((await repository.loadProfileByUserId(userId)).profile_id, newer)
      assert.equal(await repository.deleteProfile(newer), true)
      assert.equal((await repository.loadProfileByUserId(userId)).profile_id, older)
      assert.equal(await repository.deleteProfile(older), true)
      await expectStoreError(repository.loadProfileByUserId(userId), { code: 'not_found' })
      assert.deepEqual(await repository.findProfilesByUserId(userId), [])
    })

    test('deleting a profile that never existed returns false and changes nothing', async () => {
      const snapshot = await db.snapshot()
      assert.equal(await repository.deleteProfile(uniqueId(`${mode}-never`)), false)
      assert.deepEqual(await db.snapshot(), snapshot)
    })

    test('a profile saved again after its deletion starts over at revision 1', async () => {
      const profileId = uniqueId(`${mode}-reborn`)
      const userId = uniqueId(`${mode}-owner`)
      for (let i = 0; i < 4; i++) await repository.saveProfile(buildProfile({ profileId, userId }))
      assert.equal(await repository.deleteProfile(profileId), true)

      const reborn = await repository.saveProfile(buildProfile({ profileId, userId, sourceCount: 1 }))
      assert.equal(reborn.metadata.revision, 1)
      assert.deepEqual(await repository.listProfileRevisions(profileId), [1])
      const { entries } = await repository.listAuditEntries(profileId)
      assert.equal(entries.length, 1)
      assert.equal(entries[0].previous_revision, null)
      assert.deepEqual(await profileRowCounts(db, profileId), { profiles: 1, profile_audit: 1, domain_index: 1 })
    })

    test('deleting while saves of other profiles continue leaves those profiles intact', async () => {
      const userId = uniqueId(`${mode}-busy`)
      const doomed = uniqueId(`${mode}-doomed`)
      const others = range(1, 10).map((i) => uniqueId(`${mode}-other${i}`))
      for (let i = 0; i < 5; i++) await repository.saveProfile(buildProfile({ profileId: doomed, userId }))
      for (const profileId of others) await repository.saveProfile(buildProfile({ profileId, userId }))

      const rounds = 5
      const saving = (async () => {
        for (let round = 0; round < rounds; round++) {
          await Promise.all(
            others.map((profileId) =>
              repository.saveProfile(buildProfile({ profileId, userId, sourceCount: 10 * round })),
            ),
          )
        }
      })()
      // Let the first round get going, then delete in the middle of it.
      await new Promise((resolve) => setImmediate(resolve))
      const deleted = repository.deleteProfile(doomed)
      await Promise.all([saving, deleted])
      assert.equal(await deleted, true)

      assert.deepEqual(await profileRowCounts(db, doomed), { profiles: 0, profile_audit: 0, domain_index: 0 })
      for (const profileId of others) {
        assert.deepEqual(await repository.listProfileRevisions(profileId), range(1, 1 + rounds), profileId)
        const current = await repository.loadProfile(profileId)
        assert.equal(current.metadata.revision, 1 + rounds)
        assert.equal(current.metadata.source_count, 10 * (rounds - 1))
        assert.deepEqual(await profileRowCounts(db, profileId), {
          profiles: 1,
          profile_audit: 1 + rounds,
          domain_index: 1,
        })
      }
      assert.deepEqual([...(await repository.findProfilesByUserId(userId))].sort(), [...others].sort())
    })

    test('a delete racing saves of the same profile leaves nothing or a consistent profile, never orphans', async () => {
      // Whatever order the database picks, afterwards either the profile is
      // gone with all its audit and index rows, or it exists and its audit
      // holds exactly revisions 1..current.
      const userId = uniqueId(`${mode}-racer`)
      const problems = []
      for (let attempt = 0; attempt < 10; attempt++) {
        const profileId = uniqueId(`${mode}-contested${attempt}`)
        for (let i = 0; i < 3; i++) await repository.saveProfile(buildProfile({ profileId, userId }))
        const outcomes = await Promise.allSettled([
          repository.saveProfile(buildProfile({ profileId, userId, sourceCount: 11 })),
          repository.deleteProfile(profileId),
          repository.saveProfile(buildProfile({ profileId, userId, sourceCount: 12 })),
        ])
        for (const outcome of outcomes) {
          assert.equal(outcome.status, 'fulfilled', `${outcome.reason?.code}: ${outcome.reason?.message}`)
        }
        const counts = await profileRowCounts(db, profileId)
        const { rows } = await db.sql(
          `select coalesce(array_agg(revision order by revision), '{}') as revisions
           from "${db.schema}"."pson_profile_audit" where profile_id = $1`,
          [profileId],
        )
        const audited = rows[0].revisions
        if (counts.profiles === 0) {
          if (counts.profile_audit !== 0 || counts.domain_index !== 0) {
            problems.push(`${profileId}: deleted, but audit revisions ${audited} and ${counts.domain_index} index rows remain`)
          }
        } else {
          const current = (await repository.loadProfile(profileId)).metadata.revision
          const expected = range(1, current)
          if (JSON.stringify(audited) !== JSON.stringify(expected) || counts.domain_index !== 1) {
            problems.push(`${profileId}: at revision ${current}, audit revisions ${audited}, ${counts.domain_index} index rows`)
          }
        }
      }
      assert.deepEqual(problems, [])
    })

    test('several profiles deleted concurrently with saves of their neighbours', async () => {
      const userId = uniqueId(`${mode}-swap`)
      const doomed = range(1, 5).map((i) => uniqueId(`${mode}-gone${i}`))
      const kept = range(1, 5).map((i) => uniqueId(`${mode}-kept${i}`))
      for (const profileId of [...doomed, ...kept]) {
        await repository.saveProfile(buildProfile({ profileId, userId }))
        await repository.saveProfile(buildProfile({ profileId, userId }))
      }
      const results = await Promise.all([
        ...doomed.map((profileId) => repository.deleteProfile(profileId)),
        ...kept.map((profileId) => repository.saveProfile(buildProfile({ profileId, userId, sourceCount: 77 }))),
      ])
      assert.deepEqual(results.slice(0, 5), [true, true, true, true, true])
      results.slice(5).forEach((doc) => assert.equal(doc.metadata.revision, 3))
      for (const profileId of doomed) {
        assert.deepEqual(await profileRowCounts(db, profileId), { profiles: 0, profile_audit: 0, domain_index: 0 })
      }
      for (const profileId of kept) {
        assert.deepEqual(await profileRowCounts(db, profileId), { profiles: 1, profile_audit: 3, domain_index: 1 })
      }
      assert.deepEqual(await repository.findProfilesByUserId(userId), kept)
    })
  })
}
