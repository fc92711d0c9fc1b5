// bin/pson5-postgres-store.js, spawned as a user would run it.

import assert from 'node:assert/strict'
import path from 'node:path'
import { test } from 'node:test'

import { createPostgresProfileStoreArtifacts } from '../../index.mjs'
import { ROOT, cleanEnv, freePortNow, run, useSchema, useServer } from './helpers.mjs'

const CLI = path.join(ROOT, 'bin', 'pson5-postgres-store.js')
const server = await useServer()
const schema = await useSchema(server, 'cli')

function cli(args, env = cleanEnv({ DATABASE_URL: server.url })) {
  // Run through the shebang, as npx does.
  return run(CLI, args, { env })
}

test('--help prints the usage and exits 0', async () => {
  for (const args of [['--help'], ['-h'], ['help']]) {
    const result = await cli(args)
    assert.equal(result.code, 0)
    assert.match(result.stdout, /^Usage: pson5-postgres-store <command>/)
    assert.match(
      result.stdout,
      /Exit codes: 0 ok, 1 the check found problems, 2 usage error, 3 connection error,\n4 the native binary could not be loaded, 5 any other error/,
    )
  }
})

test('usage errors exit 2 with "error [usage]: ..."', async () => {
  for (const [args, message] of [
    [[], 'missing command'],
    [['migrate'], 'unknown command migrate'],
    [['schema', '--schema'], '--schema needs a value'],
    [['schema', '--bogus'], 'unknown option --bogus'],
    [['upgrade', '--json'], '--json only applies to check'],
  ]) {
    const result = await cli(args)
    assert.equal(result.code, 2, args.join(' '))
    assert.ok(result.stderr.includes(`error [usage]: ${message}`), result.stderr)
    assert.equal(result.stdout, '')
  }
})

test('argument edge cases: flag spellings, missing values, stray arguments', async () => {
  for (const [args, message] of [
    [['schema', '--bogus=1'], 'unknown option --bogus'],
    [['schema', '-x'], 'unknown option -x'],
    [['schema', '--'], 'unknown option --'],
    [['schema', '--schema', '--json'], '--schema needs a value'],
    [['schema', '--table-prefix'], '--table-prefix needs a value'],
    [['prune', '--keep-last=x'], '--keep-last needs a whole number, not x'],
    [['prune', '--batch-size', '-1'], '--batch-size needs a value'],
    [['schema', 'upgrade'], 'unexpected argument upgrade'],
    [['--help', '--bogus'], 'unknown option --bogus'],
  ]) {
    const result = await cli(args)
    assert.equal(result.code, 2, args.join(' '))
    assert.ok(result.stderr.includes(`error [usage]: ${message}`), result.stderr)
    assert.equal(result.stdout, '')
  }
  // --help wins over the command; the last of --prefix/--table-prefix wins; an inline value may start with a dash.
  const help = await cli(['schema', '--help'])
  assert.equal(help.code, 0)
  assert.match(help.stdout, /^Usage: /)
  const expected = createPostgresProfileStoreArtifacts({ tablePrefix: 'x_' }).schemaSql
  const last = await cli(['schema', '--prefix', 'a_', '--table-prefix=x_'])
  assert.equal(last.stdout.trimEnd(), expected.trimEnd())
  const dashed = await cli(['schema', '--prefix=-x'])
  assert.equal(dashed.code, 2)
  assert.match(dashed.stderr, /^error \[validation_error\]: .*tablePrefix/m)
})

test('schema and upgrade print the artifacts for --schema/--prefix', async () => {
  const artifacts = createPostgresProfileStoreArtifacts({ schema: 'app', tablePrefix: 'x_' })
  const schemaOut = await cli(['schema', '--schema', 'app', '--prefix', 'x_'])
  assert.equal(schemaOut.code, 0, schemaOut.stderr)
  assert.equal(schemaOut.stdout.trimEnd(), artifacts.schemaSql.trimEnd())
  const upgradeOut = await cli(['upgrade', '--schema=app', '--prefix=x_'])
  assert.equal(upgradeOut.code, 0, upgradeOut.stderr)
  assert.equal(upgradeOut.stdout.trimEnd(), artifacts.upgradeSql.trimEnd())
  const longForm = await cli(['schema', '--schema', 'app', '--table-prefix', 'x_'])
  assert.equal(longForm.stdout, schemaOut.stdout)
  const defaults = await cli(['schema'])
  assert.equal(defaults.stdout.trimEnd(), createPostgresProfileStoreArtifacts().schemaSql.trimEnd())
})

