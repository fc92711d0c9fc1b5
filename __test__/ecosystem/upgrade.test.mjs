// Upgrading a 0.2.2 deployment in place: the original @pson5/postgres-store
// 0.2.2 and @pson5/serialization-engine 0.2.2 (npm pack, cached in .cache/ by
// scripts/upstream-022.mjs) write profiles into 0.2.2's own tables; our
// upgradeSql copies them; this package (native mode) then reads back what 0.2.2
// reads from its tables, and later saves continue the revision sequence.

import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'

import pg from 'pg'

import { importUpstream } from '../../scripts/upstream-022.mjs'
import {
  createPostgresProfileStoreArtifacts,
  createPostgresProfileStoreRepository,
  createPostgresQueryExecutor,
} from '../../index.mjs'
import { auditFacts } from '../helpers/profiles.mjs'
import { tableDigest } from '../helpers/assertions.mjs'
import { useSchema, useServer } from './helpers.mjs'

const engine = await importUpstream('serialization-engine')
const original = await importUpstream('postgres-store')

const server = await useServer()
const schema = await useSchema(server, 'upgrade')
const rootDir = mkdtempSync(path.join(os.tmpdir(), 'pson5-upgrade-')) // engine.saveProfile's audit file
const pool = new pg.Pool({ connectionString: server.url, max: 4 })
after(async () => {
  await pool.end()
  rmSync(rootDir, { recursive: true, force: true })
})

const USERS = ['user-a', 'user-b', 'user-c']
const PROFILES = 20
const LEGACY = ['pson_profiles_current', 'pson_profile_revisions', 'pson_user_profile_index']
const ours = createPostgresProfileStoreArtifacts({ schema })

// 0.2.2 as its users wired it: its repository over a pg Pool, behind the engine's adapter.
const legacyRepository = original.createPostgresProfileStoreRepository(original.createPostgresQueryExecutor(pool), { schema })
const legacyAdapter = engine.createDocumentProfileStoreAdapter(legacyRepository)
let repository

/** Revisions of profile i: 1..4. */
const revisionsOf = (i) => 1 + (i % 4)
const idOf = (i) => `legacy-${String(i).padStart(2, '0')}`

async function legacyRevision(profileId, revision) {
  const { rows } = await pool.query(
    `select profile_document from "${schema}".pson_profile_revisions where profile_id = $1 and revision = $2`,
    [profileId, revision],
  )
  return rows[0].profile_document
}

async function tableDigests() {
  const digests = {}
  for (const [key, table] of Object.entries(ours.tables)) {
    digests[key] = await tableDigest((text) => pool.query(text), table)
  }
  return digests
}

before(async () => {
  await pool.query(original.createPostgresProfileStoreArtifacts({ schema }).schemaSql)
  // Every profile's first revision in order, so each user's profile_ids has
  // an order; later revisions in reverse, so "latest" is not the newest id.
  const profiles = []
  for (let i = 0; i < PROFILES; i++) {
    const profile = engine.createEmptyProfile({ user_id: USERS[i % USERS.length], tenant_id: `tenant-${i % 2}`, domains: ['core', `d${i % 3}`] })
    profile.profile_id = idOf(i)
    profile.layers.observed.core = { facts: { seq: { value: `first ${i}` } } }
    profile.metadata.source_count = 1
    profiles.push(await engine.saveProfile(profile, { adapter: legacyAdapter, rootDir }))
  }
  for (let i = PROFILES - 1; i >= 0; i--) {
    for (let r = 2; r <= revisionsOf(i); r++) {
      const next = engine.bumpRevision(profiles[i])
      next.layers.observed.core = { facts: { seq: { value: `revision ${r} of ${i}` } } }
      next.metadata.source_count = profiles[i].metadata.source_count + r
      profiles[i] = await engine.saveProfile(next, { adapter: legacyAdapter, rootDir })
    }
  }
  repository = createPostgresProfileStoreRepository({ connectionString: server.url, schema })
})
after(() => repository?.close())

