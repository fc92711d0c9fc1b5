// Bytes on disk per audit revision (issue 16 "Storage"): revisions written
// through this package's own saveProfile into a fresh schema, then the audit
// table's heap, TOAST (with its index) and indexes measured after a vacuum.
// Also reports how the server stored the documents (pg_column_compression).

import { createPostgresProfileStoreArtifacts, createPostgresProfileStoreRepository } from '../../index.mjs'
import { openDataset } from './datasets.mjs'
import { scenarioShape } from './docs.mjs'
import { dropSchema, tableNames } from './seed.mjs'

// Profiles × revisions per document size: ~10 MB of JSON each.
export const STORAGE_CASES = [
  { scenario: '1k', profiles: 200, revisions: 50 },
  { scenario: '20k', profiles: 50, revisions: 10 },
]

export async function bytesPerRevision({ admin, url, createEmptyProfile, scenario, profiles, revisions }) {
  const schema = `pson5_bench_storage_${scenario}_${process.pid}`
  const shape = scenarioShape(scenario, { profiles })
  const dataset = openDataset(shape, { createEmptyProfile, withDocuments: true })
  const repository = createPostgresProfileStoreRepository({ connectionString: url, max: 10, schema })
  try {
    await dropSchema(admin, schema)
    await admin.query(createPostgresProfileStoreArtifacts({ schema }).schemaSql)
    for (let r = 0; r < revisions; r++) {
      await Promise.all(Array.from({ length: profiles }, (_, i) => repository.saveProfile(dataset.document(i + 1))))
    }
    const audit = tableNames(schema).audit
    await admin.query(`vacuum (analyze) ${audit}`)
    const { rows } = await admin.query(`
      select count(*)::bigint as rows,
             avg(octet_length(a.document::text))::float8 as json_bytes,
             avg(pg_column_size(a.document))::float8 as stored_bytes,
             string_agg(distinct coalesce(pg_column_compression(a.document), 'none'), ',') as compression,
             pg_relation_size('${audit}')::bigint as heap,
             coalesce((select pg_total_relation_size(c.reltoastrelid) from pg_class c
                       where c.oid = '${audit}'::regclass and c.reltoastrelid <> 0), 0)::bigint as toast,
             pg_indexes_size('${audit}')::bigint as indexes,
             pg_total_relation_size('${audit}')::bigint as total
      from ${audit} a`)
    const s = rows[0]
    const n = Number(s.rows)
    return {
      scenario,
      revisions: n,
      jsonBytes: s.json_bytes,
      storedDocumentBytes: s.stored_bytes,
      compression: s.compression,
      perRevision: {
        heap: Number(s.heap) / n,
        toast: Number(s.toast) / n,
        indexes: Number(s.indexes) / n,
        total: Number(s.total) / n,
      },
    }
  } finally {
    await repository.close()
    await dropSchema(admin, schema)
  }
}
