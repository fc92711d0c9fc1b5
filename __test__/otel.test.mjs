// @pson5/postgres-store/otel with the real OpenTelemetry SDK
// (sdk-trace-base's in-memory exporter, sdk-metrics) against a real
// PostgreSQL in the three modes: spans are CLIENT children of the caller's
// active span, also when concurrent calls from different requests were
// coalesced into one statement (native: db.operation.batch.size); attributes
// follow the database semantic conventions 1.37.0; failed calls carry
// error.type and the SQLSTATE; the duration histogram and pool gauges are
// recorded; no span or metric holds the password or document content; the
// main entry loads none of it.

import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import diagnosticsChannel from 'node:diagnostics_channel'
import path from 'node:path'
import { after, before, beforeEach, describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'

import { context, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api'
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks'
import { MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics'
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base'
import pg from 'pg'
import postgres from 'postgres'

import { instrument, SEMCONV_VERSION } from '@pson5/postgres-store/otel'
import { TRACING_CHANNEL, createPostgresProfileStoreRepository } from '../index.mjs'
import { MODES, useDatabase } from './helpers/database.mjs'
import { expectStoreError, failIfUnfinished, markedProfile as markedProfileWith, uniqueId } from './helpers/profiles.mjs'

failIfUnfinished(import.meta.url)
const db = await useDatabase({ schemaPrefix: 'otel' })
const DATABASE = new URL(db.url).pathname.slice(1)
// Where the test database listens (a random port on the embedded server).
const HOST = new URL(db.url).hostname
const PORT = Number(new URL(db.url).port || 5432)
const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..')
const VERSION = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version

const contextManager = new AsyncLocalStorageContextManager().enable()
context.setGlobalContextManager(contextManager)
after(() => context.disable())

const exporter = new InMemorySpanExporter()
const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] })
const appTracer = tracerProvider.getTracer('test-app')

class CollectingReader extends MetricReader {
  async onForceFlush() {}
  async onShutdown() {}
}
const reader = new CollectingReader()
const meterProvider = new MeterProvider({ readers: [reader] })

const instrumentation = instrument({ tracerProvider, meterProvider })
after(() => instrumentation.disable())

const MARKER = `marker-${uniqueId('doc')}-never-in-telemetry`

const markedProfile = (profileId, userId, revision) => markedProfileWith(profileId, userId, MARKER, revision)

/** Runs `fn` inside a new active app span; resolves to [result, that span's context]. */
function inRequest(name, fn) {
  return appTracer.startActiveSpan(name, async (span) => {
    try {
      return [await fn(), span.spanContext()]
    } finally {
      span.end()
    }
  })
}

/** The finished spans this package made (instrumentation scope = the package). */
function dbSpans() {
  return exporter.getFinishedSpans().filter((span) => span.instrumentationScope.name === '@pson5/postgres-store')
}

/** All metric data points by metric name: { name: [{ attributes, value }] }. */
async function collectMetrics() {
  const { resourceMetrics, errors } = await reader.collect()
  assert.deepEqual(errors, [])
  const byName = {}
  for (const scope of resourceMetrics.scopeMetrics) {
    if (scope.scope.name !== '@pson5/postgres-store') continue
    for (const metric of scope.metrics) byName[metric.descriptor.name] = { descriptor: metric.descriptor, points: metric.dataPoints }
  }
  return byName
}

function modeRepository(mode, options = {}) {
  return db.repository(mode, options)
}

test('the otel subpath names the conventions version it follows', () => {
  assert.equal(SEMCONV_VERSION, '1.37.0')
})

