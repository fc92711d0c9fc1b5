// Read replicas against a primary and two hot standbys made for this file:
// reads are served by replicas and writes never are; with replay paused on one
// standby every read sees this repository's writes (and a token's, in another
// repository); a lagging standby leaves rotation.

import assert from 'node:assert/strict'
import diagnostics from 'node:diagnostics_channel'
import { test } from 'node:test'

import pg from 'pg'

import { TRACING_CHANNEL, createPostgresProfileStoreRepository } from '../../index.mjs'
import { failIfUnfinished, uniqueId } from '../helpers/profiles.mjs'
import { profileDocument, servedBy, until, useReplicaCluster } from './helpers.mjs'

failIfUnfinished(import.meta.url)

const { cluster, repository: replicated, track } = await useReplicaCluster({ standbys: 2 })
const [standby1, standby2] = cluster.standbys
const primaryKey = `primary ${cluster.primary.address}`
const replicaKeys = cluster.standbys.map((standby) => `replica ${standby.address}`)

const READS = [
  'loadProfile',
  'loadProfileJson',
  'loadProfilesJson',
  'readCurrentProfile',
  'profileExists',
  'loadProfileByUserId',
  'findProfilesByUserId',
  'listProfileRevisions',
  'listProfileRevisionNumbers',
  'loadProfileRevision',
  'listAuditEntries',
  'readUserProfileIndex',
]

async function inRotation(repository, count = 2) {
  await until(() => repository.replicaStatus().filter((s) => s.inRotation).length === count, `${count} replicas in rotation`)
}

async function everyRead(repository, profileId, userId) {
  await repository.loadProfile(profileId)
  await repository.loadProfileJson(profileId)
  await repository.loadProfilesJson([profileId])
  await repository.readCurrentProfile(profileId)
  await repository.profileExists(profileId)
  await repository.loadProfileByUserId(userId)
  await repository.findProfilesByUserId(userId)
  await repository.listProfileRevisions(profileId)
  await repository.listProfileRevisionNumbers(profileId)
  await repository.loadProfileRevision(profileId, 1)
  await repository.listAuditEntries(profileId)
  await repository.readUserProfileIndex(userId)
}

test('reads are served by the replicas (both, round robin) and writes never', async () => {
  const { repository, events } = replicated()
  await inRotation(repository)
  const ids = Array.from({ length: 20 }, () => [uniqueId('rr'), uniqueId('user')])
  for (const [profileId, userId] of ids) {
    const saved = await repository.saveProfile(profileDocument(profileId, userId))
    await repository.saveProfile(saved)
  }
  await repository.writeUserProfileIndex({ user_id: ids[0][1], latest_profile_id: ids[0][0], profile_ids: [ids[0][0]], updated_at: '2026-01-01T00:00:00.000Z' })
  await repository.deleteProfile(ids[19][0])
  const writes = events.splice(0)
  assert.deepEqual(new Set(writes.map((e) => e.server.role)), new Set(['primary']))
  assert.deepEqual(new Set(writes.map((e) => e.reason)), new Set(['primary']))

  // Once both standbys have replayed the writes, every read runs on one of them.
  await cluster.waitForReplay()
  await until(() => repository.replicaStatus().every((s) => s.inRotation), 'the standbys checked again')
  for (const [profileId, userId] of ids.slice(0, 19)) await everyRead(repository, profileId, userId)
  assert.deepEqual(new Set(events.map((e) => e.operation)), new Set(READS))
  const counts = servedBy(events)
  assert.equal(counts[primaryKey], undefined, `no read on the primary: ${JSON.stringify(counts)}`)
  for (const key of replicaKeys) assert.ok(counts[key] > 0, `${key} served reads: ${JSON.stringify(counts)}`)
  assert.equal(counts[replicaKeys[0]] + counts[replicaKeys[1]], 19 * READS.length)
  assert.deepEqual(new Set(events.map((e) => e.reason)), new Set(['replica']))
})

