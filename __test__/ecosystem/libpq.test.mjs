// libpq connection semantics of the native pool: DATABASE_URL and the PG*
// variables (the zero-argument form reads the process environment from Rust,
// so those cases run in child processes with a controlled environment),
// percent-encoded passwords over SCRAM, TLS modes with PGSSLROOTCERT, and
// several hosts with target_session_attrs=read-write.
//
// Two throw-away servers: a primary with SCRAM for `app`, TLS (ssl = on) and
// a role that may only connect over TLS; and a second one that is read-only
// (default_transaction_read_only = on, which tokio-postgres sees through
// `show transaction_read_only`).

import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { pathToFileURL } from 'node:url'

import { startPostgres } from '../../scripts/ecosystem/servers.mjs'
import { makeCertificates } from '../../scripts/ecosystem/tls.mjs'
import { createPostgresProfileStoreRepository } from '../../index.mjs'
import { ROOT, cleanEnv, freePortNow, rejection, runNode } from './helpers.mjs'

const PASSWORD = 'p@ss:w/rd%?#'
const ENCODED = encodeURIComponent(PASSWORD)
const DB = 'libpq_db'

const tls = makeCertificates()
const otherCa = makeCertificates('someone-else').caPem
const certDir = mkdtempSync(path.join(os.tmpdir(), 'pson5-libpq-ca-'))
const caFile = path.join(certDir, 'ca.pem')
const otherCaFile = path.join(certDir, 'other-ca.pem')
writeFileSync(caFile, tls.caPem)
writeFileSync(otherCaFile, otherCa)

const [primary, readOnly] = await Promise.all([
  startPostgres({
    database: DB,
    conf: { ssl: 'on', ssl_cert_file: "'server.pem'", ssl_key_file: "'server.key'", password_encryption: "'scram-sha-256'" },
    files: { 'server.pem': tls.certPem, 'server.key': tls.keyPem },
    hba: [
      'hostnossl all tlsonly 127.0.0.1/32 reject',
      'hostssl   all tlsonly 127.0.0.1/32 trust',
      'host      all postgres 127.0.0.1/32 trust',
      'host      all all      127.0.0.1/32 scram-sha-256',
    ],
  }),
  startPostgres({ database: DB, confAfterSetup: { default_transaction_read_only: 'on' } }),
])
after(async () => {
  await Promise.all([primary.stop(), readOnly.stop()])
  rmSync(certDir, { recursive: true, force: true })
})

// The roles, made with SQL; `tlsonly` shares app's tables through membership.
await primary.sql(`create role app login password '${PASSWORD.replace(/'/g, "''")}'`, [], DB)
await primary.sql('create role tlsonly login in role app', [], DB)
// CREATE on the database: schemaSql starts with `create schema if not exists`,
// which PostgreSQL checks against the database even when the schema exists
// (see privileges.test.mjs).
await primary.sql(`grant all on schema public to app; grant create on database ${DB} to app`, [], DB)
await primary.sql('select pg_reload_conf()', [], DB)

const A = primary.port
const B = readOnly.port
const appUrl = `postgres://app:${ENCODED}@127.0.0.1:${A}/${DB}`

/**
 * Runs one repository call in a child process. `args` null = the
 * zero-argument form. op: 'save' (returns the stored revision and id),
 * 'check' (checkSchema), 'whoami' (a save whose row tells the table owner).
 */
async function inChild(env, { args = null, op = 'save' } = {}) {
  const entry = pathToFileURL(path.join(ROOT, 'index.mjs')).href
  const code = `
    import { createPostgresProfileStoreRepository } from ${JSON.stringify(entry)}
    const args = JSON.parse(process.env.PSON5_TEST_ARGS)
    const started = Date.now()
    let repository
    try {
      repository = args === null ? createPostgresProfileStoreRepository() : createPostgresProfileStoreRepository(args)
      let value
      if (${JSON.stringify(op)} === 'check') value = (await repository.checkSchema()).serverVersionNum
      else {
        const id = 'libpq-' + process.pid + '-' + Date.now()
        const saved = await repository.saveProfile({ profile_id: id, user_id: 'libpq-user', metadata: {} })
        value = { id, revision: saved.metadata.revision }
      }
      console.log(JSON.stringify({ ok: true, value, ms: Date.now() - started }))
    } catch (error) {
      console.log(JSON.stringify({ ok: false, code: error.code, sqlState: error.sqlState, message: error.message, text: String(error), ms: Date.now() - started }))
    } finally {
      await repository?.close()
    }`
  const result = await runNode(code, { env: { ...env, PSON5_TEST_ARGS: JSON.stringify(args) } })
  assert.equal(result.code, 0, result.stderr)
  const outcome = JSON.parse(result.stdout)
  assert.ok(!result.stdout.includes(PASSWORD) && !result.stdout.includes(ENCODED), `the password leaked: ${result.stdout}`)
  return outcome
}

