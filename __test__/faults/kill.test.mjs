// Server-side faults under load (issue 6): every backend of the pool is
// terminated while 32 calls are in flight, and the whole server is stopped and
// started again. Calls in flight settle with a result or `connection_error`
// (never hang), and the pool is healthy again within 2 s.
//
// Runs on an embedded PostgreSQL of its own: terminating every
// 'pson5-postgres-store' backend or restarting a server shared with other
// suites would break them.

import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { after, before, describe, test } from 'node:test'

import { createPostgresProfileStoreRepository } from '../../index.mjs'
import {
  DEFAULT_APPLICATION_NAME,
  assertOnly,
  failOnSilentExit,
  outcome,
  ownServer,
  pollUntil,
  sleep,
  tally,
  uid,
} from './helpers.mjs'

failOnSilentExit()

const IN_FLIGHT = 32
const PROFILES = 64
const CALL_LIMIT_MS = 10000
const RECOVERY_MS = 2000

let server
let schema

before(async () => {
  server = await ownServer()
  schema = uid('kill')
  await server.sql(`create schema "${schema}"`)
})
after(async () => {
  await server?.close()
})

function doc(profileId, round) {
  return {
    profile_id: profileId,
    user_id: `user-${profileId.slice(-1)}`,
    tenant_id: 'tenant-kill',
    domains: { active: ['core'] },
    payload: { round, filler: 'x'.repeat(200) },
    metadata: { source_count: round, updated_at: new Date().toISOString() },
  }
}

function repositoryFor(extra = {}) {
  return createPostgresProfileStoreRepository({ connectionString: server.url, schema, max: 10, ...extra })
}

/** One call of the mix: loads and saves of the seeded profiles. */
function oneCall(repository, i) {
  const id = `kill-${i % PROFILES}`
  return i % 2 === 0 ? repository.loadProfile(id) : repository.saveProfile(doc(id, i))
}

/**
 * `IN_FLIGHT` workers, each issuing one call after the other (every call
 * raced against CALL_LIMIT_MS) until `stop()`; each record has start/end
 * times relative to `t0`.
 */
function startLoad(repository, { pauseAfterFailureMs = 10 } = {}) {
  const t0 = performance.now()
  const records = []
  let running = true
  let counter = 0
  const worker = async () => {
    while (running) {
      const i = counter++
      const start = performance.now() - t0
      const result = await outcome(oneCall(repository, i), CALL_LIMIT_MS)
      records.push({ ...result, start, end: start + result.ms })
      if (!result.ok) await sleep(pauseAfterFailureMs)
    }
  }
  const workers = Array.from({ length: IN_FLIGHT }, worker)
  return {
    now: () => performance.now() - t0,
    records,
    async stop() {
      running = false
      await Promise.all(workers)
      return records
    },
  }
}

async function terminatePoolBackends() {
  const { rows } = await server.sql(
    `select pg_terminate_backend(pid) as killed from pg_stat_activity
     where application_name = $1 and pid <> pg_backend_pid()`,
    [DEFAULT_APPLICATION_NAME],
  )
  return rows.filter((row) => row.killed).length
}

async function poolBackendPids() {
  const { rows } = await server.sql(
    `select pid from pg_stat_activity where application_name = $1 and pid <> pg_backend_pid()`,
    [DEFAULT_APPLICATION_NAME],
  )
  return rows.map((row) => row.pid)
}

/** A burst of IN_FLIGHT calls that all succeed. */
async function burstSucceeds(repository, base) {
  const results = await Promise.all(
    Array.from({ length: IN_FLIGHT }, (_, k) => outcome(oneCall(repository, base + k), CALL_LIMIT_MS)),
  )
  return results.every((r) => r.ok)
}

