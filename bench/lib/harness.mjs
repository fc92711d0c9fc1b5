// Runs one measurement of one row — one operation × one contender, closed or
// open loop — and keeps the tables in the same state for the next: a fresh
// Node process per row (row-worker.mjs) or a pgbench run; the tables
// vacuumed after a row that wrote; a save row must leave one audit row per
// save it counts.

import { fork } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

import { OPERATIONS } from './operations.mjs'
import { runPgbench } from './pgbench.mjs'
import { tidy } from './seed.mjs'

const HERE = path.dirname(fileURLToPath(import.meta.url))
export const PACKAGE_ENTRY = path.resolve(HERE, '..', '..', 'index.mjs')

/**
 * `settings`: { url, postmasterPid, durationS, warmupS, concurrency, poolSize,
 * pgbenchFile, pgbenchThreads, useEngine }.
 */
export function createHarness(admin, settings) {
  const dirty = new Set()
  return async function measure({
    contender,
    op,
    mode = 'closed',
    rate,
    schema,
    shape,
    packageEntry = PACKAGE_ENTRY,
    script,
  }) {
    if (dirty.has(schema)) await tidy(admin, schema)
    const operation = OPERATIONS[op]
    if (operation.writes) dirty.add(schema)
    const auditTable = contender === 'original' ? 'pson_profile_revisions' : 'pson_profile_audit'
    const auditRows = async () =>
      Number((await admin.query(`select count(*)::bigint as n from "${schema}"."${auditTable}"`)).rows[0].n)
    const before = op === 'save' ? await auditRows() : 0
    try {
      const result =
        contender === 'pgbench'
          ? await runPgbench({
              file: settings.pgbenchFile,
              url: settings.url,
              script,
              workDir: path.join(HERE, '..', '.cache', `pgbench-${process.pid}`),
              clients: settings.concurrency,
              threads: settings.pgbenchThreads,
              durationS: settings.durationS,
              warmupS: settings.warmupS,
              rate: mode === 'open' ? rate : undefined,
              postmasterPid: settings.postmasterPid,
            })
          : await runWorker({
              contender,
              op,
              mode,
              rate,
              shape,
              schema,
              packageEntry,
              url: settings.url,
              poolSize: settings.poolSize,
              concurrency: settings.concurrency,
              warmupMs: settings.warmupS * 1000,
              durationMs: settings.durationS * 1000,
              useEngine: settings.useEngine,
              postmasterPid: settings.postmasterPid,
            })
      if (op === 'save' && !result.skipped) {
        const written = (await auditRows()) - before
        if (written < result.ops) return { failed: `only ${written} audit rows were written for ${result.ops} saves` }
      }
      return result
    } catch (error) {
      return { failed: error.message.split('\n')[0] }
    }
  }
}

function runWorker(rowConfig) {
  return new Promise((resolve, reject) => {
    const child = fork(path.join(HERE, 'row-worker.mjs'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    const limit = rowConfig.warmupMs + rowConfig.durationMs + 180_000
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`the row did not finish within ${Math.round(limit / 1000)} s`))
    }, limit)
    child.on('message', (message) => {
      clearTimeout(timer)
      if (message.ok) resolve(message.result)
      else reject(new Error(message.error))
    })
    child.on('exit', (code, signal) => {
      clearTimeout(timer)
      reject(new Error(`the row process exited (${signal ?? code}) without a result`))
    })
    child.send(rowConfig)
  })
}

/** The median measurement by ops/s, with the range over all of them and the errors of every one. */
export function medianOf(samples) {
  const ranked = [...samples].sort((a, b) => a.opsPerSec - b.opsPerSec)
  return {
    ...ranked[Math.floor((ranked.length - 1) / 2)],
    roundOpsPerSec: samples.map((sample) => Math.round(sample.opsPerSec)),
    errors: samples.reduce((sum, sample) => sum + sample.errors, 0),
  }
}
