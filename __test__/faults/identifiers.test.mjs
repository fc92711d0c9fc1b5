// Identifiers (issue 6): schema/tablePrefix injection attempts are rejected
// with validation_error (naming the option) before any SQL is built or run:
// no statement reaches the executor, and no schema or table appears.

import assert from 'node:assert/strict'
import { after, describe, test } from 'node:test'

import pg from 'pg'

import {
  createPostgresProfileStoreArtifacts,
  createPostgresProfileStoreRepository,
  PostgresStoreError,
} from '../../index.mjs'
import { useDatabase } from '../helpers/database.mjs'
import { failOnSilentExit, uid } from './helpers.mjs'

failOnSilentExit()

const db = await useDatabase({ schemaPrefix: 'fident' })

const HOSTILE = [
  '',
  ' ',
  'public"; drop table pson_profiles; --',
  'x"."y',
  '"quoted"',
  "pub'lic",
  'a;b',
  'a--b',
  'a/*b*/',
  'a b',
  'a\tb',
  'a\nb',
  'a\u0000b',
  'a.b',
  'a-b',
  'a$b',
  '$1',
  '1abc',
  '9',
  'a\\b',
  'a%b',
  'a)b',
  "'; select pg_sleep(10); --",
  'pub\u200blic', // zero-width space
  'pub\u200dlic', // zero-width joiner
  'publ\u0456c', // Cyrillic і
  '\u0440ublic', // Cyrillic р
  'ｐｕｂｌｉｃ', // fullwidth
  'pson\uff3f', // fullwidth low line
  'p\u0131son', // dotless ı
  'caf\u00e9', // a letter PostgreSQL would accept unquoted, but not [A-Za-z_]
  'cafe\u0301', // combining accent
  '\u202epublic', // right-to-left override
  'emoji😀',
  '\ud800',
  'ß',
  'a'.repeat(64),
  `a${'\u00e9'.repeat(31)}`, // 63 characters, 63 UTF-16 units, more bytes
]

// Not strings at all.
const WRONG_TYPES = [42, true, {}, ['public'], Symbol.for('public')]

const LONGEST_SUFFIX = 'domain_index_profile_idx'

/**
 * Schemas and tables that a hostile value could have created (the server is
 * shared with other suites, so the check is by name, not a whole-catalog
 * diff): schemas named like a hostile value (also as PostgreSQL would
 * truncate it), tables named <hostile prefix><table>, and any table in this
 * file's schema, which only hostile prefixes were pointed at.
 */
async function traces() {
  const names = HOSTILE.filter((v) => !v.includes('\u0000') && v.isWellFormed())
  const truncated = names.map((v) => Buffer.from(v).subarray(0, 63).toString())
  const tableNames = names.flatMap((v) => ['profiles', 'profile_audit', 'domain_index'].map((t) => `${v}${t}`))
  const { rows } = await db.sql(
    `select 'schema' as kind, schema_name::text as name from information_schema.schemata
       where schema_name = any($1::text[]) or schema_name = any($2::text[])
     union all
     select 'table', table_schema || '.' || table_name from information_schema.tables
       where table_name = any($3::text[]) or table_schema = $4`,
    [names, truncated, tableNames, db.schema],
  )
  return rows
}

function rejection(action) {
  try {
    const value = action()
    return { threw: false, value }
  } catch (error) {
    return { threw: true, error }
  }
}

function assertValidation(result, field, label) {
  assert.equal(result.threw, true, `${label}: expected a synchronous validation_error, but it was accepted`)
  assert.ok(result.error instanceof PostgresStoreError, `${label}: ${result.error}`)
  assert.equal(result.error.code, 'validation_error', `${label}: ${result.error.message}`)
  assert.equal(result.error.field, field, `${label}: field`)
}

assert.deepEqual(await traces(), [], 'nothing of the kind exists before the attempts')

