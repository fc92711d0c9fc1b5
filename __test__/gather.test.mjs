// The JS side of the native path without a database: how gatherPerTick
// (lib/drivers.js) turns the calls of one tick into N-API crossings. The
// crossing is a fake `callMany` that records what it was given.

import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { test } from 'node:test'

const require = createRequire(import.meta.url)
const { gatherPerTick } = require('../lib/drivers.js')
const { withSignal } = require('../lib/calls.js')
const { NativeFailure } = require('../lib/errors.js')

/** A gathered call function over a fake crossing; `crossings` records each crossing's calls. */
function fake({ maxCalls = 8, bytesOf = () => 0, answer = (call) => ({ value: call * 10 }) } = {}) {
  const crossings = []
  const callMany = (calls) => {
    crossings.push(calls)
    return Promise.resolve(calls.map(answer))
  }
  return { call: gatherPerTick(callMany, (n) => n, { bytesOf, maxCalls, maxBytes: 64 * 1024 }), crossings }
}

test('the calls of one tick cross together; each gets its own answer', async () => {
  const { call, crossings } = fake()
  const answers = await Promise.all([1, 2, 3].map((n) => call(n)))
  assert.deepEqual(answers, [10, 20, 30])
  assert.deepEqual(crossings, [[1, 2, 3]])
  // A later tick is a crossing of its own.
  assert.equal(await call(4), 40)
  assert.deepEqual(crossings, [[1, 2, 3], [4]])
})

test('a burst crosses in pieces of maxCalls calls', async () => {
  const { call, crossings } = fake({ maxCalls: 8 })
  await Promise.all(Array.from({ length: 20 }, (_, n) => call(n)))
  assert.deepEqual(
    crossings.map((calls) => calls.length),
    [8, 8, 4],
  )
})

test('a burst crosses in pieces of about 64 KB of documents', async () => {
  const { call, crossings } = fake({ maxCalls: 64, bytesOf: () => 20 * 1024 })
  await Promise.all(Array.from({ length: 7 }, (_, n) => call(n)))
  // 64 KB holds three 20 KB calls; the fourth starts the next piece.
  assert.deepEqual(
    crossings.map((calls) => calls.length),
    [3, 3, 1],
  )
})

test('calls fail one by one: an error outcome rejects its own call only', async () => {
  const { call } = fake({ answer: (n) => (n === 2 ? { error: '{"code":"conflict","message":"no"}' } : { value: n }) })
  const outcomes = await Promise.allSettled([1, 2, 3].map((n) => call(n)))
  assert.deepEqual(
    outcomes.map((o) => o.status),
    ['fulfilled', 'rejected', 'fulfilled'],
  )
  assert.ok(outcomes[1].reason instanceof NativeFailure)
  assert.equal(JSON.parse(outcomes[1].reason.envelope).code, 'conflict')
})

test('a crossing that throws (napi could not convert an argument) rejects every call of it', async () => {
  const error = new TypeError('cannot convert')
  const call = gatherPerTick(
    () => {
      throw error
    },
    (n) => n,
    { bytesOf: () => 0, maxCalls: 8, maxBytes: 64 * 1024 },
  )
  const outcomes = await Promise.allSettled([1, 2].map((n) => call(n)))
  assert.deepEqual(
    outcomes.map((o) => o.reason),
    [error, error],
  )
})

test('a call aborted before the crossing leaves it; the others cross', async () => {
  const { call, crossings } = fake()
  const controller = new AbortController()
  const kept = call(1)
  const aborted = withSignal(controller.signal, () => call(2))
  const also = call(3)
  controller.abort()
  const outcomes = await Promise.allSettled([kept, aborted, also])
  assert.deepEqual(
    outcomes.map((o) => o.status),
    ['fulfilled', 'rejected', 'fulfilled'],
  )
  assert.deepEqual(crossings, [[1, 3]], 'the aborted call was never sent')
  // Every call of a tick aborted: no crossing at all.
  const only = new AbortController()
  const gone = withSignal(only.signal, () => call(4))
  only.abort()
  await assert.rejects(gone)
  await new Promise((resolve) => setImmediate(resolve))
  assert.deepEqual(crossings, [[1, 3]])
})

test('a crossing whose calls all carry signals is abandoned once every one aborted after it was sent', async () => {
  const answers = []
  const abandoned = []
  const ids = []
  const call = gatherPerTick(
    (calls, counted, crossing) => {
      ids.push(crossing)
      return new Promise((resolve) => answers.push(() => resolve(calls.map((n) => ({ value: n })))))
    },
    (n) => n,
    { bytesOf: () => 0, maxCalls: 8, maxBytes: 64 * 1024, abandon: (crossing) => abandoned.push(crossing) },
  )
  const tick = () => new Promise((resolve) => setImmediate(resolve))
  // Two calls, one shared signal and one of its own: abandoned after both abort.
  const [shared, own] = [new AbortController(), new AbortController()]
  const first = Promise.allSettled([1, 2, 3].map((n) => withSignal(n === 3 ? own.signal : shared.signal, () => call(n))))
  await tick()
  shared.abort()
  await tick()
  assert.deepEqual(abandoned, [], 'one call still waits')
  own.abort()
  await first
  assert.equal(typeof ids[0], 'number')
  assert.deepEqual(abandoned, [ids[0]])
  // A call without a signal in the crossing: no id, never abandoned.
  const late = new AbortController()
  const second = Promise.allSettled([withSignal(late.signal, () => call(4)), call(5)])
  await tick()
  late.abort()
  assert.equal(ids[1], undefined)
  // Answered before its signals abort: nothing to abandon.
  const answered = new AbortController()
  const third = withSignal(answered.signal, () => call(6))
  await tick()
  answers[1]()
  answers[2]()
  await Promise.all([second, third])
  answered.abort()
  assert.deepEqual(abandoned, [ids[0]])
})
