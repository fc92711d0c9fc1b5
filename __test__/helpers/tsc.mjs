// The TypeScript compiler of devDependencies, run the way the type tests run
// it: `tsc --strict --noEmit` with nodenext resolution, as a user's project on
// Node would compile against this package.

import { execFile } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

export const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const TSC = path.join(ROOT, 'node_modules', '.bin', process.platform === 'win32' ? 'tsc.cmd' : 'tsc')
export const FLAGS = [
  '--strict',
  '--noEmit',
  '--pretty',
  'false',
  '--module',
  'nodenext',
  '--moduleResolution',
  'nodenext',
  '--target',
  'es2022',
  '--types',
  'node',
]

/** Compiles `files` (relative to `cwd`); resolves to { code, output } (never rejects on errors). */
export function tsc(files, { cwd = ROOT, flags = FLAGS } = {}) {
  return new Promise((resolve) => {
    execFile(TSC, [...flags, ...files], { cwd, shell: process.platform === 'win32' }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, output: `${stdout}${stderr}` })
    })
  })
}
