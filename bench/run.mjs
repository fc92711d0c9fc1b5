#!/usr/bin/env node
// The side-by-side benchmark of SPEC "Performance":
//
//   npm run bench                       (release build + embedded PostgreSQL unless DATABASE_URL)
//   node scripts/with-database.mjs node bench/run.mjs --duration 2
//   DATABASE_URL=postgres://... node bench/run.mjs --scenario 1k --only native,pgbench --ops load
//
// For each scenario (~1 KB and ~20 KB documents) it seeds one schema with the
// same documents for every contender, then runs each row — one operation × one
// contender — in a fresh process: 32 operations in flight (closed loop), pool
// 10, a warm-up, then a fixed window. pgbench runs the same statements with
// -M prepared -c 32 -j 2. Results: bench/results/latest.{json,md,svg}.
// See bench/README.md for the method.

import { fork } from 'node:child_process'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

import { createPostgresProfileStoreArtifacts } from '../index.mjs'
import { envNumber, parseArgs, usage } from './lib/args.mjs'
import { SCENARIOS, scenarioShape } from './lib/docs.mjs'
import { loadUpstream } from './lib/engine.mjs'
import { IMPLEMENTATIONS } from './lib/impls.mjs'
import { postmasterOf } from './lib/cpu.mjs'
import { parseMicros } from './lib/parse-cost.mjs'
import { machineInfo } from './lib/machine.mjs'
import { findPgbench, pgbenchScripts, pgbenchVersion, runPgbench } from './lib/pgbench.mjs'
import { markdown, printScenario, rowName } from './lib/report.mjs'
import { CONTENDERS, OPERATIONS, TARGET_SCENARIO, evaluateTargets, planRows, ratiosFor } from './lib/rows.mjs'
import { adminPool, dropSchema, revisionRows, seedScenario, serverInfo, tableNames, tidy } from './lib/seed.mjs'
import { barChart } from './lib/svg.mjs'

const HERE = path.dirname(fileURLToPath(import.meta.url))
const ROOT = path.resolve(HERE, '..')

const SPEC = {
  duration: { type: 'number', default: envNumber('BENCH_DURATION', 5), help: 'seconds measured per row (env BENCH_DURATION)' },
  rounds: {
    type: 'number',
    default: envNumber('BENCH_ROUNDS', 3),
    help: 'interleaved rounds of the ~1 KB scenario (the SPEC targets); each row reports its median round (env BENCH_ROUNDS)',
  },
  warmup: { type: 'number', default: envNumber('BENCH_WARMUP', 1), help: 'seconds of warm-up per row (env BENCH_WARMUP)' },
  scenario: { type: 'list', default: ['1k', '20k'], help: `scenarios: ${Object.keys(SCENARIOS).join(', ')}` },
  only: { type: 'list', default: CONTENDERS, help: `contenders: ${CONTENDERS.join(', ')}` },
  ops: { type: 'list', default: OPERATIONS, help: `operations: ${OPERATIONS.join(', ')}` },
  concurrency: { type: 'number', default: 32, help: 'operations in flight' },
  pool: { type: 'number', default: 10, help: 'pool size of every client' },
  'pgbench-threads': { type: 'number', default: 2, help: 'pgbench -j' },
  profiles: { type: 'number', default: undefined, help: 'override the number of profiles of every scenario' },
  pgbench: { type: 'boolean', default: true, help: 'run the pgbench rows (--no-pgbench to skip)' },
  keep: { type: 'boolean', default: false, help: 'keep the bench schemas afterwards' },
  out: { type: 'string', default: path.join(HERE, 'results'), help: 'results directory' },
  help: { type: 'boolean', default: false, help: 'this text' },
}

