// Tracing: every public method runs inside the TracingChannel
// `pson5:postgres-store:operation` (start, end, asyncStart, asyncEnd, error),
// with one context object per call that holds the OpenTelemetry database
// fields and never a document; every event runs in the caller's
// AsyncLocalStorage context, also when concurrent calls from different
// contexts were coalesced into one statement. The plain channel and onEvent
// keep working beside it.

import assert from 'node:assert/strict'
import { AsyncLocalStorage } from 'node:async_hooks'
import diagnosticsChannel from 'node:diagnostics_channel'
import { after, before, beforeEach, describe, test } from 'node:test'

import {
  DIAGNOSTICS_CHANNEL,
  TRACING_CHANNEL,
  createPostgresProfileStoreArtifacts,
  createPostgresProfileStoreRepository,
} from '../index.mjs'
import { MODES, useDatabase } from './helpers/database.mjs'
import { expectStoreError, failIfUnfinished, markedProfile as markedProfileWith, uniqueId } from './helpers/profiles.mjs'

failIfUnfinished(import.meta.url)
const db = await useDatabase({ schemaPrefix: 'trc' })
const DATABASE = new URL(db.url).pathname.slice(1)
// Where the test database listens (a random port on the embedded server).
const HOST = new URL(db.url).hostname
const PORT = Number(new URL(db.url).port || 5432)

const MARKER = `marker-${uniqueId('doc')}-never-traced`

const markedProfile = (profileId, userId, revision) => markedProfileWith(profileId, userId, MARKER, revision)

const EVENTS = ['start', 'end', 'asyncStart', 'asyncEnd', 'error']

/** Subscribes to every event of the tracing channel; `seen` gets [event, context, store]. */
function record(als) {
  const seen = []
  const handlers = Object.fromEntries(EVENTS.map((event) => [event, (ctx) => seen.push([event, ctx, als?.getStore()])]))
  const channel = diagnosticsChannel.tracingChannel(TRACING_CHANNEL)
  channel.subscribe(handlers)
  return { seen, stop: () => channel.unsubscribe(handlers) }
}

/** The events of each call, in order: Map(context -> [event, ...]). */
function byCall(seen) {
  const calls = new Map()
  for (const [event, ctx] of seen) {
    if (!calls.has(ctx)) calls.set(ctx, [])
    calls.get(ctx).push(event)
  }
  return calls
}

/** Every string reachable from `value` (own enumerable properties, getters included). */
function strings(value, out = [], seen = new Set()) {
  if (typeof value === 'string') out.push(value)
  else if (value !== null && typeof value === 'object' && !seen.has(value)) {
    seen.add(value)
    for (const key of Object.keys(value)) strings(value[key], out, seen)
  }
  return out
}

test('TRACING_CHANNEL names the channel', () => {
  assert.equal(TRACING_CHANNEL, 'pson5:postgres-store:operation')
})

