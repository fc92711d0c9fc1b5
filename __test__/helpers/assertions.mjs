// Small helpers that test files used to write for themselves: one copy here.

import assert from 'node:assert/strict'
import { after } from 'node:test'

/** The rejection of `promise`; fails the test when it resolves. */
export async function rejection(promise) {
  try {
    await promise
  } catch (error) {
    return error
  }
  assert.fail('expected a rejection')
}

/**
 * `{ n, digest }` of a table's rows (md5 over every row's text, in a stable
 * order), to prove that a call changed nothing. `query(text)` resolves to
 * pg's `{ rows }`; `row` is the SQL of a row's text (alias `t`).
 */
export async function tableDigest(query, table, row = 't::text') {
  const { rows } = await query(
    `select count(*)::int as n, md5(coalesce(string_agg(${row}, '|' order by ${row}), '')) as digest from ${table} t`,
  )
  return rows[0]
}

/**
 * Node 20's runner counts a file whose process ends early (a promise that
 * never settles, a crash in a callback) as passing: make that a failure.
 */
export function failIfUnfinished(file) {
  let finished = false
  after(() => {
    finished = true
  })
  process.on('exit', () => {
    if (!finished) {
      console.error(`${file}: the process exited before its tests finished (an operation never settled or crashed)`)
      process.exitCode = 1
    }
  })
}
