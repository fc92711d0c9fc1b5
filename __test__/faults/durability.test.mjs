// Durability (issue 6): 10,000 saves of random 1–20 KB documents (unicode,
// deep nesting, large arrays) across ~2,000 profiles come back deep-equal, the
// audit log has one row per revision, and terminating the pool's backends in
// the middle of a stream of saves leaves nothing half-written.
//
// Measured on the 2-core development machine, debug build, shared with other
// suites: the 10,000 saves (~100 MB of JSON) take 30–36 s, the file ~40 s.

import assert from 'node:assert/strict'
import { describe, test } from 'node:test'

import { useDatabase } from '../helpers/database.mjs'
import { randomDocument } from './documents.mjs'
import { assertOnly, failOnSilentExit, jsonRoundTrip, outcome, prng, sleep, tally, uid, withoutRevision } from './helpers.mjs'

failOnSilentExit()

const db = await useDatabase({ schemaPrefix: 'fdur' })
await db.repository('native').ensureSchema()

// The issue asks for 10,000 saves; FAULT_DURABILITY_SAVES scales the run (the
// profile count follows at one per five saves) when time is short.
const SAVES = Number(process.env.FAULT_DURABILITY_SAVES ?? 10000)
const PROFILES = Math.max(1, Math.round(SAVES / 5))
const IN_FLIGHT = 32

/** Runs `count` tasks with at most `limit` in flight; `task(i)` returns a promise. */
async function pooled(count, limit, task) {
  let next = 0
  const results = new Array(count)
  const worker = async () => {
    while (next < count) {
      const i = next++
      results[i] = await task(i)
    }
  }
  await Promise.all(Array.from({ length: limit }, worker))
  return results
}

