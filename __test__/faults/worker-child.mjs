// Worker of close.test.mjs: loads the addon in a worker thread, makes a
// repository, saves and loads, and reports back. `closeAtEnd` false leaves
// the repository open (the worker must still end).

import { parentPort, workerData, threadId } from 'node:worker_threads'

const { createPostgresProfileStoreRepository } = await import('../../index.mjs')
const { connectionString, schema, closeAtEnd } = workerData
const repository = createPostgresProfileStoreRepository({ connectionString, schema, idleTimeoutMillis: 500 })
const id = `worker-${threadId}-${Date.now()}`
const results = []
for (let i = 0; i < 5; i++) {
  const saved = await repository.saveProfile({ profile_id: `${id}-${i}`, user_id: `worker-user-${threadId}`, n: i })
  const loaded = await repository.loadProfile(`${id}-${i}`)
  results.push(saved.metadata.revision === 1 && loaded.n === i)
}
const listed = await repository.findProfilesByUserId(`worker-user-${threadId}`)
if (closeAtEnd) await repository.close()
parentPort.postMessage({ ok: results.every(Boolean) && listed.length === 5, threadId })
