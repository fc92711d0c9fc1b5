'use strict'

// A Jest `globalSetup` for Jest before 30.5 run with --detectOpenHandles:
//
//   // jest.config.js
//   module.exports = { globalSetup: '@pson5/postgres-store/jest-global-setup' }
//
// napi-rs makes one thread-safe function ("CustomGC") per process when a
// napi-rs addon is loaded (create_custom_gc in crates/napi/src/bindgen_runtime/
// module_register.rs), for every addon built with the `napi4` feature, which
// async functions need. It is unref'd, so it never keeps a process alive, and
// lives until the process ends. Jest 29 reports it as an open handle when a
// test file is what loads the addon (jestjs/jest#16378; Jest 30.5.0 ignores it,
// jestjs/jest#16379). Loaded here, in Jest's own process before the tests, the
// addon is already in Node's module cache when a test requires the package, so
// no handle is made under a test.
module.exports = function loadNativeAddon() {
  require('./index.js')
}
