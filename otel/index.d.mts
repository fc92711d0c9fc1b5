// Types for `import` of @pson5/postgres-store/otel: re-exports index.d.ts.
export * from './index.js'
import otel from './index.js'
export default otel
