// Which rows a run has, in which order they execute, and the SPEC targets.

export const OPERATIONS = ['load', 'save', 'find']
/** Execution order: reads on freshly seeded tables first, writes last. */
export const EXECUTION_ORDER = ['load', 'find', 'save']
export const CONTENDERS = ['native', 'executor', 'original', 'pg', 'postgresjs', 'pgbench']

export const OPERATION_LABELS = {
  load: 'loadProfile',
  save: 'saveProfile',
  find: 'findProfilesByUserId',
}

/** The ratios reported: native ÷ each of these, per operation. */
export const RATIO_BASES = ['original', 'pgbench', 'pg', 'postgresjs', 'executor']

/** SPEC "Performance" targets, checked on the ~1 KB scenario. */
export const TARGETS = [
  { op: 'load', base: 'pgbench', min: 1.5, text: 'native loadProfile >= 1.5x pgbench -M prepared -c32 (same select)' },
  { op: 'load', base: 'original', min: 3, text: 'native loadProfile >= 3x original 0.2.2' },
  { op: 'save', base: 'pgbench', min: 1.0, text: 'native saveProfile >= 1.0x pgbench (same single save statement)' },
  { op: 'save', base: 'original', min: 4, text: "native saveProfile >= 4x original 0.2.2 adapter's save" },
]
export const TARGET_SCENARIO = '1k'

export function planRows({ contenders, operations }) {
  const rows = []
  for (const op of EXECUTION_ORDER) {
    if (!operations.includes(op)) continue
    for (const impl of CONTENDERS) if (contenders.includes(impl)) rows.push({ op, impl })
  }
  return rows
}

export function ratiosFor(rows) {
  const rate = (op, impl) => rows.find((r) => r.op === op && r.impl === impl && r.opsPerSec > 0)?.opsPerSec ?? null
  const ratios = {}
  for (const op of OPERATIONS) {
    ratios[op] = {}
    const native = rate(op, 'native')
    for (const base of RATIO_BASES) {
      const other = rate(op, base)
      ratios[op][base] = native !== null && other !== null ? native / other : null
    }
  }
  return ratios
}

export function evaluateTargets(ratios) {
  return TARGETS.map((t) => {
    const ratio = ratios[t.op]?.[t.base] ?? null
    return { ...t, ratio, status: ratio === null ? 'n/a' : ratio >= t.min ? 'met' : 'missed' }
  })
}
