// close() under load, processes that never close, and the addon in worker
// threads (issue 6).

import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { Worker } from 'node:worker_threads'
import { describe, test } from 'node:test'

import pg from 'pg'

import { useDatabase } from '../helpers/database.mjs'
import { assertOnly, failOnSilentExit, outcome, sleep, tally, uid } from './helpers.mjs'

failOnSilentExit()

const here = path.dirname(fileURLToPath(import.meta.url))
const db = await useDatabase({ schemaPrefix: 'fclose' })
await db.repository('native').ensureSchema()

function doc(profileId, padding = 0) {
  return {
    profile_id: profileId,
    user_id: 'close-user',
    domains: { active: ['core'] },
    metadata: { source_count: 1 },
    ...(padding > 0 ? { padding: 'p'.repeat(padding) } : {}),
  }
}

/** 100 calls of every kind; saves use fresh ids so each is revision 1 or absent. */
function hundredCalls(repository, round, padding = 0) {
  const calls = []
  for (let i = 0; i < 100; i++) {
    const id = `close-${round}-${i}`
    let promise
    switch (i % 5) {
      case 0:
      case 1:
        promise = repository.saveProfile(doc(id, padding)).then((saved) => ({ saved: id, revision: saved.metadata.revision }))
        break
      case 2:
        promise = repository.loadProfile(`close-seed-${i % 10}`)
        break
      case 3:
        promise = repository.listAuditEntries(`close-seed-${i % 10}`, { limit: 5 })
        break
      default:
        promise = repository.findProfilesByUserId('close-user')
    }
    calls.push({ id, kind: i % 5, promise })
  }
  return calls
}

describe('close() with 100 calls in flight', () => {
  for (const [label, delay, padding] of [
    ['in the same tick', -1, 0],
    ['after a microtask turn', 0, 0],
    ['after 2 ms', 2, 0],
    ['after 5 ms, 200 KB documents', 5, 200000],
    ['after 40 ms, 200 KB documents', 40, 200000],
  ]) {
    test(`every call settles with a result or closed within 5 s; close ${label}`, async (t) => {
      const repository = db.repository('native')
      for (let i = 0; i < 10; i++) await repository.saveProfile(doc(`close-seed-${i}`)).catch(() => {})
      const round = uid('r')
      const calls = hundredCalls(repository, round, padding)
      const settled = Promise.all(calls.map((call) => outcome(call.promise, 5000)))
      if (delay >= 0) await sleep(delay)
      const closing = outcome(repository.close(), 6000)
      const [outcomes, closed] = await Promise.all([settled, closing])

      assert.equal(closed.ok, true, `close() resolved (${closed.hung ? 'hung' : closed.error?.message})`)
      const counts = assertOnly(outcomes, ['closed'], 'calls in flight at close()')
      t.diagnostic(`outcomes ${JSON.stringify(counts)}`)

      // A save that resolved is stored with its revision; one that said
      // `closed` wrote nothing.
      const { rows } = await db.sql(
        `select profile_id, revision from "${db.schema}".pson_profiles where profile_id like $1`,
        [`close-${round}-%`],
      )
      const stored = new Map(rows.map((row) => [row.profile_id, row.revision]))
      calls.forEach((call, i) => {
        if (call.kind > 1) return
        const o = outcomes[i]
        if (o.ok) assert.equal(stored.get(call.id), 1, `${call.id} resolved but is not stored`)
        else assert.equal(stored.has(call.id), false, `${call.id} rejected with closed but was written`)
      })
      // Later calls reject with closed at once.
      const later = await outcome(repository.loadProfile('close-seed-1'), 2000)
      assert.equal(later.code, 'closed')
    })
  }
})

describe('close() while a call is blocked in the database', () => {
  test('a save waiting on a row lock and 100 other calls: all settle within 5 s, close resolves', async (t) => {
    const repository = db.repository('native')
    const id = uid('close-locked')
    await repository.saveProfile(doc(id))
    const locker = new pg.Client({ connectionString: db.url })
    await locker.connect()
    try {
      await locker.query('begin')
      await locker.query(`select 1 from "${db.schema}".pson_profiles where profile_id = $1 for update`, [id])
      const blocked = outcome(repository.saveProfile(doc(id)), 6000)
      await sleep(100)
      const others = hundredCalls(repository, uid('r'))
      const settled = Promise.all(others.map((call) => outcome(call.promise, 6000)))
      const closed = await outcome(repository.close(), 6000)
      const [blockedOutcome, otherOutcomes] = await Promise.all([blocked, settled])
      t.diagnostic(
        `close ${closed.hung ? 'still pending after 6 s' : `resolved after ${Math.round(closed.ms)} ms`}; blocked save: ` +
          `${blockedOutcome.hung ? 'still pending 6 s after the call' : blockedOutcome.ok ? 'ok' : blockedOutcome.code}; others ${JSON.stringify(tally(otherOutcomes))}`,
      )
      assert.equal(closed.ok, true, 'close() resolved')
      assert.ok(closed.ms < 5500, `close() resolved after ${Math.round(closed.ms)} ms (timeoutMillis defaults to 5000)`)
      assertOnly(otherOutcomes, ['closed'], 'the other calls')
      assert.equal(blockedOutcome.hung, undefined, 'the save blocked on a row lock settled (result or closed) within 5 s of close()')
      assert.ok(blockedOutcome.ok || blockedOutcome.code === 'closed', `${blockedOutcome.code} ${blockedOutcome.error?.message}`)
      // close() waits timeoutMillis for calls made before it, then cancels
      // them (README: at most 400 ms later) and resolves once all settled.
      // The save was called ~100 ms before close(), so it settled at most
      // that long after close() resolved (with slack for a loaded machine).
      assert.ok(
        blockedOutcome.ms < closed.ms + 1000,
        `the save settled ${Math.round(blockedOutcome.ms)} ms after it was called; close() resolved after ${Math.round(closed.ms)} ms`,
      )
    } finally {
      await locker.query('rollback').catch(() => {})
      await locker.end()
    }
  })
})

