// Creates a scenario's schema and seeds it with the same documents for every
// contender:
// - `bench_documents` (n, profile_id, user_id, document text): the source of
//   truth, also read by the pgbench save script (which cannot build JSON);
// - this package's tables (schemaSql), filled with what a first saveProfile of
//   each document leaves: profile at revision 1, one audit row, index rows;
// - the 0.2.2 tables (its own schemaSql), filled with what the original
//   adapter's saveProfile leaves: current row, revision 1, user index record.
// All set-based (a few multi-row statements), so 10,000 profiles take ~1 s.

import pg from 'pg'

import { createPostgresProfileStoreArtifacts } from '../../index.mjs'
import { buildDocuments } from './docs.mjs'

const q = (name) => `"${name.replace(/"/g, '""')}"`

export function tableNames(schema) {
  const ours = createPostgresProfileStoreArtifacts({ schema })
  return {
    documents: `${q(schema)}.${q('bench_documents')}`,
    profiles: ours.tables.profiles,
    audit: ours.tables.profileAudit,
    index: ours.tables.domainIndex,
    indexSeq: `${q(schema)}.${q('pson_domain_index_seq')}`,
    legacyCurrent: `${q(schema)}.${q('pson_profiles_current')}`,
    legacyRevisions: `${q(schema)}.${q('pson_profile_revisions')}`,
    legacyUserIndex: `${q(schema)}.${q('pson_user_profile_index')}`,
  }
}

export function adminPool(url) {
  return new pg.Pool({ connectionString: url, max: 2, application_name: 'pson5-bench-admin' })
}

export async function dropSchema(admin, schema) {
  await admin.query(`drop schema if exists ${q(schema)} cascade`)
}