test('the tracing context (and so the OpenTelemetry span) names the server that served the call', async () => {
  const { repository, events } = replicated()
  await inRotation(repository)
  const [profileId, userId] = [uniqueId('traced'), uniqueId('user')]
  await repository.saveProfile(profileDocument(profileId, userId))
  await cluster.waitForReplay()
  await until(() => repository.replicaStatus().every((s) => s.inRotation), 'the standbys checked again')
  const traced = []
  const recorder = { asyncEnd: (ctx) => traced.push(ctx) }
  const channel = diagnostics.tracingChannel(TRACING_CHANNEL)
  channel.subscribe(recorder)
  try {
    events.length = 0
    await repository.loadProfile(profileId)
    await repository.findProfilesByUserId(userId)
    await repository.saveProfile(await repository.loadProfile(profileId))
  } finally {
    channel.unsubscribe(recorder)
  }
  assert.equal(traced.length, 4)
  assert.deepEqual(
    traced.map((ctx) => `${ctx.operation} ${ctx.serverAddress}:${ctx.serverPort}`),
    events.map((event) => `${event.operation} ${event.server.address}`),
  )
  assert.equal(events.at(-1).server.role, 'primary')
  assert.ok(events.slice(0, 2).every((event) => event.server.role === 'replica'), JSON.stringify(events.map((e) => e.server)))
})

test('replay paused on one standby: 1,000 save-then-load and 200 save-then-find pairs see their own write', async () => {
  // A lag limit no test reaches: the paused standby stays in rotation, so its stale answers must be caught.
  const { repository, events } = replicated({ maxReplicaLagMillis: 2 ** 31 - 1 })
  await inRotation(repository)
  await cluster.query(standby1, 'select pg_wal_replay_pause()')
  try {
    const profiles = Array.from({ length: 10 }, () => ({ id: uniqueId('ryw'), user: uniqueId('user'), doc: null }))
    for (let i = 0; i < 1000; i++) {
      const profile = profiles[i % profiles.length]
      profile.doc = await repository.saveProfile(profile.doc ?? profileDocument(profile.id, profile.user))
      const loaded = await (i % 2 === 0 ? repository.loadProfile(profile.id) : repository.readCurrentProfile(profile.id))
      assert.equal(loaded.metadata.revision, profile.doc.metadata.revision, `pair ${i}`)
      const text = await repository.loadProfileJson(profile.id)
      assert.equal(JSON.parse(text).metadata.revision, profile.doc.metadata.revision, `pair ${i} (JSON)`)
    }
    const userId = uniqueId('user')
    const mine = []
    for (let i = 0; i < 200; i++) {
      const id = uniqueId('find')
      await repository.saveProfile(profileDocument(id, userId))
      mine.push(id)
      assert.deepEqual(new Set(await repository.findProfilesByUserId(userId)), new Set(mine), `find pair ${i}`)
      if (i % 20 === 0) {
        const page = await repository.listAuditEntries(id)
        assert.equal(page.entries.length, 1)
        assert.equal(await repository.profileExists(id), true)
      }
    }
    // The paused standby answered loads with older revisions, which were read again from the primary.
    const counts = servedBy(events.filter((e) => e.operation === 'loadProfile' || e.operation === 'readCurrentProfile'))
    assert.ok(events.some((e) => e.reason === 'primary-read-your-writes'), 'stale answers were re-read from the primary')
    const [{ revision: pausedRevision }] = await cluster.query(
      standby1,
      `select max((document #>> '{metadata,revision}')::int) as revision from pson_profiles where profile_id = any($1)`,
      [profiles.map((p) => p.id)],
    )
    assert.ok((pausedRevision ?? 0) < 100, `the paused standby is behind (revision ${pausedRevision}); served ${JSON.stringify(counts)}`)
  } finally {
    await cluster.query(standby1, 'select pg_wal_replay_resume()')
  }
})

