// Test fixture: the PostgreSQL servers the suites run against.
//
//   useServer(): DATABASE_URL, else an embedded one, for this test file
//   ownServer(): an embedded one this file may stop, restart and reconfigure

import { after } from 'node:test'

import pg from 'pg'

import { startEmbeddedPostgres } from '../../scripts/embedded-postgres.mjs'

/**
 * DATABASE_URL, or an embedded server stopped after the file. Also returns a
 * small pg pool (closed after the file) for checks behind the package's back.
 */
export async function useServer({ max = 2 } = {}) {
  let url = process.env.DATABASE_URL
  let embedded = null
  if (!url) {
    embedded = await startEmbeddedPostgres()
    url = embedded.url
  }
  const admin = new pg.Pool({ connectionString: url, max })
  // Run (last registered first) before the pool ends: node:test runs `after`
  // hooks in registration order, so a hook of their own would find it ended.
  const cleanups = []
  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {})
    await admin.end()
    if (embedded) await embedded.stop()
  })
  return { url, embedded, admin, cleanups, sql: (text, params) => admin.query(text, params) }
}

/**
 * An embedded PostgreSQL that this test file owns: it may be killed,
 * restarted and reconfigured. `restart()` stops it (keeping the data
 * directory, which `startEmbeddedPostgres` would otherwise delete on stop:
 * it creates the server with `persistent: false`) and starts it again on the
 * same port.
 */
export async function ownServer() {
  const embedded = await startEmbeddedPostgres()
  const admin = new pg.Pool({ connectionString: embedded.url, max: 3 })
  // A terminated/restarted server makes idle pool clients emit 'error'.
  admin.on('error', () => {})
  const server = {
    url: embedded.url,
    port: embedded.port,
    databaseDir: embedded.databaseDir,
    embedded,
    admin,
    sql: (text, params) => admin.query(text, params),
    /** Stops the server but keeps its data directory. */
    async stopKeepingData() {
      embedded.server.options.persistent = true
      try {
        await embedded.server.stop()
      } finally {
        embedded.server.options.persistent = false
      }
    },
    async startAgain() {
      await embedded.server.start()
    },
    async close() {
      await admin.end().catch(() => {})
      await embedded.stop().catch(() => {})
    },
  }
  return server
}
