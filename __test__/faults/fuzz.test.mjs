// Bad input (issue 6): a seeded generator feeds ~2,000 random calls of
// saveProfile / loadProfile / listAuditEntries / writeUserProfileIndex, most
// of them invalid. Every outcome must be a success or a validation_error
// (not_found for loads of absent ids), never anything else and never a crash,
// and no rejected call may change a row: the invalid calls of each block run
// between two digests of the three tables, which must be equal.
//
// FAULT_FUZZ_SEED=<n> replays a run; the seed is printed as a diagnostic.

import assert from 'node:assert/strict'
import { appendFileSync } from 'node:fs'
import { describe, test } from 'node:test'

import { useDatabase } from '../helpers/database.mjs'
import { failOnSilentExit, jsonRoundTrip, outcome, prng, randomNumber, randomText, tableDigest, withoutRevision } from './helpers.mjs'

failOnSilentExit()

const db = await useDatabase({ schemaPrefix: 'ffuzz' })
await db.repository('native').ensureSchema()

const SEED = Number(process.env.FAULT_FUZZ_SEED ?? 20260601)
const CASES = 2000
const BLOCK = 50
const MAX_BYTES = 4096

const digest = () => tableDigest((text, params) => db.sql(text, params), db.schema)

// ---- the generator ----