test('a lagging standby leaves rotation past maxReplicaLagMillis and rejoins when it catches up', async () => {
  const { repository, events } = replicated({ maxReplicaLagMillis: 300 })
  await inRotation(repository)
  await cluster.query(standby1, 'select pg_wal_replay_pause()')
  try {
    const writer = track(createPostgresProfileStoreRepository({ connectionString: cluster.primary.url }))
    const id = uniqueId('lag')
    let doc = await writer.saveProfile(profileDocument(id, uniqueId('user')))
    // Writes keep the primary ahead of the paused standby until the lag shows.
    await until(async () => {
      doc = await writer.saveProfile(doc)
      return repository.replicaStatus()[0].inRotation === false
    }, 'the paused standby out of rotation')
    assert.ok(repository.replicaStatus()[0].lagMillis > 300)
    events.length = 0
    await cluster.waitForReplay().catch(() => {})
    for (let i = 0; i < 50; i++) await repository.findProfilesByUserId(doc.user_id)
    const counts = servedBy(events)
    assert.equal(counts[replicaKeys[0]], undefined, JSON.stringify(counts))
    assert.equal(counts[replicaKeys[1]], 50, JSON.stringify(counts))
  } finally {
    await cluster.query(standby1, 'select pg_wal_replay_resume()')
  }
  await inRotation(repository)
})

test('a consistency token carried to a second repository (another process) gives it the first one\'s writes', async () => {
  const writer = track(createPostgresProfileStoreRepository({ connectionString: cluster.primary.url }))
  const { repository: reader, events } = replicated({ maxReplicaLagMillis: 2 ** 31 - 1 })
  await inRotation(reader)
  await cluster.query(standby1, 'select pg_wal_replay_pause()')
  try {
    const id = uniqueId('token')
    const userId = uniqueId('user')
    let doc = profileDocument(id, userId)
    for (let i = 0; i < 200; i++) {
      doc = await writer.saveProfile(doc)
      const token = await writer.consistencyToken(id)
      assert.equal(typeof token, 'string')
      const loaded = await reader.loadProfile(id, { after: token })
      assert.equal(loaded.metadata.revision, doc.metadata.revision, `pair ${i}`)
      const revisions = await reader.listProfileRevisions(id, { after: token })
      assert.equal(revisions.at(-1), doc.metadata.revision, `pair ${i} (revisions)`)
      if (i % 10 === 0) {
        const other = uniqueId('token-find')
        await writer.saveProfile(profileDocument(other, userId))
        const found = await reader.findProfilesByUserId(userId, { after: await writer.consistencyToken() })
        assert.ok(found.includes(other), `find ${i}`)
      }
    }
    // A replicated writer's token names the profile's revision too.
    const { repository: replicatedWriter } = replicated()
    doc = await replicatedWriter.saveProfile(doc)
    const loaded = await reader.loadProfile(id, { after: await replicatedWriter.consistencyToken(id) })
    assert.equal(loaded.metadata.revision, doc.metadata.revision)
    // The guarantee was needed: the paused standby still has an older revision.
    const [{ revision }] = await cluster.query(
      standby1,
      `select coalesce(max(revision), 0) as revision from pson_profiles where profile_id = $1`,
      [id],
    )
    assert.ok(revision < doc.metadata.revision, `paused standby at ${revision}, saved ${doc.metadata.revision}`)
    assert.ok(events.length > 0)
  } finally {
    await cluster.query(standby1, 'select pg_wal_replay_resume()')
  }
})

test('a bad token or replica option is a validation_error and changes nothing', async () => {
  const { repository } = replicated()
  for (const after of ['nope', 42, 'pson5c1.AAAA', `pson5c1.${Buffer.from('{"l":"zz"}').toString('base64url')}`]) {
    await assert.rejects(repository.loadProfile('x', { after }), { code: 'validation_error', field: 'after' })
    await assert.rejects(repository.findProfilesByUserId('x', { after }), { code: 'validation_error', field: 'after' })
  }
  const bad = [
    [{ replicas: 'postgres://x' }, 'replicas'],
    [{ replicas: [] }, 'replicas'],
    [{ replicas: [42] }, 'replicas[0]'],
    [{ replicas: [{ connectionString: cluster.standbys[0].url, schema: 'other' }] }, 'replicas[0].schema'],
    [{ replicas: [cluster.standbys[0].url], maxReplicaLagMillis: -1 }, 'maxReplicaLagMillis'],
    [{ replicas: [cluster.standbys[0].url], replicaWaitMillis: 1.5 }, 'replicaWaitMillis'],
    [{ replicas: [cluster.standbys[0].url], replicaCheckMillis: 'soon' }, 'replicaCheckMillis'],
  ]
  for (const [options, field] of bad) {
    assert.throws(() => createPostgresProfileStoreRepository({ connectionString: cluster.primary.url, ...options }), {
      code: 'validation_error',
      field,
    })
  }
  // Without replicas, a token is accepted (the primary is always current) and the repository hands them out.
  const plain = track(createPostgresProfileStoreRepository({ connectionString: cluster.primary.url }))
  const token = await plain.consistencyToken()
  assert.match(token, /^pson5c1\./)
  assert.equal(plain.replicaStatus(), null)
})

