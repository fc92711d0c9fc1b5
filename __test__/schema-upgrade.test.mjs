// Upgrading a 0.3.0 deployment in place: 0.3.0's own schemaSql and statements
// (rendered by the 0.3.0 source, __test__/fixtures/sql-0.3.0.json, made by
// scripts/fixture-0.3.0.mjs) create and fill the tables; today's schemaSql
// then runs over them, twice, and changes only what it says: the list index
// and the documents' compression. Data, reads and saves carry on.

import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { before, describe, test } from 'node:test'

import { createPostgresProfileStoreArtifacts } from '../index.mjs'
import { tableDigest } from './helpers/assertions.mjs'
import { MODES, useDatabase } from './helpers/database.mjs'
import { buildProfile, expectStoreError, failIfUnfinished } from './helpers/profiles.mjs'

failIfUnfinished(import.meta.url)
const db = await useDatabase({ schemaPrefix: 'up030' })
const fixture = JSON.parse(readFileSync(new URL('./fixtures/sql-0.3.0.json', import.meta.url), 'utf8'))

/** 0.3.0's schemaSql and statements for `schema`. */
function release030(schema) {
  const inSchema = (sql) => sql.replaceAll(fixture.schema, schema)
  return {
    schemaSql: inSchema(fixture.schemaSql),
    queries: Object.fromEntries(Object.entries(fixture.queries).map(([name, sql]) => [name, inSchema(sql)])),
  }
}

async function lz4Supported() {
  const { rows } = await db.sql(
    "select coalesce((select 'lz4' = any (enumvals) from pg_settings where name = 'default_toast_compression'), false) as ok",
  )
  return rows[0].ok
}

async function indexes(schema) {
  const { rows } = await db.sql(
    `select c.relname as name, c.oid::int as oid, i.indisvalid as valid, pg_get_indexdef(c.oid) as definition
       from pg_index i join pg_class c on c.oid = i.indexrelid join pg_namespace n on n.oid = c.relnamespace
      where n.nspname = $1 order by c.relname`,
    [schema],
  )
  return rows
}

async function documentCompression(schema) {
  const { rows } = await db.sql(
    `select c.relname as table, a.attcompression::text as method
       from pg_attribute a join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace
      where n.nspname = $1 and a.attname = 'document' and c.relkind = 'r' order by c.relname`,
    [schema],
  )
  return Object.fromEntries(rows.map((row) => [row.table, row.method]))
}

// The history columns (reverted_from, erased_path) that schemaSql adds to the
// audit table are left out: the digests are of 0.3.0's columns.
const HISTORY_COLUMNS = ['reverted_from', 'erased_path']

async function digests(schema) {
  const out = {}
  for (const table of ['pson_profiles', 'pson_profile_audit', 'pson_domain_index']) {
    const row = `(to_jsonb(t) - '{${HISTORY_COLUMNS.join(',')}}'::text[])::text`
    out[table] = await tableDigest((text) => db.sql(text), `"${schema}".${table}`, row)
  }
  return out
}

// A 0.3.0 deployment with data written by 0.3.0's statements: 12 profiles of
// 3 revisions, two users, one list order set through writeUserProfileIndex,
// and one ~20 KB document (the size TOAST compresses).
async function deploy030(schema) {
  const old = release030(schema)
  await db.sql(`create schema if not exists "${schema}"`)
  await db.sql(old.schemaSql)
  const big = { long: 'x'.repeat(100).repeat(200) }
  for (let revision = 1; revision <= 3; revision++) {
    for (let i = 1; i <= 12; i++) {
      const profile = buildProfile({
        profileId: `old-${i}`,
        userId: i % 2 ? 'user-odd' : 'user-even',
        sourceCount: revision,
      })
      if (i === 1) profile.layers.bulk = big
      await db.sql(old.queries.saveProfile, [
        JSON.stringify(profile),
        null,
        JSON.stringify({ request_id: `r${revision}` }),
      ])
    }
  }
  const order = ['old-8', 'old-2', 'old-12', 'old-4', 'old-6', 'old-10']
  await db.sql(old.queries.writeUserProfileIndex, [
    'user-even',
    'old-8',
    JSON.stringify(order),
    '2026-01-31T12:00:00.000Z',
  ])
  return old
}

