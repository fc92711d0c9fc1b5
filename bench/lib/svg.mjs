// A hand-written horizontal bar chart of the closed-loop rows: one panel per
// scenario, one group per operation, one bar per contender (ops/s). Each
// group has its own scale (saves are far slower than loads); the value is
// printed on every bar. Small enough that a charting package would be more.

import { CONTENDERS } from './contenders.mjs'
import { OPERATIONS } from './operations.mjs'
import { contenderLabel } from './report.mjs'

const COLORS = {
  native: '#d9480f',
  ab: '#fd7e14',
  executor: '#f59f00',
  original: '#868e96',
  pg: '#1c7ed6',
  postgresjs: '#2f9e44',
  pgbench: '#7048e8',
}

const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')

export function barChart(report) {
  const width = 920
  const labelWidth = 290
  const barMax = 480
  const bar = 18
  const gap = 5
  const parts = []
  let y = 34
  parts.push(
    `<text x="16" y="22" class="title">@pson5/postgres-store ${esc(report.packageVersion)} — ops/s, ${report.config.concurrency} in flight, pool ${report.config.poolSize} (${esc(report.date.slice(0, 10))}, ${report.machine.cpus} CPUs)</text>`,
  )
  for (const s of report.scenarios) {
    y += 14
    parts.push(
      `<text x="16" y="${y}" class="scenario">${esc(s.label)} (${s.profiles.toLocaleString('en-US')} profiles, ${s.avgDocumentBytes.toLocaleString('en-US')} B avg)</text>`,
    )
    y += 8
    for (const op of Object.keys(OPERATIONS)) {
      const rows = Object.keys(CONTENDERS)
        .map((c) => s.closed.find((r) => r.op === op && r.contender === c))
        .filter(Boolean)
      if (rows.length === 0) continue
      const max = Math.max(1, ...rows.map((r) => r.opsPerSec ?? 0))
      y += 18
      parts.push(`<text x="16" y="${y}" class="op">${esc(OPERATIONS[op].label)}</text>`)
      y += 6
      for (const row of rows) {
        const w = row.opsPerSec ? Math.max(1, (row.opsPerSec / max) * barMax) : 0
        const label = contenderLabel(report, row.contender)
        const value = row.opsPerSec
          ? `${Math.round(row.opsPerSec).toLocaleString('en-US')}  (p99 ${row.p99?.toFixed(1) ?? '-'} ms)`
          : row.skipped
            ? 'skipped'
            : 'failed'
        parts.push(
          `<text x="${labelWidth - 8}" y="${y + bar - 5}" class="label" text-anchor="end">${esc(label)}</text>`,
        )
        if (w > 0)
          parts.push(
            `<rect x="${labelWidth}" y="${y}" width="${w.toFixed(1)}" height="${bar}" fill="${COLORS[row.contender]}" rx="2"/>`,
          )
        parts.push(`<text x="${labelWidth + w + 6}" y="${y + bar - 5}" class="value">${esc(value)}</text>`)
        y += bar + gap
      }
    }
    y += 6
  }
  y += 8
  parts.push(
    `<text x="16" y="${y}" class="note">Bars are scaled per operation. Node ${esc(report.machine.node)}, PostgreSQL ${esc(report.server.version)}, addon ${esc(report.machine.addon.build)}.</text>`,
  )
  y += 12
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${y}" viewBox="0 0 ${width} ${y}" font-family="system-ui, -apple-system, Segoe UI, sans-serif">
<style>
  .title { font-size: 15px; font-weight: 600; fill: #212529 }
  .scenario { font-size: 14px; font-weight: 600; fill: #343a40 }
  .op { font-size: 13px; font-weight: 600; fill: #495057; font-family: ui-monospace, monospace }
  .label { font-size: 12px; fill: #343a40 }
  .value { font-size: 11px; fill: #495057 }
  .note { font-size: 11px; fill: #868e96 }
</style>
<rect width="100%" height="100%" fill="#ffffff"/>
${parts.join('\n')}
</svg>
`
}