function makeGenerator(rng) {
  const ids = Array.from({ length: 150 }, (_, i) => (i % 3 === 0 ? `fz-${i}-${randomText(rng, rng.int(1, 12))}` : `fz-${i}`))
  const users = Array.from({ length: 30 }, (_, i) => `fz-user-${i}-${randomText(rng, rng.int(0, 6))}`)
  const cursors = []
  let serial = 0
  const ascii = (length) => {
    let out = ''
    while (out.length < length) out += rng.next().toString(36).slice(2)
    return out.slice(0, length)
  }

  const validString = () => (rng.bool(0.3) ? '' : randomText(rng, rng.int(1, 30)))
  const validKey = () =>
    rng.pick([() => randomText(rng, rng.int(0, 10)), () => 'constructor', () => 'toString', () => '', () => 'a.b[0]', () => "'; drop table x; --"])()

  function validValue(depth) {
    const kind = depth > 6 ? rng.int(0, 3) : rng.int(0, 6)
    switch (kind) {
      case 0:
        return validString()
      case 1:
        return randomNumber(rng)
      case 2:
        return rng.pick([true, false, null])
      case 3:
        return rng.int(-5, 5)
      case 4: {
        const out = []
        for (let i = rng.int(0, 5); i > 0; i--) out.push(validValue(depth + 1))
        return out
      }
      default: {
        const out = {}
        for (let i = rng.int(0, 5); i > 0; i--) out[validKey()] = validValue(depth + 1)
        return out
      }
    }
  }

  function validDoc() {
    const doc = {
      profile_id: rng.pick(ids),
      user_id: rng.pick(users),
      body: validValue(0),
      extra: { [validKey()]: validValue(2), list: [validValue(3), validValue(3)] },
    }
    if (rng.bool(0.7)) doc.tenant_id = rng.pick([null, 'tenant-a', randomText(rng, 5)])
    if (rng.bool(0.7)) doc.metadata = { source_count: rng.pick([rng.int(0, 9), 'n/a', null]), updated_at: new Date(rng.int(0, 2e12)).toISOString() }
    if (rng.bool(0.3)) doc.domains = { active: [randomText(rng, 4), 'core'] }
    if (rng.bool(0.1)) doc.dropped = undefined // JSON drops undefined properties
    if (rng.bool(0.05)) {
      // An own "__proto__" key, as JSON.parse makes it.
      Object.defineProperty(doc, '__proto__', { value: { own: 'property' }, enumerable: true, writable: true, configurable: true })
    }
    return Buffer.byteLength(JSON.stringify(doc)) > MAX_BYTES ? { profile_id: doc.profile_id, user_id: doc.user_id } : doc
  }

  const loneSurrogate = () => rng.pick(['\ud800', '\udbff', '\udc00', '\udfff', 'a\ud83d', '\ude00b', '\ud83d\ud83d'])
  const badValue = () =>
    rng.pick([
      () => `x\u0000y`,
      () => '\u0000',
      () => `${randomText(rng, 3)}${loneSurrogate()}${randomText(rng, 3)}`,
      () => NaN,
      () => Infinity,
      () => -Infinity,
      () => 10n,
      () => BigInt(rng.int(0, 1e9)),
      () => () => 1,
      () => Symbol('s'),
      () => [1, undefined, 3],
      () => new Map([['a', 1]]),
      () => new Set([1]),
      () => new (class Point { x = 1 })(),
      () => new Uint8Array([1, 2]),
      () => /regex/,
      () => new WeakMap(),
    ])()

  /** A valid document with one bad thing placed at a random depth (a value or a key). */
  function poison(doc) {
    let node = doc
    for (let depth = rng.int(0, 4); depth > 0; depth--) {
      const child = {}
      node[`n${depth}`] = child
      node = child
    }
    switch (rng.int(0, 4)) {
      case 0: {
        node[rng.bool() ? 'bad\u0000key' : `bad${loneSurrogate()}key`] = 1
        break
      }
      case 1: {
        const cycle = { name: 'loop' }
        cycle.self = rng.bool() ? cycle : [cycle]
        node.cycle = cycle
        break
      }
      case 2:
        node.big = 'x'.repeat(MAX_BYTES + rng.int(1, 3000))
        break
      case 3:
        node.big = '😀'.repeat(Math.ceil(MAX_BYTES / 4) + rng.int(1, 100)) // bytes, not UTF-16 units, count
        break
      default:
        node.value = rng.bool(0.3) ? [validValue(5), badValue()] : badValue()
    }
    return doc
  }

  const badId = () =>
    rng.pick([undefined, null, 42, 0, true, {}, [], ['fz-1'], '', '\u0000', 'fz-\u0000', `fz-${loneSurrogate()}`, Symbol('id'), 1n, () => 'fz-1', new String('fz-1')])

  const validCursor = () => (cursors.length > 0 && rng.bool(0.6) ? rng.pick(cursors) : null)
  const cursorOf = (obj) => Buffer.from(JSON.stringify(obj)).toString('base64url')

  const validIndexRecord = () => {
    const count = rng.int(1, 5)
    const list = [...new Set(Array.from({ length: count }, () => rng.pick(ids)))]
    return {
      // One user per record: concurrent index writes of one user are not what this suite is about.
      user_id: `${rng.pick(users)}-idx-${serial++}`,
      latest_profile_id: rng.pick(list),
      profile_ids: list,
      updated_at: new Date(rng.int(0, 2e12)).toISOString(),
    }
  }

  /** `{ label, run(repository), expect: 'valid' | 'invalid' | 'either' }` */
  function nextCase() {
    const roll = rng.next()
    // ~40% valid, ~50% invalid, ~10% inputs the SPEC leaves to the package.
    if (roll < 0.4) {
      switch (rng.int(0, 5)) {
        case 0:
        case 1: {
          const doc = validDoc()
          const context = rng.bool(0.3) ? { request_id: randomText(rng, 8), n: rng.int(0, 9), nested: { a: [1, 'b'] } } : undefined
          return { label: 'save valid', expect: 'valid', doc, run: (r) => r.saveProfile(doc, context ? { context } : undefined) }
        }
        case 2: {
          const id = rng.bool(0.8) ? rng.pick(ids) : `fz-absent-${randomText(rng, 5)}`
          return { label: 'load valid', expect: 'load', run: (r) => r.loadProfile(id) }
        }
        case 3: {
          const id = rng.pick(ids)
          const options = { limit: rng.int(1, 1000), cursor: validCursor() }
          return {
            label: 'audit valid',
            expect: 'valid',
            run: async (r) => {
              const page = await r.listAuditEntries(id, options)
              if (page.nextCursor) cursors.push(page.nextCursor)
              return page
            },
          }
        }
        default: {
          const record = validIndexRecord()
          return { label: 'index valid', expect: 'valid', run: (r) => r.writeUserProfileIndex(record) }
        }
      }
    }
    if (roll < 0.9) {
      switch (rng.int(0, 9)) {
        case 0:
          return { label: 'save non-object', expect: 'invalid', run: (r) => r.saveProfile(rng.pick([null, undefined, 42, 'doc', [], [validDoc()], new Map(), new Date(), Object.create(null), () => 1])) }
        case 1: {
          const doc = validDoc()
          const field = rng.pick(['profile_id', 'user_id'])
          const value = badId()
          if (value === undefined) delete doc[field]
          else doc[field] = value
          return { label: `save bad ${field}`, expect: 'invalid', run: (r) => r.saveProfile(doc) }
        }
        case 2:
        case 3:
        case 4: {
          const doc = poison(validDoc())
          return { label: 'save poisoned document', expect: 'invalid', run: (r) => r.saveProfile(doc) }
        }
        case 5: {
          const doc = validDoc()
          const options = rng.pick([
            { expectedRevision: -1 },
            { expectedRevision: 1.5 },
            { expectedRevision: '1' },
            { expectedRevision: NaN },
            { expectedRevision: 2 ** 40 },
            { context: 'ctx' },
            { context: [1] },
            { context: { bad: 'a\u0000b' } },
            { context: { bad: loneSurrogate() } },
            { context: { bad: 1n } },
          ])
          return { label: 'save bad options', expect: 'invalid', run: (r) => r.saveProfile(doc, options) }
        }
        case 6: {
          const id = badId()
          return { label: 'load bad id', expect: 'invalid', run: (r) => r.loadProfile(id) }
        }
        case 7: {
          const bad = rng.pick([
            () => [badId(), {}],
            () => [rng.pick(ids), { limit: rng.pick([0, -1, 1001, 1.5, '10', NaN, null, Infinity]) }],
            () => [rng.pick(ids), { cursor: rng.pick(['garbage', '', 123, {}, [], 'eyJ2IjoxfQ', 'bm90IGpzb24']) }],
            () => [rng.pick(ids), { cursor: cursorOf(rng.pick([{ v: 2, before: 5 }, { v: 1, before: 0 }, { v: 1, before: -3 }, { v: 1, before: 1.5 }, { v: 1 }, null, [1]])) }],
            () => [rng.pick(ids), { context: { bad: '\u0000' } }],
          ])()
          return { label: 'audit bad arguments', expect: 'invalid', run: (r) => r.listAuditEntries(...bad) }
        }
        default: {
          const record = validIndexRecord()
          const breakIt = rng.pick([
            () => null,
            () => 'record',
            () => ({ ...record, user_id: badId() }),
            () => ({ ...record, latest_profile_id: badId() }),
            () => ({ ...record, latest_profile_id: 'fz-not-in-the-list' }),
            () => ({ ...record, profile_ids: 'fz-1' }),
            () => ({ ...record, profile_ids: [...record.profile_ids, record.profile_ids[0]] }),
            () => ({ ...record, profile_ids: [...record.profile_ids, badId()] }),
            () => ({ ...record, updated_at: rng.pick(['yesterday', '', 12345, null, new Date(), 'not-a-date']) }),
          ])
          const bad = breakIt()
          return { label: 'index bad record', expect: 'invalid', run: (r) => r.writeUserProfileIndex(bad) }
        }
      }
    }
    // Inputs that pass the JS checks but that the SPEC does not settle; they
    // must still be a success or a validation_error, never a database_error.
    switch (rng.int(0, 3)) {
      case 0: {
        const before = rng.pick([2 ** 31, 2 ** 31 + 7, 2 ** 40, Number.MAX_SAFE_INTEGER])
        const cursor = cursorOf({ v: 1, before })
        return { label: `audit crafted cursor before=${before}`, expect: 'either', run: (r) => r.listAuditEntries(rng.pick(ids), { cursor }) }
      }
      case 1: {
        const record = { ...validIndexRecord(), updated_at: rng.pick(['1', '2026', '2026-02-30', '0', 'foo 2026', '+275760-09-13T00:00:00.000Z']) }
        return { label: `index updated_at=${record.updated_at}`, expect: 'either', run: (r) => r.writeUserProfileIndex(record) }
      }
      case 2: {
        const length = rng.pick([3000, 5000, 9000])
        const doc = { profile_id: `fz-long-${ascii(length)}`, user_id: 'fz-long-user' }
        return { label: `save ${length}-character profile_id`, expect: 'either', run: (r) => r.saveProfile(doc) }
      }
      default: {
        const doc = { profile_id: `fz-long-owner-${serial++}`, user_id: `fz-long-user-${ascii(rng.pick([3000, 9000]))}` }
        return { label: 'save long user_id', expect: 'either', run: (r) => r.saveProfile(doc) }
      }
    }
  }

  return { nextCase }
}

