'use strict'

// Where each column of each statement's rows is, by name: `C.saveProfile.revision`
// is the position of `revision` in saveProfile's rows. Built once from the
// addon's one table of statement columns (src/store/sql.rs
// STATEMENT_COLUMNS, which tests/store.rs checks against what the server
// returns), so JS never keeps positions of its own.

const native = require('./native.js')

const C = {}
for (const [statement, columns] of Object.entries(native.binding().artifacts().columns)) {
  C[statement] = Object.freeze(Object.fromEntries(columns.map((column, i) => [column, i])))
}
Object.freeze(C)

/** A row of `statement` as `{ column: value }`. */
function named(statement, row) {
  const named = {}
  for (const [column, i] of Object.entries(C[statement])) named[column] = row[i]
  return named
}

module.exports = { C, named }
