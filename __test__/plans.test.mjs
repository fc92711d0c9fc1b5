// Query plans at scale: on a seeded, ANALYZEd deployment (100k profiles, ~250k
// audit rows, 100k index rows, a user with 2,000 profiles and profiles with
// 500 revisions), every statement in `artifacts.queries` runs under EXPLAIN
// ANALYZE (in a transaction that is rolled back), with the custom plan that a
// first execution gets and the generic plan that a prepared statement
// switches to after five (the native pool and both executors prepare them).
// A plan fails on a sequential scan of our tables, on a sort of our tables'
// rows that an index should serve, and on an index scan that reads many rows
// only to discard them. Statements that call our PL/pgSQL functions are also
// run under auto_explain, which shows the functions' own statements.
//
// A statement added to `queries` without a case below fails the test: give it
// realistic parameters here.

import assert from 'node:assert/strict'
import { before, describe, test } from 'node:test'

import { createPostgresProfileStoreArtifacts } from '../index.mjs'
import { useDatabase } from './helpers/database.mjs'
import { buildProfile, failIfUnfinished } from './helpers/profiles.mjs'

failIfUnfinished(import.meta.url)
const db = await useDatabase({ schemaPrefix: 'plans' })
const artifacts = createPostgresProfileStoreArtifacts({ schema: db.schema })
const { profiles, profileAudit, domainIndex } = artifacts.tables

const PROFILES = 100_000
const USERS = 20_000
const BIG_USER_PROFILES = 2_000
const DEEP_PROFILES = 100
const DEEP_REVISIONS = 500
// An index scan may discard this many rows (a user's other profiles, a page
// boundary); far more means the index does not bound the scan.
const MAX_ROWS_REMOVED_BY_FILTER = 200

// A sort of this many rows is left to the planner (for a handful of rows a
// bitmap scan and a sort can cost less than an ordered index scan); past it,
// an index must give the order. The seed's large user has 2,000 profiles.
const MAX_SORTED_ROWS = 100

// Sorts of our rows that no index can serve, and why that is fine.
const ALLOWED_SORTS = {
  // The latest profile of a user is the one with the newest latest_seq, which
  // every save moves: an index on it would make every save of the index row
  // a non-HOT update (three index writes instead of none). The top-1 sort
  // runs over one user's index rows (2,000 for the largest user here).
  loadProfileByUserId: 'top-1 by latest_seq over one user',
  // Several users at once: before PostgreSQL 17 a btree scan of `= any(...)`
  // returns each key's rows in turn but not ordered across keys.
  findProfilesByUserIds: 'rows of up to a statement of users',
}

// Index scans that discard rows by design, and why that is fine.
const ALLOWED_FILTERS = {
  // An erasure must look at every snapshot of the profile (one primary-key
  // range) for the path; only an index on the documents' paths could skip
  // those that lack it, at a cost to every save. Erasures are rare.
  eraseFromHistory: "every snapshot of one profile, for the erased path",
}

const profileId = (i) => `p-${i}`
const userOf = (i) => (i <= BIG_USER_PROFILES ? 'user-big' : `u-${i % USERS}`)
const deepProfile = 7 // p-1 .. p-100 have 500 revisions
const document = (i) => JSON.stringify(buildProfile({ profileId: profileId(i), userId: userOf(i) }))
const minutesAgo = (minutes) => new Date(Date.now() - minutes * 60_000).toISOString()
const AN_HOUR_AGO = minutesAgo(60)
const textArray = (items) => `{${items.map((item) => `"${item}"`).join(',')}}`

