// Shared by save/concurrency/pagination/delete/validation/events tests:
// realistic PSON5 documents (~1 KB as JSON), unique ids, and error assertions
// that look at `code`/`field`/`storeCode`, never at messages.

import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'

/**
 * Makes a test file fail when its process ends before its tests did. A
 * promise that never settles while nothing keeps the event loop alive, or an
 * exception thrown outside any test (e.g. from a microtask), can otherwise end
 * the file silently with exit code 0, which `node --test` reports as a pass.
 * Call once, at the top level of a test file.
 */
export { failIfUnfinished } from './assertions.mjs'

/** A short unique id with a readable prefix, e.g. `native-prof-3fa2c1d0`. */
export function uniqueId(prefix) {
  return `${prefix}-${randomBytes(4).toString('hex')}`
}

/**
 * A PSON5 profile document. Everything the store reads (ids, tenant, domains,
 * metadata) can be set; the rest is plausible filler of the real shape.
 */
export function buildProfile({
  profileId,
  userId,
  tenantId = 'tenant-acme',
  psonVersion = '5.0',
  domains = ['core', 'career', 'wellbeing'],
  sourceCount = 4,
  revision = 1,
  updatedAt = '2026-03-02T09:30:00.000Z',
  observed,
  consentScopes = ['core:read', 'core:write', 'simulation:run'],
  note = 'prefers concise written summaries',
} = {}) {
  assert.ok(profileId && userId, 'buildProfile needs profileId and userId')
  return {
    pson_version: psonVersion,
    profile_id: profileId,
    user_id: userId,
    tenant_id: tenantId,
    consent: {
      granted: true,
      scopes: consentScopes,
      policy_version: '2026-01',
      updated_at: '2026-01-10T08:00:00.000Z',
    },
    domains: { active: domains, depth: 'standard' },
    layers: {
      observed: observed ?? {
        'core.preferred_language': { value: 'en-GB', confidence: 0.98, source: 'onboarding' },
        'core.timezone': { value: 'Europe/Lisbon', confidence: 0.95, source: 'device' },
      },
      inferred: {
        'core.communication_style': { value: 'direct', confidence: 0.71, basis: ['q3', 'q7'] },
      },
      simulated: {
        'career.next_move': { value: 'principal', confidence: 0.42, scenario: 'growth-2026' },
      },
    },
    cognitive_model: { thinking_style: { analytical: 0.8, intuitive: 0.35 }, note },
    behavioral_model: { decision_functions: [{ id: 'risk', weight: 0.3 }], action_patterns: ['plans weekly'] },
    state_model: { states: [{ id: 'focused', likelihood: 0.6 }], transitions: [] },
    knowledge_graph: {
      nodes: [
        { id: 'n1', type: 'skill', label: 'distributed systems' },
        { id: 'n2', type: 'interest', label: 'sailing' },
      ],
      edges: [],
    },
    simulation_profiles: { scenarios: [{ id: 'growth-2026', horizon_days: 365 }] },
    privacy: { encryption: false, restricted_fields: [], local_only: false },
    metadata: {
      confidence: 0.82,
      created_at: '2026-01-10T08:00:00.000Z',
      updated_at: updatedAt,
      source_count: sourceCount,
      revision,
    },
  }
}

/** buildProfile's document with `marker` in its note and in an observed fact (core.secret): for tests that prove a document's content reaches no event, span or log. */
export function markedProfile(profileId, userId, marker, revision = 1) {
  const profile = buildProfile({ profileId, userId, revision, note: `note ${marker}` })
  profile.layers.observed['core.secret'] = { value: marker, confidence: 1, source: 'user' }
  return profile
}

/**
 * Awaits a rejection and checks every property of `expected` on the error
 * (`code`, `field`, `storeCode`, ...). Returns the error.
 */
export async function expectStoreError(action, expected) {
  let caught
  try {
    await (typeof action === 'function' ? action() : action)
  } catch (error) {
    caught = error
  }
  assert.ok(caught !== undefined, `expected a rejection with ${JSON.stringify(expected)}, but it resolved`)
  assert.ok(caught instanceof Error, 'the rejection is an Error')
  for (const [key, value] of Object.entries(expected)) {
    assert.equal(caught[key], value, `error.${key} (got code=${caught.code} field=${caught.field}: ${caught.message})`)
  }
  return caught
}

/** Awaits every promise; returns `{ fulfilled: values[], rejected: errors[] }`. */
export async function settle(promises) {
  const results = await Promise.allSettled(promises)
  return {
    fulfilled: results.filter((r) => r.status === 'fulfilled').map((r) => r.value),
    rejected: results.filter((r) => r.status === 'rejected').map((r) => r.reason),
  }
}

/** Audit entries without the one field that depends on the wall clock. */
export function withoutRecordedAt(entries) {
  return entries.map(({ recorded_at: _recordedAt, ...rest }) => rest)
}

/**
 * What audit entries say about each change, without what differs between two
 * profiles given the same change (ids, wall-clock times, context).
 */
export function auditFacts(entries) {
  return entries.map((entry) => ({
    revision: entry.revision,
    previous_revision: entry.previous_revision,
    source_count: entry.source_count,
    source_count_delta: entry.source_count_delta,
    changed_top_level_paths: entry.changed_top_level_paths,
    pson_version: entry.pson_version,
    tenant_id: entry.tenant_id,
  }))
}

/** Row counts of one profile in the three tables (plain SQL). */
export async function profileRowCounts(db, profileId, prefix = 'pson_') {
  const counts = {}
  for (const table of ['profiles', 'profile_audit', 'domain_index']) {
    const { rows } = await db.sql(`select count(*)::int as n from "${db.schema}"."${prefix}${table}" where profile_id = $1`, [
      profileId,
    ])
    counts[table] = rows[0].n
  }
  return counts
}

/** Every page of `listAuditEntries(profileId, { limit })`, following `nextCursor` to the end. */
export async function readAllPages(repository, profileId, limit) {
  const pages = []
  let cursor = null
  do {
    const page = await repository.listAuditEntries(profileId, { limit, cursor })
    pages.push(page)
    cursor = page.nextCursor
    assert.ok(pages.length < 1000, 'pagination ends')
  } while (cursor !== null)
  return pages
}
