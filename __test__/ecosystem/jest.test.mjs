// Runs the Jest fixture in __test__/ecosystem/jest/ (two module registries
// loading the package, queries through each) and expects it to pass.

import assert from 'node:assert/strict'
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import { describe, test } from 'node:test'

import { ROOT, run, useSchema, useServer, useTempDir } from './helpers.mjs'

const server = await useServer()
const schema = await useSchema(server, 'jest')
const jestBin = path.join(path.dirname(createRequire(import.meta.url).resolve('jest/package.json')), 'bin', 'jest.js')

test('the Jest suite passes (module registries load the addon twice)', async () => {
  const config = path.join(ROOT, '__test__', 'ecosystem', 'jest', 'jest.config.js')
  const result = await run(
    process.execPath,
    [jestBin, '--config', config, '--ci', '--runInBand', '--colors=false', '--json'],
    {
      env: { ...process.env, DATABASE_URL: server.url, PSON5_JEST_SCHEMA: schema },
      timeoutMillis: 120000,
    },
  )
  assert.equal(result.code, 0, `jest failed:\n${result.stderr}`)
  const report = JSON.parse(result.stdout)
  assert.equal(report.numFailedTests, 0)
  assert.equal(report.numPassedTests, 3)
  const { rows } = await server.sql(`select profile_id, revision from "${schema}".jest_a_profiles`)
  assert.deepEqual(rows, [{ profile_id: 'jest-jest_a_', revision: 2 }])
})

// `jest --detectOpenHandles` in a user's CI. napi-rs makes one unref'd
// "CustomGC" thread-safe function per process when the addon loads; Jest
// before 30.5 reports it when a test file loads the addon. The package's
// `jest-global-setup` loads the addon before the tests, so Jest sees nothing.
describe('jest --detectOpenHandles', () => {
  const JEST_VERSION = createRequire(import.meta.url)('jest/package.json').version
  const ignoresCustomGc = compareVersions(JEST_VERSION, '30.5.0') >= 0
  const work = useTempDir('jest-handles')

  /** An application using the package by name, with a Jest config of `extra`; resolves to Jest's stderr. */
  async function detectOpenHandles(name, extra) {
    const app = path.join(work, name)
    mkdirSync(path.join(app, 'node_modules', '@pson5'), { recursive: true })
    symlinkSync(ROOT, path.join(app, 'node_modules', '@pson5', 'postgres-store'), 'dir')
    writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name, private: true }))
    const config = {
      rootDir: app,
      testEnvironment: 'node',
      testMatch: ['<rootDir>/*.spec.js'],
      watchman: false,
      ...extra,
    }
    writeFileSync(path.join(app, 'jest.config.js'), `module.exports = ${JSON.stringify(config)}\n`)
    writeFileSync(
      path.join(app, 'round-trip.spec.js'),
      `const { createPostgresProfileStoreRepository } = require('@pson5/postgres-store')
test('save, load, not_found, close', async () => {
  const repository = createPostgresProfileStoreRepository({
    connectionString: process.env.DATABASE_URL, schema: process.env.PSON5_JEST_SCHEMA, tablePrefix: '${name}_',
  })
  try {
    await repository.ensureSchema()
    const saved = await repository.saveProfile({ profile_id: 'handles-1', user_id: 'u', metadata: {} })
    expect(saved.metadata.revision).toBe(1)
    expect((await repository.loadProfile('handles-1')).profile_id).toBe('handles-1')
    await expect(repository.loadProfile('handles-missing')).rejects.toMatchObject({ code: 'not_found' })
  } finally {
    await repository.close()
  }
})
`,
    )
    const result = await run(
      process.execPath,
      [jestBin, '--config', path.join(app, 'jest.config.js'), '--ci', '--detectOpenHandles', '--colors=false'],
      { cwd: app, env: { ...process.env, DATABASE_URL: server.url, PSON5_JEST_SCHEMA: schema }, timeoutMillis: 120000 },
    )
    assert.equal(result.code, 0, `jest failed:\n${result.stderr}`)
    assert.match(result.stderr, /Tests: +1 passed, 1 total/)
    return result.stderr
  }

  test("with the package's globalSetup, Jest reports no open handle", async () => {
    const stderr = await detectOpenHandles('with_setup', { globalSetup: '@pson5/postgres-store/jest-global-setup' })
    assert.doesNotMatch(stderr, /open handle/i)
    assert.doesNotMatch(stderr, /CustomGC/)
  })

  test(`without it, Jest ${JEST_VERSION} ${ignoresCustomGc ? 'also reports nothing' : "reports napi-rs's CustomGC (the check sees handles)"}`, async () => {
    const stderr = await detectOpenHandles('without_setup', {})
    if (ignoresCustomGc) assert.doesNotMatch(stderr, /open handle/i)
    else assert.match(stderr, /open handle[\s\S]*CustomGC/)
  })
})

function compareVersions(a, b) {
  const [x, y] = [a, b].map((v) => v.split(/[.-]/).slice(0, 3).map(Number))
  for (let i = 0; i < 3; i++) if (x[i] !== y[i]) return x[i] - y[i]
  return 0
}
