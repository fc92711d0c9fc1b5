// The data a row works on. A dataset is described by a plain object (sent to
// every row process over IPC) and opened in each process into the pickers the
// operations use. Ids are deterministic, so every process agrees on them.
//
// - flat (`1k`, `20k`): N profiles `pson_1`…, two per user `user_1`…, one
//   revision each; documents built by docs.mjs.
// - scale (`10k`, `1m`): N profiles of ~1 KB made from 1,000 templates, with
//   id ranges for profiles with deep histories, users with 1,000 profiles,
//   and profiles prepared for deletion (see SCALES below).

import { buildDocument, profileId, scenarioShape, userId } from './docs.mjs'

export { profileId, userId }

/** Uniform random integer in [low, high]. */
export const randomInt = (low, high) => low + Math.floor(Math.random() * (high - low + 1))

// Scale datasets (issue 16). Profile numbers, in order: `deep` profiles (page
// 50 of listAuditEntries needs 50 × 50 entries), `history` profiles (100+
// revisions), `deletable` ones (500 revisions, deleted by the deleteProfile
// row and restored after it), then one-revision profiles. The first
// largeUsers × 1,000 profiles belong to users with 1,000 profiles each; the
// others two per user. history.count is set so the audit log has `auditRows`.
const TEMPLATES = 1_000
// Finds of large users pick among the same 2 at every size: the package
// coalesces concurrent finds into one statement, and how many of them share a
// user (so share rows) must not differ between the sizes compared.
const LARGE_USERS_PICKED = 2
export const PROFILES_PER_LARGE_USER = 1_000
export const SCALES = {
  '10k': scaleShape({ name: '10k', profiles: 10_000, auditRows: 160_000, largeUsers: 2 }),
  '1m': scaleShape({ name: '1m', profiles: 1_000_000, auditRows: 5_000_000, largeUsers: 20 }),
}

function scaleShape({ name, profiles, auditRows, largeUsers }) {
  const deep = { count: Math.max(4, profiles / 2_500), revisions: 2_600 }
  const deletable = { count: 256, revisions: 500 }
  const rest = auditRows - profiles - deep.count * (deep.revisions - 1) - deletable.count * (deletable.revisions - 1)
  const history = { count: Math.max(20, Math.round(rest / 249)), revisions: 250 }
  const smallUsers = Math.ceil((profiles - largeUsers * PROFILES_PER_LARGE_USER) / 2)
  return {
    kind: 'scale',
    name,
    label: `${profiles.toLocaleString('en-US')} profiles`,
    profiles,
    largeUsers,
    smallUsers,
    users: largeUsers + smallUsers,
    deep,
    history,
    deletable,
    targetBytes: 1_024,
    templates: TEMPLATES,
  }
}

/** First and last profile number of each id range of a scale dataset. */
export function scaleRanges(shape) {
  const deep = [1, shape.deep.count]
  const history = [deep[1] + 1, deep[1] + shape.history.count]
  const deletable = [history[1] + 1, history[1] + shape.deletable.count]
  return { deep, history, deletable, plain: [deletable[1] + 1, shape.profiles] }
}

/** Revisions seeded for profile n of a scale dataset. */
export function scaleRevisions(shape, n) {
  const r = scaleRanges(shape)
  if (n <= r.deep[1]) return shape.deep.revisions
  if (n <= r.history[1]) return shape.history.revisions
  if (n <= r.deletable[1]) return shape.deletable.revisions
  return 1
}

/** User number of profile n of a scale dataset. */
export function scaleUserOf(shape, n) {
  const large = shape.largeUsers * PROFILES_PER_LARGE_USER
  return n <= large ? Math.ceil(n / PROFILES_PER_LARGE_USER) : shape.largeUsers + Math.ceil((n - large) / 2)
}

/** Template t (1-based) of a scale dataset: a flat ~1 KB document whose ids the seeder replaces. */
export function scaleTemplate(shape, t, createEmptyProfile) {
  return buildDocument(t, scenarioShape('1k', { profiles: shape.templates }), createEmptyProfile)
}

/** Profile n of a scale dataset as stored (revision aside); the seeder builds the same in SQL. */
export function scaleDocument(shape, n, template) {
  const u = scaleUserOf(shape, n)
  return { ...template, profile_id: profileId(n), user_id: userId(u), tenant_id: `tenant_${(u % 25) + 1}` }
}

/**
 * The pickers of one row process. `withDocuments` builds the documents that
 * saves send (before the measured window: building them costs CPU).
 */
export function openDataset(shape, { createEmptyProfile, withDocuments = false } = {}) {
  const fresh = (doc) => ({ ...doc, metadata: { ...doc.metadata, updated_at: new Date().toISOString() } })
  if (shape.kind !== 'scale') {
    const docs = withDocuments
      ? Array.from({ length: shape.profiles }, (_, i) => buildDocument(i + 1, shape, createEmptyProfile))
      : null
    return {
      shape,
      profile: () => randomInt(1, shape.profiles),
      smallUser: () => randomInt(1, shape.users),
      /** The document a save of profile n sends: the seeded one with a fresh `metadata.updated_at`. */
      document: (n) => fresh(docs[n - 1]),
    }
  }
  const ranges = scaleRanges(shape)
  const templates = withDocuments
    ? Array.from({ length: shape.templates }, (_, i) => scaleTemplate(shape, i + 1, createEmptyProfile))
    : null
  let nextDeletable = ranges.deletable[0]
  return {
    shape,
    ranges,
    profile: () => randomInt(1, shape.profiles),
    smallUser: () => randomInt(shape.largeUsers + 1, shape.users),
    largeUser: () => randomInt(1, LARGE_USERS_PICKED),
    historyProfile: () => randomInt(...ranges.history),
    /** Profiles with 500 revisions, each handed out once per process (operations.mjs limits the calls). */
    deletable: () => nextDeletable++,
    document: (n) => fresh(scaleDocument(shape, n, templates[(n - 1) % shape.templates])),
  }
}