let args
try {
  args = parseArgs(process.argv.slice(2), SPEC)
  if (args.scenario.includes('all')) args.scenario = Object.keys(SCENARIOS)
  for (const s of args.scenario) if (!SCENARIOS[s]) throw new Error(`unknown scenario '${s}'`)
  for (const c of args.only) if (!CONTENDERS.includes(c)) throw new Error(`unknown contender '${c}'`)
  for (const o of args.ops) if (!OPERATIONS.includes(o)) throw new Error(`unknown operation '${o}'`)
  if (!Number.isInteger(args.rounds) || args.rounds < 1) throw new Error('--rounds must be a whole number >= 1')
} catch (error) {
  console.error(`${error.message}\n\nusage: node bench/run.mjs [options]\n${usage(SPEC)}`)
  process.exit(2)
}
if (args.help) {
  console.log(`usage: node bench/run.mjs [options]\n${usage(SPEC)}`)
  process.exit(0)
}

if (!process.env.DATABASE_URL) {
  console.error('DATABASE_URL is not set; run through `node scripts/with-database.mjs node bench/run.mjs` (npm run bench).')
  process.exit(2)
}
const { url, transport } = sameTransport(process.env.DATABASE_URL)

const log = (line) => process.stderr.write(`${line}\n`)
const notes = []
const packageVersion = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version

const upstream = await loadUpstream()
if (!upstream.store) {
  notes.push(`The original 0.2.2 could not be fetched (${upstream.error?.message?.split('\n')[0]}); its rows are skipped.`)
}
const pgbenchFile = args.pgbench ? findPgbench() : null
const pgbench = { file: pgbenchFile, version: pgbenchFile ? await pgbenchVersion(pgbenchFile) : null }
if (args.pgbench && !pgbenchFile) notes.push('pgbench was not found (PATH, /usr/lib/postgresql/*/bin); its rows are skipped.')
if (pgbenchFile && !Number.isInteger(args.duration)) {
  notes.push(`pgbench -T takes whole seconds: its rows ran ${Math.max(1, Math.round(args.duration))} s.`)
}

const machine = machineInfo()
if (machine.addon.build.startsWith('debug')) {
  notes.push('The addon is a DEBUG build: native numbers are not representative (npm run bench builds a release first).')
}
const admin = adminPool(url)
const server = await serverInfo(admin)
// The server's processes, when it runs on this machine (CPU per operation).
const postmasterPid = postmasterOf(server.backend_pid)
if (postmasterPid === null) notes.push('The server is not a process on this machine: server CPU per operation is not measured.')

const schemas = new Set()
let interrupted = false
const cleanup = async () => {
  if (args.keep) return
  for (const schema of schemas) await dropSchema(admin, schema).catch(() => {})
}
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, async () => {
    if (interrupted) process.exit(130)
    interrupted = true
    log(`\n${signal}: dropping the bench schemas...`)
    await cleanup()
    process.exit(130)
  })
}

const config = {
  durationS: args.duration,
  warmupS: args.warmup,
  concurrency: args.concurrency,
  poolSize: args.pool,
  pgbenchClients: args.concurrency,
  pgbenchThreads: args['pgbench-threads'],
  targetRounds: args.rounds,
  transport,
}

log(
  `bench: ${args.scenario.join(', ')} × ${args.ops.join(', ')} × ${args.only.join(', ')}; ` +
    `${config.durationS} s/row + ${config.warmupS} s warm-up, ${config.concurrency} in flight, pool ${config.poolSize}; ` +
    `PostgreSQL ${server.version}; addon ${machine.addon.build}`,
)

