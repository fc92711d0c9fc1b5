#!/usr/bin/env node
// The publish job of .github/workflows/CI.yml as one script, so that it can be
// rehearsed anywhere:
//
//   npm run release                      on a version tag in CI: publishes
//   npm run release -- --dry-run [--json] rehearses every step on a temporary
//                                        copy; nothing is published, nothing in
//                                        this checkout changes
//
// Steps (the napi-rs release flow, as napi-rs/package-template runs it):
// 1. `napi artifacts`: the .node files the build jobs uploaded (downloaded into
//    ./artifacts) go into npm/<platform>/. It fails when a target of
//    package.json `napi.targets` has no binary.
// 2. `napi prepublish -t npm`: publishes each npm/<platform> package and writes
//    the main package's `optionalDependencies` (one per platform, same
//    version). Dry run: `--skip-optional-publish`, then `npm publish --dry-run`
//    of each platform package.
// 3. `npm publish` of the main package, with `--ignore-scripts`: step 2 is what
//    `prepublishOnly` would run, and `prepare` would build a debug addon from
//    source.
//
// npm settings go through npm_config_* variables so that the `npm publish`
// calls napi makes for the platform packages get them too: public access, the
// dist-tag (`next` for a prerelease version, else `latest`), and provenance in
// GitHub Actions (needs `id-token: write`). Authentication: NPM_TOKEN when set
// (written to a temporary npmrc for npm's configured registry), else npm's
// trusted publishing, which exchanges the same id-token.

import { spawnSync } from 'node:child_process'
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'

// The napi CLI of this checkout's devDependencies, run by path: the dry run works in a copy without node_modules.
const require = createRequire(import.meta.url)
const NAPI = path.join(path.dirname(require.resolve('@napi-rs/cli/package.json')), 'dist', 'cli.js')

const { values: flags } = parseArgs({ options: { 'dry-run': { type: 'boolean' }, json: { type: 'boolean' } } })
const dryRun = Boolean(flags['dry-run'])
const log = flags.json ? (...args) => console.error(...args) : (...args) => console.log(...args)

const packageDir = process.cwd()
const manifest = readJson(path.join(packageDir, 'package.json'))
const version = manifest.version
const distTag = version.includes('-') ? 'next' : 'latest'

function readJson(file) {
  return JSON.parse(readFileSync(file, 'utf8'))
}

function fail(message) {
  console.error(`release: ${message}`)
  process.exit(1)
}

/** Runs a command (through the shell on Windows, where npm is npm.cmd); returns stdout, exits on failure. */
function run(command, args, { cwd, env = process.env, capture = false } = {}) {
  log(`$ ${[command, ...args].join(' ')}`)
  const result = spawnSync(command, args, {
    cwd,
    env,
    shell: process.platform === 'win32',
    encoding: 'utf8',
    stdio: ['ignore', capture ? 'pipe' : flags.json ? process.stderr : 'inherit', 'inherit'],
    maxBuffer: 64 * 1024 * 1024,
  })
  if (result.error) fail(`${command} could not start: ${result.error.message}`)
  if (result.status !== 0) fail(`${command} ${args.join(' ')} exited with ${result.status}`)
  return result.stdout
}

/** `npm publish --dry-run --json` of `dir`: { name, version, files }. */
function publishDryRun(dir, env) {
  const out = run('npm', ['publish', '--dry-run', '--json', '--ignore-scripts'], { cwd: dir, env, capture: true })
  const report = JSON.parse(out)
  // npm 11 keys the report by package name; npm 10 prints the report itself.
  const entry = report.files ? report : Object.values(report)[0]
  return { name: entry.name, version: entry.version, files: entry.files.map((file) => file.path).sort() }
}

// A tag names the version it publishes: v0.3.0 publishes 0.3.0 and nothing else.
if (process.env.GITHUB_REF_TYPE === 'tag' && process.env.GITHUB_REF_NAME !== `v${version}`) {
  fail(`tag ${process.env.GITHUB_REF_NAME} does not match package.json version ${version} (expected v${version})`)
}

const env = {
  ...process.env,
  npm_config_access: 'public',
  npm_config_tag: distTag,
  npm_config_update_notifier: 'false',
}
if (!dryRun && process.env.GITHUB_ACTIONS === 'true') env.npm_config_provenance = 'true'
if (!dryRun && process.env.NPM_TOKEN) {
  const registry = new URL(run('npm', ['config', 'get', 'registry'], { capture: true }).trim())
  const npmrc = path.join(mkdtempSync(path.join(os.tmpdir(), 'pson5-npmrc-')), '.npmrc')
  writeFileSync(npmrc, `//${registry.host}${registry.pathname}:_authToken=\${NPM_TOKEN}\n`, { mode: 0o600 })
  env.npm_config_userconfig = npmrc
  process.on('exit', () => rmSync(path.dirname(npmrc), { recursive: true, force: true }))
}

let workDir = packageDir
if (dryRun) {
  // A copy of what publishing reads: the manifest, the files npm packs, npm/
  // and the downloaded artifacts.
  workDir = mkdtempSync(path.join(os.tmpdir(), 'pson5-release-'))
  const packed = JSON.parse(run('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: packageDir, capture: true }))
  const paths = new Set([...packed[0].files.map((file) => file.path), 'npm', 'artifacts'])
  for (const relative of paths) {
    const source = path.join(packageDir, relative)
    if (!existsSync(source)) continue
    mkdirSync(path.dirname(path.join(workDir, relative)), { recursive: true })
    cpSync(source, path.join(workDir, relative), { recursive: true })
  }
  process.on('exit', () => rmSync(workDir, { recursive: true, force: true }))
}

log(`release: ${manifest.name}@${version}, dist-tag ${distTag}${dryRun ? ' (dry run)' : ''}`)
const napi = (...args) => run(process.execPath, [NAPI, ...args], { cwd: workDir, env })
napi('artifacts')
napi('prepublish', '-t', 'npm', '--no-gh-release', ...(dryRun ? ['--skip-optional-publish'] : []))

const published = []
if (dryRun) {
  const npmDir = path.join(workDir, 'npm')
  for (const platform of readdirSync(npmDir).sort()) published.push(publishDryRun(path.join(npmDir, platform), env))
  published.push(publishDryRun(workDir, env))
} else {
  run('npm', ['publish', '--ignore-scripts'], { cwd: workDir, env })
}

const { optionalDependencies } = readJson(path.join(workDir, 'package.json'))
if (flags.json) {
  console.log(JSON.stringify({ name: manifest.name, version, distTag, optionalDependencies, packages: published }, null, 2))
} else {
  log(`optionalDependencies: ${JSON.stringify(optionalDependencies)}`)
  for (const entry of published) log(`would publish ${entry.name}@${entry.version}: ${entry.files.join(', ')}`)
}
