// The contenders, each as { load(n), save(n), find(u), close() } over the same
// schema. n is a profile number, u a user number (see docs.mjs). Every one
// does the work a caller needs: load returns the parsed document, save sends
// the document JSON and gets the new revision (or saved document), find
// returns the profile ids.

import pg from 'pg'
import postgres from 'postgres'

import { createPostgresProfileStoreArtifacts, createPostgresProfileStoreRepository } from '../../index.mjs'
import { profileId, userId } from './docs.mjs'

export const IMPLEMENTATIONS = {
  native: 'this package, native pool',
  executor: 'this package, executor over pg',
  original: 'original 0.2.2 + pg',
  pg: 'raw pg (same SQL, named prepared)',
  postgresjs: 'raw postgres.js (same SQL, prepare)',
  pgbench: 'pgbench -M prepared (same SQL)',
}

/** The document sent by one save: the profile with a fresh `metadata.updated_at`. */
function freshDocument(docs, n) {
  const base = docs[n - 1]
  return { ...base, metadata: { ...base.metadata, updated_at: new Date().toISOString() } }
}

export async function createImplementation(impl, { url, schema, poolSize, getDocs, upstream }) {
  const queries = createPostgresProfileStoreArtifacts({ schema }).queries
  switch (impl) {
    case 'native': {
      const repository = createPostgresProfileStoreRepository({ connectionString: url, max: poolSize, schema })
      return repositoryOps(repository, getDocs, () => repository.close())
    }
    case 'executor': {
      const pool = new pg.Pool({ connectionString: url, max: poolSize })
      const repository = createPostgresProfileStoreRepository({ exec: pool, schema })
      return repositoryOps(repository, getDocs, async () => {
        await repository.close()
        await pool.end()
      })
    }
    case 'original': {
      if (!upstream.store) throw new Error(`the original 0.2.2 is unavailable: ${upstream.error?.message}`)
      const pool = new pg.Pool({ connectionString: url, max: poolSize })
      const repository = upstream.store.createPostgresProfileStoreRepository(
        upstream.store.createPostgresQueryExecutor(pool),
        { schema },
      )
      const adapter = upstream.engine.createDocumentProfileStoreAdapter(repository)
      // The adapter writes the revision it is given (the engine's saveProfile
      // bumps it before); count up per profile from the stored revision (an
      // earlier round may have saved), so every save appends a revision row,
      // as ours does.
      const revisions = await storedRevisions(pool, schema, getDocs)
      return {
        load: (n) => adapter.loadProfile(profileId(n)),
        save: (n) => {
          const docs = getDocs()
          const doc = freshDocument(docs, n)
          doc.metadata.revision = ++revisions[n - 1]
          return adapter.saveProfile(doc)
        },
        find: (u) => adapter.findProfilesByUserId(userId(u)),
        close: () => pool.end(),
      }
    }
    case 'pg': {
      const pool = new pg.Pool({ connectionString: url, max: poolSize })
      const run = (name, values) => pool.query({ name: `pson5_${name}`, text: queries[name], values, rowMode: 'array' })
      const column = (result, name) => result.fields.findIndex((f) => f.name === name)
      return {
        load: async (n) => JSON.parse((await run('loadProfile', [profileId(n)])).rows[0][0]),
        // Same params as lib/repository.js: [document JSON, expectedRevision|null, context|null].
        save: async (n) => {
          const result = await run('saveProfile', [JSON.stringify(freshDocument(getDocs(), n)), null, null])
          return result.rows[0][column(result, 'revision')]
        },
        find: async (u) => (await run('findProfilesByUserId', [userId(u)])).rows.map((row) => row[0]),
        close: () => pool.end(),
      }
    }
    case 'postgresjs': {
      const sql = postgres(url, { max: poolSize, onnotice: () => {} })
      const run = (name, params) => sql.unsafe(queries[name], params, { prepare: true })
      return {
        load: async (n) => JSON.parse((await run('loadProfile', [profileId(n)]))[0].document),
        save: async (n) => (await run('saveProfile', [JSON.stringify(freshDocument(getDocs(), n)), null, null]))[0].revision,
        find: async (u) => (await run('findProfilesByUserId', [userId(u)])).map((row) => row.profile_id),
        close: () => sql.end({ timeout: 5 }),
      }
    }
    default:
      throw new Error(`unknown implementation '${impl}'`)
  }
}

function repositoryOps(repository, getDocs, close) {
  return {
    load: (n) => repository.loadProfile(profileId(n)),
    save: (n) => repository.saveProfile(freshDocument(getDocs(), n)),
    find: (u) => repository.findProfilesByUserId(userId(u)),
    close,
  }
}

/** The original's current revision of each profile, by profile number (1 when it has none yet). */
async function storedRevisions(pool, schema, getDocs) {
  const { rows } = await pool.query(
    `select profile_id, profile_revision from "${schema.replace(/"/g, '""')}".pson_profiles_current`,
  )
  const revisions = new Int32Array(getDocs()?.length ?? rows.length).fill(1)
  for (const row of rows) {
    const n = Number(row.profile_id.slice('pson_'.length))
    if (Number.isInteger(n) && n >= 1 && n <= revisions.length) revisions[n - 1] = row.profile_revision
  }
  return revisions
}

/** Throws unless the first result of an operation looks right (wrong SQL/params/schema fail loudly). */
export function checkResult(op, value, n) {
  const fail = (what) => {
    throw new Error(`${op} returned ${what}: ${JSON.stringify(value)?.slice(0, 200)}`)
  }
  if (op === 'load') {
    if (value?.profile_id !== profileId(n)) fail('the wrong document')
  } else if (op === 'save') {
    const revision = typeof value === 'object' && value !== null ? value.metadata?.revision : value
    if (!(Number(revision) >= 2)) fail('no new revision')
  } else if (op === 'find') {
    // Profile u belongs to user u (docs.mjs userOf), so it must be listed.
    if (!Array.isArray(value) || !value.includes(profileId(n))) fail('a list without the profile')
  }
}
