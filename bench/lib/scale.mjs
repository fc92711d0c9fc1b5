// `--scale` (issue 16): the same rows on 10,000 and on 1,000,000 profiles
// (5,000,000 audit rows), interleaved per operation so the machine's drift
// hits both alike; each op's rate and p99 at both sizes with the ratio, the
// server's buffer cache hit ratio for each row, and bytes on disk per audit
// revision.

import { SCALES } from './datasets.mjs'
import { medianOf } from './harness.mjs'
import { OPERATIONS } from './operations.mjs'
import { table } from './report.mjs'
import { sleep } from './loadgen.mjs'
import { ensureScaleData, restoreDeletable, sizes } from './scale-seed.mjs'
import { STORAGE_CASES, bytesPerRevision } from './storage.mjs'

const int = (x) => (x == null || Number.isNaN(x) ? '-' : Math.round(x).toLocaleString('en-US'))
const fixed = (x, digits = 2) => (x == null || !Number.isFinite(x) ? '-' : x.toFixed(digits))
const percent = (c) => (c && c.hit + c.read > 0 ? `${((100 * c.hit) / (c.hit + c.read)).toFixed(1)}%` : '-')

/** SPEC / issue 16 targets at 1M profiles against 10k. */
export const SCALE_TARGETS = { minRateRatio: 0.67, maxP99Ratio: 1.5 }

export async function runScale({ admin, args, measure, upstream, url, log, label }) {
  const started = performance.now()
  const datasets = []
  for (const name of args.scales) {
    const shape = SCALES[name]
    datasets.push({
      shape,
      ...(await ensureScaleData({ admin, shape, upstream, reseed: args.reseed, log })),
      total: zero(),
    })
  }
  for (const d of datasets) d.sizes = await sizes(admin, d.schema)

  let failures = 0
  const rows = []
  for (const op of args.ops) {
    for (const contender of args.only) {
      const row = { op, contender, by: {} }
      rows.push(row)
      const samples = new Map(datasets.map((d) => [d, []]))
      // Rounds alternate the sizes (10k, 1m, 10k, 1m, ...) so the machine's drift hits both alike.
      for (let round = 1; round <= args.rounds; round++) {
        for (const d of datasets) {
          if (row.by[d.shape.name]) continue
          const sample = await measureAt(d, op, contender)
          const what = `[scale ${d.shape.name}${args.rounds > 1 ? ` round ${round}` : ''}] ${OPERATIONS[op].label} · ${label(contender)}`
          if (sample.failed || sample.skipped) {
            log(`${what}: ${sample.failed ? `FAILED ${sample.failed}` : `skipped (${sample.skipped})`}`)
            row.by[d.shape.name] = sample
            if (sample.failed) failures++
            continue
          }
          samples.get(d).push(sample)
          log(
            `${what}: ${int(sample.opsPerSec)} ops/s, p99 ${fixed(sample.p99)} ms, cache hit ${percent(sample.cache)}` +
              (sample.errors ? `, ${sample.errors} errors (${sample.firstError})` : ''),
          )
          if (sample.errors) failures++
        }
      }
      for (const [d, list] of samples) if (list.length) row.by[d.shape.name] = medianOf(list)
    }
  }

  // One row at one size, with the buffer cache hits and reads of its tables.
  async function measureAt(d, op, contender) {
    if (contender === 'pgbench') return { skipped: 'no pgbench scripts for the scale datasets' }
    // Deleted profiles are put back after the row (and before, should a run have stopped midway).
    if (op === 'delete') await restoreDeletable(admin, d.shape)
    const before = await cacheCounters(admin, d.schema)
    const sample = await measure({ contender, op, schema: d.schema, shape: d.shape })
    if (op === 'delete') await restoreDeletable(admin, d.shape)
    // Backends publish their I/O counters when they exit, as the row's are doing.
    await sleep(1_000)
    const cache = diff(await cacheCounters(admin, d.schema), before)
    add(d.total, cache)
    return { ...sample, cache }
  }

  const storage = []
  for (const c of STORAGE_CASES) {
    log(`[storage] ${c.profiles} profiles × ${c.revisions} saves of ${c.scenario} documents...`)
    storage.push(await bytesPerRevision({ admin, url, createEmptyProfile: upstream.engine?.createEmptyProfile, ...c }))
  }
  const minutes = (performance.now() - started) / 60_000
  const scale = {
    datasets: datasets.map(({ shape, ...d }) => ({ name: shape.name, shape, ...d })),
    rows,
    storage,
    minutes,
  }
  return { scale, failures, markdown: scaleMarkdown(scale, label) }
}

