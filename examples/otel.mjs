// `node examples/otel.mjs`: OpenTelemetry spans from @pson5/postgres-store,
// printed as a tree. Three "requests" run at once, each with its own span;
// their saves and loads are coalesced into shared statements by the native
// pool, yet each database span stays under the request that made it, with
// db.operation.batch.size saying how many callers shared its statement.
//
// Needs @opentelemetry/api, @opentelemetry/sdk-trace-base and
// @opentelemetry/context-async-hooks (development dependencies of this
// repository). Uses DATABASE_URL, else an embedded PostgreSQL started (and
// removed) for the example.

import { context, trace } from '@opentelemetry/api'
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks'
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base'
import { createPostgresProfileStoreRepository } from '@pson5/postgres-store'
import { instrument } from '@pson5/postgres-store/otel'

import { startEmbeddedPostgres } from '../scripts/embedded-postgres.mjs'

// 1. The application's OpenTelemetry setup: an async-context manager (so a
//    span started in a request is the parent of what the request does) and a
//    tracer provider. A real one would export over OTLP instead of to memory.
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable())
const exporter = new InMemorySpanExporter()
const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] })
trace.setGlobalTracerProvider(tracerProvider)

// 2. One line for the store: spans and metrics for every repository.
const instrumentation = instrument()

let embedded = null
let connectionString = process.env.DATABASE_URL
if (!connectionString) {
  embedded = await startEmbeddedPostgres()
  connectionString = embedded.url
}
const repository = createPostgresProfileStoreRepository({ connectionString, tablePrefix: 'otel_demo_' })
const tracer = trace.getTracer('example-app')

function profile(profileId, userId) {
  return {
    pson_version: '5.0',
    profile_id: profileId,
    user_id: userId,
    tenant_id: 'acme',
    domains: { active: ['core'], depth: 'light' },
    layers: { observed: { core: { preferred_name: 'Ada' } }, inferred: {}, simulated: {} },
    metadata: { source_count: 1, updated_at: new Date().toISOString() },
  }
}

// A request handler: its own span, and two store calls inside it.
function handleRequest(n) {
  return tracer.startActiveSpan(`POST /profiles/${n}`, async (span) => {
    const profileId = `otel_demo_${Date.now()}_${n}`
    const context = { request_id: `req-${n}` }
    await repository.saveProfile(profile(profileId, `user_${n}`), { context })
    await repository.loadProfile(profileId, { context })
    span.end()
  })
}

try {
  await repository.ensureSchema()
  exporter.reset()
  await Promise.all([1, 2, 3].map(handleRequest))
  printTree(exporter.getFinishedSpans())
} finally {
  instrumentation.disable()
  await repository.close()
  if (embedded) await embedded.stop()
}

function printTree(spans) {
  const children = new Map()
  for (const span of spans) {
    const parent = span.parentSpanContext?.spanId ?? null
    if (!children.has(parent)) children.set(parent, [])
    children.get(parent).push(span)
  }
  const show = (span, depth) => {
    const ms = span.duration[0] * 1e3 + span.duration[1] / 1e6
    const a = span.attributes
    const details = [
      a['db.operation.batch.size'] === undefined ? null : `batch.size=${a['db.operation.batch.size']}`,
      a['pson5.profile.revision'] === undefined ? null : `revision=${a['pson5.profile.revision']}`,
      a['pson5.context.request_id'] === undefined ? null : `request_id=${a['pson5.context.request_id']}`,
      a['error.type'] === undefined ? null : `error.type=${a['error.type']}`,
    ].filter(Boolean)
    console.log(`${'  '.repeat(depth)}${span.name}  ${ms.toFixed(1)} ms${details.length ? `  [${details.join(' ')}]` : ''}`)
    for (const child of children.get(span.spanContext().spanId) ?? []) show(child, depth + 1)
  }
  for (const root of (children.get(null) ?? []).sort((a, b) => a.name.localeCompare(b.name))) show(root, 0)
  const db = spans.find((span) => span.attributes['db.system.name'] === 'postgresql')
  console.log('\nattributes of one database span:')
  console.log(db.attributes)
}
