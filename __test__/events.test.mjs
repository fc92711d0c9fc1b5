// Observability: one event per call to `onEvent` and to the
// `pson5:postgres-store` diagnostics channel, with operation, duration, row
// count, the caller's context and (on failure) the error code, and never any
// document content.

import assert from 'node:assert/strict'
import diagnosticsChannel from 'node:diagnostics_channel'
import { describe, test } from 'node:test'

import { DIAGNOSTICS_CHANNEL } from '../index.mjs'
import { MODES, useDatabase } from './helpers/database.mjs'
import { buildProfile, expectStoreError, failIfUnfinished, uniqueId } from './helpers/profiles.mjs'

failIfUnfinished(import.meta.url)
const db = await useDatabase({ schemaPrefix: 'evt' })

const MARKER = `marker-${uniqueId('secret')}-do-not-leak`

/** A profile that carries MARKER in several places of its content. */
function markedProfile(profileId, userId, extra = {}) {
  const profile = buildProfile({
    profileId,
    userId,
    note: `note ${MARKER}`,
    observed: { 'core.secret_answer': { value: MARKER, confidence: 1, source: 'user' } },
  })
  profile.knowledge_graph.nodes.push({ id: 'n3', type: 'secret', label: MARKER })
  return { ...profile, ...extra }
}

function assertEventShape(event, { operation, rowCount, context, errorCode }) {
  assert.equal(event.operation, operation)
  assert.equal(typeof event.durationMs, 'number')
  assert.ok(Number.isFinite(event.durationMs) && event.durationMs >= 0, `durationMs ${event.durationMs}`)
  if (rowCount !== undefined) assert.equal(event.rowCount, rowCount, `${operation} rowCount`)
  assert.equal(typeof event.rowCount, 'number')
  assert.deepEqual(event.context, context, `${operation} context`)
  if (errorCode === undefined) {
    assert.equal(event.error, undefined, `${operation} has no error`)
  } else {
    assert.equal(event.error?.code, errorCode, `${operation} error code`)
    assert.equal(typeof event.error.message, 'string')
  }
}

test('DIAGNOSTICS_CHANNEL names the channel', () => {
  assert.equal(DIAGNOSTICS_CHANNEL, 'pson5:postgres-store')
})

