// The native connection options have one source of truth (issue 14, item 3):
// `NativeOptions` in src/js_types.rs, from which binding.d.ts is generated.
// index.d.ts, index.js and the README's Configuration table are checked
// against it here: same names, and in index.d.ts the same docs word for word.

import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { test } from 'node:test'

import { interfaceFields } from './helpers/dts.mjs'

const require = createRequire(import.meta.url)
const read = (file) => readFileSync(new URL(`../${file}`, import.meta.url), 'utf8')

const source = interfaceFields(read('binding.d.ts'), 'NativeOptions')
const names = [...source.keys()]

test('index.d.ts documents every native option as src/js_types.rs does, and no other', () => {
  const dts = read('index.d.ts')
  const connection = interfaceFields(dts, 'NativeConnectionOptions')
  const artifacts = interfaceFields(dts, 'ArtifactOptions')
  const typed = new Map([...connection, ...artifacts])
  assert.deepEqual([...connection.keys()].filter((name) => !source.has(name)), [], 'NativeConnectionOptions fields unknown to Rust')
  for (const [name, doc] of source) {
    assert.ok(typed.has(name), `index.d.ts has ${name}`)
    assert.equal(typed.get(name), doc, `${name}: index.d.ts and src/js_types.rs document it alike`)
    assert.notEqual(doc, '', `${name} is documented`)
  }
})

test('index.js passes exactly the native options to the pool', () => {
  const { NATIVE_OPTIONS } = require('../lib/validate.js')
  assert.deepEqual([...NATIVE_OPTIONS].sort(), [...names].sort())
})

test("the README's Configuration table names every native option", () => {
  const readme = read('README.md')
  const section = readme.slice(readme.indexOf('\n## Configuration\n'), readme.indexOf('\n## Errors\n'))
  const listed = new Set(
    section
      .split('\n')
      .filter((line) => line.startsWith('| `'))
      .flatMap((line) => [...line.split('|')[1].matchAll(/`(\w+)`/g)].map((match) => match[1])),
  )
  const legacy = ['currentProfilesTable', 'profileRevisionsTable', 'userIndexTable']
  for (const name of names) {
    if (legacy.includes(name)) continue // documented under "Migrating from 0.2.2"
    assert.ok(listed.has(name), `README Configuration lists ${name}`)
  }
  for (const name of legacy) assert.ok(readme.includes(`\`${name}\``), `README mentions ${name}`)
})
