// ESM entry of @pson5/postgres-store/otel: re-exports the CommonJS module, so
// `import` and `require` share one instrumentation module.
import cjs from './index.js'

export const { instrument, SEMCONV_VERSION } = cjs

export default cjs