describe('kill: server-side faults under 32 calls in flight', () => {
  let repository

  before(async () => {
    repository = repositoryFor()
    await repository.ensureSchema()
    await Promise.all(Array.from({ length: PROFILES }, (_, i) => repository.saveProfile(doc(`kill-${i}`, 0))))
  })
  after(async () => {
    await repository?.close()
  })

  test('the pool connections have TCP keepalive on (ss shows a keepalive timer)', async () => {
    await burstSucceeds(repository, 50000)
    const backends = (await poolBackendPids()).length
    assert.ok(backends > 0)
    // Client-side sockets to this server; node-postgres (the admin pool) does not enable keepalive.
    const out = execFileSync('ss', ['-tno', 'state', 'established', `( dport = :${server.port} )`], { encoding: 'utf8' })
    const withKeepalive = out.split('\n').filter((line) => line.includes('timer:(keepalive')).length
    assert.ok(withKeepalive >= backends, `${withKeepalive} sockets with a keepalive timer for ${backends} pool backends:\n${out}`)
  })

  test('pg_terminate_backend of every pool backend: in-flight calls settle, pool recovers within 2 s', async (t) => {
    const load = startLoad(repository)
    await sleep(400)
    const before = await poolBackendPids()
    assert.ok(before.length > 0, 'the pool has connections open before the kill')
    const killAt = load.now()
    const killed = await terminatePoolBackends()
    assert.ok(killed > 0, 'terminated at least one backend')
    // Keep the load going past the recovery window.
    await sleep(RECOVERY_MS + 700)
    const records = await load.stop()

    const counts = assertOnly(records, ['connection_error'], 'calls around the kill')
    const spanning = records.filter((r) => r.start <= killAt && r.end >= killAt)
    t.diagnostic(`killed ${killed} backends; outcomes ${JSON.stringify(counts)}; ${spanning.length} spanned the kill`)
    assert.ok(spanning.length > 0, 'some calls were in flight when the backends were terminated')
    const late = records.filter((r) => r.start >= killAt + RECOVERY_MS)
    assert.ok(late.length > IN_FLIGHT, `calls were made after the recovery window (${late.length})`)
    const lateFailures = late.filter((r) => !r.ok)
    assert.equal(
      lateFailures.length,
      0,
      `calls started more than ${RECOVERY_MS} ms after the kill must succeed; ${lateFailures.length} of ${late.length} ` +
        `failed (${JSON.stringify(tally(lateFailures))}); first: ${lateFailures[0]?.error?.message}; all: ${JSON.stringify(counts)}`,
    )

    // The broken connections were replaced, not reused.
    const after = await poolBackendPids()
    assert.ok(after.length > 0)
    assert.equal(after.filter((pid) => before.includes(pid)).length, 0, 'no terminated backend is still in use')
  })

  test('after the kill, a poll of fresh bursts succeeds within 2 s', async () => {
    // Idle pool this time: connections are open but nothing is in flight.
    assert.ok(await burstSucceeds(repository, 10000))
    const killed = await terminatePoolBackends()
    assert.ok(killed > 0)
    let base = 20000
    const ms = await pollUntil(
      async () => {
        base += IN_FLIGHT
        return burstSucceeds(repository, base)
      },
      { limitMs: RECOVERY_MS, everyMs: 20, label: 'a burst of 32 successful calls after the kill' },
    )
    assert.ok(ms <= RECOVERY_MS)
  })

  test('idle pool: after its backends are terminated, the very first calls get fresh connections (none fails)', async () => {
    assert.ok(await burstSucceeds(repository, 30000))
    const before = await poolBackendPids()
    assert.ok((await terminatePoolBackends()) > 0)
    // Give the server time to close the sockets; no call is in flight meanwhile.
    await pollUntil(async () => (await poolBackendPids()).every((pid) => !before.includes(pid)), {
      limitMs: 2000,
      label: 'terminated backends gone',
    })
    await sleep(100)
    const results = await Promise.all(
      Array.from({ length: IN_FLIGHT }, (_, k) => outcome(oneCall(repository, 40000 + k), CALL_LIMIT_MS)),
    )
    const failed = results.filter((r) => !r.ok)
    assert.equal(failed.length, 0, `broken connections were handed out: ${JSON.stringify(tally(results))}; ${failed[0]?.error?.message}`)
  })

  test('a full restart: calls fail fast with connection_error while down, succeed again after start', async (t) => {
    const load = startLoad(repository, { pauseAfterFailureMs: 20 })
    await sleep(300)
    const stopAt = load.now()
    await server.stopKeepingData()
    const downAt = load.now()
    await sleep(700)
    const startAt = load.now()
    await server.startAgain()
    const upAt = load.now()
    await sleep(RECOVERY_MS + 700)
    const records = await load.stop()

    const counts = assertOnly(records, ['connection_error'], 'calls around the restart')
    const spanning = records.filter((r) => r.start <= stopAt && r.end >= stopAt)
    t.diagnostic(`outcomes ${JSON.stringify(counts)}; ${spanning.length} spanned the stop`)
    assert.ok(spanning.length > 0, 'calls were in flight when the server went down')

    const whileDown = records.filter((r) => r.start >= downAt && r.end <= startAt)
    assert.ok(whileDown.length > 0, 'calls were made while the server was down')
    const downOk = whileDown.filter((r) => r.ok)
    assert.equal(downOk.length, 0, 'no call can succeed while the server is down')
    const slowest = Math.max(...whileDown.map((r) => r.ms))
    assert.ok(slowest < 3000, `calls while down reject quickly (slowest ${Math.round(slowest)} ms)`)

    const late = records.filter((r) => r.start >= upAt + RECOVERY_MS)
    assert.ok(late.length > 0, 'calls were made after the recovery window')
    const lateFailures = late.filter((r) => !r.ok)
    assert.equal(
      lateFailures.length,
      0,
      `calls started more than ${RECOVERY_MS} ms after the restart must succeed; ${lateFailures.length} of ` +
        `${late.length} failed (${JSON.stringify(tally(lateFailures))}): ${lateFailures[0]?.error?.message}`,
    )
  })

  test('after the restart, nothing was half-written: audit and profiles agree', async () => {
    const { rows } = await server.sql(
      `select p.profile_id, p.revision, count(a.revision)::int as audits, max(a.revision) as max_rev
       from "${schema}".pson_profiles p left join "${schema}".pson_profile_audit a using (profile_id)
       group by p.profile_id, p.revision`,
    )
    assert.equal(rows.length, PROFILES)
    const bad = rows.filter((r) => r.revision !== r.audits || r.revision !== r.max_rev)
    assert.deepEqual(bad, [])
  })
})

