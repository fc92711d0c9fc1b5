// The six DocumentProfileStoreRepository methods (what serialization-engine's
// createDocumentProfileStoreAdapter calls), in every mode, and the same
// results across modes.

import assert from 'node:assert/strict'
import { before, describe, test } from 'node:test'

import { MODES, useDatabase } from './helpers/database.mjs'
import { expectStoreError } from './helpers/profiles.mjs'

const db = await useDatabase({ schemaPrefix: 'doc' })

// One set of tables for every mode: parity is checked on the same rows.
await db.repository('native').ensureSchema()

function profile(id, user, revision, extra = {}) {
  return {
    pson_version: '5.0',
    profile_id: id,
    user_id: user,
    tenant_id: 'tenant-1',
    consent: { granted: true, scopes: ['core:read'] },
    domains: { active: ['core', 'work'] },
    layers: { observed: { note: `rev ${revision}`, nested: [1, 2.5, 'x', null, true, { deep: 'é😀' }] } },
    metadata: {
      confidence: 0.5,
      created_at: '2026-01-01T00:00:00.000Z',
      updated_at: `2026-01-01T00:00:0${revision}.000Z`,
      source_count: revision,
      revision,
    },
    ...extra,
  }
}

function indexRecord(user, latest, ids, updatedAt = '2026-01-02T03:04:05.678Z') {
  return { user_id: user, latest_profile_id: latest, profile_ids: ids, updated_at: updatedAt }
}

