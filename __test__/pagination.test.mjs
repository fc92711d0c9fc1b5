// listAuditEntries: keyset pages, newest first, stable while saves go on, and
// argument checks for `limit` and `cursor`.

import assert from 'node:assert/strict'
import { before, describe, test } from 'node:test'

import { MODES, useDatabase } from './helpers/database.mjs'
import { buildProfile, expectStoreError, failIfUnfinished, readAllPages, uniqueId } from './helpers/profiles.mjs'

failIfUnfinished(import.meta.url)
const db = await useDatabase({ schemaPrefix: 'page' })

const range = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => from + i)
const descending = (from, to) => range(from, to).reverse()

async function saveTimes(repository, profileId, userId, times) {
  for (let i = 0; i < times; i++) {
    await repository.saveProfile(buildProfile({ profileId, userId, sourceCount: i }), {
      context: { request_id: `${profileId}-${i}` },
    })
  }
}

for (const mode of MODES) {
  describe(`listAuditEntries pagination (${mode})`, () => {
    let repository
    let profileId37
    const userId = uniqueId(`${mode}-pager`)

    before(async () => {
      repository = db.repository(mode)
      await repository.ensureSchema()
      profileId37 = uniqueId(`${mode}-37`)
      await saveTimes(repository, profileId37, userId, 37)
    })

    test('37 entries in pages of 10: every revision once, newest first, null cursor at the end', async () => {
      const pages = await readAllPages(repository, profileId37, 10)
      assert.deepEqual(
        pages.map((page) => page.entries.length),
        [10, 10, 10, 7],
      )
      for (const page of pages.slice(0, -1)) assert.equal(typeof page.nextCursor, 'string')
      assert.equal(pages.at(-1).nextCursor, null)

      const revisions = pages.flatMap((page) => page.entries.map((entry) => entry.revision))
      assert.deepEqual(revisions, range(1, 37).reverse())
      for (const entry of pages.flatMap((page) => page.entries)) {
        assert.equal(entry.profile_id, profileId37)
        assert.deepEqual(entry.context, { request_id: `${profileId37}-${entry.revision - 1}` })
      }
    })

    test('the default page holds up to 50 entries; a page that ends exactly at the last entry has no cursor', async () => {
      const all = await repository.listAuditEntries(profileId37)
      assert.equal(all.entries.length, 37)
      assert.equal(all.nextCursor, null)

      const exact = await repository.listAuditEntries(profileId37, { limit: 37 })
      assert.equal(exact.entries.length, 37)
      assert.equal(exact.nextCursor, null)

      const pages = await readAllPages(repository, profileId37, 1)
      assert.equal(pages.length, 37)
      assert.deepEqual(
        pages.map((page) => page.entries[0].revision),
        descending(1, 37),
      )

      const profileId30 = uniqueId(`${mode}-30`)
      await saveTimes(repository, profileId30, userId, 30)
      const tens = await readAllPages(repository, profileId30, 10)
      assert.deepEqual(
        tens.map((page) => page.entries.length),
        [10, 10, 10],
      )
      assert.equal(tens[2].nextCursor, null)
    })

    test('a profile without audit entries gives an empty page', async () => {
      const page = await repository.listAuditEntries(uniqueId(`${mode}-nobody`), { limit: 10 })
      assert.deepEqual(page, { entries: [], nextCursor: null })
    })

    test('pages neither repeat nor skip entries while saves go on between them', async () => {
      const profileId = uniqueId(`${mode}-live`)
      await saveTimes(repository, profileId, userId, 25)

      const seen = []
      let cursor = null
      let first = true
      let pagesRead = 0
      do {
        const page = await repository.listAuditEntries(profileId, { limit: 10, cursor })
        pagesRead++
        if (first) assert.equal(page.entries[0].revision, 25)
        first = false
        seen.push(...page.entries.map((entry) => entry.revision))
        cursor = page.nextCursor
        // More saves (and so more audit entries) between page fetches.
        await saveTimes(repository, profileId, userId, 5)
      } while (cursor !== null)

      assert.equal(new Set(seen).size, seen.length, `no entry twice: ${seen}`)
      for (const revision of range(1, 25)) assert.ok(seen.includes(revision), `revision ${revision} was listed`)
      assert.deepEqual(seen, [...seen].sort((a, b) => b - a), 'newest first across pages')
      assert.equal(pagesRead, 3)

      // The entries saved meanwhile are all there for a fresh read.
      const total = 25 + 5 * pagesRead
      const fresh = (await readAllPages(repository, profileId, 10)).flatMap((page) => page.entries)
      assert.deepEqual(
        fresh.map((entry) => entry.revision),
        descending(1, total),
      )
    })

    test('concurrent saves while paging do not disturb the pages', async () => {
      const profileId = uniqueId(`${mode}-busy`)
      await saveTimes(repository, profileId, userId, 20)
      const writers = Promise.all(
        range(1, 20).map((i) => repository.saveProfile(buildProfile({ profileId, userId, sourceCount: 1000 + i }))),
      )
      const seen = []
      let cursor = null
      do {
        const page = await repository.listAuditEntries(profileId, { limit: 4, cursor })
        seen.push(...page.entries.map((entry) => entry.revision))
        cursor = page.nextCursor
      } while (cursor !== null)
      await writers
      assert.equal(new Set(seen).size, seen.length, `no entry twice: ${seen}`)
      for (const revision of range(1, 20)) assert.ok(seen.includes(revision), `revision ${revision} was listed`)
    })

    test('a cursor that is not one listAuditEntries returned is a validation_error on cursor', async () => {
      const id = profileId37
      const valid = (await repository.listAuditEntries(id, { limit: 5 })).nextCursor
      assert.equal(typeof valid, 'string')
      const foreignShape = Buffer.from(JSON.stringify({ offset: 10 })).toString('base64url')
      const futureVersion = Buffer.from(JSON.stringify({ v: 2, before: 10 })).toString('base64url')
      const negative = Buffer.from(JSON.stringify({ v: 1, before: -4 })).toString('base64url')
      const fractional = Buffer.from(JSON.stringify({ v: 1, before: 2.5 })).toString('base64url')
      const bad = [
        'garbage',
        foreignShape,
        futureVersion,
        negative,
        fractional,
        Buffer.from('[1,2,3]').toString('base64'),
        42,
        { v: 1, before: 10 },
      ]
      for (const cursor of bad) {
        await expectStoreError(repository.listAuditEntries(id, { limit: 5, cursor }), {
          code: 'validation_error',
          field: 'cursor',
        })
      }
    })

    test('limit must be an integer from 1 to 1000', async () => {
      for (const limit of [0, 1001, 2.5, -1, '10', Number.NaN]) {
        await expectStoreError(repository.listAuditEntries(profileId37, { limit }), {
          code: 'validation_error',
          field: 'limit',
        })
      }
      assert.equal((await repository.listAuditEntries(profileId37, { limit: 1000 })).entries.length, 37)
      assert.equal((await repository.listAuditEntries(profileId37, { limit: 1 })).entries.length, 1)
    })
  })
}
