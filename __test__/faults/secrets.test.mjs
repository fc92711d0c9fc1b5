// Secrets and TLS (issue 6), on an embedded PostgreSQL of its own (its
// pg_hba.conf and TLS settings are changed):
// - with scram-sha-256 password auth, a wrong password is a connection_error
//   whose message, stack, inspect/JSON forms and events never contain the
//   password, and neither does String()/util.inspect() of the repository;
// - TLS with certificates made here by the openssl CLI: sslmode=require,
//   verify-full with the CA, node-postgres' `ssl: { ca }` work and really use
//   TLS (pg_stat_ssl); verify-full against a host name the certificate does
//   not name, or with another CA, is a connection_error.

import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import diagnosticsChannel from 'node:diagnostics_channel'
import { chmodSync, chownSync, copyFileSync, mkdtempSync, readFileSync, appendFileSync, writeFileSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import util from 'node:util'
import { after, before, describe, test } from 'node:test'

import { createPostgresProfileStoreRepository, DIAGNOSTICS_CHANNEL } from '../../index.mjs'
import { failOnSilentExit, outcome, ownServer, pollUntil, uid } from './helpers.mjs'

failOnSilentExit()

const ROLE = 'fault_secret_user'
const PASSWORD = 'Pw-s3cr3t:p@ss/wörd%?&#😀'
const WRONG_PASSWORD = 'Wr0ng-s3cr3t:p@ss/wörd%?&#'
// Every spelling of a password that a leak could take.
const spellings = (secret) => [secret, encodeURIComponent(secret), 'Pw-s3cr3t', 'Wr0ng-s3cr3t', 's3cr3t']

let server
let schema
let certs

function openssl(args, cwd) {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] })
}