test("upgrade reads 0.2.2's custom table names; other commands refuse them", async () => {
  const legacy = {
    currentProfilesTable: 'AppCurrent',
    profileRevisionsTable: 'app_revisions',
    userIndexTable: 'app_users',
  }
  const out = await cli([
    'upgrade',
    '--schema',
    'app',
    '--current-profiles-table',
    'AppCurrent',
    '--profile-revisions-table=app_revisions',
    '--user-index-table',
    'app_users',
  ])
  assert.equal(out.code, 0, out.stderr)
  const expected = createPostgresProfileStoreArtifacts({ schema: 'app', ...legacy }).upgradeSql
  assert.equal(out.stdout.trimEnd(), expected.trimEnd())
  assert.ok(out.stdout.includes('"app"."AppCurrent"'))
  for (const command of ['schema', 'check']) {
    const refused = await cli([command, '--user-index-table', 'app_users'])
    assert.equal(refused.code, 2, command)
    assert.match(refused.stderr, /error \[usage\]: .*only apply to upgrade/)
  }
  const tooLong = await cli(['upgrade', '--user-index-table', 'u'.repeat(64)])
  assert.equal(tooLong.code, 2)
  assert.match(tooLong.stderr, /^error \[validation_error\]: .*userIndexTable/m)
})

test('a bad schema or prefix is a usage error naming the option', async () => {
  const result = await cli(['schema', '--prefix', 'bad-prefix'])
  assert.equal(result.code, 2)
  assert.match(result.stderr, /^error \[validation_error\]: .*tablePrefix/m)
  const long = await cli(['upgrade', '--schema', 's'.repeat(64)])
  assert.equal(long.code, 2)
  assert.match(long.stderr, /^error \[validation_error\]: .*schema/m)
})

test('check: missing tables exit 1; after applying `schema` it exits 0', async () => {
  const missing = await cli(['check', '--schema', schema, '--prefix', 'chk_'])
  assert.equal(missing.code, 1, missing.stderr)
  const { rows } = await server.sql('show server_version')
  assert.ok(missing.stdout.includes(`PostgreSQL ${rows[0].server_version}`), missing.stdout)
  assert.equal(missing.stdout.match(/ missing$/gm)?.length, 3, missing.stdout)
  assert.match(missing.stdout, /result: {2}3 problem/)

  const ddl = await cli(['schema', '--schema', schema, '--prefix', 'chk_'])
  await server.sql(ddl.stdout)
  const ok = await cli(['check', '--schema', schema, '--prefix', 'chk_'])
  assert.equal(ok.code, 0, ok.stdout + ok.stderr)
  assert.equal(ok.stdout.match(/ ok$/gm)?.length, 4, ok.stdout) // three tables + result
  assert.match(ok.stdout, /pool: {4}max 10, open \d+/)
})

test('check: a missing column is named; --json gives the same report', async () => {
  await server.sql(`create table "${schema}".col_profiles (like "${schema}".chk_profiles)`)
  await server.sql(`create table "${schema}".col_profile_audit (like "${schema}".chk_profile_audit)`)
  await server.sql(`create table "${schema}".col_domain_index (like "${schema}".chk_domain_index)`)
  await server.sql(`alter table "${schema}".col_profile_audit drop column context`)
  const text = await cli(['check', '--schema', schema, '--prefix', 'col_'])
  assert.equal(text.code, 1)
  assert.match(text.stdout, /"col_profile_audit"\s+missing columns: context$/m)

  const json = await cli(['check', '--json', '--schema', schema, '--prefix', 'col_'])
  assert.equal(json.code, 1)
  const report = JSON.parse(json.stdout)
  assert.equal(report.ok, false)
  assert.deepEqual(report.tables.profileAudit.missingColumns, ['context'])
  assert.equal(report.tables.profiles.exists, true)
  assert.deepEqual(report.tables.profiles.missingColumns, [])
  assert.equal(typeof report.serverVersionNum, 'number')
  assert.equal(report.pool.maxSize, 10)
  assert.ok(!('password' in report))
})

