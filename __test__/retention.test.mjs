// pruneAuditEntries in every mode: what keepLast, olderThan and both remove,
// one profile or all, batches and progress, the chain and listAuditEntries
// cursors after a prune, bad options (nothing removed), abort, events, and
// saves running while a prune walks the same profiles.

import assert from 'node:assert/strict'
import { describe, test } from 'node:test'

import { createPostgresProfileStoreArtifacts } from '../index.mjs'
import { MODES, useDatabase } from './helpers/database.mjs'
import {
  buildProfile,
  expectStoreError,
  failIfUnfinished,
  readAllPages,
  settle,
  uniqueId,
} from './helpers/profiles.mjs'

failIfUnfinished(import.meta.url)
const db = await useDatabase({ schemaPrefix: 'prune' })
const { profiles, profileAudit } = createPostgresProfileStoreArtifacts({ schema: db.schema }).tables

const range = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => from + i)

async function saveTimes(repository, profileId, times, userId = 'prune-user') {
  for (let i = 0; i < times; i++) await repository.saveProfile(buildProfile({ profileId, userId, sourceCount: i }))
}

async function auditRevisions(profileId) {
  const { rows } = await db.sql(`select revision from ${profileAudit} where profile_id = $1 order by revision`, [
    profileId,
  ])
  return rows.map((row) => row.revision)
}

// Backdates the audit rows of these revisions by `days`.
async function backdate(profileId, revisions, days) {
  await db.sql(
    `update ${profileAudit} set recorded_at = now() - make_interval(days => $3) where profile_id = $1 and revision = any ($2)`,
    [profileId, revisions, days],
  )
}

const daysAgo = (days) => new Date(Date.now() - days * 24 * 3600 * 1000)

