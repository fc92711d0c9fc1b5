// ESM entry: re-exports the CommonJS entry so `import` and `require` share one
// native instance.
import cjs from './index.js'

export const {
  createPostgresProfileStoreArtifacts,
  createPostgresProfileStoreRepository,
  createPostgresQueryExecutor,
  PostgresStoreError,
  PostgresProfileStoreRepository,
  DIAGNOSTICS_CHANNEL,
  TRACING_CHANNEL,
} = cjs

export default cjs
