'use strict'

// serialization-engine's `saveProfile`/`initProfile` treat a missing profile
// as new only when the error is `instanceof` its own ProfileStoreError. When
// the application can resolve that package, our `not_found` errors are made
// from its class (keeping our `code` and details).

const path = require('node:path')
const { createRequire } = require('node:module')
const { pathToFileURL } = require('node:url')

const ENGINE = '@pson5/serialization-engine'

let loading = null

function candidateBases() {
  const bases = [path.join(process.cwd(), 'noop.js')]
  if (require.main?.filename) bases.push(require.main.filename)
  bases.push(__filename)
  return bases
}

async function importEngineErrorClass() {
  for (const base of candidateBases()) {
    let resolved
    try {
      resolved = createRequire(base).resolve(ENGINE)
    } catch {
      continue
    }
    try {
      const engine = await import(pathToFileURL(resolved).href)
      if (typeof engine.ProfileStoreError === 'function') return engine.ProfileStoreError
    } catch {
      // A broken install of the engine must not break our error path.
    }
  }
  return null
}

// Resolved once per process, on the first `not_found`.
function engineErrorClass() {
  loading ??= importEngineErrorClass()
  return loading
}

module.exports = { engineErrorClass }