for (const mode of MODES) {
  describe(`OpenTelemetry spans and metrics (${mode})`, () => {
    let repository

    before(async () => {
      repository = modeRepository(mode)
      await repository.ensureSchema()
    })
    beforeEach(() => exporter.reset())

    test('a call makes one CLIENT span, child of the caller active span, with the semconv attributes', async () => {
      const profileId = uniqueId(`${mode}-one`)
      const [, parent] = await inRequest('GET /profile', () =>
        repository.saveProfile(markedProfile(profileId, uniqueId('u')), { context: { request_id: 'req-1', tries: 2 } }),
      )
      const [span] = dbSpans()
      assert.equal(dbSpans().length, 1)
      assert.equal(span.name, `saveProfile ${db.schema}.pson_profiles`)
      assert.equal(span.kind, SpanKind.CLIENT)
      assert.equal(span.spanContext().traceId, parent.traceId)
      assert.equal(span.parentSpanContext?.spanId, parent.spanId)
      assert.equal(span.status.code, SpanStatusCode.UNSET)
      assert.deepEqual(span.attributes, {
        'db.system.name': 'postgresql',
        'db.namespace': `${DATABASE}|${db.schema}`,
        'db.operation.name': 'saveProfile',
        'db.collection.name': `${db.schema}.pson_profiles`,
        'db.query.summary': `saveProfile ${db.schema}.pson_profiles`,
        'server.address': HOST,
        'server.port': PORT,
        'pson5.profile.revision': 1,
        'pson5.context.request_id': 'req-1',
        'pson5.context.tries': 2,
      })
      assert.equal(span.instrumentationScope.version, VERSION)
      assert.equal(span.instrumentationScope.schemaUrl, 'https://opentelemetry.io/schemas/1.37.0')
    })

    test('a call outside any span makes a root span', async () => {
      await repository.profileExists(uniqueId('nobody'))
      const [span] = dbSpans()
      assert.equal(span.parentSpanContext, undefined)
      assert.equal(span.name, `profileExists ${db.schema}.pson_profiles`)
    })

    test('concurrent calls from different requests: each span is the child of its own request', async () => {
      const userId = uniqueId(`${mode}-burst`)
      const ids = Array.from({ length: 24 }, (_, n) => uniqueId(`${mode}-b${n}`))
      const requests = await Promise.all(
        ids.map((profileId, n) =>
          inRequest(`request ${n}`, () => repository.saveProfile(markedProfile(profileId, userId), { context: { n } })),
        ),
      )
      const loads = await Promise.all(
        ids.map((profileId, n) => inRequest(`read ${n}`, () => repository.loadProfile(profileId, { context: { n } }))),
      )
      const spans = dbSpans()
      assert.equal(spans.length, 48)
      for (const [kind, parents] of [
        ['saveProfile', requests],
        ['loadProfile', loads],
      ]) {
        const own = spans.filter((span) => span.attributes['db.operation.name'] === kind)
        assert.equal(own.length, 24)
        for (const span of own) {
          const n = span.attributes['pson5.context.n']
          assert.equal(span.parentSpanContext?.spanId, parents[n][1].spanId, `${kind} n=${n} under its own request`)
          assert.equal(span.spanContext().traceId, parents[n][1].traceId)
        }
        const batched = own.filter((span) => span.attributes['db.operation.batch.size'] !== undefined)
        if (mode === 'native') {
          // Coalesced: the calls shared statements, and each span says with how many callers.
          assert.ok(batched.length > 0, `${kind}: some calls shared a statement`)
          for (const span of batched) assert.ok(span.attributes['db.operation.batch.size'] >= 2)
        } else {
          assert.equal(batched.length, 0, 'executor mode runs each call alone')
        }
      }
    })

    test('failed calls: ERROR status, error.type, and the SQLSTATE of a rejected statement', async () => {
      const profileId = uniqueId(`${mode}-err`)
      const userId = uniqueId('u')
      await repository.saveProfile(markedProfile(profileId, userId))
      await expectStoreError(repository.saveProfile(markedProfile(profileId, userId), { expectedRevision: 4 }), {
        code: 'conflict',
      })
      const absent = modeRepository(mode, { schema: `${db.schema}_absent` })
      await expectStoreError(absent.loadProfileRevision('p', 1), { code: 'database_error' })
      const [ok, conflict, rejected] = dbSpans()
      assert.equal(ok.status.code, SpanStatusCode.UNSET)
      assert.equal(ok.attributes['error.type'], undefined)
      assert.equal(conflict.status.code, SpanStatusCode.ERROR)
      assert.equal(conflict.attributes['error.type'], 'conflict')
      assert.equal(conflict.attributes['db.response.status_code'], undefined)
      assert.equal(rejected.status.code, SpanStatusCode.ERROR)
      assert.equal(rejected.attributes['db.response.status_code'], '42P01')
      assert.equal(rejected.attributes['error.type'], '42P01')
      assert.equal(rejected.attributes['db.namespace'], `${DATABASE}|${db.schema}_absent`)
      assert.equal(rejected.name, `loadProfileRevision ${db.schema}_absent.pson_profile_audit`)
      // The message can quote values; spans keep only the codes.
      for (const span of [conflict, rejected]) {
        assert.equal(span.status.message, undefined)
        assert.deepEqual(span.events, [])
      }
    })

    test('db.client.operation.duration: one histogram point per operation and outcome, in seconds', async () => {
      const profileId = uniqueId(`${mode}-metric`)
      await repository.saveProfile(markedProfile(profileId, uniqueId('u')))
      await repository.loadProfile(profileId)
      await repository.loadProfile(profileId)
      await expectStoreError(repository.loadProfile(uniqueId('missing')), { code: 'not_found' })
      const metrics = await collectMetrics()
      const { descriptor, points } = metrics['db.client.operation.duration']
      assert.equal(descriptor.unit, 's')
      const point = (operation, errorType) =>
        points.find(
          (p) =>
            p.attributes['db.operation.name'] === operation &&
            p.attributes['db.namespace'] === `${DATABASE}|${db.schema}` &&
            p.attributes['error.type'] === errorType,
        )
      const loads = point('loadProfile', undefined)
      assert.ok(loads.value.count >= 2)
      assert.ok(loads.value.sum > 0 && loads.value.sum < loads.value.count * 30, 'seconds, not milliseconds')
      assert.deepEqual(loads.value.buckets.boundaries, [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10])
      assert.deepEqual(loads.attributes, {
        'db.system.name': 'postgresql',
        'db.namespace': `${DATABASE}|${db.schema}`,
        'db.operation.name': 'loadProfile',
        'db.collection.name': `${db.schema}.pson_profiles`,
        'db.query.summary': `loadProfile ${db.schema}.pson_profiles`,
        'server.address': HOST,
        'server.port': PORT,
      })
      assert.ok(point('loadProfile', 'not_found').value.count >= 1)
      assert.ok(point('saveProfile', undefined).value.count >= 1)

      const pools = (name) =>
        (metrics[name]?.points ?? []).filter((p) =>
          p.attributes['db.client.connection.pool.name'] === `${HOST}:${PORT}/${DATABASE}|${db.schema}`,
        )
      if (mode === 'native') {
        const status = repository.poolStatus()
        const count = pools('db.client.connection.count')
        assert.deepEqual(count.map((p) => p.attributes['db.client.connection.state']).sort(), ['idle', 'used'])
        const total = count.reduce((sum, p) => sum + p.value, 0)
        assert.ok(total >= 1 && total <= status.maxSize, `open connections ${total}`)
        assert.equal(pools('db.client.connection.max')[0].value, status.maxSize)
        assert.equal(pools('db.client.connection.pending_requests')[0].value, 0)
        assert.equal(metrics['db.client.connection.count'].descriptor.unit, '{connection}')
      } else {
        // The caller's pool is the caller's to instrument (pg and postgres.js
        // have their own): an executor repository adds no pool.
        const own = modeRepository(mode, { schema: `${db.schema}_pool` })
        await own.profileExists('p').catch(() => {})
        const after = await collectMetrics()
        const named = (after['db.client.connection.count']?.points ?? []).map((p) => p.attributes['db.client.connection.pool.name'])
        assert.ok(named.length > 0, 'the native pools of this file are observed')
        assert.ok(!named.some((name) => name.endsWith(`|${db.schema}_pool`)), named.join())
      }
    })
  })
}

