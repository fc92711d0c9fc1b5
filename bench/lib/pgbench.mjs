// pgbench running this package's own statements (from
// createPostgresProfileStoreArtifacts().queries), `-M prepared`, 32 clients,
// 2 threads, through a custom script per operation: as fast as it can
// (closed loop), or at a fixed rate with `-R` (open loop: pgbench then times
// each transaction from its scheduled start, Poisson-spaced).
//
// pgbench variables can only hold numbers, so the parameter *sources* differ
// from the JS clients (the statement text is otherwise identical):
// - load: `$1` -> `('pson_' || :id::text)` (casts after it kept), with
//   `\set id random(1, N)`;
// - find: `$1` -> `('user_' || :uid::text)`, `\set uid random(1, U)`;
// - save: `$1` -> `(select b.document from bench_documents b where
//   b.n = :id::integer)` (the seeded document text of that profile, stored
//   uncompressed, so the server still parses the same JSON text the JS
//   clients send), `$2` -> `(null)`, `$3` -> `(null)` (what our repository
//   passes without expectedRevision/context).
// Latency percentiles come from pgbench's per-transaction log (-l), whose
// `time` field is measured from the scheduled start under -R.

import { spawn } from 'node:child_process'
import { accessSync, constants, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import path from 'node:path'

import { TICKS_PER_SECOND, clientUsPerOperation, perOperation, processStat, snapshot } from './cpu.mjs'
import { latencyHistogram, latencySummary } from './loadgen.mjs'

const MB = 1024 * 1024

/** pgbench on PATH, else the newest /usr/lib/postgresql/<v>/bin/pgbench; null when absent. */
export function findPgbench() {
  const candidates = []
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) if (dir) candidates.push(path.join(dir, 'pgbench'))
  try {
    const versions = readdirSync('/usr/lib/postgresql')
      .filter((v) => /^\d+(\.\d+)?$/.test(v))
      .sort((a, b) => Number(b) - Number(a))
    for (const v of versions) candidates.push(path.join('/usr/lib/postgresql', v, 'bin', 'pgbench'))
  } catch {
    // no Debian-style PostgreSQL install
  }
  for (const file of candidates) {
    try {
      accessSync(file, constants.X_OK)
      return file
    } catch {
      // next
    }
  }
  return null
}

export async function pgbenchVersion(file) {
  const { stdout } = await execute(file, ['--version'])
  return stdout.trim()
}

/** Replaces every `$n` of a statement by `(source)`, keeping the casts that follow it. */
function substitute(sql, n, source) {
  const re = new RegExp(`\\$${n}(?![0-9])`, 'g')
  if (!re.test(sql)) throw new Error(`pgbench script: the statement has no $${n}`)
  return sql.replace(re, `(${source})`)
}

/** The three pgbench scripts for a schema; `documentsTable` is the seeded bench_documents. */
export function pgbenchScripts({ queries, documentsTable, profiles, users }) {
  const load = substitute(queries.loadProfile, 1, `'pson_' || :id::text`)
  const find = substitute(queries.findProfilesByUserId, 1, `'user_' || :uid::text`)
  // saveProfile's parameters: $1 document JSON text, $2 expected revision, $3 context JSON.
  let save = substitute(queries.saveProfile, 1, `select b.document from ${documentsTable} b where b.n = :id::integer`)
  save = substitute(save, 2, 'null')
  save = substitute(save, 3, 'null')
  const scripts = {
    load: `\\set id random(1, ${profiles})\n${load};\n`,
    save: `\\set id random(1, ${profiles})\n${save};\n`,
    find: `\\set uid random(1, ${users})\n${find};\n`,
  }
  for (const [op, script] of Object.entries(scripts)) {
    if (/\$\d/.test(script)) throw new Error(`pgbench ${op} script still has a $n parameter`)
    // pgbench turns every :name into a parameter; only ours may be there.
    for (const [, name] of script.matchAll(/(?<!:):([A-Za-z_][A-Za-z0-9_]*)/g)) {
      if (name !== 'id' && name !== 'uid')
        throw new Error(`pgbench ${op} script: ':${name}' would be taken as a variable`)
    }
  }
  return scripts
}

/**
 * Runs one pgbench row: a warm-up run, then the measured run with a
 * per-transaction log. -T takes whole seconds. With `rate`, both run at that
 * many transactions per second (`-R`).
 */
