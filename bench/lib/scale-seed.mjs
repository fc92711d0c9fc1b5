// Seeds a scale dataset (datasets.mjs SCALES) set-based, and keeps it: the
// schema `pson5_bench_scale_<name>` stays between runs and is seeded again
// only when its fingerprint changes (this package's schemaSql, the dataset's
// shape and the seeding SQL below), or with --reseed.
//
// What a save leaves is written directly, the way saveProfile writes it:
// profile n with R revisions gets its current row at revision R, audit rows
// 1..R (each a snapshot with metadata.revision = r) and its index row. The
// documents are 1,000 ~1 KB templates (valid PSON5 profiles built by
// docs.mjs) with each profile's ids put in, so the package loads and saves
// them like any other. One INSERT … SELECT over generate_series per chunk of
// profile numbers; no call per row.

import { createHash } from 'node:crypto'

import { createPostgresProfileStoreArtifacts } from '../../index.mjs'
import { PROFILES_PER_LARGE_USER, scaleDocument, scaleRanges, scaleRevisions, scaleTemplate } from './datasets.mjs'
import { checkpoint, tableNames } from './seed.mjs'

const q = (name) => `"${name.replace(/"/g, '""')}"`
// A chunk holds at most this many audit rows (one statement, one transaction).
const CHUNK_AUDIT_ROWS = 250_000

export const scaleSchema = (shape) => `pson5_bench_scale_${shape.name}`

// $1, $2: first and last profile number. Profiles already there are left
// alone, so the same statement restores the deleted ones after a delete row.
function chunkSql(schema, shape) {
  const t = tableNames(schema)
  const r = scaleRanges(shape)
  const large = shape.largeUsers * PROFILES_PER_LARGE_USER
  return `
with src as (
  select g.n, k.revisions, k.base, (k.base #>> '{metadata,source_count}')::numeric as source_count,
         array(select jsonb_object_keys(k.base) order by 1) as all_paths
  from generate_series($1::integer, $2::integer) g(n)
  join ${q(schema)}.bench_templates t on t.t = (g.n - 1) % ${shape.templates} + 1
  cross join lateral (select case when g.n <= ${large} then (g.n + ${PROFILES_PER_LARGE_USER - 1}) / ${PROFILES_PER_LARGE_USER}
                                  else ${shape.largeUsers} + (g.n - ${large} + 1) / 2 end as u) usr
  cross join lateral (select t.document || jsonb_build_object('profile_id', 'pson_' || g.n, 'user_id', 'user_' || usr.u,
                                                             'tenant_id', 'tenant_' || (usr.u % 25 + 1)) as base,
                             case when g.n <= ${r.deep[1]} then ${shape.deep.revisions}
                                  when g.n <= ${r.history[1]} then ${shape.history.revisions}
                                  when g.n <= ${r.deletable[1]} then ${shape.deletable.revisions}
                                  else 1 end as revisions) k
  where not exists (select 1 from ${t.profiles} p where p.profile_id = 'pson_' || g.n)
),
audited as (
  insert into ${t.audit} (profile_id, revision, previous_revision, user_id, tenant_id, source_count, source_count_delta,
                          changed_top_level_paths, pson_version, updated_at, recorded_at, context, document)
  select s.base ->> 'profile_id', v.r, nullif(v.r - 1, 0), s.base ->> 'user_id', s.base ->> 'tenant_id', s.source_count,
         case when v.r = 1 then s.source_count else 0 end, case when v.r = 1 then s.all_paths else '{metadata}' end,
         s.base ->> 'pson_version', s.base #>> '{metadata,updated_at}', now() - make_interval(mins => s.revisions - v.r),
         '{"source": "bench-seed"}', jsonb_set(s.base, '{metadata,revision}', to_jsonb(v.r))
  from src s cross join lateral generate_series(1, s.revisions) v(r)
  order by 1, 2
),
current as (
  insert into ${t.profiles} (profile_id, user_id, tenant_id, revision, document, save_previous_revision,
                             save_changed_paths, save_source_count_delta)
  select s.base ->> 'profile_id', s.base ->> 'user_id', s.base ->> 'tenant_id', s.revisions,
         jsonb_set(s.base, '{metadata,revision}', to_jsonb(s.revisions)), nullif(s.revisions - 1, 0),
         case when s.revisions = 1 then s.all_paths else '{metadata}' end,
         case when s.revisions = 1 then s.source_count else 0 end
  from src s order by 1
),
indexed as (
  insert into ${t.index} (user_id, profile_id, tenant_id, active_domains, position, latest_seq, updated_at)
  select s.base ->> 'user_id', s.base ->> 'profile_id', s.base ->> 'tenant_id',
         array(select jsonb_array_elements_text(s.base #> '{domains,active}')), s.n, s.n, now()
  from src s
)
select count(*)::integer as profiles, coalesce(sum(revisions), 0)::bigint as audit_rows from src`
}

/** Chunks [first, last] of profile numbers holding about CHUNK_AUDIT_ROWS audit rows each. */
function chunks(shape, first = 1, last = shape.profiles) {
  const out = []
  let start = first
  let rows = 0
  for (let n = first; n <= last; n++) {
    rows += scaleRevisions(shape, n)
    if (rows >= CHUNK_AUDIT_ROWS || n === last) {
      out.push([start, n])
      start = n + 1
      rows = 0
    }
  }
  return out
}