test('no span or metric holds the password or document content, query text on', async () => {
  const password = `pw-${uniqueId('secret')}`
  const url = new URL(db.url)
  url.password = password
  const pool = new pg.Pool({ connectionString: url.href, max: 2 })
  const sql = postgres(url.href, { max: 2, onnotice: () => {} })
  const repositories = [
    createPostgresProfileStoreRepository({ connectionString: url.href, schema: db.schema }),
    createPostgresProfileStoreRepository({ exec: pool, schema: db.schema }),
    createPostgresProfileStoreRepository({ exec: sql, schema: db.schema }),
    createPostgresProfileStoreRepository({ host: HOST, port: PORT, user: url.username, password, database: DATABASE, schema: db.schema }),
  ]
  const withText = instrument({ tracerProvider, meterProvider, queryText: true })
  exporter.reset()
  try {
    for (const [i, repository] of repositories.entries()) {
      const profileId = uniqueId(`leak${i}`)
      const userId = uniqueId('leak-user')
      const saved = await repository.saveProfile(markedProfile(profileId, userId), { context: { request_id: `r${i}` } })
      await Promise.all([repository.saveProfile(saved), repository.saveProfile(markedProfile(uniqueId('leak'), userId))])
      await repository.loadProfile(profileId)
      await repository.loadProfileJson(profileId)
      await repository.loadProfileByUserId(userId)
      await repository.listAuditEntries(profileId)
      await repository.loadProfileRevision(profileId, 1)
      await expectStoreError(repository.saveProfile(markedProfile(profileId, userId), { expectedRevision: 1 }), {
        code: 'conflict',
      })
      await expectStoreError(repository.saveProfile({ ...markedProfile(profileId, userId), bad: Number.NaN }), {
        code: 'validation_error',
      })
    }
  } finally {
    withText.disable()
    for (const repository of repositories) await repository.close()
    await pool.end()
    await sql.end({ timeout: 5 })
  }
  const spans = dbSpans()
  assert.ok(spans.length >= 4 * 10 * 2, `${spans.length} spans (two instrumentations)`)
  const texts = spans.filter((span) => span.attributes['db.query.text'] !== undefined)
  assert.ok(texts.length >= 4 * 9, 'the second instrumentation added the query text')
  assert.ok(texts.every((span) => span.attributes['db.query.text'].includes('$1')), 'parameterised text only')
  const telemetry = JSON.stringify({
    spans: spans.map((span) => ({
      name: span.name,
      attributes: span.attributes,
      status: span.status,
      events: span.events,
      links: span.links,
      resource: span.resource.attributes,
    })),
    metrics: await collectMetrics(),
  })
  assert.ok(telemetry.includes('pson5.context.request_id'), 'the check reads the real telemetry')
  for (const secret of [password, MARKER, url.href]) assert.ok(!telemetry.includes(secret), `telemetry contains ${secret}`)
})