const scenarios = []
let failures = 0
try {
  for (const name of args.scenario) {
    const shape = scenarioShape(name, { profiles: args.profiles })
    const schema = `pson5_bench_${name}_${process.pid}`
    schemas.add(schema)
    log(`\n[${name}] seeding ${shape.profiles.toLocaleString('en-US')} profiles (${shape.label}) into schema ${schema}...`)
    const seeded = await seedScenario({ admin, schema, shape, upstream })
    seeded.docs = null
    log(`[${name}] seeded in ${seeded.seconds.toFixed(1)} s (${Object.entries(seeded.steps).map(([k, v]) => `${k} ${v} ms`).join(", ")}), ${seeded.avgDocumentBytes} B per document on average`)
    const jsonParseUs = await parseMicros(admin, schema)
    log(`[${name}] JSON.parse of one stored document: ${jsonParseUs?.toFixed(1)} µs`)
    const tables = tableNames(schema)
    const scripts = pgbenchScripts({
      queries: createPostgresProfileStoreArtifacts({ schema }).queries,
      documentsTable: tables.documents,
      profiles: shape.profiles,
      users: shape.users,
    })

    // Rows run in rounds, every row once per round in the same order; a
    // row reports its median round. On a shared machine the speed drifts
    // over minutes, so interleaving keeps ratios fair where one pass could
    // catch one contender in a slow minute and the next in a fast one.
    const rounds = name === TARGET_SCENARIO ? args.rounds : 1
    const rows = planRows({ contenders: args.only, operations: args.ops }).map((planned) => ({
      scenario: name,
      op: planned.op,
      impl: planned.impl,
      contender: IMPLEMENTATIONS[planned.impl],
      samples: [],
    }))
    for (const row of rows) {
      if (row.impl === 'original' && !upstream.store) row.skipped = 'original 0.2.2 unavailable'
      if (row.impl === 'pgbench' && !pgbenchFile) row.skipped = args.pgbench ? 'pgbench not found' : '--no-pgbench'
    }
    for (let round = 1; round <= rounds; round++) {
      for (const row of rows) {
        if (row.skipped || row.failed) continue
        const sample = await measureRow(row, { name, schema, scripts })
        const label = `[${name}${rounds > 1 ? ` round ${round}/${rounds}` : ''}] ${rowName(row)}`
        if (sample.failed) {
          row.failed = sample.failed
          failures++
          log(`${label}: FAILED ${sample.failed}`)
          continue
        }
        row.samples.push(sample)
        log(
          `${label}: ${Math.round(sample.opsPerSec).toLocaleString('en-US')} ops/s, ` +
            `p50 ${sample.p50?.toFixed(2)} ms, p99 ${sample.p99?.toFixed(2)} ms, RSS ${sample.rssMB?.toFixed(1)} MB` +
            (sample.errors ? `, ${sample.errors} errors (${sample.firstError})` : ''),
        )
      }
    }
    for (const row of rows) {
      if (row.samples.length === 0) continue
      const ranked = [...row.samples].sort((a, b) => a.opsPerSec - b.opsPerSec)
      Object.assign(row, ranked[Math.floor((ranked.length - 1) / 2)])
      row.roundOpsPerSec = row.samples.map((sample) => Math.round(sample.opsPerSec))
      // Errors in any round fail the run, not only in the median one.
      row.errors = row.samples.reduce((sum, sample) => sum + sample.errors, 0)
      delete row.samples
      if (row.errors > 0) failures++
    }

    const ratios = ratiosFor(rows.filter((r) => !r.failed && !r.skipped))
    const scenario = {
      name,
      label: shape.label,
      profiles: shape.profiles,
      users: shape.users,
      targetBytes: shape.targetBytes,
      avgDocumentBytes: seeded.avgDocumentBytes,
      jsonParseUs,
      seedSeconds: seeded.seconds,
      schema: args.keep ? schema : null,
      rows,
      ratios,
      targets: name === TARGET_SCENARIO ? evaluateTargets(ratios) : null,
    }
    scenarios.push(scenario)
    if (!args.keep) {
      await dropSchema(admin, schema)
      schemas.delete(schema)
    }
  }
} catch (error) {
  log(`bench: ${error.stack ?? error}`)
  await cleanup()
  await admin.end()
  process.exit(1)
}
await admin.end()

const report = {
  package: '@pson5/postgres-store',
  packageVersion,
  date: new Date().toISOString(),
  machine,
  server: { version: server.version, fullVersion: server.full_version, synchronousCommit: server.synchronous_commit, fsync: server.fsync, sharedBuffers: server.shared_buffers },
  pgbench: { file: pgbench.file, version: pgbench.version },
  config,
  method: {
    rows: 'each row in a fresh Node process; closed loop of `concurrency` workers; uniform random profile/user per operation',
    pgbenchSave: 'statement text of queries.saveProfile with $1::jsonb -> (select b.document from bench_documents b where b.n = :id::integer)::jsonb, $2::integer -> null::integer, $3::jsonb -> null::jsonb',
    pgbenchLoad: "queries.loadProfile with $1::text -> ('pson_' || :id::text)::text",
    pgbenchFind: "queries.findProfilesByUserId with $1::text -> ('user_' || :uid::text)::text",
  },
  scenarios,
  notes,
}

