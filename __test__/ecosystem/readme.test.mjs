// The README's Quick start runs as written: its code blocks are taken from
// README.md and run as ES modules in an application folder that has this
// package (and serialization-engine 0.2.2 from the tarball), against a
// PostgreSQL of this file's own (the examples use the public schema).
// The SDK's block is not run: @pson5/sdk is not published on npm.

import assert from 'node:assert/strict'
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { after, test } from 'node:test'

import pg from 'pg'

import { startEmbeddedPostgres } from '../../scripts/embedded-postgres.mjs'
import { ROOT, installUpstream, run, useTempDir } from './helpers.mjs'

const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8')
const quickStart = readme.slice(readme.indexOf('\n## Quick start\n'), readme.indexOf('\n### Under Jest\n'))
const blocks = [...quickStart.matchAll(/```js\n([\s\S]*?)```/g)].map((match) => match[1])

const server = await startEmbeddedPostgres()
after(() => server.stop())
const work = useTempDir('readme')

const app = path.join(work, 'app')
mkdirSync(path.join(app, 'node_modules', '@pson5'), { recursive: true })
symlinkSync(ROOT, path.join(app, 'node_modules', '@pson5', 'postgres-store'), 'dir')
installUpstream(path.join(app, 'node_modules'))

/** Runs `code` as `name`.mjs in the application with DATABASE_URL set. */
async function runBlock(name, code) {
  writeFileSync(path.join(app, `${name}.mjs`), code)
  const result = await run(process.execPath, [`${name}.mjs`], {
    cwd: app,
    env: { ...process.env, DATABASE_URL: server.url },
  })
  assert.equal(result.code, 0, `${name}.mjs failed:\n${result.stderr}`)
  return result.stdout
}

test('the Quick start block runs: revision 1, the profile loads back, one audit entry', async () => {
  const stdout = await runBlock('quick-start', blocks[0])
  assert.deepEqual(stdout.trim().split('\n'), ['1', 'user_42 1 null'])
})

test('the serialization-engine block runs: the 0.2.2 path and the repository as { adapter }', async () => {
  const engineBlock = blocks.find(
    (code) => code.includes("from '@pson5/serialization-engine'") && code.includes('initProfile'),
  )
  assert.ok(engineBlock, 'the README has a serialization-engine block')
  const printed = await runBlock(
    'engine',
    `${engineBlock}\nconsole.log(JSON.stringify([first.metadata.revision, created.metadata.revision]))\n`,
  )
  assert.deepEqual(JSON.parse(printed), [1, 1])
  const pool = new pg.Pool({ connectionString: server.url, max: 1 })
  try {
    const { rows } = await pool.query(
      `select user_id, revision from public.pson_profiles where user_id in ('user_42', 'user_43') order by user_id, revision`,
    )
    // user_42: the Quick start's pson_1 and the engine's new profile; user_43: created, then saved again.
    assert.deepEqual(rows, [
      { user_id: 'user_42', revision: 1 },
      { user_id: 'user_42', revision: 1 },
      { user_id: 'user_43', revision: 2 },
    ])
  } finally {
    await pool.end()
  }
})
