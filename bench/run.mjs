#!/usr/bin/env node
// The side-by-side benchmark of SPEC "Performance" and issue 16; bench/README.md
// explains the method. Every row is one operation × one contender on the same
// database and data, in a fresh process; ratios are taken within one run.

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'

import { createPostgresProfileStoreArtifacts } from '../index.mjs'
import { buildRevision } from './lib/ab.mjs'
import { CONTENDERS } from './lib/contenders.mjs'
import { postmasterOf } from './lib/cpu.mjs'
import { SCALES } from './lib/datasets.mjs'
import { SCENARIOS, scenarioShape } from './lib/docs.mjs'
import { loadUpstream } from './lib/engine.mjs'
import { PACKAGE_ENTRY, createHarness, medianOf } from './lib/harness.mjs'
import { machineInfo } from './lib/machine.mjs'
import { FLAT_OPERATIONS, OPERATIONS, SCALE_OPERATIONS } from './lib/operations.mjs'
import { parseMicros } from './lib/parse-cost.mjs'
import { findPgbench, pgbenchScripts, pgbenchVersion } from './lib/pgbench.mjs'
import { contenderLabel, evaluateTargets, markdown, ratiosFor } from './lib/report.mjs'
import { runReplicaRows } from './lib/replicas.mjs'
import { runScale } from './lib/scale.mjs'
import { adminPool, dropSchema, seedScenario, serverInfo, tableNames } from './lib/seed.mjs'
import { barChart } from './lib/svg.mjs'

const HERE = path.dirname(fileURLToPath(import.meta.url))
const TARGET_SCENARIO = '1k'

const HELP = `usage: npm run bench -- [options]     (or: node scripts/with-database.mjs node bench/run.mjs [options])

  --duration <s>          seconds measured per row (env BENCH_DURATION; default 5)
  --warmup <s>            seconds of warm-up per row (env BENCH_WARMUP; default 1)
  --rounds <n>            interleaved rounds of the ~1 KB closed-loop rows (env BENCH_ROUNDS; default 3, --scale: 1)
  --scenario <list>       ${Object.keys(SCENARIOS).join(',')} (default all)
  --only <list>           contenders: ${Object.keys(CONTENDERS)
    .filter((c) => c !== 'ab' && c !== 'noop')
    .join(',')} (default all; --scale: native)
  --ops <list>            operations: ${FLAT_OPERATIONS.join(',')} (--scale: ${SCALE_OPERATIONS.join(',')})
  --open <percents>       open-loop rows at these % of raw pg's closed-loop rate (default 25,50,75; --open none skips)
  --ab <git-rev>          add "this package, native" built from <git-rev> (release, cached in bench/.cache/ab/) as contender B
  --scale                 the scale bench: the same rows on ${Object.values(SCALES)
    .map((s) => s.label)
    .join(' and ')} (kept between runs)
  --scales <list>         scale datasets: ${Object.keys(SCALES).join(',')} (default both)
  --reseed                seed the scale datasets again even when their fingerprint matches
  --concurrency <n>       operations in flight, closed loop (default 32; pgbench -c)
  --pool <n>              pool size of every client (default 10)
  --pgbench-threads <n>   pgbench -j (default 2)
  --profiles <n>          override the number of profiles of every scenario
  --no-pgbench            skip the pgbench rows
  --no-replicas           skip the read-replica rows (a primary and two standbys started for them)
  --replicas-only         only the read-replica rows (results/replicas.md)
  --keep                  keep the bench schemas of the default scenarios
  --out <dir>             results directory (default bench/results)
  --help                  this text`

const OPTIONS = {
  duration: { type: 'string', default: process.env.BENCH_DURATION || '5' },
  warmup: { type: 'string', default: process.env.BENCH_WARMUP || '1' },
  rounds: { type: 'string', default: process.env.BENCH_ROUNDS },
  scenario: { type: 'string', default: Object.keys(SCENARIOS).join(',') },
  only: { type: 'string' },
  ops: { type: 'string' },
  open: { type: 'string', default: '25,50,75' },
  ab: { type: 'string' },
  scale: { type: 'boolean', default: false },
  scales: { type: 'string', default: Object.keys(SCALES).join(',') },
  reseed: { type: 'boolean', default: false },
  concurrency: { type: 'string', default: '32' },
  pool: { type: 'string', default: '10' },
  'pgbench-threads': { type: 'string', default: '2' },
  profiles: { type: 'string' },
  pgbench: { type: 'boolean', default: true },
  replicas: { type: 'boolean', default: true },
  'replicas-only': { type: 'boolean', default: false },
  keep: { type: 'boolean', default: false },
  out: { type: 'string', default: path.join(HERE, 'results') },
  help: { type: 'boolean', default: false },
}