async function ownerOfRow(profileId) {
  const { rows } = await primary.sql(
    `select p.profile_id, t.tableowner from public.pson_profiles p, pg_tables t
     where t.schemaname = 'public' and t.tablename = 'pson_profiles' and p.profile_id = $1`,
    [profileId],
    DB,
  )
  return rows[0] ?? null
}

before(async () => {
  // The tables the zero-argument form uses (public, pson_), owned by app.
  const repository = createPostgresProfileStoreRepository({ connectionString: `${appUrl}?sslmode=disable` })
  await repository.ensureSchema()
  await repository.close()
})

describe('zero-argument form: DATABASE_URL and PG* variables', () => {
  test('DATABASE_URL with a percent-encoded password', async () => {
    const outcome = await inChild(cleanEnv({ DATABASE_URL: `${appUrl}?sslmode=disable` }))
    assert.equal(outcome.ok, true, outcome.message)
    assert.equal(outcome.value.revision, 1)
    assert.deepEqual(await ownerOfRow(outcome.value.id), { profile_id: outcome.value.id, tableowner: 'app' })
  })

  test('PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE, PGSSLMODE=disable, PGCONNECT_TIMEOUT', async () => {
    const outcome = await inChild(
      cleanEnv({
        PGHOST: '127.0.0.1',
        PGPORT: String(A),
        PGUSER: 'app',
        PGPASSWORD: PASSWORD,
        PGDATABASE: DB,
        PGSSLMODE: 'disable',
        PGCONNECT_TIMEOUT: '5',
      }),
    )
    assert.equal(outcome.ok, true, outcome.message)
    assert.ok(await ownerOfRow(outcome.value.id))
  })

  test('DATABASE_URL wins over PG*; PG* fill what the URL leaves out', async () => {
    const closed = await freePortNow()
    const wins = await inChild(
      cleanEnv({ DATABASE_URL: `${appUrl}?sslmode=disable`, PGHOST: '127.0.0.1', PGPORT: String(closed), PGDATABASE: 'nope', PGUSER: 'nobody' }),
    )
    assert.equal(wins.ok, true, wins.message)
    const fills = await inChild(
      cleanEnv({ DATABASE_URL: `postgres://127.0.0.1:${A}/${DB}`, PGUSER: 'app', PGPASSWORD: PASSWORD, PGSSLMODE: 'disable' }),
    )
    assert.equal(fills.ok, true, fills.message)
    assert.ok(await ownerOfRow(fills.value.id))
  })

  test('a wrong PGPASSWORD fails the SCRAM exchange without echoing any password', async () => {
    const outcome = await inChild(
      cleanEnv({ PGHOST: '127.0.0.1', PGPORT: String(A), PGUSER: 'app', PGPASSWORD: `${PASSWORD}x`, PGDATABASE: DB, PGSSLMODE: 'disable' }),
    )
    assert.equal(outcome.ok, false)
    assert.equal(outcome.code, 'connection_error', outcome.message)
    assert.match(outcome.message, /password authentication failed for user "app"/)
    assert.equal(outcome.sqlState, '28P01')
  })

  test('PGSSLMODE=require is honoured (fails against a server without TLS; disable works)', async () => {
    const env = { PGHOST: '127.0.0.1', PGPORT: String(B), PGUSER: 'postgres', PGDATABASE: DB }
    const required = await inChild(cleanEnv({ ...env, PGSSLMODE: 'require' }), { op: 'check' })
    assert.equal(required.ok, false)
    assert.equal(required.code, 'connection_error', required.message)
    const disabled = await inChild(cleanEnv({ ...env, PGSSLMODE: 'disable' }), { op: 'check' })
    assert.equal(disabled.ok, true, disabled.message)
  })

  test('PGSSLMODE=verify-full with PGSSLROOTCERT verifies the server certificate', async () => {
    const env = { PGHOST: '127.0.0.1', PGPORT: String(A), PGUSER: 'tlsonly', PGDATABASE: DB }
    const verified = await inChild(cleanEnv({ ...env, PGSSLMODE: 'verify-full', PGSSLROOTCERT: caFile }), { op: 'check' })
    assert.equal(verified.ok, true, verified.message)
    const wrongCa = await inChild(cleanEnv({ ...env, PGSSLMODE: 'verify-full', PGSSLROOTCERT: otherCaFile }), { op: 'check' })
    assert.equal(wrongCa.ok, false)
    assert.equal(wrongCa.code, 'connection_error', wrongCa.message)
    // `tlsonly` is rejected without TLS (hostnossl ... reject): require really used TLS.
    const required = await inChild(cleanEnv({ ...env, PGSSLMODE: 'require' }), { op: 'check' })
    assert.equal(required.ok, true, required.message)
    const plain = await inChild(cleanEnv({ ...env, PGSSLMODE: 'disable' }), { op: 'check' })
    assert.equal(plain.ok, false)
    assert.equal(plain.code, 'connection_error', plain.message)
  })

  test('PGCONNECT_TIMEOUT bounds a connect to a server that never answers', async () => {
    // Accepts TCP connections and never says a word.
    const sockets = new Set()
    const silent = net.createServer((socket) => sockets.add(socket))
    await new Promise((resolve) => silent.listen(0, '127.0.0.1', resolve))
    try {
      const outcome = await inChild(
        cleanEnv({ PGHOST: '127.0.0.1', PGPORT: String(silent.address().port), PGUSER: 'app', PGDATABASE: DB, PGSSLMODE: 'disable', PGCONNECT_TIMEOUT: '1' }),
      )
      assert.equal(outcome.ok, false)
      assert.ok(['timeout', 'connection_error'].includes(outcome.code), `${outcome.code}: ${outcome.message}`)
      assert.ok(outcome.ms >= 900 && outcome.ms < 8000, `failed after ${outcome.ms} ms, expected about 1 s`)
    } finally {
      for (const socket of sockets) socket.destroy()
      silent.close()
    }
  })
})

