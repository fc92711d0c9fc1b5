// Cancellation (issue 14, items 4 and 8): every method accepts `{ signal,
// timeoutMillis }`; a call aborted before its statement is sent leaves its
// batch and writes nothing; a write aborted after it was sent rejects with
// `aborted` and `outcomeUnknown: true` (the next load tells the truth).
// Against a real PostgreSQL, in the three modes.

import assert from 'node:assert/strict'
import { after, describe, test } from 'node:test'

import pg from 'pg'

import { PostgresStoreError, createPostgresProfileStoreRepository } from '../index.mjs'
import { rejection } from './helpers/assertions.mjs'
import { MODES, useDatabase } from './helpers/database.mjs'
import { lockRows } from './helpers/locks.mjs'

const db = await useDatabase({ schemaPrefix: 'cancel' })
await db.repository('native').ensureSchema()

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

function doc(id, n = 1) {
  return { profile_id: id, user_id: 'cancel-user', metadata: { source_count: n } }
}

/** Polls `storedRevision(id)` until it is `revision` (at most 5 s); returns the last one read. */
async function untilCommitted(id, revision) {
  let stored
  for (let i = 0; i < 100 && (stored = await storedRevision(id)) !== revision; i++) await sleep(50)
  return stored
}

async function storedRevision(id) {
  const { rows } = await db.sql(`select revision from "${db.schema}".pson_profiles where profile_id = $1`, [id])
  return rows[0]?.revision ?? null
}

function assertAborted(error, { outcomeUnknown = undefined } = {}) {
  assert.ok(error instanceof PostgresStoreError, String(error))
  assert.equal(error.code, 'aborted', `${error.code}: ${error.message}`)
  assert.equal(error.outcomeUnknown, outcomeUnknown)
  assert.ok(error.stack.includes('cancel.test.mjs'), `the stack names the caller:\n${error.stack}`)
}

for (const mode of MODES) {
  describe(`cancellation (${mode})`, () => {
    const repository = db.repository(mode)

    test('bad signal or timeoutMillis: validation_error, nothing written', async () => {
      const before = await db.snapshot()
      for (const [options, field] of [
        [{ signal: 'soon' }, 'signal'],
        [{ timeoutMillis: 0 }, 'timeoutMillis'],
        [{ timeoutMillis: 1.5 }, 'timeoutMillis'],
        [{ timeoutMillis: '100' }, 'timeoutMillis'],
      ]) {
        const error = await rejection(repository.saveProfile(doc(`cancel-bad-${mode}`), options))
        assert.equal(error.code, 'validation_error')
        assert.equal(error.field, field)
      }
      assert.deepEqual(await db.snapshot(), before)
    })

    test('an already aborted signal: aborted at once, nothing sent or written', async () => {
      const reason = new Error('the client went away')
      const signal = AbortSignal.abort(reason)
      const id = `cancel-pre-${mode}`
      const error = await rejection(repository.saveProfile(doc(id), { signal }))
      assertAborted(error)
      assert.equal(error.cause, reason)
      assertAborted(await rejection(repository.loadProfile(id, { signal })))
      assertAborted(await rejection(repository.profileExists(id, { signal })))
      assert.equal(await storedRevision(id), null)
    })

    test('aborted in the same tick as the call: it leaves its batch, the other saves of the batch are written', async () => {
      const controller = new AbortController()
      const ids = Array.from({ length: 10 }, (_, i) => `cancel-batch-${mode}-${i}`)
      const calls = ids.map((id, i) => repository.saveProfile(doc(id), i === 3 ? { signal: controller.signal } : {}))
      controller.abort()
      const outcomes = await Promise.allSettled(calls)
      assertAborted(outcomes[3].reason)
      outcomes.forEach((outcome, i) => {
        if (i !== 3) assert.equal(outcome.status, 'fulfilled', `${ids[i]}: ${outcome.reason?.message}`)
      })
      await sleep(100)
      assert.equal(await storedRevision(ids[3]), null, 'the aborted save was never sent')
      for (const [i, id] of ids.entries()) if (i !== 3) assert.equal(await storedRevision(id), 1)
    })

    test('a save blocked on a row lock past its timeoutMillis: aborted, outcome unknown; the next load tells', async () => {
      const id = `cancel-locked-${mode}`
      await repository.saveProfile(doc(id))
      const lock = await lockRows(db.url, db.schema, [id])
      let error
      try {
        error = await rejection(repository.saveProfile(doc(id, 2), { timeoutMillis: 300 }))
      } finally {
        await lock.release()
      }
      assertAborted(error, { outcomeUnknown: true })
      assert.equal(error.cause?.name, 'TimeoutError')
      // Whatever happened to it, a load gives the stored truth.
      await sleep(200)
      const loaded = await repository.loadProfile(id)
      assert.equal(loaded.metadata.revision, await storedRevision(id))
      // The repository keeps working.
      assert.equal((await repository.saveProfile(doc(id, 3))).metadata.revision, loaded.metadata.revision + 1)
    })

    test('a timeoutMillis that does not pass changes nothing', async () => {
      const id = `cancel-fast-${mode}`
      const saved = await repository.saveProfile(doc(id), { timeoutMillis: 60000, signal: new AbortController().signal })
      assert.equal(saved.metadata.revision, 1)
      const loaded = await repository.loadProfile(id, { timeoutMillis: 60000 })
      assert.equal(loaded.metadata.revision, 1)
    })
  })
}

