// What `npm install @pson5/postgres-store` gives a user: the main package and
// the platform package for this machine (linux-x64-gnu here; in CI, each
// platform's job tests its own), each from `npm pack`, installed from their
// tarballs into an empty application folder.
//
// The main package.json lists the platform packages in optionalDependencies
// only at publish time (`napi prepublish`), so the platform tarball is named
// explicitly here. The repository's npm/ folder is never written to: the
// platform package is packed from a temporary copy holding the built addon.

import assert from 'node:assert/strict'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { before, describe, test } from 'node:test'

import {
  ADDON,
  PLATFORM_PACKAGE,
  ROOT,
  npm,
  packThisPackage,
  run,
  runNode,
  unique,
  useSchema,
  useServer,
  useTempDir,
} from './helpers.mjs'
import { ROOT_MANIFEST as rootManifest, currentPlatformPackage } from '../helpers/packages.mjs'

const { platform: PLATFORM, manifest: PLATFORM_MANIFEST } = currentPlatformPackage()

const server = await useServer()
const schema = await useSchema(server, 'pack')
const work = useTempDir('pack')

async function manifestIn(tarball) {
  // Relative paths: Windows' tar reads "C:" as a remote host name.
  const out = unique('manifest')
  mkdirSync(path.join(work, out))
  const result = await run('tar', ['xzf', path.basename(tarball), '-C', out, 'package/package.json'], { cwd: work })
  assert.equal(result.code, 0, result.stderr)
  return JSON.parse(readFileSync(path.join(work, out, 'package', 'package.json'), 'utf8'))
}

async function app(name, tarballs) {
  const dir = path.join(work, name)
  mkdirSync(dir)
  writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name, version: '1.0.0', private: true }))
  // --offline: nothing but the tarballs may be needed.
  await npm(['install', ...tarballs, '--no-audit', '--no-fund', '--offline'], { cwd: dir })
  return dir
}

let main
let platform

before(async () => {
  ;({ main, platform } = await packThisPackage(work))
})

