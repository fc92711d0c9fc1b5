// The two ways a row drives a contender, in its own process:
//
// - closed loop: `concurrency` async workers, each awaiting one call at a time
//   (so exactly that many are in flight), for a warm-up and then a window;
//   latency = each call's wall time; ops/s = calls completed in the window.
// - open loop: calls scheduled at a fixed offered rate (Poisson arrivals, as
//   `pgbench -R` schedules them), each timed from its INTENDED send time, so a
//   call that waits behind a stalled one counts the wait (no coordinated
//   omission; the HdrHistogram/wrk2 method). The achieved rate is reported
//   next to the offered one: a contender that cannot keep up shows it.
//
// Latencies go into an HdrHistogram (µs, 3 significant digits), whose memory
// does not grow with the number of calls and so does not move the RSS it
// sits next to.

import * as hdr from 'hdr-histogram-js'

import { clientUsPerOperation, perOperation, snapshot } from './cpu.mjs'

const MB = 1024 * 1024
// Open loop: calls waiting beyond this many are held back in the generator
// (still timed from their intended send time), so a contender that falls
// behind slows down instead of filling memory.
export const OPEN_LOOP_MAX_IN_FLIGHT = 4_096
// After the window, calls already sent get this long to finish (open loop).
const DRAIN_MS = 30_000

export function latencyHistogram() {
  return hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 3_600_000_000,
    numberOfSignificantValueDigits: 3,
  })
}

/** p50/p99/p99.9/max/mean in milliseconds from a histogram of microseconds. */
export function latencySummary(histogram) {
  if (histogram.totalCount === 0) return { p50: null, p99: null, p999: null, max: null, mean: null }
  const ms = (us) => us / 1000
  return {
    p50: ms(histogram.getValueAtPercentile(50)),
    p99: ms(histogram.getValueAtPercentile(99)),
    p999: ms(histogram.getValueAtPercentile(99.9)),
    max: ms(histogram.maxValue),
    mean: ms(histogram.mean),
  }
}

/**
 * Closed loop. `op()` runs one call. With `limit`, at most that many calls
 * run in total (warm-up included) and the window ends when they are done
 * (a row that consumes prepared data, such as deletes).
 */
export async function closedLoop({ op, concurrency, warmupMs, durationMs, limit = Infinity, postmasterPid = null }) {
  const histogram = latencyHistogram()
  const tally = { completed: 0, errors: 0, firstError: null }
  let measuring = false
  let stop = false
  let issued = 0

  async function worker() {
    while (!stop && issued < limit) {
      issued++
      const started = performance.now()
      try {
        await op()
        if (measuring) {
          tally.completed++
          histogram.recordValue(Math.round((performance.now() - started) * 1000))
        }
      } catch (error) {
        tally.firstError ??= describeError(error)
        if (measuring) tally.errors++
      }
    }
  }

  const workers = Promise.all(Array.from({ length: concurrency }, worker))
  const allDone = workers.then(() => true)
  await Promise.race([sleep(warmupMs), allDone])
  const window = startWindow(postmasterPid)
  measuring = true
  await Promise.race([sleep(durationMs), allDone])
  measuring = false
  stop = true
  const result = window.end(tally.completed)
  await workers
  return { ...result, ...latencySummary(histogram), ...tally }
}

/**
 * Open loop at `rate` calls per second. Latency of a call = completion time
 * minus its intended send time. Calls intended within the window are the
 * ones measured; those still running when it ends are waited for (up to
 * DRAIN_MS; any left then count as errors).
 */
export async function openLoop({ op, rate, warmupMs, durationMs, postmasterPid = null }) {
  const histogram = latencyHistogram()
  const tally = { completed: 0, errors: 0, firstError: null }
  let inFlight = 0
  let maxInFlight = 0
  const backlog = []
  let windowStart = Infinity
  let windowEnd = Infinity
  let completedInWindow = 0
  let pending = 0
  let drained = null

  const send = (intended) => {
    inFlight++
    maxInFlight = Math.max(maxInFlight, inFlight)
    const measured = intended >= windowStart && intended < windowEnd
    new Promise((resolve) => resolve(op())).then(
      () => finish(intended, measured, null),
      (error) => finish(intended, measured, error),
    )
  }
  const finish = (intended, measured, error) => {
    const now = performance.now()
    inFlight--
    if (now >= windowStart && now < windowEnd && !error) completedInWindow++
    if (measured) {
      pending--
      if (error) {
        tally.errors++
        tally.firstError ??= describeError(error)
      } else {
        tally.completed++
        histogram.recordValue(Math.max(1, Math.round((now - intended) * 1000)))
      }
      if (pending === 0) drained?.()
    } else if (error) tally.firstError ??= describeError(error)
    if (backlog.length > 0 && inFlight < OPEN_LOOP_MAX_IN_FLIGHT) send(backlog.shift())
  }

  const started = performance.now()
  windowStart = started + warmupMs
  windowEnd = windowStart + durationMs
  let window = null
  let next = started
  // Exponential gaps: the same arrival process as pgbench --rate.
  const gap = () => (-Math.log(1 - Math.random()) * 1000) / rate
  while (next < windowEnd) {
    const now = performance.now()
    if (window === null && now >= windowStart) window = startWindow(postmasterPid)
    while (next <= now && next < windowEnd) {
      // Counted when scheduled, so the drain below also waits for calls still in the backlog.
      if (next >= windowStart) pending++
      if (inFlight < OPEN_LOOP_MAX_IN_FLIGHT) send(next)
      else backlog.push(next)
      next += gap()
    }
    const wake = Math.min(next, windowEnd, window === null ? windowStart : Infinity)
    await sleep(Math.max(0, wake - performance.now()))
  }
  await sleep(Math.max(0, windowEnd - performance.now()))
  window ??= startWindow(postmasterPid)
  const result = window.end(completedInWindow)
  if (pending > 0) await Promise.race([new Promise((resolve) => (drained = resolve)), sleep(DRAIN_MS)])
  if (pending > 0) {
    tally.errors += pending
    tally.firstError ??= `${pending} calls still running ${DRAIN_MS / 1000} s after the window`
  }
  return { ...result, ...latencySummary(histogram), ...tally, offeredRate: rate, maxInFlight }
}

// The measuring window: ops/s (completed in it ÷ its length), this
// process's RSS at its end, and CPU per operation of this process, the
// server and the idle cores over it.
function startWindow(postmasterPid) {
  const at = performance.now()
  const cpu = process.cpuUsage()
  const machine = snapshot(postmasterPid)
  return {
    end(completed) {
      const ms = performance.now() - at
      const used = process.cpuUsage(cpu)
      const machineEnd = snapshot(postmasterPid)
      const opsPerSec = completed / (ms / 1000)
      const clientCpuPercent = ((used.user + used.system) / 1000 / ms) * 100
      return {
        ops: completed,
        seconds: ms / 1000,
        opsPerSec,
        rssMB: process.memoryUsage().rss / MB,
        clientUs: clientUsPerOperation(clientCpuPercent, opsPerSec),
        ...perOperation(machine, machineEnd, opsPerSec),
      }
    },
  }
}

export function describeError(error) {
  const code = error?.code ? `${error.code}: ` : ''
  return `${code}${error?.message ?? String(error)}`.slice(0, 500)
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms))
}
