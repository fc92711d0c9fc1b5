'use strict'

// serialization-engine's `saveProfile`/`initProfile` treat a missing profile
// as new only when the error is `instanceof` its own ProfileStoreError. So our
// `not_found` errors are made from the application's copy of that class (with
// our `code` and details): the one passed as `profileStoreErrorClass`, else the
// one the application resolves.
//
// Where the application's copy is found, in order:
// 1. from the entry script (`require.main`, else `process.argv[1]` for an ES
//    module entry): it sits in the application, wherever the working directory
//    is and wherever this package's real path is (npm link, `npm install
//    <folder>` and workspaces symlink it from elsewhere);
// 2. from the working directory (REPLs, `node -e`, test runners);
// 3. from this package: package.json declares the engine as an optional peer
//    dependency, so pnpm links the application's copy next to this package and
//    Yarn PnP lets this package resolve it.

const fs = require('node:fs')
const path = require('node:path')
const { createRequire } = require('node:module')
const { pathToFileURL } = require('node:url')

const ENGINE = '@pson5/serialization-engine'

let found = null

/** Files to resolve the engine from, most specific first. */
function candidateBases() {
  const bases = []
  const entry = require.main?.filename ?? process.argv[1]
  if (entry) bases.push(path.resolve(entry))
  bases.push(path.join(process.cwd(), 'noop.js'))
  bases.push(__filename)
  return bases
}

function resolveFrom(base) {
  try {
    return createRequire(base).resolve(ENGINE)
  } catch {
    // An entry script given without its extension, or through a symlink of its
    // own: resolve from its real path too.
    try {
      return createRequire(fs.realpathSync(base)).resolve(ENGINE)
    } catch {
      return null
    }
  }
}

async function importEngineErrorClass() {
  for (const base of candidateBases()) {
    const resolved = resolveFrom(base)
    if (resolved === null) continue
    try {
      const engine = await import(pathToFileURL(resolved).href)
      if (typeof engine.ProfileStoreError === 'function') return engine.ProfileStoreError
    } catch {
      // A broken install of the engine must not break our error path.
    }
  }
  return null
}

/**
 * The engine's ProfileStoreError class for `not_found` errors: `explicit` (the
 * `profileStoreErrorClass` option) when given, else the application's copy,
 * looked up once per process on the first `not_found`; null when there is none.
 */
function engineErrorClass(explicit) {
  if (explicit !== undefined) return Promise.resolve(explicit)
  found ??= importEngineErrorClass()
  return found
}

module.exports = { engineErrorClass }
