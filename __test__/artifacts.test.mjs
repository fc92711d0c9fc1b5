// createPostgresProfileStoreArtifacts: table names, statement texts, the DDL
// (idempotent, exactly three tables) and the identifier checks.

import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { after, before, describe, test } from 'node:test'

import {
  PostgresStoreError,
  createPostgresProfileStoreArtifacts,
  createPostgresProfileStoreRepository,
} from '../index.mjs'
import { useDatabase } from './helpers/database.mjs'

const db = await useDatabase({ schemaPrefix: 'art' })

// The StatementName union of index.d.ts, read from the file so that a statement
// added to the types without SQL (or the reverse) fails here.
function statementNamesFromTypes() {
  const dts = readFileSync(new URL('../index.d.ts', import.meta.url), 'utf8')
  const union = dts.match(/export type StatementName =([\s\S]*?)\n\n/)
  assert.ok(union, 'index.d.ts declares StatementName')
  return [...union[1].matchAll(/'([A-Za-z0-9]+)'/g)].map((m) => m[1]).sort()
}

const EXPECTED_STATEMENTS = [
  'loadProfile',
  'loadProfiles',
  'profileExists',
  'loadProfileByUserId',
  'findProfilesByUserId',
  'findProfilesByUserIds',
  'listRevisionNumbers',
  'saveProfile',
  'saveProfiles',
  'deleteProfile',
  'listAuditEntries',
  'loadProfileRevision',
  'writeCurrentProfile',
  'writeProfileRevision',
  'readUserProfileIndex',
  'writeUserProfileIndex',
  'serverInfo',
  'checkSchema',
  'pruneAuditEntries',
  'pruneProfileAuditEntries',
  'loadRevisionPair',
  'loadProfileAsOf',
  'revertProfile',
  'loadMergeBase',
  'listAuditSnapshots',
  'eraseFromHistory',
  'deleteProfilesByUserId',
  'walPosition',
].sort()

// Tables, columns, indexes, constraints and sequences of one schema/prefix:
// what "no change" is compared on. OIDs prove nothing was dropped and recreated.
async function catalogSnapshot(schema, prefix) {
  const tables = await db.sql(
    `select c.oid::int as oid, c.relname, c.relkind::text as relkind
       from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where n.nspname = $1 and starts_with(c.relname, $2)
      order by c.relname`,
    [schema, prefix],
  )
  const columns = await db.sql(
    `select table_name, column_name, ordinal_position, data_type, is_nullable, column_default
       from information_schema.columns
      where table_schema = $1 and starts_with(table_name, $2)
      order by table_name, ordinal_position`,
    [schema, prefix],
  )
  const indexes = await db.sql(
    `select tablename, indexname, indexdef from pg_indexes
      where schemaname = $1 and starts_with(tablename, $2)
      order by indexname`,
    [schema, prefix],
  )
  const constraints = await db.sql(
    `select con.conname, con.contype::text as contype, pg_get_constraintdef(con.oid) as def
       from pg_constraint con join pg_namespace n on n.oid = con.connamespace
      where n.nspname = $1 and starts_with(con.conname, $2)
      order by con.conname`,
    [schema, prefix],
  )
  return { tables: tables.rows, columns: columns.rows, indexes: indexes.rows, constraints: constraints.rows }
}

async function tableNames(schema, prefix) {
  const { rows } = await db.sql(
    `select table_name from information_schema.tables
      where table_schema = $1 and starts_with(table_name, $2) and table_type = 'BASE TABLE'
      order by table_name`,
    [schema, prefix],
  )
  return rows.map((row) => row.table_name)
}

function profile(id, user, marker) {
  return {
    profile_id: id,
    user_id: user,
    tenant_id: 'tenant',
    pson_version: '5.0',
    domains: { active: ['core'] },
    layers: { marker },
    metadata: { revision: 1, source_count: 1, updated_at: '2026-01-02T03:04:05.678Z' },
  }
}

