// Child of close.test.mjs, run in its own process so that a crash of the
// addon shows as this process's exit signal instead of taking the test runner
// down. argv: <connectionString> <schema> <scenario: worker|gc> <rounds>
//
// worker: a worker thread loads the addon, starts 400 calls and is terminated
//         while they are in flight; the main thread keeps using its own
//         repository.
// gc:     repositories with calls in flight are dropped without close() and
//         garbage-collected (run with --expose-gc).

import { Worker } from 'node:worker_threads'

import { createPostgresProfileStoreRepository } from '../../index.mjs'

const [connectionString, schema, scenario, roundsText = '5'] = process.argv.slice(2)
const rounds = Number(roundsText)
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const main = createPostgresProfileStoreRepository({ connectionString, schema })

const WORKER = `
  const { workerData, parentPort } = require('node:worker_threads')
  import(workerData.index).then(({ createPostgresProfileStoreRepository }) => {
    const repository = createPostgresProfileStoreRepository({ connectionString: workerData.url, schema: workerData.schema })
    for (let i = 0; i < 200; i++) {
      repository.saveProfile({ profile_id: 'term-' + (i % 50), user_id: 'term-user', pad: 'x'.repeat(5000) }).catch(() => {})
      repository.loadProfile('term-' + (i % 50)).catch(() => {})
    }
    parentPort.postMessage('started')
  })
`

async function workerRound(round) {
  const worker = new Worker(WORKER, {
    eval: true,
    workerData: { index: new URL('../../index.mjs', import.meta.url).href, url: connectionString, schema },
  })
  worker.on('error', () => {})
  const exited = new Promise((resolve) => worker.on('exit', resolve))
  await new Promise((resolve) => worker.once('message', resolve))
  await sleep(round % 8)
  await worker.terminate()
  await exited
}

async function gcRound() {
  let repository = createPostgresProfileStoreRepository({ connectionString, schema })
  for (let i = 0; i < 200; i++) {
    repository.saveProfile({ profile_id: `gc-${i % 50}`, user_id: 'gc-user', pad: 'y'.repeat(5000) }).catch(() => {})
    repository.loadProfile(`gc-${i % 50}`).catch(() => {})
  }
  repository = null
  await sleep(1)
  globalThis.gc()
  await sleep(5)
  globalThis.gc()
}

for (let round = 0; round < rounds; round++) {
  if (scenario === 'worker') await workerRound(round)
  else await gcRound()
  // The main thread's repository keeps working meanwhile.
  const checks = await Promise.all(Array.from({ length: 20 }, (_, i) => main.profileExists(`term-${i}`)))
  if (checks.length !== 20) throw new Error('main thread calls failed')
}
await sleep(300)
await main.saveProfile({ profile_id: `main-${process.pid}`, user_id: 'main-user' })
await main.close()
process.stdout.write(`ok ${scenario}\n`)
