#!/usr/bin/env node
'use strict'

// pson5-postgres-store: prints the schema or the 0.2.2 upgrade SQL for a
// schema/table prefix, checks a database (DATABASE_URL, else the PG*
// variables) against them, prunes its audit log, or erases personal data.
//
// Exit codes: 0 ok, 1 the check found problems, 2 usage error, 3 connection
// error, 4 the native binary could not be loaded, 5 any other error, 130 a
// prune stopped by Ctrl-C (SIGINT) between two batches.

const os = require('node:os')
const util = require('node:util')

const EXIT = { ok: 0, problems: 1, usage: 2, connection: 3, nativeBinding: 4, other: 5, interrupted: 130 }

const USAGE = `Usage: pson5-postgres-store <command> [--schema S] [--prefix P] [0.2.2 table names] [--json]

Commands:
  schema    print the DDL (schemaSql) for the schema and table prefix
  upgrade   print the SQL that copies a 0.2.2 deployment (pson_profiles_current,
            pson_profile_revisions, pson_user_profile_index) into the new tables
  check     connect and report the server version, whether the three tables
            exist with every expected column, and the pool settings
  prune     remove old audit rows in batches of short transactions (never a
            profile's current revision or its newest row); needs --keep-last,
            --older-than or both, and prints its progress to stderr
  erase     erase personal data for good: with --profile-id ID --path P, remove
            the JSON Pointer P (/layers/observed/core.email) from the profile
            and from every snapshot of its history, in one transaction, recorded
            as a new revision whose audit entry names the path, never the
            value; with --user-id U, remove every profile of that user with all
            its history
  help      show this help (also -h, --help)

Options:
  --schema S                   PostgreSQL schema (default: public)
  --prefix P, --table-prefix P table prefix (default: pson_)
  --current-profiles-table T, --profile-revisions-table T, --user-index-table T
                               upgrade: the 0.2.2 tables to copy from, when 0.2.2
                               was given its currentProfilesTable /
                               profileRevisionsTable / userIndexTable options
                               (default: the pson_ names above)
  --json                       check, prune, erase: print the report as JSON
  --keep-last N                prune: keep each profile's N newest audit rows
  --older-than T               prune: remove only rows recorded before T, an
                               ISO-8601 instant (2026-01-31T00:00:00Z) or a
                               number of days before now (90d); with
                               --keep-last, a row goes when both say so
  --profile-id ID              prune: only this profile's audit rows; erase: the
                               profile to erase a path from
  --path P                     erase: the JSON Pointer to erase
  --user-id U                  erase: remove every profile of this user
  --reason TEXT                erase: stored in the audit entry's context
                               ({ source: 'pson5-postgres-store erase', reason })
  --batch-size N               prune: rows per batch (transaction), 1-10000
                               (default 1000)
  -h, --help                   show this help

check, prune and erase connect with DATABASE_URL, else the libpq variables (PGHOST, PGPORT,
PGUSER, PGPASSWORD, PGDATABASE, PGSSLMODE, PGSSLROOTCERT, PGCONNECT_TIMEOUT,
PGAPPNAME, PGOPTIONS).

Exit codes: 0 ok, 1 the check found problems, 2 usage error, 3 connection error,
4 the native binary could not be loaded, 5 any other error, 130 prune stopped by
Ctrl-C (what the batches before had removed stays removed).
`

class UsageError extends Error {}

// Every option: its flag (and long alias), its parseArgs type, and where its
// value goes in the parsed options (group.key); convert checks and turns the
// text into the value the library takes.
const OPTIONS = [
  { name: 'help', short: 'h', type: 'boolean', key: 'help' },
  { name: 'schema', type: 'string', key: 'schema' },
  { name: 'prefix', alias: 'table-prefix', type: 'string', key: 'tablePrefix' },
  { name: 'json', type: 'boolean', key: 'json' },
  { name: 'current-profiles-table', type: 'string', group: 'legacyTables', key: 'currentProfilesTable' },
  { name: 'profile-revisions-table', type: 'string', group: 'legacyTables', key: 'profileRevisionsTable' },
  { name: 'user-index-table', type: 'string', group: 'legacyTables', key: 'userIndexTable' },
  { name: 'keep-last', type: 'string', group: 'prune', key: 'keepLast', convert: integerValue },
  { name: 'older-than', type: 'string', group: 'prune', key: 'olderThan', convert: instantValue },
  { name: 'profile-id', type: 'string', group: 'prune', key: 'profileId' },
  { name: 'batch-size', type: 'string', group: 'prune', key: 'batchSize', convert: integerValue },
  { name: 'path', type: 'string', group: 'erase', key: 'path' },
  { name: 'user-id', type: 'string', group: 'erase', key: 'userId' },
  { name: 'reason', type: 'string', group: 'erase', key: 'reason' },
]
// parseArgs knows no long aliases: an alias is one more option of the same type.
const PARSE_ARGS_OPTIONS = Object.fromEntries(
  OPTIONS.flatMap(({ name, alias, type, short }) => [
    [name, short ? { type, short } : { type }],
    ...(alias ? [[alias, { type }]] : []),
  ]),
)
const OPTION_BY_FLAG = new Map(
  OPTIONS.flatMap((option) => [option.name, option.alias].filter(Boolean).map((flag) => [flag, option])),
)

