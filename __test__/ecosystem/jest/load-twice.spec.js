'use strict'

// The package under Jest's module registry: each registry evaluates the JS
// again, while the addon is one per process. Two registries, a reset, and
// queries through each.

const path = require('node:path')

const ROOT = path.resolve(__dirname, '..', '..', '..')
const schema = process.env.PSON5_JEST_SCHEMA
const connectionString = process.env.DATABASE_URL

async function roundTrip(pkg, tablePrefix) {
  const repository = pkg.createPostgresProfileStoreRepository({ connectionString, schema, tablePrefix })
  try {
    await repository.ensureSchema()
    const saved = await repository.saveProfile({ profile_id: `jest-${tablePrefix}`, user_id: 'jest-user', metadata: {} })
    const loaded = await repository.loadProfile(`jest-${tablePrefix}`)
    const missing = await repository.loadProfile('jest-missing').then(
      () => null,
      (error) => error,
    )
    return { revision: saved.metadata.revision, loaded: loaded.profile_id, missing }
  } finally {
    await repository.close()
  }
}

describe('@pson5/postgres-store under Jest', () => {
  test('environment', () => {
    expect(connectionString).toBeTruthy()
    expect(schema).toBeTruthy()
  })

  test('two isolated module registries each load the package and run queries', async () => {
    let first
    let second
    jest.isolateModules(() => {
      first = require(ROOT)
    })
    jest.isolateModules(() => {
      second = require(ROOT)
    })
    expect(first).not.toBe(second)
    expect(first.createPostgresProfileStoreRepository).not.toBe(second.createPostgresProfileStoreRepository)

    const [a, b] = await Promise.all([roundTrip(first, 'jest_a_'), roundTrip(second, 'jest_b_')])
    expect(a).toMatchObject({ revision: 1, loaded: 'jest-jest_a_' })
    expect(b).toMatchObject({ revision: 1, loaded: 'jest-jest_b_' })
    // Errors from one registry are still instances of the other's class.
    expect(a.missing.code).toBe('not_found')
    expect(a.missing).toBeInstanceOf(second.PostgresStoreError)
    expect(b.missing).toBeInstanceOf(first.PostgresStoreError)
  })

  test('jest.resetModules() and require again: the same tables, the next revision', async () => {
    jest.resetModules()
    const again = require(ROOT)
    const repository = again.createPostgresProfileStoreRepository({ connectionString, schema, tablePrefix: 'jest_a_' })
    try {
      const saved = await repository.saveProfile({ profile_id: 'jest-jest_a_', user_id: 'jest-user', metadata: {} })
      expect(saved.metadata.revision).toBe(2)
      expect(await repository.listProfileRevisions('jest-jest_a_')).toEqual([1, 2])
      expect(again.createPostgresProfileStoreArtifacts({ schema, tablePrefix: 'jest_a_' }).tables.profiles).toBe(
        `"${schema}"."jest_a_profiles"`,
      )
    } finally {
      await repository.close()
    }
  })
})
