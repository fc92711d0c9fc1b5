// saveProfile and the query helpers around it: revision arithmetic, the audit
// row of each save, expectedRevision, the domain index, and parity of the
// three modes (native pool, executor over pg, executor over postgres.js).

import assert from 'node:assert/strict'
import { before, describe, test } from 'node:test'

import { MODES, useDatabase } from './helpers/database.mjs'
import { buildProfile, expectStoreError, failIfUnfinished, uniqueId, withoutRecordedAt } from './helpers/profiles.mjs'

failIfUnfinished(import.meta.url)
const db = await useDatabase({ schemaPrefix: 'save' })

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/

async function indexRows(profileId) {
  const { rows } = await db.sql(
    `select user_id, profile_id, tenant_id, active_domains from "${db.schema}"."pson_domain_index"
     where profile_id = $1 order by user_id`,
    [profileId],
  )
  return rows
}

for (const mode of MODES) {
  describe(`saveProfile and query helpers (${mode})`, () => {
    let repository

    before(async () => {
      repository = db.repository(mode)
      await repository.ensureSchema()
    })

    test('three saves give revisions 1, 2, 3 and ignore the revision in the input', async () => {
      const profileId = uniqueId(`${mode}-rev`)
      const userId = uniqueId(`${mode}-user`)

      const first = await repository.saveProfile(buildProfile({ profileId, userId, revision: 42 }))
      assert.equal(first.metadata.revision, 1)
      assert.equal((await repository.loadProfile(profileId)).metadata.revision, 1)

      const second = await repository.saveProfile(buildProfile({ profileId, userId, revision: 99, sourceCount: 5 }))
      assert.equal(second.metadata.revision, 2)
      assert.equal((await repository.loadProfile(profileId)).metadata.revision, 2)

      const thirdInput = buildProfile({ profileId, userId, revision: 0, sourceCount: 6 })
      const third = await repository.saveProfile(thirdInput)
      assert.equal(third.metadata.revision, 3)
      // The caller's object is not the stored one: its revision stays as passed.
      assert.equal(thirdInput.metadata.revision, 0)

      const loaded = await repository.loadProfile(profileId)
      assert.deepEqual(loaded, third)
      assert.deepEqual(loaded, { ...thirdInput, metadata: { ...thirdInput.metadata, revision: 3 } })
      assert.deepEqual(await repository.listProfileRevisions(profileId), [1, 2, 3])
    })

    test('a profile without metadata gets metadata.revision', async () => {
      const profileId = uniqueId(`${mode}-nometa`)
      const { metadata: _metadata, ...bare } = buildProfile({ profileId, userId: uniqueId(`${mode}-user`) })
      const saved = await repository.saveProfile(bare)
      assert.equal(saved.metadata.revision, 1)
      assert.equal((await repository.loadProfile(profileId)).metadata.revision, 1)
      assert.equal((await repository.saveProfile(bare)).metadata.revision, 2)
      assert.equal((await repository.loadProfile(profileId)).metadata.revision, 2)
    })

    test('each save appends an audit entry, newest first, with the context it was given', async () => {
      const profileId = uniqueId(`${mode}-audit`)
      const userId = uniqueId(`${mode}-user`)
      const firstDoc = buildProfile({ profileId, userId, sourceCount: 4, updatedAt: '2026-03-01T10:00:00.000Z' })
      // Only `layers` changes (and metadata, which always carries the new revision).
      const secondDoc = buildProfile({
        profileId,
        userId,
        sourceCount: 4,
        updatedAt: '2026-03-01T10:00:00.000Z',
        observed: { 'core.preferred_language': { value: 'pt-PT', confidence: 0.99, source: 'settings' } },
      })
      // consent, pson_version and source_count change.
      const thirdDoc = {
        ...buildProfile({
          profileId,
          userId,
          sourceCount: 7,
          psonVersion: '5.1',
          updatedAt: '2026-03-03T12:30:00.000Z',
          consentScopes: ['core:read'],
        }),
        layers: secondDoc.layers,
      }
      const contexts = [
        { request_id: 'req-1', trace_id: 'trace-1' },
        { request_id: 'req-2', actor: { kind: 'service', name: 'importer' }, attempt: 2, dry_run: false },
        undefined,
      ]

      await repository.saveProfile(firstDoc, { context: contexts[0] })
      await repository.saveProfile(secondDoc, { context: contexts[1] })
      await repository.saveProfile(thirdDoc)

      const { entries, nextCursor } = await repository.listAuditEntries(profileId)
      assert.equal(nextCursor, null)
      assert.deepEqual(
        entries.map((e) => [e.revision, e.previous_revision]),
        [
          [3, 2],
          [2, 1],
          [1, null],
        ],
      )
      for (const entry of entries) {
        assert.equal(entry.profile_id, profileId)
        assert.equal(entry.user_id, userId)
        assert.equal(entry.tenant_id, 'tenant-acme')
        assert.equal(typeof entry.recorded_at, 'string')
        assert.match(entry.recorded_at, ISO)
        assert.ok(Math.abs(Date.parse(entry.recorded_at) - Date.now()) < 10 * 60 * 1000, 'recorded_at is now-ish')
      }
      const [third, second, first] = entries

      // First save: every top-level key is new; the delta counts from nothing.
      assert.deepEqual(first.changed_top_level_paths, Object.keys(firstDoc).sort())
      assert.equal(first.source_count, 4)
      assert.equal(first.source_count_delta, 4)
      assert.equal(first.pson_version, '5.0')
      assert.equal(first.updated_at, '2026-03-01T10:00:00.000Z')
      assert.deepEqual(first.context, contexts[0])

      assert.deepEqual(second.changed_top_level_paths, ['layers', 'metadata'])
      assert.ok(!second.changed_top_level_paths.includes('consent'))
      assert.equal(second.source_count, 4)
      assert.equal(second.source_count_delta, 0)
      assert.equal(second.pson_version, '5.0')
      assert.deepEqual(second.context, contexts[1])

      assert.deepEqual(third.changed_top_level_paths, ['consent', 'metadata', 'pson_version'])
      assert.equal(third.source_count, 7)
      assert.equal(third.source_count_delta, 3)
      assert.equal(third.pson_version, '5.1')
      assert.equal(third.updated_at, '2026-03-03T12:30:00.000Z')
      assert.deepEqual(third.context, {})
    })

    test('changed_top_level_paths of a first save name every key of the stored document', async () => {
      // The stored revision 1 gains `metadata` (with the revision) even when the input has none.
      const profileId = uniqueId(`${mode}-firstpaths`)
      const { metadata: _metadata, ...bare } = buildProfile({ profileId, userId: uniqueId(`${mode}-user`) })
      await repository.saveProfile(bare)
      const stored = await repository.loadProfile(profileId)
      const { entries } = await repository.listAuditEntries(profileId)
      assert.deepEqual(entries[0].changed_top_level_paths, Object.keys(stored).sort())
    })

    test('changed_top_level_paths names keys that were removed, added or set to null', async () => {
      const profileId = uniqueId(`${mode}-keys`)
      const userId = uniqueId(`${mode}-user`)
      await repository.saveProfile(buildProfile({ profileId, userId }))
      const next = buildProfile({ profileId, userId })
      delete next.simulation_profiles
      next.privacy = null
      next.relationships = { manager: 'u-42' }
      await repository.saveProfile(next)
      const { entries } = await repository.listAuditEntries(profileId, { limit: 1 })
      assert.deepEqual(entries[0].changed_top_level_paths, ['metadata', 'privacy', 'relationships', 'simulation_profiles'])
      assert.deepEqual(await repository.loadProfile(profileId), { ...next, metadata: { ...next.metadata, revision: 2 } })
    })

    test('loadProfileRevision returns the snapshot of that revision', async () => {
      const profileId = uniqueId(`${mode}-snap`)
      const userId = uniqueId(`${mode}-user`)
      const saved = []
      for (const language of ['en-GB', 'fr-FR', 'de-DE']) {
        const observed = { 'core.preferred_language': { value: language, confidence: 0.9, source: 'settings' } }
        saved.push(await repository.saveProfile(buildProfile({ profileId, userId, observed })))
      }
      const revision2 = await repository.loadProfileRevision(profileId, 2)
      assert.deepEqual(revision2, saved[1])
      assert.equal(revision2.metadata.revision, 2)
      assert.equal(revision2.layers.observed['core.preferred_language'].value, 'fr-FR')
      assert.deepEqual(await repository.loadProfileRevision(profileId, 1), saved[0])
      assert.deepEqual(await repository.loadProfileRevision(profileId, 3), saved[2])

      await expectStoreError(repository.loadProfileRevision(profileId, 4), {
        code: 'not_found',
        storeCode: 'revision_not_found',
      })
      await expectStoreError(repository.loadProfileRevision(uniqueId(`${mode}-none`), 1), {
        code: 'not_found',
        storeCode: 'revision_not_found',
      })
    })

    test('expectedRevision: a match saves, a mismatch is a conflict that writes nothing', async () => {
      const profileId = uniqueId(`${mode}-expect`)
      const userId = uniqueId(`${mode}-user`)
      await repository.saveProfile(buildProfile({ profileId, userId }))

      const matched = await repository.saveProfile(buildProfile({ profileId, userId, sourceCount: 5 }), {
        expectedRevision: 1,
      })
      assert.equal(matched.metadata.revision, 2)

      for (const expectedRevision of [1, 3, 100]) {
        const before = await db.snapshot()
        await expectStoreError(
          repository.saveProfile(buildProfile({ profileId, userId, sourceCount: 9, tenantId: 'tenant-other' }), {
            expectedRevision,
            context: { request_id: `stale-${expectedRevision}` },
          }),
          { code: 'conflict' },
        )
        assert.deepEqual(await db.snapshot(), before, `expectedRevision ${expectedRevision} wrote nothing`)
      }
      const loaded = await repository.loadProfile(profileId)
      assert.equal(loaded.metadata.revision, 2)
      assert.equal(loaded.metadata.source_count, 5)
      assert.deepEqual(await repository.listProfileRevisions(profileId), [1, 2])
    })

    test('expectedRevision 0 means "must be new"', async () => {
      const profileId = uniqueId(`${mode}-zero`)
      const userId = uniqueId(`${mode}-user`)
      const created = await repository.saveProfile(buildProfile({ profileId, userId }), { expectedRevision: 0 })
      assert.equal(created.metadata.revision, 1)

      const before = await db.snapshot()
      await expectStoreError(repository.saveProfile(buildProfile({ profileId, userId }), { expectedRevision: 0 }), {
        code: 'conflict',
      })
      assert.deepEqual(await db.snapshot(), before)
    })

    test('expectedRevision > 0 on a profile that does not exist is a conflict and creates nothing', async () => {
      const profileId = uniqueId(`${mode}-ghost`)
      const before = await db.snapshot()
      await expectStoreError(
        repository.saveProfile(buildProfile({ profileId, userId: uniqueId(`${mode}-user`) }), { expectedRevision: 2 }),
        { code: 'conflict' },
      )
      assert.deepEqual(await db.snapshot(), before)
      assert.equal(await repository.profileExists(profileId), false)
    })

    test('loadProfile, profileExists and listProfileRevisions of a missing profile', async () => {
      const missing = uniqueId(`${mode}-missing`)
      await expectStoreError(repository.loadProfile(missing), { code: 'not_found', storeCode: 'profile_not_found' })
      assert.equal(await repository.profileExists(missing), false)
      await expectStoreError(repository.listProfileRevisions(missing), { code: 'not_found' })

      const profileId = uniqueId(`${mode}-present`)
      await repository.saveProfile(buildProfile({ profileId, userId: uniqueId(`${mode}-user`) }))
      assert.equal(await repository.profileExists(profileId), true)
    })

    test('loadProfileByUserId returns the most recently saved profile of the user', async () => {
      const userId = uniqueId(`${mode}-owner`)
      const [a, b, c] = ['a', 'b', 'c'].map((suffix) => uniqueId(`${mode}-lbu-${suffix}`))

      await expectStoreError(repository.loadProfileByUserId(userId), { code: 'not_found', storeCode: 'profile_not_found' })

      await repository.saveProfile(buildProfile({ profileId: a, userId }))
      assert.equal((await repository.loadProfileByUserId(userId)).profile_id, a)
      await repository.saveProfile(buildProfile({ profileId: b, userId }))
      assert.equal((await repository.loadProfileByUserId(userId)).profile_id, b)
      await repository.saveProfile(buildProfile({ profileId: c, userId }))
      assert.equal((await repository.loadProfileByUserId(userId)).profile_id, c)

      // Saving an older profile again makes it the latest.
      const resaved = await repository.saveProfile(buildProfile({ profileId: a, userId, sourceCount: 8 }))
      const latest = await repository.loadProfileByUserId(userId)
      assert.deepEqual(latest, resaved)
      assert.equal(latest.metadata.revision, 2)

      await repository.saveProfile(buildProfile({ profileId: b, userId }))
      assert.equal((await repository.loadProfileByUserId(userId)).profile_id, b)
    })

    test('findProfilesByUserId lists the profiles of a user, oldest first', async () => {
      const userId = uniqueId(`${mode}-finder`)
      assert.deepEqual(await repository.findProfilesByUserId(userId), [])
      // Ids chosen so that alphabetical order differs from creation order.
      const ids = ['zulu', 'alpha', 'mike', 'bravo'].map((name) => uniqueId(`${mode}-${name}`))
      for (const profileId of ids) await repository.saveProfile(buildProfile({ profileId, userId }))
      assert.deepEqual(await repository.findProfilesByUserId(userId), ids)

      // Saving again does not make a profile newer in this list.
      await repository.saveProfile(buildProfile({ profileId: ids[0], userId, sourceCount: 10 }))
      await repository.saveProfile(buildProfile({ profileId: ids[2], userId, sourceCount: 10 }))
      assert.deepEqual(await repository.findProfilesByUserId(userId), ids)

      // Other users' profiles are not listed.
      await repository.saveProfile(buildProfile({ profileId: uniqueId(`${mode}-other`), userId: uniqueId(`${mode}-x`) }))
      assert.deepEqual(await repository.findProfilesByUserId(userId), ids)
    })

    test('the domain index row holds tenant_id and active_domains, and follows each save', async () => {
      const profileId = uniqueId(`${mode}-dom`)
      const userId = uniqueId(`${mode}-user`)
      await repository.saveProfile(buildProfile({ profileId, userId, tenantId: 'tenant-a', domains: ['core', 'career'] }))
      assert.deepEqual(await indexRows(profileId), [
        { user_id: userId, profile_id: profileId, tenant_id: 'tenant-a', active_domains: ['core', 'career'] },
      ])

      await repository.saveProfile(
        buildProfile({ profileId, userId, tenantId: 'tenant-b', domains: ['core', 'wellbeing', 'finance'] }),
      )
      assert.deepEqual(await indexRows(profileId), [
        { user_id: userId, profile_id: profileId, tenant_id: 'tenant-b', active_domains: ['core', 'wellbeing', 'finance'] },
      ])

      // No tenant, no active domains.
      const bare = buildProfile({ profileId, userId, tenantId: null })
      delete bare.domains
      await repository.saveProfile(bare)
      assert.deepEqual(await indexRows(profileId), [
        { user_id: userId, profile_id: profileId, tenant_id: null, active_domains: [] },
      ])
    })

    test('a save that changes user_id moves the index row to the new user', async () => {
      const profileId = uniqueId(`${mode}-move`)
      const oldUser = uniqueId(`${mode}-old`)
      const newUser = uniqueId(`${mode}-new`)
      const stays = uniqueId(`${mode}-stays`)
      await repository.saveProfile(buildProfile({ profileId: stays, userId: oldUser }))
      await repository.saveProfile(buildProfile({ profileId, userId: oldUser }))
      assert.deepEqual(await repository.findProfilesByUserId(oldUser), [stays, profileId])

      const moved = await repository.saveProfile(buildProfile({ profileId, userId: newUser, domains: ['finance'] }))
      assert.equal(moved.metadata.revision, 2)
      assert.deepEqual(await indexRows(profileId), [
        { user_id: newUser, profile_id: profileId, tenant_id: 'tenant-acme', active_domains: ['finance'] },
      ])
      assert.deepEqual(await repository.findProfilesByUserId(oldUser), [stays])
      assert.deepEqual(await repository.findProfilesByUserId(newUser), [profileId])
      assert.equal((await repository.loadProfileByUserId(oldUser)).profile_id, stays)
      assert.equal((await repository.loadProfileByUserId(newUser)).profile_id, profileId)

      const { entries } = await repository.listAuditEntries(profileId, { limit: 1 })
      assert.equal(entries[0].user_id, newUser)
      assert.ok(entries[0].changed_top_level_paths.includes('user_id'))
    })
  })
}

