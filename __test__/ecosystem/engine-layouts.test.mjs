// The repository as serialization-engine's `{ adapter }` in the layouts
// applications have. The engine treats a missing profile as new only when the
// error is an instance of its own ProfileStoreError, so the first `initProfile`
// works only when this package finds the application's copy of the engine:
// - this package symlinked into the application (npm link, `npm install
//   <folder>`, workspaces) and the application started from another directory,
//   with an ES module entry and a CommonJS one;
// - the class passed as `profileStoreErrorClass` where nothing can find it;
// - pnpm's isolated node_modules without hoisting (a real `pnpm install`),
//   where a package sees only what it declares: the engine is a dependency of
//   a library of the application, and this package declares it as an optional
//   peer dependency.
// The engine and its siblings come from the 0.2.2 tarball (scripts/upstream-022.mjs).

import assert from 'node:assert/strict'
import { cpSync, mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { before, describe, test } from 'node:test'
import { pathToFileURL } from 'node:url'

import { appDir, ensureUpstream } from '../../scripts/upstream-022.mjs'
import {
  PLATFORM_PACKAGE,
  ROOT,
  UPSTREAM_PACKAGES,
  installUpstream,
  pack,
  packAsPublished,
  packThisPackage,
  run,
  unique,
  useSchema,
  useServer,
  useTempDir,
} from './helpers.mjs'

const server = await useServer()
const schema = await useSchema(server, 'layout')
const work = useTempDir('layouts')
ensureUpstream()

/**
 * The body of an application: the first profile of a user through the engine
 * with the repository as `{ adapter }`, then a second revision. Prints
 * { created, saved } (the revisions) or { code } of the failure. `engine` is
 * an expression for the engine module; `extraOptions` goes into the options.
 */
function firstProfileBody(engine, extraOptions = '') {
  return `
    const { bumpRevision, initProfile, saveProfile } = ${engine}
    const repository = createPostgresProfileStoreRepository({
      connectionString: process.env.DATABASE_URL, schema: process.env.PSON5_SCHEMA, tablePrefix: process.env.PSON5_PREFIX, ${extraOptions}
    })
    try {
      await repository.ensureSchema()
      const options = { adapter: repository, rootDir: process.env.PSON5_ROOT_DIR }
      const created = await initProfile({ user_id: 'layout-user' }, options)
      const saved = await saveProfile(bumpRevision(created), options)
      console.log(JSON.stringify({ created: created.metadata.revision, saved: saved.metadata.revision }))
    } catch (error) {
      console.log(JSON.stringify({ code: error.code, storeCode: error.storeCode, message: error.message }))
    } finally {
      await repository.close()
    }`
}

const ESM_ENTRY = `import { createPostgresProfileStoreRepository } from '@pson5/postgres-store'
${firstProfileBody("await import('@pson5/serialization-engine')")}
`
const CJS_ENTRY = `const { createPostgresProfileStoreRepository } = require('@pson5/postgres-store')
;(async () => {
${firstProfileBody("await import('@pson5/serialization-engine')")}
})()
`

/** Runs `entry` with node from `cwd` against this file's schema; resolves to the printed outcome. */
async function runApp(entry, { cwd, args = [] }) {
  const rootDir = mkdtempSync(path.join(work, 'engine-root-'))
  const result = await run(process.execPath, [...args, entry], {
    cwd,
    env: {
      ...process.env,
      DATABASE_URL: server.url,
      PSON5_SCHEMA: schema,
      PSON5_PREFIX: `${unique('l')}_`,
      PSON5_ROOT_DIR: rootDir,
    },
  })
  assert.equal(result.code, 0, result.stderr)
  return JSON.parse(result.stdout.trim().split('\n').at(-1))
}

describe('this package symlinked into the application, started from another directory', () => {
  let app
  let elsewhere

  before(() => {
    app = path.join(work, 'linked-app')
    const nodeModules = path.join(app, 'node_modules')
    mkdirSync(path.join(nodeModules, '@pson5'), { recursive: true })
    installUpstream(nodeModules)
    // What npm link / `npm install <folder>` / a workspace leave: a symlink to a folder outside the application.
    symlinkSync(ROOT, path.join(nodeModules, '@pson5', 'postgres-store'), 'dir')
    writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'linked-app', private: true }))
    writeFileSync(path.join(app, 'main.mjs'), ESM_ENTRY)
    writeFileSync(path.join(app, 'main.cjs'), CJS_ENTRY)
    elsewhere = mkdtempSync(path.join(work, 'cwd-'))
  })

  for (const entry of ['main.mjs', 'main.cjs']) {
    test(`${entry}: the first initProfile with { adapter: repository } creates revision 1`, async () => {
      const outcome = await runApp(path.join(app, entry), { cwd: elsewhere })
      assert.deepEqual(outcome, { created: 1, saved: 2 })
    })
  }

  test('a relative entry path, run from the folder above the application', async () => {
    const outcome = await runApp(path.join(path.basename(app), 'main.mjs'), { cwd: path.dirname(app) })
    assert.deepEqual(outcome, { created: 1, saved: 2 })
  })
})

