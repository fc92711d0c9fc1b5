// `--ab <rev>`: this package as of another commit, as one more contender in
// the same run. The commit's tree is exported with `git archive` into the
// git-ignored bench/.cache/ab/<sha>/ and built there with its own
// `npm run build` (release), once per commit. All such builds share one cargo
// target directory (bench/.cache/ab/target), so a second commit only
// recompiles the crate itself.

import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')
const CACHE = path.join(ROOT, 'bench', '.cache', 'ab')

/** Builds `rev` unless cached; returns { sha, short, dir, entry } (entry: its index.mjs). */
export function buildRevision(rev, log) {
  const git = (...args) => execFileSync('git', args, { cwd: ROOT, encoding: 'utf8' }).trim()
  const sha = git('rev-parse', '--verify', `${rev}^{commit}`)
  const short = sha.slice(0, 7)
  const dir = path.join(CACHE, sha)
  const built = path.join(dir, '.bench-built')
  if (!existsSync(built)) {
    log(`[ab] building ${rev} (${short}) in release mode into ${path.relative(ROOT, dir)} (first time only)...`)
    rmSync(dir, { recursive: true, force: true })
    mkdirSync(dir, { recursive: true })
    execFileSync('sh', ['-c', `git archive ${sha} | tar -x -C "${dir}"`], { cwd: ROOT, stdio: ['ignore', 2, 2] })
    // Its JS resolves dependencies (pg, the napi CLI) from this checkout's node_modules.
    symlinkSync(path.join(ROOT, 'node_modules'), path.join(dir, 'node_modules'), 'dir')
    const build = spawnSync('npm', ['run', 'build'], {
      cwd: dir,
      // Build output to stderr: stdout carries the report.
      stdio: ['ignore', 2, 2],
      env: { ...process.env, CARGO_TARGET_DIR: path.join(CACHE, 'target') },
    })
    if (build.status !== 0) throw new Error(`the release build of ${rev} (${short}) failed (exit ${build.status})`)
    writeFileSync(built, `${new Date().toISOString()}\n`)
  }
  return { sha, short, dir, entry: path.join(dir, 'index.mjs') }
}
