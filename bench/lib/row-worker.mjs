// One benchmark row in a fresh process (so RSS is this contender's alone):
// the parent forks this file, sends the row's config over IPC and gets the
// measurement back.

import { closedLoop, describeError, randomId } from './loadgen.mjs'
import { buildDocuments, scenarioShape } from './docs.mjs'
import { checkResult, createImplementation } from './impls.mjs'
import { loadUpstream } from './engine.mjs'

export async function runRow(config) {
  const { impl, op, url, schema, poolSize, concurrency, warmupMs, durationMs, postmasterPid } = config
  const shape = scenarioShape(config.scenario, config.shapeOverrides)
  const upstream = config.useEngine || impl === 'original' ? await loadUpstream() : { engine: null, store: null }
  if (config.useEngine && !upstream.engine) throw new Error(`serialization-engine did not load: ${upstream.error?.message}`)
  let docs = null
  const getDocs = () => docs
  if (op === 'save') docs = buildDocuments(shape, config.useEngine ? upstream.engine.createEmptyProfile : undefined)

  const contender = await createImplementation(impl, { url, schema, poolSize, getDocs, upstream })
  try {
    const max = op === 'find' ? shape.users : shape.profiles
    const call = contender[op]
    // One checked call first: a wrong schema, SQL or parameter fails the row loudly.
    const probe = Math.min(7, shape.users)
    checkResult(op, await call(probe), probe)
    const result = await closedLoop({ op: () => call(randomId(max)), concurrency, warmupMs, durationMs, postmasterPid })
    return result
  } finally {
    await contender.close()
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
  process.on(event, (error) => answer({ ok: false, error: `${event}: ${describeError(error)}`, stack: error?.stack }))
}

process.once('message', async (config) => {
  try {
    answer({ ok: true, result: await runRow(config) })
  } catch (error) {
    answer({ ok: false, error: describeError(error), stack: error?.stack })
  }
})