for (const mode of MODES) {
  describe(`events (${mode})`, () => {
    const { repository, events } = db.observedRepository(mode)

    test('each successful call emits exactly one event with its operation, rowCount and context', async () => {
      const profileId = uniqueId(`${mode}-ok`)
      const userId = uniqueId(`${mode}-user`)
      const ctx = (n) => ({ request_id: `req-${n}`, trace_id: `trace-${mode}` })

      const calls = [
        ['saveProfile', () => repository.saveProfile(markedProfile(profileId, userId), { context: ctx(1) }), 1],
        ['saveProfile', () => repository.saveProfile(markedProfile(profileId, userId), { context: ctx(2) }), 1],
        ['loadProfile', () => repository.loadProfile(profileId, { context: ctx(3) }), 1],
        ['profileExists', () => repository.profileExists(profileId, { context: ctx(4) }), 1],
        ['loadProfileByUserId', () => repository.loadProfileByUserId(userId, { context: ctx(5) }), 1],
        ['findProfilesByUserId', () => repository.findProfilesByUserId(userId, { context: ctx(6) }), 1],
        ['listProfileRevisions', () => repository.listProfileRevisions(profileId, { context: ctx(7) }), 2],
        ['listAuditEntries', () => repository.listAuditEntries(profileId, { context: ctx(8) }), 2],
        ['listAuditEntries', () => repository.listAuditEntries(profileId, { limit: 1, context: ctx(9) }), 1],
        ['loadProfileRevision', () => repository.loadProfileRevision(profileId, 1, { context: ctx(10) }), 1],
        ['deleteProfile', () => repository.deleteProfile(profileId, { context: ctx(11) }), undefined],
        ['profileExists', () => repository.profileExists(profileId, { context: ctx(12) }), 0],
      ]
      for (const [i, [operation, call, rowCount]] of calls.entries()) {
        const before = events.length
        await call()
        assert.equal(events.length, before + 1, `${operation} emitted one event`)
        assertEventShape(events.at(-1), { operation, rowCount, context: ctx(i + 1) })
      }
      assert.ok(events.at(-2).rowCount >= 1, 'deleteProfile counted what it removed')
    })

    test('a call without context emits an event without one', async () => {
      await repository.profileExists(uniqueId(`${mode}-nobody`))
      assert.equal(events.length, 1)
      assertEventShape(events[0], { operation: 'profileExists', rowCount: 0, context: undefined })
    })

    test('each failing call emits exactly one event carrying error.code', async () => {
      const profileId = uniqueId(`${mode}-fail`)
      const userId = uniqueId(`${mode}-user`)
      await repository.saveProfile(markedProfile(profileId, userId))
      events.length = 0
      const ctx = { request_id: `fail-${mode}` }

      const failures = [
        ['loadProfile', () => repository.loadProfile(uniqueId(`${mode}-missing`), { context: ctx }), 'not_found'],
        [
          'loadProfileRevision',
          () => repository.loadProfileRevision(profileId, 99, { context: ctx }),
          'not_found',
        ],
        [
          'saveProfile',
          () => repository.saveProfile(markedProfile(profileId, userId), { expectedRevision: 7, context: ctx }),
          'conflict',
        ],
        [
          'saveProfile',
          () => repository.saveProfile(markedProfile(profileId, userId, { tenant_id: 5 }), { context: ctx }),
          'validation_error',
        ],
        [
          'saveProfile',
          () =>
            repository.saveProfile(markedProfile(profileId, userId, { extra: `${MARKER}\u0000` }), { context: ctx }),
          'validation_error',
        ],
        [
          'listAuditEntries',
          () => repository.listAuditEntries(profileId, { cursor: 'garbage', context: ctx }),
          'validation_error',
        ],
      ]
      for (const [operation, call, code] of failures) {
        const before = events.length
        await expectStoreError(call, { code })
        assert.equal(events.length, before + 1, `${operation} (${code}) emitted one event`)
        assertEventShape(events.at(-1), { operation, rowCount: 0, context: ctx, errorCode: code })
      }
      assert.ok(!JSON.stringify(events).includes(MARKER), 'failure events carry no document content')
    })

    test('concurrent calls emit one event each', async () => {
      const userId = uniqueId(`${mode}-burst`)
      const ids = Array.from({ length: 12 }, (_, i) => uniqueId(`${mode}-burst${i}`))
      await Promise.all(
        ids.map((profileId, i) => repository.saveProfile(markedProfile(profileId, userId), { context: { n: i } })),
      )
      await Promise.all(ids.map((profileId, i) => repository.loadProfile(profileId, { context: { n: 100 + i } })))
      assert.equal(events.length, 24)
      const saves = events.filter((event) => event.operation === 'saveProfile')
      const loads = events.filter((event) => event.operation === 'loadProfile')
      assert.deepEqual(
        saves.map((event) => event.context.n).sort((a, b) => a - b),
        ids.map((_, i) => i),
      )
      assert.deepEqual(
        loads.map((event) => event.context.n).sort((a, b) => a - b),
        ids.map((_, i) => 100 + i),
      )
      for (const event of events) assertEventShape(event, { operation: event.operation, rowCount: 1, context: event.context })
    })

    test('no event ever contains document content', async () => {
      const profileId = uniqueId(`${mode}-leak`)
      const userId = uniqueId(`${mode}-user`)
      await repository.saveProfile(markedProfile(profileId, userId), { context: { request_id: 'leak-1' } })
      await repository.saveProfile(markedProfile(profileId, userId), { expectedRevision: 1 })
      await repository.loadProfile(profileId)
      await repository.loadProfileByUserId(userId)
      await repository.loadProfileRevision(profileId, 1)
      await repository.listAuditEntries(profileId)
      await repository.readCurrentProfile(profileId)
      await expectStoreError(repository.saveProfile(markedProfile(profileId, userId), { expectedRevision: 1 }), {
        code: 'conflict',
      })
      await expectStoreError(
        repository.saveProfile(markedProfile(profileId, userId, { bad: Number.NaN, also: MARKER })),
        { code: 'validation_error' },
      )
      await repository.deleteProfile(profileId)
      assert.equal(events.length, 10)
      for (const event of events) {
        assert.ok(!JSON.stringify(event).includes(MARKER), `${event.operation} event leaks document content`)
        assert.ok(!Object.values(event).some((value) => typeof value === 'object' && value?.layers), 'no document')
      }
    })

    test('a diagnostics_channel subscriber sees the same events as onEvent', async () => {
      const seen = []
      const listener = (message, name) => seen.push([name, message])
      diagnosticsChannel.subscribe(DIAGNOSTICS_CHANNEL, listener)
      const profileId = uniqueId(`${mode}-dc`)
      try {
        await repository.saveProfile(markedProfile(profileId, uniqueId(`${mode}-user`)), {
          context: { request_id: 'dc-1' },
        })
        await repository.loadProfile(profileId, { context: { request_id: 'dc-2' } })
        await expectStoreError(repository.loadProfile(uniqueId(`${mode}-nothing`)), { code: 'not_found' })
        await repository.listAuditEntries(profileId)
      } finally {
        diagnosticsChannel.unsubscribe(DIAGNOSTICS_CHANNEL, listener)
      }
      assert.equal(seen.length, 4)
      assert.ok(seen.every(([name]) => name === DIAGNOSTICS_CHANNEL))
      assert.deepEqual(
        seen.map(([, message]) => message),
        events,
      )
      assert.deepEqual(
        events.map((event) => [event.operation, event.error?.code ?? null]),
        [
          ['saveProfile', null],
          ['loadProfile', null],
          ['loadProfile', 'not_found'],
          ['listAuditEntries', null],
        ],
      )
      assert.ok(!JSON.stringify(seen).includes(MARKER))

      // After unsubscribing, nothing more arrives.
      await repository.loadProfile(profileId)
      assert.equal(seen.length, 4)
      assert.equal(events.length, 5)
    })

    test('a repository without onEvent still publishes to a diagnostics_channel subscriber', async () => {
      const quiet = db.repository(mode)
      const seen = []
      const listener = (message) => seen.push(message)
      diagnosticsChannel.subscribe(DIAGNOSTICS_CHANNEL, listener)
      try {
        assert.equal(await quiet.profileExists(uniqueId(`${mode}-none`), { context: { request_id: 'q-1' } }), false)
        await expectStoreError(quiet.loadProfile('', { context: { request_id: 'q-2' } }), { code: 'validation_error' })
      } finally {
        diagnosticsChannel.unsubscribe(DIAGNOSTICS_CHANNEL, listener)
      }
      assert.equal(seen.length, 2)
      assertEventShape(seen[0], { operation: 'profileExists', rowCount: 0, context: { request_id: 'q-1' } })
      assertEventShape(seen[1], {
        operation: 'loadProfile',
        rowCount: 0,
        context: { request_id: 'q-2' },
        errorCode: 'validation_error',
      })
      assert.equal(events.length, 0, 'the other repository emitted nothing')
    })

    test('a throwing onEvent listener does not fail the operation', async () => {
      const throwing = db.repository(mode, {
        onEvent: () => {
          throw new Error('listener bug')
        },
      })
      const profileId = uniqueId(`${mode}-throwing`)
      const saved = await throwing.saveProfile(markedProfile(profileId, uniqueId(`${mode}-user`)))
      assert.equal(saved.metadata.revision, 1)
      assert.deepEqual(await throwing.loadProfile(profileId), saved)
    })
  })
}