for (const mode of MODES) {
  describe(`pruneAuditEntries (${mode})`, () => {
    const { repository, events } = db.observedRepository(mode)

    test('keepLast keeps the newest rows of one profile; the chain ends at a pruned revision', async () => {
      const id = uniqueId(`${mode}-keep`)
      const other = uniqueId(`${mode}-keep-other`)
      await saveTimes(repository, id, 12)
      await saveTimes(repository, other, 6)
      const pruned = await repository.pruneAuditEntries({ keepLast: 3, profileId: id })
      assert.deepEqual(pruned, { removedRows: 9, prunedProfiles: 1, batches: 1 })
      assert.deepEqual(await auditRevisions(id), [10, 11, 12])
      assert.deepEqual(await auditRevisions(other), range(1, 6), 'other profiles keep everything')

      const { entries } = await repository.listAuditEntries(id)
      assert.deepEqual(
        entries.map((entry) => [entry.revision, entry.previous_revision]),
        [
          [12, 11],
          [11, 10],
          [10, 9],
        ],
      )
      await expectStoreError(repository.loadProfileRevision(id, 9), {
        code: 'not_found',
        storeCode: 'revision_not_found',
      })
      assert.equal((await repository.loadProfileRevision(id, 10)).metadata.revision, 10)
      assert.equal((await repository.loadProfile(id)).metadata.revision, 12)
      assert.deepEqual(await repository.listProfileRevisions(id), [10, 11, 12])

      // A second run finds nothing more; saves go on from the current revision.
      assert.deepEqual(await repository.pruneAuditEntries({ keepLast: 3, profileId: id }), {
        removedRows: 0,
        prunedProfiles: 0,
        batches: 1,
      })
      assert.equal(
        (await repository.saveProfile(buildProfile({ profileId: id, userId: 'prune-user' }))).metadata.revision,
        13,
      )
      assert.deepEqual(await auditRevisions(id), [10, 11, 12, 13])
    })

    test('olderThan removes the old rows up to the first one recorded since, never the newest', async () => {
      const id = uniqueId(`${mode}-age`)
      await saveTimes(repository, id, 8)
      await backdate(id, [1, 2, 3, 5, 6, 7, 8], 30)
      // Revision 4 is recent: the rows above it stay, old or not, so the kept rows have no gaps.
      assert.deepEqual(await repository.pruneAuditEntries({ olderThan: daysAgo(7), profileId: id }), {
        removedRows: 3,
        prunedProfiles: 1,
        batches: 1,
      })
      assert.deepEqual(await auditRevisions(id), range(4, 8))

      await db.sql(`update ${profileAudit} set recorded_at = now() - interval '30 days' where profile_id = $1`, [id])
      const pruned = await repository.pruneAuditEntries({ olderThan: daysAgo(7).toISOString(), profileId: id })
      assert.equal(pruned.removedRows, 4)
      assert.deepEqual(await auditRevisions(id), [8], 'the newest (current) row stays')
    })

    test('keepLast and olderThan together: a row goes only when both say it is old', async () => {
      const id = uniqueId(`${mode}-both`)
      await saveTimes(repository, id, 10)
      await backdate(id, range(1, 6), 30)
      // Old enough: 1-6; beyond the newest 6: 1-4. Both: 1-4.
      const pruned = await repository.pruneAuditEntries({ keepLast: 6, olderThan: daysAgo(1), profileId: id })
      assert.equal(pruned.removedRows, 4)
      assert.deepEqual(await auditRevisions(id), range(5, 10))
      // Old enough: 5-6; beyond the newest 2: 5-8. Both: 5-6.
      assert.equal(
        (await repository.pruneAuditEntries({ keepLast: 2, olderThan: daysAgo(1), profileId: id })).removedRows,
        2,
      )
      assert.deepEqual(await auditRevisions(id), range(7, 10))
    })

    test("never the current revision's row, even when later snapshots were written ahead", async () => {
      const id = uniqueId(`${mode}-ahead`)
      await saveTimes(repository, id, 3)
      // The 0.2.2 path writes snapshots without moving the current revision.
      for (const revision of [4, 5]) {
        const profile = buildProfile({ profileId: id, userId: 'prune-user', revision })
        await repository.writeProfileRevision(profile)
      }
      assert.deepEqual(await auditRevisions(id), range(1, 5))
      const pruned = await repository.pruneAuditEntries({ keepLast: 1, profileId: id })
      assert.equal(pruned.removedRows, 2)
      assert.deepEqual(await auditRevisions(id), [3, 4, 5])
    })

    test('every profile, in batches: progress after each, profiles counted once across batches', async () => {
      const ids = [uniqueId(`${mode}-all-a`), uniqueId(`${mode}-all-b`), uniqueId(`${mode}-all-c`)].sort()
      for (const id of ids) await saveTimes(repository, id, 6)
      const progress = []
      // Other tests' profiles in this schema are pruned too; only ours are checked.
      const pruned = await repository.pruneAuditEntries({
        keepLast: 2,
        batchSize: 3,
        onProgress: (p) => progress.push(p),
      })
      for (const id of ids) assert.deepEqual(await auditRevisions(id), [5, 6])
      assert.ok(pruned.removedRows >= 12)
      assert.ok(pruned.batches >= 4, `${pruned.batches} batches of at most 3 rows`)
      assert.equal(progress.length, pruned.batches)
      assert.deepEqual(progress.at(-1), { ...pruned, nextProfileId: null })
      for (let i = 1; i < progress.length; i++) {
        assert.ok(progress[i].removedRows >= progress[i - 1].removedRows)
        assert.ok(progress[i].removedRows - progress[i - 1].removedRows <= 3)
        assert.notEqual(progress[i - 1].nextProfileId, null)
      }
      // Every profile in this schema now has at most 2 rows (but for snapshots written ahead of the current
      // revision, which stay with it).
      const { rows } = await db.sql(
        `select count(*)::int as n from (
           select a.profile_id from ${profileAudit} a join ${profiles} p using (profile_id)
           group by a.profile_id, p.revision having count(*) > 2 and max(a.revision) = p.revision) x`,
      )
      assert.equal(rows[0].n, 0)
      assert.ok(pruned.prunedProfiles >= ids.length)
      assert.equal(await repository.pruneAuditEntries({ keepLast: 2, batchSize: 3 }).then((p) => p.removedRows), 0)
    })

    test('listAuditEntries cursors taken before a prune go on without repeating an entry', async () => {
      const id = uniqueId(`${mode}-cursor`)
      await saveTimes(repository, id, 10)
      const first = await repository.listAuditEntries(id, { limit: 3 })
      assert.deepEqual(
        first.entries.map((entry) => entry.revision),
        [10, 9, 8],
      )
      const deep = (await repository.listAuditEntries(id, { limit: 8 })).nextCursor
      await repository.pruneAuditEntries({ keepLast: 5, profileId: id })
      const second = await repository.listAuditEntries(id, { limit: 3, cursor: first.nextCursor })
      assert.deepEqual(
        second.entries.map((entry) => entry.revision),
        [7, 6],
      )
      assert.equal(second.nextCursor, null)
      // A cursor below every kept row: an empty last page.
      assert.deepEqual(await repository.listAuditEntries(id, { cursor: deep }), { entries: [], nextCursor: null })
      const pages = await readAllPages(repository, id, 2)
      assert.deepEqual(
        pages.flatMap((page) => page.entries.map((entry) => entry.revision)),
        [10, 9, 8, 7, 6],
      )
    })

    test('bad options are a validation_error naming the option, and remove nothing', async () => {
      const id = uniqueId(`${mode}-bad`)
      await saveTimes(repository, id, 4)
      const before = await db.snapshot()
      const cases = [
        [undefined, 'options'],
        [{}, 'keepLast'],
        [{ profileId: id }, 'keepLast'],
        [{ keepLast: 0 }, 'keepLast'],
        [{ keepLast: 1.5 }, 'keepLast'],
        [{ keepLast: '2' }, 'keepLast'],
        [{ olderThan: 'last week' }, 'olderThan'],
        [{ olderThan: '2026-01-31' }, 'olderThan'],
        [{ olderThan: new Date(Number.NaN) }, 'olderThan'],
        [{ olderThan: 0 }, 'olderThan'],
        [{ keepLast: 1, batchSize: 0 }, 'batchSize'],
        [{ keepLast: 1, batchSize: 10_001 }, 'batchSize'],
        [{ keepLast: 1, profileId: '' }, 'profileId'],
        [{ keepLast: 1, profileId: 42 }, 'profileId'],
        [{ keepLast: 1, onProgress: 'log' }, 'onProgress'],
        [{ keepLast: 1, signal: { aborted: true } }, 'signal'],
        [{ keepLast: 1, context: 'x' }, 'context'],
      ]
      for (const [options, field] of cases) {
        await expectStoreError(repository.pruneAuditEntries(options), { code: 'validation_error', field })
      }
      assert.deepEqual(await db.snapshot(), before)
    })

    test('an aborted signal stops between batches; what was removed is on the error', async () => {
      const id = uniqueId(`${mode}-abort`)
      await saveTimes(repository, id, 9)
      const controller = new AbortController()
      const error = await expectStoreError(
        repository.pruneAuditEntries({
          keepLast: 1,
          profileId: id,
          batchSize: 2,
          signal: controller.signal,
          onProgress: () => controller.abort(),
        }),
        { code: 'aborted', operation: 'pruneAuditEntries' },
      )
      assert.deepEqual(error.pruned, { removedRows: 2, prunedProfiles: 1, batches: 1 })
      assert.deepEqual(await auditRevisions(id), range(3, 9))
      const aborted = AbortSignal.abort()
      await expectStoreError(repository.pruneAuditEntries({ keepLast: 1, signal: aborted }), { code: 'aborted' })
      assert.deepEqual(await auditRevisions(id), range(3, 9))
    })

    test('one event per prune, rowCount the rows removed', async () => {
      const id = uniqueId(`${mode}-event`)
      await saveTimes(repository, id, 5)
      events.length = 0
      await repository.pruneAuditEntries({
        keepLast: 2,
        profileId: id,
        batchSize: 1,
        context: { request_id: 'r-prune' },
      })
      await repository.pruneAuditEntries({}).catch(() => {})
      const ours = events.filter((event) => event.operation === 'pruneAuditEntries')
      assert.equal(ours.length, 2)
      assert.equal(ours[0].rowCount, 3)
      assert.deepEqual(ours[0].context, { request_id: 'r-prune' })
      assert.equal(ours[0].error, undefined)
      assert.equal(ours[1].error.code, 'validation_error')
    })

    test('saves during a prune: every revision exactly once, kept rows contiguous up to the current one', async () => {
      const ids = range(1, 4).map((i) => uniqueId(`${mode}-busy-${i}`))
      for (const id of ids) await saveTimes(repository, id, 20)
      const SAVES_PER_PROFILE = 15
      let saving = true
      const saves = settle(
        ids.flatMap((id) =>
          range(1, SAVES_PER_PROFILE).map(() =>
            repository.saveProfile(buildProfile({ profileId: id, userId: 'busy' })),
          ),
        ),
      ).finally(() => {
        saving = false
      })
      // Prunes of one row at a time, walking the same profiles while the saves run.
      const prunes = []
      do {
        for (const id of ids) prunes.push(repository.pruneAuditEntries({ keepLast: 3, profileId: id, batchSize: 1 }))
        await Promise.all(prunes.slice(-ids.length))
      } while (saving)
      const { fulfilled, rejected } = await saves
      const pruneOutcomes = await settle(prunes)
      assert.deepEqual(
        rejected.map((error) => error.code),
        [],
      )
      assert.deepEqual(
        pruneOutcomes.rejected.map((error) => `${error.code} ${error.sqlState ?? ''}`),
        [],
        'no prune failed (no deadlock, no lock timeout)',
      )
      for (const id of ids) {
        const revisions = fulfilled.filter((saved) => saved.profile_id === id).map((saved) => saved.metadata.revision)
        assert.deepEqual(
          revisions.sort((a, b) => a - b),
          range(21, 20 + SAVES_PER_PROFILE),
          `${id}: every save got its own revision`,
        )
        const kept = await auditRevisions(id)
        const current = 20 + SAVES_PER_PROFILE
        assert.equal(kept.at(-1), current, 'the current revision has its row')
        assert.deepEqual(kept, range(kept[0], current), 'the kept rows have no gaps')
        assert.ok(kept.length >= 3)
      }
      // A last prune settles every profile at keepLast.
      for (const id of ids) await repository.pruneAuditEntries({ keepLast: 3, profileId: id })
      for (const id of ids) assert.deepEqual(await auditRevisions(id), range(33, 35))
    })
  })
}
