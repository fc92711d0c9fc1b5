// The repository behind pgbouncer in transaction pooling mode (Debian package
// `pgbouncer`, installed by scripts/ecosystem/pgbouncer.mjs when missing, run
// on a free loopback port in front of DATABASE_URL's server).
//
// Transaction pooling hands each transaction to whichever server connection
// is free, so a statement prepared by name on one server connection does not
// exist on the next: pgbouncer >= 1.21 tracks protocol-level prepared
// statements itself (`max_prepared_statements`, set by the helper); older
// versions need a client that does not keep named statements.

import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'

import pg from 'pg'

import { startPgbouncer } from '../../scripts/ecosystem/pgbouncer.mjs'
import { createPostgresProfileStoreRepository, createPostgresQueryExecutor } from '../../index.mjs'
import { profile, useSchema, useServer } from './helpers.mjs'

const server = await useServer()
const schema = await useSchema(server, 'bouncer')
const bouncer = await startPgbouncer({ upstreamUrl: server.url, poolSize: 3 })
after(() => bouncer.stop())

const PROFILES = 8
const SAVES_PER_PROFILE = 5
const APP_INSTANCES = 3

/** What pgbouncer's admin console says about its own configuration. */
async function bouncerConfig() {
  const url = new URL(bouncer.url)
  url.pathname = '/pgbouncer'
  const client = new pg.Client({ connectionString: url.href })
  await client.connect()
  try {
    const { rows } = await client.query('show config')
    return Object.fromEntries(rows.map((row) => [row.key, row.value]))
  } finally {
    await client.end()
  }
}

test(`pgbouncer runs in transaction pooling mode (${bouncer.version})`, async () => {
  const config = await bouncerConfig()
  assert.equal(config.pool_mode, 'transaction')
  assert.equal(config.default_pool_size, '3')
  if (bouncer.supportsPreparedStatements) assert.equal(config.max_prepared_statements, '100')
})

describe('native repository through pgbouncer (transaction pooling)', () => {
  const tablePrefix = 'bnc_'
  let repositories

  before(() => {
    // Several application instances share pgbouncer's 3 server connections,
    // each with a native pool of its own.
    repositories = Array.from({ length: APP_INSTANCES }, () =>
      createPostgresProfileStoreRepository({ connectionString: bouncer.url, schema, tablePrefix, max: 4 }),
    )
  })
  after(() => Promise.all(repositories.map((repository) => repository.close())))

  test('ensureSchema', async () => {
    await repositories[0].ensureSchema()
    await repositories[1].ensureSchema()
    const { rows } = await server.sql(
      `select count(*)::int as n from information_schema.tables where table_schema = $1 and table_name like 'bnc\\_%'`,
      [schema],
    )
    assert.equal(rows[0].n, 3)
  })

  test('concurrent saves from several instances: revisions 1..N exactly once', async () => {
    const calls = []
    for (let round = 0; round < SAVES_PER_PROFILE; round++) {
      for (let p = 0; p < PROFILES; p++) {
        const repository = repositories[(round + p) % APP_INSTANCES]
        calls.push(repository.saveProfile(profile(`bp-${p}`, `bu-${p % 3}`, { round })))
      }
    }
    const outcomes = await Promise.allSettled(calls)
    const failures = outcomes.filter((o) => o.status === 'rejected').map((o) => `${o.reason.code} ${o.reason.sqlState ?? ''} ${o.reason.message}`)
    assert.deepEqual(failures, [], `${failures.length} of ${calls.length} saves failed through ${bouncer.version}`)
    for (let p = 0; p < PROFILES; p++) {
      const revisions = outcomes
        .filter((o, i) => i % PROFILES === p)
        .map((o) => o.value.metadata.revision)
        .sort((a, b) => a - b)
      assert.deepEqual(revisions, [1, 2, 3, 4, 5])
    }
  })

  test('concurrent loads and index reads', async () => {
    const calls = []
    for (let i = 0; i < 120; i++) {
      const repository = repositories[i % APP_INSTANCES]
      calls.push(i % 4 === 3 ? repository.findProfilesByUserId(`bu-${i % 3}`) : repository.loadProfile(`bp-${i % PROFILES}`))
    }
    const outcomes = await Promise.allSettled(calls)
    const failures = outcomes.filter((o) => o.status === 'rejected').map((o) => `${o.reason.code} ${o.reason.sqlState ?? ''} ${o.reason.message}`)
    assert.deepEqual(failures, [], `${failures.length} of ${calls.length} reads failed through ${bouncer.version}`)
    outcomes.forEach((o, i) => {
      if (i % 4 === 3) {
        const user = i % 3
        const expected = Array.from({ length: PROFILES }, (_, p) => p).filter((p) => p % 3 === user).map((p) => `bp-${p}`)
        assert.deepEqual([...o.value].sort(), expected)
      } else {
        assert.equal(o.value.profile_id, `bp-${i % PROFILES}`)
        assert.equal(o.value.metadata.revision, SAVES_PER_PROFILE)
      }
    })
  })

  test('listAuditEntries pages through every revision, newest first', async () => {
    const pages = await Promise.allSettled(
      Array.from({ length: PROFILES }, async (_, p) => {
        const repository = repositories[p % APP_INSTANCES]
        const seen = []
        let cursor = null
        do {
          const page = await repository.listAuditEntries(`bp-${p}`, { limit: 2, cursor })
          seen.push(...page.entries.map((entry) => entry.revision))
          cursor = page.nextCursor
        } while (cursor)
        return seen
      }),
    )
    const failures = pages.filter((o) => o.status === 'rejected').map((o) => `${o.reason.code} ${o.reason.sqlState ?? ''} ${o.reason.message}`)
    assert.deepEqual(failures, [], `${failures.length} of ${PROFILES} audit walks failed through ${bouncer.version}`)
    for (const page of pages) assert.deepEqual(page.value, [5, 4, 3, 2, 1])
  })

  test('the rows are on the server behind pgbouncer', async () => {
    const { rows } = await server.sql(`select count(*)::int as n, sum(revision)::int as revisions from "${schema}"."bnc_profiles"`)
    assert.deepEqual(rows[0], { n: PROFILES, revisions: PROFILES * SAVES_PER_PROFILE })
  })
})

