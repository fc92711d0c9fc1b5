// Shared by the ecosystem tests: the PostgreSQL to use (DATABASE_URL, else an
// embedded one started for the file), unique names, and a way to run a
// snippet in a child process with a controlled environment.

import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after } from 'node:test'
import { fileURLToPath } from 'node:url'

import { appDir, ensureUpstream } from '../../scripts/upstream-022.mjs'
import { currentPlatformPackage, pack } from '../helpers/packages.mjs'
import { buildProfile } from '../helpers/profiles.mjs'
import { run } from '../helpers/run.mjs'

export { run }

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')

export function unique(prefix) {
  return `${prefix}_${randomBytes(4).toString('hex')}`
}

export { useServer } from '../helpers/servers.mjs'

/** A fresh folder under the temp directory, removed after the file. */
export function useTempDir(prefix) {
  const dir = mkdtempSync(path.join(os.tmpdir(), `pson5-${prefix}-`))
  after(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** A fresh schema on `server`, dropped (cascade) after the file. */
export async function useSchema(server, prefix = 'eco') {
  const schema = unique(prefix)
  await server.sql(`create schema "${schema}"`)
  server.cleanups.push(() => server.sql(`drop schema if exists "${schema}" cascade`))
  return schema
}

/** An environment without any libpq variable nor DATABASE_URL, plus `extra`. */
export function cleanEnv(extra = {}) {
  const env = {}
  for (const [key, value] of Object.entries(process.env)) {
    if (key === 'DATABASE_URL' || key.startsWith('PG')) continue
    env[key] = value
  }
  return { ...env, ...extra }
}

/**
 * Runs `node --input-type=module -e <code>` in `cwd` with `env`; resolves to
 * { code, stdout, stderr }. Never rejects on a non-zero exit.
 */
export function runNode(code, { env = process.env, cwd = ROOT, args = [], timeoutMillis = 60000 } = {}) {
  return run(process.execPath, ['--input-type=module', '-e', code, ...args], { env, cwd, timeoutMillis })
}

export { rejection } from '../helpers/assertions.mjs'

/** A PSON5 profile document (buildProfile's), with `extra` fields on top. */
export function profile(profileId, userId, extra = {}) {
  return { ...buildProfile({ profileId, userId, tenantId: 'tenant-eco' }), ...extra }
}

/** A loopback port nothing listens on (at the time of the call). */
export { freePort as freePortNow } from '../../scripts/ecosystem/servers.mjs'

export { npm, pack } from '../helpers/packages.mjs'

const thisPlatform = currentPlatformPackage()
export const PLATFORM = thisPlatform.platform
export const PLATFORM_PACKAGE = thisPlatform.name
export const ADDON = thisPlatform.addon

/**
 * This package and its platform package (holding the addon built here), as
 * `npm pack` makes them, in `dest`. The platform package is packed from a copy,
 * so the repository's npm/ folder is never written to.
 */
export async function packThisPackage(dest) {
  const main = await pack(ROOT, dest)
  const platformDir = path.join(dest, 'platform-src')
  cpSync(thisPlatform.dir, platformDir, { recursive: true })
  cpSync(path.join(ROOT, ADDON), path.join(platformDir, ADDON))
  const platform = await pack(platformDir, dest)
  return { main, platform }
}

/**
 * The main tarball as `napi prepublish` publishes it: with the platform package
 * in optionalDependencies (package managers that isolate packages, like pnpm,
 * only link it next to this package when it is declared).
 */
export async function packAsPublished(mainTarball, dest) {
  const dir = path.join(dest, unique('published'))
  mkdirSync(dir, { recursive: true })
  const untar = await run('tar', ['xzf', mainTarball, '-C', dir])
  assert.equal(untar.code, 0, untar.stderr)
  const manifestFile = path.join(dir, 'package', 'package.json')
  const manifest = JSON.parse(readFileSync(manifestFile, 'utf8'))
  manifest.optionalDependencies = { [PLATFORM_PACKAGE]: manifest.version }
  writeFileSync(manifestFile, JSON.stringify(manifest, null, 2))
  return pack(path.join(dir, 'package'), dest)
}

/** The upstream packages the 0.2.2 tarball bundles: serialization-engine and what it imports. */
export const UPSTREAM_PACKAGES = ['core-types', 'schemas', 'privacy', 'serialization-engine']

/** Copies serialization-engine 0.2.2 and its sibling packages into `nodeModules`/@pson5 (real copies, not links). */
export function installUpstream(nodeModules) {
  ensureUpstream()
  for (const name of UPSTREAM_PACKAGES) {
    cpSync(path.join(appDir, 'dist', name), path.join(nodeModules, '@pson5', name), { recursive: true })
  }
}
