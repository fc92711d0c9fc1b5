// History in every mode: diffRevisions (an RFC 6902 patch that an independent
// implementation, fast-json-patch, applies to get the newer snapshot, for
// random documents), loadProfile({ asOf }) and listAuditEntries({ since,
// until }) over backdated audit rows, revertProfile (also racing saves),
// saveProfile({ merge: 'disjoint-paths' }) (20 concurrent writers); bad input
// rejects with validation_error and changes nothing; one event per call.

import assert from 'node:assert/strict'
import { describe, test } from 'node:test'

import fc from 'fast-check'
import jsonPatch from 'fast-json-patch'

import { createPostgresProfileStoreArtifacts } from '../index.mjs'
import { MODES, useDatabase } from './helpers/database.mjs'
import { buildProfile, expectStoreError, failIfUnfinished, settle, uniqueId } from './helpers/profiles.mjs'

failIfUnfinished(import.meta.url)
const db = await useDatabase({ schemaPrefix: 'hist' })
const { profileAudit } = createPostgresProfileStoreArtifacts({ schema: db.schema }).tables

const HOUR = 3600_000
// Audit rows are backdated to fixed instants, so windows are exact.
const BASE = Date.parse('2026-01-01T00:00:00.000Z')
const at = (hours) => new Date(BASE + hours * HOUR)

async function setRecordedAt(profileId, revision, instant) {
  await db.sql(`update ${profileAudit} set recorded_at = $3 where profile_id = $1 and revision = $2`, [
    profileId,
    revision,
    instant,
  ])
}

async function auditRows(profileId) {
  const { rows } = await db.sql(
    `select revision, previous_revision, reverted_from, context, document from ${profileAudit}
      where profile_id = $1 order by revision`,
    [profileId],
  )
  return rows
}

// The audit chain of a profile has every revision once, each linked to the one before.
function assertChain(rows, count) {
  assert.deepEqual(
    rows.map((row) => [row.revision, row.previous_revision]),
    Array.from({ length: count }, (_, i) => [i + 1, i === 0 ? null : i]),
  )
}

// Where `text` occurs in any column of any table of this file's schema (each
// row as text: every text, jsonb and array column at once).
async function tablesHolding(text) {
  const { rows: tables } = await db.sql(
    `select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where n.nspname = $1 and c.relkind in ('r', 'p') order by c.relname`,
    [db.schema],
  )
  assert.ok(tables.length >= 3, 'the tables are found')
  const found = {}
  for (const { relname } of tables) {
    const { rows } = await db.sql(
      `select count(*)::int as n from "${db.schema}"."${relname}" t where strpos(t::text, $1) > 0`,
      [text],
    )
    if (rows[0].n > 0) found[relname] = rows[0].n
  }
  return found
}

const withoutRevision = (document) => ({ ...document, metadata: { ...document.metadata, revision: 0 } })

async function saveRevisions(repository, profileId, count, userId = 'hist-user') {
  const saved = []
  for (let i = 1; i <= count; i++) {
    saved.push(await repository.saveProfile(buildProfile({ profileId, userId, sourceCount: i, note: `note ${i}` })))
  }
  return saved
}

// Random JSON with keys from a small alphabet, so that two documents share
// keys and their patch mixes add, remove and replace at every depth.
const key = fc.constantFrom('a', 'b', 'c', 'd', 'e~1', 'f/g', '')
const leaf = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  fc.integer({ min: -1e6, max: 1e6 }),
  fc.double({ noNaN: true, noDefaultInfinity: true }).filter((x) => !Object.is(x, -0)),
  fc.string({ maxLength: 8 }),
)
const { value: jsonValue } = fc.letrec((tie) => ({
  value: fc.oneof({ depthSize: 'small', withCrossShrink: true }, leaf, tie('array'), tie('object')),
  array: fc.array(tie('value'), { maxLength: 4 }),
  object: fc.dictionary(key, tie('value'), { maxKeys: 5 }),
}))
const content = fc.dictionary(key, jsonValue, { maxKeys: 6 })