// Executor mode over a pg Pool through the same pgbouncer. `prepare: false`
// sends unnamed statements, which any pgbouncer version forwards; the default
// (named statements, prepared once per connection) needs pgbouncer >= 1.21,
// and it is what the 0.2.2 call form `(createPostgresQueryExecutor(pool))` and
// `{ exec: pool }` get.
for (const [title, makeExec, prefix] of [
  ["createPostgresQueryExecutor(pool, { prepare: false })", (pool) => createPostgresQueryExecutor(pool, { prepare: false }), 'bnx_'],
  ['createPostgresQueryExecutor(pool), the 0.2.2 call form', (pool) => createPostgresQueryExecutor(pool), 'bny_'],
]) {
  describe(`executor mode over pg through pgbouncer (transaction pooling): ${title}`, () => {
    let pool
    let repository

    before(async () => {
      pool = new pg.Pool({ connectionString: bouncer.url, max: 8 })
      repository = createPostgresProfileStoreRepository(makeExec(pool), { schema, tablePrefix: prefix })
      await repository.ensureSchema()
    })
    after(async () => {
      await repository.close()
      await pool.end()
    })

    test('concurrent saves, loads and audit pages', async () => {
      const saves = await Promise.allSettled(Array.from({ length: 24 }, (_, i) => repository.saveProfile(profile(`xp-${i % 6}`, 'xu'))))
      const failures = saves.filter((o) => o.status === 'rejected').map((o) => `${o.reason.code} ${o.reason.sqlState ?? ''} ${o.reason.message}`)
      assert.deepEqual(failures, [], `${failures.length} of ${saves.length} saves failed through ${bouncer.version}`)
      const loaded = await Promise.all(Array.from({ length: 6 }, (_, p) => repository.loadProfile(`xp-${p}`)))
      assert.deepEqual(loaded.map((doc) => doc.metadata.revision), [4, 4, 4, 4, 4, 4])
      const page = await repository.listAuditEntries('xp-0', { limit: 10 })
      assert.deepEqual(page.entries.map((entry) => entry.revision), [4, 3, 2, 1])
    })
  })
}