describe('the packed main package', () => {
  test('has no runtime dependencies (offline install, nothing to resolve)', () => {
    assert.deepEqual(rootManifest.dependencies ?? {}, {})
  })

  test('ships the JS entries, types and loader, and no binary', () => {
    for (const file of ['package.json', 'index.js', 'index.mjs', 'index.d.ts', 'binding.js', 'lib/native.js']) {
      assert.ok(main.files.includes(file), `${file} is missing from the tarball`)
    }
    assert.deepEqual(
      main.files.filter((file) => file.endsWith('.node')),
      [],
    )
    assert.deepEqual(
      main.files.filter((file) => /^(src|target|__test__|npm|bench)\//.test(file)),
      [],
    )
  })

  test('runs no install script', async () => {
    const manifest = await manifestIn(main.file)
    for (const hook of ['preinstall', 'install', 'postinstall']) {
      assert.equal(manifest.scripts?.[hook], undefined, `the published package must not run "${hook}"`)
    }
    // npm adds `install: node-gyp rebuild` to packages with a binding.gyp.
    assert.ok(!main.files.includes('binding.gyp'))
    assert.deepEqual(manifest.dependencies ?? {}, {})
  })

  test(`the platform package holds exactly the addon, for ${PLATFORM}`, async () => {
    const manifest = await manifestIn(platform.file)
    assert.equal(manifest.name, PLATFORM_PACKAGE)
    assert.equal(manifest.version, rootManifest.version)
    assert.equal(manifest.main, ADDON)
    assert.deepEqual(manifest.os, PLATFORM_MANIFEST.os)
    assert.deepEqual(manifest.cpu, PLATFORM_MANIFEST.cpu)
    assert.deepEqual(manifest.libc, PLATFORM_MANIFEST.libc)
    assert.deepEqual(platform.files, [ADDON, 'README.md', 'package.json'].sort())
    assert.equal(manifest.scripts, undefined)
  })
})

describe('installed from the tarballs into an empty folder', () => {
  let dir

  before(async () => {
    dir = await app('app-full', [main.file, platform.file])
  })

  const roundTrip = (prefix) => `
    const repository = createPostgresProfileStoreRepository({ connectionString: process.env.DATABASE_URL, schema: ${JSON.stringify(schema)}, tablePrefix: '${prefix}' })
    await repository.ensureSchema()
    const saved = await repository.saveProfile({ profile_id: 'packed-${prefix}', user_id: 'u1', metadata: {} })
    const loaded = await repository.loadProfile('packed-${prefix}')
    await repository.close()
    console.log(JSON.stringify({ revision: saved.metadata.revision, loaded: loaded.profile_id }))`

  test('require() resolves the installed package and its platform binary, and a query runs', async () => {
    const code = `
      const assert = require('node:assert')
      const pkg = require('@pson5/postgres-store')
      assert.ok(require.resolve('@pson5/postgres-store').startsWith(process.cwd()))
      assert.ok(require.resolve('${PLATFORM_PACKAGE}').startsWith(process.cwd()))
      const { createPostgresProfileStoreRepository } = pkg
      ;(async () => { ${roundTrip('cjs_')} })().catch((error) => { console.error(error); process.exit(1) })`
    const result = await run(process.execPath, ['-e', code], {
      cwd: dir,
      env: { ...process.env, DATABASE_URL: server.url },
    })
    assert.equal(result.code, 0, result.stderr)
    assert.deepEqual(JSON.parse(result.stdout), { revision: 1, loaded: 'packed-cjs_' })
  })

  test('import() works and shares the CommonJS instance', async () => {
    const code = `
      import assert from 'node:assert'
      import { createRequire } from 'node:module'
      import { createPostgresProfileStoreRepository, PostgresStoreError } from '@pson5/postgres-store'
      const cjs = createRequire(process.cwd() + '/')('@pson5/postgres-store')
      assert.equal(PostgresStoreError, cjs.PostgresStoreError)
      ${roundTrip('esm_')}`
    const result = await runNode(code, { cwd: dir, env: { ...process.env, DATABASE_URL: server.url } })
    assert.equal(result.code, 0, result.stderr)
    assert.deepEqual(JSON.parse(result.stdout), { revision: 1, loaded: 'packed-esm_' })
    const { rows } = await server.sql(`select profile_id from "${schema}".esm_profiles`)
    assert.deepEqual(rows, [{ profile_id: 'packed-esm_' }])
  })

  test('the CLI is installed as a bin (npx pson5-postgres-store)', async () => {
    // npm links a .cmd shim on Windows, which only a shell can start.
    const windows = process.platform === 'win32'
    const bin = path.join(dir, 'node_modules', '.bin', `pson5-postgres-store${windows ? '.cmd' : ''}`)
    assert.ok(existsSync(bin), 'package.json needs "bin": { "pson5-postgres-store": "bin/pson5-postgres-store.js" } and "bin/" in "files"')
    const result = await run(bin, ['schema', '--schema', 'app', '--prefix', 'x_'], { cwd: dir, shell: windows })
    assert.equal(result.code, 0, result.stderr)
    assert.match(result.stdout, /create table if not exists "app"\."x_profiles"/i)
  })
})

describe('installed without the platform package', () => {
  let dir

  before(async () => {
    dir = await app('app-main-only', [main.file])
  })

  // Loading the package alone must fail (not the first call), with a code, the package to install, and no
  // advice to build inside node_modules.
  for (const [kind, code] of [
    [
      'require',
      `try { require('@pson5/postgres-store') } catch (e) { console.log(JSON.stringify({ code: e.code, packageName: e.packageName, message: e.message })); process.exit(7) }`,
    ],
    [
      'import',
      `import('@pson5/postgres-store').catch((e) => { console.log(JSON.stringify({ code: e.code, packageName: e.packageName, message: e.message })); process.exit(7) })`,
    ],
  ]) {
    test(`${kind} of the package fails at once with native_binding_missing, naming ${PLATFORM_PACKAGE}`, async () => {
      const result = await run(process.execPath, ['-e', code], { cwd: dir })
      assert.equal(result.code, 7, `expected the load to fail:\n${result.stdout}${result.stderr}`)
      const error = JSON.parse(result.stdout)
      assert.equal(error.code, 'native_binding_missing')
      assert.equal(error.packageName, PLATFORM_PACKAGE)
      assert.ok(error.message.includes(`npm install ${PLATFORM_PACKAGE}@${rootManifest.version}`), error.message)
      assert.ok(!error.message.includes('npm run build'), error.message)
    })
  }

  test('the CLI exits 4 (not 1, which means "check found problems") and says what to install', async () => {
    const bin = path.join(dir, 'node_modules', '.bin', 'pson5-postgres-store')
    for (const args of [['schema'], ['check']]) {
      const result = await run(bin, args, { cwd: dir })
      assert.equal(result.code, 4, `${args}: ${result.stdout}${result.stderr}`)
      assert.match(result.stderr, /^error \[native_binding_missing\]: /m)
      assert.ok(result.stderr.includes(PLATFORM_PACKAGE), result.stderr)
    }
    // Help needs no binary.
    assert.equal((await run(bin, ['--help'], { cwd: dir })).code, 0)
  })
})
