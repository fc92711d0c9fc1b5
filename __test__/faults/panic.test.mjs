// A Rust panic inside a call rejects that call's promise: it never aborts the
// process and never leaves the promise pending, and the addon keeps working.
// Uses the addon's `debugPanic` test hook, which panics inside the runtime;
// it exists only in builds with the cargo feature `test-hooks` (`npm run
// build:debug`). CI's jobs that test the release binaries set
// PSON5_EXPECT_RELEASE_BINARY=1: there the hook must be absent.

import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { test } from 'node:test'

import { useDatabase } from '../helpers/database.mjs'

const require = createRequire(import.meta.url)
const { NativeRepository } = require('../../binding.js')
const { PostgresStoreError } = require('../../index.js')
const { fromNative } = require('../../lib/errors.js')

const db = await useDatabase({ schemaPrefix: 'fpanic' })

function withinSeconds(promise, seconds) {
  return Promise.race([
    promise.then(
      () => ({ settled: 'resolved' }),
      (error) => ({ settled: 'rejected', error }),
    ),
    new Promise((resolve) => setTimeout(resolve, seconds * 1000, { settled: 'pending' })),
  ])
}

const hooks = typeof NativeRepository.prototype.debugPanic === 'function'

if (process.env.PSON5_EXPECT_RELEASE_BINARY === '1') {
  test('a release binary has no test hooks', () => {
    assert.equal(hooks, false, 'debugPanic is built only with the cargo feature test-hooks')
  })
}

test('the test hooks are in the binary the tests run on (npm run build:debug builds them)', () => {
  if (process.env.PSON5_EXPECT_RELEASE_BINARY === '1') return
  assert.equal(hooks, true, 'debugPanic missing: build with `npm run build:debug` (cargo feature test-hooks)')
})

test('a panic in the call future or in a task it awaits rejects the promise; the addon keeps working', async () => {
  if (!hooks) return // a release binary: see above
  const native = new NativeRepository({ connectionString: db.url, schema: db.schema })
  try {
    for (const inSpawnedTask of [false, true]) {
      const outcome = await withinSeconds(native.debugPanic(inSpawnedTask), 5)
      assert.equal(outcome.settled, 'rejected', `panic ${inSpawnedTask ? 'in a spawned task' : 'in the future'}`)
      assert.match(outcome.error.message, /panic/i)
      // Seen by the JS layer as one of the package's stable codes.
      const converted = fromNative(outcome.error, 'debugPanic')
      assert.ok(converted instanceof PostgresStoreError)
      assert.equal(typeof converted.code, 'string')
      // A fault of the package, never the database's (issue 13, item 10).
      assert.equal(converted.code, 'internal_error')
    }
    await native.ensureSchema()
    const [outcome] = await native.queryMany([{ name: 'profileExists', params: ['nobody'] }])
    assert.deepEqual(outcome, { value: [[false]] })
  } finally {
    native.close()
  }
})
