// index.d.ts types every export: typed samples (ESM and CommonJS) compile
// under `tsc --strict` with nodenext resolution. Their `@ts-expect-error`
// lines make the check fail if a type widened to `any`.

import assert from 'node:assert/strict'
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { test } from 'node:test'

import { appDir, ensureUpstream } from '../scripts/upstream-022.mjs'
import { FLAGS, ROOT, tsc } from './helpers/tsc.mjs'

test('the typed usage samples (ESM and CommonJS) compile with tsc --strict', async () => {
  const { code, output } = await tsc(['__test__/types/usage.mts', '__test__/types/usage.cts'])
  assert.equal(output.trim(), '')
  assert.equal(code, 0)
})

test('the tracing types and the otel subpath (ESM and CommonJS) compile with tsc --strict', async () => {
  const { code, output } = await tsc(['__test__/types/tracing.mts', '__test__/types/tracing.cts'])
  assert.equal(output.trim(), '')
  assert.equal(code, 0)
})

test('the check fails on a type error (the compiler really checks against index.d.ts)', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'pson5-types-'))
  try {
    const entry = path.relative(dir, path.join(ROOT, 'index.js')).split(path.sep).join('/')
    const file = path.join(dir, 'wrong.mts')
    writeFileSync(
      file,
      [
        `import { createPostgresProfileStoreRepository, type PostgresStoreErrorCode } from '${entry}'`,
        `const repository = createPostgresProfileStoreRepository()`,
        `await repository.loadProfile(42)`,
        `const code: PostgresStoreErrorCode = 'profile_not_found'`,
        `export { code }`,
        '',
      ].join('\n'),
    )
    const { code, output } = await tsc([file])
    assert.notEqual(code, 0)
    assert.match(output, /wrong\.mts\(3,\d+\): error TS2345/)
    assert.match(output, /wrong\.mts\(4,\d+\): error TS2322/)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

/**
 * An application folder whose node_modules holds @pson5/serialization-engine,
 * core-types and their siblings as the 0.2.2 tarball ships them (compiled JS
 * and .d.ts), this package, pg and the @types, with `files` copied in.
 */
function upstreamApp(files) {
  ensureUpstream()
  const dir = mkdtempSync(path.join(tmpdir(), 'pson5-types-upstream-'))
  const scope = path.join(dir, 'node_modules', '@pson5')
  mkdirSync(scope, { recursive: true })
  for (const name of ['core-types', 'schemas', 'privacy', 'serialization-engine']) {
    symlinkSync(path.join(appDir, 'node_modules', '@pson5', name), path.join(scope, name), 'dir')
  }
  symlinkSync(ROOT, path.join(scope, 'postgres-store'), 'dir')
  for (const name of ['pg', '@types']) {
    symlinkSync(path.join(ROOT, 'node_modules', name), path.join(dir, 'node_modules', name), 'dir')
  }
  writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'types-app', private: true }))
  for (const file of files) copyFileSync(path.join(ROOT, '__test__', 'types', file), path.join(dir, file))
  return dir
}

test('the README wiring, the 0.2.2 form and the adapter form compile against serialization-engine and core-types 0.2.2 (ESM and CommonJS, with and without --strict)', async () => {
  const files = ['upstream.mts', 'upstream.cts']
  const dir = upstreamApp(files)
  try {
    for (const flags of [FLAGS, FLAGS.filter((flag) => flag !== '--strict')]) {
      const { code, output } = await tsc(files, { cwd: dir, flags })
      assert.equal(output.trim(), '', `tsc ${flags.join(' ')}`)
      assert.equal(code, 0)
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})