let args
try {
  args = options(parseArgs({ options: OPTIONS, allowNegative: true, strict: true }).values)
} catch (error) {
  console.error(`${error.message}\n\n${HELP}`)
  process.exit(2)
}
if (args.help) {
  console.log(HELP)
  process.exit(0)
}
if (!process.env.DATABASE_URL) {
  console.error(
    'DATABASE_URL is not set; run through `node scripts/with-database.mjs node bench/run.mjs` (npm run bench).',
  )
  process.exit(2)
}

const log = (line) => process.stderr.write(`${line}\n`)
const notes = []
const { url, transport } = sameTransport(process.env.DATABASE_URL)
const upstream = await loadUpstream()
if (!upstream.store)
  notes.push(
    `The original 0.2.2 could not be fetched (${upstream.error?.message?.split('\n')[0]}); its rows are skipped.`,
  )
const pgbenchFile = args.pgbench ? findPgbench() : null
if (args.pgbench && !pgbenchFile)
  notes.push('pgbench was not found (PATH, /usr/lib/postgresql/*/bin); its rows are skipped.')
const machine = machineInfo()
if (machine.loadAverage[0] > machine.cpus) {
  notes.push(
    `The machine was busy when the run started (load average ${machine.loadAverage[0]} on ${machine.cpus} cores): figures are noisy.`,
  )
}
if (machine.addon.build.startsWith('debug'))
  notes.push('The addon is a DEBUG build: native numbers are not representative.')
const ab = args.ab ? { rev: args.ab, ...buildRevision(args.ab, log) } : null
const admin = adminPool(url)
const server = await serverInfo(admin)
// The server's processes, when it runs on this machine (CPU per operation).
const postmasterPid = postmasterOf(server.backend_pid)
if (postmasterPid === null)
  notes.push('The server is not a process on this machine: server CPU per operation is not measured.')

const settings = {
  url,
  postmasterPid,
  durationS: args.duration,
  warmupS: args.warmup,
  concurrency: args.concurrency,
  poolSize: args.pool,
  pgbenchFile,
  pgbenchThreads: args['pgbench-threads'],
  useEngine: upstream.engine !== null,
}
const measure = createHarness(admin, settings)
const schemas = new Set()
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, async () => {
    log(`\n${signal}: dropping the bench schemas...`)
    for (const schema of args.keep ? [] : schemas) await dropSchema(admin, schema).catch(() => {})
    process.exit(130)
  })
}

const report = {
  package: '@pson5/postgres-store',
  packageVersion: JSON.parse(readFileSync(path.join(HERE, '..', 'package.json'), 'utf8')).version,
  date: new Date().toISOString(),
  machine,
  server: {
    version: server.version,
    sharedBuffers: server.shared_buffers,
    synchronousCommit: server.synchronous_commit,
  },
  pgbench: { file: pgbenchFile, version: pgbenchFile ? await pgbenchVersion(pgbenchFile) : null },
  config: { ...settings, url: undefined, transport, rounds: args.rounds, openPercents: args.open },
  ab: ab && { rev: ab.rev, sha: ab.sha, short: ab.short },
  notes,
}
log(
  `bench: PostgreSQL ${server.version}; addon ${machine.addon.build}; ${args.duration} s/row + ${args.warmup} s warm-up`,
)

let failures = 0
try {
  if (args.scale) {
    Object.assign(
      report,
      await runScale({ admin, args, measure, upstream, url, log, label: (c) => contenderLabel(report, c) }),
    )
    failures = report.failures
  } else if (args['replicas-only']) {
    report.replicas = await runReplicaRows({ args, log })
  } else {
    report.scenarios = []
    for (const name of args.scenario) report.scenarios.push(await runScenario(name))
    if (args.replicas) report.replicas = await runReplicaRows({ args, log })
  }
} catch (error) {
  log(`bench: ${error.stack ?? error}`)
  failures++
} finally {
  for (const schema of args.keep ? [] : schemas) await dropSchema(admin, schema).catch(() => {})
  await admin.end()
}

