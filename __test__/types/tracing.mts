// Typed usage of the tracing channel and of @pson5/postgres-store/otel, as an
// ES module. Compiled, never run, by types.test.mjs.

import * as diagnostics_channel from 'node:diagnostics_channel'

import { metrics, trace } from '@opentelemetry/api'
import { TRACING_CHANNEL, type OperationTraceContext } from '@pson5/postgres-store'
import otelDefault, { instrument, SEMCONV_VERSION, type Instrumentation } from '@pson5/postgres-store/otel'

const channel: 'pson5:postgres-store:operation' = TRACING_CHANNEL
diagnostics_channel.tracingChannel<OperationTraceContext>(channel).subscribe({
  start(call) {
    const name: string = call.querySummary
    const port: number | undefined = call.serverPort
    const mode: 'native' | 'executor' = call.mode
    void [name, port, mode]
  },
  end() {},
  asyncStart() {},
  asyncEnd(call) {
    const batch: number | undefined = call.batchSize
    const text: string | undefined = call.queryText
    void [batch, text]
  },
  error(call) {
    const code: string | undefined = call.error?.code
    const sqlState: string | undefined = call.statusCode
    void [code, sqlState]
  },
})

const all: Instrumentation = instrument()
const some = instrument({ tracerProvider: trace.getTracerProvider(), meterProvider: metrics.getMeterProvider(), queryText: true })
all.disable()
some.disable()
otelDefault.instrument({}).disable()
const version: '1.37.0' = SEMCONV_VERSION
void version

// @ts-expect-error queryText is a boolean
instrument({ queryText: 'yes' })
// @ts-expect-error the context is read-only where the package sets it at the start
diagnostics_channel.tracingChannel<OperationTraceContext>(channel).subscribe({ start: (call) => void (call.operation = 'x') })