// The same sequence of calls in every mode, each on its own tables (same ids),
// must leave the same audit trail.
describe('parity of the three modes', () => {
  const observedByMode = new Map()

  async function runSequence(repository) {
    const profileId = 'parity-profile'
    const otherId = 'parity-other'
    const userA = 'parity-user-a'
    const userB = 'parity-user-b'
    const outcomes = []
    const record = async (label, promise) => {
      try {
        const value = await promise
        outcomes.push([label, 'ok', value])
      } catch (error) {
        outcomes.push([label, 'error', error.code, error.field ?? null, error.storeCode ?? null])
      }
    }
    await record('save1', repository.saveProfile(buildProfile({ profileId, userId: userA, sourceCount: 2 }), {
      context: { request_id: 'p-1' },
    }))
    await record('save2', repository.saveProfile(
      buildProfile({ profileId, userId: userA, sourceCount: 5, observed: { 'core.mood': { value: 'calm' } } }),
      { context: { request_id: 'p-2', trace_id: 't-2', tags: ['a', 'b'] } },
    ))
    await record('save3', repository.saveProfile(
      buildProfile({ profileId, userId: userA, sourceCount: 5, psonVersion: '5.1', consentScopes: [] }),
      { expectedRevision: 2 },
    ))
    await record('stale', repository.saveProfile(buildProfile({ profileId, userId: userA }), { expectedRevision: 1 }))
    const noCount = buildProfile({ profileId, userId: userB, tenantId: null, domains: [] })
    delete noCount.metadata.source_count
    await record('save4', repository.saveProfile(noCount, { context: { request_id: 'p-4' } }))
    await record('other', repository.saveProfile(buildProfile({ profileId: otherId, userId: userB })))
    await record('bad', repository.saveProfile({ ...buildProfile({ profileId, userId: userA }), tenant_id: 3 }))

    const audit = []
    let cursor = null
    do {
      const page = await repository.listAuditEntries(profileId, { limit: 2, cursor })
      audit.push(...withoutRecordedAt(page.entries))
      cursor = page.nextCursor
    } while (cursor !== null)

    return {
      outcomes,
      audit,
      otherAudit: withoutRecordedAt((await repository.listAuditEntries(otherId)).entries),
      current: await repository.loadProfile(profileId),
      revision2: await repository.loadProfileRevision(profileId, 2),
      revisions: await repository.listProfileRevisions(profileId),
      userA: await repository.findProfilesByUserId(userA),
      userB: await repository.findProfilesByUserId(userB),
      latestOfB: (await repository.loadProfileByUserId(userB)).profile_id,
    }
  }

  for (const mode of MODES) {
    test(`the sequence runs in ${mode} mode`, async () => {
      const repository = db.repository(mode, { tablePrefix: `parity_${mode}_` })
      await repository.ensureSchema()
      const observed = await runSequence(repository)
      observedByMode.set(mode, observed)
      assert.deepEqual(
        observed.outcomes.map(([label, status, ...rest]) => (status === 'ok' ? [label, 'ok'] : [label, status, ...rest])),
        [
          ['save1', 'ok'],
          ['save2', 'ok'],
          ['save3', 'ok'],
          ['stale', 'error', 'conflict', null, null],
          ['save4', 'ok'],
          ['other', 'ok'],
          ['bad', 'error', 'validation_error', 'tenant_id', null],
        ],
      )
      assert.deepEqual(observed.revisions, [1, 2, 3, 4])
      assert.equal(observed.audit.length, 4)
    })
  }

  test('every mode produced the same results', () => {
    assert.deepEqual([...observedByMode.keys()], MODES, 'each mode ran the sequence')
    const [reference, ...others] = MODES
    for (const mode of others) {
      assert.deepEqual(observedByMode.get(mode), observedByMode.get(reference), `${mode} matches ${reference}`)
    }
  })
})