test('disable() stops spans and leaves the tracing channel without subscribers', async () => {
  const local = instrument({ tracerProvider, meterProvider })
  const channel = diagnosticsChannel.tracingChannel(TRACING_CHANNEL)
  const repository = db.repository('native')
  instrumentation.disable()
  exporter.reset()
  await repository.profileExists('x')
  assert.equal(dbSpans().length, 1, 'the other instrumentation still works')
  local.disable()
  local.disable()
  assert.equal(channel.hasSubscribers, false)
  exporter.reset()
  await repository.profileExists('x')
  assert.equal(dbSpans().length, 0)
})

test('the main entry loads no OpenTelemetry module, by require or import', () => {
  const script = (entry) =>
    [
      `const store = ${entry}`,
      'Promise.resolve(store).then(async (store) => {',
      '  const repository = (store.default ?? store).createPostgresProfileStoreRepository({ exec: async () => ({ rows: [[false]] }) })',
      "  await repository.profileExists('p')",
      "  const loaded = Object.keys(require('node:module')._cache ?? require.cache).filter((file) => file.includes('@opentelemetry'))",
      '  console.log(JSON.stringify(loaded))',
      '})',
    ].join('\n')
  for (const entry of ["require('./index.js')", "import('./index.mjs')"]) {
    const output = execFileSync(process.execPath, ['-e', script(entry)], { cwd: ROOT, encoding: 'utf8' })
    assert.deepEqual(JSON.parse(output), [], entry)
  }
  // And the check sees a load: the otel subpath does load the API.
  const loaded = execFileSync(
    process.execPath,
    ['-e', "require('@pson5/postgres-store/otel'); console.log(Object.keys(require.cache).some((f) => f.includes('@opentelemetry/api')))"],
    { cwd: ROOT, encoding: 'utf8' },
  )
  assert.equal(loaded.trim(), 'true')
})

