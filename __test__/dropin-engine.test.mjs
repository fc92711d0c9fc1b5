// The drop-in promise: @pson5/serialization-engine 0.2.2 (the original
// package, fetched by scripts/upstream-022.mjs) runs on this repository, both
// through its createDocumentProfileStoreAdapter and with the repository itself
// as `{ adapter }`.

import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'

import { appDir, ensureUpstream, importUpstream } from '../scripts/upstream-022.mjs'
import { PostgresStoreError } from '../index.mjs'
import { MODES, useDatabase } from './helpers/database.mjs'
import { auditFacts } from './helpers/profiles.mjs'
import { rejection } from './helpers/assertions.mjs'

ensureUpstream()
const engine = await importUpstream('serialization-engine')

// Our package resolves the engine (for its ProfileStoreError class) from the
// application, i.e. from the working directory: be that application.
const originalCwd = process.cwd()
process.chdir(appDir)

const db = await useDatabase({ schemaPrefix: 'dropin' })

// engine.saveProfile appends a best-effort audit line under `rootDir`.
const rootDir = mkdtempSync(path.join(tmpdir(), 'pson5-dropin-'))
after(() => {
  process.chdir(originalCwd)
  rmSync(rootDir, { recursive: true, force: true })
})

// createEmptyProfile names profiles `pson_<Date.now()>`: keep them distinct.
async function freshMillisecond() {
  await sleep(3)
}


for (const mode of ['native', 'pg']) {
  describe(`serialization-engine 0.2.2 on ${mode}`, () => {
    let repository

    before(async () => {
      repository = db.repository(mode, { tablePrefix: `${mode}_` })
      await repository.ensureSchema()
    })

    test('createDocumentProfileStoreAdapter(repository): init, bump, save, load', async () => {
      const store = engine.createDocumentProfileStoreAdapter(repository)
      assert.equal(store.kind, 'document:postgres')
      const user = `adapter-user-${mode}`
      const options = { adapter: store, rootDir }

      await freshMillisecond()
      const created = await engine.initProfile({ user_id: user, tenant_id: 'tenant-1' }, options)
      const id = created.profile_id
      assert.match(id, /^pson_\d+$/)
      assert.equal(created.metadata.revision, 1)
      assert.equal(await store.profileExists(id), true)

      const bumped = engine.bumpRevision(created)
      const saved = await engine.saveProfile(bumped, options)
      assert.equal(saved.metadata.revision, 2)

      const loaded = await store.loadProfileByUserId(user)
      assert.equal(loaded.profile_id, id)
      assert.equal(loaded.metadata.revision, 2)
      assert.deepEqual(loaded, bumped)
      assert.deepEqual(await store.listProfileRevisions(id), [1, 2])
      assert.deepEqual(await store.findProfilesByUserId(user), [id])
      assert.deepEqual(await engine.loadProfile(id, options), bumped)

      // What the 0.2.2 path wrote is what the fast path reads.
      assert.deepEqual(await repository.loadProfile(id), bumped)
      assert.deepEqual(await repository.listProfileRevisions(id), [1, 2])
      assert.deepEqual(await repository.findProfilesByUserId(user), [id])
      assert.deepEqual(await repository.loadProfileByUserId(user), bumped)
      assert.deepEqual(await repository.loadProfileRevision(id, 1), created)
    })

    test('createDocumentProfileStoreAdapter(repository): a second profile of the user becomes the latest', async () => {
      const store = engine.createDocumentProfileStoreAdapter(repository)
      const user = `adapter-two-${mode}`
      const options = { adapter: store, rootDir }
      await freshMillisecond()
      const first = await engine.initProfile({ user_id: user }, options)
      await freshMillisecond()
      const second = await engine.initProfile({ user_id: user }, options)
      assert.notEqual(first.profile_id, second.profile_id)
      assert.deepEqual(await store.findProfilesByUserId(user), [first.profile_id, second.profile_id])
      assert.equal((await store.loadProfileByUserId(user)).profile_id, second.profile_id)

      // Saving the first again makes it the latest, and keeps the order of ids.
      await engine.saveProfile(engine.bumpRevision(first), options)
      assert.deepEqual(await store.findProfilesByUserId(user), [first.profile_id, second.profile_id])
      const latest = await store.loadProfileByUserId(user)
      assert.equal(latest.profile_id, first.profile_id)
      assert.equal(latest.metadata.revision, 2)
    })

    test('createDocumentProfileStoreAdapter(repository): unknown profile and user', async () => {
      const store = engine.createDocumentProfileStoreAdapter(repository)
      const missing = await rejection(store.loadProfile('missing'))
      assert.ok(missing instanceof engine.ProfileStoreError)
      assert.equal(missing.storeCode, 'profile_not_found')
      assert.equal(await store.profileExists('missing'), false)
      assert.deepEqual(await store.findProfilesByUserId('nobody'), [])
    })

    test('not_found from the repository is an engine ProfileStoreError and ours', async () => {
      for (const [call, storeCode] of [
        [() => repository.loadProfile('missing'), 'profile_not_found'],
        [() => repository.loadProfileByUserId('nobody'), 'profile_not_found'],
        [() => repository.listProfileRevisions('missing'), 'profile_not_found'],
        [() => repository.loadProfileRevision('missing', 1), 'revision_not_found'],
      ]) {
        const error = await rejection(call())
        assert.ok(error instanceof engine.ProfileStoreError, `${storeCode}: not an engine ProfileStoreError`)
        assert.ok(error instanceof PostgresStoreError, `${storeCode}: not a PostgresStoreError`)
        assert.ok(error instanceof Error)
        assert.equal(error.code, 'not_found')
        assert.equal(error.storeCode, storeCode)
      }
    })

    test('the repository as { adapter }: first init, then bump and save', async () => {
      const user = `direct-user-${mode}`
      const options = { adapter: repository, rootDir }

      await freshMillisecond()
      const created = await engine.initProfile({ user_id: user, tenant_id: 'tenant-1' }, options)
      const id = created.profile_id
      assert.equal(created.metadata.revision, 1)
      assert.equal(await engine.profileExists(id, options), true)

      const saved = await engine.saveProfile(engine.bumpRevision(created), options)
      assert.equal(saved.metadata.revision, 2)

      const loaded = await repository.loadProfile(id)
      assert.equal(loaded.metadata.revision, 2)
      assert.deepEqual(loaded, saved)
      assert.deepEqual(await repository.listProfileRevisions(id), [1, 2])
      assert.deepEqual(await repository.loadProfileByUserId(user), saved)
      assert.deepEqual(await repository.findProfilesByUserId(user), [id])
      assert.deepEqual(await engine.loadProfileByUserId(user, options), saved)
      assert.deepEqual(await engine.listProfileRevisions(id, options), [1, 2])
      assert.deepEqual(await engine.findProfilesByUserId(user, options), [id])

      // The audit log holds each revision once, newest first.
      const { entries } = await repository.listAuditEntries(id)
      assert.deepEqual(
        entries.map((entry) => [entry.revision, entry.previous_revision]),
        [
          [2, 1],
          [1, null],
        ],
      )
    })

    test('the repository as { adapter }: engine errors other than not_found still reach the caller', async () => {
      const options = { adapter: repository, rootDir }
      const error = await rejection(engine.saveProfile({ profile_id: 42, user_id: 'u' }, options))
      assert.equal(error.code, 'validation_error')
      assert.ok(error instanceof PostgresStoreError)
    })
  })
}

