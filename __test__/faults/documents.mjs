// Random PSON5-shaped documents of a given JSON size for the durability and
// fuzz suites: unicode (emoji, CJK, RTL, combining marks), escapes and
// control characters, ~20 levels of nesting, arrays of 1000 numbers.

import { randomNumber, randomText } from './helpers.mjs'

let pooled = null

/**
 * 256 Ki UTF-16 units of random text, made once per process, and its mean
 * UTF-8 bytes per unit. Pieces are cut from it (never inside a surrogate pair).
 */
function textPool(rng) {
  if (pooled === null) {
    const text = randomText(rng, 262144)
    pooled = { text, bytesPerUnit: Buffer.byteLength(text) / text.length }
  }
  return pooled
}

function cut(rng, pool, units) {
  const { text } = pool
  let start = rng.int(0, text.length - units - 2)
  let end = start + units
  if ((text.charCodeAt(start) & 0xfc00) === 0xdc00) start++
  if ((text.charCodeAt(end - 1) & 0xfc00) === 0xd800) end++
  return text.slice(start, end)
}

/** ~20 levels of alternating objects and arrays, with text and numbers at each level. */
function deepValue(rng, depth) {
  let leaf = { end: randomText(rng, rng.int(1, 8)), n: randomNumber(rng), ok: rng.bool(), nothing: null }
  for (let level = depth - 1; level >= 0; level--) {
    leaf =
      level % 3 === 2
        ? [level, randomText(rng, 3), leaf]
        : { level, [randomText(rng, rng.int(1, 6))]: randomNumber(rng), child: leaf }
  }
  return leaf
}

function numbers(rng, count) {
  const out = new Array(count)
  for (let i = 0; i < count; i++) out[i] = rng.bool(0.8) ? rng.int(-99999, 99999) : randomNumber(rng)
  return out
}

/**
 * A document whose JSON is about `targetBytes` UTF-8 bytes (at least ~1 KB:
 * the fixed part alone is that large).
 */
export function randomDocument(rng, { profileId, userId, targetBytes, version = 0 }) {
  const doc = {
    pson_version: '5.0',
    profile_id: profileId,
    user_id: userId,
    tenant_id: rng.bool(0.8) ? `tenant-${rng.int(1, 5)}` : null,
    consent: { granted: rng.bool(), scopes: ['core:read', randomText(rng, 6)] },
    domains: { active: ['core', rng.pick(['career', 'health', '領域', 'família'])], depth: 'standard' },
    layers: {
      observed: {
        [`core.${randomText(rng, 5)}`]: { value: randomText(rng, 12), confidence: rng.next(), source: 'test' },
        'core.escapes': { value: '"quoted" \\ back\\slash / \b\f\n\r\t \u0001\u001f \u2028\u2029 </script>' },
      },
    },
    deep: deepValue(rng, 20),
    metadata: {
      confidence: rng.next(),
      created_at: '2026-01-10T08:00:00.000Z',
      updated_at: new Date(Date.UTC(2026, 0, 1) + version * 1000).toISOString(),
      source_count: rng.int(0, 50),
      revision: rng.int(0, 5),
      version,
    },
  }
  let size = Buffer.byteLength(JSON.stringify(doc))
  const room = targetBytes - size
  if (room > 800) {
    doc.samples = numbers(rng, room > 7000 ? 1000 : 100)
    size += JSON.stringify(doc.samples).length + 11
  }
  const notes = []
  // Text pieces cut from a random pool until the target is reached (the size
  // is an estimate: "1–20 KB" is what matters, not exact sizes).
  const pool = textPool(rng)
  while (size < targetBytes) {
    const units = Math.max(1, Math.min(2000, Math.ceil((targetBytes - size) / pool.bytesPerUnit)))
    const piece = cut(rng, pool, units)
    notes.push(piece)
    size += Math.ceil(piece.length * pool.bytesPerUnit) + 3
  }
  if (notes.length > 0) doc.notes = notes
  return doc
}