for (const mode of MODES) {
  describe(`tracing channel (${mode})`, () => {
    let repository
    let recorder
    const tables = {
      profiles: `${db.schema}.pson_profiles`,
      audit: `${db.schema}.pson_profile_audit`,
      index: `${db.schema}.pson_domain_index`,
    }

    before(async () => {
      repository = db.repository(mode)
      await repository.ensureSchema()
      recorder = record()
    })
    after(() => recorder.stop())
    beforeEach(() => {
      recorder.seen.length = 0
    })

    test('every public method: start, end, asyncStart, asyncEnd on one context with the semconv fields', async () => {
      const profileId = uniqueId(`${mode}-all`)
      const userId = uniqueId(`${mode}-user`)
      const other = uniqueId(`${mode}-other`)
      const calls = [
        ['saveProfile', () => repository.saveProfile(markedProfile(profileId, userId), { context: { n: 1 } }), tables.profiles],
        ['saveProfile', () => repository.saveProfile(markedProfile(profileId, userId)), tables.profiles],
        ['loadProfile', () => repository.loadProfile(profileId), tables.profiles],
        ['loadProfileJson', () => repository.loadProfileJson(profileId), tables.profiles],
        ['loadProfilesJson', () => repository.loadProfilesJson([profileId, other]), tables.profiles],
        ['readCurrentProfile', () => repository.readCurrentProfile(profileId), tables.profiles],
        ['profileExists', () => repository.profileExists(profileId), tables.profiles],
        ['loadProfileByUserId', () => repository.loadProfileByUserId(userId), tables.profiles],
        ['findProfilesByUserId', () => repository.findProfilesByUserId(userId), tables.index],
        ['listProfileRevisions', () => repository.listProfileRevisions(profileId), tables.audit],
        ['listProfileRevisionNumbers', () => repository.listProfileRevisionNumbers(profileId), tables.audit],
        ['listAuditEntries', () => repository.listAuditEntries(profileId), tables.audit],
        ['loadProfileRevision', () => repository.loadProfileRevision(profileId, 1), tables.audit],
        ['loadProfile', () => repository.loadProfile(profileId, { asOf: new Date() }), tables.audit],
        ['diffRevisions', () => repository.diffRevisions(profileId, 1, 2), tables.audit],
        ['blameProfile', () => repository.blameProfile(profileId), tables.audit],
        ['revertProfile', () => repository.revertProfile(profileId, 1), tables.profiles],
        ['eraseFromHistory', () => repository.eraseFromHistory(profileId, '/layers/observed/core.secret'), tables.audit],
        ['consistencyToken', () => repository.consistencyToken(), undefined],
        ['writeCurrentProfile', () => repository.writeCurrentProfile(markedProfile(other, userId, 1)), tables.profiles],
        ['writeProfileRevision', () => repository.writeProfileRevision(markedProfile(other, userId, 1)), tables.audit],
        [
          'writeUserProfileIndex',
          () =>
            repository.writeUserProfileIndex({
              user_id: uniqueId(`${mode}-indexed`),
              latest_profile_id: other,
              profile_ids: [other],
              updated_at: '2026-03-02T09:30:00.000Z',
            }),
          tables.index,
        ],
        ['readUserProfileIndex', () => repository.readUserProfileIndex(userId), tables.index],
        ['pruneAuditEntries', () => repository.pruneAuditEntries({ keepLast: 1, profileId }), tables.audit],
        ['deleteProfile', () => repository.deleteProfile(profileId), tables.profiles],
        ['checkSchema', () => repository.checkSchema(), undefined],
        ['ensureSchema', () => repository.ensureSchema(), undefined],
        ['upgradeFrom022', () => repository.upgradeFrom022(), undefined],
        ['deleteProfilesByUserId', () => repository.deleteProfilesByUserId(userId), tables.profiles],
      ]
      for (const [operation, call, collection] of calls) {
        recorder.seen.length = 0
        await call()
        const traced = byCall(recorder.seen)
        assert.equal(traced.size, 1, `${operation}: one context`)
        const [[ctx, events]] = traced
        assert.deepEqual(events, ['start', 'end', 'asyncStart', 'asyncEnd'], operation)
        assert.equal(ctx.operation, operation)
        assert.equal(ctx.collection, collection, `${operation} collection`)
        assert.equal(ctx.querySummary, collection === undefined ? operation : `${operation} ${collection}`)
        assert.equal(ctx.namespace, `${DATABASE}|${db.schema}`)
        assert.equal(ctx.serverAddress, HOST)
        assert.equal(ctx.serverPort, PORT)
        assert.equal(ctx.mode, mode === 'native' ? 'native' : 'executor')
        assert.equal(ctx.error, undefined)
        assert.equal(ctx.errorType, undefined)
        assert.equal(typeof ctx.rowCount, 'number', `${operation} rowCount`)
        assert.ok(!strings(ctx).some((text) => text.includes(MARKER)), `${operation}: no document content in the context`)
        assert.ok(!('result' in ctx), `${operation}: no result in the context`)
      }
    })

    test('the context carries the caller context, the revision and the fixed query text', async () => {
      const profileId = uniqueId(`${mode}-rev`)
      const saved = await repository.saveProfile(markedProfile(profileId, uniqueId(`${mode}-u`)), {
        context: { request_id: 'req-7' },
      })
      await repository.saveProfile(saved)
      const [first, second] = [...byCall(recorder.seen).keys()]
      assert.deepEqual(first.context, { request_id: 'req-7' })
      assert.equal(first.revision, 1)
      assert.equal(second.revision, 2)
      assert.equal(second.context, undefined)
      // A save that ran alone ran the single save statement: its text, never its parameters.
      const { queries } = createPostgresProfileStoreArtifacts({ schema: db.schema })
      assert.equal(first.queryText, queries.saveProfile)
      assert.ok(!first.queryText.includes(profileId))
      recorder.seen.length = 0
      await repository.loadProfileRevision(profileId, 2)
      const [[load]] = byCall(recorder.seen)
      assert.equal(load.revision, 2)
      assert.equal(load.queryText, queries.loadProfileRevision)
      // Options that change the statement change the query text (and the table).
      recorder.seen.length = 0
      await repository.loadProfile(profileId, { asOf: new Date() })
      await repository.saveProfile(await repository.loadProfile(profileId), { merge: 'disjoint-paths', expectedRevision: 2 })
      const [asOf, , merged] = [...byCall(recorder.seen).keys()]
      assert.equal(asOf.queryText, queries.loadProfileAsOf)
      assert.equal(asOf.collection, `${db.schema}.pson_profile_audit`)
      assert.equal(merged.operation, 'saveProfile')
      assert.equal(merged.queryText, undefined, 'a merge runs several statements')
      assert.equal(merged.revision, 3)
    })

    test('a failed call: error event with the PostgresStoreError, errorType its code', async () => {
      const profileId = uniqueId(`${mode}-fail`)
      const userId = uniqueId(`${mode}-u`)
      await repository.saveProfile(markedProfile(profileId, userId))
      recorder.seen.length = 0
      await expectStoreError(repository.saveProfile(markedProfile(profileId, userId), { expectedRevision: 9 }), {
        code: 'conflict',
      })
      await expectStoreError(repository.loadProfile(uniqueId('missing')), { code: 'not_found' })
      await expectStoreError(repository.loadProfileRevision(profileId, 'x'), { code: 'validation_error' })
      const traced = [...byCall(recorder.seen)]
      assert.deepEqual(
        traced.map(([ctx, events]) => [ctx.operation, ctx.errorType, ctx.error?.code, events]),
        [
          ['saveProfile', 'conflict', 'conflict', ['start', 'end', 'error', 'asyncStart', 'asyncEnd']],
          ['loadProfile', 'not_found', 'not_found', ['start', 'end', 'error', 'asyncStart', 'asyncEnd']],
          ['loadProfileRevision', 'validation_error', 'validation_error', ['start', 'end', 'error', 'asyncStart', 'asyncEnd']],
        ],
      )
      for (const [ctx] of traced) assert.equal(ctx.statusCode, undefined, `${ctx.operation}: no SQLSTATE`)
    })

    test('a statement the server rejects: statusCode and errorType are its SQLSTATE', async () => {
      // Tables that do not exist: 42P01 undefined_table.
      const missing = db.repository(mode, { schema: `${db.schema}_absent` })
      recorder.seen.length = 0
      await expectStoreError(missing.profileExists('p'), { code: 'database_error' })
      const [[ctx, events]] = byCall(recorder.seen)
      assert.deepEqual(events, ['start', 'end', 'error', 'asyncStart', 'asyncEnd'])
      assert.match(ctx.statusCode, /^(42P01|3F000)$/)
      assert.equal(ctx.errorType, ctx.statusCode)
      assert.equal(ctx.error.sqlState, ctx.statusCode)
      assert.equal(ctx.namespace, `${DATABASE}|${db.schema}_absent`)
    })

    test('onEvent and the plain channel still get their one event per call while the tracing channel is on', async () => {
      const events = []
      const plain = []
      const listener = (message) => plain.push(message)
      diagnosticsChannel.subscribe(DIAGNOSTICS_CHANNEL, listener)
      const observed = db.repository(mode, { onEvent: (event) => events.push(event) })
      try {
        await observed.profileExists('nobody', { context: { k: 1 } })
      } finally {
        diagnosticsChannel.unsubscribe(DIAGNOSTICS_CHANNEL, listener)
      }
      assert.deepEqual(
        events.map((event) => [event.operation, event.context]),
        [['profileExists', { k: 1 }]],
      )
      assert.deepEqual(
        plain.map((event) => [event.operation, event.context]),
        [['profileExists', { k: 1 }]],
      )
      assert.equal(byCall(recorder.seen).size, 1)
    })
  })

  describe(`async context (${mode})`, () => {
    test('every event and onEvent run in the caller AsyncLocalStorage context, calls coalesced or not', async () => {
      const als = new AsyncLocalStorage()
      const events = []
      const repository = db.repository(mode, { onEvent: (event) => events.push([event, als.getStore()]) })
      await repository.ensureSchema()
      events.length = 0
      const recorder = record(als)
      try {
        const userId = uniqueId(`${mode}-als`)
        const ids = Array.from({ length: 24 }, (_, n) => uniqueId(`${mode}-als${n}`))
        // All in one tick, each from its own context: native mode coalesces them.
        await Promise.all(
          ids.map((profileId, n) =>
            als.run({ n }, () => repository.saveProfile(markedProfile(profileId, userId), { context: { n } })),
          ),
        )
        await Promise.all(
          ids.map((profileId, n) => als.run({ n: 100 + n }, () => repository.loadProfile(profileId, { context: { n: 100 + n } }))),
        )
        await Promise.all(
          ids.map((profileId, n) =>
            als.run({ n: 200 + n }, () =>
              repository.saveProfile(markedProfile(profileId, userId), { expectedRevision: 5, context: { n: 200 + n } }).catch(() => {}),
            ),
          ),
        )
        // A callback the caller passes (pruneAuditEntries' onProgress) runs in the caller's context too.
        const progress = []
        await als.run({ n: 'prune' }, () =>
          repository.pruneAuditEntries({ keepLast: 1, batchSize: 5, onProgress: () => progress.push(als.getStore()) }),
        )
        assert.ok(progress.length > 0)
        assert.ok(progress.every((store) => store?.n === 'prune'), 'onProgress in the caller context')
        recorder.seen.splice(recorder.seen.findIndex(([, ctx]) => ctx.operation === 'pruneAuditEntries'))
        events.splice(events.findIndex(([event]) => event.operation === 'pruneAuditEntries'))
      } finally {
        recorder.stop()
      }
      const calls = byCall(recorder.seen)
      assert.equal(calls.size, 72)
      for (const [event, ctx, store] of recorder.seen) assert.ok(store !== undefined, `${ctx.operation} ${event} has a store`)
      // Every call's events saw one and the same store: the one its caller ran in.
      for (const [ctx] of calls) {
        const stores = recorder.seen.filter(([, c]) => c === ctx).map(([, , store]) => store)
        assert.equal(new Set(stores).size, 1, `${ctx.operation} n=${ctx.context.n}: one store for all events`)
        assert.equal(stores[0].n, ctx.context.n)
      }
      const batched = [...calls.keys()].filter((ctx) => ctx.batchSize !== undefined)
      if (mode === 'native') {
        // The calls were coalesced: contexts met in shared statements.
        assert.ok(batched.length > 0 && batched.every((ctx) => ctx.batchSize >= 2), 'calls shared statements')
        assert.ok(batched.some((ctx) => ctx.operation === 'loadProfile'))
        assert.ok(batched.some((ctx) => ctx.operation === 'saveProfile'))
      } else {
        assert.equal(batched.length, 0, 'executor mode runs each call alone')
      }
      assert.equal(events.length, 72)
      for (const [event, store] of events) assert.equal(store?.n, event.context.n, `onEvent of n=${event.context.n}`)
      assert.equal(events.filter(([event]) => event.error?.code === 'conflict').length, 24)
    })
  })
}

test('a bare executor function: no server fields, namespace is the schema', async () => {
  const pg = (await import('pg')).default
  const pool = new pg.Pool({ connectionString: db.url, max: 2 })
  const repository = createPostgresProfileStoreRepository((sql, params) => pool.query(sql, params), { schema: db.schema })
  const recorder = record()
  try {
    await repository.profileExists('nobody')
  } finally {
    recorder.stop()
    await repository.close()
    await pool.end()
  }
  const [[ctx]] = byCall(recorder.seen)
  assert.equal(ctx.serverAddress, undefined)
  assert.equal(ctx.serverPort, undefined)
  assert.equal(ctx.namespace, db.schema)
  assert.equal(ctx.mode, 'executor')
})
