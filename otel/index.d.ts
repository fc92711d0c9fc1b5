import type { MeterProvider, TracerProvider } from '@opentelemetry/api'

export interface InstrumentOptions {
  /** Where spans go. Default: the global tracer provider (`trace.getTracerProvider()`). */
  tracerProvider?: TracerProvider
  /** Where metrics go. Default: the global meter provider (`metrics.getMeterProvider()`). */
  meterProvider?: MeterProvider
  /**
   * Adds `db.query.text`: the fixed, parameterised SQL of the statement the operation runs (never parameter
   * values). Default `false`.
   */
  queryText?: boolean
}

export interface Instrumentation {
  /** Stops producing spans and metrics (idempotent). Spans of calls in flight still end. */
  disable(): void
}

/**
 * Subscribes to the `pson5:postgres-store:operation` tracing channel of every repository in this process: one
 * CLIENT span per call (the child of the caller's active span, named `db.query.summary`), the
 * `db.client.operation.duration` histogram (seconds), and, for native pools, `db.client.connection.count` by
 * `db.client.connection.state` (`idle`, `used`), `db.client.connection.max` and
 * `db.client.connection.pending_requests` from `poolStatus()`. OpenTelemetry semantic conventions 1.37.0.
 */
export declare function instrument(options?: InstrumentOptions): Instrumentation

/** The semantic conventions version the attributes follow: `'1.37.0'`. */
export declare const SEMCONV_VERSION: '1.37.0'
