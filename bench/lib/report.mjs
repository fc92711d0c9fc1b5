// The Markdown report (printed, and written to bench/results/*.md): tables
// by markdown-table; what goes in them, and the SPEC targets, decided here.

import { markdownTable } from 'markdown-table'

import { CONTENDERS } from './contenders.mjs'
import { OPERATIONS } from './operations.mjs'

const int = (x) => (x == null || Number.isNaN(x) ? '-' : Math.round(x).toLocaleString('en-US'))
const ms = (x, digits = 2) => (x == null || Number.isNaN(x) ? '-' : x.toFixed(digits))
const times = (x) => (x == null || !Number.isFinite(x) ? 'n/a' : `${x.toFixed(2)}x`)
/** A Markdown table whose first `text` columns are left-aligned, the numbers right-aligned. */
export const table = (rows, text = 1) => markdownTable(rows, { align: rows[0].map((_, i) => (i < text ? 'l' : 'r')) })
const mark = (status) => ({ met: '✅', missed: '❌' })[status] ?? '➖'

/** What the ratios compare native with, per operation (closed loop). */
export const RATIO_BASES = ['ab', 'original', 'pgbench', 'pg', 'postgresjs', 'executor']

/** SPEC "Performance" targets on the ~1 KB scenario (closed loop). */
export const TARGETS = [
  { op: 'load', base: 'pgbench', min: 1.5, text: 'native loadProfile >= 1.5x pgbench -M prepared -c32 (same select)' },
  { op: 'load', base: 'original', min: 3, text: 'native loadProfile >= 3x original 0.2.2' },
  { op: 'save', base: 'pgbench', min: 1.0, text: 'native saveProfile >= 1.0x pgbench (same single save statement)' },
  { op: 'save', base: 'original', min: 4, text: "native saveProfile >= 4x original 0.2.2 adapter's save" },
]

export const contenderLabel = (report, contender) =>
  contender === 'ab' && report.ab ? `this package, native pool @ ${report.ab.short}` : CONTENDERS[contender].label

const measured = (row) => row && !row.failed && !row.skipped

export function ratiosFor(rows) {
  const rate = (op, contender) => rows.find((r) => r.op === op && r.contender === contender && measured(r))?.opsPerSec
  const ratios = {}
  for (const op of new Set(rows.map((r) => r.op))) {
    ratios[op] = Object.fromEntries(RATIO_BASES.map((base) => [base, rate(op, 'native') / rate(op, base)]))
  }
  return ratios
}

export function evaluateTargets(ratios) {
  return TARGETS.map((t) => {
    const ratio = ratios[t.op]?.[t.base]
    return { ...t, ratio, status: !Number.isFinite(ratio) ? 'n/a' : ratio >= t.min ? 'met' : 'missed' }
  })
}

/** SPEC: at every offered rate, native p99 and p99.9 <= raw pg's. */
export function openTargets(openRows) {
  const out = []
  for (const native of openRows.filter((r) => r.contender === 'native' && measured(r))) {
    const pg = openRows.find((r) => r.contender === 'pg' && r.op === native.op && r.percent === native.percent)
    if (!measured(pg)) continue
    const met = native.p99 <= pg.p99 && native.p999 <= pg.p999
    out.push({
      status: met ? 'met' : 'missed',
      text:
        `${OPERATIONS[native.op].label} at ${native.percent}% (${int(native.offeredRate)}/s): native p99 ${ms(native.p99)} / ` +
        `p99.9 ${ms(native.p999)} ms vs raw pg ${ms(pg.p99)} / ${ms(pg.p999)} ms`,
    })
  }
  return out
}

const cpu = (row) => [row.clientUs, row.serverUs, row.idleUs].map((x) => ms(x, 1)).join(' · ')
const range = (row) =>
  row.roundOpsPerSec?.length > 1
    ? `${int(Math.min(...row.roundOpsPerSec))}–${int(Math.max(...row.roundOpsPerSec))}`
    : ''
const unmeasured = (row) => (row.skipped ? `skipped: ${row.skipped}` : `failed: ${row.failed}`)

function closedTable(report, rows) {
  const head = [
    'operation',
    'contender',
    'ops/s',
    'rounds',
    'p50 ms',
    'p99 ms',
    'RSS MB',
    'CPU µs/op: client · server · idle',
  ]
  const body = rows.map((row) => {
    const name = [OPERATIONS[row.op].label, contenderLabel(report, row.contender)]
    if (!measured(row)) return [...name, unmeasured(row), '', '', '', '', '']
    return [...name, int(row.opsPerSec), range(row), ms(row.p50), ms(row.p99), ms(row.rssMB, 0), cpu(row)]
  })
  return table([head, ...body], 2)
}

function openTable(report, rows) {
  const head = ['operation', 'offered/s', 'contender', 'achieved/s', 'p50 ms', 'p99 ms', 'p99.9 ms', 'max ms']
  const body = rows.map((row) => {
    const name = [
      OPERATIONS[row.op].label,
      `${int(row.offeredRate)} (${row.percent}%)`,
      contenderLabel(report, row.contender),
    ]
    if (!measured(row)) return [...name, unmeasured(row), '', '', '', '']
    const achieved = row.opsPerSec < 0.95 * row.offeredRate ? `**${int(row.opsPerSec)}** (behind)` : int(row.opsPerSec)
    return [...name, achieved, ms(row.p50), ms(row.p99), ms(row.p999), ms(row.max, 1)]
  })
  return table([head, ...body], 3)
}