test('check connects with the PG* variables when DATABASE_URL is unset', async () => {
  const url = new URL(server.url)
  const env = cleanEnv({
    PGHOST: url.hostname,
    PGPORT: url.port || '5432',
    PGUSER: decodeURIComponent(url.username),
    PGDATABASE: url.pathname.slice(1),
    PGSSLMODE: 'disable',
  })
  const result = await cli(['check', '--schema', schema, '--prefix', 'chk_'], env)
  assert.equal(result.code, 0, result.stdout + result.stderr)
  assert.match(result.stdout, /\(PG\* variables\)/)
})

test('connection errors exit 3 and never print the password', async () => {
  const port = await freePortNow()
  const refused = await cli(
    ['check'],
    cleanEnv({ DATABASE_URL: `postgres://postgres:hunter2-secret@127.0.0.1:${port}/x` }),
  )
  assert.equal(refused.code, 3, refused.stdout + refused.stderr)
  assert.match(refused.stderr, /^error \[(connection_error|timeout)\]: /m)
  assert.ok(!(refused.stdout + refused.stderr).includes('hunter2'))

  const url = new URL(server.url)
  url.password = 'hunter3-secret'
  url.pathname = '/no_such_database_pson5'
  const noDatabase = await cli(['check'], cleanEnv({ DATABASE_URL: url.href }))
  assert.equal(noDatabase.code, 3, noDatabase.stdout + noDatabase.stderr)
  assert.match(noDatabase.stderr, /^error \[\w+\]: /m)
  assert.ok(!(noDatabase.stdout + noDatabase.stderr).includes('hunter3'))

  const viaEnv = await cli(
    ['check'],
    cleanEnv({ PGHOST: '127.0.0.1', PGPORT: String(port), PGUSER: 'u', PGPASSWORD: 'hunter4-secret' }),
  )
  assert.equal(viaEnv.code, 3)
  assert.ok(!(viaEnv.stdout + viaEnv.stderr).includes('hunter4'))
})

test('prune removes old audit rows in batches, reports progress on stderr and the result on stdout', async () => {
  const pruneSchema = await useSchema(server, 'cliprune')
  const { createPostgresProfileStoreRepository } = await import('../../index.mjs')
  const { buildProfile } = await import('../helpers/profiles.mjs')
  const repository = createPostgresProfileStoreRepository({ connectionString: server.url, schema: pruneSchema })
  try {
    await repository.ensureSchema()
    for (const profileId of ['cli-a', 'cli-b']) {
      for (let i = 0; i < 5; i++) await repository.saveProfile(buildProfile({ profileId, userId: 'cli-user' }))
    }
    const pruned = await cli(['prune', '--schema', pruneSchema, '--keep-last', '2', '--batch-size', '2'])
    assert.equal(pruned.code, 0, pruned.stderr)
    assert.equal(pruned.stdout, 'removed 6 audit row(s) of 2 profile(s) in 4 batch(es)\n')
    assert.match(pruned.stderr, /^batch 1: 2 row\(s\) removed so far, next profile cli-a\n/)
    assert.match(pruned.stderr, /batch 4: 6 row\(s\) removed so far, done\n$/)
    assert.deepEqual(await repository.listProfileRevisions('cli-a'), [4, 5])

    const one = await cli(['prune', '--schema', pruneSchema, '--keep-last=1', '--profile-id', 'cli-b', '--json'])
    assert.equal(one.code, 0, one.stderr)
    assert.deepEqual(JSON.parse(one.stdout), { removedRows: 1, prunedProfiles: 1, batches: 1, interrupted: false })
    assert.deepEqual(await repository.listProfileRevisions('cli-b'), [5])

    // Nothing is 30 days old yet.
    const aged = await cli(['prune', '--schema', pruneSchema, '--older-than', '30d'])
    assert.equal(aged.code, 0, aged.stderr)
    assert.match(aged.stdout, /^removed 0 audit row/)
  } finally {
    await repository.close()
  }
})