for (const mode of MODES) {
  describe(`audit rows are the same whichever path wrote them (${mode})`, () => {
    let repository
    let store

    before(async () => {
      repository = db.repository(mode, { tablePrefix: `audit_${mode}_` })
      await repository.ensureSchema()
      store = engine.createDocumentProfileStoreAdapter(repository)
    })

    /** initProfile then observeFact through `adapter`; the profile's audit entries. */
    async function initAndObserve(adapter, user) {
      const options = { adapter, rootDir }
      await freshMillisecond()
      const created = await engine.initProfile({ user_id: user, tenant_id: 'tenant-1' }, options)
      await engine.observeFact(
        { profile_id: created.profile_id, domain: 'core', key: 'city', value: 'Lisbon' },
        options,
      )
      return (await repository.listAuditEntries(created.profile_id)).entries
    }

    test('initProfile then observeFact: the 0.2.2 adapter writes the audit rows saveProfile writes', async () => {
      const viaAdapter = await initAndObserve(store, `audit-adapter-${mode}`)
      const viaSave = await initAndObserve(repository, `audit-save-${mode}`)
      assert.deepEqual(
        auditFacts(viaSave).map((e) => [e.revision, e.previous_revision]),
        [
          [2, 1],
          [1, null],
        ],
      )
      assert.deepEqual(viaSave[0].changed_top_level_paths, ['layers', 'metadata'])
      assert.deepEqual(auditFacts(viaAdapter), auditFacts(viaSave))
    })

    test('revisions written alternately through saveProfile and the adapter form one unbroken chain', async () => {
      await freshMillisecond()
      let profile = await engine.initProfile({ user_id: `audit-mixed-${mode}` }, { adapter: store, rootDir })
      const id = profile.profile_id
      for (let step = 0; step < 4; step++) {
        const next = engine.bumpRevision(profile)
        next.metadata.source_count = profile.metadata.source_count + step + 1
        next.layers.observed.core = { facts: { step } }
        profile =
          step % 2 === 0
            ? await repository.saveProfile(next, { context: { step } })
            : await engine.saveProfile(next, { adapter: store, rootDir })
      }
      const { entries } = await repository.listAuditEntries(id)
      assert.deepEqual(
        entries.map((e) => [e.revision, e.previous_revision, e.source_count_delta]),
        [
          [5, 4, 4],
          [4, 3, 3],
          [3, 2, 2],
          [2, 1, 1],
          [1, null, 0],
        ],
      )
      for (const entry of entries.slice(0, 4)) assert.deepEqual(entry.changed_top_level_paths, ['layers', 'metadata'])
    })

    test('writeProfileRevision out of order: the later revision is re-linked to the one written in between', async () => {
      const id = `audit-order-${mode}`
      const doc = (revision, sourceCount) => ({
        profile_id: id,
        user_id: `audit-order-user-${mode}`,
        layers: { observed: { revision } },
        metadata: { revision, source_count: sourceCount, updated_at: `2026-01-0${revision}T00:00:00.000Z` },
      })
      await repository.writeProfileRevision(doc(1, 1))
      await repository.writeProfileRevision(doc(3, 10))
      await repository.writeProfileRevision(doc(2, 4), { context: { request_id: 'r-2' } })
      const { entries } = await repository.listAuditEntries(id)
      assert.deepEqual(
        entries.map((e) => [e.revision, e.previous_revision, e.source_count_delta, e.changed_top_level_paths]),
        [
          [3, 2, 6, ['layers', 'metadata']],
          [2, 1, 3, ['layers', 'metadata']],
          [1, null, 1, ['layers', 'metadata', 'profile_id', 'user_id']],
        ],
      )
      assert.deepEqual(entries[1].context, { request_id: 'r-2' })
    })
  })
}

