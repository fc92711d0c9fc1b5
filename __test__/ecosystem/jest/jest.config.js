'use strict'

// Jest fixture: run by __test__/ecosystem/jest.test.mjs with DATABASE_URL and
// PSON5_JEST_SCHEMA set.
module.exports = {
  rootDir: __dirname,
  testEnvironment: 'node',
  testMatch: ['<rootDir>/*.spec.js'],
  testTimeout: 30000,
  watchman: false,
}
