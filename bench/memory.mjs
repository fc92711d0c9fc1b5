#!/usr/bin/env node
// RSS over a long mixed run through the native repository (SPEC: "RSS flat
// (< 10% growth) over one million operations").
//
//   node scripts/with-database.mjs node bench/memory.mjs [--ops 1000000]
//
// Seeds 10,000 ~1 KB profiles in a schema of its own, then runs `--warmup-ops`
// (50,000) and `--ops` mixed operations (70% loadProfile, 20% saveProfile, 10%
// findProfilesByUserId, uniform random profiles) at 32 in flight on a pool of
// 10, sampling this process's RSS every `--sample-every` completed operations.
// Growth = (max RSS over the last quarter of the samples - the first sample
// after warm-up) / that first sample. Exits 1 when growth >= --threshold (10%)
// or when any operation failed. Results: bench/results/memory.json.

import { mkdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

import { createPostgresProfileStoreRepository } from '../index.mjs'
import { profileId, randomInt, userId } from './lib/datasets.mjs'
import { scenarioShape } from './lib/docs.mjs'
import { loadUpstream } from './lib/engine.mjs'
import { describeError } from './lib/loadgen.mjs'
import { machineInfo } from './lib/machine.mjs'
import { adminPool, dropSchema, seedScenario, serverInfo } from './lib/seed.mjs'

const HERE = path.dirname(fileURLToPath(import.meta.url))
const MB = 1024 * 1024

const HELP = `usage: node scripts/with-database.mjs node --expose-gc bench/memory.mjs [options]   (npm run bench:memory)

  --ops <n>             operations measured after the warm-up (env BENCH_MEMORY_OPS; default 1000000)
  --warmup-ops <n>      operations before the first sample (default 50000)
  --sample-every <n>    operations between RSS samples (default ops/20)
  --mix <l,s,f>         percent load,save,find (default 70,20,10)
  --concurrency <n>     operations in flight (default 32)
  --pool <n>            native pool size (default 10)
  --profiles <n>        seeded profiles, ~1 KB each (default 10000)
  --threshold <pct>     failing RSS growth (default 10)
  --keep                keep the schema afterwards
  --out <dir>           results directory (default bench/results)`

let args
try {
  const { values } = parseArgs({
    options: {
      ops: { type: 'string', default: process.env.BENCH_MEMORY_OPS || '1000000' },
      'warmup-ops': { type: 'string', default: '50000' },
      'sample-every': { type: 'string' },
      mix: { type: 'string', default: '70,20,10' },
      concurrency: { type: 'string', default: '32' },
      pool: { type: 'string', default: '10' },
      profiles: { type: 'string', default: '10000' },
      threshold: { type: 'string', default: '10' },
      keep: { type: 'boolean', default: false },
      out: { type: 'string', default: path.join(HERE, 'results') },
      help: { type: 'boolean', default: false },
    },
  })
  if (values.help) {
    console.log(HELP)
    process.exit(0)
  }
  args = { ...values, mix: values.mix.split(',') }
  for (const name of ['ops', 'warmup-ops', 'sample-every', 'concurrency', 'pool', 'profiles', 'threshold']) {
    if (values[name] === undefined) continue
    args[name] = Number(values[name].replace(/[_,]/g, ''))
    if (!(args[name] >= 0)) throw new Error(`--${name} must be a number`)
  }
} catch (error) {
  console.error(`${error.message}\n\n${HELP}`)
  process.exit(2)
}
const url = process.env.DATABASE_URL
if (!url) {
  console.error('DATABASE_URL is not set; run through `node scripts/with-database.mjs node bench/memory.mjs`.')
  process.exit(2)
}

const ops = Math.round(args.ops)
const warmupOps = Math.round(args['warmup-ops'])
const sampleEvery = Math.max(1, Math.round(args['sample-every'] ?? Math.max(1000, ops / 20)))
const mix = args.mix.map(Number)
if (mix.length !== 3 || mix.some((x) => !(x >= 0)) || mix[0] + mix[1] + mix[2] <= 0) {
  console.error('--mix must be three non-negative percentages: load,save,find')
  process.exit(2)
}
const cut1 = mix[0] / (mix[0] + mix[1] + mix[2])
const cut2 = (mix[0] + mix[1]) / (mix[0] + mix[1] + mix[2])

const log = (line) => process.stderr.write(`${line}\n`)
const shape = scenarioShape('1k', { profiles: args.profiles })
const schema = `pson5_bench_memory_${process.pid}`
const upstream = await loadUpstream()
const admin = adminPool(url)
const server = await serverInfo(admin)
let dropped = false
const cleanup = async () => {
  if (args.keep || dropped) return
  dropped = true
  await dropSchema(admin, schema).catch(() => {})
}
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, async () => {
    log(`\n${signal}: dropping ${schema}...`)
    await cleanup()
    process.exit(130)
  })
}

log(`memory: seeding ${shape.profiles.toLocaleString('en-US')} profiles into ${schema}...`)
// Only our tables are needed: the original's are left out.
const seeded = await seedScenario({ admin, schema, shape, upstream: { engine: upstream.engine, store: null } })
const docs = seeded.docs

const repository = createPostgresProfileStoreRepository({ connectionString: url, max: args.pool, schema })
const total = warmupOps + ops
const counts = { load: 0, save: 0, find: 0 }
let issued = 0
let completed = 0
let errors = 0
let firstError = null
const samples = []
let started = performance.now()
let windowStarted = 0