// ---- the run ----

function describeOutcome(c, o) {
  return `${c.label}: ${o.hung ? 'never settled' : o.ok ? 'succeeded' : `${o.code} (${o.error?.message})`}`
}

function isValidationError(o) {
  return !o.ok && !o.hung && o.error instanceof Error && o.code === 'validation_error' && typeof o.error.field === 'string'
}

describe('fuzz', () => {
  test(`${CASES} seeded cases (seed ${SEED}): success or validation_error only; rejected calls change nothing`, async (t) => {
    t.diagnostic(`seed ${SEED} (FAULT_FUZZ_SEED to replay)`)
    const repository = db.repository('native', { maxDocumentBytes: MAX_BYTES })
    const rng = prng(SEED)
    const gen = makeGenerator(rng)
    const problems = []
    const stats = {}
    let current = await digest()

    for (let done = 0; done < CASES; done += BLOCK) {
      const cases = Array.from({ length: Math.min(BLOCK, CASES - done) }, () => gen.nextCase())
      const invalid = cases.filter((c) => c.expect === 'invalid')
      const valid = cases.filter((c) => c.expect === 'valid' || c.expect === 'load')
      const either = cases.filter((c) => c.expect === 'either')

      // Rejected calls, all at once, between two digests.
      const invalidOutcomes = await Promise.all(invalid.map((c) => outcome(c.run(repository), 10000)))
      invalid.forEach((c, i) => {
        stats[c.label] = (stats[c.label] ?? 0) + 1
        if (!isValidationError(invalidOutcomes[i])) problems.push(describeOutcome(c, invalidOutcomes[i]))
      })
      const afterInvalid = await digest()
      if (JSON.stringify(afterInvalid) !== JSON.stringify(current)) {
        problems.push(`block at case ${done}: rejected calls changed the tables: ${JSON.stringify(current)} -> ${JSON.stringify(afterInvalid)}`)
      }

      // Valid calls, all at once.
      const validOutcomes = await Promise.all(valid.map((c) => outcome(c.run(repository), 10000)))
      valid.forEach((c, i) => {
        const o = validOutcomes[i]
        stats[c.label] = (stats[c.label] ?? 0) + 1
        const fine = o.ok || (c.expect === 'load' && !o.hung && o.code === 'not_found')
        if (!fine) problems.push(describeOutcome(c, o))
        if (o.ok && c.doc) {
          try {
            assert.deepStrictEqual(withoutRevision(o.value), withoutRevision(jsonRoundTrip(c.doc)))
          } catch (error) {
            if (process.env.FAULT_FUZZ_DEBUG) appendFileSync(process.env.FAULT_FUZZ_DEBUG, error.message.slice(0, 3000) + '\n----\n')
            problems.push(`${c.label}: the returned document differs from the JSON of the input`)
          }
        }
      })

      // Undecided inputs one by one: a rejection must be a validation_error and change nothing.
      current = await digest()
      for (const c of either) {
        stats[c.label] = (stats[c.label] ?? 0) + 1
        const o = await outcome(c.run(repository), 10000)
        if (o.ok) {
          current = await digest()
          continue
        }
        if (!isValidationError(o)) problems.push(describeOutcome(c, o))
        const afterOne = await digest()
        if (JSON.stringify(afterOne) !== JSON.stringify(current)) {
          problems.push(`${c.label}: rejected, but changed the tables`)
          current = afterOne
        }
      }
    }

    t.diagnostic(`cases by kind: ${JSON.stringify(stats)}`)
    const distinct = [...new Set(problems.map((p) => p.replace(/\(.*\)$/s, '').trim()))]
    assert.deepEqual(distinct, [], `${problems.length} problems; examples:\n${[...new Set(problems)].slice(0, 15).join('\n')}`)
  })

  test('every invalid kind is also rejected in executor (pg) mode, changing nothing', async () => {
    const repository = db.repository('pg', { maxDocumentBytes: MAX_BYTES })
    const gen = makeGenerator(prng(SEED + 1))
    const before = await digest()
    const cases = []
    while (cases.length < 300) {
      const c = gen.nextCase()
      if (c.expect === 'invalid') cases.push(c)
    }
    const outcomes = await Promise.all(cases.map((c) => outcome(c.run(repository), 10000)))
    const bad = cases.map((c, i) => (isValidationError(outcomes[i]) ? null : describeOutcome(c, outcomes[i]))).filter(Boolean)
    assert.deepEqual(bad.slice(0, 10), [])
    assert.deepEqual(await digest(), before)
  })
})

