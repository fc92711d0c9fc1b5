// index.d.ts types every export: typed samples (ESM and CommonJS) compile
// under `tsc --strict` with nodenext resolution. Their `@ts-expect-error`
// lines make the check fail if a type widened to `any`.

import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { test } from 'node:test'

import { ROOT, tsc } from './helpers/tsc.mjs'

test('the typed usage samples (ESM and CommonJS) compile with tsc --strict', async () => {
  const { code, output } = await tsc(['__test__/types/usage.mts', '__test__/types/usage.cts'])
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