export async function runPgbench({
  file,
  url,
  script,
  workDir,
  clients,
  threads,
  durationS,
  warmupS,
  rate,
  postmasterPid = null,
}) {
  mkdirSync(workDir, { recursive: true })
  const scriptPath = path.join(workDir, 'script.sql')
  writeFileSync(scriptPath, script)
  const base = ['-n', '-M', 'prepared', '-c', String(clients), '-j', String(threads), '-f', scriptPath]
  if (rate) base.push('-R', String(Math.round(rate)))
  const warmup = Math.max(0, Math.round(warmupS))
  if (warmup > 0) {
    const w = await execute(file, [...base, '-T', String(warmup), url])
    if (w.code !== 0) throw new Error(`pgbench warm-up failed (${w.code}): ${w.stderr.trim().slice(-800)}`)
  }
  const seconds = Math.max(1, Math.round(durationS))
  const logPrefix = path.join(workDir, 'tx')
  const run = await execute(file, [...base, '-T', String(seconds), '-l', `--log-prefix=${logPrefix}`, url], {
    sample: true,
    postmasterPid,
  })
  if (run.code !== 0) throw new Error(`pgbench failed (${run.code}): ${run.stderr.trim().slice(-800)}`)
  const out = run.stdout
  const tps = number(out, /tps = ([\d.]+) \(without initial connection time\)/) ?? number(out, /tps = ([\d.]+)/)
  const processed = number(out, /number of transactions actually processed: (\d+)/)
  const failed = number(out, /number of failed transactions: (\d+)/) ?? 0

  const histogram = latencyHistogram()
  for (const name of readdirSync(workDir)) {
    if (!name.startsWith('tx.')) continue
    const text = readFileSync(path.join(workDir, name), 'utf8')
    let start = 0
    while (start < text.length) {
      let end = text.indexOf('\n', start)
      if (end === -1) end = text.length
      // client_id transaction_no time(µs) script_no time_epoch time_us ...
      const line = text.slice(start, end)
      start = end + 1
      const a = line.indexOf(' ')
      const b = line.indexOf(' ', a + 1)
      const c = line.indexOf(' ', b + 1)
      const us = Number(line.slice(b + 1, c))
      if (Number.isFinite(us) && c > b) histogram.recordValue(Math.max(1, us))
    }
  }
  rmSync(workDir, { recursive: true, force: true })
  return {
    ops: processed,
    seconds,
    opsPerSec: tps,
    ...latencySummary(histogram),
    offeredRate: rate ?? null,
    errors: failed,
    firstError: failed ? run.stderr.trim().split('\n').slice(-3).join(' | ') : null,
    rssMB: run.lastRss === null ? null : run.lastRss / MB,
    clientUs: clientUsPerOperation(run.cpuPercent, tps),
    ...(run.machine ? perOperation(run.machine.first, run.machine.last, tps) : { serverUs: null, idleUs: null }),
  }
}

function number(text, re) {
  const m = re.exec(text)
  return m ? Number(m[1]) : null
}

// Runs a command; with `sample`, polls /proc/<pid> for RSS and CPU time, and
// the machine (server and idle cores) over the same span.
function execute(file, args, { sample = false, postmasterPid = null } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    let lastRss = null
    let firstCpu = null
    let lastCpu = null
    let machine = null
    let timer = null
    if (sample) {
      const poll = () => {
        try {
          const status = readFileSync(`/proc/${child.pid}/status`, 'utf8')
          const m = /VmRSS:\s+(\d+) kB/.exec(status)
          if (m) lastRss = Number(m[1]) * 1024
          const stat = processStat(child.pid)
          if (stat === null) return
          const { ticks } = stat
          const at = performance.now()
          firstCpu ??= { ticks, at }
          lastCpu = { ticks, at }
          const now = snapshot(postmasterPid)
          machine = { first: machine?.first ?? now, last: now }
        } catch {
          // not on Linux, or already gone
        }
      }
      timer = setInterval(poll, 200)
      poll()
    }
    child.on('error', reject)
    child.on('close', (code) => {
      clearInterval(timer)
      const cpuPercent =
        firstCpu && lastCpu && lastCpu.at > firstCpu.at
          ? (((lastCpu.ticks - firstCpu.ticks) / TICKS_PER_SECOND) * 1000 * 100) / (lastCpu.at - firstCpu.at)
          : null
      resolve({ code, stdout, stderr, lastRss, cpuPercent, machine })
    })
  })
}
