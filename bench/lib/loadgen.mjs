// Closed-loop load generator: `concurrency` async workers, each awaiting one
// operation at a time (so exactly that many operations are in flight), for a
// warm-up and then a fixed measuring window. Throughput = operations completed
// inside the window / window length; latency = per-operation wall time of
// those operations; RSS and CPU time of this process at the window's end;
// the server's and the idle cores' CPU time over the window (see cpu.mjs).

import { clientUsPerOperation, perOperation, snapshot } from './cpu.mjs'
import { Histogram } from './histogram.mjs'

const MB = 1024 * 1024

/** Uniform random integer in [1, max]. */
export const randomId = (max) => 1 + Math.floor(Math.random() * max)

export async function closedLoop({ op, concurrency, warmupMs, durationMs, postmasterPid = null }) {
  const hist = new Histogram()
  let measuring = false
  let stop = false
  let windowStart = 0
  let windowEnd = 0
  let completed = 0
  let errors = 0
  let warmupOps = 0
  let warmupErrors = 0
  let firstError = null
  let cpuStart = null
  let cpu = null
  let rss = 0
  let heapUsed = 0

  async function worker(w) {
    while (!stop) {
      const t0 = performance.now()
      let failed = false
      try {
        await op(w)
      } catch (error) {
        failed = true
        firstError ??= error
      }
      const t1 = performance.now()
      if (measuring) {
        if (failed) errors++
        else {
          completed++
          hist.record(t1 - t0)
        }
      } else if (!stop) {
        if (failed) warmupErrors++
        else warmupOps++
      }
    }
  }

  const done = Promise.all(Array.from({ length: concurrency }, (_, w) => worker(w)))
  await sleep(warmupMs)
  const machineStart = snapshot(postmasterPid)
  cpuStart = process.cpuUsage()
  windowStart = performance.now()
  measuring = true
  await sleep(durationMs)
  measuring = false
  stop = true
  windowEnd = performance.now()
  cpu = process.cpuUsage(cpuStart)
  const machineEnd = snapshot(postmasterPid)
  const memory = process.memoryUsage()
  rss = memory.rss
  heapUsed = memory.heapUsed
  await done

  const seconds = (windowEnd - windowStart) / 1000
  const clientCpuPercent = ((cpu.user + cpu.system) / 1000 / (windowEnd - windowStart)) * 100
  const opsPerSec = completed / seconds
  return {
    ops: completed,
    seconds,
    opsPerSec,
    p50: hist.quantile(0.5),
    p99: hist.quantile(0.99),
    mean: hist.mean(),
    max: hist.max || null,
    errors,
    warmupOps,
    warmupErrors,
    firstError: firstError ? describeError(firstError) : null,
    rssMB: rss / MB,
    heapUsedMB: heapUsed / MB,
    // Share of one core used by this process (main thread + native threads).
    clientCpuPercent,
    clientUs: clientUsPerOperation(clientCpuPercent, opsPerSec),
    ...perOperation(machineStart, machineEnd, opsPerSec),
  }
}

export function describeError(error) {
  const code = error?.code ? `${error.code}: ` : ''
  return `${code}${error?.message ?? String(error)}`.slice(0, 500)
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms))
}
