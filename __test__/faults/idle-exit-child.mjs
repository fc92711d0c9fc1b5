// Child of close.test.mjs: makes a native repository, runs a few statements
// and never calls close(). The process must exit by itself with code 0.
// argv: <connectionString> <schema> <mode: query|save>

import { createPostgresProfileStoreRepository } from '../../index.mjs'

const [connectionString, schema, mode = 'query'] = process.argv.slice(2)
const repository = createPostgresProfileStoreRepository({ connectionString, schema, idleTimeoutMillis: 500 })
if (mode === 'save') {
  const id = `child-${process.pid}`
  const saved = await repository.saveProfile({ profile_id: id, user_id: 'child-user' })
  const loaded = await repository.loadProfile(id)
  if (saved.metadata.revision !== 1 || loaded.profile_id !== id) throw new Error('round trip failed')
} else {
  await repository.profileExists('child-nothing')
  await repository.findProfilesByUserId('child-nobody')
}
process.stdout.write(`ok ${mode}\n`)