for (const mode of MODES) {
  describe(`history (${mode})`, () => {
    const { repository, events } = db.observedRepository(mode)

    describe('diffRevisions', () => {
      test('the patch turns one snapshot into the other, both ways; the same revision gives []', async () => {
        const id = uniqueId(`${mode}-diff`)
        const first = buildProfile({ profileId: id, userId: 'hist-user' })
        await repository.saveProfile(first)
        const second = structuredClone(first)
        second.layers.observed['core.timezone'].value = 'Europe/Paris'
        second.layers.observed['career.role'] = { value: 'engineer', confidence: 0.9 }
        delete second.layers.simulated
        second.domains.active.push('social')
        await repository.saveProfile(second)

        const [from, to] = [await repository.loadProfileRevision(id, 1), await repository.loadProfileRevision(id, 2)]
        const patch = await repository.diffRevisions(id, 1, 2, { context: { request_id: 'diff-1' } })
        assert.deepEqual(jsonPatch.applyPatch(structuredClone(from), patch, true, false).newDocument, to)
        assert.ok(patch.some((op) => op.op === 'remove' && op.path === '/layers/simulated'))
        assert.ok(patch.some((op) => op.op === 'replace' && op.path === '/metadata/revision' && op.value === 2))
        assert.ok(patch.some((op) => op.op === 'add' && op.path === '/layers/observed/career.role'))

        const back = await repository.diffRevisions(id, 2, 1)
        assert.deepEqual(jsonPatch.applyPatch(structuredClone(to), back, true, false).newDocument, from)
        assert.deepEqual(await repository.diffRevisions(id, 2, 2), [])

        assert.deepEqual(
          events.map((event) => [event.operation, event.rowCount, event.context]),
          [
            ['saveProfile', 1, undefined],
            ['saveProfile', 1, undefined],
            ['loadProfileRevision', 1, undefined],
            ['loadProfileRevision', 1, undefined],
            ['diffRevisions', 2, { request_id: 'diff-1' }],
            ['diffRevisions', 2, undefined],
            ['diffRevisions', 1, undefined],
          ],
        )
      })

      test('for random documents, applying the patch to `from` gives `to`', async () => {
        const id = uniqueId(`${mode}-prop`)
        const userId = 'hist-prop'
        let revision = 0
        await fc.assert(
          fc.asyncProperty(content, content, async (a, b) => {
            const base = { profile_id: id, user_id: userId }
            await repository.saveProfile({ ...a, ...base })
            await repository.saveProfile({ ...b, ...base })
            revision += 2
            const from = await repository.loadProfileRevision(id, revision - 1)
            const to = await repository.loadProfileRevision(id, revision)
            const patch = await repository.diffRevisions(id, revision - 1, revision)
            const errors = jsonPatch.validate(patch, structuredClone(from))
            assert.equal(errors, undefined, `the patch is valid RFC 6902 for from: ${errors?.message}`)
            assert.deepEqual(jsonPatch.applyPatch(structuredClone(from), patch, true, false).newDocument, to)
          }),
          { numRuns: 40 },
        )
      })

      test('a revision that is not in the log is revision_not_found; bad arguments change nothing', async () => {
        const id = uniqueId(`${mode}-diff-missing`)
        await saveRevisions(repository, id, 2)
        for (const [from, to] of [
          [1, 3],
          [7, 2],
        ]) {
          await expectStoreError(repository.diffRevisions(id, from, to), {
            code: 'not_found',
            storeCode: 'revision_not_found',
          })
        }
        await expectStoreError(repository.diffRevisions(uniqueId('nobody'), 1, 2), {
          code: 'not_found',
          storeCode: 'revision_not_found',
        })
        const before = await db.snapshot()
        for (const [args, field] of [
          [['', 1, 2], 'profileId'],
          [[id, 0, 2], 'fromRevision'],
          [[id, 1, '2'], 'toRevision'],
          [[id, 1.5, 2], 'fromRevision'],
          [[id, 1, 2, { context: 'x' }], 'context'],
        ]) {
          await expectStoreError(repository.diffRevisions(...args), { code: 'validation_error', field })
        }
        assert.deepEqual(await db.snapshot(), before)
        assert.ok(events.some((event) => event.operation === 'diffRevisions' && event.error?.code === 'not_found'))
      })
    })

    describe('loadProfile({ asOf })', () => {
      test('gives the snapshot current at the instant; not_found before the first revision', async () => {
        const id = uniqueId(`${mode}-asof`)
        await saveRevisions(repository, id, 4)
        for (const revision of [1, 2, 3, 4]) await setRecordedAt(id, revision, at(revision * 10))

        const revisionAt = async (asOf) => (await repository.loadProfile(id, { asOf })).metadata.revision
        assert.equal(await revisionAt(at(10)), 1, 'the instant of a save itself')
        assert.equal(await revisionAt(at(15)), 1)
        assert.equal(await revisionAt(at(29.99).toISOString()), 2)
        assert.equal(await revisionAt('2026-01-02T06:00:00+02:00'), 2, 'an offset: 04:00Z is hour 28')
        assert.equal(await revisionAt(at(40)), 4)
        assert.equal(await revisionAt(new Date(Date.now() + HOUR)), 4, 'the future: the newest revision')
        const snapshot = await repository.loadProfile(id, { asOf: at(25) })
        assert.deepEqual(snapshot, await repository.loadProfileRevision(id, 2))

        for (const asOf of [at(9.5), '1999-12-31T23:59:59Z']) {
          await expectStoreError(repository.loadProfile(id, { asOf }), {
            code: 'not_found',
            storeCode: 'profile_not_found',
          })
        }
        await expectStoreError(repository.loadProfile(uniqueId('nobody'), { asOf: new Date() }), {
          code: 'not_found',
          storeCode: 'profile_not_found',
        })
        // Without asOf: the stored document, as always.
        assert.equal((await repository.loadProfile(id)).metadata.revision, 4)
      })

      test('rows recorded out of revision order: the newest recorded wins', async () => {
        const id = uniqueId(`${mode}-asof-order`)
        await saveRevisions(repository, id, 3)
        await setRecordedAt(id, 1, at(10))
        await setRecordedAt(id, 2, at(30))
        await setRecordedAt(id, 3, at(20))
        assert.equal((await repository.loadProfile(id, { asOf: at(25) })).metadata.revision, 3)
        assert.equal((await repository.loadProfile(id, { asOf: at(35) })).metadata.revision, 2)
      })

      test('a bad asOf is validation_error and changes nothing', async () => {
        const id = uniqueId(`${mode}-asof-bad`)
        await saveRevisions(repository, id, 1)
        const before = await db.snapshot()
        assert.equal((await repository.loadProfile(id, { asOf: null })).metadata.revision, 1, 'null: no asOf')
        for (const asOf of ['yesterday', '2026-01-31T00:00:00', new Date(Number.NaN), 1234, '2026-02-30T00:00:00Z']) {
          await expectStoreError(repository.loadProfile(id, { asOf }), { code: 'validation_error', field: 'asOf' })
        }
        assert.deepEqual(await db.snapshot(), before)
        assert.deepEqual(
          events.filter((event) => event.error).map((event) => [event.operation, event.error.code]),
          Array(5).fill(['loadProfile', 'validation_error']),
        )
      })
    })

    describe('listAuditEntries({ since, until })', () => {
      test('keeps the entries recorded in [since, until), pages through them with the cursor', async () => {
        const id = uniqueId(`${mode}-window`)
        await saveRevisions(repository, id, 10)
        for (let revision = 1; revision <= 10; revision++) await setRecordedAt(id, revision, at(revision))
        // One row recorded out of order: revision 9 before revision 2's time.
        await setRecordedAt(id, 9, at(1.5))

        const revisions = async (options) => {
          const out = []
          let cursor = null
          do {
            const page = await repository.listAuditEntries(id, { ...options, limit: 2, cursor })
            out.push(...page.entries.map((entry) => entry.revision))
            cursor = page.nextCursor
          } while (cursor !== null)
          return out
        }
        assert.deepEqual(await revisions({ since: at(5) }), [10, 8, 7, 6, 5])
        assert.deepEqual(await revisions({ until: at(3) }), [9, 2, 1])
        assert.deepEqual(await revisions({ since: at(1.5), until: at(4).toISOString() }), [9, 3, 2])
        assert.deepEqual(await revisions({ since: at(100) }), [])
        assert.deepEqual(await revisions({ since: at(4), until: at(4) }), [])
        assert.deepEqual(await revisions({}), [10, 9, 8, 7, 6, 5, 4, 3, 2, 1])
        const { entries } = await repository.listAuditEntries(id, { since: at(7), until: at(8) })
        assert.deepEqual(
          entries.map((entry) => [entry.revision, entry.recorded_at]),
          [[7, at(7).toISOString()]],
        )
      })

      test('a bad since or until is validation_error and changes nothing', async () => {
        const id = uniqueId(`${mode}-window-bad`)
        await saveRevisions(repository, id, 1)
        const before = await db.snapshot()
        for (const [options, field] of [
          [{ since: 'last week' }, 'since'],
          [{ until: 5 }, 'until'],
          [{ since: new Date(Number.NaN) }, 'since'],
          [{ until: '2026-13-01T00:00:00Z' }, 'until'],
        ]) {
          await expectStoreError(repository.listAuditEntries(id, options), { code: 'validation_error', field })
        }
        assert.deepEqual(await db.snapshot(), before)
      })
    })

    describe('revertProfile', () => {
      test('saves the snapshot again as a new revision; the audit row records reverted_from and the context', async () => {
        const id = uniqueId(`${mode}-revert`)
        await saveRevisions(repository, id, 3)
        const first = await repository.loadProfileRevision(id, 1)
        const reverted = await repository.revertProfile(id, 1, { context: { request_id: 'undo-agent-7' } })
        assert.equal(reverted.metadata.revision, 4)
        assert.deepEqual(withoutRevision(reverted), withoutRevision(first))
        assert.deepEqual(await repository.loadProfile(id), reverted)
        assert.deepEqual(await repository.diffRevisions(id, 1, 4), [
          { op: 'replace', path: '/metadata/revision', value: 4 },
        ])
        const { entries } = await repository.listAuditEntries(id)
        assert.deepEqual(
          entries.map((entry) => [entry.revision, entry.previous_revision, entry.reverted_from, entry.context]),
          [
            [4, 3, 1, { request_id: 'undo-agent-7' }],
            [3, 2, null, {}],
            [2, 1, null, {}],
            [1, null, null, {}],
          ],
        )
        assert.deepEqual(entries[0].changed_top_level_paths, ['cognitive_model', 'metadata'])
        // With the expected revision; reverting to the current revision still adds one.
        assert.equal((await repository.revertProfile(id, 4, { expectedRevision: 4 })).metadata.revision, 5)
        assert.equal(events.filter((event) => event.operation === 'revertProfile').length, 2)
      })

      test('a snapshot written again over a revert row (the 0.2.2 path) is no longer marked as a revert', async () => {
        const id = uniqueId(`${mode}-revert-rewrite`)
        await saveRevisions(repository, id, 2)
        const reverted = await repository.revertProfile(id, 1)
        await repository.writeProfileRevision({ ...reverted, cognitive_model: { note: 'rewritten' } })
        const [entry] = (await repository.listAuditEntries(id, { limit: 1 })).entries
        assert.deepEqual([entry.revision, entry.reverted_from], [3, null])
      })

      test('conflict, not_found and bad input write nothing', async () => {
        const id = uniqueId(`${mode}-revert-bad`)
        await saveRevisions(repository, id, 2)
        const before = await db.snapshot()
        await expectStoreError(repository.revertProfile(id, 1, { expectedRevision: 1 }), { code: 'conflict' })
        await expectStoreError(repository.revertProfile(id, 3), { code: 'not_found', storeCode: 'revision_not_found' })
        await expectStoreError(repository.revertProfile(uniqueId('nobody'), 1), {
          code: 'not_found',
          storeCode: 'profile_not_found',
        })
        for (const [args, field] of [
          [[id, 0], 'revision'],
          [[id, '1'], 'revision'],
          [[id, 1, { expectedRevision: -1 }], 'expectedRevision'],
          [[id, 1, { context: [] }], 'context'],
          [[null, 1], 'profileId'],
        ]) {
          await expectStoreError(repository.revertProfile(...args), { code: 'validation_error', field })
        }
        assert.deepEqual(await db.snapshot(), before)
      })

      test('a revert racing saves: every revision once, the revert row holds the old snapshot', async () => {
        const id = uniqueId(`${mode}-revert-race`)
        await saveRevisions(repository, id, 2)
        const first = await repository.loadProfileRevision(id, 1)
        const calls = []
        for (let i = 0; i < 6; i++) {
          calls.push(repository.saveProfile(buildProfile({ profileId: id, userId: 'hist-user', note: `racer ${i}` })))
          calls.push(repository.revertProfile(id, 1, { context: { racer: i } }))
        }
        const { fulfilled, rejected } = await settle(calls)
        assert.deepEqual(rejected, [])
        assert.deepEqual(fulfilled.map((doc) => doc.metadata.revision).sort((a, b) => a - b), [...Array(12)].map((_, i) => i + 3))
        const rows = await auditRows(id)
        assertChain(rows, 14)
        const reverts = rows.filter((row) => row.reverted_from !== null)
        assert.equal(reverts.length, 6)
        for (const row of reverts) {
          assert.equal(row.reverted_from, 1)
          assert.deepEqual(withoutRevision(row.document), withoutRevision(first))
        }
        // With expected revisions, one of a save and a revert at the same revision wins.
        const current = (await repository.loadProfile(id)).metadata.revision
        const race = await settle([
          repository.saveProfile(buildProfile({ profileId: id, userId: 'hist-user' }), { expectedRevision: current }),
          repository.revertProfile(id, 2, { expectedRevision: current }),
        ])
        assert.equal(race.fulfilled.length, 1)
        assert.deepEqual(race.rejected.map((error) => error.code), ['conflict'])
      })
    })

    describe("saveProfile({ merge: 'disjoint-paths' })", () => {
      const fact = (value) => ({ value, confidence: 0.9, source: 'agent' })

      test('changes to other paths since expectedRevision are kept: one new revision with both', async () => {
        const id = uniqueId(`${mode}-merge`)
        const [base] = await saveRevisions(repository, id, 1)
        const a = structuredClone(base)
        a.layers.observed['career.role'] = fact('engineer')
        a.metadata.source_count += 1
        a.metadata.updated_at = '2026-03-03T00:00:00.000Z'
        await repository.saveProfile(a, { expectedRevision: 1 })
        const b = structuredClone(base)
        b.layers.observed['core.timezone'].value = 'Europe/Paris'
        delete b.layers.simulated
        b.metadata.source_count += 2
        b.metadata.updated_at = '2026-03-02T12:00:00.000Z'
        const merged = await repository.saveProfile(b, {
          expectedRevision: 1,
          merge: 'disjoint-paths',
          context: { agent: 'b' },
        })
        assert.equal(merged.metadata.revision, 3)
        assert.deepEqual(merged.layers.observed['career.role'], fact('engineer'))
        assert.equal(merged.layers.observed['core.timezone'].value, 'Europe/Paris')
        assert.equal(merged.layers.simulated, undefined)
        assert.equal(merged.metadata.source_count, base.metadata.source_count + 3, 'both increments')
        assert.equal(merged.metadata.updated_at, '2026-03-03T00:00:00.000Z', 'the later instant')
        assert.deepEqual(await repository.loadProfile(id), merged)
        const { entries } = await repository.listAuditEntries(id, { limit: 1 })
        assert.deepEqual([entries[0].revision, entries[0].context], [3, { agent: 'b' }])
        // Without a conflict, merge is a plain save.
        const plain = await repository.saveProfile(merged, { expectedRevision: 3, merge: 'disjoint-paths' })
        assert.equal(plain.metadata.revision, 4)
      })

      test('overlapping paths are a conflict naming them; nothing is written', async () => {
        const id = uniqueId(`${mode}-merge-overlap`)
        const [base] = await saveRevisions(repository, id, 1)
        const a = structuredClone(base)
        a.layers.observed['core.timezone'].value = 'Asia/Tokyo'
        a.domains.active = ['core']
        await repository.saveProfile(a)
        const b = structuredClone(base)
        b.layers.observed['core.timezone'].confidence = 0.5
        b.layers.observed['core.timezone'].value = 'Europe/Paris'
        b.domains.active.push('x')
        b.layers.observed['new.fact'] = fact(1)
        const before = await db.snapshot()
        const error = await expectStoreError(repository.saveProfile(b, { expectedRevision: 1, merge: 'disjoint-paths' }), {
          code: 'conflict',
        })
        assert.deepEqual(error.paths, ['/domains/active', '/layers/observed/core.timezone/value'])
        // A whole subtree one side removed overlaps every change under it.
        const c = structuredClone(base)
        delete c.layers.observed
        const removed = await expectStoreError(
          repository.saveProfile(c, { expectedRevision: 1, merge: 'disjoint-paths' }),
          { code: 'conflict' },
        )
        assert.deepEqual(removed.paths, ['/layers/observed'])
        assert.deepEqual(await db.snapshot(), before)
        assert.ok(events.some((event) => event.operation === 'saveProfile' && event.error?.code === 'conflict'))
      })

      test('20 concurrent writers on disjoint domains all succeed with nothing lost', async () => {
        const id = uniqueId(`${mode}-merge-20`)
        const [base] = await saveRevisions(repository, id, 1)
        const writers = Array.from({ length: 20 }, (_, i) => {
          const doc = structuredClone(base)
          doc.layers.observed[`domain${i}.fact`] = fact(i)
          doc.metadata.source_count += 1
          doc.metadata.updated_at = new Date(Date.UTC(2026, 3, 1, 0, i)).toISOString()
          return repository.saveProfile(doc, { expectedRevision: 1, merge: 'disjoint-paths', context: { writer: i } })
        })
        const { fulfilled, rejected } = await settle(writers)
        assert.deepEqual(rejected, [])
        assert.deepEqual(fulfilled.map((doc) => doc.metadata.revision).sort((a, b) => a - b), [...Array(20)].map((_, i) => i + 2))
        const stored = await repository.loadProfile(id)
        assert.equal(stored.metadata.revision, 21)
        for (let i = 0; i < 20; i++) assert.deepEqual(stored.layers.observed[`domain${i}.fact`], fact(i), `writer ${i}`)
        assert.equal(stored.metadata.source_count, base.metadata.source_count + 20)
        assert.equal(stored.metadata.updated_at, '2026-04-01T00:19:00.000Z')
        const rows = await auditRows(id)
        assertChain(rows, 21)
        assert.deepEqual(rows.slice(1).map((row) => row.context.writer).sort((a, b) => a - b), [...Array(20).keys()])
      })

      test('concurrent writers of one path: one wins, the others get conflict naming it', async () => {
        const id = uniqueId(`${mode}-merge-same`)
        const [base] = await saveRevisions(repository, id, 1)
        const writers = Array.from({ length: 5 }, (_, i) => {
          const doc = structuredClone(base)
          doc.layers.observed['core.timezone'].value = `Zone/${i}`
          doc.layers.observed[`own${i}.fact`] = fact(i)
          return repository.saveProfile(doc, { expectedRevision: 1, merge: 'disjoint-paths' })
        })
        const { fulfilled, rejected } = await settle(writers)
        assert.equal(fulfilled.length, 1)
        assert.equal(rejected.length, 4)
        for (const error of rejected) {
          assert.equal(error.code, 'conflict')
          assert.deepEqual(error.paths, ['/layers/observed/core.timezone/value'])
        }
        const stored = await repository.loadProfile(id)
        assert.equal(stored.metadata.revision, 2)
        assert.deepEqual(withoutRevision(stored), withoutRevision(fulfilled[0]))
      })

      test('a merge from a revision before an erasure cannot bring the erased value back', async () => {
        const id = uniqueId(`${mode}-merge-erased`)
        const base = buildProfile({ profileId: id, userId: 'hist-user' })
        base.layers.observed['core.email'] = fact('erased@example.com')
        await repository.saveProfile(base)
        // An agent read revision 1 (with the value); the value is erased meanwhile.
        const stale = await repository.loadProfile(id)
        await repository.eraseFromHistory(id, '/layers/observed/core.email')
        stale.layers.observed['career.role'] = fact('engineer')
        const before = await db.snapshot()
        const error = await expectStoreError(
          repository.saveProfile(stale, { expectedRevision: 1, merge: 'disjoint-paths' }),
          { code: 'conflict' },
        )
        assert.deepEqual(error.paths, ['/layers/observed/core.email'])
        assert.deepEqual(await db.snapshot(), before)
        assert.deepEqual(await tablesHolding('erased@example.com'), {})
        // Without the erased value, the same change merges.
        delete stale.layers.observed['core.email']
        const merged = await repository.saveProfile(stale, { expectedRevision: 1, merge: 'disjoint-paths' })
        assert.deepEqual([merged.metadata.revision, merged.layers.observed['career.role']], [3, fact('engineer')])
      })

      test('bad merge options are validation_error; a base no longer in the log is a conflict', async () => {
        const id = uniqueId(`${mode}-merge-bad`)
        const [base] = await saveRevisions(repository, id, 3)
        const before = await db.snapshot()
        await expectStoreError(repository.saveProfile(base, { expectedRevision: 1, merge: 'theirs' }), {
          code: 'validation_error',
          field: 'merge',
        })
        await expectStoreError(repository.saveProfile(base, { merge: 'disjoint-paths' }), {
          code: 'validation_error',
          field: 'expectedRevision',
        })
        await expectStoreError(repository.saveProfile(base, { expectedRevision: 0, merge: 'disjoint-paths' }), {
          code: 'conflict',
        })
        assert.deepEqual(await db.snapshot(), before)
        await repository.pruneAuditEntries({ keepLast: 1, profileId: id })
        const pruned = await db.snapshot()
        const error = await expectStoreError(repository.saveProfile(base, { expectedRevision: 1, merge: 'disjoint-paths' }), {
          code: 'conflict',
        })
        assert.equal(error.paths, undefined)
        assert.deepEqual(await db.snapshot(), pruned)
      })
    })

    describe('blameProfile', () => {
      const blameMap = (entries) => Object.fromEntries(entries.map((entry) => [entry.path, entry.revision]))

      test('each path down to depth: the revision, time and context of the save that last changed it', async () => {
        const id = uniqueId(`${mode}-blame`)
        const [base] = await saveRevisions(repository, id, 1)
        const doc = structuredClone(base)
        doc.layers.observed['core.timezone'].value = 'Europe/Paris'
        await repository.saveProfile(doc, { context: { agent: 'a' } })
        doc.cognitive_model.note = 'likes diagrams'
        await repository.saveProfile(doc, { context: { agent: 'b' } })
        doc.knowledge_graph.nodes.push({ id: 'n9', type: 'skill', label: 'rust' })
        await repository.saveProfile(doc, { context: { agent: 'c' } })
        await setRecordedAt(id, 2, at(2))

        const top = await repository.blameProfile(id, { context: { request_id: 'why' } })
        assert.deepEqual(top.map((entry) => entry.path).sort(), Object.keys(base).map((key) => `/${key}`).sort())
        assert.deepEqual(blameMap(top), {
          '/pson_version': 1,
          '/profile_id': 1,
          '/user_id': 1,
          '/tenant_id': 1,
          '/consent': 1,
          '/domains': 1,
          '/layers': 2,
          '/cognitive_model': 3,
          '/behavioral_model': 1,
          '/state_model': 1,
          '/knowledge_graph': 4,
          '/simulation_profiles': 1,
          '/privacy': 1,
          '/metadata': 4,
        })
        const layers = top.find((entry) => entry.path === '/layers')
        assert.deepEqual(layers, { path: '/layers', revision: 2, recorded_at: at(2).toISOString(), context: { agent: 'a' } })
        assert.deepEqual(top.find((entry) => entry.path === '/profile_id').context, {})

        const deeper = blameMap(await repository.blameProfile(id, { depth: 3 }))
        assert.equal(deeper['/layers/observed/core.timezone'], 2)
        assert.equal(deeper['/layers/observed/core.preferred_language'], 1)
        assert.equal(deeper['/layers/inferred/core.communication_style'], 1)
        assert.equal(deeper['/cognitive_model/note'], 3)
        assert.equal(deeper['/cognitive_model/thinking_style/analytical'], 1)
        assert.equal(deeper['/knowledge_graph/nodes'], 4, 'an array is one value')
        assert.equal(deeper['/metadata/revision'], 4)
        assert.equal(deeper['/metadata/created_at'], 1)
        assert.equal(deeper['/pson_version'], 1, 'a value above depth ends its path')
        assert.deepEqual(
          events.filter((event) => event.operation === 'blameProfile').map((event) => [event.rowCount, event.context]),
          [
            [4, { request_id: 'why' }],
            [4, undefined],
          ],
        )
      })

      test('walks back page after page; a removed and re-added value counts as changed when re-added', async () => {
        const id = uniqueId(`${mode}-blame-long`)
        const [base] = await saveRevisions(repository, id, 1)
        const doc = structuredClone(base)
        doc.layers.observed['core.timezone'].value = 'Asia/Tokyo'
        await repository.saveProfile(doc) // 2
        delete doc.privacy
        await repository.saveProfile(doc) // 3
        doc.privacy = base.privacy
        await repository.saveProfile(doc) // 4
        for (let i = 0; i < 40; i++) {
          doc.state_model.states[0].likelihood = i / 100
          await repository.saveProfile(doc)
        }
        const blame = blameMap(await repository.blameProfile(id, { depth: 2 }))
        assert.equal(blame['/layers/observed'], 2)
        assert.equal(blame['/privacy/encryption'], 4)
        assert.equal(blame['/state_model/states'], 44)
        assert.equal(blame['/consent/scopes'], 1)
      })

      test('in a pruned history, what did not change since the oldest kept row is placed there', async () => {
        const id = uniqueId(`${mode}-blame-pruned`)
        const [base] = await saveRevisions(repository, id, 1)
        const doc = structuredClone(base)
        for (let i = 0; i < 4; i++) {
          doc.cognitive_model.note = `note ${i}`
          await repository.saveProfile(doc)
        }
        await repository.pruneAuditEntries({ keepLast: 2, profileId: id })
        const blame = blameMap(await repository.blameProfile(id))
        assert.equal(blame['/cognitive_model'], 5)
        assert.equal(blame['/consent'], 4, 'the oldest kept revision')
      })

      test('not_found without revisions; a bad depth is validation_error and changes nothing', async () => {
        await expectStoreError(repository.blameProfile(uniqueId('nobody')), {
          code: 'not_found',
          storeCode: 'profile_not_found',
        })
        const id = uniqueId(`${mode}-blame-bad`)
        await saveRevisions(repository, id, 1)
        const before = await db.snapshot()
        for (const depth of [0, 1.5, '2', 101, -1]) {
          await expectStoreError(repository.blameProfile(id, { depth }), { code: 'validation_error', field: 'depth' })
        }
        await expectStoreError(repository.blameProfile(42), { code: 'validation_error', field: 'profileId' })
        assert.deepEqual(await db.snapshot(), before)
      })
    })

    describe('eraseFromHistory and deleteProfilesByUserId', () => {
      const secretProfile = (profileId, secret, userId = 'hist-erase-user') => {
        const profile = buildProfile({ profileId, userId })
        profile.layers.observed['core.email'] = { value: secret, confidence: 1, source: 'user' }
        return profile
      }

      test('removes the path from the document and every snapshot; one audit entry records path, time and context, never the value', async () => {
        const id = uniqueId(`${mode}-erase`)
        const secret = `${uniqueId('ada')}@example.com`
        const other = uniqueId(`${mode}-erase-other`)
        const otherSecret = `${uniqueId('bob')}@example.com`
        const doc = secretProfile(id, secret)
        await repository.saveProfile(doc)
        doc.cognitive_model.note = 'second'
        await repository.saveProfile(doc)
        delete doc.layers.observed['core.email']
        await repository.saveProfile(doc)
        doc.layers.observed['core.email'] = { value: secret, confidence: 0.5, source: 'agent' }
        await repository.saveProfile(doc)
        await repository.saveProfile(secretProfile(other, otherSecret))
        assert.ok(Object.keys(await tablesHolding(secret)).length > 0, 'the value is stored before')

        const erased = await repository.eraseFromHistory(id, '/layers/observed/core.email', {
          context: { request_id: 'gdpr-42', operator: 'dpo' },
        })
        assert.deepEqual(erased, { revision: 5, erasedSnapshots: 3, erasedFromCurrent: true })
        assert.deepEqual(await tablesHolding(secret), {}, 'the value is nowhere in any table')
        assert.ok(Object.keys(await tablesHolding(otherSecret)).length > 0, "other profiles' data stays")

        const current = await repository.loadProfile(id)
        assert.equal(current.metadata.revision, 5)
        assert.equal(current.layers.observed['core.email'], undefined)
        assert.equal(current.cognitive_model.note, 'second')
        for (let revision = 1; revision <= 5; revision++) {
          const snapshot = await repository.loadProfileRevision(id, revision)
          assert.equal(snapshot.layers.observed['core.email'], undefined, `revision ${revision}`)
          assert.equal(snapshot.layers.observed['core.timezone'].value, 'Europe/Lisbon', 'the rest stays')
        }
        assert.deepEqual(await repository.diffRevisions(id, 4, 5), [
          { op: 'replace', path: '/metadata/revision', value: 5 },
        ])
        const { entries } = await repository.listAuditEntries(id, { limit: 2 })
        assert.deepEqual(
          entries.map((entry) => [entry.revision, entry.previous_revision, entry.erased_path, entry.context]),
          [
            [5, 4, '/layers/observed/core.email', { request_id: 'gdpr-42', operator: 'dpo' }],
            [4, 3, null, {}],
          ],
        )
        assert.deepEqual(entries[0].changed_top_level_paths, ['layers', 'metadata'])
        assert.equal(typeof entries[0].recorded_at, 'string')
        assertChain(await auditRows(id), 5)
        const event = events.find((e) => e.operation === 'eraseFromHistory')
        assert.deepEqual([event.rowCount, event.context], [4, { request_id: 'gdpr-42', operator: 'dpo' }])
        assert.ok(!JSON.stringify(events).includes(secret), 'events never carry the value')

        // A path that is nowhere still records the erasure.
        assert.deepEqual(await repository.eraseFromHistory(id, '/layers/observed/core.email'), {
          revision: 6,
          erasedSnapshots: 0,
          erasedFromCurrent: false,
        })
        assert.equal((await repository.saveProfile(current)).metadata.revision, 7, 'saves carry on')
      })

      test('pointers with escapes and array positions; the domain index follows /domains/active', async () => {
        const id = uniqueId(`${mode}-erase-escape`)
        const doc = buildProfile({ profileId: id, userId: 'hist-erase-user', domains: ['core', 'health'] })
        doc.layers.observed['a/b~c'] = { value: 'slash-tilde-secret' }
        await repository.saveProfile(doc)
        await repository.eraseFromHistory(id, '/layers/observed/a~1b~0c')
        assert.deepEqual(await tablesHolding('slash-tilde-secret'), {})
        await repository.eraseFromHistory(id, '/domains/active/1')
        const { rows } = await db.sql(
          `select active_domains from ${createPostgresProfileStoreArtifacts({ schema: db.schema }).tables.domainIndex}
            where profile_id = $1`,
          [id],
        )
        assert.deepEqual(rows[0].active_domains, ['core'])
        assert.deepEqual((await repository.loadProfileRevision(id, 1)).domains.active, ['core'])
      })

      test('bad input is validation_error and changes nothing; a missing profile is not_found', async () => {
        const id = uniqueId(`${mode}-erase-bad`)
        await repository.saveProfile(secretProfile(id, 'x@example.com'))
        const before = await db.snapshot()
        for (const pointer of [
          '',
          'layers/observed',
          '/profile_id',
          '/user_id',
          '/tenant_id',
          '/metadata/revision',
          '/metadata',
          '/pson_version',
          '/layers/a~2b',
          '/layers/a~',
          '/layers/\u0000',
          '/layers/\ud800',
          42,
          null,
        ]) {
          await expectStoreError(repository.eraseFromHistory(id, pointer), {
            code: 'validation_error',
            field: 'jsonPointer',
          })
        }
        await expectStoreError(repository.eraseFromHistory(id, '/layers', { context: 'x' }), {
          code: 'validation_error',
          field: 'context',
        })
        await expectStoreError(repository.eraseFromHistory('', '/layers'), { code: 'validation_error', field: 'profileId' })
        await expectStoreError(repository.deleteProfilesByUserId(''), { code: 'validation_error', field: 'userId' })
        await expectStoreError(repository.deleteProfilesByUserId('u', { context: [] }), {
          code: 'validation_error',
          field: 'context',
        })
        await expectStoreError(repository.eraseFromHistory(uniqueId('nobody'), '/layers'), {
          code: 'not_found',
          storeCode: 'profile_not_found',
        })
        assert.deepEqual(await db.snapshot(), before)
      })

      test('an erase racing saves: no snapshot up to the erasure keeps the value; later saves are theirs', async () => {
        const id = uniqueId(`${mode}-erase-race`)
        const secret = `${uniqueId('race')}@example.com`
        const carrier = secretProfile(id, secret)
        await repository.saveProfile(carrier)
        const calls = []
        for (let i = 0; i < 8; i++) {
          const doc = structuredClone(carrier)
          doc.cognitive_model.note = `racer ${i}`
          calls.push(repository.saveProfile(doc))
          if (i === 3) calls.push(repository.eraseFromHistory(id, '/layers/observed/core.email'))
        }
        const { fulfilled, rejected } = await settle(calls)
        assert.deepEqual(rejected, [])
        const erasedAt = fulfilled.find((value) => value.erasedSnapshots !== undefined).revision
        const rows = await auditRows(id)
        assertChain(rows, 10)
        for (const row of rows) {
          const holds = JSON.stringify(row.document).includes(secret)
          if (row.revision <= erasedAt) assert.equal(holds, false, `revision ${row.revision} (erased at ${erasedAt})`)
          else assert.equal(holds, true, `revision ${row.revision} was saved after the erasure, with the value`)
        }

        // Saves that do not carry the value, racing an erase: the value is gone everywhere.
        const clean = structuredClone(carrier)
        delete clean.layers.observed['core.email']
        const second = await settle([
          repository.saveProfile(clean),
          repository.eraseFromHistory(id, '/layers/observed/core.email'),
          repository.saveProfile(clean),
        ])
        assert.deepEqual(second.rejected, [])
        assert.deepEqual(await tablesHolding(secret), {})
      })

      test('deleteProfilesByUserId removes every profile of the user with its history and says what it removed', async () => {
        const userId = uniqueId(`${mode}-gone-user`)
        const ids = [uniqueId(`${mode}-gone-c`), uniqueId(`${mode}-gone-a`), uniqueId(`${mode}-gone-b`)]
        for (const id of ids) await saveRevisions(repository, id, 2, userId)
        const keep = uniqueId(`${mode}-kept`)
        await saveRevisions(repository, keep, 2, uniqueId('other-user'))
        const removed = await repository.deleteProfilesByUserId(userId, { context: { request_id: 'gdpr-7' } })
        assert.deepEqual(removed, { profileIds: [...ids].sort(), auditRows: 6 })
        assert.deepEqual(await tablesHolding(userId), {})
        for (const id of ids) assert.equal(await repository.profileExists(id), false)
        assert.deepEqual(await repository.findProfilesByUserId(userId), [])
        assert.equal((await repository.loadProfile(keep)).metadata.revision, 2)
        assert.deepEqual(await repository.deleteProfilesByUserId(userId), { profileIds: [], auditRows: 0 })
        assert.deepEqual(
          events.filter((e) => e.operation === 'deleteProfilesByUserId').map((e) => [e.rowCount, e.context]),
          [
            [3, { request_id: 'gdpr-7' }],
            [0, undefined],
          ],
        )
      })

      test('deleteProfilesByUserId racing saves of its profiles leaves no orphan rows', async () => {
        const userId = uniqueId(`${mode}-race-user`)
        const ids = [uniqueId(`${mode}-race-a`), uniqueId(`${mode}-race-b`)]
        for (const id of ids) await saveRevisions(repository, id, 2, userId)
        const calls = []
        for (let i = 0; i < 4; i++) {
          for (const id of ids) calls.push(repository.saveProfile(buildProfile({ profileId: id, userId })))
          if (i === 1) calls.push(repository.deleteProfilesByUserId(userId))
        }
        const { rejected } = await settle(calls)
        assert.deepEqual(rejected, [])
        for (const id of ids) {
          const rows = await auditRows(id)
          const exists = await repository.profileExists(id)
          if (!exists) {
            assert.deepEqual(rows, [], `${id}: no audit rows without the profile`)
            continue
          }
          // Saved again after the delete: a new life from revision 1.
          const revision = (await repository.loadProfile(id)).metadata.revision
          assertChain(rows, revision)
        }
      })
    })
  })
}