// `--ab`: this checkout (A) against the other build (B), row by row.
function abTable(report, s) {
  const head = ['row', 'A ops/s', 'B ops/s', 'A ÷ B', 'A p99 ms', 'B p99 ms', 'p99 A ÷ B', 'A p99.9 ms', 'B p99.9 ms']
  const body = []
  for (const [kind, rows] of [
    ['closed', s.closed],
    ['open', s.open],
  ]) {
    for (const a of rows.filter((r) => r.contender === 'native' && measured(r))) {
      const b = rows.find((r) => r.contender === 'ab' && r.op === a.op && r.percent === a.percent)
      if (!measured(b)) continue
      const name = `${OPERATIONS[a.op].label}, ${kind === 'closed' ? 'closed loop' : `${int(a.offeredRate)}/s offered`}`
      body.push([
        name,
        int(a.opsPerSec),
        int(b.opsPerSec),
        times(a.opsPerSec / b.opsPerSec),
        ms(a.p99),
        ms(b.p99),
        times(a.p99 / b.p99),
        ms(a.p999),
        ms(b.p999),
      ])
    }
  }
  return body.length ? table([head, ...body]) : null
}

// On one machine the client and the server share the cores, so loads/s is
// about cores ÷ (client + server + idle µs per load): this line shows what a
// ratio to pgbench asks of each side.
function loadBudget(s, cores) {
  const find = (contender) => s.closed.find((row) => row.op === 'load' && row.contender === contender && measured(row))
  const [native, pgbench] = [find('native'), find('pgbench')]
  if (!native || !pgbench || native.clientUs == null || native.serverUs == null) return null
  const side = (row) => `${ms(row.clientUs, 1)} client + ${ms(row.serverUs, 1)} server + ${ms(row.idleUs, 1)} idle`
  const target = 1.5 * pgbench.opsPerSec
  return (
    `CPU per load (µs): this package ${side(native)} (JSON.parse of the document: ${ms(s.jsonParseUs, 1)}); ` +
    `pgbench ${side(pgbench)}. 1.5x pgbench is ${int(target)} loads/s: ${ms((cores * 1e6) / target, 1)} µs per load ` +
    `on ${cores} cores, for client, server and idle together.`
  )
}

export function markdown(report) {
  const m = report.machine
  const c = report.config
  const out = [
    `### Benchmark (${report.date.slice(0, 10)})`,
    '',
    `${m.cpus} × ${m.cpuModel}, ${m.os}, Node ${m.node}, PostgreSQL ${report.server.version}` +
      `${report.pgbench.version ? `, ${report.pgbench.version}` : ''}. Closed loop: ${c.concurrency} operations in flight; ` +
      `open loop: Poisson arrivals at the offered rate, latency from each call's intended send time. Pool ${c.poolSize}, ` +
      `${c.transport}, ${c.durationS} s per row after ${c.warmupS} s warm-up, uniform random profiles. Addon: ${m.addon.build}.` +
      (report.ab ? ` A/B: A = this checkout, B = ${report.ab.rev} (${report.ab.short}), built in release mode.` : ''),
  ]
  for (const s of report.scenarios) {
    out.push(
      '',
      `#### ${s.label}: ${int(s.profiles)} profiles of ${int(s.avgDocumentBytes)} B avg, ${int(s.users)} users`,
      '',
    )
    const rounds = Math.max(1, ...s.closed.map((row) => row.roundOpsPerSec?.length ?? 1))
    if (rounds > 1)
      out.push(
        `Closed loop. Each row: the median of ${rounds} interleaved rounds; \`rounds\` is the range of ops/s.`,
        '',
      )
    out.push(closedTable(report, s.closed), '')
    const ops = Object.keys(s.ratios)
    const bases = RATIO_BASES.filter((base) => ops.some((op) => Number.isFinite(s.ratios[op][base])))
    if (bases.length) {
      out.push(
        table([
          ['native ÷', ...ops.map((op) => OPERATIONS[op].label)],
          ...bases.map((base) => [contenderLabel(report, base), ...ops.map((op) => times(s.ratios[op][base]))]),
        ]),
      )
    }
    const budget = loadBudget(s, m.cpus)
    if (budget) out.push('', budget)
    if (s.targets)
      out.push(
        '',
        `SPEC targets (${s.label}):`,
        '',
        ...s.targets.map((t) => `- ${mark(t.status)} ${t.text}: **${times(t.ratio)}**`),
      )
    if (s.open.length) {
      out.push(
        '',
        `Open loop at ${c.openPercents.join('/')}% of raw pg's closed-loop rate of the same operation ` +
          `(achieved below 95% of offered: **behind**).`,
        '',
        openTable(report, s.open),
      )
      const targets = openTargets(s.open)
      if (targets.length)
        out.push(
          '',
          'SPEC: native p99 and p99.9 <= raw pg at every offered rate:',
          '',
          ...targets.map((t) => `- ${mark(t.status)} ${t.text}`),
        )
    }
    const ab = report.ab && abTable(report, s)
    if (ab) out.push('', `A/B, A = this checkout, B = ${report.ab.rev} (${report.ab.short}):`, '', ab)
  }
  if (report.notes.length) out.push('', ...report.notes.map((note) => `> ${note}`))
  return `${out.join('\n')}\n`
}
