/**
 * A Jest `globalSetup` (Jest before 30.5 with `--detectOpenHandles`): loads the native addon in Jest's own process, so
 * napi-rs's process-wide `CustomGC` handle is not created under a test file.
 *
 *     // jest.config.js
 *     module.exports = { globalSetup: '@pson5/postgres-store/jest-global-setup' }
 */
declare function loadNativeAddon(): void
export = loadNativeAddon