// An executor over pg that records every statement it is asked to run.
const pool = new pg.Pool({ connectionString: db.url, max: 2 })
const executed = []
const recordingExec = (sql, params) => {
  executed.push(sql)
  return pool.query(sql, params)
}
after(() => pool.end())

describe('hostile schema and tablePrefix values', () => {
  for (const [field, other] of [
    ['schema', 'tablePrefix'],
    ['tablePrefix', 'schema'],
  ]) {
    test(`${field}: artifacts, native and executor repositories all reject with validation_error`, async () => {
      const valid = { schema: db.schema, tablePrefix: 'pson_' }
      for (const value of [...HOSTILE, ...WRONG_TYPES]) {
        const label = `${field}=${JSON.stringify(typeof value === 'symbol' ? String(value) : value)}`
        const options = { ...valid, [field]: value }
        assertValidation(rejection(() => createPostgresProfileStoreArtifacts(options)), field, `artifacts ${label}`)
        const native = rejection(() => createPostgresProfileStoreRepository({ connectionString: db.url, ...options }))
        // Never run anything through a repository that accepted a hostile name.
        if (!native.threw) await native.value.close()
        assertValidation(native, field, `native ${label}`)
        assertValidation(
          rejection(() => createPostgresProfileStoreRepository({ exec: recordingExec, ...options })),
          field,
          `executor ${label}`,
        )
        assertValidation(
          rejection(() => createPostgresProfileStoreRepository(recordingExec, options)),
          field,
          `0.2.2 form ${label}`,
        )
        assert.equal(other in options, true)
      }
      assert.deepEqual(executed, [], 'no statement reached the executor')
    })
  }

  test('names longer than 63 bytes are rejected; the longest allowed ones work', async () => {
    // schema: 63 bytes is the limit.
    assert.equal(typeof createPostgresProfileStoreArtifacts({ schema: 's'.repeat(63) }).schemaSql, 'string')
    assertValidation(rejection(() => createPostgresProfileStoreArtifacts({ schema: 's'.repeat(64) })), 'schema', '64-byte schema')
    // tablePrefix: every object name <prefix><suffix> must fit in 63 bytes.
    const longest = 63 - LONGEST_SUFFIX.length
    assert.equal(typeof createPostgresProfileStoreArtifacts({ tablePrefix: 'p'.repeat(longest) }).schemaSql, 'string')
    for (const length of [64 - 'profile_audit'.length, 64 - 'profiles'.length, 64, 200]) {
      assertValidation(
        rejection(() => createPostgresProfileStoreArtifacts({ tablePrefix: 'p'.repeat(length) })),
        'tablePrefix',
        `${length}-byte prefix`,
      )
    }
  })

  test('no schema or table appeared in the database', async () => {
    assert.deepEqual(executed, [])
    assert.deepEqual(await traces(), [])
  })
})

describe('legitimate but unusual identifiers are quoted, not mangled', () => {
  test('mixed case, leading underscore, digits: exactly these names are created and used', async () => {
    const schema = `Fault_Mixed_${uid('S')}`
    const tablePrefix = '_P9_'
    const repository = createPostgresProfileStoreRepository({ connectionString: db.url, schema, tablePrefix })
    try {
      await repository.ensureSchema()
      const saved = await repository.saveProfile({ profile_id: 'q"uote\'d; --', user_id: 'u' })
      assert.equal(saved.metadata.revision, 1)
      assert.equal((await repository.loadProfile('q"uote\'d; --')).user_id, 'u')
      const { rows } = await db.sql(
        `select table_name from information_schema.tables where table_schema = $1 order by table_name`,
        [schema],
      )
      assert.deepEqual(
        rows.map((r) => r.table_name),
        ['_P9_domain_index', '_P9_profile_audit', '_P9_profiles'],
      )
      const artifacts = createPostgresProfileStoreArtifacts({ schema, tablePrefix })
      assert.equal(artifacts.tables.profiles, `"${schema}"."_P9_profiles"`)
    } finally {
      await repository.close()
      await db.sql(`drop schema if exists "${schema}" cascade`)
    }
  })
})
