// Bad input: every case is a `validation_error` naming the field (a document
// path for nested values), and leaves the three tables exactly as they were.

import assert from 'node:assert/strict'
import { before, describe, test } from 'node:test'

import { MODES, useDatabase } from './helpers/database.mjs'
import { buildProfile, expectStoreError, failIfUnfinished, uniqueId } from './helpers/profiles.mjs'

failIfUnfinished(import.meta.url)
const db = await useDatabase({ schemaPrefix: 'valid' })

/** A valid profile for `mode`, changed by `mutate` (which may return a replacement). */
function profileWith(mode, mutate) {
  const profile = buildProfile({ profileId: uniqueId(`${mode}-bad`), userId: uniqueId(`${mode}-user`) })
  const replaced = mutate(profile)
  return replaced === undefined ? profile : replaced
}

// [name, make the bad profile, expected field]
const BAD_PROFILES = [
  ['null profile', () => null, 'profile'],
  ['array profile', () => [buildProfile({ profileId: 'a', userId: 'b' })], 'profile'],
  ['string profile', (p) => JSON.stringify(p), 'profile'],
  ['number profile', () => 42, 'profile'],
  [
    'missing profile_id',
    (p) => {
      delete p.profile_id
    },
    'profile_id',
  ],
  ['empty profile_id', (p) => ({ ...p, profile_id: '' }), 'profile_id'],
  ['numeric profile_id', (p) => ({ ...p, profile_id: 1234 }), 'profile_id'],
  ['null profile_id', (p) => ({ ...p, profile_id: null }), 'profile_id'],
  [
    'missing user_id',
    (p) => {
      delete p.user_id
    },
    'user_id',
  ],
  ['empty user_id', (p) => ({ ...p, user_id: '' }), 'user_id'],
  ['object user_id', (p) => ({ ...p, user_id: { id: 'u1' } }), 'user_id'],
  ['\\u0000 in profile_id', (p) => ({ ...p, profile_id: 'abc\u0000def' }), 'profile_id'],
  ['numeric tenant_id', (p) => ({ ...p, tenant_id: 17 }), 'tenant_id'],
  ['string metadata', (p) => ({ ...p, metadata: 'revision 3' }), 'metadata'],
  [
    '\\u0000 in a nested value',
    (p) => {
      p.layers.observed.x = { value: 'before\u0000after' }
    },
    'layers.observed.x.value',
  ],
  [
    'lone high surrogate in a nested value',
    (p) => {
      p.layers.inferred.summary = 'smile \ud83d please'
    },
    'layers.inferred.summary',
  ],
  [
    'lone low surrogate in an array element',
    (p) => {
      p.knowledge_graph.nodes[1].label = '\ude00 tail'
    },
    'knowledge_graph.nodes[1].label',
  ],
  [
    'lone surrogate at the very end of a string',
    (p) => {
      p.cognitive_model.note = 'ends badly \ud800'
    },
    'cognitive_model.note',
  ],
  [
    'NaN',
    (p) => {
      p.metadata.confidence = Number.NaN
    },
    'metadata.confidence',
  ],
  [
    'Infinity',
    (p) => {
      p.layers.observed.score = { value: Number.POSITIVE_INFINITY }
    },
    'layers.observed.score.value',
  ],
  [
    '-Infinity in an array',
    (p) => {
      p.state_model.states.push(Number.NEGATIVE_INFINITY)
    },
    'state_model.states[1]',
  ],
  [
    'BigInt',
    (p) => {
      p.metadata.source_count = 10n
    },
    'metadata.source_count',
  ],
  [
    'function value',
    (p) => {
      p.behavioral_model.decide = () => 'yes'
    },
    'behavioral_model.decide',
  ],
  [
    'Symbol value',
    (p) => {
      p.state_model.marker = Symbol('state')
    },
    'state_model.marker',
  ],
  [
    'undefined inside an array',
    (p) => {
      p.domains.active = ['core', undefined, 'career']
    },
    'domains.active[1]',
  ],
  [
    'Map',
    (p) => {
      p.layers.observed = new Map([['core.language', 'en']])
    },
    'layers.observed',
  ],
  [
    'Set',
    (p) => {
      p.privacy.restricted_fields = new Set(['a'])
    },
    'privacy.restricted_fields',
  ],
  [
    'circular reference',
    (p) => {
      p.cognitive_model.loop = { back: p }
    },
    'cognitive_model.loop.back',
  ],
  [
    'circular array',
    (p) => {
      const list = ['a']
      list.push(list)
      p.simulation_profiles.list = list
    },
    'simulation_profiles.list[1]',
  ],
]

