'use strict'

// What JS knows of each statement, from the addon's one declaration of them
// (src/store/sql.rs `Statement`), so JS keeps no list of its own:
// - where each column of each statement's rows is, by name:
//   `C.saveProfile.revision` is the position of `revision` in saveProfile's
//   rows (`Statement::columns`, which tests/store.rs checks against what the
//   server returns);
// - EFFECTS: what each statement does to the data (`Statement::effect`),
//   by name: 'read' (a read replica may run it), 'primaryRead' (changes
//   nothing, runs on the primary), 'keepsCurrent' (writes, leaving every
//   current document as it was) or 'write'.

const native = require('./native.js')

const C = {}
for (const [statement, columns] of Object.entries(native.binding().artifacts().columns)) {
  C[statement] = Object.freeze(Object.fromEntries(columns.map((column, i) => [column, i])))
}
Object.freeze(C)

const EFFECTS = Object.freeze(native.binding().statementEffects())

/** A row of `statement` as `{ column: value }`. */
function named(statement, row) {
  const named = {}
  for (const [column, i] of Object.entries(C[statement])) named[column] = row[i]
  return named
}

module.exports = { C, EFFECTS, named }
