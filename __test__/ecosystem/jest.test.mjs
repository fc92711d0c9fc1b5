// Runs the Jest fixture in __test__/ecosystem/jest/ (two module registries
// loading the package, queries through each) and expects it to pass.

import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import path from 'node:path'
import { test } from 'node:test'

import { ROOT, run, useSchema, useServer } from './helpers.mjs'

const server = await useServer()
const schema = await useSchema(server, 'jest')
const jestBin = path.join(path.dirname(createRequire(import.meta.url).resolve('jest/package.json')), 'bin', 'jest.js')

test('the Jest suite passes (module registries load the addon twice)', async () => {
  const config = path.join(ROOT, '__test__', 'ecosystem', 'jest', 'jest.config.js')
  const result = await run(process.execPath, [jestBin, '--config', config, '--ci', '--runInBand', '--colors=false', '--json'], {
    env: { ...process.env, DATABASE_URL: server.url, PSON5_JEST_SCHEMA: schema },
    timeoutMillis: 120000,
  })
  assert.equal(result.code, 0, `jest failed:\n${result.stderr}`)
  const report = JSON.parse(result.stdout)
  assert.equal(report.numFailedTests, 0)
  assert.equal(report.numPassedTests, 3)
  const { rows } = await server.sql(`select profile_id, revision from "${schema}".jest_a_profiles`)
  assert.deepEqual(rows, [{ profile_id: 'jest-jest_a_', revision: 2 }])
})