/** A CA, a second unrelated CA, and a server certificate for DNS:localhost only, signed by the first. */
function makeCertificates() {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pson5-fault-tls-'))
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']
  for (const ca of ['ca', 'other-ca']) {
    openssl(
      ['req', '-x509', ...ec, '-keyout', `${ca}.key`, '-out', `${ca}.pem`, '-days', '2', '-subj', `/CN=pson5 fault ${ca}`,
        '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'],
      dir,
    )
  }
  openssl(['req', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost'], dir)
  writeFileSync(
    path.join(dir, 'server.ext'),
    'subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n',
  )
  openssl(
    ['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.crt',
      '-days', '2', '-extfile', 'server.ext'],
    dir,
  )
  return { dir, ca: path.join(dir, 'ca.pem'), otherCa: path.join(dir, 'other-ca.pem'), caPem: readFileSync(path.join(dir, 'ca.pem'), 'utf8') }
}

/** The uid/gid the embedded server runs as (root runs it as the `postgres` user). */
function serverOwner() {
  if (process.getuid() !== 0) return null
  const id = (flag) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim())
  return { uid: id('-u'), gid: id('-g') }
}

before(async () => {
  execFileSync('openssl', ['version'], { stdio: 'ignore' })
  server = await ownServer()
  schema = uid('fsec')
  certs = makeCertificates()

  // TLS: key and certificate inside the data directory, owned by the server's
  // user, key mode 0600 (PostgreSQL refuses a group/world-readable key).
  const owner = serverOwner()
  for (const file of ['server.crt', 'server.key']) {
    const target = path.join(server.databaseDir, file)
    copyFileSync(path.join(certs.dir, file), target)
    if (owner) chownSync(target, owner.uid, owner.gid)
  }
  chmodSync(path.join(server.databaseDir, 'server.key'), 0o600)
  appendFileSync(
    path.join(server.databaseDir, 'postgresql.conf'),
    "\n# pson5 fault suite\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n",
  )

  // Password auth for ROLE (first match wins, so these go before the trust lines).
  const hba = path.join(server.databaseDir, 'pg_hba.conf')
  const original = readFileSync(hba, 'utf8')
  writeFileSync(
    hba,
    `host all ${ROLE} 127.0.0.1/32 scram-sha-256\nhost all ${ROLE} ::1/128 scram-sha-256\n${original}`,
  )
  await server.sql(
    `set password_encryption = 'scram-sha-256'; create role ${ROLE} login password '${PASSWORD.replaceAll("'", "''")}'`,
  )
  await server.sql(`create schema "${schema}" authorization ${ROLE}`)
  await server.sql(`grant create on database pson5_test to ${ROLE}`)
  await server.sql('select pg_reload_conf()')
  // The reload is asynchronous: wait until the server reports TLS on.
  await pollUntil(
    async () => (await server.sql(`select current_setting('ssl') as ssl`)).rows[0].ssl === 'on',
    { limitMs: 5000, label: 'ssl = on after pg_reload_conf()' },
  )
  const hbaErrors = await server.sql(`select count(*)::int as n from pg_hba_file_rules where error is not null`)
  assert.equal(hbaErrors.rows[0].n, 0)
})

after(async () => {
  await server?.close()
  if (certs) rmSync(certs.dir, { recursive: true, force: true })
})

function url({ password = PASSWORD, host = '127.0.0.1', query = '' } = {}) {
  return `postgres://${ROLE}:${encodeURIComponent(password)}@${host}:${server.port}/pson5_test${query ? `?${query}` : ''}`
}

function doc(profileId) {
  return { profile_id: profileId, user_id: 'secret-user', metadata: { source_count: 1 } }
}

/** Every rendering of an error, a repository and its events that a log could capture. */
function renderings(error, repository, events, published) {
  return {
    message: error.message,
    stack: error.stack,
    string: String(error),
    inspect: util.inspect(error, { depth: Infinity, showHidden: true }),
    json: JSON.stringify(error),
    jsonOwn: JSON.stringify(error, Object.getOwnPropertyNames(error)),
    cause: util.inspect(error.cause, { depth: Infinity }),
    repositoryString: String(repository),
    repositoryTemplate: `${repository}`,
    repositoryInspect: util.inspect(repository, { depth: Infinity, showHidden: true }),
    repositoryJson: JSON.stringify(repository) ?? '',
    events: JSON.stringify(events) + util.inspect(events, { depth: Infinity }),
    channel: JSON.stringify(published) + util.inspect(published, { depth: Infinity }),
  }
}

function assertNoSecret(texts, secret) {
  for (const [where, text] of Object.entries(texts)) {
    for (const spelling of spellings(secret)) {
      assert.ok(!String(text).includes(spelling), `the password (as ${JSON.stringify(spelling)}) appears in ${where}: ${text}`)
    }
  }
}

async function rejectedWithoutSecret(options, secret, expectedCode = 'connection_error') {
  const events = []
  const published = []
  const listener = (message) => published.push(message)
  diagnosticsChannel.subscribe(DIAGNOSTICS_CHANNEL, listener)
  const repository = createPostgresProfileStoreRepository({
    schema,
    connectionTimeoutMillis: 3000,
    onEvent: (event) => events.push(event),
    ...options,
  })
  try {
    for (const call of [() => repository.loadProfile('p'), () => repository.saveProfile(doc('p')), () => repository.profileExists('p')]) {
      const r = await outcome(call(), 10000)
      assert.equal(r.hung, undefined, 'the call settled')
      assert.equal(r.ok, false, 'the call was rejected')
      assert.equal(r.code, expectedCode, r.error.message)
      assertNoSecret(renderings(r.error, repository, events, published), secret)
    }
    assert.ok(events.length >= 3 && events.every((e) => e.error?.code === expectedCode), JSON.stringify(events))
  } finally {
    diagnosticsChannel.unsubscribe(DIAGNOSTICS_CHANNEL, listener)
    await repository.close()
  }
  assertNoSecret({ closedInspect: util.inspect(repository, { showHidden: true }), closedString: String(repository) }, secret)
}

describe('the password never leaks', () => {
  test('wrong password in the URL: connection_error without the password anywhere', async () => {
    await rejectedWithoutSecret({ connectionString: url({ password: WRONG_PASSWORD, query: 'sslmode=disable' }) }, WRONG_PASSWORD)
  })

  test('wrong password as the password option, and in a key=value string', async () => {
    await rejectedWithoutSecret(
      { host: '127.0.0.1', port: server.port, user: ROLE, password: WRONG_PASSWORD, database: 'pson5_test' },
      WRONG_PASSWORD,
    )
    await rejectedWithoutSecret(
      {
        connectionString: `host=127.0.0.1 port=${server.port} user=${ROLE} password='${WRONG_PASSWORD}' dbname=pson5_test sslmode=disable`,
      },
      WRONG_PASSWORD,
    )
  })

  test('wrong password over TLS (sslmode=require): still no leak', async () => {
    await rejectedWithoutSecret({ connectionString: url({ password: WRONG_PASSWORD, query: 'sslmode=require' }) }, WRONG_PASSWORD)
  })

  test('the right password works; the repository and its events never show it', async () => {
    const events = []
    for (const options of [
      { connectionString: url({ query: 'sslmode=disable' }) },
      { host: '127.0.0.1', port: server.port, user: ROLE, password: PASSWORD, database: 'pson5_test' },
    ]) {
      const repository = createPostgresProfileStoreRepository({ schema, onEvent: (event) => events.push(event), ...options })
      try {
        await repository.ensureSchema()
        const id = uid('pw')
        assert.equal((await repository.saveProfile(doc(id))).metadata.revision, 1)
        assert.equal((await repository.loadProfile(id)).profile_id, id)
        // A database error on an authenticated connection does not leak it either.
        const missing = await outcome(repository.loadProfileRevision(id, 99))
        assert.equal(missing.code, 'not_found')
        assertNoSecret(renderings(missing.error, repository, events, []), PASSWORD)
      } finally {
        await repository.close()
      }
    }
  })

  test('an unreachable server with the password in the URL: no leak', async () => {
    await rejectedWithoutSecret({ connectionString: `postgres://${ROLE}:${encodeURIComponent(PASSWORD)}@127.0.0.1:1/x` }, PASSWORD)
  })
})

/** Whether every backend of `applicationName` uses TLS (from a separate connection). */
async function tlsOf(applicationName) {
  const { rows } = await server.sql(
    `select s.ssl, s.version from pg_stat_ssl s join pg_stat_activity a on a.pid = s.pid where a.application_name = $1`,
    [applicationName],
  )
  assert.ok(rows.length > 0, `a backend of ${applicationName} is connected`)
  const modes = [...new Set(rows.map((r) => r.ssl))]
  assert.equal(modes.length, 1, `all backends of ${applicationName} agree on TLS: ${JSON.stringify(rows)}`)
  return modes[0]
}

async function works(options, label) {
  const applicationName = uid('fault-tls')
  const repository = createPostgresProfileStoreRepository({ schema, applicationName, connectionTimeoutMillis: 5000, ...options })
  try {
    const id = uid('tls')
    const saved = await outcome(repository.saveProfile(doc(id)), 10000)
    assert.equal(saved.ok, true, `${label}: ${saved.code} ${saved.error?.message}`)
    assert.equal((await repository.loadProfile(id)).profile_id, id)
    return await tlsOf(applicationName)
  } finally {
    await repository.close()
  }
}

async function refused(options, label) {
  const repository = createPostgresProfileStoreRepository({ schema, connectionTimeoutMillis: 3000, ...options })
  try {
    const r = await outcome(repository.loadProfile('p'), 10000)
    assert.equal(r.hung, undefined, `${label}: settled`)
    assert.equal(r.code, 'connection_error', `${label}: ${r.ok ? 'connected, but must not' : r.error.message}`)
    assertNoSecret(renderings(r.error, repository, [], []), PASSWORD)
  } finally {
    await repository.close()
  }
}

describe('TLS against a server with a self-signed CA (certificate for DNS:localhost only)', () => {
  before(async () => {
    // The schema's tables, made once over a plain connection.
    const repository = createPostgresProfileStoreRepository({ schema, connectionString: url({ query: 'sslmode=disable' }) })
    await repository.ensureSchema()
    await repository.close()
  })

  test('sslmode=require works and uses TLS', async () => {
    assert.equal(await works({ connectionString: url({ query: 'sslmode=require' }) }, 'require'), true)
  })

  test('sslmode=verify-full with sslrootcert and host localhost works and uses TLS', async () => {
    const query = `sslmode=verify-full&sslrootcert=${encodeURIComponent(certs.ca)}`
    assert.equal(await works({ connectionString: url({ host: 'localhost', query }) }, 'verify-full localhost'), true)
  })

  test('node-postgres style ssl: { ca } with host localhost works and uses TLS', async () => {
    assert.equal(await works({ connectionString: url({ host: 'localhost' }), ssl: { ca: certs.caPem } }, 'ssl.ca'), true)
  })

  test('ssl: { rejectUnauthorized: false } works and uses TLS', async () => {
    assert.equal(await works({ connectionString: url(), ssl: { rejectUnauthorized: false } }, 'rejectUnauthorized false'), true)
  })

  test('sslmode=verify-ca with host 127.0.0.1 works (chain checked, name not)', async () => {
    const query = `sslmode=verify-ca&sslrootcert=${encodeURIComponent(certs.ca)}`
    assert.equal(await works({ connectionString: url({ query }) }, 'verify-ca'), true)
  })

  test('sslmode=disable does not use TLS (the check above is meaningful)', async () => {
    assert.equal(await works({ connectionString: url({ query: 'sslmode=disable' }) }, 'disable'), false)
  })

  test('verify-full with host 127.0.0.1 (not named by the certificate) is a connection_error', async () => {
    const query = `sslmode=verify-full&sslrootcert=${encodeURIComponent(certs.ca)}`
    await refused({ connectionString: url({ query }) }, 'verify-full 127.0.0.1')
    await refused({ connectionString: url(), ssl: { ca: certs.caPem } }, 'ssl.ca 127.0.0.1')
  })

  test('verify-full with another CA, or with the public roots (ssl: true), is a connection_error', async () => {
    const query = `sslmode=verify-full&sslrootcert=${encodeURIComponent(certs.otherCa)}`
    await refused({ connectionString: url({ host: 'localhost', query }) }, 'verify-full other CA')
    await refused({ connectionString: url({ host: 'localhost' }), ssl: true }, 'ssl: true')
    await refused({ connectionString: url({ host: 'localhost', query: 'sslmode=verify-ca' }) }, 'verify-ca public roots')
  })
})