function parseArgs(argv) {
  // Not strict, so that the errors below name the flag as typed; the tokens
  // keep the order, so the last of --prefix and --table-prefix wins.
  const { tokens } = util.parseArgs({
    args: argv,
    options: PARSE_ARGS_OPTIONS,
    strict: false,
    allowPositionals: true,
    tokens: true,
  })
  const options = {
    command: null,
    schema: undefined,
    tablePrefix: undefined,
    legacyTables: {},
    prune: {},
    erase: {},
    json: false,
    help: false,
  }
  for (const token of tokens) {
    if (token.kind === 'option-terminator') throw new UsageError('unknown option --')
    if (token.kind === 'positional') {
      if (options.command !== null) throw new UsageError(`unexpected argument ${token.value}`)
      options.command = token.value
      continue
    }
    const option = OPTION_BY_FLAG.get(token.name)
    if (!option) throw new UsageError(`unknown option ${token.rawName}`)
    let value = true
    if (option.type === 'string') {
      // parseArgs takes the next argument whatever it is; a value that looks
      // like a flag is a forgotten one (--schema=-x still passes).
      if (token.value === undefined || (!token.inlineValue && token.value.startsWith('-')))
        throw new UsageError(`${token.rawName} needs a value`)
      value = option.convert ? option.convert(token.value, token.rawName) : token.value
    }
    if (option.group) options[option.group][option.key] = value
    else options[option.key] = value
  }
  if (options.help) return options
  if (options.command === null) throw new UsageError('missing command')
  if (options.command === 'help') return { ...options, help: true }
  if (!['schema', 'upgrade', 'check', 'prune', 'erase'].includes(options.command))
    throw new UsageError(`unknown command ${options.command}`)
  if (options.json && !['check', 'prune', 'erase'].includes(options.command)) {
    throw new UsageError('--json only applies to check, prune and erase')
  }
  // --profile-id names the profile of an erase too.
  const pruneFlags = Object.keys(options.prune).filter((key) => options.command !== 'erase' || key !== 'profileId')
  if (pruneFlags.length > 0 && options.command !== 'prune') {
    throw new UsageError('--keep-last, --older-than, --profile-id and --batch-size only apply to prune')
  }
  if (Object.keys(options.erase).length > 0 && options.command !== 'erase') {
    throw new UsageError('--path, --user-id and --reason only apply to erase')
  }
  if (options.command === 'erase') {
    const { path, userId } = options.erase
    const profileId = options.prune.profileId
    if (userId !== undefined ? profileId !== undefined || path !== undefined : profileId === undefined || path === undefined) {
      throw new UsageError('erase needs either --profile-id and --path, or --user-id alone')
    }
  }
  if (Object.keys(options.legacyTables).length > 0 && options.command !== 'upgrade') {
    throw new UsageError(
      '--current-profiles-table, --profile-revisions-table and --user-index-table only apply to upgrade',
    )
  }
  return options
}

// Whole numbers only; the range is the library's to check (validation_error).
function integerValue(text, flag) {
  if (!/^\d+$/.test(text)) throw new UsageError(`${flag} needs a whole number, not ${text}`)
  return Number(text)
}

const DAY_MS = 24 * 60 * 60 * 1000

// `90d` is that many days before now; anything else goes to the library as an
// ISO-8601 instant, which checks it.
function instantValue(text) {
  const days = /^(\d+)d$/.exec(text)
  return days ? new Date(Date.now() - Number(days[1]) * DAY_MS) : text
}

// Secrets that must never be printed, whatever a message contains.
function secrets() {
  const found = []
  if (process.env.PGPASSWORD) found.push(process.env.PGPASSWORD)
  const url = process.env.DATABASE_URL
  if (url) {
    try {
      const parsed = new URL(url)
      if (parsed.password) found.push(parsed.password, decodeURIComponent(parsed.password))
    } catch {
      const match = /(?:^|\s)password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)/.exec(url)
      if (match) found.push(match[1].replace(/^'|'$/g, ''))
    }
    found.push(url)
  }
  return found.filter((secret) => secret.length > 0).sort((a, b) => b.length - a.length)
}

