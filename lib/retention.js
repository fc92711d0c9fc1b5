'use strict'

// Audit retention: pruneAuditEntries runs the prune statement
// (src/store/sql.rs `render_prune`) batch after batch until the walk over the
// profiles ends. Each batch is one statement, so one short transaction of its
// own: it removes at most `batchSize` rows, never waits for a row lock, and
// commits before the next one starts. Nothing is held between batches, so a
// prune can run for hours beside live traffic and be stopped at any point;
// what the batches before had removed stays removed.

const { PostgresStoreError } = require('./errors.js')

/**
 * Runs the batches of one prune. `runBatch(statement, params)` runs a named
 * statement and resolves to its one row, read by column name
 * (`removed_rows`, `pruned_profiles`, `pruned_first_profile`,
 * `next_profile_id`). `options` come from validate.js `pruneOptions`.
 * Resolves to `{ removedRows, prunedProfiles, batches }`; a failure or an
 * abort rejects with that progress as `error.pruned`.
 */
async function pruneAudit(runBatch, { keepLast, olderThan, profileId, batchSize, onProgress, signal }) {
  const statement = profileId === null ? 'pruneAuditEntries' : 'pruneProfileAuditEntries'
  const progress = { removedRows: 0, prunedProfiles: 0, batches: 0 }
  // Where the walk stands: the first profile the next batch examines.
  let from = profileId ?? ''
  let resumedInProfile = false
  try {
    while (from !== null) {
      if (signal?.aborted) {
        throw new PostgresStoreError('aborted', 'pruneAuditEntries was aborted between two batches.', {
          cause: signal.reason,
        })
      }
      const row = await runBatch(statement, [
        from,
        keepLast === null ? null : String(keepLast),
        olderThan,
        String(batchSize),
      ])
      const removed = Number(row.removed_rows)
      progress.batches++
      progress.removedRows += removed
      // A profile that the previous batch stopped in was counted there.
      progress.prunedProfiles += Number(row.pruned_profiles) - (resumedInProfile && row.pruned_first_profile ? 1 : 0)
      from = row.next_profile_id ?? null
      resumedInProfile = removed >= batchSize
      report(onProgress, { ...progress, nextProfileId: from })
    }
  } catch (error) {
    error.pruned = { ...progress }
    throw error
  }
  return progress
}

// A progress listener that throws must not stop the prune (as with onEvent);
// the signal is the way to stop it.
function report(onProgress, progress) {
  if (onProgress === null) return
  try {
    onProgress(progress)
  } catch {
    // ignored, see above
  }
}

module.exports = { pruneAudit }
