// Text table for the terminal, Markdown for the README, JSON for machines.

import { IMPLEMENTATIONS } from './impls.mjs'
import { OPERATION_LABELS, OPERATIONS, RATIO_BASES, CONTENDERS, TARGET_SCENARIO } from './rows.mjs'

const fmtInt = (x) => (x === null || x === undefined ? '-' : Math.round(x).toLocaleString('en-US'))
const fmt = (x, digits = 2) => (x === null || x === undefined || Number.isNaN(x) ? '-' : x.toFixed(digits))
const fmtRatio = (x) => (x === null || x === undefined ? 'n/a' : `${x.toFixed(2)}x`)

export const rowName = (row) => `${row.op.padEnd(4)} ${IMPLEMENTATIONS[row.impl]}`

function sortedRows(rows) {
  return [...rows].sort(
    (a, b) => OPERATIONS.indexOf(a.op) - OPERATIONS.indexOf(b.op) || CONTENDERS.indexOf(a.impl) - CONTENDERS.indexOf(b.impl),
  )
}

// `min–max` ops/s over the rounds of a row measured more than once.
function spread(row) {
  const rounds = row.roundOpsPerSec ?? []
  if (rounds.length < 2) return ''
  return `${fmtInt(Math.min(...rounds))}–${fmtInt(Math.max(...rounds))}`
}

function cells(row) {
  if (row.skipped) return [rowName(row), 'skipped', '', '', '', '', '', row.skipped]
  if (row.failed) return [rowName(row), 'failed', '', '', '', '', '', row.failed]
  const note = row.errors ? `${row.errors} errors: ${row.firstError}` : ''
  return [rowName(row), fmtInt(row.opsPerSec), spread(row), fmt(row.p50), fmt(row.p99), fmt(row.rssMB, 1), fmt(row.clientCpuPercent, 0), note]
}

const HEAD = ['row', 'ops/s', 'rounds', 'p50 ms', 'p99 ms', 'RSS MB', 'CPU %', 'note']

function textTable(header, body, rightAligned) {
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((r) => String(r[i]).length)))
  const line = (r) =>
    r
      .map((c, i) => (rightAligned.includes(i) ? String(c).padStart(widths[i]) : String(c).padEnd(widths[i])))
      .join('  ')
      .trimEnd()
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n')
}

export function scenarioTitle(s) {
  return `${s.label}: ${s.profiles.toLocaleString('en-US')} profiles of ${s.avgDocumentBytes.toLocaleString('en-US')} B avg, ${s.users.toLocaleString('en-US')} users`
}

export function printScenario(s) {
  const out = []
  out.push(`\n== ${scenarioTitle(s)} ==`)
  out.push(textTable(HEAD, sortedRows(s.rows).map(cells), [1, 2, 3, 4, 5, 6]))
  out.push('')
  const header = ['native ÷', ...OPERATIONS]
  const body = RATIO_BASES.map((base) => [IMPLEMENTATIONS[base], ...OPERATIONS.map((op) => fmtRatio(s.ratios[op][base]))])
  out.push(textTable(header, body, [1, 2, 3]))
  if (s.targets) {
    out.push('')
    out.push(`SPEC targets (${s.label}):`)
    for (const t of s.targets) out.push(`  [${t.status.toUpperCase().padEnd(6)}] ${t.text}: ${fmtRatio(t.ratio)}`)
  }
  return out.join('\n')
}

export function markdown(report) {
  const out = []
  const m = report.machine
  out.push(`### Benchmark (${report.date.slice(0, 10)})`)
  out.push('')
  out.push(
    `${m.cpus} × ${m.cpuModel}, ${m.os}, Node ${m.node}, PostgreSQL ${report.server.version}` +
      `${report.pgbench.version ? `, ${report.pgbench.version}` : ''}. ` +
      `${report.config.concurrency} operations in flight (closed loop), pool ${report.config.poolSize}, ` +
      `${report.config.transport ? `${report.config.transport}, ` : ''}` +
      `${report.config.durationS} s per row after ${report.config.warmupS} s warm-up, uniform random profiles. ` +
      `Addon: ${m.addon.build}.`,
  )
  for (const s of report.scenarios) {
    out.push('')
    out.push(`#### ${scenarioTitle(s)}`)
    out.push('')
    const rounds = Math.max(1, ...s.rows.map((row) => row.roundOpsPerSec?.length ?? 1))
    if (rounds > 1) {
      out.push(`Each row: the median of ${rounds} interleaved rounds; \`rounds\` is the range of ops/s over them.`)
      out.push('')
    }
    const roundsHead = rounds > 1 ? ' rounds |' : ''
    out.push(`| operation | contender | ops/s |${roundsHead} p50 ms | p99 ms | RSS MB |`)
    out.push(`|---|---|---:|${rounds > 1 ? '---:|' : ''}---:|---:|---:|`)
    for (const row of sortedRows(s.rows)) {
      const name = `| ${OPERATION_LABELS[row.op]} | ${IMPLEMENTATIONS[row.impl]}`
      const range = rounds > 1 ? ` ${spread(row)} |` : ''
      if (row.skipped || row.failed) out.push(`${name} | ${row.skipped ? 'skipped' : 'failed'} |${rounds > 1 ? ' |' : ''} | | |`)
      else out.push(`${name} | ${fmtInt(row.opsPerSec)} |${range} ${fmt(row.p50)} | ${fmt(row.p99)} | ${fmt(row.rssMB, 0)} |`)
    }
    out.push('')
    out.push(`| native ÷ | ${OPERATIONS.map((op) => OPERATION_LABELS[op]).join(' | ')} |`)
    out.push(`|---|${OPERATIONS.map(() => '---:').join('|')}|`)
    for (const base of RATIO_BASES) {
      out.push(`| ${IMPLEMENTATIONS[base]} | ${OPERATIONS.map((op) => fmtRatio(s.ratios[op][base])).join(' | ')} |`)
    }
    if (s.targets) {
      out.push('')
      out.push(`SPEC targets (${s.label}):`)
      out.push('')
      for (const t of s.targets) out.push(`- ${t.status === 'met' ? '✅' : t.status === 'missed' ? '❌' : '➖'} ${t.text}: **${fmtRatio(t.ratio)}** (${t.status})`)
    }
  }
  if (report.notes.length) {
    out.push('')
    for (const note of report.notes) out.push(`> ${note}`)
  }
  return `${out.join('\n')}\n`
}

export function targetSummary(report) {
  const s = report.scenarios.find((x) => x.name === TARGET_SCENARIO)
  return s?.targets ?? []
}
