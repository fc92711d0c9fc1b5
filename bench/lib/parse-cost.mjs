// What JSON.parse of one stored document costs on this machine: every
// loadProfile pays it on the Node main thread (the API returns objects),
// while pgbench discards the text. Measured on the documents as the server
// sends them (`document::text`), after a warm-up, as the median of a few
// passes over a sample.

import { tableNames } from './seed.mjs'

const SAMPLE = 2_000
const PASSES = 7

/** Microseconds per JSON.parse of one of the scenario's stored documents. */
export async function parseMicros(admin, schema) {
  const { rows } = await admin.query(`select document::text as text from ${tableNames(schema).profiles} limit ${SAMPLE}`)
  const texts = rows.map((row) => row.text)
  if (texts.length === 0) return null
  let keep = 0
  const pass = () => {
    const started = performance.now()
    for (const text of texts) keep += JSON.parse(text) === null ? 0 : 1
    return ((performance.now() - started) * 1000) / texts.length
  }
  pass()
  const passes = Array.from({ length: PASSES }, pass).sort((a, b) => a - b)
  if (keep === 0) throw new Error('no document parsed')
  return passes[Math.floor(PASSES / 2)]
}