// The fuzz's findings, pinned as plain cases so that each failure names one
// defect: inputs that pass the JS checks and then fail in the database.
describe('inputs the JS checks let through to the database', () => {
  const randomAscii = (rng, length) => {
    let out = ''
    while (out.length < length) out += rng.next().toString(36).slice(2)
    return out.slice(0, length)
  }

  async function rejectedAsValidation(run, field) {
    const before = await digest()
    const o = await outcome(run(), 10000)
    assert.equal(o.ok, false, 'rejected')
    assert.equal(o.code, 'validation_error', `${o.code}: ${o.error?.message} (sqlState ${o.error?.sqlState})`)
    assert.equal(o.error.field, field)
    assert.deepEqual(await digest(), before)
  }

  test('a 3000-character profile_id is a validation_error, not a database_error (btree row limit)', async () => {
    const repository = db.repository('native')
    const id = `fz-pin-${randomAscii(prng(1), 3000)}`
    await rejectedAsValidation(() => repository.saveProfile({ profile_id: id, user_id: 'pin-user' }), 'profile_id')
  })

  test('a 3000-character user_id is a validation_error, not a database_error (btree row limit)', async () => {
    const repository = db.repository('native')
    const user = `fz-pin-${randomAscii(prng(2), 3000)}`
    await rejectedAsValidation(() => repository.saveProfile({ profile_id: 'fz-pin-long-user', user_id: user }), 'user_id')
  })

  test('a crafted audit cursor beyond the integer range is a validation_error, not a database_error', async () => {
    const repository = db.repository('native')
    const cursor = Buffer.from(JSON.stringify({ v: 1, before: 2 ** 31 })).toString('base64url')
    await rejectedAsValidation(() => repository.listAuditEntries('fz-1', { cursor }), 'cursor')
  })

  for (const updatedAt of ['2026-02-30', '2026', '1']) {
    test(`writeUserProfileIndex with updated_at '${updatedAt}' (Date.parse accepts it) is a validation_error`, async () => {
      const repository = db.repository('native')
      const record = { user_id: 'fz-pin-user', latest_profile_id: 'fz-1', profile_ids: ['fz-1'], updated_at: updatedAt }
      await rejectedAsValidation(() => repository.writeUserProfileIndex(record), 'updated_at')
    })
  }
})
