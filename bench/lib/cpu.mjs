// Where a row's CPU time goes, per operation: the database server's
// processes, the client process (this package's Node process, or pgbench),
// and the cores left idle. On 2 cores the client and the server share one
// budget, so this is what explains a ratio (see bench/README.md, "CPU per
// operation").
//
// Linux /proc only. The server is found as the postmaster (the parent of one
// of its backends) and its children; when that process is not on this
// machine (a remote server, another container), server figures are null.

import { readdirSync, readFileSync } from 'node:fs'

// USER_HZ: /proc reports CPU time in these ticks on every Linux we run on.
export const TICKS_PER_SECOND = 100

/**
 * A process's parent, its CPU ticks (user + system) and those of its children
 * that ended and were waited for, or null when it is gone.
 */
export function processStat(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // Fields after the command name, which may contain spaces: state is [0],
    // ppid [1], utime [11], stime [12], cutime [13], cstime [14].
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return {
      ppid: Number(fields[1]),
      ticks: Number(fields[11]) + Number(fields[12]),
      endedChildrenTicks: Number(fields[13]) + Number(fields[14]),
    }
  } catch {
    return null
  }
}

/**
 * The postmaster's pid given one backend's pid, or null when that pid is not
 * a local PostgreSQL process (a remote server's pid may name anything here).
 */
export function postmasterOf(backendPid) {
  let name = ''
  try {
    name = readFileSync(`/proc/${backendPid}/comm`, 'utf8').trim()
  } catch {
    return null
  }
  const backend = name === 'postgres' ? processStat(backendPid) : null
  return backend && backend.ppid > 1 ? backend.ppid : null
}

/** Ticks of the server and of idle cores, now. */
export function snapshot(postmasterPid) {
  return { at: performance.now(), server: postmasterPid === null ? null : serverTicks(postmasterPid), idle: idleTicks() }
}

/**
 * The postmaster's ticks, its running children's, and those of the children
 * that ended (the postmaster waits for them), so a backend that ends between
 * two snapshots (pgbench disconnecting) still counts. A child waited for
 * while /proc is read would count twice or not at all: then read again.
 */
function serverTicks(postmasterPid) {
  for (let attempt = 0; attempt < 5; attempt++) {
    const before = processStat(postmasterPid)
    if (before === null) return null
    let children = 0
    for (const name of readdirSync('/proc')) {
      if (!/^\d+$/.test(name)) continue
      const child = processStat(Number(name))
      if (child?.ppid === postmasterPid) children += child.ticks
    }
    const after = processStat(postmasterPid)
    if (after?.endedChildrenTicks === before.endedChildrenTicks) return before.ticks + before.endedChildrenTicks + children
  }
  return null
}

function idleTicks() {
  try {
    const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/)
    // cpu user nice system idle iowait ...
    return Number(cpu[4]) + Number(cpu[5])
  } catch {
    return null
  }
}

/** Microseconds per operation of the server and of idle cores between two snapshots, at `opsPerSec`. */
export function perOperation(before, after, opsPerSec) {
  const seconds = (after.at - before.at) / 1000
  if (!(seconds > 0) || !(opsPerSec > 0)) return { serverUs: null, idleUs: null }
  const toUs = (ticks) => ((ticks / TICKS_PER_SECOND / seconds) * 1e6) / opsPerSec
  const serverUs = before.server === null || after.server === null ? null : toUs(after.server - before.server)
  const idleUs = before.idle === null || after.idle === null ? null : toUs(after.idle - before.idle)
  return { serverUs, idleUs }
}

/** Microseconds of CPU per operation from a share of one core. */
export function clientUsPerOperation(cpuPercent, opsPerSec) {
  return cpuPercent === null || !(opsPerSec > 0) ? null : ((cpuPercent / 100) * 1e6) / opsPerSec
}