describe('kill: a fresh repository against a server that is down', () => {
  test('rejects with connection_error quickly, then works once the server is back', async () => {
    const repository = repositoryFor({ connectionTimeoutMillis: 3000 })
    try {
      await server.stopKeepingData()
      let up = false
      try {
        const results = await Promise.all(
          Array.from({ length: 8 }, (_, i) => outcome(oneCall(repository, i), CALL_LIMIT_MS)),
        )
        for (const r of results) {
          assert.equal(r.ok, false)
          assert.equal(r.code, 'connection_error', r.error?.message)
          assert.ok(r.ms < 3000, `rejected after ${Math.round(r.ms)} ms`)
        }
      } finally {
        await server.startAgain()
        up = true
      }
      assert.ok(up)
      await pollUntil(() => burstSucceeds(repository, 0), {
        limitMs: RECOVERY_MS,
        everyMs: 20,
        label: 'a fresh repository recovers after start',
      })
    } finally {
      await repository.close()
    }
  })
})

describe('kill: the backend of one call in flight', () => {
  test('that call gets connection_error and the very next call succeeds (a dead connection is never handed out)', async () => {
    const applicationName = uid('killone')
    const repository = repositoryFor({ applicationName })
    const id = 'kill-one'
    try {
      await repository.saveProfile(doc(id, 0))
      for (let round = 1; round <= 5; round++) {
        const locker = await server.admin.connect()
        try {
          await locker.query('begin')
          await locker.query(`select 1 from "${schema}".pson_profiles where profile_id = $1 for update`, [id])
          const blocked = outcome(repository.saveProfile(doc(id, round)), CALL_LIMIT_MS)
          await pollUntil(
            async () => {
              const { rows } = await server.sql(
                `select count(*)::int as n from pg_stat_activity where application_name = $1 and wait_event_type = 'Lock'`,
                [applicationName],
              )
              return rows[0].n > 0
            },
            { limitMs: 5000, everyMs: 10, label: 'the save waits on the row lock' },
          )
          await server.sql('select pg_terminate_backend(pid) from pg_stat_activity where application_name = $1', [
            applicationName,
          ])
          const killed = await blocked
          assert.equal(killed.code, 'connection_error', `round ${round}: ${killed.code} ${killed.error?.message}`)
          const next = await outcome(repository.loadProfile(id), CALL_LIMIT_MS)
          assert.equal(next.ok, true, `round ${round}: the first call after the kill: ${next.code} ${next.error?.message}`)
        } finally {
          await locker.query('rollback').catch(() => {})
          locker.release()
        }
      }
    } finally {
      await repository.close()
    }
  })
})