function runChild(args, limitMs) {
  return new Promise((resolve) => {
    const started = performance.now()
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk) => (stdout += chunk))
    child.stderr.on('data', (chunk) => (stderr += chunk))
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
    }, limitMs)
    child.on('exit', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr, ms: performance.now() - started })
    })
  })
}

describe('a process that never calls close()', () => {
  for (const mode of ['query', 'save']) {
    test(`exits by itself with code 0 once idle (${mode})`, async () => {
      const result = await runChild([path.join(here, 'idle-exit-child.mjs'), db.url, db.schema, mode], 15000)
      assert.equal(result.signal, null, `the child did not exit by itself within 15 s (killed); stderr: ${result.stderr}`)
      assert.equal(result.code, 0, `exit code ${result.code}; stderr: ${result.stderr}`)
      assert.equal(result.stdout, `ok ${mode}\n`, `stdout ${JSON.stringify(result.stdout)}; stderr: ${result.stderr}`)
      assert.ok(result.ms < 8000, `exited after ${Math.round(result.ms)} ms`)
    })
  }
})

function runWorker(workerData, limitMs = 15000) {
  return new Promise((resolve) => {
    const worker = new Worker(path.join(here, 'worker-child.mjs'), { workerData })
    let message = null
    let error = null
    const timer = setTimeout(() => worker.terminate(), limitMs)
    worker.on('message', (m) => (message = m))
    worker.on('error', (e) => (error = e))
    worker.on('exit', (code) => {
      clearTimeout(timer)
      resolve({ code, message, error })
    })
  })
}

describe('the addon in worker threads', () => {
  for (const closeAtEnd of [true, false]) {
    test(`two workers at once each make a repository and query (close at end: ${closeAtEnd}); main thread still works`, async () => {
      const data = { connectionString: db.url, schema: db.schema, closeAtEnd }
      const results = await Promise.all([runWorker(data), runWorker(data)])
      for (const r of results) {
        assert.equal(r.error, null, `worker error: ${r.error?.stack}`)
        assert.deepEqual(r.message?.ok, true, `worker reported ${JSON.stringify(r.message)}`)
        assert.equal(r.code, 0, 'the worker exited by itself with code 0')
      }
      const repository = db.repository('native')
      const id = uid('main-after-workers')
      assert.equal((await repository.saveProfile(doc(id))).metadata.revision, 1)
      assert.equal((await repository.loadProfile(id)).profile_id, id)
      await repository.close()
    })
  }

  // In a child process: a crash of the addon must show as a failed test,
  // not kill the test runner.
  test('workers terminated with calls in flight (16 rounds) do not crash the process; the main thread keeps working', async () => {
    const result = await runChild(
      [path.join(here, 'terminate-child.mjs'), db.url, db.schema, 'worker', '16'],
      30000,
    )
    const panic = result.stderr.match(/panicked at [^\n]*\n[^\n]*/)?.[0]
    assert.equal(
      result.signal,
      null,
      `the process was killed by ${result.signal}${panic ? ` after: ${panic}` : ''}`,
    )
    assert.equal(result.code, 0, `exit code ${result.code}${panic ? `; ${panic}` : ''}; stderr: ${result.stderr.slice(0, 600)}`)
    assert.equal(panic, undefined, `a Rust panic: ${panic}`)
    assert.equal(result.stdout, 'ok worker\n')
  })

  test('repositories dropped without close() with calls in flight and garbage-collected do not crash', async () => {
    const result = await runChild(
      ['--expose-gc', path.join(here, 'terminate-child.mjs'), db.url, db.schema, 'gc', '8'],
      30000,
    )
    const panic = result.stderr.match(/panicked at [^\n]*\n[^\n]*/)?.[0]
    assert.equal(result.signal, null, `the process was killed by ${result.signal}${panic ? ` after: ${panic}` : ''}`)
    assert.equal(result.code, 0, `exit code ${result.code}; stderr: ${result.stderr.slice(0, 600)}`)
    assert.equal(panic, undefined, `a Rust panic: ${panic}`)
    assert.equal(result.stdout, 'ok gc\n')
  })
})