test('prune: bad options exit 2 and remove nothing', async () => {
  for (const [args, message] of [
    [['prune'], 'error [validation_error]: keepLast'],
    [['prune', '--keep-last', 'x'], 'error [usage]: --keep-last needs a whole number'],
    [['prune', '--keep-last', '0'], 'error [validation_error]: keepLast'],
    [['prune', '--older-than', 'yesterday'], 'error [validation_error]: olderThan'],
    [['prune', '--keep-last', '1', '--batch-size', '100000'], 'error [validation_error]: batchSize'],
    [['check', '--keep-last', '1'], 'error [usage]: --keep-last, --older-than, --profile-id and --batch-size only apply to prune'],
  ]) {
    const result = await cli([...args, '--schema', schema])
    assert.equal(result.code, 2, `${args.join(' ')}: ${result.stderr}`)
    assert.ok(result.stderr.includes(message), result.stderr)
  }
})

test('erase removes a path from a profile and its history, or every profile of a user; the audit entry names the path', async () => {
  const eraseSchema = await useSchema(server, 'clierase')
  const { createPostgresProfileStoreRepository } = await import('../../index.mjs')
  const { buildProfile } = await import('../helpers/profiles.mjs')
  const repository = createPostgresProfileStoreRepository({ connectionString: server.url, schema: eraseSchema })
  try {
    await repository.ensureSchema()
    const secret = 'cli-secret@example.com'
    for (let i = 0; i < 3; i++) {
      const profile = buildProfile({ profileId: 'cli-e', userId: 'cli-erase-user' })
      profile.layers.observed['core.email'] = { value: secret }
      await repository.saveProfile(profile)
    }
    await repository.saveProfile(buildProfile({ profileId: 'cli-f', userId: 'cli-erase-user' }))
    const erased = await cli([
      'erase',
      '--schema',
      eraseSchema,
      '--profile-id',
      'cli-e',
      '--path',
      '/layers/observed/core.email',
      '--reason',
      'ticket 42',
    ])
    assert.equal(erased.code, 0, erased.stderr)
    assert.equal(
      erased.stdout,
      'erased /layers/observed/core.email from profile cli-e: 3 snapshot(s) held it, the current document too; ' +
        'revision 4 records the erasure\n',
    )
    for (const revision of [1, 2, 3, 4]) {
      const snapshot = await repository.loadProfileRevision('cli-e', revision)
      assert.equal(snapshot.layers.observed['core.email'], undefined)
    }
    const [entry] = (await repository.listAuditEntries('cli-e', { limit: 1 })).entries
    assert.deepEqual([entry.erased_path, entry.context], [
      '/layers/observed/core.email',
      { source: 'pson5-postgres-store erase', reason: 'ticket 42' },
    ])

    const json = await cli(['erase', '--schema', eraseSchema, '--user-id', 'cli-erase-user', '--json'])
    assert.equal(json.code, 0, json.stderr)
    assert.deepEqual(JSON.parse(json.stdout), {
      userId: 'cli-erase-user',
      profileIds: ['cli-e', 'cli-f'],
      auditRows: 5,
    })
    assert.deepEqual(await repository.findProfilesByUserId('cli-erase-user'), [])

    const missing = await cli(['erase', '--schema', eraseSchema, '--profile-id', 'nobody', '--path', '/layers'])
    assert.equal(missing.code, 5)
    assert.match(missing.stderr, /^error \[not_found\]: Profile 'nobody' was not found/)
  } finally {
    await repository.close()
  }
})

test('erase: bad options exit 2 and change nothing', async () => {
  for (const [args, message] of [
    [['erase'], 'error [usage]: erase needs either --profile-id and --path, or --user-id alone'],
    [['erase', '--profile-id', 'p'], 'error [usage]: erase needs either'],
    [['erase', '--user-id', 'u', '--path', '/x'], 'error [usage]: erase needs either'],
    [['erase', '--keep-last', '1', '--user-id', 'u'], 'error [usage]: --keep-last, --older-than, --profile-id and --batch-size only apply to prune'],
    [['prune', '--keep-last', '1', '--path', '/x'], 'error [usage]: --path, --user-id and --reason only apply to erase'],
    [['erase', '--profile-id', 'p', '--path', '/user_id'], 'error [validation_error]: jsonPointer'],
    [['erase', '--profile-id', 'p', '--path', 'layers'], 'error [validation_error]: jsonPointer'],
  ]) {
    const result = await cli([...args, '--schema', schema])
    assert.equal(result.code, 2, `${args.join(' ')}: ${result.stderr}`)
    assert.ok(result.stderr.includes(message), result.stderr)
  }
})
