// Defaults of the native pool that the README states:
// - with no user anywhere (option, URL, PGUSER), the user is the operating
//   system's (the account of the effective uid, as libpq takes it), whatever
//   USER says: checked against a server whose pg_hba.conf lets only that role
//   in;
// - poolStatus() of an idle pool counts its open connections as available.

import assert from 'node:assert/strict'
import os from 'node:os'
import { after, describe, test } from 'node:test'
import { pathToFileURL } from 'node:url'

import { startPostgres } from '../../scripts/ecosystem/servers.mjs'
import { createPostgresProfileStoreRepository } from '../../index.mjs'
import { ROOT, cleanEnv, runNode, useServer } from './helpers.mjs'

const OS_USER = os.userInfo().username

describe('the default user', () => {
  test('is the operating-system user when no user is given (not postgres, not $USER)', async () => {
    const only = await startPostgres({
      database: 'os_user_db',
      // Only the OS user may enter os_user_db; postgres (the setup's superuser) the rest.
      hba: [
        `host os_user_db ${OS_USER} 127.0.0.1/32 trust`,
        'host os_user_db all 127.0.0.1/32 reject',
        'host all postgres 127.0.0.1/32 trust',
      ],
    })
    after(() => only.stop())
    await only.sql(`create role "${OS_USER}" login`, [], 'postgres').catch((error) => {
      if (error.code !== '42710') throw error // duplicate_object: the OS user is postgres itself
    })
    const entry = pathToFileURL(`${ROOT}/index.mjs`).href
    const check = `import { createPostgresProfileStoreRepository } from ${JSON.stringify(entry)}
      const repository = createPostgresProfileStoreRepository()
      try {
        console.log(JSON.stringify({ serverVersionNum: (await repository.checkSchema()).serverVersionNum }))
      } catch (error) {
        console.log(JSON.stringify({ code: error.code, sqlState: error.sqlState }))
      } finally {
        await repository.close()
      }`
    const base = { PGHOST: '127.0.0.1', PGPORT: String(only.port), PGDATABASE: 'os_user_db', PGSSLMODE: 'disable' }
    // Without USER (as in many containers), and with a USER naming someone else (libpq ignores it).
    const withoutUser = cleanEnv(base)
    delete withoutUser.USER
    delete withoutUser.LOGNAME
    for (const env of [withoutUser, { ...withoutUser, USER: 'someone-else', LOGNAME: 'someone-else' }]) {
      const result = await runNode(check, { env })
      assert.equal(result.code, 0, result.stderr)
      assert.deepEqual(JSON.parse(result.stdout), { serverVersionNum: only.serverVersionNum }, `USER=${env.USER}`)
    }
  })
})

describe('poolStatus()', () => {
  test('an idle pool reports its open connections as available', async () => {
    const server = await useServer()
    const repository = createPostgresProfileStoreRepository({ connectionString: server.url, max: 4 })
    try {
      // Concurrent calls open more than one connection; then they all finish.
      await Promise.all(Array.from({ length: 16 }, () => repository.checkSchema()))
      const idle = repository.poolStatus()
      assert.ok(idle.size >= 1, JSON.stringify(idle))
      assert.equal(idle.available, idle.size, `every open connection is idle: ${JSON.stringify(idle)}`)
      assert.equal(idle.waiting, 0)
      assert.equal(idle.maxSize, 4)
    } finally {
      await repository.close()
    }
  })
})
