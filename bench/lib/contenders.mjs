// The contenders of a run, one entry each: how a row process opens it (a
// `store` with the repository's method names, see operations.mjs, and a
// close). Every one does the work a caller needs: loads return the parsed
// document, saves send the document JSON. pgbench is not a Node store; its
// rows run in pgbench.mjs. To add a contender, add one entry here.

import diagnosticsChannel from 'node:diagnostics_channel'
import path from 'node:path'
import { pathToFileURL } from 'node:url'

import pg from 'pg'
import postgres from 'postgres'

export const CONTENDERS = {
  native: { label: 'this package, native pool', open: nativeStore },
  // The cost of tracing: the same, with @pson5/postgres-store/otel's
  // instrument() on a real SDK (spans batched to an exporter that drops them,
  // metrics aggregated), so every call makes a span and a histogram point.
  otel: { label: 'this package, native + OTel instrument()', open: otelStore },
  // The package's own share of that cost: a subscriber that does nothing, so
  // each call makes its context object, publishes its five events and asks
  // Rust for statement sizes.
  traced: { label: 'this package, native + no-op TracingChannel subscriber', open: tracedStore },
  // `--ab <rev>`: the same, from another commit's release build (ab.mjs).
  ab: { label: 'this package, native @ B', open: nativeStore },
  executor: { label: 'this package, executor over pg', open: executorStore },
  original: { label: 'original 0.2.2 + pg', open: originalStore },
  pg: { label: 'raw pg (same SQL, named prepared)', open: pgStore },
  postgresjs: { label: 'raw postgres.js (same SQL, prepare)', open: postgresjsStore },
  pgbench: { label: 'pgbench -M prepared (same SQL)', external: true },
  // Open loop only: calls that resolve at once, so its latency is the Node
  // generator's own lateness (libuv timers tick in whole milliseconds), the
  // floor under every JS contender's open-loop figures.
  noop: { label: 'no-op call (the Node generator alone)', open: noopStore },
}

function noopStore() {
  const store = {
    loadProfile: async (id) => ({ profile_id: id }),
    saveProfile: async () => 2,
    findProfilesByUserId: async (id) => [id],
  }
  return { store, close: async () => {} }
}

function nativeStore({ pkg, url, poolSize, schema }) {
  const repository = pkg.createPostgresProfileStoreRepository({ connectionString: url, max: poolSize, schema })
  return { store: repository, close: () => repository.close() }
}

async function tracedStore({ pkg, url, poolSize, schema }) {
  const channel = diagnosticsChannel.tracingChannel(pkg.TRACING_CHANNEL)
  const handlers = { start() {}, end() {}, asyncStart() {}, asyncEnd() {}, error() {} }
  channel.subscribe(handlers)
  const { store, close } = nativeStore({ pkg, url, poolSize, schema })
  return {
    store,
    close: async () => {
      await close()
      channel.unsubscribe(handlers)
    },
  }
}

async function otelStore({ pkg, url, poolSize, schema, packageEntry }) {
  const { context } = await import('@opentelemetry/api')
  const { AsyncLocalStorageContextManager } = await import('@opentelemetry/context-async-hooks')
  const { BasicTracerProvider, BatchSpanProcessor } = await import('@opentelemetry/sdk-trace-base')
  const { MeterProvider, MetricReader } = await import('@opentelemetry/sdk-metrics')
  const otel = await import(pathToFileURL(path.join(path.dirname(packageEntry), 'otel', 'index.mjs')).href)
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable())
  const dropped = { export: (spans, done) => done({ code: 0 }), shutdown: async () => {} }
  const tracerProvider = new BasicTracerProvider({ spanProcessors: [new BatchSpanProcessor(dropped)] })
  class Reader extends MetricReader {
    async onForceFlush() {}
    async onShutdown() {}
  }
  const meterProvider = new MeterProvider({ readers: [new Reader()] })
  const instrumentation = otel.instrument({ tracerProvider, meterProvider })
  const { store, close } = nativeStore({ pkg, url, poolSize, schema })
  return {
    store,
    close: async () => {
      await close()
      instrumentation.disable()
      await tracerProvider.shutdown()
    },
  }
}

