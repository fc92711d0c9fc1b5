// CI checks what a reviewer checks first (issue 14, item 9): the README's
// test command (`npm test`, which .ci/run runs) runs the linters, the type
// check and the generated-binding check before the test suites.

import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { test } from 'node:test'

const ROOT = new URL('../', import.meta.url)
const { scripts } = JSON.parse(readFileSync(new URL('package.json', ROOT), 'utf8'))

/** Every command `npm run <name>` ends up running, scripts expanded. */
function expand(name, seen = new Set()) {
  assert.ok(scripts[name] !== undefined, `script ${name} exists`)
  assert.ok(!seen.has(name), `script ${name} does not loop`)
  seen.add(name)
  return scripts[name]
    .split('&&')
    .map((command) => command.trim())
    .flatMap((command) => {
      const nested = /^npm (?:run |)([\w:-]+)(?:\s|$)/.exec(command) ?? /npm run ([\w:-]+)$/.exec(command)
      return nested && scripts[nested[1]] !== undefined ? [command, ...expand(nested[1], seen)] : [command]
    })
}

test('npm test runs fmt, clippy, tsc and the generated-binding check before the suites', () => {
  const commands = expand('test')
  const first = (pattern) => commands.findIndex((command) => pattern.test(command))
  const suites = first(/^cargo test\b/)
  assert.ok(suites >= 0, `cargo test runs: ${commands.join(' | ')}`)
  for (const check of [
    /^cargo fmt --check$/,
    /^cargo clippy --all-targets -- -D warnings$/,
    /types\.test\.mjs/,
    /^git diff --exit-code -- binding\.js binding\.d\.ts$/,
  ]) {
    const at = first(check)
    assert.ok(at >= 0, `${check} is part of npm test: ${commands.join(' | ')}`)
    assert.ok(at < suites, `${check} runs before the suites`)
  }
  // The binding check compares against a fresh build.
  assert.ok(first(/^napi build/) < first(/^git diff --exit-code/), 'the binding is rebuilt before it is compared')
})

test('.ci/run runs the README commands', () => {
  const run = readFileSync(new URL('.ci/run', ROOT), 'utf8')
  assert.match(run, /^npm install && npm start$/m)
  assert.match(run, /^npm test$/m)
})