for (const mode of MODES) {
  describe(`DocumentProfileStoreRepository (${mode})`, () => {
    let repository
    const id = (name) => `${mode}-${name}`

    before(() => {
      repository = db.repository(mode)
    })

    test('kind is postgres', () => {
      assert.equal(repository.kind, 'postgres')
    })

    test('readCurrentProfile of an unknown id is null', async () => {
      assert.equal(await repository.readCurrentProfile(id('nobody')), null)
    })

    test('readUserProfileIndex of an unknown user is null', async () => {
      assert.equal(await repository.readUserProfileIndex(id('no-user')), null)
    })

    test('listProfileRevisionNumbers of an unknown id is []', async () => {
      assert.deepEqual(await repository.listProfileRevisionNumbers(id('nobody')), [])
    })

    test('writeCurrentProfile then readCurrentProfile gives the document back', async () => {
      const doc = profile(id('p1'), id('u1'), 1)
      assert.equal(await repository.writeCurrentProfile(doc), undefined)
      assert.deepEqual(await repository.readCurrentProfile(id('p1')), doc)

      // Overwrite: the latest write wins, revision as given (0.2.2 semantics).
      const next = profile(id('p1'), id('u1'), 2, { layers: { replaced: true } })
      await repository.writeCurrentProfile(next)
      assert.deepEqual(await repository.readCurrentProfile(id('p1')), next)
      // The stored revision is the document's: a save on top of it makes 3.
      const saved = await repository.saveProfile(next, { expectedRevision: 2 })
      assert.equal(saved.metadata.revision, 3)
    })

    test('writeProfileRevision 1 and 2 then listProfileRevisionNumbers is [1, 2]', async () => {
      await repository.writeProfileRevision(profile(id('p2'), id('u2'), 1))
      await repository.writeProfileRevision(profile(id('p2'), id('u2'), 2))
      assert.deepEqual(await repository.listProfileRevisionNumbers(id('p2')), [1, 2])
      // Rewriting a revision replaces it, never duplicates it.
      await repository.writeProfileRevision(profile(id('p2'), id('u2'), 1, { layers: { again: true } }))
      assert.deepEqual(await repository.listProfileRevisionNumbers(id('p2')), [1, 2])
      assert.deepEqual(
        await repository.loadProfileRevision(id('p2'), 1),
        profile(id('p2'), id('u2'), 1, { layers: { again: true } }),
      )
    })

    test('revisions written out of order are listed ascending', async () => {
      for (const revision of [3, 1, 10, 2]) await repository.writeProfileRevision(profile(id('p3'), id('u3'), revision))
      assert.deepEqual(await repository.listProfileRevisionNumbers(id('p3')), [1, 2, 3, 10])
    })

    test('writeUserProfileIndex then readUserProfileIndex gives the same record', async () => {
      const record = indexRecord(id('u4'), id('a'), [id('c'), id('a'), id('b')])
      assert.equal(await repository.writeUserProfileIndex(record), undefined)
      assert.deepEqual(await repository.readUserProfileIndex(id('u4')), record)
    })

    // [written, read back]: every instant timestamptz holds (4714-11-24 BC to
    // 294276 AD, to the microsecond) in ISO-8601 form; read back in UTC, as
    // Date#toISOString writes it (expanded years for years outside 0000..9999).
    const INSTANTS = [
      ['0001-01-01T00:00:00.000Z', '0001-01-01T00:00:00.000Z'],
      ['0099-12-31T23:59:59.999Z', '0099-12-31T23:59:59.999Z'],
      ['0004-02-29T12:00:00.000Z', '0004-02-29T12:00:00.000Z'],
      ['1969-12-31T23:59:59.999Z', '1969-12-31T23:59:59.999Z'],
      ['9999-12-31T23:59:59.999Z', '9999-12-31T23:59:59.999Z'],
      ['+010000-01-01T00:00:00.000Z', '+010000-01-01T00:00:00.000Z'],
      ['+275760-09-13T00:00:00.000Z', '+275760-09-13T00:00:00.000Z'],
      ['+294276-12-31T23:59:59.999999Z', '+294276-12-31T23:59:59.999999Z'],
      ['0000-02-29T00:00:00.000Z', '0000-02-29T00:00:00.000Z'],
      ['-000001-06-15T12:00:00.000Z', '-000001-06-15T12:00:00.000Z'],
      ['-004713-11-24T00:00:00.000Z', '-004713-11-24T00:00:00.000Z'],
      ['2026-01-31T12:00:00.123456Z', '2026-01-31T12:00:00.123456Z'],
      ['2026-01-31T12:00:00.1Z', '2026-01-31T12:00:00.100Z'],
      ['2026-01-31T12:00Z', '2026-01-31T12:00:00.000Z'],
      ['2026-01-31T12:00:00+05', '2026-01-31T07:00:00.000Z'],
      ['2026-01-31T12:00:00-0330', '2026-01-31T15:30:00.000Z'],
      ['0001-01-01T00:30:00+01:00', '0000-12-31T23:30:00.000Z'],
      ['10000-01-01T00:00:00Z', '+010000-01-01T00:00:00.000Z'],
      ['2026-01-31T24:00:00Z', '2026-02-01T00:00:00.000Z'],
    ]
    for (const [written, readBack] of INSTANTS) {
      test(`writeUserProfileIndex keeps updated_at ${written}`, async () => {
        const user = id(`at-${written}`)
        await repository.writeUserProfileIndex(indexRecord(user, id('a'), [id('a')], written))
        const record = await repository.readUserProfileIndex(user)
        assert.equal(record.updated_at, readBack)
      })
    }

    test('after saveProfile, the index updated_at is the save time in Date#toISOString form', async () => {
      const doc = profile(id('saved-at'), id('saved-at-user'), 1)
      await repository.saveProfile(doc)
      const { updated_at: updatedAt } = await repository.readUserProfileIndex(doc.user_id)
      assert.equal(new Date(updatedAt).toISOString(), updatedAt)
      assert.ok(Math.abs(Date.parse(updatedAt) - Date.now()) < 60_000, updatedAt)
    })

    test('Date#toISOString of instants across the whole Date range reads back unchanged', async () => {
      for (const millis of [-62198755200000, -62135596800000, -59011459200000, -1, 0, 253402300800000, 8.64e15]) {
        const user = id(`date-${millis}`)
        const updatedAt = new Date(millis).toISOString()
        await repository.writeUserProfileIndex(indexRecord(user, id('a'), [id('a')], updatedAt))
        assert.equal((await repository.readUserProfileIndex(user)).updated_at, updatedAt)
      }
    })

    for (const bad of [
      '+294277-01-01T00:00:00.000Z',
      '294277-01-01T00:00:00Z',
      '294276-12-31T23:59:59-01:00',
      '-004713-11-23T23:59:59.999Z',
      '-004714-01-01T00:00:00.000Z',
      '-271821-04-20T00:00:00.000Z', // new Date(-8.64e15): before timestamptz's first instant
      '-000000-01-01T00:00:00.000Z',
      '-0001-01-01T00:00:00.000Z',
      '+2026-01-01T00:00:00.000Z',
      '2023-02-29T00:00:00Z',
      '2026-02-30T00:00:00Z',
      '2026-13-01T00:00:00Z',
      '2026-01-01T00:00:00.1234567Z',
      '2026-01-01T00:00:00.Z',
      '2026-01-01T00:00:00',
      '2026-01-01',
      '2026-01-01T00:00:00+16:00',
      '2026-01-01T23:59:60Z',
      '2026-01-01T24:00:01Z',
      '2026-01-01T25:00:00Z',
      'now',
      '',
    ]) {
      test(`writeUserProfileIndex rejects updated_at '${bad}' and writes nothing`, async () => {
        const user = id(`bad-at-${bad}`)
        const before = await db.snapshot()
        await expectStoreError(() => repository.writeUserProfileIndex(indexRecord(user, id('a'), [id('a')], bad)), {
          code: 'validation_error',
          field: 'updated_at',
        })
        assert.deepEqual(await db.snapshot(), before)
      })
    }

    test('the order of profile_ids is kept, for more than nine ids too', async () => {
      const ids = Array.from({ length: 12 }, (_, i) => id(`z${String(11 - i).padStart(2, '0')}`))
      const record = indexRecord(id('u5'), ids[4], ids)
      await repository.writeUserProfileIndex(record)
      assert.deepEqual(await repository.readUserProfileIndex(id('u5')), record)
    })

    test('rewriting the index with fewer ids removes the others', async () => {
      await repository.writeUserProfileIndex(indexRecord(id('u6'), id('b'), [id('a'), id('b'), id('c'), id('d')]))
      const smaller = indexRecord(id('u6'), id('d'), [id('d'), id('a')], '2026-02-03T04:05:06.789Z')
      await repository.writeUserProfileIndex(smaller)
      assert.deepEqual(await repository.readUserProfileIndex(id('u6')), smaller)
      const { rows } = await db.sql(
        `select profile_id from "${db.schema}".pson_domain_index where user_id = $1 order by profile_id`,
        [id('u6')],
      )
      assert.deepEqual(
        rows.map((r) => r.profile_id),
        [id('a'), id('d')],
      )
      assert.deepEqual(await repository.findProfilesByUserId(id('u6')), [id('d'), id('a')])
    })

    test('the latest profile follows each write, whatever its position', async () => {
      const ids = [id('x'), id('y'), id('z')]
      for (const latest of [id('y'), id('x'), id('z'), id('y')]) {
        const record = indexRecord(id('u7'), latest, ids)
        await repository.writeUserProfileIndex(record)
        assert.deepEqual(await repository.readUserProfileIndex(id('u7')), record)
      }
      // A profile that is dropped and added back, now first.
      const back = indexRecord(id('u7'), id('x'), [id('z'), id('x')], '2026-03-01T00:00:00.001Z')
      await repository.writeUserProfileIndex(indexRecord(id('u7'), id('y'), [id('y')]))
      await repository.writeUserProfileIndex(back)
      assert.deepEqual(await repository.readUserProfileIndex(id('u7')), back)
    })

    test('users do not share index records', async () => {
      const first = indexRecord(id('u8'), id('q1'), [id('q1'), id('q3')])
      const second = indexRecord(id('u9'), id('q2'), [id('q2'), id('q4')])
      await repository.writeUserProfileIndex(first)
      await repository.writeUserProfileIndex(second)
      assert.deepEqual(await repository.readUserProfileIndex(id('u8')), first)
      assert.deepEqual(await repository.readUserProfileIndex(id('u9')), second)
    })

    // A profile has one user_id, so it is indexed under one user (unlike 0.2.2's
    // free-form records): listing it in another user's record moves it there.
    test('a profile listed in another user\'s record moves to that user', async () => {
      await repository.writeUserProfileIndex(indexRecord(id('u10'), id('m1'), [id('m1'), id('m2')]))
      const taker = indexRecord(id('u11'), id('m3'), [id('m3'), id('m2')])
      await repository.writeUserProfileIndex(taker)
      assert.deepEqual(await repository.readUserProfileIndex(id('u11')), taker)
      const left = await repository.readUserProfileIndex(id('u10'))
      assert.deepEqual(left.profile_ids, [id('m1')])
      assert.equal(left.latest_profile_id, id('m1'))
    })
  })
}