describe('upgradeSql over a deployment written by 0.2.2', () => {
  test('0.2.2 wrote what we expect to migrate', async () => {
    const { rows } = await pool.query(`select count(*)::int as n from "${schema}".pson_profile_revisions`)
    const expected = Array.from({ length: PROFILES }, (_, i) => revisionsOf(i)).reduce((a, b) => a + b)
    assert.equal(rows[0].n, expected)
    assert.equal((await legacyAdapter.findProfilesByUserId('user-a')).length, 7)
  })

  test('schemaSql, then upgradeSql twice: the second run changes nothing', async () => {
    await repository.ensureSchema()
    await pool.query(ours.upgradeSql)
    const first = await tableDigests()
    assert.equal(first.profiles.n, PROFILES)
    await pool.query(ours.upgradeSql)
    assert.deepEqual(await tableDigests(), first)
    // and through the repository (the same script)
    await repository.upgradeFrom022()
    assert.deepEqual(await tableDigests(), first)
  })

  test('every profile reads back as 0.2.2 reads it', async () => {
    for (let i = 0; i < PROFILES; i++) {
      const id = idOf(i)
      assert.deepEqual(await repository.loadProfile(id), await legacyRepository.readCurrentProfile(id), id)
      assert.deepEqual(await repository.readCurrentProfile(id), await legacyRepository.readCurrentProfile(id), id)
    }
  })

  test('revision lists and every revision snapshot match', async () => {
    for (let i = 0; i < PROFILES; i++) {
      const id = idOf(i)
      const legacy = await legacyRepository.listProfileRevisionNumbers(id)
      assert.deepEqual(legacy, Array.from({ length: revisionsOf(i) }, (_, r) => r + 1))
      assert.deepEqual(await repository.listProfileRevisions(id), legacy)
      assert.deepEqual(await repository.listProfileRevisionNumbers(id), legacy)
      for (const revision of legacy) {
        assert.deepEqual(await repository.loadProfileRevision(id, revision), await legacyRevision(id, revision), `${id}@${revision}`)
      }
    }
  })

  test('user indexes: same profile_ids order, same latest, same updated_at', async () => {
    for (const user of USERS) {
      const legacy = await legacyRepository.readUserProfileIndex(user)
      const record = await repository.readUserProfileIndex(user)
      assert.equal(record.user_id, user)
      assert.deepEqual(record.profile_ids, legacy.profile_ids)
      assert.equal(record.latest_profile_id, legacy.latest_profile_id)
      // 0.2.2 returns String(Date) (whole seconds); ours is ISO-8601 with milliseconds.
      assert.equal(Math.floor(Date.parse(record.updated_at) / 1000), Date.parse(legacy.updated_at) / 1000)
      assert.deepEqual(await repository.findProfilesByUserId(user), legacy.profile_ids)
      assert.deepEqual(await repository.loadProfileByUserId(user), await legacyAdapter.loadProfileByUserId(user))
    }
  })

  test('the audit log is derived from consecutive revisions', async () => {
    const { entries } = await repository.listAuditEntries(idOf(3), { limit: 10 })
    assert.deepEqual(entries.map((e) => e.revision), [4, 3, 2, 1])
    assert.deepEqual(entries.map((e) => e.previous_revision), [3, 2, 1, null])
    assert.deepEqual(entries.map((e) => e.source_count), [1 + 2 + 3 + 4, 1 + 2 + 3, 1 + 2, 1])
    assert.deepEqual(entries.map((e) => e.source_count_delta), [4, 3, 2, 1])
    assert.ok(entries[0].changed_top_level_paths.includes('layers'))
    assert.equal(entries[0].user_id, USERS[0])
  })

  test('the 0.2.2 tables are still there, unchanged', async () => {
    for (const table of LEGACY) {
      const { rows } = await pool.query(`select to_regclass($1) is not null as present`, [`"${schema}"."${table}"`])
      assert.equal(rows[0].present, true, table)
    }
    const { rows } = await pool.query(`select count(*)::int as n from "${schema}".pson_profiles_current`)
    assert.equal(rows[0].n, PROFILES)
  })

  test('saves continue the revision sequence', async () => {
    const id = idOf(3) // 4 revisions
    const current = await repository.loadProfile(id)
    const saved = await repository.saveProfile({ ...current, metadata: { ...current.metadata, source_count: 20 } })
    assert.equal(saved.metadata.revision, 5)
    assert.deepEqual(await repository.listProfileRevisions(id), [1, 2, 3, 4, 5])
    const [newest] = (await repository.listAuditEntries(id, { limit: 1 })).entries
    assert.deepEqual([newest.revision, newest.previous_revision, newest.source_count_delta], [5, 4, 10])

    // The 0.2.2 path on the upgraded tables: the engine's adapter over our repository.
    const adapter = engine.createDocumentProfileStoreAdapter(repository)
    const otherIndex = 5 // 2 revisions
    const other = idOf(otherIndex)
    const bumped = engine.bumpRevision(await adapter.loadProfile(other))
    assert.equal((await engine.saveProfile(bumped, { adapter, rootDir })).metadata.revision, 3)
    assert.deepEqual(await repository.listProfileRevisions(other), [1, 2, 3])
    // `{ adapter: repository }`: the repository assigns the revision itself.
    const again = await engine.saveProfile(await repository.loadProfile(other), { adapter: repository, rootDir })
    assert.equal(again.metadata.revision, 4)
    assert.equal((await repository.readUserProfileIndex(USERS[otherIndex % USERS.length])).latest_profile_id, other)
  })
})