describe('tables and queries', () => {
  test('defaults: schema public, prefix pson_, quoted and fully qualified', () => {
    const artifacts = createPostgresProfileStoreArtifacts()
    assert.deepEqual({ ...artifacts.tables }, {
      profiles: '"public"."pson_profiles"',
      profileAudit: '"public"."pson_profile_audit"',
      domainIndex: '"public"."pson_domain_index"',
    })
    assert.deepEqual({ ...createPostgresProfileStoreArtifacts({}).tables }, { ...artifacts.tables })
  })

  test('custom schema and prefix are quoted and fully qualified', () => {
    const artifacts = createPostgresProfileStoreArtifacts({ schema: 'Tenant_A', tablePrefix: 'App_' })
    assert.deepEqual({ ...artifacts.tables }, {
      profiles: '"Tenant_A"."App_profiles"',
      profileAudit: '"Tenant_A"."App_profile_audit"',
      domainIndex: '"Tenant_A"."App_domain_index"',
    })
    // Only the schema given, only the prefix given.
    assert.equal(createPostgresProfileStoreArtifacts({ schema: 's1' }).tables.profiles, '"s1"."pson_profiles"')
    assert.equal(createPostgresProfileStoreArtifacts({ tablePrefix: 'x_' }).tables.profiles, '"public"."x_profiles"')
  })

  test('queries has exactly the statements of StatementName in index.d.ts', () => {
    assert.deepEqual(statementNamesFromTypes(), EXPECTED_STATEMENTS)
    const { queries, tables } = createPostgresProfileStoreArtifacts({ schema: 'sch', tablePrefix: 'pre_' })
    assert.deepEqual(Object.keys(queries).sort(), EXPECTED_STATEMENTS)
    for (const name of EXPECTED_STATEMENTS) {
      assert.equal(typeof queries[name], 'string', name)
      assert.ok(queries[name].trim().length > 0, name)
      // Never the default names when another schema/prefix was asked for.
      assert.ok(!queries[name].includes('"public"'), `${name} uses "public"`)
      assert.ok(!/"pson_/.test(queries[name]), `${name} uses a "pson_ table`)
    }
    assert.ok(queries.loadProfile.includes(tables.profiles))
    assert.ok(queries.saveProfile.includes(tables.profiles))
    assert.ok(queries.saveProfile.includes(tables.profileAudit))
    assert.ok(queries.saveProfile.includes(tables.domainIndex))
    assert.ok(queries.listAuditEntries.includes(tables.profileAudit))
    assert.ok(queries.readUserProfileIndex.includes(tables.domainIndex))
  })

  test('a caller cannot change the SQL that later calls get', () => {
    const first = createPostgresProfileStoreArtifacts()
    for (const attempt of [
      () => {
        first.tables.profiles = '"public"."hacked"'
      },
      () => {
        first.queries.loadProfile = 'drop table "public"."pson_profiles"'
      },
      () => {
        first.schemaSql = ''
      },
    ]) {
      try {
        attempt()
      } catch {
        // frozen: fine
      }
    }
    const again = createPostgresProfileStoreArtifacts()
    assert.equal(again.tables.profiles, '"public"."pson_profiles"')
    assert.match(again.queries.loadProfile, /^select /)
    assert.match(again.schemaSql, /create table if not exists "public"\."pson_profiles"/)
  })
})

describe('schemaSql through pg', () => {
  const prefix = 'ddl_'
  const { schemaSql } = createPostgresProfileStoreArtifacts({ schema: db.schema, tablePrefix: prefix })

  test('applied twice: no error, exactly three tables, and the second run changes nothing', async () => {
    await db.sql(schemaSql)
    assert.deepEqual(await tableNames(db.schema, prefix), ['ddl_domain_index', 'ddl_profile_audit', 'ddl_profiles'])
    const first = await catalogSnapshot(db.schema, prefix)
    assert.equal(first.tables.filter((t) => t.relkind === 'r').length, 3)
    assert.ok(first.indexes.length >= 5, 'primary keys and the user/profile indexes exist')

    await db.sql(schemaSql)
    assert.deepEqual(await tableNames(db.schema, prefix), ['ddl_domain_index', 'ddl_profile_audit', 'ddl_profiles'])
    assert.deepEqual(await catalogSnapshot(db.schema, prefix), first)

    await db.sql(schemaSql)
    assert.deepEqual(await catalogSnapshot(db.schema, prefix), first)
  })

  test('the DDL keeps rows already stored', async () => {
    await db.sql(schemaSql)
    const repository = db.repository('pg', { tablePrefix: prefix })
    await repository.saveProfile(profile('keep', 'u-keep', 'x'))
    const before = await db.snapshot(prefix)
    await db.sql(schemaSql)
    assert.deepEqual(await db.snapshot(prefix), before)
    assert.equal((await repository.loadProfile('keep')).layers.marker, 'x')
  })

  test('the longest accepted prefix creates every object under its full name', async () => {
    const longest = `L${'p'.repeat(41)}` // 42 chars + 'domain_index_list_idx' (21) = 63 bytes
    const artifacts = createPostgresProfileStoreArtifacts({ schema: db.schema, tablePrefix: longest })
    await db.sql(artifacts.schemaSql)
    await db.sql(artifacts.schemaSql)
    assert.deepEqual(await tableNames(db.schema, longest), [
      `${longest}domain_index`,
      `${longest}profile_audit`,
      `${longest}profiles`,
    ])
    const { indexes } = await catalogSnapshot(db.schema, longest)
    assert.ok(indexes.some((i) => i.indexname === `${longest}domain_index_list_idx`))
  })
})

describe('side by side', () => {
  const otherSchema = `art2_${randomBytes(5).toString('hex')}`
  const repositories = {}

  before(async () => {
    await db.sql(`create schema "${otherSchema}"`)
    repositories.a = db.repository('native', { tablePrefix: 'side_' })
    repositories.b = db.repository('pg', { tablePrefix: 'other_' })
    repositories.c = db.repository('native', { schema: otherSchema, tablePrefix: 'side_' })
    for (const repository of Object.values(repositories)) await repository.ensureSchema()
  })

  after(async () => {
    for (const repository of Object.values(repositories)) await repository.close()
    await db.sql(`drop schema if exists "${otherSchema}" cascade`)
  })

  test('another prefix and another schema keep their own rows', async () => {
    for (const [name, repository] of Object.entries(repositories)) {
      await repository.saveProfile(profile('shared', 'user-1', name))
      await repository.saveProfile(profile(`only-${name}`, 'user-1', name))
    }
    for (const [name, repository] of Object.entries(repositories)) {
      const loaded = await repository.loadProfile('shared')
      assert.equal(loaded.layers.marker, name)
      assert.equal(loaded.metadata.revision, 1, `${name}: shared was saved once in this store`)
      assert.deepEqual(await repository.listProfileRevisions('shared'), [1])
      assert.deepEqual(await repository.findProfilesByUserId('user-1'), ['shared', `only-${name}`])
      for (const other of Object.keys(repositories).filter((o) => o !== name)) {
        assert.equal(await repository.profileExists(`only-${other}`), false, `${name} sees only-${other}`)
      }
    }
    const count = async (schema, table) =>
      (await db.sql(`select count(*)::int as n from "${schema}"."${table}"`)).rows[0].n
    assert.equal(await count(db.schema, 'side_profiles'), 2)
    assert.equal(await count(db.schema, 'other_profiles'), 2)
    assert.equal(await count(otherSchema, 'side_profiles'), 2)
    assert.equal(await count(db.schema, 'side_profile_audit'), 2)
  })
})

describe('invalid schema and tablePrefix', () => {
  const BAD = ['a-b', '1x', 'x"; drop table y; --', '', 'é', 'a b', 'x.y']
  const LONG_PREFIX = 'p'.repeat(60)

  function assertValidation(fn, field) {
    let thrown
    try {
      fn()
    } catch (error) {
      thrown = error
    }
    assert.ok(thrown !== undefined, `expected a synchronous throw (${field})`)
    assert.ok(thrown instanceof PostgresStoreError, `not a PostgresStoreError: ${thrown}`)
    assert.ok(thrown instanceof Error)
    assert.equal(thrown.code, 'validation_error')
    assert.equal(thrown.field, field)
  }

  const forms = {
    artifacts: (options) => createPostgresProfileStoreArtifacts(options),
    native: (options) => createPostgresProfileStoreRepository({ connectionString: db.url, ...options }),
    executor: (options) => createPostgresProfileStoreRepository({ exec: async () => ({ rows: [] }), ...options }),
    'executor (0.2.2 form)': (options) => createPostgresProfileStoreRepository(async () => ({ rows: [] }), options),
  }

  for (const [form, create] of Object.entries(forms)) {
    test(`${form}: bad values throw validation_error naming the option`, () => {
      for (const bad of BAD) {
        assertValidation(() => create({ schema: bad }), 'schema')
        assertValidation(() => create({ tablePrefix: bad }), 'tablePrefix')
      }
      assertValidation(() => create({ tablePrefix: LONG_PREFIX }), 'tablePrefix')
      // One byte over: 43 + 'domain_index_user_idx' = 64 bytes.
      assertValidation(() => create({ tablePrefix: 'p'.repeat(43) }), 'tablePrefix')
      assertValidation(() => create({ schema: 's'.repeat(64) }), 'schema')
      assertValidation(() => create({ schema: 5 }), 'schema')
      assertValidation(() => create({ tablePrefix: 7 }), 'tablePrefix')
    })

    test(`${form}: a non-string whose String() is a valid, already used name is still rejected`, () => {
      // Put the default names in the artifacts cache first, as any earlier call would.
      createPostgresProfileStoreArtifacts()
      createPostgresProfileStoreArtifacts({ schema: db.schema })
      assertValidation(() => create({ tablePrefix: ['pson_'] }), 'tablePrefix')
      assertValidation(() => create({ schema: ['public'] }), 'schema')
      assertValidation(() => create({ schema: { toString: () => db.schema } }), 'schema')
    })
  }

  for (const [form, create] of Object.entries(forms)) {
    test(`${form}: 0.2.2's table-name options are checked, never ignored`, () => {
      for (const option of ['currentProfilesTable', 'profileRevisionsTable', 'userIndexTable']) {
        for (const bad of ['', 'a\u0000b', 5, ['pson_profiles_current'], 't'.repeat(64)]) {
          assertValidation(() => create({ [option]: bad }), option)
        }
        assert.doesNotThrow(() => create({ [option]: 't'.repeat(63) }))
      }
    })
  }

  test("upgradeSql reads the 0.2.2 tables named by 0.2.2's options, quoted", () => {
    const legacy = {
      currentProfilesTable: 'AppCurrent',
      profileRevisionsTable: 'app "revisions"',
      userIndexTable: "o'users",
    }
    const { upgradeSql } = createPostgresProfileStoreArtifacts({ schema: 'app', ...legacy })
    assert.ok(upgradeSql.includes('from "app"."AppCurrent" c'), upgradeSql)
    assert.ok(upgradeSql.includes('from "app"."app ""revisions""" rev'), upgradeSql)
    assert.ok(upgradeSql.includes(`from "app"."o'users" u`), upgradeSql)
    assert.ok(upgradeSql.includes(`to_regclass('"app"."o''users"')`), upgradeSql)
    assert.ok(!upgradeSql.includes('pson_profiles_current'), upgradeSql)
    // The schema, the statements and the tables do not depend on them.
    const plain = createPostgresProfileStoreArtifacts({ schema: 'app' })
    const custom = createPostgresProfileStoreArtifacts({ schema: 'app', ...legacy })
    assert.equal(custom.schemaSql, plain.schemaSql)
    assert.deepEqual(custom.queries, plain.queries)
    assert.notEqual(custom.upgradeSql, plain.upgradeSql)
  })

  test('a 0.2.2 table name cannot end the upgrade script early', async () => {
    const { upgradeSql } = createPostgresProfileStoreArtifacts({
      schema: db.schema,
      userIndexTable: 'x$upgrade$; drop table kept; --',
    })
    await db.sql(`create table "${db.schema}".kept (id int)`)
    await db.sql(createPostgresProfileStoreArtifacts({ schema: db.schema }).schemaSql)
    await db.sql(upgradeSql)
    const { rows } = await db.sql(`select to_regclass($1) is not null as present`, [`"${db.schema}".kept`])
    assert.equal(rows[0].present, true)
  })

  test('the injection attempt never reached the database', async () => {
    await db.sql(`create table "${db.schema}".y (id int)`)
    assert.throws(() => createPostgresProfileStoreArtifacts({ tablePrefix: 'x"; drop table y; --' }))
    const { rows } = await db.sql(`select to_regclass($1) is not null as present`, [`"${db.schema}".y`])
    assert.equal(rows[0].present, true)
  })

  test('boundary values are accepted', () => {
    assert.doesNotThrow(() => createPostgresProfileStoreArtifacts({ tablePrefix: 'p'.repeat(42) }))
    assert.doesNotThrow(() => createPostgresProfileStoreArtifacts({ schema: 's'.repeat(63) }))
    assert.doesNotThrow(() => createPostgresProfileStoreArtifacts({ schema: '_', tablePrefix: '_' }))
  })
})
