// The npm side of the package, for the packaging and release tests: running
// npm (also on Windows), packing a folder, and the per-platform package under
// npm/ that matches the machine the tests run on.

import { readFileSync, readdirSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

import { run } from './run.mjs'

export const ROOT = fileURLToPath(new URL('../..', import.meta.url))
export const ROOT_MANIFEST = readJson(path.join(ROOT, 'package.json'))

export function readJson(file) {
  return JSON.parse(readFileSync(file, 'utf8'))
}

/**
 * Runs npm with `args` in `cwd`; resolves to stdout, rejects with npm's stderr
 * on a non-zero exit. Under `npm test`, npm's own CLI script runs through this
 * Node (npm_execpath): on Windows `npm` is a .cmd file that spawn() cannot start
 * without a shell.
 */
export async function npm(args, { cwd = ROOT, env = process.env, timeoutMillis = 180000 } = {}) {
  const execPath = process.env.npm_execpath
  const viaNode = Boolean(execPath) && /\.c?js$/.test(execPath)
  const result = await run(viaNode ? process.execPath : 'npm', viaNode ? [execPath, ...args] : args, {
    cwd,
    env: { ...env, npm_config_update_notifier: 'false', npm_config_fund: 'false', npm_config_audit: 'false' },
    shell: !viaNode && process.platform === 'win32',
    timeoutMillis,
  })
  if (result.code !== 0) throw new Error(`npm ${args.join(' ')} exited with ${result.code}:\n${result.stderr}`)
  return result.stdout
}

/**
 * `npm pack` of `dir` (scripts skipped: `prepare` would build the addon from
 * source). With `destination`, writes the tarball there and returns its path;
 * without, a dry run. Returns { file, files } with the packed paths sorted.
 */
export async function pack(dir, destination) {
  const args = ['pack', '--ignore-scripts', '--json', ...(destination ? ['--pack-destination', destination] : ['--dry-run'])]
  const [report] = JSON.parse(await npm(args, { cwd: dir }))
  return {
    file: destination ? path.join(destination, report.filename) : null,
    files: report.files.map((file) => file.path).sort(),
  }
}

/** The C library of this Linux process ('glibc' or 'musl'), as napi's loader decides it. */
function libc() {
  if (process.platform !== 'linux') return null
  return process.report.getReport().header.glibcVersionRuntime ? 'glibc' : 'musl'
}

/**
 * The committed npm/<platform> package whose os/cpu/libc fit this process:
 * { platform, dir, manifest, name, addon }. Throws on a platform without one.
 */
export function currentPlatformPackage() {
  const npmDir = path.join(ROOT, 'npm')
  for (const platform of readdirSync(npmDir).sort()) {
    const dir = path.join(npmDir, platform)
    const manifest = readJson(path.join(dir, 'package.json'))
    const fits =
      manifest.os.includes(process.platform) &&
      manifest.cpu.includes(process.arch) &&
      (!manifest.libc || manifest.libc.includes(libc()))
    if (fits) return { platform, dir, manifest, name: manifest.name, addon: manifest.main }
  }
  throw new Error(`no package under npm/ is built for ${process.platform}-${process.arch} ${libc() ?? ''}`)
}