describe('the audit chain after upgradeSql', () => {
  test('a revision written through the 0.2.2 adapter continues the chain as a save does', async () => {
    // Two upgraded profiles with 4 revisions each get the same change: one
    // through engine.saveProfile on createDocumentProfileStoreAdapter, one
    // through repository.saveProfile.
    const [viaAdapter, viaSave] = [idOf(7), idOf(11)]
    const change = (profile) => {
      const next = engine.bumpRevision(profile)
      next.layers.observed.core = { facts: { seq: { value: 'after the upgrade' } } }
      next.metadata.source_count = profile.metadata.source_count + 3
      return next
    }
    const adapter = engine.createDocumentProfileStoreAdapter(repository)
    await engine.saveProfile(change(await repository.loadProfile(viaAdapter)), { adapter, rootDir })
    await repository.saveProfile(change(await repository.loadProfile(viaSave)))

    const facts = async (id) => auditFacts((await repository.listAuditEntries(id)).entries)
    const adapterFacts = await facts(viaAdapter)
    assert.deepEqual(
      adapterFacts.map((e) => [e.revision, e.previous_revision, e.source_count_delta]),
      [
        [5, 4, 3],
        [4, 3, 4],
        [3, 2, 3],
        [2, 1, 2],
        [1, null, 1],
      ],
    )
    assert.deepEqual(adapterFacts[0].changed_top_level_paths, ['layers', 'metadata'])
    assert.deepEqual(adapterFacts, await facts(viaSave))
  })
})

describe("a 0.2.2 deployment with custom table names (0.2.2's currentProfilesTable, ...)", () => {
  // Mixed case, so that only quoted names find them. The default-named 0.2.2
  // tables of this schema (above) hold other profiles, which must not be copied.
  const legacyNames = {
    currentProfilesTable: 'AppCurrent',
    profileRevisionsTable: 'AppRevisions',
    userIndexTable: 'AppUsers',
  }
  const customRepository = original.createPostgresProfileStoreRepository(original.createPostgresQueryExecutor(pool), {
    schema,
    ...legacyNames,
  })
  const customAdapter = engine.createDocumentProfileStoreAdapter(customRepository)
  const ids = ['custom-1', 'custom-2', 'custom-3']

  before(async () => {
    await pool.query(original.createPostgresProfileStoreArtifacts({ schema, ...legacyNames }).schemaSql)
    for (const [i, id] of ids.entries()) {
      const profile = engine.createEmptyProfile({ user_id: 'custom-user', domains: ['core'] })
      profile.profile_id = id
      profile.metadata.source_count = i
      const first = await engine.saveProfile(profile, { adapter: customAdapter, rootDir })
      await engine.saveProfile(engine.bumpRevision(first), { adapter: customAdapter, rootDir })
    }
  })

  /** What each way of running the upgrade copied, read back through `reader`. */
  async function expectCopied(reader) {
    for (const id of ids) {
      assert.deepEqual(await reader.loadProfile(id), await customRepository.readCurrentProfile(id), id)
      assert.deepEqual(await reader.listProfileRevisions(id), [1, 2])
    }
    assert.deepEqual(await reader.findProfilesByUserId('custom-user'), ids)
    // Nothing of the default-named 0.2.2 tables.
    assert.equal(await reader.profileExists(idOf(0)), false)
  }

  test('upgradeSql from createPostgresProfileStoreArtifacts with the same options', async () => {
    const artifacts = createPostgresProfileStoreArtifacts({ schema, tablePrefix: 'sql_', ...legacyNames })
    await pool.query(artifacts.schemaSql)
    await pool.query(artifacts.upgradeSql)
    const reader = createPostgresProfileStoreRepository(createPostgresQueryExecutor(pool), { schema, tablePrefix: 'sql_' })
    await expectCopied(reader)
  })

  test('upgradeFrom022() of a native repository given the options', async () => {
    const native = createPostgresProfileStoreRepository({
      connectionString: server.url,
      schema,
      tablePrefix: 'nat_',
      ...legacyNames,
    })
    try {
      await native.ensureSchema()
      await native.upgradeFrom022()
      await expectCopied(native)
    } finally {
      await native.close()
    }
  })

  test('upgradeFrom022() of the 0.2.2 call form given the same options as 0.2.2', async () => {
    const executor = createPostgresProfileStoreRepository(createPostgresQueryExecutor(pool), {
      schema,
      tablePrefix: 'exe_',
      ...legacyNames,
    })
    await executor.ensureSchema()
    await executor.upgradeFrom022()
    await expectCopied(executor)
  })
})
