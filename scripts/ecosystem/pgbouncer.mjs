// Starts a throw-away pgbouncer in transaction pooling mode in front of a
// PostgreSQL server, on a free loopback port, as a non-root user.
//
//   const bouncer = await startPgbouncer({ upstreamUrl })   // DATABASE_URL's server
//   bouncer.url, bouncer.version, bouncer.supportsPreparedStatements
//   await bouncer.stop()
//
// The binary comes from the Debian package `pgbouncer`; when /usr/sbin/pgbouncer
// is missing it is installed with apt-get (which needs root).

import { execFileSync, spawn } from 'node:child_process'
import { chownSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'

import { freePort, waitForPort } from './servers.mjs'

export const PGBOUNCER = '/usr/sbin/pgbouncer'
/** The user pgbouncer runs as when we are root (it refuses to run as root). */
const RUN_AS = 'nobody'

/** Installs the Debian package when the binary is missing; returns its version. */
export function ensurePgbouncer() {
  if (!existsSync(PGBOUNCER)) {
    // Keep apt from starting the packaged service (policy-rc.d may not exist).
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive', RUNLEVEL: '1' }
    const install = () => execFileSync('apt-get', ['install', '-y', '--no-install-recommends', 'pgbouncer'], { env, stdio: 'pipe' })
    try {
      install()
    } catch {
      execFileSync('apt-get', ['update'], { env, stdio: 'pipe' })
      install()
    }
  }
  return pgbouncerVersion()
}

/** `[major, minor, patch]` from `pgbouncer --version` ("PgBouncer 1.18.0" on the first line). */
export function pgbouncerVersion() {
  const text = execFileSync(PGBOUNCER, ['--version'], { encoding: 'utf8' })
  const match = /PgBouncer\s+(\d+)\.(\d+)(?:\.(\d+))?/i.exec(text)
  if (!match) throw new Error(`cannot read the pgbouncer version from: ${text}`)
  return { text: match[0], parts: [Number(match[1]), Number(match[2]), Number(match[3] ?? 0)] }
}

/** pgbouncer >= 1.21 tracks protocol-level prepared statements in transaction mode. */
export function supportsPreparedStatements([major, minor]) {
  return major > 1 || (major === 1 && minor >= 21)
}

/**
 * Starts pgbouncer (pool_mode = transaction, auth_type = trust) forwarding
 * every database to the host/port of `upstreamUrl`. The users in `users` get
 * an auth_file entry (trust still requires the name to be listed).
 */
export async function startPgbouncer({ upstreamUrl, users, poolSize = 4, poolMode = 'transaction', log = false }) {
  const version = ensurePgbouncer()
  const upstream = new URL(upstreamUrl)
  const user = decodeURIComponent(upstream.username || 'postgres')
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pson5-pgbouncer-'))
  const port = await freePort()
  const prepared = supportsPreparedStatements(version.parts)
  const ini = [
    '[databases]',
    `* = host=${upstream.hostname} port=${upstream.port || 5432}`,
    '',
    '[pgbouncer]',
    'listen_addr = 127.0.0.1',
    `listen_port = ${port}`,
    // No unix socket: nothing outside loopback TCP.
    'unix_socket_dir =',
    'auth_type = trust',
    `admin_users = ${user}`,
    `auth_file = ${path.join(dir, 'userlist.txt')}`,
    `pool_mode = ${poolMode}`,
    `default_pool_size = ${poolSize}`,
    'max_client_conn = 200',
    'ignore_startup_parameters = extra_float_digits',
    `logfile = ${path.join(dir, 'pgbouncer.log')}`,
    `pidfile = ${path.join(dir, 'pgbouncer.pid')}`,
    ...(prepared ? ['max_prepared_statements = 100'] : []),
    '',
  ].join('\n')
  writeFileSync(path.join(dir, 'pgbouncer.ini'), ini)
  const names = new Set([user, ...(users ?? [])])
  writeFileSync(path.join(dir, 'userlist.txt'), [...names].map((name) => `"${name}" ""\n`).join(''))

  const asRoot = process.getuid?.() === 0
  if (asRoot) {
    const { uid, gid } = userIds(RUN_AS)
    for (const file of ['', 'pgbouncer.ini', 'userlist.txt']) chownSync(path.join(dir, file), uid, gid)
  }
  const args = [...(asRoot ? ['-u', RUN_AS] : []), path.join(dir, 'pgbouncer.ini')]
  const child = spawn(PGBOUNCER, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout.on('data', (chunk) => (output += chunk))
  child.stderr.on('data', (chunk) => (output += chunk))
  if (log) child.stderr.pipe(process.stderr)
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })))
  // If the test process ends without stop(), do not leave pgbouncer behind.
  const killOnExit = () => child.kill('SIGKILL')
  process.once('exit', killOnExit)
  const ready = await Promise.race([waitForPort(port, 10000).then(() => true), exited.then(() => false)])
  if (!ready) {
    rmSync(dir, { recursive: true, force: true })
    throw new Error(`pgbouncer exited before listening:\n${output}`)
  }
  const url = new URL(upstreamUrl)
  url.hostname = '127.0.0.1'
  url.port = String(port)
  return {
    url: url.href,
    port,
    version: version.text,
    versionParts: version.parts,
    supportsPreparedStatements: prepared,
    dir,
    pid: child.pid,
    log: () => {
      try {
        return readFileSync(path.join(dir, 'pgbouncer.log'), 'utf8')
      } catch {
        return output
      }
    },
    async stop() {
      process.removeListener('exit', killOnExit)
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGINT')
        await Promise.race([exited, sleep(5000)])
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
      }
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

function userIds(name) {
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((entry) => entry.startsWith(`${name}:`))
  if (!line) throw new Error(`no user ${name} in /etc/passwd`)
  const [, , uid, gid] = line.split(':')
  return { uid: Number(uid), gid: Number(gid) }
}