describe('schemaSql over a 0.3.0 deployment', () => {
  const schema = db.schema
  const artifacts = createPostgresProfileStoreArtifacts({ schema })
  let old
  let before030
  let listed030
  let audit030

  before(async () => {
    old = await deploy030(schema)
    before030 = await digests(schema)
    listed030 = (await db.sql(old.queries.findProfilesByUserId, ['user-even'])).rows.map((row) => row.profile_id)
    audit030 = (await db.sql(old.queries.listAuditEntries, ['old-1', null, '10'])).rows.map((row) =>
      JSON.parse(row.entry),
    )
    await db.sql(artifacts.schemaSql)
  })

  test('the fixture is 0.3.0 as released: its tables and list index', async () => {
    assert.equal(fixture.commit, '6caccad')
    assert.match(
      fixture.schemaSql,
      /create index if not exists "pson_domain_index_user_idx" on .* \(user_id, position\);/,
    )
    assert.equal(listed030.length, 6)
  })

  test('the data is untouched; the audit table gains the history columns, empty', async () => {
    assert.deepEqual(await digests(schema), before030)
    const { rows } = await db.sql(
      `select count(*)::int as n, count(reverted_from)::int as reverted, count(erased_path)::int as erased
         from "${schema}".pson_profile_audit`,
    )
    assert.deepEqual(rows[0], { n: 36, reverted: 0, erased: 0 })
    const check = await db.repository('pg').checkSchema()
    assert.equal(check.ok, true)
  })

  test("the list index replaces 0.3.0's, and running schemaSql again changes nothing", async () => {
    const after = await indexes(schema)
    const names = after.map((index) => index.name)
    assert.ok(!names.includes('pson_domain_index_user_idx'), "0.3.0's list index is gone")
    const list = after.find((index) => index.name === 'pson_domain_index_list_idx')
    assert.ok(list?.valid, 'the new list index exists and is valid')
    assert.match(list.definition, /\(user_id, "position", profile_id\)$/)
    const compression = await documentCompression(schema)
    await db.sql(artifacts.schemaSql)
    assert.deepEqual(await indexes(schema), after, 'same indexes, same OIDs')
    assert.deepEqual(await documentCompression(schema), compression)
    assert.deepEqual(await digests(schema), before030)
  })

  test('the documents are set to lz4 where the server has it, and new values are stored so', async () => {
    const supported = await lz4Supported()
    const expected = supported ? 'l' : ''
    assert.deepEqual(await documentCompression(schema), { pson_profile_audit: expected, pson_profiles: expected })
    const { rows } = await db.sql(
      `select pg_column_compression(document) as method from "${schema}".pson_profile_audit where profile_id = 'old-1' and revision = 3`,
    )
    assert.equal(rows[0].method, 'pglz', 'stored values keep their compression')
  })

  // Each mode works on a profile of its own.
  const OWN = { native: 'old-5', pg: 'old-7', postgres: 'old-9' }
  for (const mode of MODES) {
    test(`${mode}: reads give what 0.3.0 gave; saves, prunes and JSON loads carry on`, async () => {
      const repository = db.repository(mode)
      const id = OWN[mode]
      assert.deepEqual(await repository.findProfilesByUserId('user-even'), listed030)
      const page = await repository.listAuditEntries('old-1', { limit: 10 })
      assert.deepEqual(
        page.entries,
        audit030.map((entry) => ({ ...entry, reverted_from: null, erased_path: null })),
      )
      const loaded = await repository.loadProfile(id)
      assert.equal(loaded.metadata.revision, 3)
      assert.deepEqual(JSON.parse(await repository.loadProfileJson(id)), loaded)
      const fresh = buildProfile({ profileId: `new-${mode}`, userId: `user-${mode}` })
      assert.equal((await repository.saveProfile(fresh)).metadata.revision, 1)
      assert.deepEqual(await repository.findProfilesByUserId(`user-${mode}`), [`new-${mode}`])
      const bulky = { ...loaded, layers: { ...loaded.layers, bulk: 'y'.repeat(30_000) } }
      assert.equal((await repository.saveProfile(bulky)).metadata.revision, 4)
      const { rows } = await db.sql(
        `select pg_column_compression(document) as method from "${schema}".pson_profile_audit
          where profile_id = $1 and revision = 4`,
        [id],
      )
      assert.equal(rows[0].method, (await lz4Supported()) ? 'lz4' : 'pglz')
      await repository.pruneAuditEntries({ keepLast: 2, profileId: id })
      assert.deepEqual(await repository.listProfileRevisions(id), [3, 4])
      await expectStoreError(repository.loadProfileRevision(id, 2), { code: 'not_found' })
    })
  }
})

describe('the list index built beforehand', () => {
  test('with create index concurrently under its name: schemaSql keeps it and drops the old one', async () => {
    const schema = `${db.schema}_pre`
    await deploy030(schema)
    await db.sql(
      `create index concurrently pson_domain_index_list_idx on "${schema}".pson_domain_index (user_id, position, profile_id)`,
    )
    const [built] = (await indexes(schema)).filter((index) => index.name === 'pson_domain_index_list_idx')
    await db.sql(createPostgresProfileStoreArtifacts({ schema }).schemaSql)
    const after = await indexes(schema)
    assert.deepEqual(
      after.find((index) => index.name === 'pson_domain_index_list_idx'),
      built,
    )
    assert.ok(!after.some((index) => index.name === 'pson_domain_index_user_idx'))
    await db.sql(`drop schema "${schema}" cascade`)
  })

  test('an invalid one (a concurrent build that failed) stops schemaSql before it drops anything', async () => {
    const schema = `${db.schema}_bad`
    await deploy030(schema)
    // A unique index over duplicate user ids fails and leaves an invalid index behind.
    await assert.rejects(
      db.sql(`create unique index concurrently pson_domain_index_list_idx on "${schema}".pson_domain_index (user_id)`),
      { code: '23505' },
    )
    await assert.rejects(db.sql(createPostgresProfileStoreArtifacts({ schema }).schemaSql), { code: 'P0001' })
    assert.ok((await indexes(schema)).some((index) => index.name === 'pson_domain_index_user_idx'))
    await db.sql(`drop schema "${schema}" cascade`)
  })
})
