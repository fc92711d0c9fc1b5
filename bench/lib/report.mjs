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
  return [rowName(row), fmtInt(row.opsPerSec), spread(row), fmt(row.p50), fmt(row.p99), fmt(row.rssMB, 1), ...cpuCells(row), note]
}

// CPU microseconds per operation: the client process, the server, the idle cores.
const cpuCells = (row) => [fmt(row.clientUs, 1), fmt(row.serverUs, 1), fmt(row.idleUs, 1)]

const HEAD = ['row', 'ops/s', 'rounds', 'p50 ms', 'p99 ms', 'RSS MB', 'client µs', 'server µs', 'idle µs', 'note']

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

// On one machine the client and the server share the cores, so loads/s is
// about cores ÷ (client + server + idle µs per load): this line shows what a
// ratio to pgbench asks of each side.
export function loadBudget(s, cores) {
  const find = (impl) => s.rows.find((row) => row.op === 'load' && row.impl === impl && !row.failed && !row.skipped)
  const native = find('native')
  const pgbench = find('pgbench')
  if (!native || !pgbench || native.clientUs == null || native.serverUs == null) return null
  const side = (row, clientNote = '') =>
    `${fmt(row.clientUs, 1)} client${clientNote} + ${fmt(row.serverUs, 1)} server + ${fmt(row.idleUs, 1)} idle`
  const sides =
    `CPU per load (µs): this package ${side(native, ` (JSON.parse of the document: ${fmt(s.jsonParseUs, 1)})`)}; ` +
    `pgbench ${side(pgbench)}.`
  if (!s.targets) return sides
  const target = 1.5 * pgbench.opsPerSec
  return (
    `${sides} 1.5x pgbench is ${fmtInt(target)} loads/s: ` +
    `${fmt((cores * 1e6) / target, 1)} µs per load on ${cores} cores, for client, server and idle together.`
  )
}

export function printScenario(s, cores) {
  const out = []
  out.push(`\n== ${scenarioTitle(s)} ==`)
  out.push(textTable(HEAD, sortedRows(s.rows).map(cells), [1, 2, 3, 4, 5, 6, 7, 8]))
  out.push('')
  const header = ['native ÷', ...OPERATIONS]
  const body = RATIO_BASES.map((base) => [IMPLEMENTATIONS[base], ...OPERATIONS.map((op) => fmtRatio(s.ratios[op][base]))])
  out.push(textTable(header, body, [1, 2, 3]))
  const budget = loadBudget(s, cores)
  if (budget) out.push('', budget)
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
    out.push(`| operation | contender | ops/s |${roundsHead} p50 ms | p99 ms | RSS MB | CPU µs/op: client · server · idle |`)
    out.push(`|---|---|---:|${rounds > 1 ? '---:|' : ''}---:|---:|---:|---:|`)
    for (const row of sortedRows(s.rows)) {
      const name = `| ${OPERATION_LABELS[row.op]} | ${IMPLEMENTATIONS[row.impl]}`
      const range = rounds > 1 ? ` ${spread(row)} |` : ''
      if (row.skipped || row.failed) out.push(`${name} | ${row.skipped ? 'skipped' : 'failed'} |${rounds > 1 ? ' |' : ''} | | | |`)
      else out.push(`${name} | ${fmtInt(row.opsPerSec)} |${range} ${fmt(row.p50)} | ${fmt(row.p99)} | ${fmt(row.rssMB, 0)} | ${cpuCells(row).join(' · ')} |`)
    }
    out.push('')
    out.push(`| native ÷ | ${OPERATIONS.map((op) => OPERATION_LABELS[op]).join(' | ')} |`)
    out.push(`|---|${OPERATIONS.map(() => '---:').join('|')}|`)
    for (const base of RATIO_BASES) {
      out.push(`| ${IMPLEMENTATIONS[base]} | ${OPERATIONS.map((op) => fmtRatio(s.ratios[op][base])).join(' | ')} |`)
    }
    const budget = loadBudget(s, m.cpus)
    if (budget) out.push('', budget)
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
