#!/usr/bin/env node
// Runs a command with DATABASE_URL pointing at a PostgreSQL: the one in
// DATABASE_URL when set, else an embedded server started here and stopped
// when the command ends.
//
//   node scripts/with-database.mjs <command> [args...]

import { spawn } from 'node:child_process'

import { startEmbeddedPostgres } from './embedded-postgres.mjs'

const [command, ...args] = process.argv.slice(2)
if (!command) {
  console.error('usage: with-database.mjs <command> [args...]')
  process.exit(2)
}

let embedded = null
if (!process.env.DATABASE_URL) {
  process.stderr.write('DATABASE_URL is not set: starting an embedded PostgreSQL... ')
  try {
    embedded = await startEmbeddedPostgres()
  } catch (error) {
    // What failed and what to do; a failed start has already removed what it made.
    process.stderr.write(`\nerror: ${error.message}\n`)
    process.exit(1)
  }
  process.stderr.write(`listening on port ${embedded.port}\n`)
}
const env = { ...process.env, DATABASE_URL: process.env.DATABASE_URL || embedded.url }
if (embedded) env.PSON5_EMBEDDED_PG_DIR = embedded.databaseDir

const child = spawn(command, args, { stdio: 'inherit', env, shell: process.platform === 'win32' })
const forward = (signal) => child.kill(signal)
process.on('SIGINT', forward)
process.on('SIGTERM', forward)

const code = await new Promise((resolve) => {
  child.on('exit', (exitCode, signal) => resolve(exitCode ?? (signal ? 1 : 0)))
})
if (embedded) await embedded.stop()
process.exit(code)
