// Read-replica rows: a primary and two hot standbys started here (on this
// machine, so the three servers share its cores), the same closed-loop calls
// through a repository without replicas and through one with both standbys,
// in interleaved rounds, with the share of calls each server served (from the
// calls' events). Run in this process (not a fresh one per row, unlike the
// contender rows): both configurations pay the same.

import { startReplicaCluster } from '../../scripts/replica-cluster.mjs'
import { createPostgresProfileStoreRepository } from '../../index.mjs'
import { closedLoop } from './loadgen.mjs'

const PROFILES = 5_000
const USERS = 2_500
const FILLER = 'observed preference for concise written summaries; '.repeat(14)

const document = (n, revision = 0) => ({
  pson_version: '5.0',
  profile_id: `replica_bench_${n}`,
  user_id: `replica_user_${n % USERS}`,
  tenant_id: 'tenant-bench',
  consent: { granted: true, scopes: ['core:read', 'core:write'] },
  domains: { active: ['core', 'career'] },
  layers: { observed: { note: { value: FILLER, confidence: 0.8 } }, inferred: {}, simulated: {} },
  metadata: { revision, created_at: '2026-01-01T00:00:00.000Z', updated_at: '2026-01-01T00:00:00.000Z', source_count: 1 },
})

const pick = () => 1 + Math.floor(Math.random() * PROFILES)

// Each row: the operation as one call of the closed loop.
const OPS = {
  loadProfile: (repository) => () => repository.loadProfile(`replica_bench_${pick()}`),
  findProfilesByUserId: (repository) => () => repository.findProfilesByUserId(`replica_user_${pick() % USERS}`),
  // A save, then a load of the same profile that must see it (read-your-writes).
  'saveProfile → loadProfile': (repository) => {
    const latest = new Map()
    return async () => {
      let n = pick()
      // Another call of the loop is saving it: take another profile.
      while (latest.get(n) === 'busy') n = pick()
      const known = latest.get(n)
      latest.set(n, 'busy')
      try {
        const previous = known ?? (await repository.loadProfile(`replica_bench_${n}`))
        const saved = await repository.saveProfile(previous)
        const loaded = await repository.loadProfile(saved.profile_id)
        if (loaded.metadata.revision < saved.metadata.revision) throw new Error('read-your-writes broken')
        latest.set(n, saved)
      } catch (error) {
        latest.delete(n)
        throw error
      }
    }
  },
}

/** { rows, markdown, notes }; `args`: duration, warmup, concurrency, pool, rounds. */
export async function runReplicaRows({ args, log }) {
  log('replicas: starting a primary and two hot standbys...')
  const cluster = await startReplicaCluster({ standbys: 2 })
  const rows = []
  try {
    const setup = createPostgresProfileStoreRepository({ connectionString: cluster.primary.url, max: args.pool })
    await setup.ensureSchema()
    const pending = []
    for (let n = 1; n <= PROFILES; n++) {
      pending.push(setup.saveProfile(document(n)))
      if (pending.length === 256) await Promise.all(pending.splice(0))
    }
    await Promise.all(pending)
    await setup.close()
    await cluster.query(cluster.primary, 'vacuum analyze')
    await cluster.waitForReplay()

    const configs = {
      'no replicas (primary only)': {},
      'two replicas': { replicas: cluster.standbys.map((standby) => standby.url) },
    }
    const results = new Map()
    for (let round = 1; round <= args.rounds; round++) {
      for (const op of Object.keys(OPS)) {
        for (const [config, extra] of Object.entries(configs)) {
          const served = {}
          const repository = createPostgresProfileStoreRepository({
            connectionString: cluster.primary.url,
            max: args.pool,
            ...extra,
            // Both configurations observe their calls the same way.
            onEvent: (event) => {
              const key = event.server === undefined ? 'primary' : `${event.server.role} ${event.server.address}`
              served[key] = (served[key] ?? 0) + 1
            },
          })
          // The replicas' first check.
          if (extra.replicas) while (!repository.replicaStatus().every((s) => s.inRotation)) await sleep(20)
          const result = await closedLoop({
            op: OPS[op](repository),
            concurrency: args.concurrency,
            warmupMs: args.warmup * 1000,
            durationMs: args.duration * 1000,
          })
          await repository.close()
          await cluster.waitForReplay()
          const key = `${op}\u0000${config}`
          if (!results.has(key)) results.set(key, { op, config, rounds: [] })
          results.get(key).rounds.push({ ...result, served })
          log(
            `replicas: round ${round} ${op} / ${config}: ${Math.round(result.opsPerSec)} ops/s, p50 ${result.p50?.toFixed(2)} ms` +
              (result.errors ? `, ${result.errors} errors (${result.firstError})` : ''),
          )
        }
      }
    }
    const names = new Map([[cluster.primary.address, 'primary'], ...cluster.standbys.map((s) => [s.address, s.name])])
    for (const { op, config, rounds } of results.values()) {
      const sorted = rounds.slice().sort((a, b) => a.opsPerSec - b.opsPerSec)
      const median = sorted[Math.floor(sorted.length / 2)]
      const served = {}
      for (const round of rounds) {
        for (const [key, count] of Object.entries(round.served)) {
          const [role, address] = key.split(' ')
          const name = address === undefined ? role : names.get(address) ?? key
          served[name] = (served[name] ?? 0) + count
        }
      }
      const total = Object.values(served).reduce((a, b) => a + b, 0)
      const share = Object.entries(served)
        .sort()
        .map(([name, count]) => `${name} ${Math.round((count / total) * 100)}%`)
        .join(' · ')
      rows.push({
        op,
        config,
        opsPerSec: median.opsPerSec,
        range: [sorted[0].opsPerSec, sorted.at(-1).opsPerSec],
        p50: median.p50,
        p99: median.p99,
        errors: rounds.reduce((a, r) => a + r.errors, 0),
        share,
      })
    }
  } finally {
    await cluster.stop()
  }
  return { rows, markdown: replicaMarkdown(rows, args) }
}

function replicaMarkdown(rows, args) {
  const fmt = (n) => Math.round(n).toLocaleString('en-US')
  const lines = [
    '#### Read replicas: a primary and two hot standbys on this machine',
    '',
    `Closed loop, ${args.concurrency} calls in flight, pool ${args.pool} per server, ${fmt(PROFILES)} profiles of ~1 KB; ` +
      `median of ${args.rounds} interleaved rounds. The three servers share this machine's cores, so the ratio shows ` +
      'what the routing costs, not what replicas on their own hosts gain (docs/scaling.md). `served` is the share ' +
      'of calls (events) each server answered, warm-up included; saves count as calls on the primary.',
    '',
    '| operation | configuration | ops/s | rounds | p50 ms | p99 ms | errors | served |',
    '| :-- | :-- | --: | --: | --: | --: | --: | :-- |',
  ]
  for (const row of rows) {
    lines.push(
      `| ${row.op} | ${row.config} | ${fmt(row.opsPerSec)} | ${fmt(row.range[0])}–${fmt(row.range[1])} | ` +
        `${row.p50?.toFixed(2)} | ${row.p99?.toFixed(2)} | ${row.errors} | ${row.share} |`,
    )
  }
  return `${lines.join('\n')}\n`
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms))
}