function fingerprintOf(schema, shape) {
  const schemaSql = createPostgresProfileStoreArtifacts({ schema }).schemaSql
  return createHash('sha256')
    .update(JSON.stringify({ schemaSql, shape, seed: chunkSql(schema, shape) }))
    .digest('hex')
}

/**
 * The scale dataset's schema, seeded unless a complete seed with the same
 * fingerprint is there. Returns { schema, reused, seconds }.
 */
export async function ensureScaleData({ admin, shape, upstream, reseed = false, log }) {
  const schema = scaleSchema(shape)
  const fingerprint = fingerprintOf(schema, shape)
  const meta = `${q(schema)}.bench_scale_meta`
  const existing = await admin.query(`select to_jsonb(m) as meta from ${meta} m`).catch(() => ({ rows: [] }))
  const kept = existing.rows[0]?.meta
  if (!reseed && kept?.fingerprint === fingerprint) {
    return { schema, reused: true, seconds: kept.seconds, seededSizes: kept.sizes ?? null }
  }
  const started = performance.now()
  log(`[scale ${shape.name}] seeding ${schema} (${existing.rows.length ? 'fingerprint changed' : 'not seeded yet'})...`)
  await admin.query(`drop schema if exists ${q(schema)} cascade`)
  await admin.query(`create schema ${q(schema)}`)
  await admin.query(createPostgresProfileStoreArtifacts({ schema }).schemaSql)
  await admin.query(`create table ${q(schema)}.bench_templates (t integer primary key, document jsonb not null)`)
  const templates = Array.from({ length: shape.templates }, (_, i) =>
    scaleTemplate(shape, i + 1, upstream.engine?.createEmptyProfile),
  )
  if (upstream.engine) {
    const check = upstream.engine.validateProfile(scaleDocument(shape, shape.profiles, templates.at(-1)))
    if (!check.success)
      throw new Error(`a seeded document is not a valid PSON5 profile: ${JSON.stringify(check.issues)}`)
  }
  await admin.query(
    `insert into ${q(schema)}.bench_templates select * from unnest($1::integer[], $2::text[]::jsonb[])`,
    [templates.map((_, i) => i + 1), templates.map((doc) => JSON.stringify(doc))],
  )
  const sql = chunkSql(schema, shape)
  const all = chunks(shape)
  let profiles = 0
  let auditRows = 0
  for (const [i, [first, last]] of all.entries()) {
    const { rows } = await admin.query(sql, [first, last])
    profiles += rows[0].profiles
    auditRows += Number(rows[0].audit_rows)
    if (i % Math.max(1, Math.floor(all.length / 10)) === 0 || i === all.length - 1) {
      log(
        `[scale ${shape.name}]   ${profiles.toLocaleString('en-US')} profiles, ${auditRows.toLocaleString('en-US')} audit rows ` +
          `(${Math.round((performance.now() - started) / 1000)} s)`,
      )
    }
  }
  await afterWrite(admin, schema, shape)
  const seconds = Math.round((performance.now() - started) / 1000)
  await admin.query(
    `create table ${meta} (fingerprint text not null, seconds integer not null, seeded_at timestamptz not null, sizes jsonb)`,
  )
  const seededSizes = await sizes(admin, schema)
  await admin.query(`insert into ${meta} values ($1, $2, now(), $3)`, [fingerprint, seconds, seededSizes])
  log(`[scale ${shape.name}] seeded in ${seconds} s`)
  return { schema, reused: false, seconds, seededSizes }
}

/** Puts back the profiles a deleteProfile row removed (same statement as the seed, on their range). */
export async function restoreDeletable(admin, shape) {
  const schema = scaleSchema(shape)
  const sql = chunkSql(schema, shape)
  for (const [first, last] of chunks(shape, ...scaleRanges(shape).deletable)) await admin.query(sql, [first, last])
  await afterWrite(admin, schema, shape)
}

// Saves must get index sequence values above the seeded ones; then the
// tables are vacuumed (visibility map, hint bits) and analyzed.
async function afterWrite(admin, schema, shape) {
  const t = tableNames(schema)
  await admin.query(`select setval('${t.indexSeq}', greatest((select last_value from ${t.indexSeq}), $1::bigint))`, [
    shape.profiles,
  ])
  await admin.query(`vacuum (analyze) ${t.profiles}, ${t.audit}, ${t.index}`)
  await checkpoint(admin)
}

/** On-disk sizes of a scale dataset's tables (bytes) and its audit rows (the planner's estimate). */
export async function sizes(admin, schema) {
  const t = tableNames(schema)
  const rel = (key) => `'${t[key]}'::regclass`
  const { rows } = await admin.query(`
    select pg_total_relation_size(${rel('profiles')})::float8 as profiles,
           pg_total_relation_size(${rel('audit')})::float8 as audit,
           pg_relation_size(${rel('audit')})::float8 as audit_heap,
           coalesce((select pg_total_relation_size(reltoastrelid) from pg_class
                     where oid = ${rel('audit')} and reltoastrelid <> 0), 0)::float8 as audit_toast,
           pg_indexes_size(${rel('audit')})::float8 as audit_indexes,
           pg_total_relation_size(${rel('index')})::float8 as index,
           (select reltuples from pg_class where oid = ${rel('audit')})::float8 as audit_rows`)
  const s = rows[0]
  return {
    profiles: s.profiles,
    audit: s.audit,
    auditHeap: s.audit_heap,
    auditToast: s.audit_toast,
    auditIndexes: s.audit_indexes,
    index: s.index,
    auditRows: s.audit_rows,
  }
}
