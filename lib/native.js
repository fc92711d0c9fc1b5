'use strict'

// Loads the napi addon when the package is loaded (Jest registries and worker
// threads reuse the cached module), so a missing binary fails `require` and
// `import` at once, with an error that says which package to install, instead
// of at the first call.

const fs = require('node:fs')
const path = require('node:path')

const ROOT = path.join(__dirname, '..')

/** The npm package that holds the binary for this platform, e.g. `@pson5/postgres-store-linux-x64-gnu`. */
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

function isInstalled(name) {
  try {
    require.resolve(`${name}/package.json`, { paths: [ROOT] })
    return true
  } catch {
    return false
  }
}

/** What to do about a binary that did not load: depends on where this package is. */
function advice(name) {
  // A clone of the repository (the published package has no Cargo.toml) builds its own binary.
  if (fs.existsSync(path.join(ROOT, 'Cargo.toml'))) {
    return `This is a clone of the repository: build the binary with \`npm run build:debug\` (or \`npm install\`) in ${ROOT}.`
  }
  const { version } = require('../package.json')
  if (isInstalled(name)) {
    return `${name} is installed but its binary could not be loaded (see the cause); reinstall it with \`npm install ${name}@${version}\`.`
  }
  return (
    `It comes in the optional dependency ${name}, which is not installed: optional dependencies were omitted ` +
    `(--omit=optional, --no-optional) or the lockfile was made on another platform. Install it with ` +
    `\`npm install ${name}@${version}\`, or reinstall with optional dependencies.`
  )
}

function loadBinding() {
  try {
    return require('../binding.js')
  } catch (cause) {
    const name = platformPackage()
    const error = new Error(
      `@pson5/postgres-store: no native binary could be loaded for ${process.platform}-${process.arch}. ${advice(name)}`,
      { cause },
    )
    error.code = 'native_binding_missing'
    error.packageName = name
    throw error
  }
}

const binding = loadBinding()

module.exports = { binding: () => binding }
