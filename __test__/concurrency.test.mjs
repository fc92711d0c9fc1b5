// Concurrent saves: revisions 1..N exactly once for one profile, no lost index
// entries for many profiles of one user, exactly one winner under
// expectedRevision, and each caller's own outcome when saves, loads and finds
// are coalesced.

import assert from 'node:assert/strict'
import { before, describe, test } from 'node:test'

import pg from 'pg'

import { createPostgresProfileStoreRepository } from '../index.mjs'
import { MODES, useDatabase } from './helpers/database.mjs'
import { buildProfile, expectStoreError, failIfUnfinished, settle, uniqueId } from './helpers/profiles.mjs'

failIfUnfinished(import.meta.url)
const db = await useDatabase({ schemaPrefix: 'conc' })
const audit = `"${db.schema}"."pson_profile_audit"`
const domainIndex = `"${db.schema}"."pson_domain_index"`

const range = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => from + i)

for (const mode of MODES) {
  describe(`concurrent saves (${mode})`, () => {
    let repository

    before(async () => {
      repository = db.repository(mode)
      await repository.ensureSchema()
    })

    test('50 concurrent saves of one new profile get revisions 1..50, each audited once', async () => {
      const profileId = uniqueId(`${mode}-hot`)
      const userId = uniqueId(`${mode}-user`)
      const inputs = range(1, 50).map((i) =>
        buildProfile({
          profileId,
          userId,
          sourceCount: i,
          observed: { 'core.writer': { value: `writer-${i}`, confidence: 1, source: 'test' } },
        }),
      )
      const saved = await Promise.all(inputs.map((input) => repository.saveProfile(input)))

      assert.deepEqual(
        saved.map((doc) => doc.metadata.revision).sort((a, b) => a - b),
        range(1, 50),
      )
      // Each caller got its own document back.
      saved.forEach((doc, i) => assert.equal(doc.layers.observed['core.writer'].value, `writer-${i + 1}`))

      const { rows } = await db.sql(
        `select count(*)::int as n, count(distinct revision)::int as distinct_revisions,
                min(revision) as min, max(revision) as max,
                count(*) filter (where previous_revision is not distinct from nullif(revision - 1, 0))::int as chained,
                count(*) filter (where (document #>> '{metadata,revision}')::int = revision)::int as self_consistent
         from ${audit} where profile_id = $1`,
        [profileId],
      )
      assert.deepEqual(rows[0], {
        n: 50,
        distinct_revisions: 50,
        min: 1,
        max: 50,
        chained: 50,
        self_consistent: 50,
      })

      const current = await repository.loadProfile(profileId)
      assert.equal(current.metadata.revision, 50)
      // The current document is the one whose save got revision 50.
      const winner = saved.find((doc) => doc.metadata.revision === 50)
      assert.deepEqual(current, winner)
      assert.deepEqual(await repository.listProfileRevisions(profileId), range(1, 50))

      // Every revision's snapshot is the document of the save that got it.
      for (const doc of saved) {
        assert.deepEqual(await repository.loadProfileRevision(profileId, doc.metadata.revision), doc)
      }
    })

    test('50 more concurrent saves of an existing profile continue at 51..100', async () => {
      const profileId = uniqueId(`${mode}-warm`)
      const userId = uniqueId(`${mode}-user`)
      for (let i = 0; i < 3; i++) await repository.saveProfile(buildProfile({ profileId, userId }))
      const saved = await Promise.all(
        range(1, 50).map((i) => repository.saveProfile(buildProfile({ profileId, userId, sourceCount: i }))),
      )
      assert.deepEqual(
        saved.map((doc) => doc.metadata.revision).sort((a, b) => a - b),
        range(4, 53),
      )
      const { rows } = await db.sql(
        `select count(*)::int as n, count(distinct revision)::int as d from ${audit} where profile_id = $1`,
        [profileId],
      )
      assert.deepEqual(rows[0], { n: 53, d: 53 })
      assert.equal((await repository.loadProfile(profileId)).metadata.revision, 53)
    })

    test('20 concurrent first saves of 20 profiles of one user all land in the index', async () => {
      const userId = uniqueId(`${mode}-many`)
      const ids = range(1, 20).map((i) => uniqueId(`${mode}-p${i}`))
      const saved = await Promise.all(
        ids.map((profileId, i) => repository.saveProfile(buildProfile({ profileId, userId, domains: [`d${i}`] }))),
      )
      saved.forEach((doc) => assert.equal(doc.metadata.revision, 1))

      const found = await repository.findProfilesByUserId(userId)
      assert.equal(found.length, 20)
      assert.deepEqual([...found].sort(), [...ids].sort())

      const { rows } = await db.sql(
        `select profile_id, active_domains from ${domainIndex} where user_id = $1 order by profile_id`,
        [userId],
      )
      assert.deepEqual(
        rows,
        ids
          .map((profileId, i) => ({ profile_id: profileId, active_domains: [`d${i}`] }))
          .sort((a, b) => (a.profile_id < b.profile_id ? -1 : 1)),
      )
      assert.ok(ids.includes((await repository.loadProfileByUserId(userId)).profile_id))
    })

    test('20 concurrent saves with expectedRevision = current: exactly one wins', async () => {
      const profileId = uniqueId(`${mode}-race`)
      const userId = uniqueId(`${mode}-user`)
      await repository.saveProfile(buildProfile({ profileId, userId }))
      await repository.saveProfile(buildProfile({ profileId, userId }))
      const current = (await repository.loadProfile(profileId)).metadata.revision
      assert.equal(current, 2)

      const { fulfilled, rejected } = await settle(
        range(1, 20).map((i) =>
          repository.saveProfile(buildProfile({ profileId, userId, sourceCount: 100 + i }), {
            expectedRevision: current,
          }),
        ),
      )
      assert.equal(fulfilled.length, 1, 'exactly one save succeeds')
      assert.equal(fulfilled[0].metadata.revision, 3)
      assert.equal(rejected.length, 19)
      for (const error of rejected) assert.equal(error.code, 'conflict', `${error.code}: ${error.message}`)

      const stored = await repository.loadProfile(profileId)
      assert.deepEqual(stored, fulfilled[0])
      assert.deepEqual(await repository.listProfileRevisions(profileId), [1, 2, 3])
    })

    test('20 concurrent "must be new" saves (expectedRevision 0) of one profile: exactly one wins', async () => {
      const profileId = uniqueId(`${mode}-newrace`)
      const userId = uniqueId(`${mode}-user`)
      const { fulfilled, rejected } = await settle(
        range(1, 20).map((i) =>
          repository.saveProfile(buildProfile({ profileId, userId, sourceCount: i }), { expectedRevision: 0 }),
        ),
      )
      assert.equal(fulfilled.length, 1)
      assert.equal(fulfilled[0].metadata.revision, 1)
      assert.deepEqual(
        rejected.map((error) => error.code),
        Array(19).fill('conflict'),
      )
      assert.deepEqual(await repository.listProfileRevisions(profileId), [1])
    })

    test('concurrent saves that move a profile between users leave one index row, under its current user', async () => {
      // Each save's index upsert must see what the save before it (which held
      // the row lock) wrote; otherwise the profile stays listed under users
      // it no longer belongs to.
      const users = ['a', 'b', 'c', 'd'].map((name) => uniqueId(`${mode}-mover-${name}`))
      const problems = []
      for (let attempt = 0; attempt < 5; attempt++) {
        const profileId = uniqueId(`${mode}-moving${attempt}`)
        await repository.saveProfile(buildProfile({ profileId, userId: users[0] }))
        const saved = await Promise.all(
          [users[1], users[2], users[0], users[3]].map((userId) => repository.saveProfile(buildProfile({ profileId, userId }))),
        )
        assert.deepEqual(
          saved.map((doc) => doc.metadata.revision).sort((a, b) => a - b),
          [2, 3, 4, 5],
        )
        const current = await repository.loadProfile(profileId)
        const { rows } = await db.sql(`select user_id from ${domainIndex} where profile_id = $1 order by user_id`, [
          profileId,
        ])
        const indexedUsers = rows.map((row) => row.user_id)
        if (indexedUsers.length !== 1 || indexedUsers[0] !== current.user_id) {
          problems.push(`${profileId} belongs to ${current.user_id} but is indexed under ${indexedUsers.join(', ')}`)
        }
        for (const userId of users) {
          const listed = (await repository.findProfilesByUserId(userId)).includes(profileId)
          if (listed !== (userId === current.user_id)) {
            problems.push(`findProfilesByUserId(${userId}) ${listed ? 'lists' : 'misses'} ${profileId}`)
          }
        }
      }
      assert.deepEqual(problems, [])
    })

    test('concurrent index writes that list the same profiles in different orders never deadlock', async () => {
      // Each write locks the index rows of its list; taken in the caller's
      // order, two lists in opposite orders lock each other out (SQLSTATE
      // 40P01, which the fault suite's fuzz run met as a database_error).
      const profileIds = range(1, 30).map((i) => uniqueId(`${mode}-listed${i}`))
      const users = ['a', 'b', 'c', 'd'].map((name) => uniqueId(`${mode}-lister-${name}`))
      for (const profileId of profileIds) await repository.saveProfile(buildProfile({ profileId, userId: users[0] }))
      const orders = [profileIds, [...profileIds].reverse(), profileIds.filter((_, i) => i % 2 === 0), profileIds.filter((_, i) => i % 2 === 1).reverse()]
      const failures = []
      for (let round = 0; round < 15; round++) {
        const { rejected } = await settle(
          users.map((userId, i) => {
            const listed = orders[(i + round) % orders.length]
            return repository.writeUserProfileIndex({
              user_id: userId,
              latest_profile_id: listed[0],
              profile_ids: listed,
              updated_at: new Date(Date.UTC(2026, 0, 1, 0, 0, round)).toISOString(),
            })
          }),
        )
        for (const error of rejected) failures.push(`${error.code}: ${error.message}`)
      }
      assert.deepEqual([...new Set(failures)], [])
      // Each profile is listed once, under one of the writers.
      const { rows } = await db.sql(`select count(*)::int as n, count(distinct profile_id)::int as distinct_ids from ${domainIndex} where profile_id = any ($1)`, [
        profileIds,
      ])
      assert.deepEqual(rows[0], { n: 30, distinct_ids: 30 })
    })

    test('deleteProfilesByUserId concurrent with saves and index writes of the same profiles never deadlocks', async () => {
      // Profiles saved in reverse, so the user's rows sit in the table
      // against profile_id order: a delete that locked them in scan order
      // deadlocked against saves and index writes, which lock in profile_id
      // order.
      const failures = []
      for (let round = 0; round < 20; round++) {
        const userId = uniqueId(`${mode}-leaver${round}`)
        const profileIds = range(0, 19).map((i) => uniqueId(`${mode}-leaving${(i * 7) % 20}`))
        for (const profileId of [...profileIds].reverse()) await repository.saveProfile(buildProfile({ profileId, userId }))
        const saves = (ids) => ids.map((profileId) => repository.saveProfile(buildProfile({ profileId, userId })))
        const { rejected } = await settle([
          ...saves(profileIds.slice(0, 10)),
          repository.deleteProfilesByUserId(userId),
          ...saves(profileIds.slice(10)),
          repository.writeUserProfileIndex({
            user_id: uniqueId(`${mode}-taker`),
            latest_profile_id: profileIds[0],
            profile_ids: profileIds,
            updated_at: new Date(Date.UTC(2026, 0, 1)).toISOString(),
          }),
        ])
        for (const error of rejected) failures.push(`${error.code}: ${error.message}`)
      }
      assert.deepEqual([...new Set(failures)], [])
    })

    test('index writes racing first saves of the profiles they list: no call fails with a deadlock', async () => {
      // A statement orders only the rows its snapshot sees: an index row a
      // racing save commits meanwhile can still close a cycle (40P01), which
      // PostgreSQL breaks by failing one statement, whole; the repository
      // sends that call again (lib/repository.js DEADLOCK_TRIES).
      const failures = []
      for (let round = 0; round < 20; round++) {
        const userId = uniqueId(`${mode}-racer${round}`)
        const existing = range(0, 9).map((i) => uniqueId(`${mode}-raced${i}`))
        for (const profileId of existing) await repository.saveProfile(buildProfile({ profileId, userId }))
        const listed = [...range(0, 9).map((i) => uniqueId(`${mode}-fresh${i}`)), ...existing].sort()
        const saves = (ids) => ids.map((profileId) => repository.saveProfile(buildProfile({ profileId, userId })))
        const { rejected } = await settle([
          ...saves(listed),
          ...range(0, 2).map((k) =>
            repository.writeUserProfileIndex({
              user_id: uniqueId(`${mode}-claimer${k}`),
              latest_profile_id: listed[0],
              profile_ids: listed,
              updated_at: new Date(Date.UTC(2026, 0, 1)).toISOString(),
            }),
          ),
          ...saves([...listed].reverse()),
        ])
        for (const error of rejected) failures.push(`${error.code}: ${error.message}`)
      }
      assert.deepEqual([...new Set(failures)], [])
    })

    test('concurrent saves of different profiles each get their own outcome', async () => {
      const userId = uniqueId(`${mode}-mixed`)
      const ids = range(1, 12).map((i) => uniqueId(`${mode}-mix${i}`))
      for (const profileId of ids) await repository.saveProfile(buildProfile({ profileId, userId }))

      // Even ones pass the right expected revision, odd ones a stale one, and a
      // few pass none.
      const outcomes = await Promise.allSettled(
        ids.map((profileId, i) => {
          const options = i % 4 === 3 ? {} : { expectedRevision: i % 2 === 0 ? 1 : 7 }
          return repository.saveProfile(buildProfile({ profileId, userId, sourceCount: 50 + i }), options)
        }),
      )
      for (const [i, outcome] of outcomes.entries()) {
        const shouldSave = i % 4 === 3 || i % 2 === 0
        if (shouldSave) {
          assert.equal(outcome.status, 'fulfilled', `save ${i}: ${outcome.reason?.code} ${outcome.reason?.message}`)
          assert.equal(outcome.value.metadata.revision, 2)
          assert.equal(outcome.value.metadata.source_count, 50 + i)
        } else {
          assert.equal(outcome.status, 'rejected', `save ${i} should conflict`)
          assert.equal(outcome.reason.code, 'conflict')
        }
        const stored = await repository.loadProfile(ids[i])
        assert.equal(stored.metadata.revision, shouldSave ? 2 : 1, `profile ${i}`)
        assert.equal(stored.metadata.source_count, shouldSave ? 50 + i : 4, `profile ${i}`)
      }
      assert.equal((await repository.findProfilesByUserId(userId)).length, 12)
    })

    test('one save the database rejects does not fail concurrent saves of other profiles', async () => {
      // A document that passes validation but that a CHECK constraint on the
      // profiles table refuses (check_violation).
      const hugeId = uniqueId(`${mode}-refused`)
      const constraint = `refuse_${mode}`
      await db.sql(
        `alter table "${db.schema}"."pson_profiles" add constraint ${constraint} check (profile_id <> '${hugeId}')`,
      )
      const userId = uniqueId(`${mode}-isolated`)
      const goodIds = range(1, 9).map((i) => uniqueId(`${mode}-good${i}`))
      const before = await db.snapshot()
      const bad = await settle([repository.saveProfile(buildProfile({ profileId: hugeId, userId }))])
      assert.equal(bad.rejected.length, 1, 'the refused document alone is rejected by the database')
      assert.equal(bad.rejected[0].code, 'database_error')
      assert.equal(typeof bad.rejected[0].sqlState, 'string')
      assert.deepEqual(await db.snapshot(), before)

      const outcomes = await Promise.allSettled([
        ...goodIds.slice(0, 4).map((profileId) => repository.saveProfile(buildProfile({ profileId, userId }))),
        repository.saveProfile(buildProfile({ profileId: hugeId, userId })),
        ...goodIds.slice(4).map((profileId) => repository.saveProfile(buildProfile({ profileId, userId }))),
      ])
      const badOutcome = outcomes.splice(4, 1)[0]
      assert.equal(badOutcome.status, 'rejected')
      assert.equal(badOutcome.reason.code, 'database_error')
      for (const [i, outcome] of outcomes.entries()) {
        assert.equal(outcome.status, 'fulfilled', `good save ${i}: ${outcome.reason?.code} ${outcome.reason?.message}`)
        assert.equal(outcome.value.metadata.revision, 1)
      }
      assert.deepEqual([...(await repository.findProfilesByUserId(userId))].sort(), [...goodIds].sort())
      assert.equal(await repository.profileExists(hugeId), false)
      await expectStoreError(repository.loadProfile(hugeId), { code: 'not_found' })
      await db.sql(`alter table "${db.schema}"."pson_profiles" drop constraint ${constraint}`)
    })

    test('a burst of ~30 KB documents (several N-API crossings) gets each caller its own outcome', async () => {
      const userId = uniqueId(`${mode}-large`)
      const ids = range(1, 10).map((i) => uniqueId(`${mode}-large${i}`))
      const large = (profileId, sourceCount) =>
        buildProfile({
          profileId,
          userId,
          sourceCount,
          observed: Object.fromEntries(
            range(1, 300).map((k) => [
              `core.fact_${k}`,
              { value: `${profileId} fact ${k} ${'x'.repeat(40)}`, confidence: 0.5, source: 'test' },
            ]),
          ),
        })
      assert.ok(JSON.stringify(large(ids[0], 1)).length > 25_000)

      const first = await Promise.all(ids.map((profileId, i) => repository.saveProfile(large(profileId, i))))
      first.forEach((doc, i) => {
        assert.equal(doc.profile_id, ids[i])
        assert.equal(doc.metadata.revision, 1)
      })

      // The fifth passes a stale expected revision: only it conflicts.
      const second = await Promise.allSettled(
        ids.map((profileId, i) =>
          repository.saveProfile(large(profileId, 100 + i), { expectedRevision: i === 4 ? 7 : 1 }),
        ),
      )
      for (const [i, outcome] of second.entries()) {
        if (i === 4) {
          assert.equal(outcome.status, 'rejected')
          assert.equal(outcome.reason.code, 'conflict')
        } else {
          assert.equal(outcome.status, 'fulfilled', `save ${i}: ${outcome.reason?.code} ${outcome.reason?.message}`)
          assert.equal(outcome.value.metadata.revision, 2)
          assert.equal(outcome.value.metadata.source_count, 100 + i)
        }
      }

      const missing = uniqueId(`${mode}-large-absent`)
      const loads = await Promise.allSettled(
        [...ids.slice(0, 5), missing, ...ids.slice(5)].map((id) => repository.loadProfile(id)),
      )
      const absent = loads.splice(5, 1)[0]
      assert.equal(absent.status, 'rejected')
      assert.equal(absent.reason.code, 'not_found')
      for (const [i, outcome] of loads.entries()) {
        assert.equal(outcome.status, 'fulfilled', `load ${i}: ${outcome.reason?.code}`)
        assert.deepEqual(outcome.value, i === 4 ? first[4] : second[i].value)
      }
    })

    test('concurrent loads of present and missing profiles each get their own answer', async () => {
      const userId = uniqueId(`${mode}-loads`)
      const ids = range(1, 10).map((i) => uniqueId(`${mode}-load${i}`))
      const saved = []
      for (const profileId of ids) saved.push(await repository.saveProfile(buildProfile({ profileId, userId })))
      const missing = range(1, 5).map((i) => uniqueId(`${mode}-absent${i}`))
      const outcomes = await Promise.allSettled([...ids, ...missing, ...ids].map((id) => repository.loadProfile(id)))
      outcomes.slice(0, 10).forEach((outcome, i) => assert.deepEqual(outcome.value, saved[i]))
      outcomes.slice(15).forEach((outcome, i) => assert.deepEqual(outcome.value, saved[i]))
      for (const outcome of outcomes.slice(10, 15)) {
        assert.equal(outcome.status, 'rejected')
        assert.equal(outcome.reason.code, 'not_found')
        assert.equal(outcome.reason.storeCode, 'profile_not_found')
      }
    })

    test('concurrent finds for many users each get their own list, as asked one at a time', async () => {
      // User i has i % 4 profiles; every third user id holds characters a
      // text[] literal must escape.
      const users = range(0, 19).map((i) => uniqueId(i % 3 === 0 ? `${mode}-finder "${i}", {x} \\ NULL` : `${mode}-finder${i}`))
      const owned = new Map(users.map((userId) => [userId, []]))
      for (const [i, userId] of users.entries()) {
        for (let k = 0; k < i % 4; k++) {
          const profileId = uniqueId(`${mode}-found${i}-${k}`)
          await repository.saveProfile(buildProfile({ profileId, userId }))
          owned.get(userId).push(profileId)
        }
      }
      const alone = []
      for (const userId of users) alone.push(await repository.findProfilesByUserId(userId))
      users.forEach((userId, i) => assert.deepEqual([...alone[i]].sort(), [...owned.get(userId)].sort(), userId))
      const together = await Promise.all([...users, ...users, ...users].map((userId) => repository.findProfilesByUserId(userId)))
      together.forEach((list, i) => assert.deepEqual(list, alone[i % users.length], users[i % users.length]))
    })
  })
}

