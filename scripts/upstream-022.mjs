// Fetches the original @pson5/postgres-store 0.2.2 with `npm pack` (into the
// git-ignored .cache/, never committed) and lays out the upstream packages its
// tarball bundles (serialization-engine, core-types, schemas, privacy) as
// resolvable node_modules, so tests and the benchmark can run the original.

import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const VERSION = '0.2.2'
const BUNDLED = ['core-types', 'schemas', 'privacy', 'serialization-engine']

export const upstreamDir = path.join(ROOT, '.cache', `pson5-postgres-store-${VERSION}`)
/** Folder of the unpacked tarball; its node_modules resolves the @pson5 packages. */
export const appDir = path.join(upstreamDir, 'package')

export function ensureUpstream() {
  const marker = path.join(appDir, 'node_modules', '@pson5', 'serialization-engine')
  if (existsSync(marker)) return appDir
  mkdirSync(upstreamDir, { recursive: true })
  execFileSync('npm', ['pack', `@pson5/postgres-store@${VERSION}`, '--pack-destination', upstreamDir, '--silent'], {
    stdio: ['ignore', 'ignore', 'inherit'],
  })
  const tarball = readdirSync(upstreamDir).find((name) => name.endsWith('.tgz'))
  execFileSync('tar', ['xzf', path.join(upstreamDir, tarball), '-C', upstreamDir])
  const scope = path.join(appDir, 'node_modules', '@pson5')
  mkdirSync(scope, { recursive: true })
  for (const name of BUNDLED) {
    const dist = path.join(appDir, 'dist', name)
    writeFileSync(
      path.join(dist, 'package.json'),
      JSON.stringify({ name: `@pson5/${name}`, version: VERSION, type: 'module', exports: './src/index.js' }),
    )
    symlinkSync(dist, path.join(scope, name), 'dir')
  }
  return appDir
}

/** `import()` of an upstream module by package name: serialization-engine or postgres-store. */
export async function importUpstream(name) {
  ensureUpstream()
  const file =
    name === 'postgres-store'
      ? path.join(appDir, 'dist', 'postgres-store', 'src', 'index.js')
      : path.join(appDir, 'node_modules', '@pson5', name, 'src', 'index.js')
  return import(pathToFileURL(file).href)
}
