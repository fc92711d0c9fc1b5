// The original @pson5/postgres-store 0.2.2 and its bundled serialization-engine,
// fetched once with `npm pack` by scripts/upstream-022.mjs. Optional: when the
// tarball cannot be fetched (offline), the original rows are skipped and the
// documents are built from a local copy of createEmptyProfile's shape.

let cached = null

export async function loadUpstream() {
  cached ??= (async () => {
    try {
      const { importUpstream } = await import('../../scripts/upstream-022.mjs')
      const engine = await importUpstream('serialization-engine')
      const store = await importUpstream('postgres-store')
      return { engine, store, error: null }
    } catch (error) {
      return { engine: null, store: null, error }
    }
  })()
  return cached
}