/** `schemaSql`: this package's by default; `--ab` seeds the other build's tables with its own. */
export async function seedScenario({ admin, schema, shape, upstream, schemaSql }) {
  const started = performance.now()
  const steps = {}
  let mark = started
  const step = (name) => {
    const now = performance.now()
    steps[name] = Math.round(now - mark)
    mark = now
  }
  const t = tableNames(schema)
  await dropSchema(admin, schema)
  await admin.query(`create schema ${q(schema)}`)
  await admin.query(schemaSql ?? createPostgresProfileStoreArtifacts({ schema }).schemaSql)
  if (upstream.store) await admin.query(upstream.store.createPostgresProfileStoreArtifacts({ schema }).schemaSql)
  await admin.query(
    `create table ${t.documents} (n integer primary key, profile_id text not null, user_id text not null, document text not null)`,
  )
  // Uncompressed (pgbench's save reads it per transaction: no decompression on its side).
  await admin.query(`alter table ${t.documents} alter column document set storage external`)

  step('schema')
  const docs = buildDocuments(shape, upstream.engine?.createEmptyProfile)
  step('generate')
  if (upstream.engine) {
    for (const n of [1, shape.profiles]) {
      const check = upstream.engine.validateProfile(docs[n - 1])
      if (!check.success)
        throw new Error(`generated document ${n} is not a valid PSON5 profile: ${JSON.stringify(check.issues)}`)
    }
  }
  let bytes = 0
  const batch = Math.max(50, Math.floor(2_000_000 / shape.targetBytes))
  for (let start = 0; start < docs.length; start += batch) {
    const slice = docs.slice(start, start + batch)
    const texts = slice.map((doc) => JSON.stringify(doc))
    for (const text of texts) bytes += Buffer.byteLength(text)
    await admin.query(
      `insert into ${t.documents} (n, profile_id, user_id, document)
       select * from unnest($1::integer[], $2::text[], $3::text[], $4::text[])`,
      [slice.map((_, i) => start + i + 1), slice.map((d) => d.profile_id), slice.map((d) => d.user_id), texts],
    )
  }

  step('documents')
  // What saveProfile writes for a new profile (revision 1), for all at once.
  await admin.query(`
    insert into ${t.profiles} (profile_id, user_id, tenant_id, revision, document, save_previous_revision,
                               save_changed_paths, save_source_count_delta)
    select b.profile_id, b.user_id, x.d ->> 'tenant_id', 1, jsonb_set(x.d, '{metadata,revision}', '1'), null,
           array(select jsonb_object_keys(x.d) k order by k), (x.d #>> '{metadata,source_count}')::numeric
    from ${t.documents} b cross join lateral (select b.document::jsonb as d) x
    order by b.n`)
  await admin.query(`
    insert into ${t.audit} (profile_id, revision, previous_revision, user_id, tenant_id, source_count, source_count_delta,
                            changed_top_level_paths, pson_version, updated_at, context, document)
    select p.profile_id, 1, null, p.user_id, p.tenant_id, p.save_source_count_delta, p.save_source_count_delta,
           p.save_changed_paths, p.document ->> 'pson_version', p.document #>> '{metadata,updated_at}',
           '{"source": "bench-seed"}'::jsonb, p.document
    from ${t.profiles} p`)
  await admin.query(`
    insert into ${t.index} (user_id, profile_id, tenant_id, active_domains, position, latest_seq, updated_at)
    select s.user_id, s.profile_id, s.tenant_id, s.domains, nextval('${t.indexSeq}'), nextval('${t.indexSeq}'), now()
    from (select p.user_id, p.profile_id, p.tenant_id,
                 array(select jsonb_array_elements_text(p.document #> '{domains,active}')) as domains
          from ${t.profiles} p join ${t.documents} b using (profile_id) order by b.n) s`)

  step('ours')
  if (upstream.store) {
    await admin.query(`
      insert into ${t.legacyCurrent} (profile_id, user_id, profile_revision, profile_document, updated_at)
      select profile_id, user_id, 1, document::jsonb, (document::jsonb #>> '{metadata,updated_at}')::timestamptz
      from ${t.documents}`)
    await admin.query(`
      insert into ${t.legacyRevisions} (profile_id, revision, profile_document, updated_at)
      select profile_id, profile_revision, profile_document, updated_at from ${t.legacyCurrent}`)
    await admin.query(`
      insert into ${t.legacyUserIndex} (user_id, latest_profile_id, profile_ids, updated_at)
      select user_id, (array_agg(profile_id order by n desc))[1], jsonb_agg(profile_id order by n), now()
      from ${t.documents} group by user_id`)
  }
  step('original')
  await admin.query(`analyze ${t.documents}, ${t.profiles}, ${t.audit}, ${t.index}`)
  if (upstream.store) await admin.query(`analyze ${t.legacyCurrent}, ${t.legacyRevisions}, ${t.legacyUserIndex}`)
  step('analyze')
  await checkpoint(admin)
  step('checkpoint')
  return {
    seconds: (performance.now() - started) / 1000,
    steps,
    profiles: docs.length,
    avgDocumentBytes: Math.round(bytes / docs.length),
    docs,
  }
}

/** Flushes dirty buffers so every row starts from the same state (needs superuser or pg_checkpoint). */
export async function checkpoint(admin) {
  try {
    await admin.query('checkpoint')
    return true
  } catch {
    return false
  }
}

/** Vacuums the tables a row is about to use (dead tuples from earlier save rows). */
export async function tidy(admin, schema) {
  const t = tableNames(schema)
  const tables = [t.profiles, t.audit, t.index]
  const { rows } = await admin.query(`select to_regclass($1) is not null as legacy`, [t.legacyCurrent])
  if (rows[0].legacy) tables.push(t.legacyCurrent, t.legacyRevisions, t.legacyUserIndex)
  await admin.query(`vacuum (analyze) ${tables.join(', ')}`)
  await checkpoint(admin)
}

export async function serverInfo(admin) {
  const { rows } = await admin.query(
    `select current_setting('server_version') as version, version() as full_version,
            current_setting('synchronous_commit') as synchronous_commit, current_setting('fsync') as fsync,
            current_setting('shared_buffers') as shared_buffers, current_setting('max_connections') as max_connections,
            pg_backend_pid() as backend_pid`,
  )
  return rows[0]
}
