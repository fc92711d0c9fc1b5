'use strict'

// One event per operation: to the `onEvent` option and to the
// `pson5:postgres-store` diagnostics channel. Events never carry documents.

const diagnosticsChannel = require('node:diagnostics_channel')

const CHANNEL_NAME = 'pson5:postgres-store'
const channel = diagnosticsChannel.channel(CHANNEL_NAME)

function isObserved(onEvent) {
  return onEvent !== undefined || channel.hasSubscribers
}

function publish(onEvent, event) {
  if (onEvent !== undefined) {
    try {
      onEvent(event)
    } catch {
      // A failing listener must not fail the operation it observes.
    }
  }
  if (channel.hasSubscribers) channel.publish(event)
}

module.exports = { CHANNEL_NAME, isObserved, publish }
