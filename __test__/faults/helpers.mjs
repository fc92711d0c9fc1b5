// Shared by the fault suite (__test__/faults/*.test.mjs): embedded servers the
// suite may stop/restart/reconfigure, outcome bookkeeping, a seeded PRNG and
// table digests. No mocks: everything here talks to a real PostgreSQL.

import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import net from 'node:net'

import { afterEach, beforeEach } from 'node:test'

import { freePort } from '../../scripts/embedded-postgres.mjs'

export const DEFAULT_APPLICATION_NAME = 'pson5-postgres-store'

/**
 * A promise of the package that never settles, while nothing keeps the event
 * loop alive, lets the process end early. Test files that import
 * embedded-postgres (as __test__/helpers/database.mjs does) then exit with
 * code 0 before node:test reports anything, because embedded-postgres'
 * async-exit-hook calls process.exit(0) on 'beforeExit', and the runner counts
 * the file as passed with its remaining tests never run. Call once at the top
 * of a test file: an event loop that runs dry while a test is still running
 * becomes a failure of the file.
 */
export function failOnSilentExit() {
  const running = new Set()
  let stranded = null
  beforeEach((t) => {
    running.add(t.name)
  })
  afterEach((t) => {
    running.delete(t.name)
  })
  process.prependListener('beforeExit', () => {
    if (running.size > 0 && stranded === null) stranded = [...running]
  })
  process.on('exit', () => {
    if (stranded !== null) {
      process.stderr.write(
        `fault suite: the event loop ran dry while these tests were still running: ${stranded.join('; ')} ` +
          '(a call of the package never settled and held nothing that keeps the process alive)\n',
      )
      process.exitCode = 1
    }
  })
}

/** A short unique identifier, safe as an unquoted SQL identifier part. */
export function uid(prefix = 'f') {
  return `${prefix}_${randomBytes(5).toString('hex')}`
}

export { ownServer } from '../helpers/servers.mjs'

/** A free loopback TCP port (nothing listens on it once this resolves). */
export const closedPort = freePort

/**
 * Settles `promise` into `{ ok, value, error, code, ms }`, or
 * `{ hung: true }` when it has not settled within `limitMs`.
 */
export async function outcome(promise, limitMs = 10000) {
  const started = performance.now()
  let timer
  const hang = new Promise((resolve) => {
    timer = setTimeout(() => resolve({ hung: true, ms: limitMs }), limitMs)
  })
  const settled = Promise.resolve(promise).then(
    (value) => ({ ok: true, value, ms: performance.now() - started }),
    (error) => ({ ok: false, error, code: error?.code, ms: performance.now() - started }),
  )
  try {
    return await Promise.race([settled, hang])
  } finally {
    clearTimeout(timer)
  }
}

/** Counts outcomes as `{ ok: n, <code>: n, hung: n }`. */
export function tally(outcomes) {
  const counts = {}
  for (const o of outcomes) {
    const key = o.hung ? 'hung' : o.ok ? 'ok' : String(o.code)
    counts[key] = (counts[key] ?? 0) + 1
  }
  return counts
}

/** Asserts every outcome is a success or has one of `codes`; explains the first stray one. */
export function assertOnly(outcomes, codes, label) {
  const counts = tally(outcomes)
  const stray = outcomes.find((o) => o.hung || (!o.ok && !codes.includes(o.code)))
  assert.ok(
    stray === undefined,
    `${label}: expected success or ${codes.join('/')}, got ${JSON.stringify(counts)}; first stray: ` +
      (stray?.hung ? 'a call that never settled' : `code=${stray?.code} ${stray?.error?.message}`),
  )
  return counts
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** Polls `attempt` until it resolves truthy; returns ms taken, or throws after `limitMs`. */
export async function pollUntil(attempt, { limitMs, everyMs = 50, label = 'condition' }) {
  const started = performance.now()
  let last
  for (;;) {
    try {
      if (await attempt()) return performance.now() - started
    } catch (error) {
      last = error
    }
    if (performance.now() - started > limitMs) {
      throw new Error(`${label} not reached within ${limitMs} ms (last error: ${last?.code ?? ''} ${last?.message ?? 'none'})`)
    }
    await sleep(everyMs)
  }
}

/** mulberry32: a small seeded PRNG with helpers. */
export function prng(seed) {
  let a = seed >>> 0
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  const rng = {
    next,
    int: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)),
    bool: (p = 0.5) => next() < p,
    pick: (list) => list[Math.floor(next() * list.length)],
  }
  return rng
}

