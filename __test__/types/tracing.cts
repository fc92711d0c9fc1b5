// Typed usage of @pson5/postgres-store/otel from CommonJS. Compiled, never
// run, by types.test.mjs.

import otel = require('@pson5/postgres-store/otel')
import store = require('@pson5/postgres-store')

const instrumentation: otel.Instrumentation = otel.instrument({ queryText: false })
instrumentation.disable()
const name: 'pson5:postgres-store:operation' = store.TRACING_CHANNEL
void name

// @ts-expect-error instrument takes an options object
otel.instrument(42)