describe("a deadlock inside the caller's own transaction", () => {
  const waitsForLock = async (pid) =>
    (await db.sql(`select 1 from pg_stat_activity where pid = $1 and wait_event_type = 'Lock'`, [pid])).rowCount === 1

  test('an executor on a pg Client in BEGIN: the call rejects with 40P01, the cause, not the 25P02 of a retry', async () => {
    const ids = ['a', 'b'].map((name) => uniqueId(`own-tx-${name}`))
    const setup = db.repository('native')
    await setup.ensureSchema()
    for (const profileId of ids) await setup.saveProfile(buildProfile({ profileId, userId: uniqueId('own-tx-user') }))
    const profiles = `"${db.schema}"."pson_profiles"`
    const caller = new pg.Client({ connectionString: db.url })
    const other = new pg.Client({ connectionString: db.url })
    await caller.connect()
    await other.connect()
    try {
      const repository = createPostgresProfileStoreRepository({ exec: caller, schema: db.schema })
      await caller.query('begin')
      await caller.query(`select 1 from ${profiles} where profile_id = $1 for update`, [ids[0]])
      await other.query('begin')
      await other.query(`select 1 from ${profiles} where profile_id = $1 for update`, [ids[1]])
      // The caller's save of b waits for `other`; `other` then waits for a:
      // the save waited first, so its backend finds the cycle and ends it.
      const saving = expectStoreError(repository.saveProfile(buildProfile({ profileId: ids[1], userId: 'x' })), {
        code: 'database_error',
        sqlState: '40P01',
      })
      for (let i = 0; i < 100 && !(await waitsForLock(caller.processID)); i++) await new Promise((resolve) => setTimeout(resolve, 50))
      const waiting = other.query(`select 1 from ${profiles} where profile_id = $1 for update`, [ids[0]])
      await saving
      await waiting
      await other.query('rollback')
      await caller.query('rollback')
    } finally {
      await caller.end()
      await other.end()
    }
  })
})