describe('durability', () => {
  test(`${SAVES} saves of random 1–20 KB documents (${IN_FLIGHT} in flight, ${PROFILES} profiles) load back deep-equal`, async (t) => {
    const repository = db.repository('native')
    const rng = prng(0x5eed)
    const prefix = uid('dur')
    const saves = new Array(PROFILES).fill(0)
    // The document of the highest revision each profile got back.
    const latest = new Array(PROFILES).fill(null)
    let bytes = 0

    const started = performance.now()
    const results = await pooled(SAVES, IN_FLIGHT, async (i) => {
      const p = i < PROFILES ? i : rng.int(0, PROFILES - 1)
      const doc = randomDocument(rng, {
        profileId: `${prefix}-${p}`,
        userId: `${prefix}-user-${p % 300}`,
        targetBytes: rng.int(1024, 20480),
        version: i,
      })
      saves[p]++
      const result = await outcome(repository.saveProfile(doc), 60000)
      if (result.ok) {
        bytes += JSON.stringify(doc).length
        const revision = result.value.metadata.revision
        if (latest[p] === null || latest[p].revision < revision) latest[p] = { revision, doc }
      }
      return result
    })
    const saveMs = performance.now() - started
    assertOnly(results, [], 'saves')

    const loadStarted = performance.now()
    const loaded = await pooled(PROFILES, IN_FLIGHT, (p) => outcome(repository.loadProfile(`${prefix}-${p}`), 60000))
    const loadMs = performance.now() - loadStarted
    t.diagnostic(
      `${SAVES} saves (${(bytes / 1e6).toFixed(1)} M UTF-16 units of JSON) in ${Math.round(saveMs)} ms ` +
        `(${Math.round((SAVES / saveMs) * 1000)}/s); ${PROFILES} loads in ${Math.round(loadMs)} ms`,
    )
    assertOnly(loaded, [], 'loads')

    let mismatches = 0
    for (let p = 0; p < PROFILES; p++) {
      const got = loaded[p].value
      assert.equal(got.metadata.revision, saves[p], `profile ${p}: stored revision equals its number of saves`)
      assert.equal(latest[p].revision, saves[p])
      try {
        assert.deepStrictEqual(withoutRevision(got), withoutRevision(latest[p].doc))
      } catch (error) {
        if (++mismatches === 1) t.diagnostic(`first mismatch, profile ${p}: ${error.message.slice(0, 2000)}`)
      }
    }
    assert.equal(mismatches, 0, `${mismatches} of ${PROFILES} documents did not come back deep-equal`)

    // One audit row per revision, 1..revision, for every profile.
    const { rows } = await db.sql(
      `select p.profile_id, p.revision, count(a.revision)::int as audits, min(a.revision) as min_rev,
              max(a.revision) as max_rev, count(distinct a.revision)::int as distinct_revs
       from "${db.schema}".pson_profiles p
       left join "${db.schema}".pson_profile_audit a on a.profile_id = p.profile_id
       where p.profile_id like $1
       group by p.profile_id, p.revision`,
      [`${prefix}-%`],
    )
    assert.equal(rows.length, PROFILES)
    const bad = rows.filter(
      (r) => r.audits !== r.revision || r.distinct_revs !== r.revision || r.min_rev !== 1 || r.max_rev !== r.revision,
    )
    assert.deepEqual(bad.slice(0, 5), [], `${bad.length} profiles whose audit rows are not exactly 1..revision`)

    // The newest audit snapshot is the current document, for a sample.
    for (let p = 0; p < PROFILES; p += 97) {
      const snapshot = await repository.loadProfileRevision(`${prefix}-${p}`, saves[p])
      assert.deepStrictEqual(snapshot, loaded[p].value)
    }
  })

  test('terminating the backends in the middle of saves leaves nothing half-written', async (t) => {
    const applicationName = uid('fault-durability-kill')
    const repository = db.repository('native', { applicationName, max: 10 })
    const rng = prng(0xdead)
    const prefix = uid('kill')
    const profiles = 300
    const total = 3000
    const attempts = new Array(profiles).fill(0)
    const succeeded = []
    let done = 0
    const kills = []

    const killer = (async () => {
      for (const at of [0.2, 0.45, 0.7]) {
        while (done < total * at) await sleep(5)
        const { rows } = await db.sql(
          `select count(*) filter (where pg_terminate_backend(pid))::int as killed from pg_stat_activity
           where application_name = $1 and pid <> pg_backend_pid()`,
          [applicationName],
        )
        kills.push(rows[0].killed)
      }
    })()

    const results = await pooled(total, IN_FLIGHT, async (i) => {
      const p = i < profiles ? i : rng.int(0, profiles - 1)
      const doc = randomDocument(rng, {
        profileId: `${prefix}-${p}`,
        userId: `${prefix}-user-${p % 40}`,
        targetBytes: rng.int(1024, 6000),
        version: i,
      })
      attempts[p]++
      const result = await outcome(repository.saveProfile(doc), 20000)
      done++
      if (result.ok) succeeded.push({ p, revision: result.value.metadata.revision, doc })
      return result
    })
    await killer
    const counts = assertOnly(results, ['connection_error'], 'saves around the kills')
    t.diagnostic(`backends terminated per kill: ${kills.join(', ')}; outcomes ${JSON.stringify(counts)}`)
    assert.ok(kills.every((k) => k > 0), 'each kill terminated at least one backend')

    // Every profile: revision = max(audit revision) = number of audit rows,
    // revisions exactly 1..revision, and one index row.
    const { rows } = await db.sql(
      `select p.profile_id, p.revision,
              (select count(*)::int from "${db.schema}".pson_profile_audit a where a.profile_id = p.profile_id) as audits,
              (select count(distinct revision)::int from "${db.schema}".pson_profile_audit a where a.profile_id = p.profile_id) as distinct_revs,
              (select min(revision) from "${db.schema}".pson_profile_audit a where a.profile_id = p.profile_id) as min_rev,
              (select max(revision) from "${db.schema}".pson_profile_audit a where a.profile_id = p.profile_id) as max_rev,
              (select count(*)::int from "${db.schema}".pson_domain_index d where d.profile_id = p.profile_id) as index_rows,
              (p.document #>> '{metadata,revision}')::int as doc_revision
       from "${db.schema}".pson_profiles p where p.profile_id like $1`,
      [`${prefix}-%`],
    )
    const orphanAudit = await db.sql(
      `select count(*)::int as n from "${db.schema}".pson_profile_audit a
       where a.profile_id like $1 and not exists (select 1 from "${db.schema}".pson_profiles p where p.profile_id = a.profile_id)`,
      [`${prefix}-%`],
    )
    assert.equal(orphanAudit.rows[0].n, 0, 'no audit rows without a profile')
    const bad = rows.filter(
      (r) =>
        r.revision !== r.max_rev ||
        r.audits !== r.revision ||
        r.distinct_revs !== r.revision ||
        r.min_rev !== 1 ||
        r.index_rows !== 1 ||
        r.doc_revision !== r.revision,
    )
    assert.deepEqual(bad.slice(0, 5), [], `${bad.length} profiles where profile, audit and index disagree`)

    const byId = new Map(rows.map((r) => [r.profile_id, r]))
    for (let p = 0; p < profiles; p++) {
      const row = byId.get(`${prefix}-${p}`)
      const ok = succeeded.filter((s) => s.p === p).length
      if (row === undefined) {
        assert.equal(ok, 0, `profile ${p} has successful saves but no row`)
        continue
      }
      assert.ok(row.revision >= ok && row.revision <= attempts[p], `profile ${p}: revision ${row.revision}, ok ${ok}, attempts ${attempts[p]}`)
    }

    // Every acknowledged save is in the audit log with its document.
    const sample = succeeded.filter((_, k) => k % 7 === 0)
    const snapshots = await Promise.all(
      sample.map((s) => repository.loadProfileRevision(`${prefix}-${s.p}`, s.revision)),
    )
    sample.forEach((s, k) => {
      assert.deepStrictEqual(withoutRevision(snapshots[k]), withoutRevision(jsonRoundTrip(s.doc)))
      assert.equal(snapshots[k].metadata.revision, s.revision)
    })
    t.diagnostic(`checked ${rows.length} profiles and ${sample.length} acknowledged snapshots; ${JSON.stringify(tally(results))}`)
  })
})