function redact(text) {
  let out = String(text)
  for (const secret of secrets()) out = out.split(secret).join('***')
  return out
}

function fail(code, message, exitCode) {
  process.stderr.write(`error [${code}]: ${redact(message)}\n`)
  return exitCode
}

/** Where check connects to, for the report: never the password. */
function describeTarget() {
  const url = process.env.DATABASE_URL
  if (url) {
    try {
      const parsed = new URL(url)
      parsed.password = ''
      parsed.search = ''
      return `${parsed.href} (DATABASE_URL)`
    } catch {
      return url.replace(/password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)/g, 'password=***') + ' (DATABASE_URL)'
    }
  }
  const env = process.env
  // As the native pool (and libpq) takes it: PGUSER, else the OS account.
  const user = env.PGUSER || os.userInfo().username
  return `postgres://${user}@${env.PGHOST || 'localhost'}:${env.PGPORT || 5432}/${env.PGDATABASE || user} (PG* variables)`
}

function hasConnectTimeout() {
  return Boolean(process.env.PGCONNECT_TIMEOUT) || /connect_timeout=/.test(process.env.DATABASE_URL ?? '')
}

const CONNECTION_SQLSTATE = /^(08|28|3D|57P)/

function isConnectionError(error) {
  if (['connection_error', 'timeout', 'closed'].includes(error?.code)) return true
  return error?.code === 'database_error' && CONNECTION_SQLSTATE.test(error.sqlState ?? '')
}

function connect(pkg, options) {
  return pkg.createPostgresProfileStoreRepository({
    connectionString: process.env.DATABASE_URL || undefined,
    schema: options.schema,
    tablePrefix: options.tablePrefix,
    // libpq waits forever by default; a command-line tool should not.
    ...(hasConnectTimeout() ? {} : { connectionTimeoutMillis: 10000 }),
  })
}

// Progress to stderr after each batch; the result to stdout. Ctrl-C stops
// the prune between two batches (a second one exits at once).
async function prune(pkg, options) {
  const controller = new AbortController()
  const interrupt = () => {
    if (controller.signal.aborted) process.exit(EXIT.interrupted)
    process.stderr.write('stopping after the batch in flight (Ctrl-C again to exit now)\n')
    controller.abort()
  }
  process.on('SIGINT', interrupt)
  const repository = connect(pkg, options)
  const report = (pruned, interrupted) => {
    if (options.json) {
      process.stdout.write(JSON.stringify({ ...pruned, interrupted }) + '\n')
    } else {
      process.stdout.write(
        `${interrupted ? 'interrupted: ' : ''}removed ${pruned.removedRows} audit row(s) of ${pruned.prunedProfiles} ` +
          `profile(s) in ${pruned.batches} batch(es)\n`,
      )
    }
  }
  try {
    const pruned = await repository.pruneAuditEntries({
      ...options.prune,
      signal: controller.signal,
      onProgress: (progress) => {
        const at = progress.nextProfileId === null ? 'done' : `next profile ${progress.nextProfileId}`
        process.stderr.write(`batch ${progress.batches}: ${progress.removedRows} row(s) removed so far, ${at}\n`)
      },
    })
    report(pruned, false)
    return EXIT.ok
  } catch (error) {
    if (error?.code !== 'aborted') throw error
    report(error.pruned, true)
    return EXIT.interrupted
  } finally {
    process.removeListener('SIGINT', interrupt)
    await repository.close()
  }
}

// One erasure: a path from one profile's history, or every profile of a user.
async function erase(pkg, options) {
  const repository = connect(pkg, options)
  const { path, userId, reason } = options.erase
  const context = { source: 'pson5-postgres-store erase', ...(reason === undefined ? {} : { reason }) }
  try {
    if (userId !== undefined) {
      const removed = await repository.deleteProfilesByUserId(userId, { context })
      process.stdout.write(
        options.json
          ? JSON.stringify({ userId, ...removed }) + '\n'
          : `removed ${removed.profileIds.length} profile(s) of user ${userId} with ${removed.auditRows} audit row(s)` +
              `${removed.profileIds.length > 0 ? `: ${removed.profileIds.join(', ')}` : ''}\n`,
      )
      return EXIT.ok
    }
    const profileId = options.prune.profileId
    const erased = await repository.eraseFromHistory(profileId, path, { context })
    process.stdout.write(
      options.json
        ? JSON.stringify({ profileId, path, ...erased }) + '\n'
        : `erased ${path} from profile ${profileId}: ${erased.erasedSnapshots} snapshot(s) held it` +
            `${erased.erasedFromCurrent ? ', the current document too' : ''}; revision ${erased.revision} records the erasure\n`,
    )
    return EXIT.ok
  } finally {
    await repository.close()
  }
}