describe('the class passed as profileStoreErrorClass', () => {
  test('works where neither the entry, the working directory nor this package can resolve the engine', async () => {
    // The engine is imported by file URL from a folder no lookup reaches.
    const vendor = path.join(work, 'vendor')
    const nodeModules = path.join(vendor, 'node_modules')
    installUpstream(nodeModules)
    const engineUrl = pathToFileURL(path.join(nodeModules, '@pson5', 'serialization-engine', 'src', 'index.js')).href
    const app = path.join(work, 'explicit-app')
    mkdirSync(app)
    const entry = path.join(app, 'main.mjs')
    writeFileSync(
      entry,
      `import { createPostgresProfileStoreRepository } from ${JSON.stringify(pathToFileURL(path.join(ROOT, 'index.mjs')).href)}
const engine = await import(${JSON.stringify(engineUrl)})
${firstProfileBody('engine', 'profileStoreErrorClass: engine.ProfileStoreError')}
`,
    )
    const outcome = await runApp(entry, { cwd: app })
    assert.deepEqual(outcome, { created: 1, saved: 2 })
  })

  test('a value that is not a class is a validation_error naming the option', async () => {
    const { createPostgresProfileStoreRepository } = await import('../../index.mjs')
    for (const value of ['ProfileStoreError', 42, {}]) {
      assert.throws(
        () => createPostgresProfileStoreRepository({ connectionString: server.url, profileStoreErrorClass: value }),
        (error) => error.code === 'validation_error' && error.field === 'profileStoreErrorClass',
      )
    }
  })
})

describe('pnpm (isolated node_modules, hoist=false; a real pnpm install)', () => {
  let app

  before(async () => {
    const tarballs = path.join(work, 'tarballs')
    mkdirSync(tarballs)
    const { main, platform } = await packThisPackage(tarballs)
    const published = await packAsPublished(main.file, tarballs)
    // The engine and its siblings as packages of their own, with their dependencies declared.
    const overrides = {
      '@pson5/postgres-store': `file:${published.file}`,
      [PLATFORM_PACKAGE]: `file:${platform.file}`,
    }
    for (const name of UPSTREAM_PACKAGES) {
      const dir = path.join(tarballs, `upstream-${name}`)
      cpSync(path.join(appDir, 'dist', name), dir, { recursive: true })
      const manifest = { name: `@pson5/${name}`, version: '0.2.2', type: 'module', exports: './src/index.js' }
      if (name === 'serialization-engine') {
        manifest.dependencies = { '@pson5/core-types': '0.2.2', '@pson5/privacy': '0.2.2', '@pson5/schemas': '0.2.2' }
      }
      writeFileSync(path.join(dir, 'package.json'), JSON.stringify(manifest))
      overrides[`@pson5/${name}`] = `file:${(await pack(dir, tarballs)).file}`
    }

    // A library of the application wires the engine to this package; the application itself depends on the
    // library only, so (isolated) it can resolve neither the engine nor this package.
    const library = path.join(work, 'profiles-lib')
    mkdirSync(library)
    writeFileSync(
      path.join(library, 'package.json'),
      JSON.stringify({
        name: 'profiles-lib',
        version: '1.0.0',
        type: 'module',
        exports: './index.js',
        dependencies: { '@pson5/postgres-store': '0.3.0', '@pson5/serialization-engine': '0.2.2' },
      }),
    )
    writeFileSync(
      path.join(library, 'index.js'),
      `import { createPostgresProfileStoreRepository } from '@pson5/postgres-store'
export async function firstProfile() {
${firstProfileBody("await import('@pson5/serialization-engine')")}
}
`,
    )
    app = path.join(work, 'pnpm-app')
    mkdirSync(app)
    writeFileSync(
      path.join(app, 'package.json'),
      JSON.stringify({
        name: 'pnpm-app',
        private: true,
        dependencies: { 'profiles-lib': `file:${library}` },
        pnpm: { overrides },
      }),
    )
    writeFileSync(path.join(app, 'main.mjs'), "import { firstProfile } from 'profiles-lib'\nawait firstProfile()\n")
    writeFileSync(path.join(app, 'main.cjs'), "import('profiles-lib').then(({ firstProfile }) => firstProfile())\n")
    const pnpm = path.join(ROOT, 'node_modules', '.bin', 'pnpm')
    const result = await run(
      pnpm,
      // hoist=false: no hidden .pnpm/node_modules fallback either, so a package sees only what it declares (as
      // with Yarn PnP); with pnpm's default hoisting the undeclared engine would be found there.
      [
        'install',
        '--store-dir',
        path.join(work, 'pnpm-store'),
        '--config.node-linker=isolated',
        '--config.hoist=false',
        '--no-frozen-lockfile',
      ],
      { cwd: app, timeoutMillis: 180000, env: { ...process.env, npm_config_update_notifier: 'false' } },
    )
    assert.equal(result.code, 0, `pnpm install failed:\n${result.stdout}${result.stderr}`)
  })

  test('the layout is isolated: the application cannot resolve the engine', async () => {
    const probe = await run(process.execPath, ['-e', "require.resolve('@pson5/serialization-engine')"], { cwd: app })
    assert.notEqual(probe.code, 0, 'pnpm hoisted the engine into the application')
  })

  for (const entry of ['main.mjs', 'main.cjs']) {
    test(`${entry}: the first initProfile through the library creates revision 1`, async () => {
      const outcome = await runApp(path.join(app, entry), { cwd: work })
      assert.deepEqual(outcome, { created: 1, saved: 2 })
    })
  }
})