// Only the Markdown and the SVG are committed; the JSON (everything) is git-ignored.
const base = args.scale ? 'scale' : args['replicas-only'] ? 'replicas' : ab ? 'ab' : 'latest'
mkdirSync(args.out, { recursive: true })
writeFileSync(path.join(args.out, `${base}.json`), `${JSON.stringify(report, null, 2)}\n`)
let md = args.scale
  ? report.markdown
  : args['replicas-only']
    ? notes.map((note) => `> ${note}\n`).join('') + (notes.length ? '\n' : '')
    : markdown(report)
if (report.replicas) md += `${md ? '\n' : ''}${report.replicas.markdown}`
writeFileSync(path.join(args.out, `${base}.md`), md)
if (!args.scale && !args['replicas-only']) writeFileSync(path.join(args.out, `${base}.svg`), barChart(report))
console.log(md)
log(`Results: ${path.relative(process.cwd(), path.join(args.out, base))}.{md,json${args.scale || args['replicas-only'] ? '' : ',svg'}}`)
process.exit(failures > 0 ? 1 : 0)

// One scenario of the default run: seed, closed-loop rows in rounds, then
// open-loop rows at fractions of raw pg's closed-loop rate.
async function runScenario(name) {
  const shape = scenarioShape(name, { profiles: args.profiles })
  const schema = `pson5_bench_${name}_${process.pid}`
  schemas.add(schema)
  log(`\n[${name}] seeding ${shape.profiles.toLocaleString('en-US')} profiles (${shape.label}) into ${schema}...`)
  const seeded = await seedScenario({ admin, schema, shape, upstream })
  const jsonParseUs = await parseMicros(admin, schema)
  // B runs on tables of its own, made by its own schemaSql and seeded alike.
  const abSchema = `${schema}_b`
  if (ab) {
    schemas.add(abSchema)
    const { createPostgresProfileStoreArtifacts: artifactsOf } = await import(pathToFileURL(ab.entry).href)
    const { schemaSql } = artifactsOf({ schema: abSchema })
    await seedScenario({ admin, schema: abSchema, shape, upstream: { ...upstream, store: null }, schemaSql })
  }
  const scripts = pgbenchScripts({
    queries: createPostgresProfileStoreArtifacts({ schema }).queries,
    documentsTable: tableNames(schema).documents,
    profiles: shape.profiles,
    users: shape.users,
  })
  const run = (row, extra) =>
    measure({
      contender: row.contender,
      op: row.op,
      shape,
      schema: row.contender === 'ab' ? abSchema : schema,
      packageEntry: row.contender === 'ab' ? ab.entry : PACKAGE_ENTRY,
      script: scripts[row.op],
      ...extra,
    })

  const plan = args.ops.flatMap((op) => args.only.map((contender) => ({ op, contender, samples: [] })))
  for (const row of plan) row.skipped = skipReason(row)
  const rounds = name === TARGET_SCENARIO ? args.rounds : 1
  for (let round = 1; round <= rounds; round++) {
    for (const row of plan.filter((r) => !r.skipped && !r.failed)) {
      const sample = await run(row, { mode: 'closed' })
      logSample(`[${name}${rounds > 1 ? ` round ${round}/${rounds}` : ''}]`, row, sample)
      if (sample.failed) row.failed = sample.failed
      else if (sample.skipped) row.skipped = sample.skipped
      else row.samples.push(sample)
    }
  }
  const closed = plan.map(({ samples, ...row }) => (samples.length ? { ...row, ...medianOf(samples) } : row))

  const open = []
  if (name === TARGET_SCENARIO) {
    for (const op of args.ops) {
      const pg = closed.find((r) => r.op === op && r.contender === 'pg' && r.opsPerSec > 0)
      if (!pg && args.open.length) notes.push(`No raw pg closed-loop rate for ${op}: its open-loop rows are skipped.`)
      for (const percent of pg ? args.open : []) {
        // The generator's floor once per rate, with the first operation.
        const withFloor = op === args.ops[0] && args.only.includes('native') ? ['noop'] : []
        for (const contender of [...withFloor, ...args.only]) {
          const row = { op, contender, percent, offeredRate: (pg.opsPerSec * percent) / 100 }
          row.skipped = skipReason(row)
          const sample = row.skipped ? {} : await run(row, { mode: 'open', rate: row.offeredRate })
          if (!row.skipped) logSample(`[${name} open ${percent}%]`, row, sample)
          open.push({ ...row, ...sample })
        }
      }
    }
  }

  const ratios = ratiosFor(closed)
  failures +=
    closed.filter((r) => r.failed || r.errors > 0).length + open.filter((r) => r.failed || r.errors > 0).length
  if (!args.keep) for (const s of [schema, abSchema]) if (schemas.delete(s)) await dropSchema(admin, s)
  return {
    name,
    label: shape.label,
    profiles: shape.profiles,
    users: shape.users,
    avgDocumentBytes: seeded.avgDocumentBytes,
    jsonParseUs,
    closed,
    open,
    ratios,
    targets: name === TARGET_SCENARIO ? evaluateTargets(ratios) : null,
  }
}

