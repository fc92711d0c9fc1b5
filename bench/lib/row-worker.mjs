// One row in a fresh process (so the RSS reported is this contender's alone):
// the parent forks this file, sends the row's config over IPC and gets the
// measurement back.

import { pathToFileURL } from 'node:url'

import { CONTENDERS } from './contenders.mjs'
import { openDataset } from './datasets.mjs'
import { loadUpstream } from './engine.mjs'
import { closedLoop, describeError, openLoop } from './loadgen.mjs'
import { OPERATIONS } from './operations.mjs'

async function runRow(config) {
  const operation = OPERATIONS[config.op]
  const upstream =
    config.useEngine || config.contender === 'original' ? await loadUpstream() : { engine: null, store: null }
  if (config.useEngine && !upstream.engine)
    throw new Error(`serialization-engine did not load: ${upstream.error?.message}`)
  const dataset = openDataset(config.shape, {
    createEmptyProfile: upstream.engine?.createEmptyProfile,
    withDocuments: operation.method === 'saveProfile',
  })
  const pkg = await import(pathToFileURL(config.packageEntry).href)
  const { store, close } = await CONTENDERS[config.contender].open({ ...config, pkg, upstream })
  try {
    if (typeof store[operation.method] !== 'function') return { skipped: `no ${operation.method}` }
    Object.assign(dataset, await operation.setup?.(store, dataset))
    const once = () => {
      const args = operation.pick(dataset)
      return { args, promise: operation.call(store, args) }
    }
    // One checked call first: a wrong schema, SQL or parameter fails the row loudly.
    const probe = once()
    operation.check(await probe.promise, probe.args)
    const op = () => once().promise
    const common = { op, durationMs: config.durationMs, postmasterPid: config.postmasterPid }
    if (config.mode === 'open') {
      // Every connection of the pool opened (and its statements prepared)
      // first: a pool that connects lazily would otherwise start the offered
      // rate on one connection and carry that backlog into the window.
      for (let i = 0; i < 3; i++) await Promise.all(Array.from({ length: 2 * config.poolSize }, op))
      return await openLoop({ ...common, rate: config.rate, warmupMs: config.warmupMs })
    }
    const limit = operation.limit ? operation.limit(dataset) - 1 : Infinity
    return await closedLoop({
      ...common,
      concurrency: config.concurrency,
      warmupMs: operation.limit ? 0 : config.warmupMs,
      limit,
    })
  } finally {
    await close()
  }
}

let answered = false
function answer(message) {
  if (answered) return
  answered = true
  process.send(message, () => process.exit(0))
}
// An error thrown outside the awaited chain (e.g. inside the package) still fails the row with its message.
for (const event of ['uncaughtException', 'unhandledRejection']) {
  process.on(event, (error) => answer({ ok: false, error: `${event}: ${describeError(error)}` }))
}

process.once('message', async (config) => {
  try {
    answer({ ok: true, result: await runRow(config) })
  } catch (error) {
    answer({ ok: false, error: describeError(error) })
  }
})