function scaleMarkdown({ datasets, rows, storage, minutes }, label) {
  const [small, large] = datasets.map((d) => d.name)
  const out = [`### Scale (${new Date().toISOString().slice(0, 10)}, ${minutes.toFixed(0)} min)`, '']
  for (const d of datasets) {
    out.push(
      `- \`${d.name}\`: ${int(d.shape.profiles)} profiles, ${int(d.sizes.auditRows)} audit rows, ` +
        `${d.shape.largeUsers} users with 1,000 profiles; profiles ${gb(d.sizes.profiles)}, audit ${gb(d.sizes.audit)}, ` +
        `index ${gb(d.sizes.index)} on disk now; ${d.reused ? `kept from an earlier seed (${d.seconds} s)` : `seeded in ${d.seconds} s`}; ` +
        `buffer cache hit ratio over the run ${percent(d.total)}.`,
    )
  }
  out.push('')
  const head = [
    'operation',
    'contender',
    ...datasets.flatMap((d) => [`${d.name} ops/s`]),
    ...(large ? [`ops/s ${large} ÷ ${small}`] : []),
    ...datasets.map((d) => `${d.name} p99 ms`),
    ...(large ? [`p99 ${large} ÷ ${small}`] : []),
    ...datasets.map((d) => `${d.name} cache hit`),
  ]
  const body = rows.map((row) => {
    const by = datasets.map((d) => row.by[d.name] ?? {})
    const rate = by.map((b) => (b.failed ? 'failed' : b.skipped ? 'n/a' : int(b.opsPerSec)))
    const p99 = by.map((b) => fixed(b.p99))
    const ratios = large ? [flag(by[1].opsPerSec / by[0].opsPerSec, (x) => x >= SCALE_TARGETS.minRateRatio)] : []
    const p99Ratio = large ? [flag(by[1].p99 / by[0].p99, (x) => x <= SCALE_TARGETS.maxP99Ratio)] : []
    return [
      OPERATIONS[row.op].label,
      label(row.contender),
      ...rate,
      ...ratios,
      ...p99,
      ...p99Ratio,
      ...by.map((b) => percent(b.cache)),
    ]
  })
  out.push(table([head, ...body], 2))
  if (large) {
    out.push(
      '',
      `Targets: rate at ${large} >= ${SCALE_TARGETS.minRateRatio}x its rate at ${small}, p99 <= ` +
        `${SCALE_TARGETS.maxP99Ratio}x (❌ marks a miss). Cache hit: shared-buffer hits ÷ block requests of the row's tables ` +
        `(pg_statio_user_tables); a miss may still be served by the OS page cache.`,
    )
  }
  out.push('', 'Bytes on disk per audit revision (written by saveProfile; heap + TOAST + indexes, after VACUUM):', '')
  const sHead = [
    'documents',
    'revisions',
    'jsonb::text bytes',
    'stored document bytes',
    'compression',
    'heap',
    'TOAST',
    'indexes',
    'total per revision',
  ]
  const sBody = storage.map((s) => [
    s.scenario === '1k' ? '~1 KB' : '~20 KB',
    int(s.revisions),
    int(s.jsonBytes),
    int(s.storedDocumentBytes),
    s.compression,
    ...['heap', 'toast', 'indexes', 'total'].map((k) => int(s.perRevision[k])),
  ])
  for (const d of datasets) {
    // As seeded: later delete rows leave reusable free space behind.
    const z = d.seededSizes ?? d.sizes
    const perRow = (bytes) => int(bytes / z.auditRows)
    const name = `scale ${d.name}, ${d.seededSizes ? 'as seeded' : 'now'}`
    sBody.push([
      name,
      int(z.auditRows),
      '',
      '',
      '',
      perRow(z.auditHeap),
      perRow(z.auditToast),
      perRow(z.auditIndexes),
      perRow(z.audit),
    ])
  }
  out.push(table([sHead, ...sBody]))
  return `${out.join('\n')}\n`
}

const flag = (x, ok) => (Number.isFinite(x) ? `${x.toFixed(2)}x${ok(x) ? '' : ' ❌'}` : 'n/a')
const gb = (bytes) => `${(bytes / 1024 ** 3).toFixed(2)} GB`
const zero = () => ({ hit: 0, read: 0 })
const diff = (a, b) => ({ hit: a.hit - b.hit, read: a.read - b.read })
const add = (total, c) => {
  total.hit += c.hit
  total.read += c.read
}

/** Shared-buffer hits and reads of every table, TOAST table and index of a schema, so far. */
async function cacheCounters(admin, schema) {
  const { rows } = await admin.query(
    `select coalesce(sum(heap_blks_hit + coalesce(idx_blks_hit, 0) + coalesce(toast_blks_hit, 0) + coalesce(tidx_blks_hit, 0)), 0)::float8 as hit,
            coalesce(sum(heap_blks_read + coalesce(idx_blks_read, 0) + coalesce(toast_blks_read, 0) + coalesce(tidx_blks_read, 0)), 0)::float8 as read
     from pg_statio_user_tables where schemaname = $1`,
    [schema],
  )
  return rows[0]
}
