// Writes __test__/fixtures/sql-0.3.0.json: the schemaSql and statements of
// 0.3.0 (commit 6caccad), rendered by that commit's own src/store/sql.rs, for
// the tests that upgrade a 0.3.0 deployment in place. Nothing is copied by
// hand: the file is compiled as it was, in a throwaway crate with a stand-in
// for the one item it imports (StoreError::validation).
//
//   node scripts/fixture-0.3.0.mjs
//
// The schema is the placeholder FIXTURE_SCHEMA; tests replace it with theirs.

import { execFileSync } from 'node:child_process'
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const RELEASE_COMMIT = '6caccad'
const FIXTURE_SCHEMA = 'fixture_030_schema'
const TABLE_PREFIX = 'pson_'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const out = path.join(root, '__test__', 'fixtures', 'sql-0.3.0.json')

const STAND_IN = `mod error {
  #[derive(Debug)]
  pub struct StoreError;
  impl StoreError {
    pub fn validation(_field: &'static str, _message: impl Into<String>) -> Self {
      StoreError
    }
  }
}
#[allow(dead_code)]
mod sql;

// name NUL text NUL ..., schemaSql first.
fn main() {
  let args: Vec<String> = std::env::args().collect();
  let queries = sql::Queries::new(&args[1], &args[2]).expect("valid schema and prefix");
  print!("schemaSql\\0{}\\0", queries.schema_sql);
  for (name, text) in queries.statements() {
    print!("{name}\\0{text}\\0");
  }
}
`

const crate = mkdtempSync(path.join(os.tmpdir(), 'pson5-sql-0.3.0-'))
try {
  mkdirSync(path.join(crate, 'src'))
  writeFileSync(path.join(crate, 'Cargo.toml'), '[package]\nname = "sql030"\nversion = "0.0.0"\nedition = "2021"\n')
  const source = execFileSync('git', ['show', `${RELEASE_COMMIT}:src/store/sql.rs`], { cwd: root, encoding: 'utf8' })
  writeFileSync(path.join(crate, 'src', 'sql.rs'), source)
  writeFileSync(path.join(crate, 'src', 'main.rs'), STAND_IN)
  const output = execFileSync(
    'cargo',
    [
      'run',
      '--quiet',
      '--offline',
      '--manifest-path',
      path.join(crate, 'Cargo.toml'),
      '--',
      FIXTURE_SCHEMA,
      TABLE_PREFIX,
    ],
    { encoding: 'utf8', env: { ...process.env, CARGO_TARGET_DIR: path.join(crate, 'target') } },
  )
  const parts = output.split('\0')
  const rendered = {}
  for (let i = 0; i + 1 < parts.length; i += 2) rendered[parts[i]] = parts[i + 1]
  const { schemaSql, ...queries } = rendered
  const fixture = { commit: RELEASE_COMMIT, schema: FIXTURE_SCHEMA, tablePrefix: TABLE_PREFIX, schemaSql, queries }
  writeFileSync(out, JSON.stringify(fixture, null, 2) + '\n')
  console.log(`wrote ${path.relative(root, out)} (${Object.keys(queries).length} statements)`)
} finally {
  rmSync(crate, { recursive: true, force: true })
}