mkdirSync(args.out, { recursive: true })
writeFileSync(path.join(args.out, 'latest.json'), `${JSON.stringify(report, null, 2)}\n`)
writeFileSync(path.join(args.out, 'latest.svg'), barChart(report))
const md = markdown(report)
writeFileSync(path.join(args.out, 'latest.md'), md)

for (const s of scenarios) console.log(printScenario(s, machine.cpus))
for (const note of notes) console.log(`\nNote: ${note}`)
console.log(`\n--- Markdown (also in ${path.relative(process.cwd(), path.join(args.out, 'latest.md'))}) ---\n`)
console.log(md)
console.log(`Results: ${['latest.json', 'latest.md', 'latest.svg'].map((f) => path.relative(process.cwd(), path.join(args.out, f))).join(', ')}`)
process.exit(failures > 0 ? 1 : 0)

// One measurement of one row: a pgbench run or a fresh Node process. A save
// row must leave one revision row per save it counts.
async function measureRow(row, { name, schema, scripts }) {
  await tidy(admin, schema)
  const side = row.impl === 'original' ? 'original' : 'ours'
  const before = row.op === 'save' ? await revisionRows(admin, schema, side) : 0
  try {
    const result =
      row.impl === 'pgbench'
        ? await runPgbench({
            file: pgbenchFile,
            url,
            script: scripts[row.op],
            workDir: path.join(HERE, '.cache', `pgbench-${process.pid}`),
            clients: config.pgbenchClients,
            threads: config.pgbenchThreads,
            durationS: config.durationS,
            warmupS: config.warmupS,
            postmasterPid,
          })
        : await runWorker({
            scenario: name,
            shapeOverrides: { profiles: args.profiles },
            impl: row.impl,
            op: row.op,
            url,
            schema,
            poolSize: config.poolSize,
            concurrency: config.concurrency,
            warmupMs: config.warmupS * 1000,
            durationMs: config.durationS * 1000,
            useEngine: upstream.engine !== null,
            postmasterPid,
          })
    if (row.op === 'save') {
      result.revisionRowsWritten = (await revisionRows(admin, schema, side)) - before
      if (result.revisionRowsWritten < result.ops) {
        return { failed: `only ${result.revisionRowsWritten} revision rows were written for ${result.ops} saves` }
      }
    }
    return result
  } catch (error) {
    return { failed: error.message.split('\n')[0] }
  }
}

function runWorker(rowConfig) {
  return new Promise((resolve, reject) => {
    const child = fork(path.join(HERE, 'lib', 'row-worker.mjs'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    let settled = false
    const limit = rowConfig.warmupMs + rowConfig.durationMs + 120_000
    const timer = setTimeout(() => {
      if (settled) return
      settled = true
      child.kill('SIGKILL')
      reject(new Error(`the row did not finish within ${Math.round(limit / 1000)} s`))
    }, limit)
    child.on('message', (message) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      if (message.ok) resolve(message.result)
      else reject(new Error(message.error))
    })
    child.on('exit', (code, signal) => {
      clearTimeout(timer)
      if (settled) return
      settled = true
      reject(new Error(`the row process exited (${signal ?? code}) without a result`))
    })
    child.send(rowConfig)
  })
}

// Every contender must connect the same way. Without an sslmode in the URL,
// libpq (pgbench) and this package use TLS when the server offers it, while
// node-postgres and postgres.js do not; the URL then says sslmode=disable for
// all of them. An explicit sslmode is kept (and applies to all).
function sameTransport(databaseUrl) {
  let parsed
  try {
    parsed = new URL(databaseUrl)
  } catch {
    return { url: databaseUrl, transport: 'as DATABASE_URL says' }
  }
  const mode = parsed.searchParams.get('sslmode')
  if (mode) return { url: databaseUrl, transport: `sslmode=${mode} (from DATABASE_URL)` }
  parsed.searchParams.set('sslmode', 'disable')
  return { url: parsed.toString(), transport: 'plain TCP for every contender (sslmode=disable)' }
}
