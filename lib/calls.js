'use strict'

// Cancellation of one call: `{ signal, timeoutMillis }`, accepted by every
// method. The repository (#run) turns the options into one AbortSignal and
// runs the call with it as the current signal (AsyncLocalStorage, entered
// only for calls that have one); the drivers read it where a statement is
// about to go out, and reject the call with one of the two markers below,
// which #run turns into a PostgresStoreError with code `aborted`:
//
// - NOT_SENT: aborted before its statement was sent (still gathered for a
//   crossing, or before the executor was called): it left its batch and
//   wrote nothing;
// - SENT: aborted while its statement ran. A read's outcome no longer
//   matters; a write may or may not have committed (`outcomeUnknown: true`):
//   the next load tells.

const { AsyncLocalStorage } = require('node:async_hooks')

const { PostgresStoreError, validationError } = require('./errors.js')

const current = new AsyncLocalStorage()

const NOT_SENT = Symbol('aborted before its statement was sent')
const SENT = Symbol('aborted while its statement ran')

/** The call's AbortSignal from `options.signal` and `options.timeoutMillis` (ms), or null. */
function callSignal(options) {
  const signal = options?.signal
  const timeoutMillis = options?.timeoutMillis
  if (signal !== undefined && !isAbortSignal(signal)) throw validationError('signal', 'must be an AbortSignal')
  if (timeoutMillis !== undefined && (!Number.isInteger(timeoutMillis) || timeoutMillis < 1 || timeoutMillis > 2 ** 31 - 1)) {
    throw validationError('timeoutMillis', 'must be an integer number of milliseconds from 1 to 2147483647')
  }
  if (timeoutMillis === undefined) return signal ?? null
  const timeout = AbortSignal.timeout(timeoutMillis)
  return signal === undefined ? timeout : AbortSignal.any([signal, timeout])
}

function isAbortSignal(value) {
  return typeof value?.aborted === 'boolean' && typeof value.addEventListener === 'function'
}

/** Runs `fn` with `signal` as the current call's signal. */
function withSignal(signal, fn) {
  return current.run(signal, fn)
}

/** The current call's signal, or undefined. */
function currentSignal() {
  return current.getStore()
}

/**
 * Settles as `work()` does, unless the current call's signal aborts first:
 * then rejects with NOT_SENT (aborted before `send` was reached) or SENT.
 * `work(sent)` calls `sent()` when its statement goes out.
 */
function abortable(signal, work) {
  if (signal === undefined || signal === null) return work(() => {})
  if (signal.aborted) return Promise.reject(NOT_SENT)
  let wasSent = false
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(wasSent ? SENT : NOT_SENT)
    signal.addEventListener('abort', onAbort, { once: true })
    const done = () => signal.removeEventListener('abort', onAbort)
    work(() => {
      wasSent = true
    }).then(
      (value) => {
        done()
        resolve(value)
      },
      (error) => {
        done()
        reject(error)
      },
    )
  })
}

/** The `aborted` error for a marker, or null when `raw` is not one. */
function abortedError(raw, signal, writes) {
  if (raw !== NOT_SENT && raw !== SENT) return null
  const reason = signal?.reason
  const timedOut = reason?.name === 'TimeoutError'
  const why = timedOut ? 'its timeoutMillis passed' : 'its signal was aborted'
  if (raw === NOT_SENT) {
    return new PostgresStoreError('aborted', `The call was aborted (${why}) before its statement was sent; nothing was written.`, {
      cause: reason,
    })
  }
  if (!writes) {
    return new PostgresStoreError('aborted', `The call was aborted (${why}) while its statement ran.`, { cause: reason })
  }
  const error = new PostgresStoreError(
    'aborted',
    `The call was aborted (${why}) after its statement was sent: it may or may not have been written; load the profile to find out.`,
    { cause: reason },
  )
  error.outcomeUnknown = true
  return error
}

module.exports = { callSignal, withSignal, currentSignal, abortable, abortedError, NOT_SENT, SENT }