test('executor mode: replicas as pg pools (and readExec) route and read their writes the same way', async () => {
  const primaryPool = new pg.Pool({ connectionString: cluster.primary.url, max: 4 })
  const pools = cluster.standbys.map((standby) => new pg.Pool({ connectionString: standby.url, max: 4 }))
  const events = []
  const repository = track(
    createPostgresProfileStoreRepository({
      exec: primaryPool,
      replicas: [pools[0]],
      readExec: pools[1],
      maxReplicaLagMillis: 2 ** 31 - 1,
      onEvent: (event) => events.push(event),
    }),
  )
  try {
    await inRotation(repository)
    await cluster.query(standby2, 'select pg_wal_replay_pause()')
    const id = uniqueId('exec')
    let doc = profileDocument(id, uniqueId('user'))
    for (let i = 0; i < 100; i++) {
      doc = await repository.saveProfile(doc)
      assert.equal((await repository.loadProfile(id)).metadata.revision, doc.metadata.revision)
      assert.deepEqual(await repository.findProfilesByUserId(doc.user_id), [id])
    }
    await cluster.query(standby2, 'select pg_wal_replay_resume()')
    await cluster.waitForReplay()
    await until(() => repository.replicaStatus().every((s) => s.lagMillis === 0), 'the standbys checked again')
    events.length = 0
    for (let i = 0; i < 10; i++) await repository.loadProfile(id)
    const counts = servedBy(events)
    assert.deepEqual(Object.keys(counts).sort(), replicaKeys.slice().sort(), JSON.stringify(counts))
  } finally {
    await cluster.query(standby2, 'select pg_wal_replay_resume()').catch(() => {})
    await repository.close()
    await primaryPool.end()
    for (const pool of pools) await pool.end()
  }
})

test('history with replay paused on one standby: reverts, erasures and user deletions are read back; history reads run on replicas', async () => {
  const { repository, events } = replicated({ maxReplicaLagMillis: 2 ** 31 - 1 })
  await inRotation(repository)
  await cluster.query(standby1, 'select pg_wal_replay_pause()')
  const kept = []
  try {
    for (let i = 0; i < 20; i++) {
      const id = uniqueId('hist')
      const user = uniqueId('user')
      const first = await repository.saveProfile(profileDocument(id, user))
      const secret = { value: `secret-${i}`, confidence: 1 }
      await repository.saveProfile({ ...first, layers: { ...first.layers, observed: { note: first.layers.observed.note, secret } } })
      assert.equal((await repository.revertProfile(id, 1)).metadata.revision, 3)
      assert.equal((await repository.loadProfile(id)).metadata.revision, 3, `revert ${i}`)
      assert.equal(JSON.parse(await repository.loadProfileJson(id)).metadata.revision, 3, `revert ${i} (JSON)`)
      assert.equal((await repository.listAuditEntries(id, { limit: 1 })).entries[0].reverted_from, 1)
      assert.equal((await repository.eraseFromHistory(id, '/layers/observed/secret')).revision, 4)
      const loaded = await repository.loadProfile(id)
      assert.equal(loaded.metadata.revision, 4, `erase ${i}`)
      assert.equal((await repository.loadProfileRevision(id, 2)).layers.observed.secret, undefined, `erase ${i} (snapshot)`)
      assert.deepEqual(await repository.diffRevisions(id, 3, 4), [{ op: 'replace', path: '/metadata/revision', value: 4 }])
      assert.equal((await repository.blameProfile(id)).find((entry) => entry.path === '/metadata').revision, 4)
      if (i % 2 === 0) {
        assert.deepEqual(await repository.deleteProfilesByUserId(user), { profileIds: [id], auditRows: 4 })
        assert.equal(await repository.profileExists(id), false, `delete ${i}`)
        assert.equal(await repository.readCurrentProfile(id), null, `delete ${i} (load)`)
      } else {
        kept.push(id)
      }
    }
    // A merge reads the revision it saves over from the primary.
    const id = uniqueId('merge')
    const base = await repository.saveProfile(profileDocument(id, uniqueId('user')))
    await repository.saveProfile({ ...base, consent: { granted: false, scopes: [] } })
    const merged = await repository.saveProfile(
      { ...base, domains: { active: ['core', 'career'] } },
      { expectedRevision: 1, merge: 'disjoint-paths' },
    )
    assert.deepEqual([merged.metadata.revision, merged.consent.granted, merged.domains.active], [3, false, ['core', 'career']])
    assert.deepEqual(await repository.loadProfile(id), merged)
  } finally {
    await cluster.query(standby1, 'select pg_wal_replay_resume()')
  }
  // Caught up: the history reads run on the replicas.
  await cluster.waitForReplay()
  await until(() => repository.replicaStatus().every((s) => s.inRotation), 'the standbys checked again')
  events.length = 0
  for (const id of kept) {
    await repository.diffRevisions(id, 1, 4)
    await repository.loadProfile(id, { asOf: '2999-01-01T00:00:00Z' })
    await repository.blameProfile(id)
  }
  const counts = servedBy(events)
  assert.equal(counts[primaryKey], undefined, `no history read on the primary: ${JSON.stringify(counts)}`)
  assert.equal((counts[replicaKeys[0]] ?? 0) + (counts[replicaKeys[1]] ?? 0), kept.length * 3, JSON.stringify(counts))
})

