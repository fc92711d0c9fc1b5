'use strict'

// @pson5/postgres-store/otel: OpenTelemetry spans and metrics from the
// package's TracingChannel (lib/tracing.js). Loaded only when the application
// imports this subpath; the main entry never loads it or @opentelemetry/api.
//
// Conventions: OpenTelemetry semantic conventions 1.37.0, database client
// spans and metrics, PostgreSQL (docs/database/postgresql.md,
// database-spans.md, database-metrics.md at tag v1.37.0).

const diagnosticsChannel = require('node:diagnostics_channel')

const { validationError } = require('../lib/errors.js')
const { TRACING_CHANNEL, livePools } = require('../lib/tracing.js')
const { name: PACKAGE_NAME, version: PACKAGE_VERSION } = require('../package.json')

const api = loadApi()

// @opentelemetry/api is an optional peer dependency: without it, importing
// this subpath fails at once with what to install.
function loadApi() {
  try {
    return require('@opentelemetry/api')
  } catch (cause) {
    if (cause?.code !== 'MODULE_NOT_FOUND') throw cause
    const error = new Error(
      '@pson5/postgres-store/otel needs the OpenTelemetry API, an optional peer dependency that is not installed: ' +
        '`npm install @opentelemetry/api` (your OpenTelemetry SDK setup normally brings it).',
      { cause },
    )
    error.code = 'otel_api_missing'
    throw error
  }
}

const SEMCONV_VERSION = '1.37.0'
const SCHEMA_URL = `https://opentelemetry.io/schemas/${SEMCONV_VERSION}`

// database-metrics.md: db.client.operation.duration's advised buckets (seconds).
const DURATION_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10]

/**
 * Subscribes to the tracing channel: one CLIENT span per call, the child of
 * the caller's active span, and `db.client.operation.duration`; observes
 * every native pool's poolStatus() as `db.client.connection.count` (by
 * state), `db.client.connection.max` and
 * `db.client.connection.pending_requests`. Returns `{ disable() }`.
 * Rejects bad options with a PostgresStoreError `validation_error` (and
 * `field`), subscribing nothing.
 */
function instrument(options = {}) {
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw validationError('options', 'must be an object: { tracerProvider?, meterProvider?, queryText? }')
  }
  const {
    tracerProvider = api.trace.getTracerProvider(),
    meterProvider = api.metrics.getMeterProvider(),
    queryText = false,
  } = options
  if (typeof tracerProvider?.getTracer !== 'function') {
    throw validationError('tracerProvider', 'must be an OpenTelemetry TracerProvider (with getTracer)')
  }
  if (typeof meterProvider?.getMeter !== 'function') {
    throw validationError('meterProvider', 'must be an OpenTelemetry MeterProvider (with getMeter)')
  }
  if (typeof queryText !== 'boolean') throw validationError('queryText', 'must be a boolean')
  const scope = { schemaUrl: SCHEMA_URL }
  const tracer = tracerProvider.getTracer(PACKAGE_NAME, PACKAGE_VERSION, scope)
  const meter = meterProvider.getMeter(PACKAGE_NAME, PACKAGE_VERSION, scope)

  const duration = meter.createHistogram('db.client.operation.duration', {
    description: 'Duration of database client operations.',
    unit: 's',
    advice: { explicitBucketBoundaries: DURATION_BUCKETS },
  })
  const connections = meter.createObservableUpDownCounter('db.client.connection.count', {
    description: 'The number of connections that are currently in state described by the state attribute.',
    unit: '{connection}',
  })
  const maxConnections = meter.createObservableUpDownCounter('db.client.connection.max', {
    description: 'The maximum number of open connections allowed.',
    unit: '{connection}',
  })
  const pending = meter.createObservableUpDownCounter('db.client.connection.pending_requests', {
    description: 'The number of current pending requests for an open connection.',
    unit: '{request}',
  })
  const observePools = (observer) => {
    for (const { repository, telemetry } of livePools()) {
      const status = repository.poolStatus()
      if (status === null) continue
      const pool = { 'db.client.connection.pool.name': poolName(telemetry.target) }
      observer.observe(connections, status.available, { ...pool, 'db.client.connection.state': 'idle' })
      observer.observe(connections, status.size - status.available, { ...pool, 'db.client.connection.state': 'used' })
      observer.observe(maxConnections, status.maxSize, pool)
      observer.observe(pending, status.waiting, pool)
    }
  }
  meter.addBatchObservableCallback(observePools, [connections, maxConnections, pending])

  // Each instrument() keeps its own span on the call's context object.
  const kCall = Symbol('pson5.otel.call')
  const channel = diagnosticsChannel.tracingChannel(TRACING_CHANNEL)
  let enabled = true
  let inFlight = 0
  const finish = (ctx) => {
    const call = ctx[kCall]
    if (call === undefined || call.done) return
    call.done = true
    const { span } = call
    span.setAttributes(endAttributes(ctx))
    if (ctx.error !== undefined) span.setStatus({ code: api.SpanStatusCode.ERROR })
    span.end()
    duration.record((performance.now() - call.started) / 1000, metricAttributes(ctx))
    if (--inFlight === 0 && !enabled) channel.unsubscribe(settling)
  }
  const starting = {
    start(ctx) {
      const span = tracer.startSpan(
        ctx.querySummary,
        { kind: api.SpanKind.CLIENT, attributes: startAttributes(ctx, queryText) },
        api.context.active(),
      )
      inFlight++
      ctx[kCall] = { span, started: performance.now(), ended: false, failedSync: false, done: false }
    },
  }
  const settling = {
    end(ctx) {
      const call = ctx[kCall]
      if (call === undefined) return
      call.ended = true
      // A call that threw synchronously gets no async events.
      if (call.failedSync) finish(ctx)
    },
    error(ctx) {
      const call = ctx[kCall]
      if (call !== undefined && !call.ended) call.failedSync = true
    },
    asyncEnd: finish,
  }
  channel.subscribe(settling)
  channel.subscribe(starting)

  return {
    /**
     * Stops producing spans and metrics (idempotent). The spans of calls in
     * flight still end; then nothing of this instrumentation stays subscribed.
     */
    disable() {
      if (!enabled) return
      enabled = false
      channel.unsubscribe(starting)
      meter.removeBatchObservableCallback(observePools, [connections, maxConnections, pending])
      if (inFlight === 0) channel.unsubscribe(settling)
    },
  }
}

