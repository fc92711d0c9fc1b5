// Test fixture: a PostgreSQL (DATABASE_URL, else an embedded one started for
// this file) and a schema of its own per test file, dropped afterwards.
//
//   const db = await useDatabase()        // call at top level of a test file
//   db.url, db.schema, db.sql(text, params)   (plain pg, for checks)
//   db.repository('native' | 'pg' | 'postgres', extraOptions)
//   db.observedRepository(mode, extraOptions) → { repository, events } (inside a describe)
//   MODES: the three modes, for parity suites

import { randomBytes } from 'node:crypto'
import { before, beforeEach } from 'node:test'

import pg from 'pg'
import postgres from 'postgres'

import { failIfUnfinished, tableDigest } from './assertions.mjs'
import { createPostgresProfileStoreRepository } from '../../index.mjs'
import { useServer } from './servers.mjs'

export const MODES = ['native', 'pg', 'postgres']

export async function useDatabase({ schemaPrefix = 't' } = {}) {
  const server = await useServer({ max: 4 })
  const { url, embedded, admin } = server
  const schema = `${schemaPrefix}_${randomBytes(5).toString('hex')}`
  await admin.query(`create schema "${schema}"`)

  const closers = []
  const db = {
    url,
    schema,
    embedded,
    admin,
    sql: (text, params) => admin.query(text, params),
    /** A repository in `mode` on this file's schema; closed after the file. */
    repository(mode, options = {}) {
      const base = { schema, ...options }
      let repository
      if (mode === 'native') {
        repository = createPostgresProfileStoreRepository({ connectionString: url, ...base })
      } else if (mode === 'pg') {
        const pool = new pg.Pool({ connectionString: url, max: 10 })
        closers.push(() => pool.end())
        repository = createPostgresProfileStoreRepository({ exec: pool, ...base })
      } else if (mode === 'postgres') {
        const sql = postgres(url, { max: 10, onnotice: () => {} })
        closers.push(() => sql.end({ timeout: 5 }))
        repository = createPostgresProfileStoreRepository({ exec: sql, ...base })
      } else {
        throw new Error(`unknown mode ${mode}`)
      }
      closers.push(() => repository.close())
      return repository
    },
    /**
     * A repository in `mode` whose events are collected in `events`, emptied
     * before each test; its schema is ensured before the suite's first test.
     * Call inside a describe.
     */
    observedRepository(mode, options = {}) {
      const events = []
      const repository = db.repository(mode, { ...options, onEvent: (event) => events.push(event) })
      before(() => repository.ensureSchema())
      beforeEach(() => {
        events.length = 0
      })
      return { repository, events }
    },
    /** Row counts of the three tables, to prove a rejected call changed nothing. */
    async snapshot(prefix = 'pson_') {
      const counts = {}
      for (const table of ['profiles', 'profile_audit', 'domain_index']) {
        const { digest, n } = await tableDigest((text) => admin.query(text), `"${schema}"."${prefix}${table}"`)
        counts[table] = { digest, n }
      }
      return counts
    },
  }

  failIfUnfinished('this test file')

  server.cleanups.push(async () => {
    for (const close of closers.reverse()) await close().catch(() => {})
    await admin.query(`drop schema "${schema}" cascade`)
  })
  return db
}