test('history writes (revert, erase, delete by user) are seen by the next loads though both standbys are paused', async () => {
  const { repository, events } = replicated({ maxReplicaLagMillis: 2 ** 31 - 1, replicaWaitMillis: 10 })
  await inRotation(repository)
  const userId = uniqueId('user')
  const [a, b, c] = [uniqueId('hist'), uniqueId('hist'), uniqueId('hist')]
  let docA = await repository.saveProfile(profileDocument(a, userId))
  docA = await repository.saveProfile({ ...docA, layers: { ...docA.layers, inferred: { mood: { value: 'calm' } } } })
  const docB = await repository.saveProfile(profileDocument(b, userId))
  await repository.saveProfile(profileDocument(c, uniqueId('user')))
  await cluster.waitForReplay()
  await until(() => repository.replicaStatus().every((s) => s.lagMillis === 0), 'the standbys checked again')
  for (const standby of cluster.standbys) await cluster.query(standby, 'select pg_wal_replay_pause()')
  try {
    // The standbys have every profile at its last saved revision; the primary moves on without them.
    const reverted = await repository.revertProfile(a, 1)
    assert.equal(reverted.metadata.revision, 3)
    assert.equal((await repository.loadProfile(a)).metadata.revision, 3)
    assert.equal(JSON.parse(await repository.loadProfileJson(a)).metadata.revision, 3)
    const erased = await repository.eraseFromHistory(c, '/layers/observed/note')
    const loadedC = await repository.loadProfile(c)
    assert.equal(loadedC.metadata.revision, erased.revision)
    assert.equal(loadedC.layers.observed.note, undefined)
    const removed = await repository.deleteProfilesByUserId(userId)
    assert.deepEqual(new Set(removed.profileIds), new Set([a, docB.profile_id]))
    await assert.rejects(repository.loadProfile(b), { code: 'not_found' })
    assert.equal(await repository.profileExists(a), false)
    assert.deepEqual(await repository.findProfilesByUserId(userId), [])
    // The paused standbys still have them: the answers came from the primary.
    const [row] = await cluster.query(cluster.standbys[0], 'select count(*)::int as n from pson_profiles where user_id = $1', [userId])
    assert.equal(row.n, 2)
    assert.ok(events.some((e) => e.operation === 'loadProfile' && e.server.role === 'primary'))
  } finally {
    for (const standby of cluster.standbys) await cluster.query(standby, 'select pg_wal_replay_resume()')
  }
})