test('examples/otel.mjs prints each request with its own database spans under it', () => {
  const output = execFileSync(process.execPath, [path.join(ROOT, 'examples', 'otel.mjs')], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { ...process.env, DATABASE_URL: db.url },
  })
  const lines = output.split('\n')
  for (const n of [1, 2, 3]) {
    const at = lines.findIndex((line) => line.startsWith(`POST /profiles/${n} `))
    assert.ok(at >= 0, output)
    assert.match(lines[at + 1], new RegExp(`^  saveProfile public\\.otel_demo_profiles .*request_id=req-${n}\\]`))
    assert.match(lines[at + 2], new RegExp(`^  loadProfile public\\.otel_demo_profiles .*request_id=req-${n}\\]`))
  }
  assert.match(output, /batch\.size=[23]/, 'the three requests shared statements')
})

test('instrument() rejects bad options with validation_error and subscribes nothing', async () => {
  const channel = diagnosticsChannel.tracingChannel(TRACING_CHANNEL)
  const subscribedBefore = channel.hasSubscribers
  for (const [options, field] of [
    [42, 'options'],
    [null, 'options'],
    [[], 'options'],
    [{ tracerProvider: {} }, 'tracerProvider'],
    [{ meterProvider: 'global' }, 'meterProvider'],
    [{ queryText: 'yes' }, 'queryText'],
  ]) {
    await expectStoreError(() => instrument(options), { code: 'validation_error', field })
  }
  assert.equal(channel.hasSubscribers, subscribedBefore)
})

test('without @opentelemetry/api, importing the subpath fails at once with what to install (code otel_api_missing)', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'pson5-otel-noapi-'))
  try {
    // The subpath's own files, in a folder whose node_modules has no OpenTelemetry.
    for (const file of ['package.json', 'otel/index.js', 'lib/errors.js', 'lib/tracing.js']) {
      mkdirSync(path.dirname(path.join(dir, file)), { recursive: true })
      copyFileSync(path.join(ROOT, file), path.join(dir, file))
    }
    const probe = `try { require(${JSON.stringify(path.join(dir, 'otel', 'index.js'))}) } catch (e) { console.log(JSON.stringify([e.code, e.message])) }`
    const [code, message] = JSON.parse(execFileSync(process.execPath, ['-e', probe], { cwd: dir, encoding: 'utf8' }))
    assert.equal(code, 'otel_api_missing')
    assert.match(message, /npm install @opentelemetry\/api/)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

test('disable() with a call in flight: that call still gets its span, then nothing stays subscribed', async () => {
  const channel = diagnosticsChannel.tracingChannel(TRACING_CHANNEL)
  const repository = db.repository('native')
  await repository.profileExists('warm')
  assert.equal(channel.hasSubscribers, false, 'the other instrumentations of this file are disabled')
  const local = instrument({ tracerProvider, meterProvider })
  exporter.reset()
  const inFlight = repository.profileExists('in-flight')
  local.disable()
  assert.equal(channel.hasSubscribers, true, 'the end handlers wait for the call in flight')
  await inFlight
  assert.deepEqual(
    dbSpans().map((span) => span.name),
    [`profileExists ${db.schema}.pson_profiles`],
  )
  assert.equal(channel.hasSubscribers, false)
})
