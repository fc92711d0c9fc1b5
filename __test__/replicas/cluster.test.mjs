// The harness the replica tests stand on: a primary and two hot standbys made
// here, by pg_basebackup and by a copy between pg_backup_start/stop (the way
// the embedded binaries, which lack pg_basebackup, make them).

import assert from 'node:assert/strict'
import { test } from 'node:test'

import { hasBaseBackup, startReplicaCluster } from '../../scripts/replica-cluster.mjs'

// The copy always; pg_basebackup where the binaries have it (the embedded ones do not).
for (const clone of hasBaseBackup() ? ['basebackup', 'copy'] : ['copy']) {
  test(`a primary and two hot standbys (${clone}): standbys replay, refuse writes, and stop with the cluster`, async () => {
    const cluster = await startReplicaCluster({ standbys: 2, clone })
    try {
      await cluster.query(cluster.primary, 'create table harness (n int)')
      await cluster.query(cluster.primary, 'insert into harness values (1), (2)')
      await cluster.waitForReplay()
      for (const standby of cluster.standbys) {
        const [row] = await cluster.query(standby, 'select pg_is_in_recovery() as recovering, (select sum(n) from harness)::int as sum')
        assert.deepEqual(row, { recovering: true, sum: 3 })
        await assert.rejects(cluster.query(standby, 'insert into harness values (3)'), { code: '25006' })
      }
    } finally {
      await cluster.stop()
    }
    await assert.rejects(cluster.query(cluster.primary, 'select 1'), { code: 'ECONNREFUSED' })
  })
}
