'use strict'

// What JS knows of each statement, from the addon's one declaration of them
// (src/store/sql.rs `Statement`), so JS keeps no list of its own:
// - where each column of each statement's rows is, by name:
//   `C.saveProfile.revision` is the position of `revision` in saveProfile's
//   rows (`Statement::columns`, which tests/store.rs checks against what the
//   server returns);
// - READ_ONLY_STATEMENTS: the statements that only read, which a read
//   replica may run (`Statement::is_read_only`).

const native = require('./native.js')

const C = {}
for (const [statement, columns] of Object.entries(native.binding().artifacts().columns)) {
  C[statement] = Object.freeze(Object.fromEntries(columns.map((column, i) => [column, i])))
}
Object.freeze(C)

const READ_ONLY_STATEMENTS = new Set(native.binding().readOnlyStatements())

/** A row of `statement` as `{ column: value }`. */
function named(statement, row) {
  const named = {}
  for (const [column, i] of Object.entries(C[statement])) named[column] = row[i]
  return named
}

module.exports = { C, READ_ONLY_STATEMENTS, named }