function sample() {
  // Retained memory, not garbage V8 has not collected yet: a full GC before
  // each reading (the script runs with --expose-gc), so the sawtooth of a busy
  // heap does not read as growth.
  globalThis.gc?.()
  const m = process.memoryUsage()
  const now = performance.now()
  const previous = samples.at(-1)
  const done = completed - warmupOps
  const s = {
    ops: done,
    seconds: Math.round(((now - windowStarted) / 1000) * 10) / 10,
    rssMB: round(m.rss / MB),
    heapUsedMB: round(m.heapUsed / MB),
    externalMB: round(m.external / MB),
    opsPerSec: previous ? Math.round((done - previous.ops) / ((now - previous.at) / 1000)) : null,
    at: now,
  }
  samples.push(s)
  log(
    `${String(s.ops.toLocaleString('en-US')).padStart(11)} ops  RSS ${s.rssMB.toFixed(1).padStart(7)} MB  ` +
      `heap ${s.heapUsedMB.toFixed(1).padStart(6)} MB  external ${s.externalMB.toFixed(1).padStart(6)} MB` +
      (s.opsPerSec ? `  ${s.opsPerSec.toLocaleString('en-US')} ops/s` : ''),
  )
}

function operation() {
  const r = Math.random()
  if (r < cut1) {
    counts.load++
    return repository.loadProfile(profileId(randomInt(1, shape.profiles)))
  }
  if (r < cut2) {
    counts.save++
    const base = docs[randomInt(1, shape.profiles) - 1]
    return repository.saveProfile({ ...base, metadata: { ...base.metadata, updated_at: new Date().toISOString() } })
  }
  counts.find++
  return repository.findProfilesByUserId(userId(randomInt(1, shape.users)))
}

async function worker() {
  while (issued < total) {
    issued++
    try {
      await operation()
    } catch (error) {
      errors++
      firstError ??= describeError(error)
    }
    completed++
    if (completed === warmupOps) {
      windowStarted = performance.now()
      log(
        `warm-up done (${warmupOps.toLocaleString('en-US')} ops in ${((windowStarted - started) / 1000).toFixed(1)} s); sampling every ${sampleEvery.toLocaleString('en-US')} ops`,
      )
      sample()
    } else if (completed > warmupOps && (completed - warmupOps) % sampleEvery === 0) {
      sample()
    }
  }
}

log(
  `memory: ${warmupOps.toLocaleString('en-US')} warm-up + ${ops.toLocaleString('en-US')} operations (${mix.join('/')} load/save/find), ${args.concurrency} in flight, pool ${args.pool}`,
)
started = performance.now()
if (warmupOps === 0) {
  windowStarted = started
  sample()
}
await Promise.all(Array.from({ length: args.concurrency }, worker))
if ((completed - warmupOps) % sampleEvery !== 0) sample()
const seconds = (performance.now() - windowStarted) / 1000
await repository.close()
await cleanup()
await admin.end()

const first = samples[0]
const lastQuarter = samples.slice(Math.floor(samples.length * 0.75))
const maxLastQuarter = Math.max(...lastQuarter.map((s) => s.rssMB))
const growthPercent = ((maxLastQuarter - first.rssMB) / first.rssMB) * 100
const passed = growthPercent < args.threshold && errors === 0

const result = {
  date: new Date().toISOString(),
  machine: machineInfo(),
  server: { version: server.version },
  config: {
    ops,
    warmupOps,
    sampleEvery,
    mix: { load: mix[0], save: mix[1], find: mix[2] },
    concurrency: args.concurrency,
    poolSize: args.pool,
    profiles: shape.profiles,
    avgDocumentBytes: seeded.avgDocumentBytes,
    thresholdPercent: args.threshold,
  },
  counts,
  errors,
  firstError,
  seconds: round(seconds),
  opsPerSec: Math.round(ops / seconds),
  firstSampleMB: first.rssMB,
  maxLastQuarterMB: maxLastQuarter,
  peakMB: Math.max(...samples.map((s) => s.rssMB)),
  growthPercent: round(growthPercent),
  passed,
  samples: samples.map(({ at, ...s }) => s),
}
mkdirSync(args.out, { recursive: true })
writeFileSync(path.join(args.out, 'memory.json'), `${JSON.stringify(result, null, 2)}\n`)

console.log(
  `\nRSS over ${ops.toLocaleString('en-US')} operations after ${warmupOps.toLocaleString('en-US')} warm-up (${result.opsPerSec.toLocaleString('en-US')} ops/s, addon ${result.machine.addon.build}):`,
)
console.log('        ops   RSS MB  heap MB  ext MB    ops/s')
for (const s of result.samples) {
  console.log(
    `${s.ops.toLocaleString('en-US').padStart(11)}  ${s.rssMB.toFixed(1).padStart(7)}  ${s.heapUsedMB.toFixed(1).padStart(7)}  ${s.externalMB.toFixed(1).padStart(6)}  ${(s.opsPerSec ?? '').toLocaleString('en-US').padStart(7)}`,
  )
}
console.log(
  `\nGrowth: ${result.growthPercent.toFixed(2)}% (first post-warm-up sample ${first.rssMB.toFixed(1)} MB -> max of the last quarter ${maxLastQuarter.toFixed(1)} MB; peak ${result.peakMB.toFixed(1)} MB); threshold ${args.threshold}%`,
)
if (errors) console.log(`Errors: ${errors} (first: ${firstError})`)
console.log(
  `${passed ? 'PASS' : 'FAIL'}: RSS ${growthPercent < args.threshold ? 'flat' : 'grew'}${errors ? `, ${errors} operations failed` : ''}. Results: ${path.relative(process.cwd(), path.join(args.out, 'memory.json'))}`,
)
process.exit(passed ? 0 : 1)

function round(x) {
  return Math.round(x * 100) / 100
}