/** server.address and server.port, where known. */
function serverAttributes(ctx) {
  const attributes = {}
  if (ctx.serverAddress !== undefined) attributes['server.address'] = ctx.serverAddress
  if (ctx.serverPort !== undefined) attributes['server.port'] = ctx.serverPort
  return attributes
}

/** The call's attributes common to spans and metrics: system, namespace, operation, collection, server. */
function callAttributes(ctx) {
  const attributes = {
    'db.system.name': 'postgresql',
    'db.namespace': ctx.namespace,
    'db.operation.name': ctx.operation,
    'db.query.summary': ctx.querySummary,
  }
  if (ctx.collection !== undefined) attributes['db.collection.name'] = ctx.collection
  return Object.assign(attributes, serverAttributes(ctx))
}

/** Attributes known when the call starts (the ones samplers may read). */
function startAttributes(ctx, withQueryText) {
  const attributes = callAttributes(ctx)
  if (withQueryText) {
    const text = ctx.queryText
    if (text !== undefined) attributes['db.query.text'] = text
  }
  return attributes
}

/** Attributes known once the call has settled. */
function endAttributes(ctx) {
  // The server again: with read replicas, the one that served the call is
  // known only now.
  const attributes = serverAttributes(ctx)
  if (ctx.batchSize !== undefined) attributes['db.operation.batch.size'] = ctx.batchSize
  if (ctx.revision !== undefined) attributes['pson5.profile.revision'] = ctx.revision
  if (ctx.statusCode !== undefined) attributes['db.response.status_code'] = ctx.statusCode
  if (ctx.errorType !== undefined) attributes['error.type'] = ctx.errorType
  if (ctx.context !== undefined) {
    for (const [key, value] of Object.entries(ctx.context)) {
      if (value === undefined || value === null) continue
      attributes[`pson5.context.${key}`] =
        typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean' ? value : JSON.stringify(value)
    }
  }
  return attributes
}

/** db.client.operation.duration's attributes (low cardinality: no caller context, no revision). */
function metricAttributes(ctx) {
  const attributes = callAttributes(ctx)
  if (ctx.statusCode !== undefined) attributes['db.response.status_code'] = ctx.statusCode
  if (ctx.errorType !== undefined) attributes['error.type'] = ctx.errorType
  return attributes
}

// database-metrics.md: without a pool name, `server.address:server.port/db.namespace`.
function poolName({ address, port, namespace }) {
  return `${address ?? ''}:${port ?? ''}/${namespace}`
}

module.exports = { instrument, SEMCONV_VERSION }