async function check(pkg, options) {
  const repository = connect(pkg, options)
  try {
    const report = await repository.checkSchema()
    const pool = repository.poolStatus()
    const { tables } = pkg.createPostgresProfileStoreArtifacts({
      schema: options.schema,
      tablePrefix: options.tablePrefix,
    })
    const problems = []
    for (const [key, name] of Object.entries(tables)) {
      const table = report.tables[key]
      if (!table?.exists) problems.push(`${name} does not exist`)
      else if (table.missingColumns.length > 0)
        problems.push(`${name} lacks column(s) ${table.missingColumns.join(', ')}`)
    }
    if (options.json) {
      process.stdout.write(
        JSON.stringify(
          {
            target: describeTarget(),
            serverVersion: report.serverVersion,
            serverVersionNum: report.serverVersionNum,
            schema: options.schema ?? 'public',
            tablePrefix: options.tablePrefix ?? 'pson_',
            tables: Object.fromEntries(
              Object.entries(tables).map(([key, name]) => [key, { name, ...report.tables[key] }]),
            ),
            pool,
            ok: problems.length === 0,
            problems,
          },
          null,
          2,
        ) + '\n',
      )
    } else {
      const lines = [
        `target:  ${describeTarget()}`,
        `server:  PostgreSQL ${report.serverVersion} (server_version_num ${report.serverVersionNum})${report.serverVersionNum < 140000 ? ' -- below the supported 14' : ''}`,
        `schema:  ${options.schema ?? 'public'}, table prefix ${options.tablePrefix ?? 'pson_'}`,
        'tables:',
      ]
      for (const [key, name] of Object.entries(tables)) {
        const table = report.tables[key]
        const state = !table?.exists
          ? 'missing'
          : table.missingColumns.length > 0
            ? `missing columns: ${table.missingColumns.join(', ')}`
            : 'ok'
        lines.push(`  ${name.padEnd(48)} ${state}`)
      }
      if (pool)
        lines.push(
          `pool:    max ${pool.maxSize}, open ${pool.size}, available ${pool.available}, waiting ${pool.waiting}`,
        )
      if (problems.length === 0) lines.push('result:  ok')
      else {
        lines.push(`result:  ${problems.length} problem(s)`)
        lines.push("hint:    apply the output of 'pson5-postgres-store schema' (then 'upgrade' when coming from 0.2.2)")
      }
      process.stdout.write(lines.join('\n') + '\n')
    }
    if (report.serverVersionNum < 140000) problems.push(`PostgreSQL ${report.serverVersion} is older than 14`)
    return problems.length === 0 ? EXIT.ok : EXIT.problems
  } finally {
    await repository.close()
  }
}

async function main(argv) {
  let options
  try {
    options = parseArgs(argv)
  } catch (error) {
    if (!(error instanceof UsageError)) throw error
    process.stderr.write(USAGE)
    return fail('usage', error.message, EXIT.usage)
  }
  if (options.help) {
    process.stdout.write(USAGE)
    return EXIT.ok
  }
  let pkg
  try {
    pkg = require('../index.js')
  } catch (error) {
    return fail(error?.code ?? 'load_error', error?.message ?? String(error), EXIT.nativeBinding)
  }
  try {
    if (options.command === 'check') return await check(pkg, options)
    if (options.command === 'prune') return await prune(pkg, options)
    if (options.command === 'erase') return await erase(pkg, options)
    const artifacts = pkg.createPostgresProfileStoreArtifacts({
      schema: options.schema,
      tablePrefix: options.tablePrefix,
      ...options.legacyTables,
    })
    const sql = options.command === 'schema' ? artifacts.schemaSql : artifacts.upgradeSql
    process.stdout.write(sql.endsWith('\n') ? sql : `${sql}\n`)
    return EXIT.ok
  } catch (error) {
    const code = typeof error?.code === 'string' ? error.code : 'error'
    const message = error?.message ?? String(error)
    if (code === 'validation_error') return fail(code, message, EXIT.usage)
    if (isConnectionError(error)) return fail(code, message, EXIT.connection)
    return fail(code, error?.sqlState ? `${message} (SQLSTATE ${error.sqlState})` : message, EXIT.other)
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code
  },
  (error) => {
    process.exitCode = fail('internal', error?.stack ?? String(error), EXIT.other)
  },
)
