// A Rust panic inside a call rejects that call's promise: it never aborts the
// process and never leaves the promise pending, and the addon keeps working.
// Uses the addon's `debugPanic` test hook, which panics inside the runtime.

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

test('a panic in the call future or in a task it awaits rejects the promise; the addon keeps working', async () => {
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
