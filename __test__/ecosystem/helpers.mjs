// Shared by the ecosystem tests: the PostgreSQL to use (DATABASE_URL, else an
// embedded one started for the file), unique names, and a way to run a
// snippet in a child process with a controlled environment.

import { randomBytes } from 'node:crypto'
import path from 'node:path'
import { after } from 'node:test'
import { fileURLToPath } from 'node:url'

import pg from 'pg'

import { startEmbeddedPostgres } from '../../scripts/embedded-postgres.mjs'
import { run } from '../helpers/run.mjs'

export { run }

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')

export function unique(prefix) {
  return `${prefix}_${randomBytes(4).toString('hex')}`
}

/**
 * DATABASE_URL, or an embedded server stopped after the file. Also returns a
 * small pg pool (closed after the file) for checks behind the package's back.
 */
export async function useServer() {
  let url = process.env.DATABASE_URL
  let embedded = null
  if (!url) {
    embedded = await startEmbeddedPostgres()
    url = embedded.url
  }
  const admin = new pg.Pool({ connectionString: url, max: 2 })
  // Run (last registered first) before the pool ends: node:test runs `after`
  // hooks in registration order, so a hook of their own would find it ended.
  const cleanups = []
  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {})
    await admin.end()
    if (embedded) await embedded.stop()
  })
  return { url, admin, cleanups, sql: (text, params) => admin.query(text, params) }
}

/** A fresh schema on `server`, dropped (cascade) after the file. */
export async function useSchema(server, prefix = 'eco') {
  const schema = unique(prefix)
  await server.sql(`create schema "${schema}"`)
  server.cleanups.push(() => server.sql(`drop schema if exists "${schema}" cascade`))
  return schema
}

/** An environment without any libpq variable nor DATABASE_URL, plus `extra`. */
export function cleanEnv(extra = {}) {
  const env = {}
  for (const [key, value] of Object.entries(process.env)) {
    if (key === 'DATABASE_URL' || key.startsWith('PG')) continue
    env[key] = value
  }
  return { ...env, ...extra }
}

/**
 * Runs `node --input-type=module -e <code>` in `cwd` with `env`; resolves to
 * { code, stdout, stderr }. Never rejects on a non-zero exit.
 */
export function runNode(code, { env = process.env, cwd = ROOT, args = [], timeoutMillis = 60000 } = {}) {
  return run(process.execPath, ['--input-type=module', '-e', code, ...args], { env, cwd, timeoutMillis })
}

/** The rejection of `promise` (fails the test when it resolves). */
export async function rejection(promise) {
  try {
    await promise
  } catch (error) {
    return error
  }
  throw new Error('expected a rejection')
}

/** A small PSON5-shaped profile document. */
export function profile(profileId, userId, extra = {}) {
  return {
    pson_version: '5.0',
    profile_id: profileId,
    user_id: userId,
    tenant_id: 'tenant-eco',
    domains: { active: ['core'], depth: 'light' },
    layers: { observed: { note: `hello ${profileId}` }, inferred: {}, simulated: {} },
    metadata: { source_count: 1, updated_at: new Date().toISOString() },
    ...extra,
  }
}

/** A loopback port nothing listens on (at the time of the call). */
export { freePort as freePortNow } from '../../scripts/ecosystem/servers.mjs'