// Realistic parameters per statement: each list is one or more runs.
const CASES = {
  loadProfile: [[profileId(4242)]],
  loadProfiles: [[textArray([1, 50, 999, 4242, 12_345, 50_000, 77_777, 99_999].map(profileId))]],
  profileExists: [[profileId(4242)]],
  loadProfileByUserId: [[userOf(4242)], ['user-big']],
  findProfilesByUserId: [[userOf(4242)], ['user-big']],
  findProfilesByUserIds: [[textArray(['u-1', 'u-2', 'u-3', 'u-4', 'u-5', 'u-6', 'u-7', 'user-big'])]],
  listRevisionNumbers: [[profileId(deepProfile)]],
  saveProfile: [
    [document(4242), null, '{"request_id":"plans"}'],
    [document(deepProfile), String(DEEP_REVISIONS), null],
  ],
  saveProfiles: [[`[${[11, 4242, 99_999].map((i) => `{"d":${document(i)},"e":null,"c":null}`).join(',')}]`]],
  deleteProfile: [[profileId(deepProfile)], [profileId(4242)]],
  // Page 1 and a page deep in a long history.
  // Page 1 and a page deep in a long history; time windows (the seed records
  // revision r of a deep profile 500 - r minutes ago): recent, old, both ends.
  listAuditEntries: [
    [profileId(deepProfile), null, '51', null, null],
    [profileId(deepProfile), '60', '51', null, null],
    [profileId(deepProfile), null, '51', AN_HOUR_AGO, null],
    [profileId(deepProfile), null, '51', null, minutesAgo(400)],
    [profileId(deepProfile), '90', '51', minutesAgo(450), minutesAgo(300)],
  ],
  // diffRevisions; loadProfile({ asOf }) recent and far back.
  loadRevisionPair: [[profileId(deepProfile), '10', '490']],
  loadProfileAsOf: [
    [profileId(deepProfile), AN_HOUR_AGO],
    [profileId(deepProfile), minutesAgo(450)],
    [profileId(4242), minutesAgo(10_000)],
  ],
  // revertProfile to an old revision of a long history; a merge's base and current document.
  revertProfile: [
    [profileId(deepProfile), '250', null, '{"request_id":"plans"}'],
    [profileId(4242), '1', '1', null],
  ],
  loadMergeBase: [[profileId(deepProfile), '250']],
  // blameProfile's pages: the newest, and one deep in a long history.
  // A path every snapshot of a long history holds, and one that none holds.
  eraseFromHistory: [
    [profileId(deepProfile), '["layers","observed","note"]', '/layers/observed/note', '{"request_id":"plans"}'],
    [profileId(4242), '["layers","nothing"]', '/layers/nothing', null],
    [profileId(deepProfile + 1), '["layers","nothing"]', '/layers/nothing', null],
  ],
  // A typical user. Not user-big: its 2,000 profiles hold a fifth of the seeded
  // audit rows, and deleting those is planned (rightly) as one pass over the table.
  deleteProfilesByUserId: [[userOf(4242)], [userOf(4243)]],
  listAuditSnapshots: [
    [profileId(deepProfile), null, '20'],
    [profileId(deepProfile), '100', '20'],
  ],
  loadProfileRevision: [[profileId(deepProfile), '250']],
  writeCurrentProfile: [[document(4242)]],
  writeProfileRevision: [[document(deepProfile).replace('"revision":1', '"revision":250'), null]],
  readUserProfileIndex: [[userOf(4242)], ['user-big']],
  writeUserProfileIndex: [[userOf(4242), profileId(4242), `["${profileId(4242)}"]`, '2026-01-31T12:00:00.000Z']],
  serverInfo: [[]],
  walPosition: [[]],
  checkSchema: [[]],
  // From the start and from the middle; keepLast, olderThan (the seed records
  // revision r of a deep profile 500 - r minutes ago) and both.
  pruneAuditEntries: [
    ['', '2', null, '1000'],
    [profileId(50_000), null, AN_HOUR_AGO, '1000'],
    ['', '3', AN_HOUR_AGO, '500'],
  ],
  pruneProfileAuditEntries: [
    [profileId(deepProfile), '10', null, '1000'],
    [profileId(deepProfile), null, AN_HOUR_AGO, '100'],
  ],
}

async function seed() {
  await db.sql(artifacts.schemaSql)
  const doc = (i, revision) => `jsonb_build_object('pson_version', '5.0', 'profile_id', 'p-' || ${i},
      'user_id', ${userSql(i)}, 'tenant_id', 'tenant-' || (${i} % 7),
      'domains', jsonb_build_object('active', jsonb_build_array('core', 'work')),
      'layers', jsonb_build_object('observed', jsonb_build_object('note', repeat('x', 200))),
      'metadata', jsonb_build_object('revision', ${revision}, 'source_count', ${i} % 10))`
  const userSql = (i) => `case when ${i} <= ${BIG_USER_PROFILES} then 'user-big' else 'u-' || (${i} % ${USERS}) end`
  const revisionsOf = (i) => `case when ${i} <= ${DEEP_PROFILES} then ${DEEP_REVISIONS} else 1 + ${i} % 3 end`
  await db.sql(`
    insert into ${profiles} (profile_id, user_id, tenant_id, revision, document)
    select 'p-' || i, ${userSql('i')}, 'tenant-' || (i % 7), ${revisionsOf('i')}, ${doc('i', revisionsOf('i'))}
    from generate_series(1, ${PROFILES}) i`)
  await db.sql(`
    insert into ${profileAudit} (profile_id, revision, previous_revision, user_id, tenant_id, source_count,
                                 changed_top_level_paths, pson_version, recorded_at, document)
    select 'p-' || i, r, nullif(r - 1, 0), ${userSql('i')}, 'tenant-' || (i % 7), i % 10, '{metadata}', '5.0',
           now() - make_interval(mins => ${DEEP_REVISIONS} - r), ${doc('i', 'r')}
    from generate_series(1, ${PROFILES}) i, generate_series(1, ${revisionsOf('i')}) r`)
  await db.sql(`
    insert into ${domainIndex} (profile_id, user_id, tenant_id, active_domains, position, latest_seq)
    select 'p-' || i, ${userSql('i')}, 'tenant-' || (i % 7), '{core,work}', i, i
    from generate_series(1, ${PROFILES}) i`)
  for (const table of [profiles, profileAudit, domainIndex]) await db.sql(`vacuum analyze ${table}`)
}