describe('passwords with reserved characters (SCRAM)', () => {
  const use = async (options) => {
    const repository = createPostgresProfileStoreRepository(options)
    try {
      return await repository.loadProfileByUserId('libpq-user').then((doc) => doc.user_id)
    } finally {
      await repository.close()
    }
  }

  test('percent-encoded in a URL connectionString', async () => {
    assert.equal(await use({ connectionString: `${appUrl}?sslmode=disable` }), 'libpq-user')
  })

  test('as the `password` option next to a URL without one', async () => {
    assert.equal(await use({ connectionString: `postgres://app@127.0.0.1:${A}/${DB}?sslmode=disable`, password: PASSWORD }), 'libpq-user')
  })

  test("quoted in a key=value connectionString", async () => {
    const quoted = `'${PASSWORD.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`
    assert.equal(await use({ connectionString: `host=127.0.0.1 port=${A} user=app dbname=${DB} sslmode=disable password=${quoted}` }), 'libpq-user')
  })

  test('a wrong one fails with connection_error, and no message, event or String() shows it', async () => {
    const events = []
    const wrong = `${PASSWORD}-wrong`
    const repository = createPostgresProfileStoreRepository({
      connectionString: `postgres://app:${encodeURIComponent(wrong)}@127.0.0.1:${A}/${DB}?sslmode=disable`,
      onEvent: (event) => events.push(event),
    })
    const error = await rejection(repository.loadProfile('x'))
    await repository.close()
    assert.equal(error.code, 'connection_error')
    const everything = JSON.stringify([error.message, String(error), error.stack, events, String(repository)])
    for (const secret of [wrong, encodeURIComponent(wrong), PASSWORD]) assert.ok(!everything.includes(secret), everything)
  })
})

describe('several hosts with target_session_attrs', () => {
  const hosts = `127.0.0.1:${B},127.0.0.1:${A}`
  const schemaName = 'multi'

  before(async () => {
    await primary.sql(`create schema ${schemaName} authorization app`, [], DB)
  })

  test('read-write skips the read-only server and writes to the primary', async () => {
    const repository = createPostgresProfileStoreRepository({
      connectionString: `postgres://app:${ENCODED}@${hosts}/${DB}?target_session_attrs=read-write&sslmode=disable`,
      schema: schemaName,
    })
    try {
      await repository.ensureSchema()
      const saved = await repository.saveProfile({ profile_id: 'multi-1', user_id: 'multi-user', metadata: {} })
      assert.equal(saved.metadata.revision, 1)
      assert.equal((await repository.checkSchema()).ok, true)
    } finally {
      await repository.close()
    }
    const { rows } = await primary.sql(`select profile_id, revision from ${schemaName}.pson_profiles`, [], DB)
    assert.deepEqual(rows, [{ profile_id: 'multi-1', revision: 1 }])
    const onReadOnly = await readOnly.sql(`select count(*)::int as n from pg_namespace where nspname = '${schemaName}'`)
    assert.equal(onReadOnly.rows[0].n, 0)
  })

  test('without it, the first (read-only) host is used and the write is refused', async () => {
    const repository = createPostgresProfileStoreRepository({
      connectionString: `postgres://postgres@${hosts}/${DB}?sslmode=disable`,
      schema: 'readonly_probe',
    })
    try {
      const error = await rejection(repository.ensureSchema())
      assert.equal(error.code, 'database_error')
      assert.equal(error.sqlState, '25006') // read_only_sql_transaction
    } finally {
      await repository.close()
    }
  })

  test('read-write with only read-only hosts fails with connection_error', async () => {
    const repository = createPostgresProfileStoreRepository({
      connectionString: `postgres://postgres@127.0.0.1:${B},127.0.0.1:${B}/${DB}?target_session_attrs=read-write&sslmode=disable`,
      connectionTimeoutMillis: 5000,
    })
    try {
      const error = await rejection(repository.checkSchema())
      assert.equal(error.code, 'connection_error', error.message)
    } finally {
      await repository.close()
    }
  })
})