describe('every mode gives the same results on the same rows', () => {
  let repositories
  before(() => {
    repositories = Object.fromEntries(MODES.map((mode) => [mode, db.repository(mode)]))
  })

  async function readAll(repository, profileId, userId) {
    return {
      current: await repository.readCurrentProfile(profileId),
      revisions: await repository.listProfileRevisionNumbers(profileId),
      index: await repository.readUserProfileIndex(userId),
      missing: await repository.readCurrentProfile(`${profileId}-missing`),
      missingIndex: await repository.readUserProfileIndex(`${userId}-missing`),
    }
  }

  for (const writer of MODES) {
    test(`data written through ${writer} reads the same through every mode`, async () => {
      const profileId = `parity-${writer}`
      const userId = `parity-user-${writer}`
      const doc = profile(profileId, userId, 2, { extra: { big: 12345678901, small: -0.000123, text: 'a"b\\c\n' } })
      await repositories[writer].writeCurrentProfile(doc)
      await repositories[writer].writeProfileRevision(profile(profileId, userId, 1))
      await repositories[writer].writeProfileRevision(doc)
      const record = indexRecord(userId, profileId, ['other-1', profileId, 'other-0'])
      await repositories[writer].writeUserProfileIndex(record)

      const native = await readAll(repositories.native, profileId, userId)
      assert.deepEqual(native, {
        current: doc,
        revisions: [1, 2],
        index: record,
        missing: null,
        missingIndex: null,
      })
      for (const mode of MODES) {
        assert.deepEqual(await readAll(repositories[mode], profileId, userId), native, `${mode} differs from native`)
      }
    })
  }

  test('the same writes through native and pg leave identical rows', async () => {
    const rowsOf = async (profileId, userId) => {
      const { rows } = await db.sql(
        `select (select document from "${db.schema}".pson_profiles where profile_id = $1) as current,
                (select json_agg(json_build_object('revision', revision, 'source_count', source_count,
                   'pson_version', pson_version, 'updated_at', updated_at, 'document', document) order by revision)
                   from "${db.schema}".pson_profile_audit where profile_id = $1) as audit,
                (select json_agg(json_build_object('profile_id', profile_id, 'tenant_id', tenant_id,
                   'active_domains', active_domains, 'updated_at', updated_at) order by position)
                   from "${db.schema}".pson_domain_index where user_id = $2) as idx`,
        [profileId, userId],
      )
      return JSON.parse(JSON.stringify(rows[0]).replaceAll(profileId, 'P').replaceAll(userId, 'U'))
    }
    const results = {}
    for (const mode of ['native', 'pg']) {
      const repository = repositories[mode]
      const profileId = `same-${mode}`
      const userId = `same-user-${mode}`
      await repository.writeCurrentProfile(profile(profileId, userId, 1))
      await repository.writeProfileRevision(profile(profileId, userId, 1))
      await repository.writeUserProfileIndex(indexRecord(userId, profileId, [profileId]))
      results[mode] = await rowsOf(profileId, userId)
    }
    assert.deepEqual(results.pg, results.native)
    assert.equal(results.native.audit.length, 1)
    assert.deepEqual(results.native.idx[0].active_domains, ['core', 'work'])
  })
})