// A statement whose every caller aborted is cancelled on the server: in
// native mode when it runs alone on its connection (src/store/abandon.rs),
// over a pg Pool by createPostgresQueryExecutor (lib/drivers.js). postgres.js
// pipelines, so there a running statement runs to its end.
describe('cancelled on the server', () => {
  /** Backends of this database waiting for a lock, other than `holder`'s. */
  async function waitingForLocks() {
    const { rows } = await db.sql(
      `select count(*)::int as n from pg_stat_activity
        where datname = current_database() and wait_event_type = 'Lock' and pid <> pg_backend_pid()`,
    )
    return rows[0].n
  }

  /** Polls `waitingForLocks()` until it is `n` (at most 5 s); returns the last count. */
  async function untilWaiting(n) {
    let count
    for (let i = 0; i < 100 && (count = await waitingForLocks()) !== n; i++) await sleep(50)
    return count
  }

  /**
   * Saves `id`, locks its row from another session, and makes a second save
   * of it wait for that lock until its timeoutMillis (300 ms) aborts it.
   * Returns the lock, still held.
   */
  async function saveAbortedBehindLock(repository, id) {
    await repository.saveProfile(doc(id))
    const lock = await lockRows(db.url, db.schema, [id])
    try {
      const saving = rejection(repository.saveProfile(doc(id, 2), { timeoutMillis: 300 }))
      assert.equal(await untilWaiting(1), 1, 'the save waits for the row lock')
      assertAborted(await saving, { outcomeUnknown: true })
      return lock
    } catch (error) {
      await lock.release()
      throw error
    }
  }

  for (const mode of ['native', 'pg']) {
    test(`a save blocked on a row lock and aborted is cancelled: it stops waiting and never commits (${mode})`, async () => {
      const repository = db.repository(mode)
      const id = `cancel-server-save-${mode}`
      const lock = await saveAbortedBehindLock(repository, id)
      try {
        assert.equal(await untilWaiting(0), 0, 'the server cancelled the save while the lock was still held')
      } finally {
        await lock.release()
      }
      await sleep(200)
      assert.equal(await storedRevision(id), 1, 'the cancelled save was rolled back')
      assert.equal((await repository.loadProfile(id)).metadata.revision, 1)
      assert.equal((await repository.saveProfile(doc(id, 3))).metadata.revision, 2, 'the repository keeps working')
    })

    test(`a load blocked behind a table lock and aborted is cancelled (${mode})`, async () => {
      const repository = db.repository(mode)
      const id = `cancel-server-load-${mode}`
      await repository.saveProfile(doc(id))
      const locker = await db.admin.connect()
      await locker.query('begin')
      await locker.query(`lock table "${db.schema}".pson_profiles in access exclusive mode`)
      try {
        const loading = rejection(repository.loadProfile(id, { timeoutMillis: 300 }))
        assert.equal(await untilWaiting(1), 1, 'the load waits for the table lock')
        assertAborted(await loading)
        assert.equal(await untilWaiting(0), 0, 'the server cancelled the load while the lock was still held')
      } finally {
        await locker.query('rollback')
        locker.release()
      }
      assert.equal((await repository.loadProfile(id)).metadata.revision, 1)
    })
  }

  test('postgres.js: a running statement runs to its end (a cancel request could stop a statement pipelined behind it)', async () => {
    const repository = db.repository('postgres')
    const id = 'cancel-server-postgres-js'
    const lock = await saveAbortedBehindLock(repository, id)
    try {
      await sleep(300)
      assert.equal(await waitingForLocks(), 1, 'the save still waits for the lock')
    } finally {
      await lock.release()
    }
    assert.equal(await untilCommitted(id, 2), 2, 'the aborted save committed once the lock was released')
  })

  test('pg Pool: a call with a signal whose connection is lost rejects with connection_error, and nothing throws', async () => {
    const application = 'pson5-cancel-lost'
    const pool = new pg.Pool({ connectionString: db.url, max: 2, application_name: application })
    after(() => pool.end())
    const repository = createPostgresProfileStoreRepository({ exec: pool, schema: db.schema })
    after(() => repository.close())
    const id = 'cancel-server-lost-pg'
    await repository.saveProfile(doc(id))
    const lock = await lockRows(db.url, db.schema, [id])
    try {
      // The call's own client (checked out for its signal) waits for the lock.
      const saving = rejection(repository.saveProfile(doc(id, 2), { timeoutMillis: 60000 }))
      assert.equal(await untilWaiting(1), 1, 'the save waits for the row lock')
      await db.sql('select pg_terminate_backend(pid) from pg_stat_activity where application_name = $1', [application])
      const error = await saving
      assert.equal(error.code, 'connection_error', `${error.code}: ${error.message}`)
    } finally {
      await lock.release()
    }
    assert.equal((await repository.saveProfile(doc(id, 3))).metadata.revision, 2)
  })

  test('an executor function of the caller (pool.query.bind(pool)) is called as (sql, params), also for calls with a signal', async () => {
    // pg-pool's query takes a third argument as its callback.
    const pool = new pg.Pool({ connectionString: db.url, max: 2 })
    after(() => pool.end())
    const repository = createPostgresProfileStoreRepository({ exec: pool.query.bind(pool), schema: db.schema })
    after(() => repository.close())
    const id = 'cancel-own-executor'
    const saved = await repository.saveProfile(doc(id), { timeoutMillis: 60000 })
    assert.equal(saved.metadata.revision, 1)
    assert.equal((await repository.loadProfile(id, { signal: new AbortController().signal })).metadata.revision, 1)
  })

  // One connection each; node-postgres' through a Pool of the test's own.
  const oneConnection = {
    native: (application) => db.repository('native', { max: 1, applicationName: application }),
    pg: (application) => {
      const pool = new pg.Pool({ connectionString: db.url, max: 1, application_name: application })
      after(() => pool.end())
      return createPostgresProfileStoreRepository({ exec: pool, schema: db.schema })
    },
  }

  for (const [mode, repositoryOn] of Object.entries(oneConnection)) {
    test(`the connection a cancel request went to is closed, not reused (a late request could stop the next statement) (${mode})`, async () => {
      const application = `pson5-cancel-retired-${mode}`
      const repository = repositoryOn(application)
      after(() => repository.close())
      const backends = async () =>
        (await db.sql('select pid from pg_stat_activity where application_name = $1', [application])).rows.map((r) => r.pid)
      const id = `cancel-server-retired-${mode}`
      await repository.saveProfile(doc(id))
      const [cancelled] = await backends()
      assert.equal(typeof cancelled, 'number')
      const lock = await lockRows(db.url, db.schema, [id])
      try {
        assertAborted(await rejection(repository.saveProfile(doc(id, 2), { timeoutMillis: 300 })), { outcomeUnknown: true })
        assert.equal(await untilWaiting(0), 0, 'the server cancelled the save')
      } finally {
        await lock.release()
      }
      // With one connection allowed, the pool let go of the closed one.
      assert.equal((await repository.saveProfile(doc(id, 3))).metadata.revision, 2)
      let now = await backends()
      for (let i = 0; i < 100 && now.includes(cancelled); i++) {
        await sleep(50)
        now = await backends()
      }
      assert.ok(!now.includes(cancelled), `backend ${cancelled} is gone: ${now}`)
      assert.equal(now.length, 1)
    })
  }

  test('a save aborted while it waits in the queue for a statement is never sent', async () => {
    const repository = db.repository('native')
    const locked = ['cancel-server-queue-a', 'cancel-server-queue-b']
    for (const id of locked) await repository.saveProfile(doc(id))
    const lock = await lockRows(db.url, db.schema, locked)
    const id = 'cancel-server-queued'
    let blocked
    try {
      // One tick each: two save statements, both waiting for the lock, hold
      // both of the saves' statements at once (limits.rs SAVES).
      const first = repository.saveProfile(doc(locked[0], 2))
      await sleep(50)
      const second = repository.saveProfile(doc(locked[1], 2))
      blocked = Promise.allSettled([first, second])
      assert.equal(await untilWaiting(2), 2, 'both save statements wait for the lock')
      // This one crosses into Rust and waits for a statement of its own.
      assertAborted(await rejection(repository.saveProfile(doc(id), { timeoutMillis: 100 })), { outcomeUnknown: true })
      // Past STALLED_AFTER (250 ms) the queue sends what waits anyway.
      await sleep(500)
      assert.equal(await storedRevision(id), null, 'the aborted save was never sent')
    } finally {
      await lock.release()
    }
    const outcomes = await blocked
    assert.deepEqual(
      outcomes.map((o) => o.value?.metadata.revision),
      [2, 2],
    )
    assert.equal(await storedRevision(id), null)
  })

  test('a statement that also serves a call without a signal runs to its end', async () => {
    const repository = db.repository('native')
    const ids = ['cancel-server-shared-a', 'cancel-server-shared-b']
    for (const id of ids) await repository.saveProfile(doc(id))
    const lock = await lockRows(db.url, db.schema, ids)
    let saved
    try {
      // One tick: both saves share one statement.
      const aborted = rejection(repository.saveProfile(doc(ids[0], 2), { timeoutMillis: 300 }))
      saved = repository.saveProfile(doc(ids[1], 2))
      saved.catch(() => {})
      assertAborted(await aborted, { outcomeUnknown: true })
      await sleep(300)
      assert.equal(await waitingForLocks(), 1, 'their statement still waits for the lock')
    } finally {
      await lock.release()
    }
    assert.equal((await saved).metadata.revision, 2)
    assert.equal(await storedRevision(ids[0]), 2, 'the aborted save committed with its neighbour')
  })

  test('a statement pipelined on a connection with another call is not cancelled (the cancel would stop the other)', async () => {
    // One connection: the load of B is pipelined behind the save of A.
    const repository = db.repository('native', { max: 1 })
    const [a, b] = ['cancel-server-pipelined-a', 'cancel-server-pipelined-b']
    await repository.saveProfile(doc(a))
    await repository.saveProfile(doc(b))
    const lock = await lockRows(db.url, db.schema, [a])
    let saving
    let loading
    try {
      saving = rejection(repository.saveProfile(doc(a, 2), { timeoutMillis: 300 }))
      assert.equal(await untilWaiting(1), 1, 'the save waits for the row lock')
      loading = repository.loadProfile(b)
      assertAborted(await saving, { outcomeUnknown: true })
      await sleep(300)
      assert.equal(await waitingForLocks(), 1, 'the save still waits: its connection serves the load too')
    } finally {
      await lock.release()
    }
    assert.equal((await loading).metadata.revision, 1)
    assert.equal(await storedRevision(a), 2, 'the aborted save committed once the lock was released')
  })
})