for (const mode of MODES) {
  describe(`validation (${mode})`, () => {
    let repository
    let existingId

    before(async () => {
      repository = db.repository(mode)
      await repository.ensureSchema()
      // Rows in every table, so that an unchanged snapshot means something.
      existingId = uniqueId(`${mode}-existing`)
      const userId = uniqueId(`${mode}-user`)
      await repository.saveProfile(buildProfile({ profileId: existingId, userId }), { context: { request_id: 'seed' } })
      await repository.saveProfile(buildProfile({ profileId: existingId, userId, sourceCount: 6 }))
    })

    /** Runs `call`, expects validation_error on `field`, and an unchanged database. */
    async function rejectsWithoutWriting(call, field) {
      const before = await db.snapshot()
      const error = await expectStoreError(
        call,
        field === undefined ? { code: 'validation_error' } : { code: 'validation_error', field },
      )
      assert.deepEqual(await db.snapshot(), before, 'no table changed')
      return error
    }

    for (const [name, make, field] of BAD_PROFILES) {
      test(`saveProfile rejects: ${name} (field ${field})`, async () => {
        const bad = profileWith(mode, make)
        await rejectsWithoutWriting(() => repository.saveProfile(bad), field)
      })
    }

    test('saveProfile rejects \\u0000 in a key, naming the path down to that key', async () => {
      const bad = profileWith(mode, (p) => {
        p.layers.observed['bad\u0000key'] = { value: 1 }
      })
      const error = await rejectsWithoutWriting(() => repository.saveProfile(bad), 'layers.observed.bad\u0000key')
      assert.ok(error.field.startsWith('layers.observed.'))
    })

    test('saveProfile rejects a lone surrogate in a key', async () => {
      const bad = profileWith(mode, (p) => {
        p.privacy['\udc00field'] = true
      })
      const error = await expectStoreError(() => repository.saveProfile(bad), { code: 'validation_error' })
      assert.ok(error.field.startsWith('privacy.'), error.field)
    })

    test('the same checks guard a profile that already exists (nothing half-written)', async () => {
      const current = await repository.loadProfile(existingId)
      const bad = { ...current, layers: { ...current.layers, observed: { broken: 'a\u0000b' } } }
      await rejectsWithoutWriting(() => repository.saveProfile(bad), 'layers.observed.broken')
      assert.deepEqual(await repository.loadProfile(existingId), current)
    })

    test('a document over maxDocumentBytes is rejected; one under it is saved', async () => {
      const small = db.repository(mode, { maxDocumentBytes: 2048 })
      const profile = buildProfile({ profileId: uniqueId(`${mode}-big`), userId: uniqueId(`${mode}-user`) })
      assert.ok(Buffer.byteLength(JSON.stringify(profile)) < 2048, 'the base document fits')
      profile.cognitive_model.note = 'x'.repeat(3 * 1024)
      assert.ok(Buffer.byteLength(JSON.stringify(profile)) > 3 * 1024)
      await rejectsWithoutWriting(() => small.saveProfile(profile), 'profile')
      assert.equal(await small.profileExists(profile.profile_id), false)

      // Counted in UTF-8 bytes, not UTF-16 units: 300 three-byte characters are 900 bytes.
      const multibyte = buildProfile({ profileId: uniqueId(`${mode}-utf8`), userId: uniqueId(`${mode}-user`) })
      multibyte.cognitive_model.note = '€'.repeat(300)
      assert.ok(JSON.stringify(multibyte).length < 2048, 'under the limit in UTF-16 units')
      assert.ok(Buffer.byteLength(JSON.stringify(multibyte)) > 2048, 'over the limit in UTF-8 bytes')
      await rejectsWithoutWriting(() => small.saveProfile(multibyte), 'profile')

      const fits = buildProfile({ profileId: uniqueId(`${mode}-fits`), userId: uniqueId(`${mode}-user`) })
      assert.equal((await small.saveProfile(fits)).metadata.revision, 1)
    })

    // A chain of `levels` objects ({ a: { a: ... } }) or arrays ([[...]]), built without recursion.
    function nested(levels, kind) {
      let value = kind === 'array' ? [] : {}
      for (let i = 1; i < levels; i++) value = kind === 'array' ? [value] : { a: value }
      return value
    }

    // The path of the value at `level` of a chain below `prefix` (at `level` - `below` segments further down).
    const chainPath = (prefix, kind, count) => prefix + (kind === 'array' ? '[0]' : '.a').repeat(count)

    for (const [levels, kind] of [
      [3600, 'object'],
      [1001 - 3, 'object'],
      [100_000, 'array'],
    ]) {
      test(`a document nested ${levels + 3} levels (${kind}s) is a validation_error naming the path, on every write`, async () => {
        // profile (level 1) > layers > observed > deep (level 4, the chain's first): the value at level 1,001 is
        // refused, and its path has 1,000 segments.
        const deep = profileWith(mode, (p) => {
          p.layers.observed = { deep: nested(levels, kind) }
        })
        const field = chainPath('layers.observed.deep', kind, 1001 - 4)
        await rejectsWithoutWriting(() => repository.saveProfile(deep), field)
        await rejectsWithoutWriting(() => repository.writeCurrentProfile(deep), field)
        await rejectsWithoutWriting(() => repository.writeProfileRevision(deep), field)
        // The same limit for a context (level 1) > deep (level 2).
        const context = { deep: nested(levels + 2, kind) }
        const fresh = profileWith(mode, () => undefined)
        await rejectsWithoutWriting(
          () => repository.saveProfile(fresh, { context }),
          chainPath('context.deep', kind, 1001 - 2),
        )
      })
    }

    test('a document nested exactly 1,000 levels is saved and loads back equal', async () => {
      const deep = profileWith(mode, (p) => {
        p.layers.observed = { deep: nested(1000 - 3, 'object') }
      })
      const saved = await repository.saveProfile(deep)
      assert.deepEqual(await repository.loadProfile(deep.profile_id), saved)
      assert.equal((await repository.saveProfile(await repository.loadProfile(deep.profile_id))).metadata.revision, 2)
    })

    for (const [label, id] of [
      ["''", ''],
      ['123', 123],
      ['undefined', undefined],
      ['null', null],
      ["'\\u0000'", '\u0000'],
      ['lone surrogate', '\ud800'],
    ]) {
      test(`profile ids are checked: ${label}`, async () => {
        await expectStoreError(() => repository.loadProfile(id), { code: 'validation_error', field: 'profileId' })
        await expectStoreError(() => repository.profileExists(id), { code: 'validation_error', field: 'profileId' })
        await expectStoreError(() => repository.listProfileRevisions(id), {
          code: 'validation_error',
          field: 'profileId',
        })
        await expectStoreError(() => repository.listAuditEntries(id), { code: 'validation_error', field: 'profileId' })
        await expectStoreError(() => repository.loadProfileRevision(id, 1), {
          code: 'validation_error',
          field: 'profileId',
        })
        await rejectsWithoutWriting(() => repository.deleteProfile(id), 'profileId')
        await expectStoreError(() => repository.loadProfileByUserId(id), { code: 'validation_error', field: 'userId' })
        await expectStoreError(() => repository.findProfilesByUserId(id), { code: 'validation_error', field: 'userId' })
      })
    }

    for (const expectedRevision of [-1, 1.5, '3', Number.NaN, true]) {
      const label = typeof expectedRevision === 'string' ? `'${expectedRevision}'` : String(expectedRevision)
      test(`expectedRevision ${label} is rejected`, async () => {
        const profile = buildProfile({ profileId: existingId, userId: 'whoever' })
        await rejectsWithoutWriting(() => repository.saveProfile(profile, { expectedRevision }), 'expectedRevision')
      })
    }

    test('context must be a plain object of JSON values', async () => {
      const profile = () => buildProfile({ profileId: uniqueId(`${mode}-ctx`), userId: uniqueId(`${mode}-user`) })
      await rejectsWithoutWriting(() => repository.saveProfile(profile(), { context: 'req-1' }), 'context')
      await rejectsWithoutWriting(() => repository.saveProfile(profile(), { context: ['req-1'] }), 'context')
      await rejectsWithoutWriting(
        () => repository.saveProfile(profile(), { context: { request_id: 'r', callback() {} } }),
        'context.callback',
      )
      await rejectsWithoutWriting(
        () => repository.saveProfile(profile(), { context: { request_id: 'r', nested: { at: 'x\u0000' } } }),
        'context.nested.at',
      )
      await rejectsWithoutWriting(() => repository.deleteProfile(existingId, { context: 'req-2' }), 'context')
      await expectStoreError(() => repository.loadProfile(existingId, { context: { n: 10n } }), {
        code: 'validation_error',
        field: 'context.n',
      })
    })

    for (const revision of [0, -1, 'x', 1.5, undefined]) {
      test(`loadProfileRevision rejects revision ${String(revision)}`, async () => {
        await expectStoreError(() => repository.loadProfileRevision(existingId, revision), {
          code: 'validation_error',
          field: 'revision',
        })
      })
    }
  })
}
