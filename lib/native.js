'use strict'

// Loads the napi addon once per process (Jest registries and worker threads
// reuse the cached module), with an error that names the missing package.

let binding = null

function platformPackage() {
  const { platform, arch } = process
  let abi = ''
  if (platform === 'linux') {
    const glibc = process.report?.getReport?.().header?.glibcVersionRuntime
    abi = glibc ? '-gnu' : '-musl'
  } else if (platform === 'win32') {
    abi = '-msvc'
  }
  return `@pson5/postgres-store-${platform}-${arch}${abi}`
}

function loadBinding() {
  if (binding !== null) return binding
  try {
    binding = require('../binding.js')
  } catch (cause) {
    const error = new Error(
      `@pson5/postgres-store: no native binary for ${process.platform}-${process.arch}. ` +
        `Install the optional dependency ${platformPackage()} (npm installs it automatically unless ` +
        `optional dependencies are omitted), or build from source with \`npm run build\`.`,
      { cause },
    )
    throw error
  }
  return binding
}

module.exports = { binding: loadBinding }
