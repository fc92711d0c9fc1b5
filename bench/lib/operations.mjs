// The operations a row can measure, one entry each. A row is one operation ×
// one contender (contenders.mjs). `store` is what the contender exposes under
// the repository's method names; a contender without the method an operation
// calls gets no row for it. To add an operation (say `loadProfileJson`), add
// one entry here and, for the raw drivers, one method in contenders.mjs.
//
//   label    the name in the tables
//   pick(d)  the call's arguments from the dataset's pickers (datasets.mjs)
//   call     runs it; check(value, args) validates the first, checked call,
//            so wrong SQL or parameters fail the row instead of being measured
//   writes   the row changes the tables (they are vacuumed before the next row)
//   limit(d) the row consumes prepared data: at most this many calls (the
//            checked one included), and no time-based warm-up
//   setup    prepares per-process state before the warm-up (returns the pickers' extra state)

import { profileId, userId } from './datasets.mjs'

const fail = (what, value) => {
  throw new Error(`${what}: ${JSON.stringify(value)?.slice(0, 200)}`)
}
const revisionOf = (value) => (typeof value === 'object' && value !== null ? value.metadata?.revision : value)

// Page 50 of listAuditEntries needs the cursor left by page 49: each process
// walks that far once for the first few deep profiles before its warm-up.
// The same few at every size (the 10k dataset has 4), so only the table's
// size differs between the two rows.
const CURSOR_PROFILES = 4
const AUDIT_PAGE = 50
// History profiles whose recorded instants each process reads for loadAsOf.
const AS_OF_PROFILES = 8

export const OPERATIONS = {
  load: {
    label: 'loadProfile',
    method: 'loadProfile',
    pick: (d) => [profileId(d.profile())],
    call: (store, [id]) => store.loadProfile(id),
    check: (value, [id]) => value?.profile_id === id || fail('loadProfile returned another document', value),
  },
  save: {
    label: 'saveProfile',
    method: 'saveProfile',
    writes: true,
    pick: (d) => [d.document(d.profile())],
    call: (store, [doc]) => store.saveProfile(doc),
    check: (value) => Number(revisionOf(value)) >= 2 || fail('saveProfile returned no new revision', value),
  },
  find: {
    label: 'findProfilesByUserId',
    method: 'findProfilesByUserId',
    pick: (d) => [userId(d.smallUser())],
    call: (store, [id]) => store.findProfilesByUserId(id),
    check: (value) => (Array.isArray(value) && value.length > 0) || fail('findProfilesByUserId found nothing', value),
  },
  findLarge: {
    label: 'findProfilesByUserId (1,000 profiles)',
    method: 'findProfilesByUserId',
    pick: (d) => [userId(d.largeUser())],
    call: (store, [id]) => store.findProfilesByUserId(id),
    check: (value) => value?.length >= 1_000 || fail('findProfilesByUserId of a large user', value?.length),
  },
  auditPage1: {
    label: 'listAuditEntries page 1',
    method: 'listAuditEntries',
    pick: (d) => [profileId(d.historyProfile())],
    call: (store, [id]) => store.listAuditEntries(id, { limit: AUDIT_PAGE }),
    check: (value, [id]) =>
      (value?.entries?.length === AUDIT_PAGE && value.entries[0].profile_id === id) || fail('audit page 1', value),
  },
  auditPage50: {
    label: 'listAuditEntries page 50 (cursor)',
    method: 'listAuditEntries',
    async setup(store, d) {
      const cursors = []
      for (let n = 1; n <= CURSOR_PROFILES; n++) {
        const id = profileId(n)
        let cursor
        for (let page = 1; page < 50; page++)
          cursor = (await store.listAuditEntries(id, { limit: AUDIT_PAGE, cursor })).nextCursor
        cursors.push([id, cursor])
      }
      return { page50: () => cursors[Math.floor(Math.random() * cursors.length)] }
    },
    pick: (d) => d.page50(),
    call: (store, [id, cursor]) => store.listAuditEntries(id, { limit: AUDIT_PAGE, cursor }),
    check: (value) => value?.entries?.length === AUDIT_PAGE || fail('audit page 50', value?.entries?.length),
  },
  loadRevision: {
    label: 'loadProfileRevision',
    method: 'loadProfileRevision',
    pick: (d) => [profileId(d.historyProfile()), 1 + Math.floor(Math.random() * d.shape.history.revisions)],
    call: (store, [id, revision]) => store.loadProfileRevision(id, revision),
    check: (value, [id, revision]) =>
      (value?.profile_id === id && value.metadata?.revision === revision) ||
      fail('loadProfileRevision', value?.metadata),
  },
  // History (lib/history.js). The seeded snapshots of a profile differ in
  // metadata.revision only, so the patch is one operation: the row measures
  // reading two snapshots and diffing them, not a large patch.
  diff: {
    label: 'diffRevisions (250 revisions)',
    method: 'diffRevisions',
    pick: (d) => {
      const a = 1 + Math.floor(Math.random() * d.shape.history.revisions)
      const b = 1 + Math.floor(Math.random() * d.shape.history.revisions)
      return [profileId(d.historyProfile()), Math.min(a, b), Math.max(a, b)]
    },
    call: (store, [id, from, to]) => store.diffRevisions(id, from, to),
    check: (value, [, from, to]) =>
      (Array.isArray(value) && value.length === (from === to ? 0 : 1)) || fail('diffRevisions', value),
  },
  // The seed records revision r of a profile with R revisions R - r minutes
  // before it ran: each process reads those instants once for a few history
  // profiles (saves of other rows come later) and loads the revision current
  // at a random one of them.
  loadAsOf: {
    label: 'loadProfile({ asOf }) (250 revisions)',
    method: 'loadProfile',
    async setup(store, d) {
      const instants = []
      for (let i = 0; i < AS_OF_PROFILES; i++) {
        const id = profileId(d.historyProfile())
        const { entries } = await store.listAuditEntries(id, { limit: 1000 })
        // recorded_at comes in milliseconds; the stored instant has microseconds.
        for (const entry of entries) instants.push([id, new Date(Date.parse(entry.recorded_at) + 1), entry.revision])
      }
      return { asOf: () => instants[Math.floor(Math.random() * instants.length)] }
    },
    pick: (d) => d.asOf(),
    call: (store, [id, asOf]) => store.loadProfile(id, { asOf }),
    check: (value, [id, , revision]) =>
      (value?.profile_id === id && value.metadata?.revision === revision) || fail('loadProfile({ asOf })', value?.metadata),
  },
  delete: {
    label: 'deleteProfile (500 revisions)',
    method: 'deleteProfile',
    writes: true,
    limit: (d) => d.shape.deletable.count,
    pick: (d) => [profileId(d.deletable())],
    call: (store, [id]) => store.deleteProfile(id),
    check: (value) => value === true || fail('deleteProfile deleted nothing', value),
  },
}

/** Operations of the default (flat) scenarios and of the scale bench, in execution order (reads first). */
export const FLAT_OPERATIONS = ['load', 'find', 'save']
export const SCALE_OPERATIONS = [
  'load',
  'find',
  'findLarge',
  'auditPage1',
  'auditPage50',
  'loadRevision',
  'diff',
  'loadAsOf',
  'save',
  'delete',
]