function executorStore({ pkg, url, poolSize, schema }) {
  const pool = new pg.Pool({ connectionString: url, max: poolSize })
  const repository = pkg.createPostgresProfileStoreRepository({ exec: pool, schema })
  return {
    store: repository,
    close: async () => {
      await repository.close()
      await pool.end()
    },
  }
}

// The 0.2.2 adapter writes the revision it is given (the engine's saveProfile
// bumps it before): count up per profile from the stored one (an earlier
// round may have saved), so every save appends a revision row as ours does.
async function originalStore({ url, poolSize, schema, upstream }) {
  if (!upstream.store) throw new Error(`the original 0.2.2 is unavailable: ${upstream.error?.message}`)
  const pool = new pg.Pool({ connectionString: url, max: poolSize })
  const repository = upstream.store.createPostgresProfileStoreRepository(
    upstream.store.createPostgresQueryExecutor(pool),
    {
      schema,
    },
  )
  const adapter = upstream.engine.createDocumentProfileStoreAdapter(repository)
  const { rows } = await pool.query(`select profile_id, profile_revision from "${schema}".pson_profiles_current`)
  const revisions = new Map(rows.map((row) => [row.profile_id, row.profile_revision]))
  return {
    store: {
      loadProfile: (id) => adapter.loadProfile(id),
      findProfilesByUserId: (id) => adapter.findProfilesByUserId(id),
      saveProfile: (doc) => {
        const revision = (revisions.get(doc.profile_id) ?? 0) + 1
        revisions.set(doc.profile_id, revision)
        return adapter.saveProfile({ ...doc, metadata: { ...doc.metadata, revision } })
      },
    },
    close: () => pool.end(),
  }
}

// Raw drivers run exactly the package's statements
// (createPostgresProfileStoreArtifacts().queries) with the parameters
// lib/repository.js passes (save: [document JSON, null, null]).
function pgStore({ pkg, url, poolSize, schema }) {
  const queries = pkg.createPostgresProfileStoreArtifacts({ schema }).queries
  const pool = new pg.Pool({ connectionString: url, max: poolSize })
  const run = async (name, values) =>
    (await pool.query({ name: `pson5_${name}`, text: queries[name], values, rowMode: 'array' })).rows
  return {
    store: {
      loadProfile: async (id) => JSON.parse((await run('loadProfile', [id]))[0][0]),
      saveProfile: async (doc) => (await run('saveProfile', [JSON.stringify(doc), null, null]))[0][1],
      findProfilesByUserId: async (id) => (await run('findProfilesByUserId', [id])).map((row) => row[0]),
      loadProfileRevision: async (id, revision) => JSON.parse((await run('loadProfileRevision', [id, revision]))[0][0]),
      deleteProfile: async (id) => (await run('deleteProfile', [id]))[0][0],
    },
    close: () => pool.end(),
  }
}

function postgresjsStore({ pkg, url, poolSize, schema }) {
  const queries = pkg.createPostgresProfileStoreArtifacts({ schema }).queries
  const sql = postgres(url, { max: poolSize, onnotice: () => {} })
  const run = (name, params) => sql.unsafe(queries[name], params, { prepare: true })
  return {
    store: {
      loadProfile: async (id) => JSON.parse((await run('loadProfile', [id]))[0].document),
      saveProfile: async (doc) => (await run('saveProfile', [JSON.stringify(doc), null, null]))[0].revision,
      findProfilesByUserId: async (id) => (await run('findProfilesByUserId', [id])).map((row) => row.profile_id),
      loadProfileRevision: async (id, revision) =>
        JSON.parse((await run('loadProfileRevision', [id, revision]))[0].document),
      deleteProfile: async (id) => (await run('deleteProfile', [id]))[0].deleted,
    },
    close: () => sql.end({ timeout: 5 }),
  }
}
