// A row lock held by another session, for tests of what waits on it
// (statement_timeout, lock_timeout, close() with blocked saves).

import assert from 'node:assert/strict'

import pg from 'pg'

/**
 * A pg client on `url` holding `select ... for update` on the given profiles
 * of `schema` (table `<prefix>profiles`) until `release()`.
 */
export async function lockRows(url, schema, profileIds, prefix = 'pson_') {
  const client = new pg.Client({ connectionString: url })
  client.on('error', () => {})
  await client.connect()
  await client.query('begin')
  const { rowCount } = await client.query(
    `select 1 from "${schema}"."${prefix}profiles" where profile_id = any($1::text[]) for update`,
    [profileIds],
  )
  assert.equal(rowCount, profileIds.length, 'locked every row')
  return {
    async release() {
      await client.query('rollback').catch(() => {})
      await client.end().catch(() => {})
    },
  }
}