function skipReason({ contender }) {
  if (contender === 'original' && !upstream.store) return 'original 0.2.2 unavailable'
  if (contender === 'pgbench' && !pgbenchFile) return args.pgbench ? 'pgbench not found' : '--no-pgbench'
  return undefined
}

function logSample(prefix, row, s) {
  const what = `${prefix} ${OPERATIONS[row.op].label} · ${contenderLabel(report, row.contender)}`
  if (s.failed || s.skipped) return log(`${what}: ${s.failed ? `FAILED ${s.failed}` : `skipped (${s.skipped})`}`)
  const rate = row.offeredRate ? ` (offered ${Math.round(row.offeredRate).toLocaleString('en-US')})` : ''
  log(
    `${what}: ${Math.round(s.opsPerSec).toLocaleString('en-US')} ops/s${rate}, p50 ${s.p50?.toFixed(2)} ms, ` +
      `p99 ${s.p99?.toFixed(2)} ms, p99.9 ${s.p999?.toFixed(2)} ms` +
      (s.errors ? `, ${s.errors} errors (${s.firstError})` : ''),
  )
}

// Numbers and lists from the parsed options; defaults that depend on the mode.
function options(v) {
  const positive = (name) => {
    const n = Number(String(v[name]).replace(/[_,]/g, ''))
    if (!(n > 0)) throw new Error(`--${name} must be a positive number`)
    return n
  }
  const list = (value) =>
    value
      ? value
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean)
      : []
  const out = { ...v }
  for (const name of ['duration', 'warmup', 'concurrency', 'pool', 'pgbench-threads']) out[name] = positive(name)
  out.profiles = v.profiles === undefined ? undefined : positive('profiles')
  out.rounds = v.rounds === undefined ? (v.scale ? 1 : 3) : positive('rounds')
  out.scenario = list(v.scenario)
  out.scales = list(v.scales)
  const all = Object.keys(CONTENDERS).filter((c) => c !== 'ab' && c !== 'noop')
  out.only = list(v.only ?? (v.scale ? 'native' : all.join(',')))
  if (v.ab && !out.only.includes('ab')) out.only.splice(out.only.indexOf('native') + 1, 0, 'ab')
  out.ops = list(v.ops ?? (v.scale ? SCALE_OPERATIONS : FLAT_OPERATIONS).join(','))
  out.open = v.open === 'none' ? [] : list(v.open).map(Number)
  const known = (what, values, allowed) => {
    for (const x of values)
      if (!allowed.includes(x)) throw new Error(`unknown ${what} '${x}' (known: ${allowed.join(', ')})`)
  }
  known('scenario', out.scenario, Object.keys(SCENARIOS))
  known('scale', out.scales, Object.keys(SCALES))
  known('contender', out.only, Object.keys(CONTENDERS))
  known('operation', out.ops, v.scale ? SCALE_OPERATIONS : FLAT_OPERATIONS)
  if (out.only.includes('ab') && !v.ab) throw new Error('the contender ab needs --ab <git-rev>')
  if (out.open.some((p) => !(p > 0))) throw new Error('--open takes percentages, e.g. 25,50,75, or none')
  return out
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
