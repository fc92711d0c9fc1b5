// Timeouts (issue 6): connect timeouts against a closed port and a server that
// never answers, statement_timeout against a locked row, and a saturated pool
// that waits at most its acquire timeout (`connectionTimeoutMillis`).

import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'

import pg from 'pg'

import { createPostgresProfileStoreRepository } from '../../index.mjs'
import { useDatabase } from '../helpers/database.mjs'
import { lockRows as lockRowsOf } from '../helpers/locks.mjs'
import { closedPort, failOnSilentExit, outcome, pollUntil, sleep, tcpProxy, uid } from './helpers.mjs'

failOnSilentExit()

const db = await useDatabase({ schemaPrefix: 'ftime' })
const setup = db.repository('native')
await setup.ensureSchema()

function doc(profileId, extra = {}) {
  return {
    profile_id: profileId,
    user_id: `user-${profileId}`,
    domains: { active: ['core'] },
    metadata: { source_count: 1, updated_at: '2026-01-01T00:00:00.000Z' },
    ...extra,
  }
}

async function storedRevision(profileId) {
  const { rows } = await db.sql(
    `select p.revision, (select count(*)::int from "${db.schema}".pson_profile_audit a where a.profile_id = p.profile_id) as audits,
            p.document #>> '{payload}' as payload
     from "${db.schema}".pson_profiles p where p.profile_id = $1`,
    [profileId],
  )
  return rows[0]
}

/** A pg client holding `select ... for update` on the given profiles until `release()`. */
function lockRows(profileIds) {
  return lockRowsOf(db.url, db.schema, profileIds)
}

describe('connectionTimeoutMillis', () => {
  test('a closed port rejects with connection_error within ~5 s', async () => {
    const port = await closedPort()
    const repository = createPostgresProfileStoreRepository({
      connectionString: `postgres://postgres@127.0.0.1:${port}/x`,
      connectionTimeoutMillis: 1000,
    })
    try {
      const results = await Promise.all([
        outcome(repository.loadProfile('p'), 10000),
        outcome(repository.saveProfile(doc('p')), 10000),
        outcome(repository.profileExists('p'), 10000),
      ])
      for (const r of results) {
        assert.equal(r.hung, undefined, 'the call settled')
        assert.equal(r.code, 'connection_error', r.error?.message)
        assert.ok(r.ms < 5000, `settled after ${Math.round(r.ms)} ms`)
      }
    } finally {
      await repository.close()
    }
  })

  test('a server that accepts and never answers: connection_error or timeout within ~5 s', async () => {
    const blackhole = await tcpProxy({ port: 1 })
    blackhole.silent = true
    const { port } = blackhole
    const repository = createPostgresProfileStoreRepository({
      connectionString: `postgres://postgres@127.0.0.1:${port}/x`,
      connectionTimeoutMillis: 1000,
    })
    try {
      const results = await Promise.all([
        outcome(repository.loadProfile('p'), 10000),
        outcome(repository.saveProfile(doc('p')), 10000),
        outcome(repository.listAuditEntries('p'), 10000),
      ])
      for (const r of results) {
        assert.equal(r.hung, undefined, 'the call settled')
        assert.ok(['connection_error', 'timeout'].includes(r.code), `code ${r.code}: ${r.error?.message}`)
        assert.ok(r.ms < 5000, `settled after ${Math.round(r.ms)} ms`)
      }
    } finally {
      await repository.close()
      await blackhole.close()
    }
  })
})

describe('statementTimeoutMillis', () => {
  test('a save of a row locked by another transaction rejects with timeout, writes nothing, and the repository keeps working', async () => {
    const id = uid('locked')
    await setup.saveProfile(doc(id, { payload: 'first' }))
    const repository = db.repository('native', { statementTimeoutMillis: 500, max: 2 })
    // Open the pool's connections first.
    await repository.loadProfile(id)
    const lock = await lockRows([id])
    try {
      const r = await outcome(repository.saveProfile(doc(id, { payload: 'second' })), 10000)
      assert.equal(r.hung, undefined, 'the save settled')
      assert.equal(r.code, 'timeout', r.error?.message)
      // As in executor mode: the server's query_canceled.
      assert.equal(r.error.sqlState, '57014')
      assert.equal(r.error.operation, 'saveProfile')
      assert.ok(r.ms < 5000, `settled after ${Math.round(r.ms)} ms`)
      assert.deepEqual(await storedRevision(id), { revision: 1, audits: 1, payload: 'first' })

      // The same repository (and its connections) serve calls normally.
      for (let i = 0; i < 5; i++) {
        const other = uid('free')
        assert.equal((await repository.saveProfile(doc(other))).metadata.revision, 1)
        assert.equal((await repository.loadProfile(other)).profile_id, other)
      }
      assert.equal((await repository.loadProfile(id)).payload, 'first')
      const many = await Promise.all(Array.from({ length: 20 }, (_, i) => outcome(repository.saveProfile(doc(`${id}-n${i}`)))))
      assert.ok(many.every((m) => m.ok), JSON.stringify(many.find((m) => !m.ok)?.error?.message))
    } finally {
      await lock.release()
    }
    // Once the lock is gone the row saves normally.
    assert.equal((await repository.saveProfile(doc(id, { payload: 'third' }))).metadata.revision, 2)
    assert.deepEqual(await storedRevision(id), { revision: 2, audits: 2, payload: 'third' })
  })

  test('executor mode over pg: statement_timeout also rejects with timeout', async () => {
    const id = uid('locked-pg')
    await setup.saveProfile(doc(id))
    const pool = new pg.Pool({ connectionString: db.url, max: 2, statement_timeout: 500 })
    const repository = createPostgresProfileStoreRepository({ exec: pool, schema: db.schema })
    const lock = await lockRows([id])
    try {
      const r = await outcome(repository.saveProfile(doc(id, { payload: 'x' })), 10000)
      assert.equal(r.code, 'timeout', r.error?.message)
      assert.equal(r.error.sqlState, '57014')
    } finally {
      await lock.release()
      await repository.close()
      await pool.end()
    }
    assert.equal((await storedRevision(id)).revision, 1)
  })
})