describe('audit rows written by 0.3.0 through the 0.2.2 path', () => {
  test('upgradeSql fills in the audit fields 0.3.0 left empty, as a save would have', async () => {
    const prefix = 'v030_'
    const repository = db.repository('native', { tablePrefix: prefix })
    await repository.ensureSchema()
    const audit = `"${db.schema}"."${prefix}profile_audit"`
    // 0.3.0's writeProfileRevision statement (src/store/sql.rs at 0.3.0): no
    // previous_revision, no source_count_delta, no changed paths.
    const writeRevision030 = `insert into ${audit} as cur (profile_id, revision, user_id, tenant_id, source_count, pson_version,
       updated_at, document)
       select d ->> 'profile_id', (d #>> '{metadata,revision}')::integer, d ->> 'user_id', d ->> 'tenant_id',
       (case when jsonb_typeof(d #> '{metadata,source_count}') = 'number' then (d #>> '{metadata,source_count}')::numeric end),
       d ->> 'pson_version', d #>> '{metadata,updated_at}', d
       from (select $1::text::jsonb as d) input`
    const id = 'v030-profile'
    const revision = (n) => ({
      profile_id: id,
      user_id: 'v030-user',
      layers: { observed: { n } },
      metadata: { revision: n, source_count: n * 2, updated_at: `2026-01-0${n}T00:00:00.000Z` },
    })
    await repository.saveProfile(revision(1)) // revision 1 through saveProfile
    for (const n of [2, 3]) await db.sql(writeRevision030, [JSON.stringify(revision(n))])
    const before = (await repository.listAuditEntries(id)).entries
    assert.deepEqual(
      before.map((e) => [e.revision, e.previous_revision, e.changed_top_level_paths]),
      [
        [3, null, []],
        [2, null, []],
        [1, null, ['layers', 'metadata', 'profile_id', 'user_id']],
      ],
    )

    await repository.upgradeFrom022()
    await repository.upgradeFrom022() // idempotent
    const after = (await repository.listAuditEntries(id)).entries
    assert.deepEqual(
      after.map((e) => [e.revision, e.previous_revision, e.source_count_delta, e.changed_top_level_paths]),
      [
        [3, 2, 2, ['layers', 'metadata']],
        [2, 1, 2, ['layers', 'metadata']],
        [1, null, 2, ['layers', 'metadata', 'profile_id', 'user_id']],
      ],
    )
  })
})