const OUR_TABLES = new Set(Object.values(artifacts.tables).map((qualified) => qualified.split('.')[1].slice(1, -1)))
const isOurs = (node) => OUR_TABLES.has(node['Relation Name'])
const inputs = (node) =>
  (node.Plans ?? []).filter((child) => !['SubPlan', 'InitPlan'].includes(child['Parent Relationship']))

// Whether the rows flowing out of `node` come from one of our tables.
function readsOurRows(node) {
  return inputs(node).some((child) => isOurs(child) || readsOurRows(child))
}

/** What is wrong with a plan (EXPLAIN's JSON `Plan` node), as readable lines. */
function planProblems(name, plan) {
  const found = []
  const visit = (node) => {
    const type = node['Node Type']
    const where = `${type}${node['Relation Name'] ? ` on ${node['Relation Name']}` : ''}`
    if (type === 'Seq Scan' && isOurs(node)) found.push(`sequential scan: ${where}`)
    const sorted = (node['Actual Rows'] ?? 0) * (node['Actual Loops'] ?? 1)
    if (
      (type === 'Sort' || type === 'Incremental Sort') &&
      readsOurRows(node) &&
      !(name in ALLOWED_SORTS) &&
      sorted > MAX_SORTED_ROWS
    ) {
      found.push(`sort of our rows by ${JSON.stringify(node['Sort Key'])}`)
    }
    const removed = (node['Rows Removed by Filter'] ?? 0) * (node['Actual Loops'] ?? 1)
    if (isOurs(node) && removed > MAX_ROWS_REMOVED_BY_FILTER && !(name in ALLOWED_FILTERS)) {
      found.push(`${where} discarded ${removed} rows by filter ${node.Filter}`)
    }
    for (const child of node.Plans ?? []) visit(child)
  }
  visit(plan)
  return found
}

const parameterCount = (sql) => Math.max(0, ...[...sql.matchAll(/\$(\d+)/g)].map((m) => Number(m[1])))
const literal = (value) => (value === null ? 'null' : `'${String(value).replaceAll("'", "''")}'`)

// The plans of one run, custom and generic, each under EXPLAIN ANALYZE in a
// transaction that is rolled back (saves and deletes really run). The
// parameters are typed text, as the native pool sends them.
async function plansOf(sql, params) {
  const client = await db.admin.connect()
  const plans = {}
  try {
    const count = parameterCount(sql)
    assert.equal(params.length, count, 'the case gives every parameter')
    const args = count === 0 ? '' : `(${params.map(literal).join(', ')})`
    for (const mode of ['force_custom_plan', 'force_generic_plan']) {
      await client.query('begin')
      try {
        await client.query(`set local plan_cache_mode = ${mode}`)
        await client.query(
          `prepare plans_case${count === 0 ? '' : `(${Array(count).fill('text').join(', ')})`} as ${sql}`,
        )
        const { rows } = await client.query(`explain (analyze, format json) execute plans_case${args}`)
        plans[mode] = rows[0]['QUERY PLAN'][0].Plan
      } finally {
        await client.query('rollback')
        await client.query('deallocate all')
      }
    }
  } finally {
    client.release()
  }
  return plans
}

// Plans of the statements a call of our PL/pgSQL functions runs, as
// auto_explain reports them (log_level notice: to this client only).
async function nestedPlansOf(sql, params) {
  const client = await db.admin.connect()
  const plans = []
  const collect = (notice) => {
    if (notice.message.startsWith('duration:'))
      plans.push(JSON.parse(notice.message.slice(notice.message.indexOf('{'))))
  }
  client.on('notice', collect)
  try {
    await client.query('begin')
    await client.query("load 'auto_explain'")
    for (const setting of [
      'auto_explain.log_min_duration = 0',
      'auto_explain.log_analyze = on',
      'auto_explain.log_nested_statements = on',
      "auto_explain.log_format = 'json'",
      "auto_explain.log_level = 'notice'",
    ]) {
      await client.query(`set local ${setting}`)
    }
    await client.query(sql, params)
  } finally {
    await client.query('rollback').catch(() => {})
    client.removeListener('notice', collect)
    client.release()
  }
  return plans.map((entry) => ({ text: entry['Query Text'], plan: entry.Plan }))
}