describe('a saturated pool', () => {
  // Two saves blocked on row locks (no statement timeout) occupy both
  // connections of a pool of 2. lanes.rs pipelines a call onto a busy
  // connection unless that connection has made no progress for 250 ms
  // (STALLED_AFTER), hence the 400 ms wait before the third call.
  async function saturate({ max = 2 } = {}) {
    const ids = [uid('sat-a'), uid('sat-b')]
    for (const id of ids) await setup.saveProfile(doc(id))
    const repository = db.repository('native', { max, connectionTimeoutMillis: 1500 })
    await repository.loadProfile(ids[0])
    const lock = await lockRows(ids)
    // Separate statements: the second save is sent once the first is blocked
    // (two saves sent together would be coalesced into one statement).
    const blocked = [outcome(repository.saveProfile(doc(ids[0], { payload: 'after' })), 20000)]
    await sleep(150)
    blocked.push(outcome(repository.saveProfile(doc(ids[1], { payload: 'after' })), 20000))
    await sleep(400)
    return { ids, repository, lock, blocked }
  }

  test('a third call waits at most connectionTimeoutMillis and rejects with timeout; then everything completes', async () => {
    const { ids, repository, lock, blocked } = await saturate()
    try {
      const status = repository.poolStatus()
      assert.equal(status.maxSize, 2)
      const third = await outcome(repository.loadProfile(ids[0]), 10000)
      assert.equal(third.hung, undefined, 'the third call settled')
      assert.equal(third.code, 'timeout', third.error?.message)
      assert.ok(third.ms >= 1000 && third.ms < 4000, `waited ${Math.round(third.ms)} ms (acquire timeout 1500)`)
    } finally {
      await lock.release()
    }
    for (const r of await Promise.all(blocked)) {
      assert.equal(r.ok, true, `blocked save: ${r.code} ${r.error?.message}`)
      assert.equal(r.value.metadata.revision, 2)
    }
    assert.equal((await repository.loadProfile(ids[1])).payload, 'after')
    const after = await Promise.all(Array.from({ length: 10 }, (_, i) => outcome(repository.saveProfile(doc(`${ids[0]}-${i}`)))))
    assert.ok(after.every((r) => r.ok))
  })

  test('poolStatus().waiting counts the calls waiting for a connection, and only them', async () => {
    const { ids, repository, lock, blocked } = await saturate()
    let third
    try {
      assert.equal(repository.poolStatus().waiting, 0, 'the blocked saves have their connections')
      third = outcome(repository.loadProfile(ids[0]), 10000)
      // Until its acquire timeout (1500 ms) the third call waits for a connection.
      await pollUntil(() => repository.poolStatus().waiting === 1, { limitMs: 1000, label: 'poolStatus().waiting === 1' })
    } finally {
      await lock.release()
    }
    await Promise.all(blocked)
    await third
    assert.equal(repository.poolStatus().waiting, 0)
  })

  test('a third call that is a save also waits at most connectionTimeoutMillis', async () => {
    const { repository, lock, blocked } = await saturate()
    try {
      const third = await outcome(repository.saveProfile(doc(uid('sat-c'))), 8000)
      assert.equal(third.hung, undefined, 'the third save settled within 8 s (acquire timeout 1500 ms)')
      assert.equal(third.code, 'timeout', third.error?.message)
    } finally {
      await lock.release()
    }
    for (const r of await Promise.all(blocked)) assert.equal(r.ok, true, `${r.code} ${r.error?.message}`)
  })

  test('two saves stuck on row locks do not stop saves of other profiles when connections are free (max 10)', async () => {
    const { repository, lock, blocked } = await saturate({ max: 10 })
    try {
      const others = await Promise.all(
        Array.from({ length: 8 }, (_, i) => outcome(repository.saveProfile(doc(uid(`free-${i}`))), 5000)),
      )
      const hung = others.filter((r) => r.hung).length
      assert.equal(hung, 0, `${hung} of 8 saves of unlocked profiles did not settle within 5 s while 8 connections were free`)
      assert.ok(others.every((r) => r.ok), others.find((r) => !r.ok)?.error?.message)
    } finally {
      await lock.release()
    }
    for (const r of await Promise.all(blocked)) assert.equal(r.ok, true, `${r.code} ${r.error?.message}`)
  })
})
