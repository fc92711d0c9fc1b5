// The range of a revision number. Revisions are PostgreSQL `integer`s: every
// revision a write accepts (1..MAX_REVISION) reads back through every read
// method, cursors included; anything outside is a `validation_error` naming
// `metadata.revision` that writes nothing; and a save of a profile already at
// MAX_REVISION fails the same way instead of overflowing (SQLSTATE 22003).

import assert from 'node:assert/strict'
import { before, describe, test } from 'node:test'

import { MODES, useDatabase } from './helpers/database.mjs'
import { buildProfile, expectStoreError, failIfUnfinished, readAllPages, uniqueId } from './helpers/profiles.mjs'

failIfUnfinished(import.meta.url)
const db = await useDatabase({ schemaPrefix: 'revs' })

const MAX_REVISION = 2 ** 31 - 1

for (const mode of MODES) {
  describe(`revision range (${mode})`, () => {
    let repository

    before(async () => {
      repository = db.repository(mode)
      await repository.ensureSchema()
    })

    const profileAt = (profileId, revision) =>
      buildProfile({ profileId, userId: `${profileId}-user`, revision, sourceCount: revision % 1000 })

    async function rejectsWithoutWriting(call, expected) {
      const before = await db.snapshot()
      const error = await expectStoreError(call, expected)
      assert.deepEqual(await db.snapshot(), before, 'no table changed')
      return error
    }

    for (const revision of [MAX_REVISION + 1, 2 ** 53 - 1, 0, -1, 1.5, '7']) {
      test(`writeCurrentProfile and writeProfileRevision reject metadata.revision ${revision}`, async () => {
        const doc = profileAt(uniqueId(`${mode}-out`), 1)
        doc.metadata.revision = revision
        const expected = { code: 'validation_error', field: 'metadata.revision' }
        await rejectsWithoutWriting(() => repository.writeCurrentProfile(doc), expected)
        await rejectsWithoutWriting(() => repository.writeProfileRevision(doc), expected)
      })
    }

    test('the largest revision written through the 0.2.2 path reads back through every read method', async () => {
      const id = uniqueId(`${mode}-max`)
      const revisions = [MAX_REVISION - 2, MAX_REVISION - 1, MAX_REVISION]
      for (const revision of revisions) await repository.writeProfileRevision(profileAt(id, revision))
      await repository.writeCurrentProfile(profileAt(id, MAX_REVISION))

      assert.deepEqual(await repository.readCurrentProfile(id), profileAt(id, MAX_REVISION))
      assert.deepEqual(await repository.loadProfile(id), profileAt(id, MAX_REVISION))
      assert.deepEqual(await repository.listProfileRevisionNumbers(id), revisions)
      assert.deepEqual(await repository.listProfileRevisions(id), revisions)
      for (const revision of revisions) {
        assert.deepEqual(await repository.loadProfileRevision(id, revision), profileAt(id, revision))
      }
      // One entry per page: every cursor names a revision next to the limit.
      const pages = await readAllPages(repository, id, 1)
      assert.deepEqual(
        pages.flatMap((page) => page.entries.map((entry) => [entry.revision, entry.previous_revision])),
        [
          [MAX_REVISION, MAX_REVISION - 1],
          [MAX_REVISION - 1, MAX_REVISION - 2],
          [MAX_REVISION - 2, null],
        ],
      )
    })

    test('a save of a profile at the largest revision is a validation_error and writes nothing', async () => {
      const id = uniqueId(`${mode}-full`)
      await repository.writeCurrentProfile(profileAt(id, MAX_REVISION - 1))
      await repository.writeProfileRevision(profileAt(id, MAX_REVISION - 1))
      const saved = await repository.saveProfile(profileAt(id, 1))
      assert.equal(saved.metadata.revision, MAX_REVISION)

      const next = { ...saved, layers: { ...saved.layers, observed: { more: true } } }
      const expected = { code: 'validation_error', field: 'metadata.revision' }
      await rejectsWithoutWriting(() => repository.saveProfile(next), expected)
      await rejectsWithoutWriting(() => repository.saveProfile(next, { expectedRevision: MAX_REVISION }), expected)
      // A stale expected revision is still a conflict: the caller's view was wrong.
      await rejectsWithoutWriting(() => repository.saveProfile(next, { expectedRevision: MAX_REVISION - 1 }), {
        code: 'conflict',
      })
      assert.deepEqual(await repository.loadProfile(id), saved)
      assert.deepEqual(await repository.listProfileRevisions(id), [MAX_REVISION - 1, MAX_REVISION])
    })

    test('concurrent saves at the largest revision each fail alone (coalesced statements too)', async () => {
      const full = uniqueId(`${mode}-full-many`)
      await repository.writeCurrentProfile(profileAt(full, MAX_REVISION))
      const others = Array.from({ length: 20 }, (_, i) => uniqueId(`${mode}-ok-${i}`))
      const results = await Promise.allSettled([
        repository.saveProfile(profileAt(full, 1)),
        ...others.map((id) => repository.saveProfile(profileAt(id, 1))),
      ])
      assert.equal(results[0].status, 'rejected')
      assert.equal(results[0].reason.code, 'validation_error')
      assert.equal(results[0].reason.field, 'metadata.revision')
      assert.deepEqual(
        results.slice(1).map((result) => result.value?.metadata.revision),
        others.map(() => 1),
      )
    })
  })
}