// Characters that stress JSON/jsonb/UTF-8: escapes, controls, BMP and astral.
const CHAR_POOLS = [
  'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ',
  '"\\/\b\f\n\r\t\u0001\u001f\u007f\u2028\u2029\'`$%{}[]<>&;',
  '你好世界漢字テストカタカナひらがな한국어中文简体繁體',
  'éèêëçñßøåÆŒœΩπΣЖДжщعربيעבריתहिन्दी',
  ['😀', '🎉', '👩‍👩‍👧', '🇵🇹', '🧪', '𝄞', '𠜎', '🏳️‍🌈', '❤️'],
  ['\u0301', '\u200d', '\ufeff', '\ufffd', '\uffff', '\u00a0', '\u202e'],
]

const CHAR_ARRAYS = CHAR_POOLS.map((pool) => (typeof pool === 'string' ? [...pool] : pool))

/** A random well-formed string of about `length` UTF-16 units (never \u0000, never a lone surrogate). */
export function randomText(rng, length) {
  let out = ''
  while (out.length < length) {
    const chars = CHAR_ARRAYS[Math.floor(rng.next() * CHAR_ARRAYS.length)]
    out += chars[Math.floor(rng.next() * chars.length)]
  }
  return out
}

/** A random JSON number of many shapes (all exactly representable by JSON text). */
export function randomNumber(rng) {
  switch (rng.int(0, 7)) {
    case 0:
      return rng.int(-1000, 1000)
    case 1:
      return rng.next() * 1e6 - 5e5
    case 2:
      return rng.pick([0, 1, -1, 0.1, 0.30000000000000004, 1e21, 1e-7, 5e-324, 1.7976931348623157e308, -2.5e-300])
    case 3:
      return rng.pick([Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER, 2 ** 53 + 2, 12345678901234567890])
    case 4:
      return Number((rng.next() * 100).toFixed(rng.int(0, 15)))
    case 5:
      return rng.next() * 10 ** rng.int(-30, 30)
    default:
      return rng.int(-(2 ** 31), 2 ** 31)
  }
}

/** The document as the database will hand it back (JSON semantics). */
export function jsonRoundTrip(value) {
  return JSON.parse(JSON.stringify(value))
}

/**
 * A JSON copy without `metadata.revision`, the one field the store writes
 * (and without `metadata` itself when that leaves it empty: a document saved
 * without metadata comes back with `metadata: { revision }`).
 */
export function withoutRevision(doc) {
  const copy = jsonRoundTrip(doc)
  if (copy.metadata && typeof copy.metadata === 'object') {
    delete copy.metadata.revision
    if (Object.keys(copy.metadata).length === 0) delete copy.metadata
  }
  return copy
}

/** md5 + row count of each of the three tables (every column of every row). */
export async function tableDigest(sql, schema, prefix = 'pson_') {
  const out = {}
  for (const table of ['profiles', 'profile_audit', 'domain_index']) {
    const { rows } = await sql(
      `select md5(coalesce(string_agg(t::text, '|' order by t::text), '')) as digest, count(*)::int as n
       from "${schema}"."${prefix}${table}" t`,
    )
    out[table] = rows[0]
  }
  return out
}

/**
 * A TCP proxy on 127.0.0.1 in front of `target` (`{ host, port }`), to break
 * connections the way networks and servers do:
 * - `silent = true`: new connections are accepted and never answered;
 * - `cut()`: every proxied connection is closed (FIN), as by a server or
 *   pooler that goes away;
 * - `reset()`: every proxied connection is reset (RST).
 */
export async function tcpProxy(target) {
  const open = new Set()
  const proxy = {
    port: 0,
    silent: false,
    cut() {
      for (const socket of open) socket.destroy()
    },
    reset() {
      for (const socket of open) socket.resetAndDestroy()
    },
    async close() {
      proxy.cut()
      await new Promise((resolve) => server.close(resolve))
    },
  }
  const track = (socket) => {
    open.add(socket)
    socket.on('error', () => {})
    socket.on('close', () => open.delete(socket))
  }
  const server = net.createServer((client) => {
    track(client)
    if (proxy.silent) return
    const upstream = net.connect(target.port, target.host ?? '127.0.0.1')
    track(upstream)
    client.pipe(upstream)
    upstream.pipe(client)
    client.on('close', () => upstream.destroy())
    upstream.on('close', () => client.destroy())
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  proxy.port = server.address().port
  return proxy
}