// Our functions' names as the statements spell them: always quoted
// (`format('%I')` quotes only names that need it, so `schema.fn` was never
// found in `"schema"."fn"(...)` and the functions' own statements went
// unchecked).
async function ourFunctions() {
  const { rows } = await db.sql(
    `select '"' || n.nspname || '"."' || p.proname || '"' as name from pg_proc p join pg_namespace n on n.oid = p.pronamespace
      where n.nspname = $1`,
    [db.schema],
  )
  return rows.map((row) => row.name)
}

describe('query plans on a seeded deployment', () => {
  before(seed, { timeout: 600_000 })

  test('the seed is as large as the test claims', async () => {
    const { rows } = await db.sql(
      `select (select count(*) from ${profiles})::int as profiles, (select count(*) from ${profileAudit})::int as audit,
              (select count(*) from ${domainIndex})::int as index`,
    )
    assert.equal(rows[0].profiles, PROFILES)
    assert.ok(rows[0].audit >= 200_000, `audit rows: ${rows[0].audit}`)
    assert.equal(rows[0].index, PROFILES)
  })

  test('every statement has an EXPLAIN case, and every case a statement', () => {
    const statements = Object.keys(artifacts.queries).sort()
    assert.deepEqual(
      statements.filter((name) => !(name in CASES)),
      [],
      'statements without a case in CASES (__test__/plans.test.mjs)',
    )
    assert.deepEqual(
      Object.keys(CASES).filter((name) => !statements.includes(name)),
      [],
      'cases of statements that no longer exist',
    )
  })

  test('the functions our statements call are found (their statements are checked too)', async () => {
    const calling = Object.entries(artifacts.queries).filter(([, sql]) => /"\(/.test(sql))
    const functions = await ourFunctions()
    assert.ok(calling.length >= 3, 'deleteProfile, eraseFromHistory, deleteProfilesByUserId call functions')
    for (const [name, sql] of calling) {
      assert.ok(
        functions.some((fn) => sql.includes(fn)),
        `${name} calls one of ${functions.join(', ')}`,
      )
    }
  })

  test('the checks find what they look for', () => {
    // A plan of the kind each check must reject, so that the test can fail.
    const scan = { 'Node Type': 'Seq Scan', 'Relation Name': [...OUR_TABLES][0], 'Actual Loops': 1 }
    assert.equal(planProblems('x', scan).length, 1)
    const sort = {
      'Node Type': 'Sort',
      'Sort Key': ['revision'],
      'Actual Rows': 500,
      Plans: [{ ...scan, 'Node Type': 'Index Scan' }],
    }
    assert.equal(planProblems('x', sort).length, 1)
    assert.equal(planProblems('x', { ...sort, 'Actual Rows': 5 }).length, 0)
    const filtered = {
      ...scan,
      'Node Type': 'Index Scan',
      'Rows Removed by Filter': 50,
      'Actual Loops': 10,
      Filter: 'x',
    }
    assert.equal(planProblems('x', filtered).length, 1)
    assert.equal(planProblems('x', { ...filtered, 'Rows Removed by Filter': 1 }).length, 0)
  })

  for (const [name, runs] of Object.entries(CASES)) {
    test(`${name}: no sequential scan, needless sort or filtered index scan`, async (t) => {
      const sql = artifacts.queries[name]
      assert.ok(sql, `${name} is a statement`)
      const functions = (await ourFunctions()).filter((fn) => sql.includes(fn))
      for (const params of runs) {
        const plans = await plansOf(sql, params)
        for (const [mode, plan] of Object.entries(plans)) {
          assert.deepEqual(planProblems(name, plan), [], `${name} ${JSON.stringify(params).slice(0, 80)} (${mode})`)
        }
        if (functions.length > 0) {
          const nested = (await nestedPlansOf(sql, params)).filter(({ text }) => !text.includes(sql))
          assert.ok(nested.length > 0, `auto_explain reported the statements of ${functions.join(', ')}`)
          for (const { text, plan } of nested) {
            assert.deepEqual(planProblems(name, plan), [], `${name} runs ${text.trim().slice(0, 80)}`)
          }
          t.diagnostic(`${name}: ${nested.length} statement(s) inside ${functions.join(', ')}`)
        }
      }
    })
  }
})
